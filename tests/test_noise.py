"""Stochastic gradients (quadlab.noise): the covariance by construction, seeding by common random numbers,
batch independence with noise, and the runner's contract (true-gradient tolerance, no closed form)."""

import functools

import numpy as np
import pytest

import quadlab
from quadlab import noise, optim, runner, spectra
from quadlab._engine import kernels, scan
from quadlab._engine.layout import Layout

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise

EPS = np.finfo(np.float64).eps


@functools.cache
def problem(rotation: str, xp: str = "numpy", dtype: str = "float64"):
    # sizes 4, 2, 4, 3: two groups of equal size, one odd block, not contiguous
    spec = quadlab.BlockSpectrum.from_blocks(
        [spectra.log_uniform(4, 1, 10), [30.0, 60.0], spectra.log_uniform(4, 100, 400), [2.0, 5.0, 9.0]])
    return quadlab.BlockQuadratic(spec, rotation=rotation, optimum="random", seed=3, xp=xp, dtype=dtype)


def _draws(P, model, seeds, steps):
    """ξ_0..ξ_{steps−1} of every run, host (steps, R, n) in coordinate order."""
    lay = Layout(P)
    st = noise.Stream(model, P, lay, np.asarray(seeds))
    rows = np.arange(len(seeds))
    return np.stack([P.backend.to_numpy(lay.merge(st.at(k, rows))) for k in range(steps)])


def _given():
    rng = np.random.default_rng(7)
    blocks = []
    for d in (3, 2, 3):
        A = rng.standard_normal((d, d))
        blocks.append(A @ A.T + d * np.eye(d))
    return quadlab.BlockQuadratic.from_blocks(blocks)


@pytest.mark.parametrize("rotation", ["block", "global", "none", "given"])
def test_the_square_root_factor_reproduces_H(rotation):
    P = _given() if rotation == "given" else problem(rotation)
    lay = Layout(P)
    st = noise.Stream(noise.NQM(batch=1), P, lay, np.array([0]))
    H = P.backend.to_numpy(P.dense())
    for (kind, F), idx in zip(st.factors, st.coords, strict=True):
        for j in range(idx.shape[0]):
            c = idx[j]
            A = np.diag(F[0, 0, c]) if kind == "diag" else F[j]
            Hb = H[np.ix_(c, c)]
            assert np.abs(A.T @ A - Hb).max() <= 50 * EPS * np.abs(Hb).max()


@pytest.mark.parametrize("rotation", ["block", "global"])
def test_nqm_covariance_is_scale_H_over_B_within_sampling_error(rotation):
    P = problem(rotation)
    B, scale, N = 8, 3.0, 6000
    X = _draws(P, noise.NQM(batch=B, scale=scale), [5], N)[:, 0, :]
    C = scale / B * P.backend.to_numpy(P.dense())
    emp = X.T @ X / N
    # entry (i, j) of a Gaussian sample covariance has variance (C_ii C_jj + C_ij²)/N
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / N)
    assert np.abs(emp - C).max() <= 5 * se.max()
    assert np.abs(X.mean(axis=0)).max() <= 5 * np.sqrt(np.diag(C).max() / N)


def test_heavy_tailed_noise_has_the_nqm_covariance_and_heavier_tails():
    P = problem("none")
    N = 20000
    model = noise.HeavyTailed(batch=2, df=5.0)
    X = _draws(P, model, [1], N)[:, 0, :]
    var = P.eigenvalues / 2
    z = X / np.sqrt(var)
    # unit variance per coordinate; Student-t(5) rescaled has excess kurtosis 6/(5−4) = 6
    assert np.abs(z.var(axis=0) - 1).max() < 0.15
    kurt = (z**4).mean() / (z**2).mean() ** 2 - 3
    assert kurt > 2.0
    g = _draws(P, noise.NQM(batch=2), [1], N)[:, 0, :] / np.sqrt(var)
    assert abs((g**4).mean() / (g**2).mean() ** 2 - 3) < 0.3
    np.testing.assert_allclose(model.direction_variance([2.0]), [1.0])


def test_isotropic_noise_is_sigma_times_the_unit_draws():
    P = problem("block")
    X = _draws(P, noise.Isotropic(0.25), [4], 3)[:, 0, :]
    rng = np.random.default_rng(np.random.SeedSequence([4, noise.STREAM_TAG]))
    np.testing.assert_array_equal(X, 0.25 * rng.standard_normal((3, P.n)))


def test_runs_with_one_seed_share_their_noise_and_seeds_differ():
    P = problem("block")
    X = _draws(P, noise.NQM(batch=4), [2, 7, 2], 5)
    np.testing.assert_array_equal(X[:, 0], X[:, 2])
    assert not np.allclose(X[:, 0], X[:, 1])
    # the noise stream is not the starting point's stream
    start = np.random.default_rng(2).standard_normal(P.n)
    assert not np.allclose(X[0, 0] / np.abs(X[0, 0]).max(), start / np.abs(start).max())


