"""f − f* and ‖∇f‖ of the linear methods at any step, from an eigendecomposition, without iterating.

For a preconditioner P = diag(p) (P = I for GD and momentum) put z = P^{-1/2} e and M = P^{1/2} H P^{1/2}
(block diagonal like H).  With M = V diag(μ) Vᵀ and c = Vᵀ z_0, every method here moves each eigen-
coordinate by a scalar recurrence, c_k = φ_k(μ) c, so

    f(w_k) − f* = ½ Σ_j μ_j c_j² φ_k(μ_j)²,      ∇f(w_k) = P^{-1/2} V diag(μ φ_k(μ)) c.

φ_k, the (1,1) entry of A^k for the method's 2×2 matrix A(μ), is evaluated without iterating by
:func:`~quadlab._engine.recurrence.multiplier` (see :mod:`quadlab._engine.recurrence`).

The eigenvalues are those of H as stored, the matrix the iteration multiplies by.  Stored blocks are
fl(Q Λ Qᵀ), whose eigenvalues differ from the prescribed Λ by a few ulps (5000 + 8.4e-13 on Case 3 at κ = 5000,
seed 0) — and at critical damping φ_{10⁴} moves by ~1e-8 per ulp of μ.  So for P = I on rotated
problems :func:`_eigen_pieces` refines them to ~2^-10 ulp from the generating eigenvectors (Rayleigh
quotients on an error-free matrix product, :func:`_stored_eigenvalues`) and carries them as double-double
μ + μ_lo into :func:`multiplier`.
"""

from __future__ import annotations

import numpy as np

from .eigenrefine import _stored_eigenvalues
from .ordered import matmul as fixed_matmul
from .ordered import sum_first
from .recurrence import multiplier

__all__ = ["multiplier", "evaluate", "Plan"]


def evaluate(problem, spec, E0: np.ndarray, steps: np.ndarray, want_grad: bool = True):
    """Gap and gradient norm at ``steps`` for every run of a :class:`~quadlab.optim.LinearSpec`.

    ``E0``: host (R, n) initial errors.  Returns host float64 arrays (R, T) ``gap`` and ``grad_norm``
    (``grad_norm`` is zero when ``want_grad`` is false).  To evaluate one problem at several step sets,
    build a :class:`Plan` once and call :meth:`Plan.values`."""
    return Plan(problem, spec, E0).values(steps, want_gap=True, want_grad=want_grad)


class _Piece:
    """One group of equal-size blocks of M = P^{1/2} H P^{1/2} for the runs of one preconditioner class.

    Backend arrays; kb blocks of size d, r runs, c = Vᵀ P^{-1/2} e_0 (kb, r, d).  Every quantity is formed
    as an amplitude and squared last, as the iteration forms ∇f and squares it (squaring first would put
    values below 1e-154 through the subnormal range before their weights scale them back up).

    W (kb, d, d) is Vᵀ P^{-1/2} when the gradient must be rotated back to coordinates to take its norm (P ≠ I
    with rotated blocks, unless p is one value per block), else None; each piece then carries either the W-free gradient amplitudes or the
    signed ones that W multiplies.

    GD kind (φ_k = σ^k e^{kL}, σ = sign(1 − ημ), L = log|1 − ημ| clamped at −1e300 so that 0·L = 0):
      L, lgap (kb, r, d)         L, and log(|c| √(μ/2)); the gap amplitude is a = e^{kL + lgap}, f − f* = Σ a²
      gfac (kb, 1, d)            without W (P = I, no rotation, or p one value per block): √(2μ/p), so that
                                 ‖∇f‖² = Σ (a·gfac)²; else None
      sfac, sfac_odd (kb, r, d)  with W: sign(c)·√(2μ) and σ·sign(c)·√(2μ), so that the eigen-coordinates of
                                 the gradient are y = μ c φ_k = a·sfac (k even) or a·sfac_odd (k odd) and
                                 ∇f = y W per block; else None
    Two-root kinds (φ_k signed, from :func:`multiplier`):
      agap0 (kb, r, d)           |c| √(μ/2): the gap amplitude at k = 0
      agrad0 (kb, r, d)          without W: μ |c| / √p, the gradient amplitude at k = 0; else None
      y0 (kb, r, d)              with W: μ c, the gradient's eigen-coordinates at k = 0; else None
      mu, mu_lo (kb, 1, 1, d)    μ, and the low half of the eigenvalue μ + μ_lo in double-double (see
                                 :func:`_eigen_pieces`) or None
    """

    __slots__ = ("kb", "d", "W", "L", "lgap", "gfac", "sfac", "sfac_odd", "agap0", "agrad0", "y0", "mu", "mu_lo")


