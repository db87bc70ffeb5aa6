"""GPU benchmarks of the iterate path (issues 3 and 20; not a timed test).

Two parts, each printing its table (and the load average of the host):

throughput  Adam on 8 Haar-rotated blocks of 4096, 64 learning rates, float32: the throughput of
            ``quadlab.run`` (iterations × runs per second, host checks of the stop test included) against the
            batched matmul alone (cuBLAS), the same (8, 64, 4096) @ (8, 4096, 4096) product written into one
            buffer.  Target: the run reaches at least 70 % of the matmul's throughput.
w3          The issue's W3: Case 3 (three Haar-rotated 3×3 blocks, κ = 5000), Adam β1 = 0.9, β2 = 0.999,
            float64, 64 learning rates × 16 seeds = 1,024 runs (W3a) and 8 × 2 = 16 runs (W3b), 2,000 steps:
            ``quadlab.run(method="gpu_scan")`` (one kernel launch, :mod:`quadlab._engine.gpu_scan`) and
            ``method="iterate"`` against JAX + optax, ``jit(vmap(scan))`` on the GPU, each warmed up first.
            Every run takes all steps (no tol, as JAX's scan does); the gpu_scan and iterate results are
            compared (stop steps and recorded norms, bit for bit).

    python bench/bench_gpu.py                        # both parts, the issue's sizes: needs cupy and a GPU
    python bench/bench_gpu.py --part w3              # one part
    python bench/bench_gpu.py --backend numpy --blocks 2 --size 256 --runs 8 --steps 50 --w3-steps 100
                                                     # a dry run on the CPU (gpu_scan then runs its emulation)

Without cupy or a CUDA device the script stops at once with one line ``bench_gpu.py: error: ...`` and exit
status 2, unless ``--backend numpy`` asks for the dry run.  Timings are interleaved and synchronised with the
device; medians over --repeat.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import quadlab
from quadlab import optim, spectra
from quadlab._engine.layout import Layout
from quadlab.backend import BackendUnavailableError, get_backend


def _fail(msg: str) -> int:
    print(f"bench_gpu.py: error: {msg}", file=sys.stderr)
    return 2


def _timed(fns: dict, repeat: int, sync) -> dict:
    """Median seconds of each function, called round-robin ``repeat`` times after one warm-up call each."""
    for fn in fns.values():
        fn()
        sync()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def throughput(a, b) -> None:
    L, d, R = a.blocks, a.size, a.runs
    t = time.perf_counter()
    spec = spectra.rescale(spectra.scaled_blocks(spectra.log_uniform(d, 1, 10), L, 10.0), 5000.0)
    prob = quadlab.BlockQuadratic(spec, seed=0, xp=b, dtype=a.dtype)
    b = prob.backend
    b.sync()
    print(f"build {L} x {d} on {b.name} ({b.dtype_name}): {time.perf_counter() - t:.1f} s")
    opt = optim.adam(lr=np.geomspace(1e-5, 1e-2, R))
    lay = Layout(prob)
    X = lay.split(b.asarray(np.random.default_rng(0).standard_normal((R, prob.n))))
    Hs = [g.H for g in prob.groups]
    Y = lay.hvp(X)

    def run():
        quadlab.run(prob, opt, steps=a.steps, method="iterate", record="log")

    if b.name in ("numpy", "cupy"):
        def product(x, H, y):
            b.xp.matmul(x, H, out=y)
    else:  # the array API has no out=
        def product(x, H, _y):  # same signature as the in-place branch; the result is discarded
            x @ H

    def matmul():
        for _ in range(a.steps):
            for x, H, y in zip(X, Hs, Y, strict=True):
                product(x, H, y)

    med = _timed({"run": run, "matmul": matmul}, a.repeat, b.sync)
    per = {k: v / (a.steps * R) for k, v in med.items()}
    print(f"\n## throughput: Adam, {L} x {d}, {R} runs, {a.steps} steps, {b.dtype_name}, {b.name}")
    print("| | us per (iteration x run) | per second |")
    print("|---|---|---|")
    for k, label in (("run", "quadlab.run (iterate)"), ("matmul", "batched matmul alone")):
        print(f"| {label} | {per[k] * 1e6:.3f} | {1 / per[k]:.0f} |")
    print(f"run throughput / matmul throughput: {med['matmul'] / med['run']:.3f} (target >= 0.70)")


def _jax_w3(prob, E0, lrs, steps):
    """JAX + optax: jit(vmap(scan)) of Adam on the dense H, on JAX's default device; None without a GPU."""
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as exc:
        return None, f"JAX/optax not installed ({exc})"
    jax.config.update("jax_enable_x64", True)
    if jax.default_backend() != "gpu":
        return None, f"JAX has no GPU backend here (default backend {jax.default_backend()!r})"
    H = jnp.asarray(prob.backend.to_numpy(prob.dense()), dtype=jnp.float64)

    def one(e0, lr):
        opt = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)

        def body(carry, _):
            e, st = carry
            g = H @ e
            upd, st = opt.update(g, st)
            return (e + upd, st), jnp.dot(g, g)

        (e, _), gn2 = jax.lax.scan(body, (e0, opt.init(e0)), None, length=steps)
        return e, gn2

    f = jax.jit(jax.vmap(one))
    E0j, lrj = jnp.asarray(E0), jnp.asarray(lrs)

    def call():
        e, gn2 = f(E0j, lrj)
        e.block_until_ready()
        return gn2

    return call, None


