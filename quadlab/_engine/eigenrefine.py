"""Eigenvalues of the stored blocks H = fl(Q Λ Qᵀ) to far below one ulp, from the eigenvectors Q that
generated them: Rayleigh quotients on an error-free (Ozaki-split, double-double) matrix product.  Used by
:func:`quadlab._engine.closed_form._eigen_pieces` for P = I on rotated problems, where at critical damping φ_{10⁴}
moves by ~1e-8 per ulp of μ.
"""

from __future__ import annotations

import numpy as np

from .recurrence import _dd_add, _two_prod, _two_sum

# -- eigenvalues of the stored H to far below one ulp ------------------------------------------------

# the blocks of a stack processed together, and the panel width of one large block: the split slices of
# H and Q (2s panels or stacks) stay a few tens of MiB
_PANEL = 1024
_STACK_ELEMS = 1 << 21
# target accuracy of a refined eigenvalue, relative to itself: 2^-10 of an ulp
_TARGET_BITS = 62
_MAX_SLICES = 4


def _split(A, axis, rho):
    """Ozaki's error-free splitting of A along ``axis`` into slices A = S_1 + S_2 + … + S_L (L given by
    the caller through repeated calls): one step returns (S, A − S) where, for each line of A along
    ``axis`` (a row of H or a column of Q), with 2^E > max |a| over the line and σ = 2^{E+ρ},
    S = fl(fl(σ + a) − σ) is a multiple of 2^{E+ρ−53} with |S| ≤ 2^E, i.e. an integer of at most 53 − ρ
    bits times the line's grain, and A − S is exact (|A − S| ≤ 2^{E+ρ−53})."""
    m = np.max(np.abs(A), axis=axis, keepdims=True)
    _, E = np.frexp(m)  # m < 2^E (E = 0 for a zero line, harmless: its slices are zero)
    sigma = np.ldexp(1.0, E + rho)
    S = (A + sigma) - sigma
    return S, A - S


def _exact_product_dd(A, B, s):
    """A @ B for stacks A (…, m, d), B (…, d, n) as a double-double (hi, lo), from float64 GEMMs only,
    with an absolute error of about d·eps·2^{−(53−ρ)s}·max_row|A|·max_col|B| (plus O(eps²) of the result).

    Ozaki et al.'s error-free transformation of matrix products (2012): with ρ = ⌈(53 + log₂ d)/2⌉ each
    of the slices S_1, …, S_s split off the rows of A (:func:`_split`) is an integer of ≤ 53 − ρ bits
    times one grain per row, and likewise the slices T_b of the columns of B, so an entry of S_a T_b is a
    sum of d integers of ≤ 106 − 2ρ bits (times one grain), at most d·2^{106−2ρ} ≤ 2^53: the GEMM
    computes it exactly, in any summation order, with or without FMA (not with Strassen-like algorithms,
    which no backend uses for float64).  With the exact remainders A_s = A − ΣS_a, B_j = B − Σ_{b≤j} T_b,

        A B = Σ_{a+b ≤ s+1} S_a T_b  +  Σ_{a ≤ s} S_a B_{s+1−a}  +  A_s B,

    (the rows a of the last two sums complete each S_a B and then A B), where the first sum is exact and
    the other s + 1 products are 2^{−(53−ρ)s} smaller than A B, so their rounding, eps of that, is the
    only error.  The exact products are summed in double-double, largest first, the small ones in float64
    and added last: s(s+1)/2 + s + 1 GEMMs (3 for s = 1, 6 for s = 2) and O(d²) elementwise work."""
    d = A.shape[-1]
    rho = int(np.ceil((53.0 + np.log2(max(d, 1))) / 2.0))
    Sa, Tb, Brem = [], [], []
    ra, rb = A, B
    for _ in range(s):
        x, ra = _split(ra, -1, rho)
        Sa.append(x)
        y, rb = _split(rb, -2, rho)
        Tb.append(y)
        Brem.append(rb)
    hi = lo = None
    for lev in range(s):  # a + b = lev (0-based), largest first
        for a in range(lev + 1):
            P = np.matmul(Sa[a], Tb[lev - a])
            if hi is None:
                hi, lo = P, 0.0
            else:
                hi, lo = _dd_add((hi, lo), (P, 0.0))
    tail = np.matmul(ra, B)
    for a in range(s - 1, -1, -1):
        tail = tail + np.matmul(Sa[a], Brem[s - 1 - a])
    return _dd_add((hi, lo), (tail, 0.0))


