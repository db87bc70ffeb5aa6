"""Explanations: four published explanations of Adam's edge over GD, held against tuned runs on one designed set
of instances (docs/THEORY.md §13).

    quadlab explanations [--seeds 5] [--tol 1e-4] [--quick] [--out out/explanations] [--json PATH] [--quiet]
                         [--fresh] [--checkpoint PATH]

The instances (20 coordinates, 4 nominal blocks of 5, κ = 4000) cross
* heterogeneity on/off: "het" = blocks on scales 1, 10, 100, 1000, each uniform on [1, 4]·scale (κ_l = 4);
  "hom" = the same 20 eigenvalues dealt round-robin into the 4 blocks, so every block spans all scales;
* the arrangement of that fixed spectrum, which sets the rotation and, with it, the (1,1)-norm ‖H‖_{1,1}:
  "none" (H diagonal, ‖H‖_{1,1} = trace, the smallest possible), "block_mild" and "global_mild" (each block,
  or all of H, turned by exp(θS) with S a Gaussian skew-symmetric matrix scaled to ‖S‖_2 = 1 and θ = 0.05
  rad: (1,1)-norm small, block structure kept or lost), "block" and "global" (Haar rotations: (1,1)-norm
  large, block structure kept or lost);
* the batch size: exact gradients, and the NQM's g = ∇f + ξ, Cov ξ = s·H/B with s = 0.01, B = 4096 and 256
  (B = 256 alone with --quick).
Seed k draws instance k's rotations; the mild instances are built with ``BlockQuadratic.from_blocks`` (their
eigenvalues are the design's to rounding), the others exactly.

Starts in H's eigenbasis: seed k's start has, on the eigenvector of the j-th smallest eigenvalue, the j-th
entry of default_rng(k)'s N(0, I) draw, the same for every instance.  GD is orthogonally invariant, so its
runs are identical on all ten instances, and every difference in the GD/Adam ratio is Adam's.

Observed (learning rates tuned per instance on all seeds, scored as ``quadlab.tune.tune_lr``'s shared protocol
does, on the starts above; steps to ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖, median over seeds): GD; Adam (β1 = 0.9, β2 = 0.999, ε = 1e-8); Adam with
β2 = β1 = 0.9; momentum sign descent (β = 0.9); Adam's theory form (β1 = 0, β2 = 1).  The default tolerance is
1e-4, not the other studies' 1e-6: sign descent with a constant step ends in a cycle of width η and cannot
reach 1e-6 within any reasonable cap.  Under noise GD and Adam are tuned on a log grid with ``quadlab.run``.

Predicted GD/Adam ratios (``quadlab.explain``): the theorem's bound against GD's best rate (block
heterogeneity) and JS⁰ (its score, compared by rank only); n·λ_max/‖H‖_{1,1} (ℓ∞-geometry); GD's steps over
sign descent's (sign descent); the NQM's closed-form tuned steps of GD over those of GD preconditioned by
H^{−1/2} with target tol² on the expected loss (noise).  Reported: a table per instance, the Spearman rank
correlation of each prediction with the observed GD/Adam ratio, and, for each explanation, the instances where
it fails: predicted and observed on opposite sides of 1, or more than 10× apart (ratio predictors); the largest
rank disagreement (JS⁰).  Figure: predicted against observed, one panel per explanation.

Every instance is a pure function of its key and the settings, so the points are independent; finished points
are kept in a Checkpoint (one file per settings hash) and a rerun resumes.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import quadlab
from quadlab import explain, optim, plots, spectra, theory
from quadlab.noise import NQM
from quadlab.studies import common
from quadlab.studies.common import (
    Checkpoint,
    check_common,
    check_output_file,
    fail,
    finish,
    median_steps,
    open_checkpoint,
    progress,
    save_figure,
    steps_bound,
    study_parser,
    tuning,
)
from quadlab.tune import tune_lr

STUDY = "explanations"
VERSION = 2  # bump when a point's record changes shape, so old checkpoints are not reused
SPECTRA = {"het": "heterogeneous blocks", "hom": "homogeneous blocks (same eigenvalues)"}
# a 2×2 table past the diagonal: a row per rotation's scope (each block, or H whole), mild then Haar
ARRANGEMENTS = {"none": "diagonal",
                "block_mild": "block, mild", "block": "block, Haar",
                "global_mild": "global, mild", "global": "global, Haar"}
MILD_ANGLE = 0.05
NOISE_SCALE = 0.01
BATCHES = (4096, 256)
METHODS = {
    "gd": "GD",
    "adam": "Adam β1=0.9 β2=0.999",
    "adam_b1b2": "Adam β1=β2=0.9",
    "sign": "sign descent, momentum 0.9",
    "adam_theory": "Adam theory form",
}
EXPLANATIONS = {
    "heterogeneity": "block heterogeneity: theorem bound vs GD",
    "js0": "block heterogeneity: JS⁰ (rank only)",
    "linf": "ℓ∞-geometry: n·λmax/‖H‖₁,₁",
    "sign": "sign descent: GD / sign-descent steps",
    "noise": "noise (NQM): GD / H^-1/2-preconditioned GD",
}


# -- the instances ---------------------------------------------------------------------------------------------
def design_spectrum(kind: str) -> spectra.BlockSpectrum:
    """"het": 4 blocks of 5, block l uniform on [1, 4]·10^l; "hom": the same eigenvalues dealt round-robin."""
    het = spectra.scaled_blocks(spectra.uniform(5, 1.0, 4.0), 4, 10.0, names=["s^0", "s^1", "s^2", "s^3"])
    if kind == "het":
        return het
    v = np.sort(het.eigenvalues)
    return spectra.BlockSpectrum.from_blocks([v[j::4] for j in range(4)], names=["b0", "b1", "b2", "b3"])


def mild_rotation(d: int, angle: float, rng: np.random.Generator) -> np.ndarray:
    """exp(angle·S), S = (G − Gᵀ)/2 for a standard Gaussian G, scaled to ‖S‖_2 = 1: a rotation by at most
    ``angle`` radians in any plane (the identity for d = 1)."""
    import scipy.linalg

    if d == 1:
        return np.ones((1, 1))
    G = rng.standard_normal((d, d))
    S = 0.5 * (G - G.T)
    return scipy.linalg.expm(angle * S / np.linalg.norm(S, 2))


def build(kind: str, arrangement: str, seed: int):
    """The instance (spectrum ``kind``, ``arrangement``) of seed ``seed``: (BlockQuadratic, V) with V (n×n,
    host) its eigenvectors, H V = V diag(λ) with λ the design spectrum's eigenvalues in their order."""
    spec = design_spectrum(kind)
    n = spec.n
    if arrangement in ("none", "block", "global"):
        p = quadlab.BlockQuadratic(spec, rotation=arrangement, seed=seed)
        if arrangement == "none":
            return p, np.eye(n)
        Vs = p.eigenvectors()
        if arrangement == "global":  # one Haar Q whose columns pair with the spectrum's eigenvalues
            return p, np.asarray(p.backend.to_numpy(Vs[0][0]), dtype=np.float64)
        V = np.zeros((n, n))
        for g, Vg in zip(p.groups, Vs):
            for j, l in enumerate(g.blocks):
                s = p.block_slices[l]
                V[s, s] = p.backend.to_numpy(Vg[j])
        return p, V
    rng = np.random.default_rng([seed, 0x6D696C64])  # "mild": a stream apart from the start's default_rng(seed)
    parts = list(spec.blocks) if arrangement == "block_mild" else [spec.eigenvalues]
    blocks, V, o = [], np.zeros((n, n)), 0
    for lam in parts:
        Q = mild_rotation(lam.size, MILD_ANGLE, rng)
        A = (Q * lam) @ Q.T
        blocks.append(0.5 * (A + A.T))
        V[o:o + lam.size, o:o + lam.size] = Q
        o += lam.size
    return quadlab.BlockQuadratic.from_blocks(blocks, seed=seed), V


