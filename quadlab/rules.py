"""The one place where block extremes and the named step rules are resolved.

Everything that needs a block's extreme eigenvalues or a step named by a rule ("optimal", "theorem",
"oracle", heavy ball's optimum) asks this module: the runner when it starts a run, :func:`quadlab.report`
when it rates a run, the studies when they label a run.  Nothing recomputes a rule on its own, so the step a
report rates is the step the run took.

Block extremes
--------------
For a partition of the coordinates into blocks B_1 … B_L, the extremes of block l are λ_min and λ_max of
the diagonal block H[B_l, B_l] of H as stored.  Two partitions are used:

* ``"nominal"``: the spectrum's blocks, as coordinate ranges (``problem.block_slices``).  This is what a
  per-block step acts on (blockwise GD's oracle).  Under rotation ``"block"`` or ``"none"``
  H[B_l, B_l] = Q_l Λ_l Q_lᵀ, so its extremes are the smallest and largest eigenvalue of the spectrum's
  block l.  Under ``"global"`` H = Q Λ Qᵀ with one Haar Q over all coordinates; H[B_l, B_l] is then a mixed
  diagonal block whose eigenvalues lie inside [λ_min(H), λ_max(H)] and are not the spectrum's block l
  (on Case 3, block "low" {1, 2, 3} becomes a block with extremes near 350 and 1540).
* ``"theorem"``: the blocks the theorem may use.  It needs H block diagonal, so these are the nominal
  blocks when H is (``"block"``, ``"none"``) and all of H as one block when it is not (``"global"``:
  L = 1, extremes λ_min(H), λ_max(H)).

``source="exact"`` reads the spectrum where the extremes are known by construction and otherwise
computes the eigenvalues of H[B_l, B_l] (``eigvalsh``, float64).  ``source="lanczos"`` estimates them by
Lanczos on H[B_l, B_l] (on all of H for the one theorem block under ``"global"``) and widens the Ritz values
by their residuals and a relative ``margin`` (default 1%), so that λ_max is over- and λ_min
under-estimated (see :func:`quadlab.lanczos.block_extremes`): steps derived from them err on the safe side.

The whole-H extremes (λ_min(H), λ_max(H)) are the min and max over the theorem partition.

Step rules
----------
* ``"optimal"`` (GD): η* = 2/(λ_min(H) + λ_max(H)).
* ``"theorem"`` (Adam theory form): η = min_l C_{l,1}, C_{l,1} = min_{i∈B_l} |∇f(w_0)_i| / λ_max(H[B_l, B_l])
  over the theorem partition, one step per start (:func:`quadlab.theory.adam_constants`).
* ``"oracle"`` (blockwise GD): η_l = 2/(λ_min(H[B_l,B_l]) + λ_max(H[B_l,B_l])) over the nominal partition.
* heavy ball's optimum (:func:`quadlab.theory.heavy_ball_optimum`): η = 4/(√λ_min + √λ_max)²,
  β = ((√κ − 1)/(√κ + 1))² with the whole-H extremes.

The formulas live in :mod:`quadlab.theory`; this module decides which extremes and which starts they get.
"""

from __future__ import annotations

import numpy as np

from ._engine.choices import deprecated, one_of
from .spectra import EXTREMES_SOURCES

__all__ = ["PARTITIONS", "RULES", "block_extremes", "whole_extremes", "gd_optimal_lr", "theorem_lr",
           "oracle_block_lrs", "oracle_block_steps", "partition_blocks", "resolve_lr"]

PARTITIONS = ("nominal", "theorem")
RULES = ("optimal", "theorem")


def __getattr__(name: str):
    if name == "SOURCES":  # renamed: the sources of every kind are named in quadlab.spectra
        import warnings

        warnings.warn("quadlab.rules.SOURCES is deprecated: use quadlab.spectra.EXTREMES_SOURCES",
                      DeprecationWarning, stacklevel=2)
        return EXTREMES_SOURCES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check(source: str, partition: str) -> None:
    one_of("source", source, EXTREMES_SOURCES)
    one_of("partition", partition, PARTITIONS)


