"""The multi-step GPU kernel (issue 20): its arithmetic, emulated on the host, against the numpy iterate path.

``gpu_scan.emulate`` evaluates the kernel's own update statements (``gpu_scan.UPDATES``, pasted verbatim into
the CUDA source) with the kernel's loops transcribed; these tests hold it to the numpy path: the same final
iterate bit for bit, the same stop steps and statuses, and the same recorded norms and gaps bit for bit (the
kernel sums in ``Layout.rowdot``'s fixed order, quadlab._engine.ordered.block_dot, and takes the runner's
thresholds, quadlab._engine.runargs.thresholds, so neither side leaves an order to numpy or the BLAS).
Whether the compiled kernel reproduces the emulation needs cupy and a GPU (marked ``gpu``, skipped cleanly
here).
"""

import importlib.util
import shutil
import subprocess

import _cuda_host
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import quadlab
from quadlab import optim, spectra
from quadlab._engine import gpu_scan
from quadlab._engine.context import RunContext, hyperparameter
from quadlab._engine.layout import Layout, tmap
from quadlab.runner import INPLACE, _starts
from strategies import block_spectra, property_settings

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise


def _cupy_ready() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


OPTIMIZERS = {
    "adam": lambda: optim.adam(lr=np.geomspace(1e-3, 1.0, 4), b1=[0.0, 0.9]),
    "adam_nobc": lambda: optim.adam(lr=[3e-3, 3e-2], b2=[0.99, 0.999], bias_correction=False),
    "rmsprop": lambda: optim.rmsprop(lr=np.geomspace(1e-3, 1e-1, 3)),
    "gd": lambda: optim.gd(lr=np.geomspace(1e-5, 1e-3, 5)),  # the last ones diverge (λ_max = 5000)
    "heavy_ball": lambda: optim.heavy_ball(lr=[1e-4, 3e-4], momentum=[0.5, 0.9]),
    "nesterov": lambda: optim.nesterov(lr=[1e-4], momentum=[0.9]),
}


def _case3(rotation="block", dtype="float64"):
    return quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000.0), seed=0, rotation=rotation, dtype=dtype)


