"""quadlab.theory: constants against brute force, bad input, and the theory's claims as properties."""

import importlib.util

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import quadlab
from quadlab import theory
from strategies import Case, cases, iterate_diag_precond, property_settings

EPS = np.finfo(np.float64).eps


def _slack(n, kappa):
    """Relative tolerance for computed gap ratios: 4·n^{3/2}·κ·eps (see quadlab.checks)."""
    return 4.0 * n**1.5 * kappa * EPS


def _hetero(xp="numpy", rotation="block", seed=0):
    return quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(5000), rotation=rotation, seed=seed, xp=xp)


def _brute_adam(problem, w0):
    """D, M and the theorem's constants straight from the dense matrix (numpy, float64)."""
    H = problem.backend.to_numpy(problem.dense()).astype(np.float64)
    g = np.abs(H @ (w0 - problem.optimum_host))
    Mfull = H / np.sqrt(np.outer(g, g))
    slices = problem.block_slices if problem.is_block_diagonal else (slice(0, problem.n),)
    lmax = np.array([np.linalg.eigvalsh(H[s, s]).max() for s in slices])
    lmin = np.array([np.linalg.eigvalsh(H[s, s]).min() for s in slices])
    C1 = np.array([g[s].min() for s in slices]) / lmax
    C2 = np.array([g[s].max() for s in slices]) / lmax
    eta = C1.min()
    mu = np.linalg.eigvalsh(Mfull)
    return dict(C1=C1, C2=C2, eta=eta, r=C2.max() / eta, kl=lmax / lmin, rho=np.abs(1 - eta * mu).max(), mu=mu)


# -- GD -------------------------------------------------------------------------------------------
def test_gd_rates_match_brute_force(xp):
    p = _hetero(xp)
    lam = p.eigenvalues
    lrs = np.array([1e-5, 2.0 / (1 + 5000), 3.9e-4, 5e-4])
    g = theory.gd_rates(p, lr=lrs)
    brute = np.abs(1 - lrs[:, None] * lam[None, :]).max(axis=1)
    np.testing.assert_allclose(g.rho, brute, rtol=1e-15)
    np.testing.assert_allclose(g.rate, brute**2, rtol=1e-15)
    assert g.best_lr == pytest.approx(2 / 5001, rel=1e-15)
    assert g.best_rho == pytest.approx(4999 / 5001, rel=1e-15)
    assert g.lower_rate == g.best_rate
    assert list(g.stable) == [True, True, True, False]
    assert (np.asarray(g.rho) >= g.lower_rho - 1e-15).all()
    assert theory.gd_rates(p).lr == g.best_lr


def test_gd_worst_start_meets_lower_bound_exactly(xp):
    p = quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(5000), rotation="block", optimum="random",
                               seed=3, xp=xp)
    w0 = theory.gd_worst_start(p, gap=2.0)
    assert float(p.gap(p.backend.asarray(w0))) == pytest.approx(2.0, rel=1e-12)
    g = theory.gd_rates(p)
    for lr in (1e-5, g.best_lr, 3e-4):
        gaps = iterate_diag_precond(p, w0, lr, 200)
        k = np.arange(201)
        want = 1.0 * ((1 - lr) ** (2 * k) + (1 - lr * 5000) ** (2 * k))  # (gap/2)·Σ over the two modes
        np.testing.assert_allclose(gaps, want, rtol=1e-9)
        assert (gaps >= g.lower_rate**k * (1 - 1e-9)).all()


