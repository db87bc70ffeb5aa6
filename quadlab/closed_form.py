"""f − f* and ‖∇f‖ of the linear methods at any step, from an eigendecomposition, without iterating.

For a preconditioner P = diag(p) (P = I for GD and momentum) put z = P^{-1/2} e and M = P^{1/2} H P^{1/2}
(block diagonal like H).  With M = V diag(μ) Vᵀ and c = Vᵀ z_0, every method here moves each eigen-
coordinate by a scalar recurrence, c_k = φ_k(μ) c, so

    f(w_k) − f* = ½ Σ_j μ_j c_j² φ_k(μ_j)²,      ∇f(w_k) = P^{-1/2} V diag(μ φ_k(μ)) c.

φ_k is the (1,1) entry of A^k for the method's 2×2 matrix A(μ) acting on (error, momentum):

    GD:          A = [[1−ημ]]                                   t = 1−ημ,          d = 0
    heavy ball:  A = [[1−ημ, −ηβ], [μ, β]]                      t = 1−ημ+β,        d = β
    Nesterov:    A = [[1−ημ(1+β), −ηβ²], [μ, β]]                t = 1−ημ(1+β)+β,   d = β(1−ημ)

With roots r1, r2 of z² − t z + d (|r1| ≥ |r2|), Cayley–Hamilton gives (A^k)_{11} = s_{k+1} − β s_k with
s_k = (r1^k − r2^k)/(r1 − r2) = r1^{k−1} (1 − q^k)/(1 − q), q = r2/r1.  The ratio is evaluated as
expm1(kL)/expm1(L), L = log r2 − log r1, when the roots are close, so that near-critical damping keeps its
accuracy; d = 0 (GD, β = 0) is done in real arithmetic as t^k.
"""

from __future__ import annotations

import numpy as np

__all__ = ["multiplier", "evaluate"]

_CHUNK = 2_000_000  # elements of one (runs × steps × modes) slab


def _cexpm1(xp, z):
    """exp(z) − 1 for complex z without cancellation: expm1(x)cos y − 2 sin²(y/2) + i eˣ sin y."""
    x, y = xp.real(z), xp.imag(z)
    s = xp.sin(0.5 * y)
    re = xp.expm1(x) * xp.cos(y) - 2.0 * s * s
    im = xp.exp(x) * xp.sin(y)
    return xp.astype(re, xp.complex128) + xp.asarray(1j, dtype=xp.complex128) * xp.astype(im, xp.complex128)


def multiplier(xp, kind: str, eta, beta, mu, k):
    """φ_k(μ) for broadcastable float64 arrays eta, beta (runs), mu (modes) and k (steps, integer-valued)."""
    if kind == "gd":
        t = 1.0 - eta * mu
        return _real_power(xp, t, k)
    if kind == "heavy_ball":
        t = 1.0 - eta * mu + beta
        d = beta + 0.0 * t
    elif kind == "nesterov":
        t = 1.0 - eta * mu * (1.0 + beta) + beta
        d = beta * (1.0 - eta * mu)
    else:
        raise ValueError(f"no closed form for recurrence kind {kind!r}")
    d = d + 0.0 * t
    a22 = beta + 0.0 * t
    # d = 0: A has the single non-zero root t (a11 = t − a22 = t − β·... with β d = 0 only if β = 0 or ημ = 1)
    real_branch = _real_power(xp, t, k - 1.0) * (t - a22)
    real_branch = xp.where(k == 0, xp.ones_like(real_branch), real_branch)
    cplx = _two_root_power(xp, t, d, a22, k)
    return xp.where(d == 0, real_branch, cplx)


def _real_power(xp, t, k):
    """t^k for real t and integer-valued k ≥ −1 (k = −1 only where the caller discards it), sign kept."""
    k = k + 0.0 * t
    mag = xp.pow(xp.abs(t), xp.where(k < 0, xp.zeros_like(k), k))
    odd = xp.remainder(k, 2.0) == 1.0
    return xp.where((t < 0) & odd, -mag, mag)


