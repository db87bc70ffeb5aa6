"""f − f* and ‖∇f‖ of the linear methods at any step, from an eigendecomposition, without iterating.

For a preconditioner P = diag(p) (P = I for GD and momentum) put z = P^{-1/2} e and M = P^{1/2} H P^{1/2}
(block diagonal like H).  With M = V diag(μ) Vᵀ and c = Vᵀ z_0, every method here moves each eigen-
coordinate by a scalar recurrence, c_k = φ_k(μ) c, so

    f(w_k) − f* = ½ Σ_j μ_j c_j² φ_k(μ_j)²,      ∇f(w_k) = P^{-1/2} V diag(μ φ_k(μ)) c.

φ_k is the (1,1) entry of A^k for the method's 2×2 matrix A(μ) acting on (error, momentum):

    GD:          A = [[1−ημ]]                                   t = 1−ημ,          d = 0
    heavy ball:  A = [[1−ημ, −ηβ], [μ, β]]                      t = 1−ημ+β,        d = β
    Nesterov:    A = [[1−ημ(1+β), −ηβ²], [μ, β]]                t = 1−ημ(1+β)+β,   d = β(1−ημ)

With roots r1, r2 of z² − t z + d, Cayley–Hamilton gives (A^k)_{11} = s_{k+1} − β s_k = c_k + e s_k with
s_k = (r1^k − r2^k)/(r1 − r2), c_k = (r1^k + r2^k)/2 and e = t/2 − β.  :func:`multiplier` forms t and d
exactly from η, β, μ (as double-double sums), so that the discriminant t² − 4d keeps its relative accuracy
where the roots coincide (critical damping, as at heavy ball's optimal parameters), and
:func:`_two_root_power` evaluates c_k + e s_k in forms that are continuous through r1 = r2: cosh/sinh of
kθ for real roots, cos/sin of kω for complex ones, the radius as exp(k log|r1|).  The relative error is a
few eps·(1 + |k log|r1||) for real roots however close, plus a phase error of a few eps·kω for complex
ones; d = 0 (GD, β = 0) is done in real arithmetic as t^k.

The eigenvalues are those of H as stored, the matrix the iteration multiplies by.  Stored blocks are
fl(Q Λ Qᵀ), whose eigenvalues differ from the prescribed Λ by a few ulps (5000 + 8.4e-13 on Case 3 at κ = 5000,
seed 0) — and at critical damping φ_{10⁴} moves by ~1e-8 per ulp of μ.  So for P = I on rotated
problems :func:`_eigen_pieces` refines them to ~2^-10 ulp from the generating eigenvectors (Rayleigh
quotients on an error-free matrix product, :func:`_stored_eigenvalues`) and carries them as double-double
μ + μ_lo into :func:`multiplier`.
"""

from __future__ import annotations

import numpy as np

from .ordered import matmul as fixed_matmul
from .ordered import sum_first

__all__ = ["multiplier", "evaluate", "Plan"]

# Splitting constant for Dekker's exact product: 2^27 + 1 splits a float64 into two 26-bit halves.
# The error-free transformations below rely on every operation being rounded on its own, as numpy,
# array-api-strict and cupy's one-kernel-per-operation arithmetic do; a compiler that fused them
# (FMA contraction, reassociation) would void the exactness, not just lose a bit.
_SPLIT = 134217729.0


