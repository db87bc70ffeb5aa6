"""Block heterogeneity as a knob: GD against the Adam theory form as one block is scaled away from the other.

    python studies/heterogeneity_sweep.py [--seeds 5] [--tol 1e-6] [--quick] [--out out/heterogeneity_sweep]
                                          [--json PATH] [--quiet]

The quadratic analogue of the paper's man-made MLP, whose heterogeneity is injected by scaling layers.

Spectrum.  One fixed base block, b = 25 eigenvalues spaced geometrically on [1, κ_b] with κ_b = 10
(``spectra.log_uniform(25, 1, 10)``), and L = 2 blocks ``spectra.scaled_blocks(b, 2, s)``: block 0 is b,
block 1 is s·b.  Every κ_l = κ_b = 10 whatever s, while κ = s·κ_b; s = 1 gives two identical blocks.  Each
block gets its own Haar rotation, and seed k draws the rotations and the start w_0 ~ N(0, I) (w* = 0).

Why two blocks.  With L blocks the scales spread over s^{L−1}.  The stopping rule ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖
ignores a block whose share of ‖∇f(w_0)‖ is already below tol (about s^{−(L−1−l)} for block l), so GD only
has to solve the blocks within a factor ~1/tol = 1e6 of the top one, and its step count stops growing once
s^{L−1}·κ_b passes ~1e5.  With L = 4 that happens near s ≈ 20 and most of the grid s ∈ [1, 1e4] would show
nothing new; with L = 2 the spread is s itself and GD's count grows across the whole grid.

Optimizers, per s (learning rates tuned on all seeds at once by ``quadlab.tune.tune_lr``'s shared protocol:
seeds reached, then the worst seed's steps):
* GD, w ← w − η∇f, tuned on [¼η*, η*], η* = 2/(λ_min + λ_max) (a longer step only slows the slowest mode).
  Cap: ‖∇f(w_k)‖ ≤ ρ*^k ‖∇f(w_0)‖ with ρ* = (κ−1)/(κ+1) at η*, so ln(1/tol)/ln(1/ρ*) steps always suffice.
* Adam theory form, w ← w − η ∇f/|∇f(w_0)| (docs/THEORY.md §2), tuned around the best constant step of its
  preconditioned matrix M = D^{-1/2}HD^{-1/2}, D = diag|∇f(w_0)|: η_M = 2/(μ_min + μ_max) per seed.
  Cap from ‖∇f_k‖/‖∇f_0‖ ≤ √cond(D)·ρ_M^k, widened by the spread of η_M over seeds.
* Adam theory form at the theorem's step η = min_l C_{l,1} (bound max_l (1 − 1/(r̃κ_l))² per step).
Reported: steps to ‖∇f‖ ≤ tol·‖∇f(w_0)‖ (median over seeds); the GD/Adam steps ratio (median over seeds of
the per-seed ratios; a seed is one rotation and one start); r̃; κ_M = μ_max/μ_min of M; and κ/κ_M, the ratio
of the asymptotic step counts (GD needs about κ/2·ln(1/tol) steps, the Adam form about κ_M/2·ln(1/tol)).

What to expect.  Because ∇f(w_0) in block l scales like s^l, D^{-1}H is the same for every s (same seed):
the Adam theory form's iteration in z = D^{1/2}e does not depend on s, only the weighting of its gradient
norm does.  GD's κ = s·κ_b grows.  So the ratio grows roughly ∝ s, from below 1 at s = 1 (on identical
blocks the preconditioner |∇f(w_0)|⁻¹ of a random start only hurts: κ_M > κ) to far above 1.

JS⁰ (``heterogeneity.js0``): the Jensen–Shannon divergence in nats (≤ ln 2) between the two blocks'
densities, exact eigenvalues (weight 1/25 each) smoothed by a Gaussian of σ = 0.05 decades (absolute, not
relative to the range) on a log10 eigenvalue axis, with NO per-block normalisation, on one grid shared by
both blocks.  Normalising each block by its own scale (max |λ| or the k-th largest) would map s·b onto b and
give JS⁰ = 0 for every s; on a linear shared axis the small block collapses into a spike at 0 next to the
large one.  On the log axis block 1 is block 0 shifted by log10 s, so JS⁰ = 0 exactly at s = 1, and for two
boxes of width log10 κ_b = 1 decade shifted by δ = log10 s, JS = ln 2·min(1, δ/log10 κ_b) (where only one
density is present, f(p, 0) = ½ p ln 2, and each box has mass δ/log10 κ_b there); the smoothing rounds the
corners and lowers the value inside the ramp (0.30 instead of 0.35 at s = √10).  JS⁰ is bounded: once
s ≥ κ_b the blocks no longer overlap and JS⁰ = ln 2 for every larger s, while the GD/Adam gap keeps growing
with the scale spread.  The figure therefore shows the ratio against s and against JS⁰.

Resumable: finished s points are kept in OUT/heterogeneity_sweep.<settings hash>.checkpoint.jsonl
(``common.Checkpoint``, keyed by s, one file per hash of every setting that changes a result); a rerun with
the same settings recomputes nothing, a run with other settings writes its own file, ``--fresh`` starts over.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import quadlab
from quadlab import heterogeneity, optim, spectra, theory
from quadlab.studies.common import (
    Checkpoint,
    add_dist_options,
    check_common,
    finish,
    open_executor,
    progress,
    save_figure,
    seed_record,
    steps_bound,
    study_parser,
    tuning,
)
from quadlab.tune import tune_lr

STUDY = "heterogeneity_sweep"
VERSION = 1  # bump when the computation of a point changes, so old checkpoints are not reused
BASE_SIZE = 25
BASE_KAPPA = 10.0
N_BLOCKS = 2
JS_SETTINGS = {"variant": "divergence", "base": "nats", "sigma": 0.05, "relative": False, "normalize": None,
               "log_axis": True}
S_FULL = tuple(10.0 ** (k / 4) for k in range(17))  # 1 … 1e4, four points per decade
S_QUICK = (1.0, 10.0**0.5, 10.0, 100.0, 1000.0)
LABELS = {"gd": "GD, tuned", "adam_theory": "Adam theory form, tuned",
          "adam_theory_thm": "Adam theory form, theorem step"}


def base_block() -> np.ndarray:
    return spectra.log_uniform(BASE_SIZE, 1.0, BASE_KAPPA)


def spectrum_at(s: float) -> spectra.BlockSpectrum:
    return spectra.scaled_blocks(base_block(), N_BLOCKS, s, names=[f"block{l}" for l in range(N_BLOCKS)])


def js0_box(s: float) -> float:
    """JS⁰ of two unsmoothed log-uniform boxes of width log10 κ_b shifted by log10 s (L = 2)."""
    return math.log(2) * min(1.0, math.log10(s) / math.log10(BASE_KAPPA))


def settings(args) -> dict:
    """Everything that changes a point's result (the Checkpoint fingerprint)."""
    return {"study": STUDY, "version": VERSION, "base": {"family": "log_uniform", "size": BASE_SIZE,
            "kappa": BASE_KAPPA}, "n_blocks": N_BLOCKS, "seeds": args.seeds, "tol": args.tol,
            "tuning": tuning(args.quick), "js": JS_SETTINGS}



