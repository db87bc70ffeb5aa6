"""The same table on every CPU: ``quadlab case1_4 --json`` natively, with numpy's SIMD dispatch lowered, and with
the lowered dispatch plus OpenBLAS's Sandybridge kernels; every cell compared.

A one-off measurement, not a test: OPENBLAS_CORETYPE swaps the BLAS kernels, which the test suite never does.
The cells are every optimizer's lr, steps to tol (median and per seed), seeds reached, the stability mark and
range, and the per-seed protocol's record.  Also reported: which other JSON fields differ (floats such as JS⁰
that are printed to a few digits) and each run's wall time.

    PYTHONPATH=. python bench/bench_portability.py [--quick] [--cases 1,2,3,4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CELL_FIELDS = ("lr", "steps_to_tol", "steps_to_tol_per_seed", "seeds_reached", "unstable", "range", "per_seed")


def lowered() -> str:
    """The SIMD targets numpy dispatches to on this CPU (all of them are switched off)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return " ".join(n for n in __cpu_dispatch__ if __cpu_features__.get(n))


def run(env_extra: dict, out: Path, args) -> tuple[dict, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")}
    env.update(env_extra)
    cmd = [sys.executable, "-m", "quadlab", "case1_4", "--quiet", "--cases", args.cases, "--json", str(out),
           "--out", str(out.parent / out.stem)]
    if args.quick:
        cmd.append("--quick")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return json.loads(out.read_text()), time.perf_counter() - t0


def cells(rec: dict) -> list:
    return [{k: {f: o.get(f) for f in CELL_FIELDS} for k, o in c["optimizers"].items()} for c in rec["cases"]]


def differing(a, b, path=""):
    if isinstance(a, dict):
        for k in a:
            yield from differing(a[k], b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b)):
            yield from differing(u, v, f"{path}[{i}]")
    elif a != b:
        yield path, a, b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", default="1,2,3,4")
    args = ap.parse_args(argv)
    low = lowered()
    setups = {"native": {}, "lowered": {"NPY_DISABLE_CPU_FEATURES": low},
              "lowered+Sandybridge": {"NPY_DISABLE_CPU_FEATURES": low, "OPENBLAS_CORETYPE": "Sandybridge"}}
    print(f"numpy dispatch lowered: NPY_DISABLE_CPU_FEATURES={low!r}")
    with tempfile.TemporaryDirectory() as tmp:
        got = {name: run(extra, Path(tmp) / f"{name.replace('+', '_')}.json", args) for name, extra in setups.items()}
    ref, _ = got["native"]
    same = True
    for name, (rec, secs) in got.items():
        eq = cells(rec) == cells(ref)
        same &= eq
        other = [p for p, _, _ in differing(ref, rec) if ".optimizers." not in p]
        print(f"{name:<22} {secs:7.1f} s   cells {'identical' if eq else 'DIFFER'}"
              + (f"; other fields differing: {', '.join(other)}" if other else "; whole JSON identical"))
        if not eq:
            for p, a, b in differing(cells(ref), cells(rec)):
                print(f"    {p}: {a!r} vs {b!r}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
