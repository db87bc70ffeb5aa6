"""Does each block need just one learning rate?  Blockwise steps against Adam's per-coordinate ones.

    python studies/blockwise_lrs.py [--kappa 5000] [--seeds 5] [--momentum] [--quick] [--out out/blockwise_lrs]
                                    [--json PATH] [--quiet]

The paper's reading of its theory: on a block-diagonal Hessian whose blocks sit at different scales, what
Adam buys over GD is one suitable step per block; a per-coordinate step is more than that.  Two cases, every
block Haar-rotated, seed s drawing the rotations and the standard Gaussian start w_0:

* "het": the simple heterogeneous case {1,2,3}, {99,100,101}, {κ−2,κ−1,κ} (κ = 5000);
* "scaled": L = 4 blocks of d = 25, block l = s^l·Λ_base with Λ_base geometric from 1 to κ_base = 10 and
  s = (κ/κ_base)^{1/(L−1)}, so that κ = 5000 and every κ_l = 10 (``spectra.scaled_blocks``).

Methods (momentum-free, so that each is compared with GD like for like; THEORY.md §5):
GD (tuned); blockwise GD with the oracle step η_l = 2/(λ_min(H_l) + λ_max(H_l)) per block (no tuning);
Adam-mini with β1 = 0 (one second moment per block, v_l ← β2 v_l + (1−β2) mean_{i∈l} g_i², tuned);
Adam theory form (w ← w − η g/|g_0|, tuned); Adam with β1 = 0 (tuned).  ``--momentum`` adds the momentum
pair: heavy ball (tuned lr, the optimal momentum ((√κ−1)/(√κ+1))²), Adam β1 = 0.9 and Adam-mini β1 = 0.9
(tuned), compared with heavy ball instead of GD.

Steps: the first k with ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖ (tol = 1e-6), median over seeds (a seed that never gets
there counts as +∞).  Learning rates are tuned per seed (``quadlab.tune.tune_lr``).  Predicted: since
blockwise GD's iteration matrix I − PH (P = blockdiag(η_l I)) commutes with H, ‖∇f(w_k)‖ ≤ ρ^k‖∇f(w_0)‖ with
ρ = max_l (κ_l − 1)/(κ_l + 1), so it needs at most ln(1/tol)/ln(1/ρ) = iterations_to(ρ², tol²) steps, against
GD's ln(1/tol)/ln((κ+1)/(κ−1)): the ratio is about κ/max_l κ_l.

Share of Adam's advantage a blockwise method m recovers, on a log scale (steps multiply, so ratios are the
natural unit):

    share(m) = ln(S_GD / S_m) / ln(S_GD / S_Adam),

S = median steps.  0: no better than GD; 1: as fast as Adam; > 1: faster than Adam; < 0: slower than GD.
It is reported against each Adam variant (theory form; β1 = 0) and is undefined ("—") where a count is
missing or Adam is not faster than GD.  With ``--momentum`` the baseline is heavy ball and the reference
Adam β1 = 0.9.
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
from quadlab.studies.common import median_steps, progress, run_status, steps_per_seed
from quadlab.tune import tune_lr

LABELS = {
    "gd": "GD, tuned",
    "blockwise_gd": "blockwise GD, oracle step per block",
    "adam_mini": "Adam-mini β1=0, tuned",
    "adam_theory": "Adam theory form, tuned",
    "adam_beta1_0": "Adam β1=0, tuned",
    "heavy_ball": "heavy ball, tuned",
    "adam": "Adam β1=0.9, tuned",
    "adam_mini_m": "Adam-mini β1=0.9, tuned",
}
BASE_METHODS = ("gd", "blockwise_gd", "adam_mini", "adam_theory", "adam_beta1_0")
MOMENTUM_METHODS = ("heavy_ball", "adam", "adam_mini_m")
#: (baseline, reference Adam, blockwise methods whose share is reported)
SHARES = {
    "adam_theory": ("gd", "adam_theory", ("blockwise_gd", "adam_mini")),
    "adam_beta1_0": ("gd", "adam_beta1_0", ("blockwise_gd", "adam_mini")),
    "adam": ("heavy_ball", "adam", ("adam_mini_m",)),  # momentum against momentum only
}


def case_spectra(args) -> dict:
    """name → (title, BlockSpectrum) for the two cases at the requested κ."""
    s = (args.kappa / args.block_kappa) ** (1.0 / (args.n_blocks - 1))
    base = spectra.log_uniform(args.block_size, 1.0, args.block_kappa)
    return {
        "het": ("simple heterogeneous", spectra.simple_heterogeneous(args.kappa)),
        "scaled": (f"{args.n_blocks}×{args.block_size} scaled blocks (s = {s:.3g}, κ_l = {args.block_kappa:g})",
                   spectra.scaled_blocks(base, args.n_blocks, s)),
    }


def share(s_base, s_m, s_ref) -> float | None:
    """ln(S_base/S_m)/ln(S_base/S_ref): the share of the reference's advantage over the baseline that m
    recovers (None where a count is missing or the reference is not faster than the baseline)."""
    if s_base is None or s_m is None or s_ref is None or not s_base > s_ref:
        return None
    return math.log(s_base / s_m) / math.log(s_base / s_ref)


def run_case(name: str, title: str, spec, args) -> tuple[dict, dict]:
    """Tune and run every method on one case; return its JSON record and the per-seed Results (figure)."""
    seeds = list(range(args.seeds))
    tol = args.tol
    probs = [quadlab.BlockQuadratic(spec, rotation="block", seed=s, xp=args.backend) for s in seeds]
    rates = theory.gd_rates(probs[0])
    gd_bound = float(theory.iterations_to(rates.best_rate, tol**2))
    cap_lin = int(math.ceil(1.25 * gd_bound)) + 100
    cap_ada = args.adam_steps
    points, refine = common.tuning(args.quick)["points"], common.tuning(args.quick)["refine"]
    w0 = [quadlab.starts(p, [s])[0] for p, s in zip(probs, seeds)]  # the runs' own starts
    mu_max = [float(np.max(theory.adam_constants(p, w).mu_max)) for p, w in zip(probs, w0)]
    hb = theory.heavy_ball_optimum(probs[0])

    def per_seed_ranges(lo, hi):
        return [(lo, hi)] * len(seeds)

    # key: (optimizer, per-seed lr ranges or None for no tuning, step cap)
    makers = {
        "gd": (optim.gd(), per_seed_ranges(0.2 * rates.lr_stable, rates.lr_stable), cap_lin),
        "blockwise_gd": (optim.blockwise_gd(), None, cap_lin),
        "adam_mini": (optim.adam_mini(b1=0.0), per_seed_ranges(1e-5, 3.0), cap_ada),
        # stable iff η < 2/μ_max(D^{-1/2} H D^{-1/2}), D = diag|g_0|: a per-seed limit
        "adam_theory": (optim.adam_theory(lr=1.0), [(2e-3 / m, 2.0 / m) for m in mu_max], cap_lin),
        "adam_beta1_0": (optim.adam(b1=0.0), per_seed_ranges(1e-5, 3.0), cap_ada),
    }
    if args.momentum:
        # heavy ball is stable for η < 2(1 + β)/λ_max
        hb_hi = 2.0 * (1.0 + hb.momentum) / rates.lambda_max
        makers["heavy_ball"] = (optim.heavy_ball(momentum=hb.momentum), per_seed_ranges(0.05 * hb_hi, hb_hi), cap_lin)
        makers["adam"] = (optim.adam(b1=0.9), per_seed_ranges(1e-5, 3.0), cap_ada)
        makers["adam_mini_m"] = (optim.adam_mini(b1=0.9), per_seed_ranges(1e-5, 3.0), cap_ada)

    record, traces = {}, {}
    for key, (opt, ranges, cap) in progress(list(makers.items()), desc=name, quiet=args.quiet):
        if ranges is None:
            res = [quadlab.run(p, opt, seeds=[s], steps=cap, tol=tol) for p, s in zip(probs, seeds)]
            lrs = [None] * len(seeds)
        else:
            # one search per seed: each seed is its own problem instance, tuned as a practitioner would
            ts = [tune_lr(p, opt, lr_range=rg, points=points, refine=refine, seeds=[s], steps=cap, tol=tol)
                  for p, s, rg in zip(probs, seeds, ranges)]
            res, lrs = [t.best for t in ts], [t.best_lr for t in ts]
        per_seed = steps_per_seed(res)
        # where a seed missed tol: how far it got, ‖∇f‖/‖∇f(w_0)‖ at its last step (a stall, not slowness,
        # when it is far above tol after many steps)
        missed = [float(r.final()[0] / r.grad_norm[0, 0]) for r, s in zip(res, per_seed) if s is None]
        record[key] = {
            "lr_per_seed": lrs,
            "steps_to_tol": median_steps(per_seed),
            "steps_to_tol_per_seed": per_seed,
            "missed_relative_grad_norm_median": float(np.median(missed)) if missed else None,
            "status": run_status(res),
            "max_steps": cap,
        }
        traces[key] = res
    rho_bw = max((k - 1.0) / (k + 1.0) for k in spec.block_kappas)
    shares = {}
    for ref, (base, adam_key, ms) in SHARES.items():
        if ref not in record or base not in record:
            continue
        shares[ref] = {m: share(record[base]["steps_to_tol"], record[m]["steps_to_tol"],
                                record[adam_key]["steps_to_tol"]) for m in ms if m in record}
    rec = {
        "case": name,
        "name": title,
        "kappa": float(spec.kappa),
        "block_kappas": [float(k) for k in spec.block_kappas],
        "block_sizes": list(spec.sizes),
        "predicted": {
            "gd_best_bound": gd_bound,
            "blockwise_gd_bound": float(theory.iterations_to(rho_bw**2, tol**2)),
        },
        "optimizers": record,
        "advantage_share": shares,
    }
    return rec, traces


def _fmt(v, spec="d") -> str:
    return "—" if v is None else format(v, spec)


def print_table(rec: dict, out=sys.stdout) -> None:
    o, p, sh = rec["optimizers"], rec["predicted"], rec["advantage_share"]
    print(f"\n{rec['name']} ({rec['case']}): κ = {rec['kappa']:g}, κ_l = "
          f"{', '.join(format(k, '.3g') for k in rec['block_kappas'])}, block sizes {rec['block_sizes']}", file=out)
    print(f"  predicted step bounds: GD at its best step {p['gd_best_bound']:.0f}, blockwise GD oracle "
          f"{p['blockwise_gd_bound']:.0f}", file=out)
    refs = [r for r in ("adam_theory", "adam_beta1_0", "adam") if r in sh]
    short = {"adam_theory": "Adam thy", "adam_beta1_0": "Adam b1=0", "adam": "Adam b1=.9"}
    head = "".join(f"{'share vs ' + short[r]:>21}" for r in refs)
    print(f"  {'method':<36}{'lr (median)':>12}{'steps':>9}  {'status':<12}{'stalled at':>11}{head}", file=out)
    for key, r in o.items():
        lrs = [v for v in r["lr_per_seed"] if v is not None]
        lr = f"{np.median(lrs):.3g}" if lrs else "oracle"
        cells = "".join(f"{_fmt(sh[ref].get(key), '.2f') if key in sh[ref] else '':>21}" for ref in refs)
        print(f"  {LABELS[key]:<36}{lr:>12}{_fmt(r['steps_to_tol']):>9}  {r['status']:<12}"
              f"{_fmt(r['missed_relative_grad_norm_median'], '.1e'):>11}{cells}", file=out)
    print("  (steps: median over seeds; stalled at: median ‖∇f‖/‖∇f(w0)‖ at the cap of the seeds that missed tol)",
          file=out)


def plot(records, traces, path: Path, tol: float) -> None:
    from quadlab import plots

    plt = plots.pyplot()

    fig, axes = plt.subplots(1, len(records), figsize=(6.4 * len(records), 5.8), constrained_layout=True,
                             squeeze=False)
    for ax, rec in zip(axes[0], records, strict=True):
        tr = traces[rec["case"]]
        for key in tr:
            color = plots.color("adam_mini" if key == "adam_mini_m" else key)
            line = plots.median_band(ax, tr[key], label=LABELS[key], color=color)
            if key in MOMENTUM_METHODS:
                line.set_linestyle("--")
        g0 = np.median([r.grad_norm[0, 0] for r in tr["gd"]])
        ax.axhline(np.log10(tol * g0), color="0.5", lw=0.9, ls=":", label=f"tolerance ({tol:g}·‖∇f(w₀)‖)")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("iteration k")
        ax.set_ylabel("log10 ‖∇f(w_k)‖")
        ax.set_title(rec["name"], fontsize=10)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.suptitle("one step per block: log10 ‖∇f‖, median over seeds (band: min–max; a converged seed is held at "
                 "its last value; a curve ends where its median seed stopped), lr tuned per seed", fontsize=10)
    common.save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = common.study_parser("blockwise_lrs", __doc__, "2 seeds, coarse tuning, short Adam runs", backend=True)
    ap.add_argument("--kappa", type=common.finite_float(103, 1e5, lo_open=True), default=5000.0,
                    help="condition number of both cases, in (103, 1e5]; GD's step cap grows like κ")
    ap.add_argument("--n-blocks", type=common.int_in(2, 1000), default=4, help="blocks of the scaled case, 2 to 1000")
    ap.add_argument("--block-size", type=common.int_in(1, 10_000), default=25,
                    help="block size of the scaled case, 1 to 10000")
    ap.add_argument("--block-kappa", type=common.finite_float(1), default=10.0,
                    help="κ_l of every block of the scaled case, >= 1 and <= --kappa")
    ap.add_argument("--adam-steps", type=common.int_in(1, 10**7), default=None,
                    help="step cap of the nonlinear (Adam-type) methods (default 20000, 3000 with --quick)")
    ap.add_argument("--momentum", action="store_true",
                    help="add heavy ball, Adam β1=0.9 and Adam-mini β1=0.9 (compared with heavy ball)")
    ap.add_argument("--cases", type=common.comma_choices(("het", "scaled")), default=["het", "scaled"],
                    help="comma-separated subset of het,scaled")
    args = ap.parse_args(argv)
    if args.adam_steps is None:
        args.adam_steps = 3000 if args.quick else 20_000
    if args.kappa < args.block_kappa:
        common.fail(ap, f"need --kappa >= --block-kappa, got {args.kappa:g} < {args.block_kappa:g}")
    common.check_common(ap, args)
    # the figure keeps every run's trace (gap and ‖∇f‖ per step): up to 8 methods × seeds runs of the longer cap
    cap = max(args.adam_steps, int(1.25 * math.log(1.0 / args.tol) * args.kappa / 2) + 100)
    n = max(9, args.n_blocks * args.block_size)
    try:
        check_memory(8 * args.seeds * ((cap + 1) * 16 + 8 * n * n),
                     f"{8 * args.seeds} runs of up to {cap} steps on n = {n}", "lower --kappa, --seeds or sizes")
    except ValueError as exc:
        common.fail(ap, str(exc))
    specs = case_spectra(args)
    cases = args.cases
    records, traces = [], {}
    for c in cases:
        rec, tr = run_case(c, *specs[c], args)
        records.append(rec)
        traces[c] = tr
        common.save_partial({"study": "blockwise_lrs", "kappa": args.kappa, "tol": args.tol, "seeds": args.seeds,
                      "cases": records}, args, "blockwise_lrs")  # a later case's crash keeps this one
        if not args.quiet:
            print_table(rec)
    result = {"study": "blockwise_lrs", "kappa": args.kappa, "tol": args.tol, "seeds": args.seeds,
              "quick": args.quick, "momentum": args.momentum, "adam_steps": args.adam_steps, "cases": records}
    if not args.quiet:
        print("\nshare = ln(S_GD/S_m)/ln(S_GD/S_Adam) (heavy ball in place of GD against Adam β1=0.9): "
              "0 = no better than GD, 1 = as fast as Adam, > 1 = faster than Adam")
    return common.finish(result, args, "blockwise_lrs", figure=lambda path: plot(records, traces, path, args.tol))
