"""Building rotated blocks on the host with BLAS/LAPACK: Haar rotations (CholeskyQR2 with a Householder
fallback) and exactly symmetric Q diag(λ) Qᵀ, plus the array-API versions other backends use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas, lapack

from . import portable


def haar(xp, G):
    """Haar-orthogonal matrices from a stack of Gaussian matrices G (…, d, d): Q from G = QR with the
    columns of Q multiplied by sign(diag R), which makes the law exactly Haar (Mezzadri 2007)."""
    Q, R = xp.linalg.qr(G)
    d = xp.linalg.diagonal(R)
    sign = xp.where(d < 0, xp.asarray(-1.0, dtype=G.dtype), xp.asarray(1.0, dtype=G.dtype))
    return Q * sign[..., None, :]


def sym(xp, A):
    return 0.5 * (A + xp.matrix_transpose(A))


# -- host (numpy + scipy BLAS/LAPACK) construction of large blocks ------------------------------------------
# Blocks at least this large take the host path.  Measured on the 2-core development machine (build time,
# batched path vs host path): 8 × 256: 105 vs 171 ms; 2 × 1000: 263 vs 353 ms; 2 × 1500: 844 vs 760 ms;
# 2 × 2500: 2.84 vs 2.35 s, and at d = 2500 the host path is far less sensitive to other processes' load
# (bench/RESULTS_build.md).  Smaller problems also keep their exact old bits.
HOST_MIN_SIZE = 1024
# Blocks up to this size are built in fixed-order arithmetic (quadlab._engine.portable), the same bits on every
# CPU: 0.07 s for d = 300 and 0.4 s for d = 512 with numba, against 2.2 s at d = 1000 (16.6 s without numba).
# Larger blocks take the batched xp.linalg.qr path or, from HOST_MIN_SIZE on, the BLAS-3 host path.
PORTABLE_MAX_SIZE = 512
# Leaves of the recursive Cholesky.  One threaded dpotrf of a 2500×2500 Gram matrix takes 0.08 s on an idle
# 2-core machine but 4–8 s while another process runs a 2-thread BLAS job (its many small synchronised
# steps wait for descheduled threads); the recursion with leaves of at most this size stayed under ~1 s in
# the same conditions (leaves of 256 or more did not), presumably because such small leaves run on one
# thread.  See bench/RESULTS_build.md.
CHOL_LEAF = 128
# Accept the second CholeskyQR pass only when its input Q₁ is this close to orthogonal:
# ‖Q₁ᵀQ₁ − I‖_F ≤ tol.  Then κ(Q₁)² ≤ (1 + tol)/(1 − tol) and the second pass is orthogonal to rounding.
# Gaussian blocks of d = 2500 gave ‖Q₁ᵀQ₁ − I‖_F ≈ 1e-9 (it grows like κ(G)²·eps).
CHOLQR_TOL = 0.1


def chol_upper(S) -> bool:
    """In-place upper Cholesky factor of the SPD matrix S (Fortran-ordered, upper triangle read and
    written): S = RᵀR with R upper triangular, diag(R) > 0.  Recursive 2×2 blocking,

        R₁₁ = chol(S₁₁),  R₁₂ = R₁₁⁻ᵀ S₁₂,  R₂₂ = chol(S₂₂ − R₁₂ᵀR₁₂),

    so all but the small leaves is dtrsm/dsyrk.  Returns False (S partly overwritten) if S is not
    numerically positive definite."""
    n = S.shape[0]
    if n <= CHOL_LEAF:
        R, info = lapack.dpotrf(S, lower=0, clean=0)
        if info != 0:
            return False
        S[...] = R
        return True
    h = n // 2
    if not chol_upper(S[:h, :h]):
        return False
    # The sub-blocks are not contiguous, so f2py works on copies: write the results back.
    S[:h, h:] = blas.dtrsm(1.0, S[:h, :h], S[:h, h:], side=0, lower=0, trans_a=1)
    S[h:, h:] = blas.dsyrk(-1.0, S[:h, h:], beta=1.0, c=S[h:, h:], trans=1, lower=0)
    return chol_upper(S[h:, h:])


def householder_q(X: np.ndarray) -> np.ndarray:
    """Q of X = QR with diag(R) ≥ 0 by Householder QR (LAPACK via numpy), columns signed by sign(diag R)."""
    Q, R = np.linalg.qr(X)
    Q *= np.where(np.diagonal(R) < 0, -1.0, 1.0)
    return np.ascontiguousarray(Q)


def haar_host(G: np.ndarray) -> np.ndarray:
    """The Q of G = QR with diag(R) > 0 for a square float64 G (C-ordered, overwritten): Haar-distributed
    when G is Gaussian (Mezzadri 2007).  Returns Q, C-ordered, in G's memory when the fast path succeeds.

    CholeskyQR2 (Fukaya et al. 2014; Yamamoto et al. 2015): R₁ = chol(GᵀG), Q₁ = G R₁⁻¹, then
    R₂ = chol(Q₁ᵀQ₁), Q = Q₁ R₂⁻¹, so G = Q (R₂R₁) with R₂R₁ upper triangular and positive on the
    diagonal — the same Q as the sign-fixed Householder factor, in exact arithmetic.  One pass loses
    orthogonality like κ(G)²·eps; the second pass restores it to rounding when Q₁ is well conditioned.
    Every step is a large dsyrk/dtrsm (plus small Cholesky leaves), which, unlike the panel loops of
    dgeqrf/dorgqr, keeps OpenBLAS efficient when other processes share the cores.

    Falls back to Householder QR of the current iterate (G, or Q₁ = G R₁⁻¹, whose positive-diagonal Q factor
    is the same Q) when a Cholesky breaks down or Q₁ is too far from orthogonal (κ(G) ≳ 1e8, which a
    Gaussian d×d matrix reaches with probability of order d·1e-8)."""
    # G's C-ordered buffer is Gᵀ in Fortran order, so the BLAS calls below work in place on B = Gᵀ:
    # GᵀG = BBᵀ and (G R⁻¹)ᵀ = R⁻ᵀ B.
    B = G.T
    for npass in range(2):
        S = blas.dsyrk(1.0, B, trans=0, lower=0)
        if npass == 1:
            # ‖Q₁ᵀQ₁ − I‖_F from the upper triangle, the only one dsyrk wrote
            off = np.triu(S, 1)
            dev = np.sqrt(2.0 * np.vdot(off, off) + np.sum((np.diagonal(S) - 1.0) ** 2))
            if not dev <= CHOLQR_TOL:
                return householder_q(B.T)
        if not chol_upper(S):
            return householder_q(B.T)
        B = blas.dtrsm(1.0, S, B, side=0, lower=0, trans_a=1, overwrite_b=1)
    return B.T


def fill_upper_from_lower(H: np.ndarray, tile: int = 256) -> np.ndarray:
    """Make the square C-ordered H exactly symmetric by copying its lower triangle onto its upper one.
    Tiled, so both the read (transposed) and the write stay in cache."""
    n = H.shape[0]
    for i in range(0, n, tile):
        I = slice(i, min(i + tile, n))
        D = H[I, I]
        D[...] = np.tril(D) + np.tril(D, -1).T
        for j in range(i + tile, n, tile):
            J = slice(j, min(j + tile, n))
            H[I, J] = H[J, I].T
    return H


def spectral_matrix(Q: np.ndarray, lam: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out ← Q diag(λ) Qᵀ, exactly symmetric (float64, square C-ordered Q and out; Q is overwritten).

    For λ ≥ 0: with A = Q diag(√λ), H = AAᵀ by one dsyrk (half the flops of a general product, one
    triangle computed, then mirrored).  Otherwise (a signed λ): H = (Q diag(λ)) Qᵀ by one GEMM, whose
    lower triangle is then mirrored."""
    if np.all(lam >= 0):
        Q *= np.sqrt(lam)
        # A's C-ordered buffer is Aᵀ in Fortran order, and out.T is Fortran-ordered: dsyrk with trans=1
        # writes (Aᵀ)ᵀAᵀ = AAᵀ straight into out (its lower triangle in C order), no copies.
        H = blas.dsyrk(1.0, Q.T, trans=1, lower=0, c=out.T, overwrite_c=1)
        if not np.shares_memory(H, out):
            out[...] = H.T
    else:
        np.matmul(Q * lam, Q.T, out=out)
    return fill_upper_from_lower(out)