class Plan:
    """What the closed form needs of (problem, spec, E0), computed once: the eigendecomposition of
    M = P^{1/2} H P^{1/2} per preconditioner class, the eigen-coordinates c = Vᵀ P^{-1/2} e_0 of every run,
    the per-mode amplitudes of f − f* and ∇f, and for GD-kind recurrences L = log|1 − ημ| per run and mode.

    Then for steps k (and any subset of runs) :meth:`values` evaluates

        f(w_k) − f* = Σ_j ½ μ_j c_j² φ_k(μ_j)²,      ‖∇f(w_k)‖² = ‖(μ ∘ c ∘ φ_k(μ)) Vᵀ P^{-1/2}‖²

    For GD (t = 1 − ημ) φ_k = sign(t)^k e^{k log|t|}, so each term is one exponential,
    √(½μ_j) |c_j| |φ_k| = exp(k log|t_j| + log(√(½μ_j) |c_j|)), and ∇f needs one d×d product per block only
    where a P that varies within a block meets a rotation (otherwise ‖∇f‖² = Σ_j μ_j² c_j² φ_k² / p_j is a weighted sum of the same
    terms).  log|t| is log1p(−ημ) for ημ < 1, so a step that barely moves a mode keeps its relative accuracy.
    The exponent has an absolute error of about eps·(|k log|t|| + |log(√(½μ)|c|)|), which is a relative
    error below 1e-13 for every term between 1e-300 and 1e300.  Exponents are clipped to [−700, 700]: a term
    below e^{−700} ≈ 1e-304 then squares to 0 (it is far below the 1e-250 that the results promise), and a
    term above e^{700} only occurs long after the run passed the 1e6 divergence threshold."""

    # elements of one (blocks × runs × steps × modes) slab: the temporaries stay in cache and below the
    # allocator's mmap threshold (larger slabs pay page faults on every temporary)
    chunk = 1 << 15

    def __init__(self, problem, spec, E0: np.ndarray):
        b = problem.backend
        xp = b.xp
        self.problem, self.spec, self.xp, self.backend = problem, spec, xp, b
        R = E0.shape[0]
        self.R = R
        eta = np.broadcast_to(np.asarray(spec.eta, dtype=np.float64), (R,))
        beta = np.zeros(R) if spec.momentum is None else np.broadcast_to(np.asarray(spec.momentum, dtype=np.float64), (R,))
        P = spec.precond
        if P is None:
            classes = [(np.arange(R), None)]
        else:
            P = np.asarray(P, dtype=np.float64)
            if P.ndim == 1:
                classes = [(np.arange(R), P)]
            else:
                uniq, inv = np.unique(P, axis=0, return_inverse=True)
                classes = [(np.flatnonzero(inv.reshape(-1) == u), uniq[u]) for u in range(uniq.shape[0])]
        self.classes = []
        with np.errstate(divide="ignore"):  # log 0 = −inf for a mode that e_0 does not excite
            for rows, p in classes:
                pieces = [self._piece(mu, mu_lo, V, coords, E0[rows], p, eta[rows])
                          for mu, mu_lo, V, coords in _eigen_pieces(problem, p)]
                self.classes.append((rows, pieces, eta[rows], beta[rows]))

    def _piece(self, mu, mu_lo, V, coords, E0, p, eta_r) -> _Piece:
        xp = self.xp
        f64 = xp.float64
        r = E0.shape[0]
        kb, d = mu.shape
        z0 = E0[:, coords]
        if p is not None:
            z0 = z0 / np.sqrt(p[coords])
        z0b = xp.asarray(np.ascontiguousarray(z0.reshape(r, kb, d).transpose(1, 0, 2)), dtype=f64)
        c = z0b if V is None else fixed_matmul(xp, z0b, V)  # (kb, r, d): c_j = v_jᵀ z, fixed order per run
        mu_b = xp.asarray(mu, dtype=f64)[:, None, :]  # (kb, 1, d)
        inv_sqrt_p = None if p is None else xp.asarray((1.0 / np.sqrt(p[coords])).reshape(kb, d), dtype=f64)[:, None, :]
        pc = _Piece()
        pc.kb, pc.d = kb, d
        pc.W = None
        # with p constant on each block (blockwise GD) P^{-1/2} commutes with V: ‖∇f‖² has no cross terms
        if inv_sqrt_p is not None and V is not None and not _blockwise_constant(p[coords], kb, d):
            pc.W = xp.matrix_transpose(V) * inv_sqrt_p  # W_ji = V_ij / √p_i
        pc.L = pc.lgap = pc.gfac = pc.sfac = pc.sfac_odd = pc.agap0 = pc.agrad0 = pc.y0 = pc.mu = pc.mu_lo = None
        absc = xp.abs(c)
        if self.spec.kind == "gd":
            x = eta_r[None, :, None] * mu[:, None, :]  # (kb, r, d) host: ημ
            if mu_lo is not None:
                x = x + eta_r[None, :, None] * mu_lo[:, None, :]
            L = np.where(x < 1.0, np.log1p(-np.minimum(x, 1.0)), np.log(np.maximum(x - 1.0, 0.0)))
            pc.L = xp.asarray(np.maximum(L, -1e300), dtype=f64)
            pc.lgap = xp.log(absc) + 0.5 * xp.log(0.5 * mu_b)
            root = xp.sqrt(2.0 * mu_b)
            if pc.W is None:
                pc.gfac = root if inv_sqrt_p is None else root * inv_sqrt_p
            else:
                sc = xp.sign(c) * root
                pc.sfac = sc
                pc.sfac_odd = xp.where(xp.asarray(x > 1.0), -sc, sc)
        else:
            pc.mu = mu_b[:, :, None, :]
            if mu_lo is not None:
                pc.mu_lo = xp.asarray(mu_lo, dtype=f64)[:, None, None, :]
            pc.agap0 = absc * xp.sqrt(0.5 * mu_b)
            if pc.W is None:
                pc.agrad0 = mu_b * absc if inv_sqrt_p is None else mu_b * absc * inv_sqrt_p
            else:
                pc.y0 = mu_b * c
        return pc

    def values(self, steps: np.ndarray, rows: np.ndarray | None = None, want_gap: bool = True, want_grad: bool = True):
        """Host float64 (len(rows), T) f − f* and ‖∇f‖ at ``steps`` for the runs ``rows`` (default all),
        in the order given; a quantity not wanted is returned as zeros."""
        xp, b = self.xp, self.backend
        steps = np.asarray(steps, dtype=np.int64)
        T = steps.size
        sel = np.arange(self.R) if rows is None else np.asarray(rows, dtype=np.int64)
        gap = np.zeros((sel.size, T))
        gsq = np.zeros((sel.size, T))
        pos = np.full(self.R, -1, dtype=np.int64)
        pos[sel] = np.arange(sel.size)
        for crows, pieces, eta_c, beta_c in self.classes:
            here = np.flatnonzero(pos[crows] >= 0)  # class-local indices of the selected runs
            if here.size == 0 or T == 0:
                continue
            out = pos[crows[here]]
            local = None if here.size == crows.size else xp.asarray(here)
            g_parts, s_parts = [], []
            for pc in pieces:
                g_c, s_c = self._piece_values(pc, local, steps, here.size, eta_c[here], beta_c[here], want_gap, want_grad)
                g_parts.append(g_c)
                s_parts.append(s_c)
            if want_gap:
                gap[out] = b.to_numpy(_total(g_parts))
            if want_grad:
                gsq[out] = b.to_numpy(_total(s_parts))
        return gap, np.sqrt(gsq)

    def _piece_values(self, pc, local, steps, r, eta_r, beta_r, want_gap, want_grad):
        """(r, T) backend arrays: this piece's share of f − f* and of ‖∇f‖² (None where not wanted)."""
        xp = self.xp
        f64 = xp.float64
        kb, d = pc.kb, pc.d

        def runs(a):  # (kb, R_class, d) → (kb, r, 1, d): the selected runs, broadcast over steps
            if a is None:
                return None
            a = a if local is None or a.shape[1] == 1 else xp.take(a, local, axis=1)
            return a[:, :, None, :]

        gd = pc.L is not None
        use_W = want_grad and pc.W is not None
        T = steps.size
        if gd:
            L, lgap, gfac = runs(pc.L), runs(pc.lgap), runs(pc.gfac)
            sfac, sfac_odd = (runs(pc.sfac), runs(pc.sfac_odd)) if use_W else (None, None)
            # with the rotation the sign σ^k matters: even and odd steps go in separate slabs, each with its
            # own signed factor, and the columns are put back in order at the end
            order = np.argsort(steps % 2, kind="stable") if use_W else np.arange(T)
            n_first = int(np.count_nonzero(steps % 2 == 0)) if use_W else T
        else:
            eta_b = xp.asarray(eta_r, dtype=f64)[None, :, None, None]
            beta_b = xp.asarray(beta_r, dtype=f64)[None, :, None, None]
            agap0, agrad0, y0 = runs(pc.agap0), runs(pc.agrad0), (runs(pc.y0) if use_W else None)
            order, n_first = np.arange(T), T
        ordered = steps[order]
        tc = max(1, self.chunk // max(1, kb * r * d))
        bounds = [(a, min(a + tc, n_first)) for a in range(0, n_first, tc)]
        bounds += [(a, min(a + tc, T)) for a in range(n_first, T, tc)]
        gs, ss = [], []

        def sumsq(a):  # Σ over modes, then over blocks one after the other, of a²: (kb, r, tc, d) → (r, tc)
            return sum_first(xp, xp.vecdot(a, a, axis=-1))

        for a0, a1 in bounds:
            kk = ordered[a0:a1]
            ks = xp.asarray(kk.astype(np.float64), dtype=f64)[None, None, :, None]
            if gd:
                amp = xp.exp(xp.clip(L * ks + lgap, min=-700.0, max=700.0))  # √(½μ)|c||φ_k|
                if want_gap:
                    gs.append(sumsq(amp))
                if want_grad and not use_W:
                    ss.append(sumsq(amp * gfac))
                y = (amp * (sfac_odd if a0 >= n_first else sfac)) if use_W else None
            else:
                phi = multiplier(xp, self.spec.kind, eta_b, beta_b, pc.mu, ks, pc.mu_lo)
                if want_gap:
                    gs.append(sumsq(phi * agap0))
                if want_grad and not use_W:
                    ss.append(sumsq(phi * agrad0))
                y = phi * y0 if use_W else None
            if y is not None:
                u = fixed_matmul(xp, self.backend.contiguous(xp.reshape(y, (kb, r * kk.size, d))), pc.W)
                ss.append(sum_first(xp, xp.reshape(xp.vecdot(u, u, axis=-1), (kb, r, kk.size))))
        inv = None if n_first == T else xp.asarray(np.argsort(order))

        def cat(parts):
            if not parts:
                return None
            out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
            return out if inv is None else xp.take(out, inv, axis=1)

        return cat(gs), cat(ss)


def _blockwise_constant(p, kb: int, d: int) -> bool:
    """Whether the preconditioner's diagonal is one value per block: then Vᵀ P^{-1} V = P^{-1} per block."""
    q = np.asarray(p).reshape(kb, d)
    return bool((q == q[:, :1]).all())


def _total(parts):
    out = parts[0]
    for q in parts[1:]:
        out = out + q
    return out


def _eigen_pieces(problem, p):
    """Yield (μ (k, d) host, μ_lo (k, d) host or None, V backend (k, d, d) or None, coords (k·d,))
    covering all coordinates, for M = P^{1/2} H P^{1/2} (P = I when p is None).  μ + μ_lo is an
    eigenvalue of the matrix as stored (the one the iteration multiplies by), an unevaluated double-double.

    rotation="none": H is diag(λ) stored exactly, so μ = λ (p·λ, rounded, with P).
    P = I with rotations ("block", "global", "given"): μ + μ_lo are the eigenvalues of the stored float64
    H_b, refined from the eigenvectors that generated it, by :func:`_stored_eigenvalues` (the prescribed
    λ is off by up to a few ulps, which at critical damping moves φ_{10⁴} by ~1e-8 per ulp).
    P ≠ I: eigh of M formed in float64 (μ_lo None), left so: an eigenvalue has an absolute error of a few
    eps·‖M_b‖ from forming M and from eigh, a relative error up to a few eps·κ(M_b) for the small ones
    (measured: ≤ 3.7 ulp on the reproducer's blocks, 3900 ulp = 9e-13 relative at κ = 1e4).  Only GD-kind
    specs carry a P (Jacobi, blockwise, Adam-theory), where φ_k = (1 − ημ)^k moves by k·ημ·(δμ/μ)/|1 − ημ|:
    below 1e-11 at k ≤ 10⁴ away from ημ = 1, without the critical damping that makes ulps matter above."""
    xp = problem.xp
    b = problem.backend
    if problem._diag is not None:
        lam = problem.eigenvalues
        mu = lam if p is None else p * lam
        yield mu.reshape(-1, 1), None, None, np.arange(problem.n)
        return
    vecs = problem.eigenvectors() if p is None else None
    for gi, g in enumerate(problem.groups):
        if p is None:
            Q = b.to_numpy(vecs[gi]).astype(np.float64, copy=False)
            H = b.to_numpy(g.H).astype(np.float64, copy=False)
            mu, mu_lo, Qn = _stored_eigenvalues(H, Q, np.asarray(g.lam, dtype=np.float64))
            yield mu, mu_lo, (vecs[gi] if Qn is None else b.asarray(Qn)), g.coords
            continue
        s = xp.asarray(np.sqrt(p[g.coords]).reshape(g.k, g.size), dtype=xp.float64)
        M = s[:, :, None] * xp.astype(g.H, xp.float64) * s[:, None, :]
        mu, V = xp.linalg.eigh(M)
        yield b.to_numpy(mu), None, V, g.coords


# ---------------------------------------------------------------------------------------------------------
# the first crossing: where a run converged (‖∇f_k‖ ≤ thr) or diverged (‖∇f_k‖ > div or not finite)

#: points evaluated per run in one round of the search: each round divides a run's interval by J + 1
_J = 15
#: (run × point × coordinate) elements per slab of the search, as for the scan
_BUDGET = 1 << 18


def search_kind(plan: Plan) -> np.ndarray:
    """Per run: 0 scan, 1 bisection on a non-increasing ‖∇f_k‖², 2 bisection on a convex ‖∇f_k‖².

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

    Not eligible (the scan stays): heavy ball and Nesterov (φ_k solves a two-root recurrence; with complex
    roots φ_k = r^k (a cos kθ + b sin kθ) oscillates), and a diagonal P that varies within a rotated block
    (Jacobi GD, the Adam theory form), where G has off-diagonal entries and s_k = Σ_ij G_ij y_i y_j has
    cross terms G_ij y_i y_j ∝ (t_i t_j)^k of either sign (they alternate where t_i t_j < 0).

    Floating point: each term is formed as (e^{clip(fl(k·L) + lgap)} · gfac)² from monotone operations, and
    the modes are summed in a fixed order, so where every L ≤ 0 the computed sequence is itself
    non-increasing (given a monotone exp), and the search returns the scan's step bit for bit.  In the convex
    case with growing modes the computed differences near the minimiser are rounding noise; the search can
    only disagree with the scan where thr lies within that noise of min_k s_k.
    """
    out = np.zeros(plan.R, dtype=np.int8)
    if plan.spec.kind != "gd":
        return out
    for rows, pieces, _eta, _beta in plan.classes:
        if any(pc.gfac is None for pc in pieces):
            continue
        grow = np.zeros(rows.size, dtype=bool)
        for pc in pieces:
            L = plan.backend.to_numpy(pc.L)
            excited = np.isfinite(plan.backend.to_numpy(pc.lgap))
            grow |= ((L > 0) & excited).any(axis=(0, 2))
        out[rows] = np.where(grow, 2, 1)
    return out


def _stops(norms, thr, div, tol_on):
    """Elementwise: (good, bad) for norms (m, J) against per-run thr, div (m,), as the iterate path decides."""
    bad = ~np.isfinite(norms) | (norms > div[:, None])
    good = (norms <= thr[:, None]) & ~bad if tol_on else np.zeros_like(bad)
    return good, bad


def _grad_norm_at(plan: Plan, rows: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """‖∇f‖ of run rows[i] at step ks[i, j], host (m, J): the same operations on the same operands as
    :meth:`Plan.values` (so the same bits), for GD-kind runs whose gradient norm has no cross terms."""
    pos = np.full(plan.R, -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    out = np.zeros(ks.shape)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows to inf: it is flagged
        _norms_into(plan, pos, ks, out)
    return out


def _norms_into(plan, pos, ks, out):
    """out[pos[r]] = ‖∇f‖ of run r at its steps, class by class, in slabs of at most _BUDGET elements."""
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
                a2 = amp * pc.gfac[:, :, None, :]
                s = sum_first(xp, xp.vecdot(a2, a2, axis=-1))
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


def first_stop(plan: Plan, rows, horizon, thr, div, tol_on: bool, search: str = "auto"):
    """First step k ≤ horizon at which each run of ``rows`` converged or diverged.

    Parameters
    ----------
    plan : the :class:`Plan` of the runs.
    rows : (m,) int, runs of the plan.
    horizon : (m,) int, the last step examined for each run.
    thr, div : (m,) float.  A run converged at the first k with ‖∇f_k‖ ≤ thr (when ``tol_on``) and diverged
        at the first k with ‖∇f_k‖ > div or not finite; whichever comes first decides.
    tol_on : whether convergence is tested at all.
    search : "auto" (bisection where :func:`search_kind` proves it exact, the scan elsewhere) or "scan"
        (every step, the reference).

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
    scan = np.flatnonzero(kind == 0)
    if scan.size:
        stop[scan], diverged[scan] = _scan(plan, rows[scan], horizon[scan], thr[scan], div[scan], tol_on)
    bis = np.flatnonzero(kind > 0)
    if bis.size:
        stop[bis], diverged[bis] = _bisect(plan, rows[bis], horizon[bis], thr[bis], div[bis], tol_on, kind[bis])
    return stop, diverged


def _bisect(plan, rows, horizon, thr, div, tol_on, kind):
    m = rows.size
    pos = np.full(plan.R, -1, dtype=np.int64)
    pos[rows] = np.arange(m)
    stop = np.full(m, -1, dtype=np.int64)
    diverged = np.zeros(m, dtype=bool)

    def test(which):
        def pred(r, ks):
            i = pos[r]
            good, bad = _stops(_grad_norm_at(plan, r, ks), thr[i], div[i], tol_on)
            return good if which == "good" else bad
        return pred

    def turn(r, ks):  # s_{k+1} ≥ s_k: the differences of a convex sequence change sign once
        g = _grad_norm_at(plan, r, np.concatenate([ks, ks + 1], axis=1))
        return g[:, ks.shape[1]:] >= g[:, :ks.shape[1]]

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
        turn_at[conv] = np.minimum(_first_true(rows[conv], zero[conv], horizon[conv] - 1, turn), horizon[conv])
    rest = np.flatnonzero(~decided)
    if tol_on and rest.size:
        # s ≤ thr² somewhere ⇔ at the minimiser; the first such k lies in [0, m], where s does not increase
        at_min, _ = _stops(_grad_norm_at(plan, rows[rest], turn_at[rest, None]), thr[rest], div[rest], True)
        hit = rest[at_min[:, 0]]
        if hit.size:
            stop[hit] = _first_true(rows[hit], zero[hit], turn_at[hit], test("good"))
            decided[hit] = True
    # no convergence: the first k > div, a suffix of [m, horizon] (empty where every mode decays)
    rest = np.flatnonzero(~decided & (kind == 2))
    if rest.size:
        k = _first_true(rows[rest], turn_at[rest], horizon[rest], test("bad"))
        ok = k <= horizon[rest]
        stop[rest[ok]] = k[ok]
        diverged[rest[ok]] = True
    return stop, diverged


def _scan(plan, rows, horizon, thr, div, tol_on):
    """Every step from 0, in slabs that double in length, each run up to its own horizon."""
    m = rows.size
    stop = np.full(m, -1, dtype=np.int64)
    diverged = np.zeros(m, dtype=bool)
    found = np.zeros(m, dtype=bool)
    k0, width = 0, 64
    budget = 1 << 21  # (run, step, mode) elements per slab: a bounded working set whatever the horizon
    n = plan.problem.n
    while True:
        live = np.flatnonzero(~found & (horizon >= k0))
        if live.size == 0:
            return stop, diverged
        # slabs double in length, so a run that stops early is not carried through a long slab, and the
        # steps evaluated stay within twice the horizon
        k1 = min(int(horizon[live].max()), k0 + max(64, min(width, budget // (live.size * n))) - 1)
        width *= 2
        _, gn = plan.values(np.arange(k0, k1 + 1), rows=rows[live], want_gap=False)
        good, bad = _stops(gn, thr[live], div[live], tol_on)
        fg = np.where(good.any(axis=1), good.argmax(axis=1), -1)
        fb = np.where(bad.any(axis=1), bad.argmax(axis=1), -1)
        conv = (fg >= 0) & ((fb < 0) | (fg < fb))
        dive = (fb >= 0) & ~conv
        stop[live[conv]] = fg[conv] + k0
        stop[live[dive]] = fb[dive] + k0
        diverged[live[dive]] = True
        found[live[conv | dive]] = True
        k0 = k1 + 1
