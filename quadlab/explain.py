"""Competing explanations of Adam's edge over GD, each as a quantity computed exactly on a BlockQuadratic and
the GD/Adam step ratio it predicts (assumptions and derivations: docs/THEORY.md §13).

Each answers, for one instance, how many times fewer steps Adam needs than GD; the study ``quadlab
explanations`` holds the predictions against tuned runs on instances designed to separate them.

Block heterogeneity (this paper; :func:`heterogeneity`)
    H block diagonal, Adam in its theory form (β1 = 0, β2 = 1, ε = 0, D = diag|∇f(w_0)|): the theorem's gap
    factor max_l (1 − 1/(r̃κ_l))² against GD's best ((κ − 1)/(κ + 1))², a log ratio ≈ κ/(2 r̃·max_l κ_l); all
    of H is one block (κ_1 = κ, a loss) when H is not block diagonal.  JS⁰ predicts an order, not a ratio.
ℓ∞-geometry (Xie, Mohamadi and Li, ICLR 2025; :func:`linf_geometry`)
    Adam (β1 = 0) needs T ∝ ‖H‖_{1,1}·Δ/ε² steps to ‖∇f‖_1 ≤ ε, GD T ∝ n·λ_max·Δ/ε² (its ℓ2 bound carried by
    ‖g‖_1 ≤ √n‖g‖_2): the ratio n·λ_max/‖H‖_{1,1}; for blockwise Adam (Adam-mini; one block: AdaSGD)
    n·λ_max/Σ_{b,b'} √(d_b d_b')‖H_{bb'}‖_2.  Ratios of upper bounds, blind to λ_min and κ; the constants
    change under rotations of H while GD's run does not.
Gradient noise and batch size (Zhang et al., NeurIPS 2019, the noisy quadratic model; :func:`noise`)
    Cov ξ = s·H/B; Adam modelled as GD preconditioned by P = H^{−p} (p = ½: a second moment that is all
    noise); the ratio of the two methods' tuned steps in the NQM's closed form (:mod:`quadlab.nqm`).  Only
    the eigenvalues enter.  :func:`critical_batches`: where a larger batch stops saving steps.
Sign descent (Kunstner et al., ICLR 2023; :func:`sign_descent`)
    With β1 = β2 and gradients that keep their sign, m̂/√v̂ ≈ sign(g): Adam is momentum sign descent, and the
    ratio is GD's steps over sign descent's, both measured runs (sign descent has no linear closed form).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields

import numpy as np

from . import heterogeneity as _het
from . import theory
from .backend import check_memory

__all__ = [
    "Heterogeneity",
    "LinfGeometry",
    "NoisePrediction",
    "SignDescent",
    "blockwise_norm11",
    "critical_batches",
    "diagonal_block_spectra",
    "heterogeneity",
    "linf_geometry",
    "linf_smoothness",
    "noise",
    "norm11",
    "partition_sizes",
    "runner_starts",
    "sign_descent",
]

#: blocks up to this size get the exact ℓ∞ constant max_s sᵀH_l s by enumerating the 2^(d−1) sign vectors
LINF_MAX_BLOCK = 16


# -- the pieces of H as stored ---------------------------------------------------------------------
def partition_sizes(problem, partition=None) -> tuple[int, ...]:
    """The block sizes of ``partition`` over the n coordinates of ``problem``, in order.

    Parameters
    ----------
    problem : BlockQuadratic
    partition : None, "coordinates" or sequence of int
        The problem's nominal blocks (None), n singletons, or positive integer sizes that sum to n.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        For sizes that are not positive integers or do not sum to n.
    """
    if partition is None:
        return tuple(problem.block_sizes)
    if isinstance(partition, str):
        if partition != "coordinates":
            raise ValueError(f"partition must be None, 'coordinates' or a list of block sizes, got {partition!r}")
        return (1,) * problem.n
    try:
        sizes = tuple(int(d) for d in partition)
    except (TypeError, ValueError):
        raise ValueError(f"partition must be a list of positive integer block sizes, got {partition!r}") from None
    if any(d != float(x) for d, x in zip(sizes, partition)) or not sizes or min(sizes) < 1:
        raise ValueError(f"partition must be a non-empty list of positive integer block sizes, got {partition!r}")
    if sum(sizes) != problem.n:
        raise ValueError(f"the partition's block sizes sum to {sum(sizes)}, but the problem has n = {problem.n} "
                         "coordinates")
    return sizes


def _offsets(sizes) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _aligned(problem, sizes) -> bool:
    """Whether H is stored block diagonal over exactly these blocks (so off-diagonal blocks are zero)."""
    return problem.is_block_diagonal and tuple(sizes) == tuple(problem.block_sizes)


def _dense_host(problem) -> np.ndarray:
    check_memory(3 * 8 * problem.n * problem.n, f"a dense copy of H (n = {problem.n})",
                 "use the nominal partition of a block-diagonal problem, or a smaller n")
    return np.asarray(problem.backend.to_numpy(problem.dense()), dtype=np.float64)


def norm11(problem) -> float:
    """‖H‖_{1,1} = Σ_ij |H_ij| of H as stored (host float64 sums of the stored entries).

    Rotation "none": Σ_i λ_i = trace H.  Otherwise the sum of |entries| of every stored block (the one n×n
    block for a global rotation); the zero blocks off the diagonal add nothing.

    Parameters
    ----------
    problem : BlockQuadratic

    Returns
    -------
    float

    Examples
    --------
    H = [[5, 2], [2, 2]] (eigenvalues 1, 6): trace 7 ≤ ‖H‖_{∞→1} = max_s sᵀHs = 11 (s = (1, 1)) ≤ ‖H‖_{1,1},
    and as one block :func:`blockwise_norm11` is n·λ_max = 12:

    >>> import quadlab
    >>> from quadlab import explain
    >>> P = quadlab.BlockQuadratic.from_blocks([[[5.0, 2.0], [2.0, 2.0]]])
    >>> explain.norm11(P), explain.linf_smoothness(P), round(explain.blockwise_norm11(P), 9)
    (11.0, 11.0, 12.0)
    """
    b = problem.backend
    if problem.groups == ():  # stored as its diagonal
        return float(np.abs(np.asarray(b.to_numpy(problem.diagonal()), dtype=np.float64)).sum())
    return float(sum(np.abs(np.asarray(b.to_numpy(g.H), dtype=np.float64)).sum() for g in problem.groups))


def blockwise_norm11(problem, partition=None) -> float:
    """The blockwise constant Σ_{b,b'} √(d_b d_b')·‖H_{bb'}‖_2 over the blocks of ``partition``
    (:func:`partition_sizes`; default the nominal blocks).

    For singleton blocks it is ‖H‖_{1,1}; for one block, n·λ_max(H); for H block diagonal over the
    partition, Σ_b d_b·λ_max(H_bb).  In that last case the exact block spectra are used; otherwise the
    spectral norms of the dense blocks of H as stored (one SVD per pair of blocks).

    Parameters
    ----------
    problem : BlockQuadratic
    partition : the blocks b, as for :func:`partition_sizes`

    Returns
    -------
    float
    """
    sizes = partition_sizes(problem, partition)
    if _aligned(problem, sizes):
        ex = theory.block_extremes(problem)  # the theorem's blocks are the nominal ones here
        return float(np.dot(np.asarray(sizes, dtype=np.float64), ex[:, 1]))
    if all(d == 1 for d in sizes):
        return norm11(problem)
    H = _dense_host(problem)
    o = _offsets(sizes)
    total = 0.0
    for i, j in itertools.product(range(len(sizes)), repeat=2):
        blk = H[o[i]:o[i + 1], o[j]:o[j + 1]]
        if blk.any():
            total += math.sqrt(sizes[i] * sizes[j]) * float(np.linalg.norm(blk, 2))
    return total


def _cube_max(A: np.ndarray) -> float:
    """max over s ∈ {±1}^d of sᵀAs for a symmetric PSD A (s and −s give the same value, so s_0 = 1)."""
    d = A.shape[0]
    if d == 1:
        return float(A[0, 0])
    best = -math.inf
    # sign vectors in chunks of 4096 keep the work arrays small for d up to 16
    codes = np.arange(2 ** (d - 1), dtype=np.int64)
    for c0 in range(0, codes.size, 4096):
        c = codes[c0:c0 + 4096]
        bits = (c[:, None] >> np.arange(d - 1)[None, :]) & 1
        S = np.concatenate([np.ones((c.size, 1)), 1.0 - 2.0 * bits], axis=1)
        best = max(best, float(np.einsum("ri,ij,rj->r", S, A, S).max()))
    return best


def linf_smoothness(problem, *, max_block: int = LINF_MAX_BLOCK) -> float | None:
    """‖H‖_{∞→1} = max_{‖x‖_∞ ≤ 1} ‖Hx‖_1 = max_{s ∈ {±1}^n} sᵀHs (H ⪰ 0), the exact smoothness constant
    of f with respect to ‖·‖_∞, or None when a stored block is larger than ``max_block``.

    H block diagonal: the maximum separates, Σ_l max_s sᵀH_l s, each by enumerating 2^(d_l − 1) sign vectors
    (NP-hard in general).  Rotation "none": trace H.  trace H ≤ ‖H‖_{∞→1} ≤ ‖H‖_{1,1} (:func:`norm11`'s example).

    Parameters
    ----------
    problem : BlockQuadratic
    max_block : int in [1, 24]

    Returns
    -------
    float or None
    """
    if isinstance(max_block, bool) or int(max_block) != max_block or not 1 <= max_block <= 24:
        raise ValueError(f"max_block must be an integer in [1, 24] (2^(d-1) sign vectors per block), got {max_block!r}")
    b = problem.backend
    if problem.groups == ():
        return norm11(problem)
    if max(g.size for g in problem.groups) > max_block:
        return None
    total = 0.0
    for g in problem.groups:
        Hg = np.asarray(b.to_numpy(g.H), dtype=np.float64)
        total += sum(_cube_max(Hg[j]) for j in range(g.k))
    return total


def diagonal_block_spectra(problem, partition=None) -> list[np.ndarray]:
    """The eigenvalues of each diagonal block H[B_b, B_b] of H as stored, for the blocks of ``partition``.

    When H is block diagonal over exactly these blocks they are the exact block spectra; otherwise (a global
    rotation, another partition) ``eigvalsh`` of each dense diagonal block: what a blockwise measurement of
    this H would see.

    Parameters
    ----------
    problem : BlockQuadratic
    partition : None, "coordinates" or sequence of int
        The blocks B_b (:func:`partition_sizes`).

    Returns
    -------
    list of numpy.ndarray
        One host float64 array of eigenvalues per block.
    """
    sizes = partition_sizes(problem, partition)
    if _aligned(problem, sizes) and problem.rotation != "given":
        return [np.array(blk) for blk in problem.spectrum.blocks]
    if problem.groups == ():
        lam = problem.eigenvalues
        o = _offsets(sizes)
        return [np.sort(lam[o[i]:o[i + 1]]) for i in range(len(sizes))]
    if _aligned(problem, sizes):
        return [np.linalg.eigvalsh(np.asarray(problem.backend.to_numpy(problem.block(l)), dtype=np.float64))
                for l in range(len(sizes))]
    H = _dense_host(problem)
    o = _offsets(sizes)
    return [np.linalg.eigvalsh(H[o[i]:o[i + 1], o[i]:o[i + 1]]) for i in range(len(sizes))]


def runner_starts(problem, seeds=(0,)) -> np.ndarray:
    """The starts ``quadlab.run`` draws for ``seeds``: w_0 = w* + ξ, ξ ~ N(0, I) from default_rng(seed).

    Parameters
    ----------
    problem : BlockQuadratic
    seeds : sequence of non-negative int

    Returns
    -------
    numpy.ndarray of shape (S, n)
    """
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or int(s) != s or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    return np.stack([problem.optimum_host + np.random.default_rng(int(s)).standard_normal(problem.n) for s in seeds])


# -- block heterogeneity ---------------------------------------------------------------------------------
class _Summary:
    _omit: tuple = ()  # fields left out of as_dict (a class attribute, not a dataclass field)

    def as_dict(self) -> dict:
        """The prediction as a JSON-ready dict of floats, ints, bools and None (per-start arrays summarised).

        Returns
        -------
        dict
        """
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._omit}


@dataclass(frozen=True)
class Heterogeneity(_Summary):
    """The paper's explanation on one instance, over the starts of ``seeds`` (medians over starts).

    Attributes
    ----------
    kappa, x, favours_adam : float
        κ; the median over starts of r̃·max_l κ_l, and the share of starts where it is ≤ κ.
    block_kappas, r_tilde : numpy.ndarray
        κ_l of the theorem's blocks (the nominal ones when H is block diagonal, else all of H); r̃ per start.
    js0 : float or None
        The mean pairwise JS divergence (nats) of the diagonal blocks' spectra over ``partition``; None for one.
    predicted_speedup, predicted_speedup_exact : float
        The median over starts of ln(bound)/ln(rate_GD*), the theorem's bound against GD's best rate; the
        same with the theory form's exact rate at its best constant step for each start's D.
    block_diagonal : bool
        The theorem's assumption.
    """

    kappa: float
    block_kappas: np.ndarray
    r_tilde: np.ndarray
    x: float
    favours_adam: float
    js0: float | None
    predicted_speedup: float
    predicted_speedup_exact: float
    block_diagonal: bool

    def as_dict(self) -> dict:
        return {"kappa": self.kappa, "max_block_kappa": float(self.block_kappas.max()),
                "r_tilde_median": float(np.median(self.r_tilde)), "r_tilde_max_block_kappa": self.x,
                "favours_adam": self.favours_adam, "js0": self.js0, "predicted_speedup": self.predicted_speedup,
                "predicted_speedup_exact": self.predicted_speedup_exact, "block_diagonal": self.block_diagonal}


def heterogeneity(problem, seeds=(0,), *, starts=None, partition=None) -> Heterogeneity:
    """The block-heterogeneity prediction (module docstring) for the runner's starts of ``seeds`` (or the
    given ``starts``, (S, n)).

    Parameters
    ----------
    problem : BlockQuadratic
    seeds : the start seeds (as :func:`quadlab.run` draws them); ignored when ``starts`` is given.
    starts : optional host array (S, n) of starts.
    partition : the blocks JS⁰ compares (:func:`partition_sizes`); default the nominal blocks.

    Returns
    -------
    Heterogeneity

    Raises
    ------
    ValueError
        A start whose gradient has a zero entry (the theory form divides by |∇f(w_0)|), κ = 1, or a bad
        partition.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import explain, spectra
    >>> h = explain.heterogeneity(quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000)))
    >>> bool(h.predicted_speedup > 1)
    True
    """
    W = runner_starts(problem, seeds) if starts is None else np.atleast_2d(np.asarray(starts, dtype=np.float64))
    c = theory.adam_constants(problem, W)
    gd = theory.gd_rates(problem)
    if not 0 < gd.best_rate < 1:
        raise ValueError(f"GD's best rate is {gd.best_rate:g}: a speed-up needs κ > 1")
    bound = np.atleast_1d(np.asarray(c.bound, dtype=np.float64))
    best = np.atleast_1d(np.asarray(c.best_rate, dtype=np.float64))
    # a bound of exactly 0 (one eigenvalue, r̃ = 1) converges in one step: an unbounded speed-up
    sp = np.where(bound > 0, np.log(np.where(bound > 0, bound, 0.5)) / math.log(gd.best_rate), np.inf)
    spx = np.where(best > 0, np.log(np.where(best > 0, best, 0.5)) / math.log(gd.best_rate), np.inf)
    r = np.atleast_1d(np.asarray(c.r_tilde, dtype=np.float64))
    kl = np.asarray(c.block_kappas, dtype=np.float64)
    x = r * kl.max()
    spectra_ = diagonal_block_spectra(problem, partition)
    js = float(_het.js0(spectra_)) if len(spectra_) >= 2 else None
    return Heterogeneity(kappa=float(c.kappa), block_kappas=kl, r_tilde=r, x=float(np.median(x)),
                         favours_adam=float(np.mean(x <= c.kappa)), js0=js,
                         predicted_speedup=float(np.median(sp)), predicted_speedup_exact=float(np.median(spx)),
                         block_diagonal=bool(problem.is_block_diagonal))


# -- ℓ∞-geometry -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinfGeometry(_Summary):
    """The ℓ∞-geometry explanation on one instance (module docstring).

    Attributes
    ----------
    n, lambda_max, trace, gd_constant
        n, λ_max, trace H and n·λ_max.
    norm11, linf, blockwise, partition
        ‖H‖_{1,1}; ‖H‖_{∞→1} (None where a block is too large to enumerate); Σ_{b,b'} √(d_b d_b')‖H_{bb'}‖_2
        over the blocks of ``partition``, a tuple of sizes.
    predicted_speedup, predicted_speedup_blockwise : float
        n·λ_max/‖H‖_{1,1} (Adam β1 = 0 against GD) and n·λ_max/blockwise (blockwise Adam against GD).
    rotation_gain : float
        ‖H‖_{1,1}/trace H ≥ 1: how far the rotation has moved H from its cheapest (diagonal) arrangement.
    """

    n: int
    lambda_max: float
    trace: float
    norm11: float
    linf: float | None
    blockwise: float
    partition: tuple[int, ...]
    gd_constant: float
    predicted_speedup: float
    predicted_speedup_blockwise: float
    rotation_gain: float
    _omit = ("partition",)


def linf_geometry(problem, *, partition=None, max_block: int = LINF_MAX_BLOCK) -> LinfGeometry:
    """The ℓ∞-geometry constants of H as stored and the GD/Adam ratio they predict (module docstring).

    Parameters
    ----------
    problem : BlockQuadratic
    partition : the blocks of blockwise Adam (:func:`partition_sizes`); default the nominal blocks.
    max_block : blocks up to this size also get the exact ‖H‖_{∞→1} (:func:`linf_smoothness`).

    Returns
    -------
    LinfGeometry

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import explain, spectra
    >>> g = explain.linf_geometry(quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), rotation="none"))
    >>> g.norm11 == g.trace
    True
    """
    sizes = partition_sizes(problem, partition)
    lam = problem.eigenvalues
    n, lmax, tr = problem.n, float(lam.max()), float(lam.sum())
    n11 = norm11(problem)
    blk = blockwise_norm11(problem, sizes)
    gd_c = n * lmax
    return LinfGeometry(n=n, lambda_max=lmax, trace=tr, norm11=n11, linf=linf_smoothness(problem, max_block=max_block),
                        blockwise=blk, partition=sizes, gd_constant=gd_c, predicted_speedup=gd_c / n11,
                        predicted_speedup_blockwise=gd_c / blk, rotation_gain=n11 / tr)


# -- sign descent --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignDescent(_Summary):
    """The sign-descent explanation on one instance.

    Attributes
    ----------
    gd_steps, sign_steps, adam_steps
        The measured steps (adam_steps None when not given).
    predicted_speedup, observed_speedup, log_gap
        GD's steps over sign descent's (the GD/Adam ratio if Adam behaves like sign descent) and over Adam's,
        and ln(Adam's / sign descent's steps), 0 when they agree (the last two None without Adam).
    """

    gd_steps: float
    sign_steps: float
    adam_steps: float | None
    predicted_speedup: float
    observed_speedup: float | None
    log_gap: float | None


def _steps(value, what: str) -> float:
    v = float(value)
    if not (v >= 1):  # NaN fails too
        raise ValueError(f"{what} must be a step count >= 1 (math.inf for a run that never reached the tolerance), "
                         f"got {value!r}")
    return v


def sign_descent(gd_steps, sign_steps, adam_steps=None) -> SignDescent:
    """The sign-descent prediction from measured step counts on one instance (module docstring).

    Parameters
    ----------
    gd_steps, sign_steps, adam_steps : float
        Steps to the tolerance (≥ 1) of GD, (momentum) sign descent and Adam (optional); ``math.inf`` for a
        run that never reached it, which makes a ratio 0 or inf rather than an error.

    Returns
    -------
    SignDescent

    Examples
    --------
    >>> from quadlab import explain
    >>> s = explain.sign_descent(1000, 100, adam_steps=125)
    >>> s.predicted_speedup, s.observed_speedup, round(s.log_gap, 6)   # 1000/100, 1000/125, ln(1.25)
    (10.0, 8.0, 0.223144)
    """
    g, s = _steps(gd_steps, "gd_steps"), _steps(sign_steps, "sign_steps")
    a = None if adam_steps is None else _steps(adam_steps, "adam_steps")

    def ratio(p, q):
        return math.nan if math.isinf(p) and math.isinf(q) else (math.inf if math.isinf(p) else p / q)

    obs = None if a is None else ratio(g, a)
    gap = None if a is None or (math.isinf(a) and math.isinf(s)) else (
        math.inf if math.isinf(a) else -math.inf if math.isinf(s) else math.log(a / s))
    return SignDescent(gd_steps=g, sign_steps=s, adam_steps=a, predicted_speedup=ratio(g, s), observed_speedup=obs,
                       log_gap=gap)


# -- gradient noise and batch size -------------------------------------------------------------------------
@dataclass(frozen=True)
class NoisePrediction(_Summary):
    """The noisy-quadratic-model explanation on one spectrum at batch size ``batch`` (None: exact gradients).

    Attributes
    ----------
    batch, scale, target, power
        The arguments of :func:`noise`.
    gd_steps, adam_steps : int
        The NQM's tuned steps (:func:`quadlab.nqm.tuned_steps`) of GD and of GD preconditioned by
        P = H^{−power} to bring the expected loss to ``target``·(its start value); −1 where the cap is short.
    predicted_speedup : float
        gd_steps/adam_steps (inf if only Adam reaches the target, 0 if only GD, NaN if neither).
    """

    batch: float | None
    scale: float
    target: float
    power: float
    gd_steps: int
    adam_steps: int
    predicted_speedup: float


def noise(problem, batch=None, *, scale: float = 1.0, target: float = 1e-8, power: float = 0.5,
          max_steps: int = 1_000_000, points: int = 40) -> NoisePrediction:
    """The NQM's GD/Adam ratio at batch size ``batch`` (module docstring).

    Only the eigenvalues of H enter: the NQM's "Adam" H^{−power} commutes with H, so the prediction is the
    same under every rotation of one spectrum (the point on which it parts from the ℓ∞ explanation).
    power = ½ is the preconditioner of a second moment that is all noise: v_i ≈ Var ξ_i ∝ λ_i/B for the NQM.

    Parameters
    ----------
    problem : BlockQuadratic (or a 1-D array of eigenvalues)
    batch : the batch size B (None: exact gradients, B → ∞)
    scale : the NQM's scale s in Cov ξ = s·H/B
    target : the fraction of the initial expected loss to reach
    power : the NQM's Adam is GD preconditioned by H^{−power}, 0 ≤ power ≤ 1
    max_steps, points : the closed-form search's cap and lr grid (:func:`quadlab.nqm.tuned_steps`)

    Returns
    -------
    NoisePrediction

    Raises
    ------
    ValueError
        For power outside [0, 1], and as :func:`quadlab.nqm.tuned_steps`.
    """
    from . import nqm
    from .noise import NQM

    power = float(power)
    if not 0 <= power <= 1:
        raise ValueError(f"power must lie in [0, 1] (P = H^-power), got {power!r}")
    lam = np.asarray(getattr(problem, "eigenvalues", problem), dtype=np.float64)
    model = None if batch is None else NQM(batch=batch, scale=scale)
    kw = dict(noise=model, points=points, max_steps=max_steps)
    g = nqm.tuned_steps(lam, target, method="gd", **kw).steps
    a = nqm.tuned_steps(lam, target, method="gd", precond=lam ** -power, **kw).steps
    if g < 0 and a < 0:
        ratio = math.nan
    elif a < 0:
        ratio = 0.0
    elif g < 0:
        ratio = math.inf
    else:
        ratio = g / max(a, 1)
    return NoisePrediction(batch=None if batch is None else float(batch), scale=float(scale), target=float(target),
                           power=power, gd_steps=int(g), adam_steps=int(a), predicted_speedup=float(ratio))


def critical_batches(problem, *, scale: float = 1.0, target: float = 1e-8, power: float = 0.5, batches=None,
                     delta: float = 1.0, points: int = 20) -> dict:
    """The NQM's critical batch sizes (:func:`quadlab.nqm.critical_batch`) of GD and of its model of Adam, GD
    preconditioned by H^{−power}, on the eigenvalues of ``problem``: {"gd": CriticalBatch, "adam": ...}.

    Parameters
    ----------
    problem, scale, target, power, points
        As for :func:`noise`.
    batches : sequence of float, default 2^k for k = 0 … 16
    delta : float
        δ = 1 is McCandlish et al.'s B_crit (tuned steps twice the exact-gradient ones).

    Returns
    -------
    dict
    """
    from . import nqm

    power = float(power)
    if not 0 <= power <= 1:
        raise ValueError(f"power must lie in [0, 1] (P = H^-power), got {power!r}")
    lam = np.asarray(getattr(problem, "eigenvalues", problem), dtype=np.float64)
    b = 2.0 ** np.arange(0, 17) if batches is None else batches
    kw = dict(batches=b, scale=scale, delta=delta, points=points, refine=1)
    return {"gd": nqm.critical_batch(lam, target, **kw),
            "adam": nqm.critical_batch(lam, target, precond=lam ** -power, **kw)}
