"""quadlab._engine.portable: what builds an instance is the same bits on every CPU.

Known truth: exact rationals (fractions) for b^t; the sign-fixed Householder factor for the Haar Q and ‖QᵀQ − I‖
bounds; eigenvalues by construction for Q diag(λ) Qᵀ; and a second Python process with numpy's SIMD dispatch
lowered (NPY_DISABLE_CPU_FEATURES), which must build the same bits.
"""

import json
import math
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import quadlab
from quadlab import spectra
from quadlab._engine import kernels, portable
from quadlab._engine.adam_rule import scalar_tables

pytestmark = pytest.mark.bitwise

EPS = 2.0 ** -53


def lowered_env() -> dict:
    """The environment of a process whose numpy uses none of the SIMD targets it dispatches to on this CPU (the
    baseline only: the names of ``__cpu_dispatch__`` this CPU has) and whose C library skips its FMA variants."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    names = [n for n in __cpu_dispatch__ if __cpu_features__.get(n)]
    env = dict(os.environ)
    env.pop("NPY_DISABLE_CPU_FEATURES", None)
    if names:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(names)
    # and glibc's own maths without its FMA/AVX2 variants (they differ from the SSE2 ones in the last bit);
    # other C libraries ignore the variable
    env["GLIBC_TUNABLES"] = "glibc.cpu.hwcaps=-AVX2,-FMA"
    return env


@pytest.mark.parametrize("b", [0.9, 0.999, 0.5, 1 - 2.0 ** -30, 0.0, 1.0, 0.3])
def test_ipow_is_within_an_ulp_of_the_exact_power(b):
    """|ipow(b, t) − b^t| ≤ eps·b^t (half an ulp from the final rounding plus the double-double error, about
    t·eps², which is far below it), against the exact rational power, while b^t is a normal number."""
    ts = [0, 1, 2, 3, 7, 8, 255, 256, 1000, 4097, 69_077]
    got = portable.ipow(b, np.array(ts))
    for t, g in zip(ts, got.tolist(), strict=True):
        if 0 < b < 1 and t * -math.log2(b) > 1000:
            continue  # below the normal range: only an absolute error is promised
        exact = Fraction(b) ** t
        assert abs(Fraction(g) - exact) <= Fraction(EPS) * exact, (b, t)


def test_ipow_is_elementwise_and_checks_its_exponents():
    rng = np.random.default_rng(0)
    b, t = rng.uniform(0, 1, 200), rng.integers(0, 10**5, 200)
    whole = portable.ipow(b, t)
    one = np.array([portable.ipow(x, y) for x, y in zip(b, t, strict=True)])
    np.testing.assert_array_equal(whole, one)  # both sides are quadlab's own elementwise multiplies
    with pytest.raises(ValueError, match="t >= 0"):
        portable.ipow(0.5, [-1])
    with pytest.raises(ValueError, match="integer"):
        portable.ipow(0.5, [1.5])


def test_adam_scalar_tables_follow_their_formula():
    """s_t = (1 − β1^t)²/(1 − β1)²·(1 − β2)/(1 − β2^t) and e_t = (1 − β1^t)/(1 − β1)·ε against the exact
    rational values: the rounding of β^t (≤ eps·β^t) is amplified by the cancellation in 1 − β^t to
    eps·β^t/(1 − β^t) relative, plus a few eps for the other operations."""
    vals = np.array([[0.9, 0.999, 1e-8], [0.0, 0.99, 1e-6]])
    s, e = scalar_tables(vals, 1, 300)
    for j, (b1, b2, eps) in enumerate(vals.tolist()):
        for t in (1, 2, 10, 300):
            c1 = 1 - Fraction(b1) ** t
            c2 = 1 - Fraction(b2) ** t
            q = c1 / (1 - Fraction(b1))
            s_exact, e_exact = q * q * (1 - Fraction(b2)) / c2, q * Fraction(eps)
            k1 = EPS * Fraction(b1) ** t / c1  # the cancellation's amplification of β^t's rounding
            k2 = EPS * Fraction(b2) ** t / c2
            assert abs(Fraction(s[t - 1, j]) - s_exact) <= (8 * EPS + 2 * k1 + k2) * s_exact
            assert abs(Fraction(e[t - 1, j]) - e_exact) <= (4 * EPS + k1) * e_exact
    s0, _ = scalar_tables(vals, 1, 300, bias_correction=False)
    np.testing.assert_allclose(s0[:, 0], (1 - 0.999) / (1 - 0.9) ** 2, rtol=4 * EPS)


def test_geomspace_ends_order_and_ratio():
    g = portable.geomspace(1e-5, 10.0, 128)
    assert g[0] == 1e-5 and g[-1] == 10.0 and np.all(np.diff(g) > 0)
    r = g[1:] / g[:-1]
    step = 10 ** (6 / 127)
    assert np.abs(r / step - 1).max() <= 64 * EPS * math.log(1e6)  # exp's argument carries i·step's rounding
    assert portable.geomspace(2.0, 2.0, 1).tolist() == [2.0]
    with pytest.raises(ValueError, match="0 < lo"):
        portable.geomspace(0.0, 1.0, 3)


def _exact(f, *args):
    """f of the doubles ``args`` to 60 digits (decimal), then the nearest double: the correctly rounded value."""
    import decimal

    ctx = decimal.Context(prec=60)
    return float(f(ctx, *(decimal.Decimal(a) for a in args)))


def test_exp_log_pow_and_geomspace_are_correctly_rounded():
    """Against 60-digit decimal arithmetic rounded once: the same double, so the same bits on every machine."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-700, 700, 300), rng.uniform(-1, 1, 300)])
    assert portable.exp(x).tolist() == [_exact(lambda c, a: c.exp(a), v) for v in x.tolist()]
    y = np.exp(rng.uniform(-300, 300, 300))
    assert portable.log(y).tolist() == [_exact(lambda c, a: c.ln(a), v) for v in y.tolist()]
    b, e = rng.uniform(1e-3, 1e3, 200), rng.uniform(-3, 3, 200)
    assert portable.pow(b, e).tolist() == [_exact(lambda c, u, v: c.exp(v * c.ln(u)), p, q)
                                            for p, q in zip(b.tolist(), e.tolist(), strict=True)]
    with pytest.raises(ValueError, match="positive"):
        portable.log([0.0])


