"""Learning-rate search for one (problem, optimizer) pair, under either protocol of the studies.

The two protocols.  *Shared*: one lr for every seed (the paper's setting), scored by the seeds together.
*Per seed*: each seed (each instance) tuned alone.  They answer different questions and can disagree
sharply: Adam with β1 = 0 on the heterogeneous case converges per seed, while no single lr serves all seeds.
:func:`tune_lr` always returns the shared choice, and with ``per_seed=True`` also each seed's own.

The score.  A seed's outcome at an lr is its number of steps to ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖, or a miss (it
never got there within the cap, or diverged).  Shared lrs are ranked lexicographically by (seeds missed, the
worst steps among the seeds that reached tol, their total steps, then, only where some seed missed, the worst
final ‖∇f‖, then the smaller lr): where some lr reaches tol on every seed this is the worst seed's count; where
none does, the lr that serves the most seeds wins rather than the one whose misses hover lowest.  A lone seed's
score is the same with one seed.  No key depends on the cap an lr ran under where the race could change it,
so ``race=True`` picks the lr the full search picks.

The search.  A dense log grid (``points``, default 128, through :func:`quadlab._engine.portable.geomspace`, so
the same lrs on every CPU) runs as one batched run per problem; with ``race=True`` under the growing caps of
:func:`race_caps`.  Then ``refine`` times, a finer grid of ``refine_points`` is laid between the neighbours of
each of the ``candidates`` best local minima of the score (a response curve can have several basins: a
chaotic stall regime, a momentum resonance), never outside ``lr_range``.  Where the best lr reached tol on
every seed, a candidate must too, within c* (the first cap of :func:`race_caps` at or above the best count, at
most 4× it): a basin whose coarse count is worse than that is not refined, which is what keeps the race exact.
Where no lr of the grid reached tol on any seed there is nothing to refine, and the search ends with the grid.  The per-seed searches read their
first grid from the same runs and refine on their own.

What is reported is true of a fresh run.  Runs are batch independent (:mod:`quadlab._engine.ordered`): an lr
scored inside a grid behaves bit for bit as it does alone, so ``best_steps`` is what ``quadlab.run`` gives for
``best_lr`` (the search re-runs it alone, with the full cap, to return its Result).

Stability is checked, not assumed.  After the search the lrs best·(1 ± f·neighbourhood), f ∈ {¼, ½, ¾, 1}, run
too (fresh, full cap, the same seeds).  The choice is *fragile* when some neighbour's outcome differs from the
best's by :func:`quadlab.stability.same_outcome` (one reached tol and the other did not, or their counts differ by more than
``quadlab.stability.STABLE_FACTOR`` = 1.5×), neighbours past a divergence edge aside (:func:`quadlab.stability.divergence_edge`): Adam with β2 < 1 and a constant step can stall with ‖∇f‖ hovering just above the
tolerance, where a tiny change of the step decides whether it ever gets below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._engine import portable, scan
from ._engine.choices import deprecated
from ._engine.runargs import check_seeds
from ._engine.threads import map_calls
from .optim import Optimizer
from .runner import (
    DIVERGENCE_FACTOR,
    INPLACE,
    Result,
    _check_args,
    _check_size,
    _configs,
    _iterate_setup,
    _last_finite,
    record_steps,
    run,
)
from .stability import divergence_edge, same_outcome

__all__ = ["tune_lr", "TuneResult", "race_caps", "NEIGHBOUR_FRACTIONS"]

#: The neighbourhood check's offsets, as fractions of ``neighbourhood``: lrs best·(1 ± f·neighbourhood).
NEIGHBOUR_FRACTIONS = (0.25, 0.5, 0.75, 1.0)

@dataclass(frozen=True, eq=False)
class TuneResult:
    """The outcome of :func:`tune_lr`: the best learning rate, a fresh run of it, and the whole response curve.

    Parameters
    ----------
    best_lr : float
        The learning rate with the best score (module docstring): the fewest seeds missed, then the smallest
        worst steps among the seeds that reached tol, then their total.  Always inside ``lr_range``.
    best_steps : int
        The worst seed's steps to tolerance of a fresh run of ``best_lr`` with the full cap; −1 if some seed
        missed.
    lrs : numpy.ndarray
        Every lr tried, sorted, shape (P,).
    steps_to_tol : numpy.ndarray
        The response curve: worst-seed steps to tolerance per lr, −1 where some seed did not reach it within
        that lr's cap (``steps`` is its deprecated name: ``steps`` is the iteration cap everywhere else).
    final_grad_norm : numpy.ndarray
        Worst-seed final recorded ‖∇f‖ per lr (inf when a run diverged), as recorded under that lr's cap.
    diverged : numpy.ndarray
        bool per lr: some seed diverged.
    best : Result or list of Result
        The fresh run of ``best_lr`` (one Result per problem when a list of problems was tuned).
    caps : numpy.ndarray or None
        The step cap each lr ran under (the full ``steps`` unless ``race=True``).
    fragile : bool
        Some neighbour best·(1 ± f·neighbourhood) has another outcome than ``best_steps`` by
        :func:`quadlab.stability.same_outcome`.
    note : str
        Why the choice is fragile or at the edge of ``lr_range``, else "".
    neighbours : dict or None
        lr → worst-seed steps (−1 = some seed missed) of the neighbourhood check; None if it was skipped.
    seeds_reached : int
        Seeds whose fresh run of ``best_lr`` reached tol.
    reached_per_lr : numpy.ndarray or None
        Seeds that reached tol per lr of ``lrs`` (within that lr's cap).
    neighbour_steps : dict or None
        lr → per-seed steps (−1 = missed) of the neighbourhood check.
    at_edge : bool
        The best lr reached tol on some seed and lies within one first-grid step of an end of ``lr_range``:
        a wider range may hold a better one.
    per_seed : tuple of TuneResult or None
        With ``per_seed=True``: each seed tuned alone (its own curve, choice, fresh run and check).
    seeds : tuple of int
        The seeds, in the order of ``best`` and ``per_seed``.
    past_edge : tuple of (float, int)
        (lr, seed index) pairs past that seed's divergence edge (:func:`quadlab.stability.divergence_edge`): the
        stability check counts them as the best lr's own outcome on that seed.

    Attributes
    ----------
    reached : bool
        ``best_steps >= 0``.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim, spectra, tune
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(200))
    >>> t = tune.tune_lr(p, optim.gd(), lr_range=(1e-3, 1e-2), points=5, refine=0, steps=20_000, tol=1e-4)
    >>> t.reached, t.lrs.size, int(t.best.steps_to_tol.max()) == t.best_steps
    (True, 5, True)
    """

    best_lr: float
    best_steps: int
    lrs: np.ndarray
    steps_to_tol: np.ndarray
    final_grad_norm: np.ndarray
    diverged: np.ndarray
    best: Result | list[Result]
    caps: np.ndarray | None = None
    fragile: bool = False
    note: str = ""
    neighbours: dict | None = None
    seeds_reached: int = 0
    reached_per_lr: np.ndarray | None = None
    neighbour_steps: dict | None = None
    at_edge: bool = False
    per_seed: tuple | None = None
    seeds: tuple = ()
    past_edge: tuple = ()

    @property
    def steps(self) -> np.ndarray:
        deprecated("TuneResult.steps", "TuneResult.steps_to_tol")
        return self.steps_to_tol

    @property
    def reached(self) -> bool:
        """Whether the best lr reached the tolerance on every seed (``best_steps >= 0``).

        Returns
        -------
        bool
            True when some lr reached ``tol`` on every seed.
        """
        return self.best_steps >= 0


def _parts(r: Result):
    """What the score reads of a run's Result: steps to tol, the final recorded ‖∇f‖, diverged."""
    return r.steps_to_tol, r.final(), r.status == "diverged"


