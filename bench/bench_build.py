"""Benchmark: time to build a BlockQuadratic (rotation="block", float64, numpy backend).

    PYTHONPATH=. python bench/bench_build.py [--repeats 5] [--small-repeats 50] [--baseline REV] [--skip-large]

Problems: the paper's two 9-dimensional simple cases, 4 blocks of 25 (n = 100) and 8 blocks of 2500
(n = 20,000), the last two with the spectrum bench/bench_solvers.py uses (log-uniform blocks scaled apart,
rescaled to κ = 5000).  Each line is the median of the repeats, with min and max, and the 1-minute load
average seen at the repeats (min–max): this 2-core machine is shared, and a busy second core can slow a
two-threaded BLAS call many times over, so a number is only meaningful next to its load.

``--baseline REV`` also times quadlab/problem.py as it was at git revision REV (loaded from ``git show``
next to the working tree's other modules), interleaved with the current code repeat by repeat so that the
same load falls on both, and reports max |H_new − H_old| / λ_max to show that both build the same H.

Not a test: it asserts nothing and is not collected by pytest.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy

from quadlab import spectra
from quadlab.problem import BlockQuadratic


def block_spectrum(L, d, kappa=5000.0):
    # the same spectrum as bench/bench_solvers.py: block l spans one slice of a log-uniform spectrum
    return spectra.rescale(spectra.scaled_blocks(spectra.log_uniform(d, 1, 10), L, 10.0), kappa)


def load1() -> float:
    return os.getloadavg()[0]


def baseline_class(rev: str):
    """BlockQuadratic from quadlab/problem.py at git revision ``rev``, importing the current quadlab's other
    modules (backend, spectra)."""
    src = subprocess.run(["git", "show", f"{rev}:quadlab/problem.py"], check=True, capture_output=True,
                         text=True).stdout
    name = "quadlab._problem_baseline"
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    mod.__package__ = "quadlab"
    sys.modules[name] = mod  # dataclasses look the module up while the class body runs
    exec(compile(src, f"{rev}:quadlab/problem.py", "exec"), mod.__dict__)
    return mod.BlockQuadratic


def timed(fns: dict, repeats: int):
    """Run every builder ``repeats`` times, round-robin.  Returns {name: [(seconds, load1)]}, last outputs."""
    out = {k: [] for k in fns}
    last = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            last.pop(k, None)  # free the previous problem first: the large one holds 400 MB
            t = time.perf_counter()
            last[k] = fn()
            out[k].append((time.perf_counter() - t, load1()))
            if out[k][-1][0] >= 1:  # progress for the long builds only
                print(f"  [{k}: {out[k][-1][0]:.2f} s at load {out[k][-1][1]:.2f}]", file=sys.stderr, flush=True)
    return out, last


def fmt_time(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.2f} ms"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "quadlab/problem.py"], check=True,
                               capture_output=True, text=True).stdout.strip()
        rev += " + uncommitted quadlab/problem.py" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        rev = "?"
    return (f"{cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}; "
            f"commit {rev}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the 8 x 2500 build")
    ap.add_argument("--small-repeats", type=int, default=50, help="repeats of each small build")
    ap.add_argument("--baseline", metavar="REV", help="also time quadlab/problem.py at this git revision")
    ap.add_argument("--skip-large", action="store_true", help="leave out the 8 x 2500 problem")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    print(f"# BlockQuadratic build times, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"# {machine()}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    classes = {"current": BlockQuadratic}
    if args.baseline:
        classes[f"baseline {args.baseline}"] = baseline_class(args.baseline)

    problems = [("simple heterogeneous (n=9)", spectra.simple_heterogeneous(), args.small_repeats),
                ("simple homogeneous (n=9)", spectra.simple_homogeneous(), args.small_repeats),
                ("4 x 25 (n=100)", block_spectrum(4, 25), args.small_repeats)]
    if not args.skip_large:
        problems.append(("8 x 2500 (n=20000)", block_spectrum(8, 2500), args.repeats))

    print()
    print("| problem | code | median | min | max | repeats | load (1 min) |")
    print("|---|---|---|---|---|---|---|")
    for name, spec, repeats in problems:
        fns = {k: (lambda C=C, spec=spec: C(spec, rotation="block", seed=args.seed)) for k, C in classes.items()}
        res, last = timed(fns, repeats)
        for k, rows in res.items():
            ts = [t for t, _ in rows]
            ls = [l for _, l in rows]
            print(f"| {name} | {k} | {fmt_time(statistics.median(ts))} | {fmt_time(min(ts))} | "
                  f"{fmt_time(max(ts))} | {len(ts)} | {min(ls):.2f}–{max(ls):.2f} |", flush=True)
        if len(last) == 2:
            # group by group rather than dense(): the dense 8 x 2500 matrix alone would be 3.2 GB
            a, b = last.values()
            diff = max(float(np.abs(np.asarray(ga.H) - np.asarray(gb.H)).max())
                       for ga, gb in zip(a.groups, b.groups, strict=True))
            print(f"| {name} | max abs(H_current − H_baseline) / λ_max = {diff / spec.lambda_max:.1e} | | | | | |")
        del last
    print()
    print(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
