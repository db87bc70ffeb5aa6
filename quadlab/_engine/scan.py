"""The compiled multi-step iterate path: a whole batch of runs from start to finish in one numba loop.

The runner's numpy iterate path returns to Python every step (about 13 µs of interpreter work per step,
which dominates on the paper's small problems).  Here one compiled call advances every run of the batch
through many steps, checks tolerance and divergence at every step and keeps the recorded steps' iterates,
so Python only runs between *pauses*: when the window of recorded iterates is full, when the Adam family's
table of per-step scalars needs its next 4096 steps, or when a stopping test is too close to call (below).

What is the same as the numpy path, bit for bit
    The error e_k = w_k − w* and gradient g_k = H e_k of every run.  The product is summed over j in the
    order of :func:`quadlab._engine.ordered.matmul`, g_i = (…(e_0 H_{0i} + e_1 H_{1i}) + …) + e_{d−1} H_{d−1,i},
    every product rounded before it is added; each optimizer's update applies the numpy path's IEEE operations
    in its order (``quadlab.optim``); Adam-mini's block mean is the block's d squares added in turn, divided
    by d (``Layout.block_mean``, :func:`quadlab._engine.ordered.sum_last`); the Adam family's s_t, e_t are
    :class:`quadlab.optim.AdamScalars`' own float64 values.  numba compiles with ``fastmath`` off, so LLVM
    does not contract a·b + c into a fused multiply-add (``tests/test_scan.py`` also reads the machine code).

The recorded values and the stopping test, exactly
    The numpy path measures ‖g‖² and eᵀg with ``Layout.rowdot`` (each block's terms in turn, then the
    blocks, then the groups: :func:`quadlab._engine.ordered.block_dot`), and its thresholds are
    :func:`quadlab._engine.runargs.thresholds`, which this module calls too.  The recorded f − f* = ½ eᵀg and
    ‖g‖ are computed by ``rowdot`` itself on the recorded iterates, which the kernel copies out at the
    recorded steps: the same bits by construction.  The per-step test (‖g_k‖ ≤ tol·‖g_0‖ converged;
    ‖g_k‖ > 10⁶‖g_0‖ or non-finite: diverged) uses the kernel's own sum s = Σ g_i², summed in an order of its
    own (four partial sums on large blocks; the step's running total elsewhere), which is cheaper inside the
    loop than rowdot's order and need not match it: any two summation orders of the n non-negative terms g_i²
    differ by at most 2γ_{n+1}·s, γ_m = m·u/(1 − m·u), u = 2⁻⁵³ (Higham, Accuracy and Stability of Numerical
    Algorithms, §3.1; a fused multiply-add only tightens it), so with q = √s the numpy path's norm lies in
    [q(1 − δ) − a, q(1 + δ) + a], δ = 4(n + 2)u (a covers underflow: a = 2√(n·2⁻¹⁰⁷⁴)).  A run whose
    thresholds fall outside that interval is decided by the kernel; otherwise (or when q is not finite) the
    kernel pauses and the runner's own ``rowdot`` decides, so steps_to_tol, stop_step and status are always
    the numpy path's.

Layout and threads
    Small blocks (every d_b < 8): run-minor (n, R) arrays, run r's coordinates in the runner's layout order
    (group by group, block by block) down column r; each step's update is one loop over the flat arrays with
    the per-run values spread over the coordinates (``scan_jit.update_flat``), the product and norm loop over
    the runs innermost, so everything vectorises across runs and no run's sum is reordered.  Larger blocks:
    run-major (R, n), the product swept eight rows of H_b and two runs at a time (four and four for d_b > 64),
    the loop over i vectorised (the order of :func:`quadlab._engine.kernels.matmul_rows`).  With enough work
    the runs are split into one chunk per thread, each its own compiled loop on its own copies (no per-step
    synchronisation); a run's arithmetic never depends on its chunk, so the split changes no bit.  A run that
    stops is swapped with the last live run, so the batch shrinks without copying it.

Stages
    A :class:`Batch` keeps the loop's state between calls: ``advance(k)`` takes every live run to step k and
    ``result()`` reads what a run with ``steps = k`` returns; a later ``advance`` continues the same runs, bit
    for bit as one run straight through (the learning-rate search's race, :mod:`quadlab.tune`).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import kernels, ordered
from .adam_rule import scalar_tables
from .runargs import thresholds

__all__ = ["eligible", "run", "KINDS", "ENABLED"]

#: set False (or QUADLAB_SCAN=0 in the environment) to keep the runner on its numpy step loop
ENABLED = True

#: optimizer name → the kernel's update rule (0 GD-kind, 1 heavy ball, 2 Nesterov, 3 Adam/RMSprop, 4 Adam-mini)
KINDS = {"gd": 0, "jacobi_gd": 0, "blockwise_gd": 0, "adam_theory": 0, "heavy_ball": 1, "nesterov": 2,
         "adam": 3, "rmsprop": 3, "adam_mini": 4}
_GD, _HB, _NESTEROV, _ADAM, _MINI = 0, 1, 2, 3, 4
_PAUSE_WINDOW, _PAUSE_TABLE, _PAUSE_AMBIG, _DONE = 1, 2, 3, 4
_TABLE = 4096  # steps of Adam scalars per table (16 of AdamScalars' 256-step fills)
_WINDOW_BYTES = 16 << 20  # recorded iterates (e and g) held before the runner reduces them
_LARGE = 8  # block size from which the run-major kernel is used (its loops run over a block's coordinates)
# runs × (Σ d_b² + n) × steps from which the runs split into one batch per thread.  Open problem: after a
# split, numba's OpenMP parallel regions that the main thread runs later (the closed form's product) were
# measured 10× slower in one sequence (`quadlab readings --quick` after sampled_spectrum calls in the same
# process: 191 s, 44 s unsplit); without the split, the full case1_4 took 216 s against 35 s with it
_SPLIT_WORK = 1 << 24
_EPS = 2.0 ** -53
_FLAT_MAX = 1 << 20  # run × coordinate elements up to which the small-block update takes the flat loop
_BAND = 4.0  # δ = _BAND·(n + 2)·u, the relative half-width of the band around the kernel's norm


_RULE_MODULES = ("quadlab.optim", "quadlab._engine.adam_rule")


def eligible(problem, optimizer, noise=None) -> bool:
    """True when :func:`run` reproduces the numpy path for this batch: numpy backend in float64, numba
    available (:func:`quadlab._engine.kernels.available`), an optimizer of ``quadlab.optim`` that has an
    iterate rule here (every one of them; Adam-mini on block-diagonal problems), exact gradients, and the
    scan enabled (``ENABLED``, ``QUADLAB_SCAN`` not "0")."""
    if not ENABLED or os.environ.get("QUADLAB_SCAN", "1") == "0":
        return False
    if problem.backend.name != "numpy" or np.dtype(problem.dtype) != np.float64 or not kernels.available():
        return False
    # every callback a rule of quadlab.optim (the Adam family's are bound methods of its AdamRule): a user's
    # Optimizer that shares a name, or one with a replaced init or update, runs the numpy loop
    callbacks = (optimizer.init, optimizer.update, optimizer.step, optimizer.linear)
    if optimizer.name not in KINDS or not all(f is None or getattr(f, "__module__", "") in _RULE_MODULES
                                              for f in callbacks):
        return False
    if noise is not None:  # the compiled loop has no noise model
        return False
    if problem._diag is None and not all(isinstance(g.H, np.ndarray) for g in problem.groups):
        return False
    if optimizer.name == "adam_mini" and not (problem.is_block_diagonal and problem._diag is None):
        return False  # a globally rotated problem averages nominal blocks that are not layout rows
    return True


@functools.cache
def _kernel():
    """The compiled loop (:mod:`quadlab._engine.scan_jit`, imported on first use: numba is optional)."""
    if kernels._numba() is None:
        raise ImportError("quadlab's compiled scan needs numba: pip install 'quadlab[fast]' (or numba>=0.60)")
    from . import scan_jit

    return scan_jit.scan


# -- the host side ----------------------------------------------------------------------------------------
class _Blocks:
    """The problem's blocks in the runner's layout order: coordinate offsets, H_b flattened row-major."""

    def __init__(self, problem, lay):
        if problem._diag is not None:
            self.diag = True
            self.Hdiag = np.ascontiguousarray(lay._diag.reshape(-1), dtype=np.float64)
            self.perm = np.arange(problem.n)
            sizes = [problem.n]
            self.Hflat = np.zeros(1)
            self.hoff = np.zeros(1, dtype=np.int64)
        else:
            self.diag = False
            self.Hdiag = np.zeros(1)
            self.perm = np.concatenate([g.coords for g in problem.groups])
            sizes = [g.size for g in problem.groups for _ in range(g.k)]
            self.Hflat = np.concatenate([np.ascontiguousarray(g.H, dtype=np.float64).reshape(-1)
                                         for g in problem.groups])
            self.hoff = np.concatenate([[0], np.cumsum(np.square(sizes))[:-1]]).astype(np.int64)
        self.boff = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.sq = int(np.sum(np.square(sizes)))
        self.dmax = int(max(sizes))
        # each group's coordinates in the run-major rows, for rowdot in the runner's layout
        self.groups = [(0, 1, problem.n)] if self.diag else []
        o = 0
        for g in problem.groups:
            self.groups.append((o, g.k, g.size))
            o += g.k * g.size

    def tree(self, A):
        """Run-major rows (M, n) → the layout's tuple of (k, M, d) views."""
        M = A.shape[0]
        return tuple(A[:, o:o + k * d].reshape(M, k, d).transpose(1, 0, 2) for o, k, d in self.groups)


