"""Readings of "scaled and shifted to [1, κ]": how Cases 1–2 behave under each way of mapping a network's block
spectra to a positive definite quadratic.

    python studies/readings.py [--seeds 8] [--starts 1000] [--kappa 5000] [--readings abs,log,...]
                               [--top-q 0.1,0.25] [--quick] [--out out/readings] [--json PATH] [--quiet]

The paper samples Case 1's four blocks from GPT2 (Case 2's from ResNet18) and then "scaled and shifted to
guarantee strong convexity and κ = 5000, while preserving the relative range and heterogeneity across blocks".
Which map it used is unknown.  ``quadlab.stored.READINGS`` lists the candidates; the module docstring of
:mod:`quadlab.stored` gives each one's map and what it does to κ_l and to a block's lower edge.  For both stored
models and every reading this study reports:

* the sampled spectrum (4 blocks × d = 25 draws): κ_l, each block's lower edge and top, and JS⁰ (the paper's
  heterogeneity measure; ``heterogeneity.js0(spec, variant="divergence")``, as in ``quadlab case1_4``);
* r̃, the theorem's constant, over many random starts w_0 = w* + ξ, ξ ~ N(0, I): median and quartiles
  (pooled over the seeds' rotations, ``--starts`` in all), and the share of starts with r̃·max_l κ_l ≤ κ
  (where the theorem's bound favours Adam);
* steps to ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖ of tuned GD, heavy ball (momentum at its optimum), the Adam theory form
  (tuned per seed, as in ``quadlab case1_4``: its step scales with each start's gradient), Adam β1 = 0 with
  β2 = 0.99 and 0.999, and Adam β1 = 0.9 (β2 = 0.999).  Every block is Haar-rotated; seed s draws the rotation
  and the start.  Learning rates: ``tune_lr(race=True)``, shared by the seeds except for the theory form.
  The reported count is the median over seeds with a seed that never reached tol counted as +∞, so "—" means
  that at least half the seeds failed within the cap; "k/n" says how many seeds reached tol.

Caps.  GD at its best step needs at most B = ln(1/tol)/ln((κ+1)/(κ−1)) ≈ ln(1/tol)·κ/2 steps (34,539 at
κ = 5000, tol = 1e-6).  The linear methods (GD, heavy ball, Adam theory form; closed form) get 2B; Adam with
β2 < 1 gets B, enough for a slow but converging run to finish.  --quick keeps these caps for the linear methods
but gives Adam 3,000 steps, so a "—" for Adam in --quick may be a slow run rather than a failure.

Verdict per model and reading, from two step ratios of tuned optimizers: S_thm = GD/Adam theory form (no
momentum on either side) and S_mom = heavy ball/Adam β1 = 0.9 (momentum on both).  A ratio ≥ 1.5 (HET_SPEEDUP)
says "Adam faster"; ≤ 1, or Adam failing, says "GD faster".  "like Case 3" (heterogeneous) when both say Adam,
"like Case 4" (homogeneous) when both say GD, "mixed" otherwise.  The reference rows run Cases 3 and 4 under
the same settings (S_thm ≈ 130 and 0.5, S_mom ≈ 2 and 0.6).  A reading reproduces the paper when Case 1
(GPT2) is like Case 3 and Case 2 (ResNet18) like Case 4.

Evidence for the default (printed and in the JSON, per reading): (1) strong convexity: every block's lower
edge ≥ 1 (true of every reading by construction); (2) relative range: the reading keeps each block's whole
measure (only "top" drops the bulk); (3) heterogeneity across blocks: JS⁰ of Case 1 above JS⁰ of Case 2, as
between the networks themselves (``quadlab stored-report``: about 100×); (4) the paper's outcome, as above.
The readings that meet all four are the candidates; the JSON's "default" is ``stored.DEFAULT_READING`` and
"evidence_choice" the candidate with the largest JS⁰ ratio, so a disagreement shows.

The study resumes: finished (model, reading) points are kept in a Checkpoint next to the figure.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import quadlab
from quadlab import heterogeneity, optim, spectra, stored, theory
from quadlab.studies import common
from quadlab.studies.common import Checkpoint, median_steps, progress, run_status, steps_per_seed
from quadlab.tune import tune_lr

MODELS = {"gpt2": ("Case 1", "GPT2", stored.GPT2_CASE_BLOCKS), "resnet18": ("Case 2", "ResNet18",
                                                                           stored.RESNET18_CASE_BLOCKS)}
REFERENCES = {"case3": ("Case 3", "simple heterogeneous", spectra.simple_heterogeneous),
              "case4": ("Case 4", "simple homogeneous", spectra.simple_homogeneous)}
#: optimizer key → table label
LABELS = {
    "gd": "GD",
    "heavy_ball": "HB",
    "adam_theory": "Adam thm",
    "adam_beta1_0_beta2_0.99": "Adam β1=0 β2=.99",
    "adam_beta1_0_beta2_0.999": "Adam β1=0 β2=.999",
    "adam": "Adam β1=.9",
}
#: tuned per seed (see quadlab.studies.case1_4.PER_SEED): the theory form's step acts on D⁻¹∇f, D = diag|∇f(w_0)|
PER_SEED = {"adam_theory"}
#: a step ratio (GD/Adam theory form, heavy ball/Adam β1 = 0.9) at or above this counts as "Adam faster"; at or
#: below 1, or with Adam failing, as "GD faster".  Case 3 gives about 130 and 2, Case 4 about 0.5 and 0.6.
HET_SPEEDUP = 1.5
CHECKPOINT_VERSION = 1  # bump when a point's record changes shape


def gd_bound(kappa: float, tol: float) -> int:
    """B = ⌈ln(1/tol)/ln((κ+1)/(κ−1))⌉: steps GD at its best step 2/(λ_min+λ_max) needs at most for
    ‖∇f‖ ≤ tol·‖∇f(w_0)‖ (each eigencomponent of the gradient shrinks by (κ−1)/(κ+1) per step)."""
    return int(math.ceil(math.log(1.0 / tol) / math.log((kappa + 1.0) / (kappa - 1.0))))


def caps(kappa: float, tol: float, quick: bool) -> dict[str, int]:
    b = gd_bound(kappa, tol)
    return {"linear": 2 * b, "adam": 3_000 if quick else b}


def optimizers(prob, kappa: float, cap: dict) -> dict:
    """key → (optimizer, lr range, step cap).  GD and heavy ball are stable below 2/λ_max = 2/κ."""
    hb = theory.heavy_ball_optimum(prob)
    lin = (1e-3 / kappa, 10.0 / kappa)
    return {
        "gd": (optim.gd(), lin, cap["linear"]),
        "heavy_ball": (optim.heavy_ball(momentum=hb.momentum), lin, cap["linear"]),
        "adam_theory": (optim.adam_theory(lr=1.0), (1e-4, 1e2), cap["linear"]),
        "adam_beta1_0_beta2_0.99": (optim.adam(b1=0.0, b2=0.99), (1e-5, 1e1), cap["adam"]),
        "adam_beta1_0_beta2_0.999": (optim.adam(b1=0.0, b2=0.999), (1e-5, 1e1), cap["adam"]),
        "adam": (optim.adam(b1=0.9, b2=0.999), (1e-5, 1e1), cap["adam"]),
    }


def spectrum_of(model: str, reading: str, q: float | None, kappa: float, d: int):
    if model in REFERENCES:
        return REFERENCES[model][2](kappa)
    return stored.sampled_spectrum(model, MODELS[model][2], d, kappa, reading=reading,
                                   q=q if reading == "top" else None)


def r_tilde_summary(probs, n_starts: int) -> dict:
    """r̃ over ``n_starts`` Gaussian starts, split evenly over the seeds' problems (their rotations differ);
    the starts of problem s come from default_rng(10_000 + s), apart from the runs' own starts.  Computed from
    ``theory.adam_constants`` directly (the quantity ``theory.r_statistics`` summarises per problem)."""
    per = -(-n_starts // len(probs))
    r, favours = [], []
    for s, p in enumerate(probs):
        W = p.optimum_host + np.random.default_rng(10_000 + s).standard_normal((per, p.n))
        c = theory.adam_constants(p, W)
        r.append(np.asarray(c.r_tilde, dtype=np.float64))
        favours.append(np.asarray(c.favours_adam, dtype=bool))
    r, favours = np.concatenate(r), np.concatenate(favours)
    q25, q50, q75 = np.quantile(r, [0.25, 0.5, 0.75])
    return {"n_starts": int(r.size), "median": float(q50), "q25": float(q25), "q75": float(q75),
            "min": float(r.min()), "max": float(r.max()), "share_bound_favours_adam": float(favours.mean())}


def _optimizer_record(results, lrs, cap: int) -> dict:
    per = steps_per_seed(results)
    return {"lr": float(np.median(lrs)), "lr_per_seed": [float(a) for a in lrs], "median_steps": median_steps(per),
            "steps_per_seed": per, "reached": sum(s is not None for s in per), "seeds": len(per),
            "status": run_status(results), "max_steps": int(cap)}


def ratio(slow, fast) -> float | None:
    """slow/fast steps; 0 when ``fast`` (Adam) did not reach tol, None when ``slow`` (GD, heavy ball) did not."""
    if slow is None:
        return None
    return 0.0 if fast is None else slow / fast


def side(r: float | None) -> str:
    if r is None:
        return "undecided"
    return "adam" if r >= HET_SPEEDUP else ("gd" if r <= 1.0 else "close")


def verdict(s_theory: float | None, s_momentum: float | None) -> str:
    """"like Case 3" when Adam is faster in both pairs (theory form against GD, β1 = 0.9 against heavy ball),
    "like Case 4" when it is slower (or fails) in both, "mixed" otherwise."""
    a, b = side(s_theory), side(s_momentum)
    if a == b == "adam":
        return "like Case 3"
    if a == b == "gd":
        return "like Case 4"
    return "mixed"


def run_point(model: str, reading: str | None, q: float | None, cfg: dict) -> dict:
    """Sample the spectrum, summarise r̃, tune and run every optimizer; the point's JSON record."""
    kappa, tol = cfg["kappa"], cfg["tol"]
    spec = spectrum_of(model, reading, q, kappa, cfg["d"])
    seeds = list(range(cfg["seeds"]))
    probs = [quadlab.BlockQuadratic(spec, rotation="block", seed=s, xp=cfg["backend"]) for s in seeds]
    cap = caps(kappa, tol, cfg["quick"])
    steps, runs = {}, {}
    for key, (opt, rng, n) in optimizers(probs[0], kappa, cap).items():
        tune = dict(lr_range=rng, points=cfg["points"], refine=cfg["refine"], steps=n, tol=tol, race=True)
        if key in PER_SEED:
            lrs = [tune_lr(p, opt, seeds=[s], **tune).best_lr for p, s in zip(probs, seeds, strict=True)]
        else:
            lrs = [tune_lr(probs, opt, seeds=seeds, **tune).best_lr] * len(seeds)
        # rerun each seed at the full cap: under race=True a seed may have stopped at a shorter cap
        per_seed = [quadlab.run(p, opt.with_hyper(lr=a), seeds=[s], steps=n, tol=tol)
                    for p, s, a in zip(probs, seeds, lrs, strict=True)]
        runs[key] = _optimizer_record(per_seed, lrs, n)
        steps[key] = runs[key]["median_steps"]
        if key == "gd":
            w0 = [r.w0[0] for r in per_seed]
    s_thm, s_mom = ratio(steps["gd"], steps["adam_theory"]), ratio(steps["heavy_ball"], steps["adam"])
    run_r = [float(theory.adam_constants(p, w).r_tilde) for p, w in zip(probs, w0, strict=True)]
    return {
        "name": reading, "q": q if reading == "top" else None, "label": label(reading, q), "model": model,
        "case": (REFERENCES if model in REFERENCES else MODELS)[model][0],
        "description": stored.READINGS.get(reading, "the paper's hand-made spectrum") if reading else
        "the paper's hand-made spectrum",
        "kappa": float(spec.kappa), "kappa_l": [float(k) for k in spec.block_kappas],
        "lower_edge": [float(b.min()) for b in spec.blocks], "top": [float(b.max()) for b in spec.blocks],
        "eigenvalues": [[float(v) for v in np.sort(b)] for b in spec.blocks], "blocks": list(spec.names),
        "js0": float(heterogeneity.js0(spec, variant="divergence")),
        "r_tilde": dict(r_tilde_summary(probs, cfg["starts"]), runs_per_seed=run_r),
        "steps": steps, "optimizers": runs,
        "gd_over_adam_theory": s_thm, "heavy_ball_over_adam": s_mom, "verdict": verdict(s_thm, s_mom),
    }


