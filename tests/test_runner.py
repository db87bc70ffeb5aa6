"""The batched runner and the closed form against a plain one-run-at-a-time numpy loop."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quadlab
from quadlab import optim, rules, spectra
from quadlab.problem import BlockQuadratic

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise

U = 2.0**-53  # the unit roundoff of float64


def gamma(m: int) -> float:
    """γ_m = m·u/(1 − m·u): any order of summing m terms t_i (or of a dot product of length m) is within
    γ_m·Σ|t_i| of the exact sum (Higham, Accuracy and Stability of Numerical Algorithms, §3.1)."""
    return m * U / (1 - m * U)


def mixed_problem(rotation="block", seed=0, xp="numpy", optimum="random"):
    # sizes 5, 3, 5, 2: two size groups, not contiguous, so the layout permutes
    spec = quadlab.BlockSpectrum.from_blocks(
        [spectra.log_uniform(5, 1, 20), spectra.uniform(3, 50, 80), spectra.log_uniform(5, 200, 1000), [5.0, 9.0]]
    )
    return BlockQuadratic(spec, rotation=rotation, optimum=optimum, seed=seed, xp=xp)


def reference(prob, w0, name, hp, steps, block_steps=None):
    """Textbook single-run loop (the spec in docs/THEORY.md §2, written as plainly as possible).

    Gradients come from the problem one point at a time: Adam with β1 = 0 is close to sign descent and
    amplifies any change in the rounding of H·e, so both sides must form H·e the same way."""
    H = np.asarray(prob.dense())
    ws = prob.optimum_host
    blocks = prob.block_slices
    w = w0.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    g0 = np.asarray(prob.grad(w))
    gaps, gn, absdot = [], [], []
    for t in range(steps + 1):
        if not np.isfinite(w).all():
            gaps.append(np.nan), gn.append(np.nan), absdot.append(np.nan)
            continue
        e = w - ws
        g = np.asarray(prob.grad(w))
        gaps.append(0.5 * e @ g)
        gn.append(np.linalg.norm(g))
        absdot.append(0.5 * np.abs(e) @ np.abs(g))  # ½Σ|e_i g_i|: the gap sum's condition number's numerator
        if t == steps:
            break
        k = t + 1
        if name == "gd":
            w = w - hp["lr"] * g
        elif name == "heavy_ball":
            m = hp["momentum"] * m + g
            w = w - hp["lr"] * m
        elif name == "nesterov":
            m = hp["momentum"] * m + g
            w = w - hp["lr"] * (g + hp["momentum"] * m)
        elif name == "jacobi_gd":
            w = w - hp["lr"] * g / np.diag(H)
        elif name == "adam_theory":
            w = w - hp["lr"] * g / np.abs(g0)
        elif name == "blockwise_gd":
            w = w - hp["lr"] * np.repeat(block_steps, [s.stop - s.start for s in blocks]) * g
        elif name in ("adam", "rmsprop", "adam_mini"):
            b1, b2, eps = hp.get("b1", 0.0), hp["b2"], hp["eps"]
            m = b1 * m + (1 - b1) * g
            if name == "adam_mini":
                g2 = np.concatenate([np.full(s.stop - s.start, np.mean(g[s] ** 2)) for s in blocks])
            else:
                g2 = g * g
            v = b2 * v + (1 - b2) * g2
            if hp["bc"]:
                mh, vh = m / (1 - b1**k), v / (1 - b2**k)
            else:
                mh, vh = m, v
            w = w - hp["lr"] * mh / (np.sqrt(vh) + eps)
    return np.array(gaps), np.array(gn), np.array(absdot)


CASES = [
    optim.gd(lr=[1e-3, 1.5e-3]),
    optim.heavy_ball(lr=[2e-4, 1e-3], momentum=[0.5, 0.9]),
    optim.nesterov(lr=[5e-4], momentum=[0.8]),
    optim.jacobi_gd(lr=[0.2, 0.4]),
    optim.adam_theory(lr=[1e-3, 5e-3]),
    optim.blockwise_gd(lr=[0.5, 1.0]),
    optim.adam(lr=[1e-3, 1e-2], b1=[0.9, 0.99]),
    optim.adam(lr=1e-2, bias_correction=False),
    optim.adam_mini(lr=[1e-3, 1e-2]),
    # β1 = 0 over the full 1000 steps, at steps small enough that no coordinate starts oscillating about
    # its optimum within them (see SIGN_LIKE)
    optim.adam(lr=[1e-4, 1e-3], b1=0.0),
    optim.rmsprop(lr=1e-4),
]
# With β1 = 0, Adam near the optimum is close to sign descent, which amplifies last-bit differences in
# H·e (batched and single-row matmuls round differently) by roughly e^{0.02 k}; at these larger steps
# RMSprop reaches that regime after 400-800 steps, so these are compared over the first 100 steps only,
# where the amplification is still below 1e4.
SIGN_LIKE = [optim.adam(lr=[1e-3, 3e-3], b1=0.0), optim.rmsprop(lr=[1e-3, 2e-3])]
STEPS = {id(o): 1000 for o in CASES} | {id(o): 100 for o in SIGN_LIKE}


#: roundings per coordinate and step in the longer of the two update chains (Adam's textbook form: β1·m,
#: (1−β1)·g, +, β2·v, g·g, (1−β2)·g², +, m/(1−β1^k), v/(1−β2^k), √, +ε, η·m̂, /), counted for both loops
C_STEP = 2 * 13
N = 15  # coordinates of the problem: the length of every sum in the recorded values (and of a global rotation's rows)


@pytest.mark.parametrize("opt", CASES + SIGN_LIKE, ids=lambda o: f"{o.name}-{o.options.get('bias_correction', '')}")
@pytest.mark.parametrize("rotation", ["block", "global"])
def test_iterate_matches_single_run_loop(opt, rotation):
    # w* = 0: the loop then computes e = w − w* without the cancellation that would otherwise limit it
    prob = mixed_problem(rotation, optimum=None)
    steps = STEPS[id(opt)]
    res = quadlab.run(prob, opt, seeds=[3, 4], steps=steps, method="iterate", record="all")
    # the oracle acts on the diagonal blocks H[s, s] of H as stored (mixed blocks under a global rotation):
    # eigvalsh is backward stable, so each extreme eigenvalue here is within about d·u·λ_max of the runner's
    # (the prescribed λ on a block rotation, which the stored fl(QΛQᵀ) moves by as much again), and
    # η = 2/(λ_min + λ_max) agrees to 4·d·u relative (d ≤ 5 per block).  The loop then takes the runner's own
    # steps: an ulp of η grows by k·|ημ/(1 − ημ)| over k steps, which is not what this test is about.
    H = np.asarray(prob.dense())
    ev = [np.linalg.eigvalsh(H[s, s]) for s in prob.block_slices]
    block_steps = rules.oracle_block_lrs(prob, "exact")
    np.testing.assert_allclose(block_steps, [2 / (e[0] + e[-1]) for e in ev], rtol=4 * 5 * U, atol=0)
    # The bound on |run − loop| at step k.  Both loops form H·e by problem.grad's fixed-order product, so equal
    # iterates give equal gradients; they differ (a) in rounding the update (the textbook formula against the
    # runner's stored form) and (b) in the recorded sums (the loop's BLAS e @ g and np.linalg.norm, whose order
    # depends on the machine, against the runner's fixed order), each over N = 15 terms.
    # (a) First order, one step's roundings perturb the new iterate by at most C_STEP·u relative, and these
    # iterations carry a perturbation forward without amplifying it relative to the iterate (each mode of the
    # linear methods contracts at its own rate |1 − ημ| ≤ 1; momentum and Adam at the steps chosen here; the
    # sign-like runs, which amplify, stop at 100 steps, SIGN_LIKE): after k steps e and ∇f differ by at most
    # (k + 1)·C_STEP·u relative, and f − f* = ½eᵀ∇f by twice that.
    # (b) Two orders of one sum differ by at most 2γ_N·Σ|t_i|: for f − f* that is 2γ_N·cond_k relative, with
    # cond_k = Σ|e_i g_i| / |Σ e_i g_i| ≥ 1 the condition number of the sum (computed by the loop); ‖∇f‖² sums
    # non-negative terms (cond = 1) and its square root halves that, plus one rounding.
    ks = np.arange(steps + 1)
    for r in range(res.n_runs):
        hp = {k: v[r] for k, v in res.config.items()}
        hp.setdefault("b2", 1.0)
        hp.setdefault("eps", 0.0)
        hp["bc"] = opt.options.get("bias_correction", True)
        with np.errstate(all="ignore"):  # the runs that blow up overflow in the reference too
            gaps, gn, absdot = reference(prob, res.w0[r], opt.name, hp, steps, block_steps)
        with np.errstate(all="ignore"):
            blew_up = ~np.isfinite(gn) | (gn > 1e6 * gn[0])
        if blew_up.any():  # e.g. the block oracle on a globally rotated H: the runner must flag it
            assert res.status[r] == "diverged" and res.stop_step[r] == np.argmax(blew_up)
            continue
        assert res.status[r] == "max_steps"
        cond = absdot / np.abs(gaps)
        gap_bound = (2 * (ks + 1) * C_STEP * U + 2 * gamma(N) * cond) * np.abs(gaps)
        gn_bound = ((ks + 1) * C_STEP * U + gamma(N) + U) * gn
        assert (np.abs(res.gap[r] - gaps) <= gap_bound).all(), np.max(np.abs(res.gap[r] - gaps) / gap_bound)
        assert (np.abs(res.grad_norm[r] - gn) <= gn_bound).all(), np.max(np.abs(res.grad_norm[r] - gn) / gn_bound)


ADAPTIVE = [
    optim.adam(lr=[1e-3, 1e-2], b1=[0.0, 0.9]),  # per-run β1 (one arithmetic form with the shared case)
    optim.adam(lr=[1e-3, 1e-2]),  # shared β1
    optim.adam(lr=[1e-3, 1e-2], b2=[0.99, 0.999], eps=[0.0, 1e-8], bias_correction=False),
    optim.rmsprop(lr=[1e-3, 2e-3]),  # β1 = 0: no first moment
    optim.adam_mini(lr=[1e-3, 1e-2]),
]


@pytest.mark.parametrize("opt", CASES + ADAPTIVE, ids=lambda o: o.name)
@pytest.mark.parametrize("rotation", ["block", "global", "none"])
def test_numpy_in_place_path_is_bit_identical_to_the_functional_path(opt, rotation, monkeypatch):
    # numpy updates its arrays in place (out=, scratch buffers); every other namespace takes the functional
    # path.  Both must apply the same operations in the same order, so the results agree to the last bit.
    prob = mixed_problem(rotation)
    kw = dict(seeds=[1, 2], steps=300, method="iterate", record="all", tol=1e-2)  # runs stop at different steps
    a = quadlab.run(prob, opt, **kw)
    monkeypatch.setattr(quadlab.runner, "INPLACE", False)
    b = quadlab.run(prob, opt, **kw)
    np.testing.assert_array_equal(a.gap, b.gap)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    np.testing.assert_array_equal(a.stop_step, b.stop_step)


def test_run_layout_of_configs_and_seeds():
    prob = mixed_problem()
    res = quadlab.run(prob, optim.adam(lr=[1e-3, 1e-2], b1=[0.0, 0.9]), seeds=[7, 8, 9], steps=5)
    assert res.n_runs == 12
    np.testing.assert_array_equal(res.config["seed"], np.tile([7, 8, 9], 4))
    np.testing.assert_array_equal(res.config["lr"], np.repeat([1e-3, 1e-3, 1e-2, 1e-2], 3))
    np.testing.assert_array_equal(res.config["b1"], np.repeat([0.0, 0.9, 0.0, 0.9], 3))
    np.testing.assert_array_equal(res.w0[0], res.w0[3])
    np.testing.assert_allclose(res.w0[0] - prob.optimum_host, np.random.default_rng(7).standard_normal(prob.n))
    assert res.gap.shape == (12, res.steps.size) and res.steps[0] == 0 and res.steps[-1] == 5


LINEAR = st.sampled_from(["gd", "heavy_ball", "nesterov", "jacobi_gd", "adam_theory", "blockwise_gd"])


def _linear_opt(name, scale, mom):
    # learning rates as a fraction of each method's stability limit, so runs span slow to oscillating
    if name == "gd":
        return optim.gd(lr=scale * 2 / 1000)
    if name == "heavy_ball":
        return optim.heavy_ball(lr=scale * 2 * (1 + mom) / 1000, momentum=mom)
    if name == "nesterov":
        return optim.nesterov(lr=scale * 2 * (1 + mom) / (1 + 2 * mom) / 1000, momentum=mom)
    if name == "jacobi_gd":
        return optim.jacobi_gd(lr=scale * 0.3)
    if name == "adam_theory":
        return optim.adam_theory(lr="theorem") if scale > 0.9 else optim.adam_theory(lr=scale * 1e-2)
    return optim.blockwise_gd(lr=scale)


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=LINEAR,
    rotation=st.sampled_from(["block", "none", "global"]),
    scale=st.floats(0.05, 0.99),
    mom=st.floats(0.0, 0.99),
    seed=st.integers(0, 1000),
)
def test_closed_form_agrees_with_iteration(name, rotation, scale, mom, seed):
    prob = mixed_problem(rotation, seed=seed)
    opt = _linear_opt(name, scale, mom)
    kw = dict(seeds=[seed], steps=1500, record=np.unique(np.geomspace(1, 1500, 60).astype(int)))
    a = quadlab.run(prob, opt, method="iterate", **kw)
    b = quadlab.run(prob, opt, method="closed_form", **kw)
    assert b.method == "closed_form" and a.method == "iterate"
    np.testing.assert_array_equal(a.status, b.status)
    for x, y in ((a.gap, b.gap), (a.grad_norm, b.grad_norm)):
        big = np.isfinite(x) & (np.abs(x) > 1e-250)
        np.testing.assert_allclose(y[big], x[big], rtol=1e-10, atol=0)


def test_closed_form_is_picked_automatically_and_can_be_refused():
    prob = mixed_problem()
    assert quadlab.run(prob, optim.gd(lr=1e-3), steps=10).method == "closed_form"
    assert quadlab.run(prob, optim.gd(lr=1e-3), steps=10, method="iterate").method == "iterate"
    assert quadlab.run(prob, optim.adam(lr=1e-3), steps=10).method == "iterate"
    with pytest.raises(ValueError, match="adam is not linear .* no closed form"):
        quadlab.run(prob, optim.adam(lr=1e-3), steps=10, method="closed_form")


@pytest.mark.parametrize("method", ["iterate", "closed_form"])
def test_tolerance_stops_at_the_first_step_below_it(method):
    prob = mixed_problem(optimum=None)
    res = quadlab.run(prob, optim.gd(lr=[1e-4, 1e-3, 1.9e-3]), steps=30000, tol=1e-6, method=method)
    full = quadlab.run(prob, optim.gd(lr=[1e-4, 1e-3, 1.9e-3]), steps=30000, method="iterate", record="all")
    for r in range(3):
        below = np.flatnonzero(full.grad_norm[r] <= 1e-6 * full.grad_norm[r, 0])
        if below.size:
            assert res.status[r] == "converged" and res.steps_to_tol[r] == below[0]
            assert np.isnan(res.grad_norm[r, res.steps > below[0]]).all()
        else:
            assert res.status[r] == "max_steps" and res.steps_to_tol[r] == -1


@pytest.mark.parametrize("path", ["numpy", "scan", "gpu_scan"])
def test_the_threshold_is_tol_times_the_recorded_first_gradient_norm(path, monkeypatch):
    """One definition of the thresholds (runargs.thresholds: ‖∇f(w_0)‖ summed in rowdot's fixed order), so that
    in float64 tol·‖∇f(w_0)‖ is exactly tol times the recorded ‖∇f(w_0)‖ on every iterate path, and steps_to_tol is
    the first recorded k with grad_norm ≤ tol·grad_norm0, bit for bit, on any machine."""
    from quadlab._engine import runargs, scan
    from quadlab._engine.layout import Layout

    monkeypatch.setattr(scan, "ENABLED", path == "scan")
    prob = mixed_problem()
    tol = 1e-3
    res = quadlab.run(prob, optim.adam(lr=np.geomspace(1e-3, 3e-1, 8), b1=[0.0, 0.9]), seeds=[0, 5], steps=600,
                      tol=tol, record="all", method="gpu_scan" if path == "gpu_scan" else "iterate")
    E0 = quadlab.runner._starts(prob, None, [0, 5], 16)  # the runner's starting errors ((w* + e) − w* is not e)
    g0 = prob.backend.to_numpy(prob.hvp(prob.backend.asarray(E0)))
    thr, div = runargs.thresholds(Layout(prob), g0, tol, quadlab.runner.DIVERGENCE_FACTOR)
    np.testing.assert_array_equal(thr, tol * res.grad_norm0)
    np.testing.assert_array_equal(div, quadlab.runner.DIVERGENCE_FACTOR * res.grad_norm0)
    below = res.grad_norm <= tol * res.grad_norm0[:, None]
    assert below.any(axis=1).sum() >= 4
    np.testing.assert_array_equal(res.steps_to_tol, np.where(below.any(axis=1), below.argmax(axis=1), -1))


@pytest.mark.parametrize("method", ["iterate", "closed_form"])
def test_divergent_learning_rate_is_flagged_and_the_grid_carries_on(method):
    prob = mixed_problem()
    res = quadlab.run(prob, optim.gd(lr=[1e-3, 1.0, 1.5e-3]), steps=20000, tol=1e-6, method=method)
    np.testing.assert_array_equal(res.status, ["converged", "diverged", "converged"])
    assert res.stop_step[1] < 10 and res.steps_to_tol[1] == -1


def test_adam_divergence_is_flagged_not_raised():
    prob = mixed_problem()
    res = quadlab.run(prob, optim.heavy_ball(lr=[1e-4, 0.5], momentum=0.9), steps=500, method="iterate")
    assert list(res.status) == ["max_steps", "diverged"]


def test_same_seed_same_result(xp):
    prob = mixed_problem(xp=xp)
    a = quadlab.run(prob, optim.adam(lr=[1e-2, 1e-1]), seeds=[1, 2], steps=300, tol=1e-6)
    b = quadlab.run(mixed_problem(xp=xp), optim.adam(lr=[1e-2, 1e-1]), seeds=[1, 2], steps=300, tol=1e-6)
    np.testing.assert_array_equal(a.gap, b.gap)
    np.testing.assert_array_equal(a.steps_to_tol, b.steps_to_tol)


@pytest.mark.parametrize("opt", [o for o in CASES], ids=lambda o: o.name)
def test_array_api_backends_match_numpy(xp, opt):
    a = quadlab.run(mixed_problem(), opt, seeds=[0], steps=200, method="iterate")
    b = quadlab.run(mixed_problem(xp=xp), opt, seeds=[0], steps=200, method="iterate")
    # every namespace runs the same IEEE operations in the same order (quadlab._engine.ordered), so the bits agree
    np.testing.assert_array_equal(b.gap, a.gap)
    np.testing.assert_array_equal(b.grad_norm, a.grad_norm)
    if opt.is_linear:
        # another algorithm: the closed form's terms carry ≤ 1e-13 relative error each, and from eigh of
        # M = P^{1/2}HP^{1/2} up to about 1e-11 at k ≤ 10⁴ (closed_form.Plan, _eigen_pieces); the iterate's
        # roundings add ≤ 2·(k + 1)·C_STEP·u ≈ 1.2e-12 at k = 200 (test_iterate_matches_single_run_loop)
        c = quadlab.run(mixed_problem(xp=xp), opt, seeds=[0], steps=200, method="closed_form")
        np.testing.assert_allclose(c.gap, a.gap, rtol=1e-10)


def test_float32_runs():
    prob = BlockQuadratic(spectra.simple_heterogeneous(), dtype="float32", seed=0)
    res = quadlab.run(prob, optim.adam(lr=1e-2), steps=2000, tol=1e-4)
    assert res.dtype == "float32" and res.status[0] == "converged"


def test_oracle_and_theorem_steps():
    prob = BlockQuadratic(spectra.simple_heterogeneous(), seed=0)
    res = quadlab.run(prob, optim.blockwise_gd(), steps=50, tol=1e-10)
    # each block has κ_l ≤ 3: the oracle contracts by (κ_l−1)/(κ_l+1) ≤ 1/2 per step
    assert res.status[0] == "converged" and res.steps_to_tol[0] <= 40
    res = quadlab.run(prob, optim.gd(lr="optimal"), steps=10)
    np.testing.assert_allclose(res.grad_norm[0, -1] / res.grad_norm[0, 0] <= 1, True)
    th = quadlab.run(prob, optim.adam_theory(), seeds=[0, 1], steps=100)
    g0 = np.abs(np.asarray(prob.grad(th.w0)))
    hi = [b.max() for b in prob.spectrum.blocks]
    eta = min(g0[0, s].min() / hi[l] for l, s in enumerate(prob.block_slices))
    it = quadlab.run(prob, optim.adam_theory(lr=eta), w0=th.w0[0], steps=100)
    np.testing.assert_allclose(th.gap[0], it.gap[0], rtol=1e-13)


def test_bad_input_messages():
    prob = mixed_problem()
    with pytest.raises(ValueError, match="lr must be positive, got -0.1"):
        optim.gd(lr=[0.1, -0.1])
    with pytest.raises(ValueError, match=r"b1 must be in \[0, 1\), got 1.5"):
        optim.adam(b1=1.5)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        optim.heavy_ball(momentum=-0.1)
    with pytest.raises(ValueError, match="lr must be finite"):
        optim.gd(lr=np.nan)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        quadlab.run(prob, optim.gd(), steps=0)
    with pytest.raises(ValueError, match=r"w0 must have shape \(15,\) or one row per run \(2, 15\)"):
        quadlab.run(prob, optim.gd(lr=[1e-3, 2e-3]), w0=np.zeros(14))
    with pytest.raises(ValueError, match="tol"):
        quadlab.run(prob, optim.gd(), tol=2.0)
    with pytest.raises(ValueError, match="record"):
        quadlab.run(prob, optim.gd(), record="some")
    with pytest.raises(ValueError, match="method"):
        quadlab.run(prob, optim.gd(), method="fast")
    with pytest.raises(ValueError, match="'optimal'"):
        optim.gd(lr="best")
    with pytest.raises(ValueError, match="exactly zero at coordinate 13.*Perturb"):
        # a start whose gradient is exactly zero on the last block (coordinates 13, 14): e = 0 there, so
        # H·e vanishes there whatever the rounding of the batched product (solving H e = g with a zero in g
        # leaves a rounding residue of order 1e-16 instead)
        e = np.where(np.arange(prob.n) >= 13, 0.0, 1.0)
        quadlab.run(prob, optim.adam_theory(lr=1e-3), w0=e + prob.optimum_host, steps=3, method="iterate")
    with pytest.raises(ValueError, match="built by quadlab.optim"):
        quadlab.run(prob, "adam")