def start(kind: str, V: np.ndarray, seed: int) -> np.ndarray:
    """The start of seed ``seed``: w_0 = w* + V c (w* = 0), whose coordinate on the eigenvector of the j-th
    smallest eigenvalue is the j-th entry of default_rng(seed)'s N(0, I) draw.  Every arrangement of both
    spectra (which share their eigenvalues) then starts from the same point of H's eigenbasis, so GD, which is
    orthogonally invariant, takes the very same steps on all ten instances, and only Adam's counts move."""
    lam = design_spectrum(kind).eigenvalues
    xi = np.random.default_rng(seed).standard_normal(lam.size)
    c = xi[np.argsort(np.argsort(lam, kind="stable"), kind="stable")]
    return V @ c


# -- observed -------------------------------------------------------------------------------------------------
def tune(probs, W0, seeds, opt, lr_range, steps: int, tol: float, points: int, refine: int, noise=None) -> dict:
    """The shared lr of :func:`quadlab.tune.tune_lr` (its score, dense grid, refinement and race) from this
    study's starts ``W0`` (one per seed and problem), as this study's record: {"lr", "steps" (median over seeds,
    a miss counted as ∞), "per_seed", "cap"}."""
    t = tune_lr(list(probs), opt, lr_range=lr_range, points=points, refine=refine, seeds=list(seeds), steps=steps,
                tol=tol, race=noise is None, neighbourhood=None, w0=list(W0), noise=noise)
    seeds_steps = [int(r.steps_to_tol[0]) if r.steps_to_tol[0] >= 0 and r.status[0] != "diverged" else None
                   for r in t.best]
    return {"lr": float(t.best_lr), "steps": median_steps(seeds_steps), "per_seed": seeds_steps, "cap": int(steps)}