def point_task(spec: dict) -> dict:
    """One point from its plain-dict spec {"model", "reading", "q", "cfg"} (a :mod:`quadlab.dist` task)."""
    return run_point(spec["model"], spec["reading"], spec["q"], spec["cfg"])


def label(reading: str | None, q: float | None) -> str:
    if reading is None:
        return "—"
    return f"top(q={q:g})" if reading == "top" else reading


def evidence(records: list[dict], default: str) -> dict:
    """Per reading label: the four criteria of the module docstring, and the choice they make."""
    by = {(r["model"], r["label"]): r for r in records}
    out = {}
    for lab in dict.fromkeys(r["label"] for r in records if r["model"] in MODELS):
        g, c = by.get(("gpt2", lab)), by.get(("resnet18", lab))
        if g is None or c is None:
            continue
        crit = {
            "strong_convexity": all(min(r["lower_edge"]) >= 1.0 for r in (g, c)),
            "whole_measure": g["name"] != "top",
            "js0_case1_over_case2": g["js0"] / c["js0"] if c["js0"] > 0 else None,
            "case1_like_case3": g["verdict"] == "like Case 3",
            "case2_like_case4": c["verdict"] == "like Case 4",
        }
        crit["heterogeneity_kept"] = crit["js0_case1_over_case2"] is not None and crit["js0_case1_over_case2"] > 1
        crit["reproduces_paper"] = crit["case1_like_case3"] and crit["case2_like_case4"]
        crit["meets_all"] = (crit["strong_convexity"] and crit["whole_measure"] and crit["heterogeneity_kept"]
                             and crit["reproduces_paper"])
        out[lab] = crit
    ok = [lab for lab, c in out.items() if c["meets_all"]]
    choice = max(ok, key=lambda lab: out[lab]["js0_case1_over_case2"]) if ok else None
    return {"criteria": out, "evidence_choice": choice, "default": default,
            "agrees": choice is not None and choice == default,
            "rule": "candidates: every block ≥ 1, whole measure kept, JS⁰(Case 1) > JS⁰(Case 2), Case 1 like Case 3 "
                    "and Case 2 like Case 4; among them the largest JS⁰(Case 1)/JS⁰(Case 2)"}


