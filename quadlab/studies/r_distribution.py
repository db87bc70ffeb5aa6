"""How large is the theorem's r for random starts?  The distribution of r_tilde and r_paper = r_tilde².

    quadlab r-distribution [--kappa 5000] [--starts 1000] [--seed 0] [--problem-seed 0]
                           [--threshold 1000] [--out out/r_distribution] [--json PATH] [--quiet]

On the simple heterogeneous case {1,2,3}, {99,100,101}, {κ−2,κ−1,κ} with a Haar rotation per block, draw
standard Gaussian starts w0 = w* + ξ (w* = 0), compute r_tilde = max_l C_{l,2} / min_l C_{l,1} and
r_paper = r_tilde² for each (quadlab.theory.r_statistics), the share with r ≤ threshold, and the speed-ups
over GD at its best step that they predict.  Compares with the thesis's claim "r ≤ 1000 with probability
≥ 2/3, so Adam is about 5× faster".  Prints a table, saves a histogram, optionally writes JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import quadlab
from quadlab import plots, spectra, theory
from quadlab.backend import check_memory
from quadlab.studies.common import (
    add_dist_options,
    check_common,
    finish,
    finite_float,
    int_in,
    new_parser,
    open_executor,
    save_figure,
)

THESIS_SHARE = 2.0 / 3.0
THESIS_SPEEDUP = 5.0


def parse(argv):
    ap = new_parser("r_distribution", __doc__)
    ap.set_defaults(study="r_distribution")
    ap.add_argument("--kappa", type=finite_float(103, 1e12, lo_open=True), default=5000.0,
                    help="condition number of the simple heterogeneous case, in (103, 1e12]")
    ap.add_argument("--starts", type=int_in(1, 10**9), default=1000,
                    help="random Gaussian starts (memory: about 1.2 KB each; refused beyond the available memory)")
    ap.add_argument("--seed", type=int_in(0), default=0, help="seed of the starts (a non-negative integer)")
    ap.add_argument("--problem-seed", type=int_in(0), default=0,
                    help="seed of the per-block rotations (a non-negative integer)")
    ap.add_argument("--threshold", type=finite_float(1), default=1000.0,
                    help="report the share of starts with r <= this (>= 1, since r >= 1)")
    ap.add_argument("--out", type=Path, default=Path("out/r_distribution"),
                    help="folder for r_histogram.png/.pdf and r_distribution.json")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary as JSON here (atomically)")
    ap.add_argument("--quiet", action="store_true", help="no table")
    add_dist_options(ap)
    a = ap.parse_args(argv)
    check_common(ap, a)
    a.parser = ap
    return a


def comparison(s: theory.RStatistics) -> str:
    t = f"{s.threshold:g}"
    med = {k: float(np.median(getattr(s, k))) for k in ("speedup_bound", "speedup_bound_paper", "speedup_exact",
                                                          "speedup_best", "thesis_ratio")}
    p = s.share_paper_below
    half = 1.96 * np.sqrt(p * (1 - p) / s.n_starts)  # normal-approximation 95 % interval of a share
    verdict = ("meets" if p >= THESIS_SHARE else
               "within sampling error of" if p + half >= THESIS_SHARE else "misses")
    return "\n".join([
        "thesis claim vs this run",
        f"  P(r <= {t}) >= {THESIS_SHARE:.3f}:   r_paper {p:.3f} ± {half:.3f} (95%; {verdict} the claim),"
        f"   r_tilde {s.share_tilde_below:.3f}",
        f"  'about {THESIS_SPEEDUP:g}x faster' = kappa / r at r = {t}: {s.kappa / s.threshold:.3g}",
        f"  median predicted speed-up over GD at its best step: bound (r_tilde) {med['speedup_bound']:.3g}x, "
        f"paper form (r_paper) {med['speedup_bound_paper']:.3g}x,",
        f"    exact at the theorem step {med['speedup_exact']:.3g}x, exact at the best step {med['speedup_best']:.3g}x, "
        f"kappa / r_paper {med['thesis_ratio']:.3g}",
        f"  share where the paper-form bound beats GD (speed-up > 1): {np.mean(s.speedup_bound_paper > 1):.3f};"
        f" the r_tilde bound: {np.mean(s.speedup_bound > 1):.3f}",
    ])


def histogram(s: theory.RStatistics, path: Path) -> None:
    plt = plots.pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for ax, (name, label) in zip(axes, [("r_tilde", r"$\tilde r$"), ("r_paper", r"$r_{paper}=\tilde r^2$")],
                                 strict=True):
        v = np.log10(np.asarray(getattr(s, name)))
        ax.hist(v, bins=60, color=plots.OKABE_ITO[0 if name == "r_tilde" else 1], alpha=0.85)
        ax.axvline(np.log10(s.threshold), color="k", ls="--", lw=1)
        share = np.mean(np.asarray(getattr(s, name)) <= s.threshold)
        ax.set_title(f"{label}: {share:.1%} of starts ≤ {s.threshold:g}")
        ax.set_xlabel(r"$\log_{10}$ r")
        ax.set_ylabel("starts")
    fig.suptitle(f"simple heterogeneous case, κ = {s.kappa:g}, {s.n_starts} Gaussian starts")
    save_figure(fig, path)
    plt.close(fig)


#: the per-start arrays of theory.RStatistics; each entry depends on its own start only
PER_START = ("r_tilde", "r_paper", "speedup_bound", "speedup_bound_paper", "speedup_exact", "speedup_best",
             "thesis_ratio")


def _problem(kappa: float, problem_seed: int):
    return quadlab.BlockQuadratic(spectra.simple_heterogeneous(kappa), rotation="block", seed=problem_seed)


def starts_task(spec: dict) -> dict:
    """The per-start arrays of ``theory.r_statistics`` for starts lo..hi−1 of its draw (a :mod:`quadlab.dist`
    task; spec {"kappa", "problem_seed", "seed", "lo", "hi", "threshold"}).  Start i is row i of
    ``default_rng(seed).standard_normal((N, n))`` whatever N ≥ i + 1 is (the generator fills rows in order),
    and every array entry depends on its own start only, so chunks put together are the whole run's bits."""
    lo, hi = spec["lo"], spec["hi"]
    problem = _problem(spec["kappa"], spec["problem_seed"])
    if lo == 0:  # the whole draw or its first chunk: exactly theory.r_statistics
        s = theory.r_statistics(problem, hi, seed=spec["seed"], threshold=spec["threshold"])
    else:
        w = problem.optimum_host + np.random.default_rng(spec["seed"]).standard_normal((hi, problem.n))[lo:]
        c = theory.adam_constants(problem, w)
        gd_rate = theory.gd_rates(problem).best_rate
        s = SimpleNamespace(kappa=c.kappa, block_kappas=c.block_kappas, r_tilde=c.r_tilde, r_paper=c.r_paper,
                            speedup_bound=theory.speedup(gd_rate, c.bound),
                            speedup_bound_paper=theory.speedup(gd_rate, c.bound_paper),
                            speedup_exact=theory.speedup(gd_rate, c.rate_exact),
                            speedup_best=theory.speedup(gd_rate, c.best_rate),
                            thesis_ratio=c.kappa / np.asarray(c.r_paper))
    return {"kappa": s.kappa, "block_kappas": s.block_kappas,
            **{k: np.array(getattr(s, k), dtype=np.float64) for k in PER_START}}


