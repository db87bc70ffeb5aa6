"""When a number is a property of the mathematics: the one stability rule of the tuner and the studies.

A step count can turn on the last bit of a rounding: Adam with β2 < 1 and a constant step stalls with ‖∇f‖
hovering just above the tolerance, where the exact step, the exact start or the CPU's SIMD width decides
whether tol is ever met.  quadlab builds its own instances in fixed-order arithmetic
(:mod:`quadlab._engine.portable`), so a study gives the same bits on every CPU; but a user's own problem will
differ in the last bit anyway, so each study cell's stability is measured and an unstable cell is reported as
the range of outcomes it showed, never as one number.

* :func:`same_outcome`: two outcomes agree when both missed tol, or both reached it within ``STABLE_FACTOR``
  (1.5×) of each other.
* :func:`divergence_edge`: the lr neighbours past a divergence edge, which the check does not compare (GD's
  best step sits a few per cent below 2/λ_max).
* :func:`median_steps`: a cell's statistic, the median over seeds with a miss counted as +∞.
* :func:`perturbed_starts`, :func:`cell_stability`: a cell against the same cell under its tuning's lr
  neighbours (:func:`quadlab.tune.tune_lr`, ±10 %) and under its starts moved by ``PERTURBATION`` (≈ 8.9e-16)
  relative: unstable when some outcome differs by :func:`same_outcome`.
"""

from __future__ import annotations

import numpy as np

from ._engine.threads import map_calls
from .problem import start_offsets
from .runner import run

__all__ = ["STABLE_FACTOR", "PERTURBATION", "same_outcome", "divergence_edge", "median_steps", "perturbed_starts",
           "cell_stability", "neighbour_variants", "MAX_VARIANTS"]

#: Two outcomes are the same when both missed tol, or both reached it with counts within this factor.
STABLE_FACTOR = 1.5


def same_outcome(a, b, factor: float = STABLE_FACTOR) -> bool:
    """Whether two outcomes agree: both missed (None, a negative count or +∞), or both reached with
    max(a, b) ≤ factor·min(a, b) (counts of 0 compare as 1).  The one stability rule of the tuner and the
    studies.

    Parameters
    ----------
    a, b : int, float or None
        Steps to tolerance; None, a negative count or +∞ means missed.
    factor : float, default STABLE_FACTOR
        The largest ratio that still counts as the same outcome, ≥ 1.

    Returns
    -------
    bool

    Examples
    --------
    >>> same_outcome(200, 290), same_outcome(200, 310), same_outcome(None, -1), same_outcome(None, 5)
    (True, False, True, False)
    """
    if not factor >= 1:
        raise ValueError(f"factor must be >= 1 (a ratio of step counts), got {factor!r}")

    def missed(x):
        return x is None or x < 0 or not np.isfinite(x)

    if missed(a) or missed(b):
        return missed(a) and missed(b)
    lo, hi = max(min(a, b), 1), max(a, b, 1)
    return hi <= factor * lo


def divergence_edge(lrs, diverged, best: float) -> tuple:
    """The neighbours of ``best`` that lie past a divergence edge: on either side, an lr that diverged (on some
    seed) together with every lr further out on that side.

    GD's best step sits a few per cent below its stability limit 2/λ_max, where a larger step diverges for every
    start: an edge of the problem, smooth and the same on every machine, not the last-bit sensitivity the
    stability check looks for (a stall regime where tol is met or missed by chance).  The stability check
    compares the other neighbours only; an lr whose instance perturbation moves it over the edge is caught by
    the perturbation half of the check.

    Parameters
    ----------
    lrs : array_like
        The neighbours' lrs.
    diverged : array_like of bool
        Whether each diverged on some seed.
    best : float
        The chosen lr.

    Returns
    -------
    tuple of float
        The lrs past an edge.

    Examples
    --------
    >>> divergence_edge([0.9, 0.95, 1.05, 1.1], [False, False, True, True], 1.0)
    (1.05, 1.1)
    >>> divergence_edge([0.9, 0.95, 1.05, 1.1], [False, False, True, False], 1.0)
    ()
    """
    lrs, div = np.asarray(lrs, dtype=np.float64).ravel(), np.asarray(diverged, dtype=bool).ravel()
    if lrs.shape != div.shape:
        raise ValueError(f"lrs and diverged must have one entry each, got {lrs.size} and {div.size}")
    out = []
    for side in (lrs < best, lrs > best):
        idx = np.flatnonzero(side)
        idx = idx[np.argsort(np.abs(lrs[idx] - best), kind="stable")]  # nearest first
        d = div[idx]
        # the first diverged neighbour from which every one further out diverged too
        for j in range(d.size):
            if d[j:].all():
                out.extend(float(v) for v in lrs[idx[j:]])
                break
    return tuple(sorted(out))


