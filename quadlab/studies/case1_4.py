"""The paper's quadratic experiment: GD against Adam on the four cases (paper numbering), κ = 5000.

    quadlab case1_4 [--kappa 5000] [--seeds 5] [--cases 1,2,3,4] [--backend numpy] [--quick] [--out DIR]
                    [--json PATH] [--quiet] [--spectra FILE.npz [--blocks NAME,NAME,...]]

Case 1: GPT2-sampled, 2: ResNet18-sampled (both need the stored network spectra), 3: simple heterogeneous
{1,2,3},{99,100,101},{κ−2,κ−1,κ}, 4: simple homogeneous (the same nine numbers rearranged), and with
--spectra a fifth case, "your model": 25 eigenvalues per chosen block of that file (written by `quadlab extract
--model ...`) read into [1, κ] with --reading, as Cases 1-2 (table and JSON; the figure keeps Cases 1-4).  Every block is
Haar-rotated; each seed draws a new rotation and a new standard Gaussian start.

Every tuned optimizer is tuned under both protocols of :mod:`quadlab.tune`: one learning rate shared by the
seeds (the paper's setting; the fewest seeds missing ‖∇f‖ ≤ tol·‖∇f(w_0)‖, then the worst seed's steps) and
one per seed (each instance alone, ``per_seed`` in the JSON), on a dense grid (128 log-spaced rates, refined;
24 with --quick).  A cell is the median over seeds of the steps to tolerance (a miss counts as ∞).  Every cell
is checked for stability (:func:`quadlab.stability.cell_stability`): the learning rates within ±10 % of the
chosen one and the starts moved by ~1e-15 relative must give the same outcome within 1.5×; an unstable cell is
printed as the range it showed, e.g. "1.9k–3.8k ‡", and marked ``"unstable": true`` in the JSON.  The figure
shows log10 ‖∇f(w_k)‖ of the shared protocol's runs (median over seeds, band = min..max).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import quadlab
from quadlab import checks, optim, rules, spectra, theory
from quadlab._engine.threads import map_calls
from quadlab.backend import check_memory
from quadlab.dist import Executor
from quadlab.spectra import BlockSpectrum
from quadlab.stability import cell_stability, median_steps, neighbour_variants
from quadlab.studies.common import (
    add_dist_options,
    check_common,
    comma_choices,
    fail,
    finish,
    finite_float,
    open_executor,
    progress,
    save_figure,
    save_partial,
    seed_record,
    steps_per_seed,
    study_parser,
    tuning,
)
from quadlab.tune import tune_lr

CASES = {
    1: ("GPT2-sampled", True),
    2: ("ResNet18-sampled", False),
    3: ("simple heterogeneous", True),
    4: ("simple homogeneous", False),
}
LABELS = {
    "gd_best": "GD, step 2/(λmin+λmax)",
    "gd": "GD, tuned",
    "heavy_ball": "heavy ball, tuned",
    "adam_theory_thm": "Adam theory form, theorem step",
    "adam_theory": "Adam theory form, tuned",
    "adam_beta1_0": "Adam β1=0, tuned",
    "adam": "Adam β1=0.9, tuned",
    "blockwise_gd": "blockwise GD, oracle steps",
}


#: Case 5, added by --spectra: a model of the user's, heterogeneous or not as its spectra say
YOUR_MODEL = ("your model", None)


def case_info(case: int) -> tuple[str, bool | None]:
    """(name, heterogeneous) of a case: the paper's four, or 5 for the user's model."""
    return YOUR_MODEL if case == 5 else CASES[case]


def case_spectrum(case: int, kappa: float, reading: str | None = None):
    if case == 3:
        return spectra.simple_heterogeneous(kappa)
    if case == 4:
        return spectra.simple_homogeneous(kappa)
    try:
        from quadlab import stored
    except ImportError:
        return None
    preset = stored.gpt2_case if case == 1 else stored.resnet18_case
    return preset(kappa=kappa, reading=reading)  # reading None: stored.DEFAULT_READING


def problem_for(spec, seed: int, backend: str):
    return quadlab.BlockQuadratic(spec, rotation="block", seed=seed, xp=backend)


def js0_of(spec):
    try:
        from quadlab import heterogeneity
    except ImportError:
        return None
    return float(heterogeneity.js0(spec, variant="divergence"))


#: The tuned optimizers: each is tuned under both protocols, one lr shared by the seeds (the table's main
#: row) and one lr per seed (``per_seed`` in the JSON).
TUNED = ("gd", "heavy_ball", "adam_theory", "adam_beta1_0", "adam")


def _setup(spec, args):
    """(problems, makers, points, refine) of a case: one problem per seed, and per optimizer key its
    (optimizer, lr range or None for a rule, step cap)."""
    # Caps: GD at its best step needs at most ≈ ln(1/tol)·κ/2 steps (35,000 at κ = 5000, tol = 1e-6); twice
    # that leaves room for every method that beats GD (--quick: 1.2 times, just room for GD itself).  Adam with
    # β2 < 1 gets the same budget: it can converge slowly (Case 2, β1 = 0.9: over 16,000 steps on some seeds)
    # as well as stall, so a shorter cap would report a slow success as a failure.  "—" then means a miss
    # within twice GD's budget.
    steps_linear = max(20_000, int((0.6 if args.quick else 1.0) * np.log(1.0 / args.tol) * spec.kappa))
    steps_adam = 2_000 if args.quick else steps_linear
    # a dense first grid (tune_lr's default): the compiled engine makes it cheap, and Adam's response curve has
    # narrow basins that a 16-point grid steps over
    points, refine = tuning(args.quick)["points"], tuning(args.quick)["refine"]
    seeds = list(range(args.seeds))
    # One problem per seed (its own rotation); learning rates are tuned across seeds, so runs are per seed.
    probs = [problem_for(spec, s, args.backend) for s in seeds]
    hb = theory.heavy_ball_optimum(probs[0])
    makers = {
        "gd_best": (optim.gd(lr="optimal"), None, steps_linear),
        "gd": (optim.gd(), (1e-6, 1e-1), steps_linear),
        "heavy_ball": (optim.heavy_ball(momentum=hb.momentum), (1e-6, 1e-1), steps_linear),
        "adam_theory_thm": (optim.adam_theory(), None, steps_linear),
        "adam_theory": (optim.adam_theory(lr=1.0), (1e-4, 1e2), steps_linear),
        "adam_beta1_0": (optim.adam(b1=0.0), (1e-5, 1e1), steps_adam),
        "adam": (optim.adam(b1=0.9), (1e-5, 1e1), steps_adam),
        "blockwise_gd": (optim.blockwise_gd(), None, steps_linear),
    }
    return probs, makers, points, refine


def _mark(entry: dict, stab: dict) -> dict:
    entry["unstable"] = bool(stab["unstable"])
    entry["range"] = stab["range"]
    entry["stability_outcomes"] = stab["outcomes"]
    return entry


def tuning_task(task: dict):
    """Tune and run one optimizer of one case (a :mod:`quadlab.dist` task).  ``task``: the plain dict
    {"blocks", "names" (the spectrum's eigenvalues), "seeds", "tol", "quick", "backend", "key"}; the problems
    are rebuilt from it (seeded rotations).  Returns (the optimizer's record, its per-seed Results).

    The record holds the shared protocol's cell (today's fields: lr, steps_to_tol, seeds_reached, …), its
    stability (``unstable``, ``range``: :func:`quadlab.stability.cell_stability` over the lr neighbours and perturbed
    starts) and, for a tuned optimizer, ``per_seed`` = {"steps_to_tol", "seeds_reached", "lrs",
    "steps_to_tol_per_seed", "unstable", "range"}: each seed tuned alone."""
    spec = BlockSpectrum.from_blocks(task["blocks"], task["names"])
    args = SimpleNamespace(seeds=task["seeds"], tol=task["tol"], quick=task["quick"], backend=task["backend"])
    probs, makers, points, refine = _setup(spec, args)
    key = task["key"]
    opt, rng, steps = makers[key]
    seeds = list(range(args.seeds))
    if rng is None:
        per_seed = map_calls(lambda ps: quadlab.run(ps[0], opt, seeds=[ps[1]], steps=steps, tol=args.tol),
                             list(zip(probs, seeds)))
        entry = seed_record(per_seed, _lr_used(key, per_seed, probs), steps)
        entry["fragile"], entry["notes"] = False, []
        runs = [(p, s, None, st) for p, s, st in zip(probs, seeds, steps_per_seed(per_seed))]
        _mark(entry, cell_stability(runs, opt, steps, args.tol))
        return entry, per_seed
    # tune_lr's best Result is the fresh run of its best lr (batch-independent runs), so nothing is re-run
    t = tune_lr(probs, opt, seeds=seeds, lr_range=rng, points=points, refine=refine, steps=steps, tol=args.tol,
                race=True, per_seed=True)
    per_seed = list(t.best)
    entry = seed_record(per_seed, t.best_lr, steps)
    entry["fragile"], entry["at_edge"] = bool(t.fragile), bool(t.at_edge)
    entry["notes"] = [t.note] if t.note else []
    runs = [(p, s, t.best_lr, st) for p, s, st in zip(probs, seeds, steps_per_seed(per_seed))]
    _mark(entry, cell_stability(runs, opt, steps, args.tol, neighbour_steps=neighbour_variants(t)))
    alone = list(t.per_seed)
    own = steps_per_seed([a.best for a in alone])
    mine = {"steps_to_tol": median_steps(own), "seeds_reached": sum(x is not None for x in own),
            "lrs": [a.best_lr for a in alone], "steps_to_tol_per_seed": own,
            "fragile": any(a.fragile for a in alone), "at_edge": any(a.at_edge for a in alone)}
    runs = [(p, s, a.best_lr, st) for p, s, a, st in zip(probs, seeds, alone, own)]
    entry["per_seed"] = _mark(mine, cell_stability(runs, opt, steps, args.tol,
                                                   neighbour_steps=neighbour_variants(alone)))
    return entry, per_seed


def run_case(case: int, spec, args) -> dict:
    """Tune and run every optimizer on one case; return its JSON record plus traces for the figure.  Each
    optimizer's tuning is one task of ``args.executor`` (a :class:`quadlab.dist.Executor`; default serial)."""
    probs, makers, _, _ = _setup(spec, args)
    base = {"blocks": [[float(v) for v in b] for b in spec.blocks], "names": list(spec.names), "seeds": args.seeds,
            "tol": args.tol, "quick": args.quick, "backend": args.backend}
    ex = getattr(args, "executor", None) or Executor()
    values = ex.map(tuning_task, [{**base, "key": key} for key in makers], keys=list(makers),
                    progress=lambda it, n: progress(it, total=n, desc=f"case {case}", quiet=args.quiet))
    record, traces = {}, {}
    for key, (entry, per_seed) in zip(makers, values):
        record[key], traces[key] = entry, per_seed
    consts = [theory.adam_constants(p, r.w0[0]) for p, r in zip(probs, traces["adam_theory_thm"])]
    r_t = np.array([c.r_tilde for c in consts])
    r_p = np.array([c.r_paper for c in consts])
    rec = {
        "case": case,
        "name": case_info(case)[0],
        "heterogeneous": case_info(case)[1],
        "kappa": float(spec.kappa),
        "max_block_kappa": float(spec.block_kappas.max()),
        "js0": js0_of(spec),
        "r_tilde_median": float(np.median(r_t)),
        "r_paper_median": float(np.median(r_p)),
        "favours_adam_share": float(np.mean([c.favours_adam for c in consts])),
        # Observed per-step gap factors: the tail fit of each seed's run (quadlab.checks), median over seeds.
        "observed_rate": {
            "gd": _observed(traces["gd_best"]),
            "adam_theory": _observed(traces["adam_theory_thm"]),
        },
        "predicted_rate": {
            "gd": float(theory.gd_rates(probs[0]).rate),
            "adam_theory_exact": float(np.median([c.rate_exact for c in consts])),
            "adam_theory_bound": float(np.median([c.bound for c in consts])),
        },
        "optimizers": record,
    }
    # the paper's two comparisons, under each protocol (None where either side missed or is unstable)
    for name, num, den in (("gd_over_adam_theory", "gd", "adam_theory"), ("heavy_ball_over_adam", "heavy_ball", "adam")):
        for suffix, pick in (("", lambda o: o), ("_per_seed", lambda o: o["per_seed"])):
            a, b = pick(record[num]), pick(record[den])
            ok = a["steps_to_tol"] is not None and b["steps_to_tol"] is not None and a["steps_to_tol"] > 0 \
                and b["steps_to_tol"] > 0 and not (a["unstable"] or b["unstable"])
            rec[name + suffix] = a["steps_to_tol"] / b["steps_to_tol"] if ok else None
    return rec, traces


def _observed(per_seed) -> float | None:
    tails = np.concatenate([checks.observed_rates(r).tail for r in per_seed])
    tails = tails[np.isfinite(tails)]
    return float(np.median(tails)) if tails.size else None


def _lr_used(key, per_seed, probs):
    """The step a rule-driven run took, resolved as the runner resolved it (quadlab.rules); median over seeds."""
    if key == "gd_best":
        return float(np.median([rules.gd_optimal_lr(p) for p in probs]))
    if key == "adam_theory_thm":
        return float(np.median([rules.theorem_lr(p, r.w0)[0] for p, r in zip(probs, per_seed)]))
    return None


def _count(n: int) -> str:
    """A step count as the table prints it in a range: 1881 → 1.9k, 240 → 240."""
    return str(n) if n < 1000 else f"{n / 1000:.2g}k" if n < 10_000 else f"{n / 1000:.0f}k"


def cell_text(o: dict) -> str:
    """A cell of the table: the median steps to tol with (k/n) where not every seed reached it, "— (k/n)" where
    the median missed, or, for an unstable cell (``o["unstable"]``: the tuning's lr neighbours or the starts moved
    in their last bits change the median by more than 1.5× or the number of seeds that reach tol), the range of
    medians seen, e.g. "1.9k–3.8k ‡" (∞: a variant whose median missed tol), never one number; "— (k/n) ‡" where
    every median missed and only the count of seeds that reached tol moved."""
    n = o.get("seeds", len(o.get("steps_to_tol_per_seed", ())))
    k = o["seeds_reached"]
    if o.get("unstable"):
        lo, hi = o["range"]
        if lo is None:  # every variant's median missed tol; what moved is how many seeds reached it
            return f"— ({k}/{n}) ‡"
        return f"{_count(lo)}–{'∞' if hi is None else _count(hi)} ‡"
    st = "—" if o["steps_to_tol"] is None else str(o["steps_to_tol"])
    return st + (f" ({k}/{n})" if k != n else "")


def _lr_text(lrs) -> str:
    lrs = [v for v in lrs if v is not None]
    if not lrs:
        return ""
    lo, hi = min(lrs), max(lrs)
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}–{hi:.3g}"


def print_table(rec: dict, out=None) -> None:
    out = sys.stdout if out is None else out  # resolved per call, so redirected or captured stdout is honoured
    p = rec["predicted_rate"]
    js = "n/a" if rec["js0"] is None else f"{rec['js0']:.4f}"
    reading = f", reading {rec['reading']}" if rec.get("reading") else ""
    print(f"\nCase {rec['case']}: {rec['name']}{reading}  (κ = {rec['kappa']:g}, max κ_l = {rec['max_block_kappa']:.4g}, "
          f"JS⁰ = {js} nats, median r̃ = {rec['r_tilde_median']:.3g}, r_paper = {rec['r_paper_median']:.3g}, "
          f"bound favours Adam on {100 * rec['favours_adam_share']:.0f}% of seeds)", file=out)
    o = {k: "n/a" if v is None else f"{v:.6f}" for k, v in rec["observed_rate"].items()}
    print(f"  per-step gap factor, GD at 2/(λmin+λmax): predicted {p['gd']:.6f}, observed {o['gd']};  Adam theory "
          f"form at the theorem step: exact {p['adam_theory_exact']:.6f}, bound {p['adam_theory_bound']:.6f}, "
          f"observed {o['adam_theory']}", file=out)
    print(f"  {'optimizer':<34}{'shared lr':>11}{'steps':>15}{'lr per seed':>21}{'steps':>15}", file=out)
    for key, o in rec["optimizers"].items():
        lr = "" if o["lr"] is None else f"{o['lr']:.4g}"
        ps = o.get("per_seed")
        mine = ("", "") if ps is None else (_lr_text(ps["lrs"]), cell_text(ps))
        print(f"  {LABELS[key]:<34}{lr:>11}{cell_text(o):>15}{mine[0]:>21}{mine[1]:>15}", file=out)
    def ratio(v):
        return "n/a" if v is None else f"{v:.2g}×"

    print(f"  GD / Adam theory form (tuned): {ratio(rec['gd_over_adam_theory'])} with shared lrs, "
          f"{ratio(rec['gd_over_adam_theory_per_seed'])} per seed;  heavy ball / Adam β1=0.9: "
          f"{ratio(rec['heavy_ball_over_adam'])} shared, {ratio(rec['heavy_ball_over_adam_per_seed'])} per seed",
          file=out)
    print("  steps to ‖∇f‖ ≤ tol·‖∇f(w0)‖, median over seeds (a miss counts as ∞; (k/n): seeds that reached tol); "
          "‡ unstable: the lr ±10% or the start moved in its last bits changes the outcome by > 1.5×, range shown",
          file=out)


#: The README's table: rows (label, optimizer key, protocol) in order.
README_ROWS = (
    ("GD, step 2/(λmin+λmax)", "gd_best", None),
    ("GD, tuned (shared lr)", "gd", "shared"),
    ("GD, tuned (lr per seed)", "gd", "per_seed"),
    ("heavy ball, tuned (shared lr)", "heavy_ball", "shared"),
    ("heavy ball, tuned (lr per seed)", "heavy_ball", "per_seed"),
    ("Adam theory form, theorem step", "adam_theory_thm", None),
    ("Adam theory form, tuned (shared lr)", "adam_theory", "shared"),
    ("Adam theory form, tuned (lr per seed)", "adam_theory", "per_seed"),
    ("Adam β1 = 0, tuned (shared lr)", "adam_beta1_0", "shared"),
    ("Adam β1 = 0, tuned (lr per seed)", "adam_beta1_0", "per_seed"),
    ("Adam β1 = 0.9, tuned (shared lr)", "adam", "shared"),
    ("Adam β1 = 0.9, tuned (lr per seed)", "adam", "per_seed"),
    ("blockwise GD, oracle steps", "blockwise_gd", None),
)


def readme_table(result: dict) -> str:
    """The Markdown table of the README from case1_4's JSON (``result``: what ``--json`` writes): one column per
    case, one row per (optimizer, protocol), cells as :func:`cell_text`.  ``tests/test_readme_numbers.py`` checks
    that the README holds exactly this table for the committed ``docs/results/case1_4.json``."""
    cases = result["cases"]
    head = "| optimizer | " + " | ".join(f"Case {c['case']} {_SHORT.get(c['case'], c['name'])}" for c in cases) + " |"
    lines = [head, "| --- |" + " ---: |" * len(cases)]
    for label, key, proto in README_ROWS:
        cells = []
        for c in cases:
            o = c["optimizers"][key]
            cells.append(cell_text(o["per_seed"] if proto == "per_seed" else o))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_SHORT = {1: "GPT2", 2: "ResNet18", 3: "simple het.", 4: "simple hom."}


def plot(records, traces, missing, path: Path, tol: float) -> None:
    from quadlab import plots

    plt = plots.pyplot()

    by_case = {r["case"]: r for r in records}
    panels = [1, 2, 3, 4] + ([5] if 5 in by_case else [])  # Case 5: the user's model (--spectra)
    cols = 3 if len(panels) > 4 else 2
    fig, axes = plt.subplots(2, cols, figsize=(6 * cols, 8.5), constrained_layout=True)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    shown = ["gd", "heavy_ball", "adam_theory", "adam_beta1_0", "adam", "blockwise_gd"]
    for ax, case in zip(axes.ravel(), panels):
        reading = by_case.get(case, {}).get("reading")
        ax.set_title(f"Case {case}: {case_info(case)[0]}" + (f" (reading {reading})" if reading else ""))
        ax.set_xlabel("iteration k")
        ax.set_ylabel("log10 ‖∇f(w_k)‖")
        if case not in by_case:
            ax.text(0.5, 0.5, missing.get(case, "not computed"), ha="center", va="center", wrap=True,
                    transform=ax.transAxes, fontsize=10)
            ax.set_xticks([]), ax.set_yticks([])
            continue
        for key in shown:
            runs = traces[case][key]
            plots.median_band(ax, runs, label=LABELS[key], color=plots.color(key))
        ax.axhline(np.log10(tol) + np.median([np.log10(r.grad_norm[0, 0]) for r in traces[case]["gd"]]),
                   color="0.5", lw=0.8, ls=":")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)  # iterations start at 0; symlog would otherwise pad into negative ticks
        ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.suptitle("GD vs Adam on block-diagonal quadratics (median over seeds, band = min–max; dotted: tolerance)")
    save_figure(fig, path)
    plt.close(fig)



