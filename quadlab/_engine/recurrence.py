"""The scalar recurrence φ_k of GD, heavy ball and Nesterov at any step k without iterating, and the
double-double arithmetic (error-free transformations) it rests on; used by :mod:`quadlab._engine.closed_form`.

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
"""

from __future__ import annotations

__all__ = ["multiplier"]

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

    # k-dependent part: one expm1 for real roots, cos and sin for complex ones, one exp for the radius.  A
    # branch that no element takes is not evaluated (elementwise, so the values taken are the same bits);
    # the k-independent arrays above are small, these are (… × steps × modes)
    odd = xp.remainder(k, 2.0) == 1.0
    lr = xp.where(real, lr_real, lr_cplx)
    amp = xp.exp(k * lr)
    amp = xp.where(neg & odd, -amp, amp)
    any_real, any_cplx = bool(xp.any(real)), not bool(xp.all(real))
    br = None
    if any_real:
        em = xp.expm1(k * xp.where(real, lq, xp.zeros_like(lq)))  # |q|^k − 1
        flip = (~pos) & odd  # q < 0 and odd k: q^k = −|q|^k
        c_part = xp.where(flip, -0.5 * em, 1.0 + 0.5 * em)  # (1 + q^k)/2
        s_part = xp.where(double, k, xp.where(flip, 2.0 + em, -em) / den_q)  # (1 − q^k)/(1 − q)
        br = c_part + eps_r * s_part
    if any_cplx:
        ka = k * xp.where(real, xp.zeros_like(alpha), alpha)
        ca, sa = xp.cos(ka), xp.sin(ka)
        n4 = xp.remainder(k, 4.0)
        even = (n4 == 0.0) | (n4 == 2.0)
        cos_kw = xp.where(refl, xp.where(even, ca, sa) * xp.where(n4 < 2.0, one, -one), ca)
        sin_kw = xp.where(refl, xp.where(even, sa, ca) * xp.where((n4 == 1.0) | (n4 == 2.0), one, -one), sa)
        br_cplx = cos_kw + eps_c * xp.where((~refl) & (alpha == 0), k, sin_kw / so)
        br = br_cplx if br is None else xp.where(real, br, br_cplx)
    val = amp * br
    val = xp.where(k == 0, one, val)
    if not bool(xp.any(d0 == 0)):
        return val
    # a root at zero
    zb = _real_power(xp, xp.where(d0 == 0, t0, xp.zeros_like(t0)), k - 1.0) * (t0 - a22)
    zb = xp.where(k == 0, one, zb)
    return xp.where(d0 == 0, zb, val)