def _reference_iterate(problem, opt, seeds, steps):
    """The numpy path's error after ``steps`` steps (tol=None), in gpu_scan's layout order: the runner's
    layout, hyperparameters, init and update, without its stop bookkeeping."""
    lay = Layout(problem)
    E0 = _starts(problem, None, seeds, opt.n_configs)
    E = tuple(np.array(x, copy=True) for x in lay.split(problem.backend.asarray(E0)))
    G = lay.hvp(E)
    g0 = problem.backend.to_numpy(lay.merge(G)).astype(np.float64)
    ctx = RunContext(problem, lay, g0, E0 + problem.optimum_host, INPLACE)
    ctx.host_hp = {k: np.repeat(np.asarray(v, dtype=np.float64), len(seeds)) for k, v in opt.grid().items()}
    hp = {k: hyperparameter(v, lay) for k, v in ctx.host_hp.items() if k != "lr"}
    state = opt.init(G, hp, ctx)
    with np.errstate(all="ignore"):
        for t in range(1, steps + 1):
            delta, state = opt.update(G, state, hp, ctx, t)
            E = tmap(lambda e, d: e - d, E, delta)
            G = lay.hvp(E)
    R = E0.shape[0]
    return np.concatenate([np.transpose(x, (1, 0, 2)).reshape(R, -1) for x in E], axis=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rotation", ["block", "none", "global"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_emulation_has_the_numpy_paths_iterates(name, rotation, dtype):
    """After 300 steps every run's error carries the numpy path's bits (the kernel's product order and
    update statements are the runner's)."""
    problem = _case3(rotation, dtype)
    opt = OPTIMIZERS[name]()
    p = gpu_scan.prepare(problem, opt, seeds=[0, 1], steps=300, tol=None, record=np.array([0, 300]))
    *_, stop, status, x = gpu_scan.emulate(p)
    ref = _reference_iterate(problem, opt, [0, 1], 300)
    assert x.dtype == ref.dtype == np.dtype(dtype)
    full = status == 3  # ran every step (a diverged run is frozen at its divergence step)
    assert full.sum() >= 2 and (stop[full] == 300).all()
    np.testing.assert_array_equal(x[full], ref[full])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rotation", ["block", "none", "global"])
@pytest.mark.parametrize("tol", [None, 1e-4])
@pytest.mark.parametrize("name", ["adam", "gd", "heavy_ball"])
def test_emulation_gives_quadlab_runs_result(name, tol, rotation, dtype):
    problem = _case3(rotation, dtype)
    opt = OPTIMIZERS[name]()
    ref = quadlab.run(problem, opt, seeds=[0, 1], steps=400, tol=tol, method="iterate")
    got = gpu_scan.run(problem, opt, seeds=[0, 1], steps=400, tol=tol, device="emulate")
    assert got.method == "gpu_scan"
    np.testing.assert_array_equal(got.status, ref.status)
    np.testing.assert_array_equal(got.stop_step, ref.stop_step)
    np.testing.assert_array_equal(got.steps_to_tol, ref.steps_to_tol)
    np.testing.assert_array_equal(got.steps, ref.steps)
    # both sum each block's terms in turn, then the blocks, then the groups, in the run's dtype
    np.testing.assert_array_equal(got.grad_norm, ref.grad_norm)
    np.testing.assert_array_equal(got.gap, ref.gap)


@property_settings(15)
@given(blocks=block_spectra(max_blocks=3, max_size=5, max_log10_kappa=4.0), rotation=st.sampled_from(["block", "none"]),
       lr=st.floats(-4.0, 0.0), seed=st.integers(0, 2**16))
def test_adam_stop_steps_match_on_random_problems(blocks, rotation, lr, seed):
    sp = quadlab.BlockSpectrum.from_blocks([np.array(b) for b in blocks])
    problem = quadlab.BlockQuadratic(sp, rotation=rotation, seed=seed)
    opt = optim.adam(lr=[10.0 ** lr, 10.0 ** (lr / 2)])
    ref = quadlab.run(problem, opt, seeds=[seed], steps=200, tol=1e-3, method="iterate")
    got = gpu_scan.run(problem, opt, seeds=[seed], steps=200, tol=1e-3, device="emulate")
    np.testing.assert_array_equal(got.stop_step, ref.stop_step)
    np.testing.assert_array_equal(got.status, ref.status)
    np.testing.assert_array_equal(got.grad_norm, ref.grad_norm)  # both in rowdot's fixed order


def test_source_holds_the_update_statements():
    """The CUDA source is generated from UPDATES, the text the emulation runs."""
    for kind, lines in gpu_scan.UPDATES.items():
        for dtype, T in (("float64", "double"), ("float32", "float")):
            src = gpu_scan.cuda_source(kind, dtype)
            assert f"typedef {T} T;" in src
            for line in lines:
                assert f"{line};" in src


@pytest.mark.parametrize("make, kw, match", [
    (lambda: optim.adam_mini(lr=1e-3), {}, "no multi-step kernel for adam_mini"),
    (lambda: optim.adam(lr=1e-3), {"device": "tpu"}, "device must be"),
    (lambda: optim.adam(lr=1e-3), {"steps": 0}, "steps must be"),
    (lambda: optim.adam(lr=1e-3), {"tol": 2.0}, "tol is relative"),
    (lambda: "adam", {}, "optimizer must be built"),
])
def test_rejects_bad_input(make, kw, match):
    with pytest.raises(ValueError, match=match):
        gpu_scan.run(_case3(), make(), **kw)


def test_rejects_large_problems():
    big = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([np.ones(3)] * 342), seed=0, rotation="none")
    with pytest.raises(ValueError, match="exceed the kernel's 1024 threads"):
        gpu_scan.run(big, optim.adam(lr=1e-3), steps=1)


@pytest.mark.skipif(_cupy_ready(), reason="checks the message given without a GPU")
def test_gpu_without_cupy_is_one_clear_error():
    with pytest.raises(ValueError, match="needs cupy and a CUDA GPU"):
        gpu_scan.run(_case3(), optim.adam(lr=1e-3), steps=5, device="gpu")


