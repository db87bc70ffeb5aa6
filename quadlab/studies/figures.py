"""Regenerate every theory figure into one folder (PNG and PDF), in quadlab's one figure style.

    quadlab figures [--out paper_figs/out] [--quick] [--only NAME,...] [--quiet]

Runs each figure-making study with ``--out`` pointed at the folder; a study that cannot run (for example the
block-spectrum figure when the stored spectra are missing) is reported and the others still run.  The exit
status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

#: figure name → (module under quadlab.studies, extra arguments, whether it takes --quick)
FIGURES = {
    "case1_4": ("case1_4", [], True),
    "block_spectra": ("block_spectra", [], False),
    "r_distribution": ("r_distribution", [], False),
    "heterogeneity_sweep": ("heterogeneity_sweep", [], True),
    "rotation": ("rotation", [], True),
    "kappa_sweep": ("kappa_sweep", [], True),
    "blockwise_lrs": ("blockwise_lrs", [], True),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="quadlab figures", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="paper_figs/out")
    ap.add_argument("--quick", action="store_true", help="the studies' quick settings (seconds each)")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(FIGURES)}")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    names = list(FIGURES) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        ap.error(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    failed = []
    for name in names:
        module, extra, has_quick = FIGURES[name]
        argv_ = ["--out", args.out, *extra] + (["--quick"] if args.quick and has_quick else [])
        argv_ += ["--quiet"] if args.quiet else []
        t0 = time.perf_counter()
        try:
            rc = importlib.import_module(f"quadlab.studies.{module}").main(argv_)
        except Exception as exc:  # one broken figure must not stop the others; say which and why
            rc = f"{type(exc).__name__}: {exc}"
        if rc:
            failed.append(f"{name} ({rc})")
        if not args.quiet:
            print(f"[{name}] {'ok' if not rc else 'FAILED'} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if failed:
        print("figures that failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
