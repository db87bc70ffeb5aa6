"""Rotation: Adam's advantage over GD needs H to be (block-)diagonal; one global rotation removes it.

    quadlab rotation [--seeds 5] [--tol 1e-6] [--quick] [--out out/rotation] [--json PATH] [--quiet]

The same eigenvalues, two arrangements (``BlockQuadratic(spec, rotation=...)``):
* "block":  H = blockdiag(Q_1Λ_1Q_1ᵀ, …, Q_LΛ_LQ_Lᵀ), one Haar Q_l per block;
* "global": H = Q diag(Λ) Qᵀ with one Haar Q of size n: the same spectrum, no block structure left.
GD, w ← w − η∇f, is orthogonally invariant: e_k = (I − ηH)^k e_0, so with a rotation-invariant start
w_0 ~ N(0, I) its step counts have the same distribution under both (they differ only through the draws).
Adam is a diagonal (coordinate-wise) preconditioner.  In the theory form, w ← w − η∇f/|∇f(w_0)|, its speed is
set by κ_M = κ(M), M = D^{-1/2}HD^{-1/2}, D = diag|∇f(w_0)|: near the blocks' own κ_l (times the effect of a
random D) when H is block diagonal with blocks on different scales, because D then absorbs each block's scale.
After a global Haar rotation every coordinate mixes every eigenvalue and diag(H) is nearly constant, so no
diagonal D does much better than κ, and D = diag|∇f(w_0)| of a random start does far worse (κ_M ≫ κ).

Spectra (κ = 5000 both):
* simple heterogeneous (the paper's Case 3): {1, 2, 3}, {99, 100, 101}, {4998, 4999, 5000};
* GPT2-like: four blocks of 25, ``spectra.scaled_blocks(base, 4, 10)`` with base =
  ``spectra.bulk_outliers(25, 1, 2, 3, 5)`` (a bulk of 22 on [1, 2] and three outliers up to 5, the
  shape of a network Hessian block at initialisation), so κ_l = 5 and the block scales are 1, 10, 100, 1000
  (three decades; the GPT2 blocks of docs/THEORY.md §8.1 span about 4.5).

Optimizers (learning rates tuned on all seeds at once by ``quadlab.tune.tune_lr``, the shared protocol: seeds reached, then the worst seed's steps; seed k
draws the rotation(s) and w_0 ~ N(0, I)):
* GD, tuned on [½η*, η*], η* = 2/(λ_min + λ_max) (½η* already needs twice the steps); cap
  ln(1/tol)/ln(1/ρ*) steps, ρ* = (κ−1)/(κ+1), which always suffice at η* since ‖∇f_k‖ ≤ ρ*^k‖∇f_0‖;
* heavy ball at the optimal momentum ((√κ−1)/(√κ+1))², lr tuned on [¼, 1.5]× its optimal lr, capped at 4×
  the steps of its asymptotic rate: the fair baseline for Adam with β1 = 0.9, since momentum alone turns κ
  into about √κ; orthogonally invariant like GD;
* Adam theory form (β1 = 0, β2 = 1, ε = 0), tuned around η_M = 2/(μ_min + μ_max) of each seed;
  capped at 3× GD's worst-seed steps (1× with --quick): a run that has not reached tol by then has lost its
  advantage, and the table gives the ratio as an upper bound (≤) and the steps ln(1/tol)/ln(1/ρ_M),
  ρ_M = (κ_M−1)/(κ_M+1), that the theory predicts at η_M;
* Adam β1 = 0 (RMSprop with bias correction) and Adam β1 = 0.9, both β2 = 0.999, ε = 1e-8, lr tuned on a log
  grid over [1e-4, 3]; capped at 20 000 steps (2 000 with --quick).  With a constant lr and β2 < 1 Adam may
  stall short of a tight tolerance; the final ‖∇f‖/‖∇f(w_0)‖ is then reported.
Reported: steps to ‖∇f‖ ≤ tol·‖∇f(w_0)‖ (median over seeds) and the GD/Adam ratios (median over seeds of
per-seed ratios) under both rotations.  Figure: log10 ‖∇f(w_k)‖ against k, median over seeds with a min–max
band, one row per spectrum, block rotation left, global right.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import quadlab
from quadlab import optim, spectra, theory
from quadlab.studies import common
from quadlab.studies.common import progress, seed_record, steps_bound
from quadlab.tune import tune_lr

STUDY = "rotation"
KAPPA = 5000.0
ROTATIONS = ("block", "global")
CASES = {"simple": "simple heterogeneous (Case 3)", "gpt2_like": "GPT2-like: 4 blocks of 25, scales 1…1000"}
LABELS = {
    "gd": "GD, tuned",
    "heavy_ball": "heavy ball, optimal momentum, lr tuned",
    "adam_theory": "Adam theory form, tuned",
    "adam_beta1_0": "Adam β1=0, tuned",
    "adam": "Adam β1=0.9, tuned",
}


def case_spectrum(case: str) -> spectra.BlockSpectrum:
    if case == "simple":
        return spectra.simple_heterogeneous(KAPPA)
    base = spectra.bulk_outliers(25, 1.0, 2.0, 3, 5.0)
    return spectra.scaled_blocks(base, 4, 10.0, names=["s^0", "s^1", "s^2", "s^3"])



def _opt_record(results, lr, cap: int) -> dict:
    rec = seed_record(results, float(lr), cap)
    rec["seeds_reached"] = sum(s is not None for s in rec["steps_to_tol_per_seed"])
    rec["final_rel_grad_norm_max"] = max(float(r.final()[0] / r.grad_norm[0, 0]) for r in results)
    return rec


def _ratio(slow: dict, fast: dict) -> dict:
    """GD-like steps / Adam-like steps, median over seeds of per-seed ratios.  Where a seed of ``fast`` did not
    reach tol within its cap it needs more than the cap, so that seed's ratio is at most slow/cap: the result
    is then an upper bound (kind "at_most")."""
    per, kind = [], "measured"
    for x, y in zip(slow["steps_to_tol_per_seed"], fast["steps_to_tol_per_seed"]):
        if x is None:
            return {"value": None, "kind": "undefined", "per_seed": None}
        if y is None:  # not reached (stalled or diverged): it needs more than the cap
            y, kind = fast["max_steps"], "at_most"
        per.append(x / max(y, 1))
    return {"value": float(np.median(per)), "kind": kind, "per_seed": per}


def run_rotation(spec, rotation: str, args) -> tuple[dict, dict]:
    """Tune and run every optimizer on one spectrum under one rotation: (record, traces per optimizer)."""
    seeds = list(range(args.seeds))
    tol = args.tol
    quick = args.quick
    probs = [quadlab.BlockQuadratic(spec, rotation=rotation, seed=k) for k in seeds]
    w0 = [quadlab.starts(p, [k])[0] for p, k in zip(probs, seeds)]  # the runs' own: the constants below are theirs
    lin = lin_at = ada = common.tuning(quick)  # one search setting for every study
    out, traces = {}, {}

    g = theory.gd_rates(probs[0])  # eigenvalues only: the same for both rotations
    cap_lin = steps_bound(g.best_rate, tol)
    t = tune_lr(probs, optim.gd(), lr_range=(0.5 * g.best_lr, g.best_lr), seeds=seeds, steps=cap_lin, tol=tol, **lin)
    out["gd"], traces["gd"] = _opt_record(t.best, t.best_lr, cap_lin), t.best

    hb = theory.heavy_ball_optimum(probs[0])
    # heavy ball contracts by ρ_hb = (√κ−1)/(√κ+1) asymptotically, but its 2×2 recurrences are not normal:
    # a factor 4 over ln(1/tol)/ln(1/ρ_hb) covers the transient; slower lrs are not the best anyway
    cap_hb = min(cap_lin, 4 * steps_bound(hb.rate, tol))
    t = tune_lr(probs, optim.heavy_ball(momentum=hb.momentum), lr_range=(0.25 * hb.lr, 1.5 * hb.lr), seeds=seeds,
                steps=cap_hb, tol=tol, **lin)
    out["heavy_ball"], traces["heavy_ball"] = _opt_record(t.best, t.best_lr, cap_hb), t.best
    out["heavy_ball"]["momentum"] = float(hb.momentum)

    consts = [theory.adam_constants(p, w) for p, w in zip(probs, w0)]
    best = np.array([c.best_lr for c in consts])
    gd_worst = max((x for x in out["gd"]["steps_to_tol_per_seed"] if x is not None), default=cap_lin)
    cap_at = max(200, int((1 if quick else 3) * gd_worst))
    # for a globally rotated H the closed form of the preconditioned method needs a dense n×n product per step
    # and run; beyond a few dozen coordinates iterating (one batched matvec per step) is cheaper
    method = "iterate" if rotation == "global" and spec.n > 32 else "auto"
    t = tune_lr(probs, optim.adam_theory(lr=1.0), lr_range=(0.25 * best.min(), 1.2 * best.max()), seeds=seeds,
                steps=cap_at, tol=tol, method=method, **lin_at)
    out["adam_theory"], traces["adam_theory"] = _opt_record(t.best, t.best_lr, cap_at), t.best

    cap_adam = 2000 if quick else 20000
    for key, b1 in (("adam_beta1_0", 0.0), ("adam", 0.9)):
        t = tune_lr(probs, optim.adam(b1=b1), lr_range=(1e-4, 3.0), seeds=seeds, steps=cap_adam, tol=tol, **ada)
        out[key], traces[key] = _opt_record(t.best, t.best_lr, cap_adam), t.best

    kM = np.array([c.mu_max.max() / c.mu_min.min() for c in consts])
    rho_M = (kM - 1) / (kM + 1)
    rec = {
        "rotation": rotation,
        "kappa": float(spec.kappa),
        "max_block_kappa": float(spec.block_kappas.max()),
        "kappa_M_median": float(np.median(kM)),
        "adam_theory_predicted_steps_median": float(np.median(np.log(1 / tol) / -np.log(rho_M))),
        "gd_predicted_steps": float(math.log(1 / tol) / -math.log(g.best_rho)),
        "r_tilde_median": float(np.median([c.r_tilde for c in consts])),
        "optimizers": out,
        "gd_over_adam_theory": _ratio(out["gd"], out["adam_theory"]),
        "gd_over_adam_beta1_0": _ratio(out["gd"], out["adam_beta1_0"]),
        "gd_over_adam": _ratio(out["gd"], out["adam"]),
        "heavy_ball_over_adam": _ratio(out["heavy_ball"], out["adam"]),
    }
    return rec, traces


def rotation_task(spec: dict) -> tuple[dict, dict]:
    """One (spectrum, rotation) from its plain-dict spec {"case", "rotation", "seeds", "tol", "quick"} (a
    :mod:`quadlab.dist` task): ``run_rotation``'s record and traces."""
    args = SimpleNamespace(seeds=spec["seeds"], tol=spec["tol"], quick=spec["quick"])
    return run_rotation(case_spectrum(spec["case"]), spec["rotation"], args)


