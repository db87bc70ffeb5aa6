"""The compiled multi-step iterate path (quadlab._engine.scan) against the runner's numpy step loop.

The scan claims the numpy path's results bit for bit: the same gap and grad_norm arrays (NaN where the numpy
path has NaN), steps_to_tol, stop_step and status, for every optimizer with an iterate rule, on small blocks
(run-minor kernel, runs split over threads), large blocks (block-major product), several size groups and a
diagonal problem, with and without a tolerance, with diverging runs, and through every pause of its loop
(record windows, Adam scalar tables, stopping tests too close to call)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import quadlab
from quadlab import optim, spectra
from quadlab._engine import kernels, scan
from conftest import count_calls
from strategies import property_settings

numba = pytest.importorskip("numba")
# bitwise: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = [pytest.mark.bitwise,
              pytest.mark.skipif(not kernels.available(), reason="numba's JIT is off (QUADLAB_NUMBA=0 or NUMBA_DISABLE_JIT)")]

FIELDS = ("gap", "grad_norm", "steps_to_tol", "stop_step")


def case3(seed=0):
    return quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000.0), seed=seed)


def mixed(rotation="block", seed=0):
    # sizes 5, 3, 5, 2: three size groups, non-contiguous coordinates in the layout (blocks 0 and 2 together)
    spec = quadlab.BlockSpectrum.from_blocks(
        [spectra.log_uniform(5, 1, 20), spectra.uniform(3, 50, 80), spectra.log_uniform(5, 200, 1000), [5.0, 9.0]])
    return quadlab.BlockQuadratic(spec, rotation=rotation, seed=seed)


def large(seed=0):
    # blocks of 40 ≥ scan._LARGE: the run-major kernel; a block of 40 > 8 terms in Adam-mini's pairwise mean,
    # and one of 3 < 8
    spec = quadlab.BlockSpectrum.from_blocks(
        [spectra.log_uniform(40, 1, 50), spectra.log_uniform(40, 10, 500), [2.0, 3.0, 4.0]])
    return quadlab.BlockQuadratic(spec, seed=seed)


@pytest.fixture
def spy(monkeypatch):
    """Count the scan's runs (so a test cannot pass by never using it)."""
    return count_calls(monkeypatch, scan, "run", "runs")


def both(monkeypatch, spy, problem, opt, **kw):
    monkeypatch.setattr(scan, "ENABLED", False)
    ref = quadlab.run(problem, opt, **kw)
    monkeypatch.setattr(scan, "ENABLED", True)
    before = spy["runs"]
    got = quadlab.run(problem, opt, **kw)
    assert spy["runs"] == before + 1, "the compiled scan was not used"
    for f in FIELDS:
        a, b = getattr(ref, f), getattr(got, f)
        assert np.array_equal(a, b, equal_nan=True), (f, np.argwhere(~((a == b) | (np.isnan(a) & np.isnan(b))))[:5])
    assert (ref.status == got.status).all()
    return ref


LRS = np.geomspace(1e-4, 1e-1, 5)
OPTIMIZERS = [
    (optim.adam(lr=np.append(LRS, 1e9)), {}),  # lr = 1e9 diverges
    (optim.adam(lr=LRS[:3], b1=[0.0, 0.9]), {}),  # per-run β1 with a 0: m stored for every run
    (optim.adam(lr=LRS, b1=0.0), {}),  # every β1 = 0: no stored first moment
    (optim.adam(lr=LRS[:2], b2=[0.99, 0.999], eps=[0.0, 1e-8], bias_correction=False), {}),
    (optim.adam(lr=1e-2, b2=1.0), {}),  # β2 = 1 with bias correction: s_t = 0/0, NaN at step 1 (diverged)
    (optim.rmsprop(lr=np.append(LRS, 1e5)), {}),
    (optim.adam_mini(lr=LRS), {}),
    (optim.gd(lr=np.geomspace(1e-5, 1e-3, 4)), {"method": "iterate"}),  # the largest diverges on Case 3
    (optim.gd(lr="optimal"), {"method": "iterate"}),
    (optim.heavy_ball(lr=np.geomspace(1e-5, 1e-3, 3), momentum=[0.5, 0.9]), {"method": "iterate"}),
    (optim.nesterov(lr=np.geomspace(1e-5, 1e-3, 3), momentum=[0.5, 0.9]), {"method": "iterate"}),
    (optim.jacobi_gd(lr=[0.1, 1.0, 2.5]), {"method": "iterate"}),
    (optim.blockwise_gd(lr=[0.5, 1.0, 2.5]), {"method": "iterate"}),
    (optim.adam_theory(), {"method": "iterate"}),
    (optim.adam_theory(lr=[0.1, 1.0, 50.0]), {"method": "iterate"}),
]


