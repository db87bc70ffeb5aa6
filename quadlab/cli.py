"""The ``quadlab`` command: the studies, the figures, the theory report and the extraction.

    quadlab case1_4 [--quick] [--json PATH] ...     the paper's four quadratic cases (studies/case1_4.py)
    quadlab <study> [options]                        any study below; `quadlab <study> --help` for its options
    quadlab extract gpt2|resnet18|all [--quick] [--out DIR] [--m M] [--probes P] [--mode eval|train]
                    [--dtype float32|float64] [--threads N]
                                                     rebuild the stored block spectra (needs the extract extra)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _extract(args) -> int:
    from . import stored
    from .extract import extract

    models = ["gpt2", "resnet18"] if args.model == "all" else [args.model]
    overrides = {k: v for k, v in (("m", args.m), ("probes", args.probes), ("mode", args.mode),
                                   ("dtype", args.dtype)) if v is not None}
    out = Path(args.out) if args.out else stored.data_path("gpt2").parent
    for name in models:
        print(f"{name}: extracting{' (quick)' if args.quick else ''} ...", flush=True)
        q, meta = extract(name, quick=args.quick, progress=not args.quiet, threads=args.threads, **overrides)
        path = stored.save(out / stored.data_path(name).name, q, meta)
        print(f"{name}: {len(q.names)} blocks, {meta['hvp_products']} Hessian-vector products, "
              f"{meta['seconds']:.1f} s -> {path}", flush=True)
        bad = [n for n, s in zip(q.names, q.status, strict=True) if s == "nonfinite"]
        if bad:
            print(f"{name}: non-finite products in blocks {bad}", file=sys.stderr)
            return 1
    return 0


#: subcommand → (module under quadlab.studies, one line of help); each module has main(argv) -> int.
STUDIES = {
    "case1_4": ("case1_4", "GD against Adam on the paper's four quadratic cases (the main job)"),
    "r-distribution": ("r_distribution", "the theorem's r over random starts"),
    "stored-report": ("stored_spectra", "block scales, JS⁰ and the sign question for the stored spectra"),
    "theory": ("theory_report", "predicted vs observed rates and the theorem's bound on one case"),
    "figures": ("figures", "regenerate every theory figure into paper_figs/out (PNG and PDF)"),
    "block-spectra": ("block_spectra", "the blockwise-spectrum figure of the stored GPT2/ResNet18 blocks"),
    "heterogeneity-sweep": ("heterogeneity_sweep", "GD/Adam gap and JS⁰ against the block scale factor"),
    "rotation": ("rotation", "per-block vs global rotation of one spectrum"),
    "kappa-sweep": ("kappa_sweep", "steps against κ and r·max κ_l with the theory's slopes"),
    "blockwise-lrs": ("blockwise_lrs", "one learning rate per block: oracle blockwise GD and Adam-mini"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quadlab", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_) in STUDIES.items():
        sub.add_parser(name, help=help_, add_help=False)
    ex = sub.add_parser("extract", help="rebuild the stored GPT2/ResNet18 block spectra (needs torch)")
    ex.add_argument("model", choices=["gpt2", "resnet18", "all"])
    ex.add_argument("--quick", action="store_true", help="tiny models and few steps (seconds; for tests)")
    ex.add_argument("--out", help="output folder (default: the package's data folder)")
    ex.add_argument("--m", type=int, help="Lanczos steps (default: the stored configuration)")
    ex.add_argument("--probes", type=int, help="SLQ probes per block")
    ex.add_argument("--mode", choices=["eval", "train"], help="BatchNorm mode for the Hessian")
    ex.add_argument("--dtype", choices=["float32", "float64"], help="dtype of the model and products")
    ex.add_argument("--threads", type=int, help="torch threads (default: 1 with --quick, else torch's default)")
    ex.add_argument("--quiet", action="store_true")
    ex.set_defaults(func=_extract)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in STUDIES:
        import importlib

        # A study parses its own options; hand it the rest of the command line untouched.
        return importlib.import_module(f"quadlab.studies.{STUDIES[argv[0]][0]}").main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
