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

from . import noise as noise_models
from ._engine import adam_rule, closed_form, kernels, portable, scan, stop_search
from ._engine.context import RunContext, hyperparameter
from ._engine.layout import Layout, tmap
from ._engine.runargs import check_seeds as _check_seeds
from ._engine.runargs import check_steps as _check_steps
from ._engine.runargs import starts as _starts
from ._engine.runargs import thresholds as _thresholds
from .backend import check_memory
from .optim import Optimizer

__all__ = ["run", "Result", "record_steps", "STATUSES", "DIVERGENCE_FACTOR"]

STATUSES = ("converged", "max_steps", "diverged")
DIVERGENCE_FACTOR = 1e6  # ‖∇f(w_k)‖ > 1e6·‖∇f(w_0)‖ (or non-finite) flags a run as diverged
INPLACE = True  # numpy runs update their arrays in place; False forces the functional path (for tests)


@dataclass(frozen=True, eq=False)
class Result:
    """What a batch of runs did (returned by :func:`run`).

    Attributes
    ----------
    steps : numpy.ndarray
        (T,) recorded iteration indices k (0 is the start).
    gap : numpy.ndarray
        (R, T) f(w_k) − f*; NaN after a run stopped (converged or diverged).
    grad_norm : numpy.ndarray
        (R, T) ‖∇f(w_k)‖; NaN after a run stopped.
    steps_to_tol : numpy.ndarray
        (R,) first k with ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖, −1 where never (or tol is None).
    stop_step : numpy.ndarray
        (R,) the step at which the run stopped (steps_to_tol, the divergence step, or n_steps).
    status : numpy.ndarray
        (R,) "converged" | "max_steps" (ran every step) | "diverged".
    config : dict of str to numpy.ndarray
        Name → (R,) hyperparameters of each run, with "seed".
    w0 : numpy.ndarray
        (R, n) starting points (host float64).
    noise : dict or None
        The noise model's ``describe()`` (None: exact gradients); see :mod:`quadlab.noise`.
    optimizer, options, method, backend, dtype, tol, n_steps
        What ran: the optimizer's name and options, "iterate" or "closed_form", the backend and dtype,
        the tolerance and the step cap.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
    >>> res = quadlab.run(prob, optim.gd(lr=[1e-2, 1.0]), seeds=[0, 1], steps=50)
    >>> res.n_runs, res.gap.shape == (4, res.steps.size), res.status.tolist()
    (4, True, ['max_steps', 'max_steps', 'diverged', 'diverged'])
    >>> res.config["seed"].tolist(), res.diverged.tolist()
    ([0, 1, 0, 1], [False, False, True, True])
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
    noise: dict | None = None  # the noise model's description (NoiseModel.describe()), None for exact gradients

    @property
    def n_runs(self) -> int:
        """R, the number of runs (configurations × seeds)."""
        return int(self.status.size)

    @property
    def grad_norm0(self) -> np.ndarray:
        """(R,) ‖∇f(w_0)‖, or NaN where step 0 was not recorded."""
        return self.grad_norm[:, 0] if self.steps[0] == 0 else np.full(self.n_runs, np.nan)

    @property
    def diverged(self) -> np.ndarray:
        """(R,) bool: the run was flagged diverged."""
        return self.status == "diverged"

    @property
    def converged(self) -> np.ndarray:
        """(R,) bool: the run reached the tolerance."""
        return self.status == "converged"

    def final(self, what: str = "grad_norm") -> np.ndarray:
        """The last finite recorded value of each run.

        Parameters
        ----------
        what : {"grad_norm", "gap"}
            Which record.

        Returns
        -------
        numpy.ndarray
            (R,) float64: the value at the last recorded step where it is finite; NaN where none is.

        Raises
        ------
        ValueError
            If ``what`` is not "grad_norm" or "gap".

        Examples
        --------
        >>> import quadlab
        >>> from quadlab import optim
        >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
        >>> res = quadlab.run(prob, optim.gd(lr=0.01), steps=100, tol=0.5)
        >>> bool(res.final() <= 0.5 * res.grad_norm0)
        True
        """
        if what not in ("grad_norm", "gap"):
            raise ValueError(f"what must be 'grad_norm' or 'gap', got {what!r}")
        return _last_finite(getattr(self, what))

    def to_frame(self):
        """The runs as a tidy table, one row per run.

        Returns
        -------
        pandas.DataFrame
            The rows of :func:`quadlab.results.result_rows`: hyperparameters, seed, status, steps to tolerance,
            final ‖∇f‖ and f − f*.

        Raises
        ------
        ImportError
            When pandas is missing (it comes with ``pip install "quadlab[dist]"``).
        """
        from .results import _pandas, result_rows

        return _pandas().DataFrame(result_rows(self))

    def summary(self) -> str:
        """A table with one line per run.

        Returns
        -------
        str
            A header, then per run its hyperparameters and seed, status, steps to tolerance (−1: never) and
            final ‖∇f‖.

        Examples
        --------
        >>> import quadlab
        >>> from quadlab import optim
        >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
        >>> print(quadlab.run(prob, optim.gd(lr=1.0), steps=10).summary().splitlines()[1].split()[:3])
        ['1', '0', 'diverged']
        """
        names = list(self.config)
        head = "  ".join(f"{k:>10}" for k in names) + f"  {'status':>10}  {'to_tol':>8}  {'final |g|':>10}"
        rows = [head]
        fin = self.final()
        for r in range(self.n_runs):
            vals = "  ".join(f"{self.config[k][r]:>10.4g}" for k in names)
            rows.append(f"{vals}  {self.status[r]:>10}  {self.steps_to_tol[r]:>8d}  {fin[r]:>10.3e}")
        return "\n".join(rows)


def _last_finite(a: np.ndarray) -> np.ndarray:
    """Per row of a (R, T) record, its last finite value (NaN where none is)."""
    out = np.full(a.shape[0], np.nan)
    for r in range(a.shape[0]):
        ok = np.flatnonzero(np.isfinite(a[r]))
        if ok.size:
            out[r] = a[r, ok[-1]]
    return out


def record_steps(record, steps: int) -> np.ndarray:
    """The steps at which :func:`run` records f − f* and ‖∇f‖.

    Parameters
    ----------
    record : "log", "all" or array_like of int
        "log": about 200 log-spaced steps, 0 and ``steps`` included; "all": every step; or the steps.
    steps : int
        The last step of the runs.

    Returns
    -------
    numpy.ndarray
        Sorted unique int64 steps in [0, ``steps``].

    Raises
    ------
    ValueError
        If ``record`` is another string, or the given steps are not a non-empty 1-D integer array within
        [0, ``steps``].

    Examples
    --------
    >>> from quadlab.runner import record_steps
    >>> record_steps("log", 10).tolist()
    [0, 1, 2, 3, 4, 5, 6, 8, 10]
    >>> record_steps([5, 0, 5], 10).tolist()
    [0, 5]
    """
    if isinstance(record, str):
        if record == "log":
            # portable.geomspace: which steps are recorded must not depend on the CPU's SIMD kernels
            ks = np.unique(np.round(portable.geomspace(1, steps, min(steps, 200))).astype(np.int64))
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


#: bytes per (run × coordinate) of the iterate path's working set: e, g, the optimizer's state (Adam: m, v,
#: a scratch buffer and the per-run lr) and the starting points on the host, each 8 bytes
_ITERATE_BYTES = 8 * 8


def _check_size(problem, R: int, T: int, optimizer, use_closed: bool, noisy: bool = False) -> None:
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
        if noisy:  # the noisy gradient, the host chunk of draws and the square root of H
            root = sum(d * d for d in problem.block_sizes) if problem.is_block_diagonal else n * n
            need += 8 * (R * n + noise_models.Stream.budget + root)
    check_memory(need, f"{R} runs of dimension {n} with {T} recorded steps",
                 "use fewer configurations or seeds per call, a sparser record=, or smaller blocks")


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
    noise=None,
) -> Result:
    """Run every configuration of ``optimizer`` from every start on ``problem``.

    R = C·S runs (C configurations of the optimizer's grid × S seeds, run r = c·S + s) as one array
    program, each stopped at its first k with ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖ or flagged diverged when
    ‖∇f(w_k)‖ > 10⁶‖∇f(w_0)‖ or non-finite.  The linear methods are evaluated in closed form unless
    ``method="iterate"``.  A run gives the same bits alone or in any batch.

    Parameters
    ----------
    problem : BlockQuadratic
        The quadratic f(w) = ½wᵀHw − hᵀw.
    optimizer : Optimizer
        Built by :mod:`quadlab.optim`; its grid gives the C configurations.
    w0 : None or array_like
        None: seed s starts at w* + ξ, ξ ~ N(0, I) from ``numpy.random.default_rng(s)``; or one point (n,)
        shared by every run, or one per run (R, n).
    seeds : sequence of int, optional
        Non-negative seeds of the starts (default [0]).
    steps : int
        Iterations per run (≥ 1).
    tol : float or None
        Relative gradient tolerance in (0, 1); None runs every step.
    record : "log", "all" or array_like of int
        Where f − f* and ‖∇f‖ are kept (:func:`record_steps`).
    method : {"auto", "iterate", "closed_form", "gpu_scan"}
        "auto": the closed form for the linear methods, iteration otherwise.  "gpu_scan" (opt-in): the whole
        iteration in one kernel launch for small problems (:mod:`quadlab._engine.gpu_scan`; on a numpy problem
        its host emulation); no noise.
    check_every : int, optional
        Iterate path only: steps between host reads of the convergence test.  Default: 16 (64 on a GPU)
        while k < 8·16, then k/8 up to 256 (1024 on a GPU), so that the checks cost nothing per step on long
        runs while a run that stops is carried at most 1/8 of its steps further.  A stopped run is detected
        exactly either way; its extra steps are discarded.
    noise : None or a model of :mod:`quadlab.noise`
        The optimizer then sees g_k = ∇f(w_k) + ξ_k, ξ_k drawn from the run's seed (common random numbers:
        every configuration with seed s sees the same ξ_k).  The tolerance, the divergence test and the
        recorded f − f*, ‖∇f‖ use the true gradient.  Runs iterate (no closed form; ``method="auto"``
        iterates) and never take a fused compiled step.  With a single given ``w0``, ``seeds`` draw the noise.

    Returns
    -------
    Result
        Recorded gaps and gradient norms, steps to tolerance, stop steps and statuses, per run.

    Raises
    ------
    ValueError
        If an argument is invalid (optimizer, steps, tol, method, seeds, w0's shape or values), the
        optimizer has no closed form and ``method="closed_form"``, the Adam theory form meets a zero entry
        of ∇f(w_0), or the batch cannot fit in memory (a message says how to shrink it).

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
    >>> res = quadlab.run(prob, optim.adam(lr=[1e-2, 1e-1]), seeds=[0, 1, 2], steps=3000, tol=1e-6)
    >>> res.n_runs, res.method, res.status.tolist().count("converged")
    (6, 'iterate', 6)
    """
    steps, noise = _check_args(optimizer, steps, tol, method, noise)
    if method == "gpu_scan":
        from ._engine import gpu_scan

        return gpu_scan.run(problem, optimizer, w0, seeds, steps, tol, record)
    seeds = _check_seeds(seeds)
    if w0 is not None and len(seeds) > 1 and np.ndim(w0) == 1 and noise is None:
        raise ValueError("seeds only draw starting points; with a single given w0 leave seeds at its default")
    config, E0 = _configs(problem, optimizer, w0, seeds)
    R = E0.shape[0]
    rec = record_steps(record, steps)
    use_closed = optimizer.is_linear and method != "iterate" and noise is None
    _check_size(problem, R, rec.size, optimizer, use_closed, noise is not None)
    b = problem.backend
    # Overflow in a diverging run is expected and reported through its status, not as warnings.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if use_closed:
            out = _run_closed(problem, optimizer, config, E0, rec, steps, tol)
        else:
            cadence = (check_every, check_every) if check_every else ((64, 1024) if b.is_gpu else (16, 256))
            out = _run_iterate(problem, optimizer, config, E0, rec, steps, tol, cadence, noise)
    gap, gnorm, to_tol, stop, status = out
    # values after a run stopped are not part of its trajectory
    after = rec[None, :] > stop[:, None]
    gap[after] = np.nan
    gnorm[after] = np.nan
    return Result(
        steps=rec, gap=gap, grad_norm=gnorm, steps_to_tol=to_tol, stop_step=stop, status=status,
        config=config, w0=E0 + problem.optimum_host, optimizer=optimizer.name, options=dict(optimizer.options),
        method="closed_form" if use_closed else "iterate", backend=b.name, dtype=b.dtype_name, tol=tol,
        n_steps=steps, noise=None if noise is None else noise.describe(),
    )


def _check_args(optimizer, steps, tol, method, noise):
    """:func:`run`'s checks of everything but the seeds and starts; returns (steps, noise) as run uses them."""
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer must be built by quadlab.optim (e.g. quadlab.optim.adam(...)), got {optimizer!r}")
    steps = _check_steps(steps)
    if tol is not None and not (np.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol is relative to ||grad f(w0)|| and must lie in (0, 1), got {tol!r}")
    if method not in ("auto", "iterate", "closed_form", "gpu_scan"):
        raise ValueError(f"method must be 'auto', 'iterate', 'closed_form' or 'gpu_scan', got {method!r}")
    noise = noise_models.check_noise(noise)
    if noise is not None and method in ("closed_form", "gpu_scan"):
        raise ValueError(f"method={method!r} gives exact-gradient trajectories; with noise= use method='auto' or "
                         "'iterate' (the expected loss under noise is in quadlab.nqm)")
    if method == "closed_form" and not optimizer.is_linear:
        raise ValueError(
            f"{optimizer.name} is not linear in the error (adaptive second moments), so it has no closed form; "
            "use method='iterate' or 'auto'. Closed forms exist for gd, heavy_ball, nesterov, adam_theory, "
            "blockwise_gd and jacobi_gd."
        )
    return steps, noise


def _configs(problem, optimizer, w0, seeds):
    """The per-run hyperparameters and seeds (run r = c·S + s) and the starting errors (R, n)."""
    C, S = optimizer.n_configs, len(seeds)
    config = {k: np.repeat(v, S) for k, v in optimizer.grid().items()}
    config["seed"] = np.tile(np.asarray(seeds, dtype=np.int64), C)
    return config, _starts(problem, w0, seeds, C)


def _iterate_setup(problem, config, E0):
    """The iterate path's layout, starting errors and first gradient (layout trees) and context for these runs."""
    b = problem.backend
    lay = Layout(problem)
    E = lay.split(b.asarray(E0))
    G = lay.hvp(E)
    g0_host = b.to_numpy(lay.merge(G)).astype(np.float64)
    ctx = RunContext(problem, lay, g0_host, E0 + problem.optimum_host, INPLACE)
    ctx.host_hp = {k: np.asarray(v, dtype=np.float64) for k, v in config.items() if k != "seed"}
    return lay, E, G, ctx


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


def _fused_route(ctx, opt, noise, backend):
    """The one eligibility test of the optimizer's fused step: ("numba", step) on numpy in place with numba,
    ("gpu", gpu_step) where the cupy kernels are enabled, else ("", None).  Never with gradient noise (the
    fused step reads the gradient buffer that the noise would have to be added to)."""
    if noise is not None:
        return "", None
    if ctx.inplace and opt.step is not None and kernels.available():
        return "numba", opt.step
    if not ctx.inplace and opt.gpu_step is not None and adam_rule.gpu_enabled(backend):
        return "gpu", opt.gpu_step
    return "", None


def _run_iterate(problem, opt, config, E0, rec, steps, tol, cadence, noise=None):
    b = problem.backend
    xp = b.xp
    R, T = E0.shape[0], rec.size
    lay, E, G, ctx = _iterate_setup(problem, config, E0)
    g0_host = ctx.g0_host
    inplace = ctx.inplace
    if inplace:  # split may return views of E0, which the in-place steps must not touch
        E = tuple(np.array(x, copy=True) for x in E)
    if inplace and scan.eligible(problem, opt, noise):  # the same results, every step in one compiled loop
        return scan.run(problem, opt, ctx, lay, G, E0, rec, steps, tol, DIVERGENCE_FACTOR)
    # the step sizes reach an optimizer only through ctx.lr (the contract's one representation)
    hp = {k: hyperparameter(v, lay) for k, v in ctx.host_hp.items() if k != "lr"}
    ctx.fused, fused_step = _fused_route(ctx, opt, noise, b)
    if ctx.fused == "gpu":
        E = tuple(x.copy() for x in E)  # the kernels write into E (numpy and cupy arrays both copy)
    fused = bool(ctx.fused)
    stream = None if noise is None else noise_models.Stream(noise, problem, lay, config["seed"])
    state = opt.init(G, hp, ctx)
    thr, div = _thresholds(lay, g0_host, tol, DIVERGENCE_FACTOR)
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
            state = fused_step(E, G, state, hp, ctx, k + 1)
        elif stream is not None:  # the optimizer sees ∇f(w_k) + ξ_k; G stays the true gradient
            Xi = stream.at(k, rows)
            Gn = tmap(lambda g, x: np.add(g, x, out=x), G, Xi) if inplace else tmap(lambda g, x: g + x, G, Xi)
            delta, state = opt.update(Gn, state, hp, ctx, k + 1)
        else:
            delta, state = opt.update(G, state, hp, ctx, k + 1)
        if inplace:
            if not fused:
                for e, d in zip(E, delta, strict=True):
                    np.subtract(e, d, out=e)
            G = lay.hvp_into(E, G)
        else:
            if not fused:
                E = tmap(lambda e, d: e - d, E, delta)
            G = lay.hvp(E)
    return gap, gnorm, to_tol, stop, status.astype(str)


def _take_runs(obj, keep, keep_host, lay):
    """Keep the runs ``keep`` (backend indices; ``keep_host`` on the host) in every array of a nested tuple;
    Python scalars are shared by all runs, objects with ``take_runs`` (host per-run data) select their own."""
    if isinstance(obj, tuple):
        parts = (_take_runs(o, keep, keep_host, lay) for o in obj)
        return obj._make(parts) if hasattr(obj, "_make") else tuple(parts)  # a state NamedTuple keeps its type
    if isinstance(obj, (int, float)):
        return obj
    if hasattr(obj, "take_runs") and not hasattr(obj, "shape"):
        return obj.take_runs(keep_host)
    return lay.take_runs((obj,), keep)[0]


def _closed_plan(problem, opt, config, E0):
    """The closed form's :class:`~quadlab._engine.closed_form.Plan` of these runs (eigendecompositions and
    per-mode weights, built once) and ∇f(w_0), host (R, n)."""
    g0_host = problem.backend.to_numpy(problem.hvp(problem.backend.asarray(E0))).astype(np.float64)
    ctx = RunContext(problem, None, g0_host, E0 + problem.optimum_host, INPLACE)
    ctx.host_hp = {k: np.asarray(v, dtype=np.float64) for k, v in config.items() if k != "seed"}
    hp = {k: v for k, v in ctx.host_hp.items() if k != "lr"}
    if opt.name == "adam_theory":
        ctx.require_nonzero_g0()
    return closed_form.Plan(problem, opt.linear(hp, ctx, g0_host), E0), g0_host


def _run_closed(problem, opt, config, E0, rec, steps, tol):
    R = E0.shape[0]
    plan, g0_host = _closed_plan(problem, opt, config, E0)
    gap, gnorm = plan.values(rec)
    thr, div = _thresholds(Layout(problem), g0_host, tol, DIVERGENCE_FACTOR)
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
    # the first crossing can fall between recorded steps: bisection where ‖∇f_k‖² is provably convex in k
    # (GD-kind without cross terms), elsewhere a scan of every step from the first one that bounds allow, each
    # run up to rec_stop (quadlab._engine.stop_search)
    live = np.flatnonzero(need_scan)
    first, bad = stop_search.first_stop(plan, live, rec_stop[live], thr[live], div[live], tol is not None)
    found = ~need_scan.copy()
    found[live[first >= 0]] = True
    conv, dive = live[(first >= 0) & ~bad], live[(first >= 0) & bad]
    to_tol[conv] = stop[conv] = first[(first >= 0) & ~bad]
    status[conv] = "converged"
    stop[dive] = first[(first >= 0) & bad]
    status[dive] = "diverged"
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
