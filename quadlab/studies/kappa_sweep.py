"""κ sweep: how the steps of GD and of Adam (theory form) grow with the condition number κ.

    python studies/kappa_sweep.py [--kappa-min 125] [--kappa-max 1e5] [--n-kappa 10] [--seeds 5]
                                  [--cases het,hom] [--quick] [--out out/kappa_sweep] [--json PATH] [--quiet]

Cases (docs/THEORY.md §5): "het" = simple heterogeneous {1,2,3}, {99,100,101}, {κ−2,κ−1,κ} (max_l κ_l = 3 for
every κ), "hom" = simple homogeneous, the same nine numbers rearranged (max_l κ_l = κ − 2).  Every block is
Haar-rotated; seed s draws the rotations and the standard Gaussian start w_0.  A run has converged at the
first k with ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖ (tol = 1e-6).

What theory predicts, turned into steps.  A linear method e ← (I − A)e whose error contracts by at most ρ
per step in every eigencomponent has ‖∇f(w_k)‖ ≤ ρ^k ‖∇f(w_0)‖ when A commutes with H, so it needs at most
ln(1/tol)/ln(1/ρ) = iterations_to(ρ², tol²) steps (``theory.iterations_to`` counts steps for a factor on
the gap, a squared norm, hence tol²).

* GD at its best step η* = 2/(λ_min + λ_max): ρ = (κ−1)/(κ+1), so steps ≤ ln(1/tol)/ln((κ+1)/(κ−1))
  ≈ ln(1/tol)·κ/2: slope 1 on log–log axes (``theory.gd_rates(problem).best_rate``).  Asymptotically only the
  two extreme eigencomponents are left, both contracting by exactly ρ, so for a given start the count is
  ln(tol·‖g_0‖/a)/ln ρ with a² = the squared gradient weight of those two components: this start-corrected
  prediction matches the observed count to a step or two (JSON: ``predicted.gd_best_per_seed``).
* Adam theory form at the theorem's step η = min_l C_{l,1}: the theorem's gap factor max_l (1 − 1/(r̃κ_l))²
  gives about ln(1/tol)·r̃·max_l κ_l steps (``theory.adam_constants(...).bound``): slope 1 against
  r̃·max_l κ_l.  On "het" r̃·max_l κ_l does not grow with κ, on "hom" it grows like κ.
* Tuned GD need not follow the κ/2 line: the criterion weighs an eigencomponent by λ, so the λ_min
  component starts near ‖g_0‖/κ and must shrink only by about tol·κ.  A step η = c·2/λ_max a little below η*
  kills the large-λ components fast; the λ_min component contracts by 1 − 2c/κ per step, which gives about
  (κ/2c)·ln(1/(tol·κ)) steps, a log–log slope 1 − 1/ln(1/(tol·κ)) below 1 that falls towards 0 as tol·κ → 1.
  The gap criterion would not show this; the gradient criterion is the paper's.

Learning rates are tuned per seed (``quadlab.tune.tune_lr``), on grids relative to the seed's stability
limit (GD: η ∈ [0.2, 1]·2/λ_max; Adam theory form: η ∈ [1e-3, 1]·2/μ_max(M), M = D^{-1/2} H D^{-1/2}): the
theory form's effective step scales with 1/|g_0|, so one lr shared by every start is set by the worst start.
Every run is capped at ``cap_factor`` × GD's predicted bound (+100); a run that does not reach tol within its
cap counts as "not reached" (a median is reported only if at least half the seeds reached tol).  The sweep
is resumable: finished (case, κ) points are kept in a Checkpoint next to the figure, one file per settings
hash, and reused by a rerun with the same settings (``--fresh`` starts over; other settings get their own
file, so they never destroy this one).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import quadlab
from quadlab import optim, spectra, theory
from quadlab.backend import check_memory
from quadlab.studies import common
from quadlab.studies.common import Checkpoint, median_steps, progress, run_status, steps_per_seed
from quadlab.tune import tune_lr

CASES = {
    "het": ("simple heterogeneous", spectra.simple_heterogeneous),
    "hom": ("simple homogeneous", spectra.simple_homogeneous),
}
METHODS = ("gd_best", "gd", "adam_theory_thm", "adam_theory")
LABELS = {
    "gd_best": "GD, step 2/(λmin+λmax)",
    "gd": "GD, tuned",
    "adam_theory_thm": "Adam theory form, theorem step",
    "adam_theory": "Adam theory form, tuned",
}
#: what the figures and tables call the sweep's quantities
CHECKPOINT_VERSION = 2  # bump when a point's record changes shape, so old checkpoints are not reused


# -- theory predictions ----------------------------------------------------------------------------
def gd_best_predictions(problem, w0, tol: float) -> tuple[float, float]:
    """(start-corrected, start-free) steps GD at η* = 2/(λ_min + λ_max) needs for ‖∇f‖ ≤ tol·‖∇f(w_0)‖.

    In H's eigenbasis the gradient's component i is λ_i c_i (1 − η*λ_i)^k with c = Vᵀ(w_0 − w*).  The
    components with |1 − η*λ_i| = ρ = (κ−1)/(κ+1) (λ_min and λ_max) decay slowest; every other one is
    slower by at least a factor 1 − 2/(κ+1) per step, which after the ~κ·ln(1/tol)/2 steps needed is
    ~tol and moves the count by well under a step.  With a² = Σ_slow (λ_i c_i)²:
    start-corrected = ln(tol·‖g_0‖/a)/ln ρ = iterations_to(ρ², (tol·‖g_0‖/a)²), start-free (an upper bound
    for every start, a = ‖g_0‖) = iterations_to(ρ², tol²)."""
    rates = theory.gd_rates(problem)
    lam, V = np.linalg.eigh(problem.backend.to_numpy(problem.dense()).astype(np.float64))
    comp = lam * (V.T @ (np.asarray(w0, dtype=np.float64) - problem.optimum_host))
    mult = np.abs(1.0 - rates.best_lr * lam)
    # ρ − 1/(κ+1) lies halfway between ρ and the next multiplier 1 − 4/(κ+1) on these spectra
    slow = mult > rates.best_rho - 1.0 / (rates.kappa + 1.0)
    a, g0 = float(np.linalg.norm(comp[slow])), float(np.linalg.norm(comp))
    free = float(theory.iterations_to(rates.best_rate, tol**2))
    eff = tol * g0 / a if a > 0 else 1.0
    start = float(theory.iterations_to(rates.best_rate, eff**2)) if eff < 1 else 0.0
    return start, free


def theorem_steps(x, tol: float):
    """Steps the theorem's gap factor (1 − 1/x)², x = r̃·max_l κ_l, needs for a squared-norm reduction
    tol²: iterations_to((1 − 1/x)², tol²) = ln(1/tol)/(−ln(1 − 1/x)) ≈ ln(1/tol)·x."""
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(theory.iterations_to(np.exp(2 * np.log1p(-1.0 / x)), tol**2), dtype=np.float64)


def fit_slope(x, y) -> float | None:
    """Least-squares slope of log y against log x over the finite positive pairs (None with < 2 distinct x)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if np.unique(x[ok]).size < 2:
        return None
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