def _matrices(parts: list, n_lr: int):
    """(steps to tol, final ‖∇f‖, diverged), each (n_lr, S): the :func:`_parts` of each problem's runs
    (lr-major) side by side, one column per seed."""
    return tuple(np.concatenate([p[j].reshape(n_lr, -1) for p in parts], axis=1) for j in range(3))


def same_reach(a, b) -> bool:
    """Whether two lrs' per-seed outcomes (steps, −1 = missed) agree for the shared protocol: as many seeds reach
    tol, and the worst of the seeds that reach it agree by :func:`quadlab.stability.same_outcome`."""
    a, b = np.asarray(a), np.asarray(b)
    ka, kb = int((a >= 0).sum()), int((b >= 0).sum())
    wa = int(a[a >= 0].max()) if ka else None
    wb = int(b[b >= 0].max()) if kb else None
    return ka == kb and same_outcome(wa, wb)


def _reach_text(row) -> str:
    row = np.asarray(row)
    k = int((row >= 0).sum())
    if k == row.size:
        return f"{int(row.max())} steps"
    return "misses tol" if row.size == 1 else f"{k} of {row.size} seeds reach tol"


class _Curve:
    """Every lr tried by one search with its per-seed outcomes, and the score of module docstring."""

    def __init__(self, steps: int):
        self.steps = steps
        self.lrs, self.stt, self.fin, self.div, self.cap = [], [], [], [], []

    def add(self, lrs, stt, fin, div, cap: int):
        # a run stopped by the cap before tol counts as a miss; a diverged one too
        stt = np.where(div, -1, stt)
        self.lrs.append(np.asarray(lrs, dtype=np.float64)), self.stt.append(stt), self.fin.append(fin)
        self.div.append(div), self.cap.append(np.full(len(lrs), cap))

    def arrays(self):
        lrs, stt = np.concatenate(self.lrs), np.concatenate(self.stt)
        fin, div, cap = np.concatenate(self.fin), np.concatenate(self.div), np.concatenate(self.cap)
        return lrs, stt, fin, div, cap

    def score(self):
        """(lrs, order best first, missed, worst reached, worst final ‖∇f‖, diverged, cap) over all lrs tried.

        The order: fewest seeds missed, then the smallest worst count among the seeds that reached tol, then the
        smallest total count over them, then (only among lrs where some seed missed) the smallest worst final
        ‖∇f‖, then the smaller lr.  None of these keys depends on the cap an lr ran under where the race could
        have changed it: a run's final recorded ‖∇f‖ does (the recorded steps follow the cap), so it breaks
        ties only between lrs that missed somewhere, which the race never ranks below its cap."""
        lrs, stt, fin, div, cap = self.arrays()
        reached = stt >= 0
        missed = (~reached).sum(axis=1)
        worst = np.where(reached.any(axis=1), np.where(reached, stt, -1).max(axis=1), self.steps + 1)
        total = np.where(reached, stt, 0).sum(axis=1)
        fw = np.where(np.isfinite(fin), fin, np.inf).max(axis=1)
        fw = np.where(div.any(axis=1), np.inf, fw)
        order = np.lexsort((lrs, np.where(missed > 0, fw, 0.0), total, worst, missed))
        return lrs, order, missed, worst, fw, div.any(axis=1), cap

    def best(self):
        lrs, order, missed, worst, *_ = self.score()
        return float(lrs[order[0]]), int(missed[order[0]]), int(worst[order[0]])

    def known_cap(self) -> int:
        """c* = the first cap of :func:`race_caps` at or above the best lr's worst-seed count when the best
        reached tol on every seed, else the full cap.  Every lr whose worst count is ≤ c* is known exactly
        with or without the race (the race's first grid stops at c*, and its refinements run under c*)."""
        _, missed, worst = self.best()
        if missed:
            return self.steps
        return min(c for c in race_caps(self.steps) if c >= worst)

    def candidates(self, k: int) -> list[float]:
        """The k best local minima of the score along the sorted lrs (the best first), among the lrs whose
        score the race cannot change (:meth:`known_cap`): then race=True refines where the full search does."""
        lrs, order, missed, worst, *_ = self.score()
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = np.arange(order.size)
        srt = np.argsort(lrs, kind="stable")
        r = rank[srt]
        left = np.concatenate([[np.iinfo(np.int64).max], r[:-1]])
        right = np.concatenate([r[1:], [np.iinfo(np.int64).max]])
        local = srt[(r < left) & (r < right)]
        if missed[order[0]] == 0:
            local = local[(missed[local] == 0) & (worst[local] <= self.known_cap())]
        local = local[np.argsort(rank[local])][:k]
        return [float(lrs[i]) for i in local] if local.size else [float(lrs[order[0]])]

    def refine_grid(self, k: int, n: int, lo: float, hi: float) -> np.ndarray:
        """n lrs strictly between the neighbours of each of the k best local minima (never outside [lo, hi]),
        the ones already tried left out."""
        lrs = self.arrays()[0]
        u = np.unique(lrs)
        out = []
        for c in self.candidates(k):
            j = int(np.searchsorted(u, c))
            left = u[j - 1] if j > 0 else max(lo, u[j])
            right = u[j + 1] if j + 1 < u.size else min(hi, u[j])
            if right > left:
                out.append(portable.geomspace(left, right, n + 2)[1:-1])
        grid = np.unique(np.concatenate(out)) if out else np.empty(0)
        return grid[~np.isin(grid, u)]