# -- output ---------------------------------------------------------------------------------------------------
def _fmt_steps(o: dict) -> str:
    m = o["median_steps"]
    txt = "—" if m is None else str(m)
    return txt if o["reached"] == o["seeds"] else f"{txt} ({o['reached']}/{o['seeds']})"


def table_rows(records: list[dict]) -> list[str]:
    """The Markdown table: one row per model and reading (references last)."""
    head = ("| case | reading | κ_l per block | JS⁰ | r̃ median [q25, q75] | " + " | ".join(LABELS.values()) +
            " | GD/Adam thm | HB/Adam β1=.9 | verdict |")
    rows = [head, "|---|---|---|---:|---|" + "---:|" * (len(LABELS) + 2) + "---|"]
    fmt = lambda s: "—" if s is None else ("Adam fails" if s == 0 else f"{s:.2g}×")  # noqa: E731
    for r in records:
        rt = r["r_tilde"]
        rows.append(f"| {r['case']} | {r['label']} | {', '.join(f'{k:.3g}' for k in r['kappa_l'])} | "
                    f"{r['js0']:.3f} | {rt['median']:.0f} [{rt['q25']:.0f}, {rt['q75']:.0f}] | "
                    + " | ".join(_fmt_steps(r["optimizers"][k]) for k in LABELS)
                    + f" | {fmt(r['gd_over_adam_theory'])} | {fmt(r['heavy_ball_over_adam'])} | {r['verdict']} |")
    return rows


