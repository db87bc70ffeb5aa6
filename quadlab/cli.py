"""The ``quadlab`` command: the studies, the figures, the theory report and the extraction.

    quadlab case1_4 [--quick] [--json PATH] ...     the paper's four quadratic cases (studies/case1_4.py)
    quadlab <study> [options]                        any study below; `quadlab <study> --help` for its options
    quadlab sweep SPEC.toml [--scheduler local|tcp://HOST:PORT] [--workers N]
                                                     a grid from a TOML spec as tidy records (quadlab.sweep)
    quadlab extract gpt2|resnet18|all [--quick] [--out DIR | --replace-shipped] [--m M] [--probes P]
                    [--mode eval|train] [--dtype float32|float64] [--threads N]
                                                     rebuild the block spectra into --out (default out/spectra;
                                                     needs the extract extra)
    quadlab extract --model MODULE:FACTORY --loss MODULE:FUNCTION --batches MODULE:FUNCTION [--blocks REGEX]
                    [--device cuda] [--m M] [--probes P] [--out FILE.npz] [--paper-json DIR]
                                                     your model's block spectra (quadlab.extract.block_spectra)
                                                     into FILE.npz (default out/spectra/FACTORY.npz)

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

    if args.factory is not None or args.loss is not None or args.batches is not None:
        return _extract_user(args)
    if args.model is None:
        raise ValueError("name the spectra to rebuild (gpt2, resnet18 or all), or measure your own model with "
                         "--model MODULE:FACTORY --loss MODULE:FUNCTION --batches MODULE:FUNCTION")
    for opt, val in (("--blocks", args.blocks), ("--device", args.device), ("--paper-json", args.paper_json),
                     ("--seed", args.seed)):
        if val is not None:
            raise ValueError(f"{opt} belongs to --model (your own model); the {args.model} rebuild uses its stored "
                             "configuration")
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


def _extract_user(args) -> int:
    """``quadlab extract --model … --loss … --batches …``: every argument and output checked before the model is
    built, then block_spectra, then FILE.npz (and the paper code's JSON files with --paper-json)."""
    import importlib.util
    import re

    from . import stored
    from .studies.common import check_output_dir, check_output_file

    missing = [o for o, v in (("--model", args.factory), ("--loss", args.loss), ("--batches", args.batches))
               if v is None]
    if missing:
        raise ValueError(f"your own model needs --model, --loss and --batches; missing {', '.join(missing)}")
    if args.model is not None:
        raise ValueError(f"give either {args.model} (rebuild shipped spectra) or --model (your own), not both")
    for opt, val in (("--quick", args.quick), ("--replace-shipped", args.replace_shipped)):
        if val:
            raise ValueError(f"{opt} belongs to the gpt2/resnet18 rebuild; drop it with --model")
    if args.blocks is not None:
        try:
            re.compile(args.blocks)
        except re.error as exc:
            raise ValueError(f"--blocks {args.blocks!r} is not a regular expression ({exc})") from None
    name = args.factory.rpartition(":")[2] or "model"
    out = Path(args.out) if args.out is not None else Path("out") / "spectra" / f"{name}.npz"
    if out.suffix != ".npz":
        raise ValueError(f"--out {out}: with --model, --out is the .npz file to write (e.g. {name}.npz)")
    if out.resolve().parent == stored.data_path("gpt2").parent.resolve():
        raise ValueError(f"--out {out} is inside the installed package's data folder; write elsewhere")
    check_output_file(out, "--out")
    paper = check_output_dir(Path(args.paper_json), "--paper-json") if args.paper_json is not None else None
    if importlib.util.find_spec("torch") is None:
        raise ValueError('quadlab extract needs torch, which is not installed: pip install "quadlab[extract]"')
    import torch

    if args.device is not None:
        try:
            dev = torch.device(args.device)
        except RuntimeError as exc:
            raise ValueError(f"--device {args.device!r} is not a torch device ({exc}); e.g. cpu, cuda, cuda:1") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: torch sees no CUDA device here; drop --device to run on the "
                             "model's own device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from .extract.user import extract_user

    q, meta = extract_user(args.factory, args.loss, args.batches, blocks=args.blocks, m=args.m or 100,
                           probes=args.probes or 10, seed=args.seed or 0, device=args.device, dtype=args.dtype,
                           mode=args.mode, progress=not args.quiet)
    path = stored.save(out, q, meta)
    print(f"{len(q.names)} blocks, {meta['hvp_products']} Hessian-vector products, {meta['seconds']:.1f} s -> {path}")
    if paper is not None:
        v, w = stored.to_paper_json(q, paper)
        print(f"paper code format: {v} {w}")
    bad = [n for n, s in zip(q.names, q.status, strict=True) if s == "nonfinite"]
    if bad:
        print(f"quadlab extract: error: non-finite products in blocks {bad}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"read it with: quadlab stored-report --spectra {path}; quadlab case1_4 --spectra {path} --blocks "
              "NAME,NAME,...")
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
    "explanations": ("explanations", "four explanations of Adam's edge (heterogeneity, ℓ∞, noise, sign descent) "
                     "against tuned runs"),
    "sweep": ("sweep", "any grid of problems × optimizers × seeds from a TOML spec, as tidy JSONL records"),
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
    ex.add_argument("model", nargs="?", choices=["gpt2", "resnet18", "all"],
                    help="the shipped spectra to rebuild (or give your own model with --model)")
    ex.add_argument("--model", dest="factory", metavar="MODULE:FACTORY",
                    help="your model: FACTORY() returns a torch.nn.Module (MODULE dotted or a .py path)")
    ex.add_argument("--loss", metavar="MODULE:FUNCTION", help="with --model: FUNCTION(model, batch) -> scalar loss")
    ex.add_argument("--batches", metavar="MODULE:FUNCTION",
                    help="with --model: FUNCTION() -> the batches (a list or DataLoader); the Hessian is their mean")
    ex.add_argument("--blocks", metavar="REGEX",
                    help="with --model: one block per parameter tensor whose name matches (default: every tensor)")
    ex.add_argument("--device", help="with --model: run the products there, e.g. cuda (default: the model's)")
    ex.add_argument("--seed", type=int_in(0, 2**32 - 1), help="with --model: the probes' seed (default 0)")
    ex.add_argument("--paper-json", metavar="DIR",
                    help="with --model: also write DIR/values_layer.json and DIR/weights_layer.json (paper code)")
    ex.add_argument("--quick", action="store_true", help="tiny models and few steps (seconds; for tests)")
    ex.add_argument("--out", help="output folder (default out/spectra, out/spectra-quick with --quick); with "
                                  "--model the .npz file (default out/spectra/FACTORY.npz)")
    ex.add_argument("--replace-shipped", action="store_true",
                    help="overwrite the spectra shipped in the package's data folder (not with --quick)")
    ex.add_argument("--m", type=int_in(1, 10_000),
                    help="Lanczos steps, 1 to 10000 (default: the stored configuration; 100 with --model)")
    ex.add_argument("--probes", type=int_in(1, 1000), help="SLQ probes per block, 1 to 1000 (10 with --model)")
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
