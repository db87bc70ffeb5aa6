"""Fused CPU kernels for the iterate path's inner loop (optional: numba, the ``fast`` extra).

numpy applies an update rule one operation at a time, each a full pass over the (k, R, d) iterate: Adam's
step is eleven passes, which on the benchmark problem (4 blocks of 500, 8 runs, float64) cost about a
quarter of the H·e matmul they sit next to.  A compiled loop does the whole step in one pass, row by row
(a row is one block of one run, d contiguous numbers, vectorised by LLVM), and applies the same IEEE
operations in the same order as the numpy path, without contraction to fused multiply-adds, so it gives
the numpy path's results bit for bit.

The kernels are used when numba imports and the environment does not set ``QUADLAB_NUMBA=0``; otherwise
the runner keeps its numpy path, with the same results.  Compiled code is cached on disk (numba's
``cache=True``), so a process pays the compile (about a second per dtype) only the first time.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["available", "adam_step", "ADAM_PARAMS"]

try:  # the optional dependency: everything below degrades to the numpy path without it
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

# per-run parameters of adam_step, in the order of the last axis of its parameter array
ADAM_PARAMS = ("lr", "b1", "c", "b2", "s", "e")


def available() -> bool:
    """True when the fused kernels can be used: numba is installed and ``QUADLAB_NUMBA`` is not "0"."""
    return numba is not None and os.environ.get("QUADLAB_NUMBA", "1") != "0"


if numba is not None:
    def _jit(f):
        # error_model="numpy": a zero denominator gives ±inf/NaN as it does in numpy, instead of raising
        # ZeroDivisionError; the check that Python semantics would need also stops LLVM from vectorising.
        try:
            return numba.njit(nogil=True, error_model="numpy", cache=True)(f)
        except RuntimeError:  # no writable cache location (read-only install, no home): compile per process
            return numba.njit(nogil=True, error_model="numpy")(f)

    @_jit
    def _row_m(x, g, m, v, b1, c, b2, s, e, lr):  # pragma: no cover - compiled
        for j in range(x.shape[0]):
            gj = g[j]
            mj = m[j] * b1 + gj * c
            m[j] = mj
            vj = v[j] * b2 + gj * gj
            v[j] = vj
            x[j] = x[j] - (mj / (math.sqrt(vj * s) + e)) * lr

    @_jit
    def _row_g(x, g, v, b2, s, e, lr):  # pragma: no cover - compiled
        for j in range(x.shape[0]):
            gj = g[j]
            vj = v[j] * b2 + gj * gj
            v[j] = vj
            x[j] = x[j] - (gj / (math.sqrt(vj * s) + e)) * lr

    @_jit
    def _adam_leaf(x, g, m, v, p, use_m):  # pragma: no cover - compiled
        k, R = x.shape[0], x.shape[1]
        for i in range(k):
            for r in range(R):
                if use_m:
                    _row_m(x[i, r], g[i, r], m[i, r], v[i, r], p[0, r, 1], p[0, r, 2], p[0, r, 3], p[0, r, 4],
                           p[0, r, 5], p[0, r, 0])
                else:
                    _row_g(x[i, r], g[i, r], v[i, r], p[0, r, 3], p[0, r, 4], p[0, r, 5], p[0, r, 0])


def adam_step(E, G, M, V, P) -> None:
    """One step of the Adam family on every run, in place, in one pass per leaf.

    For each leaf (k, R, d) of the error E = w − w*, gradient G, moments M (or ``()`` when the first moment
    is g itself) and V, and each run r with parameters P[0, r] = (η, β1, c, β2, s_t, e_t) (``ADAM_PARAMS``):

        m ← m·β1 + g·c,   v ← v·β2 + g∘g,   E ← E − (m / (√(v·s_t) + e_t))·η

    (with m = g when M is empty).  This is the optimizer's stored form (see ``quadlab.optim``), evaluated in
    the order the numpy path evaluates it; P has the leaves' dtype and C order.
    """
    use_m = len(M) > 0
    for i, (x, g, v) in enumerate(zip(E, G, V, strict=True)):
        _adam_leaf(x, g, M[i] if use_m else x, v, P, use_m)