class _Race:
    """The first grid's race on one problem: :func:`_parts` of ``run(problem, opt, seeds=seeds, steps=cap,
    tol=tol, method=method)`` for the caps in turn, bit for bit.  Where that run takes the compiled scan, the
    runs are not restarted for each cap: one :class:`~quadlab._engine.scan.Batch` is advanced from cap to cap,
    recording at every cap's "log" steps, and each cap reads its own steps (so its final ‖∇f‖ is the one a run
    with that cap records); elsewhere each cap is its own run."""

    def __init__(self, problem, opt, seeds, caps, tol, method, w0=None, noise=None):
        self.args = (problem, opt, seeds, tol, method, w0, noise)
        self.rec = np.unique(np.concatenate([record_steps("log", c) for c in caps]))
        self.batch = None if noise is not None else \
            _scan_batch(problem, opt, seeds, max(caps), tol, method, self.rec, w0)

    def parts(self, cap: int):
        problem, opt, seeds, tol, method, w0, noise = self.args
        if self.batch is None:
            return _parts(run(problem, opt, w0=w0, seeds=seeds, steps=cap, tol=tol, method=method, noise=noise))
        with np.errstate(all="ignore"):  # as run(): a diverging run's overflow is its status, not a warning
            self.batch.advance(cap)
        _, gnorm, to_tol, stop, status = self.batch.result()
        mine = np.isin(self.rec, record_steps("log", cap))
        g = gnorm[:, mine].copy()
        g[self.rec[mine][None, :] > stop[:, None]] = np.nan  # as run(): nothing recorded after a run stopped
        return to_tol.copy(), _last_finite(g), status == "diverged"  # final ‖∇f‖ as Result.final reads it


