"""Rates of GD, heavy ball and Nesterov on f(w) − f* = ½ eᵀHe, H = blockdiag(H_1, …, H_L), the block
structure and per-block extremes they use, and iteration counts and speed-ups from rates.  The bounds of the
theory as a whole (and these names, re-exported) are in :mod:`quadlab.theory`.

Notation (see docs/THEORY.md §3–§4).  f(w) − f* = ½ eᵀHe with e = w − w*, H = blockdiag(H_1, …, H_L).
Every "rate" in this module is a per-step factor on the gap f − f*; every "rho" is the spectral radius of
the iteration matrix acting on the error, so for the symmetric iterations below rate = rho².

* GD, e ← (I − ηH)e:  rho_GD(η) = max_i |1 − ηλ_i| = max(|1 − ηλ_min|, |1 − ηλ_max|) (|1 − ηλ| is convex
  in λ).  Best step η* = 2/(λ_min + λ_max), rho* = (κ − 1)/(κ + 1).  For every η,
  rho_GD(η) ≥ (κ − 1)/(κ + 1), which makes the lower bound.
* Heavy ball (PyTorch form m ← μm + g, w ← w − ηm, the same as Polyak's w_{k+1} = w_k − ηg_k + μ(w_k −
  w_{k−1})): each eigenvalue λ gives the 2×2 companion z² − (1 + μ − ηλ)z + μ; the optimum
  η = 4/(√λ_min + √λ_max)², μ = ((√κ − 1)/(√κ + 1))² has rho = (√κ − 1)/(√κ + 1).

Block extremes come from :func:`quadlab.rules.block_extremes` (the one definition, over the theorem's
partition): the exact spectra by default, Lanczos estimates with ``source="lanczos"``; ``extremes=`` accepts
any per-block (λ_min, λ_max) table.  With estimated extremes the constants are only as good as the estimates:
an underestimated λ_max makes the theorem's step too long and its bound invalid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._engine.choices import one_of
from .spectra import EXTREMES_SOURCES

__all__ = [
    "GDRates",
    "HeavyBallRates",
    "block_extremes",
    "gd_rates",
    "gd_rho",
    "gd_worst_start",
    "heavy_ball_optimum",
    "heavy_ball_rho",
    "iterations_to",
    "nesterov_rho",
    "speedup",
    "theory_blocks",
]


def _readonly(a):
    a = np.array(a, dtype=float) if not isinstance(a, np.ndarray) or a.dtype != bool else a.copy()
    a.setflags(write=False)
    return a


def _scalar_or_array(a):
    """A 0-d result as a Python float/bool, anything else as a read-only array."""
    a = np.asarray(a)
    if a.ndim == 0:
        return bool(a) if a.dtype == bool else float(a)
    a = a.copy()
    a.setflags(write=False)
    return a


# -- block structure and extremes -----------------------------------------------------------------
def theory_blocks(problem) -> tuple[np.ndarray, ...]:
    """The coordinate sets the theorem may treat as blocks.

    The nominal blocks when H is block diagonal, all of {0, …, n−1} when it is not (``rotation="global"``);
    the theorem partition of :mod:`quadlab.rules`.

    Parameters
    ----------
    problem : BlockQuadratic

    Returns
    -------
    tuple of numpy.ndarray
        Host int64 coordinate arrays, one per theory block.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rates, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))
    >>> [b.tolist() for b in rates.theory_blocks(p)][0]
    [0, 1, 2]
    """
    from .rules import partition_blocks

    return partition_blocks(problem, "theorem")


def block_extremes(problem, source: str = "exact", *, extremes=None, margin=None) -> np.ndarray:
    """(λ_min(H_l), λ_max(H_l)) per theory block (:func:`theory_blocks`).

    Given ``extremes`` are validated and returned as they are (any estimate the caller trusts); otherwise
    :func:`quadlab.rules.block_extremes` over the theorem partition: "exact" reads the spectrum, "lanczos"
    estimates by Lanczos and widens the Ritz values by their residuals and the margin, so λ_max is over- and
    λ_min under-estimated and the constants stay on the safe side.

    Parameters
    ----------
    problem : BlockQuadratic
        Its extremes set the rates.
    source : {"exact", "lanczos"}, keyword-only, default "exact"
        The spectrum source of the extremes (:func:`block_extremes`).
    extremes : array_like, keyword-only, optional
        (L, 2) table of (λ_min, λ_max) per theory block to use instead.
    margin : float, keyword-only, optional
        With ``source="lanczos"``: the relative widening (default 0.01).

    Returns
    -------
    numpy.ndarray
        Read-only float64, shape (L, 2).

    Raises
    ------
    ValueError
        If ``source`` is unknown, or ``extremes`` is not (L, 2), finite, with 0 < λ_min ≤ λ_max per row.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rates, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))
    >>> rates.block_extremes(p, extremes=[[1, 3], [90, 110], [990, 1000]])[1].tolist()  # given: checked, kept
    [90.0, 110.0]
    """
    L = len(theory_blocks(problem))
    if extremes is not None:
        ex = np.array(extremes, dtype=np.float64)
        if ex.shape != (L, 2):
            raise ValueError(f"extremes must have shape ({L}, 2) (λ_min, λ_max per theory block), got {ex.shape}")
        if not np.isfinite(ex).all() or (ex[:, 0] <= 0).any() or (ex[:, 1] < ex[:, 0]).any():
            raise ValueError("extremes must be finite with 0 < λ_min <= λ_max in every row")
        return _readonly(ex)
    one_of("source", source, EXTREMES_SOURCES, " (or pass extremes=)")
    from .rules import block_extremes as resolve  # the one definition of block extremes

    return _readonly(resolve(problem, source, "theorem", margin=margin))


def _lr_array(lr, what="lr"):
    a = np.asarray(lr, dtype=np.float64)
    if not np.isfinite(a).all() or (a <= 0).any():
        raise ValueError(f"{what} must be finite and > 0, got {lr!r}")
    return a


# -- GD -------------------------------------------------------------------------------------------
def gd_rho(lam_min: float, lam_max: float, lr):
    """GD's contraction of the error per step, ρ_GD(η) = max(|1 − ηλ_min|, |1 − ηλ_max|) = max_i |1 − ηλ_i|.

    Parameters
    ----------
    lam_min, lam_max : float
        The extremes of H.
    lr : float or array_like
        Step sizes η > 0, finite (elementwise).

    Returns
    -------
    numpy.ndarray
        ρ per η (0-d for a scalar η).

    Raises
    ------
    ValueError
        If some η is not finite and > 0.

    Examples
    --------
    >>> from quadlab import rates
    >>> float(rates.gd_rho(1.0, 3.0, 0.5))
    0.5
    """
    lr = _lr_array(lr)
    return np.maximum(np.abs(1.0 - lr * lam_min), np.abs(1.0 - lr * lam_max))


@dataclass(frozen=True)
class GDRates:
    """GD's rates on f: at a step η, at its best step, and the lower bound over all steps.

    Rates are per-step factors on f − f*, ρ's act on the error e (rate = ρ²).

    Attributes
    ----------
    lr, rho, rate : float or numpy.ndarray
        η, ρ(η) = max_i |1 − ηλ_i| and ρ(η)² (arrays for an array of η).
    best_lr, best_rho, best_rate : float
        η* = 2/(λ_min + λ_max), (κ − 1)/(κ + 1) and its square.
    lower_rho, lower_rate : float
        (κ − 1)/(κ + 1) ≤ ρ(η) for every η: the lower bound (equal to best_rho), and its square.
    lr_stable : float
        2/λ_max, the step beyond which GD diverges.
    kappa, lambda_min, lambda_max : float
        Of H (of the extremes used).
    source : str
        The spectrum source ("exact", "lanczos") or "given".

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rates, spectra
    >>> g = rates.gd_rates(quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000)))
    >>> g.best_lr == 2 / 1001, g.best_rho == 999 / 1001, g.lr_stable
    (True, True, 0.002)
    """

    lr: float | np.ndarray
    rho: float | np.ndarray
    rate: float | np.ndarray
    best_lr: float
    best_rho: float
    best_rate: float
    lower_rho: float
    lower_rate: float
    lr_stable: float
    kappa: float
    lambda_min: float
    lambda_max: float
    source: str

    @property
    def stable(self):
        return _scalar_or_array(np.asarray(self.rho) < 1.0)


def gd_rates(problem, lr=None, *, source: str = "exact", extremes=None, margin=None) -> GDRates:
    """GD's exact contraction at ``lr``, its best step and rate, and its lower bound.

    Parameters
    ----------
    problem : BlockQuadratic
    lr : float or array_like, optional
        Step sizes η > 0 (default: the best step η*).
    source, extremes, margin : keyword-only
        Where the extremes come from: the spectrum source, a given table or the Lanczos margin
        (:func:`block_extremes`).

    Returns
    -------
    GDRates
        ρ and rate at ``lr``, the best step and the lower bound.

    Raises
    ------
    ValueError
        If some η is not finite and > 0, or the extremes are invalid.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rates, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))
    >>> g = rates.gd_rates(p, lr=[1e-3, 1.5e-3])
    >>> g.rho.round(6).tolist(), g.best_rate < 1
    ([0.999, 0.9985], True)
    """
    ex = block_extremes(problem, source, extremes=extremes, margin=margin)
    lmin, lmax = float(ex[:, 0].min()), float(ex[:, 1].max())
    kappa = lmax / lmin
    best_lr = 2.0 / (lmin + lmax)
    best_rho = (kappa - 1.0) / (kappa + 1.0)
    lr = best_lr if lr is None else lr
    rho = gd_rho(lmin, lmax, lr)
    return GDRates(
        lr=_scalar_or_array(_lr_array(lr)), rho=_scalar_or_array(rho), rate=_scalar_or_array(rho**2),
        best_lr=best_lr, best_rho=best_rho, best_rate=best_rho**2, lower_rho=best_rho, lower_rate=best_rho**2,
        lr_stable=2.0 / lmax, kappa=kappa, lambda_min=lmin, lambda_max=lmax,
        source="given" if extremes is not None else source,
    )


def _extreme_eigvecs(problem):
    """Unit eigenvectors (host, (n,)) for λ_min and λ_max of H, at distinct positions when n ≥ 2."""
    lam_blocks = []
    vec_of = []
    if problem.rotation == "none":
        lam = problem.eigenvalues
        i, j = int(np.argmin(lam)), int(np.argmax(lam))
        if i == j and problem.n > 1:
            j = (i + 1) % problem.n
        out = []
        for k in (i, j):
            v = np.zeros(problem.n)
            v[k] = 1.0
            out.append(v)
        return out[0], out[1], lam[i], lam[j]
    V = problem.eigenvectors()
    for gi, g in enumerate(problem.groups):
        for j in range(g.k):
            for c in range(g.size):
                lam_blocks.append(g.lam[j, c])
                vec_of.append((gi, j, c))
    lam = np.asarray(lam_blocks)
    a, b = int(np.argmin(lam)), int(np.argmax(lam))
    if a == b and lam.size > 1:
        b = (a + 1) % lam.size
    out = []
    for idx in (a, b):
        gi, j, c = vec_of[idx]
        g = problem.groups[gi]
        col = problem.backend.to_numpy(V[gi])[j][:, c].astype(np.float64)
        v = np.zeros(problem.n)
        v[g.coords[j * g.size:(j + 1) * g.size]] = col
        out.append(v)
    return out[0], out[1], float(lam[a]), float(lam[b])


def gd_worst_start(problem, gap: float = 1.0) -> np.ndarray:
    """The start that meets GD's lower bound: w₀ = w* + √gap·(v_min/√λ_min + v_max/√λ_max).

    v_min, v_max are unit eigenvectors of λ_min and λ_max.  The gap f(w₀) − f* = ``gap`` is split equally between
    the two extreme modes, so for every step η and every k ≥ 0

        f(w_k) − f* = (gap/2)·[(1 − ηλ_min)^{2k} + (1 − ηλ_max)^{2k}] ≥ (gap/2)·((κ − 1)/(κ + 1))^{2k},

    the lower bound in its sharpest (non-asymptotic) form.

    Parameters
    ----------
    problem : BlockQuadratic
    gap : float, default 1.0
        f(w₀) − f*, finite and > 0.

    Returns
    -------
    numpy.ndarray
        Host float64, shape (n,).

    Raises
    ------
    ValueError
        If ``gap`` is not finite and > 0.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rates, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000), rotation="none")
    >>> w0 = rates.gd_worst_start(p, gap=2.0)
    >>> round(float(p.gap(w0[None, :])[0]), 12)
    2.0
    """
    gap = float(gap)
    if not np.isfinite(gap) or gap <= 0:
        raise ValueError(f"gap must be finite and > 0, got {gap!r}")
    vmin, vmax, lmin, lmax = _extreme_eigvecs(problem)
    if problem.n == 1:
        e = math.sqrt(2.0 * gap / lmin) * vmin
    else:
        e = math.sqrt(gap) * (vmin / math.sqrt(lmin) + vmax / math.sqrt(lmax))
    return problem.optimum_host + e


# -- heavy ball and Nesterov ----------------------------------------------------------------------
def _companion_radius(trace, det):
    """max |z| over the roots of z² − trace·z + det (elementwise, real inputs)."""
    disc = trace * trace - 4.0 * det
    real = disc >= 0
    sq = np.sqrt(np.where(real, disc, 0.0))
    r_real = np.maximum(np.abs(trace + sq), np.abs(trace - sq)) / 2.0
    r_cplx = np.sqrt(np.abs(det))
    return np.where(real, r_real, r_cplx)


def _momentum_grid(problem, lr, momentum):
    """Validated, broadcast (η, μ) and the distinct exact eigenvalues λ of H, for the momentum radii."""
    lr = _lr_array(lr)
    mu = np.asarray(momentum, dtype=np.float64)
    if not np.isfinite(mu).all() or (mu < 0).any():
        raise ValueError(f"momentum must be finite and >= 0, got {momentum!r}")
    lr_b, mu_b = np.broadcast_arrays(lr, mu)
    return lr_b, mu_b, np.unique(problem.eigenvalues)


def heavy_ball_rho(problem, lr, momentum) -> float | np.ndarray:
    """Heavy ball's asymptotic contraction per step (PyTorch form): the largest root modulus of
    z² − (1 + μ − ηλ)z + μ over every exact eigenvalue λ of H.

    Not a per-step bound: the error can grow transiently, and a double root adds a factor k.

    Parameters
    ----------
    problem : BlockQuadratic
    lr : float or array_like
        η > 0 (broadcast against ``momentum``).
    momentum : float or array_like
        μ ≥ 0.

    Returns
    -------
    float or numpy.ndarray
        ρ per (η, μ) pair (a float for scalars).

    Raises
    ------
    ValueError
        If η is not finite and > 0 or μ is not finite and ≥ 0.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rates, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000))
    >>> hb = rates.heavy_ball_optimum(p)
    >>> abs(rates.heavy_ball_rho(p, hb.lr, hb.momentum) - hb.rho) < 1e-6
    True
    """
    lr_b, mu_b, lam = _momentum_grid(problem, lr, momentum)
    r = _companion_radius((1.0 + mu_b[..., None]) - lr_b[..., None] * lam, np.broadcast_to(mu_b[..., None], lr_b.shape + lam.shape))
    return _scalar_or_array(r.max(axis=-1))


def nesterov_rho(problem, lr, momentum) -> float | np.ndarray:
    """Nesterov momentum's asymptotic contraction per step in PyTorch form (m ← μm + g, w ← w − η(g + μm)).

    Per eigenvalue λ the roots of z² − (1 + μ)(1 − ηλ)z + μ(1 − ηλ); the largest modulus over all λ.

    Parameters
    ----------
    problem : BlockQuadratic
    lr : float or array_like
        η > 0.
    momentum : float or array_like
        μ ≥ 0.

    Returns
    -------
    float or numpy.ndarray
        The spectral radius per (η, μ) pair (a float for scalars).

    Raises
    ------
    ValueError
        For a step size that is not positive and finite, or a negative or non-finite momentum.

    Examples
    --------
    >>> from quadlab import BlockQuadratic, rates, spectra
    >>> p = BlockQuadratic(spectra.simple_heterogeneous(1000))
    >>> rates.nesterov_rho(p, 1e-3, 0.0) == float(rates.gd_rho(1.0, 1000.0, 1e-3))  # μ = 0 is GD
    True
    """
    lr_b, mu_b, lam = _momentum_grid(problem, lr, momentum)
    q = 1.0 - lr_b[..., None] * lam
    r = _companion_radius((1.0 + mu_b[..., None]) * q, mu_b[..., None] * q)
    return _scalar_or_array(r.max(axis=-1))


@dataclass(frozen=True)
class HeavyBallRates:
    """Heavy ball's classical optimum for the extremes of H.

    Attributes
    ----------
    lr : float
        η = 4/(√λ_min + √λ_max)².
    momentum : float
        μ = ((√κ − 1)/(√κ + 1))².
    rho : float
        (√κ − 1)/(√κ + 1): asymptotic contraction per step of the error.
    rate : float
        ρ² (on the gap).
    kappa : float

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import rates, spectra
    >>> hb = rates.heavy_ball_optimum(quadlab.BlockQuadratic(spectra.simple_heterogeneous(100 ** 2 + 4)))
    >>> round(hb.rho, 6) == round((100.02 - 1) / (100.02 + 1), 6)
    True
    """

    lr: float
    momentum: float
    rho: float
    rate: float
    kappa: float


def heavy_ball_optimum(problem, *, source: str = "exact", extremes=None, margin=None) -> HeavyBallRates:
    """The classical optimal heavy-ball parameters for the extremes of H (:class:`HeavyBallRates`).

    Parameters
    ----------
    problem : BlockQuadratic
    source, extremes, margin : keyword-only
        As for :func:`block_extremes`.

    Returns
    -------
    HeavyBallRates
        η, μ, ρ and rate of heavy ball's optimum.

    Raises
    ------
    ValueError
        If the extremes are invalid.

    Examples
    --------
    >>> import quadlab
    >>> hb = quadlab.rates.heavy_ball_optimum(quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(1000)))
    >>> hb.lr == 4 / (1 + 1000 ** 0.5) ** 2
    True
    """
    ex = block_extremes(problem, source, extremes=extremes, margin=margin)
    lmin, lmax = float(ex[:, 0].min()), float(ex[:, 1].max())
    sk = math.sqrt(lmax / lmin)
    rho = (sk - 1.0) / (sk + 1.0)
    return HeavyBallRates(lr=4.0 / (math.sqrt(lmin) + math.sqrt(lmax)) ** 2, momentum=rho * rho, rho=rho,
                          rate=rho * rho, kappa=lmax / lmin)


# -- iteration counts and speed-ups --------------------------------------------------------------
def iterations_to(rate, tol: float = 1e-6):
    """Steps for a per-step gap factor to shrink the gap by ``tol``: ln(1/tol)/ln(1/rate).

    Parameters
    ----------
    rate : float or array_like
        Per-step gap factors ≥ 0.
    tol : float, default 1e-6
        The reduction, in (0, 1).

    Returns
    -------
    float or numpy.ndarray
        inf for rate ≥ 1, 0 for rate = 0.

    Raises
    ------
    ValueError
        If ``tol`` ∉ (0, 1).

    Examples
    --------
    >>> from quadlab import rates
    >>> rates.iterations_to(0.1, 1e-6), rates.iterations_to(1.0)
    (6.0, inf)
    """
    if not 0 < tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol!r}")
    r = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore"):
        k = np.where(r >= 1, np.inf, np.where(r <= 0, 0.0, math.log(tol) / np.log(np.clip(r, 1e-300, 1.0))))
    return _scalar_or_array(k)


def speedup(rate_slow, rate_fast):
    """How many times fewer steps the faster method needs for the same reduction: ln(rate_fast)/ln(rate_slow).

    Independent of the tolerance (both need ln(1/tol)/ln(1/rate) steps).

    Parameters
    ----------
    rate_slow, rate_fast : float or array_like
        Per-step gap factors in (0, 1).

    Returns
    -------
    float or numpy.ndarray
        ln(rate_fast)/ln(rate_slow).

    Raises
    ------
    ValueError
        If a rate is outside (0, 1).

    Examples
    --------
    >>> from quadlab import rates
    >>> rates.speedup(0.9 ** 2, 0.9 ** 10)
    5.0
    """
    s, f = np.asarray(rate_slow, dtype=np.float64), np.asarray(rate_fast, dtype=np.float64)
    if ((s <= 0) | (s >= 1) | (f <= 0) | (f >= 1)).any():
        raise ValueError("speedup compares contracting rates: both must lie in (0, 1)")
    return _scalar_or_array(np.log(f) / np.log(s))