@pytest.mark.parametrize("opt,kw", OPTIMIZERS, ids=lambda x: getattr(x, "name", ""))
@pytest.mark.parametrize("make", [case3, mixed, large], ids=["case3", "mixed", "large"])
def test_scan_gives_the_numpy_path_bits(opt, kw, make, monkeypatch, spy):
    p = make()
    ref = both(monkeypatch, spy, p, opt, seeds=[0, 1], steps=300, tol=1e-4, **kw)
    both(monkeypatch, spy, p, opt, seeds=[2], steps=120, tol=None, record="all", **kw)
    assert ref.n_runs >= 2


def test_the_workloads_stop_and_diverge(monkeypatch, spy):
    # the parametrised lists above do exercise all three statuses (a test of the test)
    ref = both(monkeypatch, spy, case3(), optim.gd(lr=[1e-4, 3e-4, 1.0]), seeds=[0], steps=3000, tol=1e-3,
               method="iterate")
    assert set(ref.status) == {"converged", "diverged"}
    ref = both(monkeypatch, spy, case3(), optim.adam(lr=[1e-3, 1e9]), seeds=[0], steps=50, tol=1e-3)
    assert set(ref.status) == {"max_steps", "diverged"}


def test_sizes_that_add_up_like_blocks_of_three(monkeypatch, spy):
    """Blocks of 2 and 4 (6 coordinates in 2 blocks, as two blocks of 3 would have) take the general product."""
    spec = quadlab.BlockSpectrum.from_blocks([[1.0, 30.0], [2.0, 5.0, 40.0, 90.0]])
    p = quadlab.BlockQuadratic(spec, seed=2)
    both(monkeypatch, spy, p, optim.adam(lr=LRS), seeds=[0, 1, 2], steps=200, tol=1e-4)


def test_blocks_wider_than_64(monkeypatch, spy):
    """Blocks of d > 64 take the four-runs-at-a-time product (scan_jit.hvp_block_wide): batches of 5, 6, 7 runs
    leave a remainder after the groups of four, and d = 70, 67 leave one after the groups of four rows."""
    spec = quadlab.BlockSpectrum.from_blocks(
        [spectra.log_uniform(70, 1, 100), spectra.log_uniform(67, 5, 300), [2.0, 3.0]])
    p = quadlab.BlockQuadratic(spec, seed=4)
    both(monkeypatch, spy, p, optim.adam(lr=LRS), seeds=[0], steps=150, tol=1e-3)
    both(monkeypatch, spy, p, optim.adam(lr=LRS[:3], b1=0.0), seeds=[0, 1], steps=150, tol=None)
    both(monkeypatch, spy, p, optim.heavy_ball(lr=np.geomspace(1e-4, 1e-2, 7), momentum=0.9), seeds=[1],
         steps=150, tol=1e-3, method="iterate")


@pytest.mark.parametrize("rotation", ["none", "global"])
def test_diagonal_and_globally_rotated_problems(rotation, monkeypatch, spy):
    p = mixed(rotation)
    both(monkeypatch, spy, p, optim.adam(lr=LRS), seeds=[0, 1], steps=200, tol=1e-3)
    both(monkeypatch, spy, p, optim.heavy_ball(lr=[1e-3, 2e-3]), seeds=[0], steps=200, tol=1e-3, method="iterate")


def test_every_pause_of_the_loop(monkeypatch, spy):
    """Record windows of one step, Adam tables of 256 steps, runs split into threads, and a band so wide
    that every stopping test is handed to the runner's own norm: the same bits."""
    monkeypatch.setattr(scan, "_WINDOW_BYTES", 1)
    monkeypatch.setattr(scan, "_TABLE", 256)
    monkeypatch.setattr(scan, "_SPLIT_WORK", 0)
    monkeypatch.setattr(scan, "_BAND", 1e15)
    p = case3()
    rec = np.array([0, 1, 2, 255, 256, 257, 600])
    both(monkeypatch, spy, p, optim.adam(lr=np.geomspace(1e-3, 1.0, 12), b1=0.0), seeds=[0, 1], steps=600,
         tol=1e-3, record=rec)
    both(monkeypatch, spy, large(), optim.adam_mini(lr=[1e-3, 1e-2]), seeds=[0], steps=300, tol=1e-3, record=rec[:-1])
    both(monkeypatch, spy, p, optim.gd(lr=[1e-4, 3e-4, 1.0]), seeds=[0, 1, 2, 3], steps=700, tol=1e-3, record=rec,
         method="iterate")


def test_steps_above_one_adam_table(monkeypatch, spy):
    # more steps than one table of scalars (4096) and than one 256-step fill, every run to the end
    both(monkeypatch, spy, case3(), optim.adam(lr=[1e-3, 1e-2]), seeds=[0], steps=4500, tol=None)


