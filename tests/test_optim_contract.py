"""The optimizer contract (quadlab.contract): what an optimizer may ask the runner, its NamedTuple states, the
one learning-rate function, and the one Adam rule behind the numpy, in-place, numba and GPU forms."""

import ast
import dataclasses
import doctest
import importlib.util
import inspect
import pathlib
import re

import numpy as np
import pytest

import quadlab
from quadlab import contract, optim, rules, runner, spectra
from quadlab._engine import adam_rule, kernels
from quadlab.problem import BlockQuadratic

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise

ROOT = pathlib.Path(quadlab.__file__).parent
#: every module whose code receives the context as ``ctx``
OPTIMIZER_SOURCES = [ROOT / "optim.py", ROOT / "_engine" / "adam_rule.py"]


def problem(rotation="block", dtype="float64", xp="numpy"):
    # sizes 5, 3, 5, 2: groups of sizes 5 (two blocks), 3 and 2, so the iterate has three leaves
    spec = quadlab.BlockSpectrum.from_blocks(
        [spectra.log_uniform(5, 1, 20), spectra.uniform(3, 50, 80), spectra.log_uniform(5, 200, 1000), [5.0, 9.0]]
    )
    return BlockQuadratic(spec, rotation=rotation, seed=0, dtype=dtype, xp=xp)


# -- the Context protocol ---------------------------------------------------------------------------
def protocol_members() -> set[str]:
    methods = {n for n, v in vars(contract.Context).items() if callable(v) and not n.startswith("_")}
    return set(contract.Context.__annotations__) | methods


def ctx_members(source: str) -> set[str]:
    """Every attribute read from a name ``ctx`` in ``source`` (``ctx.layout.per_run`` counts ``layout``)."""
    return {node.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ctx"}


def test_the_listing_sees_a_member_outside_the_protocol():
    # the check below must be able to fail: an optimizer reaching for the problem is caught
    bad = "def init(g0, hp, ctx):\n    return ctx.problem.block_sizes, ctx.lr({})\n"
    assert ctx_members(bad) - protocol_members() == {"problem"}


def test_optimizers_use_exactly_the_protocol():
    used = set().union(*(ctx_members(p.read_text()) for p in OPTIMIZER_SOURCES))
    assert used - protocol_members() == set(), "an optimizer asks the runner for something outside Context"
    assert protocol_members() - used == set(), "Context lists a member no optimizer uses"


def test_no_optimizer_reads_the_grid_lr():
    # the step sizes come through ctx.lr only (one representation); hp["lr"] is the runner's, not theirs
    for p in OPTIMIZER_SOURCES:
        tree = ast.parse(p.read_text())
        reads = [n for n in ast.walk(tree) if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name)
                 and n.value.id == "hp" and isinstance(n.slice, ast.Constant) and n.slice.value == "lr"]
        assert reads == [], f"{p.name}:{reads[0].lineno} reads hp['lr']" if reads else ""


@pytest.mark.parametrize("path", ["iterate", "closed_form"])
def test_the_runner_context_implements_the_protocol(path):
    seen = []
    opt = optim.gd(lr=[1e-3, 2e-3])
    if path == "iterate":
        spy = dataclasses.replace(opt, init=lambda g0, hp, ctx: seen.append(ctx) or opt.init(g0, hp, ctx))
    else:
        spy = dataclasses.replace(opt, linear=lambda hp, ctx, g0: seen.append(ctx) or opt.linear(hp, ctx, g0))
    quadlab.run(problem(), spy, steps=5, method=path)
    assert len(seen) == 1 and isinstance(seen[0], contract.Context)
    assert not isinstance(object(), contract.Context)
    np.testing.assert_array_equal(seen[0].lr({}), [1e-3, 2e-3])