def main(argv=None) -> int:
    ap = study_parser("case1_4", __doc__, "2 seeds, coarser tuning, shorter caps", backend=True)
    ap.add_argument("--kappa", type=finite_float(1, 1e5, lo_open=True), default=5000.0,
                    help="condition number κ of every case, in (1, 1e5] (Cases 3-4 need κ > 103); GD's step "
                         "cap grows like κ")
    ap.add_argument("--cases", type=comma_choices(CASES, convert=int), default=list(CASES),
                    help="comma-separated subset of 1,2,3,4 (1: GPT2-sampled, 2: ResNet18-sampled, 3: simple "
                         "heterogeneous, 4: simple homogeneous)")
    from quadlab import stored

    ap.add_argument("--reading", choices=list(stored.READINGS), default=stored.DEFAULT_READING,
                    help="how Cases 1-2 map the network block spectra to [1, κ] (default "
                         f"{stored.DEFAULT_READING}; `quadlab readings` compares them): "
                         + "; ".join(f"{k}: {v}" for k, v in stored.READINGS.items()))
    ap.add_argument("--spectra", metavar="FILE.npz",
                    help="add Case 5, your model: the blocks of this file (written by `quadlab extract --model ...`) "
                         "sampled and read into [1, κ] as Cases 1-2")
    ap.add_argument("--blocks", type=lambda t: [b for b in t.split(",") if b], metavar="NAME,NAME,...",
                    help="with --spectra: the blocks Case 5 is built from, 25 eigenvalues each (default: all)")
    add_dist_options(ap)
    args = ap.parse_args(argv)
    yours = None
    if args.blocks is not None and args.spectra is None:
        fail(ap, "--blocks chooses the blocks of --spectra FILE (Case 5, your model); add --spectra")
    if args.spectra is not None:
        if args.blocks == []:
            fail(ap, "--blocks is empty; name blocks of the file, comma-separated (or drop it for all)")
        try:
            yours = stored.sampled_spectrum(stored.load(args.spectra), args.blocks, 25, args.kappa,
                                            reading=args.reading)
        except ValueError as exc:
            fail(ap, f"--spectra {args.spectra}: {exc}")
    if args.kappa <= 103 and {3, 4} & set(args.cases):
        fail(ap, f"--kappa {args.kappa:g}: Cases 3 and 4 need κ > 103 (their middle block is {{99, 100, 101}})")
    check_common(ap, args)
    # Memory: the figure keeps every run's trace (gap and ‖∇f‖ per step) of 8 optimizers × seeds runs of up to
    # the linear step cap, which grows like ln(1/tol)·κ; refuse before the first run rather than after hours.
    cap = max(20_000, int(np.log(1.0 / args.tol) * args.kappa))
    try:
        check_memory(8 * args.seeds * (cap + 1) * 16, f"the traces of {8 * args.seeds} runs of up to {cap} steps",
                     "lower --kappa or --seeds, or raise --tol")
    except ValueError as exc:
        fail(ap, str(exc))
    with open_executor(ap, args) as args.executor:  # serial unless --scheduler; one task per (case, optimizer)
        records, traces, missing = [], {}, {}
        for case in list(args.cases) + ([5] if yours is not None else []):
            spec = yours if case == 5 else case_spectrum(case, args.kappa, args.reading)
            if spec is None:
                missing[case] = ("needs the stored GPT2/ResNet18 block spectra\n(quadlab.stored), "
                                 "which are not shipped yet")
                if not args.quiet:
                    print(f"\nCase {case}: {CASES[case][0]} skipped: {missing[case].replace(chr(10), ' ')}")
                continue
            rec, tr = run_case(case, spec, args)
            rec["reading"] = args.reading if case in (1, 2, 5) else None
            if case == 5:
                rec["spectra"], rec["blocks"] = str(args.spectra), list(yours.names)
            records.append(rec)
            traces[case] = tr
            save_partial({"kappa": args.kappa, "tol": args.tol, "seeds": args.seeds, "reading": args.reading,
                          "cases": records}, args, "case1_4")  # a later case's crash keeps this one
            if not args.quiet:
                print_table(rec)
    result = {"kappa": args.kappa, "tol": args.tol, "seeds": args.seeds, "reading": args.reading, "cases": records,
              "missing": {str(k): v.replace("\n", " ") for k, v in missing.items()}}
    return finish(result, args, "case1_4", figure=lambda path: plot(records, traces, missing, path, args.tol))
