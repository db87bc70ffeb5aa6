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

With these, a (configuration, seed) run gives the same bits alone, in any grid and beside any seeds, and
whichever of its batch-mates stopped earlier.
"""

from __future__ import annotations

import numpy as np

from . import kernels

__all__ = ["matmul", "sum_first"]


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
