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

import weakref

import numpy as np

from .eigenrefine import _stored_eigenvalues
from .ordered import block_dot
from .ordered import matmul as fixed_matmul
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
      blo, bhi (kb, 1, d)        bounds for the stop search: with W, √(2μ·q_lo) and √(2μ·q_hi), q_lo and q_hi
                                 the least and largest 1/p_i of the block, so that Σ (a·blo)² ≤ ‖∇f‖² ≤
                                 Σ (a·bhi)² (W Wᵀ = Vᵀ P⁻¹ V has the eigenvalues 1/p_i of the block);
                                 without W both are gfac
    Two-root kinds (φ_k signed, from :func:`multiplier`):
      agap0 (kb, r, d)           |c| √(μ/2): the gap amplitude at k = 0
      agrad0 (kb, r, d)          without W: μ |c| / √p, the gradient amplitude at k = 0; else None
      y0 (kb, r, d)              with W: μ c, the gradient's eigen-coordinates at k = 0; else None
      mu, mu_lo (kb, 1, 1, d)    μ, and the low half of the eigenvalue μ + μ_lo in double-double (see
                                 :func:`_eigen_pieces`) or None
    """

    __slots__ = ("kb", "d", "W", "L", "lgap", "gfac", "sfac", "sfac_odd", "blo", "bhi", "agap0", "agrad0", "y0", "mu",
                 "mu_lo")


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
        pc.L = pc.lgap = pc.gfac = pc.sfac = pc.sfac_odd = pc.blo = pc.bhi = None
        pc.agap0 = pc.agrad0 = pc.y0 = pc.mu = pc.mu_lo = None
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
                pc.blo = pc.bhi = pc.gfac
            else:
                sc = xp.sign(c) * root
                pc.sfac = sc
                pc.sfac_odd = xp.where(xp.asarray(x > 1.0), -sc, sc)
                q = (1.0 / p[coords]).reshape(kb, d)
                pc.blo = root * xp.asarray(np.sqrt(q.min(axis=1)), dtype=f64)[:, None, None]
                pc.bhi = root * xp.asarray(np.sqrt(q.max(axis=1)), dtype=f64)[:, None, None]
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

        def sumsq(a):  # Σ over the modes in turn, then over the blocks in turn, of a²: (kb, r, tc, d) → (r, tc)
            return block_dot(xp, a, a)

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
                ss.append(xp.reshape(block_dot(xp, u, u), (r, kk.size)))  # coordinates in turn, then blocks
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


#: problem → its refined eigenpieces for P = I (a problem's H never changes after it is built)
_REFINED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REFINED_MAX = 1 << 22  # eigenvector entries (32 MB) up to which they are kept with the problem


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
    if p is None:
        # the problem's own eigenpairs, whatever the run: kept with the problem (regenerating the Haar factors
        # and refining the eigenvalues cost more than a learning-rate search's evaluations on small blocks)
        pieces = _REFINED.get(problem)
        if pieces is None:
            vecs = problem.eigenvectors()
            pieces = []
            for gi, g in enumerate(problem.groups):
                Q = b.to_numpy(vecs[gi]).astype(np.float64, copy=False)
                H = b.to_numpy(g.H).astype(np.float64, copy=False)
                mu, mu_lo, Qn = _stored_eigenvalues(H, Q, np.asarray(g.lam, dtype=np.float64))
                for a in (mu, mu_lo):  # shared by every later plan: read-only
                    if isinstance(a, np.ndarray):
                        a.setflags(write=False)
                pieces.append((mu, mu_lo, (vecs[gi] if Qn is None else b.asarray(Qn)), g.coords))
            if sum(int(np.size(v)) for _, _, v, _ in pieces) <= _REFINED_MAX:  # not a large rotation's n × n
                _REFINED[problem] = pieces
        yield from pieces
        return
    for g in problem.groups:
        s = xp.asarray(np.sqrt(p[g.coords]).reshape(g.k, g.size), dtype=xp.float64)
        M = s[:, :, None] * xp.astype(g.H, xp.float64) * s[:, None, :]
        mu, V = xp.linalg.eigh(M)
        yield b.to_numpy(mu), None, V, g.coords