# -- one sweep point ---------------------------------------------------------------------------------
def sweep_point(case: str, kappa: float, cfg: dict) -> dict:
    """Run the four methods on every seed's problem at one κ and return the point's JSON record."""
    name, make = CASES[case]
    spec = make(kappa)
    seeds = list(range(cfg["seeds"]))
    tol = cfg["tol"]
    probs = [quadlab.BlockQuadratic(spec, rotation="block", seed=s, xp=cfg["backend"]) for s in seeds]
    rates = theory.gd_rates(probs[0])
    gd_bound = float(theory.iterations_to(rates.best_rate, tol**2))
    cap = int(math.ceil(cfg["cap_factor"] * gd_bound)) + 100

    results: dict[str, list] = {}
    lrs: dict[str, list[float]] = {}
    results["gd_best"] = [quadlab.run(p, optim.gd(lr="optimal"), seeds=[s], steps=cap, tol=tol)
                          for p, s in zip(probs, seeds)]
    lrs["gd_best"] = [rates.best_lr] * len(seeds)
    w0 = [r.w0[0] for r in results["gd_best"]]  # the runner's own start for seed s (the same for every method)
    consts = [theory.adam_constants(p, w) for p, w in zip(probs, w0)]

    def tuned(opt, ranges):
        # one search per seed: the theory form's effective step scales with 1/|g_0|, which differs from start
        # to start, so one lr shared by all seeds would be set by the worst start (the theorem's step is per
        # start too); GD is tuned the same way for a like-for-like comparison
        ts = [tune_lr(p, opt, lr_range=rg, points=cfg["points"], refine=cfg["refine"], seeds=[s], steps=cap,
                      tol=tol) for p, s, rg in zip(probs, seeds, ranges)]
        return [t.best for t in ts], [t.best_lr for t in ts]

    results["gd"], lrs["gd"] = tuned(optim.gd(), [(0.2 * rates.lr_stable, rates.lr_stable)] * len(seeds))
    results["adam_theory_thm"] = [quadlab.run(p, optim.adam_theory(), seeds=[s], steps=cap, tol=tol)
                                  for p, s in zip(probs, seeds)]
    lrs["adam_theory_thm"] = [float(c.eta) for c in consts]
    # stable iff η < 2/μ_max(M): each seed's grid ends at its own limit
    results["adam_theory"], lrs["adam_theory"] = tuned(
        optim.adam_theory(lr=1.0), [(2e-3 / float(np.max(c.mu_max)), 2.0 / float(np.max(c.mu_max))) for c in consts])

    methods = {}
    for key in METHODS:
        per_seed = steps_per_seed(results[key])
        methods[key] = {"lr_per_seed": [float(v) for v in lrs[key]], "steps_to_tol": median_steps(per_seed),
                        "steps_to_tol_per_seed": per_seed, "status": run_status(results[key]),
                        "max_steps": cap}
    preds = [gd_best_predictions(p, w, tol) for p, w in zip(probs, w0)]
    r_tilde = [float(c.r_tilde) for c in consts]
    x = [r * float(spec.block_kappas.max()) for r in r_tilde]
    return {
        "case": case,
        "name": name,
        "kappa": float(spec.kappa),
        "max_block_kappa": float(spec.block_kappas.max()),
        "seeds": seeds,
        "r_tilde_per_seed": r_tilde,
        "r_tilde_max_block_kappa_per_seed": x,
        "predicted": {
            "gd_best_bound": gd_bound,
            "gd_best_per_seed": [p[0] for p in preds],
            "adam_theory_thm_theorem_per_seed": [float(v) for v in theorem_steps(x, tol)],
            "adam_theory_thm_exact_rate_per_seed": [float(theory.iterations_to(c.rate_exact, tol**2))
                                                    for c in consts],
        },
        "methods": methods,
    }