def readme_table(result: dict) -> str:
    """The README's table from this study's JSON: :func:`table_rows` of every record, the shipped default reading in
    bold.  ``tests/test_readme_numbers.py`` checks the README against ``docs/results/readings.json``."""
    default = result["default"]
    rows = table_rows(result["readings"] + result["references"])
    return "\n".join(r.replace(f"| {default} |", f"| **{default}** |", 1) for r in rows)


def print_report(result: dict, out=None) -> None:
    out = sys.stdout if out is None else out
    s = result["settings"]
    print(f"\nReadings of “scaled and shifted to [1, κ]” (κ = {s['kappa']:g}, {s['seeds']} seeds, tol = {s['tol']:g}, "
          f"r̃ over {s['starts']} starts; steps: median over seeds, not reached = ∞; (k/n): seeds that reached tol; "
          f"caps {s['caps']['linear']} linear, {s['caps']['adam']} Adam)\n", file=out)
    print("\n".join(table_rows(result["readings"] + result["references"])), file=out)
    ev = result["evidence"]
    print(f"\nEvidence ({ev['rule']}):", file=out)
    for lab, c in ev["criteria"].items():
        js = c["js0_case1_over_case2"]
        print(f"  {lab:<14} every block ≥ 1: {'yes' if c['strong_convexity'] else 'NO'};  whole measure: "
              f"{'yes' if c['whole_measure'] else 'no (bulk dropped)'};  JS⁰ Case 1/Case 2: "
              f"{'n/a' if js is None else format(js, '.2f')};  Case 1 like Case 3: "
              f"{'yes' if c['case1_like_case3'] else 'no'};  Case 2 like Case 4: {'yes' if c['case2_like_case4'] else 'no'}"
              f"{'   <- meets all' if c['meets_all'] else ''}", file=out)
    agree = "agrees with" if ev["agrees"] else "DIFFERS from"
    print(f"\nevidence choice: {ev['evidence_choice']};  shipped default (stored.DEFAULT_READING): {ev['default']} "
          f"({agree} the evidence)", file=out)


