"""The first step at which a closed-form run converged (‖∇f_k‖ ≤ thr) or diverged (‖∇f_k‖ > div or not
finite), evaluating as few steps k of the :class:`~quadlab._engine.closed_form.Plan` as a proof allows.

The reference is the scan of every step k = 0, 1, … with :meth:`Plan.values`.  Every shortcut here returns
the scan's step, bit for bit, because it only ever skips steps at which the scan's own computed test provably
fails, and evaluates the others with the same operations on the same operands:

* bisection (:func:`search_kind` 1 and 2) where ‖∇f_k‖² is a non-increasing or convex sequence;
* a bounded scan (kind 3) for GD-kind runs whose preconditioner varies inside a rotated block (the Adam theory
  form, Jacobi GD): there ‖∇f_k‖² has cross terms of either sign, but lies between two convex sequences
  (:func:`search_kind`), which locate the first step at which a crossing is possible at all; the scan starts
  there, and a run for which no crossing is possible is not scanned.
"""

from __future__ import annotations

import numpy as np

from .ordered import block_dot

__all__ = ["search_kind", "first_stop"]

#: points evaluated per run in one round of the search: each round divides a run's interval by J + 1
_J = 15
#: (run × point × coordinate) elements per slab of the search, as for the scan
_BUDGET = 1 << 18
_EPS = 2.0 ** -53
#: relative margin of the bounded scan: a step is skipped only where the bound clears a threshold by this much
_MARGIN = 2.0 ** -20
#: thresholds (norms) beyond 1e±140 keep the plain scan: their squares approach under- or overflow
_SAFE = 1e140