def partition_blocks(problem, partition: str = "nominal") -> tuple[np.ndarray, ...]:
    """The coordinate sets B_l of a partition (module docstring): nominal blocks, or the theorem's.

    Parameters
    ----------
    problem : BlockQuadratic
        Its nominal blocks, or its theorem blocks.
    partition : {"nominal", "theorem"}, default "nominal"
        "theorem" is one block of all coordinates when H is not block diagonal (rotation="global").

    Returns
    -------
    tuple of numpy.ndarray
        One host int64 array of coordinates per block.

    Raises
    ------
    ValueError
        For a partition other than "nominal" and "theorem".

    Examples
    --------
    >>> from quadlab import BlockQuadratic, rules, spectra
    >>> p = BlockQuadratic(spectra.simple_heterogeneous(1000), rotation="global")
    >>> [b.tolist() for b in rules.partition_blocks(p)][:1], len(rules.partition_blocks(p, "theorem"))
    ([[0, 1, 2]], 1)
    """
    _check("exact", partition)
    if partition == "theorem" and not problem.is_block_diagonal:
        return (np.arange(problem.n),)
    return tuple(np.arange(s.start, s.stop) for s in problem.block_slices)


def block_extremes(problem, source: str = "exact", partition: str = "nominal", *, margin: float | None = None):
    """(λ_min, λ_max) of the diagonal block H[B_l, B_l] for every block of a partition.

    Parameters
    ----------
    problem : BlockQuadratic
        Whose diagonal blocks are measured.
    source : {"exact", "lanczos"}, default "exact"
        The spectrum source (:data:`quadlab.spectra.EXTREMES_SOURCES`): the known eigenvalues (``eigvalsh`` of
        the stored blocks where they are not known), or Lanczos estimates widened to safe bounds.
    partition : {"nominal", "theorem"}, default "nominal"
        Which blocks B_l (module docstring).
    margin : float, keyword-only, optional
        With ``source="lanczos"``: the relative widening of the Ritz bounds (default 0.01).

    Returns
    -------
    numpy.ndarray
        Host float64, shape (L, 2): λ_min(H[B_l, B_l]) and λ_max(H[B_l, B_l]) per block.

    Raises
    ------
    ValueError
        If ``source`` or ``partition`` names no known choice.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rules, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))
    >>> rules.block_extremes(p).tolist()
    [[1.0, 3.0], [99.0, 101.0], [998.0, 1000.0]]
    >>> lo, hi = rules.block_extremes(p, "lanczos").T
    >>> bool((lo <= [1.0, 99.0, 998.0]).all() and (hi >= [3.0, 101.0, 1000.0]).all())
    True
    """
    _check(source, partition)
    whole = partition == "theorem" and not problem.is_block_diagonal
    if source == "exact":
        if whole:
            lam = problem.eigenvalues
            return np.array([[lam.min(), lam.max()]], dtype=np.float64)
        if problem.is_block_diagonal:
            return np.array([[b.min(), b.max()] for b in problem.spectrum.blocks], dtype=np.float64)
        b = problem.backend
        ev = [np.linalg.eigvalsh(np.asarray(b.to_numpy(problem.block(l)), dtype=np.float64))
              for l in range(problem.spectrum.n_blocks)]
        return np.array([[e[0], e[-1]] for e in ev], dtype=np.float64)
    from . import lanczos

    kw = {} if margin is None else {"margin": margin}
    if whole:
        lo, hi = lanczos.whole_extremes(problem, **kw)
        return np.array([[lo, hi]], dtype=np.float64)
    ex = lanczos.block_extremes(problem, source="lanczos", **kw)
    return np.stack([np.asarray(ex.lo), np.asarray(ex.hi)], axis=1).astype(np.float64)


def whole_extremes(problem, source: str = "exact", *, margin: float | None = None) -> tuple[float, float]:
    """(λ_min(H), λ_max(H)): the extremes over the theorem partition.

    Parameters
    ----------
    problem : BlockQuadratic
        Whose H is measured as a whole.
    source : {"exact", "lanczos"}, default "exact"
        The spectrum source, as for :func:`block_extremes`.
    margin : float, keyword-only, optional
        As for :func:`block_extremes`.

    Returns
    -------
    tuple of float
        (λ_min(H), λ_max(H)).

    Raises
    ------
    ValueError
        If ``source`` is not "exact" or "lanczos", or, with "lanczos", ``margin`` lies outside [0, 1).

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rules, spectra
    >>> rules.whole_extremes(quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000)))
    (1.0, 1000.0)
    """
    ex = block_extremes(problem, source, "theorem", margin=margin)
    return float(ex[:, 0].min()), float(ex[:, 1].max())


def gd_optimal_lr(problem, source: str = "exact") -> float:
    """GD's best constant step η* = 2/(λ_min(H) + λ_max(H)) (:func:`quadlab.rates.gd_rates`).

    Parameters
    ----------
    problem : BlockQuadratic
        Its extremes set the step.
    source : {"exact", "lanczos"}, default "exact"
        The spectrum source, as for :func:`block_extremes`.

    Returns
    -------
    float
        η* = 2/(λ_min + λ_max) for the extremes of ``source``.

    Raises
    ------
    ValueError
        For an unknown ``source``.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rules, spectra
    >>> rules.gd_optimal_lr(quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))) == 2 / 1001
    True
    """
    from .theory import gd_rates

    return float(gd_rates(problem, source=source).best_lr)