def _ratio(a: dict, b: dict):
    """(median over seeds, per-seed values) of the steps ratio a/b, each seed with its own rotation and start;
    None where a seed did not reach tol (the median then too)."""
    per = [x / y if x and y else None for x, y in zip(a["steps_to_tol_per_seed"], b["steps_to_tol_per_seed"])]
    med = None if None in per else float(np.median(per))
    return med, per


def compute_point(s: float, args) -> dict:
    """Tune and run GD and the Adam theory form at scale factor s; return the point's JSON record."""
    spec = spectrum_at(s)
    seeds = list(range(args.seeds))
    tol = args.tol
    tune = tuning(args.quick)
    probs = [quadlab.BlockQuadratic(spec, rotation="block", seed=k) for k in seeds]
    w0 = [quadlab.starts(p, [k])[0] for p, k in zip(probs, seeds)]  # the runs' own: the constants below are theirs

    g = theory.gd_rates(probs[0])  # depends on the eigenvalues only
    cap_gd = steps_bound(g.best_rate, tol)
    t_gd = tune_lr(probs, optim.gd(), lr_range=(0.25 * g.best_lr, g.best_lr), seeds=seeds, steps=cap_gd,
                   tol=tol, **tune)

    consts = [theory.adam_constants(p, w) for p, w in zip(probs, w0)]
    best = np.array([c.best_lr for c in consts])
    cond = [float(c.g0_abs.max() / c.g0_abs.min()) for c in consts]
    # a shared lr can sit below a seed's own best step by up to best.max()/best.min(), which slows it as much
    spread = float(best.max() / best.min())
    cap_at = int(1.5 * spread * max(steps_bound(c.best_rate, tol, cd) for c, cd in zip(consts, cond))) + 10
    t_at = tune_lr(probs, optim.adam_theory(lr=1.0), lr_range=(0.25 * best.min(), 1.2 * best.max()), seeds=seeds,
                   steps=cap_at, tol=tol, **tune)

    cap_thm = max(steps_bound(c.rate_exact, tol, cd) for c, cd in zip(consts, cond))
    thm = [quadlab.run(p, optim.adam_theory(), seeds=[k], steps=cap_thm, tol=tol) for p, k in zip(probs, seeds)]

    rec = {
        "s": float(s),
        "kappa": float(spec.kappa),
        "block_kappa": float(spec.block_kappas.max()),
        "scale_spread_decades": float((N_BLOCKS - 1) * math.log10(s)),
        "js0": float(heterogeneity.js0(spec, **JS_SETTINGS)),
        "js0_box": js0_box(s),
        "r_tilde_median": float(np.median([c.r_tilde for c in consts])),
        "kappa_M_median": float(np.median([c.mu_max.max() / c.mu_min.min() for c in consts])),
        "optimizers": {
            "gd": seed_record(t_gd.best, t_gd.best_lr, cap_gd),
            "adam_theory": seed_record(t_at.best, t_at.best_lr, cap_at),
            "adam_theory_thm": seed_record(thm, float(np.median([c.eta for c in consts])), cap_thm),
        },
    }
    rec["optimizers"]["adam_theory_thm"]["lr_per_seed"] = [float(c.eta) for c in consts]
    rec["kappa_over_kappa_M"] = rec["kappa"] / rec["kappa_M_median"]
    o = rec["optimizers"]
    rec["gd_over_adam_theory"], rec["gd_over_adam_theory_per_seed"] = _ratio(o["gd"], o["adam_theory"])
    rec["gd_over_adam_thm"], rec["gd_over_adam_thm_per_seed"] = _ratio(o["gd"], o["adam_theory_thm"])
    return rec


