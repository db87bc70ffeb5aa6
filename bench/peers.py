"""quadlab against its peers on the paper's workloads: JAX + optax and PyTorch (the `bench` extra).

    PYTHONPATH=. python bench/peers.py [--repeat 5] [--only W1,W3a,W3b] [--torch-runs 8]

Every peer runs Adam in float64 (β1 = 0.9, β2 = 0.999, ε = 1e-8, bias correction) from the same starts
w_0 = w* + N(0, I) on the same blocks H_l (quadlab's Haar-rotated blocks, handed to the peers as dense
(k, d, d) arrays), every run for every step (tol off), and keeps f − f* and ‖∇f‖:

* quadlab: ``quadlab.run(problem, optim.adam(lr=lrs), seeds=..., steps=..., tol=None)`` (the compiled scan
  where numba is installed; the recorded steps are the default "log" set, the norm is computed every step);
* JAX + optax: ``jit(vmap(run_one))`` over the runs, ``run_one`` a ``lax.scan`` of ``optax.adam`` steps on the
  gradient H e, returning f − f* and ‖∇f‖ at every step; its compile time is excluded from the time and
  reported beside it;
* PyTorch: ``torch.optim.Adam`` on one parameter vector and ``loss.backward()``, one run after another
  (the usual research loop; 2 threads on W1, 1 on the 3 × 3 blocks of W3).  On W3a (1,024 runs) only
  ``--torch-runs`` runs are timed and the time is scaled to all runs (the runs are independent and alike,
  so the loop's time is linear in them).

quadlab and JAX are timed interleaved (A, B, A, B, …, with a 0.2 s pause before each call so that one's
threads do not run into the other's timing), the median of ``--repeat`` rounds; the load average
is printed with each workload (the machine is shared; see bench/RESULTS.md).  Workloads:

  W1   4 Haar-rotated blocks of 500 (log-uniform spectra, κ = 5000), 8 learning rates, 1 start, 200 steps
  W3a  Case 3 (three rotated 3 × 3 blocks, κ = 5000), 64 learning rates × 16 starts = 1,024 runs, 2,000 steps
  W3b  Case 3, 8 learning rates × 2 starts = 16 runs, 2,000 steps
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import quadlab
from quadlab import optim, spectra
from quadlab._engine import scan

B1, B2, EPS = 0.9, 0.999, 1e-8


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def workloads(only):
    w1 = spectra.rescale(spectra.scaled_blocks(spectra.log_uniform(500, 1, 10), 4, 10.0), 5000.0)
    c3 = spectra.simple_heterogeneous(5000.0)
    table = {
        "W1": (w1, np.geomspace(1e-4, 1e-1, 8), 1, 200),
        "W3a": (c3, np.geomspace(1e-4, 1e-1, 64), 16, 2000),
        "W3b": (c3, np.geomspace(1e-4, 1e-1, 8), 2, 2000),
    }
    return {k: v for k, v in table.items() if k in only}


def dense_blocks(problem):
    """The problem's blocks as one (k, d, d) array in coordinate order (every workload has equal blocks)."""
    (g,) = problem.groups
    return np.asarray(g.H), np.asarray(g.coords)


def quadlab_run(problem, lrs, seeds, steps):
    return quadlab.run(problem, optim.adam(lr=lrs, b1=B1, b2=B2, eps=EPS), seeds=list(range(seeds)), steps=steps,
                       tol=None)


def jax_runner(H, E0, lrs, steps):
    """(compile seconds, a function running every run, its result)"""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    k, d, _ = H.shape
    Hj = jnp.asarray(H)

    def one(e0, lr):
        tx = optax.adam(learning_rate=lr, b1=B1, b2=B2, eps=EPS)
        e = e0.reshape(k, d)

        def step(carry, _):
            e, st = carry
            g = jnp.einsum("kij,kj->ki", Hj, e)
            upd, st = tx.update(g, st, e)
            out = (0.5 * jnp.vdot(e, g), jnp.sqrt(jnp.vdot(g, g)))
            return (optax.apply_updates(e, upd), st), out

        (_, _), (gap, gn) = jax.lax.scan(step, (e, tx.init(e)), None, length=steps + 1)
        return gap, gn

    f = jax.jit(jax.vmap(one))
    E0j, lrj = jnp.asarray(E0), jnp.asarray(lrs)
    t = time.perf_counter()
    f(E0j, lrj)[1].block_until_ready()
    compile_s = time.perf_counter() - t

    def go():
        return f(E0j, lrj)[1].block_until_ready()

    return compile_s, go