def test_batch_independence_under_the_scan(monkeypatch):
    """A run gives the same bits alone, in a grid, beside other seeds and split across threads."""
    p = case3()
    monkeypatch.setattr(scan, "_SPLIT_WORK", 0)
    grid = quadlab.run(p, optim.adam(lr=np.geomspace(1e-4, 1e-1, 16)), seeds=[0, 1, 2], steps=400, tol=1e-5)
    r = 7 * 3 + 1  # lr index 7, seed 1
    monkeypatch.setattr(scan, "_SPLIT_WORK", 1 << 60)
    alone = quadlab.run(p, optim.adam(lr=grid.config["lr"][r]), seeds=[1], steps=400, tol=1e-5)
    for f in FIELDS:
        assert np.array_equal(getattr(grid, f)[r], getattr(alone, f)[0], equal_nan=True), f


def test_no_fused_multiply_add_in_the_machine_code():
    """fastmath is off, so LLVM must not contract a·b + c: no FMA instruction in the arithmetic of the loop
    (the per-step functions, compiled afresh here because numba cannot show the machine code it cached)."""
    from quadlab._engine import scan_jit

    fresh = {name: numba.njit(nogil=True, error_model="numpy")(getattr(scan_jit, name).py_func)
             for name in ("step_cols", "update_flat", "update_row", "hvp_block", "hvp_block_wide", "hvp_first_row",
                          "hvp_rows_from")}
    n, R = 6, 5
    A = lambda *s: np.ones(s)  # noqa: E731
    boff, hoff, v = np.array([0, 3, 6]), np.array([0, 9]), A(R)
    for kind in range(5):  # every update rule of the small-block kernel
        fresh["step_cols"](kind, 1, 2, 0, A(n, R), A(n, R), A(n, R), A(n, R), A(n, R), A(18), hoff, boff, A(n),
                           v, v, v, v, v, v, 0, R, True)
        fresh["update_row"](kind, 1, 2, 0, A(n), A(n), A(R, n), A(R, n), A(R, n), boff, 1.0, 0.9, 0.99, 1.0, 0.0)
        if kind < 4:
            for use_m, pmode in ((0, 0), (1, 1), (1, 2)):
                fresh["update_flat"](kind, use_m, pmode, A(n, R), A(n, R), A(n, R), A(n, R), A(n, R), A(6, n * R),
                                     n * R)
    fresh["hvp_block"](A(R, n), A(R, n), R, 0, boff, hoff, A(18))
    fresh["hvp_block_wide"](A(R, n), A(R, n), R, 0, boff, hoff, A(18))
    fresh["hvp_first_row"](A(R, n), A(R, n), R, 0, 3, 0, A(18))
    fresh["hvp_rows_from"](A(R, n), A(R, n), R, 0, 3, 0, A(18), 1)
    # Adam-mini's block sums, and the fixed-order sums of every recorded value (kernels.block_dot, row_sums)
    for name in ("sumsq", "sumsq_col"):
        fresh[name] = numba.njit(nogil=True, error_model="numpy")(getattr(scan_jit, name).py_func)
    fresh["sumsq"](A(n), 0, n)
    fresh["sumsq_col"](A(n, R), 0, n, 0)
    block_dot, row_sums = (numba.njit(nogil=True, error_model="numpy")(f.py_func) for f in kernels._compiled_sums())
    fresh["block_dot"], fresh["row_sums"] = block_dot, row_sums
    block_dot(A(2, 9, n), A(2, 9, n), A(9))
    row_sums(A(9, n), A(9))
    asm = "\n".join(a for f in fresh.values() for a in f.inspect_asm().values()).lower()
    assert "mulpd" in asm and "addpd" in asm  # the text is the vectorised loops' machine code
    for fma in ("vfmadd", "vfmsub", "vfnmadd", "vfnmsub"):
        assert fma not in asm
    # the sums' own machine code: additions, and no fused multiply-add
    sums = "\n".join(a for f in (block_dot, row_sums) for a in f.inspect_asm().values()).lower()
    assert "addsd" in sums and "vfmadd" not in sums


def test_eligibility(monkeypatch):
    p = case3()
    assert scan.eligible(p, optim.adam())
    assert not scan.eligible(quadlab.BlockQuadratic(spectra.simple_heterogeneous(), dtype="float32"), optim.adam())
    assert not scan.eligible(p, optim.adam(), noise=0.1)  # gradient noise: the numpy path
    assert not scan.eligible(mixed("global"), optim.adam_mini())
    custom = optim.Optimizer("adam", {}, init=lambda g, hp, ctx: (), update=lambda g, s, hp, ctx, t: (g, s))
    assert not scan.eligible(p, custom)
    monkeypatch.setenv("QUADLAB_SCAN", "0")
    assert not scan.eligible(p, optim.adam())
    monkeypatch.delenv("QUADLAB_SCAN")
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert not scan.eligible(p, optim.adam())