# -- Adam theory form ----------------------------------------------------------------------------
@pytest.mark.parametrize("rotation", ["block", "none", "global"])
def test_adam_constants_match_brute_force(xp, rotation):
    p = _hetero(xp, rotation)
    w0 = np.random.default_rng(7).standard_normal(p.n)
    c = theory.adam_constants(p, w0)
    b = _brute_adam(p, w0)
    np.testing.assert_allclose(c.C1, b["C1"], rtol=1e-12)
    np.testing.assert_allclose(c.C2, b["C2"], rtol=1e-12)
    assert c.eta == pytest.approx(b["eta"], rel=1e-12)
    assert c.r_tilde == pytest.approx(b["r"], rel=1e-12)
    assert c.r_paper == pytest.approx(b["r"] ** 2, rel=1e-12)
    np.testing.assert_allclose(c.block_kappas, b["kl"], rtol=1e-9)
    assert c.rho_exact == pytest.approx(b["rho"], rel=1e-10)
    assert c.rate_exact == pytest.approx(b["rho"] ** 2, rel=1e-10)
    bound = max((1 - 1 / (b["r"] * k)) ** 2 for k in b["kl"])
    assert c.bound == pytest.approx(bound, rel=1e-12)
    assert c.bound_linear == pytest.approx(np.sqrt(bound), rel=1e-12)
    assert c.bound_paper == pytest.approx(max(1 - 1 / (b["r"] ** 2 * k) for k in b["kl"]), rel=1e-12)
    assert c.rate_exact <= c.bound
    assert c.favours_adam == bool(b["r"] * b["kl"].max() <= p.kappa)
    assert c.n_blocks == (1 if rotation == "global" else 3)
    mu = b["mu"]
    assert c.best_lr == pytest.approx(2 / (mu.min() + mu.max()), rel=1e-10)
    assert c.rate(c.eta) == pytest.approx(c.rate_exact, rel=1e-14)
    assert c.bound_at(c.eta) == pytest.approx(c.bound, rel=1e-12)


def test_adam_constants_batch_equals_single():
    p = _hetero()
    W = np.random.default_rng(1).standard_normal((5, p.n))
    cb = theory.adam_constants(p, W)
    for r in range(5):
        c = theory.adam_constants(p, W[r])
        # a batched matmul may round g0 differently from a single one
        assert cb.r_tilde[r] == pytest.approx(c.r_tilde, rel=1e-13)
        assert cb.eta[r] == pytest.approx(c.eta, rel=1e-13)
        assert cb.rate_exact[r] == pytest.approx(c.rate_exact, rel=1e-14)
    lite = theory.adam_constants(p, W, exact_rates=False)
    np.testing.assert_array_equal(lite.r_tilde, cb.r_tilde)
    assert np.isnan(lite.rate_exact).all()
    with pytest.raises(ValueError, match="exact_rates=False"):
        lite.rate(1e-3)
    with pytest.warns(DeprecationWarning, match="exact_rates"):  # the old keyword still works
        old = theory.adam_constants(p, W, spectra=False)
    np.testing.assert_array_equal(old.r_tilde, cb.r_tilde)
    assert np.isnan(old.rate_exact).all()


def test_adam_bound_at_smaller_steps_and_rejects_longer():
    p = _hetero()
    c = theory.adam_constants(p, np.random.default_rng(2).standard_normal(p.n))
    for f in (0.1, 0.5, 1.0):
        assert c.rate(f * c.eta) <= c.bound_at(f * c.eta) + 1e-15
    assert c.bound_at(0.5 * c.eta) > c.bound
    with pytest.raises(ValueError, match="exceeds the theorem's step"):
        c.bound_at(1.01 * c.eta)


def test_zero_gradient_entry_is_refused_with_a_way_out(xp):
    p = quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(5000), rotation="none", xp=xp)
    w0 = np.ones(p.n)
    w0[4] = 0.0  # H diagonal: g0_4 = λ_4·0
    with pytest.raises(ValueError, match=r"zero entr.*coordinate 4.*perturb_start"):
        theory.adam_constants(p, w0)
    W = np.stack([np.ones(p.n), w0])
    with pytest.raises(ValueError, match="row 1"):
        theory.adam_constants(p, W)
    w1 = theory.perturb_start(p, w0, seed=0)
    assert np.abs(w1 - w0).max() < 1e-4
    c = theory.adam_constants(p, w1)
    assert c.rate_exact <= c.bound
    with pytest.raises(ValueError, match="zero entr"):
        theory.adam_constants(p, p.optimum_host)  # w0 = w*: g0 = 0 everywhere