def w3(a, b) -> None:
    prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000.0), seed=0, xp=b, dtype="float64")
    b = prob.backend
    print(f"\n## W3: Case 3, Adam (0.9, 0.999), float64, {a.w3_steps} steps, backend {b.name}")
    print("| workload | runs | gpu_scan | iterate | JAX+optax | gpu_scan / JAX | iterate / JAX |")
    print("|---|---|---|---|---|---|---|")
    for label, n_lr, n_seed in (("W3a", a.w3_lrs, a.w3_seeds), ("W3b", 8, 2)):
        lrs = np.geomspace(1e-4, 1e-1, n_lr)
        opt = optim.adam(lr=lrs, b1=0.9, b2=0.999)
        seeds = list(range(n_seed))
        out = {}

        def scan_run(opt=opt, seeds=seeds, out=out):
            out["scan"] = quadlab.run(prob, opt, seeds=seeds, steps=a.w3_steps, method="gpu_scan")

        def iterate_run(opt=opt, seeds=seeds, out=out):
            out["iter"] = quadlab.run(prob, opt, seeds=seeds, steps=a.w3_steps, method="iterate")

        fns = {"scan": scan_run, "iter": iterate_run}
        E0 = np.tile(np.stack([np.random.default_rng(s).standard_normal(prob.n) for s in seeds]), (n_lr, 1))
        jcall, why = _jax_w3(prob, E0, np.repeat(lrs, n_seed), a.w3_steps)
        if jcall is not None:
            fns["jax"] = jcall
        med = _timed(fns, a.repeat, b.sync)
        agree = bool((out["scan"].stop_step == out["iter"].stop_step).all()
                     and np.array_equal(out["scan"].grad_norm, out["iter"].grad_norm, equal_nan=True))
        j = med.get("jax")
        jtxt = f"{j * 1e3:.1f} ms" if j else "n/a"
        r1 = f"{med['scan'] / j:.2f}x" if j else "n/a"
        r2 = f"{med['iter'] / j:.2f}x" if j else "n/a"
        print(f"| {label} | {n_lr * n_seed} | {med['scan'] * 1e3:.1f} ms | {med['iter'] * 1e3:.1f} ms | {jtxt} | "
              f"{r1} | {r2} |")
        print(f"  gpu_scan and iterate: same stop steps and recorded norms (bit for bit): {agree}" + (f"; JAX: {why}" if why else ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "throughput", "w3"), default="all")
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--dtype", default="float32", help="throughput part (W3 is float64, as in the issue)")
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--w3-steps", type=int, default=2000)
    ap.add_argument("--w3-lrs", type=int, default=64)
    ap.add_argument("--w3-seeds", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    for name in ("blocks", "size", "runs", "steps", "w3_steps", "w3_lrs", "w3_seeds", "repeat"):
        if getattr(a, name) < 1:
            return _fail(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    try:
        b = get_backend(a.backend)
    except BackendUnavailableError as exc:
        return _fail(f"needs cupy and a CUDA GPU ({exc}); '--backend numpy' runs a CPU dry run")
    except ValueError as exc:
        return _fail(str(exc))
    print(f"load average: {os.getloadavg()}")
    if a.part in ("all", "throughput"):
        throughput(a, b)
    if a.part in ("all", "w3"):
        w3(a, b)
    print(f"load average: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
