"""Runs as tidy records: one row per run, and the records of a sweep folder as a pandas DataFrame.

A row (:func:`result_rows`) holds the run's hyperparameters (every grid axis of its optimizer, resolved
values such as ``lr="optimal"`` under their option names), its ``seed``, ``status`` ("converged",
"max_steps", "diverged"), ``steps_to_tol`` (the first k with ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖; None where never),
``stop_step``, ``grad_norm0`` = ‖∇f(w_0)‖ and, at the last recorded step ``final_step`` (≤ the stop step),
``final_grad_norm`` = ‖∇f(w_k)‖ and ``final_gap`` = f(w_k) − f*.  Non-finite numbers are None (JSON null), so a
diverged run is a row like any other, flagged by its status.

``quadlab sweep`` (:mod:`quadlab.sweep`) writes such rows, with the problem's parameters and the task's
``task`` key and ``seconds`` added, to ``DIR/records.jsonl``: a :class:`quadlab.studies.common.Checkpoint`
file, a header line and then one JSON line ``{"key": task key, "value": [rows]}`` per finished task.
:func:`read_records` flattens those lines (no pandas needed); :func:`load` returns them as a DataFrame.
pandas comes with the dist extra (``pip install "quadlab[dist]"``); without it :func:`load` raises an
ImportError that says so.

Examples
--------
>>> import quadlab
>>> from quadlab import optim, spectra
>>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(200.0), seed=0)
>>> r = quadlab.run(p, optim.gd(lr=[0.002, 0.005]), seeds=[0, 1], steps=50_000, tol=1e-6)
>>> rows = result_rows(r)
>>> [(row["lr"], row["seed"], row["status"]) for row in rows]
[(0.002, 0, 'converged'), (0.002, 1, 'converged'), (0.005, 0, 'converged'), (0.005, 1, 'converged')]
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["RECORDS", "load", "read_records", "result_rows"]

#: the records file inside a sweep folder
RECORDS = "records.jsonl"


def _num(x):
    """A JSON number: Python int/float, None where not finite."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    v = float(x)
    return v if math.isfinite(v) else None


def result_rows(result) -> list[dict]:
    """One dict per run of a :class:`quadlab.Result`, in the Result's run order (see the module docstring).

    Parameters
    ----------
    result : quadlab.Result

    Returns
    -------
    list of dict
        Keys: the optimizer's name as ``optimizer``, every ``result.config`` entry (hyperparameters and
        ``seed``), its string options (e.g. ``lr`` = "optimal" when the lr was resolved by a rule), ``method``,
        ``status``, ``steps_to_tol``, ``stop_step``, ``grad_norm0``, ``final_step``, ``final_grad_norm``,
        ``final_gap``.
    """
    fin_g, fin_f = result.final("grad_norm"), result.final("gap")
    rows = []
    for r in range(result.n_runs):
        ok = np.flatnonzero(np.isfinite(result.grad_norm[r]))
        row = {"optimizer": result.optimizer}
        # a named rule ("optimal", "theorem") is an option, not a grid axis: keep it under its name
        row.update({k: v for k, v in result.options.items() if isinstance(v, (str, bool, int, float))})
        row.update({k: _num(v[r]) for k, v in result.config.items()})
        steps = int(result.steps_to_tol[r])
        row.update({
            "method": result.method,
            "status": str(result.status[r]),
            "steps_to_tol": steps if steps >= 0 else None,
            "stop_step": int(result.stop_step[r]),
            "grad_norm0": _num(result.grad_norm0[r]),
            "final_step": int(result.steps[ok[-1]]) if ok.size else None,
            "final_grad_norm": _num(fin_g[r]),
            "final_gap": _num(fin_f[r]),
        })
        rows.append(row)
    return rows


def _records_path(path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / RECORDS
    if not path.is_file():
        raise ValueError(f"{path}: no sweep records there; pass the --out folder of `quadlab sweep` (it holds "
                         f"{RECORDS}) or the records file itself")
    return path


def read_records(path) -> list[dict]:
    """The rows of a sweep's records, without pandas.

    Parameters
    ----------
    path : str or os.PathLike
        The ``--out`` folder of ``quadlab sweep`` (it holds ``records.jsonl``) or a records file itself.

    Returns
    -------
    list of dict
        Every task's rows, task by task in the order the tasks were first written.  A task written twice
        counts once, with the rows of its last line; the header line and a torn last line (a crash
        mid-append) are skipped.

    Raises
    ------
    ValueError
        No records file at ``path``.

    Examples
    --------
    A task's line written again (a rerun) replaces its rows in place; a torn line is passed over:

    >>> from quadlab.studies.common import Checkpoint
    >>> ck = Checkpoint(Path("sweep") / RECORDS, {"spec": "demo"})
    >>> ck.put("t1", [{"seed": 0, "status": "max_steps"}, {"seed": 1, "status": "converged"}])
    >>> ck.put("t2", [{"seed": 0, "status": "diverged"}])
    >>> ck.put("t1", [{"seed": 0, "status": "converged"}, {"seed": 1, "status": "converged"}])
    >>> with open(ck.path, "a") as fh:
    ...     _ = fh.write('{"key": "t3", "val')
    >>> [(r["seed"], r["status"]) for r in read_records("sweep")]
    [(0, 'converged'), (1, 'converged'), (0, 'diverged')]
    >>> read_records("elsewhere")
    Traceback (most recent call last):
    ...
    ValueError: elsewhere: no sweep records there; pass the --out folder of `quadlab sweep` (it holds
    records.jsonl) or the records file itself
    """
    path = _records_path(path)
    tasks: dict[str, list] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "key" in rec and isinstance(rec.get("value"), list):
            tasks[rec["key"]] = rec["value"]
    return [row for rows in tasks.values() for row in rows]


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError('tidy records as a DataFrame need pandas, which is not installed: '
                          'pip install "quadlab[dist]" (or pip install pandas)', name="pandas") from None
    return pandas


def load(path):
    """The records of a sweep as a pandas DataFrame, one row per run (see :func:`read_records`).

    Parameters
    ----------
    path : the ``--out`` folder of ``quadlab sweep``, or its ``records.jsonl``.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ImportError
        pandas is missing (the message names the dist extra).
    ValueError
        No records at ``path``.

    Examples
    --------
    >>> df = quadlab.results.load("out/sweep/example")                      # doctest: +SKIP
    >>> df.groupby(["kappa", "optimizer"])["steps_to_tol"].median()         # doctest: +SKIP
    """
    pd = _pandas()
    return pd.DataFrame(read_records(path))