def _scan_batch(problem, optimizer, seeds, steps: int, tol, method: str, record, w0=None):
    """The compiled scan's resumable :class:`~quadlab._engine.scan.Batch` of ``run(problem, optimizer,
    seeds=seeds, steps=steps, tol=tol, method=method, record=record)``, or None when that run would not take
    the scan (closed form, another backend, numba missing, …).  ``batch.advance(k)`` then ``batch.result()``
    gives what such a run with ``steps = k`` gives, bit for bit, but recorded at all of ``record`` up to k; a
    later ``advance`` continues the same runs."""
    steps, _ = _check_args(optimizer, steps, tol, method, None)
    seeds = check_seeds(seeds)
    if method not in ("auto", "iterate") or (optimizer.is_linear and method == "auto") or not INPLACE \
            or problem.backend.name != "numpy" or not scan.eligible(problem, optimizer, None):
        return None
    config, E0 = _configs(problem, optimizer, w0, seeds)
    rec = record_steps(record, steps)
    _check_size(problem, E0.shape[0], rec.size, optimizer, False)
    with np.errstate(all="ignore"):
        lay, _, G, ctx = _iterate_setup(problem, config, E0)
        return scan.Batch(problem, optimizer, ctx, lay, G, E0, rec, steps, tol, DIVERGENCE_FACTOR)