def test_the_draws_do_not_depend_on_the_chunking(monkeypatch):
    P = problem("block")
    a = _draws(P, noise.HeavyTailed(batch=4), [0, 3], 70)
    monkeypatch.setattr(noise.Stream, "budget", 1)  # one step per chunk
    b = _draws(P, noise.HeavyTailed(batch=4), [3, 0], 70)
    np.testing.assert_array_equal(a[:, [1, 0]], b)


FAMILIES = {
    "gd": lambda lr: optim.gd(lr=lr),
    "heavy_ball": lambda lr: optim.heavy_ball(lr=lr, momentum=0.8),
    "adam": lambda lr: optim.adam(lr=30 * np.asarray(lr), b1=0.9),
    "adam_mini": lambda lr: optim.adam_mini(lr=30 * np.asarray(lr)),
    "sign_descent": lambda lr: optim.sign_descent(lr=np.asarray(lr), momentum=0.5),
    "blockwise_gd": lambda lr: optim.blockwise_gd(lr=300 * np.asarray(lr)),
}


def _assert_same(batch, r, alone):
    for f in ("steps_to_tol", "stop_step", "status", "gap", "grad_norm"):
        x, y = np.asarray(getattr(batch, f))[r], np.asarray(getattr(alone, f))[0]
        same = np.array_equal(x, y) if x.dtype.kind in "iuUSO" else np.array_equal(x, y, equal_nan=True)
        assert same, f"{f} differs for run {r}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("rotation", ["block", "none"])
def test_a_noisy_run_is_the_same_alone_and_in_any_batch(family, rotation):
    P = problem(rotation)
    make = FAMILIES[family]
    lrs, seeds = [1e-4, 2e-3, 6e-3], [0, 3]
    model = noise.NQM(batch=16)
    batch = quadlab.run(P, make(lrs), seeds=seeds, steps=120, tol=1e-2, noise=model)
    assert batch.method == "iterate" and batch.noise == model.describe()
    for c, lr in enumerate(lrs):
        for j, s in enumerate(seeds):
            alone = quadlab.run(P, make([lr]), seeds=[s], steps=120, tol=1e-2, noise=model)
            _assert_same(batch, c * len(seeds) + j, alone)


@pytest.mark.parametrize("family", ["gd", "adam", "sign_descent"])
def test_noisy_runs_agree_on_numpy_in_place_functional_and_array_api_strict(family, monkeypatch):
    make = FAMILIES[family]
    model = noise.HeavyTailed(batch=8, df=4.0)
    kw = dict(seeds=[0, 1], steps=60, tol=1e-3, noise=model, record="all")
    fast = quadlab.run(problem("block"), make([1e-3, 4e-3]), **kw)
    strict = quadlab.run(problem("block", "array_api_strict"), make([1e-3, 4e-3]), **kw)
    monkeypatch.setattr(runner, "INPLACE", False)
    slow = quadlab.run(problem("block"), make([1e-3, 4e-3]), **kw)
    for r in range(4):
        _assert_same(fast, r, _one(slow, r))
    # array-api-strict runs the same operations in the same order without numba (quadlab._engine.ordered)
    for r in range(4):
        _assert_same(fast, r, _one(strict, r))


def _one(res, r):
    class V:
        pass
    v = V()
    for f in ("steps_to_tol", "stop_step", "status", "gap", "grad_norm"):
        setattr(v, f, np.asarray(getattr(res, f))[r:r + 1])
    return v


def test_float32_runs_take_the_noise_rounded_to_float32():
    res = quadlab.run(problem("block", dtype="float32"), optim.gd(lr=2e-3), seeds=[0], steps=30,
                      noise=noise.NQM(batch=4))
    assert res.dtype == "float32" and np.isfinite(res.gap).all()


def test_tolerance_and_records_use_the_true_gradient():
    # n = 1: f − f* = ½ h e² and ‖∇f‖ = h|e|, so ‖∇f‖² = 2h(f − f*) holds for the true gradient only
    P = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[4.0]]), rotation="none")
    res = quadlab.run(P, optim.gd(lr=0.05), seeds=[0, 1, 2], steps=80, record="all", noise=noise.Isotropic(3.0))
    ok = np.isfinite(res.gap)
    np.testing.assert_allclose(res.grad_norm[ok] ** 2, 8.0 * res.gap[ok], rtol=1e-12)
    # a run stops when its true gradient crosses: tol checked on the recorded true norms
    res = quadlab.run(P, optim.gd(lr=0.1), seeds=[0, 1, 2], steps=500, tol=0.05, record="all",
                      noise=noise.Isotropic(0.5))
    for r in range(3):
        k = res.steps_to_tol[r]
        if k >= 0:
            assert res.grad_norm[r, k] <= 0.05 * res.grad_norm[r, 0]
            assert (res.grad_norm[r, :k] > 0.05 * res.grad_norm[r, 0]).all()