# -- NamedTuple states --------------------------------------------------------------------------------
STATES = [  # every grid has a diverging configuration, so runs are dropped mid-run
    (optim.gd(lr=[1e-3, 5e-2]), contract.GDState),
    (optim.gd(lr="optimal"), contract.GDState),
    (optim.heavy_ball(lr=[1e-3, 5e-3], momentum=0.5), contract.MomentumState),
    (optim.nesterov(lr=[1e-3, 5e-3], momentum=0.5), contract.MomentumState),
    (optim.jacobi_gd(lr=[0.2, 5.0]), contract.PreconditionedState),
    (optim.blockwise_gd(lr=[0.5, 5.0]), contract.PreconditionedState),
    (optim.adam_theory(), contract.PreconditionedState),
    (optim.sign_descent(lr=1e-2, momentum=0.9), contract.SignState),  # bounded steps: never diverges
    (optim.adam(lr=[1e-3, 1e7]), (contract.AdamState, contract.FusedAdamState)),
    (optim.rmsprop(lr=[1e-3, 1e7]), (contract.AdamState, contract.FusedAdamState)),
    (optim.adam_mini(lr=[1e-3, 1e7]), contract.AdamState),
]


@pytest.mark.parametrize("inplace", [True, False])
@pytest.mark.parametrize(("opt", "kind"), STATES, ids=lambda x: getattr(x, "name", ""))
def test_every_state_is_its_named_tuple_at_every_step(opt, kind, inplace, monkeypatch):
    monkeypatch.setattr(runner, "INPLACE", inplace)
    kinds = []

    def init(g0, hp, ctx):
        s = opt.init(g0, hp, ctx)
        kinds.append(type(s))
        return s

    def update(g, state, hp, ctx, t):
        kinds.append(type(state))
        return opt.update(g, state, hp, ctx, t)

    def step(e, g, state, hp, ctx, t):
        kinds.append(type(state))
        return opt.step(e, g, state, hp, ctx, t)

    spy = dataclasses.replace(opt, init=init, update=update, step=step if opt.step else None)
    res = quadlab.run(problem(), spy, seeds=[1, 2], steps=400, tol=1e-3, method="iterate")
    assert len(kinds) > 10 and all(k is kinds[0] for k in kinds) and issubclass(kinds[0], kind)
    if opt.n_configs > 1:  # the state kept its type after runs stopped and were dropped from the batch
        assert res.diverged.any() and not res.diverged.all()
    if kinds[0] is contract.FusedAdamState:
        assert inplace and kernels.available()


def test_a_rule_lr_and_the_same_configured_lr_are_the_same_bits():
    # the rule's step and the grid's step go through one function (ctx.lr, then ctx.per_run)
    prob = problem()
    eta = rules.gd_optimal_lr(prob)
    kw = dict(seeds=[3], steps=300, method="iterate", record="all")
    a = quadlab.run(prob, optim.gd(lr="optimal"), **kw)
    b = quadlab.run(prob, optim.gd(lr=eta), **kw)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)