def _residuals(H, Q, lam, s):
    """R = H Q − Q diag(λ) (k, d, d), the double-double product rounded once at the end: each entry to a
    relative eps of itself (‖r_i‖ ≈ eps·‖H‖ where q_i is a good eigenvector) plus the product's absolute
    error.  Processed in stacks of blocks or, for one large block, in panels (same arithmetic per entry)."""
    k, d, _ = H.shape
    R = np.empty_like(Q)
    if d <= _PANEL:
        step = max(1, _STACK_ELEMS // (d * d))
        for j in range(0, k, step):
            J = slice(j, j + step)
            hi, lo = _exact_product_dd(H[J], Q[J], s)
            qh, ql = _two_prod(Q[J], lam[J][:, None, :])
            R[J] = sum(_dd_add((hi, lo), (-qh, -ql)))
        return R
    for j in range(k):
        for r0 in range(0, d, _PANEL):
            I = slice(r0, r0 + _PANEL)
            for c0 in range(0, d, _PANEL):
                C = slice(c0, c0 + _PANEL)
                hi, lo = _exact_product_dd(H[j, I, :], Q[j, :, C], s)
                qh, ql = _two_prod(Q[j, I, C], lam[j, C][None, :])
                R[j, I, C] = sum(_dd_add((hi, lo), (-qh, -ql)))
    return R


def _stored_eigenvalues(H, Q, lam):
    """Eigenvalues of the stored blocks H (k, d, d) (float64, symmetric), to about 2^-10 ulp, from the
    columns q_i of Q that generated them (H = fl(Q Λ Qᵀ)) and the prescribed λ.  Returns (μ, μ_lo, Q'):
    μ + μ_lo (k, d) double-double, paired with the columns of Q' (None: Q itself).

    Rayleigh quotients.  With r_i = H q_i − λ_i q_i (computed from an error-free product, see
    :func:`_exact_product_dd`), ρ_i = q_iᵀ H q_i / q_iᵀ q_i = λ_i + q_iᵀ r_i / q_iᵀ q_i exactly, so only the
    small correction δ_i = q_iᵀ r_i / q_iᵀ q_i (~ eps·λ) needs forming, and float64 does that to a
    relative eps: μ_i = λ_i + δ_i carried as a double-double.  Since q_i is an eigenvector of the exact
    Q Λ Qᵀ and H differs from it by ΔH = O(eps‖H‖) (rounding of H, and QᵀQ − I = O(eps)), q_i is an
    eigenvector of H up to an angle ~ ‖r_i‖/gap_i, and the Rayleigh quotient is stationary there:
    |ρ_i − μ_i| ≤ ‖r_i − δ_i q_i‖²/gap_i, where gap_i is the distance to the rest of the spectrum of H_b.
    Well-separated eigenvalues (gap ~ ‖H‖): an error ~ eps²‖H‖, e.g. 3e-26 at ‖H‖ = 5000, 1e-13 ulp.
    Clustered ones (gap ≪ ‖H‖): the bound grows like eps²‖H‖²/gap and reaches 2^-10 ulp(λ_i) at
    gap ≈ 2^10‖r_i‖²/(eps|λ_i|), which happens first for small λ_i and for repeated λ.

    Clusters.  Where a neighbouring λ is closer than that (always for repeated λ, where the eigenvectors
    of H_b within the cluster are not determined by Q at all: H's rounding splits the multiple eigenvalue
    by O(eps‖H‖) along directions unrelated to Q's columns, and a single q_i's Rayleigh quotient is then
    some weighted mean of the split values), the cluster's columns Q_C are treated together by Rayleigh–
    Ritz: the pencil (Q_Cᵀ(H − cI)Q_C, Q_CᵀQ_C) with the shift c the cluster's smallest λ, formed as
    Q_Cᵀ(R_C + Q_C(Λ_C − c)), whose entries are O(eps‖H‖ + width), gives by float64 eigh the Ritz vectors
    y = Q_C u (Q' gets them in place of Q_C, so the closed form moves the modes of H_b, not mixtures of
    them) and Ritz values c + ν to an absolute eps·(eps‖H‖ + width).  A Ritz value is the Rayleigh
    quotient of its Ritz vector, so it is then recomputed as such from the error-free product H y: the
    float64 error of y enters squared, and the error is ‖r_y‖²/gap_y as for a single column, with
    r_y ~ ‖R_C‖ + eps·width and gap_y now the distance to the rest of the spectrum, or, within the
    cluster, to the next Ritz value (exactly repeated λ split by O(eps‖H‖), whose Ritz vectors are then
    as good as that splitting allows).  Measured on repeated λ (tests): errors ≤ 1e-5 ulp, against up to
    90 ulp for the single-column Rayleigh quotients and 200 ulp for the prescribed λ.

    Cost, once per Plan: the s(s+1)/2 + s + 1 float64 GEMMs of :func:`_exact_product_dd` per block (s = 2,
    6 GEMMs, for d ≲ 2000 at κ ≲ 1e6; s = 1, 3 GEMMs, for small blocks at moderate κ), i.e. ~12 d³ flops
    against ~3 d³ for regenerating Q, plus O(d²) elementwise work and, per cluster of m columns, one
    d×d×m product; all on the host."""
    k, d, _ = H.shape
    pos = np.abs(lam)
    hmax = float(np.max(np.abs(H))) if H.size else 0.0
    lmin = float(np.min(pos[pos > 0])) if np.any(pos > 0) else 0.0
    if hmax == 0.0 or lmin == 0.0:
        return lam.copy(), np.zeros_like(lam), None
    # slices: the error d·eps·2^{−(53−ρ)s}·max|H| must be below 2^{−_TARGET_BITS}·min|λ|
    rho = int(np.ceil((53.0 + np.log2(d)) / 2.0))
    need = _TARGET_BITS - 53 + np.log2(d) + max(0.0, np.log2(hmax / lmin))
    s = int(min(_MAX_SLICES, max(1, np.ceil(need / (53 - rho)))))
    R = _residuals(H, Q, lam, s)
    qq = np.einsum("kji,kji->ki", Q, Q)
    delta = np.einsum("kji,kji->ki", Q, R) / qq
    mu, mu_lo = _two_sum(lam, delta)
    # clusters: neighbours (in sorted λ) closer than the gap at which the Rayleigh quotient's error bound
    # ‖r‖²/gap reaches the target 2^-10 ulp (with a margin of 4 on ‖r‖², and never below 8‖r‖, where
    # the bound stops being one)
    rn2 = np.einsum("kji,kji->ki", R, R) + 0.0
    eps = np.finfo(np.float64).eps
    Qn = None
    for j in range(k):
        order = np.argsort(lam[j], kind="stable")
        ls, r2 = lam[j, order], rn2[j, order]
        if d < 2:
            continue
        tol = 2.0**-10 * eps * np.minimum(np.abs(ls[:-1]), np.abs(ls[1:]))
        big = np.maximum(r2[:-1], r2[1:])
        gap = ls[1:] - ls[:-1]
        join = (gap * tol <= 4.0 * big) | (gap <= 8.0 * np.sqrt(big))
        if not join.any():
            continue
        starts = np.flatnonzero(np.r_[True, ~join])
        stops = np.r_[starts[1:], d]
        for a, z in zip(starts, stops):
            if z - a < 2:
                continue
            if Qn is None:
                Qn = Q.copy()
            cols = order[a:z]
            c = ls[a]
            QC = Q[j][:, cols]
            # (Λ_C − c) rounded: its error, eps·width, is of the order eigh leaves anyway
            RC = R[j][:, cols] + QC * (lam[j, cols] - c)[None, :]
            G = QC.T @ RC
            B = QC.T @ QC
            nu, U = _sym_pencil_eigh(0.5 * (G + G.T), 0.5 * (B + B.T))
            Y = QC @ U
            # the Ritz value is the Rayleigh quotient of its Ritz vector: recompute it from the error-free
            # product, so that eigh's absolute error eps·(eps‖H‖ + width) enters only through Y, squared
            theta = c + nu
            hi, lo = _exact_product_dd(H[j], Y, s)
            th, tl = _two_prod(Y, theta[None, :])
            RY = sum(_dd_add((hi, lo), (-th, -tl)))
            mu[j, cols], mu_lo[j, cols] = _two_sum(theta, np.einsum("ji,ji->i", Y, RY) / np.einsum("ji,ji->i", Y, Y))
            Qn[j][:, cols] = Y
    return mu, mu_lo, Qn


def _sym_pencil_eigh(G, B):
    """Eigenpairs of the symmetric-definite pencil G u = ν B u (B ≈ I), with UᵀBU = I."""
    from scipy.linalg import eigh

    return eigh(G, B)