def observe(probs, W0, seeds, tol: float, quick: bool) -> dict:
    """Tuned steps of every method of METHODS with exact gradients."""
    g = theory.gd_rates(probs[0])  # eigenvalues only: the same for every seed
    cap_gd = 3 * steps_bound(g.best_rate, tol)
    pts, refine = tuning(quick)["points"], tuning(quick)["refine"]
    out = {"gd": tune(probs, W0, seeds, optim.gd(), (0.1 * g.best_lr, 0.999 * g.lr_stable), cap_gd, tol, pts, refine)}
    # sign descent needs ~1/tol steps at a constant step (its cycle has width η): 1e4 at the default tol
    cap = 15000 if quick else 40000
    for key, opt, rng in (("adam", optim.adam(b1=0.9, b2=0.999), (1e-4, 3.0)),
                          ("adam_b1b2", optim.adam(b1=0.9, b2=0.9), (1e-5, 3.0)),
                          ("sign", optim.sign_descent(momentum=0.9), (1e-7, 1e-1))):
        out[key] = tune(probs, W0, seeds, opt, rng, cap, tol, pts, refine)
    best = np.array([theory.adam_constants(p, w).best_lr for p, w in zip(probs, W0)])
    out["adam_theory"] = tune(probs, W0, seeds, optim.adam_theory(lr=1.0), (0.1 * best.min(), 1.2 * best.max()),
                              cap_gd, tol, pts, refine)
    return out


def observe_noisy(probs, W0, seeds, tol: float, batch: int, obs: dict, quick: bool) -> dict:
    """GD and Adam (β1 = 0.9, β2 = 0.999) under NQM noise of batch ``batch``, tuned on a log grid from 1/30 of
    the exact-gradient lr up to it (GD, whose noise floor only falls with the lr) or to three times it (Adam)."""
    model = NQM(batch=batch, scale=NOISE_SCALE)
    out = {}
    for key, opt, top in (("gd", optim.gd(), 1.0), ("adam", optim.adam(b1=0.9, b2=0.999), 3.0)):
        lr0 = obs[key]["lr"]
        # noise slows a run by a factor the NQM puts near 2 at B = 256 for this spectrum: four times the
        # exact-gradient worst seed bounds what a tuned noisy run needs, and keeps the losing lrs cheap
        worst = max((s for s in obs[key]["per_seed"] if s is not None), default=obs[key]["cap"])
        # a sparse grid here: noisy runs take the numpy path (no compiled scan), each step a draw of the noise
        out[key] = tune(probs, W0, seeds, opt, (lr0 / 30, lr0 * top), 4 * worst + 100, tol, 5 if quick else 9, 0,
                        noise=model)
    return out


def _ratio(slow: dict, fast: dict) -> dict:
    """slow/fast steps; a run that missed its cap counts as the cap, which makes the ratio a bound."""
    a, b = slow["steps"], fast["steps"]
    if a is None and b is None:
        return {"value": None, "kind": "undefined"}
    if a is None:
        return {"value": slow["cap"] / max(b, 1), "kind": "at_least"}
    if b is None:
        return {"value": a / fast["cap"], "kind": "at_most"}
    return {"value": a / max(b, 1), "kind": "measured"}