def _two_root_power(xp, t, d, a22, k):
    c128 = xp.complex128
    tc = xp.astype(t, c128)
    disc = xp.astype(t * t - 4.0 * d, c128)
    sq = xp.sqrt(disc)
    # pick r1 as the root of larger modulus: t + sign(Re t)·√disc avoids cancellation
    sgn = xp.where(t < 0, xp.asarray(-1.0, dtype=xp.float64), xp.asarray(1.0, dtype=xp.float64))
    r1 = 0.5 * (tc + xp.astype(sgn, c128) * sq)
    safe_r1 = xp.where(r1 == 0, xp.ones_like(r1), r1)
    r2 = xp.astype(d, c128) / safe_r1
    safe_r2 = xp.where(r2 == 0, xp.ones_like(r2), r2)
    L = xp.log(safe_r2) - xp.log(safe_r1)
    kc = xp.astype(k + 0.0 * t, c128)
    one = xp.asarray(1.0 + 0.0j, dtype=c128)

    def ratio(kk):
        # (1 − q^kk)/(1 − q) with q = e^L; |q| ≤ 1
        near = xp.abs(L) < 0.5
        safeL = xp.where(L == 0, one, L)
        via_expm1 = _cexpm1(xp, kk * safeL) / _cexpm1(xp, safeL)
        q = xp.exp(L)
        denom = xp.where(near, one, one - q)
        direct = (one - xp.exp(kk * L)) / denom
        out = xp.where(near, via_expm1, direct)
        return xp.where(L == 0, kk, out)

    logr1 = xp.log(safe_r1)
    pw = xp.exp((kc - one) * logr1)  # r1^{k−1}
    a22c = xp.astype(a22, c128)
    val = pw * (safe_r1 * ratio(kc + one) - a22c * ratio(kc))
    val = xp.real(val)
    return xp.where(k == 0, xp.ones_like(val), val)


def evaluate(problem, spec, E0: np.ndarray, steps: np.ndarray, want_grad: bool = True):
    """Gap and gradient norm at ``steps`` for every run of a :class:`~quadlab.optim.LinearSpec`.

    ``E0``: host (R, n) initial errors.  Returns host float64 arrays (R, T) ``gap`` and ``grad_norm``."""
    b = problem.backend
    xp = b.xp
    R, n = E0.shape
    T = steps.size
    gap = np.zeros((R, T))
    gsq = np.zeros((R, T))
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
    for rows, p in classes:
        for mu, V, coords in _eigen_pieces(problem, p):
            z0 = E0[rows][:, coords]
            if p is not None:
                z0 = z0 / np.sqrt(p[coords])
            kb, d = mu.shape
            z0b = xp.asarray(z0.reshape(len(rows), kb, d).transpose(1, 0, 2).copy(), dtype=xp.float64)
            c = z0b if V is None else z0b @ V  # (kb, r, d): c_j = v_jᵀ z
            mu_b = xp.asarray(mu, dtype=xp.float64)[:, None, None, :]  # (kb, 1, 1, d)
            cc = c[:, :, None, :]  # (kb, r, 1, d)
            eta_r = xp.asarray(eta[rows], dtype=xp.float64)[None, :, None, None]
            beta_r = xp.asarray(beta[rows], dtype=xp.float64)[None, :, None, None]
            inv_sqrt_p = None if p is None else xp.asarray(1.0 / np.sqrt(p[coords]).reshape(kb, d), dtype=xp.float64)[:, None, None, :]
            chunk = max(1, _CHUNK // max(1, len(rows) * kb * d))
            for t0 in range(0, T, chunk):
                ks = xp.asarray(steps[t0:t0 + chunk].astype(np.float64), dtype=xp.float64)[None, None, :, None]
                phi = multiplier(xp, spec.kind, eta_r, beta_r, mu_b, ks)  # (kb, r, tc, d)
                cphi = cc * phi
                gap[rows, t0:t0 + chunk] += b.to_numpy(0.5 * xp.sum(xp.sum(mu_b * cphi * cphi, axis=3), axis=0))
                if not want_grad:
                    continue
                y = mu_b * cphi
                if p is None:
                    gsq[rows, t0:t0 + chunk] += b.to_numpy(xp.sum(xp.sum(y * y, axis=3), axis=0))
                else:
                    u = y if V is None else y @ xp.matrix_transpose(V)[:, None, :, :]
                    u = u * inv_sqrt_p
                    gsq[rows, t0:t0 + chunk] += b.to_numpy(xp.sum(xp.sum(u * u, axis=3), axis=0))
    return gap, np.sqrt(gsq)


def _eigen_pieces(problem, p):
    """Yield (μ (k, d) host, V backend (k, d, d) or None, coords (k·d,)) covering all coordinates, for
    M = P^{1/2} H P^{1/2} (P = I when p is None)."""
    xp = problem.xp
    b = problem.backend
    if problem._diag is not None:
        lam = problem.eigenvalues
        mu = lam if p is None else p * lam
        yield mu.reshape(-1, 1), None, np.arange(problem.n)
        return
    vecs = problem.eigenvectors() if p is None else None
    for gi, g in enumerate(problem.groups):
        if p is None:
            yield g.lam, vecs[gi], g.coords
            continue
        s = xp.asarray(np.sqrt(p[g.coords]).reshape(g.k, g.size), dtype=xp.float64)
        M = s[:, :, None] * xp.astype(g.H, xp.float64) * s[:, None, :]
        mu, V = xp.linalg.eigh(M)
        yield b.to_numpy(mu), V, g.coords
