"""Sweeps from a TOML spec: any grid of problems × optimizers × hyperparameters × seeds, as tidy records.

A spec (read with the standard library's ``tomllib``; ``examples/sweep.toml`` is a worked one)::

    steps = 20000          # step cap of every run (required, >= 1)
    tol = 1e-6             # a run converges at the first k with ‖∇f(w_k)‖ <= tol·‖∇f(w_0)‖, 0 < tol < 1
    seeds = 3              # the starts' seeds: n means 0..n-1, or a list [0, 4, 7]; w_0 = w* + N(0, I)
    method = "auto"        # the runner's path: "auto" (closed form for linear methods), "iterate", "closed_form"

    [[problem]]            # one table per problem family; a list value is a grid axis (outer product)
    case = "simple_heterogeneous"   # or simple_homogeneous, gpt2, resnet18 (case3, case4, case1, case2)
    kappa = [1e3, 1e4]
    rotation = "block"     # "block" (a Haar rotation per block, default), "global" or "none"
    problem_seed = 0       # the rotations' seed (default 0)

    [[problem]]
    family = "log_uniform" # uniform, log_uniform, bulk_outliers, marchenko_pastur (quadlab.spectra)
    block_size = 20        # eigenvalues per block
    n_blocks = 3           # blocks l = 0..n_blocks-1, block l scaled by block_scale**l
    block_scale = [1, 10, 100]
    lo = 1.0
    hi = 10.0              # the family's own arguments (bulk_outliers: lo, hi, n_outliers, top; ...)
    kappa = 5000           # optional: one affine map of all blocks to [1, kappa]

    [[optimizer]]          # one table per optimizer; a list value is a hyperparameter grid of one batched run
    name = "adam"          # gd, heavy_ball, nesterov, adam, rmsprop, adam_mini, adam_theory, blockwise_gd, jacobi_gd
    lr = [1e-3, 1e-2, 1e-1]
    b1 = [0.0, 0.9]

    [[optimizer]]
    name = "gd"
    lr = "optimal"         # a named rule where the optimizer has one (gd: "optimal"; adam_theory: "theorem")

    [[optimizer]]
    name = "heavy_ball"
    momentum = 0.9
    tune = { lr_range = [1e-5, 1e-1], points = 12, refine = 1 }   # quadlab.tune.tune_lr instead of a grid

Cases: ``gpt2``/``resnet18`` take ``reading`` (a key of ``quadlab.stored.READINGS``), ``q`` and ``d``
(eigenvalues per block, default 25); the simple cases only ``kappa``.  Families: their
:mod:`quadlab.spectra` arguments, ``spectrum_seed`` (their ``seed``: draws instead of quantiles), and
``block_size``, ``n_blocks`` (default 1), ``block_scale`` (default 1), ``kappa`` (optional).

Tasks.  Every (problem point, optimizer table) pair is one task: one batched ``quadlab.run`` over the table's
whole hyperparameter grid × seeds (or one ``tune_lr``), so the batching inside a process stays.  A task's spec
is a plain dict; the worker builds the problem from it (seeded: the same bits on every machine).  Its key is
:func:`quadlab.dist.task_key` (content hash of the spec and the quadlab version), so a rerun, or a bigger spec
sharing some tasks, computes only what is not recorded yet.

Rows (:func:`run_task`): the problem point's parameters, ``n``, the run's row from
:func:`quadlab.results.result_rows` (optimizer, hyperparameters, seed, status, steps_to_tol, final ‖∇f‖,
f − f*, …), ``tuned`` (and ``fragile`` when tuned), ``task`` (the key) and ``seconds`` (the task's wall time,
shared by its rows: the only field that differs between two runs of the same spec).

Examples
--------
>>> spec = {"steps": 2000, "tol": 1e-6, "seeds": 2,
...         "problem": [{"case": "simple_heterogeneous", "kappa": [200.0, 400.0]}],
...         "optimizer": [{"name": "adam_theory"}]}
>>> tasks = expand(spec)
>>> len(tasks), tasks[0]["problem"]
(2, {'case': 'simple_heterogeneous', 'kappa': 200.0})
>>> rows = run_task(tasks[0])
>>> [(r["seed"], r["status"]) for r in rows]
[(0, 'converged'), (1, 'converged')]
"""

from __future__ import annotations

import inspect
import itertools
import math
import time
import tomllib
from pathlib import Path

import numpy as np

__all__ = ["CASES", "FAMILIES", "OPTIMIZERS", "build_problem", "build_spectrum", "expand", "load_spec", "run_task"]

