"""Benchmark: the closed form's first-crossing search (bisection, bounded scan) against the scan of every step.

    PYTHONPATH=. python bench/bench_stop_search.py [--repeats 3]

Both searches run on the same :class:`quadlab._engine.closed_form.Plan` (so they read the same values) and
must return the same steps; the table gives the time of each, the speed-up, and whole ``quadlab.run`` calls
(which use the bisection or the bounded scan where it is exact), also with the former scan forced (same results
asserted).  Workloads: GD, which closed form serves on any problem, on

* Case 3 (three Haar-rotated 3×3 blocks, κ = 5000) with 64 learning rates × 16 seeds, 20 000 steps;
* 4 Haar-rotated blocks of 500 (κ = 1000), 8 learning rates × 2 seeds, 20 000 steps;
* blockwise GD with the oracle block steps on Case 3, 32 multipliers × 16 seeds;
* the Adam theory form (the bounded scan) on Case 3 (16 lrs × 4 seeds) and Case 2 (4 rotated blocks of 25,
  16 lrs, the grid of ``quadlab case1_4``), and heavy ball at its tuned momentum on Case 2 (the same grid);

each at tol = 1e-6 with learning rates from 1e-3·(2/λ_max) to 1.5·(2/λ_max), so some runs converge, some
never reach tol and some diverge.  Prints the table and the load average; asserts only that the two
searches agree.  Not collected by pytest.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import numpy as np

import quadlab
from quadlab import optim, spectra
from quadlab._engine import stop_search
from quadlab.runner import DIVERGENCE_FACTOR, _closed_plan, _starts


def _plan(problem, opt, seeds):
    config = {k: np.repeat(v, len(seeds)) for k, v in opt.grid().items()}
    plan, g0 = _closed_plan(problem, opt, config, _starts(problem, None, list(seeds), opt.n_configs))
    return plan, np.linalg.norm(g0, axis=1)


def _workloads():
    c3 = quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000.0), seed=0)
    big = quadlab.BlockQuadratic(
        quadlab.BlockSpectrum.from_blocks([np.geomspace(1.0, 1000.0, 500) for _ in range(4)]), seed=0)
    edge3, edge_big = 2.0 / 5000.0, 2.0 / 1000.0
    yield "Case 3, GD, 64 lrs x 16 seeds", c3, optim.gd(lr=np.geomspace(1e-3, 1.5, 64) * edge3), range(16)
    yield "4 x 500, GD, 8 lrs x 2 seeds", big, optim.gd(lr=np.geomspace(1e-3, 1.5, 8) * edge_big), range(2)
    yield "Case 3, blockwise GD, 32 x 16", c3, optim.blockwise_gd(lr=np.geomspace(1e-2, 1.5, 32)), range(16)
    # the bounded scan: the Adam theory form's P = diag(1/|∇f(w_0)|) varies inside each rotated block
    yield "Case 3, Adam theory form, 16 lrs x 4 seeds", c3, optim.adam_theory(lr=np.geomspace(1e-4, 1e2, 16)), range(4)
    try:
        from quadlab import stored

        c2 = quadlab.BlockQuadratic(stored.resnet18_case(kappa=5000.0), seed=0)
        yield "Case 2, Adam theory form, 16 lrs x 1 seed", c2, optim.adam_theory(lr=np.geomspace(1e-4, 1e2, 16)), [0]
        # heavy ball (kind 4): runs the bounds clear of any crossing are not scanned
        hb = quadlab.theory.heavy_ball_optimum(c2)
        yield ("Case 2, heavy ball, 16 lrs x 1 seed", c2,
               optim.heavy_ball(lr=np.geomspace(1e-6, 1e-1, 16), momentum=hb.momentum), [0])
    except ImportError:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--tol", type=float, default=1e-6)
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print("| workload | runs | auto search | scan | speed-up | quadlab.run | quadlab.run with the scan |")
    print("|---|---|---|---|---|---|---|")
    for name, problem, opt, seeds in _workloads():
        plan, g0n = _plan(problem, opt, seeds)
        R = plan.R
        args = (plan, np.arange(R), np.full(R, a.steps), a.tol * g0n, DIVERGENCE_FACTOR * g0n, True)
        times = {"auto": [], "scan": []}
        out = {}
        with np.errstate(all="ignore"):
            for _ in range(a.repeats):
                for s in times:  # round-robin, so background load falls on both alike
                    t0 = time.perf_counter()
                    out[s] = stop_search.first_stop(*args, search=s)
                    times[s].append(time.perf_counter() - t0)
        assert all((x == y).all() for x, y in zip(out["auto"], out["scan"], strict=True)), name
        t_run, t_old = [], []
        auto = stop_search.first_stop
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            res = quadlab.run(problem, opt, seeds=list(seeds), steps=a.steps, tol=a.tol)
            t_run.append(time.perf_counter() - t0)
            # the same call with the former search (the runner calls stop_search.first_stop)
            stop_search.first_stop = functools.partial(auto, search="scan")
            try:
                t0 = time.perf_counter()
                old = quadlab.run(problem, opt, seeds=list(seeds), steps=a.steps, tol=a.tol)
                t_old.append(time.perf_counter() - t0)
            finally:
                stop_search.first_stop = auto
            assert (old.stop_step == res.stop_step).all() and (old.status == res.status).all(), name
        st = dict(zip(*np.unique(res.status, return_counts=True), strict=True))
        ta, ts = statistics.median(times["auto"]), statistics.median(times["scan"])
        print(f"| {name} | {R} ({', '.join(f'{k} {v}' for k, v in st.items())}) | {ta * 1e3:.1f} ms | "
              f"{ts * 1e3:.1f} ms | {ts / ta:.0f}x | {statistics.median(t_run) * 1e3:.1f} ms | "
              f"{statistics.median(t_old) * 1e3:.1f} ms |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
