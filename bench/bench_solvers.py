"""Benchmarks of the foundation and solver issues (not timed tests): build times, the iterate path against a
bare batched matmul and against the typical PyTorch loop, and the closed form.

    PYTHONPATH=. python bench/bench_solvers.py [--repeat 7] [--steps 1000] [--skip-torch] [--skip-large]

Timings that are compared are interleaved (A, B, A, B, ...) so that a change in the machine's load hits both
alike; each line gives the median over --repeat, and a ratio is the median of the per-repeat ratios (the
iterate section also gives the ratio of the fastest rounds, the least disturbed by other jobs).  The
load average is printed before and after each section: this 2-core machine is shared, and a busy second
core can slow a two-threaded BLAS call several times over."""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import quadlab
from quadlab import optim, spectra
from quadlab._engine import kernels
from quadlab._engine.layout import Layout


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def clock(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(fns: dict, repeat: int) -> dict:
    """name → list of times, the functions run in turn, ``repeat`` rounds."""
    out = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            out[k].append(clock(fn))
    return out


def med(ts) -> float:
    return statistics.median(ts)


def ratio(a, b) -> float:
    return statistics.median([x / y for x, y in zip(a, b, strict=True)])


def block_spectrum(L, d, kappa=5000.0):
    # heterogeneous by construction: block l spans one slice of a log-uniform spectrum
    return spectra.rescale(spectra.scaled_blocks(spectra.log_uniform(d, 1, 10), L, 10.0), kappa)


def bench_build(repeat, large):
    print(f"## Build (BlockQuadratic, rotation='block', float64)   [{load()}]")
    for name, spec in [("simple heterogeneous (9)", spectra.simple_heterogeneous()),
                       ("simple homogeneous (9)", spectra.simple_homogeneous()),
                       ("4 x 25 (100)", block_spectrum(4, 25))]:
        t = med(interleaved({"b": lambda spec=spec: quadlab.BlockQuadratic(spec, seed=0)}, repeat)["b"])
        print(f"  {name:<28} {t * 1e3:8.2f} ms")
    if large:
        spec = block_spectrum(8, 2500)
        t = clock(lambda: quadlab.BlockQuadratic(spec, seed=0))
        print(f"  {'8 x 2500 (20000)':<28} {t:8.2f} s   (target < 30 s)")


def bench_iterate(repeat, steps, torch_on):
    print(f"## Iterate path: Adam, 4 Haar-rotated blocks of 500, 8 learning rates, float64, {steps} steps   [{load()}]")
    prob = quadlab.BlockQuadratic(block_spectrum(4, 500), seed=0)
    R = 8
    opt = optim.adam(lr=np.geomspace(1e-4, 1e-1, R))
    quadlab.run(prob, opt, steps=10, method="iterate")  # warm-up
    lay = Layout(prob)
    X = lay.split(prob.backend.asarray(np.random.default_rng(0).standard_normal((R, prob.n))))[0]
    H = prob.groups[0].H
    Y = np.empty_like(X)

    def bare():  # the same (4, 8, 500) @ (4, 500, 500) product, a fresh result each time
        for _ in range(steps):
            X @ H

    def bare_out():  # ... written into one buffer, as the runner does on numpy
        for _ in range(steps):
            np.matmul(X, H, out=Y)

    def run_numpy():  # the same run with the fused kernel switched off (numpy's one pass per operation)
        os.environ["QUADLAB_NUMBA"] = "0"
        try:
            quadlab.run(prob, opt, steps=steps, method="iterate", record="log")
        finally:
            del os.environ["QUADLAB_NUMBA"]

    fused = kernels.available()
    ts = interleaved({
        "run": lambda: quadlab.run(prob, opt, steps=steps, method="iterate", record="log"),
        "mm": bare,
        "mm_out": bare_out,
        "run_numpy": run_numpy,
    }, repeat)
    per = {k: med(v) / (steps * R) for k, v in ts.items()}
    how = "fused numba step" if fused else "numpy path: numba not installed or QUADLAB_NUMBA=0"
    print(f"  quadlab.run ({how}) {per['run'] * 1e6:8.2f} us per (iteration x run)")
    print(f"  quadlab.run, numpy path       {per['run_numpy'] * 1e6:8.2f} us per (iteration x run)   "
          f"ratio to matmul {ratio(ts['run_numpy'], ts['mm']):.3f}")
    print(f"  batched matmul alone          {per['mm'] * 1e6:8.2f} us per (iteration x run)   "
          f"ratio {ratio(ts['run'], ts['mm']):.3f} (target <= 1.2)")
    print(f"  batched matmul alone, out=    {per['mm_out'] * 1e6:8.2f} us per (iteration x run)   "
          f"ratio {ratio(ts['run'], ts['mm_out']):.3f}")
    print("  per-repeat ratios run/matmul: " + " ".join(f"{a / b:.3f}" for a, b in zip(ts["run"], ts["mm"], strict=True)))
    # the fastest round of each is the least disturbed by other jobs on the machine
    print(f"  fastest rounds: run {min(ts['run']) / (steps * R) * 1e6:.2f} us, matmul {min(ts['mm']) / (steps * R) * 1e6:.2f} us, "
          f"matmul out= {min(ts['mm_out']) / (steps * R) * 1e6:.2f} us: ratio {min(ts['run']) / min(ts['mm']):.3f} "
          f"(out= {min(ts['run']) / min(ts['mm_out']):.3f})")
    print(f"  [{load()}]")
    if torch_on:
        import torch

        torch.set_num_threads(2)
        Hd = torch.tensor(np.asarray(prob.dense()), dtype=torch.float64)
        w0 = np.random.default_rng(0).standard_normal(prob.n)
        tsteps = max(50, steps // 10)

        def torch_loop():
            for lr in np.geomspace(1e-4, 1e-1, R):  # one learning rate at a time, as people write it
                w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
                o = torch.optim.Adam([w], lr=float(lr))
                for _ in range(tsteps):
                    o.zero_grad()
                    loss = 0.5 * w @ (Hd @ w)
                    loss.backward()
                    o.step()

        tt = interleaved({
            "torch": torch_loop,
            "run": lambda: quadlab.run(prob, opt, steps=steps, method="iterate", record="log"),
        }, max(1, repeat // 2))
        per_t = [t / (tsteps * R) for t in tt["torch"]]
        per_q = [t / (steps * R) for t in tt["run"]]
        print(f"  torch.optim.Adam + autograd (dense H, one lr at a time) {med(per_t) * 1e6:8.2f} us per (iteration x run)"
              f"   quadlab is {ratio(per_t, per_q):.1f}x faster per (iteration x run) (target >= 25)")
        print(f"  [{load()}]")


def bench_closed(repeat):
    print(f"## Closed form: 4 x 25 problem, 64 learning rates, 200 recorded steps up to 1e5   [{load()}]")
    prob = quadlab.BlockQuadratic(block_spectrum(4, 25), seed=0)
    rec = np.unique(np.geomspace(1, 1e5, 200).astype(np.int64))
    opts = {"gd": optim.gd(lr=np.geomspace(1e-6, 4e-4, 64)), "adam_theory": optim.adam_theory(lr=np.geomspace(1e-3, 1.0, 64))}
    for opt in opts.values():
        quadlab.run(prob, opt, steps=100_000, record=rec, method="closed_form")  # warm-up
    ts = interleaved({k: (lambda o=o: quadlab.run(prob, o, steps=100_000, record=rec, method="closed_form"))
                      for k, o in opts.items()}, repeat)
    for k, v in ts.items():
        print(f"  {k:<12} {med(v) * 1e3:8.1f} ms  (min {min(v) * 1e3:.1f}, max {max(v) * 1e3:.1f})   (target < 100 ms)")
    print(f"  [{load()}]")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    a = ap.parse_args()
    bench_build(a.repeat, not a.skip_large)
    bench_closed(a.repeat)
    torch_on = not a.skip_torch
    if torch_on:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("  (torch not installed: pip install torch==2.13.0 for the PyTorch comparison)")
            torch_on = False
    bench_iterate(a.repeat, a.steps, torch_on)


if __name__ == "__main__":
    main()
