"""GPU throughput of the iterate path (issue 3; not a timed test).

Adam on 8 Haar-rotated blocks of 4096, 64 learning rates, float32, with xp = cupy: the throughput of
``quadlab.run`` (iterations × runs per second, host checks of the stop test included) against the batched
matmul alone, the same (8, 64, 4096) @ (8, 4096, 4096) product written into one buffer.  Target: the run
reaches at least 70% of the matmul's throughput.

    python bench/bench_gpu.py                       # the issue's configuration, needs cupy and a GPU
    python bench/bench_gpu.py --backend numpy --blocks 2 --size 256 --runs 8 --steps 50   # a dry run on CPU

Timings are interleaved (run, matmul, run, ...) and synchronised with the device; medians over --repeat.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import quadlab
from quadlab import optim, spectra
from quadlab._engine.layout import Layout


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    L, d, R = a.blocks, a.size, a.runs
    t = time.perf_counter()
    spec = spectra.rescale(spectra.scaled_blocks(spectra.log_uniform(d, 1, 10), L, 10.0), 5000.0)
    prob = quadlab.BlockQuadratic(spec, seed=0, xp=a.backend, dtype=a.dtype)
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
        b.sync()

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
        b.sync()

    run(), matmul()  # warm-up: kernels compiled, memory pools filled
    times = {"run": [], "matmul": []}
    for _ in range(a.repeat):
        for name, fn in (("run", run), ("matmul", matmul)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    per = {k: statistics.median(v) / (a.steps * R) for k, v in times.items()}
    frac = statistics.median([m / r for r, m in zip(times["run"], times["matmul"], strict=True)])
    print(f"Adam, {L} x {d}, {R} runs, {a.steps} steps, {b.dtype_name}, {b.name}")
    print(f"  quadlab.run      {per['run'] * 1e6:9.3f} us per (iteration x run)   {1 / per['run']:12.0f} /s")
    print(f"  matmul alone     {per['matmul'] * 1e6:9.3f} us per (iteration x run)   {1 / per['matmul']:12.0f} /s")
    print(f"  run throughput / matmul throughput: {frac:.3f} (target >= 0.70)")


if __name__ == "__main__":
    main()