def race_caps(steps: int) -> list[int]:
    """The first grid's caps under ``race=True``: steps/64, steps/16, steps/4 and steps (integer division, at
    least 64, at most ``steps``, without repeats).

    The last cap is ``steps`` itself: quadrupling the first cap instead would reach 64·⌊steps/64⌋, just short
    of ``steps``, and then run the whole grid a second time for the last few steps.

    Parameters
    ----------
    steps : int
        The iteration cap of the search.

    Returns
    -------
    list of int
        Increasing caps, the last one ``steps``.

    Examples
    --------
    >>> race_caps(69_077)
    [1079, 4317, 17269, 69077]
    >>> race_caps(100)
    [64, 100]
    """
    return sorted({min(steps, max(64, steps // 4**m)) for m in (3, 2, 1, 0)})


def tune_lr(problem, optimizer: Optimizer, lr_range=(1e-6, 10.0), points: int = 128, refine: int = 2,
            refine_points: int = 8, seeds=(0,), steps: int = 10_000, tol: float = 1e-6,
            method: str = "auto", race: bool = False, neighbourhood: float | None = 0.1, candidates: int = 3,
            per_seed: bool = False, w0=None, noise=None) -> TuneResult:
    """Search the learning rate of ``optimizer`` on ``problem``: a dense log grid refined around its best local
    minima, under the shared protocol and optionally per seed (module docstring).

    The shared score of an lr is (seeds that missed ‖∇f(w_k)‖ ≤ tol·‖∇f(w₀)‖, the worst steps among the seeds
    that reached it, their total, …; module docstring), compared lexicographically; where an lr reaches tol on
    every seed it is the worst seed's count.  A log grid of ``points`` lrs over ``lr_range`` runs as one batched
    :func:`quadlab.run` per problem; then ``refine`` times a grid of ``refine_points`` between the neighbours of
    each of the ``candidates`` best local minima.  The best lr is re-run alone with the full cap (bit-identical
    to its grid run, since runs are batch independent) and its neighbours best·(1 ± f·neighbourhood) are run for
    the stability check (module docstring).

    Parameters
    ----------
    problem : BlockQuadratic or list of BlockQuadratic
        One problem, or one per seed (e.g. one rotation per seed: problem i runs with ``seeds[i]``).
    optimizer : Optimizer
        Tuned in ``lr`` alone; its other hyperparameters must have one value each.
    lr_range : (float, float), default (1e-6, 10.0)
        0 < lo < hi, finite: the first grid's ends; every lr tried lies in [lo, hi].
    points : int, default 128
        The first grid's size, ≥ 3.  Dense by default: the compiled engine runs a Case-3 grid of 1,024 runs ×
        2,000 steps in about 0.03 s, and a response curve with narrow basins needs it.
    refine : int, default 2
        Number of refinements.
    refine_points : int, default 8
        Points per candidate and refinement, ≥ 1.
    seeds : sequence of int, default (0,)
        Seeds of the starts (:func:`quadlab.starts`); with a list of problems, one per problem.
    steps : int, default 10000
        The iteration cap of every run.
    tol : float, default 1e-6
        The relative gradient-norm tolerance.
    method : str, default "auto"
        Passed to :func:`quadlab.run` ("auto", "closed_form", "iterate").
    race : bool, default False
        Find the same best lr with fewer steps: the first grid runs under the caps of :func:`race_caps`
        (steps/64, steps/16, steps/4, steps) until some lr reaches tol on every seed; runs on the compiled scan
        are continued from cap to cap rather than restarted, with the same results (an lr that needs more than
        the cap cannot beat one that reached it within the cap), and each refinement runs only up to the first
        race cap at or above the best worst-seed count so far (then the refinements try the same lrs as without
        the race); lrs that lost the race read "not reached" (see ``caps``).
    neighbourhood : float or None, default 0.1
        Relative reach of the stability check, in (0, 1); None skips it.
    candidates : int, default 3
        Local minima of the score refined in each round, ≥ 1 (module docstring: within c* of the best count).
    per_seed : bool, default False
        Also tune each seed alone (``TuneResult.per_seed``), from the same first grid.
    w0 : sequence of array_like, optional
        One start (n,) per seed instead of the seeds' own (:func:`quadlab.starts`); the seeds then only label
        the runs.
    noise : optional
        Gradient noise, passed to :func:`quadlab.run`.  Noisy runs do not take the compiled scan, so with
        ``race=True`` each cap is a run of its own.

    Returns
    -------
    TuneResult
        The best lr, its fresh run and the response curve (and each seed's own with ``per_seed``).

    Raises
    ------
    ValueError
        If the optimizer has no lr grid or several values of another hyperparameter, the number of problems and
        seeds differ, ``lr_range`` is not 0 < lo < hi finite, ``points`` < 3, ``refine_points`` or
        ``candidates`` < 1, ``refine`` < 0 or ``neighbourhood`` ∉ (0, 1); and whatever :func:`quadlab.run`
        rejects (steps, tol, seeds).

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim, spectra, tune
    >>> probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(200), seed=s) for s in (0, 1)]
    >>> t = tune.tune_lr(probs, optim.gd(), lr_range=(1e-3, 1e-2), points=4, refine=1, seeds=[0, 1],
    ...                  steps=20_000, tol=1e-4, race=True, per_seed=True)
    >>> len(t.best), bool(t.best_lr <= 2 / 201 + 1e-12), t.fragile, len(t.per_seed)
    (2, True, False, 2)
    """
    if neighbourhood is not None and (isinstance(neighbourhood, bool) or not isinstance(neighbourhood, (int, float))
                                      or not (math.isfinite(neighbourhood) and 0 < neighbourhood < 1)):
        raise ValueError(f"neighbourhood must be a number in (0, 1) or None, got {neighbourhood!r}")
    for name, v, least in (("points", points, 3), ("refine_points", refine_points, 1), ("candidates", candidates, 1),
                           ("refine", refine, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
    for name, v in (("race", race), ("per_seed", per_seed)):
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {v!r}")
    many = isinstance(problem, (list, tuple))
    problems = list(problem) if many else [problem]
    seeds = list(check_seeds(seeds))
    if many and len(seeds) != len(problems):
        raise ValueError(f"{len(problems)} problems need as many seeds, got {len(seeds)}")
    if "lr" not in optimizer.hyper:
        raise ValueError(f"{optimizer.name} has no learning-rate grid to tune (options: {optimizer.options})")
    others = {k: v for k, v in optimizer.hyper.items() if k != "lr"}
    if any(v.size > 1 for v in others.values()):
        raise ValueError(f"tune_lr tunes lr alone: fix the other hyperparameters of {optimizer.name} to one value")
    try:
        lo, hi = (float(v) for v in lr_range)
    except (TypeError, ValueError):
        raise ValueError(f"lr_range must be two numbers (lo, hi), got {lr_range!r}") from None
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"lr_range must satisfy 0 < lo < hi, finite, got {lr_range!r}")
    steps = _check_args(optimizer, steps, tol, method, None)[0]
    if w0 is not None:
        if isinstance(w0, np.ndarray) and w0.ndim < 2 or not hasattr(w0, "__len__"):
            raise ValueError("w0 must be a sequence of starts, one array (n,) per seed")
        if len(w0) != len(seeds):
            raise ValueError(f"w0 needs one start per seed: {len(seeds)} seeds, got {len(w0)} starts")
        starts_ = []
        for i, w in enumerate(w0):
            n = (problems[i] if many else problem).n
            if np.iscomplexobj(w):
                raise ValueError(f"w0[{i}] is complex; a start must be real")
            w = np.asarray(w, dtype=np.float64)
            if w.shape != (n,) or not np.isfinite(w).all():
                raise ValueError(f"w0[{i}] must be a finite array of shape ({n},), got shape {w.shape}"
                                 + ("" if w.shape != (n,) else " with non-finite entries"))
            starts_.append(w)
        w0 = starts_
    # one seed alone: its own problem (a list) or the shared one, with its own start if given
    singles = [(problems[i] if many else problem, [s], None if w0 is None else w0[i]) for i, s in enumerate(seeds)]
    pairs = singles if many or w0 is not None else [(problem, seeds, None)]

    def each(lrs, cap, on=pairs):
        # one run() per problem, side by side on the cores when the problems differ (quadlab._engine.threads)
        opt = optimizer.with_hyper(lr=np.asarray(lrs, dtype=np.float64))
        call = lambda ps: run(ps[0], opt, w0=ps[2], seeds=ps[1], steps=cap, tol=tol, method=method,  # noqa: E731
                              noise=noise)
        return map_calls(call, on) if len({id(p[0]) for p in on}) == len(on) else [call(ps) for ps in on]

    def evaluate(lrs, cap, on=pairs):
        return _matrices([_parts(r) for r in each(lrs, cap, on)], len(lrs))

    grid = portable.geomspace(lo, hi, points)
    shared = _Curve(steps)
    if race:
        # the first grid's race: the next cap only while no lr has reached tol on every seed, the runs continued
        opt = optimizer.with_hyper(lr=grid)
        caps = race_caps(steps)
        racers = [_Race(ps[0], opt, ps[1], caps, tol, method, ps[2], noise) for ps in pairs] \
            if len({id(p[0]) for p in pairs}) < len(pairs) else \
            map_calls(lambda ps, o=opt, c=caps: _Race(ps[0], o, ps[1], c, tol, method, ps[2], noise), pairs)
        for cap in caps:
            stt, fin, div = _matrices(map_calls(lambda rc, c=cap: rc.parts(c), racers)
                                      if len({id(p[0]) for p in pairs}) == len(pairs)
                                      else [rc.parts(cap) for rc in racers], grid.size)
            if ((stt >= 0) & ~div).all(axis=1).any():
                break
        del racers  # every problem's batch, with its iterates and records: not kept through the refinements
    else:
        cap = steps
        stt, fin, div = evaluate(grid, cap)
    shared.add(grid, stt, fin, div, cap)
    mine = [_Curve(steps) for _ in seeds] if per_seed else []
    for j, c in enumerate(mine):
        c.add(grid, stt[:, j:j + 1], fin[:, j:j + 1], div[:, j:j + 1], cap)

    def refine_cap(curve):
        return curve.known_cap() if race else steps

    def hopeless(curve, n_seeds):
        # no lr tried reached tol on any seed: refining around the lowest final norms of a dense grid finds
        # nothing, and each refinement would run every lr to the full cap
        return curve.best()[1] == n_seeds

    for _ in range(refine):
        g = np.empty(0) if hopeless(shared, len(seeds)) else shared.refine_grid(candidates, refine_points, lo, hi)
        if g.size:
            shared.add(g, *evaluate(g, refine_cap(shared)), refine_cap(shared))
        if mine:
            grids = [np.empty(0) if hopeless(c, 1) else c.refine_grid(candidates, refine_points, lo, hi)
                     for c in mine]
            todo = [j for j, g in enumerate(grids) if g.size]
            got = map_calls(lambda j, gs=grids: evaluate(gs[j], refine_cap(mine[j]), [singles[j]]), todo) if many else \
                [evaluate(grids[j], refine_cap(mine[j]), [singles[j]]) for j in todo]
            for j, m in zip(todo, got, strict=True):
                mine[j].add(grids[j], *m, refine_cap(mine[j]))

    def finish(curve, on, seed_list, one) -> TuneResult:
        lrs, order, missed, worst, fw, dv, caps = curve.score()
        best = float(lrs[order[0]])
        res = each([best], steps, on)
        bdiv = np.concatenate([r.status == "diverged" for r in res])
        bs = np.where(bdiv, -1, np.concatenate([r.steps_to_tol for r in res]))
        ok = bs >= 0
        best_steps = int(bs.max()) if ok.all() else -1
        fragile, notes, neigh, nsteps, past = False, [], None, None, ()
        if neighbourhood is not None:
            off = neighbourhood * np.asarray(NEIGHBOUR_FRACTIONS)
            near = np.concatenate([best * (1 - off[::-1]), best * (1 + off)])
            n_stt, _, n_div = evaluate(near, steps, on)
            n_stt = np.where(n_div, -1, n_stt)
            w = np.where((n_stt < 0).any(axis=1), -1, n_stt.max(axis=1))
            neigh = {float(lr): int(x) for lr, x in zip(near, w, strict=True)}
            nsteps = {float(lr): tuple(int(x) for x in row) for lr, row in zip(near, n_stt, strict=True)}
            # per seed: the neighbours past that seed's divergence edge (never for a seed that already diverges
            # at the best lr) count as the best lr's own outcome on that seed
            past = tuple((lr, j) for j in range(len(seed_list)) if not bdiv[j]
                         for lr in divergence_edge(near, n_div[:, j], best))
            exempt = np.array([[(float(lr), j) in set(past) for j in range(len(seed_list))] for lr in near])
            adj = np.where(exempt, bs[None, :], n_stt)
            differ = [float(lr) for lr, row in zip(near, adj, strict=True) if not same_reach(bs, row)]
            if differ:
                fragile = True
                what = "every seed reaches" if len(seed_list) > 1 else "it reaches"
                head = (f"at lr {best:.6g} {what} tol in {best_steps} steps" if best_steps >= 0
                        else f"at lr {best:.6g} {int(ok.sum())} of {len(seed_list)} seeds reach tol")
                notes.append(f"fragile: {head}, but at " + " and ".join(
                    f"{lr:.6g} ({_reach_text(row)})" for lr, row in zip(near, adj, strict=True) if float(lr) in differ)
                    + f" (within ±{neighbourhood:g}); the outcome depends on the exact step")
        first = grid[1], grid[-2]
        at_edge = bool(missed[order[0]] < len(seed_list) and (best <= first[0] or best >= first[1]))
        if at_edge:
            notes.append(f"the best lr {best:.6g} lies at the {'lower' if best <= first[0] else 'upper'} edge of "
                         f"lr_range ({lo:g}, {hi:g}): widen it, a better lr may lie beyond")
        srt = np.argsort(lrs, kind="stable")
        curve_steps = np.where(missed > 0, -1, worst)
        curve_steps = np.where(curve_steps > caps, -1, curve_steps)
        return TuneResult(
            best_lr=best, best_steps=best_steps, lrs=lrs[srt], steps_to_tol=curve_steps[srt],
            final_grad_norm=fw[srt], diverged=dv[srt], best=res[0] if one else res, caps=caps[srt],
            fragile=fragile, note="; ".join(notes), neighbours=neigh, seeds_reached=int(ok.sum()),
            reached_per_lr=(len(seed_list) - missed)[srt], neighbour_steps=nsteps, at_edge=at_edge,
            past_edge=past,
            seeds=tuple(int(s) for s in seed_list))

    out = finish(shared, pairs, seeds, not many and w0 is None)
    if mine:
        alone = map_calls(lambda j: finish(mine[j], [singles[j]], [seeds[j]], True), list(range(len(seeds)))) \
            if many else [finish(mine[j], [singles[j]], [seeds[j]], True) for j in range(len(seeds))]
        out = TuneResult(**{**out.__dict__, "per_seed": tuple(alone)})
    return out