def _fmt_ratio(r: dict) -> str:
    if r["value"] is None:
        return "n/a"
    return ("≤ " if r["kind"] == "at_most" else "") + f"{r['value']:.3g}×"


def print_table(case: str, recs: dict, out=None) -> None:
    out = sys.stdout if out is None else out  # looked up now, so a redirected stdout is honoured
    b, g = recs["block"], recs["global"]
    print(f"\n{CASES[case]}  (κ = {b['kappa']:g}, max κ_l = {b['max_block_kappa']:.4g}; tol = ‖∇f‖/‖∇f(w0)‖)",
          file=out)
    print("  steps: median over seeds; reached: seeds that reached tol within the cap (in brackets: the worst "
          "final ‖∇f‖/‖∇f(w0)‖ otherwise)", file=out)
    print(f"  {'optimizer':<40}{'block: lr':>11}{'steps':>9}{'reached':>13}{'global: lr':>12}{'steps':>9}"
          f"{'reached':>13}", file=out)
    for key in LABELS:
        cells = []
        for r in (b, g):
            o = r["optimizers"][key]
            st = "—" if o["steps_to_tol"] is None else str(o["steps_to_tol"])
            n = len(o["steps_to_tol_per_seed"])
            status = f"{o['seeds_reached']}/{n}" + ("" if o["seeds_reached"] == n else
                                                    f" ({o['final_rel_grad_norm_max']:.0e})")
            cells.append((f"{o['lr']:.3g}", st, status))
        (l1, s1, t1), (l2, s2, t2) = cells
        print(f"  {LABELS[key]:<40}{l1:>11}{s1:>9}{t1:>13}{l2:>12}{s2:>9}{t2:>13}", file=out)
    for name, key in (("GD / Adam theory form", "gd_over_adam_theory"), ("GD / Adam β1=0", "gd_over_adam_beta1_0"),
                      ("GD / Adam β1=0.9", "gd_over_adam"), ("heavy ball / Adam β1=0.9", "heavy_ball_over_adam")):
        print(f"  {name:<40}{_fmt_ratio(b[key]):>20}{'':>13}{_fmt_ratio(g[key]):>21}", file=out)
    print(f"  theory: κ_M = κ(D^-1/2 H D^-1/2) median {b['kappa_M_median']:.3g} (block) vs {g['kappa_M_median']:.3g} "
          f"(global), κ = {b['kappa']:g}; predicted steps at the best constant step: Adam theory form "
          f"{b['adam_theory_predicted_steps_median']:.3g} (block) vs {g['adam_theory_predicted_steps_median']:.3g} "
          f"(global), GD {b['gd_predicted_steps']:.3g}", file=out)