def plot(result: dict, path: Path) -> None:
    from quadlab import plots

    plt = plots.pyplot()

    recs = result["readings"]
    labels = list(dict.fromkeys(r["label"] for r in recs))
    by = {(r["model"], r["label"]): r for r in recs}
    refs = {r["model"]: r for r in result["references"]}
    kappa = result["settings"]["kappa"]
    fig, axes = plt.subplots(len(labels), 3, figsize=(13, 2.3 * len(labels) + 0.9), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.15]}, constrained_layout=True)
    for row, lab in zip(axes, labels):
        for ax, model in zip(row[:2], MODELS):
            r = by.get((model, lab))
            ax.set_yscale("log")
            ax.set_ylim(0.7, kappa * 2.5)
            ax.set_xlim(-0.5, 3.5)
            ax.set_xticks([])
            if r is None:
                continue
            for l, ev in enumerate(r["eigenvalues"]):
                x = l + 0.7 * (np.linspace(0, 1, len(ev)) - 0.5)
                ax.plot(x, ev, ".", ms=3.5, color=plots.OKABE_ITO[l % len(plots.OKABE_ITO)])
                ax.text(l, kappa * 1.6, f"κ_l {r['kappa_l'][l]:.3g}", ha="center", va="center", fontsize=7)
            ax.set_title(f"{MODELS[model][0]} ({MODELS[model][1]}), {lab}: {r['verdict']}", fontsize=9)
            ax.set_ylabel("eigenvalue", fontsize=8)
        ax = row[2]
        names = []
        for i, model in enumerate(MODELS):
            r = by.get((model, lab))
            if r is None:
                continue
            for j, (key, den, txt) in enumerate((("gd", "adam_theory", "GD / Adam theory form"),
                                                 ("heavy_ball", "adam", "heavy ball / Adam β1=0.9"))):
                a, b = r["steps"][key], r["steps"][den]
                y = 2 * i + j
                names.append((y, f"{MODELS[model][0]}: {txt}"))
                if a and b:
                    # a bar from 1 to the ratio: right of 1 Adam is faster, left of 1 slower
                    ax.barh(y, a / b - 1.0, left=1.0, color=plots.color(den), height=0.7)
                    ax.text(max(a / b, 1.0), y, f" {a / b:.2g}×", va="center", fontsize=7)
                else:
                    ax.text(1.0, y, " Adam did not reach tol" if a else " GD did not reach tol", va="center",
                            fontsize=7, color=plots.OKABE_ITO[1])
        for key, ls in (("case3", "--"), ("case4", ":")):
            ref = refs.get(key)
            if ref and ref["gd_over_adam_theory"]:
                ax.axvline(ref["gd_over_adam_theory"], color="0.4", ls=ls, lw=1)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlim(0.05, 500)
        ax.set_yticks([y for y, _ in names], [t for _, t in names], fontsize=7)
        ax.set_ylim(3.6, -0.6)
        ax.set_title("step ratio (> 1: Adam faster)", fontsize=9)
    fig.suptitle(f"Readings of “scaled and shifted to [1, κ = {kappa:g}]”: sampled eigenvalues per block (log axis) "
                 f"and step ratios (dashed, dotted: GD/Adam theory form on Cases 3, 4); shipped default: "
                 f"{result['default']}", fontsize=10)
    common.save_figure(fig, path)
    plt.close(fig)


