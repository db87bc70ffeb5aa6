"""The ``quadlab`` command: the studies, the figures, the theory report and the extraction.

    quadlab case1_4 [--quick] [--json PATH] ...     the paper's four quadratic cases (studies/case1_4.py)
    quadlab <study> [options]                        any study below; `quadlab <study> --help` for its options
    quadlab extract gpt2|resnet18|all [--quick] [--out DIR | --replace-shipped] [--m M] [--probes P]
                    [--mode eval|train] [--dtype float32|float64] [--threads N]
                                                     rebuild the block spectra into --out (default out/spectra;
                                                     needs the extract extra)

Errors print one line, "quadlab <command>: error: ...", and exit with status 2; add --debug for a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _extract(args) -> int:
    import importlib.util

    from . import stored
    from .studies.common import check_output_dir, default_out

    models = ["gpt2", "resnet18"] if args.model == "all" else [args.model]
    overrides = {k: v for k, v in (("m", args.m), ("probes", args.probes), ("mode", args.mode),
                                   ("dtype", args.dtype)) if v is not None}
    shipped = stored.data_path("gpt2").parent.resolve()
    # The shipped spectra took 45 minutes to build and every Case 1-2 result depends on them: they are only
    # ever replaced on explicit request, and never by the toy --quick spectra.
    if args.replace_shipped:
        if args.quick:
            raise ValueError("--replace-shipped with --quick would put toy spectra in place of the shipped ones; "
                             "drop --quick (a full build takes about 45 minutes) or write elsewhere with --out")
        if args.out is not None:
            raise ValueError("--replace-shipped writes into the package's data folder; drop --out")
        out = shipped
    else:
        out = Path(args.out) if args.out is not None else default_out("spectra", args.quick)
        if out.resolve() == shipped:
            raise ValueError(f"--out {out} is the installed package's data folder; pass --replace-shipped to "
                             "overwrite the shipped spectra on purpose, or another folder")
    out = check_output_dir(out, "--out")
    if importlib.util.find_spec("torch") is None:
        raise ValueError('quadlab extract needs torch, which is not installed: pip install "quadlab[extract]"')
    from .extract import extract

    for name in models:
        print(f"{name}: extracting{' (quick)' if args.quick else ''} ...", flush=True)
        q, meta = extract(name, quick=args.quick, progress=not args.quiet, threads=args.threads, **overrides)
        path = stored.save(out / stored.data_path(name).name, q, meta)
        print(f"{name}: {len(q.names)} blocks, {meta['hvp_products']} Hessian-vector products, "
              f"{meta['seconds']:.1f} s -> {path}", flush=True)
        bad = [n for n, s in zip(q.names, q.status, strict=True) if s == "nonfinite"]
        if bad:
            print(f"quadlab extract: error: {name}: non-finite products in blocks {bad}", file=sys.stderr)
            return 1
    if out != shipped and not args.quiet:
        print(f"read them with --data {out} (quadlab stored-report, block-spectra)"
              + (" and --allow-quick (toy spectra)" if args.quick else ""))
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
    "readings": ("readings", "Cases 1–2 under every reading of “scaled and shifted to [1, κ]”, and the default"),
}


def build_parser() -> argparse.ArgumentParser:
    from .studies.common import StudyParser, int_in

    parser = StudyParser(prog="quadlab", description=__doc__.replace("``", ""),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, (_, help_) in STUDIES.items():
        sub.add_parser(name, help=help_, add_help=False)
    ex = sub.add_parser("extract", help="rebuild the stored GPT2/ResNet18 block spectra (needs torch)",
                        description="Rebuild the stored GPT2/ResNet18 block spectra (needs the extract extra). "
                                    "Writes to --out (default out/spectra, out/spectra-quick with --quick); the "
                                    "shipped files are replaced only with --replace-shipped.")
    ex.add_argument("model", choices=["gpt2", "resnet18", "all"])
    ex.add_argument("--quick", action="store_true", help="tiny models and few steps (seconds; for tests)")
    ex.add_argument("--out", help="output folder (default out/spectra, out/spectra-quick with --quick)")
    ex.add_argument("--replace-shipped", action="store_true",
                    help="overwrite the spectra shipped in the package's data folder (not with --quick)")
    ex.add_argument("--m", type=int_in(1, 10_000), help="Lanczos steps, 1 to 10000 (default: the stored configuration)")
    ex.add_argument("--probes", type=int_in(1, 1000), help="SLQ probes per block, 1 to 1000")
    ex.add_argument("--mode", choices=["eval", "train"], help="BatchNorm mode for the Hessian")
    ex.add_argument("--dtype", choices=["float32", "float64"], help="dtype of the model and products")
    ex.add_argument("--threads", type=int_in(1, 1024),
                    help="torch threads (default: 1 with --quick, else torch's default)")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    ex.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    ex.set_defaults(func=_extract)
    parser.subcommands = sub.choices  # so that main() can report a subcommand's stray arguments in its name
    return parser


def main(argv=None) -> int:
    """Run one command; its expected failures print one line ``quadlab <command>: error: ...`` and return 2
    (argument errors exit 2 from the parser); ``--debug`` or QUADLAB_DEBUG=1 shows tracebacks instead."""
    import importlib

    from .studies.common import run_command

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("QUADLAB_DEBUG", "") not in ("", "0")
    if argv and argv[0] in STUDIES:
        command = argv[0]

        # A study parses its own options (--debug among them); hand it the rest of the command line untouched.
        def study():
            return importlib.import_module(f"quadlab.studies.{STUDIES[command][0]}").main(argv[1:])

        return run_command(command, study, debug=debug)
    parser = build_parser()
    args, extra = parser.parse_known_args([a for a in argv if a != "--debug"] if argv[:1] != ["extract"] else argv)
    if extra:
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return run_command(args.command, lambda: args.func(args), debug=debug)


if __name__ == "__main__":
    sys.exit(main())