@pytest.mark.gpu
@pytest.mark.skipif(not _cupy_ready(), reason="needs cupy and a CUDA GPU")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_kernel_reproduces_the_emulation(name, dtype):
    problem = _case3("block", dtype)
    p = gpu_scan.prepare(problem, OPTIMIZERS[name](), seeds=[0, 1, 2], steps=500, tol=1e-4)
    for got, want in zip(gpu_scan.launch(p), gpu_scan.emulate(p), strict=True):
        np.testing.assert_array_equal(got, want)


def test_run_method_gpu_scan_is_the_opt_in_path():
    problem = _case3()
    opt = OPTIMIZERS["adam"]()
    got = quadlab.run(problem, opt, seeds=[0, 1], steps=200, tol=1e-4, method="gpu_scan")
    ref = quadlab.run(problem, opt, seeds=[0, 1], steps=200, tol=1e-4, method="iterate")
    assert got.method == "gpu_scan"
    np.testing.assert_array_equal(got.stop_step, ref.stop_step)
    np.testing.assert_array_equal(got.grad_norm, ref.grad_norm)


@pytest.mark.skipif(not _cuda_host.available(), reason="needs g++ (C++20) to run the CUDA source on host threads")
@pytest.mark.parametrize("name, dtype, rotation", [
    ("adam", "float64", "block"), ("adam", "float32", "none"), ("rmsprop", "float64", "global"),
    ("gd", "float32", "block"),
])
def test_cuda_source_on_host_threads_matches_the_emulation(name, dtype, rotation, tmp_path):
    """The kernel's own CUDA text, compiled by g++ behind a thread shim (one std::thread per CUDA thread,
    std::barrier for __syncthreads), gives the emulation's bits: the source's indexing, shared memory,
    synchronisation and stop/record logic are those the emulation was tested for."""
    p = gpu_scan.prepare(_case3(rotation, dtype), OPTIMIZERS[name](), seeds=[0, 1], steps=120, tol=1e-3)
    lib = _cuda_host.build(p.kind, dtype, tmp_path)
    for got, want in zip(_cuda_host.launch(lib, p), gpu_scan.emulate(p), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (the CUDA toolkit) to compile the source")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_source_compiles_without_fused_multiply_adds(dtype, tmp_path):
    """Every kernel compiles with nvcc as cupy compiles it (--fmad=false), without a warning, and the PTX
    has no fma instruction (a contracted a·b + c would round once where the numpy path rounds twice)."""
    parts = [gpu_scan.cuda_source(kind, dtype).replace("quadlab_scan(", f"quadlab_scan_{kind}(")
             for kind in gpu_scan.UPDATES]
    head = parts[0].split("\n", 2)[1]  # the typedef, once
    src = head + "\n" + "\n".join(p.replace(head, "") for p in parts)
    cu, ptx = tmp_path / "scan.cu", tmp_path / "scan.ptx"
    cu.write_text(src)
    out = subprocess.run(["nvcc", "-ptx", "--fmad=false", "-o", str(ptx), str(cu)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr
    text = ptx.read_text()
    assert all(f"quadlab_scan_{kind}" in text for kind in gpu_scan.UPDATES)
    assert "fma." not in text


def test_gpu_scan_gives_the_iterate_paths_result_on_every_backend(xp):
    """device="auto": the kernel on cupy (where a GPU exists), the emulation on the host namespaces."""
    problem = quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000.0), seed=0, xp=xp)
    opt = optim.adam(lr=[1e-2, 1e-1])
    got = quadlab.run(problem, opt, seeds=[0, 1], steps=300, tol=1e-4, method="gpu_scan")
    ref = quadlab.run(problem, opt, seeds=[0, 1], steps=300, tol=1e-4, method="iterate")
    np.testing.assert_array_equal(got.stop_step, ref.stop_step)
    # every namespace's rowdot is quadlab._engine.ordered.block_dot's elementwise loop, in the kernel's order
    np.testing.assert_array_equal(got.grad_norm, ref.grad_norm)
    np.testing.assert_array_equal(got.gap, ref.gap)
