"""Run many optimizer configurations at once on one quadratic, by iteration or in closed form.

``run(problem, optimizer, ...)`` executes R = C·S runs (C hyperparameter configurations × S seeds) as one
array program: the iterate (R, n) lives on the backend in the runner's layout and every step costs one
batched matmul per group of equal-size blocks.  The runner tracks the error e = w − w* rather than w, which
is the same iteration (every method here sees only ∇f = He) but keeps f − f* = ½eᵀHe resolvable far below
eps·|f*| when w* ≠ 0.

Runs are ordered configuration-major: run r = c·S + s.  When ``w0`` is None, seed s starts at
w_0 = w* + ξ with ξ ~ N(0, I) drawn from ``numpy.random.default_rng(s)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from . import rules
from ._engine import closed_form, kernels, scan
from ._engine.layout import Layout, tmap
from .backend import check_memory
from .optim import Optimizer

__all__ = ["run", "Result", "record_steps", "STATUSES", "DIVERGENCE_FACTOR"]

STATUSES = ("converged", "max_steps", "diverged")
DIVERGENCE_FACTOR = 1e6  # ‖∇f(w_k)‖ > 1e6·‖∇f(w_0)‖ (or non-finite) flags a run as diverged
INPLACE = True  # numpy runs update their arrays in place; False forces the functional path (for tests)


@dataclass(frozen=True, eq=False)
class Result:
    """What a batch of runs did.

    steps        (T,) recorded iteration indices k (0 is the start)
    gap          (R, T) f(w_k) − f*;  NaN after a run stopped (converged or diverged)
    grad_norm    (R, T) ‖∇f(w_k)‖;   NaN after a run stopped
    steps_to_tol (R,) first k with ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖, −1 where never (or tol is None)
    stop_step    (R,) the step at which the run stopped (steps_to_tol, the divergence step, or n_steps)
    status       (R,) "converged" | "max_steps" (ran every step) | "diverged"
    config       name → (R,) hyperparameters of each run, with "seed"
    w0           (R, n) starting points (host float64)
    """

    steps: np.ndarray
    gap: np.ndarray
    grad_norm: np.ndarray
    steps_to_tol: np.ndarray
    stop_step: np.ndarray
    status: np.ndarray
    config: dict[str, np.ndarray]
    w0: np.ndarray
    optimizer: str
    options: dict = field(default_factory=dict)
    method: str = "iterate"
    backend: str = "numpy"
    dtype: str = "float64"
    tol: float | None = None
    n_steps: int = 0

    @property
    def n_runs(self) -> int:
        return int(self.status.size)

    @property
    def grad_norm0(self) -> np.ndarray:
        return self.grad_norm[:, 0] if self.steps[0] == 0 else np.full(self.n_runs, np.nan)

    @property
    def diverged(self) -> np.ndarray:
        return self.status == "diverged"

    @property
    def converged(self) -> np.ndarray:
        return self.status == "converged"

    def final(self, what: str = "grad_norm") -> np.ndarray:
        """The last finite recorded value per run of ``gap`` or ``grad_norm``."""
        a = getattr(self, what)
        out = np.full(a.shape[0], np.nan)
        for r in range(a.shape[0]):
            ok = np.flatnonzero(np.isfinite(a[r]))
            if ok.size:
                out[r] = a[r, ok[-1]]
        return out

    def summary(self) -> str:
        """One line per run: hyperparameters, status, steps to tolerance, final ‖∇f‖."""
        names = list(self.config)
        head = "  ".join(f"{k:>10}" for k in names) + f"  {'status':>10}  {'to_tol':>8}  {'final |g|':>10}"
        rows = [head]
        fin = self.final()
        for r in range(self.n_runs):
            vals = "  ".join(f"{self.config[k][r]:>10.4g}" for k in names)
            rows.append(f"{vals}  {self.status[r]:>10}  {self.steps_to_tol[r]:>8d}  {fin[r]:>10.3e}")
        return "\n".join(rows)


def record_steps(record, steps: int) -> np.ndarray:
    """The steps to record: "log" (about 200 log-spaced steps, 0 and ``steps`` included), "all", or given."""
    if isinstance(record, str):
        if record == "log":
            ks = np.unique(np.round(np.geomspace(1, steps, min(steps, 200))).astype(np.int64))
            return np.concatenate([[0], ks]) if ks[0] != 0 else ks
        if record == "all":
            return np.arange(steps + 1, dtype=np.int64)
        raise ValueError(f"record must be 'log', 'all' or an array of steps, got {record!r}")
    ks = np.asarray(record)
    if ks.ndim != 1 or ks.size == 0 or not np.issubdtype(ks.dtype, np.integer):
        raise ValueError("record must be 'log', 'all' or a non-empty 1-D array of integer steps")
    if ks.min() < 0 or ks.max() > steps:
        raise ValueError(f"recorded steps must lie in [0, steps={steps}], got {ks.min()}..{ks.max()}")
    return np.unique(ks.astype(np.int64))


class _Context:
    """What an optimizer may ask of the problem, in the runner's layout."""

    def __init__(self, problem, layout: Layout | None, g0_host: np.ndarray, w0_host: np.ndarray):
        self.problem = problem
        self.host_hp = {}  # name → host float64 (R,) per-run hyperparameters, as configured (iterate path)
        self.w0_host = w0_host
        self.layout = layout
        self.xp = problem.xp
        self.g0_host = g0_host
        # numpy arrays may be updated in place (out=); other namespaces (array_api_strict, cupy) get the
        # functional path, which numpy's in-place path reproduces bit for bit
        self.inplace = INPLACE and problem.backend.name == "numpy"
        self.fused = False  # set by the iterate runner when the optimizer's compiled step will be used

    def host_diag(self) -> np.ndarray:
        return self.problem.backend.to_numpy(self.problem.diagonal()).astype(np.float64)

    def block_steps(self, options) -> np.ndarray:
        """Blockwise GD's per-block steps: the oracle rule resolved by :mod:`quadlab.rules`, or the given array."""
        steps = options["block_lr"]
        if isinstance(steps, str):  # "oracle"
            return rules.oracle_block_steps(self.problem, options["spectra"])
        if steps.size != self.problem.spectrum.n_blocks:
            raise ValueError(f"blockwise_gd: {steps.size} block steps given for {self.problem.spectrum.n_blocks} blocks")
        return steps

    def host_lr(self, hp, options) -> np.ndarray:
        """Every run's step, host (R,): the configured lr, or the optimizer's rule (:func:`rules.resolve_lr`)."""
        if options.get("lr") is None:
            return np.asarray(hp["lr"], dtype=np.float64)
        return rules.resolve_lr(self.problem, options, self.w0_host)

    def run_lr(self, hp, options):
        if options.get("lr") is None:
            return hp["lr"]
        return self.layout.per_run(self.host_lr(None, options))

    def require_nonzero_g0(self):
        if (self.g0_host == 0).any():
            r, i = np.argwhere(self.g0_host == 0)[0]
            raise ValueError(
                f"adam_theory: the initial gradient of run {r} is exactly zero at coordinate {i}; the theory form "
                "divides by |g_0| and the theorem needs every entry non-zero. Perturb the start, e.g. "
                "w0 + 1e-8 * np.random.default_rng(0).standard_normal(n)"
            )