CASES = {"simple_heterogeneous": "simple_heterogeneous", "case3": "simple_heterogeneous",
         "simple_homogeneous": "simple_homogeneous", "case4": "simple_homogeneous",
         "gpt2": "gpt2", "case1": "gpt2", "resnet18": "resnet18", "case2": "resnet18"}
FAMILIES = ("uniform", "log_uniform", "bulk_outliers", "marchenko_pastur")
OPTIMIZERS = ("gd", "heavy_ball", "nesterov", "adam", "rmsprop", "adam_mini", "adam_theory", "blockwise_gd",
              "jacobi_gd")
_TOP = {"steps", "tol", "seeds", "method", "problem", "optimizer", "name", "description"}
_COMMON = {"kappa", "rotation", "problem_seed"}
_STORED = {"reading", "q", "d"}
_FAMILY_OWN = {"block_size", "n_blocks", "block_scale", "spectrum_seed"}
_TUNE = {"lr_range", "points", "refine", "refine_points", "race"}


def _where(i: int, kind: str) -> str:
    return f"[[{kind}]] #{i + 1}"


def load_spec(path) -> list[dict]:
    """Read the sweep spec in the TOML file at ``path`` and expand it into task specs (:func:`expand`).

    Parameters
    ----------
    path : str or os.PathLike
        A UTF-8 TOML file in the format of the module docstring (``examples/sweep.toml`` is a worked one).

    Returns
    -------
    list of dict
        The task specs, as :func:`expand` returns them.

    Raises
    ------
    ValueError
        The message starts with the path and says what to fix: a file that cannot be read, is not UTF-8 or
        not TOML, or an unknown key or bad value (named by its table, as in :func:`expand`).

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("tiny.toml").write_text('''
    ... steps = 100
    ... [[problem]]
    ... case = "simple_homogeneous"
    ... kappa = [200.0, 400.0]
    ... [[optimizer]]
    ... name = "gd"
    ... lr = "optimal"
    ... ''')
    >>> [t["problem"]["kappa"] for t in load_spec("tiny.toml")]
    [200.0, 400.0]
    >>> _ = Path("typo.toml").write_text("stpes = 100")
    >>> load_spec("typo.toml")
    Traceback (most recent call last):
    ...
    ValueError: typo.toml: unknown top-level key(s) ['stpes']; allowed: ['description', 'method', 'name',
    'optimizer', 'problem', 'seeds', 'steps', 'tol']
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the spec ({exc.strerror or exc})") from None
    try:
        spec = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not a valid TOML file ({exc})") from None
    try:
        return expand(spec)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _grid(table: dict, skip=()) -> list[dict]:
    """The outer product of a table's list values (a scalar is an axis of one); ``skip`` keys stay as they are."""
    names = [k for k in table if k not in skip]
    axes = [table[k] if isinstance(table[k], list) else [table[k]] for k in names]
    for k, ax in zip(names, axes):
        if not ax:
            raise ValueError(f"{k} is an empty list; give at least one value")
    return [{**{k: table[k] for k in skip if k in table}, **dict(zip(names, combo))}
            for combo in itertools.product(*axes)]


def _seeds(value) -> list[int]:
    if isinstance(value, bool):
        raise ValueError(f"seeds must be a count n (seeds 0..n-1) or a list of integers, got {value!r}")
    if isinstance(value, int):
        if not 1 <= value <= 100_000:
            raise ValueError(f"seeds = {value}: a count must lie in 1..100000")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                 for s in value):
        if len(set(value)) != len(value):
            raise ValueError(f"seeds {value} repeats a seed; list each once")
        return list(value)
    raise ValueError(f"seeds must be a count n (seeds 0..n-1) or a non-empty list of non-negative integers, "
                     f"got {value!r}")


