"""Benchmark: critical batch sizes under the noisy quadratic model, closed form and Monte Carlo.

    PYTHONPATH=. python bench/bench_nqm.py [--kappas 1e3 1e4 1e5] [--seeds 16] [--heavy-ball]

Instance per κ: a diagonal quadratic with 30 eigenvalues h = κ^{−x}, x evenly spaced in [0, 1], the
equal-loss start e_0 = h^{−1/2} (every direction starts with loss ½), NQM noise Cov ξ = H/B, target: the
expected loss at 1 % of its start.  For each method the tuned steps S(B) on B = 1, 2, 4, …, 1024, the
exact-gradient limit S_∞ and the critical batch (smallest B with S(B) ≤ 2·S_∞; :func:`quadlab.nqm.critical_batch`).
GD, heavy ball (``--heavy-ball``: its closed form steps through every step, slow at small B) and GD
preconditioned by H^{−1/2} and H^{−1} in closed form; Adam (β1 = 0.9, β2 = 0.999) and momentum sign descent
(β = 0.9) by Monte Carlo over ``--seeds`` seeds with ``quadlab.run(noise=...)``.  A first line checks the
Monte-Carlo machinery on GD against the closed form at κ = 10² (the same tuned lr per B; the first crossing
of a sample mean is biased early where the curve is flat, so expect MC ≤ closed form by a few percent).

Each line carries its wall time and the 1-minute load average: this machine is shared, so a time is only
meaningful next to its load.  Not a test: it asserts nothing and is not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import quadlab
from quadlab import nqm, optim

BATCHES = 2.0 ** np.arange(0, 11)
TARGET = 1e-2


def instance(kappa: float):
    h = kappa ** -np.linspace(0, 1, 30)
    return h, h**-0.5, quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([h]), rotation="none")


def line(kappa, name, cb, seconds):
    steps = " ".join(f"{s:>7d}" for s in cb.steps)
    crit = "   none" if np.isnan(cb.critical) else f"{cb.critical:>7.0f}"
    print(f"{kappa:>7.0e}  {name:<22} {cb.limit:>7d}  {crit}  {steps}  {seconds:>6.1f}s  load {os.getloadavg()[0]:.1f}",
          flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kappas", type=float, nargs="+", default=[1e3, 1e4, 1e5])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--heavy-ball", action="store_true")
    args = ap.parse_args(argv)
    head = " ".join(f"{b:>7.0f}" for b in BATCHES)
    print(f"{'kappa':>7}  {'method':<22} {'S_inf':>7}  {'B_crit':>7}  {head}  (S(B) per batch size B)")
    # the Monte-Carlo machinery against the closed form: GD at the closed form's tuned lr for each B, the
    # mean loss over the seeds of quadlab.run(noise=NQM(B)), first crossing of the target
    h, e0, P = instance(1e2)
    t = time.perf_counter()
    cb = nqm.critical_batch(h, TARGET, start=e0, batches=BATCHES)
    line(1e2, "gd (closed form)", cb, time.perf_counter() - t)
    t = time.perf_counter()
    mc = [nqm.mc_critical_batch(P, optim.gd(lr=lr), TARGET, start=e0, batches=[B], seeds=range(args.seeds),
                                max_steps=int(2 * s + 10)).steps[0] for B, lr, s in zip(BATCHES, cb.lr, cb.steps)]
    print(f"{'':>7}  {'gd MC at those lrs':<22} {'':>7}  {'':>7}  " + " ".join(f"{s:>7d}" for s in mc)
          + f"  {time.perf_counter() - t:>6.1f}s  ({args.seeds} seeds; first crossing of the sample mean)", flush=True)
    for kappa in args.kappas:
        h, e0, P = instance(kappa)
        closed = [("gd", {}), ("gd P=H^-1/2", {"precond": h**-0.5}), ("gd P=H^-1", {"precond": 1 / h})]
        if args.heavy_ball:
            closed.insert(1, ("heavy ball", {"method": "heavy_ball", "momenta": (0.0, 0.5, 0.9, 0.99)}))
        for name, kw in closed:
            t = time.perf_counter()
            cb = nqm.critical_batch(h, TARGET, start=e0, batches=BATCHES, max_steps=10_000_000, **kw)
            line(kappa, name, cb, time.perf_counter() - t)
        for name, opt in (("adam (MC)", optim.adam(lr=np.geomspace(1e-3, 10.0, 17))),
                          ("sign descent 0.9 (MC)", optim.sign_descent(lr=np.geomspace(1e-4, 1.0, 17), momentum=0.9))):
            t = time.perf_counter()
            cb = nqm.mc_critical_batch(P, opt, TARGET, start=e0, batches=BATCHES, seeds=range(args.seeds),
                                       max_steps=4000)
            line(kappa, name, cb, time.perf_counter() - t)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