def test_cos_is_within_an_ulp_of_one_absolutely():
    """|portable.cos(x) − cos x| ≤ 2^-52 on |x| < 10⁵, against 60-digit values (Taylor series of the reduced
    argument: the reduction is exact, the polynomials' truncation is below 1e-19)."""
    import decimal

    ctx = decimal.Context(prec=60)

    def cos60(v):
        d = decimal.Decimal(v)
        pi = decimal.Decimal("3.14159265358979323846264338327950288419716939937510582097494")
        k = (d / (2 * pi)).to_integral_value()
        r = ctx.subtract(d, ctx.multiply(k, 2 * pi))
        term, total, n = decimal.Decimal(1), decimal.Decimal(1), 0
        while abs(term) > decimal.Decimal("1e-58"):
            n += 2
            term = ctx.divide(ctx.multiply(-term, ctx.multiply(r, r)), n * (n - 1))
            total = ctx.add(total, term)
        return total

    x = np.concatenate([np.linspace(np.pi, 0, 201), np.random.default_rng(4).uniform(-1e5, 1e5, 200)])
    got = portable.cos(x)
    err = max(abs(decimal.Decimal(g) - cos60(v)) for g, v in zip(got.tolist(), x.tolist(), strict=True))
    assert err <= decimal.Decimal(2.0 ** -52)
    with pytest.raises(ValueError, match="finite"):
        portable.cos([1e7])


def test_fsum_is_correctly_rounded():
    assert float(portable.fsum([1e16, 1.0, -1e16])) == 1.0
    x = np.random.default_rng(1).standard_normal((3, 1000))
    exact = [float(sum(Fraction(v) for v in row)) for row in x.tolist()]
    assert portable.fsum(x).tolist() == exact


@pytest.mark.parametrize("d", [1, 2, 3, 25, 64])
def test_haar_is_the_positive_diagonal_qr_factor(d):
    """Q is orthogonal to a few d·eps; R = QᵀG is upper triangular with a positive diagonal (to rounding), so Q
    is the unique QR factor that makes the law Haar; and it is LAPACK's sign-fixed factor up to rounding."""
    G = np.random.default_rng(d).standard_normal((3, d, d))
    Q = portable.haar(G)
    I = np.eye(d)
    for k in range(3):
        assert np.abs(Q[k].T @ Q[k] - I).max() <= 8 * d * EPS
        R = Q[k].T @ G[k]
        scale = np.abs(G[k]).max() * d
        assert np.abs(np.tril(R, -1)).max(initial=0) <= 16 * d * EPS * scale
        assert (np.diagonal(R) > 0).all()
        Qh, Rh = np.linalg.qr(G[k])
        Qh = Qh * np.where(np.diagonal(Rh) < 0, -1.0, 1.0)
        # κ(G) of a Gaussian d×d matrix is of order d: both factors agree to κ·d·eps
        assert np.abs(Q[k] - Qh).max() <= 64 * d * np.linalg.cond(G[k]) * EPS


