"""Sign descent and Adam with β1 = β2: the exact diagonal trajectory, unit steps per coordinate, Adam's
bound |Δ_i| ≤ η when β1 = β2, batch independence and argument checks."""

import numpy as np
import pytest

import quadlab
from quadlab import optim, runner, spectra
from quadlab._engine.context import RunContext
from quadlab._engine.layout import Layout

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise

EPS = np.finfo(np.float64).eps


def _diag_problem():
    return quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[0.5, 2.0, 7.0], [1.0, 40.0]]),
                                  rotation="none", optimum="random", seed=1)


def _rotated_problem(xp="numpy"):
    spec = quadlab.BlockSpectrum.from_blocks([spectra.log_uniform(4, 1, 10), spectra.log_uniform(3, 20, 300)])
    return quadlab.BlockQuadratic(spec, rotation="block", optimum="random", seed=2, xp=xp)


@pytest.mark.parametrize("lr", [0.05, 0.3])
def test_sign_descent_on_a_diagonal_quadratic_follows_its_closed_form(lr):
    P = _diag_problem()
    steps = 80  # long enough that every coordinate reaches its 2-cycle at lr = 0.3, and some at 0.05
    res = quadlab.run(P, optim.sign_descent(lr=lr), seeds=[4], steps=steps, record="all")
    e0 = res.w0[0] - P.optimum_host
    h = P.eigenvalues
    for k in range(steps + 1):
        ek = optim.sign_descent_diagonal(e0, lr, k)
        # the iteration subtracts η one step at a time: k roundings of size eps·max(|e0|, η)
        atol = 4 * (k + 1) * EPS * max(np.abs(e0).max(), lr)
        assert abs(res.gap[0, k] - 0.5 * np.sum(h * ek**2)) <= np.sum(h * (np.abs(ek) + atol)) * atol + 1e-300
    # the cycle: after K_i steps a coordinate alternates between two points lr apart
    late = optim.sign_descent_diagonal(e0, lr, 10_000), optim.sign_descent_diagonal(e0, lr, 10_001)
    assert np.all(np.abs(late[0] - late[1]) <= lr * (1 + 1e-12))
    assert np.all(np.abs(late[0]) <= lr) and np.all(np.abs(late[1]) <= lr)


def test_sign_descent_diagonal_exact_small_cases():
    np.testing.assert_array_equal(optim.sign_descent_diagonal([1.0, -0.75, 0.5], 0.5, 1), [0.5, -0.25, 0.0])
    np.testing.assert_array_equal(optim.sign_descent_diagonal([1.0, -0.75, 0.5], 0.5, 2), [0.0, 0.25, 0.0])
    np.testing.assert_array_equal(optim.sign_descent_diagonal([1.0, -0.75, 0.5], 0.5, 3), [0.0, -0.25, 0.0])
    np.testing.assert_array_equal(optim.sign_descent_diagonal([1.0, -0.75, 0.0], 0.5, 0), [1.0, -0.75, 0.0])


def _manual(P, opt, steps, seed=0):
    """Drive an optimizer's (init, update) by hand and return every step's Δ (steps, n) for run 0."""
    lay = Layout(P)
    E0 = np.random.default_rng(seed).standard_normal((1, P.n))
    E = lay.split(P.backend.asarray(E0))
    E = tuple(np.array(x, copy=True) for x in E)
    G = lay.hvp(E)
    ctx = RunContext(P, lay, P.backend.to_numpy(lay.merge(G)), E0 + P.optimum_host, runner.INPLACE)
    ctx.host_hp = {k: np.asarray(v, dtype=np.float64) for k, v in opt.grid().items()}
    hp = {k: float(v[0]) for k, v in ctx.host_hp.items() if k != "lr"}
    state = opt.init(G, hp, ctx)
    out = []
    for t in range(1, steps + 1):
        delta, state = opt.update(G, state, hp, ctx, t)
        d = P.backend.to_numpy(lay.merge(delta)).copy()
        out.append(d[0])
        E = tuple(e - x for e, x in zip(E, lay.split(P.backend.asarray(d)), strict=True))
        G = lay.hvp(E)
    return np.array(out)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_every_coordinate_of_a_sign_step_moves_by_exactly_lr(momentum):
    D = _manual(_rotated_problem(), optim.sign_descent(lr=0.01, momentum=momentum), 50)
    np.testing.assert_array_equal(np.abs(D), 0.01)


def test_adam_with_equal_betas_moves_each_coordinate_by_at_most_lr():
    P = _rotated_problem()
    lr = 0.05
    D = _manual(P, optim.adam(lr=lr, b1=0.9, b2=0.9, eps=0.0), 200)
    assert np.abs(D).max() <= lr * (1 + 8 * EPS)
    assert np.abs(D).max() >= 0.9 * lr  # the bound is attained, not vacuous
    # β1 > β2 breaks Cauchy–Schwarz's weights: a step longer than lr appears on the same trajectory
    D2 = _manual(P, optim.adam(lr=lr, b1=0.9, b2=0.5, eps=0.0), 200)
    assert np.abs(D2).max() > lr * 1.01


@pytest.mark.parametrize("xp", ["numpy", "array_api_strict"])
def test_sign_descent_grids_are_batch_independent(xp, monkeypatch):
    P = _rotated_problem(xp)
    opt = optim.sign_descent(lr=[1e-3, 1e-2], momentum=[0.0, 0.9])
    batch = quadlab.run(P, opt, seeds=[0, 5], steps=100, tol=0.2)
    grid = opt.grid()
    for c in range(4):
        for j, s in enumerate([0, 5]):
            alone = quadlab.run(P, optim.sign_descent(lr=grid["lr"][c], momentum=grid["momentum"][c]), seeds=[s],
                                steps=100, tol=0.2)
            r = 2 * c + j
            assert batch.steps_to_tol[r] == alone.steps_to_tol[0]
            np.testing.assert_array_equal(batch.gap[r], alone.gap[0])
    if xp == "numpy":  # the in-place path gives the functional path's bits
        monkeypatch.setattr(runner, "INPLACE", False)
        slow = quadlab.run(P, opt, seeds=[0, 5], steps=100, tol=0.2)
        np.testing.assert_array_equal(slow.gap, batch.gap)


def test_sign_descent_reaches_a_tolerance_only_with_a_small_enough_step():
    P = _diag_problem()
    big = quadlab.run(P, optim.sign_descent(lr=0.5), seeds=[0], steps=2000, tol=1e-3)
    small = quadlab.run(P, optim.sign_descent(lr=1e-5), seeds=[0], steps=400_000, tol=1e-3)
    assert big.status[0] == "max_steps"
    assert small.status[0] == "converged"


@pytest.mark.parametrize("kw, match", [
    (dict(lr=0.0), "lr must be positive"),
    (dict(lr=1e-3, momentum=1.5), "momentum"),
    (dict(lr=[np.nan]), "finite"),
])
def test_bad_sign_descent_arguments_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        optim.sign_descent(**kw)


def test_bad_closed_form_arguments_are_refused():
    with pytest.raises(ValueError, match="steps"):
        optim.sign_descent_diagonal([1.0], 0.1, -1)
    with pytest.raises(ValueError, match="finite"):
        optim.sign_descent_diagonal([np.inf], 0.1, 1)
    with pytest.raises(ValueError, match="lr"):
        optim.sign_descent_diagonal([1.0], -0.1, 1)
    with pytest.raises(ValueError, match="no closed form|not linear"):
        quadlab.run(_diag_problem(), optim.sign_descent(lr=0.1), method="closed_form")
