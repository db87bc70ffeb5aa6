"""quadlab.checks: observed rates, the per-run report, and the statuses it must give."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given

import quadlab
from quadlab import checks, theory
from strategies import cases, property_settings


def _hetero(rotation="block", xp="numpy"):
    return quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(5000), rotation=rotation, seed=0, xp=xp)


def test_adam_theory_report_holds_and_prints(xp):
    p = _hetero(xp=xp)
    res = quadlab.run(p, quadlab.optim.adam_theory(), seeds=[0, 1, 2], steps=300, method="iterate")
    rep = checks.report(res, p)
    assert rep.all_hold and list(rep.holds) == ["yes"] * 3
    c = theory.adam_constants(p, res.w0)
    np.testing.assert_allclose(rep.exact, c.rate_exact, rtol=1e-12)
    np.testing.assert_allclose(rep.bound, c.bound, rtol=1e-12)
    assert (rep.observed <= rep.exact * (1 + 1e-9)).all() and (rep.margin >= 1).all()
    text = str(rep)
    for word in ("observed", "worst", "exact", "bound", "margin", "holds", "adam_theory"):
        assert word in text
    assert len(text.splitlines()) == 2 + 3
    recs = rep.records()
    assert recs[0]["holds"] == "yes" and recs[0]["seed"] == 0 and recs[0]["lr"] == pytest.approx(c.eta[0])


def test_a_run_slower_than_its_exact_rate_is_flagged():
    p = _hetero()
    res = quadlab.run(p, quadlab.optim.adam_theory(), seeds=[0], steps=100, record="all", method="iterate")
    exact = theory.adam_constants(p, res.w0).rate_exact[0]
    slow = res.gap[0, 0] * (exact * 1.001) ** res.steps  # what a run 0.1 % slower per step would record
    fake = dataclasses.replace(res, gap=slow[None, :])
    rep = checks.report(fake, p)
    assert list(rep.holds) == ["NO"] and "observed > exact" in rep.note[0]
    assert rep.observed[0] == pytest.approx(exact * 1.001, rel=1e-12)


def test_gd_grid_report_and_lower_bound():
    p = _hetero()
    g = theory.gd_rates(p)
    res = quadlab.run(p, quadlab.optim.gd(lr=[1e-4, g.best_lr, 1.05 * g.lr_stable]), seeds=[0], steps=500)
    rep = checks.report(res, p)
    assert rep.all_hold
    np.testing.assert_allclose(rep.exact, theory.gd_rates(p, lr=res.config["lr"]).rate, rtol=1e-14)
    assert rep.lower == pytest.approx(g.lower_rate)
    assert rep.observed[2] > 1  # beyond 2/λ_max GD diverges, as its exact rate says
    assert np.isnan(rep.bound).all()
    opt = checks.report(quadlab.run(p, quadlab.optim.gd(lr="optimal"), steps=200), p)
    assert opt.config["lr"][0] == pytest.approx(g.best_lr) and opt.all_hold


def test_step_beyond_the_theorem_has_no_bound_but_an_exact_rate():
    p = _hetero()
    res = quadlab.run(p, quadlab.optim.adam_theory(lr=[1e-3, 0.5]), seeds=[0], steps=200, method="iterate")
    rep = checks.report(res, p)
    c = theory.adam_constants(p, res.w0[0])
    assert 1e-3 < c.eta < 0.5
    assert np.isfinite(rep.bound[0]) and np.isnan(rep.bound[1])
    assert "bound n/a" in rep.note[1]
    assert rep.exact[1] == pytest.approx(c.rate(0.5), rel=1e-12)
    assert rep.all_hold


def test_global_rotation_theorem_step_is_reported_as_run():
    p = _hetero("global")
    res = quadlab.run(p, quadlab.optim.adam_theory(), seeds=[0], steps=50, method="iterate")
    rep = checks.report(res, p)
    assert rep.holds[0] in ("yes", "undetermined")  # the exact rate describes the run that happened


def test_too_short_runs_are_undetermined_not_numbers():
    p = _hetero()
    res = quadlab.run(p, quadlab.optim.adam_theory(), seeds=[0], steps=3, record="all")
    rep = checks.report(res, p)
    assert rep.holds[0] == "undetermined" and np.isnan(rep.observed[0])
    assert "usable record" in rep.note[0]
    assert np.isfinite(rep.worst[0])  # the step ratios that exist are still checked


def test_noisy_tail_is_undetermined():
    p = _hetero()
    res = quadlab.run(p, quadlab.optim.gd(lr=1e-4), seeds=[0], steps=200, record="all")
    rng = np.random.default_rng(0)
    noisy = res.gap[0] * np.exp(rng.normal(0, 0.5, res.steps.size))
    obs = checks.observed_rates(dataclasses.replace(res, gap=noisy[None, :]))
    assert obs.status[0] == "undetermined" and "noisy" in obs.reason[0] and np.isnan(obs.tail[0])


def test_fit_stops_at_the_floor():
    p = _hetero()
    res = quadlab.run(p, quadlab.optim.gd(lr=1e-4), seeds=[0], steps=60, record="all")
    k = res.steps
    gap = 1.0 * 0.5**k
    gap[40:] = 1e-310  # subnormal junk below the floor must not enter the fit
    obs = checks.observed_rates(dataclasses.replace(res, gap=gap[None, :]))
    assert obs.usable[0] == 40 and obs.tail[0] == pytest.approx(0.5, rel=1e-12)
    assert obs.worst[0] == pytest.approx(0.5, rel=1e-12)


def test_momentum_and_nonlinear_reports():
    p = _hetero()
    hb = theory.heavy_ball_optimum(p)
    res = quadlab.run(p, quadlab.optim.heavy_ball(lr=hb.lr, momentum=hb.momentum), seeds=[0, 1], steps=2000)
    rep = checks.report(res, p)
    assert rep.kind == "asymptotic" and rep.all_hold
    assert rep.exact[0] == pytest.approx(hb.rate, rel=1e-6)
    res = quadlab.run(p, quadlab.optim.adam(lr=1e-2, b1=0.0), seeds=[0], steps=300)
    rep = checks.report(res, p)
    assert rep.kind == "none" and list(rep.holds) == ["n/a"] and "nonlinear" in rep.note[0]


def test_preconditioned_methods_match_their_exact_rates():
    p = _hetero()
    for opt in (quadlab.optim.jacobi_gd(lr=[0.5, 1.0]), quadlab.optim.blockwise_gd(lr=[0.5, 1.0])):
        rep = checks.report(quadlab.run(p, opt, seeds=[0], steps=200, method="iterate"), p)
        assert rep.all_hold and (np.abs(rep.observed / rep.exact - 1) < 1e-6).all()


def test_bad_input():
    p = _hetero()
    res = quadlab.run(p, quadlab.optim.gd(lr=1e-4), seeds=[0], steps=10)
    q = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="dimension"):
        checks.report(res, q)
    with pytest.raises(ValueError, match="tail_fraction"):
        checks.observed_rates(res, tail_fraction=0)
    with pytest.raises(ValueError, match="min_records"):
        checks.observed_rates(res, min_records=1)


@property_settings(60)
@given(cases())
def test_report_holds_for_gd_and_adam_theory_on_random_problems(case):
    """One call of report() per run decides; every run on a generated problem must hold or be undetermined."""
    p = case.problem()
    w0 = case.start(p)
    c = theory.adam_constants(p, w0)
    for opt in (quadlab.optim.gd(lr="optimal"), quadlab.optim.adam_theory(lr=c.eta)):
        rep = checks.report(quadlab.run(p, opt, w0=w0, steps=60, method="iterate"), p)
        assert rep.all_hold, str(rep)