def point_task(spec: dict) -> dict:
    """One sweep point from its plain-dict spec {"case", "kappa", "cfg"} (a :mod:`quadlab.dist` task)."""
    return sweep_point(spec["case"], spec["kappa"], spec["cfg"])


# -- summary, table, figure -----------------------------------------------------------------------------
def summarize(points: dict[str, list[dict]]) -> dict:
    """Log–log slopes of median steps against κ per case and method; of the per-seed Adam steps against
    r̃·max_l κ_l over both cases; and the slope of GD's predicted bound (the theory's line)."""
    out = {"steps_vs_kappa": {}, "steps_vs_r_tilde_max_block_kappa": {}, "theory": {}}
    for case, recs in points.items():
        k = [r["kappa"] for r in recs]
        out["steps_vs_kappa"][case] = {
            m: fit_slope(k, [np.nan if r["methods"][m]["steps_to_tol"] is None else r["methods"][m]["steps_to_tol"]
                             for r in recs]) for m in METHODS}
        out["theory"][f"gd_best_bound_vs_kappa_{case}"] = fit_slope(k, [r["predicted"]["gd_best_bound"] for r in recs])
    for m in ("adam_theory_thm", "adam_theory"):
        xs, ys = [], []
        for recs in points.values():
            for r in recs:
                for xv, s in zip(r["r_tilde_max_block_kappa_per_seed"], r["methods"][m]["steps_to_tol_per_seed"]):
                    xs.append(xv), ys.append(np.nan if s is None else s)
        out["steps_vs_r_tilde_max_block_kappa"][m] = fit_slope(xs, ys)
    return out


def _fmt(v, spec="d") -> str:
    return "—" if v is None else format(v, spec)