def test_bad_inputs_name_the_problem():
    p = _hetero()
    with pytest.raises(ValueError, match="shape"):
        theory.adam_constants(p, np.ones(p.n + 1))
    with pytest.raises(ValueError, match="non-finite"):
        theory.adam_constants(p, np.full(p.n, np.nan))
    with pytest.raises(ValueError, match="lr must be finite and > 0"):
        theory.gd_rates(p, lr=-1.0)
    with pytest.raises(ValueError, match="source must be one of"):
        theory.gd_rates(p, source="guess")
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        theory.gd_rates(p, extremes=[[1, 2]])
    with pytest.raises(ValueError, match="0 < λ_min <= λ_max"):
        theory.gd_rates(p, extremes=[[1, 3], [101, 99], [4998, 5000]])
    with pytest.raises(ValueError, match="momentum"):
        theory.heavy_ball_rho(p, 1e-3, -0.5)
    with pytest.raises(ValueError, match="gap"):
        theory.gd_worst_start(p, gap=0.0)


def test_given_extremes_drive_the_constants():
    p = _hetero()
    w0 = np.random.default_rng(4).standard_normal(p.n)
    exact = theory.adam_constants(p, w0)
    # a looser estimate (λ_max 10% high) shortens the step and loosens the bound, never the reverse
    ex = np.asarray(theory.block_extremes(p)) * np.array([1.0, 1.1])
    c = theory.adam_constants(p, w0, extremes=ex)
    assert c.source == "given"
    assert c.eta == pytest.approx(exact.eta / 1.1, rel=1e-12)
    assert c.rate_exact <= c.bound
    g = theory.gd_rates(p, extremes=ex)
    assert g.lambda_max == pytest.approx(5500.0)


def test_lanczos_source():
    p = _hetero()
    if importlib.util.find_spec("quadlab.lanczos") is None:
        with pytest.raises(ValueError, match="quadlab.lanczos"):
            theory.block_extremes(p, source="lanczos")
    else:
        ex = np.asarray(theory.block_extremes(p, source="lanczos"))
        exact = np.asarray(theory.block_extremes(p))
        np.testing.assert_allclose(ex, exact, rtol=0.05)
        assert (ex[:, 0] <= exact[:, 0]).all() and (ex[:, 1] >= exact[:, 1]).all()  # widened, safe side
        w0 = np.random.default_rng(0).standard_normal(p.n)
        c = theory.adam_constants(p, w0, source="lanczos")
        assert c.source == "lanczos" and c.eta <= theory.adam_constants(p, w0).eta
        assert c.rate_exact <= c.bound
    # rotated globally, the theorem's one block is all of H: Lanczos on H brackets its exact extremes
    g = _hetero(rotation="global")
    ex = np.asarray(theory.block_extremes(g, source="lanczos"))
    exact = np.asarray(theory.block_extremes(g))
    assert ex.shape == exact.shape == (1, 2)
    assert ex[0, 0] <= exact[0, 0] and ex[0, 1] >= exact[0, 1]
    np.testing.assert_allclose(ex, exact, rtol=0.05)


# -- heavy ball, Nesterov ------------------------------------------------------------------------
def _companion_brute(lam, a_of, b_of):
    return max(np.abs(np.linalg.eigvals(np.array([[a_of(l), b_of(l)], [1.0, 0.0]]))).max() for l in lam)


def test_heavy_ball_and_nesterov_radii_match_companion_matrices():
    p = _hetero()
    hb = theory.heavy_ball_optimum(p)
    sk = np.sqrt(5000.0)
    assert hb.rho == pytest.approx((sk - 1) / (sk + 1), rel=1e-15)
    assert hb.lr == pytest.approx(4 / (1 + sk) ** 2, rel=1e-15)
    # at the optimum both extremes have a double root: the radius is computed to about √eps
    assert theory.heavy_ball_rho(p, hb.lr, hb.momentum) == pytest.approx(hb.rho, rel=1e-7)
    for lr, mu in [(1e-4, 0.9), (3e-4, 0.5), (5e-4, 0.0)]:
        want = _companion_brute(p.eigenvalues, lambda l, mu=mu, lr=lr: 1 + mu - lr * l, lambda l, mu=mu: -mu)
        assert theory.heavy_ball_rho(p, lr, mu) == pytest.approx(want, rel=1e-12)
        want = _companion_brute(p.eigenvalues, lambda l, mu=mu, lr=lr: (1 + mu) * (1 - lr * l),
                                   lambda l, mu=mu, lr=lr: -mu * (1 - lr * l))
        assert theory.nesterov_rho(p, lr, mu) == pytest.approx(want, rel=1e-12)
    grid = theory.heavy_ball_rho(p, np.array([1e-4, 3e-4]), np.array([[0.9], [0.5]]))
    assert grid.shape == (2, 2)