#: Relative size of the start perturbation of the stability check: about 8.9e-16, a few ulps of each coordinate.
PERTURBATION = 2.0 ** -50


def median_steps(per_seed) -> int | None:
    """The studies' statistic of a cell: the median over seeds of the steps to tolerance, a seed that missed
    (None or a negative count) counted as +∞; None when that median is +∞ (rounded to an integer).

    Parameters
    ----------
    per_seed : sequence of int or None
        Each seed's steps to tolerance.

    Returns
    -------
    int or None

    Examples
    --------
    >>> median_steps([100, None, 300]), median_steps([100, None, None]), median_steps([100, 201])
    (300, None, 150)
    """
    v = np.array([np.inf if s is None or s < 0 else s for s in per_seed], dtype=np.float64)
    m = float(np.median(v))
    return int(round(m)) if np.isfinite(m) else None


#: The start patterns of :func:`perturbed_starts`: u_0 = (1, 1, …), u_1 = (1, −1, 1, …), u_2 = −u_0, u_3 = −u_1.
MAX_VARIANTS = 4


def _variants(variants) -> int:
    if isinstance(variants, bool) or not isinstance(variants, (int, np.integer)) or not 1 <= variants <= MAX_VARIANTS:
        raise ValueError(f"variants must be an integer from 1 to {MAX_VARIANTS} (the perturbation patterns), "
                         f"got {variants!r}")
    return int(variants)