def expand(spec: dict) -> list[dict]:
    """The task specs of a parsed sweep spec: one per (problem point, optimizer table), problem points first.

    A ``[[problem]]`` table stands for the outer product of its list values (its points, in the order of its
    keys, the last key varying fastest); an ``[[optimizer]]`` table's lists stay in its tasks, as the grid of one
    batched run.  Every point's spectrum and every optimizer are built here, so a bad value fails before any run.

    Parameters
    ----------
    spec : dict
        A parsed sweep spec: the TOML of the module docstring as ``tomllib`` reads it.

    Returns
    -------
    list of dict
        (number of problem points) × (number of optimizer tables) task specs
        ``{"steps", "tol", "seeds", "method", "problem", "optimizer"}``: the defaults filled in (``tol`` a
        float, 1e-6; ``seeds`` a list; ``method`` "auto"), ``problem`` a table of scalars, ``optimizer`` the
        table as given.  Plain JSON, so that :func:`quadlab.dist.task_key` names each.

    Raises
    ------
    ValueError
        An unknown key or a bad value; the message names the table (``[[problem]] #2``) and the key.

    Examples
    --------
    >>> spec = {"steps": 100, "seeds": 2,
    ...         "problem": [{"case": "simple_homogeneous", "kappa": [200.0, 400.0], "problem_seed": [0, 1]}],
    ...         "optimizer": [{"name": "gd", "lr": "optimal"}, {"name": "adam", "lr": [1e-3, 1e-2]}]}
    >>> tasks = expand(spec)
    >>> len(tasks)                          # 2 × 2 problem points, 2 optimizer tables
    8
    >>> tasks[1]
    {'steps': 100, 'tol': 1e-06, 'seeds': [0, 1], 'method': 'auto',
     'problem': {'case': 'simple_homogeneous', 'kappa': 200.0, 'problem_seed': 0},
     'optimizer': {'name': 'adam', 'lr': [0.001, 0.01]}}
    >>> expand({**spec, "optimizer": [{"name": "adam", "beta1": 0.9}]})
    Traceback (most recent call last):
    ...
    ValueError: [[optimizer]] #1: unknown key(s) ['beta1'] here; allowed: ['b1', 'b2', 'bias_correction', 'eps',
    'lr', 'name', 'tune']
    """
    if not isinstance(spec, dict):
        raise ValueError("a sweep spec is a TOML table")
    unknown = sorted(set(spec) - _TOP)
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown}; allowed: {sorted(_TOP)}")
    steps = spec.get("steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100_000_000:
        raise ValueError(f"steps (the step cap of every run) must be an integer in 1..1e8, got {steps!r}")
    tol = spec.get("tol", 1e-6)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    seeds = _seeds(spec.get("seeds", 1))
    method = spec.get("method", "auto")
    if method not in ("auto", "iterate", "closed_form"):
        raise ValueError(f"method must be auto, iterate or closed_form, got {method!r}")
    problems, optimizers = spec.get("problem"), spec.get("optimizer")
    for name, tables in (("problem", problems), ("optimizer", optimizers)):
        if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
            raise ValueError(f"give at least one [[{name}]] table")
    points = []
    for i, table in enumerate(problems):
        try:
            for point in _grid(table):
                build_spectrum(point)
                _check_placement(point)
                points.append(point)
        except ValueError as exc:
            raise ValueError(f"{_where(i, 'problem')}: {exc}") from None
    opts = []
    for i, table in enumerate(optimizers):
        try:
            _build_optimizer(table)
        except ValueError as exc:
            raise ValueError(f"{_where(i, 'optimizer')}: {exc}") from None
        opts.append(table)
    base = {"steps": steps, "tol": float(tol), "seeds": seeds, "method": method}
    return [{**base, "problem": p, "optimizer": o} for p in points for o in opts]


def _real(point: dict, key: str, lo: float | None = None) -> float:
    v = point[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (lo is not None and v <= lo):
        raise ValueError(f"{key} must be a finite number{'' if lo is None else f' > {lo:g}'}, got {v!r}")
    return float(v)


def build_spectrum(point: dict):
    """The block spectrum Λ = (Λ_1, …, Λ_L) of one problem point.

    A ``case`` point is one of the paper's four cases at condition number κ = ``kappa``.  A ``family`` point is
    L = ``n_blocks`` blocks of ``block_size`` eigenvalues each: the family's block Λ_0 (its quantiles, or
    draws with ``spectrum_seed``), block l being s^l·Λ_0 for s = ``block_scale``
    (:func:`quadlab.spectra.scaled_blocks`), and with ``kappa`` all blocks mapped by one affine map onto
    [1, κ] (:func:`quadlab.spectra.rescale`).  ``rotation`` and ``problem_seed`` are allowed here and used by
    :func:`build_problem`.

    Parameters
    ----------
    point : dict
        One point of a ``[[problem]]`` table's grid (scalars only; the keys of the module docstring).

    Returns
    -------
    quadlab.BlockSpectrum

    Raises
    ------
    ValueError
        Neither or both of ``case`` and ``family``, an unknown case, family or key, a missing argument, or a
        bad value.

    Examples
    --------
    >>> s = build_spectrum({"family": "uniform", "lo": 1.0, "hi": 2.0, "block_size": 3, "n_blocks": 2,
    ...                     "block_scale": 10.0})
    >>> [b.tolist() for b in s.blocks]
    [[1.0, 1.5, 2.0], [10.0, 15.0, 20.0]]
    >>> build_spectrum({"case": "simple_heterogeneous", "kappa": 500.0}).eigenvalues.tolist()
    [1.0, 2.0, 3.0, 99.0, 100.0, 101.0, 498.0, 499.0, 500.0]
    """
    from quadlab import spectra, stored

    kinds = [k for k in ("case", "family") if k in point]
    if len(kinds) != 1:
        raise ValueError("name exactly one of case = ... or family = ...")
    if "case" in point:
        case = CASES.get(point["case"]) if isinstance(point["case"], str) else None
        if case is None:
            raise ValueError(f"case {point['case']!r} is not one of {', '.join(CASES)}")
        allowed = {"case"} | _COMMON | (_STORED if case in ("gpt2", "resnet18") else set())
        _check_keys(point, allowed)
        if "kappa" not in point:
            raise ValueError(f"case {point['case']} needs kappa")
        kappa = _real(point, "kappa", 1.0)
        if case.startswith("simple"):
            if kappa <= 103:
                raise ValueError(f"kappa {kappa:g}: the simple cases need kappa > 103 (their middle block is "
                                 "{99, 100, 101})")
            return getattr(spectra, case)(kappa)
        kw = {k: point[k] for k in ("reading", "q", "d") if k in point}
        return (stored.gpt2_case if case == "gpt2" else stored.resnet18_case)(kappa=kappa, **kw)
    family = point["family"]
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
    fn = getattr(spectra, family)
    params = [p for p in inspect.signature(fn).parameters if p not in ("d", "seed")]
    _check_keys(point, {"family"} | _COMMON | _FAMILY_OWN | set(params))
    d, n_blocks = point.get("block_size"), point.get("n_blocks", 1)
    for key, v in (("block_size", d), ("n_blocks", n_blocks)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")
    missing = [p for p, par in inspect.signature(fn).parameters.items()
               if par.default is inspect.Parameter.empty and p != "d" and p not in point]
    if missing:
        raise ValueError(f"family {family} needs {', '.join(missing)}")
    base = fn(d, **{p: point[p] for p in params if p in point}, seed=point.get("spectrum_seed"))
    scale = _real(point, "block_scale", 0.0) if "block_scale" in point else 1.0
    spec = spectra.scaled_blocks(base, n_blocks, scale)
    return spectra.rescale(spec, _real(point, "kappa", 1.0)) if "kappa" in point else spec


def _check_keys(point: dict, allowed: set) -> None:
    unknown = sorted(set(point) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} here; allowed: {sorted(allowed)}")


def _check_placement(point: dict) -> None:
    from quadlab.problem import ROTATIONS

    if point.get("rotation", "block") not in ROTATIONS:
        raise ValueError(f"rotation {point['rotation']!r} is not one of {', '.join(ROTATIONS)}")
    seed = point.get("problem_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"problem_seed must be a non-negative integer, got {seed!r}")


def build_problem(point: dict, xp="numpy"):
    """The quadratic f(w) = ½ (w − w*)ᵀ H (w − w*), H = Q diag(Λ) Qᵀ, of one problem point.

    Λ is the point's spectrum (:func:`build_spectrum`); Q is drawn from ``problem_seed`` as ``rotation`` says,
    so a point gives the same H, bit for bit, on every machine.

    Parameters
    ----------
    point : dict
        A problem point, with optional ``rotation`` ("block": a Haar rotation per block, the default;
        "global"; "none") and ``problem_seed`` (a non-negative integer, default 0).
    xp : str or array namespace, default "numpy"
        The array backend of the problem (:mod:`quadlab.backend`).

    Returns
    -------
    quadlab.BlockQuadratic

    Raises
    ------
    ValueError
        A bad point (:func:`build_spectrum`), an unknown ``rotation`` or a bad ``problem_seed``.

    Examples
    --------
    >>> point = {"case": "simple_heterogeneous", "kappa": 500.0, "problem_seed": 3}
    >>> p, q = build_problem(point), build_problem(dict(reversed(point.items())))
    >>> p.n, p.is_block_diagonal, bool((p.dense() == q.dense()).all())
    (9, True, True)
    >>> err = np.abs(np.linalg.eigvalsh(p.dense()) - np.sort(p.eigenvalues)).max()
    >>> bool(err <= 64 * p.kappa * np.finfo(float).eps)
    True
    """
    import quadlab

    _check_placement(point)
    return quadlab.BlockQuadratic(build_spectrum(point), rotation=point.get("rotation", "block"),
                                  seed=point.get("problem_seed", 0), xp=xp)


def _build_optimizer(table: dict):
    """(optimizer, tune settings or None) of an [[optimizer]] table."""
    from quadlab import optim

    name = table.get("name")
    if name not in OPTIMIZERS:
        raise ValueError(f"name {name!r} is not one of {', '.join(OPTIMIZERS)}")
    fn = getattr(optim, name)
    params = set(inspect.signature(fn).parameters)
    _check_keys(table, {"name", "tune"} | params)
    kw = {k: v for k, v in table.items() if k not in ("name", "tune")}
    try:
        opt = fn(**kw)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None
    tune = table.get("tune")
    if tune is not None:
        if not isinstance(tune, dict):
            raise ValueError("tune must be a table, e.g. tune = { lr_range = [1e-4, 1.0], points = 12 }")
        _check_keys(tune, _TUNE)
        if "lr" in table:
            raise ValueError("tune searches the lr: drop lr from a tuned optimizer")
        rng = tune.get("lr_range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, (int, float)) for v in rng)
                and 0 < rng[0] < rng[1] and math.isfinite(rng[1])):
            raise ValueError(f"tune.lr_range must be [lo, hi] with 0 < lo < hi, got {rng!r}")
        if any(np.asarray(v).size > 1 for k, v in opt.hyper.items() if k != "lr"):
            raise ValueError("a tuned optimizer takes one value per hyperparameter (one lr search per table)")
    return opt, tune


def run_task(task: dict) -> list[dict]:
    """Run one task: one batched :func:`quadlab.run` (or :func:`quadlab.tune.tune_lr`) over its grid × seeds.

    Parameters
    ----------
    task : dict
        One element of the list of :func:`expand` (or :func:`load_spec`).

    Returns
    -------
    list of dict
        One row per run, in the Result's run order: the problem point's keys, ``n``, the run's row of
        :func:`quadlab.results.result_rows`, ``tuned`` (and ``fragile`` when tuned), ``task`` (the
        :func:`quadlab.dist.task_key` of ``task``) and ``seconds``, the task's wall time shared by its rows and
        the only field in which two runs of one task differ.  A run that diverges is a row with status
        "diverged", not an exception.

    Raises
    ------
    ValueError
        A bad problem point or optimizer table: the checks of :func:`expand`, for a task written by hand.

    Examples
    --------
    >>> task = expand({"steps": 5000, "seeds": [0, 1], "optimizer": [{"name": "gd", "lr": [0.005, 1.0]}],
    ...                "problem": [{"case": "simple_homogeneous", "kappa": 200.0}]})[0]
    >>> rows = run_task(task)
    >>> [(r["lr"], r["seed"], r["status"]) for r in rows]     # 1.0 > 2/λ_max: GD diverges
    [(0.005, 0, 'converged'), (0.005, 1, 'converged'), (1.0, 0, 'diverged'), (1.0, 1, 'diverged')]
    >>> from quadlab.dist import task_key
    >>> rows[0]["task"] == task_key(task), rows[0]["n"]
    (True, 9)
    >>> def same(a, b):
    ...     return [{k: v for k, v in r.items() if k != "seconds"} for r in a] == [
    ...         {k: v for k, v in r.items() if k != "seconds"} for r in b]
    >>> same(rows, run_task(task))
    True
    """
    from quadlab import run
    from quadlab.dist import task_key
    from quadlab.results import result_rows
    from quadlab.tune import tune_lr

    start = time.perf_counter()
    problem = build_problem(task["problem"])
    opt, tune = _build_optimizer(task["optimizer"])
    extra = {"tuned": tune is not None}
    if tune is None:
        res = run(problem, opt, seeds=task["seeds"], steps=task["steps"], tol=task["tol"], method=task["method"])
    else:
        kw = {k: (tuple(v) if k == "lr_range" else v) for k, v in tune.items()}
        t = tune_lr(problem, opt, seeds=task["seeds"], steps=task["steps"], tol=task["tol"], method=task["method"],
                    **kw)
        res, extra["fragile"] = t.best, bool(t.fragile)
    seconds = time.perf_counter() - start
    key = task_key(task)
    head = {**task["problem"], "n": int(problem.n)}
    return [{**head, **row, **extra, "task": key, "seconds": seconds} for row in result_rows(res)]
