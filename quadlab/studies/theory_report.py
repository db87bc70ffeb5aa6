"""The theory report for one case: predicted against observed per-step rates, and the theorem's bound.

    quadlab theory [--case 3] [--kappa 5000] [--seeds 4] [--steps 20000] [--json PATH] [--quiet]

Runs GD at its best step 2/(λ_min+λ_max), heavy ball at its optimal (lr, momentum), the Adam theory form at
the theorem's step η = min_l C_{l,1} and GD with one oracle step per block on the chosen case (per-block Haar
rotations, one Gaussian start per seed) and prints :func:`quadlab.report` for each: the observed tail rate,
the exact rate, the theorem's bound, and whether observed ≤ exact ≤ bound holds within rounding.
"""

from __future__ import annotations

from pathlib import Path

import quadlab
from quadlab import optim, theory
from quadlab.backend import check_memory
from quadlab.studies.case1_4 import CASES, case_spectrum
from quadlab.studies.common import check_output_file, fail, finite_float, int_in, new_parser, write_json_atomic


def main(argv=None) -> int:
    ap = new_parser("theory_report", __doc__)
    ap.add_argument("--case", type=int, default=3, choices=sorted(CASES),
                    help="1: GPT2-sampled, 2: ResNet18-sampled, 3: simple heterogeneous, 4: simple homogeneous")
    ap.add_argument("--kappa", type=finite_float(1, 1e12, lo_open=True), default=5000.0,
                    help="condition number, > 1 (Cases 3-4: > 103)")
    ap.add_argument("--seeds", type=int_in(1, 1000), default=4, help="random starts, 1 to 1000")
    ap.add_argument("--steps", type=int_in(2, 10**8), default=20_000, help="steps of every run, 2 to 1e8")
    ap.add_argument("--json", type=Path, default=None, help="also write the reports here (atomically)")
    ap.add_argument("--quiet", action="store_true", help="print nothing")
    args = ap.parse_args(argv)
    try:
        if args.json is not None:
            check_output_file(args.json, "--json")
        # every run keeps the gap and ‖∇f‖ of each step for each seed
        check_memory(16 * args.seeds * (args.steps + 1) * 2, f"{args.seeds} runs of {args.steps} steps",
                     "lower --steps or --seeds")
        spec = case_spectrum(args.case, args.kappa)
    except ValueError as exc:
        fail(ap, str(exc))
    if spec is None:
        fail(ap, f"case {args.case} needs the stored network spectra (quadlab.stored)")
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
