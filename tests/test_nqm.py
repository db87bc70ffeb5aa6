"""The noisy quadratic model's closed form (quadlab.nqm) against Monte Carlo, independent recurrences and
the discrete Lyapunov equation; steps to a target, tuning and critical batch sizes."""

import numpy as np
import pytest
import scipy.linalg

import quadlab
from quadlab import noise, nqm, optim, spectra

EPS = np.finfo(np.float64).eps
H5 = np.array([1.0, 3.0, 10.0, 30.0, 100.0])


def _diag(h):
    return quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([h]), rotation="none", optimum="random", seed=2)


def _rotated(rotation):
    spec = quadlab.BlockSpectrum.from_blocks([spectra.log_uniform(4, 1, 10), [30.0, 60.0], [2.0, 5.0, 9.0]])
    return quadlab.BlockQuadratic(spec, rotation=rotation, optimum="random", seed=3)


CHECK = [1, 3, 10, 30, 100, 300]  # steps at which the Monte-Carlo mean is compared


def _mc_agrees(res, curve, z=4.0):
    """Mean over seeds of f(w_k) − f* within z standard errors of the closed form at every checked step."""
    g = res.gap[:, CHECK]
    se = g.std(axis=0, ddof=1) / np.sqrt(g.shape[0])
    return np.abs(g.mean(axis=0) - curve[CHECK]) <= z * se


