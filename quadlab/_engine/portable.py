"""Arithmetic whose bits do not depend on the CPU: what builds an instance, a learning-rate grid and Adam's
per-step scalars.

numpy dispatches its transcendental ufuncs (``exp``, ``log``, ``power``, hence ``geomspace``) to SIMD kernels
chosen at run time: on an AVX-512 CPU ``0.999 ** np.arange(1, 70000)`` differs from the scalar C library's
``pow`` in the last bit at 3,727 of the 69,999 steps, and ``np.exp`` at about 4 % of random arguments.
LAPACK's QR and BLAS's products likewise round differently under AVX2, AVX-512 and older kernels.  An Adam
run near its stall regime, or a stopping step near a threshold, can turn on one bit, so quadlab builds what
a run starts from with the operations below, whose results are fixed by IEEE 754 (each +, −, ×, ÷ and √ is
correctly rounded, so a fixed order of them gives the same bits on every conforming machine):

* :func:`ipow`: b^t for integer t ≥ 0 by binary powering in double-double arithmetic (+, −, × only);
* :func:`exp`, :func:`log`, :func:`pow`, :func:`geomspace`: correctly rounded through 50-digit decimal
  arithmetic, for small arrays; :func:`cos`: a vectorised polynomial of IEEE operations.  Neither numpy's SIMD
  loops nor the C library's functions are used: glibc itself picks FMA or SSE2 variants of ``exp``, ``log``,
  ``pow`` and ``cos`` by CPU, and they differ in the last bit;
* :func:`fsum`: Σ of the last axis correctly rounded (:func:`math.fsum`), whatever the order;
* :func:`haar`, :func:`spectral`: the Haar factor Q of G = QR (diag R > 0) by classical Gram–Schmidt applied
  twice, and Q diag(λ) Qᵀ, every sum in the fixed order of :func:`quadlab._engine.ordered.matmul`.
"""

from __future__ import annotations

import decimal
import math

import numpy as np

from . import ordered

__all__ = ["ipow", "exp", "log", "pow", "cos", "geomspace", "fsum", "haar", "spectral"]


_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitting constant for float64