def search_kind(plan) -> np.ndarray:
    """Per run: 0 scan, 1 bisection on a non-increasing ‖∇f_k‖², 2 bisection on a convex ‖∇f_k‖², 3 scan from
    the first step the bounds allow, 4 (heavy ball) scan unless bounds show no crossing in the whole horizon.

    **Claim.**  For a GD-kind spec (φ_k = t^k, t = 1 − ημ) whose gradient norm has no cross terms, that is
    ‖∇f_k‖² = Σ_j w_j t_j^{2k} with w_j = (μ_j c_j)²/p_j ≥ 0, the sequence s_k = ‖∇f_k‖² is convex in k, and
    non-increasing when every excited mode (c_j ≠ 0) has |t_j| ≤ 1.

    *Proof.*  ∇f_k = P^{-1/2} V y_k with y_k = μ ∘ c ∘ φ_k(μ), so s_k = y_kᵀ G y_k with G = Vᵀ P^{-1} V.
    G is diagonal, G = diag(1/p), when P = I (V is orthogonal, G = I), when H is stored unrotated (V = I,
    any diagonal P), or when p is one value per block (blockwise GD: P^{-1} commutes with each block's V).
    Then s_k = Σ_j w_j ρ_j^k with ρ_j = t_j² ≥ 0.  Each term has second difference
    w ρ^{k−1} (ρ − 1)² ≥ 0 (k ≥ 1, with 0⁰ = 1), so each term and hence the sum is a convex sequence; each
    term is non-increasing when ρ_j ≤ 1.  ∎

    Consequences used by :func:`first_stop`: the differences s_{k+1} − s_k are non-decreasing, so s falls
    to its first minimiser m and rises after it; {k : s_k ≤ thr²} is an interval that starts at or before
    m; and as s_0 ≤ div² (div is 10⁶‖∇f_0‖) the set {k : s_k > div²} is a suffix.  Each predicate is
    therefore monotone on the interval searched, and a search that evaluates J points per run and keeps the
    sub-interval where the predicate turns finds the first crossing in ⌈log_{J+1} K⌉ rounds.

    **Bounds (kind 3).**  Where a diagonal P varies inside a rotated block (Jacobi GD, the Adam theory form) G
    has off-diagonal entries and s_k = Σ_ij G_ij y_i y_j has cross terms (t_i t_j)^k of either sign.  But G's
    block b has the eigenvalues 1/p_i, i in b, so with q_b = min 1/p_i and Q_b = max 1/p_i over the block,
    ℓ_k = Σ_b q_b ‖y_{k,b}‖² ≤ s_k ≤ Σ_b Q_b ‖y_{k,b}‖² = u_k, and ℓ, u are sums w_j t_j^{2k} with w_j ≥ 0:
    convex, as above.  A convergence needs ℓ_k ≤ thr² and a divergence u_k > div², so no step before the
    first k where either holds can stop the run; both first steps are found by the bisection above, on ℓ and
    u in place of s.

    **Heavy ball (kind 4).**  Without cross terms (P = I), ‖∇f_k‖² = Σ_j w_j φ_k(μ_j)² with w_j = (μ_j c_j)²
    and φ_k = c_k + e s_k (:mod:`quadlab._engine.recurrence`: roots r1, r2 of z² − tz + β, t = 1 + β − ημ,
    e = t/2 − β, c_k = (r1^k + r2^k)/2, s_k = Σ_{i<k} r1^i r2^{k−1−i}).  φ oscillates where the roots are
    complex, so no bisection; but a run whose whole horizon H can be shown to hold no crossing is not scanned.
    With ρ = max|r_i|, |c_k| ≤ ρ^k and |s_k| ≤ kρ^{k−1}, so |φ_k| ≤ ρ^k(1 + a k), a = |e|/ρ, whose largest
    value over [0, H] is taken at k = −1/ln ρ − 1/a (clipped to [0, H]): u = Σ_j w_j max_k φ_k² bounds every
    ‖∇f_k‖², and u < div² rules divergence out.  Where both roots are real and positive, e ≥ √β(1 − √β) ≥ 0
    (t ≥ 2√β), c_k ≥ r1^k/2 and s_k ≥ 0, so φ_k ≥ min(1, r1^H)/2 on [0, H]: ℓ = Σ over those modes of
    w_j min(1, r1^H)²/4 bounds every ‖∇f_k‖² from below, and ℓ > thr² rules convergence out.  The roots are
    formed in float64 from the rounded t; the discriminant's absolute error (a few eps·t²) is added to it for ρ
    and subtracted for r1, a mode counts as real only where the discriminant clears that error, and both
    comparisons keep the margin δ below.  Both bounded searches (kinds 3 and 4) are relative statements, so they
    are used only where thr > 1e-140 and div < 1e140: nearer the ends of the float range the computed squares
    under- or overflow, their errors are absolute, and the scan decides every step.

    Floating point: each term is formed as (e^{clip(fl(k·L) + lgap)} · gfac)² from monotone operations, and
    the modes are summed in a fixed order, so where every L ≤ 0 the computed sequence is itself
    non-increasing (given a monotone exp), and the search returns the scan's step bit for bit.  In the convex
    case with growing modes the computed differences near the minimiser are rounding noise; the search can
    only disagree with the scan where thr lies within that noise of min_k s_k.  The bounded scan compares ℓ
    and u with thr(1 + δ) and div(1 − δ), δ = 2⁻²⁰: the computed s_k differs from the exact form of the same
    computed amplitudes by at most about (d + 2)u·√(d·Q_b/q_b) relatively (the d-term products by W, whose
    column i has norm 1/√p_i), far below δ, and a class whose ratio Q_b/q_b would bring it near δ is scanned.
    """
    out = np.zeros(plan.R, dtype=np.int8)
    if plan.spec.kind == "heavy_ball" and all(pc.agrad0 is not None for _, pieces, _, _ in plan.classes
                                              for pc in pieces):
        out[:] = 4
        return out
    if plan.spec.kind != "gd":
        return out
    for rows, pieces, _eta, _beta in plan.classes:
        bounded = any(pc.gfac is None for pc in pieces)
        if bounded and _rounding(plan, pieces) > _MARGIN / 16:
            continue
        grow = np.zeros(rows.size, dtype=bool)
        for pc in pieces:
            L = plan.backend.to_numpy(pc.L)
            excited = np.isfinite(plan.backend.to_numpy(pc.lgap))
            grow |= ((L > 0) & excited).any(axis=(0, 2))
        out[rows] = 3 if bounded else np.where(grow, 2, 1)
    return out