# -- one Adam rule, every form --------------------------------------------------------------------------
def test_kernel_source_is_rendered_from_the_rule():
    (adam_k,) = adam_rule.kernel_specs(use_m=True, per_block=False)
    ins, outs, body = adam_k.source()
    assert ins == "T g, T b2, T b1, T s, T e, T lr" and outs == "T m, T v, T x"
    assert body == ("m = (m * b1) + g; T g2 = g * g; v = (v * b2) + g2; "
                    "T delta = (m / (sqrt(v * s) + e)) * lr; x = x - delta;")
    (rms_k,) = adam_rule.kernel_specs(use_m=False, per_block=False)
    assert "T delta = (g / (sqrt(v * s) + e)) * lr;" in rms_k.source()[2] and "m =" not in rms_k.source()[2]
    v_k, mini_k = adam_rule.kernel_specs(use_m=True, per_block=True)
    assert v_k.source() == ("T g2, T b2", "T v", "v = (v * b2) + g2;")
    assert mini_k.source()[:2] == ("T g, T v, T b1, T s, T e, T lr", "T m, T x")
    assert adam_rule.KERNEL_OPTIONS == ("--fmad=false",)
    # the numpy forms are rendered from the same tree: one ufunc per operation into one buffer, innermost first
    assert adam_rule._DELTA_M.inplace_source == (
        "def inplace(out, m, v, s, e, lr):\n    multiply(v, s, out=out)\n    sqrt(out, out=out)\n"
        "    add(out, e, out=out)\n    divide(m, out, out=out)\n    multiply(out, lr, out=out)\n    return out\n")
    assert adam_rule._DELTA_G.functional_source == "def functional(sqrt, g, v, s, e, lr):\n    return ((g / (sqrt(v * s) + e)) * lr)\n"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_form_evaluates_the_rule_with_the_same_bits(dtype):
    # one step on random state: functional (operators), in place (out=), the emulated GPU kernel, and numba
    rng = np.random.default_rng(0)
    shape = (3, 4, 7)
    g, m, v, x = (rng.standard_normal(shape).astype(dtype) for _ in range(4))
    v = np.abs(v)
    hp = {"b1": 0.9, "b2": rng.random((1, 4, 1)).astype(dtype), "s": 1.7, "e": rng.random((1, 4, 1)).astype(dtype),
          "lr": 1e-2}
    env = hp | {"g": g, "m": m.copy(), "v": v.copy()}
    want = {}
    for name, expr in adam_rule.STEP:
        want[name] = env[name] = adam_rule.evaluate(adam_rule.substitute(expr, {"a": "m"}), env, np.sqrt)
    # in place, into one buffer per statement
    env2 = hp | {"g": g, "m": m.copy(), "v": v.copy()}
    w = np.empty_like(g)
    for name, expr in adam_rule.STEP:
        out = env2[name] if name in ("m", "v") else w
        env2[name] = adam_rule.evaluate(adam_rule.substitute(expr, {"a": "m"}), env2, np.sqrt, out=out)
        np.testing.assert_array_equal(env2[name], want[name])
    # the GPU kernel's statements, emulated
    (spec,) = adam_rule.kernel_specs(True, False)
    m3, v3, x3 = m.copy(), v.copy(), x.copy()
    inputs = {"g": g} | hp
    adam_rule.EmulatedKernel(spec)(*[inputs[k] for k in spec.inputs], m3, v3, x3)
    for got, name in ((m3, "m"), (v3, "v")):
        np.testing.assert_array_equal(got, want[name])
    np.testing.assert_array_equal(x3, x - want["delta"])
    if kernels.available():  # the compiled loop is the rule too (c = 1)
        P = np.empty((1, 4, 6), dtype=dtype)
        for j, val in enumerate([hp["lr"], hp["b1"], 1.0, hp["b2"], hp["s"], hp["e"]]):
            P[..., j] = val if np.isscalar(val) else val[..., 0]
        m4, v4, x4 = m.copy(), v.copy(), x.copy()
        kernels.adam_step((x4,), (g,), (m4,), (v4,), P)
        np.testing.assert_array_equal(x4, x3)
        np.testing.assert_array_equal(m4, m3)


def test_the_emulated_kernel_and_evaluate_refuse_what_cupy_and_one_buffer_cannot_do():
    (spec,) = adam_rule.kernel_specs(False, False)
    k = adam_rule.EmulatedKernel(spec)
    g, small = np.ones((1, 2, 3)), np.zeros((1, 2, 1))
    with pytest.raises(ValueError, match="output v has shape"):
        k(g, 0.9, 1.0, 0.0, 1.0, small, np.zeros_like(g))  # an output that would need broadcasting
    with pytest.raises(ValueError, match="are not the operands"):
        adam_rule.Program(("*", "a", "b"), ("a", "c"))
    with pytest.raises(ValueError, match="needs a second buffer"):
        adam_rule.evaluate(("+", ("*", "a", "b"), ("*", "a", "b")), {"a": g, "b": g}, np.sqrt, out=np.empty_like(g))


