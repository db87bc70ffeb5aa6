"""Sweep: run every (problem, optimizer, hyperparameters, seed) of a TOML spec and keep tidy records.

    quadlab sweep SPEC.toml [--out DIR] [--fresh] [--scheduler local|tcp://HOST:PORT] [--workers N] [--quiet]

The spec format is documented in ``quadlab.sweep`` (and ``examples/sweep.toml`` is a worked one).  Each
(problem point, optimizer table) pair is one task: one batched run over the table's grid × seeds.  The
records go to ``DIR/records.jsonl`` (default ``out/sweep/<spec name>``): one fsynced JSON line per finished
task, keyed by the content hash of its spec and the quadlab version, holding one row per run.  A rerun (after
a crash, or with more problems or optimizers in the spec) computes only the tasks not recorded yet;
``--fresh`` deletes the records first.  Serial in this process by default; ``--scheduler local`` runs the tasks
on a dask LocalCluster of ``--workers`` processes, ``--scheduler tcp://HOST:PORT`` on a running
``dask scheduler`` (see the README's "Sweeps").  Load the records with ``quadlab.results.load(DIR)``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from quadlab.studies.common import (
    Checkpoint,
    add_dist_options,
    check_output_dir,
    fail,
    new_parser,
    open_executor,
    progress,
)

#: what the records file's header says: rows of this shape, keyed by task content (not by settings)
RECORDS_SETTINGS = {"format": "quadlab-sweep-records", "version": 1}


def main(argv=None) -> int:
    from quadlab import results, sweep
    from quadlab.dist import task_key

    ap = new_parser("sweep", __doc__)
    ap.set_defaults(study="sweep")
    ap.add_argument("spec", type=Path, metavar="SPEC.toml", help="the sweep spec (format: quadlab.sweep)")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for records.jsonl (default out/sweep/<spec file name without .toml>)")
    ap.add_argument("--fresh", action="store_true", help="delete the folder's records and compute every task")
    ap.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    add_dist_options(ap)
    args = ap.parse_args(argv)
    if not args.spec.is_file():
        fail(ap, f"{args.spec}: no such spec file; pass a TOML spec (examples/sweep.toml is one)")
    try:
        tasks = sweep.load_spec(args.spec)
        out = check_output_dir(args.out or Path("out") / "sweep" / args.spec.stem, "--out")
        store = Checkpoint(out / results.RECORDS, RECORDS_SETTINGS, fresh=args.fresh)
    except ValueError as exc:
        fail(ap, str(exc))
    keys = [task_key(t) for t in tasks]
    reused = sum(k in store for k in set(keys))
    with open_executor(ap, args) as ex:
        values = ex.map(sweep.run_task, tasks, keys=keys, store=store,
                        progress=lambda it, n: progress(it, total=n, desc="sweep tasks", quiet=args.quiet))
    if not args.quiet:
        rows = [row for v in values for row in v]
        status = Counter(r["status"] for r in rows)
        print(f"{len(set(keys))} tasks ({len(set(keys)) - reused} computed, {reused} reused), {len(rows)} runs: "
              + ", ".join(f"{n} {s}" for s, n in sorted(status.items())))
        print(f"records: {store.path}  (quadlab.results.load({str(out)!r}) gives the DataFrame)")
    return 0