def print_table(points: dict[str, list[dict]], slopes: dict, tol: float, out=sys.stdout) -> None:
    for case, recs in points.items():
        print(f"\n{CASES[case][0]} ({case}): median steps to ‖∇f‖ ≤ {tol:g}·‖∇f(w0)‖ over {len(recs[0]['seeds'])} "
              f"seeds ('—': not reached within the cap by half the seeds)", file=out)
        print(f"  {'κ':>9} {'max κ_l':>8} {'r̃·maxκ_l':>10} {'GD bound':>9} {'GD best':>9} {'GD tuned':>9} "
              f"{'Adam thm':>9} {'Adam tuned':>10} {'cap':>9} {'GD/Adam':>8}", file=out)
        for r in recs:
            m = r["methods"]
            gd, ad = m["gd"]["steps_to_tol"], m["adam_theory"]["steps_to_tol"]
            ratio = f"{gd / ad:.1f}×" if gd and ad else "—"
            print(f"  {r['kappa']:>9.4g} {r['max_block_kappa']:>8.4g} "
                  f"{np.median(r['r_tilde_max_block_kappa_per_seed']):>10.3g} {r['predicted']['gd_best_bound']:>9.0f} "
                  f"{_fmt(m['gd_best']['steps_to_tol']):>9} {_fmt(m['gd']['steps_to_tol']):>9} "
                  f"{_fmt(m['adam_theory_thm']['steps_to_tol']):>9} {_fmt(m['adam_theory']['steps_to_tol']):>10} "
                  f"{m['gd']['max_steps']:>9} {ratio:>8}", file=out)
        s = slopes["steps_vs_kappa"][case]
        print("  log–log slope of steps against κ: "
              + ", ".join(f"{LABELS[k]} {_fmt(v, '.2f')}" for k, v in s.items())
              + f"; theory (GD bound) {_fmt(slopes['theory'][f'gd_best_bound_vs_kappa_{case}'], '.2f')}", file=out)
    s = slopes["steps_vs_r_tilde_max_block_kappa"]
    print("  (GD/Adam: GD tuned over Adam theory form tuned)", file=out)
    print("\nlog–log slope of Adam's steps against r̃·max_l κ_l (every seed and κ, all cases): theorem step "
          f"{_fmt(s['adam_theory_thm'], '.2f')}, tuned {_fmt(s['adam_theory'], '.2f')}; the theorem's line has "
          "slope 1", file=out)


_CASE_STYLE = {"het": ("o", "-"), "hom": ("^", "--")}
_FILLED = {"gd_best": True, "gd": False, "adam_theory_thm": True, "adam_theory": False}


