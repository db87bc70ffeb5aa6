"""Learning-rate search for one (problem, optimizer) pair.

How the choice is made.  The score of a learning rate is the number of steps every seed needs to reach
‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖ (the worst seed counts; a seed that never gets there scores ``steps + 1``), ties
broken by the final gradient norm.  A log grid is scanned as one batched run; then a finer log grid around
the best value (between its two neighbours) is scanned, ``refine`` times.  The best score wins.

What is reported is true of a fresh run.  Runs are batch independent (:mod:`quadlab._engine.ordered`): an lr scored
inside a grid behaves bit for bit as it does alone, so ``best_steps`` is what ``quadlab.run`` gives for
``best_lr`` (the search re-runs it alone, with the full cap, to return its Result).

Fragile choices are flagged, not hidden.  Adam with β2 < 1 and a constant step can stall with ‖∇f‖ hovering
just above the tolerance, where a tiny change of the step decides whether it ever gets below: the best lr
may then be an island.  After the search, the lrs ``best_lr·(1 ± neighbourhood)`` are run too (fresh, full
cap, the same seeds); if either misses the tolerance on some seed, or needs more than twice ``best_steps``,
the result says ``fragile=True`` with the neighbours' step counts in ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._engine import scan
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

__all__ = ["tune_lr", "TuneResult", "race_caps"]


@dataclass(frozen=True, eq=False)
class TuneResult:
    """The outcome of :func:`tune_lr`: the best learning rate, a fresh run of it, and the whole response curve.

    Parameters
    ----------
    best_lr : float
        The learning rate with the smallest worst-seed steps to tolerance (ties: smaller final ‖∇f‖).
    best_steps : int
        The worst seed's steps to tolerance of a fresh run of ``best_lr`` with the full cap; −1 if no lr
        reached the tolerance on every seed.
    lrs : numpy.ndarray
        Every lr tried, sorted, shape (P,).
    steps_to_tol : numpy.ndarray
        The response curve: worst-seed steps to tolerance per lr, −1 where some seed did not reach it within
        that lr's cap (``steps`` is its deprecated name: ``steps`` is the iteration cap everywhere else).
    final_grad_norm : numpy.ndarray
        Worst-seed final ‖∇f‖ per lr (inf when a run diverged).
    diverged : numpy.ndarray
        bool per lr: some seed diverged.
    best : Result or list of Result
        The fresh run of ``best_lr`` (one Result per problem when a list of problems was tuned).
    caps : numpy.ndarray or None
        The step cap each lr ran under (the full ``steps`` unless ``race=True``).
    fragile : bool
        ``best_lr·(1 ± neighbourhood)`` missed the tolerance on some seed or needed more than twice
        ``best_steps`` (module docstring).
    note : str
        The neighbours' step counts when fragile, else "".
    neighbours : dict or None
        lr → worst-seed steps (−1 = missed) of the neighbourhood check; None if it was skipped.

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


def _score(parts: list, n_lr: int, max_steps: int):
    """Per lr: the worst seed's steps (max_steps + 1 where one missed), its final ‖∇f‖, any seed diverged;
    ``parts``: :func:`_parts` of each problem's runs (lr-major)."""
    stt = np.concatenate([p[0].reshape(n_lr, -1) for p in parts], axis=1)
    worst = np.where((stt < 0).any(axis=1), max_steps + 1, stt.max(axis=1))
    fin = np.concatenate([p[1].reshape(n_lr, -1) for p in parts], axis=1)
    fin = np.where(np.isfinite(fin), fin, np.inf).max(axis=1)
    div = np.concatenate([p[2].reshape(n_lr, -1) for p in parts], axis=1).any(axis=1)
    fin = np.where(div, np.inf, fin)
    return worst, fin, div


class _Race:
    """The first grid's race on one problem: :func:`_parts` of ``run(problem, opt, seeds=seeds, steps=cap,
    tol=tol, method=method)`` for the caps in turn, bit for bit.  Where that run takes the compiled scan, the
    runs are not restarted for each cap: one :class:`~quadlab._engine.scan.Batch` is advanced from cap to cap,
    recording at every cap's "log" steps, and each cap reads its own steps (so its final ‖∇f‖ is the one a run
    with that cap records); elsewhere each cap is its own run."""

    def __init__(self, problem, opt, seeds, caps, tol, method):
        self.args = (problem, opt, seeds, tol, method)
        self.rec = np.unique(np.concatenate([record_steps("log", c) for c in caps]))
        self.batch = _scan_batch(problem, opt, seeds, max(caps), tol, method, self.rec)

    def parts(self, cap: int):
        problem, opt, seeds, tol, method = self.args
        if self.batch is None:
            return _parts(run(problem, opt, seeds=seeds, steps=cap, tol=tol, method=method))
        with np.errstate(all="ignore"):  # as run(): a diverging run's overflow is its status, not a warning
            self.batch.advance(cap)
        _, gnorm, to_tol, stop, status = self.batch.result()
        mine = np.isin(self.rec, record_steps("log", cap))
        g = gnorm[:, mine].copy()
        g[self.rec[mine][None, :] > stop[:, None]] = np.nan  # as run(): nothing recorded after a run stopped
        return to_tol.copy(), _last_finite(g), status == "diverged"  # final ‖∇f‖ as Result.final reads it