def given_blocks(blocks, names) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """User-given dense blocks H_l checked and symmetrised, with their eigenvalues (``eigvalsh``, ascending).

    Each block must be real, square, non-empty, finite, symmetric to within 100·eps·max|H_l| and positive
    definite; anything else is a ValueError naming the block."""
    mats, eigs = [], []
    for l, (B, name) in enumerate(zip(blocks, names, strict=True)):
        if np.iscomplexobj(B):
            raise ValueError(f"block {name!r} (index {l}) is complex; a quadratic needs a real symmetric block")
        A = np.array(B, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"block {name!r} (index {l}) must be a non-empty square matrix, got shape {A.shape}")
        if not np.isfinite(A).all():
            raise ValueError(f"block {name!r} (index {l}) has non-finite entries")
        asym = np.abs(A - A.T).max()
        scale = np.abs(A).max()
        if asym > 100 * np.finfo(np.float64).eps * scale:
            raise ValueError(
                f"block {name!r} (index {l}) is not symmetric: max |H - H^T| = {asym:.3g} "
                f"(relative {asym / scale:.3g}); pass (H + H.T)/2 if that is what you mean"
            )
        A = 0.5 * (A + A.T)
        lam = np.linalg.eigvalsh(A)
        if lam[0] <= 0:
            raise ValueError(f"block {name!r} (index {l}) is not positive definite: smallest eigenvalue {lam[0]:.6g}")
        mats.append(A)
        eigs.append(lam)
    return mats, eigs