def _split(a):
    """a = hi + lo exactly, hi and lo of at most 26 significant bits each (Veltkamp; |a| < 2^995)."""
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """a·b = p + e exactly: p = fl(a·b), e its rounding error (Dekker), without a fused multiply-add."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dd_mul(xh, xl, yh, yl):
    """(xh + xl)·(yh + yl) in double-double: a relative error of a few eps², renormalised so |lo| ≤ ulp(hi)/2."""
    p, e = _two_prod(xh, yh)
    e = e + (xh * yl + xl * yh)
    s = p + e
    return s, e - (s - p)


def ipow(base, t) -> np.ndarray:
    """b^t elementwise for integer exponents t ≥ 0, by binary powering in double-double arithmetic: with
    t = Σ_i c_i 2^i, b^t = Π_{i: c_i = 1} b^(2^i), every square and product formed as an unevaluated sum hi + lo
    of two float64 (Dekker's exact product, Veltkamp's split), then rounded once.

    Only IEEE +, − and × in a fixed order, so the result is the same bits on every IEEE machine.  Each
    double-double step has relative error O(eps²) and the ⌈log2 t⌉ squarings double it at most t-fold, so
    before the last rounding the error is about t·eps² (≈ 1e-27 at t = 69,077): the result is b^t correctly
    rounded but for ties closer than that, whereas a float64 powering would be off by up to t·eps.  Valid for
    |b| < 2^995 while b^t stays in the normal range (it degrades to an absolute error of a few ulps of the
    smallest normal below it).

    Parameters
    ----------
    base : array_like
        float64 bases (any sign; 0 gives 0^0 = 1).
    t : array_like
        Non-negative integer exponents, broadcast against ``base``.

    Returns
    -------
    numpy.ndarray
        float64, the broadcast shape.

    Examples
    --------
    >>> ipow(2.0, [0, 1, 10]).tolist(), float(ipow(0.5, 3))
    ([1.0, 2.0, 1024.0], 0.125)
    """
    b = np.asarray(base, dtype=np.float64)
    e = np.asarray(t)
    if e.dtype.kind == "f":
        if not (np.isfinite(e).all() and (e == np.floor(e)).all()):
            raise ValueError("ipow takes integer exponents")
        e = e.astype(np.int64)
    if (e < 0).any():
        raise ValueError("ipow takes exponents t >= 0")
    b, e = np.broadcast_arrays(b, e.astype(np.int64))
    hi, lo = np.ones(b.shape), np.zeros(b.shape)
    sh, sl = b.copy(), np.zeros(b.shape)
    e = e.copy()
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        while (e > 0).any():
            odd = (e & 1) == 1
            ph, pl = _dd_mul(hi, lo, sh, sl)
            hi, lo = np.where(odd, ph, hi), np.where(odd, pl, lo)
            e >>= 1
            if (e > 0).any():
                sh, sl = _dd_mul(sh, sl, sh, sl)
        out = hi + lo
    # a product that overflowed or underflowed leaves NaN in the error terms: its float64 value is the answer
    return np.where(np.isfinite(out), out, hi)


# 50 significant digits: a float64 result rounded from a value this close to the exact one is the correctly
# rounded result unless the exact value lies within 1e-50 relative of a midpoint between two doubles, far
# closer than any exp/log/pow of a double comes (the table maker's dilemma's worst cases are near 2^-120)
_CTX = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN, Emin=-999999, Emax=999999)


def _dec(v: float) -> decimal.Decimal:
    return decimal.Decimal(v)  # exact: every double is a finite decimal


def _elementwise(f, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return np.array([f(v) for v in a.ravel().tolist()], dtype=np.float64).reshape(a.shape)


def _exp1(v: float) -> float:
    if v != v:
        return v
    return float(_CTX.exp(_dec(v)))


def _log1(v: float) -> float:
    if not v > 0:
        raise ValueError(f"log needs positive arguments, got {v!r}")
    return float(_CTX.ln(_dec(v)))


def _pow1(x: float, y: float) -> float:
    if y == 0:
        return 1.0
    if not x > 0:
        raise ValueError(f"pow takes positive bases (x^y = exp(y ln x)), got {x!r}")
    return float(_CTX.exp(_CTX.multiply(_dec(y), _CTX.ln(_dec(x)))))


def exp(x) -> np.ndarray:
    """e^x elementwise, correctly rounded (50-digit decimal arithmetic, then one rounding to float64), so the same
    bits on every machine whatever its C library: glibc picks FMA or SSE2 variants of its own ``exp`` by CPU,
    which differ in the last bit for about 1 argument in 1,600.  A few µs per element: for small arrays."""
    return _elementwise(_exp1, x)


def log(x) -> np.ndarray:
    """ln x elementwise (x > 0), correctly rounded as :func:`exp`."""
    return _elementwise(_log1, x)


def pow(x, y) -> np.ndarray:  # noqa: A001 -- the name of the C library's function it replaces
    """x^y = exp(y·ln x) elementwise (broadcast; x > 0, or y = 0), correctly rounded as :func:`exp`."""
    a, b = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.array([_pow1(u, v) for u, v in zip(a.ravel().tolist(), b.ravel().tolist())],
                    dtype=np.float64).reshape(a.shape)


# π/2 as a sum of three doubles (Cody–Waite), the first two of 30 significant bits, so that k·P1 and k·P2 are exact
# for |k| < 2^23 and x − k·π/2 loses nothing to the reduction; the third carries π/2's remaining bits
_PIO2 = (1.570796325802803, 9.920935791635221e-10, 5.170182981794105e-19)
_PIO2_FULL = 1.5707963267948966  # the quotient's estimate only
# Taylor coefficients of sin and cos on [−π/4, π/4], highest first: truncation below 1e-19 relative
_SIN = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(10, -1, -1))
_COS = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(10, -1, -1))


def cos(x) -> np.ndarray:
    """cos x elementwise (|x| < 10⁶) from IEEE +, −, × only, vectorised: k = round(x/(π/2)), r = x − k·π/2 with
    π/2 split in three doubles (Cody–Waite), then sin r or cos r by their Taylor polynomials in Horner form and
    the sign of the quadrant.  Within a few ulps of cos x, and the same bits on every machine (numpy's ``cos``
    takes SIMD kernels chosen at run time, the C library's takes FMA or SSE2 variants)."""
    a = np.asarray(x, dtype=np.float64)
    if not (np.isfinite(a) & (np.abs(a) < 1e6)).all():
        raise ValueError("portable.cos takes finite |x| < 1e6")
    k = np.rint(a / _PIO2_FULL)
    r = ((a - k * _PIO2[0]) - k * _PIO2[1]) - k * _PIO2[2]
    r2 = r * r
    s, c = np.zeros_like(r), np.zeros_like(r)
    for cs, cc in zip(_SIN, _COS, strict=True):
        s = s * r2 + cs
        c = c * r2 + cc
    s = s * r
    q = np.mod(k, 4).astype(np.int64)  # cos(r + qπ/2): cos r, −sin r, −cos r, sin r
    return np.choose(q, [c, -s, -c, s])


def geomspace(lo: float, hi: float, num: int) -> np.ndarray:
    """``num`` points from lo to hi, evenly spaced on a log axis: x_i = exp(ln lo + i·(ln hi − ln lo)/(num − 1)),
    the ends exactly lo and hi (0 < lo, hi finite; ``num`` ≥ 1, one point is lo).

    Examples
    --------
    >>> geomspace(1e-3, 1e-1, 3).tolist()
    [0.001, 0.01, 0.1]
    """
    lo, hi, num = float(lo), float(hi), int(num)
    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)) or num < 1:
        raise ValueError(f"geomspace needs 0 < lo, hi finite and num >= 1, got {lo!r}, {hi!r}, {num!r}")
    if num == 1:
        return np.array([lo])
    a, b = _log1(lo), _log1(hi)
    step = (b - a) / (num - 1)
    out = np.array([_exp1(a + i * step) for i in range(num)])
    out[0], out[-1] = lo, hi
    # a rounding must not break the order (it cannot for distinct ends spaced by more than a few ulps)
    return np.maximum.accumulate(out) if lo < hi else np.minimum.accumulate(out)