def torch_time(H, E0, lrs, steps, runs):
    """Seconds for ``runs`` of the runs (spread over the batch), torch.optim.Adam + autograd, one at a time."""
    import torch

    k, d, _ = H.shape
    # two threads for the 500-blocks; one for 3 × 3 blocks, where a second thread only adds hand-offs
    torch.set_num_threads(2 if d >= 64 else 1)
    Ht = torch.as_tensor(H)
    idx = np.linspace(0, E0.shape[0] - 1, runs).round().astype(int)
    t = time.perf_counter()
    for r in idx:
        e = torch.tensor(E0[r].reshape(k, d), requires_grad=True)
        opt = torch.optim.Adam([e], lr=float(lrs[r]), betas=(B1, B2), eps=EPS)
        gn = []
        for _ in range(steps + 1):
            opt.zero_grad()
            loss = 0.5 * torch.einsum("ki,kij,kj->", e, Ht, e)
            loss.backward()
            gn.append(e.grad.norm())  # kept like quadlab's and JAX's per-step norms
            opt.step()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--only", default="W1,W3a,W3b")
    ap.add_argument("--torch-runs", type=int, default=8, help="runs of W3a timed with torch (then scaled)")
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    print(f"quadlab compiled scan: {'on' if scan.ENABLED and quadlab._engine.kernels.available() else 'off'}")
    for name, (spec, lrs, seeds, steps) in workloads(args.only.split(",")).items():
        load0 = load()
        prob = quadlab.BlockQuadratic(spec, rotation="block", seed=0)
        res = quadlab_run(prob, lrs, seeds, steps)  # warm-up (loads the compiled kernel) and the starts
        H, coords = dense_blocks(prob)
        E0 = (res.w0 - prob.optimum_host)[:, coords]
        run_lrs = res.config["lr"]
        compile_s, jax_go = jax_runner(H, E0, run_lrs, steps)
        gn_jax = np.asarray(jax_go())
        ts = {"quadlab": [], "jax": []}
        for _ in range(args.repeat):
            # a pause before each timing, so that threads one call left busy (a thread pool that spins
            # before it sleeps) do not run into the next call's time
            time.sleep(0.2)
            t = time.perf_counter()
            res = quadlab_run(prob, lrs, seeds, steps)
            ts["quadlab"].append(time.perf_counter() - t)
            time.sleep(0.2)
            t = time.perf_counter()
            jax_go()
            ts["jax"].append(time.perf_counter() - t)
        # the same runs: final ‖∇f‖ of quadlab and JAX agree to rounding (the arithmetic forms differ; on W3a
        # a few runs at the largest steps are chaotic and drift apart, so the median is printed beside the max)
        rel = np.abs(res.grad_norm[:, -1] / gn_jax[:, -1] - 1)
        agree = (float(np.nanmedian(rel)), float(np.nanmax(rel)))
        q, j = statistics.median(ts["quadlab"]), statistics.median(ts["jax"])
        R = res.n_runs
        torch_s = None
        if not args.skip_torch:
            n_t = min(R, args.torch_runs) if name == "W3a" else R
            torch_s = torch_time(H, E0, run_lrs, steps, n_t) * R / n_t
        rows.append((name, R, steps, q, j, compile_s, torch_s, agree, load0, load()))
        print(f"{name}: quadlab {q:.4f} s, JAX {j:.4f} s (+ compile {compile_s:.2f} s), "
              f"torch {'-' if torch_s is None else f'{torch_s:.2f} s'}; final |g| rel. diff median {agree[0]:.1e} max {agree[1]:.1e}  "
              f"[{load0} -> {load()}]  quadlab rounds {' '.join(f'{x:.4f}' for x in ts['quadlab'])}; "
              f"JAX rounds {' '.join(f'{x:.4f}' for x in ts['jax'])}")
    print()
    print("| workload | runs × steps | quadlab s | JAX+optax s (compile) | torch s | quadlab ÷ JAX | torch ÷ quadlab | load |")
    print("|---|---|---|---|---|---|---|---|")
    for name, R, steps, q, j, c, tt, _, l0, l1 in rows:
        ts_ = "-" if tt is None else f"{tt:.2f}"
        tq = "-" if tt is None else f"{tt / q:.0f}×"
        print(f"| {name} | {R} × {steps} | {q:.4f} | {j:.4f} ({c:.1f}) | {ts_} | {q / j:.2f}× | {tq} | {l0} → {l1} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