def _finite(x) -> float | None:
    """A float for JSON, None where it is inf or NaN (a ratio with a side that never reached its target)."""
    x = float(x)
    return x if math.isfinite(x) else None


# -- one instance ----------------------------------------------------------------------------------------------
def instance_point(kind: str, arrangement: str, cfg: dict) -> dict:
    """Predictions and observations for one (spectrum, arrangement) with exact gradients, and the noisy runs."""
    seeds = list(range(cfg["seeds"]))
    tol = cfg["tol"]
    built = [build(kind, arrangement, s) for s in seeds]
    probs = [b[0] for b in built]
    W0 = [start(kind, V, s) for (_, V), s in zip(built, seeds)]
    sizes = design_spectrum(kind).sizes
    het = [explain.heterogeneity(p, starts=w[None, :], partition=sizes) for p, w in zip(probs, W0)]
    geo = [explain.linf_geometry(p, partition=sizes) for p in probs]
    obs = observe(probs, W0, seeds, tol, cfg["quick"])
    ratio = _ratio(obs["gd"], obs["adam"])
    sign = _ratio(obs["gd"], obs["sign"])
    pred = {
        "heterogeneity": _finite(np.median([h.predicted_speedup for h in het])),
        "heterogeneity_exact": _finite(np.median([h.predicted_speedup_exact for h in het])),
        "js0": float(np.median([h.js0 for h in het])),
        "linf": float(np.median([g.predicted_speedup for g in geo])),
        "linf_blockwise": float(np.median([g.predicted_speedup_blockwise for g in geo])),
        "sign": sign["value"],
        "sign_kind": sign["kind"],
        "noise": _finite(explain.noise(probs[0], None, scale=NOISE_SCALE, target=tol * tol).predicted_speedup),
    }
    quantities = {
        "r_tilde_max_block_kappa": float(np.median([h.x for h in het])), "kappa": het[0].kappa,
        "theorem_blocks": int(het[0].block_kappas.size), "norm11": float(np.median([g.norm11 for g in geo])),
        "trace": geo[0].trace, "rotation_gain": float(np.median([g.rotation_gain for g in geo])),
        # ‖H‖_{∞→1} by enumeration where every stored block has at most 16 coordinates (not for global H)
        "linf_exact": None if any(g.linf is None for g in geo) else float(np.median([g.linf for g in geo])),
    }
    inf = math.inf
    sd = explain.sign_descent(obs["gd"]["steps"] or inf, obs["sign"]["steps"] or inf, obs["adam_b1b2"]["steps"] or inf)
    # ln(Adam β1=β2 steps / sign descent's): 0 where Adam is sign descent, as the explanation has it
    quantities["log_adam_b1b2_over_sign"] = None if sd.log_gap is None or not math.isfinite(sd.log_gap) else sd.log_gap
    noisy = {}
    for B in cfg["batches"]:
        o = observe_noisy(probs, W0, seeds, tol, B, obs, cfg["quick"])
        o["ratio"] = _ratio(o["gd"], o["adam"])
        o["predicted"] = {k: _finite(v) if isinstance(v, float) else v
                          for k, v in explain.noise(probs[0], B, scale=NOISE_SCALE, target=tol * tol).as_dict().items()}
        noisy[str(B)] = o
    return {"spectrum": kind, "arrangement": arrangement, "observed": obs, "gd_over_adam": ratio,
            "gd_over_adam_b1b2": _ratio(obs["gd"], obs["adam_b1b2"]),
            "gd_over_adam_theory": _ratio(obs["gd"], obs["adam_theory"]),
            "predicted": pred, "quantities": quantities, "noisy": noisy}


# -- summaries ---------------------------------------------------------------------------------------------------
def instance_task(spec: dict) -> dict:
    """One instance from its plain-dict spec {"spectrum", "arrangement", "cfg"} (a :mod:`quadlab.dist` task)."""
    return instance_point(spec["spectrum"], spec["arrangement"], spec["cfg"])


def _name(p: dict) -> str:
    return f"{p['spectrum']}/{p['arrangement']}"