def plot(all_recs, all_traces, path: Path, tol: float) -> None:
    from quadlab import plots

    plt = plots.pyplot()

    cases = list(all_recs)
    fig, axes = plt.subplots(len(cases), 2, figsize=(13, 4.6 * len(cases)), constrained_layout=True, squeeze=False)
    for row, case in zip(axes, cases):
        ylo = []
        for ax, rot in zip(row, ROTATIONS):
            tr = all_traces[case][rot]
            for key in LABELS:
                plots.median_band(ax, tr[key], label=LABELS[key], color=plots.color(key))
            g0 = np.median([np.log10(r.grad_norm[0, 0]) for r in tr["gd"]])
            ax.axhline(np.log10(tol) + g0, color="0.5", lw=0.8, ls=":")
            ylo.append(np.log10(tol) + g0)
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(0, max(r.steps[-1] for k in LABELS for r in tr[k]))  # iterations start at 0
            ax.set_xlabel("iteration k")
            ax.set_ylabel("log10 ‖∇f(w_k)‖")
            r = all_recs[case][rot]["gd_over_adam_theory"]
            ax.set_title(f"{CASES[case]}, {rot} rotation\nGD / Adam theory form: {_fmt_ratio(r)}", fontsize=10)
        top = max(ax.get_ylim()[1] for ax in row)
        for ax in row:  # one y-range per row so the two rotations read side by side
            ax.set_ylim(min(ylo) - 1.0, top)
        row[0].legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.suptitle("Same eigenvalues, per-block vs one global Haar rotation (median over seeds, band = min–max; "
                 "dotted: tolerance)")
    common.save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = common.study_parser(STUDY, __doc__, "at most 2 seeds, coarser tuning, shorter caps")
    common.add_dist_options(ap)
    args = ap.parse_args(argv)
    common.check_common(ap, args)
    recs, traces = {c: {} for c in CASES}, {c: {} for c in CASES}
    jobs = [(c, r) for c in CASES for r in ROTATIONS]

    def saving(done, n):  # each finished (spectrum, rotation) is saved at once, so a crash loses only the rest
        for key, (rec, tr) in progress(done, total=n, desc="spectrum × rotation", quiet=args.quiet):
            case, rot = key.split("/")
            recs[case][rot] = rec
            common.save_partial({"study": STUDY, "kappa": KAPPA, "tol": args.tol, "seeds": args.seeds,
                                 "quick": args.quick,
                                 "cases": {c: {"name": CASES[c], **recs[c]} for c in CASES if recs[c]}}, args, STUDY)
            yield key, (rec, tr)

    specs = [{"case": c, "rotation": r, "seeds": args.seeds, "tol": args.tol, "quick": args.quick} for c, r in jobs]
    with common.open_executor(ap, args) as ex:
        values = ex.map(rotation_task, specs, keys=[f"{c}/{r}" for c, r in jobs], progress=saving)
    # in the jobs' order whatever order they finished in: the JSON is the same serially and on a cluster
    recs = {c: {} for c in CASES}
    for (case, rot), (rec, tr) in zip(jobs, values):
        recs[case][rot], traces[case][rot] = rec, tr
    if not args.quiet:
        for case in CASES:
            print_table(case, recs[case])
    result = {"study": STUDY, "kappa": KAPPA, "tol": args.tol, "seeds": args.seeds, "quick": args.quick,
              "cases": {c: {"name": CASES[c], **recs[c]} for c in CASES}}
    return common.finish(result, args, STUDY, figure=lambda path: plot(recs, traces, path, args.tol))