def _rounding(plan, pieces) -> float:
    """A generous bound on the relative difference between the computed ‖∇f_k‖ and the exact form of its
    computed eigen-coordinates, for a class with W products (:func:`search_kind`)."""
    worst = 0.0
    for pc in pieces:
        if pc.W is not None:
            lo, hi = plan.backend.to_numpy(pc.blo), plan.backend.to_numpy(pc.bhi)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.max(np.where(lo > 0, (hi / lo) ** 2, np.inf))
            worst = max(worst, 8.0 * (pc.d + 2) * _EPS * np.sqrt(pc.d * ratio))
    return worst + 8.0 * (plan.problem.n + 2) * _EPS


def _stops(norms, thr, div, tol_on):
    """Elementwise: (good, bad) for norms (m, J) against per-run thr, div (m,), as the iterate path decides."""
    bad = ~np.isfinite(norms) | (norms > div[:, None])
    good = (norms <= thr[:, None]) & ~bad if tol_on else np.zeros_like(bad)
    return good, bad


def _grad_norm_at(plan, rows: np.ndarray, ks: np.ndarray, factor: str = "gfac") -> np.ndarray:
    """√(Σ (a·f)²) of run rows[i] at step ks[i, j], host (m, J), f the pieces' ``factor``: with "gfac" the
    gradient norm by the same operations on the same operands as :meth:`Plan.values` (so the same bits) for
    GD-kind runs without cross terms; with "blo" and "bhi" the bounds √ℓ_k and √u_k of :func:`search_kind`."""
    pos = np.full(plan.R, -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    out = np.zeros(ks.shape)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows to inf: it is flagged
        _norms_into(plan, pos, ks, out, factor)
    return out


def _norms_into(plan, pos, ks, out, factor):
    """out[pos[r]] = the norm of run r at its steps, class by class, in slabs of at most _BUDGET elements."""
    xp, b = plan.xp, plan.backend
    for crows, pieces, _eta, _beta in plan.classes:
        here = np.flatnonzero(pos[crows] >= 0)
        if here.size == 0:
            continue
        at = pos[crows[here]]
        n = sum(pc.kb * pc.d for pc in pieces)
        step = max(1, _BUDGET // max(1, n * ks.shape[1]))
        for a in range(0, here.size, step):
            loc, o = here[a:a + step], at[a:a + step]
            local = xp.asarray(loc)
            kk = xp.asarray(ks[o].astype(np.float64), dtype=xp.float64)[None, :, :, None]
            total = None
            for pc in pieces:
                L = xp.take(pc.L, local, axis=1)[:, :, None, :]
                lgap = xp.take(pc.lgap, local, axis=1)[:, :, None, :]
                amp = xp.exp(xp.clip(L * kk + lgap, min=-700.0, max=700.0))
                a2 = amp * getattr(pc, factor)[:, :, None, :]
                s = block_dot(xp, a2, a2)  # Plan.values' order: modes in turn, then blocks
                total = s if total is None else total + s
            out[o] = np.sqrt(b.to_numpy(total))


def _first_true(rows, lo, hi, pred):
    """Per run i, the first k in [lo_i, hi_i] where ``pred`` holds (hi_i + 1 where none), ``pred`` being
    monotone (false, then true) on that interval.  ``pred(rows, ks)`` → bool (m, J).  Each round evaluates
    J points of every open interval and keeps the part between the last false and the first true point."""
    lo = lo.astype(np.int64).copy()
    end = hi.astype(np.int64) + 1  # the answer lies in [lo, end]; end = hi + 1 means "none so far"
    j = np.arange(1, _J + 1)
    while True:
        open_ = np.flatnonzero(lo < end)
        if open_.size == 0:
            return end
        n = (end - lo)[open_, None]
        spread = lo[open_, None] + (j[None, :] * n) // (_J + 1)
        dense = lo[open_, None] + np.minimum(j[None, :] - 1, n - 1)
        x = np.where(n > _J, spread, dense)
        hit = pred(rows[open_], x)
        anyhit = hit.any(axis=1)
        first = hit.argmax(axis=1)
        prev = np.where(first > 0, x[np.arange(open_.size), np.maximum(first - 1, 0)] + 1, lo[open_])
        lo[open_] = np.where(anyhit, prev, x[:, -1] + 1)
        end[open_] = np.where(anyhit, x[np.arange(open_.size), first], end[open_])


def first_stop(plan, rows, horizon, thr, div, tol_on: bool, search: str = "auto"):
    """First step k ≤ horizon at which each run of ``rows`` converged or diverged.

    Parameters
    ----------
    plan : the :class:`~quadlab._engine.closed_form.Plan` of the runs.
    rows : (m,) int, runs of the plan.
    horizon : (m,) int, the last step examined for each run.
    thr, div : (m,) float.  A run converged at the first k with ‖∇f_k‖ ≤ thr (when ``tol_on``) and diverged
        at the first k with ‖∇f_k‖ > div or not finite; whichever comes first decides.
    tol_on : whether convergence is tested at all.
    search : "auto" (bisection or a bounded scan where :func:`search_kind` proves it exact, the scan
        elsewhere) or "scan" (every step, the reference).

    Returns
    -------
    stop : (m,) int, the first such k, −1 where none in [0, horizon].
    diverged : (m,) bool, whether that step was a divergence.

    Raises
    ------
    ValueError
        If ``search`` is neither "auto" nor "scan".
    """
    if search not in ("auto", "scan"):
        raise ValueError(f"search must be 'auto' or 'scan', got {search!r}")
    rows = np.asarray(rows, dtype=np.int64)
    horizon, thr, div = (np.asarray(a).reshape(rows.shape) for a in (horizon, thr, div))
    stop = np.full(rows.size, -1, dtype=np.int64)
    diverged = np.zeros(rows.size, dtype=bool)
    kind = search_kind(plan)[rows] if search == "auto" else np.zeros(rows.size, dtype=np.int8)
    start = np.zeros(rows.size, dtype=np.int64)
    # the bounds are relative: near the ends of the float range (squares that underflow or overflow) the
    # computed norms' absolute errors are not, so there the scan decides every step
    safe = (div < _SAFE) & ((thr > 1.0 / _SAFE) if tol_on else True)
    kind = np.where(((kind == 3) | (kind == 4)) & ~safe, 0, kind)
    bounded = np.flatnonzero(kind == 3)
    if bounded.size:
        start[bounded] = _first_possible(plan, rows[bounded], horizon[bounded], thr[bounded], div[bounded], tol_on)
    hb = np.flatnonzero(kind == 4)
    if hb.size:  # a run the bounds clear is not scanned: start past its horizon
        clear = _two_root_clear(plan, rows[hb], horizon[hb], thr[hb], div[hb], tol_on)
        start[hb[clear]] = horizon[hb[clear]] + 1
    scan = np.flatnonzero((kind == 0) | (((kind == 3) | (kind == 4)) & (start <= horizon)))
    if scan.size:
        stop[scan], diverged[scan] = _scan(plan, rows[scan], start[scan], horizon[scan], thr[scan], div[scan],
                                           tol_on)
    bis = np.flatnonzero((kind == 1) | (kind == 2))
    if bis.size:
        stop[bis], diverged[bis] = _bisect(plan, rows[bis], horizon[bis], thr[bis], div[bis], tol_on, kind[bis])
    return stop, diverged


def _two_root_clear(plan, rows, horizon, thr, div, tol_on):
    """Per run of a heavy-ball plan (P = I): True where the bounds of :func:`search_kind` (kind 4) show that no
    step in [0, horizon] converges (when ``tol_on``) or diverges."""
    eps = np.finfo(np.float64).eps
    pos = np.full(plan.R, -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    lo2, hi2 = np.zeros(rows.size), np.zeros(rows.size)
    H = horizon.astype(np.float64)
    for crows, pieces, eta_c, beta_c in plan.classes:
        here = np.flatnonzero(pos[crows] >= 0)
        if here.size == 0:
            continue
        at = pos[crows[here]]
        eta, beta, h = eta_c[here][:, None], beta_c[here][:, None], H[at][:, None]
        for pc in pieces:
            mu = plan.backend.to_numpy(pc.mu).reshape(pc.kb * pc.d)[None, :]
            w = np.square(plan.backend.to_numpy(pc.agrad0)[:, here, :].transpose(1, 0, 2).reshape(here.size, -1))
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                t = 1.0 + beta - eta * mu
                D = t * t - 4.0 * beta
                err = 16.0 * eps * (t * t + 4.0 * beta)  # D's absolute error, with room
                rho = (0.5 * np.abs(t) + 0.5 * np.sqrt(np.maximum(D + err, 0.0))) * (1.0 + 8.0 * eps)
                rho = np.maximum(rho, np.sqrt(beta) * (1.0 + 8.0 * eps))
                a = np.abs(0.5 * t - beta) * (1.0 + 8.0 * eps) / rho
                # max over k in [0, h] of ρ^k (1 + a k): at k* = −1/ln ρ − 1/a where that lies inside
                lr = np.log(rho)
                ks = np.where(lr < 0, -1.0 / lr - 1.0 / np.where(a > 0, a, np.inf), h)
                ks = np.clip(np.nan_to_num(ks, nan=0.0, posinf=0.0), 0.0, h)
                peak = np.maximum(1.0, np.exp(ks * lr) * (1.0 + a * ks))
                peak = np.maximum(peak, np.exp(h * lr) * (1.0 + a * h))  # the end, where ρ ≥ 1
                hi2[at] += np.sum(w * np.square(peak), axis=1)
                real = (t > 0) & (D - err > 1e-8 * t * t) & (beta > 0)
                r1 = (0.5 * t + 0.5 * np.sqrt(np.maximum(D - err, 0.0))) * (1.0 - 8.0 * eps)
                low = 0.5 * np.minimum(1.0, np.exp(h * np.log(np.where(real, r1, 1.0))) * (1.0 - 64.0 * eps * h))
                lo2[at] += np.sum(np.where(real, w * np.square(low), 0.0), axis=1)
    margin = 1.0 + _MARGIN
    no_div = np.isfinite(hi2) & (np.sqrt(hi2) * margin < div)
    no_conv = (np.sqrt(lo2) > thr * margin) if tol_on else np.ones(rows.size, dtype=bool)
    return no_div & no_conv


def _below(plan, pos, level, factor):
    """The predicate ‖·‖_factor ≤ level of each run, for :func:`_first_true`."""
    def pred(r, ks):
        return _grad_norm_at(plan, r, ks, factor) <= level[pos[r]][:, None]
    return pred


def _turn(plan, rows, horizon, factor):
    """The first k in [0, horizon − 1] with s_{k+1} ≥ s_k (s the squared ``factor`` norm, a convex sequence:
    its differences change sign once), or the horizon."""
    def turn(r, ks):
        g = _grad_norm_at(plan, r, np.concatenate([ks, ks + 1], axis=1), factor)
        return g[:, ks.shape[1]:] >= g[:, :ks.shape[1]]
    zero = np.zeros(rows.size, dtype=np.int64)
    return np.minimum(_first_true(rows, zero, horizon - 1, turn), horizon)


def _first_below(plan, rows, pos, turn_at, level, factor):
    """Per run, the first k ≤ turn_at where the convex ``factor`` norm is ≤ level (it is then at or before
    the minimiser, where the sequence does not increase), or −1 where it never is."""
    out = np.full(rows.size, -1, dtype=np.int64)
    at_min = _grad_norm_at(plan, rows, turn_at[:, None], factor)[:, 0] <= level[pos[rows]]
    hit = np.flatnonzero(at_min)
    if hit.size:
        out[hit] = _first_true(rows[hit], np.zeros(hit.size, dtype=np.int64), turn_at[hit],
                               _below(plan, pos, level, factor))
    return out


def _first_possible(plan, rows, horizon, thr, div, tol_on):
    """Per run, the first k at which the bounds of :func:`search_kind` allow a crossing: ℓ_k ≤ thr(1 + δ)
    (when ``tol_on``) or u_k > div(1 − δ) (or not finite); horizon + 1 where none does."""
    pos = np.full(plan.R, -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    start = horizon + 1
    if tol_on:
        k = _first_below(plan, rows, pos, _turn(plan, rows, horizon, "blo"), thr * (1.0 + _MARGIN), "blo")
        start = np.where(k >= 0, k, start)
    level = div * (1.0 - _MARGIN)

    def above(r, ks):  # the complement of ≤, so that NaN and inf count as a possible divergence
        return ~_below(plan, pos, level, "bhi")(r, ks)

    zero = np.zeros(rows.size, dtype=np.int64)
    at0 = above(rows, zero[:, None])[:, 0]
    # u is convex: {u > level} is a prefix (here empty unless k = 0 is in it) and a suffix after the minimiser
    turn = _turn(plan, rows, horizon, "bhi")
    k = np.where(at0, 0, _first_true(rows, turn, horizon, above))
    return np.minimum(start, k)


def _bisect(plan, rows, horizon, thr, div, tol_on, kind):
    m = rows.size
    pos = np.full(plan.R, -1, dtype=np.int64)
    pos[rows] = np.arange(m)
    stop = np.full(m, -1, dtype=np.int64)
    diverged = np.zeros(m, dtype=bool)

    def bad(r, ks):
        i = pos[r]
        return _stops(_grad_norm_at(plan, r, ks), thr[i], div[i], tol_on)[1]

    zero = np.zeros(m, dtype=np.int64)
    # k = 0 decides alone when the start is itself beyond div (then nothing below is monotone)
    g0, b0 = _stops(_grad_norm_at(plan, rows, zero[:, None]), thr, div, tol_on)
    decided = g0[:, 0] | b0[:, 0]
    stop[decided] = 0
    diverged[decided] = b0[decided, 0]
    # the minimiser m: the horizon where s never increases, else the first k with s_{k+1} ≥ s_k
    turn_at = horizon.copy()
    conv = np.flatnonzero((kind == 2) & ~decided)
    if conv.size:
        turn_at[conv] = _turn(plan, rows[conv], horizon[conv], "gfac")
    rest = np.flatnonzero(~decided)
    if tol_on and rest.size:
        # s ≤ thr² somewhere ⇔ at the minimiser; the first such k lies in [0, m], where s does not increase
        # (≤ thr and finite: a norm at or below thr is never beyond div, which is 10⁶ times larger)
        k = _first_below(plan, rows[rest], pos, turn_at[rest], thr, "gfac")
        hit = rest[k >= 0]
        stop[hit] = k[k >= 0]
        decided[hit] = True
    # no convergence: the first k > div, a suffix of [m, horizon] (empty where every mode decays)
    rest = np.flatnonzero(~decided & (kind == 2))
    if rest.size:
        k = _first_true(rows[rest], turn_at[rest], horizon[rest], bad)
        ok = k <= horizon[rest]
        stop[rest[ok]] = k[ok]
        diverged[rest[ok]] = True
    return stop, diverged


def _scan(plan, rows, start, horizon, thr, div, tol_on):
    """Every step from each run's ``start`` to its horizon, in slabs that double in length (a slab may begin a
    little before a run's start: those steps cannot stop it)."""
    m = rows.size
    stop = np.full(m, -1, dtype=np.int64)
    diverged = np.zeros(m, dtype=bool)
    found = np.zeros(m, dtype=bool)
    k0, width = 0, 64
    budget = 1 << 21  # (run, step, mode) elements per slab: a bounded working set whatever the horizon
    n = plan.problem.n
    while True:
        pending = np.flatnonzero(~found & (horizon >= np.maximum(k0, start)))
        if pending.size == 0:
            return stop, diverged
        if start[pending].min() > k0:  # no run needs the steps before the next start
            k0, width = int(start[pending].min()), 64
        # slabs double in length, so a run that stops early is not carried through a long slab, and the
        # steps evaluated stay within twice the horizon
        k1 = min(int(horizon[pending].max()), k0 + max(64, min(width, budget // (pending.size * n))) - 1)
        width *= 2
        live = pending[start[pending] <= k1]
        _, gn = plan.values(np.arange(k0, k1 + 1), rows=rows[live], want_gap=False)
        good, bad = _stops(gn, thr[live], div[live], tol_on)
        # a run's steps beyond its own horizon are not its trajectory's
        past = np.arange(k0, k1 + 1)[None, :] > horizon[live, None]
        good &= ~past
        bad &= ~past
        fg = np.where(good.any(axis=1), good.argmax(axis=1), -1)
        fb = np.where(bad.any(axis=1), bad.argmax(axis=1), -1)
        conv = (fg >= 0) & ((fb < 0) | (fg < fb))
        dive = (fb >= 0) & ~conv
        stop[live[conv]] = fg[conv] + k0
        stop[live[dive]] = fb[dive] + k0
        diverged[live[dive]] = True
        found[live[conv | dive]] = True
        k0 = k1 + 1