def test_iterations_and_speedup():
    assert theory.iterations_to(0.5, 1e-6) == pytest.approx(np.log(1e6) / np.log(2))
    assert theory.iterations_to(1.0) == np.inf
    assert theory.speedup(0.99, 0.9) == pytest.approx(np.log(0.9) / np.log(0.99))
    with pytest.raises(ValueError):
        theory.speedup(1.2, 0.9)


def test_r_statistics_summarise_batches():
    p = _hetero()
    s = theory.r_statistics(p, n_starts=200, seed=0, threshold=1000.0)
    assert s.n_starts == 200 and s.r_tilde.shape == (200,)
    np.testing.assert_allclose(s.r_paper, s.r_tilde**2)
    assert s.share_paper_below == pytest.approx(np.mean(s.r_paper <= 1000.0))
    assert s.share_tilde_below >= s.share_paper_below
    assert (s.speedup_bound > 0).all() and (s.speedup_exact >= s.speedup_bound * (1 - 1e-9)).all()
    again = theory.r_statistics(p, n_starts=200, seed=0, threshold=1000.0)
    np.testing.assert_array_equal(again.r_tilde, s.r_tilde)


# -- properties ----------------------------------------------------------------------------------
@property_settings(200)
@given(cases())
def test_adam_theory_form_never_slower_than_its_bound(case: Case):
    """observed per-step gap factor ≤ exact ρ² ≤ the theorem's bound, at every step, through quadlab.run."""
    p = case.problem()
    w0 = case.start(p)
    c = theory.adam_constants(p, w0)
    tol = _slack(p.n, float(np.max(c.mu_max) / np.min(c.mu_min)))
    assert c.rate_exact <= c.bound * (1 + 1e-12) + 4 * p.n * EPS
    assert c.bound <= c.bound_paper**2 * (1 + 1e-12)  # r_paper = r̃² ≥ r̃ only loosens the bound
    # quadlab.run's lr="theorem" takes C_{l,1} over the nominal blocks even for rotation="global", where H is
    # not block diagonal and the theorem holds only with the whole H as one block: pass that step explicitly.
    opt = quadlab.optim.adam_theory() if p.is_block_diagonal else quadlab.optim.adam_theory(lr=c.eta)
    res = quadlab.run(p, opt, w0=w0, steps=40, record="all", method="iterate")
    gap = res.gap[0]
    ok = np.isfinite(gap) & (gap > 1e-250)
    ratios = gap[1:][ok[1:] & ok[:-1]] / gap[:-1][ok[1:] & ok[:-1]]
    assert (ratios <= c.rate_exact * (1 + tol) + tol).all(), (ratios.max(), c.rate_exact)


@property_settings(150)
@given(cases())
def test_gd_at_its_best_step_meets_its_rate(case: Case):
    p = case.problem()
    g = theory.gd_rates(p)
    res = quadlab.run(p, quadlab.optim.gd(lr="optimal"), w0=case.start(p), steps=40, record="all",
                      method="iterate")
    gap = res.gap[0]
    tol = _slack(p.n, g.kappa)
    k = res.steps
    # rounding adds a relative tol per step (it keeps the gap off 0 when κ = 1 and the rate is 0)
    assert (gap <= gap[0] * (g.best_rate * (1 + tol) + tol) ** k + 1e-300).all()
    ok = gap > 1e-250
    ratios = gap[1:][ok[1:]] / gap[:-1][ok[1:]]
    assert (ratios <= g.best_rate * (1 + tol) + tol).all()


