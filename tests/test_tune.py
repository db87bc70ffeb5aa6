import numpy as np
import pytest

import quadlab
from quadlab import optim, spectra
from quadlab.stability import divergence_edge, same_outcome
from quadlab.tune import tune_lr

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise


def test_tuned_gd_finds_the_optimal_step_region():
    prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(), seed=0)
    t = tune_lr(prob, optim.gd(), lr_range=(1e-6, 1e-2), steps=100_000, tol=1e-6, refine=3)
    # best GD step on [1, κ] is 2/(1+κ); near it steps ≈ (κ/2)·ln(1/tol), far from it many more
    assert t.reached
    assert 0.5 * 2 / 5001 < t.best_lr < 1.01 * 2 / 5001
    # best_steps against GD's exact iteration count at best_lr: in H's eigenbasis the gradient's i-th component is
    # λ_i c_i (1 − ηλ_i)^k with c = Qᵀ(w_0 − w*), so the first k with ‖∇f_k‖ ≤ tol·‖∇f_0‖ follows from
    # numpy's eigh alone (±1 step where the norm crosses the threshold within rounding)
    lam, Q = np.linalg.eigh(np.asarray(prob.dense()))
    g0 = lam * (Q.T @ (np.asarray(t.best.w0[0]) - prob.optimum_host))
    k = np.arange(100_001)[:, None]
    gk = np.sqrt(((g0 * (1 - t.best_lr * lam) ** k) ** 2).sum(axis=1))
    exact = int(np.argmax(gk <= 1e-6 * gk[0]))
    assert exact > 0 and abs(t.best_steps - exact) <= 1
    # and it is the response curve's minimum, reached at best_lr itself
    assert t.best_steps == t.steps_to_tol[t.lrs == t.best_lr][0] == t.steps_to_tol[t.steps_to_tol >= 0].min()
    with pytest.warns(DeprecationWarning, match="steps_to_tol"):
        assert t.steps is t.steps_to_tol
    assert t.diverged[t.lrs > 2 / 5000 * 1.01].all()
    assert np.all(np.diff(t.lrs) > 0)


def test_tuned_adam_theory_beats_gd_on_the_heterogeneous_case():
    prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(), seed=0)
    g = tune_lr(prob, optim.gd(), lr_range=(1e-6, 1e-2), steps=100_000, seeds=[0, 1])
    a = tune_lr(prob, optim.adam_theory(lr=1e-3), lr_range=(1e-5, 10.0), steps=100_000, seeds=[0, 1])
    assert a.best_steps * 5 < g.best_steps


def test_tune_bad_input():
    prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(), seed=0)
    with pytest.raises(ValueError, match="no learning-rate grid"):
        tune_lr(prob, optim.gd(lr="optimal"))
    with pytest.raises(ValueError, match="lr alone"):
        tune_lr(prob, optim.heavy_ball(momentum=[0.5, 0.9]))
    with pytest.raises(ValueError, match="lr_range"):
        tune_lr(prob, optim.gd(), lr_range=(1.0, 0.1))


def test_race_finds_the_same_best_lr_with_fewer_steps():
    """race=True may only drop lrs that provably lose: the best lr and its steps are those of the full search."""
    probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), seed=s) for s in (0, 1)]
    hb = quadlab.theory.heavy_ball_optimum(probs[0])
    for opt, rng in ((optim.gd(), (1e-6, 1e-2)), (optim.heavy_ball(momentum=hb.momentum), (1e-6, 1e-1)),
                     (optim.adam_theory(lr=1.0), (1e-4, 1e2))):
        full = tune_lr(probs, opt, lr_range=rng, points=12, seeds=[0, 1], steps=60_000)
        fast = tune_lr(probs, opt, lr_range=rng, points=12, seeds=[0, 1], steps=60_000, race=True)
        assert fast.best_lr == full.best_lr and fast.best_steps == full.best_steps, opt.name
        assert (fast.caps <= 60_000).all() and (full.caps == 60_000).all()
        # an lr the race reports as reached has the same count as in the full search
        np.testing.assert_array_equal(fast.lrs, full.lrs)  # the same lrs were tried
        reached = fast.steps_to_tol >= 0
        assert reached.any()
        np.testing.assert_array_equal(fast.steps_to_tol[reached], full.steps_to_tol[reached])