def _two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth; no ordering of |a|, |b| needed)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_prod(a, b):
    """(p, e) with p = fl(a·b) and p + e = a·b exactly (Dekker/Veltkamp split, no FMA needed; |a|, |b| < 1e300)."""
    p = a * b
    ca, cb = _SPLIT * a, _SPLIT * b
    ah, bh = ca - (ca - a), cb - (cb - b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dd_add(a, b):
    """Double-double a + b, absolute error O(eps²)(|a| + |b|)."""
    s, e = _two_sum(a[0], b[0])
    return _two_sum(s, e + (a[1] + b[1]))


def _dd_mul(a, b):
    """Double-double a·b, relative error O(eps²)."""
    p, e = _two_prod(a[0], b[0])
    return _two_sum(p, e + (a[0] * b[1] + a[1] * b[0]))


def multiplier(xp, kind: str, eta, beta, mu, k, mu_lo=None):
    """φ_k(μ) = (A^k)_{11} for broadcastable float64 arrays eta, beta (runs), mu (modes) and k (steps,
    integer-valued ≥ 0); see the module docstring for A, t = tr A and d = det A.  ``mu_lo`` (optional,
    broadcastable like mu): the eigenvalue is the double-double μ + μ_lo (x = ημ then includes η·μ_lo,
    whose rounding is O(eps²)·x), so that an eigenvalue between two float64 numbers is used as such.

    t and d are first formed to a relative O(eps²), as unevaluated sums of two float64 ("double-double"),
    from the float64 parameters, with x = ημ the exact product:

        heavy ball:  t = (1 + β) − x,            d = β,
        Nesterov:    t = (1 + β)(1 − x),         d = β(1 − x),

    and :func:`_two_root_power` takes it from there.  Why: the closed form is a function of the
    discriminant D = t² − 4d, and at the double root t² and 4d agree, so D formed from rounded t and d
    has an absolute error of eps·t² — an O(√eps) error in the half-difference of the roots, which over
    k steps becomes a relative error of about k²·eps·t²/(24 d) in φ_k (1e-8 at k = 10⁴ at heavy ball's optimum
    on Case 3).  From the double-double t and d, D = t² − 4d has an absolute error of O(eps²)·t²,
    which is a relative error below 1e-20 in φ_k for k ≤ 10⁴ even where D vanishes."""
    if kind == "gd":
        t = 1.0 - eta * mu
        if mu_lo is not None:
            t = t - eta * mu_lo
        return _real_power(xp, t, k)
    x = _two_prod(eta, mu)
    if mu_lo is not None:
        x = _two_sum(x[0], x[1] + eta * mu_lo)
    beta = beta + 0.0 * x[0]
    zero = xp.zeros_like(x[0])
    if kind == "heavy_ball":
        t = _dd_add(_two_sum(1.0 + zero, beta), (-x[0], -x[1]))
        d = (beta, zero)
    elif kind == "nesterov":
        omx = _dd_add(_two_sum(1.0 + zero, -x[0]), (zero, -x[1]))
        t = _dd_mul(_two_sum(1.0 + zero, beta), omx)
        d = _dd_mul((beta, zero), omx)
    else:
        raise ValueError(f"no closed form for recurrence kind {kind!r}")
    return _two_root_power(xp, t, d, beta, k)


def _real_power(xp, t, k):
    """t^k for real t and integer-valued k ≥ −1 (k = −1 only where the caller discards it), sign kept."""
    k = k + 0.0 * t
    mag = xp.pow(xp.abs(t), xp.where(k < 0, xp.zeros_like(k), k))
    odd = xp.remainder(k, 2.0) == 1.0
    return xp.where((t < 0) & odd, -mag, mag)


def _two_root_power(xp, t, d, a22, k):
    """(A^k)_{11} for the 2×2 matrix A with trace t and determinant d, both double-double pairs
    (hi, lo), and lower-right entry a22 (float64), at integer-valued k ≥ 0.

    Let r1, r2 be the roots of z² − t z + d, e = (a11 − a22)/2 = t/2 − a22, and
    c_k = (r1^k + r2^k)/2, s_k = (r1^k − r2^k)/(r1 − r2) (s_k = k r^{k−1} at a double root).
    Cayley–Hamilton gives A^k = s_k A − d s_{k−1} I, and with s_{k+1} = t s_k − d s_{k−1}

        (A^k)_{11} = s_{k+1} − a22 s_k = c_k + e s_k,

    since s_{k+1} = (r1 + r2) s_k/2 + c_k.  c_k and s_k are symmetric in the roots, so they depend on
    the roots only through their mean m = t/2 and the squared half-difference δ² = D/4, D = t² − 4d,
    and are analytic across D = 0.  With σ = sign t (σ = 1 at t = 0), |m| = |t|/2:

    Real roots (D ≥ 0, d ≠ 0).  |r1| = |m| + √D/2 (no cancellation), r1 = σ|r1|, q = r2/r1 = d/r1²
    with |q| ≤ 1, and

        φ_k = σ^k |r1|^k [ (1 + q^k)/2 + (σ e/|r1|) (1 − q^k)/(1 − q) ].

    For d > 0, q = e^{−2θ} with θ = asinh(√D/(2√d)) (r1,2 = σ√d e^{±θ}), so q^k − 1 = expm1(−2kθ) and
    (1 − q^k)/(1 − q) = expm1(−2kθ)/expm1(−2θ) → k as θ → 0: this is the continuous form through the
    double root, where it is exactly k.  θ is computed from √D, so has a relative error of a few eps;
    the ratio's relative error is then a few eps for every k, because |u| e^u/|expm1(u)| ≤ 1 for u ≤ 0.
    For d < 0 the roots have opposite signs, q ∈ (−1, 0), and 1 − q ≥ 1 needs no care.
    For both heavy ball and Nesterov (x = ημ ≥ 0, 0 ≤ β < 1) σe ≥ 0 whenever the roots are real (at
    the double roots x = (1 ∓ √β)² of heavy ball σe = √β(1 ∓ √β); at Nesterov's x = ((1−β)/(1+β))²,
    σe = β(1−β)/(1+β); for Nesterov's x > 1, t < 0 and e < 0), so the bracket is a sum of non-negative
    terms each with a relative error of a few eps.

    Complex roots (D < 0, hence d > 0).  r1,2 = σ√d e^{±iω}, ω = atan2(√(−D)/2, |m|) ∈ (0, π/2], and

        φ_k = σ^k d^{k/2} [ cos kω + (σ e/√d) sin kω / sin ω ],

    which tends to the real form's limit σ^k d^{k/2} [1 + (σe/√d) k] as ω → 0 (there θ = 0 and |r1| = √d).
    For ω > π/4 the angle is carried as α = π/2 − ω = atan2(|m|, √(−D)/2) and kω = kπ/2 − kα is reduced
    by k mod 4 exactly.  ω (or α) has a relative error of a few eps, so the phase an absolute error of a
    few eps·k·min(ω, π/2 − ω) ≤ 2 eps·k: the bracket is then accurate to that, relative to its scale
    1 + |e|k/√d — the conditioning of the oscillation itself, which the iteration shares (a relative
    error is only meaningful where the bracket is not near one of its zeros).

    The radius.  |r1|^k = exp(k log|r1|) with log|r1| accurate to a few eps relative: for complex roots
    log|r1| = ½ log d; for real roots near the unit circle from p(σ) = 1 − σt + d = (1 − σr1)(1 − σr2),
    i.e. 1 − |r1| = p(σ)/(1 − |m| + √D/2) — the slow modes of both methods have p(1) = x exactly, so
    1 − |r1| keeps its relative accuracy however close |r1| comes to 1 — and as log|r1| directly where
    |r1| < 1/2 or |m| > 1.  The exponent's absolute error is then a few eps·|k log|r1||: about 1e-13
    relative wherever |r1|^k lies in [1e-300, 1e300], whatever k.  (Raising a rounded r1 to the k-th power
    instead would cost k·eps, 2e-12 at k = 10⁴.)

    Together: in the real case a relative error of a few eps·(1 + |k log|r1||), independent of how close
    the roots are; in the complex case that plus the phase error above.

    d = 0 (a root at 0): φ_k = t^{k−1}(t − a22) for k ≥ 1."""
    t0, d0 = t[0], d[0]
    t0, d0, a22 = xp.broadcast_arrays(t0, d0, a22 + 0.0 * t0)
    k = k + 0.0 * t0
    one = xp.ones_like(t0)
    neg = t0 < 0
    sg = xp.where(neg, -one, one)
    at = (xp.abs(t0), sg * t[1])  # |t| as a double-double
    D = _dd_add(_dd_mul(t, t), (-4.0 * d[0], -4.0 * d[1]))[0]
    e = _dd_add((0.5 * t[0], 0.5 * t[1]), (-a22, xp.zeros_like(a22)))[0]
    w = 0.5 * _dd_add((2.0 + 0.0 * t0, xp.zeros_like(t0)), (-at[0], -at[1]))[0]  # 1 − |m|
    p = _dd_add(_dd_add((one, xp.zeros_like(t0)), (-at[0], -at[1])), d)[0]  # p(σ) = 1 − |t| + d
    real = D >= 0
    pos = d0 > 0
    m = 0.5 * at[0]
    half = 0.5 * xp.sqrt(xp.abs(D))  # √|D|/2: the half-difference, or its imaginary part
    sqd = xp.sqrt(xp.where(pos, d0, one))

    # real roots: the radius, q and the ratio's denominator (k-independent)
    r1 = m + half
    r1s = xp.where(r1 > 0, r1, one)
    den = w + half  # 1 − σ r2
    near = real & (w >= 0) & (r1 >= 0.5) & (den > 0)
    u = xp.where(near, p / xp.where(den > 0, den, one), xp.zeros_like(t0))
    lr_real = xp.where(near, xp.log1p(-u), xp.log(r1s))
    theta = xp.asinh(half / sqd)
    lq_pos = -2.0 * theta
    # d < 0: |q| = |r2|/|r1| = (√D/2 − |m|)/(√D/2 + |m|), kept accurate as q → −1 (Nesterov's ημ → 1⁺)
    # |q| − 1; clamped at −1 (|q| ≥ 0): for |d| ≪ t² (β ~ 1e-38) |q| ~ d/t² is below eps, and m (from t's
    # high half) against √D (from all of t) can put −2m/r1 an ulp below −1, where log1p is NaN
    qabs_m1 = xp.maximum(-2.0 * m / r1s, -1.0)
    lq_neg = xp.log1p(xp.where(pos, xp.zeros_like(t0), qabs_m1))
    lq = xp.where(pos, lq_pos, lq_neg)
    den_q = xp.where(pos, -xp.expm1(lq_pos), 2.0 + qabs_m1)  # 1 − q
    double = pos & (theta == 0)
    den_q = xp.where(double, one, den_q)
    eps_r = sg * e / r1s

    # complex roots.  Past ω = π/4 the angle is carried as α = π/2 − ω = atan2(|m|, √(−D)/2), and kω
    # = kπ/2 − kα is reduced by k mod 4 exactly: near ω = π/2 (|m| ≪ √d, as at Nesterov's ημ → 1⁻) the
    # information is in α, which ω itself would round away.
    refl = m < half
    alpha = xp.where(refl, xp.atan2(m, half), xp.atan2(half, m))
    so = xp.where(refl, xp.cos(alpha), xp.sin(alpha))  # sin ω
    so = xp.where(so == 0, one, so)
    # ½ log d from both halves of d: log d0 alone would carry d0's rounding, eps, into k·log|r1|
    dsafe = xp.where(pos, d0, one)
    lr_cplx = 0.5 * (xp.log(dsafe) + xp.where(pos, d[1], xp.zeros_like(t0)) / dsafe)
    eps_c = sg * e / sqd

    # k-dependent part: one expm1 for real roots, cos and sin for complex ones, one exp for the radius
    odd = xp.remainder(k, 2.0) == 1.0
    lr = xp.where(real, lr_real, lr_cplx)
    amp = xp.exp(k * lr)
    amp = xp.where(neg & odd, -amp, amp)
    em = xp.expm1(k * xp.where(real, lq, xp.zeros_like(lq)))  # |q|^k − 1
    flip = (~pos) & odd  # q < 0 and odd k: q^k = −|q|^k
    c_part = xp.where(flip, -0.5 * em, 1.0 + 0.5 * em)  # (1 + q^k)/2
    s_part = xp.where(double, k, xp.where(flip, 2.0 + em, -em) / den_q)  # (1 − q^k)/(1 − q)
    br_real = c_part + eps_r * s_part
    ka = k * xp.where(real, xp.zeros_like(alpha), alpha)
    ca, sa = xp.cos(ka), xp.sin(ka)
    n4 = xp.remainder(k, 4.0)
    even = (n4 == 0.0) | (n4 == 2.0)
    cos_kw = xp.where(refl, xp.where(even, ca, sa) * xp.where(n4 < 2.0, one, -one), ca)
    sin_kw = xp.where(refl, xp.where(even, sa, ca) * xp.where((n4 == 1.0) | (n4 == 2.0), one, -one), sa)
    br_cplx = cos_kw + eps_c * xp.where((~refl) & (alpha == 0), k, sin_kw / so)
    val = amp * xp.where(real, br_real, br_cplx)
    val = xp.where(k == 0, one, val)

    # a root at zero
    zb = _real_power(xp, xp.where(d0 == 0, t0, xp.zeros_like(t0)), k - 1.0) * (t0 - a22)
    zb = xp.where(k == 0, one, zb)
    return xp.where(d0 == 0, zb, val)


def evaluate(problem, spec, E0: np.ndarray, steps: np.ndarray, want_grad: bool = True):
    """Gap and gradient norm at ``steps`` for every run of a :class:`~quadlab.optim.LinearSpec`.

    ``E0``: host (R, n) initial errors.  Returns host float64 arrays (R, T) ``gap`` and ``grad_norm``
    (``grad_norm`` is zero when ``want_grad`` is false).  To evaluate one problem at several step sets,
    build a :class:`Plan` once and call :meth:`Plan.values`."""
    return Plan(problem, spec, E0).values(steps, want_gap=True, want_grad=want_grad)


class _Piece:
    """One group of equal-size blocks of M = P^{1/2} H P^{1/2} for the runs of one preconditioner class.

    Backend arrays; kb blocks of size d, r runs, c = Vᵀ P^{-1/2} e_0 (kb, r, d).  Every quantity is formed
    as an amplitude and squared last, as the iteration forms ∇f and squares it (squaring first would put
    values below 1e-154 through the subnormal range before their weights scale them back up).

    GD kind (φ_k = σ^k e^{kL}, σ = sign(1 − ημ), L = log|1 − ημ| clamped at −1e300 so that 0·L = 0):
      L, lgap (kb, r, d)   L and log(|c| √(μ/2)); the gap amplitude is a = e^{kL + lgap}, f − f* = Σ a²
      gfac (kb, 1, d)      √(2μ/p) where ‖∇f‖² = Σ (a·gfac)² (P = I, or no rotation); else None
      sfac, sfac_odd       sign(c)·√(2μ) and σ·sign(c)·√(2μ) (kb, r, d): y = μ c φ_k = a·sfac (even k) or
                           a·sfac_odd (odd k), and ∇f = y W per block, W = Vᵀ P^{-1/2} (kb, d, d)
    Two-root kinds (φ_k from :func:`multiplier`, signed):
      agap0, agrad0 (kb, r, d)  |c| √(μ/2) and μ |c| / √p (None with W), y0 = μ c, mu (kb, 1, 1, d)
      mu_lo (kb, 1, 1, d) or None  the low half of the eigenvalue μ + μ_lo (see :func:`_eigen_pieces`)
    """

    __slots__ = ("kb", "d", "W", "L", "lgap", "gfac", "sfac", "sfac_odd", "agap0", "agrad0", "y0", "mu", "mu_lo")


class Plan:
    """What the closed form needs of (problem, spec, E0), computed once: the eigendecomposition of
    M = P^{1/2} H P^{1/2} per preconditioner class, the eigen-coordinates c = Vᵀ P^{-1/2} e_0 of every run,
    the per-mode amplitudes of f − f* and ∇f, and for GD-kind recurrences L = log|1 − ημ| per run and mode.

    Then for steps k (and any subset of runs) :meth:`values` evaluates

        f(w_k) − f* = Σ_j ½ μ_j c_j² φ_k(μ_j)²,      ‖∇f(w_k)‖² = ‖(μ ∘ c ∘ φ_k(μ)) Vᵀ P^{-1/2}‖²

    For GD (t = 1 − ημ) φ_k = sign(t)^k e^{k log|t|}, so each term is one exponential,
    √(½μ_j) |c_j| |φ_k| = exp(k log|t_j| + log(√(½μ_j) |c_j|)), and ∇f needs one d×d product per block only
    where P ≠ I meets a rotation (otherwise ‖∇f‖² = Σ_j μ_j² c_j² φ_k² / p_j is a weighted sum of the same
    terms).  log|t| is log1p(−ημ) for ημ < 1, so a step that barely moves a mode keeps its relative accuracy.
    The exponent has an absolute error of about eps·(|k log|t|| + |log(√(½μ)|c|)|), which is a relative
    error below 1e-13 for every term between 1e-300 and 1e300.  Exponents are clipped to [−700, 700]: a term
    below e^{−700} ≈ 1e-304 then squares to 0 (it is far below the 1e-250 that the results promise), and a
    term above e^{700} only occurs long after the run passed the 1e6 divergence threshold."""

    # elements of one (blocks × runs × steps × modes) slab: the temporaries stay in cache and below the
    # allocator's mmap threshold (larger slabs pay page faults on every temporary)
    chunk = 1 << 15

    def __init__(self, problem, spec, E0: np.ndarray):
        b = problem.backend
        xp = b.xp
        self.problem, self.spec, self.xp, self.backend = problem, spec, xp, b
        R = E0.shape[0]
        self.R = R
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
        self.classes = []
        with np.errstate(divide="ignore"):  # log 0 = −inf for a mode that e_0 does not excite
            for rows, p in classes:
                pieces = [self._piece(mu, mu_lo, V, coords, E0[rows], p, eta[rows])
                          for mu, mu_lo, V, coords in _eigen_pieces(problem, p)]
                self.classes.append((rows, pieces, eta[rows], beta[rows]))

    def _piece(self, mu, mu_lo, V, coords, E0, p, eta_r) -> _Piece:
        xp = self.xp
        f64 = xp.float64
        r = E0.shape[0]
        kb, d = mu.shape
        z0 = E0[:, coords]
        if p is not None:
            z0 = z0 / np.sqrt(p[coords])
        z0b = xp.asarray(np.ascontiguousarray(z0.reshape(r, kb, d).transpose(1, 0, 2)), dtype=f64)
        c = z0b if V is None else fixed_matmul(xp, z0b, V)  # (kb, r, d): c_j = v_jᵀ z, fixed order per run
        mu_b = xp.asarray(mu, dtype=f64)[:, None, :]  # (kb, 1, d)
        inv_sqrt_p = None if p is None else xp.asarray((1.0 / np.sqrt(p[coords])).reshape(kb, d), dtype=f64)[:, None, :]
        pc = _Piece()
        pc.kb, pc.d = kb, d
        pc.W = None
        if inv_sqrt_p is not None and V is not None:
            pc.W = xp.matrix_transpose(V) * inv_sqrt_p  # W_ji = V_ij / √p_i
        pc.L = pc.lgap = pc.gfac = pc.sfac = pc.sfac_odd = pc.agap0 = pc.agrad0 = pc.y0 = pc.mu = pc.mu_lo = None
        absc = xp.abs(c)
        if self.spec.kind == "gd":
            x = eta_r[None, :, None] * mu[:, None, :]  # (kb, r, d) host: ημ
            if mu_lo is not None:
                x = x + eta_r[None, :, None] * mu_lo[:, None, :]
            L = np.where(x < 1.0, np.log1p(-np.minimum(x, 1.0)), np.log(np.maximum(x - 1.0, 0.0)))
            pc.L = xp.asarray(np.maximum(L, -1e300), dtype=f64)
            pc.lgap = xp.log(absc) + 0.5 * xp.log(0.5 * mu_b)
            root = xp.sqrt(2.0 * mu_b)
            if pc.W is None:
                pc.gfac = root if inv_sqrt_p is None else root * inv_sqrt_p
            else:
                sc = xp.sign(c) * root
                pc.sfac = sc
                pc.sfac_odd = xp.where(xp.asarray(x > 1.0), -sc, sc)
        else:
            pc.mu = mu_b[:, :, None, :]
            if mu_lo is not None:
                pc.mu_lo = xp.asarray(mu_lo, dtype=f64)[:, None, None, :]
            pc.agap0 = absc * xp.sqrt(0.5 * mu_b)
            if pc.W is None:
                pc.agrad0 = mu_b * absc if inv_sqrt_p is None else mu_b * absc * inv_sqrt_p
            else:
                pc.y0 = mu_b * c
        return pc

    def values(self, steps: np.ndarray, rows: np.ndarray | None = None, want_gap: bool = True, want_grad: bool = True):
        """Host float64 (len(rows), T) f − f* and ‖∇f‖ at ``steps`` for the runs ``rows`` (default all),
        in the order given; a quantity not wanted is returned as zeros."""
        xp, b = self.xp, self.backend
        steps = np.asarray(steps, dtype=np.int64)
        T = steps.size
        sel = np.arange(self.R) if rows is None else np.asarray(rows, dtype=np.int64)
        gap = np.zeros((sel.size, T))
        gsq = np.zeros((sel.size, T))
        pos = np.full(self.R, -1, dtype=np.int64)
        pos[sel] = np.arange(sel.size)
        for crows, pieces, eta_c, beta_c in self.classes:
            here = np.flatnonzero(pos[crows] >= 0)  # class-local indices of the selected runs
            if here.size == 0 or T == 0:
                continue
            out = pos[crows[here]]
            local = None if here.size == crows.size else xp.asarray(here)
            g_parts, s_parts = [], []
            for pc in pieces:
                g_c, s_c = self._piece_values(pc, local, steps, here.size, eta_c[here], beta_c[here], want_gap, want_grad)
                g_parts.append(g_c)
                s_parts.append(s_c)
            if want_gap:
                gap[out] = b.to_numpy(_total(g_parts))
            if want_grad:
                gsq[out] = b.to_numpy(_total(s_parts))
        return gap, np.sqrt(gsq)

    def _piece_values(self, pc, local, steps, r, eta_r, beta_r, want_gap, want_grad):
        """(r, T) backend arrays: this piece's share of f − f* and of ‖∇f‖² (None where not wanted)."""
        xp = self.xp
        f64 = xp.float64
        kb, d = pc.kb, pc.d

        def runs(a):  # (kb, R_class, d) → (kb, r, 1, d): the selected runs, broadcast over steps
            if a is None:
                return None
            a = a if local is None or a.shape[1] == 1 else xp.take(a, local, axis=1)
            return a[:, :, None, :]

        gd = pc.L is not None
        use_W = want_grad and pc.W is not None
        T = steps.size
        if gd:
            L, lgap, gfac = runs(pc.L), runs(pc.lgap), runs(pc.gfac)
            sfac, sfac_odd = (runs(pc.sfac), runs(pc.sfac_odd)) if use_W else (None, None)
            # with the rotation the sign σ^k matters: even and odd steps go in separate slabs, each with its
            # own signed factor, and the columns are put back in order at the end
            order = np.argsort(steps % 2, kind="stable") if use_W else np.arange(T)
            n_first = int(np.count_nonzero(steps % 2 == 0)) if use_W else T
        else:
            eta_b = xp.asarray(eta_r, dtype=f64)[None, :, None, None]
            beta_b = xp.asarray(beta_r, dtype=f64)[None, :, None, None]
            agap0, agrad0, y0 = runs(pc.agap0), runs(pc.agrad0), (runs(pc.y0) if use_W else None)
            order, n_first = np.arange(T), T
        ordered = steps[order]
        tc = max(1, self.chunk // max(1, kb * r * d))
        bounds = [(a, min(a + tc, n_first)) for a in range(0, n_first, tc)]
        bounds += [(a, min(a + tc, T)) for a in range(n_first, T, tc)]
        gs, ss = [], []

        def sumsq(a):  # Σ over modes, then over blocks one after the other, of a²: (kb, r, tc, d) → (r, tc)
            return sum_first(xp, xp.vecdot(a, a, axis=-1))

        for a0, a1 in bounds:
            kk = ordered[a0:a1]
            ks = xp.asarray(kk.astype(np.float64), dtype=f64)[None, None, :, None]
            if gd:
                amp = xp.exp(xp.clip(L * ks + lgap, min=-700.0, max=700.0))  # √(½μ)|c||φ_k|
                if want_gap:
                    gs.append(sumsq(amp))
                if want_grad and not use_W:
                    ss.append(sumsq(amp * gfac))
                y = (amp * (sfac_odd if a0 >= n_first else sfac)) if use_W else None
            else:
                phi = multiplier(xp, self.spec.kind, eta_b, beta_b, pc.mu, ks, pc.mu_lo)
                if want_gap:
                    gs.append(sumsq(phi * agap0))
                if want_grad and not use_W:
                    ss.append(sumsq(phi * agrad0))
                y = phi * y0 if use_W else None
            if y is not None:
                u = fixed_matmul(xp, self.backend.contiguous(xp.reshape(y, (kb, r * kk.size, d))), pc.W)
                ss.append(sum_first(xp, xp.reshape(xp.vecdot(u, u, axis=-1), (kb, r, kk.size))))
        inv = None if n_first == T else xp.asarray(np.argsort(order))

        def cat(parts):
            if not parts:
                return None
            out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
            return out if inv is None else xp.take(out, inv, axis=1)

        return cat(gs), cat(ss)


def _total(parts):
    out = parts[0]
    for q in parts[1:]:
        out = out + q
    return out


def _eigen_pieces(problem, p):
    """Yield (μ (k, d) host, μ_lo (k, d) host or None, V backend (k, d, d) or None, coords (k·d,))
    covering all coordinates, for M = P^{1/2} H P^{1/2} (P = I when p is None).  μ + μ_lo is an
    eigenvalue of the matrix as stored (the one the iteration multiplies by), an unevaluated double-double.

    rotation="none": H is diag(λ) stored exactly, so μ = λ (p·λ, rounded, with P).
    P = I with rotations ("block", "global", "given"): μ + μ_lo are the eigenvalues of the stored float64
    H_b, refined from the eigenvectors that generated it, by :func:`_stored_eigenvalues` (the prescribed
    λ is off by up to a few ulps, which at critical damping moves φ_{10⁴} by ~1e-8 per ulp).
    P ≠ I: eigh of M formed in float64 (μ_lo None), left so: an eigenvalue has an absolute error of a few
    eps·‖M_b‖ from forming M and from eigh, a relative error up to a few eps·κ(M_b) for the small ones
    (measured: ≤ 3.7 ulp on the reproducer's blocks, 3900 ulp = 9e-13 relative at κ = 1e4).  Only GD-kind
    specs carry a P (Jacobi, blockwise, Adam-theory), where φ_k = (1 − ημ)^k moves by k·ημ·(δμ/μ)/|1 − ημ|:
    below 1e-11 at k ≤ 10⁴ away from ημ = 1, without the critical damping that makes ulps matter above."""
    xp = problem.xp
    b = problem.backend
    if problem._diag is not None:
        lam = problem.eigenvalues
        mu = lam if p is None else p * lam
        yield mu.reshape(-1, 1), None, None, np.arange(problem.n)
        return
    vecs = problem.eigenvectors() if p is None else None
    for gi, g in enumerate(problem.groups):
        if p is None:
            Q = b.to_numpy(vecs[gi]).astype(np.float64, copy=False)
            H = b.to_numpy(g.H).astype(np.float64, copy=False)
            mu, mu_lo, Qn = _stored_eigenvalues(H, Q, np.asarray(g.lam, dtype=np.float64))
            yield mu, mu_lo, (vecs[gi] if Qn is None else b.asarray(Qn)), g.coords
            continue
        s = xp.asarray(np.sqrt(p[g.coords]).reshape(g.k, g.size), dtype=xp.float64)
        M = s[:, :, None] * xp.astype(g.H, xp.float64) * s[:, None, :]
        mu, V = xp.linalg.eigh(M)
        yield b.to_numpy(mu), None, V, g.coords


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
