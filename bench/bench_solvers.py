"""Benchmarks of the foundation and solver issues (not timed tests): build times, the iterate path against a
bare batched matmul and against the typical PyTorch loop, and the closed form.

    python bench/bench_solvers.py [--repeat 3] [--skip-torch] [--skip-large]

Prints one line per measurement (median of --repeat)."""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import quadlab
from quadlab import optim, spectra
from quadlab.layout import Layout


def timed(fn, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def block_spectrum(L, d, kappa=5000.0):
    # heterogeneous by construction: block l spans one slice of a log-uniform spectrum
    return spectra.rescale(spectra.scaled_blocks(spectra.log_uniform(d, 1, 10), L, 10.0), kappa)


def bench_build(repeat, large):
    print("## Build (BlockQuadratic, rotation='block', float64)")
    for name, spec in [("simple heterogeneous (9)", spectra.simple_heterogeneous()),
                       ("simple homogeneous (9)", spectra.simple_homogeneous()),
                       ("4 x 25 (100)", block_spectrum(4, 25))]:
        t = timed(lambda: quadlab.BlockQuadratic(spec, seed=0), repeat)
        print(f"  {name:<28} {t * 1e3:8.2f} ms")
    if large:
        spec = block_spectrum(8, 2500)
        t = timed(lambda: quadlab.BlockQuadratic(spec, seed=0), 1)
        print(f"  {'8 x 2500 (20000)':<28} {t:8.2f} s   (target < 30 s)")


def bench_iterate(repeat, steps, torch_on):
    print("## Iterate path: Adam, 4 Haar-rotated blocks of 500, 8 learning rates, float64")
    prob = quadlab.BlockQuadratic(block_spectrum(4, 500), seed=0)
    R = 8
    opt = optim.adam(lr=np.geomspace(1e-4, 1e-1, R))
    quadlab.run(prob, opt, steps=10, method="iterate")  # warm-up
    t_run = timed(lambda: quadlab.run(prob, opt, steps=steps, method="iterate", record="log"), repeat)
    lay = Layout(prob)
    X = lay.split(prob.backend.asarray(np.random.default_rng(0).standard_normal((R, prob.n))))
    H = prob.groups[0].H

    def bare():
        for _ in range(steps):
            X[0] @ H
    t_mm = timed(bare, repeat)
    per_run = t_run / (steps * R)
    per_mm = t_mm / (steps * R)
    print(f"  quadlab.run          {per_run * 1e6:8.2f} us per (iteration x run)")
    print(f"  batched matmul alone {per_mm * 1e6:8.2f} us per (iteration x run)   ratio {t_run / t_mm:.3f} (target <= 1.2)")
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
        t_t = timed(torch_loop, max(1, repeat - 1)) / (tsteps * R)
        print(f"  torch.optim.Adam + autograd (dense H, one lr at a time) {t_t * 1e6:8.2f} us per (iteration x run)"
              f"   quadlab is {t_t / per_run:.1f}x faster (target >= 25)")


def bench_closed(repeat):
    print("## Closed form: 4 x 25 problem, 64 learning rates, 200 recorded steps up to 1e5")
    prob = quadlab.BlockQuadratic(block_spectrum(4, 25), seed=0)
    rec = np.unique(np.geomspace(1, 1e5, 200).astype(np.int64))
    for opt in (optim.gd(lr=np.geomspace(1e-6, 4e-4, 64)), optim.adam_theory(lr=np.geomspace(1e-3, 1.0, 64))):
        quadlab.run(prob, opt, steps=100_000, record=rec, method="closed_form")
        t = timed(lambda: quadlab.run(prob, opt, steps=100_000, record=rec, method="closed_form"), repeat)
        print(f"  {opt.name:<12} {t * 1e3:8.1f} ms   (target < 100 ms)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2000)
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