def test_haar_and_spectral_give_the_same_bits_with_or_without_numba(monkeypatch):
    """Both sides go through quadlab's fixed-order code: the compiled products and the numpy loop."""
    G = np.random.default_rng(5).standard_normal((2, 30, 30))
    lam = np.random.default_rng(6).uniform(1, 100, (2, 30))
    Q1 = portable.haar(G)
    H1 = portable.spectral(Q1, lam)
    monkeypatch.setattr(kernels, "available", lambda: False)
    Q2 = portable.haar(G)
    H2 = portable.spectral(Q2, lam)
    np.testing.assert_array_equal(Q1, Q2)
    np.testing.assert_array_equal(H1, H2)


def test_spectral_is_exactly_symmetric_with_the_given_spectrum():
    G = np.random.default_rng(7).standard_normal((2, 20, 20))
    lam = np.stack([np.linspace(1, 1e4, 20), np.full(20, 3.0)])
    H = portable.spectral(portable.haar(G), lam)
    np.testing.assert_array_equal(H, np.swapaxes(H, 1, 2))
    for k in range(2):
        ev = np.linalg.eigvalsh(H[k])
        # Weyl: the rounding of H (entries of size ≤ max λ, sums of 20 terms) moves each eigenvalue by ‖δH‖₂
        assert np.abs(ev - np.sort(lam[k])).max() <= 4 * 20 * 20 * EPS * lam[k].max()


_CHILD = r"""
import hashlib, json, numpy as np, quadlab
from quadlab import spectra, stored
from quadlab._engine import portable
from quadlab._engine.adam_rule import scalar_tables
out = {}
for name, spec in (("case1", stored.gpt2_case(kappa=5000.0)), ("case3", spectra.simple_heterogeneous(5000.0)),
                   ("logu", spectra.BlockSpectrum.from_blocks([spectra.log_uniform(40, 1.0, 1e3, seed=1),
                                                 spectra.marchenko_pastur(30, 0.3)]))):
    for rot in ("block", "global"):
        p = quadlab.BlockQuadratic(spec, rotation=rot, seed=3)
        out[f"{name}-{rot}"] = hashlib.sha256(np.asarray(p.dense()).tobytes()).hexdigest()
out["eig"] = hashlib.sha256(np.concatenate(spec.blocks).tobytes()).hexdigest()
out["adam"] = hashlib.sha256(b"".join(a.tobytes() for a in scalar_tables(
    np.array([[0.9, 0.999, 1e-8], [0.0, 0.99, 1e-8]]), 1, 70_000))).hexdigest()
out["grid"] = hashlib.sha256(portable.geomspace(1e-5, 10.0, 128).tobytes()).hexdigest()
print(json.dumps(out))
"""


def test_instances_grids_and_adam_scalars_are_the_same_bits_under_lowered_simd_dispatch():
    """A problem's H (Case 1's sampled spectrum and Case 3's, per-block and global Haar rotations, the seeded
    spectrum families), Adam's scalar tables and a tuning grid, built by this process and by one whose numpy
    runs its baseline kernels only: identical bits (the test is vacuous on a CPU where numpy dispatches
    nothing)."""
    def child(env):
        out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout)

    here = dict(os.environ)
    here.pop("NPY_DISABLE_CPU_FEATURES", None)
    assert child(here) == child(lowered_env())


def test_case1_4_cells_are_the_same_under_lowered_simd_dispatch(tmp_path):
    """The quick study's table (every optimizer's steps, seeds reached, lrs, marks) is a property of the
    mathematics: the same with numpy's SIMD dispatch lowered."""
    def cells(env, tag):
        out = tmp_path / f"{tag}.json"
        subprocess.run([sys.executable, "-m", "quadlab", "case1_4", "--quick", "--quiet", "--cases", "3,4",
                        "--out", str(tmp_path / tag), "--json", str(out)], check=True, env=env, capture_output=True)
        rec = json.loads(out.read_text())
        return [{k: {f: o.get(f) for f in ("lr", "steps_to_tol", "steps_to_tol_per_seed", "unstable", "range",
                                           "per_seed")}
                 for k, o in c["optimizers"].items()} for c in rec["cases"]]

    here = dict(os.environ)
    here.pop("NPY_DISABLE_CPU_FEATURES", None)
    assert cells(here, "native") == cells(lowered_env(), "lowered")


def test_problem_builds_its_small_blocks_through_the_portable_path():
    p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000.0), seed=2)
    G = np.stack([p._gaussian(l, 3) for l in range(3)])
    H = portable.spectral(portable.haar(G), np.stack(p.spectrum.blocks))
    np.testing.assert_array_equal(np.asarray(p.groups[0].H), H)