def point_task(spec: dict) -> dict:
    """One point from its plain-dict spec {"s", "seeds", "tol", "quick"} (a :mod:`quadlab.dist` task)."""
    return compute_point(spec["s"], SimpleNamespace(seeds=spec["seeds"], tol=spec["tol"], quick=spec["quick"]))


def _fmt(x, spec=".3g"):
    return "—" if x is None else format(x, spec)


def print_table(records, out=None) -> None:
    out = sys.stdout if out is None else out  # looked up now, so a redirected stdout is honoured
    print(f"\nGD vs Adam theory form on two blocks {{b, s·b}}, b = {BASE_SIZE} eigenvalues geometric on "
          f"[1, {BASE_KAPPA:g}] (κ_l = {BASE_KAPPA:g}), Haar rotation per block", file=out)
    print("JS⁰: Jensen–Shannon divergence (nats, ≤ ln 2 = 0.693), exact eigenvalues, log10 axis, no per-block "
          "normalisation, σ = 0.05 decades; box = ln2·min(1, log10 s / log10 κ_l)", file=out)
    print("steps to ‖∇f‖ ≤ tol·‖∇f(w0)‖, median over seeds; κ_M = κ(D^-1/2 H D^-1/2), D = diag|∇f(w0)|", file=out)
    head = (f"  {'s':>9}{'κ':>10}{'JS⁰':>8}{'box':>8}{'GD':>9}{'Adam':>8}{'Adam thm':>10}{'GD/Adam':>9}"
            f"{'GD/thm':>9}{'r̃':>7}{'κ_M':>8}{'κ/κ_M':>8}")
    print(head, file=out)
    for r in records:
        o = r["optimizers"]
        print(f"  {r['s']:>9.4g}{r['kappa']:>10.3g}{r['js0']:>8.4f}{r['js0_box']:>8.4f}"
              f"{_fmt(o['gd']['steps_to_tol'], 'd'):>9}{_fmt(o['adam_theory']['steps_to_tol'], 'd'):>8}"
              f"{_fmt(o['adam_theory_thm']['steps_to_tol'], 'd'):>10}{_fmt(r['gd_over_adam_theory']):>9}"
              f"{_fmt(r['gd_over_adam_thm']):>9}{r['r_tilde_median']:>7.3g}{r['kappa_M_median']:>8.3g}"
              f"{r['kappa_over_kappa_M']:>8.3g}", file=out)


