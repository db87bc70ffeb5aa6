"""Products and sums in a fixed order per run, so that a run's numbers do not depend on its batch.

A batched BLAS matmul chooses its kernel, blocking and summation order from the shape of the whole batch:
the same row multiplied alone, beside one other row or as the third of three rows can differ in the last
bit (measured with OpenBLAS: a (1, d) product goes through gemv, and row 3 of 3 through an edge kernel).
numpy's reductions likewise pick pairwise or sequential summation by memory layout, which changes with the
number of runs.  In an optimizer that sits near a threshold (Adam's stall regime, a stopping test) one bit
at step 1 can change the outcome.  quadlab therefore fixes the order of every reduction that mixes the
coordinates of one run:

* :func:`matmul`: Y = X @ A per group, each entry accumulated over j = 0, 1, …, d−1 in turn, every product
  rounded before it is added:  Y[b,r,i] = (…(X[b,r,0]A[b,0,i] + X[b,r,1]A[b,1,i]) + …) + X[b,r,d−1]A[b,d−1,i].
  On numpy it runs as a compiled loop (:func:`quadlab._engine.kernels.matmul_rows`, with numba) or, without numba,
  as d vectorised multiply-adds over all runs; both give the same bits.  Other array namespaces run the same
  d multiply-adds (on cupy one kernel launch each, so large blocks are slow there; see ``docs/THEORY.md``).
* :func:`sum_first`: Σ over the leading axis, one term after the other.
* :func:`block_dot`: Σ_b Σ_j a[b,…,j]·b[b,…,j], each block's d products added in turn (j = 0, 1, …, d−1),
  then the block sums in turn (b = 0, 1, …, k−1); :func:`sum_last`: one block's order on plain terms.
  Every norm, inner product and mean over one run's coordinates that quadlab records or tests (‖∇f‖,
  f − f* = ½eᵀg, the tolerance and divergence thresholds, Adam-mini's block mean) is one of these.

The second reason is the machine.  ``numpy.vecdot``, ``einsum``, ``linalg.norm``, ``@`` and even ``sum`` leave
their order to numpy's SIMD dispatch or to the BLAS, which choose by the CPU: OpenBLAS's ddot sums a
3-term dot product in one order with its SkylakeX (AVX-512) kernels and in turn with its Sandybridge ones
(measured: ``vecdot`` of 2,000 random rows of 3 terms differed from the sequential sum in 397 rows on
AVX-512, in none under ``OPENBLAS_CORETYPE=Sandybridge``).  A run's recorded ‖∇f‖, its threshold and hence
its stopping step would then depend on the CPU in knife-edge cases.  The orders here are written out
(compiled loops with numba, :mod:`quadlab._engine.kernels`; otherwise elementwise numpy operations and
``np.add.accumulate``, sequential by definition), so they give the same bits on every CPU and namespace,
and the compiled scan (:mod:`quadlab._engine.scan`) and the GPU kernel (:mod:`quadlab._engine.gpu_scan`),
which sum in the same orders, agree with them by construction.

With these, a (configuration, seed) run gives the same bits alone, in any grid and beside any seeds, and
whichever of its batch-mates stopped earlier.
"""

from __future__ import annotations

import math

import numpy as np

from . import kernels

__all__ = ["matmul", "sum_first", "block_dot", "sum_last"]


def _numpy_loop(X, A, out):
    np.multiply(X[:, :, 0:1], A[:, None, 0, :], out=out)
    if X.shape[2] > 1:
        tmp = np.empty_like(out)
        for j in range(1, X.shape[2]):
            np.add(out, np.multiply(X[:, :, j:j + 1], A[:, None, j, :], out=tmp), out=out)
    return out


def matmul(xp, X, A, out=None):
    """X @ A for X (k, R, d) and A (k, d, c) (or X (R, d), A (d, c)), summed over d in the fixed order of the
    module docstring.  ``out`` (numpy only): an array of the result's shape to write into."""
    if X.ndim == 2:
        Y = matmul(xp, X[None, ...], A[None, ...], None if out is None else out[None, ...])
        return Y[0, ...]
    if isinstance(X, np.ndarray) and isinstance(A, np.ndarray):
        k, R, d = X.shape
        if out is None:
            out = np.empty((k, R, A.shape[2]), dtype=np.result_type(X, A))
        if kernels.available() and X.dtype == A.dtype == out.dtype and X.dtype in (np.float32, np.float64):
            Xc = X if X.flags.c_contiguous else np.ascontiguousarray(X)
            Ac = A if A.flags.c_contiguous else np.ascontiguousarray(A)
            if out.flags.c_contiguous and not np.may_share_memory(out, Xc) and not np.may_share_memory(out, Ac):
                kernels.matmul_rows(Xc, Ac, out, check=False)
                return out
        return _numpy_loop(X, A, out)
    if out is not None:
        raise ValueError("ordered.matmul: out= is for numpy arrays only")
    Y = X[:, :, 0:1] * A[:, None, 0, :]
    for j in range(1, X.shape[2]):
        Y = Y + X[:, :, j:j + 1] * A[:, None, j, :]
    return Y


