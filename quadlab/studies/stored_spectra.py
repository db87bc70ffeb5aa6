"""What the stored GPT2 and ResNet18 block spectra say: block scales, JS⁰ under declared variants, and the
sign question of THEORY.md §8.2 (how an indefinite network spectrum becomes a positive definite quadratic).

    quadlab stored-report [--data DIR [--allow-quick]] [--kappa 5000] [--seeds 8] [--out report.md]
    quadlab stored-report --spectra FILE.npz [--blocks NAME,NAME,...]   the same report for your model's spectra

Prints a Markdown report (also written to --out).  Reads the shipped files by default; --data points at
another folder written by `quadlab extract --out DIR`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import quadlab
from quadlab import heterogeneity, stored, theory
from quadlab.studies.common import check_output_file, fail, finite_float, int_in, new_parser, write_text_atomic

MODELS = {"gpt2": stored.GPT2_CASE_BLOCKS, "resnet18": stored.RESNET18_CASE_BLOCKS}
TRANSFORMS = ("abs", "positive", "signed")


def _load(name: str, data: str | None, allow_quick: bool = False):
    return stored.load(Path(data) / stored.data_path(name).name if data else name, allow_quick=allow_quick)


def scales_table(st) -> list[str]:
    lo, hi = st.slq.extremes()
    rows = ["| block | d | min θ | max θ | max |θ| | weight on θ < 0 |", "|---|---:|---:|---:|---:|---:|"]
    for b, name in enumerate(st.names):
        x, w = st.measure(name)
        rows.append(f"| {name} | {st.slq.sizes[b]} | {lo[b]:.3e} | {hi[b]:.3e} | {max(-lo[b], hi[b]):.3e} | "
                    f"{w[x < 0].sum():.2f} |")
    spread = np.log10(st.scale().max() / st.scale().min())
    rows.append(f"\nmax |θ| spans {spread:.1f} decades over the {len(st.names)} blocks.")
    return rows


def js_table(sts: dict) -> list[str]:
    rows = ["| normalisation | axis | σ (relative) | " + " | ".join(f"JS⁰ {n}" for n in sts) +
            " | ratio | noise floor (per model) |", "|---|---|---|" + "---:|" * (len(sts) + 2)]
    for normalize, log_axis in (("max_abs", False), ("kth_largest", False), (None, False)):
        for sigma in (0.01,):
            reps = {n: heterogeneity.analyze(st.slq, source="slq", normalize=normalize, log_axis=log_axis,
                                             sigma=sigma) for n, st in sts.items()}
            vals = [reps[n].js0 for n in sts]
            ratio = vals[0] / vals[1] if len(vals) == 2 and vals[1] > 0 else float("nan")
            floors = ", ".join(f"{reps[n].noise_floor:.2g}" for n in sts)
            rows.append(f"| {normalize or 'none (raw λ)'} | {'log' if log_axis else 'linear'} | {sigma} | " +
                        " | ".join(f"{v:.4f}" for v in vals) + f" | {ratio:.1f}× | {floors} |")
    return rows


def sign_table(name: str, st, kappa: float, seeds: int, blocks=None) -> list[str]:
    rows = ["| reading | κ_l per block | max κ_l | median r̃ | median r̃·max κ_l | GD iters (best lr) | "
            "Adam-theory iters (theorem step) | Adam-theory iters (best step) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for transform in TRANSFORMS:
        spec = stored.sampled_spectrum(st, MODELS[name] if blocks is None else blocks, 25, kappa, reading=transform)
        p = quadlab.BlockQuadratic(spec, rotation="block", seed=0)
        w0 = np.random.default_rng(0).standard_normal((seeds, p.n)) + p.optimum_host
        c = theory.adam_constants(p, w0)
        gd = theory.gd_rates(p)
        med = lambda a: float(np.median(a))  # noqa: E731
        rows.append(
            f"| {transform} | {', '.join(f'{k:.3g}' for k in spec.block_kappas)} | {max(spec.block_kappas):.3g} | "
            f"{med(c.r_tilde):.3g} | {med(c.r_tilde * max(spec.block_kappas)):.3g} | "
            f"{theory.iterations_to(gd.best_rate):.3g} | {med(theory.iterations_to(c.rate_exact)):.3g} | "
            f"{med(theory.iterations_to(c.best_rate)):.3g} |")
    return rows


def main(argv=None) -> int:
    ap = new_parser("stored_spectra", __doc__)
    ap.add_argument("--data", help="folder with gpt2_blocks.npz / resnet18_blocks.npz (default: shipped)")
    ap.add_argument("--allow-quick", action="store_true",
                    help="read toy spectra written by `quadlab extract --quick` (refused otherwise)")
    ap.add_argument("--kappa", type=finite_float(1, 1e12, lo_open=True), default=5000.0,
                    help="condition number of the sampled cases, in (1, 1e12]")
    ap.add_argument("--seeds", type=int_in(1, 100_000), default=8,
                    help="random starts for the theorem's r, 1 to 100000")
    ap.add_argument("--out", type=Path, help="also write the report to this file")
    ap.add_argument("--spectra", metavar="FILE.npz",
                    help="report on this file instead (written by `quadlab extract --model ...`)")
    ap.add_argument("--blocks", type=lambda t: [b for b in t.split(",") if b], metavar="NAME,NAME,...",
                    help="with --spectra: the blocks of the sign table (default: all of the file's blocks)")
    args = ap.parse_args(argv)
    if args.spectra is not None and args.data is not None:
        fail(ap, "give --spectra FILE (one file) or --data DIR (the gpt2/resnet18 pair), not both")
    if args.blocks is not None and args.spectra is None:
        fail(ap, "--blocks chooses blocks of --spectra FILE; the gpt2/resnet18 report uses the case blocks")
    if args.data is not None and not Path(args.data).is_dir():
        fail(ap, f"--data {args.data} is not a folder; pass the folder `quadlab extract --out DIR` wrote")
    if args.out is not None:
        try:
            check_output_file(args.out, "--out")
        except ValueError as exc:
            fail(ap, str(exc))
    try:
        if args.spectra is not None:
            sts = {"your model": stored.load(args.spectra, allow_quick=args.allow_quick)}
        else:
            sts = {n: _load(n, args.data, args.allow_quick) for n in MODELS}
    except ValueError as exc:
        fail(ap, str(exc))
    case_blocks = dict(MODELS)
    if args.spectra is not None:
        names = sts["your model"].names
        unknown = [b for b in (args.blocks or []) if b not in names]
        if unknown or args.blocks == []:
            fail(ap, f"--blocks {unknown or args.blocks}: not in {args.spectra}; it holds {list(names)[:12]}")
        case_blocks["your model"] = tuple(args.blocks or names)
    out = ["# The stored network block spectra", ""]
    for n, st in sts.items():
        m = st.meta
        out += [f"## {n}", "", f"{m.get('parameters', '?')} parameters; mode {m.get('mode')}; dtype {m.get('dtype')}; "
                f"SLQ m = {st.slq.m}, {st.slq.probes} probes, seed {st.slq.seed}; built {m.get('date')} in "
                f"{m.get('seconds')} s.", ""] + scales_table(st) + [""]
    out += ["## JS⁰ (divergence, nats; mean over unordered block pairs; SLQ noise floor = mean JS between single-"
            "probe densities of one block)", ""] + js_table(sts) + [""]
    for n, st in sts.items():
        out += [f"## The sign question, {n} case blocks ({', '.join(case_blocks[n])}), 25 eigenvalues each, κ = "
                f"{args.kappa:g}", "", "Iterations: ln(1e-6)/ln(rate) for the exact per-step gap factor; GD at "
                "its best step 2/(λ_min+λ_max); Adam theory form from random Gaussian starts (median).", ""]
        out += sign_table(n, st, args.kappa, args.seeds, case_blocks[n]) + [""]
    text = "\n".join(out)
    print(text)
    if args.out:
        write_text_atomic(text + "\n", args.out)
    return 0