def r_statistics(a, ex) -> theory.RStatistics:
    """``theory.r_statistics`` of the study's problem, its starts split into chunks on ``ex`` (one chunk when
    serial, four per worker on a cluster)."""
    problem = _problem(a.kappa, a.problem_seed)
    check_memory(16 * 8 * a.starts * problem.n, f"{a.starts} random starts of n = {problem.n}",
                 "use fewer starts (r-distribution: a smaller --starts)")
    chunks = 1 if ex.serial else min(a.starts, 4 * ex.n_workers())
    edges = np.linspace(0, a.starts, chunks + 1).round().astype(int)
    specs = [{"kappa": a.kappa, "problem_seed": a.problem_seed, "seed": a.seed, "lo": int(lo), "hi": int(hi),
              "threshold": a.threshold} for lo, hi in zip(edges[:-1], edges[1:])]
    parts = ex.map(starts_task, specs, keys=[f"{s['lo']}:{s['hi']}" for s in specs])
    arrays = {}
    for k in PER_START:
        arrays[k] = np.concatenate([p[k] for p in parts])
        arrays[k].setflags(write=False)
    return theory.RStatistics(n_starts=a.starts, seed=a.seed, threshold=float(a.threshold), kappa=parts[0]["kappa"],
                              block_kappas=parts[0]["block_kappas"], **arrays)


def main(argv=None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    with open_executor(a.parser, a) as ex:
        s = r_statistics(a, ex)
    fig = a.out / "r_histogram"
    if not a.quiet:
        print(s.table())
        print()
        print(comparison(s))
    result = {**s.as_dict(), "problem_seed": a.problem_seed, "histogram": str(fig),
              "thesis": {"share": THESIS_SHARE, "speedup": THESIS_SPEEDUP}}
    return finish(result, a, "r_distribution", figure=lambda _: histogram(s, fig), figure_stem="r_histogram")