def _spearman(x, y) -> float | None:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.unique(x[ok]).size < 2 or np.unique(y[ok]).size < 2:
        return None
    return float(spearmanr(x[ok], y[ok]).statistic)


def _pairs(points: list[dict], key: str):
    """(name, predicted, observed) per instance (and per batch size for the noise explanation)."""
    rows = []
    for p in points:
        if key == "noise":
            rows.append((_name(p) + "/exact", p["predicted"]["noise"], p["gd_over_adam"]["value"]))
            for B, o in p["noisy"].items():
                rows.append((_name(p) + f"/B={B}", o["predicted"]["predicted_speedup"], o["ratio"]["value"]))
        else:
            rows.append((_name(p), p["predicted"][key], p["gd_over_adam"]["value"]))
    return [(n, math.nan if a is None else a, math.nan if b is None else b) for n, a, b in rows]


def summarize(points: list[dict]) -> dict:
    """Spearman correlation of each explanation with the observed GD/Adam ratio, and its failures."""
    out = {}
    for key in EXPLANATIONS:
        rows = _pairs(points, key)
        names = [r[0] for r in rows]
        pr, ob = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
        rho = _spearman(pr, ob)
        fails = []
        if key == "js0":
            from scipy.stats import rankdata

            ok = np.isfinite(pr) & np.isfinite(ob)
            if ok.sum() >= 2:
                gap = np.abs(rankdata(pr[ok]) - rankdata(ob[ok]))
                i = int(np.argmax(gap))
                fails.append({"instance": np.array(names)[ok][i], "why": f"rank off by {gap[i]:g}"})
        else:
            for n, a, b in rows:
                if not (np.isfinite(a) and np.isfinite(b)) or a <= 0 or b <= 0:
                    continue
                if (a > 1) != (b > 1):
                    fails.append({"instance": n, "predicted": a, "observed": b,
                                  "why": "predicts " + ("Adam" if a > 1 else "GD") + " faster, observed the opposite"})
                elif max(a / b, b / a) > 10:
                    fails.append({"instance": n, "predicted": a, "observed": b, "why": f"{max(a / b, b / a):.3g}× off"})
        out[key] = {"spearman": rho, "n": int((np.isfinite(pr) & np.isfinite(ob)).sum()), "failures": fails}
    return out


def _fmt(v, kind: str = "measured") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    pre = {"at_most": "≤", "at_least": "≥"}.get(kind, "")
    if isinstance(v, int):
        return f"{pre}{v:d}"
    return f"{pre}{v:.3g}" if 1e-3 <= abs(v) < 1e5 else f"{pre}{v:.1e}"


def _fmt_batch(b) -> str:
    return "beyond the grid" if b is None else f"{int(b):d}"


def readme_table(result: dict) -> str:
    """The README's Markdown table from this study's JSON (``result``: what ``--json`` writes): per instance the
    observed median steps (GD, Adam, Adam β1=β2, sign descent), the observed GD/Adam ratio, each explanation's
    prediction and ‖H‖₁,₁/trace, then the Spearman ρ of each prediction with the observed ratio.
    ``tests/test_readme_numbers.py`` checks the README against ``docs/results/explanations.json``."""
    lines = ["| instance | GD | Adam | Adam β1=β2 | sign descent | observed GD/Adam | theorem | JS⁰ | "
             "ℓ∞: nλ_max/‖H‖₁,₁ | sign: GD/sign | NQM | ‖H‖₁,₁/trace |",
             "| --- |" + " ---: |" * 11]
    for p in result["points"]:
        o, pr, r = p["observed"], p["predicted"], p["gd_over_adam"]
        cells = [_fmt(o[m]["steps"]) for m in ("gd", "adam", "adam_b1b2", "sign")]
        cells += [_fmt(r["value"], r["kind"]), _fmt(pr["heterogeneity"]), _fmt(pr["js0"]), _fmt(pr["linf"]),
                  _fmt(pr["sign"], pr.get("sign_kind", "measured")), _fmt(pr["noise"]),
                  f"{p['quantities']['rotation_gain']:.3g}"]
        lines.append(f"| {_name(p)} | " + " | ".join(cells) + " |")
    sm = result["summary"]

    def rho(key):
        v = sm[key]["spearman"]
        return "n/a" if v is None else f"{v:+.2f}".replace("-", "−")

    lines.append("| **Spearman ρ with observed** | | | | | | " + " | ".join(
        [rho("heterogeneity"), rho("js0"), rho("linf"), rho("sign"), f"{rho('noise')} ({sm['noise']['n']} pairs)"])
        + " | |")
    return "\n".join(lines)


