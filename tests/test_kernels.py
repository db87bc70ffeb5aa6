"""The fused (numba) Adam step against numpy: the same operations in the same order, so the same bits."""

import numpy as np
import pytest

import quadlab
from quadlab import optim, spectra
from quadlab._engine import kernels, scan
from quadlab.problem import BlockQuadratic
from conftest import count_calls

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise

numba = pytest.importorskip("numba")


def problem(rotation, dtype="float64", seed=0):
    # sizes 5, 3, 5, 2: three size groups, so the iterate has three leaves (2, R, 5), (1, R, 3), (1, R, 2)
    spec = quadlab.BlockSpectrum.from_blocks(
        [spectra.log_uniform(5, 1, 20), spectra.uniform(3, 50, 80), spectra.log_uniform(5, 200, 1000), [5.0, 9.0]]
    )
    return BlockQuadratic(spec, rotation=rotation, seed=seed, dtype=dtype)


FUSED = [
    optim.adam(lr=[1e-3, 1e-2, 1e7]),  # shared β1 (stored m/(1−β1)); lr = 1e7 diverges
    optim.adam(lr=[1e-3, 1e-2], b1=[0.0, 0.9]),  # per-run β1 (stored m, c = 1−β1)
    optim.adam(lr=[1e-3, 3e-3], b1=0.0),  # shared β1 = 0: no first moment
    optim.adam(lr=[1e-3, 1e-2], b2=[0.99, 0.999], eps=[0.0, 1e-8], bias_correction=False),
    optim.adam(lr=1e-2, b1=0.9, b2=1.0),  # β2 = 1 with bias correction: s_t = 0/0, every run NaN at once
    optim.rmsprop(lr=[1e-3, 2e-3]),
]
# runs stop at different steps (converged or diverged), so the kernel goes on over the remaining runs' state
TOL = {id(o): 1e-2 for o in FUSED}
FUSED.append(optim.rmsprop(lr=[1e-3, 1e-2, 3e-2, 1e5]))  # β1 = 0 (no stored m) with runs dropped mid-run
TOL[id(FUSED[-1])] = 0.2


@pytest.fixture(autouse=True)
def step_loop(monkeypatch):
    """These tests are about the runner's step-by-step loop and its fused step: the compiled multi-step scan
    (which would take these runs; tests/test_scan.py) is switched off."""
    monkeypatch.setattr(scan, "ENABLED", False)


@pytest.fixture
def calls(monkeypatch):
    """Count the fused steps the runner takes (so a test cannot pass by never using the kernel)."""
    return count_calls(monkeypatch, kernels, "adam_step", "steps")