def theorem_lr(problem, w0, source: str = "exact") -> np.ndarray:
    """The theorem's step η = min_l C_{l,1}, C_{l,1} = min_{i∈B_l} |∇f(w₀)_i| / λ_max(H_l), for each start.

    Parameters
    ----------
    problem : BlockQuadratic
        Its theorem blocks set C_{l,1}.
    w0 : array_like
        Starts, shape (n,) or (R, n).
    source : {"exact", "lanczos"}, default "exact"
        The spectrum source, as for :func:`block_extremes`.

    Returns
    -------
    numpy.ndarray
        Host float64, shape (R,) (R = 1 for one start).

    Raises
    ------
    ValueError
        If ``source`` is unknown or ``w0`` has the wrong shape or is not finite.

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import rules, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000), rotation="none")
    >>> rules.theorem_lr(p, np.ones(9)).tolist()  # |∇f| = λ here: min_l λ_min,l / λ_max,l
    [0.3333333333333333]
    """
    from .theory import adam_constants

    return np.atleast_1d(np.asarray(adam_constants(problem, w0, source=source, exact_rates=False).eta, dtype=np.float64))


def oracle_block_lrs(problem, source: str = "exact") -> np.ndarray:
    """Blockwise GD's oracle learning rates η_l = 2/(λ_min + λ_max) of H[B_l, B_l] over the nominal blocks.

    Parameters
    ----------
    problem : BlockQuadratic
        Its nominal blocks get one step each.
    source : {"exact", "lanczos"}, default "exact"
        Where each block's extremes come from (:func:`block_extremes`).

    Returns
    -------
    numpy.ndarray
        Host float64, shape (L,).

    Raises
    ------
    ValueError
        If the spectrum source is unknown.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rules, spectra
    >>> rules.oracle_block_lrs(quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))).tolist()
    [0.5, 0.01, 0.001001001001001001]
    """
    ex = block_extremes(problem, source, "nominal")
    return 2.0 / (ex[:, 0] + ex[:, 1])


def oracle_block_steps(problem, source: str = "exact") -> np.ndarray:
    """Deprecated name of :func:`oracle_block_lrs` (these are step sizes, and "steps" counts iterations).

    Parameters
    ----------
    problem : BlockQuadratic
    source : {"exact", "lanczos"}, default "exact"

    Returns
    -------
    numpy.ndarray
        :func:`oracle_block_lrs` ``(problem, source)``, with a DeprecationWarning.
    """
    deprecated("rules.oracle_block_steps", "rules.oracle_block_lrs")
    return oracle_block_lrs(problem, source)


def resolve_lr(problem, options: dict, w0, lr=None) -> np.ndarray:
    """The step of every run: the configured learning rate, or the optimizer's named rule resolved.

    Parameters
    ----------
    problem : BlockQuadratic
        Passed to the rule.
    options : dict
        The optimizer's options: ``options["lr"]`` is None (no rule) or a rule name ("optimal", "theorem");
        the spectrum source is ``options["source"]`` (``options["spectra"]`` in results saved before the
        rename), default "exact".
    w0 : array_like
        The starts, (R, n) or (n,).
    lr : float or array_like, optional
        The per-run learning rate when there is no rule (broadcast to (R,)).

    Returns
    -------
    numpy.ndarray
        Host float64, shape (R,).

    Raises
    ------
    ValueError
        If there is no rule and no ``lr``, or the rule is unknown.

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import rules, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))
    >>> rules.resolve_lr(p, {"lr": "optimal"}, np.zeros((2, 9))).tolist() == [2 / 1001] * 2
    True
    """
    rule = options.get("lr")
    W = np.atleast_2d(np.asarray(w0, dtype=np.float64))
    R = W.shape[0]
    if rule is None:
        if lr is None:
            raise ValueError("resolve_lr: the optimizer has no step rule, so the per-run lr must be given")
        return np.broadcast_to(np.asarray(lr, dtype=np.float64), (R,)).copy()
    source = options.get("source", options.get("spectra", "exact"))
    if rule == "optimal":
        return np.full(R, gd_optimal_lr(problem, source))
    if rule == "theorem":
        return theorem_lr(problem, W, source)
    raise ValueError(f"unknown step rule {rule!r}: quadlab knows {RULES}")