def _merge_rows(tree):
    """The layout's (k, R, d) leaves → run-major rows (R, n) in layout order."""
    return np.concatenate([np.transpose(X, (1, 0, 2)).reshape(X.shape[1], -1) for X in tree], axis=1)


#: recent tables, by (β1, β2, ε of each distinct run, bias correction, first step, steps): a learning-rate search
#: runs the same (β1, β2, ε) over and over, and a small batch's whole run costs only a few tables' time (the
#: 64 most recently made are kept: first in, first out)
_TABLES: dict = {}
_TABLES_LOCK = threading.Lock()


def _cached_tables(scalars, t_lo: int, count: int):
    """:func:`_adam_tables`, remembered (read-only arrays; the 64 most recently made kept)."""
    key = (scalars.values.tobytes(), scalars.values.shape, bool(scalars.bias_correction), t_lo, count)
    hit = _TABLES.get(key)
    if hit is None:
        hit = _adam_tables(scalars, t_lo, count)
        for a in hit:
            a.setflags(write=False)
        with _TABLES_LOCK:
            if len(_TABLES) >= 64:
                _TABLES.pop(next(iter(_TABLES)))
            _TABLES[key] = hit
    return hit


def _adam_tables(scalars, t_lo: int, count: int):
    """s_t, e_t for t = t_lo … t_lo + count − 1, every run's (β1, β2, ε) a column: the numpy path's values,
    from the one source :func:`quadlab._engine.adam_rule.scalar_tables` (without the numpy path's conversion
    to Python lists, which costs more than the arithmetic)."""
    return scalar_tables(scalars.values, t_lo, count, scalars.bias_correction)


