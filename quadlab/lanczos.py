"""Lanczos, stochastic Lanczos quadrature (SLQ), extreme eigenvalues and spectral densities.

Lanczos
-------
For a symmetric operator A ∈ R^{d×d} and a unit start vector v_1, Lanczos builds an orthonormal basis
V_j = [v_1, …, v_j] of the Krylov space K_j(A, v_1) and the tridiagonal T_j = V_jᵀ A V_j with diagonal
α_i = v_iᵀ A v_i and off-diagonal β_i = ‖w_i‖, where

    w_i = A v_i − α_i v_i − β_{i−1} v_{i−1},   v_{i+1} = w_i / β_i,

so that the Lanczos relation  A V_j = V_j T_j + β_j v_{j+1} e_jᵀ  holds.  In floating point the basis
loses orthogonality as Ritz values converge; quadlab therefore orthogonalizes every w_i against the whole
basis, twice (classical Gram–Schmidt applied twice, "CGS2"), which keeps ‖V_jᵀV_j − I‖ at the level of
the rounding error.  The coefficients α, β and every small eigenproblem of T are handled in float64 on the
host; only the vectors live on the backend.

Breakdown.  If β_j ≤ c·√d·eps·‖T_j‖_∞ (``c`` = :data:`BREAKDOWN_FACTOR`, widened where the recurrence passed
through a small β; see :func:`breakdown_threshold`), the Krylov space is invariant:
A has exactly j distinct eigenvalues "seen" by v_1 and T_j holds them exactly.  That probe stops there (no
division by the tiny β_j) and its quadrature is the exact j-point one.  A block with three distinct
eigenvalues therefore stops at step 3.  This is the normal case for homogeneous blocks, not an error.

SLQ
---
For a unit probe v with Ritz pairs (θ_i, s_i) of T_m (T_m s_i = θ_i s_i, ‖s_i‖ = 1),

    vᵀ f(A) v ≈ Σ_i τ_i f(θ_i),   τ_i = (e_1ᵀ s_i)²,

the m-point Gauss quadrature of the spectral measure μ_v = Σ_k (q_kᵀv)² δ_{λ_k}, exact for polynomials of
degree ≤ 2m − 1.  With v uniform on the sphere (a normalized Gaussian), E μ_v = (1/d) Σ_k δ_{λ_k}, the
eigenvalue distribution of A.  SLQ averages the quadratures of ``probes`` independent probes.  The
per-probe nodes θ and weights τ are kept raw (:class:`SLQResult`), so every density is recomputed from
them without a new matrix-vector product.

Densities
---------
A block's density on a grid t is p(t) = Σ_i w_i φ_σ(t − x_i), with φ_σ the Gaussian of standard deviation
σ and (x_i, w_i) its nodes and weights (exact eigenvalues with weights 1/d, or the SLQ nodes with weights
τ/probes), optionally after normalising each block by its k-th largest eigenvalue or its largest |λ| and
after mapping to a log10 axis.  p is then rescaled so that its trapezoid integral over the grid is 1.

Batching
--------
All probes of a block advance together (one matmat per step), and blocks of equal size advance together
too: vectors are stored as rows of a (k, p, d) backend array (k blocks, p probes), and one step applies
the stacked (k, d, d) blocks of a :class:`~quadlab.problem.BlockQuadratic` with one batched matmul.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from .backend import Backend, get_backend
from .problem import BlockQuadratic
from .spectra import BlockSpectrum

__all__ = [
    "BREAKDOWN_FACTOR",
    "BlockExtremes",
    "Density",
    "Extremes",
    "LanczosResult",
    "SLQResult",
    "block_extremes",
    "whole_extremes",
    "breakdown_threshold",
    "density",
    "extreme_eigenvalues",
    "lanczos",
    "slq",
]

#: c in the breakdown test (see :func:`breakdown_threshold`); 100 leaves a factor ≥ 10 over the largest
#: invariant-space residuals measured on repeated-eigenvalue blocks of sizes 25–2000.
BREAKDOWN_FACTOR = 100.0
#: The test never accepts a β above √eps·‖T‖ as a breakdown.
_BREAKDOWN_CAP = math.sqrt(np.finfo(np.float64).eps)


def breakdown_threshold(tnorm: float, beta_min: float, d: int, eps: float, factor: float = BREAKDOWN_FACTOR) -> float:
    """The β below which step j counts as a breakdown (an invariant Krylov space):

        τ_j = min(c·√d·eps·max(1, ‖T_j‖/β_min), √eps) · ‖T_j‖,

    with ‖T_j‖ the ∞-norm of the tridiagonal so far, β_min the smallest earlier β_i (i < j) and c = ``factor``.
    Why not plain c·eps·‖T‖: a rounding error of size eps·‖A‖ made at step i enters v_{i+1} = w_i/β_i divided
    by β_i, so when the recurrence passes through a small β_i the residual of an exactly invariant space is
    about eps·‖A‖²/β_i, not eps·‖A‖ (measured: spectra {1e-3, 1, 1e3} repeated leave β_3 ≈ 600·√d·eps·‖T‖).
    The √eps cap keeps the test meaningful: stopping at β_j is exact quadrature for a matrix within β_j of A,
    so it perturbs every node by at most β_j ≤ √eps·‖T‖.

    A block with many copies of few, widely spread eigenvalues (say ten values from 1 to 1e4) may show no
    breakdown at all: rounding plants components in the other directions of a multiple eigenvalue and Lanczos,
    correctly, goes on to find them; their quadrature weights stay at rounding level (measured ≈ 1e-23), so the
    measure is still exact to rounding."""
    amplify = tnorm / beta_min if (np.isfinite(beta_min) and beta_min > 0) else 1.0
    return min(factor * math.sqrt(d) * eps * max(amplify, 1.0), _BREAKDOWN_CAP) * tnorm


STATUS_OK = "ok"
STATUS_INVARIANT = "invariant"
STATUS_NONFINITE = "nonfinite"
STATUS_CONVERGED = "converged"
STATUS_MAX_STEPS = "max_steps"


# ================================================================================================
# Operators: everything becomes groups of equal-size blocks with one batched apply (k, p, d) → (k, p, d)
# ================================================================================================
@dataclass
class _Group:
    indices: list[int]
    size: int
    apply: Callable[[Any], Any]

    @property
    def k(self) -> int:
        return len(self.indices)


def _is_linop(op) -> bool:
    return isinstance(op, scipy.sparse.linalg.LinearOperator) or scipy.sparse.issparse(op)


def _is_dense(op) -> bool:
    return (not callable(op)) and (not _is_linop(op)) and hasattr(op, "shape") and hasattr(op, "ndim")


def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _resolve_backend(op, xp) -> Backend:
    if isinstance(op, BlockQuadratic):
        if xp is not None and get_backend(xp, op.backend.dtype_name).name != op.backend.name:
            raise ValueError(
                f"xp={xp!r} conflicts with the problem's backend {op.backend.name!r}; leave xp=None for a "
                "BlockQuadratic (build the problem with the backend you want)"
            )
        return op.backend
    if xp is not None:
        return get_backend(xp)
    ops = list(op.values()) if isinstance(op, Mapping) else [op]
    for o in ops:
        if _is_dense(o) and not isinstance(o, np.ndarray):
            import array_api_compat

            return get_backend(array_api_compat.array_namespace(o))
    return get_backend("numpy")


def _dense_to_backend(be: Backend, A, name: str):
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"block {name!r}: a dense operator must be a non-empty square matrix, got shape {tuple(A.shape)}")
    try:
        return be.asarray(A)
    except Exception:  # an array from another namespace: go through the host
        return be.asarray(np.asarray(A, dtype=np.float64))


def _host_apply(be: Backend, fn, name: str):
    """Wrap a column-layout host matmat X (d, p) → (d, p) as a row-layout backend apply (1, p, d)."""

    def apply(X):
        Xh = be.to_numpy(X[0, ...]).T
        Y = np.asarray(fn(Xh), dtype=np.float64)
        if Y.shape != Xh.shape:
            raise ValueError(f"block {name!r}: the operator returned shape {Y.shape} for input shape {Xh.shape}")
        return be.xp.expand_dims(be.asarray(np.ascontiguousarray(Y.T)), axis=0)

    return apply


def _callable_apply(be: Backend, fn, d: int, name: str):
    """A user matmat in the backend's namespace, column layout (d, p) → (d, p)."""
    xp = be.xp

    def apply(X):
        Y = fn(xp.matrix_transpose(X[0, ...]))
        shape = tuple(getattr(Y, "shape", ()))
        if shape != (d, X.shape[1]):
            raise ValueError(f"block {name!r}: the matmat returned shape {shape}, expected {(d, X.shape[1])}")
        return xp.expand_dims(xp.matrix_transpose(be.asarray(Y)), axis=0)

    return apply