@dataclass(frozen=True, eq=False)
class Group:
    """Blocks of one size d stacked together, as the problem stores them.

    Attributes
    ----------
    size : int
        d.
    blocks : tuple of int
        Indices of the nominal blocks in this group.
    coords : numpy.ndarray
        Host int array (k·d,) of the coordinates they occupy, block after block.
    H : backend array or None
        (k, d, d), or None for diagonal storage.
    lam : numpy.ndarray
        Host (k, d) exact eigenvalues.
    start, stop : int or None
        A slice when ``coords`` is contiguous.
    k : int
        Number of blocks in the group.
    """

    size: int
    blocks: tuple[int, ...]
    coords: np.ndarray
    H: object
    lam: np.ndarray
    start: int | None
    stop: int | None

    @property
    def k(self) -> int:
        return len(self.blocks)


def build_groups(problem, given=None) -> tuple:
    """The stored blocks of ``problem`` (a BlockQuadratic being built): (groups, diagonal, perm).

    rotation "none": no groups, H = diag(Λ) stored as its diagonal.  "global": one group of one n×n block
    Q diag(Λ) Qᵀ.  Otherwise one :class:`Group` per block size, each block H_l = Q_l Λ_l Q_lᵀ with Q_l drawn
    from the block's own seed (or the user's ``given`` dense blocks); ``perm`` maps the group-major order back
    to the coordinates (None when it is the identity)."""
    b, xp = problem.backend, problem.backend.xp
    spec = problem.spectrum
    n = spec.n
    if problem.rotation == "none":
        return (), b.asarray(spec.eigenvalues), None
    if problem.rotation == "global":
        lam = spec.eigenvalues
        if problem._portable(n):
            H = b.asarray(portable.spectral(problem._global_rotation_host(), lam[None, :]))
            H = xp.astype(H, b.dtype)
        elif problem._on_host(n):
            H = np.empty((1, n, n))
            spectral_matrix(haar_host(problem._gaussian(-2, n)), lam, H[0])
            H = b.asarray(H)
        else:
            Q = problem._global_rotation()
            H = sym(xp, (Q * xp.asarray(lam, dtype=xp.float64)) @ xp.matrix_transpose(Q))
            H = xp.astype(H, b.dtype)[None, ...]
        return (Group(n, (0,), np.arange(n), H, lam[None, :], 0, n),), None, None
    by_size: dict[int, list[int]] = {}
    for l, d in enumerate(spec.sizes):
        by_size.setdefault(d, []).append(l)
    groups = []
    for d, ls in by_size.items():
        lam = np.stack([spec.blocks[l] for l in ls])
        if given is not None:
            H = xp.astype(xp.asarray(np.stack([given[l] for l in ls]), dtype=xp.float64), b.dtype)
        elif problem._portable(d):
            # fixed-order arithmetic on the host: the same bits on every CPU and backend
            H = xp.astype(b.asarray(portable.spectral(problem._block_rotations_host(ls, d), lam)), b.dtype)
        elif problem._on_host(d):
            # One block at a time straight into the stacked array: peak memory is the stack plus
            # about two d×d work arrays, not several stacks.
            H = np.empty((len(ls), d, d))
            for j, l in enumerate(ls):
                spectral_matrix(haar_host(problem._gaussian(l, d)), lam[j], H[j])
            H = b.asarray(H)  # no copy for float64
        else:
            Q = problem._block_rotations(ls, d)
            H = sym(xp, (Q * xp.asarray(lam, dtype=xp.float64)[:, None, :]) @ xp.matrix_transpose(Q))
            H = xp.astype(H, b.dtype)
        coords = np.concatenate([np.arange(problem._offsets[l], problem._offsets[l + 1]) for l in ls])
        contiguous = bool(np.all(np.diff(coords) == 1))
        start, stop = (int(coords[0]), int(coords[-1]) + 1) if contiguous else (None, None)
        groups.append(Group(d, tuple(ls), coords, H, lam, start, stop))
    perm = np.concatenate([g.coords for g in groups])
    return tuple(groups), None, (None if np.array_equal(perm, np.arange(n)) else xp.asarray(np.argsort(perm)))