@pytest.mark.parametrize("opt", FUSED, ids=lambda o: f"{o.name}-{'-'.join(map(str, o.hyper))}")
@pytest.mark.parametrize("rotation", ["block", "global", "none"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_step_gives_the_numpy_path_bits(opt, rotation, dtype, calls, monkeypatch):
    prob = problem(rotation, dtype)
    kw = dict(seeds=[1, 2], steps=300, method="iterate", record="all", tol=TOL[id(opt)])
    a = quadlab.run(prob, opt, **kw)
    assert calls["steps"] > 0
    monkeypatch.setenv("QUADLAB_NUMBA", "0")
    steps_fused = calls["steps"]
    b = quadlab.run(prob, opt, **kw)
    assert calls["steps"] == steps_fused  # the second run took the numpy path
    np.testing.assert_array_equal(a.gap, b.gap)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    np.testing.assert_array_equal(a.stop_step, b.stop_step)
    np.testing.assert_array_equal(a.status, b.status)


def test_the_diverging_run_is_flagged_on_the_fused_path(calls):
    res = quadlab.run(problem("block"), FUSED[0], steps=300, method="iterate", tol=1e-2)
    assert calls["steps"] > 0
    assert res.status[2] == "diverged" and res.status[0] != "diverged"


@pytest.mark.parametrize("use_m", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_step_is_the_formula_on_each_row(use_m, dtype):
    # two leaves of different shapes, four runs with their own parameters, against numpy in the same order
    rng = np.random.default_rng(0)
    shapes = [(3, 4, 7), (1, 4, 33)]
    E = tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    G = tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    M = tuple(rng.standard_normal(s).astype(dtype) for s in shapes) if use_m else ()
    V = tuple(rng.random(s).astype(dtype) for s in shapes)
    P = np.ascontiguousarray(rng.random((1, 4, len(kernels.ADAM_PARAMS))).astype(dtype))
    lr, b1, c, b2, s, e = (P[..., j][..., None] for j in range(6))
    want_m = tuple(m * b1 + g * c for m, g in zip(M, G))
    want_v = tuple(v * b2 + g * g for v, g in zip(V, G))
    num = want_m if use_m else G
    want_e = tuple(x - (a / (np.sqrt(v * s) + e)) * lr for x, a, v in zip(E, num, want_v))
    kernels.adam_step(E, G, M, V, P)
    for got, want in zip(E + M + V, want_e + want_m + want_v):
        np.testing.assert_array_equal(got, want)


def test_switches_off_without_numba_or_by_environment(monkeypatch, calls):
    assert kernels.available()
    monkeypatch.setenv("QUADLAB_NUMBA", "0")
    assert not kernels.available()
    monkeypatch.delenv("QUADLAB_NUMBA")
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)  # the kernels would run as Python loops
    assert not kernels.available()
    monkeypatch.setattr(numba.config, "DISABLE_JIT", False)
    monkeypatch.setattr(kernels, "_numba", lambda: None)
    assert not kernels.available()
    res = quadlab.run(problem("block"), optim.adam(lr=1e-2), steps=20, method="iterate")
    assert calls["steps"] == 0 and res.status[0] == "max_steps"


def test_only_the_adam_family_with_per_coordinate_moments_is_fused():
    assert optim.adam().step is not None and optim.rmsprop().step is not None
    assert optim.adam_mini().step is None and optim.gd().step is None
    assert optim.adam(lr=[1e-3, 1e-2]).with_hyper(lr=1e-3).step is not None


def test_compiles_without_a_writable_cache(monkeypatch):
    # numba refuses cache=True when it finds no writable cache location (a read-only install and no home)
    real = numba.njit

    def njit(*args, cache=False, **kw):
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **kw)

    monkeypatch.setattr(numba, "njit", njit)
    kernels._compiled.cache_clear()
    try:
        x, g, v = np.zeros((1, 1, 4)), np.ones((1, 1, 4)), np.zeros((1, 1, 4))
        P = np.array([[[0.5, 0.0, 1.0, 0.0, 1.0, 0.0]]])  # η = 1/2, v = g², s = 1, e = 0: one sign step
        kernels.adam_step((x,), (g,), (), (v,), P)
        np.testing.assert_array_equal(x, -0.5)
    finally:
        monkeypatch.undo()
        kernels._compiled.cache_clear()


def test_bad_arrays_are_refused_before_the_unchecked_loops():
    x, g, v = np.zeros((1, 4, 3)), np.ones((1, 4, 3)), np.zeros((1, 4, 3))
    P = np.zeros((1, 4, 6))
    with pytest.raises(ValueError, match=r"P must be a numpy array of shape \(1, R, 6\), got \(4, 6\)"):
        kernels.adam_step((x,), (g,), (), (v,), P[0])
    with pytest.raises(ValueError, match="leaf 0 of E holds 4 runs but P has parameters for 1"):
        kernels.adam_step((x,), (g,), (), (v,), P[:, :1].copy())
    with pytest.raises(ValueError, match=r"leaf 0 of V must have E's shape \(1, 4, 3\), got \(1, 4, 1\)"):
        kernels.adam_step((x,), (g,), (), (np.zeros((1, 4, 1)),), P)
    with pytest.raises(ValueError, match="leaf 0 of G must be writeable, C-contiguous and of P's dtype float64, got float32"):
        kernels.adam_step((x,), (g.astype(np.float32),), (), (v,), P)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.adam_step((x,), (np.ones((1, 3, 4)).transpose(0, 2, 1),), (), (v,), P)
    with pytest.raises(ValueError, match="P must be a numpy array"):
        kernels.adam_step((x,), (g,), (), (v,), P.tolist())
    with pytest.raises(ValueError, match="one leaf each per group"):
        kernels.adam_step((x, x), (g,), (), (v,), P)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 3), (4, 8, 25), (2, 3, 7), (5, 2, 41)])
