"""quadlab.theory against exact sympy derivations at rational inputs."""

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import quadlab
from quadlab import symbolic, theory
from strategies import property_settings


@pytest.fixture(scope="module")
def derived():
    return {f.__name__: f() for f in (symbolic.gd_two_eigenvalues, symbolic.gd_block2, symbolic.adam_two_eigenvalues,
                                      symbolic.adam_block2, symbolic.heavy_ball_two_eigenvalues)}


def _num(x):
    return float(sp.N(x, 40))


def test_derivations_reach_the_closed_forms(derived):
    d = derived["gd_two_eigenvalues"]
    l1, l2 = d.symbols["lam1"], d.symbols["lam2"]
    assert sp.simplify(d["eta_opt"] - 2 / (l1 + l2)) == 0
    assert sp.simplify(d["rho_opt"] - (l2 - l1) / (l2 + l1)) == 0
    k = sp.Symbol("kappa", positive=True)
    assert sp.simplify(d["rho_opt_kappa"] - (k - 1) / (k + 1)) == 0
    b = derived["gd_block2"]
    a, bb, c = b.symbols["a"], b.symbols["b"], b.symbols["c"]
    assert sp.simplify(b["eta_opt"] - 2 / (a + c)) == 0
    assert sp.simplify(b["rate_opt"] - ((a - c) ** 2 + 4 * bb**2) / (a + c) ** 2) == 0
    h = derived["heavy_ball_two_eigenvalues"]
    l1, l2 = h.symbols["lam1"], h.symbols["lam2"]
    assert sp.simplify(h["eta_opt"] - 4 / (sp.sqrt(l1) + sp.sqrt(l2)) ** 2) == 0
    assert sp.simplify(h["rho_opt"] - (sp.sqrt(l2) - sp.sqrt(l1)) / (sp.sqrt(l2) + sp.sqrt(l1))) == 0
    # diagonal Adam: the bound is attained and neither side depends on the eigenvalues
    A = derived["adam_two_eigenvalues"]
    vals = dict(lam1=3, lam2=700, e1=Fraction(1, 3), e2=Fraction(-5, 4))
    assert A.evaluate("rate", **vals) == A.evaluate("bound", **vals) == sp.Rational(121, 225)
    assert A.evaluate("rate", **{**vals, "lam2": 2}) == A.evaluate("rate", **vals)


def test_evaluate_and_numeric_agree_and_need_every_symbol(derived):
    d = derived["adam_block2"]
    vals = dict(a=Fraction(3, 7), b=Fraction(1, 5), c=Fraction(9, 2), e1=Fraction(-2, 3), e2=Fraction(5, 11))
    assert _num(d.evaluate("rho", **vals)) == pytest.approx(d.numeric("rho", **vals), rel=1e-15)
    with pytest.raises(ValueError, match="needs values"):
        derived["gd_two_eigenvalues"].evaluate("eta_opt", lam1=1)
    with pytest.raises(ValueError, match="needs values"):
        d.numeric("rho", a=1)


rationals = st.fractions(min_value=Fraction(1, 50), max_value=50, max_denominator=60)
signed = st.fractions(min_value=-5, max_value=5, max_denominator=30).filter(lambda x: x != 0)


@property_settings(40)
@given(rationals, rationals)
def test_gd_two_eigenvalues(derived, x, y):
    lo, hi = sorted([x, y])
    p = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[float(lo)], [float(hi)]]), rotation="none")
    d = derived["gd_two_eigenvalues"]
    g = theory.gd_rates(p)
    assert g.best_lr == pytest.approx(d.numeric("eta_opt", lam1=lo, lam2=hi, eta=1), rel=1e-14)
    assert g.best_rate == pytest.approx(d.numeric("rate_opt", lam1=lo, lam2=hi, eta=1), rel=1e-13, abs=1e-15)
    for eta in (Fraction(1, 7), Fraction(3, 2) / hi):
        want = d.numeric("rho", lam1=lo, lam2=hi, eta=eta)
        assert theory.gd_rates(p, lr=float(eta)).rho == pytest.approx(want, rel=1e-13, abs=1e-15)
    h = derived["heavy_ball_two_eigenvalues"]
    hb = theory.heavy_ball_optimum(p)
    if lo < hi:
        assert hb.lr == pytest.approx(h.numeric("eta_opt", lam1=lo, lam2=hi), rel=1e-13)
        assert hb.momentum == pytest.approx(h.numeric("momentum_opt", lam1=lo, lam2=hi), rel=1e-12, abs=1e-15)


def _block(a, b, c):
    return np.array([[float(a), float(b)], [float(b), float(c)]])


@st.composite
def pd_blocks(draw):
    a, c = draw(rationals), draw(rationals)
    t = draw(st.fractions(min_value=Fraction(-95, 100), max_value=Fraction(95, 100), max_denominator=40))
    # b = t·√(ac) rounded to a rational keeps ac − b² > 0
    b = Fraction(float(t) * float(a * c) ** 0.5).limit_denominator(200)
    if b * b >= a * c:
        b = Fraction(0)
    return a, b, c


@property_settings(40)
@given(pd_blocks())
def test_gd_block2(derived, abc):
    a, b, c = abc
    p = quadlab.BlockQuadratic.from_blocks([_block(a, b, c)])
    d = derived["gd_block2"]
    vals = dict(a=a, b=b, c=c, eta=1)
    g = theory.gd_rates(p)
    assert g.best_lr == pytest.approx(d.numeric("eta_opt", **vals), rel=1e-12)
    assert g.best_rate == pytest.approx(d.numeric("rate_opt", **vals), rel=1e-10, abs=1e-13)


@property_settings(60)
@given(pd_blocks(), signed, signed)
def test_adam_block2(derived, abc, e1, e2):
    a, b, c = abc
    vals = dict(a=a, b=b, c=c, e1=e1, e2=e2)
    d = derived["adam_block2"]
    if d.evaluate("g1", **vals) == 0 or d.evaluate("g2", **vals) == 0:
        return  # the theorem excludes a zero gradient entry (tested in test_theory)
    p = quadlab.BlockQuadratic.from_blocks([_block(a, b, c)])
    k = theory.adam_constants(p, np.array([float(e1), float(e2)]))
    assert k.eta == pytest.approx(d.numeric("eta", **vals), rel=1e-12)
    assert k.r_tilde == pytest.approx(d.numeric("r_tilde", **vals), rel=1e-12)
    assert k.rho_exact == pytest.approx(d.numeric("rho", **vals), rel=1e-9, abs=1e-12)
    assert k.bound == pytest.approx(d.numeric("bound", **vals), rel=1e-9, abs=1e-12)
    assert d.numeric("rate", **vals) <= d.numeric("bound", **vals) + 1e-30


@property_settings(40)
@given(rationals, rationals, signed, signed)
def test_adam_two_eigenvalues(derived, l1, l2, e1, e2):
    p = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[float(l1)], [float(l2)]]), rotation="none")
    vals = dict(lam1=l1, lam2=l2, e1=e1, e2=e2)
    d = derived["adam_two_eigenvalues"]
    k = theory.adam_constants(p, np.array([float(e1), float(e2)]))
    assert k.eta == pytest.approx(d.numeric("eta", **vals), rel=1e-14)
    assert k.rate_exact == pytest.approx(d.numeric("rate", **vals), rel=1e-12, abs=1e-15)
    assert k.bound == pytest.approx(d.numeric("bound", **vals), rel=1e-12, abs=1e-15)
