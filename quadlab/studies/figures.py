"""Regenerate every theory figure into one folder (PNG and PDF), in quadlab's one figure style.

    quadlab figures [--out paper_figs/out] [--quick] [--only case1_4,kappa-sweep,...] [--quiet]

Runs each figure-making study with ``--out`` pointed at the folder; a study that cannot run (for example the
block-spectrum figure when the stored spectra are missing) is reported and the others still run.  The exit
status is non-zero if any failed.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from quadlab.studies.common import check_output_dir, comma_choices, command_name, fail, new_parser

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
#: --only takes the commands' names (kappa-sweep), and the module names (kappa_sweep) as well
COMMANDS = {command_name(module): name for name, (module, _, _) in FIGURES.items()}


def main(argv=None) -> int:
    ap = new_parser("figures", __doc__)
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for every figure (default paper_figs/out, paper_figs/out-quick with --quick)")
    ap.add_argument("--quick", action="store_true", help="the studies' quick settings (seconds each)")
    ap.add_argument("--only", type=comma_choices(COMMANDS), default=None,
                    help=f"comma-separated subset of {','.join(COMMANDS)} (the commands' names)")
    ap.add_argument("--quiet", action="store_true", help="print nothing but failures")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = Path("paper_figs/out-quick" if args.quick else "paper_figs/out")
    try:
        check_output_dir(args.out, "--out")
    except ValueError as exc:
        fail(ap, str(exc))
    names = list(FIGURES) if args.only is None else [COMMANDS[c] for c in args.only]
    failed = []
    for name in names:
        module, extra, has_quick = FIGURES[name]
        argv_ = ["--out", str(args.out), *extra] + (["--quick"] if args.quick and has_quick else [])
        argv_ += ["--quiet"] if args.quiet else []
        t0 = time.perf_counter()
        try:
            rc = importlib.import_module(f"quadlab.studies.{module}").main(argv_)
        except SystemExit as exc:  # a study's own argument error (its one line is already printed)
            rc = exc.code
        except Exception as exc:  # one broken figure must not stop the others; say which and why
            rc = f"{type(exc).__name__}: {exc}"
        if rc:
            failed.append(f"{name} ({rc})")
        if not args.quiet:
            print(f"[{name}] {'ok' if not rc else 'FAILED'} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if failed:
        print("quadlab figures: error: these figures failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0
