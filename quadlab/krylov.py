"""The batched Lanczos loop and the operator adapters it runs on.

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

Batching
--------
All probes of a block advance together (one matmat per step), and blocks of equal size advance together
too: vectors are stored as rows of a (k, p, d) backend array (k blocks, p probes), and one step applies
the stacked (k, d, d) blocks of a :class:`~quadlab.problem.BlockQuadratic` with one batched matmul.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from ._engine.choices import deprecated
from .backend import Backend, get_backend
from .problem import BlockQuadratic
from .spectra import BlockSpectrum

__all__ = ["BREAKDOWN_FACTOR", "LanczosResult", "breakdown_threshold", "lanczos"]


#: c in the breakdown test (see :func:`breakdown_threshold`); 100 leaves a factor ≥ 10 over the largest
#: invariant-space residuals measured on repeated-eigenvalue blocks of sizes 25–2000.
BREAKDOWN_FACTOR = 100.0
#: The test never accepts a β above √eps·‖T‖ as a breakdown.
_BREAKDOWN_CAP = math.sqrt(np.finfo(np.float64).eps)


def breakdown_threshold(tnorm: float, beta_min: float, d: int, eps: float, factor: float = BREAKDOWN_FACTOR) -> float:
    """The β below which Lanczos step j counts as a breakdown (an invariant Krylov space).

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
    measure is still exact to rounding.

    Parameters
    ----------
    tnorm : float
        ‖T_j‖_∞.
    beta_min : float
        The smallest earlier β (inf before the first).
    d : int
        The operator's dimension.
    eps : float
        The working precision's machine epsilon.
    factor : float, default ``BREAKDOWN_FACTOR``
        c.

    Returns
    -------
    float
        τ_j.

    Examples
    --------
    >>> import numpy as np
    >>> from quadlab import krylov
    >>> eps = np.finfo(np.float64).eps
    >>> bool(krylov.breakdown_threshold(1.0, np.inf, 100, eps) == 100 * 10 * eps)
    True
    """
    amplify = tnorm / beta_min if (np.isfinite(beta_min) and beta_min > 0) else 1.0
    return min(factor * math.sqrt(d) * eps * max(amplify, 1.0), _BREAKDOWN_CAP) * tnorm


STATUS_OK = "ok"
STATUS_INVARIANT = "invariant"
STATUS_NONFINITE = "nonfinite"
STATUS_CONVERGED = "converged"
STATUS_MAX_STEPS = "max_steps"


# -- Operators: everything becomes groups of equal-size blocks with one batched apply (k, p, d) → (k, p, d) --------
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


# -- The Lanczos loop (batched over blocks and probes) -------------------------------------------------------------
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


# -- Plain Lanczos (basis, tridiagonal) for one operator -----------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LanczosResult:
    """Lanczos on one operator from given start vector(s): the tridiagonals, and the basis when kept.

    Probe i's tridiagonal T is ``alpha[i, :m_used[i]]`` on the diagonal and ``beta[i, :m_used[i]-1]`` off it;
    ``beta[i, m_used[i]-1]`` is the coupling β_s to the next vector, so that
    A V_s = V_s T_s + β_s v_{s+1} e_sᵀ can be checked against ``basis``.

    Attributes
    ----------
    alpha, beta : numpy.ndarray
        (p, m) float64.
    m_used : numpy.ndarray
        (p,) int: the Lanczos length each probe ran (< m after a breakdown).  ``steps`` is its deprecated name.
    breakdown : tuple
        Per probe the step at which its Krylov space became invariant, or None.
    basis : numpy.ndarray or None
        Host (p, m + 1, n): v_1 … v_{m+1} (rows beyond a probe's length are 0), when asked for.
    status : str
        "ok", "invariant" or "nonfinite".
    message : str
        What happened, in a sentence.
    """

    alpha: np.ndarray
    beta: np.ndarray
    m_used: np.ndarray
    breakdown: tuple
    basis: np.ndarray | None
    status: str
    message: str

    @property
    def steps(self) -> np.ndarray:
        deprecated("LanczosResult.steps", "m_used")
        return self.m_used

    def tridiagonal(self, i: int = 0) -> np.ndarray:
        """Probe i's T_s as a dense array.

        Parameters
        ----------
        i : int, default 0
            The probe.

        Returns
        -------
        numpy.ndarray
            (s, s) float64, s = ``m_used[i]``.
        """
        s = int(self.m_used[i])
        return np.diag(self.alpha[i, :s]) + np.diag(self.beta[i, : s - 1], 1) + np.diag(self.beta[i, : s - 1], -1)

    def ritz(self):
        """The Ritz quadrature of every probe: nodes θ, weights (e_1ᵀy)², residuals |β_s e_sᵀy|.

        Returns
        -------
        tuple of numpy.ndarray
            (nodes, weights, residuals), each (p, m), NaN/0-padded beyond each probe's length as in
            :class:`quadlab.slq.SLQResult`.
        """
        return _ritz(self.alpha, self.beta, self.m_used, self.alpha.shape[1])


def lanczos(op, v0, m: int, *, n=None, xp=None, reorth: bool = True, keep_basis: bool = True,
            breakdown_factor: float = BREAKDOWN_FACTOR) -> LanczosResult:
    """Run m Lanczos steps of one symmetric operator from the start vector(s) ``v0``.

    Full reorthogonalisation (CGS2) keeps the basis orthonormal to rounding; a probe whose Krylov space becomes
    invariant stops there (module docstring).  ``m`` is clamped to n (Krylov spaces have dimension ≤ n).

    Parameters
    ----------
    op : array_like, scipy LinearOperator or sparse matrix, or callable
        A dense square array, a LinearOperator or sparse matrix, or a matmat X(n, p) → (n, p) (give ``n=``).
    v0 : array_like
        Start vector(s), (n,) or (p, n); each row is normalised.
    m : int
        The Lanczos length, ≥ 1.
    n : int, keyword-only, optional
        The dimension of a callable ``op``.
    xp : str or module, keyword-only, optional
        The backend the operator works in (default numpy).
    reorth, keep_basis : bool, keyword-only, default True
        False: the plain three-term recurrence; do not return the basis.
    breakdown_factor : float, keyword-only, default ``BREAKDOWN_FACTOR``
        c in :func:`breakdown_threshold`.

    Returns
    -------
    LanczosResult
        The tridiagonals (and basis) of every start vector.

    Raises
    ------
    ValueError
        If ``op`` is a BlockQuadratic or dict (use :func:`quadlab.slq.slq`) or not an operator quadlab can use,
        ``v0`` has the wrong shape or a zero or non-finite row, or ``m`` < 1.

    Examples
    --------
    >>> import numpy as np
    >>> from quadlab import krylov
    >>> A = np.diag([1.0, 2.0, 2.0, 5.0])
    >>> res = krylov.lanczos(A, np.ones(4), 4)
    >>> res.m_used.tolist(), res.status
    ([3], 'invariant')
    >>> np.linalg.eigvalsh(res.tridiagonal()).round(12).tolist()  # the three distinct eigenvalues, exactly
    [1.0, 2.0, 5.0]
    """
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