@property_settings(150)
@given(cases(min_n=2), st.floats(0.01, 1.2))
def test_gd_from_the_worst_start_never_beats_the_lower_bound(case: Case, frac: float):
    """For any step η (here η = frac·2/λ_max, stable or not), the gap from gd_worst_start stays above
    (gap0/2)·((κ−1)/(κ+1))^{2k}; so asymptotically GD cannot beat (1 − 2/(κ+1))² per step."""
    p = case.problem()
    g = theory.gd_rates(p)
    lr = frac * g.lr_stable
    w0 = theory.gd_worst_start(p)
    res = quadlab.run(p, quadlab.optim.gd(lr=lr), w0=w0, steps=40, record="all", method="iterate")
    gap = res.gap[0]
    ok = np.isfinite(gap)
    k = res.steps[ok]
    floor = 0.5 * gap[0] * g.lower_rate**k
    assert (gap[ok] >= floor * (1 - _slack(p.n, g.kappa) * (k + 1)) - 1e-300).all()
    # the exact contraction at this step is never below the lower bound either
    assert g.lower_rho <= theory.gd_rates(p, lr=lr).rho * (1 + 4 * EPS)


def _rotated(problem, Q):
    """The same quadratic in the basis Q: H' = QHQᵀ as one block, w*' = Qw*."""
    H = problem.backend.to_numpy(problem.dense()).astype(np.float64)
    return quadlab.BlockQuadratic.from_blocks([Q @ H @ Q.T], optimum=Q @ problem.optimum_host)


@property_settings(100)
@given(cases(rotations=("none", "block"), min_n=2, min_log10_kappa=1.0), st.integers(0, 2**16))
def test_gd_is_rotation_invariant_and_adam_theory_form_is_not(case: Case, qseed: int):
    p = case.problem()
    Q, _ = np.linalg.qr(np.random.default_rng(qseed).standard_normal((p.n, p.n)))
    pr = _rotated(p, Q)
    w0 = case.start(p)
    w0r = pr.optimum_host + Q @ (w0 - p.optimum_host)
    lr = theory.gd_rates(p).best_lr
    a = quadlab.run(p, quadlab.optim.gd(lr=lr), w0=w0, steps=25, record="all", method="iterate").gap[0]
    b = quadlab.run(pr, quadlab.optim.gd(lr=lr), w0=w0r, steps=25, record="all", method="iterate").gap[0]
    ok = a > 1e-250
    np.testing.assert_allclose(b[ok], a[ok], rtol=_slack(p.n, p.kappa) * 25 + 1e-10)
    ca, cb = theory.adam_constants(p, w0), theory.adam_constants(pr, w0r)
    assert abs(ca.rate_exact - cb.rate_exact) > 1e-9 * max(1 - ca.rate_exact, 1e-300)


@property_settings(100)
@given(cases(rotations=("none", "block"), optimum=False, max_blocks=4), st.randoms(use_true_random=False))
def test_adam_rate_does_not_depend_on_block_order(case: Case, rnd):
    p = case.problem()
    L = p.spectrum.n_blocks
    order = list(range(L))
    rnd.shuffle(order)
    blocks = [p.backend.to_numpy(p.block(l)) for l in range(L)]
    w0 = case.start(p)
    parts = [w0[s] for s in p.block_slices]
    pp = quadlab.BlockQuadratic.from_blocks([blocks[l] for l in order])
    w0p = np.concatenate([parts[l] for l in order])
    c, cp = theory.adam_constants(p, w0), theory.adam_constants(pp, w0p)
    assert cp.r_tilde == pytest.approx(c.r_tilde, rel=1e-12)
    assert cp.eta == pytest.approx(c.eta, rel=1e-12)
    assert cp.bound == pytest.approx(c.bound, rel=1e-9, abs=1e-15)
    assert cp.rate_exact == pytest.approx(c.rate_exact, rel=1e-9, abs=1e-15)
    a = quadlab.run(p, quadlab.optim.adam_theory(), w0=w0, steps=20, record="all", method="iterate").gap[0]
    b = quadlab.run(pp, quadlab.optim.adam_theory(), w0=w0p, steps=20, record="all", method="iterate").gap[0]
    ok = a > 1e-250
    np.testing.assert_allclose(b[ok], a[ok], rtol=1e-9)