def _band(values):
    """(median, min, max) of the finite entries of per-seed values; NaN where none."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    if not np.isfinite(v).any():
        return np.nan, np.nan, np.nan
    return float(np.nanmedian(v)), float(np.nanmin(v)), float(np.nanmax(v))


def _band_line(ax, s, per_seed, ls: str, color: str, label: str) -> None:
    """The median over seeds against s with its min–max band; ``per_seed``: one list of values per point."""
    med, lo, hi = np.array([_band(v) for v in per_seed]).T
    ax.plot(s, med, ls, marker="o", ms=3.5, color=color, label=label)
    ax.fill_between(s, lo, hi, color=color, alpha=0.18, lw=0)


def _log_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")


def plot(records, path: Path) -> None:
    from quadlab import plots

    plt = plots.pyplot()

    s = np.array([r["s"] for r in records])
    js = np.array([r["js0"] for r in records])
    fig, axes = plt.subplots(1, 3, figsize=(16, 5), constrained_layout=True)

    # the theorem-step series gets its own Okabe–Ito colour: its band overlaps the tuned one
    colors = {"gd": plots.color("gd"), "adam_theory": plots.color("adam_theory"), "adam_theory_thm": plots.OKABE_ITO[3]}
    ax = axes[0]
    for key, ls in (("gd", "-"), ("adam_theory", "-"), ("adam_theory_thm", "--")):
        _band_line(ax, s, [r["optimizers"][key]["steps_to_tol_per_seed"] for r in records], ls, colors[key],
                   LABELS[key])
    _log_axes(ax, "block scale factor s (block 1 = s · block 0)", "steps to ‖∇f‖ ≤ tol·‖∇f(w₀)‖",
              "(a) steps to tolerance\n(median over seeds, band = min–max)")

    ax = axes[1]
    for key, ls, c, lab in (("gd_over_adam_theory", "-", colors["adam_theory"], "GD / Adam theory form (both tuned)"),
                            ("gd_over_adam_thm", "--", colors["adam_theory_thm"],
                             "GD / Adam theory form at the theorem step")):
        _band_line(ax, s, [r[key + "_per_seed"] for r in records], ls, c, lab)
    pred = np.array([r["kappa_over_kappa_M"] for r in records])
    ax.plot(s, pred, ":", color=plots.OKABE_ITO[6], label="κ / κ_M (asymptotic rates)")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.axvline(BASE_KAPPA, color="0.5", lw=0.8, ls="-.")
    ax.text(BASE_KAPPA * 1.1, 0.02, "s = κ_l: blocks stop\noverlapping", fontsize=8, color="0.3",
            transform=ax.get_xaxis_transform(), va="bottom")
    _log_axes(ax, "block scale factor s", "GD steps / Adam steps",
              "(b) GD/Adam steps ratio against s\n(median of per-seed ratios, band = min–max)")

    ax = axes[2]
    ratio = np.array([np.nan if r["gd_over_adam_theory"] is None else r["gd_over_adam_theory"] for r in records])
    ax.plot(js, ratio, color="0.6", lw=0.8, zorder=1)
    sc = ax.scatter(js, ratio, c=np.log10(s), cmap="viridis", s=28, zorder=2)
    fig.colorbar(sc, ax=ax, label="log10 s")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.axvline(math.log(2), color="0.5", lw=0.8, ls="--")
    ax.text(math.log(2), 0.02, "ln 2 ", ha="right", fontsize=8, color="0.3", transform=ax.get_xaxis_transform())
    ax.set_yscale("log")
    ax.set_xlabel("JS⁰ (nats; log10 axis, no normalisation, σ = 0.05 decades)")
    ax.set_ylabel("GD steps / Adam theory-form steps (tuned)")
    ax.set_title("(c) GD/Adam steps ratio against JS⁰\n(median of per-seed ratios)", fontsize=10)
    fig.suptitle(f"Two blocks {{b, s·b}}, b: {BASE_SIZE} eigenvalues geometric on [1, {BASE_KAPPA:g}], "
                 "Haar-rotated; JS⁰ saturates at ln 2 once the blocks stop overlapping, the gap keeps growing")
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = study_parser(STUDY, __doc__, "5 values of s up to 1e3, at most 2 seeds, coarser tuning", checkpoint=True)
    add_dist_options(ap)
    args = ap.parse_args(argv)
    check_common(ap, args)
    grid = S_QUICK if args.quick else S_FULL
    ckpt = Checkpoint.in_folder(args.out, STUDY, settings(args), fresh=args.fresh)
    keys = [Checkpoint.key(s=float(f"{s:.12g}")) for s in grid]
    computed = sum(k not in ckpt for k in set(keys))
    # each point is one task, rebuilt on a worker from this plain dict (compute_point reads these attributes)
    specs = [{"s": float(s), "seeds": args.seeds, "tol": args.tol, "quick": args.quick} for s in grid]
    with open_executor(ap, args) as ex:
        records = ex.map(point_task, specs, keys=keys, store=ckpt,
                         progress=lambda it, n: progress(it, total=n, desc="scale factors s", quiet=args.quiet))
    if not args.quiet:
        print_table(records)
        print(f"\n{computed} of {len(grid)} points computed, {len(grid) - computed} reused from {ckpt.path}")
    result = {"study": STUDY, "settings": settings(args), "points": records, "computed_points": computed,
              "reused_points": len(grid) - computed, "checkpoint": str(ckpt.path)}
    return finish(result, args, STUDY, figure=lambda path: plot(records, path))