def print_table(points: list[dict], summary: dict, tol: float, out=None) -> None:
    out = sys.stdout if out is None else out
    print(f"\nGD/Adam step ratios (tol {tol:g} on ‖∇f‖/‖∇f(w0)‖; Adam β1=0.9 β2=0.999; steps: median over seeds)",
          file=out)
    print("  observed steps (GD, Adam, Adam β1=β2, sign descent, theory form) and GD/Adam; predicted GD/Adam "
          "(heterogeneity theorem, JS⁰ score, ℓ∞, sign descent, NQM); ‖H‖₁,₁/trace", file=out)
    head = (f"  {'instance':<18}{'GD':>7}{'Adam':>7}{'β1=β2':>7}{'sign':>7}{'thry':>7}{'obs':>8} |"
            f"{'het':>9}{'JS⁰':>7}{'ℓ∞':>7}{'sign':>7}{'NQM':>7} |{'‖H‖₁₁/tr':>9}")
    print(head, file=out)
    for p in points:
        o, pr = p["observed"], p["predicted"]
        cells = [_fmt(o[m]["steps"]) for m in METHODS]
        r = p["gd_over_adam"]
        print(f"  {_name(p):<18}" + "".join(f"{c:>7}" for c in cells) + f"{_fmt(r['value'], r['kind']):>8} |"
              f"{_fmt(pr['heterogeneity']):>9}{_fmt(pr['js0']):>7}{_fmt(pr['linf']):>7}{_fmt(pr['sign']):>7}"
              f"{_fmt(pr['noise']):>7} |{p['quantities']['rotation_gain']:>9.3g}", file=out)
    batches = list(points[0]["noisy"]) if points else []
    if batches:
        print("\n  under NQM noise (s = 0.01): observed GD/Adam (GD steps, Adam steps) and the NQM's prediction",
              file=out)
        print(f"  {'instance':<18}" + "".join(f"{'B=' + B:>30}" for B in batches), file=out)
        for p in points:
            cells = []
            for B in batches:
                o = p["noisy"][B]
                cells.append(f"{_fmt(o['ratio']['value'], o['ratio']['kind'])} ({_fmt(o['gd']['steps'])}, "
                             f"{_fmt(o['adam']['steps'])}) vs {_fmt(o['predicted']['predicted_speedup'])}")
            print(f"  {_name(p):<18}" + "".join(f"{c:>30}" for c in cells), file=out)
    cb = summary.get("critical_batch")
    if cb:
        print(f"\n  NQM critical batch size (the smallest B whose tuned steps are within {1 + cb['gd']['delta']:g}× of "
              f"the exact-gradient steps; s = {NOISE_SCALE:g}, expected-loss target tol²): GD {_fmt_batch(cb['gd']['critical'])}, GD "
              f"preconditioned by H^-1/2 {_fmt_batch(cb['adam']['critical'])}", file=out)
    print("\n  Spearman rank correlation with the observed GD/Adam ratio, and where each explanation fails:", file=out)
    for key, label in EXPLANATIONS.items():
        s = summary[key]
        rho = "n/a" if s["spearman"] is None else f"{s['spearman']:+.2f}"
        fails = "; ".join(f"{f['instance']} ({f['why']})" for f in s["failures"][:6]) or "none"
        more = f" (+{len(s['failures']) - 6} more)" if len(s["failures"]) > 6 else ""
        print(f"  {label:<46} ρ = {rho:>5} (n = {s['n']}); fails: {fails}{more}", file=out)


