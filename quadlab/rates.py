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
    """The coordinate sets the theorem may treat as blocks: the nominal blocks when H is block diagonal,
    the whole of {0, …, n−1} when it is not (``rotation="global"``); see :mod:`quadlab.rules`."""
    from .rules import partition_blocks

    return partition_blocks(problem, "theorem")


def block_extremes(problem, source: str = "exact", *, extremes=None, margin=None) -> np.ndarray:
    """Per theory block (see :func:`theory_blocks`) the pair (λ_min(H_l), λ_max(H_l)), shape (L, 2).

    ``extremes``, when given, is validated and returned as is (any estimate the caller trusts).  Otherwise
    :func:`quadlab.rules.block_extremes` over the theorem partition: ``source="exact"`` reads the spectrum;
    ``source="lanczos"`` estimates by Lanczos (per block, or on all of H when it is rotated globally) and
    widens the Ritz values by their residuals and the margin, so λ_max is over- and λ_min under-estimated:
    the constants stay on the safe side.
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
    """rho_GD(η) = max(|1 − ηλ_min|, |1 − ηλ_max|) = max_i |1 − ηλ_i| (elementwise in η)."""
    lr = _lr_array(lr)
    return np.maximum(np.abs(1.0 - lr * lam_min), np.abs(1.0 - lr * lam_max))


@dataclass(frozen=True)
class GDRates:
    """GD on f with step ``lr`` (scalar or array).  rates are per-step factors on f − f*.

    rho = max_i|1 − ηλ_i|, rate = rho²; best_lr = 2/(λ_min + λ_max), best_rho = (κ − 1)/(κ + 1);
    lower_rho = (κ − 1)/(κ + 1) ≤ rho for every η (the lower bound; equal to best_rho);
    lr_stable = 2/λ_max, the step beyond which GD diverges."""

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
    """GD's exact contraction at ``lr`` (default: the best step), its best step and rate, its lower bound."""
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
    """The start w0 = w* + √gap·(v_min/√λ_min + v_max/√λ_max) (host float64, (n,)), with v_min, v_max unit
    eigenvectors of λ_min and λ_max.  Its gap is f(w0) − f* = ``gap``, split equally between the two extreme
    modes, so for every step η and every k ≥ 0

        f(w_k) − f* = (gap/2)·[(1 − ηλ_min)^{2k} + (1 − ηλ_max)^{2k}] ≥ (gap/2)·((κ − 1)/(κ + 1))^{2k},

    which is the lower bound in its sharpest (non-asymptotic) form."""
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
    """Asymptotic contraction of heavy ball (PyTorch form) per step: the largest root modulus of
    z² − (1 + μ − ηλ)z + μ over every exact eigenvalue λ of H (elementwise over broadcast lr, momentum).
    Not a per-step bound: the error can grow transiently, and a double root adds a factor k."""
    lr_b, mu_b, lam = _momentum_grid(problem, lr, momentum)
    r = _companion_radius((1.0 + mu_b[..., None]) - lr_b[..., None] * lam, np.broadcast_to(mu_b[..., None], lr_b.shape + lam.shape))
    return _scalar_or_array(r.max(axis=-1))


def nesterov_rho(problem, lr, momentum) -> float | np.ndarray:
    """Asymptotic contraction of Nesterov momentum in PyTorch form (m ← μm + g, w ← w − η(g + μm)): per
    eigenvalue λ the roots of z² − (1 + μ)(1 − ηλ)z + μ(1 − ηλ), largest modulus over all λ."""
    lr_b, mu_b, lam = _momentum_grid(problem, lr, momentum)
    q = 1.0 - lr_b[..., None] * lam
    r = _companion_radius((1.0 + mu_b[..., None]) * q, mu_b[..., None] * q)
    return _scalar_or_array(r.max(axis=-1))


@dataclass(frozen=True)
class HeavyBallRates:
    """Heavy ball's optimum: lr = 4/(√λ_min + √λ_max)², momentum = ((√κ − 1)/(√κ + 1))²,
    rho = (√κ − 1)/(√κ + 1) (asymptotic, per step, on the error), rate = rho² (on the gap)."""

    lr: float
    momentum: float
    rho: float
    rate: float
    kappa: float


def heavy_ball_optimum(problem, *, source: str = "exact", extremes=None, margin=None) -> HeavyBallRates:
    """The classical optimal heavy-ball parameters for the extremes of H (see :class:`HeavyBallRates`)."""
    ex = block_extremes(problem, source, extremes=extremes, margin=margin)
    lmin, lmax = float(ex[:, 0].min()), float(ex[:, 1].max())
    sk = math.sqrt(lmax / lmin)
    rho = (sk - 1.0) / (sk + 1.0)
    return HeavyBallRates(lr=4.0 / (math.sqrt(lmin) + math.sqrt(lmax)) ** 2, momentum=rho * rho, rho=rho,
                          rate=rho * rho, kappa=lmax / lmin)


# -- iteration counts and speed-ups --------------------------------------------------------------
def iterations_to(rate, tol: float = 1e-6):
    """Steps for a per-step gap factor ``rate`` to shrink the gap by ``tol``: ln(1/tol)/ln(1/rate)
    (inf for rate ≥ 1, 0 for rate = 0)."""
    if not 0 < tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol!r}")
    r = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore"):
        k = np.where(r >= 1, np.inf, np.where(r <= 0, 0.0, math.log(tol) / np.log(np.clip(r, 1e-300, 1.0))))
    return _scalar_or_array(k)


def speedup(rate_slow, rate_fast):
    """How many times fewer steps a method with per-step gap factor ``rate_fast`` needs than one with
    ``rate_slow`` for the same reduction: ln(rate_fast)/ln(rate_slow) (independent of the tolerance)."""
    s, f = np.asarray(rate_slow, dtype=np.float64), np.asarray(rate_fast, dtype=np.float64)
    if ((s <= 0) | (s >= 1) | (f <= 0) | (f >= 1)).any():
        raise ValueError("speedup compares contracting rates: both must lie in (0, 1)")
    return _scalar_or_array(np.log(f) / np.log(s))