def test_race_runs_the_documented_caps_and_no_near_repeat(monkeypatch):
    """Where no lr reaches tol, the first grid runs under steps/64, steps/16, steps/4 and then steps itself
    once: never under 64·⌊steps/64⌋ (a near-copy of the full run) before it."""
    import quadlab.tune as tune

    caps = []
    real = tune.run

    def spy(*a, **kw):
        caps.append(kw["steps"])
        return real(*a, **kw)

    monkeypatch.setattr(tune, "run", spy)
    prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), seed=0)
    steps = 6_911  # 64·⌊6911/64⌋ = 6848 < 6911
    t = tune_lr(prob, optim.gd(), lr_range=(1e-9, 1e-8), points=3, refine=0, steps=steps, race=True,
                neighbourhood=None)
    assert not t.reached
    assert caps == [107, 431, 1727, 6911, 6911]  # the race, then the best lr's fresh run
    assert tune.race_caps(steps) == caps[:4]


@pytest.mark.parametrize("make, rng", [
    (lambda: optim.adam(b1=0.9), (1e-4, 10.0)),
    (lambda: optim.adam(b1=0.0, b2=0.99), (1e-4, 10.0)),
    (lambda: optim.gd(), (1e-6, 1e-1)),
    (lambda: optim.adam_theory(lr=1.0), (1e-4, 1e2)),
])
def test_best_steps_is_what_a_fresh_run_of_best_lr_gives(make, rng):
    """The score of the chosen lr (from its batch, under the race's cap) is the worst seed's steps of that lr run
    alone, and it is the response curve's value at that lr."""
    probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(500), seed=s) for s in (0, 1, 2)]
    t = tune_lr(probs, make(), lr_range=rng, points=10, refine=2, seeds=[0, 1, 2], steps=20_000, tol=1e-6,
                race=True)
    assert t.reached
    fresh = [quadlab.run(p, make().with_hyper(lr=t.best_lr), seeds=[s], steps=20_000, tol=1e-6)
             for p, s in zip(probs, (0, 1, 2), strict=True)]
    worst = max(int(r.steps_to_tol[0]) for r in fresh)
    assert min(int(r.steps_to_tol[0]) for r in fresh) >= 0
    assert t.best_steps == worst
    assert t.steps_to_tol[np.flatnonzero(t.lrs == t.best_lr)[0]] == worst
    for r, b in zip(fresh, t.best, strict=True):
        np.testing.assert_array_equal(r.grad_norm, b.grad_norm)


def test_fragile_choices_are_flagged():
    """The stability check: an lr whose neighbours within ±10% reach tol in another number of steps (beyond
    1.5×) or miss it is fragile, with their counts in the note; GD's best step, a few per cent below its
    divergence limit 2/λ_max, is not: the neighbours past that edge diverge, every one further out too."""
    prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(500), seed=0)
    robust = tune_lr(prob, optim.gd(), lr_range=(1e-6, 1e-1), points=10, steps=20_000)
    assert not robust.fragile and robust.note == ""
    lam_max = prob.eigenvalues.max()
    past = {lr for lr, _ in robust.past_edge}
    assert past and all(lr > 2 / lam_max for lr in past) and {j for _, j in robust.past_edge} == {0}
    assert all(robust.neighbours[lr] == -1 for lr in past)
    kept = [w for lr, w in robust.neighbours.items() if lr not in past]
    assert len(kept) >= 4 and all(w >= 0 and same_outcome(w, robust.best_steps) for w in kept)
    # Adam with β1 = 0 and a constant step stalls just above the tolerance: on the heterogeneous case its best
    # lr converges on every seed while 2.5% more never gets below tol (measured: 193 steps; 2.5% more misses)
    probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), seed=s) for s in (0, 1, 2)]
    stall = tune_lr(probs, optim.adam(b1=0.0), lr_range=(1e-5, 10), points=12, refine=2, seeds=[0, 1, 2],
                    steps=5000, race=True)
    assert stall.reached and stall.fragile, stall.neighbours
    assert "2 of 3 seeds reach tol" in stall.note and f"{stall.best_steps} steps" in stall.note
    assert min(stall.neighbours.values()) == -1 and not stall.past_edge  # a stall, not divergence
    with pytest.raises(ValueError, match="neighbourhood"):
        tune_lr(prob, optim.gd(), neighbourhood=1.5)


def test_same_outcome_and_divergence_edge():
    assert same_outcome(100, 150) and not same_outcome(100, 151) and same_outcome(-1, None)
    assert not same_outcome(0, 2) and same_outcome(0, 1) and not same_outcome(7, float("inf"))
    # an edge needs every neighbour further out to diverge too: a lone divergence inside is no edge
    assert divergence_edge([0.8, 0.9, 1.1, 1.2], [True, True, False, True], 1.0) == (0.8, 0.9, 1.2)
    assert divergence_edge([0.8, 0.9, 1.1, 1.2], [True, False, True, False], 1.0) == (0.8,)
    assert divergence_edge([0.8, 0.9, 1.1, 1.2], [False, True, True, False], 1.0) == ()