def plot(points: list[dict], summary: dict, path: Path) -> None:
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(EXPLANATIONS), figsize=(4.2 * len(EXPLANATIONS), 4.4), constrained_layout=True)
    marks = {"het": "o", "hom": "s"}
    for ax, (key, label) in zip(axes, EXPLANATIONS.items()):
        rows = _pairs(points, key)
        xs, ys = [], []
        for name, a, b in rows:
            if not (np.isfinite(a) and np.isfinite(b)) or b <= 0 or (a <= 0 and key != "js0"):
                continue
            kind = name.split("/")[0]
            ax.plot(a, b, marks[kind], mfc="white" if kind == "hom" else None, color="C0" if "/B=" not in name
                    else "C1", ms=6)
            ax.annotate(name.split("/", 1)[1], (a, b), fontsize=6, xytext=(3, 2), textcoords="offset points")
            xs.append(a), ys.append(b)
        if key != "js0":
            ax.set_xscale("log")
            if xs:
                lo, hi = min(xs + ys) / 2, max(xs + ys) * 2
                ax.plot([lo, hi], [lo, hi], color="0.6", ls=":", lw=1)
        ax.set_yscale("log")
        ax.axhline(1.0, color="0.8", lw=0.8)
        rho = summary[key]["spearman"]
        ax.set_title(f"{label}\nSpearman ρ = {'n/a' if rho is None else format(rho, '+.2f')}", fontsize=9)
        ax.set_xlabel("predicted" + (" (JS⁰)" if key == "js0" else " GD/Adam"))
    axes[0].set_ylabel("observed GD/Adam steps")
    fig.suptitle("Predicted vs observed GD/Adam ratio (● heterogeneous, □ homogeneous; orange: under NQM noise)")
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = study_parser(STUDY, __doc__, "1 seed, coarse tuning, short caps, one batch size", checkpoint=True)
    ap.set_defaults(tol=1e-4, seeds=5)
    for action in ap._actions:  # the shared options' help, with this study's defaults
        if action.dest == "seeds":
            action.help = "rotation/start seeds, 1 to 1000 (default 5; 1 with --quick)"
        elif action.dest == "tol":
            action.help = ("stop at ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖, 0 < tol < 1 (default 1e-4: momentum sign descent "
                           "needs about 1/tol steps)")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="finished points are kept here (default: OUT/explanations.<settings hash>.checkpoint.jsonl)")
    common.add_dist_options(ap)
    args = ap.parse_args(argv)
    check_common(ap, args)
    if args.quick:
        args.seeds = 1
    if args.checkpoint is not None:
        try:
            args.checkpoint = check_output_file(args.checkpoint, "--checkpoint")
        except ValueError as exc:
            fail(ap, str(exc))
    cfg = {"study": STUDY, "version": VERSION, "seeds": args.seeds, "tol": args.tol, "quick": args.quick,
           "batches": [BATCHES[-1]] if args.quick else list(BATCHES), "mild_angle": MILD_ANGLE,
           "noise_scale": NOISE_SCALE}
    ck = open_checkpoint(ap, args, STUDY, cfg)
    todo = [(k, a) for k in SPECTRA for a in ARRANGEMENTS]
    keys = [Checkpoint.key(spectrum=k, arrangement=a) for k, a in todo]
    reused = sum(k in ck for k in keys)
    with common.open_executor(ap, args) as ex:  # serial here unless --scheduler; each instance is one task
        points = ex.map(instance_task, [{"spectrum": k, "arrangement": a, "cfg": cfg} for k, a in todo], keys=keys,
                        store=ck, progress=lambda it, n: progress(it, total=n, desc="instances", quiet=args.quiet))
    summary = summarize(points)
    # the NQM's critical batch sizes on the one spectrum of the design (closed form, seconds)
    crit = explain.critical_batches(design_spectrum("het"), scale=NOISE_SCALE, target=args.tol ** 2,
                                    batches=2.0 ** np.arange(4, 17, 1 if not args.quick else 2))
    summary["critical_batch"] = {k: {"critical": c.critical if math.isfinite(c.critical) else None, "batches": c.batches.tolist(), "steps": c.steps.tolist(),
                                     "limit": c.limit, "delta": c.delta} for k, c in crit.items()}
    result = {"study": STUDY, "settings": cfg, "points": points, "summary": summary,
              "reused_points": reused, "computed_points": len(todo) - reused, "checkpoint": str(ck.path)}
    if not args.quiet:
        print_table(points, summary, args.tol)
        print(f"\n{len(todo) - reused} instances computed, {reused} reused from {ck.path}")
    return finish(result, args, STUDY, figure=lambda path: plot(points, summary, path))

