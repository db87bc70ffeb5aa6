"""The noisy quadratic model in closed form: expected loss, steps to a target and critical batch sizes.

Setting (Zhang et al. 2019, "Which algorithmic choices matter at which batch sizes?").  f(w) = ½ eᵀHe with
e = w − w*, and every step sees g_k = He_k + ξ_k, the ξ_k independent, zero-mean, Cov ξ_k = C (for the NQM
C = (scale/B)·H; any model of :mod:`quadlab.noise`).  A linear method with a diagonal preconditioner P
(P = I for GD and heavy ball) acts on z = P^{-1/2}e as the same method on M = P^{1/2}HP^{1/2} with noise
ζ = P^{1/2}ξ, and f − f* = ½ zᵀMz.  In an eigenbasis of M (eigenvalues μ_i) the coordinates decouple:

    GD:          z_{k+1} = (1 − ημ) z_k − η ζ_k
    heavy ball:  m_{k+1} = β m_k + μ z_k + ζ_k,   z_{k+1} = z_k − η m_{k+1}   (m_0 = 0; optim.heavy_ball)

and, ζ_k being independent of the past, the raw second moments follow exact affine recurrences with v_i =
Var ζ_i (= (scale/B)·μ_i for the NQM):

    GD:   s_{k+1} = r² s_k + η² v,   r = 1 − ημ,   so   s_k = r^{2k} s_0 + η² v (1 − r^{2k})/(1 − r²)
    HB:   with a = (1−ημ, −ηβ; μ, β) and b = (−η, 1), S_{k+1} = a S_k aᵀ + v b bᵀ on S = E[(z, m)(z, m)ᵀ],

    E[f(w_k)] − f* = ½ Σ_i μ_i s_{k,i}.

Only second moments enter, so the result holds for any noise with that covariance (Gaussian or Student-t)
and for a random start with E[z_0 z_0ᵀ] diagonal in that basis: the runner's start e_0 ~ N(0, I) gives
s_0 = 1/p_i (``start=None``).  A given start e_0 gives s_0 = e_0²/p (diagonal H only).

What is exact where.  A :class:`~quadlab.BlockQuadratic` of any rotation, P = I and the Gaussian start:
only the eigenvalues of H matter (its rotations do not), and ζ's covariance is diagonal in H's eigenbasis
for the NQM and the isotropic model.  With a preconditioner or a given start, H must be diagonal
(rotation "none", or eigenvalues given as an array), so that P and H share the coordinate basis.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .noise import NQM, check_noise
from .problem import BlockQuadratic

__all__ = ["expected_loss", "steps_to_target", "tuned_steps", "critical_batch", "mc_critical_batch",
           "Tuned", "CriticalBatch", "METHODS"]

METHODS = ("gd", "heavy_ball")


@dataclass(frozen=True)
class _Dirs:
    """The decoupled directions, merged where (μ, v, s0) coincide: weights w count them."""

    mu: np.ndarray
    v: np.ndarray
    s0: np.ndarray
    w: np.ndarray

    @property
    def loss0(self) -> float:
        return 0.5 * float(np.sum(self.w * self.mu * self.s0))


def _directions(problem, noise, precond=None, start=None) -> _Dirs:
    noise = check_noise(noise)
    if isinstance(problem, BlockQuadratic):
        h, diagonal = problem.eigenvalues, problem.rotation == "none"
    else:
        h = np.asarray(problem, dtype=np.float64)
        diagonal = True
        if h.ndim != 1 or h.size == 0 or not np.isfinite(h).all() or (h <= 0).any():
            raise ValueError("problem must be a BlockQuadratic or a 1-D array of positive finite eigenvalues "
                             "(the diagonal of H)")
    if not diagonal and (precond is not None or start is not None):
        raise ValueError("a preconditioner or a given start needs a diagonal H (rotation='none' or an array of "
                         "eigenvalues): P and H must share the coordinate basis")
    p = np.ones_like(h) if precond is None else np.asarray(precond, dtype=np.float64)
    if p.shape != h.shape or not np.isfinite(p).all() or (p <= 0).any():
        raise ValueError(f"precond must be {h.size} positive finite numbers (the diagonal of P), got shape {p.shape}")
    if start is None:
        e2 = np.ones_like(h)
    else:
        e0 = np.asarray(start, dtype=np.float64)
        if e0.shape != h.shape or not np.isfinite(e0).all():
            raise ValueError(f"start must be {h.size} finite numbers (w0 − w*), got shape {e0.shape}")
        e2 = e0 * e0
    mu = p * h
    v = np.zeros_like(h) if noise is None else p * noise.direction_variance(h)
    rows, w = np.unique(np.stack([mu, v, e2 / p], axis=1), axis=0, return_counts=True)
    return _Dirs(rows[:, 0], rows[:, 1], rows[:, 2], w.astype(np.float64))


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (Adam has no closed form under noise: use "
                         f"mc_critical_batch), got {method!r}")
    return method


def _grid(lr, momentum, method):
    lr = np.atleast_1d(np.asarray(lr, dtype=np.float64))
    mom = np.atleast_1d(np.asarray(0.0 if momentum is None else momentum, dtype=np.float64))
    if lr.ndim != 1 or lr.size == 0 or not np.isfinite(lr).all() or (lr <= 0).any():
        raise ValueError(f"lr must be positive finite numbers, got {lr!r}")
    if mom.ndim != 1 or not np.isfinite(mom).all() or (mom < 0).any() or (mom >= 1).any():
        raise ValueError(f"momentum must lie in [0, 1), got {mom!r}")
    if method == "gd" and (mom != 0).any():
        raise ValueError("momentum is for method='heavy_ball'")
    L, B = np.meshgrid(lr, mom, indexing="ij")  # lr-major, as quadlab.optim's grids
    return L.reshape(-1), B.reshape(-1)


def _check_steps(steps, name="steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Real) or not float(steps).is_integer() or steps < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {steps!r}")
    return int(steps)


def _gd_moments(d: _Dirs, eta, k):
    """E z_k² for GD, (C, K, n) for η (C,) and steps k (K,) or per config (C, K), from the closed form of the module docstring,
    with 1 − r² = ημ(2 − ημ) and 1 − r^{2k} = −expm1(2k log|r|) formed without cancellation."""
    x = eta[:, None, None] * d.mu[None, None, :]
    k = np.asarray(k, dtype=np.float64)
    k = k[None, :, None] if k.ndim == 1 else k[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logr2 = 2.0 * np.where(x < 1, np.log1p(-np.minimum(x, 1.0)), np.log(np.abs(x - 1.0)))
        t = np.where(k == 0, 0.0, k * logr2)  # 0·(−∞) at r = 0 is the empty product 1
        r2k = np.exp(t)
        one_r2 = x * (2.0 - x)
        geo = np.where(one_r2 == 0, k, -np.expm1(t) / one_r2)
        return r2k * d.s0 + (eta[:, None, None] ** 2 * d.v) * geo


def _loss(d: _Dirs, s):
    return 0.5 * (s * (d.w * d.mu)).sum(axis=-1)


def _hb_scan(d: _Dirs, eta, beta, ks, thr=None, stop_any=False, cap=None):
    """Heavy ball's second moments stepped exactly; returns E f at ``ks`` (C, K) and, with ``thr``, each
    config's first step with E f ≤ thr (−1 none up to ``cap``; ``stop_any``: stop at the first config that
    crosses, the others then read −1 unless they crossed at the same step)."""
    C = eta.size
    e, b = eta[:, None], beta[:, None]
    a11, a12, a21, a22 = 1.0 - e * d.mu, -e * b, d.mu + 0 * e, b + 0 * d.mu
    zz = np.broadcast_to(d.s0, (C, d.mu.size)).copy()
    zm = np.zeros_like(zz)
    mm = np.zeros_like(zz)
    ev, v = e * e * d.v, d.v + 0 * e
    ks = np.asarray(ks, dtype=np.int64)
    last = int(ks.max()) if ks.size else 0
    last = max(last, cap if cap is not None else 0)
    out = np.full((C, ks.size), np.nan)
    first = np.full(C, -1, dtype=np.int64)
    pos = {int(k): j for j, k in enumerate(ks)}
    wmu = d.w * d.mu
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(last + 1):
            f = 0.5 * (zz * wmu).sum(axis=1)
            if k in pos:
                out[:, pos[k]] = f
            if thr is not None:
                hit = (first < 0) & (f <= thr)
                first[hit] = k
                if (stop_any and hit.any()) or (first >= 0).all():
                    if ks.size == 0 or k >= ks.max():
                        break
            nz = a11 * a11 * zz + 2 * a11 * a12 * zm + a12 * a12 * mm + ev
            nzm = a11 * a21 * zz + (a11 * a22 + a12 * a21) * zm + a12 * a22 * mm - e * v
            mm = a21 * a21 * zz + 2 * a21 * a22 * zm + a22 * a22 * mm + v
            zz, zm = nz, nzm
    return out, first


def expected_loss(problem, lr, *, method: str = "gd", momentum=None, noise=None, steps: int = 1000,
                  record="all", precond=None, start=None) -> np.ndarray:
    """E[f(w_k)] − f* of GD or heavy ball under gradient noise, exactly (module docstring).

    Parameters
    ----------
    problem : BlockQuadratic, or a 1-D array of positive eigenvalues (a diagonal H).
    lr, momentum : grids; the configurations are their outer product, lr-major (momentum for heavy ball).
    method : "gd" or "heavy_ball".
    noise : a model of :mod:`quadlab.noise`, or None for exact gradients.
    steps : the last step k.
    record : "all" (k = 0..steps) or an increasing array of steps in [0, steps].
    precond : the diagonal of P (preconditioned GD or heavy ball: w ← w − η P g); diagonal H only.
    start : w0 − w* (diagonal H only); None: the runner's random start e_0 ~ N(0, I), averaged over.

    Returns
    -------
    (C, T) array: one row per configuration, one column per recorded step.

    Raises
    ------
    ValueError
        On an unknown method, non-positive steps or learning rates, momentum outside [0, 1), or a
        preconditioner or start with a non-diagonal H.

    Examples
    --------
    >>> from quadlab import nqm, noise
    >>> L = nqm.expected_loss(np.array([1.0, 10.0]), 0.1, noise=noise.NQM(batch=4), steps=10_000, record=[10_000])
    >>> bool(np.isclose(L[0, 0], 0.5 * sum(0.1 * h / 4 / (2 - 0.1 * h) for h in (1.0, 10.0))))
    True
    """
    method = _check_method(method)
    steps = _check_steps(steps)
    d = _directions(problem, noise, precond, start)
    eta, beta = _grid(lr, momentum, method)
    ks = np.arange(steps + 1) if isinstance(record, str) and record == "all" else np.asarray(record)
    if isinstance(record, str) and record != "all":
        raise ValueError(f"record must be 'all' or an array of steps, got {record!r}")
    if ks.ndim != 1 or ks.size == 0 or (np.diff(ks) <= 0).any() or ks[0] < 0 or ks[-1] > steps:
        raise ValueError(f"record must be increasing steps in [0, {steps}]")
    if method == "gd":
        return np.concatenate([_loss(d, _gd_moments(d, eta, ks[i:i + 256])) for i in range(0, ks.size, 256)],
                              axis=1)
    return _hb_scan(d, eta, beta, ks)[0]


def _gd_first(d: _Dirs, eta, thr, max_steps, stop_any=False):
    """First k ≤ max_steps with E f_k ≤ thr per η (−1: none).  Bisection where E f_k is non-increasing (every
    |r| < 1 and s_0 ≥ s_∞ = η²v/(1 − r²) in every direction: each term then decays), else a chunked scan
    (``stop_any``: only up to the earliest crossing found so far, as a search for the minimum needs)."""
    C = eta.size
    x = eta[:, None] * d.mu[None, :]
    stable = (x > 0) & (x < 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_inf = np.where(stable, eta[:, None] ** 2 * d.v / (x * (2 - x)), np.inf)
    mono = (stable & (d.s0 >= s_inf)).all(axis=1)
    first = np.full(C, -1, dtype=np.int64)

    def f_at(idx, k):
        return _loss(d, _gd_moments(d, eta[idx], k))

    m = np.flatnonzero(mono)
    if m.size:
        end = f_at(m, [max_steps])[:, 0]
        ok = m[end <= thr]
        lo = np.full(ok.size, -1, dtype=np.int64)  # E f_lo > thr (lo = −1: nothing checked yet)
        hi = np.full(ok.size, max_steps, dtype=np.int64)  # E f_hi ≤ thr
        while ok.size and (hi - lo > 1).any():
            mid = np.where(hi - lo > 1, (lo + hi) // 2, hi)  # ≥ 0; settled configs re-check their hi
            below = f_at(ok, mid[:, None])[:, 0] <= thr
            hi = np.where(below, mid, hi)
            lo = np.where(below, lo, mid)
        first[ok] = hi
    rest = np.flatnonzero(~mono)
    if stop_any and (first >= 0).any():
        max_steps = int(first[first >= 0].min())
    for k0 in range(0, max_steps + 1, 512):
        if rest.size == 0:
            break
        ks = np.arange(k0, min(k0 + 512, max_steps + 1))
        f = f_at(rest, ks)
        hit = (f <= thr).any(axis=1)
        first[rest[hit]] = ks[(f[hit] <= thr).argmax(axis=1)]
        rest = rest[~hit]
    return first


def steps_to_target(problem, target: float, *, method: str = "gd", lr=1e-3, momentum=None, noise=None,
                    precond=None, start=None, max_steps: int = 100_000) -> np.ndarray:
    """For each configuration, the first k with E[f(w_k)] − f* ≤ target·(E[f(w_0)] − f*).

    Parameters
    ----------
    problem, method, lr, momentum, noise, precond, start
        As for :func:`expected_loss`.
    target : float
        The fraction of E[f(w_0)] − f* to reach, in (0, 1), by step ``max_steps`` at the latest.
    max_steps : int

    Returns
    -------
    numpy.ndarray
        int64 (C,), one k per configuration (lr-major), −1 where the target is not reached.

    Raises
    ------
    ValueError
        For a target outside (0, 1) and the cases of :func:`expected_loss`.

    Examples
    --------
    Exact gradients on f = ½w²: E f_k = (1 − η)^{2k} f_0, so η = ½ first reaches 1% at k = 4 (0.25⁴ ≤ 0.01 <
    0.25³), η = 1 lands on w* in one step, and tuning finds a step within 0.1 of 1 ((1 − η)² ≤ 0.01):

    >>> from quadlab import nqm
    >>> nqm.steps_to_target(np.array([1.0]), 0.01, lr=[0.5, 1.0])
    array([4, 1])
    >>> t = nqm.tuned_steps(np.array([1.0]), 0.01)
    >>> t.steps, bool(abs(1 - t.lr) <= 0.1)
    (1, True)
    """
    method = _check_method(method)
    target = _check_target(target)
    max_steps = _check_steps(max_steps, "max_steps")
    d = _directions(problem, noise, precond, start)
    eta, beta = _grid(lr, momentum, method)
    thr = target * d.loss0
    if method == "gd":
        return _gd_first(d, eta, thr, max_steps)
    return _hb_scan(d, eta, beta, [], thr=thr, cap=max_steps)[1]


def _check_target(target) -> float:
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0 < target < 1:
        raise ValueError(f"target is a fraction of the initial expected loss and must lie in (0, 1), got {target!r}")
    return float(target)


@dataclass(frozen=True)
class Tuned:
    """The fewest steps to the target over the searched grid (−1: none within the cap), and the first
    configuration of the grid that attains them.

    Attributes
    ----------
    steps : int
    lr, momentum : float
        NaN if none; momentum 0 for GD.
    """

    steps: int
    lr: float
    momentum: float


DEFAULT_MOMENTA = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99)


def _tune(d: _Dirs, method, thr, max_steps, points, refine, momenta) -> Tuned:
    mu_max = float(d.mu.max())
    best = Tuned(-1, float("nan"), float("nan"))
    moms = np.asarray([0.0] if method == "gd" else momenta, dtype=np.float64)
    # stable steps: ημ_max < 2 for GD, < 2(1 + β) for heavy ball
    tops = 2.0 * (1.0 + moms) / mu_max
    grids = [np.geomspace(1e-6 * t, t * (1 - 1e-9), points) for t in tops]
    for it in range(refine + 1):
        eta = np.concatenate(grids)
        beta = np.concatenate([np.full(g.size, b) for g, b in zip(grids, moms, strict=True)])
        cap = max_steps if best.steps < 0 else best.steps
        if method == "gd":
            first = _gd_first(d, eta, thr, cap, stop_any=True)
        else:
            first = _hb_scan(d, eta, beta, [], thr=thr, stop_any=True, cap=cap)[1]
        if (first >= 0).any():
            k = int(first[first >= 0].min())
            j = int(np.flatnonzero(first == k)[0])
            if best.steps < 0 or k < best.steps:
                best = Tuned(k, float(eta[j]), float(beta[j]))
        if best.steps < 0 or it == refine:
            break
        # a finer lr grid between the best lr's neighbours, at the best momentum and its grid neighbours
        same = np.sort(eta[beta == best.momentum])
        i = int(np.searchsorted(same, best.lr))
        left = same[i - 1] if i > 0 else best.lr / 2
        right = same[i + 1] if i + 1 < same.size else min(best.lr * 2, 2 * (1 + best.momentum) / mu_max * (1 - 1e-9))
        grids = [np.geomspace(left, right, points)]
        moms = np.asarray([best.momentum])
    return best


def tuned_steps(problem, target: float, *, method: str = "gd", noise=None, precond=None, start=None,
                momenta=DEFAULT_MOMENTA, points: int = 40, refine: int = 2, max_steps: int = 100_000) -> Tuned:
    """The fewest steps to reach ``target`` (a fraction of E[f(w_0)] − f*) over learning rates (and momenta):
    a log grid of ``points`` lrs from 10⁻⁶ of the stability limit (2/μ_max; 2(1+β)/μ_max for heavy ball) up
    to it, per momentum, then ``refine`` finer grids between the best lr's neighbours.  Every configuration
    runs in lockstep and the search stops at the first crossing, so it costs the winner's steps only.

    Parameters
    ----------
    problem, method, noise, precond, start, target, max_steps
        As for :func:`steps_to_target`.
    momenta : sequence of float
        Heavy ball's momenta, in [0, 1) (ignored by GD).
    points, refine : int
        As above (points ≥ 3).

    Returns
    -------
    Tuned

    Raises
    ------
    ValueError
        As :func:`steps_to_target`, or for ``points`` < 3.
    """
    method = _check_method(method)
    target = _check_target(target)
    max_steps = _check_steps(max_steps, "max_steps")
    if isinstance(points, bool) or not isinstance(points, int) or points < 3:
        raise ValueError(f"points must be an integer >= 3, got {points!r}")
    moms = np.asarray(momenta, dtype=np.float64).reshape(-1)
    if method == "heavy_ball" and (moms.size == 0 or (moms < 0).any() or (moms >= 1).any()):
        raise ValueError(f"momenta must be a non-empty list in [0, 1), got {momenta!r}")
    d = _directions(problem, noise, precond, start)
    return _tune(d, method, target * d.loss0, max_steps, points, refine, moms)


@dataclass(frozen=True)
class CriticalBatch:
    """Tuned steps against batch size, of the closed form's method or of the optimizer named ``method``.

    Attributes
    ----------
    batches, steps, lr, momentum : numpy.ndarray
        (K,) each: the batch sizes B (increasing), the tuned steps S(B) (−1: target not reached within the
        cap), and the tuned lr and momentum at each B.
    limit, limit_lr
        S_∞, the tuned steps with exact gradients (B → ∞), and its lr.
    delta, critical : float
        δ, and the smallest B of the grid with S(B) ≤ (1 + δ)·S_∞ (NaN if none).
    method : str
    monte_carlo, seeds
        Estimated over ``seeds`` seeds (steps of the sample mean loss); False, 0 in closed form.
    """

    batches: np.ndarray
    steps: np.ndarray
    lr: np.ndarray
    momentum: np.ndarray
    limit: int
    limit_lr: float
    delta: float
    critical: float
    method: str
    monte_carlo: bool = False
    seeds: int = 0

    def as_dict(self) -> dict:
        """Every field, arrays as lists (JSON-ready).

        Returns
        -------
        dict
        """
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}


def _critical(batches, steps, limit, delta) -> float:
    ok = (steps >= 0) & (steps <= (1 + delta) * limit)
    return float(batches[np.flatnonzero(ok)[0]]) if ok.any() and limit >= 0 else float("nan")


def _check_batches(batches, delta):
    b = np.asarray(batches, dtype=np.float64).reshape(-1)
    if b.size == 0 or not np.isfinite(b).all() or (b <= 0).any() or (np.diff(b) <= 0).any() or (b % 1 != 0).any():
        raise ValueError(f"batches must be increasing positive whole numbers, got {batches!r}")
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 < delta < np.inf:
        raise ValueError(f"delta must be a positive number, got {delta!r}")
    return b, float(delta)


def critical_batch(problem, target: float, *, method: str = "gd", batches=tuple(2.0**k for k in range(17)),
                   delta: float = 1.0, scale: float = 1.0, noise=NQM, precond=None, start=None, momenta=DEFAULT_MOMENTA,
                   points: int = 40, refine: int = 2, max_steps: int = 100_000) -> CriticalBatch:
    """The critical batch size of GD, heavy ball or preconditioned GD under the NQM, in closed form.

    For each B of ``batches`` the tuned steps S(B) to ``target`` (:func:`tuned_steps`) under
    ``noise(batch=B, scale=scale)``, and S_∞, the tuned steps with exact gradients.  The critical batch
    size is the smallest B of the grid with S(B) ≤ (1 + δ)·S_∞: beyond it, larger batches buy at most a
    factor 1 + δ in steps.  The default δ = 1 is McCandlish et al.'s (2018) critical batch: where the
    steps-versus-batch curve S(B) ≈ S_∞(1 + B_crit/B) sits at twice its floor, i.e. where the perfect-scaling
    line S ∝ 1/B meets the floor S_∞ (B_crit/δ for other δ).  The grid's spacing bounds its resolution.
    Preconditioned GD with P = H^{−p} (``precond=h**-p``) is the NQM paper's model of Adam-like methods.

    Parameters
    ----------
    problem, method, precond, start, target, momenta, points, refine, max_steps
        As for :func:`tuned_steps`.
    batches : sequence of float
    delta, scale : float
        δ > 0, and the per-example covariance factor.
    noise : type
        A model class of :mod:`quadlab.noise`: batch B's noise is ``noise(batch=B, scale=scale)``.

    Returns
    -------
    CriticalBatch
        In closed form (``monte_carlo`` False, ``seeds`` 0): S(B) and S_∞ from the exact expected loss.

    Raises
    ------
    ValueError
        For batches that are not increasing positive whole numbers, δ ≤ 0, and as :func:`tuned_steps`.

    Examples
    --------
    S(4) = 384 ≤ 2·S_∞ = 510 < S(1): B = 4 is critical; Student-t noise of the same covariance ties:

    >>> from quadlab import nqm, noise
    >>> h, kw = np.array([1.0, 10.0, 100.0]), dict(batches=[1, 4, 16, 64], points=10, refine=0)
    >>> cb = nqm.critical_batch(h, 1e-3, **kw)
    >>> cb.steps, cb.limit, cb.critical
    (array([1541,  384,  276,  260]), 255, 4.0)
    >>> bool((nqm.critical_batch(h, 1e-3, noise=noise.HeavyTailed, **kw).steps == cb.steps).all())
    True
    """
    batches, delta = _check_batches(batches, delta)
    kw = dict(method=method, precond=precond, start=start, momenta=momenta, points=points, refine=refine,
              max_steps=max_steps)
    lim = tuned_steps(problem, target, noise=None, **kw)
    rows = [tuned_steps(problem, target, noise=noise(batch=float(B), scale=scale), **kw) for B in batches]
    steps = np.array([r.steps for r in rows], dtype=np.int64)
    return CriticalBatch(batches, steps, np.array([r.lr for r in rows]), np.array([r.momentum for r in rows]),
                         lim.steps, lim.lr, delta, _critical(batches, steps, lim.steps, delta), method)


def _mc_steps(problem, optimizer, noise, seeds, max_steps, thr, w0):
    from .runner import run  # the runner imports nothing from here; a local import keeps nqm light

    if w0 is not None and noise is None:  # exact gradients from one start: one run per lr says it all
        seeds = seeds[:1]
    res = run(problem, optimizer, w0=w0, seeds=seeds, steps=max_steps, record="all", noise=noise)
    C, S = optimizer.n_configs, len(seeds)
    gap = np.where(np.isfinite(res.gap), res.gap, np.inf).reshape(C, S, -1)
    # a run stopped as diverged counts as infinite loss from there on; converged runs do not occur (tol=None)
    mean = gap.mean(axis=1)
    hit = mean <= thr
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    if not (first >= 0).any():
        return -1, float("nan")
    k = int(first[first >= 0].min())
    j = int(np.flatnonzero(first == k)[0])
    return k, float(optimizer.grid()["lr"][j])


def mc_critical_batch(problem, optimizer, target: float, *, batches=tuple(2.0**k for k in range(13)), seeds=range(32),
                      delta: float = 1.0, scale: float = 1.0, noise=NQM, start=None,
                      max_steps: int = 5000) -> CriticalBatch:
    """A Monte-Carlo critical batch size for any optimizer (Adam has no closed form under noise).

    For each B, every lr of ``optimizer``'s grid runs from every seed (:func:`quadlab.run`, noise from the
    seed, common to all lrs); E[f(w_k)] − f* is estimated by the mean over the seeds, and the tuned steps are
    the first k at which some lr's mean falls to ``target``·(E[f(w_0)] − f*) (exactly ½ tr H for the random
    start, ½ eᵀHe for a given one); B → ∞ runs the same grid with exact gradients.  The first crossing of a
    sample mean is biased early where the loss curve is flat (GD, κ = 10², B = 1, the closed form's tuned lr:
    2283, 2287, 2421 steps with 16, 64, 256 seeds against the exact 2513); compare optimizers on the same
    seeds and report their count.

    Parameters
    ----------
    problem : BlockQuadratic
    optimizer : quadlab.optim.Optimizer
        An lr grid (not refined: give a fine one), its other hyperparameters fixed to one value each.
    target, batches, delta, scale, noise, max_steps
        As for :func:`critical_batch`.
    seeds : iterable of int
    start : array_like, optional
        w0 − w* for every seed; None: the runner's random starts e_0 ~ N(0, I).

    Returns
    -------
    CriticalBatch
        Estimated (``monte_carlo`` True): S(B) the first step where the seeds' mean loss reaches ``target`` (−1: none).

    Raises
    ------
    ValueError
        For an optimizer without an lr grid or with other hyperparameters on a grid; as :func:`critical_batch`.

    Examples
    --------
    With exact gradients from one start the limit is the closed form's best over the same lr grid:

    >>> import quadlab
    >>> from quadlab import nqm, optim
    >>> P, lrs = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 10.0]]), rotation="none"), [0.05, 0.1]
    >>> mc = nqm.mc_critical_batch(P, optim.gd(lr=lrs), 0.01, batches=[1], seeds=[0], start=np.ones(2), max_steps=30)
    >>> mc.limit, int(nqm.steps_to_target(P, 0.01, lr=lrs, start=np.ones(2)).min())
    (11, 11)
    """
    from .optim import Optimizer

    if not isinstance(optimizer, Optimizer) or "lr" not in optimizer.hyper:
        raise ValueError("optimizer must be a quadlab.optim optimizer with an lr grid, e.g. optim.adam(lr=grid)")
    if any(v.size > 1 for k, v in optimizer.hyper.items() if k != "lr"):
        raise ValueError(f"fix the hyperparameters of {optimizer.name} other than lr to one value each")
    if not isinstance(problem, BlockQuadratic):
        raise ValueError("mc_critical_batch runs quadlab.run and needs a BlockQuadratic")
    batches, delta = _check_batches(batches, delta)
    target = _check_target(target)
    max_steps = _check_steps(max_steps, "max_steps")
    seeds = list(seeds)
    if start is None:
        w0, loss0 = None, 0.5 * float(np.sum(problem.eigenvalues))
    else:
        e0 = np.asarray(start, dtype=np.float64)
        if e0.shape != (problem.n,) or not np.isfinite(e0).all():
            raise ValueError(f"start must be {problem.n} finite numbers (w0 − w*), got shape {e0.shape}")
        w0 = problem.optimum_host + e0
        loss0 = float(problem.backend.to_numpy(problem.gap(problem.backend.asarray(w0))))
    thr = target * loss0
    lim, lim_lr = _mc_steps(problem, optimizer, None, seeds, max_steps, thr, w0)
    rows = [_mc_steps(problem, optimizer, noise(batch=float(B), scale=scale), seeds, max_steps, thr, w0)
            for B in batches]
    steps = np.array([r[0] for r in rows], dtype=np.int64)
    lrs = np.array([r[1] for r in rows])
    mom = np.full(batches.size, float(optimizer.hyper.get("momentum", optimizer.hyper.get("b1", [np.nan]))[0]))
    return CriticalBatch(batches, steps, lrs, mom, lim, lim_lr, delta, _critical(batches, steps, lim, delta),
                         optimizer.name, monte_carlo=True, seeds=len(seeds))