def test_fixed_order_product_serial_parallel_and_numpy_agree_bit_for_bit(shape, dtype, monkeypatch):
    """The compiled product, on one thread or split over blocks, gives the numpy loop's bits (the order of
    quadlab._engine.ordered.matmul), and row r of a batch equals row r computed alone."""
    if kernels._numba() is None:
        pytest.skip("numba is not installed")
    from quadlab._engine import ordered

    k, R, d = shape
    rng = np.random.default_rng(sum(shape))
    A = rng.standard_normal((k, d, d)).astype(dtype)
    X = rng.standard_normal((k, R, d)).astype(dtype)
    ref = ordered._numpy_loop(X, A, np.empty_like(X))
    for parallel in (False, True):
        out = np.empty_like(X)
        kernels._compiled_matmul(parallel)(X, A, out)
        np.testing.assert_array_equal(out, ref)
    monkeypatch.setattr(kernels, "PARALLEL_MIN_WORK", 0)  # the dispatcher's threaded choice
    out = np.empty_like(X)
    kernels.matmul_rows(X, A, out)
    np.testing.assert_array_equal(out, ref)
    for r in range(R):
        alone = np.empty_like(X[:, r:r + 1])
        kernels.matmul_rows(np.ascontiguousarray(X[:, r:r + 1]), A, alone)
        np.testing.assert_array_equal(alone, ref[:, r:r + 1])
    with pytest.raises(ValueError, match="chain"):
        kernels.matmul_rows(X, np.zeros((k, d + 1, d), dtype=dtype), np.empty_like(X))


def _in_turn(terms):
    """Σ of a sequence in turn, one rounding per addition, starting from its first term: the definition of
    quadlab's order, written with scalar arithmetic (Python floats or numpy float32 scalars), no reduction."""
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 3), (2, 7, 9), (4, 3, 40), (1, 6, 300)])
def test_fixed_order_sums_follow_their_definition_on_every_path(shape, dtype, monkeypatch):
    """ordered.block_dot and ordered.sum_last: the compiled loop, the numpy loop (term by term up to
    ordered._LOOP_MAX, np.add.accumulate beyond), array-api-strict's elementwise loop and a row alone all give
    the bits of the definition: each block's products added in turn, then the blocks in turn."""
    from quadlab._engine import ordered
    from quadlab.backend import get_backend

    k, R, d = shape
    rng = np.random.default_rng(sum(shape))
    # magnitudes over many binades, so that the order of the additions shows in the last bits
    a = (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    want = np.array([_in_turn([_in_turn([a[i, r, j] * b[i, r, j] for j in range(d)]) for i in range(k)])
                     for r in range(R)], dtype=dtype)
    want_sum = np.array([[_in_turn(list(a[i, r])) for r in range(R)] for i in range(k)], dtype=dtype)
    assert want.dtype == dtype
    xs = get_backend("array_api_strict").xp
    got = {"compiled": ordered.block_dot(np, a, b),
           "strided": ordered.block_dot(np, np.asfortranarray(a), np.asfortranarray(b)),
           "array_api_strict": np.asarray(ordered.block_dot(xs, xs.asarray(a), xs.asarray(b)))}
    sums = {"compiled": ordered.sum_last(np, a), "array_api_strict": np.asarray(ordered.sum_last(xs, xs.asarray(a)))}
    monkeypatch.setenv("QUADLAB_NUMBA", "0")
    got["numpy"] = ordered.block_dot(np, a, b)
    sums["numpy"] = ordered.sum_last(np, a)
    monkeypatch.delenv("QUADLAB_NUMBA")
    for name, x in got.items():
        assert x.dtype == dtype, name
        np.testing.assert_array_equal(x, want, err_msg=name)
    for name, x in sums.items():
        np.testing.assert_array_equal(x, want_sum, err_msg=name)
    for r in range(R):  # a run's sum does not depend on the runs beside it
        alone = ordered.block_dot(np, a[:, r:r + 1].copy(), b[:, r:r + 1].copy())
        np.testing.assert_array_equal(alone, want[r:r + 1])


def test_fixed_order_sums_keep_a_negative_zero_and_empty_axes(monkeypatch):
    """Each sum starts from its first term (0 + (−0) would give +0, which the GPU kernel does not), and an
    empty axis sums to 0."""
    from quadlab._engine import ordered

    a = np.array([[[-0.0, -0.0]]])
    for numba_on in ("1", "0"):
        monkeypatch.setenv("QUADLAB_NUMBA", numba_on)
        assert np.signbit(ordered.block_dot(np, a, np.ones_like(a))[0]) and np.signbit(ordered.sum_last(np, a)[0, 0])
    np.testing.assert_array_equal(ordered.block_dot(np, np.ones((2, 3, 0)), np.ones((2, 3, 0))), np.zeros(3))
    with pytest.raises(ValueError, match="differ"):
        ordered.block_dot(np, np.ones((1, 2, 3)), np.ones((1, 1, 3)))
