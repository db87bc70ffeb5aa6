"""Benchmark: storing N finished sweep points in a checkpoint, append-only (quadlab.studies.common.Checkpoint:
one fsynced JSON line per point) against rewriting the whole file on every point (what Checkpoint did before
issue 15: the points so far as one JSON object, written atomically per point, so N points cost O(N²) bytes).

    PYTHONPATH=. python bench/bench_checkpoint.py [--points 4000] [--skip-rewrite] [--no-fsync]

The value of a point is a kappa-sweep-sized record (about 1.1 KB of JSON).  Also times re-reading the
append-only file (a resumed run).  The numbers depend on the disk and on what else writes to it: fsync
dominates the append-only cost (measured 1.6 s for 4000 points on a quiet disk, 15 s while other jobs wrote;
0.14 s without fsync), and the rewrite baseline took 573-780 s for 4000 points on the same 2-core machine.

Not a test: it asserts nothing and is not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from quadlab.studies import common

VALUE = {"methods": {m: {"lr_per_seed": [0.0123456789] * 5, "steps_to_tol": 12345,
                         "steps_to_tol_per_seed": [12345] * 5, "status": "converged", "max_steps": 99999}
                     for m in ("gd_best", "gd", "adam_theory_thm", "adam_theory")},
         "r_tilde_per_seed": [1.23456789] * 5, "predicted": {"x": [3.14159] * 10}}


class RewriteCheckpoint:
    """The baseline: every put rewrites {fingerprint, points} as one JSON file (atomically, as before)."""

    def __init__(self, path):
        self.path, self.points = Path(path), {}

    def put(self, key, value):
        self.points[key] = value
        common.write_json_atomic({"fingerprint": "x", "points": self.points}, self.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=4000)
    ap.add_argument("--skip-rewrite", action="store_true", help="time only the append-only checkpoint")
    ap.add_argument("--no-fsync", action="store_true", help="replace os.fsync by a no-op (disk-independent)")
    args = ap.parse_args()
    if args.no_fsync:
        common.os.fsync = lambda _fd: None
    print(f"{args.points} points of {len(json.dumps(VALUE))} bytes of JSON each; load average "
          f"{os.getloadavg()[0]:.1f}")
    makers = [("append-only (one fsynced line per point)", lambda d: common.Checkpoint(d / "c.jsonl", {"s": 1}))]
    if not args.skip_rewrite:
        makers.append(("rewrite the whole file per point", lambda d: RewriteCheckpoint(d / "c.json")))
    for name, make in makers:
        with tempfile.TemporaryDirectory() as d:
            ck = make(Path(d))
            t0 = time.perf_counter()
            for i in range(args.points):
                ck.put(common.Checkpoint.key(i=i), VALUE)
            t = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in Path(d).iterdir())
            line = f"{name}: {t:.2f} s, file {size / 1e6:.1f} MB"
            if isinstance(ck, common.Checkpoint):
                t0 = time.perf_counter()
                n = len(common.Checkpoint(ck.path, {"s": 1}))
                line += f"; re-read {n} points in {time.perf_counter() - t0:.2f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