def test_best_lr_never_leaves_lr_range_and_an_edge_is_flagged():
    """GD's best step on [1, 500] is about 3.9e-3: a range that stops at 1e-3 holds its best at the upper end;
    every lr tried stays inside the range and the result says to widen it."""
    prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(500), seed=0)
    t = tune_lr(prob, optim.gd(), lr_range=(1e-5, 1e-3), points=16, refine=2, steps=50_000)
    assert t.reached and t.at_edge and "widen" in t.note and "upper edge" in t.note
    assert t.lrs.min() >= 1e-5 and t.lrs.max() <= 1e-3 and t.best_lr == 1e-3
    inner = tune_lr(prob, optim.gd(), lr_range=(1e-5, 1e-1), points=16, refine=2, steps=50_000)
    assert not inner.at_edge and 1e-5 <= inner.best_lr <= 1e-1


def test_shared_score_serves_the_most_seeds_when_none_serves_all():
    """Where no lr reaches tol on every seed, the shared choice is one that reaches it on as many seeds as any
    lr tried (then the fewest steps among them), not the one whose misses hover lowest."""
    probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), seed=s) for s in range(5)]
    t = tune_lr(probs, optim.adam(b1=0.0), lr_range=(1e-5, 10), points=48, refine=1, seeds=list(range(5)),
                steps=20_000, neighbourhood=None)
    assert t.reached_per_lr.max() == t.seeds_reached >= 1
    best_row = np.flatnonzero(t.lrs == t.best_lr)[0]
    assert t.reached_per_lr[best_row] == t.seeds_reached


def test_per_seed_is_each_seed_tuned_alone():
    """per_seed=True reads the first grid from the shared runs; each seed's choice is what tuning that seed alone
    gives, with or without the race."""
    probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), seed=s) for s in (0, 1, 2)]
    for opt, rng in ((optim.adam(b1=0.0), (1e-5, 10.0)), (optim.gd(), (1e-6, 1e-2))):
        t = tune_lr(probs, opt, lr_range=rng, points=24, refine=2, seeds=[0, 1, 2], steps=30_000, race=True,
                    per_seed=True)
        assert len(t.per_seed) == 3
        for j, s in enumerate((0, 1, 2)):
            alone = tune_lr(probs[j], opt, lr_range=rng, points=24, refine=2, seeds=[s], steps=30_000,
                            race=False)
            mine = t.per_seed[j]
            assert (mine.best_lr, mine.best_steps) == (alone.best_lr, alone.best_steps), (opt.name, s)
            assert mine.seeds == (s,) and int(mine.best.steps_to_tol[0]) == mine.best_steps
            # no single lr beats a seed's own choice on that seed
            assert mine.best_steps < 0 or all(x < 0 or x >= mine.best_steps for x in
                                              np.concatenate([t.steps_to_tol[t.steps_to_tol >= 0]]))


@pytest.mark.parametrize("make, blocks", [
    (lambda: optim.adam(b1=0.0, lr=np.geomspace(1e-5, 10.0, 7)), "case3"),  # small blocks, 21 runs
    (lambda: optim.adam(lr=np.append(np.geomspace(1e-4, 1e-1, 5), 1e9)), "wide"),  # converge, stall, diverge
    (lambda: optim.heavy_ball(lr=np.geomspace(1e-5, 1e-3, 4), momentum=0.9), "case3"),  # closed form: restarts
])
def test_the_race_continues_runs_with_the_restarted_runs_bits(make, blocks):
    """Each cap of the race reads, from runs continued cap to cap, exactly what a fresh run to that cap gives."""
    import quadlab.tune as tune

    if blocks == "case3":
        prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), seed=1)
    else:
        prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks(
            [spectra.log_uniform(30, 1, 300), spectra.log_uniform(20, 2, 50)]), seed=1)
    caps = tune.race_caps(3_000)
    race = tune._Race(prob, make(), [0, 1, 2], caps, 1e-5, "auto")
    assert (race.batch is None) == (blocks == "case3" and make().is_linear)
    for cap in caps:
        got = race.parts(cap)
        want = tune._parts(quadlab.run(prob, make(), seeds=[0, 1, 2], steps=cap, tol=1e-5))
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    if blocks == "wide":
        st = quadlab.run(prob, make(), seeds=[0, 1, 2], steps=3_000, tol=1e-5).status
        assert {"converged", "diverged", "max_steps"} <= set(st)