@pytest.mark.parametrize("bias_correction", [True, False])
def test_adam_tables_are_adam_scalars_bits(bias_correction):
    b1, b2, eps = np.array([0.9, 0.0, 0.9, 0.5]), np.array([0.999, 0.99, 1.0, 0.999]), np.array([1e-8, 0.0, 1e-8, 1e-3])
    sc = optim.AdamScalars(b1, b2, eps, bias_correction)
    S, E = scan._adam_tables(sc, 257, 512)
    for t in (257, 300, 512, 513, 768):
        s, e = optim.AdamScalars(b1, b2, eps, bias_correction).at(t)
        s, e = np.broadcast_to(s, 4), np.broadcast_to(e, 4)
        assert np.array_equal(S[t - 257, sc.which], s, equal_nan=True)
        assert np.array_equal(E[t - 257, sc.which], e, equal_nan=True)
    # remembered: the same (read-only) arrays for the same scalars, new ones for others
    scan._TABLES.clear()
    first = scan._cached_tables(sc, 257, 512)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, (S, E), strict=True))
    assert scan._cached_tables(optim.AdamScalars(b1, b2, eps, bias_correction), 257, 512)[0] is first[0]
    assert not first[0].flags.writeable
    other = scan._cached_tables(optim.AdamScalars(b1, b2 * 0.5, eps, bias_correction), 257, 512)
    assert other[0] is not first[0] and len(scan._TABLES) == 2


def test_an_optimizer_with_a_replaced_callback_runs_the_numpy_loop():
    # the scan knows the rules of quadlab.optim only: a replaced init (or update) must be called, not bypassed
    import dataclasses

    calls = []
    opt = quadlab.optim.adam(lr=1e-2)
    spy = dataclasses.replace(opt, init=lambda g0, hp, ctx: calls.append(1) or opt.init(g0, hp, ctx))
    p = quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(5000.0), seed=0)
    assert scan.eligible(p, opt) and not scan.eligible(p, spy)
    quadlab.run(p, spy, steps=5)
    assert calls == [1]


@property_settings(200)
@given(st.floats(-150.0, 150.0), st.floats(0.0, 20.0), st.integers(1, 10_000), st.booleans())
def test_fast_bounds_never_skip_a_decision(log_thr, log_gap, n, tol_on):
    """Where the kernel takes its short cut (lo2 < s ≤ hi2), its full floating-point test says 'go on' too,
    also at the bounds themselves and one ulp inside them."""
    thr = np.array([10.0 ** log_thr])
    div = thr * 10.0 ** log_gap * 1e6
    band = np.array([scan._BAND * (n + 2) * scan._EPS, 2.0 * np.sqrt(n * 2.0 ** -1074)])
    lo2, hi2 = scan._fast_bounds(thr, div, band, tol_on)
    delta, a = band
    for s in (hi2[0], np.nextafter(hi2[0], 0.0), np.nextafter(lo2[0], np.inf), (lo2[0] + hi2[0]) / 2, 0.0):
        if not (lo2[0] < s <= hi2[0]) or s < 0:  # the kernel's s is a sum of squares
            continue
        q = np.sqrt(s)
        assert q * (1.0 + delta) + a <= div[0]
        assert not tol_on or q * (1.0 - delta) - a > thr[0]
    if log_thr > -140 and div[0] < 1e150:  # away from under- and overflow of the squares the short cut exists
        assert lo2[0] < hi2[0]


def test_a_batch_advances_forward_within_its_steps():
    """Batch.advance(k) for k between the step reached and the batch's steps; anything else is refused."""
    from quadlab.tune import _scan_batch

    batch = _scan_batch(case3(), optim.heavy_ball(lr=[1e-4, 3e-4], momentum=0.9), [0], 300, 1e-6, "iterate",
                        np.arange(0, 301, 50))
    batch.advance(100)
    batch.advance(100)  # staying put is allowed
    with pytest.raises(ValueError, match="at step 100 of 300 cannot advance to step 50"):
        batch.advance(50)
    with pytest.raises(ValueError, match="cannot advance to step 301"):
        batch.advance(301)
    batch.advance(300)
    _, gnorm, _, stop, _ = batch.result()
    ref = quadlab.run(case3(), optim.heavy_ball(lr=[1e-4, 3e-4], momentum=0.9), seeds=[0], steps=300, tol=1e-6,
                      method="iterate", record=np.arange(0, 301, 50))
    np.testing.assert_array_equal(stop, ref.stop_step)
    np.testing.assert_array_equal(np.where(np.arange(0, 301, 50)[None, :] > stop[:, None], np.nan, gnorm),
                                  ref.grad_norm)