def _scan_batch(problem, optimizer, seeds, steps: int, tol, method: str, record):
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
    config, E0 = _configs(problem, optimizer, None, seeds)
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


def tune_lr(problem, optimizer: Optimizer, lr_range=(1e-6, 10.0), points: int = 24, refine: int = 2,
            refine_points: int = 8, seeds=(0,), steps: int = 10_000, tol: float = 1e-6,
            method: str = "auto", race: bool = False, neighbourhood: float | None = 0.02) -> TuneResult:
    """Search the learning rate of ``optimizer`` on ``problem``: a log grid, refined, scored by the worst seed.

    The score of an lr is the number of steps every seed needs to reach ‖∇f(w_k)‖ ≤ tol·‖∇f(w₀)‖ (a seed that
    never gets there scores ``steps + 1``), ties broken by the final ‖∇f‖.  A log grid of ``points`` lrs over
    ``lr_range`` runs as one batched :func:`quadlab.run`; then ``refine`` times a finer grid of
    ``refine_points`` between the best lr's two neighbours.  The best lr is re-run alone with the full cap
    (bit-identical to its grid run, since runs are batch independent) and its neighbours ``best·(1 ± neighbourhood)``
    are checked for fragility (module docstring).

    Parameters
    ----------
    problem : BlockQuadratic or list of BlockQuadratic
        One problem, or one per seed (e.g. one rotation per seed: problem i runs with ``seeds[i]``).
    optimizer : Optimizer
        Tuned in ``lr`` alone; its other hyperparameters must have one value each.
    lr_range : (float, float), default (1e-6, 10.0)
        0 < lo < hi, finite: the first grid's ends.
    points : int, default 24
        The first grid's size, ≥ 3.
    refine : int, default 2
        Number of refinements.
    refine_points : int, default 8
        Each refinement's grid size.
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
        (steps/64, steps/16, steps/4, steps) until some lr reaches tol; runs on the compiled scan are continued
        from cap to cap rather than restarted, with the same results (an lr that needs more than the cap cannot beat one that reached it within the cap), and
        each refinement runs only up to the best worst-seed count found so far; lrs that lost the race read
        "not reached" (see ``caps``).
    neighbourhood : float or None, default 0.02
        Relative offset of the fragility check, in (0, 1); None skips it.

    Returns
    -------
    TuneResult
        The best lr, its fresh run and the response curve.

    Raises
    ------
    ValueError
        If the optimizer has no lr grid or several values of another hyperparameter, the number of problems and
        seeds differ, ``lr_range`` is not 0 < lo < hi finite, ``points`` < 3 or ``neighbourhood`` ∉ (0, 1); and
        whatever :func:`quadlab.run` rejects (steps, tol, seeds).

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim, spectra, tune
    >>> probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(200), seed=s) for s in (0, 1)]
    >>> t = tune.tune_lr(probs, optim.gd(), lr_range=(1e-3, 1e-2), points=4, refine=1, seeds=[0, 1],
    ...                  steps=20_000, tol=1e-4, race=True)
    >>> len(t.best), bool(t.best_lr <= 2 / 201 + 1e-12), t.fragile
    (2, True, False)
    """
    if neighbourhood is not None and not (np.isfinite(neighbourhood) and 0 < neighbourhood < 1):
        raise ValueError(f"neighbourhood must lie in (0, 1) or be None, got {neighbourhood!r}")
    many = isinstance(problem, (list, tuple))
    problems = list(problem) if many else [problem]
    if many and len(seeds) != len(problems):
        raise ValueError(f"{len(problems)} problems need as many seeds, got {len(seeds)}")
    pairs = list(zip(problems, [[s] for s in seeds], strict=True)) if many else [(problem, list(seeds))]
    if "lr" not in optimizer.hyper:
        raise ValueError(f"{optimizer.name} has no learning-rate grid to tune (options: {optimizer.options})")
    others = {k: v for k, v in optimizer.hyper.items() if k != "lr"}
    if any(v.size > 1 for v in others.values()):
        raise ValueError(f"tune_lr tunes lr alone: fix the other hyperparameters of {optimizer.name} to one value")
    lo, hi = float(lr_range[0]), float(lr_range[1])
    if not (0 < lo < hi and np.isfinite(hi)):
        raise ValueError(f"lr_range must satisfy 0 < lo < hi, got {lr_range!r}")
    if points < 3:
        raise ValueError(f"points must be at least 3, got {points}")
    seeds = list(seeds)
    all_lr, all_steps, all_fin, all_div = [], [], [], []
    grid = np.geomspace(lo, hi, points)
    best = None
    all_cap = []

    def each(lrs, cap):
        # one run() per problem, side by side on the cores (quadlab._engine.threads; the same results)
        opt = optimizer.with_hyper(lr=lrs)
        return map_calls(lambda ps: run(ps[0], opt, seeds=ps[1], steps=cap, tol=tol, method=method), pairs)

    def attempt(grid, cap):
        return _score([_parts(r) for r in each(grid, cap)], grid.size, cap)

    for it in range(refine + 1):
        if race and it == 0:
            # the first grid's race: the next cap only while no lr has reached tol, the runs continued
            opt = optimizer.with_hyper(lr=grid)
            caps = race_caps(steps)
            racers = map_calls(lambda ps, o=opt, c=caps: _Race(ps[0], o, ps[1], c, tol, method), pairs)
            for cap in caps:
                worst, fin, div = _score(map_calls(lambda rc, c=cap: rc.parts(c), racers), grid.size, cap)
                if (worst <= cap).any():
                    break
            del racers  # every problem's batch, with its iterates and records: not kept through the refinements
        else:
            best_score = float(np.concatenate(all_steps).min()) if it else steps + 1
            cap = int(best_score) if race and best_score <= steps else steps
            worst, fin, div = attempt(grid, cap)
        all_lr.append(grid), all_steps.append(worst), all_fin.append(fin), all_div.append(div)
        all_cap.append(np.full(grid.size, cap))
        lrs = np.concatenate(all_lr)
        sc = np.concatenate(all_steps)
        fn = np.concatenate(all_fin)
        order = np.lexsort((fn, sc))
        best = lrs[order[0]]
        if it == refine:
            break
        u = np.unique(lrs)
        j = int(np.searchsorted(u, best))
        left = u[j - 1] if j > 0 else best / 2
        right = u[j + 1] if j + 1 < u.size else best * 2
        grid = np.geomspace(left, right, refine_points + 2)[1:-1]
    lrs = np.concatenate(all_lr)
    order = np.argsort(lrs)
    steps_arr = np.concatenate(all_steps)[order]
    caps = np.concatenate(all_cap)[order]
    steps_arr = np.where(steps_arr > caps, -1, steps_arr)
    best_res = each(best, steps)
    bs = np.concatenate([r.steps_to_tol for r in best_res])
    best_steps = int(bs.max()) if (bs >= 0).all() else -1
    fragile, note, neigh = False, "", None
    if neighbourhood is not None and best_steps >= 0:
        near = np.array([best * (1 - neighbourhood), best * (1 + neighbourhood)])
        res = each(near, steps)
        stt = np.concatenate([r.steps_to_tol.reshape(2, -1) for r in res], axis=1)
        worst = np.where((stt < 0).any(axis=1), -1, stt.max(axis=1))
        neigh = {float(lr): int(w) for lr, w in zip(near, worst, strict=True)}
        bad = (worst < 0) | (worst > 2 * max(best_steps, 1))
        if bad.any():
            fragile = True
            note = (f"fragile: at lr {best:.6g} every seed reaches tol in {best_steps} steps, but at "
                    + " and ".join(f"{lr:.6g} ({'misses tol' if w < 0 else f'{w} steps'})"
                                   for lr, w in neigh.items())
                    + f" (±{neighbourhood:g}); the count depends on the exact step")
    return TuneResult(
        best_lr=float(best), best_steps=best_steps, lrs=lrs[order],
        steps_to_tol=steps_arr, final_grad_norm=np.concatenate(all_fin)[order],
        diverged=np.concatenate(all_div)[order], best=best_res if many else best_res[0], caps=caps,
        fragile=fragile, note=note, neighbours=neigh,
    )