def run(problem, opt, ctx, lay, G0_tree, E0, rec, steps: int, tol, divergence: float):
    """Run every configuration × seed of ``opt`` on ``problem`` in the compiled loop.

    ``ctx`` is the runner's context (per-run hyperparameters ``host_hp``, its learning-rate rules), ``lay`` its
    layout and ``G0_tree`` the first gradient it computed in that layout, ``E0`` (R, n) the starting errors
    (host float64, problem coordinates), ``rec`` the recorded steps, ``divergence`` the runner's
    DIVERGENCE_FACTOR.  Returns what the runner's numpy loop
    returns: (gap (R, T), grad_norm (R, T), steps_to_tol, stop_step, status) with the same values."""
    batch = Batch(problem, opt, ctx, lay, G0_tree, E0, rec, steps, tol, divergence)
    batch.advance(steps)
    return batch.result()


class Batch:
    """The runs of :func:`run`, advanced in stages: ``advance(k)`` takes every live run to step k (and no
    further), ``result()`` reads what :func:`run` with ``steps = k`` would return, except that the recorded
    steps are all of ``rec`` up to k.  A run continued from a stage takes the same steps, bit for bit, as one
    run straight through (the state is the loop's own, kept between the calls)."""

    def __init__(self, problem, opt, ctx, lay, G0_tree, E0, rec, steps: int, tol, divergence: float):
        from ..optim import AdamScalars  # the methods layer sits above this module; imported when used

        R, n = E0.shape
        kind = KINDS[opt.name]
        blk = _Blocks(problem, lay)
        host = ctx.host_hp
        ones = np.ones(R)
        E = np.ascontiguousarray(E0[:, blk.perm])
        G = np.ascontiguousarray(_merge_rows(G0_tree))
        dummy = np.zeros((1, 1))
        M, V, P, pmode, use_m = dummy, dummy, dummy, 0, False
        mom, b2, which = np.zeros(R), np.zeros(R), np.zeros(R, dtype=np.int64)
        scalars = None
        if kind == _GD:
            if opt.name == "adam_theory":
                ctx.require_nonzero_g0()
                P, pmode = 1.0 / np.abs(G), 2
            elif opt.name == "jacobi_gd":
                P, pmode = np.ascontiguousarray((1.0 / ctx.host_diag())[blk.perm][None, :]), 1
            elif opt.name == "blockwise_gd":
                steps_b = ctx.block_steps(opt.options)
                P, pmode = np.ascontiguousarray(np.repeat(np.asarray(steps_b, dtype=np.float64), problem.block_sizes)
                                                [blk.perm][None, :]), 1
            lr = np.array(ctx.lr(opt.options), dtype=np.float64) * ones
        elif kind in (_HB, _NESTEROV):
            lr, mom = host["lr"] * ones, host["momentum"] * ones
            M, use_m = np.zeros((R, n)), True
        else:
            lr, mom, b2 = host["lr"] * ones, host["b1"] * ones, host["b2"] * ones
            use_m = not bool((host["b1"] == 0).all())  # as the numpy path: no stored m when every β1 is 0
            M = np.zeros((R, n)) if use_m else dummy
            V = np.zeros((R, n if kind == _ADAM else blk.boff.size - 1))
            scalars = AdamScalars(host["b1"], host["b2"], host["eps"], opt.options["bias_correction"])
            which = np.ascontiguousarray(scalars.which, dtype=np.int64)
        lr, mom, b2 = (np.ascontiguousarray(x, dtype=np.float64) for x in (lr, mom, b2))
        thr, div = thresholds(lay, ctx.g0_host, tol, divergence)  # the numpy path's thresholds, one definition
        T = rec.size
        self.gap, self.gnorm = np.full((R, T), np.nan), np.full((R, T), np.nan)
        self.stop = np.full(R, steps, dtype=np.int64)
        self.status = np.zeros(R, dtype=np.int64)
        self.to_tol = np.full(R, -1, dtype=np.int64)
        self.k, self.steps = 0, steps
        large = not blk.diag and blk.dmax >= _LARGE
        tables = _Tables(scalars, steps)
        common = (kind, use_m, pmode, large, tol is not None, blk, lay, rec, tables, dummy, n)
        arrays = (E, G, M, V, P, lr, mom, b2, which, thr, div)
        # Enough work: the runs split into one independent batch per thread, each its own compiled loop (no
        # per-step synchronisation, which costs far more than it saves on a shared machine); a run's arithmetic
        # does not depend on its batch, so the split changes no bit.  Small blocks keep ≥ 16 runs per batch: the
        # loops over runs vectorise 16 at a time (8 lanes, twice), and 8 runs alone take the slower remainder
        # path (Case 3, Adam: 510 ns per step for 8 runs, 420 ns for 16); large blocks read H once per step per
        # batch.
        chunks = 1 if R * (blk.sq + n) * steps < _SPLIT_WORK else min(_threads(), R if large else R // 16)
        bounds = np.linspace(0, R, max(chunks, 1) + 1).round().astype(int)
        outs = (self.gap, self.gnorm, self.stop, self.status, self.to_tol)
        self.chunks = [_Chunk(common, arrays, outs, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]

    def advance(self, k: int) -> None:
        """Every live run to step k, from the step reached to the batch's ``steps`` (ValueError outside)."""
        if not self.k <= k <= self.steps:
            raise ValueError(f"a batch at step {self.k} of {self.steps} cannot advance to step {k}")
        if len(self.chunks) == 1:
            self.chunks[0].advance(k)
        else:
            with ThreadPoolExecutor(len(self.chunks)) as pool:
                for f in [pool.submit(_quietly, c.advance, k) for c in self.chunks]:
                    f.result()
        self.k = k

    def result(self):
        """(gap, grad_norm, steps_to_tol, stop_step, status) at the step reached: a run still live stopped
        there (max_steps)."""
        names = np.array(["max_steps", "converged", "diverged"])
        stop = np.where(self.status == 0, self.k, self.stop)
        return self.gap, self.gnorm, self.to_tol, stop, names[self.status]


def _threads() -> int:
    """The calling thread's numba thread count (``numba.set_num_threads``; a dask worker that owns one core
    sets 1, see :mod:`quadlab.dist`)."""
    numba = kernels._numba()
    return max(1, int(numba.get_num_threads()) if numba is not None else 1)


class _Tables:
    """The Adam family's (s_t, e_t) in tables of 4096 steps, shared by the threads (filled under a lock,
    since :class:`~quadlab.optim.AdamScalars` fills itself in place)."""

    def __init__(self, scalars, steps: int):
        self.scalars, self.steps = scalars, steps
        self.lock = threading.Lock()
        self.cache = {}

    def at(self, t_lo: int):
        """(t_hi, s table, e table) for t_lo ≤ t < t_hi; t_lo ≡ 1 (mod 256)."""
        if self.scalars is None:
            return self.steps + 2, None, None
        with self.lock:
            if t_lo not in self.cache:
                count = min(_TABLE, -(-(self.steps + 1 - t_lo) // self.scalars.block) * self.scalars.block)
                self.cache[t_lo] = (t_lo + count, *_cached_tables(self.scalars, t_lo, count))
            return self.cache[t_lo]


def _fast_bounds(thr, div, band, tol_on: bool):
    """Per run, (lo2, hi2) such that lo2 < s ≤ hi2 for the kernel's squared norm s implies, through the
    kernel's own floating-point test (q = √s, q(1 − δ) − a > thr and q(1 + δ) + a ≤ div), that the run
    neither converged nor diverged: the kernel then skips the square root and the band.  The squared
    thresholds are moved inwards by 2⁻⁴⁸ (about 30 ulps), more than the dozen roundings between s and those
    comparisons; runs whose thresholds are within a factor 2³⁰ of a (underflow scale) never take the short
    cut.  Where it is taken, the full test gives the same answer, so no result depends on it."""
    delta, a = band
    up, down = 1.0 + 2.0 ** -48, 1.0 - 2.0 ** -48
    with np.errstate(over="ignore", invalid="ignore"):
        hi2 = np.where(div > a * 2.0 ** 30, np.square((div - a) / (1.0 + delta)) * down, -1.0)
        if tol_on:
            lo2 = np.where(thr > a * 2.0 ** 30, np.square((thr + a) / (1.0 - delta)) * up, np.inf)
        else:
            lo2 = np.full(thr.shape, -1.0)
    hi2 = np.where(np.isfinite(hi2), hi2, -1.0)  # div beyond the float range: the full test decides
    return np.ascontiguousarray(lo2, dtype=np.float64), np.ascontiguousarray(hi2, dtype=np.float64)


def _quietly(fn, *args) -> None:
    # numpy's error state is per thread: a worker thread takes the runner's (overflow in a diverging run is
    # reported through its status, not as a warning)
    with np.errstate(all="ignore"):
        fn(*args)


class _Chunk:
    """Runs a..b−1 of a :class:`Batch`: the compiled loop, and between its pauses the runner's ``rowdot`` on
    the recorded iterates, the next table of Adam scalars, or the exact test of a run too close to call."""

    def __init__(self, common, arrays, outs, a: int, b: int):
        kind, use_m, pmode, large, tol_on, blk, lay, rec, tables, dummy, n = common
        # every array the loop writes is this chunk's own copy: views of the shared arrays put two threads'
        # rows on one cache line, which both then write every step.  The placeholder too: the loop passes it to
        # a function for every run and step, and numba counts references to it there with atomic writes, which
        # two threads sharing one placeholder contend for.  Case 1, 16 runs: the split over two threads was
        # 1.29x one thread's speed, now 1.89x (medians of 9)
        shared = dummy
        dummy = np.zeros((1, 1))
        E, G, M, V, P, lr, mom, b2, which, thr, div = (
            dummy if x is shared else np.array(x if x.ndim == 2 and x.shape[0] == 1 else x[a:b], copy=True)
            for x in arrays)
        gap, gnorm, stop_all, status_all, to_tol_all = outs
        self.outs = (stop_all, status_all, to_tol_all)
        stop, status, to_tol = (np.array(x[a:b], copy=True) for x in self.outs)
        R = b - a
        if not large:  # run-minor (n, R): every loop of the small-block kernel vectorises across runs
            E, G, M, V, P = (np.ascontiguousarray(A.T) if A is not dummy else A for A in (E, G, M, V, P))
        # the kernel's first squared norms (any order lies within the band; this one is fixed, so the loop's
        # path, not only its results, is the same on every machine)
        rows = G if large else G.T
        s2 = np.ascontiguousarray(ordered.block_dot(np, rows[None], rows[None]))
        band = np.array([_BAND * (n + 2) * _EPS, 2.0 * math.sqrt(n * 2.0 ** -1074)])
        lo2, hi2 = _fast_bounds(thr, div, band, tol_on)
        W = int(max(1, min(rec.size, _WINDOW_BYTES // max(1, 16 * R * n))))
        self.snapE, self.snapG = np.zeros((W, R, n)), np.zeros((W, R, n))
        self.t_lo = 1
        self.t_hi, tab_s, tab_e = tables.at(self.t_lo)
        self.tabs = (dummy, dummy) if tab_s is None else (tab_s, tab_e)
        self.arrays = [E, G, M, V, P, blk.Hflat, blk.hoff, blk.boff, blk.Hdiag, lr, mom, b2, which, thr, div,
                       np.arange(R, dtype=np.int64), np.zeros(R, dtype=np.int64), s2, np.zeros(R), np.zeros(R),
                       rec, self.snapE, self.snapG]
        # the small-block update's per-run values spread over every coordinate (scan_jit.update_flat), where
        # that costs at most 6·2²⁰ numbers (48 MB; a large diagonal problem keeps the loop over coordinates)
        X = np.zeros((6, n * R)) if not large and n * R <= _FLAT_MAX else dummy
        self.own = (stop, status, to_tol, band, lo2, hi2, X)
        self.flags = (kind, use_m, pmode, large, blk.diag, tol_on)
        self.blk, self.lay, self.tables, self.gap, self.gnorm = blk, lay, tables, gap, gnorm
        self.a, self.b, self.n, self.R = a, b, n, R
        self.k, self.phase, self.Rc, self.jrec, self.j_lo = 0, 0, R, 0, 0

    def drain(self) -> None:
        """f − f* and ‖∇f‖ of the recorded iterates in the window, by the runner's rowdot; the window empties."""
        m, R, n, blk = self.jrec - self.j_lo, self.R, self.n, self.blk
        if m > 0:
            te = blk.tree(self.snapE[:m].reshape(m * R, n))
            tg = blk.tree(self.snapG[:m].reshape(m * R, n))
            self.gap[self.a:self.b, self.j_lo:self.jrec] = (0.5 * self.lay.rowdot(te, tg)).reshape(m, R).T
            self.gnorm[self.a:self.b, self.j_lo:self.jrec] = np.sqrt(self.lay.rowdot(tg, tg)).reshape(m, R).T
        self.j_lo = self.jrec

    def advance(self, steps: int) -> None:
        """Every live run of the chunk to step ``steps``; its stops and recorded values into the batch's."""
        kern = _kernel()
        G, thr, div = self.arrays[1], self.arrays[13], self.arrays[14]
        dec = self.arrays[16]
        large, tol_on = self.flags[3], self.flags[5]
        while True:
            ints = np.array([*self.flags, self.k, steps, self.phase, self.Rc, self.jrec, self.j_lo, self.t_lo,
                             self.t_hi], dtype=np.int64)
            self.k, why, self.Rc, self.jrec = kern(ints, *self.arrays, *self.tabs, *self.own)
            if why == _DONE:
                self.phase = 2  # this step's test is done: a later advance takes the next step
                break
            if why == _PAUSE_WINDOW:
                self.drain()
                self.phase = 0
            elif why == _PAUSE_TABLE:
                self.t_lo = self.t_hi
                self.t_hi, tab_s, tab_e = self.tables.at(self.t_lo)
                self.tabs = (tab_s, tab_e)
                self.phase = 2
            else:  # too close to call: the numpy path's own norm decides every live run at this step
                Rc = self.Rc
                live = G[:Rc] if large else G[:, :Rc].T
                norms = np.sqrt(self.lay.rowdot(*(self.blk.tree(live),) * 2))
                bad = ~np.isfinite(norms) | (norms > div[:Rc])
                good = (norms <= thr[:Rc]) & ~bad if tol_on else np.zeros(Rc, dtype=bool)
                dec[:Rc] = np.where(bad, 2, np.where(good, 1, 0))
                self.phase = 1
        self.drain()
        for out, own in zip(self.outs, self.own[:3], strict=True):
            out[self.a:self.b] = own