def plot(points: dict[str, list[dict]], tol: float, path: Path) -> None:
    from matplotlib.lines import Line2D

    from quadlab import plots

    plt = plots.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 6.6), constrained_layout=True)
    kmin = min(r["kappa"] for recs in points.values() for r in recs)
    kmax = max(r["kappa"] for recs in points.values() for r in recs)
    for case, recs in points.items():
        marker, ls = _CASE_STYLE[case]
        k = np.array([r["kappa"] for r in recs])
        for m in METHODS:
            st = np.array([np.nan if r["methods"][m]["steps_to_tol"] is None else r["methods"][m]["steps_to_tol"]
                           for r in recs], dtype=float)
            col = plots.color(m)
            ax1.plot(k, st, ls=ls, marker=marker, color=col, mfc=col if _FILLED[m] else "white", ms=6, lw=1.3)
            # a median beyond the cap: an arrow at the cap says "more than this"
            cut = np.isnan(st)
            if cut.any():
                caps = np.array([r["methods"][m]["max_steps"] for r in recs], dtype=float)
                ax1.plot(k[cut], caps[cut], ls="none", marker=r"$\uparrow$", color=col, ms=11)
    # theory: GD's bound at its best step, from gd_rates and iterations_to on a fine κ grid
    kk = np.geomspace(kmin, kmax, 60)
    gd_line = [theory.iterations_to(theory.gd_rates(quadlab.BlockQuadratic(
        spectra.simple_heterogeneous(max(v, 103.5)), rotation="none")).best_rate, tol**2) for v in kk]
    ax1.plot(kk, gd_line, color="0.35", ls=":", lw=2)
    ax1.set_xscale("log"), ax1.set_yscale("log")
    ax1.set_xlabel("condition number κ")
    ax1.set_ylabel(f"steps to ‖∇f‖ ≤ {tol:g}·‖∇f(w₀)‖ (median over seeds)")
    ax1.set_title("steps against κ")
    method_handles = [Line2D([], [], color=plots.color(m), marker="o", mfc=plots.color(m) if _FILLED[m] else "white",
                             lw=1.3, label=LABELS[m]) for m in METHODS]
    method_handles.append(Line2D([], [], color="0.35", ls=":", lw=2,
                                 label="theory, GD at η*: ln(1/tol)/ln((κ+1)/(κ−1)) ≈ ln(1/tol)·κ/2"))
    method_handles.append(Line2D([], [], color="0.2", ls="none", marker=r"$\uparrow$", ms=11,
                                 label="not reached within the cap (shown at the cap)"))
    case_handles = [Line2D([], [], color="0.2", marker=_CASE_STYLE[c][0], ls=_CASE_STYLE[c][1], mfc="white",
                           label=CASES[c][0]) for c in points]
    # legends below the axes: the data fill the log–log box from corner to corner
    ax1.legend(handles=method_handles + case_handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13),
               ncol=2, frameon=False)

    # panel 2: every seed and κ, Adam's steps against r̃·max_l κ_l, with the theorem's line
    xs_all, ys_all = [], []
    for case, recs in points.items():
        marker, _ = _CASE_STYLE[case]
        for m in ("adam_theory_thm", "adam_theory"):
            xs, ys, xc, yc = [], [], [], []
            for r in recs:
                for xv, s in zip(r["r_tilde_max_block_kappa_per_seed"], r["methods"][m]["steps_to_tol_per_seed"]):
                    if s is not None:
                        xs.append(xv), ys.append(max(s, 1))
                    else:
                        xc.append(xv), yc.append(r["methods"][m]["max_steps"])
                    xs_all.append(xv), ys_all.append(ys[-1] if s is not None else yc[-1])
            col = plots.color(m)
            ax2.plot(xs, ys, ls="none", marker=marker, color=col, mfc=col if _FILLED[m] else "white", ms=6,
                     alpha=0.85)
            ax2.plot(xc, yc, ls="none", marker=r"$\uparrow$", color=col, ms=11, alpha=0.85)
    xx = np.geomspace(max(min(xs_all) / 1.5, 1.01), max(xs_all) * 1.5, 80)
    ax2.plot(xx, theorem_steps(xx, tol), color="0.35", ls=":", lw=2)
    # the line may leave the top: the data, not the bound at huge r̃·κ_l, set the vertical range
    ax2.set_ylim(min(ys_all) / 2, max(ys_all) * 10)
    ax2.set_xscale("log"), ax2.set_yscale("log")
    ax2.set_xlabel("r̃ · max_l κ_l  (theorem's constant for the seed's start)")
    ax2.set_ylabel(f"steps to ‖∇f‖ ≤ {tol:g}·‖∇f(w₀)‖ (one point per seed and κ)")
    ax2.set_title("Adam theory form against the theorem's constant")
    h2 = [Line2D([], [], color=plots.color(m), marker="o", ls="none", mfc=plots.color(m) if _FILLED[m] else "white",
                 label=LABELS[m]) for m in ("adam_theory_thm", "adam_theory")]
    h2.append(Line2D([], [], color="0.35", ls=":", lw=2,
                     label="theorem: ln(1/tol)/(−ln(1 − 1/(r̃κ_l))) ≈ ln(1/tol)·r̃·max κ_l"))
    h2.append(Line2D([], [], color="0.2", ls="none", marker=r"$\uparrow$", ms=11,
                     label="not reached within the cap (shown at the cap)"))
    h2 += [Line2D([], [], color="0.2", marker=_CASE_STYLE[c][0], ls="none", mfc="white", label=CASES[c][0])
           for c in points]
    ax2.legend(handles=h2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.suptitle("κ sweep: GD's steps grow like κ; Adam's (theory form) like r̃·max_l κ_l")
    common.save_figure(fig, path)
    plt.close(fig)


# -- command line ------------------------------------------------------------------------------------------
def kappa_grid(lo: float, hi: float, n: int) -> list[float]:
    """n log-spaced κ from lo to hi, rounded to 4 significant digits (stable checkpoint keys)."""
    return [float(f"{v:.4g}") for v in np.geomspace(lo, hi, n)]


def main(argv=None) -> int:
    ap = common.study_parser("kappa_sweep", __doc__, "3 κ points up to 1e4, 2 seeds, coarse tuning", checkpoint=True,
                      backend=True)
    ap.add_argument("--kappa-min", type=common.finite_float(103, 1e7, lo_open=True), default=125.0,
                    help="smallest κ, in (103, 1e7] (the simple cases need κ > 103)")
    ap.add_argument("--kappa-max", type=common.finite_float(103, 1e7, lo_open=True), default=1e5,
                    help="largest κ, in (103, 1e7] (GD's step cap grows like κ)")
    ap.add_argument("--n-kappa", type=common.int_in(1, 200), default=None,
                    help="κ grid points, 1 to 200 (default 10, 3 with --quick)")
    ap.add_argument("--cases", type=common.comma_choices(CASES), default=list(CASES),
                    help="comma-separated subset of het,hom")
    ap.add_argument("--cap-factor", type=common.finite_float(1, 100), default=1.25,
                    help="run cap = this × GD's predicted steps at its best step (+100), in [1, 100]: below 1 "
                         "even GD at its best step cannot reach tol")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="finished points are kept here (default: OUT/kappa_sweep.<settings hash>.checkpoint.jsonl)")
    common.add_dist_options(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.kappa_max = min(args.kappa_max, 1e4)
    n_points = args.n_kappa if args.n_kappa is not None else (3 if args.quick else 10)
    cases = args.cases
    if args.kappa_max < args.kappa_min:
        common.fail(ap, f"need --kappa-min <= --kappa-max, got {args.kappa_min:g} > {args.kappa_max:g}"
                 + (" (--quick caps --kappa-max at 1e4)" if args.quick else ""))
    common.check_common(ap, args)
    # Memory: a point keeps 4 methods × seeds runs, each recording gap and ‖∇f‖ per step up to the cap
    # cap_factor·ln(1/tol)/ln((κ+1)/(κ−1)) + 100 ≤ cap_factor·ln(1/tol)·κ/2 + 100 at the largest κ.
    cap = int(args.cap_factor * math.log(1.0 / args.tol) * args.kappa_max / 2) + 101
    try:
        check_memory(4 * args.seeds * (cap + 1) * 16, f"the runs of one point ({4 * args.seeds} runs of up to "
                     f"{cap} steps at κ = {args.kappa_max:g})", "lower --kappa-max, --seeds or --cap-factor")
    except ValueError as exc:
        common.fail(ap, str(exc))
    if args.checkpoint is not None:
        try:
            args.checkpoint = common.check_output_file(args.checkpoint, "--checkpoint")
        except ValueError as exc:
            common.fail(ap, str(exc))
    kappas = kappa_grid(args.kappa_min, args.kappa_max, n_points)
    # everything that changes a point's numbers; the κ grid is not in it (each point is keyed by its κ)
    cfg = {"study": "kappa_sweep", "version": CHECKPOINT_VERSION, "seeds": args.seeds, "tol": args.tol,
           **common.tuning(args.quick), "cap_factor": args.cap_factor, "backend": args.backend}
    ck = common.open_checkpoint(ap, args, "kappa_sweep", cfg)
    ck_path = ck.path
    todo = [(c, k) for c in cases for k in kappas]
    keys = [Checkpoint.key(case=c, kappa=k) for c, k in todo]
    reused = sum(k in ck for k in keys)
    points: dict[str, list[dict]] = {c: [] for c in cases}
    with common.open_executor(ap, args) as ex:  # serial here unless --scheduler; each point is one task
        values = ex.map(point_task, [{"case": c, "kappa": k, "cfg": cfg} for c, k in todo], keys=keys, store=ck,
                        progress=lambda it, n: progress(it, total=n, desc="κ sweep", quiet=args.quiet))
    for (case, _), rec in zip(todo, values):
        points[case].append(rec)
    slopes = summarize(points)
    result = {"study": "kappa_sweep", "settings": cfg, "quick": args.quick, "kappas": kappas, "cases": points,
              "slopes": slopes, "reused_points": reused, "computed_points": len(todo) - reused,
              "checkpoint": str(ck_path)}
    if not args.quiet:
        print_table(points, slopes, args.tol)
        print(f"\n{len(todo) - reused} points computed, {reused} reused from {ck_path}")
    return common.finish(result, args, "kappa_sweep", figure=lambda path: plot(points, args.tol, path))