def fsum(a) -> np.ndarray:
    """Σ_i a[..., i], correctly rounded (:func:`math.fsum`), so independent of any summation order; float64 of
    shape ``a.shape[:-1]`` (a float for 1-D input).

    Examples
    --------
    >>> float(fsum([1e16, 1.0, -1e16]))
    1.0
    """
    x = np.asarray(a, dtype=np.float64)
    out = np.array([math.fsum(r) for r in x.reshape(-1, x.shape[-1]).tolist()]) if x.shape[-1] else \
        np.zeros(int(np.prod(x.shape[:-1])))
    return out.reshape(x.shape[:-1])[()]


def haar(G: np.ndarray) -> np.ndarray:
    """The orthogonal factor Q of G = QR with diag(R) > 0, for a stack G (k, d, d) of float64 matrices.

    Classical Gram–Schmidt applied twice (CGS2) to the columns g_j in turn, with u_0 … u_{j−1} already made:

        v ← g_j;  twice:  r_i = Σ_m v_m u_{i,m} (i < j),  v ← v − Σ_i r_i u_i;   u_j = v / √(Σ_m v_m²),

    every sum in the fixed order of :func:`quadlab._engine.ordered.matmul`.  In exact arithmetic u_j is the
    j-th column of the positive-diagonal QR factor, so for Gaussian G the law of Q is exactly Haar (Mezzadri
    2007); the second pass keeps ‖QᵀQ − I‖ at a few d·eps while κ(G) ≪ 1/eps (a Gaussian d×d matrix has
    κ(G) of order d).  Returns Q (k, d, d), C-ordered.
    """
    G = np.asarray(G, dtype=np.float64)
    k, d, _ = G.shape
    A = np.ascontiguousarray(np.swapaxes(G, 1, 2))  # row j is column j of G
    U = np.zeros((k, d, d))                            # row i: u_i
    Ut = np.zeros((k, d, d))                           # column i: u_i, so Ut[:, :, :j] is U[:, :j]ᵀ
    for j in range(d):
        v = A[:, j:j + 1, :].copy()                    # (k, 1, d)
        if j:
            B = U[:, :j, :]
            Bt = np.ascontiguousarray(Ut[:, :, :j])
            for _ in range(2):
                r = ordered.matmul(np, v, Bt)          # (k, 1, j)
                v = v - ordered.matmul(np, r, B)
        nrm = np.sqrt(ordered.matmul(np, v, np.ascontiguousarray(np.swapaxes(v, 1, 2))))  # (k, 1, 1)
        u = v / nrm
        U[:, j:j + 1, :] = u
        Ut[:, :, j] = u[:, 0, :]
    return np.ascontiguousarray(Ut)


def spectral(Q: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """H = Q diag(λ) Qᵀ for stacks Q (k, d, d) and λ (k, d), exactly symmetric: the lower triangle
    H_ik = Σ_j (Q_ij λ_j) Q_kj (i ≥ k), summed over j in the fixed order of
    :func:`quadlab._engine.ordered.matmul`, mirrored onto the upper one."""
    Q = np.asarray(Q, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    QL = np.ascontiguousarray(Q * lam[:, None, :])
    H = ordered.matmul(np, QL, np.ascontiguousarray(np.swapaxes(Q, 1, 2)))
    low = np.tril(np.ones(H.shape[1:], dtype=bool))
    return np.where(low, H, np.swapaxes(H, 1, 2))
