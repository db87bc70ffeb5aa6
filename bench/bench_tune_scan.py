"""tune_lr against a dense scan on single instances: is the tuner's best within 2 % of a 240-point scan's?

For Cases 3 and 4 (κ = 5000, one Haar rotation per block, seed 0 and the start of seed 0 unless --seeds), and for
GD, heavy ball (momentum at its optimum), Adam β1 = 0.9 and Adam β1 = 0, this runs

* the scan: 240 log-spaced lrs over the lr range that ``quadlab case1_4`` tunes in, one batched ``quadlab.run``
  with the study's cap (69,077 steps), its best = the fewest steps to ‖∇f‖ ≤ 10⁻⁶‖∇f(w₀)‖;
* ``tune_lr`` with case1_4's settings (128 points, 2 refinements, race), timed;

and prints best steps of both, their ratio, the tuner's lr and its time.  The target: ratio ≤ 1.02 wherever
the scan reaches tol (and both miss where it does not).

    PYTHONPATH=. python bench/bench_tune_scan.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import quadlab
from quadlab import optim, spectra, theory
from quadlab._engine import portable
from quadlab.tune import tune_lr

CAP = 69_077
RANGES = {"gd": (1e-6, 1e-1), "heavy_ball": (1e-6, 1e-1), "adam": (1e-5, 1e1), "adam_beta1_0": (1e-5, 1e1)}


def optimizer(key, prob):
    if key == "gd":
        return optim.gd()
    if key == "heavy_ball":
        return optim.heavy_ball(momentum=theory.heavy_ball_optimum(prob).momentum)
    return optim.adam(b1=0.9 if key == "adam" else 0.0)


def compare(case: int, key: str, seed: int) -> dict:
    spec = spectra.simple_heterogeneous(5000.0) if case == 3 else spectra.simple_homogeneous(5000.0)
    prob = quadlab.BlockQuadratic(spec, rotation="block", seed=seed)
    opt = optimizer(key, prob)
    lo, hi = RANGES[key]
    grid = portable.geomspace(lo, hi, 240)
    t0 = time.perf_counter()
    res = quadlab.run(prob, opt.with_hyper(lr=grid), seeds=[seed], steps=CAP, tol=1e-6)
    scan_s = time.perf_counter() - t0
    stt = np.where(res.status == "diverged", -1, res.steps_to_tol)
    scan_best = int(stt[stt >= 0].min()) if (stt >= 0).any() else -1
    t0 = time.perf_counter()
    t = tune_lr(prob, opt, lr_range=(lo, hi), seeds=[seed], steps=CAP, tol=1e-6, race=True)
    tune_s = time.perf_counter() - t0
    ratio = t.best_steps / scan_best if scan_best > 0 and t.best_steps >= 0 else None
    ok = (ratio is not None and ratio <= 1.02) or (scan_best < 0 and t.best_steps < 0)
    return {"case": case, "optimizer": key, "seed": seed, "scan_best": scan_best, "scan_reached": int((stt >= 0).sum()),
            "tune_best": t.best_steps, "tune_lr": t.best_lr, "ratio": ratio, "ok": ok, "scan_s": scan_s,
            "tune_s": tune_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0", help="comma-separated instance seeds (default 0)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = [compare(c, k, s) for s in seeds for c in (3, 4) for k in RANGES]
    print(f"{'case':>4} {'optimizer':<13}{'seed':>5}{'scan best':>11}{'(lrs ok)':>9}{'tune_lr':>9}{'ratio':>8}"
          f"{'lr':>11}{'scan s':>8}{'tune s':>8}  within 2%")
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.4f}"
        print(f"{r['case']:>4} {r['optimizer']:<13}{r['seed']:>5}{r['scan_best']:>11}{r['scan_reached']:>9}"
              f"{r['tune_best']:>9}{ratio:>8}{r['tune_lr']:>11.4g}{r['scan_s']:>8.2f}{r['tune_s']:>8.2f}  "
              f"{'yes' if r['ok'] else 'NO'}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