def _collect(op, n, be: Backend) -> tuple[list[str], list[int], list[_Group]]:
    """Names, sizes and batched groups for any accepted operator form."""
    xp = be.xp
    if isinstance(op, BlockQuadratic):
        return _collect_problem(op)
    if isinstance(op, BlockSpectrum):
        raise ValueError(
            "a BlockSpectrum is a list of eigenvalues, not an operator: build BlockQuadratic(spectrum) to run "
            "Lanczos on it, or pass it to density()/js0() for exact densities"
        )
    if isinstance(op, Mapping):
        if len(op) == 0:
            raise ValueError("the dict of blocks is empty")
        items = [(str(key), val) for key, val in op.items()]
    else:
        items = [("block0", op)]
    names, sizes, dense_by_size, groups = [], [], {}, []
    for idx, (name, o) in enumerate(items):
        names.append(name)
        if isinstance(o, (BlockQuadratic, Mapping)):
            raise ValueError(f"block {name!r}: a dict value must be a dense array, LinearOperator or callable")
        if _is_dense(o):
            A = _dense_to_backend(be, o, name)
            d = int(A.shape[0])
            dense_by_size.setdefault(d, []).append((idx, A))
        elif _is_linop(o):
            if len(o.shape) != 2 or o.shape[0] != o.shape[1] or o.shape[0] == 0:
                raise ValueError(f"block {name!r}: the operator must be square and non-empty, got shape {o.shape}")
            d = int(o.shape[0])
            fn = o.matmat if isinstance(o, scipy.sparse.linalg.LinearOperator) else (lambda X, o=o: o @ X)
            groups.append(_Group([idx], d, _host_apply(be, fn, name)))
        elif callable(o):
            nn = n.get(name, n.get(idx)) if isinstance(n, Mapping) else n
            if nn is None:
                raise ValueError(f"block {name!r} is a callable matmat: pass its size as n= (an int, or a dict by block name)")
            d = _check_int(nn, f"n for block {name!r}")
            groups.append(_Group([idx], d, _callable_apply(be, o, d, name)))
        else:
            raise ValueError(
                f"block {name!r}: cannot use a {type(o).__name__} as an operator; pass a BlockQuadratic, a dense "
                "square array, a scipy LinearOperator or sparse matrix, a callable matmat X(n, p) -> (n, p) with n=, "
                "or a dict of those"
            )
        sizes.append(d)
    for d, members in dense_by_size.items():
        H = xp.stack([A for _, A in members])

        def apply(X, H=H):
            # X rows are vectors: (A xᵀ)ᵀ = x Aᵀ, so the product is exact even for a non-symmetric A
            # (which the optional symmetry probe then reports).
            return X @ xp.matrix_transpose(H)

        groups.append(_Group([i for i, _ in members], d, apply))
    return names, sizes, groups


def _collect_problem(problem: BlockQuadratic) -> tuple[list[str], list[int], list[_Group]]:
    xp = problem.xp
    names = list(problem.block_names)
    sizes = list(problem.block_sizes)
    groups: list[_Group] = []
    if problem.rotation == "none":
        diag = problem.diagonal()
        by_size: dict[int, list[int]] = {}
        for l, d in enumerate(sizes):
            by_size.setdefault(d, []).append(l)
        for d, ls in by_size.items():
            sl = problem.block_slices
            D = xp.stack([diag[sl[l].start:sl[l].stop] for l in ls])

            def apply(X, D=D):
                return X * xp.expand_dims(D, axis=1)

            groups.append(_Group(ls, d, apply))
    elif not problem.is_block_diagonal:
        # A global rotation mixes the blocks; a "block" is then the diagonal block H[s, s] of H, the
        # object whose spectrum the paper measures for a network.
        by_size = {}
        for l, d in enumerate(sizes):
            by_size.setdefault(d, []).append(l)
        for d, ls in by_size.items():
            H = xp.stack([problem.block(l) for l in ls])
            groups.append(_Group(ls, d, lambda X, H=H: X @ H))
    else:
        for g in problem.groups:
            # Each stored H_l is exactly symmetric (built as ½(A + Aᵀ)), so x H_l = (H_l xᵀ)ᵀ.
            groups.append(_Group(list(g.blocks), g.size, lambda X, H=g.H: X @ H))
    return names, sizes, groups


def _symmetry_check(be: Backend, group: _Group, names, rng_seeds, rtol: float | None) -> None:
    """Raise ValueError if |yᵀAx − xᵀAy| > rtol·max(‖Ax‖‖y‖, ‖Ay‖‖x‖) for random x, y (one matmat, p = 2)."""
    d = group.size
    X = np.stack([np.random.default_rng(rng_seeds[l]).standard_normal((2, d)) for l in group.indices])
    Y = be.to_numpy(group.apply(be.asarray(X)))
    s1 = np.einsum("kd,kd->k", X[:, 1], Y[:, 0])
    s2 = np.einsum("kd,kd->k", X[:, 0], Y[:, 1])
    scale = np.maximum(np.linalg.norm(Y[:, 0], axis=1) * np.linalg.norm(X[:, 1], axis=1),
                       np.linalg.norm(Y[:, 1], axis=1) * np.linalg.norm(X[:, 0], axis=1))
    tol = (100.0 * math.sqrt(d) * be.eps) if rtol is None else float(rtol)
    for j, l in enumerate(group.indices):
        if not (np.isfinite(s1[j]) and np.isfinite(s2[j])):
            raise ValueError(f"block {names[l]!r}: the symmetry probe got non-finite values from the operator")
        rel = abs(s1[j] - s2[j]) / scale[j] if scale[j] > 0 else 0.0
        if rel > tol:
            raise ValueError(
                f"block {names[l]!r} is not symmetric: |y'Ax - x'Ay| / (|Ax||y|) = {rel:.3g} for random x, y, "
                f"above the tolerance {tol:.3g}; Lanczos needs a symmetric operator"
            )