def test_seeds_draw_the_noise_around_one_given_start():
    P = problem("none")
    w0 = np.ones(P.n)
    res = quadlab.run(P, optim.gd(lr=1e-3), w0=w0, seeds=[0, 1], steps=10, noise=noise.NQM(batch=1))
    np.testing.assert_array_equal(res.w0[0], res.w0[1])
    assert res.gap[0, -1] != res.gap[1, -1]


def test_noise_never_takes_the_closed_form_or_the_fused_step(monkeypatch):
    P = problem("block")
    with pytest.raises(ValueError, match="closed_form"):
        quadlab.run(P, optim.gd(lr=1e-3), method="closed_form", noise=noise.NQM(batch=2))
    assert quadlab.run(P, optim.gd(lr=1e-3), steps=5, noise=noise.NQM(batch=2)).method == "iterate"

    class FusedStepRan(Exception):
        pass

    def boom(*a, **k):
        raise FusedStepRan
    monkeypatch.setattr(kernels, "available", lambda: True)
    monkeypatch.setattr(scan, "ENABLED", False)  # exact gradients would otherwise run the whole loop compiled
    opt = optim.adam(lr=1e-2)
    fused = optim.Optimizer(opt.name, opt.hyper, opt.init, opt.update, opt.options, None, boom)
    with pytest.raises(FusedStepRan):  # exact gradients take the fused step...
        quadlab.run(P, fused, steps=5)
    quadlab.run(P, fused, steps=5, noise=noise.NQM(batch=2))  # ...noisy ones never do


@pytest.mark.parametrize("bad, match", [
    (lambda: noise.NQM(batch=0), "batch"),
    (lambda: noise.NQM(batch=2.5), "whole number"),
    (lambda: noise.NQM(batch=4, scale=-1), "scale"),
    (lambda: noise.NQM(batch=float("nan")), "batch"),
    (lambda: noise.NQM(batch="8"), "number"),
    (lambda: noise.Isotropic(0.0), "sigma"),
    (lambda: noise.HeavyTailed(batch=4, df=2.0), "df"),
    (lambda: quadlab.run(problem("none"), optim.gd(lr=1e-3), noise="nqm"), "quadlab.noise"),
])
def test_bad_noise_arguments_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_noisy_runs_on_every_backend_match_numpy_and_are_batch_independent(xp):
    # the noise is drawn and rotated on the host in float64, so every backend sees the same ξ_k
    kw = dict(seeds=[0, 2], steps=50, tol=1e-3, noise=noise.NQM(batch=8), record="all")
    ref = quadlab.run(problem("block"), optim.adam(lr=[0.01, 0.1]), **kw)
    res = quadlab.run(problem("block", xp), optim.adam(lr=[0.01, 0.1]), **kw)
    # every namespace runs the same IEEE operations in quadlab's fixed orders: the same bits
    for r in range(4):
        _assert_same(ref, r, _one(res, r))
    alone = quadlab.run(problem("block", xp), optim.adam(lr=[0.1]), **{**kw, "seeds": [2]})
    _assert_same(res, 3, alone)


@pytest.mark.parametrize("alpha", [1.3, 1.8, 2.0])
def test_alpha_stable_draws_have_the_stated_characteristic_function(alpha):
    model = noise.AlphaStable(batch=1, alpha=alpha)
    N = 40000
    x = model.draw(np.random.default_rng(0), (N,))
    for theta in (0.3, 1.0, 2.5):
        # E cos(θt) = exp(−|θ|^α / 2^{α/2}); a mean of N terms in [−1, 1] has standard error ≤ 1/√N
        want = np.exp(-abs(theta) ** alpha / 2 ** (alpha / 2))
        assert abs(np.cos(theta * x).mean() - want) <= 5 / np.sqrt(N)
    if alpha == 2.0:  # exactly the NQM's standard normal: variance 1, the closed forms apply
        assert abs(x.var() - 1) < 0.05
        np.testing.assert_allclose(model.direction_variance([3.0]), [3.0])
    else:
        with pytest.raises(ValueError, match="infinite variance"):
            quadlab.nqm.expected_loss(np.array([1.0, 2.0]), 0.1, noise=model)


def test_alpha_stable_runs_are_batch_independent_and_chunk_free(monkeypatch):
    P = problem("block")
    model = noise.AlphaStable(batch=16, alpha=1.5)
    a = _draws(P, model, [1, 4], 30)
    monkeypatch.setattr(noise.Stream, "budget", 1)
    np.testing.assert_array_equal(_draws(P, model, [1, 4], 30), a)
    batch = quadlab.run(P, optim.gd(lr=[1e-3, 4e-3]), seeds=[1, 4], steps=60, noise=model)
    alone = quadlab.run(P, optim.gd(lr=[4e-3]), seeds=[4], steps=60, noise=model)
    _assert_same(batch, 3, alone)


@pytest.mark.parametrize("alpha", [1.0, 2.5, float("inf")])
def test_alpha_outside_one_two_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        noise.AlphaStable(batch=4, alpha=alpha)