def _check_steps(steps) -> int:
    """A step count must be a finite integer ≥ 1 (an integral float such as 1e4 is accepted)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, float, np.integer, np.floating)):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not np.isfinite(steps) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


def _check_seeds(seeds) -> list[int]:
    """Seeds are non-negative integers (numpy's generators take no negative seed, and a fractional seed
    would silently be truncated to another run's)."""
    if seeds is None:
        return [0]
    arr = np.atleast_1d(np.asarray(seeds, dtype=object))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    out = []
    for s in arr:
        ok = isinstance(s, (int, np.integer)) and not isinstance(s, bool)
        if isinstance(s, (float, np.floating)) and np.isfinite(s) and float(s).is_integer():
            ok, s = True, int(s)
        if not ok or s < 0:
            raise ValueError(f"seeds must be non-negative integers, got {s!r} in {seeds!r}")
        out.append(int(s))
    return out


#: bytes per (run × coordinate) of the iterate path's working set: e, g, the optimizer's state (Adam: m, v,
#: a scratch buffer and the per-run lr) and the starting points on the host, each 8 bytes
_ITERATE_BYTES = 8 * 8


def _check_size(problem, R: int, T: int, optimizer, use_closed: bool) -> None:
    """Refuse a batch whose working set cannot fit (:func:`quadlab.backend.check_memory`), before any work."""
    n = problem.n
    if use_closed:
        # one eigendecomposition per preconditioner class (the Adam theory form: one per run) plus the
        # per-run, per-mode amplitudes, and the recorded (R, T) arrays
        per_class = max(problem.block_sizes) ** 2 if problem.is_block_diagonal else n * n
        classes = R if optimizer.name == "adam_theory" else 1
        need = 8 * (classes * (per_class + 6 * n) + 2 * R * T + R * n)
    else:
        need = _ITERATE_BYTES * R * n + 8 * 2 * R * T
    check_memory(need, f"{R} runs of dimension {n} with {T} recorded steps",
                 "use fewer configurations or seeds per call, a sparser record=, or smaller blocks")


def _starts(problem, w0, seeds, C: int):
    n = problem.n
    if w0 is None:
        E0s = np.stack([np.random.default_rng(int(s)).standard_normal(n) for s in seeds])
        return np.tile(E0s, (C, 1))
    W = np.asarray(problem.backend.to_numpy(w0) if not isinstance(w0, (list, tuple)) else w0)
    if W.dtype.kind not in "biuf":
        raise ValueError(f"w0 must be real numbers, got dtype {W.dtype}")
    W = W.astype(np.float64)
    R = C * len(seeds)
    if not np.isfinite(W).all():
        raise ValueError("w0 must be finite: it has NaN or infinite entries")
    if W.shape == (n,):
        return np.tile(W - problem.optimum_host, (R, 1))
    if W.shape == (R, n):
        return W - problem.optimum_host
    raise ValueError(f"w0 must have shape ({n},) or one row per run ({R}, {n}), got {W.shape}")


def run(
    problem,
    optimizer: Optimizer,
    w0=None,
    seeds=None,
    steps: int = 1000,
    tol: float | None = None,
    record="log",
    method: str = "auto",
    check_every: int | None = None,
) -> Result:
    """Run every configuration of ``optimizer`` from every start on ``problem``.

    Parameters
    ----------
    w0 : None (draw per seed), one point (n,), or one per run (R, n).
    seeds : seeds for the starts (default [0]); R = configurations × len(seeds).
    steps : iterations per run (≥ 1).
    tol : stop a run at the first k with ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖ (None: run every step).
    record : "log", "all", or an array of steps at which f − f* and ‖∇f‖ are kept.
    method : "auto" (closed form for the linear methods), "iterate", or "closed_form".
    check_every : iterate path only: steps between host reads of the convergence test.  Default: 16 (64
        on a GPU) while k < 8·16, then k/8 up to 256 (1024 on a GPU), so that the checks cost nothing per
        step on long runs while a run that stops is carried at most 1/8 of its steps further.  A stopped run
        is detected exactly either way; its extra steps are discarded.
    """
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer must be built by quadlab.optim (e.g. quadlab.optim.adam(...)), got {optimizer!r}")
    steps = _check_steps(steps)
    if tol is not None and not (np.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol is relative to ||grad f(w0)|| and must lie in (0, 1), got {tol!r}")
    if method not in ("auto", "iterate", "closed_form"):
        raise ValueError(f"method must be 'auto', 'iterate' or 'closed_form', got {method!r}")
    if method == "closed_form" and not optimizer.is_linear:
        raise ValueError(
            f"{optimizer.name} is not linear in the error (adaptive second moments), so it has no closed form; "
            "use method='iterate' or 'auto'. Closed forms exist for gd, heavy_ball, nesterov, adam_theory, "
            "blockwise_gd and jacobi_gd."
        )
    seeds = _check_seeds(seeds)
    if w0 is not None and len(seeds) > 1 and np.ndim(w0) == 1:
        raise ValueError("seeds only draw starting points; with a single given w0 leave seeds at its default")
    grid = optimizer.grid()
    C, S = optimizer.n_configs, len(seeds)
    R = C * S
    config = {k: np.repeat(v, S) for k, v in grid.items()}
    config["seed"] = np.tile(np.asarray(seeds, dtype=np.int64), C)
    E0 = _starts(problem, w0, seeds, C)
    rec = record_steps(record, steps)
    use_closed = optimizer.is_linear and method != "iterate"
    _check_size(problem, R, rec.size, optimizer, use_closed)
    b = problem.backend
    # Overflow in a diverging run is expected and reported through its status, not as warnings.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if use_closed:
            out = _run_closed(problem, optimizer, config, E0, rec, steps, tol)
        else:
            cadence = (check_every, check_every) if check_every else ((64, 1024) if b.is_gpu else (16, 256))
            out = _run_iterate(problem, optimizer, config, E0, rec, steps, tol, cadence)
    gap, gnorm, to_tol, stop, status = out
    # values after a run stopped are not part of its trajectory
    after = rec[None, :] > stop[:, None]
    gap[after] = np.nan
    gnorm[after] = np.nan
    return Result(
        steps=rec, gap=gap, grad_norm=gnorm, steps_to_tol=to_tol, stop_step=stop, status=status,
        config=config, w0=E0 + problem.optimum_host, optimizer=optimizer.name, options=dict(optimizer.options),
        method="closed_form" if use_closed else "iterate", backend=b.name, dtype=b.dtype_name, tol=tol,
        n_steps=steps,
    )


def _first_stop(norms: np.ndarray, k0: int, thr: np.ndarray, div: np.ndarray, tol_on: bool):
    """For norms (m, R) at steps k0..k0+m−1: first converged step and first diverged step per run (−1: none)."""
    bad = ~np.isfinite(norms) | (norms > div[None, :])
    good = (norms <= thr[None, :]) & ~bad if tol_on else np.zeros_like(bad)
    m = norms.shape[0]
    first_bad = np.where(bad.any(axis=0), bad.argmax(axis=0) + k0, -1)
    first_good = np.where(good.any(axis=0), good.argmax(axis=0) + k0, -1)
    del m
    return first_good, first_bad


def _classify(first_good, first_bad):
    """Combine first converged/diverged steps: whichever came first decides."""
    conv = (first_good >= 0) & ((first_bad < 0) | (first_good < first_bad))
    dive = (first_bad >= 0) & ~conv
    return conv, dive


def _hyperparameter(values: np.ndarray, lay: Layout):
    """A Python float where every run shares the value (the update then needs no per-run broadcast and the
    per-step scalars can be formed on the host), else the backend array (1, R, 1)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v[0]) if (v == v[0]).all() else lay.per_run(v)


def _run_iterate(problem, opt, config, E0, rec, steps, tol, cadence):
    b = problem.backend
    xp = b.xp
    R, T = E0.shape[0], rec.size
    lay = Layout(problem)
    E = lay.split(b.asarray(E0))
    G = lay.hvp(E)
    g0_host = b.to_numpy(lay.merge(G)).astype(np.float64)
    ctx = _Context(problem, lay, g0_host, E0 + problem.optimum_host)
    inplace = ctx.inplace
    if inplace:  # split may return views of E0, which the in-place steps must not touch
        E = tuple(np.array(x, copy=True) for x in E)
    ctx.host_hp = {k: np.asarray(v, dtype=np.float64) for k, v in config.items() if k != "seed"}
    if inplace and scan.eligible(problem, opt):  # the same results, every step in one compiled loop
        return scan.run(problem, opt, ctx, lay, G, E0, rec, steps, tol, DIVERGENCE_FACTOR)
    hp = {k: _hyperparameter(v, lay) for k, v in ctx.host_hp.items()}
    fused = ctx.fused = inplace and opt.step is not None and kernels.available()
    state = opt.init(G, hp, ctx)
    g0n = np.linalg.norm(g0_host, axis=1)
    thr = (tol if tol is not None else 0.0) * g0n
    div = DIVERGENCE_FACTOR * g0n
    gap = np.full((R, T), np.nan)
    gnorm = np.full((R, T), np.nan)
    to_tol = np.full(R, -1, dtype=np.int64)
    stop = np.full(R, steps, dtype=np.int64)
    status = np.array(["max_steps"] * R, dtype=object)
    rows = np.arange(R)  # original run index of each active row
    rec_pos = {int(k): j for j, k in enumerate(rec)}
    pend_norms, pend_rec = [], []
    k0 = 0
    lo, hi = cadence
    for k in range(steps + 1):
        gn2 = lay.rowdot(G, G)
        pend_norms.append(gn2)
        if k in rec_pos:
            pend_rec.append((rec_pos[k], 0.5 * lay.rowdot(E, G), gn2))
        if k == steps or len(pend_norms) >= min(hi, max(lo, k0 // 8)):
            # the only host read of the loop: the squared norms since the last check, in one transfer
            norms = np.sqrt(b.to_numpy(xp.stack(pend_norms)))
            for j, gp, gg in pend_rec:
                gap[rows, j] = b.to_numpy(gp)
                gnorm[rows, j] = np.sqrt(b.to_numpy(gg))
            fg, fb = _first_stop(norms, k0, thr[rows], div[rows], tol is not None)
            conv, dive = _classify(fg, fb)
            if conv.any():
                to_tol[rows[conv]] = fg[conv]
                stop[rows[conv]] = fg[conv]
                status[rows[conv]] = "converged"
            if dive.any():
                stop[rows[dive]] = fb[dive]
                status[rows[dive]] = "diverged"
            pend_norms, pend_rec = [], []
            k0 = k + 1
            done = conv | dive
            if done.all() or k == steps:
                break
            if done.any():
                keep_host = np.flatnonzero(~done)
                keep = xp.asarray(keep_host)
                rows = rows[~done]
                E, G = lay.take_runs(E, keep), lay.take_runs(G, keep)
                state = _take_runs(state, keep, keep_host, lay)
                hp = {n: _take_runs(v, keep, keep_host, lay) for n, v in hp.items()}
                ctx.host_hp = {n: v[keep_host] for n, v in ctx.host_hp.items()}
        if fused:  # e ← e − delta in one compiled pass
            state = opt.step(E, G, state, hp, ctx, k + 1)
        else:
            delta, state = opt.update(G, state, hp, ctx, k + 1)
        if inplace:
            if not fused:
                for e, d in zip(E, delta, strict=True):
                    np.subtract(e, d, out=e)
            G = lay.hvp_into(E, G)
        else:
            E = tmap(lambda e, d: e - d, E, delta)
            G = lay.hvp(E)
    return gap, gnorm, to_tol, stop, status.astype(str)


def _take_runs(obj, keep, keep_host, lay):
    """Keep the runs ``keep`` (backend indices; ``keep_host`` on the host) in every array of a nested tuple;
    Python scalars are shared by all runs, objects with ``take_runs`` (host per-run data) select their own."""
    if isinstance(obj, tuple):
        return tuple(_take_runs(o, keep, keep_host, lay) for o in obj)
    if isinstance(obj, (int, float)):
        return obj
    if hasattr(obj, "take_runs") and not hasattr(obj, "shape"):
        return obj.take_runs(keep_host)
    return lay.take_runs((obj,), keep)[0]


def _run_closed(problem, opt, config, E0, rec, steps, tol):
    R = E0.shape[0]
    g0_host = problem.backend.to_numpy(problem.hvp(problem.backend.asarray(E0))).astype(np.float64)
    ctx = _Context(problem, None, g0_host, E0 + problem.optimum_host)
    hp = {k: v for k, v in config.items() if k != "seed"}
    if opt.name == "adam_theory":
        ctx.require_nonzero_g0()
    spec = opt.linear(hp, ctx, g0_host)
    plan = closed_form.Plan(problem, spec, E0)  # eigendecompositions and per-mode weights, once
    gap, gnorm = plan.values(rec)
    g0n = np.linalg.norm(g0_host, axis=1)
    thr = (tol if tol is not None else 0.0) * g0n
    div = DIVERGENCE_FACTOR * g0n
    to_tol = np.full(R, -1, dtype=np.int64)
    stop = np.full(R, steps, dtype=np.int64)
    status = np.array(["max_steps"] * R, dtype=object)
    # The first crossing can fall between recorded steps: scan every step, in slabs, up to the first
    # recorded step at which each run is known to have stopped (or to the end), each run to its own horizon.
    ok = np.isfinite(gnorm)
    rec_bad = ~ok | (gnorm > div[:, None])
    rec_good = (gnorm <= thr[:, None]) & ok if tol is not None else np.zeros_like(rec_bad)
    rec_stop = np.where((rec_bad | rec_good).any(axis=1), rec[(rec_bad | rec_good).argmax(axis=1)], steps)
    need_scan = np.broadcast_to((tol is not None) | rec_bad.any(axis=1), (R,))
    found = ~need_scan.copy()
    k0, width = 0, 64
    budget = 1 << 21  # (run, step, mode) elements per slab: a bounded working set whatever the horizon
    while True:
        live = np.flatnonzero(~found & (rec_stop >= k0))
        if live.size == 0:
            break
        # slabs double in length, so a run that stops early is not carried through a long slab, and the
        # steps evaluated stay within twice the horizon
        k1 = min(int(rec_stop[live].max()), k0 + max(64, min(width, budget // (live.size * problem.n))) - 1)
        width *= 2
        ks = np.arange(k0, k1 + 1)
        _, gn = plan.values(ks, rows=live, want_gap=False)
        fg, fb = _first_stop(gn.T, k0, thr[live], div[live], tol is not None)
        conv, dive = _classify(fg, fb)
        to_tol[live[conv]] = fg[conv]
        stop[live[conv]] = fg[conv]
        status[live[conv]] = "converged"
        stop[live[dive]] = fb[dive]
        status[live[dive]] = "diverged"
        found[live[conv | dive]] = True
        k0 = k1 + 1
    # a recorded crossing that the scan missed (the value sits within rounding of the threshold, and the
    # scan's products were summed in another order) stops the run at that recorded step
    missed = np.flatnonzero(~found & (rec_stop < steps))
    for r in missed:
        j = int(np.searchsorted(rec, rec_stop[r]))
        stop[r] = rec_stop[r]
        if rec_bad[r, j]:
            status[r] = "diverged"
        else:
            to_tol[r] = rec_stop[r]
            status[r] = "converged"
    return gap, gnorm, to_tol, stop, status.astype(str)