# ================================================================================================
# The Lanczos loop (batched over blocks and probes)
# ================================================================================================
@dataclass
class _Run:
    alpha: np.ndarray  # (k, p, m) float64, zero beyond each probe's steps
    beta: np.ndarray  # (k, p, m): beta[..., s-1] couples T_s to the next basis vector
    steps: np.ndarray  # (k, p) int: size of each probe's tridiagonal
    broke: np.ndarray  # (k, p) bool: stopped on an invariant Krylov space
    converged: np.ndarray  # (k, p) bool: stopped by the caller's convergence test
    nonfinite: np.ndarray  # (k,) int: step (1-based) at which A·v was non-finite, 0 if never
    basis: Any = None  # backend (k, p, m + 1, d) when kept


#: On a CPU the reorthogonalisation is memory-bound: CGS2 reads each probe's basis four times per step.
#: Working through the probes in chunks whose bases fit in cache (~2 MiB) makes three of those reads cache
#: hits (measured 20–30 % per step at d = 2000, 16 probes); a GPU gets one batched call instead.
_CPU_CHUNK_BYTES = 2 * 2**20


def _cgs2(xp, Vj, w, chunk_bytes):
    """w − V(Vᵀw), applied twice ("twice is enough", Giraud–Langou–Rozložník 2005), per block and probe.

    ``Vj``: (k, p, j, d) orthonormal rows; ``w``: (k, p, d)."""
    k, p, j, d = (int(s) for s in Vj.shape)
    ch = p if chunk_bytes is None else max(1, min(p, chunk_bytes // max(1, k * j * d * 8)))
    parts = []
    for s in range(0, p, ch):
        e = min(s + ch, p)
        A, u = Vj[:, s:e, ...], xp.expand_dims(w[:, s:e, :], axis=-2)
        for _ in range(2):
            u = u - (u @ xp.matrix_transpose(A)) @ A
        parts.append(u)
    out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
    return xp.squeeze(out, axis=-2)


def _run_lanczos(be: Backend, apply, V0, m: int, *, reorth: bool, breakdown_factor: float,
                 keep_basis: bool = False, stop=None) -> _Run:
    xp = be.xp
    k, p, d = (int(s) for s in V0.shape)
    store = reorth or keep_basis
    V = None
    if store:
        V = xp.zeros((k, p, m + 1, d), dtype=be.dtype)
        V[:, :, 0, :] = V0
    alpha = np.zeros((k, p, m))
    beta = np.zeros((k, p, m))
    steps = np.zeros((k, p), dtype=np.int64)
    active = np.ones((k, p), dtype=bool)
    broke = np.zeros((k, p), dtype=bool)
    conv = np.zeros((k, p), dtype=bool)
    nonfinite = np.zeros(k, dtype=np.int64)
    tnorm = np.zeros((k, p))
    b_prev = np.zeros((k, p))
    bmin = np.full((k, p), np.inf)
    bd_tol = breakdown_factor * math.sqrt(d) * be.eps
    v, v_prev = V0, None
    chunk_bytes = None if be.is_gpu else _CPU_CHUNK_BYTES
    for j in range(m):
        w = apply(v)
        a = xp.sum(v * w, axis=-1)
        w = w - xp.expand_dims(a, axis=-1) * v
        if j > 0:
            w = w - xp.expand_dims(be.asarray(b_prev), axis=-1) * v_prev
        if reorth:
            w = _cgs2(xp, V[:, :, : j + 1, :], w, chunk_bytes)
        b = xp.linalg.vector_norm(w, axis=-1)
        # The one host synchronisation per step: α and β are needed on the host for the breakdown test.
        ab = np.asarray(be.to_numpy(xp.stack([a, b])), dtype=np.float64)
        a_h, b_h = ab[0], ab[1]
        bad = active & ~(np.isfinite(a_h) & np.isfinite(b_h))
        if bad.any():
            hit = bad.any(axis=1) & (nonfinite == 0)
            nonfinite[hit] = j + 1
            active &= ~bad.any(axis=1)[:, None]
        alpha[..., j] = np.where(active, a_h, 0.0)
        beta[..., j] = np.where(active, b_h, 0.0)
        steps[active] = j + 1
        tnorm = np.where(active, np.maximum(tnorm, np.abs(a_h) + b_h + b_prev), tnorm)
        with np.errstate(divide="ignore", invalid="ignore"):
            amplify = np.where(np.isfinite(bmin) & (bmin > 0), tnorm / bmin, 1.0)
        limit = np.minimum(bd_tol * np.maximum(amplify, 1.0), _BREAKDOWN_CAP) * tnorm
        newly = active & (b_h <= limit)
        bmin = np.where(active & ~newly, np.minimum(bmin, b_h), bmin)
        broke |= newly
        active &= ~newly
        if stop is not None and active.any():
            done = stop(alpha, beta, steps, active) & active
            conv |= done
            active &= ~done
        if not active.any() and not (keep_basis and j == m - 1):
            break
        # Frozen probes get the zero vector: they cost a wasted row of the matmat but never a division.
        scale = np.where(active, 1.0 / np.where(active, b_h, 1.0), 0.0)
        v_prev = v
        v = w * xp.expand_dims(be.asarray(scale), axis=-1)
        if not active.all():
            # w of a frozen probe may hold NaN from a failed matvec; 0·NaN is NaN, so select instead.
            v = xp.where(xp.expand_dims(be.asarray(active, dtype=xp.bool), axis=-1), v, xp.zeros_like(v))
        if store:
            V[:, :, j + 1, :] = v
        b_prev = np.where(active, b_h, 0.0)
    return _Run(alpha, beta, steps, broke, conv, nonfinite, V if keep_basis else None)


def _ritz(alpha: np.ndarray, beta: np.ndarray, steps: np.ndarray, width: int):
    """Gauss quadrature of every probe: nodes θ (ascending), weights τ = (e_1ᵀs)², residuals |β_s e_sᵀs|.

    ``alpha``/``beta``: (N, m); ``steps``: (N,).  Returns three (N, width) arrays padded with node NaN,
    weight 0 and residual NaN beyond each probe's steps."""
    N = alpha.shape[0]
    nodes = np.full((N, width), np.nan)
    weights = np.zeros((N, width))
    resid = np.full((N, width), np.nan)
    for s in np.unique(steps):
        s = int(s)
        if s == 0:
            continue
        idx = np.flatnonzero(steps == s)
        T = np.zeros((idx.size, s, s))
        ar = np.arange(s)
        T[:, ar, ar] = alpha[idx, :s]
        if s > 1:
            T[:, ar[:-1], ar[1:]] = beta[idx, : s - 1]
            T[:, ar[1:], ar[:-1]] = beta[idx, : s - 1]
        theta, S = np.linalg.eigh(T)
        nodes[idx, :s] = theta
        weights[idx, :s] = S[:, 0, :] ** 2
        resid[idx, :s] = np.abs(beta[idx, s - 1][:, None] * S[:, s - 1, :])
    return nodes, weights, resid


def _probe_block(seed_seq, p: int, d: int) -> np.ndarray:
    X = np.random.default_rng(seed_seq).standard_normal((p, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


# ================================================================================================
# Plain Lanczos (basis, tridiagonal) for one operator
# ================================================================================================
@dataclass(frozen=True, eq=False)
class LanczosResult:
    """Lanczos on one operator from given start vector(s).

    ``alpha``, ``beta``: (p, m) float64; probe i's tridiagonal T is ``alpha[i, :steps[i]]`` on the diagonal and
    ``beta[i, :steps[i]-1]`` off it, and ``beta[i, steps[i]-1]`` is the coupling β_s to the next vector.
    ``basis`` (host, (p, m + 1, n)) holds v_1 … v_{m+1} when asked for (rows beyond a probe's steps are 0),
    so that A V_s = V_s T_s + β_s v_{s+1} e_sᵀ can be checked.  ``breakdown[i]`` is the step at which probe i's
    Krylov space became invariant, or None.  ``status`` is "ok", "invariant" or "nonfinite"; ``message``
    says more."""

    alpha: np.ndarray
    beta: np.ndarray
    steps: np.ndarray
    breakdown: tuple
    basis: np.ndarray | None
    status: str
    message: str

    def tridiagonal(self, i: int = 0) -> np.ndarray:
        """Probe i's T_s as a dense (s, s) array."""
        s = int(self.steps[i])
        return np.diag(self.alpha[i, :s]) + np.diag(self.beta[i, : s - 1], 1) + np.diag(self.beta[i, : s - 1], -1)

    def ritz(self):
        """(nodes, weights, residuals), each (p, m), as in :class:`SLQResult`."""
        return _ritz(self.alpha, self.beta, self.steps, self.alpha.shape[1])


def lanczos(op, v0, m: int, *, n=None, xp=None, reorth: bool = True, keep_basis: bool = True,
            breakdown_factor: float = BREAKDOWN_FACTOR) -> LanczosResult:
    """Run m Lanczos steps of one symmetric operator from the start vector(s) ``v0`` ((n,) or (p, n); each
    row is normalised).  ``op``: a dense square array, a scipy LinearOperator or sparse matrix, or a callable
    matmat X(n, p) → (n, p) with ``n=``.  ``m`` is clamped to n (Krylov spaces have dimension ≤ n)."""
    m = _check_int(m, "m")
    if isinstance(op, (BlockQuadratic, Mapping)):
        raise ValueError("lanczos() takes one operator; use slq() for a BlockQuadratic or a dict of blocks")
    be = _resolve_backend(op, xp)
    names, sizes, groups = _collect(op, n, be)
    d = sizes[0]
    V0 = np.atleast_2d(np.asarray(be.to_numpy(v0) if not isinstance(v0, (list, tuple)) else v0, dtype=np.float64))
    if V0.ndim != 2 or V0.shape[1] != d:
        raise ValueError(f"v0 must have shape ({d},) or (p, {d}), got {np.shape(v0)}")
    norms = np.linalg.norm(V0, axis=1)
    if not (np.isfinite(V0).all() and (norms > 0).all()):
        raise ValueError("every start vector must be finite and non-zero")
    m = min(m, d)
    run = _run_lanczos(be, groups[0].apply, be.asarray((V0 / norms[:, None])[None, ...]), m, reorth=reorth,
                       breakdown_factor=breakdown_factor, keep_basis=keep_basis)
    status, message = _status(run, 0, names[0])
    basis = be.to_numpy(run.basis[0, ...]) if keep_basis else None
    return LanczosResult(_frozen(run.alpha[0]), _frozen(run.beta[0]), _frozen(run.steps[0]),
                         tuple(int(run.steps[0, i]) if run.broke[0, i] else None for i in range(V0.shape[0])),
                         None if basis is None else _frozen(np.asarray(basis, dtype=np.float64)), status, message)


def _status(run: _Run, b: int, name: str) -> tuple[str, str]:
    if run.nonfinite[b]:
        j = int(run.nonfinite[b])
        return STATUS_NONFINITE, (
            f"block {name!r}: the operator returned non-finite values at Lanczos step {j} (matrix-vector product "
            f"number {j}); the quadrature keeps the {j - 1} completed steps. Check the operator (overflow, NaN in "
            "the model, a mixed-precision HVP)."
        )
    if run.broke[b].any():
        at = sorted({int(s) for s in run.steps[b][run.broke[b]]})
        return STATUS_INVARIANT, (
            f"block {name!r}: {int(run.broke[b].sum())} probe(s) reached an invariant Krylov space at step(s) {at}; "
            "their quadrature is exact there (a block with few distinct eigenvalues does this)."
        )
    return STATUS_OK, f"block {name!r}: all probes ran their full steps."


# ================================================================================================
# SLQ
# ================================================================================================
@dataclass(frozen=True, eq=False)
class SLQResult:
    """Raw stochastic Lanczos quadrature, per block.

    Attributes
    ----------
    names : block names.
    sizes : block dimensions d_l.
    nodes : per block a (probes, m_l) float64 array: each row holds one probe's Ritz values θ ascending;
        slots beyond the probe's quadrature (after a breakdown) hold NaN.
    weights : same shape: τ = (e_1ᵀ s)², each probe's row sums to 1 (to rounding); padding slots hold 0.
        Every function in quadlab ignores slots of zero weight, so use :meth:`measure` rather than the raw
        arrays when you want "the" measure of a block.
    residuals : same shape: |β_s e_sᵀ s|, the residual norm ‖A y − θ y‖ of each Ritz pair; some eigenvalue of
        the block lies within it of θ.
    m : the requested number of steps; ``m_used[l] = min(m, d_l)`` (a Krylov space has dimension ≤ d_l).
    probes, seed : as requested; probe i of block l is the i-th row of a standard Gaussian (probes, d_l)
        drawn from ``numpy.random.SeedSequence(seed).spawn(2L)[l]``, normalised.
    breakdown : per block, per probe: the step j at which β_j fell below :func:`breakdown_threshold` (invariant
        Krylov space, exact j-point quadrature), or None.
    status, messages : per block "ok", "invariant" or "nonfinite", and a sentence saying what happened.
    reorth : whether full reorthogonalisation was used.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    nodes: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]
    residuals: tuple[np.ndarray, ...]
    m: int
    m_used: tuple[int, ...]
    probes: int
    seed: int
    breakdown: tuple[tuple, ...]
    status: tuple[str, ...]
    messages: tuple[str, ...]
    reorth: bool = True

    @property
    def ok(self) -> bool:
        """True when no block hit a non-finite operator output."""
        return all(s != STATUS_NONFINITE for s in self.status)

    def index(self, block) -> int:
        if isinstance(block, (int, np.integer)) and not isinstance(block, bool):
            if not 0 <= block < len(self.names):
                raise ValueError(f"block index {block} out of range for {len(self.names)} blocks")
            return int(block)
        if block not in self.names:
            raise ValueError(f"no block named {block!r}; blocks are {list(self.names)}")
        return self.names.index(block)

    def measure(self, block=0, probe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(nodes, weights) of one block with zero-weight slots dropped: all probes pooled, each weighted
        1/(number of probes with a quadrature), so the weights sum to 1; or one probe's own quadrature."""
        b = self.index(block)
        X, W = self.nodes[b], self.weights[b]
        if probe is not None:
            X, W = X[probe : probe + 1], W[probe : probe + 1]
        tot = W.sum(axis=1)
        used = tot > 0
        if not used.any():
            raise ValueError(f"block {self.names[b]!r} has no quadrature nodes: {self.messages[b]}")
        keep = (W > 0) & np.isfinite(X) & used[:, None]
        return X[keep], (W / np.where(used, tot, 1.0)[:, None])[keep] / used.sum()

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per block (min, max) of the Ritz values over all probes: θ_min ≥ λ_min and θ_max ≤ λ_max."""
        lo = np.array([np.nanmin(np.where(W > 0, X, np.nan)) for X, W in zip(self.nodes, self.weights, strict=True)])
        hi = np.array([np.nanmax(np.where(W > 0, X, np.nan)) for X, W in zip(self.nodes, self.weights, strict=True)])
        return lo, hi

    def density(self, grid=None, sigma: float = 0.01, relative: bool = True, normalize: str | None = None,
                k: int = 10, log_axis: bool = False, n_grid: int | None = None) -> Density:
        """Smoothed densities of every block on one shared grid; see :func:`density`.  No new matvecs."""
        return density(self, grid=grid, sigma=sigma, relative=relative, normalize=normalize, k=k,
                       log_axis=log_axis, n_grid=n_grid)


def slq(op, m: int = 100, probes: int = 10, seed: int = 0, *, n=None, xp=None, reorth: bool = True,
        check_symmetric: bool = True, symmetry_rtol: float | None = None,
        breakdown_factor: float = BREAKDOWN_FACTOR) -> SLQResult:
    """Stochastic Lanczos quadrature of every block of ``op``.

    ``op``: a :class:`~quadlab.problem.BlockQuadratic` (one SLQ per nominal block H_l; equal-size blocks advance
    together through the stacked (k, d, d) arrays of ``problem.groups``; with rotation="global" a block is the
    diagonal block H[s, s]), a dense square array, a scipy LinearOperator or sparse matrix, a callable matmat
    X(n, p) → (n, p) (give ``n=``; it receives and returns arrays of the backend ``xp``, numpy by default), or a
    dict {name: any of those but a BlockQuadratic} (``n`` may then be a dict by name).

    Each block gets ``probes`` normalised Gaussian probes that advance together as one matmat; m_l = min(m, d_l)
    steps with full reorthogonalisation done twice (``reorth=False`` gives the plain three-term recurrence, as in
    the paper's public code, for comparison).  A probe whose Krylov space becomes invariant stops with the exact
    shorter quadrature; non-finite operator output stops that block with status "nonfinite" and a message naming
    the step.  By default (``check_symmetric=True``) slq first spends one matmat with two random vectors per
    block and raises ValueError when |yᵀAx − xᵀAy| exceeds ``symmetry_rtol`` (default 100·√d·eps) relative to
    ‖Ax‖‖y‖: Lanczos on a non-symmetric operator returns meaningless Ritz values without any sign of trouble.
    ``check_symmetric=False`` skips the probe (for operators symmetric by construction).

    Raises ValueError for m < 1, probes < 1, a negative seed or an operator quadlab cannot use.
    """
    m = _check_int(m, "m (the number of Lanczos steps)")
    probes = _check_int(probes, "probes (the number of random start vectors)")
    seed = _check_seed(seed)
    if not (np.isfinite(breakdown_factor) and breakdown_factor > 0):
        raise ValueError(f"breakdown_factor must be positive and finite, got {breakdown_factor!r}")
    be = _resolve_backend(op, xp)
    names, sizes, groups = _collect(op, n, be)
    L = len(names)
    seeds = np.random.SeedSequence(seed).spawn(2 * L)
    if check_symmetric:
        for g in groups:
            _symmetry_check(be, g, names, seeds[L:], symmetry_rtol)
    nodes: list = [None] * L
    weights: list = [None] * L
    resid: list = [None] * L
    breakdown: list = [None] * L
    status: list = [None] * L
    messages: list = [None] * L
    for g in groups:
        mg = min(m, g.size)
        V0 = np.stack([_probe_block(seeds[l], probes, g.size) for l in g.indices])
        run = _run_lanczos(be, g.apply, be.asarray(V0), mg, reorth=reorth, breakdown_factor=breakdown_factor)
        X, W, R = _ritz(run.alpha.reshape(-1, mg), run.beta.reshape(-1, mg), run.steps.reshape(-1), mg)
        for j, l in enumerate(g.indices):
            rows = slice(j * probes, (j + 1) * probes)
            nodes[l], weights[l], resid[l] = _frozen(X[rows]), _frozen(W[rows]), _frozen(R[rows])
            breakdown[l] = tuple(int(run.steps[j, i]) if run.broke[j, i] else None for i in range(probes))
            status[l], messages[l] = _status(run, j, names[l])
    return SLQResult(tuple(names), tuple(sizes), tuple(nodes), tuple(weights), tuple(resid), m,
                     tuple(min(m, d) for d in sizes), probes, seed, tuple(breakdown), tuple(status),
                     tuple(messages), bool(reorth))


# ================================================================================================
# Extreme eigenvalues
# ================================================================================================
def _extreme_pairs(a: np.ndarray, b: np.ndarray, s: int) -> tuple[float, float, float, float]:
    """(θ_min, θ_max, r_min, r_max) of T_s with residuals r = |β_s e_sᵀ y|."""
    if s == 1:
        return a[0], a[0], abs(b[0]), abs(b[0])
    out = []
    for i in (0, s - 1):
        th, y = scipy.linalg.eigh_tridiagonal(a[:s], b[: s - 1], select="i", select_range=(i, i), check_finite=False)
        out.append((th[0], abs(b[s - 1] * y[-1, 0])))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def _converged(theta: float, r: float, tol: float) -> bool:
    return r <= tol * abs(theta)


@dataclass(frozen=True, eq=False)
class Extremes:
    """Extreme Ritz values of one operator, with residual bounds.

    ``lo`` ≥ λ_min and ``hi`` ≤ λ_max always (Ritz values lie inside the spectrum); ``lo_residual`` and
    ``hi_residual`` are ‖A y − θ y‖ for the Ritz vectors, so an eigenvalue of A lies within them of ``lo`` and
    ``hi`` (for a random start, generically λ_min and λ_max).  Unpacks as ``lo, hi = extreme_eigenvalues(A)``.
    ``kappa`` = hi/lo (an estimate of λ_max/λ_min; inf unless lo > 0) and ``kappa_upper`` =
    (hi + r_hi)/(lo − r_lo), the estimate widened by the residuals.  ``status``: "converged" (both residuals
    ≤ tol·|θ|), "invariant" (the Krylov space closed: exact), "max_steps" or "nonfinite"."""

    lo: float
    hi: float
    lo_residual: float
    hi_residual: float
    steps: int
    tol: float
    status: str
    message: str

    def __iter__(self):
        return iter((self.lo, self.hi))

    @property
    def converged(self) -> bool:
        return self.status in (STATUS_CONVERGED, STATUS_INVARIANT)

    @property
    def kappa(self) -> float:
        return self.hi / self.lo if self.lo > 0 else math.inf

    @property
    def kappa_upper(self) -> float:
        lo = self.lo - self.lo_residual
        return (self.hi + self.hi_residual) / lo if lo > 0 else math.inf


def _extremes_groups(be: Backend, names, groups, L: int, tol: float, max_steps, seed: int, reorth=True):
    seeds = np.random.SeedSequence(seed).spawn(L)
    out: list = [None] * L
    for g in groups:
        cap = g.size if max_steps is None else min(_check_int(max_steps, "max_steps"), g.size)
        V0 = np.stack([_probe_block(seeds[l], 1, g.size) for l in g.indices])
        last_check = np.zeros(g.k, dtype=np.int64)

        def stop(alpha, beta, steps, active, last_check=last_check):
            done = np.zeros_like(active)
            for b in np.flatnonzero(active[:, 0]):
                s = int(steps[b, 0])
                # Checks cost O(s) on the host; spacing them ~3% apart wastes at most that many matvecs.
                if s - last_check[b] < max(1, s // 32):
                    continue
                last_check[b] = s
                tl, th, rl, rh = _extreme_pairs(alpha[b, 0], beta[b, 0], s)
                done[b, 0] = _converged(tl, rl, tol) and _converged(th, rh, tol)
            return done

        run = _run_lanczos(be, g.apply, be.asarray(V0), cap, reorth=reorth, breakdown_factor=BREAKDOWN_FACTOR,
                           stop=stop)
        for j, l in enumerate(g.indices):
            s = int(run.steps[j, 0])
            st, msg = _status(run, j, names[l])
            if s == 0:
                out[l] = Extremes(math.nan, math.nan, math.nan, math.nan, 0, tol, STATUS_NONFINITE, msg)
                continue
            tl, th, rl, rh = _extreme_pairs(run.alpha[j, 0], run.beta[j, 0], s)
            if st == STATUS_NONFINITE:
                pass
            elif run.broke[j, 0]:
                st = STATUS_INVARIANT
            elif _converged(tl, rl, tol) and _converged(th, rh, tol):
                st, msg = STATUS_CONVERGED, f"block {names[l]!r}: both extremes converged in {s} steps"
            else:
                st = STATUS_MAX_STEPS
                msg = (f"block {names[l]!r}: not converged after {s} steps (residuals {rl:.3g} at {tl:.6g}, {rh:.3g} "
                       f"at {th:.6g}; tol {tol:g} relative); raise max_steps or loosen tol")
            out[l] = Extremes(float(tl), float(th), float(rl), float(rh), s, tol, st, msg)
    return out


def extreme_eigenvalues(op, tol: float = 1e-10, *, n=None, xp=None, seed: int = 0, max_steps: int | None = None,
                        check_symmetric: bool = False) -> Extremes:
    """λ_min and λ_max of one symmetric operator by Lanczos with full reorthogonalisation from one random start.

    Stops when both extreme Ritz pairs have residual ‖Ay − θy‖ ≤ tol·|θ| (ARPACK's criterion, so ``tol`` means
    what it means for ``scipy.sparse.linalg.eigsh``), when the Krylov space becomes invariant (exact), or after
    ``max_steps`` (default: the dimension, where Lanczos is exact).  ``op``: as for :func:`lanczos`, or a
    BlockQuadratic (then the whole H; see :func:`block_extremes` for per-block values).  An eigenvalue at 0 can
    only converge by exhaustion, since the test is relative.  Returns :class:`Extremes` (unpacks to (lo, hi))."""
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be positive and finite, got {tol!r}")
    seed = _check_seed(seed)
    if isinstance(op, Mapping):
        raise ValueError("extreme_eigenvalues() takes one operator; use block_extremes() for several blocks")
    be = _resolve_backend(op, xp)
    if isinstance(op, BlockQuadratic):
        problem = op
        names = ["H"]
        groups = [_Group([0], problem.n, lambda X: be.xp.expand_dims(problem.hvp(X[0, ...]), axis=0))]
    else:
        names, _, groups = _collect(op, n, be)
    if check_symmetric:
        _symmetry_check(be, groups[0], names, np.random.SeedSequence(seed).spawn(2)[1:], None)
    return _extremes_groups(be, names, groups, 1, float(tol), max_steps, seed)[0]


@dataclass(frozen=True, eq=False)
class BlockExtremes:
    """Per-block (λ_min, λ_max) estimates; unpacks as ``lo, hi = block_extremes(problem)``.

    ``lo``, ``hi``: (L,) float64 arrays to use (for source="lanczos" already widened by the safety margin);
    ``raw_lo``, ``raw_hi``: the Ritz values themselves (equal to lo, hi for source="exact");
    ``residual_lo``, ``residual_hi``: residual norms (0 for exact); ``steps``: Lanczos steps per block."""

    names: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    raw_lo: np.ndarray
    raw_hi: np.ndarray
    residual_lo: np.ndarray
    residual_hi: np.ndarray
    steps: np.ndarray
    source: str
    margin: float
    status: tuple[str, ...]

    def __iter__(self):
        return iter((self.lo, self.hi))

    @property
    def kappa(self) -> np.ndarray:
        """κ_l = hi/lo per block (inf where lo ≤ 0)."""
        with np.errstate(divide="ignore"):
            return np.where(self.lo > 0, self.hi / np.where(self.lo > 0, self.lo, 1.0), np.inf)


def _widen(raw_lo, raw_hi, r_lo, r_hi, margin: float):
    """Ritz values widened by their residuals and the relative margin (see :func:`block_extremes`)."""
    hi = (raw_hi + r_hi) * (1 + margin)
    hi = np.where(hi >= 0, hi, (raw_hi + r_hi) * (1 - margin))
    lo0 = raw_lo - r_lo
    lo = np.where(lo0 > 0, lo0 * (1 - margin), lo0 - margin * np.abs(hi))
    return lo, hi


def whole_extremes(problem: BlockQuadratic, margin: float = 0.01, *, tol: float = 1e-8, seed: int = 0,
                   max_steps: int | None = None) -> tuple[float, float]:
    """(λ_min(H), λ_max(H)) of the whole H by one Lanczos run (:func:`extreme_eigenvalues`), widened by the
    residuals and ``margin`` exactly as :func:`block_extremes` widens each block's."""
    if not (np.isfinite(margin) and 0 <= margin < 1):
        raise ValueError(f"margin must lie in [0, 1), got {margin!r}")
    e = extreme_eigenvalues(problem, tol, seed=seed, max_steps=max_steps)
    lo, hi = _widen(np.array(e.lo), np.array(e.hi), np.array(e.lo_residual), np.array(e.hi_residual), margin)
    return float(lo), float(hi)


def block_extremes(problem: BlockQuadratic, source: str = "exact", margin: float = 0.01, *, tol: float = 1e-8,
                   seed: int = 0, max_steps: int | None = None) -> BlockExtremes:
    """Per-block extreme eigenvalues of a BlockQuadratic, for step sizes and theory constants.

    source="exact": min/max of each block's known eigenvalues (for rotation="global", where a nominal block is
    the mixed diagonal block H[s, s], eigvalsh of that block).  ``margin`` is not applied.

    source="lanczos": one deterministic Lanczos run per block (seeded start; equal-size blocks batched), stopped
    when both extreme residuals are ≤ tol·|θ|.  Ritz values satisfy θ_max ≤ λ_max and θ_min ≥ λ_min, so the raw
    estimates err on the side that makes a step 2/(λ_min + λ_max) too large.  The returned values are widened:

        hi = (θ_max + r_max)·(1 + margin),   lo = (θ_min − r_min)·(1 − margin)   (lo: if θ_min − r_min > 0,
                                                                                   else θ_min − r_min − margin·|hi|)

    where r are the residual norms (an eigenvalue lies within r of θ).  With the default margin = 1 %, the GD
    step 2/(lo + hi) is at most the exact optimal step and η·λ_max < 2 holds whenever the extreme Ritz pairs have
    converged to the extreme eigenvalues; a 1 % larger λ_max costs GD about 1 % in rate."""
    if not isinstance(problem, BlockQuadratic):
        raise ValueError(f"block_extremes needs a BlockQuadratic, got {type(problem).__name__}")
    if source not in ("exact", "lanczos"):
        raise ValueError(f"source must be 'exact' or 'lanczos', got {source!r}")
    if not (np.isfinite(margin) and 0 <= margin < 1):
        raise ValueError(f"margin must lie in [0, 1), got {margin!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be positive and finite, got {tol!r}")
    names = tuple(problem.block_names)
    L = len(names)
    if source == "exact":
        from .rules import block_extremes as exact_extremes  # the one definition (quadlab.rules)

        ex = exact_extremes(problem, "exact", "nominal")
        lo, hi = ex[:, 0], ex[:, 1]
        z = np.zeros(L)
        return BlockExtremes(names, _frozen(lo), _frozen(hi), _frozen(lo), _frozen(hi), _frozen(z), _frozen(z),
                             _frozen(np.zeros(L, dtype=np.int64)), "exact", 0.0, ("exact",) * L)
    be = problem.backend
    names_l, _, groups = _collect_problem(problem)
    ex = _extremes_groups(be, names_l, groups, L, float(tol), max_steps, _check_seed(seed))
    raw_lo = np.array([e.lo for e in ex])
    raw_hi = np.array([e.hi for e in ex])
    r_lo = np.array([e.lo_residual for e in ex])
    r_hi = np.array([e.hi_residual for e in ex])
    lo, hi = _widen(raw_lo, raw_hi, r_lo, r_hi, margin)
    return BlockExtremes(names, _frozen(lo), _frozen(hi), _frozen(raw_lo), _frozen(raw_hi), _frozen(r_lo),
                         _frozen(r_hi), _frozen(np.array([e.steps for e in ex])), "lanczos", float(margin),
                         tuple(e.status for e in ex))


# ================================================================================================
# Densities
# ================================================================================================
NORMALIZATIONS = (None, "kth_largest", "max_abs")


@dataclass(frozen=True, eq=False)
class Density:
    """Smoothed spectral densities of several blocks on one shared grid.

    ``grid`` (G,): the axis (eigenvalue, normalised eigenvalue, or log10 of it); ``values`` (L, G): densities,
    each integrating to 1 under ``quad_weights`` (the trapezoid weights of the grid); ``sigma``: the Gaussian's
    standard deviation in axis units; ``sigma_rel``: σ as given when relative (σ = sigma_rel · range), else None;
    ``scales`` (L,): what each block was divided by (1 without normalisation); ``mass_on_grid`` (L,): the
    fraction of each block's kernel mass that fell on the grid before renormalisation (1 for the default grid);
    ``max_abs`` (L,): max |λ| of each block before normalisation (its scale, to report with any metric)."""

    names: tuple[str, ...]
    grid: np.ndarray
    values: np.ndarray
    quad_weights: np.ndarray
    sigma: float
    sigma_rel: float | None
    normalize: str | None
    k: int
    scales: np.ndarray
    log_axis: bool
    mass_on_grid: np.ndarray
    max_abs: np.ndarray
    source: str

    def integrals(self) -> np.ndarray:
        return self.values @ self.quad_weights

    def __getitem__(self, block) -> np.ndarray:
        if isinstance(block, str):
            if block not in self.names:
                raise ValueError(f"no block named {block!r}; blocks are {list(self.names)}")
            block = self.names.index(block)
        return self.values[block]


def _measures(obj) -> tuple[str, tuple[str, ...], list, list | None]:
    """(source, names, pooled measures [(x, w)], per-probe measures or None) for any spectral input."""
    if isinstance(obj, SLQResult):
        pooled = [obj.measure(b) for b in range(len(obj.names))]
        per_probe = [[obj.measure(b, i) for i in range(obj.probes) if obj.weights[b][i].sum() > 0]
                     for b in range(len(obj.names))]
        return "slq", obj.names, pooled, per_probe
    if isinstance(obj, BlockQuadratic):
        obj = obj.spectrum
    if isinstance(obj, BlockSpectrum):
        names, blocks = obj.names, list(obj.blocks)
    elif isinstance(obj, Mapping):
        names, blocks = tuple(str(key) for key in obj), list(obj.values())
    elif isinstance(obj, Sequence) and not isinstance(obj, str):
        blocks = list(obj)
        names = tuple(f"block{l}" for l in range(len(blocks)))
    else:
        raise ValueError(
            f"cannot take a density of a {type(obj).__name__}: pass an SLQResult, a BlockQuadratic, a BlockSpectrum, "
            "a list of 1-D eigenvalue arrays or a dict of them"
        )
    if len(blocks) == 0:
        raise ValueError("no blocks given")
    out = []
    for name, b in zip(names, blocks, strict=True):
        x = np.asarray(b, dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"block {name!r}: eigenvalues must be a non-empty 1-D array, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"block {name!r}: eigenvalues must be finite")
        out.append((x, np.full(x.size, 1.0 / x.size)))
    return "exact", names, out, None


def _kth_largest(obj, b: int, x: np.ndarray, k: int) -> float:
    if isinstance(obj, SLQResult):
        # Per probe the k-th largest Ritz value (top Ritz values converge first), averaged over probes.
        vals = []
        for X, W in zip(obj.nodes[b], obj.weights[b], strict=True):
            xs = np.sort(X[(W > 0) & np.isfinite(X)])[::-1]
            if xs.size:
                vals.append(xs[min(k, xs.size) - 1])
        return float(np.mean(vals))
    xs = np.sort(x)[::-1]
    return float(xs[min(k, xs.size) - 1])


def _transform(x: np.ndarray, scale: float, log_axis: bool, name: str) -> np.ndarray:
    t = x / scale
    if log_axis:
        if (t <= 0).any():
            raise ValueError(
                f"block {name!r}: log_axis needs positive (normalised) eigenvalues, but {int((t <= 0).sum())} node(s) "
                f"are <= 0 (smallest {t.min():.6g}); use a linear axis or map the spectrum to positive values first"
            )
        t = np.log10(t)
    return t


def _trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    dx = np.diff(grid)
    c = np.zeros_like(grid)
    c[:-1] += 0.5 * dx
    c[1:] += 0.5 * dx
    return c


def _smooth(t: np.ndarray, w: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    out = np.zeros_like(grid)
    norm = 1.0 / (sigma * math.sqrt(2 * math.pi))
    chunk = max(1, int(2e7 // max(grid.size, 1)))
    for s in range(0, t.size, chunk):
        z = (grid[:, None] - t[None, s : s + chunk]) / sigma
        out += np.exp(-0.5 * z * z) @ w[s : s + chunk]
    return out * norm


def density(obj, grid=None, sigma: float = 0.01, relative: bool = True, normalize: str | None = None, k: int = 10,
            log_axis: bool = False, n_grid: int | None = None) -> Density:
    """Gaussian-smoothed spectral densities of all blocks of ``obj`` on one shared grid.

    ``obj``: an :class:`SLQResult` (its nodes and weights; no new matvecs), a BlockQuadratic or BlockSpectrum
    (exact eigenvalues, weight 1/d_l each), a list of 1-D eigenvalue arrays, or a dict of them.

    Per block, with nodes x_i and weights w_i (Σ w_i = 1): x ↦ x/s_l with s_l = |k-th largest eigenvalue|
    (``normalize="kth_largest"``; the paper's figures use k = 10; for SLQ the k-th largest Ritz value, averaged
    over probes; a block with fewer than k nodes uses its smallest) or s_l = max |x| (``"max_abs"``) or s_l = 1
    (None); then t = log10(x/s_l) if ``log_axis`` (all must be positive); then

        p_l(t) = Σ_i w_i φ_σ(t − t_i) / Z_l,   φ_σ(u) = exp(−u²/2σ²)/(σ√(2π)),

    with Z_l the trapezoid integral over the grid, so ∫ p_l = 1 on the grid.  σ is a standard deviation: in axis
    units when ``relative=False``, else ``sigma`` × (max t − min t over all blocks) (if that range is 0 to within
    √eps: × max |t|, or × 1).  Default grid: uniform from min t − 6σ to max t + 6σ with spacing ≤ σ/5 (2,001 to 200,001 points,
    or ``n_grid``).  Warns (with the numbers) when the grid spacing exceeds σ/2 or a block loses more than 1 % of
    its mass off the grid."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    k = _check_int(k, "k (which largest eigenvalue to normalise by)")
    if not (isinstance(sigma, (int, float, np.floating)) and np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number (a standard deviation), got {sigma!r}")
    source, names, meas, _ = _measures(obj)
    ts, ws, scales, maxabs = [], [], [], []
    for b, (name, (x, w)) in enumerate(zip(names, meas, strict=True)):
        mx = float(np.max(np.abs(x)))
        maxabs.append(mx)
        if normalize == "kth_largest":
            s = abs(_kth_largest(obj, b, x, k))
        elif normalize == "max_abs":
            s = mx
        else:
            s = 1.0
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"block {name!r}: cannot normalise by {normalize} = {s!r} (must be non-zero)")
        scales.append(s)
        ts.append(_transform(x, s, log_axis, name))
        ws.append(w)
    lo = min(float(t.min()) for t in ts)
    hi = max(float(t.max()) for t in ts)
    if relative:
        # A range at rounding level (one eigenvalue, SLQ nodes equal to the last bits) is no scale for σ.
        mag = max(abs(lo), abs(hi))
        ref = hi - lo if hi - lo > _BREAKDOWN_CAP * mag else (mag or 1.0)
        sig = float(sigma) * ref
    else:
        sig = float(sigma)
    if grid is None:
        if n_grid is None:
            G = int(min(max(math.ceil((hi - lo + 12 * sig) / (sig / 5)) + 1, 2001), 200001))
        else:
            G = _check_int(n_grid, "n_grid", 2)
        g = np.linspace(lo - 6 * sig, hi + 6 * sig, G)
    else:
        if n_grid is not None:
            raise ValueError("give either grid or n_grid, not both")
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim != 1 or g.size < 2 or not np.isfinite(g).all() or not (np.diff(g) > 0).all():
            raise ValueError("grid must be a finite, strictly increasing 1-D array with at least 2 points")
    dmax = float(np.max(np.diff(g)))
    if dmax > sig / 2:
        warnings.warn(
            f"the grid cannot resolve the kernel: spacing {dmax:.4g} exceeds sigma/2 = {sig / 2:.4g} (sigma = {sig:.4g}, "
            f"{g.size} points over [{g[0]:.4g}, {g[-1]:.4g}]); use a finer grid or a larger sigma",
            stacklevel=2,
        )
    c = _trapezoid_weights(g)
    vals, mass = [], []
    for name, t, w in zip(names, ts, ws, strict=True):
        p = _smooth(t, w, g, sig)
        z = float(p @ c)
        if not z > 0:
            raise ValueError(f"block {name!r}: none of its mass falls on the grid [{g[0]:.4g}, {g[-1]:.4g}]")
        mass.append(z)
        vals.append(p / z)
    mass = np.array(mass)
    if (mass < 0.99).any():
        i = int(np.argmin(mass))
        warnings.warn(
            f"block {names[i]!r} keeps only {mass[i]:.3%} of its kernel mass on the grid [{g[0]:.4g}, {g[-1]:.4g}]; "
            "its density was renormalised to 1 on the grid",
            stacklevel=2,
        )
    return Density(tuple(names), _frozen(g), _frozen(np.array(vals)), _frozen(c), sig,
                   float(sigma) if relative else None, normalize, k, _frozen(np.array(scales)), bool(log_axis),
                   _frozen(mass), _frozen(np.array(maxabs)), source)
