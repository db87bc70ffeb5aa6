"""The theory report for one case: predicted against observed per-step rates, and the theorem's bound.

    quadlab theory [--case 3] [--kappa 5000] [--seeds 4] [--steps 20000] [--json PATH] [--quiet]

Runs GD at its best step 2/(λ_min+λ_max), heavy ball at its optimal (lr, momentum), the Adam theory form at
the theorem's step η = min_l C_{l,1} and GD with one oracle step per block on the chosen case (per-block Haar
rotations, one Gaussian start per seed) and prints :func:`quadlab.report` for each: the observed tail rate,
the exact rate, the theorem's bound, and whether observed ≤ exact ≤ bound holds within rounding.
"""

from __future__ import annotations

import argparse
import sys

import quadlab
from quadlab import optim, theory
from quadlab.studies.case1_4 import CASES, case_spectrum
from quadlab.studies.common import write_json_atomic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="quadlab theory", description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=int, default=3, choices=sorted(CASES))
    ap.add_argument("--kappa", type=float, default=5000.0)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.steps < 2:
        ap.error("--seeds must be >= 1 and --steps >= 2")
    try:
        spec = case_spectrum(args.case, args.kappa)
    except ValueError as exc:
        ap.error(str(exc))
    if spec is None:
        ap.error(f"case {args.case} needs the stored network spectra (quadlab.stored)")
    prob = quadlab.BlockQuadratic(spec, rotation="block", seed=0)
    hb = theory.heavy_ball_optimum(prob)
    opts = [optim.gd(lr="optimal"), optim.heavy_ball(lr=hb.lr, momentum=hb.momentum), optim.adam_theory(),
            optim.blockwise_gd()]
    out = {"case": args.case, "name": CASES[args.case][0], "kappa": args.kappa, "reports": {}}
    ok = True
    for opt in opts:
        res = quadlab.run(prob, opt, seeds=list(range(args.seeds)), steps=args.steps, tol=1e-300)
        rep = quadlab.report(res, prob)
        ok &= rep.all_hold
        out["reports"][opt.name] = rep.records()
        if not args.quiet:
            print(rep, end="\n\n")
    if args.json:
        write_json_atomic(out, args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