def sum_first(xp, v):  # noqa: ARG001 -- takes xp like matmul(xp, ...) so callers pass one namespace; unused here
    """Σ_i v[i] over the leading axis, added one term after the other (v[0] + v[1]) + v[2] …, whatever the
    shape of the other axes."""
    if v.shape[0] == 1:
        return v[0, ...]
    if isinstance(v, np.ndarray):
        # accumulate is sequential by definition; a reduce would switch to pairwise summation when the
        # trailing axes have length 1
        return np.add.accumulate(v, axis=0)[-1]
    total = v[0, ...]
    for i in range(1, v.shape[0]):
        total = total + v[i, ...]
    return total


#: the last axis up to which the numpy loops below add term by term with one ufunc call each (beyond it, one
#: ``np.add.accumulate`` over the axis: the same order, fewer calls, more per-element work)
_LOOP_MAX = 16


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _compiled_ok(a, b) -> bool:
    """numpy float32/float64 arrays of one dtype (and shape, checked by the caller), and numba's kernels on."""
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == b.dtype and a.dtype in _FLOATS
            and kernels.available())


def _add_last(p):
    """Σ_j p[..., j] over the last axis, j = 0, 1, …, d−1 in turn, starting from p[..., 0]."""
    d = p.shape[-1]
    if isinstance(p, np.ndarray):
        if d > _LOOP_MAX:
            # accumulate is sequential by definition: out[j] = out[j−1] + p[j], out[0] = p[0]
            return np.add.accumulate(p, axis=-1)[..., -1]
        total = p[..., 0].copy()
        for j in range(1, d):
            np.add(total, p[..., j], out=total)
        return total
    total = p[..., 0]
    for j in range(1, d):
        total = total + p[..., j]
    return total


def block_dot(xp, a, b):
    """Σ_{i<k} Σ_{j<d} a[i, …, j]·b[i, …, j] for a, b of one shape (k, …, d) → (…), in the fixed order

        s_i = (…(a[i,…,0]·b[i,…,0] + a[i,…,1]·b[i,…,1]) + …) + a[i,…,d−1]·b[i,…,d−1],
        result = (…(s_0 + s_1) + …) + s_{k−1},

    every product rounded before it is added (no fused multiply-add), in the arrays' dtype: within each block
    its d terms one after the other, then the blocks one after the other.  On numpy a compiled loop
    (:func:`quadlab._engine.kernels.block_dot`, with numba) or elementwise products and sums; on other
    namespaces the same elementwise operations; all give the same bits.  (Shapes must be equal: broadcast
    first.)"""
    if a.shape != b.shape:
        raise ValueError(f"ordered.block_dot: shapes {a.shape} and {b.shape} differ")
    k, d = a.shape[0], a.shape[-1]
    mid = a.shape[1:-1]
    if d == 0:
        return xp.zeros(mid, dtype=a.dtype)
    if _compiled_ok(a, b):
        M = math.prod(mid)
        out = np.empty(M, dtype=a.dtype)
        kernels.block_dot(a.reshape(k, M, d), b.reshape(k, M, d), out)
        return out.reshape(mid)
    return sum_first(xp, _add_last(a * b))


def sum_last(xp, a):
    """Σ_j a[…, j] over the last axis, (…((a_0 + a_1) + a_2) + …) + a_{d−1}, in a's dtype (one block of
    :func:`block_dot`'s order, on plain terms)."""
    d = a.shape[-1]
    if d == 0:
        return xp.zeros(a.shape[:-1], dtype=a.dtype)
    if _compiled_ok(a, a):
        M = math.prod(a.shape[:-1])
        out = np.empty(M, dtype=a.dtype)
        kernels.row_sums(a.reshape(M, d), out)
        return out.reshape(a.shape[:-1])
    return _add_last(a)

