"""Benchmark: a 32-task sweep run serially in this process against 2 dask workers (a LocalCluster of two
one-thread processes, quadlab.dist), on the same machine; prints the throughput ratio of one run.

    PYTHONPATH=. python bench/bench_dist.py [--workers 2] [--steps 20000]

The sweep (quadlab.sweep): Case 3 and Case 4 at 16 values of κ in [200, 6400] (32 problem points) × Adam on
an lr × β1 grid of 3 × 2 with 8 seeds: 32 tasks of 48 iterated runs each, every task one batched run.  Both
sides write their records to a Checkpoint file (one fsynced line per task), as `quadlab sweep` does.

Timed: the 32 tasks after a warm-up task on every process (numba's cached kernels are loaded once per process,
a second or more that a long sweep pays once); the cluster's start-up is timed separately and reported, with
the ratio it would give if it were counted.  The records of both runs are checked equal (all but the wall
time); the script exits 1 if they differ.  Throughput ratio = serial seconds / cluster seconds (the target on
a quiet 2-core machine: ≥ 1.7).  "sum of task s" adds up the tasks' own wall times: equal on both sides when
each worker has a core to itself; on a loaded machine the ratio says how much CPU the other jobs left.

Not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from quadlab import sweep
from quadlab.dist import Executor
from quadlab.studies.common import Checkpoint


def spec(steps: int) -> dict:
    kappas = [float(f"{k:.4g}") for k in np.geomspace(200, 6400, 16)]
    return {"steps": steps, "tol": 1e-6, "seeds": 8, "method": "iterate",
            "problem": [{"case": ["simple_heterogeneous", "simple_homogeneous"], "kappa": kappas}],
            # each task tunes Adam's lr (tune_lr: a log grid, then refinements): tens of batched runs, long
            # enough (about 0.2 s with the compiled scan) that the workers' share, not dask's overhead, decides
            "optimizer": [{"name": "adam", "b1": 0.9, "tune": {"lr_range": [1e-4, 1e-1], "points": 64, "refine": 3}}]}


def _warm(_spec):
    """One small iterated run: loads numba's cached kernels in the process that runs it."""
    task = sweep.expand({"steps": 50, "problem": [{"case": "case3", "kappa": 500.0}],
                         "optimizer": [{"name": "adam", "lr": 0.01}], "method": "iterate"})[0]
    return len(sweep.run_task(task))


def timed(ex: Executor, tasks: list, folder: Path) -> tuple[float, list]:
    store = Checkpoint(folder / "records.jsonl", {"bench": "dist"}, fresh=True)
    t0 = time.perf_counter()
    values = ex.map(sweep.run_task, tasks, store=store)
    return time.perf_counter() - t0, values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20000, help="step cap per run (sets the task length)")
    args = ap.parse_args()
    tasks = sweep.expand(spec(args.steps))
    assert len(tasks) == 32
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with Executor() as ex:
            _warm(None)
            t_serial, v_serial = timed(ex, tasks, tmp)
            # the same serial sweep on one core, as each worker computes (numba's scan threads held to one)
            import numba

            before = numba.get_num_threads()
            numba.set_num_threads(1)
            try:
                t_one, v_one = timed(ex, tasks, tmp)
            finally:
                numba.set_num_threads(before)
        t0 = time.perf_counter()
        with Executor("local", workers=args.workers) as ex:
            client = ex.start()
            client.run(_warm, None)  # on every worker
            t_start = time.perf_counter() - t0
            t_dask, v_dask = timed(ex, tasks, tmp)

    def strip(values):
        return [[{k: v for k, v in r.items() if k != "seconds"} for r in rows] for rows in values]

    same = strip(v_serial) == strip(v_dask) == strip(v_one)
    runs = sum(len(v) for v in v_serial)
    load = os.getloadavg()
    print(f"32 tasks, {runs} runs, step cap {args.steps}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} CPUs")
    def busy(values):  # the tasks' own wall time, summed: compute, without the executor around it
        return sum(rows[0]["seconds"] for rows in values)

    print(f"{'':28}{'seconds':>9}{'tasks/s':>9}{'sum of task s':>15}")
    print(f"{'serial (this process)':28}{t_serial:9.2f}{32 / t_serial:9.2f}{busy(v_serial):15.2f}")
    print(f"{'serial, one core':28}{t_one:9.2f}{32 / t_one:9.2f}{busy(v_one):15.2f}")
    print(f"{f'dask, {args.workers} workers':28}{t_dask:9.2f}{32 / t_dask:9.2f}{busy(v_dask):15.2f}")
    print(f"{'cluster start-up + warm-up':28}{t_start:9.2f}")
    print(f"throughput ratio against one core (serial one-core s / dask s): {t_one / t_dask:.2f}x; "
          f"against the default serial run (the scan's threads on every core): {t_serial / t_dask:.2f}x; "
          f"with the start-up counted: {t_serial / (t_dask + t_start):.2f}x")
    print(f"records equal (all but wall time): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