def perturbed_starts(problem, seed: int, variants: int = 2) -> np.ndarray:
    """Starts of ``seed`` moved in their last bits: w* + ξ ⊙ (1 + δ·u_v) with ξ the seed's start offset
    (:func:`quadlab.problem.starts`), δ = ``PERTURBATION`` and u_0 = (1, 1, …), u_1 = (1, −1, 1, …),
    u_2 = −u_0, u_3 = −u_1: the start as a user's own code might round it, a few ulps away (H itself is not
    perturbed).

    Parameters
    ----------
    problem : BlockQuadratic
    seed : int
        A non-negative seed.
    variants : int, default 2
        1 to ``MAX_VARIANTS``.

    Returns
    -------
    numpy.ndarray
        (variants, n).

    Raises
    ------
    ValueError
        If ``variants`` is not an integer from 1 to 4, or ``seed`` is not a non-negative integer.
    """
    variants = _variants(variants)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    xi = start_offsets(problem.n, [seed])[0]
    alt = np.where(np.arange(problem.n) % 2 == 0, 1.0, -1.0)
    us = [np.ones(problem.n), alt]
    return np.stack([problem.optimum_host + xi * (1.0 + PERTURBATION * (us[v % 2] * (-1.0) ** (v // 2)))
                     for v in range(variants)])


def _reached(per_seed) -> int:
    return sum(1 for x in per_seed if x is not None and x >= 0)


def cell_stability(runs, optimizer, steps: int, tol: float, *, neighbour_steps=(), variants: int = 2,
                   method: str = "auto") -> dict:
    """Whether a study cell's number is a property of the mathematics: its outcome against the same cell under the
    lr neighbours of the tuning and with its starts moved in their last bits (:func:`perturbed_starts`).

    A cell's outcome is (:func:`median_steps` over seeds, the number of seeds that reached tol); two outcomes
    agree when their medians agree by :func:`same_outcome` and as many seeds reached tol, so neither the number
    nor its (k/n) may depend on a last bit.

    Parameters
    ----------
    runs : list of (BlockQuadratic, int, float or None, int or None)
        Per seed: its problem, its seed, the lr it ran with (None: the optimizer's own, e.g. a named rule) and
        its steps to tol (None or −1: missed).  At least one.
    optimizer : Optimizer
        The optimizer of the cell (one configuration, or its lr replaced per seed).
    steps, tol : int, float
        The cell's cap and tolerance.
    neighbour_steps : sequence of sequences, keyword-only
        Per lr-neighbour variant, every seed's steps (−1 or None: missed), e.g. :func:`neighbour_variants`.
    variants : int, keyword-only, default 2
        Perturbed starts per seed, 1 to 4.
    method : str, keyword-only
        Passed to :func:`quadlab.run`.

    Returns
    -------
    dict
        ``{"unstable": bool, "range": [lo, hi], "outcomes": int}``: lo and hi the least and largest median
        over the cell and its variants (None: +∞), and how many variants were compared.

    Raises
    ------
    ValueError
        If ``runs`` is empty or not made of (problem, seed, lr, steps) tuples, a neighbour variant has another
        number of seeds, or ``variants`` is not an integer from 1 to 4.
    """
    variants = _variants(variants)
    runs = list(runs)
    if not runs or not all(isinstance(r, (tuple, list)) and len(r) == 4 for r in runs):
        raise ValueError("runs must be a non-empty list of (problem, seed, lr or None, steps or None) tuples, one "
                         "per seed")
    neighbour_steps = [list(v) for v in neighbour_steps]
    if any(len(v) != len(runs) for v in neighbour_steps):
        raise ValueError(f"every neighbour variant needs one count per seed ({len(runs)})")
    own = [r[3] for r in runs]
    cell = (median_steps(own), _reached(own))

    def one(r):
        p, s, lr, _ = r
        opt = optimizer if lr is None else optimizer.with_hyper(lr=lr)
        W = perturbed_starts(p, s, variants)
        return [int(run(p, opt, w0=W[v], seeds=[s], steps=steps, tol=tol, method=method).steps_to_tol[0])
                for v in range(variants)]

    pert = map_calls(one, runs) if len({id(r[0]) for r in runs}) == len(runs) else [one(r) for r in runs]
    groups = [[p[v] for p in pert] for v in range(variants)] + neighbour_steps
    outcomes = [(median_steps(g), _reached(g)) for g in groups]
    medians = [cell[0]] + [o[0] for o in outcomes]
    finite = [m for m in medians if m is not None]
    lo = min(finite) if finite else None
    hi = None if any(m is None for m in medians) else max(finite)
    same = all(same_outcome(cell[0], o[0]) and cell[1] == o[1] for o in outcomes)
    return {"unstable": not same, "range": [lo, hi], "outcomes": len(outcomes)}


def neighbour_variants(tuned) -> list[list[int]]:
    """The lr-neighbour variants of a cell for :func:`cell_stability`.

    From a shared :class:`quadlab.tune.TuneResult`: one variant per neighbour lr with every seed's steps, where a
    seed past its own divergence edge at that lr (``past_edge``) counts its best-lr count instead.  From a list
    of per-seed TuneResults (one seed each): variant j takes each seed's j-th neighbour, likewise.

    Parameters
    ----------
    tuned : TuneResult or sequence of TuneResult
        A shared search's result, or the per-seed ones (``TuneResult.per_seed``).

    Returns
    -------
    list of list of int
        One list of per-seed steps (−1: missed) per variant; empty without a neighbourhood check.
    """
    if hasattr(tuned, "neighbour_steps"):
        if not tuned.neighbour_steps:
            return []
        best = [int(r.steps_to_tol[0]) if r.status[0] != "diverged" else -1
                for r in (tuned.best if isinstance(tuned.best, list) else [tuned.best])]
        if len(best) != len(tuned.seeds):  # one problem and several seeds: one Result holding them all
            r = tuned.best
            best = [int(x) if st != "diverged" else -1 for x, st in zip(r.steps_to_tol, r.status)]
        past = set(tuned.past_edge)
        return [[best[j] if (lr, j) in past else int(x) for j, x in enumerate(v)]
                for lr, v in sorted(tuned.neighbour_steps.items())]
    per = [sorted((t.neighbour_steps or {}).items()) for t in tuned]
    if not per or not all(per):
        return []
    out = []
    for j in range(min(len(p) for p in per)):
        out.append([int(t.best_steps) if (p[j][0], 0) in set(t.past_edge) else int(p[j][1][0])
                    for t, p in zip(tuned, per)])
    return out
