"""Extreme eigenvalues by Lanczos (per operator, per block, or of the whole H), with a safety margin."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from ._engine.choices import deprecated, one_of
from .backend import Backend
from .krylov import (
    BREAKDOWN_FACTOR,
    STATUS_CONVERGED,
    STATUS_INVARIANT,
    STATUS_MAX_STEPS,
    STATUS_NONFINITE,
    _check_int,
    _check_seed,
    _collect,
    _collect_problem,
    _frozen,
    _Group,
    _probe_block,
    _resolve_backend,
    _run_lanczos,
    _status,
    _symmetry_check,
)
from .problem import BlockQuadratic
from .spectra import EXTREMES_SOURCES

__all__ = ["BlockExtremes", "Extremes", "block_extremes", "extreme_eigenvalues", "whole_extremes"]


def _extreme_pairs(a: np.ndarray, b: np.ndarray, s: int) -> tuple[float, float, float, float]:
    """(θ_min, θ_max, r_min, r_max) of T_s with residuals r = |β_s e_sᵀ y|."""
    if s == 1:
        return a[0], a[0], abs(b[0]), abs(b[0])
    out = []
    for i in (0, s - 1):
        th, y = scipy.linalg.eigh_tridiagonal(a[:s], b[: s - 1], select="i", select_range=(i, i), check_finite=False)
        out.append((th[0], abs(b[s - 1] * y[-1, 0])))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def _converged(theta: float, r: float, tol: float) -> bool:
    return r <= tol * abs(theta)


@dataclass(frozen=True, eq=False)
class Extremes:
    """Extreme Ritz values of one operator, with residual bounds; unpacks as ``lo, hi = extreme_eigenvalues(A)``.

    ``lo`` ≥ λ_min and ``hi`` ≤ λ_max always (Ritz values lie inside the spectrum); an eigenvalue of A lies within
    ``lo_residual`` of ``lo`` and within ``hi_residual`` of ``hi`` (for a random start, generically λ_min and
    λ_max).

    Attributes
    ----------
    lo, hi : float
        θ_min and θ_max.
    lo_residual, hi_residual : float
        ‖Ay − θy‖ of their Ritz vectors.
    m_used : int
        The Lanczos length run (``steps`` is its deprecated name).
    tol : float
    status : str
        "converged" (both residuals ≤ tol·|θ|), "invariant" (the Krylov space closed: exact), "max_steps" (the
        cap ``max_m`` was reached first) or "nonfinite".
    message : str
    converged : bool
        status is "converged" or "invariant".
    kappa : float
        hi/lo (inf unless lo > 0).
    kappa_upper : float
        (hi + r_hi)/(lo − r_lo): the estimate widened by the residuals.
    """

    lo: float
    hi: float
    lo_residual: float
    hi_residual: float
    m_used: int
    tol: float
    status: str
    message: str

    def __iter__(self):
        return iter((self.lo, self.hi))

    @property
    def steps(self) -> int:
        deprecated("Extremes.steps", "m_used")
        return self.m_used

    @property
    def converged(self) -> bool:
        return self.status in (STATUS_CONVERGED, STATUS_INVARIANT)

    @property
    def kappa(self) -> float:
        return self.hi / self.lo if self.lo > 0 else math.inf

    @property
    def kappa_upper(self) -> float:
        lo = self.lo - self.lo_residual
        return (self.hi + self.hi_residual) / lo if lo > 0 else math.inf


def _extremes_groups(be: Backend, names, groups, L: int, tol: float, max_m, seed: int, reorth=True):
    seeds = np.random.SeedSequence(seed).spawn(L)
    out: list = [None] * L
    for g in groups:
        cap = g.size if max_m is None else min(_check_int(max_m, "max_m (the most Lanczos steps)"), g.size)
        V0 = np.stack([_probe_block(seeds[l], 1, g.size) for l in g.indices])
        last_check = np.zeros(g.k, dtype=np.int64)

        def stop(alpha, beta, steps, active, last_check=last_check):
            done = np.zeros_like(active)
            for b in np.flatnonzero(active[:, 0]):
                s = int(steps[b, 0])
                # Checks cost O(s) on the host; spacing them ~3% apart wastes at most that many matvecs.
                if s - last_check[b] < max(1, s // 32):
                    continue
                last_check[b] = s
                tl, th, rl, rh = _extreme_pairs(alpha[b, 0], beta[b, 0], s)
                done[b, 0] = _converged(tl, rl, tol) and _converged(th, rh, tol)
            return done

        run = _run_lanczos(be, g.apply, be.asarray(V0), cap, reorth=reorth, breakdown_factor=BREAKDOWN_FACTOR,
                           stop=stop)
        for j, l in enumerate(g.indices):
            s = int(run.steps[j, 0])
            st, msg = _status(run, j, names[l])
            if s == 0:
                out[l] = Extremes(math.nan, math.nan, math.nan, math.nan, 0, tol, STATUS_NONFINITE, msg)
                continue
            tl, th, rl, rh = _extreme_pairs(run.alpha[j, 0], run.beta[j, 0], s)
            if st == STATUS_NONFINITE:
                pass
            elif run.broke[j, 0]:
                st = STATUS_INVARIANT
            elif _converged(tl, rl, tol) and _converged(th, rh, tol):
                st, msg = STATUS_CONVERGED, f"block {names[l]!r}: both extremes converged in {s} steps"
            else:
                st = STATUS_MAX_STEPS
                msg = (f"block {names[l]!r}: not converged after {s} steps (residuals {rl:.3g} at {tl:.6g}, {rh:.3g} "
                       f"at {th:.6g}; tol {tol:g} relative); raise max_m or loosen tol")
            out[l] = Extremes(float(tl), float(th), float(rl), float(rh), s, tol, st, msg)
    return out


def extreme_eigenvalues(op, tol: float = 1e-10, *, n=None, xp=None, seed: int = 0, max_m: int | None = None,
                        check_symmetric: bool = False, max_steps: int | None = None) -> Extremes:
    """λ_min and λ_max of one symmetric operator by Lanczos with full reorthogonalisation from one random start.

    Stops when both extreme Ritz pairs have residual ‖Ay − θy‖ ≤ tol·|θ| (ARPACK's criterion, so ``tol`` means
    what it means for ``scipy.sparse.linalg.eigsh``), when the Krylov space becomes invariant (exact), or after
    ``max_m`` steps.  An eigenvalue at 0 can only converge by exhaustion, since the test is relative.

    Parameters
    ----------
    op : array_like, LinearOperator, sparse matrix, callable or BlockQuadratic
        As for :func:`quadlab.krylov.lanczos`; a BlockQuadratic means the whole H (see :func:`block_extremes`).
    tol : float, default 1e-10
        Relative residual tolerance, positive and finite.
    n : int, keyword-only, optional
        The size of a callable operator.
    xp : str or module, keyword-only, optional
        The operator's backend.
    seed : int, keyword-only, default 0
        Seed of the start vector.
    max_m : int, keyword-only, optional
        The most Lanczos steps (default: the dimension, where Lanczos is exact).
    check_symmetric : bool, keyword-only, default False
        Probe the symmetry first (as :func:`quadlab.slq.slq` does).
    max_steps : int, keyword-only, optional
        Deprecated name of ``max_m``.

    Returns
    -------
    Extremes
        θ_min, θ_max and their residuals; unpacks to (lo, hi).

    Raises
    ------
    ValueError
        If ``tol`` is not positive and finite, the seed is negative, ``max_m`` < 1, ``op`` is a dict or not an
        operator quadlab can use, or the symmetry probe fails.

    Examples
    --------
    >>> import numpy as np
    >>> from quadlab import extremes
    >>> lo, hi = extremes.extreme_eigenvalues(np.diag(np.linspace(1.0, 100.0, 50)))
    >>> round(lo, 8), round(hi, 8)
    (1.0, 100.0)
    """
    if max_steps is not None:
        deprecated("extreme_eigenvalues(max_steps=...)", "max_m=...")
        max_m = max_steps
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be positive and finite, got {tol!r}")
    seed = _check_seed(seed)
    if isinstance(op, Mapping):
        raise ValueError("extreme_eigenvalues() takes one operator; use block_extremes() for several blocks")
    be = _resolve_backend(op, xp)
    if isinstance(op, BlockQuadratic):
        problem = op
        names = ["H"]
        groups = [_Group([0], problem.n, lambda X: be.xp.expand_dims(problem.hvp(X[0, ...]), axis=0))]
    else:
        names, _, groups = _collect(op, n, be)
    if check_symmetric:
        _symmetry_check(be, groups[0], names, np.random.SeedSequence(seed).spawn(2)[1:], None)
    return _extremes_groups(be, names, groups, 1, float(tol), max_m, seed)[0]


@dataclass(frozen=True, eq=False)
class BlockExtremes:
    """Per-block (λ_min, λ_max) estimates; unpacks as ``lo, hi = block_extremes(problem)``.

    Attributes
    ----------
    names : tuple of str
    lo, hi : numpy.ndarray
        (L,) float64 to use (for source="lanczos" already widened by the residuals and the margin).
    raw_lo, raw_hi : numpy.ndarray
        The Ritz values themselves (equal to lo, hi for source="exact").
    residual_lo, residual_hi : numpy.ndarray
        Residual norms (0 for exact).
    m_used : numpy.ndarray
        Lanczos length per block (0 for exact; ``steps`` is its deprecated name).
    source : str
        The spectrum source, "exact" or "lanczos".
    margin : float
    status : tuple of str
    kappa : numpy.ndarray
        κ_l = hi/lo per block (inf where lo ≤ 0).
    """

    names: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    raw_lo: np.ndarray
    raw_hi: np.ndarray
    residual_lo: np.ndarray
    residual_hi: np.ndarray
    m_used: np.ndarray
    source: str
    margin: float
    status: tuple[str, ...]

    def __iter__(self):
        return iter((self.lo, self.hi))

    @property
    def steps(self) -> np.ndarray:
        deprecated("BlockExtremes.steps", "m_used")
        return self.m_used

    @property
    def kappa(self) -> np.ndarray:
        """κ_l = hi/lo per block (inf where lo ≤ 0)."""
        with np.errstate(divide="ignore"):
            return np.where(self.lo > 0, self.hi / np.where(self.lo > 0, self.lo, 1.0), np.inf)


def _widen(raw_lo, raw_hi, r_lo, r_hi, margin: float):
    """Ritz values widened by their residuals and the relative margin (see :func:`block_extremes`)."""
    hi = (raw_hi + r_hi) * (1 + margin)
    hi = np.where(hi >= 0, hi, (raw_hi + r_hi) * (1 - margin))
    lo0 = raw_lo - r_lo
    lo = np.where(lo0 > 0, lo0 * (1 - margin), lo0 - margin * np.abs(hi))
    return lo, hi


def whole_extremes(problem: BlockQuadratic, margin: float = 0.01, *, tol: float = 1e-8, seed: int = 0,
                   max_m: int | None = None, max_steps: int | None = None) -> tuple[float, float]:
    """(λ_min(H), λ_max(H)) of the whole H by one Lanczos run, widened exactly as :func:`block_extremes` widens
    each block's.

    Parameters
    ----------
    problem : BlockQuadratic
    margin : float, default 0.01
        Relative widening, in [0, 1).
    tol, seed, max_m : keyword-only
        As for :func:`extreme_eigenvalues` (tol default 1e-8).
    max_steps : int, keyword-only, optional
        Deprecated name of ``max_m``.

    Returns
    -------
    tuple of float
        (lo, hi) with lo ≤ λ_min(H) and hi ≥ λ_max(H) once the Ritz pairs have converged.

    Raises
    ------
    ValueError
        If ``margin`` ∉ [0, 1) or as for :func:`extreme_eigenvalues`.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import extremes, spectra
    >>> lo, hi = extremes.whole_extremes(quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000)))
    >>> bool(0.98 < lo <= 1.0 and 1000.0 <= hi < 1011.0)
    True
    """
    if max_steps is not None:
        deprecated("whole_extremes(max_steps=...)", "max_m=...")
        max_m = max_steps
    _check_margin(margin)
    e = extreme_eigenvalues(problem, tol, seed=seed, max_m=max_m)
    lo, hi = _widen(np.array(e.lo), np.array(e.hi), np.array(e.lo_residual), np.array(e.hi_residual), margin)
    return float(lo), float(hi)


def block_extremes(problem: BlockQuadratic, source: str = "exact", margin: float = 0.01, *, tol: float = 1e-8,
                   seed: int = 0, max_m: int | None = None, max_steps: int | None = None) -> BlockExtremes:
    """Per-block extreme eigenvalues of a BlockQuadratic, for step sizes and theory constants.

    source="exact": min/max of each block's known eigenvalues (for rotation="global", where a nominal block is
    the mixed diagonal block H[s, s], ``eigvalsh`` of that block); ``margin`` is not applied.

    source="lanczos": one deterministic Lanczos run per block (seeded start; equal-size blocks batched), stopped
    when both extreme residuals are ≤ tol·|θ|.  Ritz values satisfy θ_max ≤ λ_max and θ_min ≥ λ_min, so the raw
    estimates err on the side that makes a step 2/(λ_min + λ_max) too large.  The returned values are widened:

        hi = (θ_max + r_max)·(1 + margin),   lo = (θ_min − r_min)·(1 − margin)   (if θ_min − r_min > 0,
                                                                                  else θ_min − r_min − margin·|hi|)

    where r are the residual norms (an eigenvalue lies within r of θ).  With the default margin of 1 % the GD step
    2/(lo + hi) is at most the exact optimal step and η·λ_max < 2 holds whenever the extreme Ritz pairs have
    converged to the extreme eigenvalues; a 1 % larger λ_max costs GD about 1 % in rate.

    Parameters
    ----------
    problem : BlockQuadratic
    source : {"exact", "lanczos"}, default "exact"
        The spectrum source.
    margin : float, default 0.01
        Relative widening, in [0, 1).
    tol : float, keyword-only, default 1e-8
    seed : int, keyword-only, default 0
    max_m : int, keyword-only, optional
        The most Lanczos steps per block (default: the block's size).
    max_steps : int, keyword-only, optional
        Deprecated name of ``max_m``.

    Returns
    -------
    BlockExtremes
        (lo, hi) per block, widened for ``source="lanczos"``; unpacks to (lo, hi).

    Raises
    ------
    ValueError
        If ``problem`` is not a BlockQuadratic, ``source`` is unknown, ``margin`` ∉ [0, 1), ``tol`` is not positive
        and finite, the seed is negative or ``max_m`` < 1.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import extremes, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))
    >>> ex = extremes.block_extremes(p, "lanczos")
    >>> bool((ex.hi >= [3.0, 101.0, 1000.0]).all() and (ex.lo <= [1.0, 99.0, 998.0]).all()), ex.m_used.tolist()
    (True, [3, 3, 3])
    """
    if max_steps is not None:
        deprecated("block_extremes(max_steps=...)", "max_m=...")
        max_m = max_steps
    if not isinstance(problem, BlockQuadratic):
        raise ValueError(f"block_extremes needs a BlockQuadratic, got {type(problem).__name__}")
    one_of("source", source, EXTREMES_SOURCES)
    _check_margin(margin)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be positive and finite, got {tol!r}")
    names = tuple(problem.block_names)
    L = len(names)
    if source == "exact":
        from .rules import block_extremes as exact_extremes  # the one definition (quadlab.rules)

        ex = exact_extremes(problem, "exact", "nominal")
        lo, hi = ex[:, 0], ex[:, 1]
        z = np.zeros(L)
        return BlockExtremes(names, _frozen(lo), _frozen(hi), _frozen(lo), _frozen(hi), _frozen(z), _frozen(z),
                             _frozen(np.zeros(L, dtype=np.int64)), "exact", 0.0, ("exact",) * L)
    be = problem.backend
    names_l, _, groups = _collect_problem(problem)
    ex = _extremes_groups(be, names_l, groups, L, float(tol), max_m, _check_seed(seed))
    raw_lo = np.array([e.lo for e in ex])
    raw_hi = np.array([e.hi for e in ex])
    r_lo = np.array([e.lo_residual for e in ex])
    r_hi = np.array([e.hi_residual for e in ex])
    lo, hi = _widen(raw_lo, raw_hi, r_lo, r_hi, margin)
    return BlockExtremes(names, _frozen(lo), _frozen(hi), _frozen(raw_lo), _frozen(raw_hi), _frozen(r_lo),
                         _frozen(r_hi), _frozen(np.array([e.m_used for e in ex])), "lanczos", float(margin),
                         tuple(e.status for e in ex))


def _check_margin(margin) -> None:
    """The relative widening must be a real number in [0, 1) (a string or NaN gets this message, not numpy's)."""
    ok = isinstance(margin, (int, float, np.integer, np.floating)) and not isinstance(margin, bool)
    if not (ok and np.isfinite(margin) and 0 <= margin < 1):
        raise ValueError(f"margin must be a number in [0, 1), got {margin!r}")
