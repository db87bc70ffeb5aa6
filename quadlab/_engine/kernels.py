"""Fused CPU kernels for the iterate path's inner loop (optional: numba, the ``fast`` extra).

numpy applies an update rule one operation at a time, each a full pass over the (k, R, d) iterate: Adam's
step is eleven passes, which on the benchmark problem (4 blocks of 500, 8 runs, float64) cost about a
quarter of the H·e matmul they sit next to.  A compiled loop does the whole step in one pass, row by row
(a row is one run's d coordinates in one block, or all n of them when the problem has a single dense or
diagonal group; contiguous and vectorised by LLVM), and applies the same IEEE operations in the same order
as the numpy path, without contraction to fused multiply-adds, so it gives the numpy path's results bit
for bit.

The kernels are used when numba imports, its JIT is on (``NUMBA_DISABLE_JIT`` unset) and the environment
does not set ``QUADLAB_NUMBA=0``; otherwise the runner keeps its numpy path, with the same results.  numba
is imported on first use, not with quadlab.  Compiled code is cached on disk (numba's ``cache=True``), so a
process pays the compile (about a second per dtype) only the first time.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np

__all__ = ["available", "adam_step", "matmul_rows", "block_dot", "row_sums", "ADAM_PARAMS"]

# per-run parameters of adam_step, in the order of the last axis of its parameter array ("eps": the ε added to
# √v; never "e", which is the error w − w* in quadlab: docs/ARCHITECTURE.md, glossary)
ADAM_PARAMS = ("lr", "b1", "c", "b2", "s", "eps")


@functools.cache
def _numba():
    """The numba module, or None where it is not installed or does not import."""
    try:
        import numba
    except (ImportError, OSError):  # absent, or a broken llvmlite/numpy pairing
        return None
    return numba


def available() -> bool:
    """True when the fused kernels will be used: numba imports, its JIT is on and ``QUADLAB_NUMBA`` is
    not "0".  (Under ``NUMBA_DISABLE_JIT=1`` the kernels would run as Python loops, 20× slower than numpy.)"""
    if os.environ.get("QUADLAB_NUMBA", "1") == "0":
        return False
    numba = _numba()
    return numba is not None and not numba.config.DISABLE_JIT


def njit_cached(f):
    """``numba.njit`` as every quadlab kernel is compiled: no GIL, numpy's error model (a zero denominator
    gives ±inf/NaN as in numpy instead of raising ZeroDivisionError; the check Python semantics would need
    also stops LLVM from vectorising), cached on disk, or per process where no cache location is writable."""
    numba = _numba()
    try:
        return numba.njit(nogil=True, error_model="numpy", cache=True)(f)
    except RuntimeError:  # a read-only install with no home: compile per process
        return numba.njit(nogil=True, error_model="numpy")(f)


@functools.cache
def _compiled():
    """The compiled Adam leaf kernel (built once per process; numba compiles per dtype on first call)."""
    numba = _numba()
    if numba is None:
        raise ImportError("quadlab's compiled kernels need numba: pip install 'quadlab[fast]' (or numba>=0.60)")

    jit = njit_cached

    @jit
    def row_m(x, g, m, v, b1, c, b2, s, eps, lr):  # pragma: no cover - compiled
        for j in range(x.shape[0]):
            gj = g[j]
            mj = m[j] * b1 + gj * c
            m[j] = mj
            vj = v[j] * b2 + gj * gj
            v[j] = vj
            x[j] = x[j] - (mj / (math.sqrt(vj * s) + eps)) * lr

    @jit
    def row_g(x, g, v, b2, s, eps, lr):  # pragma: no cover - compiled
        for j in range(x.shape[0]):
            gj = g[j]
            vj = v[j] * b2 + gj * gj
            v[j] = vj
            x[j] = x[j] - (gj / (math.sqrt(vj * s) + eps)) * lr

    @jit
    def adam_leaf(x, g, m, v, p, use_m):  # pragma: no cover - compiled
        k, R = x.shape[0], x.shape[1]
        for i in range(k):
            for r in range(R):
                if use_m:
                    row_m(x[i, r], g[i, r], m[i, r], v[i, r], p[0, r, 1], p[0, r, 2], p[0, r, 3], p[0, r, 4],
                          p[0, r, 5], p[0, r, 0])
                else:
                    row_g(x[i, r], g[i, r], v[i, r], p[0, r, 3], p[0, r, 4], p[0, r, 5], p[0, r, 0])

    return adam_leaf


@functools.cache
def _compiled_matmul(parallel: bool = False):
    """The compiled fixed-order product (see :func:`matmul_rows`); ``parallel``: the blocks split over threads
    (numba's prange).  Each output entry is computed by one thread in the same order either way."""
    numba = _numba()
    if numba is None:
        raise ImportError("quadlab's compiled kernels need numba: pip install 'quadlab[fast]' (or numba>=0.60)")
    prange = numba.prange

    def matmul(X, A, out):  # pragma: no cover - compiled
        k, R, d = X.shape
        c = A.shape[2]
        for b in prange(k):
            a, Xb, Yb = A[b], X[b], out[b]
            for r in range(R):
                x0, y = Xb[r, 0], Yb[r]
                for i in range(c):
                    y[i] = x0 * a[0, i]
            # four rows of A per sweep over the runs: each y[i] is loaded and stored once per four terms, and
            # the terms are still added one at a time in the order of j (the bits of the one-row loop)
            j = 1
            while j + 3 < d:
                a1, a2, a3, a4 = a[j], a[j + 1], a[j + 2], a[j + 3]
                for r in range(R):
                    x1, x2, x3, x4, y = Xb[r, j], Xb[r, j + 1], Xb[r, j + 2], Xb[r, j + 3], Yb[r]
                    for i in range(c):
                        y[i] = (((y[i] + x1 * a1[i]) + x2 * a2[i]) + x3 * a3[i]) + x4 * a4[i]
                j += 4
            while j < d:
                aj = a[j]
                for r in range(R):
                    xj, y = Xb[r, j], Yb[r]
                    for i in range(c):
                        y[i] = y[i] + xj * aj[i]
                j += 1

    # numba's disk cache keys a function by its qualified name, not by its flags: the two variants need names
    # of their own, or one loads the other's machine code
    matmul.__qualname__ = matmul.__name__ = "matmul_rows_parallel" if parallel else "matmul_rows_serial"
    opts = dict(nogil=True, error_model="numpy", parallel=parallel)
    try:
        return numba.njit(cache=True, **opts)(matmul)
    except RuntimeError:  # no writable cache location
        return numba.njit(**opts)(matmul)


#: below this many multiply-adds per call (k·R·d·c) the serial loop wins: starting the threads costs
#: microseconds (measured: 4 × 8 × 500², 427 µs serial, 203 µs on 2 threads; 4 × 8 × 25², 1.7 against 3.1 µs)
PARALLEL_MIN_WORK = 1 << 18


def matmul_rows(X, A, out, *, check: bool = True) -> None:
    """out[b, r, :] = X[b, r, :] @ A[b] for X (k, R, d), A (k, d, c), out (k, R, c), in the fixed order

        out[b, r, i] = (…((X[b,r,0]·A[b,0,i] + X[b,r,1]·A[b,1,i]) + X[b,r,2]·A[b,2,i]) + …) + X[b,r,d−1]·A[b,d−1,i]

    with every product rounded before it is added (no fused multiply-add).  Each output row depends on its
    own input row only, through the same operations whatever R is, so a run's numbers do not depend on the
    runs beside it (a BLAS matmul picks its kernels and summation order by the batch shape).  This is the
    order of :func:`quadlab._engine.ordered.matmul`'s numpy loop, bit for bit.  All three arrays must be C-contiguous
    numpy arrays of one dtype (float32 or float64), ``out`` not overlapping the inputs; checked here because
    the compiled loop has no bounds checks (``check=False`` skips that, for callers that built the arrays)."""
    if check:
        _check_matmul(X, A, out)
    k, R, d = X.shape
    # the serial loop where the calling thread has one numba thread (a call of threads.map_calls)
    big = k > 1 and k * R * d * A.shape[2] >= PARALLEL_MIN_WORK
    _compiled_matmul(big and _numba().get_num_threads() > 1)(X, A, out)


@functools.cache
def _compiled_sums():
    """The compiled fixed-order sums of :func:`block_dot` and :func:`row_sums` (numba compiles per dtype and
    memory layout on first call)."""
    numba = _numba()
    if numba is None:
        raise ImportError("quadlab's compiled kernels need numba: pip install 'quadlab[fast]' (or numba>=0.60)")
    jit = njit_cached

    # Each row's sum is one dependency chain, its terms added one at a time in the order of j (no
    # reassociation: fastmath is off); four rows are carried side by side only so that four independent chains
    # keep the adder busy.  Every sum starts from its first term, not from 0 (0 + (−0) would give +0).

    @jit
    def block_dot(A, B, out):  # pragma: no cover - compiled
        k, M, d = A.shape
        r = 0
        while r + 3 < M:
            t0 = A[0, r, 0] * B[0, r, 0]
            t1 = A[0, r + 1, 0] * B[0, r + 1, 0]
            t2 = A[0, r + 2, 0] * B[0, r + 2, 0]
            t3 = A[0, r + 3, 0] * B[0, r + 3, 0]
            for j in range(1, d):
                t0 = t0 + A[0, r, j] * B[0, r, j]
                t1 = t1 + A[0, r + 1, j] * B[0, r + 1, j]
                t2 = t2 + A[0, r + 2, j] * B[0, r + 2, j]
                t3 = t3 + A[0, r + 3, j] * B[0, r + 3, j]
            for b in range(1, k):
                s0 = A[b, r, 0] * B[b, r, 0]
                s1 = A[b, r + 1, 0] * B[b, r + 1, 0]
                s2 = A[b, r + 2, 0] * B[b, r + 2, 0]
                s3 = A[b, r + 3, 0] * B[b, r + 3, 0]
                for j in range(1, d):
                    s0 = s0 + A[b, r, j] * B[b, r, j]
                    s1 = s1 + A[b, r + 1, j] * B[b, r + 1, j]
                    s2 = s2 + A[b, r + 2, j] * B[b, r + 2, j]
                    s3 = s3 + A[b, r + 3, j] * B[b, r + 3, j]
                t0 = t0 + s0
                t1 = t1 + s1
                t2 = t2 + s2
                t3 = t3 + s3
            out[r] = t0
            out[r + 1] = t1
            out[r + 2] = t2
            out[r + 3] = t3
            r += 4
        while r < M:
            t = A[0, r, 0] * B[0, r, 0]
            for j in range(1, d):
                t = t + A[0, r, j] * B[0, r, j]
            for b in range(1, k):
                s = A[b, r, 0] * B[b, r, 0]
                for j in range(1, d):
                    s = s + A[b, r, j] * B[b, r, j]
                t = t + s
            out[r] = t
            r += 1

    @jit
    def row_sums(A, out):  # pragma: no cover - compiled
        M, d = A.shape
        r = 0
        while r + 3 < M:
            t0, t1, t2, t3 = A[r, 0], A[r + 1, 0], A[r + 2, 0], A[r + 3, 0]
            for j in range(1, d):
                t0 = t0 + A[r, j]
                t1 = t1 + A[r + 1, j]
                t2 = t2 + A[r + 2, j]
                t3 = t3 + A[r + 3, j]
            out[r] = t0
            out[r + 1] = t1
            out[r + 2] = t2
            out[r + 3] = t3
            r += 4
        while r < M:
            t = A[r, 0]
            for j in range(1, d):
                t = t + A[r, j]
            out[r] = t
            r += 1

    return block_dot, row_sums


def block_dot(A, B, out) -> None:
    """out[r] = Σ_{b<k} (Σ_{j<d} A[b, r, j]·B[b, r, j]) for A, B (k, M, d) and out (M,), in the fixed order

        s_b = (…((A[b,r,0]·B[b,r,0] + A[b,r,1]·B[b,r,1]) + A[b,r,2]·B[b,r,2]) + …) + A[b,r,d−1]·B[b,r,d−1]
        out[r] = (…((s_0 + s_1) + s_2) + …) + s_{k−1}

    every product rounded before it is added (no fused multiply-add), in the arrays' dtype.  The order of
    :func:`quadlab._engine.ordered.block_dot`'s numpy loop, bit for bit.  A, B: numpy arrays of one float dtype
    and shape, k ≥ 1, d ≥ 1 (any strides); out: (M,) of that dtype, not overlapping them (unchecked)."""
    _compiled_sums()[0](A, B, out)


def row_sums(A, out) -> None:
    """out[r] = (…((A[r,0] + A[r,1]) + A[r,2]) + …) + A[r,d−1] for A (M, d), d ≥ 1, out (M,) of A's dtype:
    the order of :func:`quadlab._engine.ordered.sum_last`'s numpy loop, bit for bit (unchecked)."""
    _compiled_sums()[1](A, out)


def _check_matmul(X, A, out) -> None:
    arrays = {"X": X, "A": A, "out": out}
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.ndim != 3 or not a.flags.c_contiguous:
            raise ValueError(f"matmul_rows: {name} must be a C-contiguous 3-D numpy array, got "
                             f"{getattr(a, 'shape', type(a).__name__)}")
        if a.dtype != X.dtype or a.dtype not in (np.float32, np.float64):
            raise ValueError(f"matmul_rows: X, A and out must share one dtype, float32 or float64; got {a.dtype}")
    k, R, d = X.shape
    if A.shape[:2] != (k, d) or out.shape != (k, R, A.shape[2]) or d == 0:
        raise ValueError(f"matmul_rows: shapes X {X.shape}, A {A.shape}, out {out.shape} do not chain as "
                         "(k, R, d) @ (k, d, c) -> (k, R, c) with d >= 1")
    if not out.flags.writeable or np.may_share_memory(out, X) or np.may_share_memory(out, A):
        raise ValueError("matmul_rows: out must be writeable and must not overlap X or A")


def _check_adam(E, G, M, V, P) -> None:
    # The compiled loops index without bounds checks: a wrong shape would read or write past an array.
    if not isinstance(P, np.ndarray) or P.ndim != 3 or P.shape[0] != 1 or P.shape[2] != len(ADAM_PARAMS):
        raise ValueError(f"adam_step: P must be a numpy array of shape (1, R, {len(ADAM_PARAMS)}), got "
                         f"{getattr(P, 'shape', type(P).__name__)}")
    if P.dtype not in (np.float32, np.float64) or not P.flags.c_contiguous:
        raise ValueError(f"adam_step: P must be C-contiguous float32 or float64, got {P.dtype}")
    if not (len(G) == len(V) == len(E) and len(M) in (0, len(E))):
        raise ValueError(f"adam_step: E, G, V (and M unless empty) need one leaf each per group, got "
                         f"{len(E)}, {len(G)}, {len(V)} (M: {len(M)})")
    R = P.shape[1]
    for i, x in enumerate(E):
        if not isinstance(x, np.ndarray) or x.ndim != 3:
            raise ValueError(f"adam_step: leaf {i} of E must be a numpy array (k, R, d), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if x.shape[1] != R:
            raise ValueError(f"adam_step: leaf {i} of E holds {x.shape[1]} runs but P has parameters for {R}")
        leaves = {"E": x, "G": G[i], "V": V[i]} | ({"M": M[i]} if M else {})
        for name, a in leaves.items():
            if not isinstance(a, np.ndarray) or a.shape != x.shape:
                raise ValueError(f"adam_step: leaf {i} of {name} must have E's shape {x.shape}, got "
                                 f"{getattr(a, 'shape', type(a).__name__)}")
            if a.dtype != P.dtype or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError(f"adam_step: leaf {i} of {name} must be writeable, C-contiguous and of P's dtype "
                                 f"{P.dtype}, got {a.dtype}")


def adam_step(E, G, M, V, P, *, check: bool = True) -> None:
    """One step of the Adam family on every run, in place, in one pass per leaf.

    For each leaf (k, R, d) of the error E = w − w*, gradient G, moments M (or ``()`` when the first moment
    is g itself) and V, and each run r with parameters P[0, r] = (η, β1, c, β2, s_t, ε_t) (``ADAM_PARAMS``):

        m ← m·β1 + g·c,   v ← v·β2 + g∘g,   E ← E − (m / (√(v·s_t) + ε_t))·η

    (with m = g when M is empty).  This is the optimizer's stored form (see ``quadlab.optim``), evaluated in
    the order the numpy path evaluates it.  Every array is a C-contiguous numpy array of one dtype (float32
    or float64); ``check=False`` skips verifying that, for callers that built the arrays themselves (the
    runner's per-step call), since the compiled loops do not check bounds.
    """
    if check:
        _check_adam(E, G, M, V, P)
    leaf = _compiled()
    use_m = len(M) > 0
    for i, (x, g, v) in enumerate(zip(E, G, V, strict=True)):
        leaf(x, g, M[i] if use_m else x, v, P, use_m)
