"""Check: ``quadlab.report`` on random theory-form instances must never say "NO" (issue 25, item 5).

    PYTHONPATH=$PWD python bench/report_false_alarms.py [--count 1500] [--seed 0] [--steps 300]
                                                        [--method auto iterate]

Instance i is ``tests/strategies.py``'s :func:`theory_form_run` (1–4 dense blocks of 1–5 eigenvalues, per
block c ~ U(1, 10⁴) and eigenvalues exp(U(0, ln c))·U(0.1, 10), rotation="block", the Adam theory form at the
theorem's step, every step recorded).  Every run is a correct run of a method whose every step's gap factor is
at most the exact rate, so every "NO" is a false alarm.  Per method ("auto" is the closed form) it prints the
number of "NO" and "undetermined" verdicts and the worst use of the allowance,

    (worst − exact)/(limit − exact),   limit = the largest per-step factor that holds (``Report.limit``),

which is (worst/exact − 1)/slack with slack = limit/exact − 1 (≤ 1: within the allowance), and the same for
the tail fit.  Run under a tree without ``Report.limit`` (an older quadlab) it uses the former rule's limit,
exact·(1 + slack) + slack.  Not collected by pytest; exits 1 if any run says "NO".
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))

from quadlab import checks  # noqa: E402
from strategies import theory_form_run  # noqa: E402


def _use(value, exact, limit):
    """(value − exact)/(limit − exact): the share of the allowance a computed factor used."""
    if not (np.isfinite(value) and np.isfinite(exact) and np.isfinite(limit)) or limit <= exact:
        return np.nan
    return (value - exact) / (limit - exact)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--method", nargs="+", default=["auto", "iterate"])
    args = ap.parse_args(argv)
    failed = False
    for method in args.method:
        t0 = time.perf_counter()
        no, und = [], 0
        worst_use = (-np.inf, -1)
        tail_use = (-np.inf, -1)
        for i in range(args.count):
            p, res = theory_form_run(i, seed=args.seed, steps=args.steps, method=method)
            rep = checks.report(res, p)
            ex = float(rep.exact[0])
            lim = getattr(rep, "limit", None)
            lim = float(lim[0]) if lim is not None else ex * (1 + rep.slack) + rep.slack
            if rep.holds[0] == "NO":
                no.append(i)
                print(f"  NO: instance {i}, n = {p.n}: {rep.note[0]}; worst/exact - 1 = {rep.worst[0] / ex - 1:.3g}, "
                      f"limit/exact - 1 = {lim / ex - 1:.3g}")
            und += rep.holds[0] == "undetermined"
            w = _use(float(rep.worst[0]), ex, lim)
            if np.isfinite(w) and w > worst_use[0]:
                worst_use = (w, i)
            w = _use(float(rep.observed[0]), ex, lim)  # the tail fit, against the per-step limit
            if np.isfinite(w) and w > tail_use[0]:
                tail_use = (w, i)
        dt = time.perf_counter() - t0
        label = "closed form" if method == "auto" else method
        print(f"method={method} ({label}): {args.count} instances (seed {args.seed}, {args.steps} steps): "
              f"NO {len(no)}, undetermined {und}; worst step's use of the allowance "
              f"(worst - exact)/(limit - exact) = {worst_use[0]:.3g} (instance {worst_use[1]}), tail fit's "
              f"{tail_use[0]:.3g} (instance {tail_use[1]}); {dt:.1f} s")
        failed |= bool(no)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