CASES = {
    # name: (problem, optimizer, closed-form keywords, noise)
    "sgd diagonal": (lambda: _diag(H5), optim.gd(lr=0.01), dict(lr=0.01), noise.NQM(batch=4)),
    "sgd block rotation": (lambda: _rotated("block"), optim.gd(lr=0.02), dict(lr=0.02), noise.NQM(batch=2, scale=3.0)),
    "sgd global rotation": (lambda: _rotated("global"), optim.gd(lr=0.02), dict(lr=0.02), noise.Isotropic(0.5)),
    "sgd student-t": (lambda: _diag(H5), optim.gd(lr=0.01), dict(lr=0.01), noise.HeavyTailed(batch=4, df=3.0)),
    "heavy ball": (lambda: _diag(H5), optim.heavy_ball(lr=0.004, momentum=0.8),
                   dict(lr=0.004, method="heavy_ball", momentum=0.8), noise.NQM(batch=4)),
    "jacobi (P = 1/h)": (lambda: _diag(H5), optim.jacobi_gd(lr=0.3), dict(lr=0.3, precond=1 / H5), noise.NQM(batch=8)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_mean_loss_over_seeds_matches_the_closed_form_within_monte_carlo_error(case):
    make, opt, kw, model = CASES[case]
    P = make()
    res = quadlab.run(P, opt, seeds=range(400), steps=300, record="all", noise=model)
    curve = nqm.expected_loss(P, noise=model, steps=300, **kw)[0]
    assert curve[0] == pytest.approx(0.5 * np.sum(P.eigenvalues), rel=1e-14)
    assert _mc_agrees(res, curve).all(), case
    # the test has power: half the batch (twice the noise variance) is rejected somewhere along the path
    wrong = nqm.expected_loss(P, noise=_doubled(model), steps=300, **kw)[0]
    assert not _mc_agrees(res, wrong).all(), case


def _doubled(model):
    if isinstance(model, noise.Isotropic):
        return noise.Isotropic(model.sigma * np.sqrt(2))
    return noise.NQM(batch=model.batch, scale=2 * model.scale)


def test_gd_closed_form_equals_the_step_by_step_recurrence_and_heavy_ball_at_zero_momentum():
    model = noise.NQM(batch=3, scale=2.0)
    lrs = np.array([1e-3, 0.01, 0.019, 0.02, 0.025])  # stable, at the edge ημ = 2, and diverging
    closed = nqm.expected_loss(H5, lrs, noise=model, steps=200)
    hb = nqm.expected_loss(H5, lrs, method="heavy_ball", momentum=0.0, noise=model, steps=200)
    v = 2.0 / 3 * H5
    for i, eta in enumerate(lrs):
        s = np.ones_like(H5)
        for k in range(201):
            ref = 0.5 * np.sum(H5 * s)
            assert abs(closed[i, k] - ref) <= 64 * (k + 1) * EPS * ref
            assert abs(hb[i, k] - ref) <= 64 * (k + 1) * EPS * ref
            s = (1 - eta * H5) ** 2 * s + eta**2 * v


def test_the_noise_floor_is_the_stationary_solution():
    model = noise.NQM(batch=4)
    eta = 0.01
    far = nqm.expected_loss(H5, eta, noise=model, steps=20_000, record=[20_000])[0, 0]
    # GD: s_∞ = η² v/(1 − r²) = η c/(2 − ημ) with c = 1/4
    assert far == pytest.approx(0.5 * np.sum(H5 * eta * 0.25 / (2 - eta * H5)), rel=1e-12)
    # heavy ball: the fixed point of S = a S aᵀ + v b bᵀ, from scipy's discrete Lyapunov solver
    beta = 0.7
    far = nqm.expected_loss(H5, eta, method="heavy_ball", momentum=beta, noise=model, steps=20_000,
                            record=[20_000])[0, 0]
    ref = 0.0
    for mu in H5:
        a = np.array([[1 - eta * mu, -eta * beta], [mu, beta]])
        b = np.array([[-eta], [1.0]])
        S = scipy.linalg.solve_discrete_lyapunov(a, 0.25 * mu * (b @ b.T))
        ref += 0.5 * mu * S[0, 0]
    assert far == pytest.approx(ref, rel=1e-10)


def test_steps_to_target_is_the_first_crossing_of_the_curve():
    model = noise.NQM(batch=2)
    lrs = np.array([1e-3, 5e-3, 0.015, 0.0199])
    for method, kw in [("gd", {}), ("heavy_ball", {"momentum": [0.0, 0.9]})]:
        curve = nqm.expected_loss(H5, lrs, method=method, noise=model, steps=3000, **kw)
        got = nqm.steps_to_target(H5, 0.02, lr=lrs, method=method, noise=model, max_steps=3000, **kw)
        below = curve <= 0.02 * curve[:, :1]
        want = np.where(below.any(axis=1), below.argmax(axis=1), -1)
        np.testing.assert_array_equal(got, want)
        assert (got >= 0).any() and (got < 0).any()  # both outcomes are exercised


def test_tuning_finds_a_step_no_grid_point_beats():
    model = noise.NQM(batch=8)
    t = nqm.tuned_steps(H5, 0.01, noise=model)
    assert nqm.steps_to_target(H5, 0.01, lr=t.lr, noise=model)[0] == t.steps
    fine = nqm.steps_to_target(H5, 0.01, lr=np.geomspace(1e-4, 0.02 * (1 - 1e-9), 400), noise=model)
    assert t.steps <= fine[fine >= 0].min()
    hb = nqm.tuned_steps(H5, 0.01, method="heavy_ball", noise=model)
    assert nqm.steps_to_target(H5, 0.01, method="heavy_ball", lr=hb.lr, momentum=hb.momentum, noise=model)[0] == hb.steps
    assert hb.steps <= t.steps  # momentum 0 is on heavy ball's grid


def test_critical_batches_grow_with_momentum_and_preconditioning():
    """The NQM paper's ordering on an ill-conditioned diagonal quadratic (κ = 10³, equal initial loss per
    direction): heavy ball and full preconditioning have larger critical batches than GD."""
    h = 10 ** -np.linspace(0, 3, 30)
    kw = dict(start=h**-0.5, batches=2.0 ** np.arange(0, 13), max_steps=100_000)
    gd = nqm.critical_batch(h, 1e-2, **kw)
    # heavy ball's scan costs its steps: B = 1 and 2 (16,000 and 8,000 steps) add nothing here
    hb = nqm.critical_batch(h, 1e-2, method="heavy_ball", momenta=(0.0, 0.9, 0.99), points=20,
                            **{**kw, "batches": 2.0 ** np.arange(2, 13)})
    pre = nqm.critical_batch(h, 1e-2, precond=1 / h, **kw)
    for cb in (gd, hb, pre):
        assert (np.diff(cb.steps) <= 0).all() and cb.steps[-1] >= cb.limit
        assert cb.steps[0] > 10 * cb.limit  # B = 1 is noise-dominated
    assert gd.critical < pre.critical and 4 * gd.critical <= hb.critical


def test_adams_monte_carlo_critical_batch_exceeds_gds_on_an_ill_conditioned_instance():
    """κ = 10⁴, equal initial loss per direction: GD's critical batch is 32 (closed form; S(32) = 8605 against
    2·S_∞ = 8932), Adam's 128 by Monte Carlo (16 seeds; its mean-loss steps at B = 64 were 100 and 95 on two
    disjoint seed sets against 2·S_∞ = 68, at B = 128 52 and 48): a margin well beyond the seed noise."""
    h = 10 ** -np.linspace(0, 4, 30)
    e0 = h**-0.5
    gd = nqm.critical_batch(h, 1e-2, start=e0, batches=2.0 ** np.arange(0, 11), max_steps=400_000)
    P = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([h]), rotation="none")
    adam = nqm.mc_critical_batch(P, optim.adam(lr=np.geomspace(1e-3, 10.0, 17)), 1e-2, start=e0,
                                 batches=2.0 ** np.arange(2, 11), seeds=range(16), max_steps=3000)
    assert adam.limit < gd.limit / 20  # Adam's edge without noise...
    assert adam.steps[0] > 10 * adam.limit  # ...is eaten by the noise at small batches,
    assert adam.critical >= 4 * gd.critical  # so its critical batch is larger


@pytest.mark.parametrize("call, match", [
    (lambda: nqm.expected_loss(H5, 0.01, method="adam"), "method"),
    (lambda: nqm.expected_loss(H5, -0.01), "lr"),
    (lambda: nqm.expected_loss(H5, 0.01, momentum=0.5), "heavy_ball"),
    (lambda: nqm.expected_loss(H5, 0.01, method="heavy_ball", momentum=1.0), "momentum"),
    (lambda: nqm.expected_loss(H5, 0.01, steps=0), "steps"),
    (lambda: nqm.expected_loss(H5, 0.01, steps=10, record=[3, 2]), "record"),
    (lambda: nqm.expected_loss(np.array([1.0, -1.0]), 0.01), "positive"),
    (lambda: nqm.expected_loss(H5, 0.01, precond=np.ones(3)), "precond"),
    (lambda: nqm.expected_loss(_rotated("block"), 0.01, precond=np.ones(9)), "diagonal H"),
    (lambda: nqm.expected_loss(H5, 0.01, start=[np.nan] * 5), "start"),
    (lambda: nqm.steps_to_target(H5, 1.5), "target"),
    (lambda: nqm.tuned_steps(H5, 0.1, points=2), "points"),
    (lambda: nqm.critical_batch(H5, 0.1, batches=[4, 2]), "batches"),
    (lambda: nqm.critical_batch(H5, 0.1, delta=0), "delta"),
    (lambda: nqm.mc_critical_batch(_diag(H5), optim.adam(lr=0.1, b1=[0.0, 0.9]), 0.1), "fix"),
    (lambda: nqm.mc_critical_batch(H5, optim.adam(lr=0.1), 0.1), "BlockQuadratic"),
])
def test_bad_arguments_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