@pytest.mark.parametrize("lr_range, last_cap", [((1e-5, 10.0), 1_000), ((1e-8, 1e-6), 4_000)])
def test_a_race_over_several_problems_is_the_restarted_race(monkeypatch, lr_range, last_cap):
    """tune_lr with the continued race gives the TuneResult of the race that restarts every cap (a race that
    stops at the second cap, and one that needs them all)."""
    import quadlab.tune as tune

    probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), seed=s) for s in (0, 1, 2)]
    kw = dict(lr_range=lr_range, points=8, refine=1, seeds=[0, 1, 2], steps=4_000, race=True)
    cont = tune_lr(probs, optim.adam(b1=0.0), **kw)
    monkeypatch.setattr(tune, "_scan_batch", lambda *a: None)
    restart = tune_lr(probs, optim.adam(b1=0.0), **kw)
    assert cont.best_lr == restart.best_lr and cont.best_steps == restart.best_steps
    for name in ("lrs", "steps_to_tol", "final_grad_norm", "diverged", "caps"):
        np.testing.assert_array_equal(getattr(cont, name), getattr(restart, name))
    assert cont.caps.max() == last_cap


def _scan_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_tune_scan.py"
    spec = importlib.util.spec_from_file_location("bench_tune_scan", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("case, key", [
    (3, "gd"), (3, "adam"), (3, "adam_beta1_0"), (4, "adam"), (4, "adam_beta1_0"),
    pytest.param(3, "heavy_ball", marks=pytest.mark.slow), pytest.param(4, "heavy_ball", marks=pytest.mark.slow),
    pytest.param(4, "gd", marks=pytest.mark.slow),
])
def test_tune_lr_is_within_two_percent_of_a_240_point_scan(case, key):
    """On a single Case 3/4 instance with case1_4's ranges and cap, tune_lr's best steps are within 2 % of the best
    of 240 log-spaced lrs (bench/bench_tune_scan.py), or both miss tol everywhere."""
    r = _scan_bench().compare(case, key, seed=0)
    assert r["ok"], r


def test_race_and_full_search_pick_the_same_lr_where_counts_tie():
    """Two lrs tie at 112 steps here; their final recorded ‖∇f‖ is ordered one way under the race's cap (250) and
    the other under the full cap (4000), so it must not break the tie: the search uses cap-free keys."""
    p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(200), seed=0)
    kw = dict(lr_range=(1e-4, 1.0), points=48, refine=2, refine_points=8, steps=4000, tol=1e-5, neighbourhood=None)
    full = tune_lr(p, optim.adam(b1=0.0), race=False, **kw)
    fast = tune_lr(p, optim.adam(b1=0.0), race=True, **kw)
    assert (fast.best_lr, fast.best_steps) == (full.best_lr, full.best_steps)
    tied = full.lrs[full.steps_to_tol == full.best_steps]
    assert tied.size >= 2 and full.best_lr == tied.min()  # the tie goes to the smaller lr


def test_a_seed_that_diverges_at_the_best_lr_is_never_exempt():
    """Case 4, the theory form with a shared lr: seeds 2 and 3 diverge at the best lr, so they diverge at every
    neighbour too; that must not exempt the neighbours (it did when 'some seed diverged' made an edge), and
    seed 4 missing at 0.9× the lr shows the cell's (k/n) moves: fragile."""
    from quadlab.studies.case1_4 import case_spectrum, problem_for

    spec = case_spectrum(4, 5000.0)
    probs = [problem_for(spec, s, "numpy") for s in range(5)]
    best = 0.31463915959927313
    t = tune_lr(probs, optim.adam_theory(lr=1.0), seeds=list(range(5)), lr_range=(best / 1.0001, best * 1.0001),
                points=3, refine=0, steps=69077, tol=1e-6)
    status = [str(r.status[0]) for r in t.best]
    assert status.count("diverged") == 2
    diverging = {j for j, st in enumerate(status) if st == "diverged"}
    assert t.past_edge and not diverging & {j for _, j in t.past_edge}
    assert t.fragile and "of 5 seeds reach tol" in t.note


@pytest.mark.parametrize("kw, match", [
    (dict(w0=[np.zeros((5, 9))]), r"w0\[0\] must be a finite array of shape \(9,\)"),
    (dict(w0=np.ones(9)), "one array"),
    (dict(w0=3.0), "one array"),
    (dict(w0=[np.ones(9) * 1j]), r"w0\[0\] is complex"),
    (dict(w0=[np.ones(9), np.ones(9)]), "one start per seed"),
    (dict(lr_range=1.0), "lr_range must be two numbers"),
    (dict(lr_range=(1e-3, 1e-2, 3)), "lr_range must be two numbers"),
    (dict(lr_range=(1e-2, float("nan"))), "0 < lo < hi"),
    (dict(neighbourhood="a"), "neighbourhood"),
    (dict(per_seed="yes"), "per_seed"),
    (dict(points=2), "points"),
    (dict(candidates=0), "candidates"),
])
def test_tune_lr_names_the_bad_argument(kw, match):
    p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(500.0))
    with pytest.raises(ValueError, match=match):
        tune_lr(p, optim.gd(), **{"points": 5, "steps": 100, **kw})