# -- command line -----------------------------------------------------------------------------------------------
def q_list(text: str) -> list[float]:
    """An argparse type: comma-separated q values in (0, 1] for the "top" reading."""
    import argparse

    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not vals or not all(0 < v <= 1 for v in vals):
        raise argparse.ArgumentTypeError(f"every q must lie in (0, 1], got {text!r}")
    return list(dict.fromkeys(vals))


def main(argv=None) -> int:
    ap = common.study_parser("readings", __doc__, "2 seeds, 200 starts for r̃, coarse tuning, Adam capped at 3000 steps, "
                      "'top' at q = TOP_Q only", checkpoint=True, backend=True)
    ap.set_defaults(seeds=8)
    ap.add_argument("--kappa", type=common.finite_float(103, 1e5, lo_open=True), default=5000.0,
                    help="condition number κ of every case, in (103, 1e5] (Cases 3-4 need κ > 103); the step caps "
                         "grow like κ")
    ap.add_argument("--d", type=common.int_in(2, 10_000), default=25, help="eigenvalues drawn per block (the paper: 25)")
    ap.add_argument("--starts", type=common.int_in(1, 1_000_000), default=None,
                    help="random starts for r̃, pooled over the seeds' rotations (default 1000; 200 with --quick)")
    ap.add_argument("--readings", type=common.comma_choices(stored.READINGS), default=list(stored.READINGS),
                    help=f"comma-separated subset of {','.join(stored.READINGS)}")
    ap.add_argument("--top-q", type=q_list, default=None,
                    help=f"q values for the 'top' reading, in (0, 1] (default 0.1,0.25; {stored.TOP_Q:g} with --quick)")
    ap.add_argument("--no-references", action="store_true", help="skip the Case 3/4 reference rows")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="finished points are kept here (default: OUT/readings.<settings hash>.checkpoint.jsonl)")
    common.add_dist_options(ap)
    args = ap.parse_args(argv)
    common.check_common(ap, args)
    if args.checkpoint is not None:
        try:
            args.checkpoint = common.check_output_file(args.checkpoint, "--checkpoint")
        except ValueError as exc:
            common.fail(ap, str(exc))
    qs = args.top_q or ([stored.TOP_Q] if args.quick else [0.1, 0.25])
    starts = args.starts if args.starts is not None else (200 if args.quick else 1000)
    if starts < args.seeds:
        common.fail(ap, f"--starts {starts} is below --seeds {args.seeds}: r̃ needs at least one start per seed")
    # everything that changes a point's numbers; which readings and q are run is not in it (each point is keyed)
    cfg = {"study": "readings", "version": CHECKPOINT_VERSION, "kappa": args.kappa, "tol": args.tol,
           "seeds": args.seeds, "d": args.d, "starts": starts, "quick": args.quick, "backend": args.backend,
           **common.tuning(args.quick),
           "caps": caps(args.kappa, args.tol, args.quick)}
    ck = common.open_checkpoint(ap, args, "readings", cfg)
    todo = [(m, r, q) for m in MODELS for r in args.readings for q in (qs if r == "top" else [None])]
    if not args.no_references:
        todo += [(m, None, None) for m in REFERENCES]
    keys = [Checkpoint.key(model=m, reading=r, q=q) for m, r, q in todo]
    reused = sum(k in ck for k in keys)
    with common.open_executor(ap, args) as ex:  # serial here unless --scheduler; each point is one task
        records = ex.map(point_task, [{"model": m, "reading": r, "q": q, "cfg": cfg} for m, r, q in todo],
                         keys=keys, store=ck,
                         progress=lambda it, n: progress(it, total=n, desc="readings", quiet=args.quiet))
    result = {"study": "readings", "default": stored.DEFAULT_READING, "settings": cfg,
              "readings": [r for r in records if r["model"] in MODELS],
              "references": [r for r in records if r["model"] in REFERENCES],
              "reused_points": reused, "computed_points": len(todo) - reused, "checkpoint": str(ck.path)}
    result["evidence"] = evidence(result["readings"], stored.DEFAULT_READING)
    if not args.quiet:
        print_report(result)
        print(f"\n{len(todo) - reused} points computed, {reused} reused from {ck.path}")
    return common.finish(result, args, "readings", figure=lambda path: plot(result, path))