GPU_FORMS = [
    optim.adam(lr=[1e-3, 1e-2, 1e7]),  # lr = 1e7 diverges
    optim.adam(lr=[1e-3, 1e-2], b1=[0.0, 0.9], eps=[0.0, 1e-8]),
    optim.rmsprop(lr=[1e-3, 1e-2, 3e-2, 1e5]),
    optim.adam_mini(lr=[1e-3, 1e-2], b1=[0.0, 0.9]),
    optim.adam_mini(lr=[3e-3, 1e-2], b1=0.0),
]


@pytest.mark.parametrize("opt", GPU_FORMS, ids=lambda o: f"{o.name}-{'-'.join(map(str, o.hyper))}")
@pytest.mark.parametrize(("rotation", "dtype"), [("block", "float64"), ("global", "float32"), ("none", "float64")])
def test_the_gpu_form_emulated_on_cpu_gives_the_numpy_bits(opt, rotation, dtype, monkeypatch):
    """The runner's GPU route (cupy elementwise kernels), with numpy standing in for cupy: the same bits as
    the numpy path, runs stopping at different steps."""
    prob = problem(rotation, dtype)
    kw = dict(seeds=[1, 2], steps=300, method="iterate", record="all", tol=0.05)
    a = quadlab.run(prob, opt, **kw)
    calls = []

    def make(spec):
        calls.append(spec.name)
        return adam_rule.EmulatedKernel(spec)

    monkeypatch.setattr(runner, "INPLACE", False)  # cupy's route: no in-place numpy update
    monkeypatch.setattr(adam_rule, "gpu_enabled", lambda backend: True)
    monkeypatch.setattr(adam_rule, "make_kernel", make)
    b = quadlab.run(prob, opt, **kw)
    assert len(calls) > 0
    assert len(set(a.stop_step.tolist())) > 1
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    np.testing.assert_array_equal(a.gap, b.gap)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.w0, b.w0)  # the kernels wrote into the runner's copy, not the starts


def _cupy_device() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        quadlab.get_backend("cupy")
    except quadlab.backend.BackendUnavailableError:
        return False
    return True


@pytest.mark.gpu
@pytest.mark.skipif(not _cupy_device(), reason="needs cupy and a CUDA GPU")
@pytest.mark.parametrize("opt", GPU_FORMS, ids=lambda o: o.name)
def test_the_cupy_kernels_give_the_functional_bits_on_a_gpu(opt, monkeypatch):
    prob = problem("block", "float64", xp="cupy")
    kw = dict(seeds=[1, 2], steps=300, method="iterate", record="all", tol=0.05)
    a = quadlab.run(prob, opt, **kw)
    monkeypatch.setenv("QUADLAB_CUPY_FUSED", "1")
    b = quadlab.run(prob, opt, **kw)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    np.testing.assert_array_equal(a.status, b.status)


# -- numpydoc and doctests -------------------------------------------------------------------------------
PUBLIC = [optim.gd, optim.heavy_ball, optim.nesterov, optim.jacobi_gd, optim.blockwise_gd, optim.adam_theory,
          optim.adam, optim.rmsprop, optim.adam_mini, optim.Optimizer.with_hyper, optim.Optimizer.grid,
          runner.run, runner.record_steps, runner.Result.final, runner.Result.summary]


@pytest.mark.parametrize("f", PUBLIC, ids=lambda f: f.__qualname__)
def test_public_entry_points_have_numpydoc_sections(f):
    doc = inspect.getdoc(f)
    needed = ["Returns", "Examples"]
    if inspect.signature(f).parameters.keys() - {"self"}:
        needed.append("Parameters")
    if "raise ValueError" in inspect.getsource(f) or f in (optim.adam, optim.rmsprop, optim.adam_mini,
                                                           optim.heavy_ball, optim.nesterov):
        needed.append("Raises")
    for section in needed:
        assert re.search(rf"^{section}\n-+$", doc, re.M), f"{f.__qualname__} has no {section} section"


@pytest.mark.parametrize("module", [optim, runner, contract], ids=lambda m: m.__name__)
def test_the_docstring_examples_run(module):
    res = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted >= 5
