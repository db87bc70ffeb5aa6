"""What every study shares: atomic output files, resumable sweeps, progress bars, figure saving.

Atomic writes: a result file is written to a temporary file in the same folder and renamed over the target
(``os.replace`` is atomic on POSIX), so an interrupted study never leaves a half-written file.

Resumable sweeps: :class:`Checkpoint` keeps the finished points of a sweep in one JSON file, keyed by the
point's parameters and guarded by a fingerprint of the study's settings; a rerun with the same settings skips
every finished point, a rerun with different settings starts afresh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

__all__ = ["Checkpoint", "check_common", "finish", "median_steps", "progress", "run_status", "save_figure",
           "seed_record", "steps_bound", "steps_per_seed", "study_parser", "write_json_atomic", "write_text_atomic"]


def write_text_atomic(text: str, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(obj, path) -> Path:
    return write_text_atomic(json.dumps(obj, indent=2, allow_nan=False) + "\n", path)


def save_figure(fig, stem) -> list[Path]:
    """Save ``fig`` as stem.png and stem.pdf, each atomically."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        path = stem.with_suffix("." + ext)
        tmp = path.with_name(path.stem + ".tmp." + ext)
        fig.savefig(tmp, dpi=130)
        os.replace(tmp, path)
        out.append(path)
    return out


def progress(iterable: Iterable, *, total: int | None = None, desc: str = "", quiet: bool = False):
    """A tqdm bar on stderr (nothing when ``quiet``)."""
    if quiet:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


class Checkpoint:
    """Finished points of a sweep, persisted after each point.

    ``settings``: everything that determines the results (a JSON-serialisable dict); its hash is stored with
    the points, and a file written under other settings is ignored (and replaced on the first new point)."""

    def __init__(self, path, settings: dict):
        self.path = Path(path)
        self.fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        self.points: dict[str, object] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                data = {}
            if data.get("fingerprint") == self.fingerprint:
                self.points = dict(data.get("points", {}))

    @staticmethod
    def key(**params) -> str:
        return json.dumps(params, sort_keys=True)

    def __contains__(self, key: str) -> bool:
        return key in self.points

    def get(self, key: str):
        return self.points[key]

    def put(self, key: str, value) -> None:
        self.points[key] = value
        write_json_atomic({"fingerprint": self.fingerprint, "points": self.points}, self.path)

    def compute(self, key: str, fn: Callable[[], object]):
        """The stored value for ``key``, or ``fn()`` stored now."""
        if key not in self.points:
            self.put(key, fn())
        return self.points[key]


def study_parser(name: str, description: str, quick_help: str) -> argparse.ArgumentParser:
    """The options every study shares: --seeds, --tol, --quick, --out (default out/<name>), --json, --quiet."""
    ap = argparse.ArgumentParser(prog=f"quadlab {name.replace('_', '-')}", description=description)
    ap.add_argument("--seeds", type=int, default=5, help="rotation/start seeds (at most 2 with --quick)")
    ap.add_argument("--tol", type=float, default=1e-6, help="stop at ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--out", type=Path, default=Path("out") / name, help="folder for the figure (PNG and PDF)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here (atomically)")
    ap.add_argument("--quiet", action="store_true", help="no tables, no progress bars")
    return ap


def check_common(ap: argparse.ArgumentParser, args) -> None:
    """Validate the shared options (argparse error naming the option) and create --out."""
    if args.quick:
        args.seeds = min(args.seeds, 2)
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    if not 0 < args.tol < 1:
        ap.error("--tol must lie in (0, 1)")
    args.out.mkdir(parents=True, exist_ok=True)


def finish(result: dict, args, stem: str) -> int:
    """Write --json (atomically) and say where the figure went."""
    if args.json is not None:
        write_json_atomic(result, args.json)
    if not args.quiet:
        print(f"\nfigure: {args.out / (stem + '.png')} (and .pdf)")
    return 0


def steps_bound(rate: float, tol: float, cond: float = 1.0) -> int:
    """Steps k after which √cond·ρ^k ≤ tol for a per-step gap factor rate = ρ² (a tolerance on ‖∇f‖, so the gap
    must shrink by tol²/cond): ⌈ln(cond/tol²)/ln(1/rate)⌉ + 1."""
    from quadlab import theory

    return int(math.ceil(theory.iterations_to(rate, tol * tol / cond))) + 1


def steps_per_seed(results) -> list[int | None]:
    """Steps to tolerance of one-run Results (one per seed); None where a seed never reached it."""
    return [int(r.steps_to_tol[0]) if r.steps_to_tol[0] >= 0 else None for r in results]


def run_status(results) -> str:
    """"converged" when every seed reached the tolerance, else "diverged" if any seed diverged, else
    "not_reached"."""
    if all(s is not None for s in steps_per_seed(results)):
        return "converged"
    return "diverged" if any(str(r.status[0]) == "diverged" for r in results) else "not_reached"


def median_steps(per_seed) -> int | None:
    """Median over seeds with a not-reached seed counted as +∞; None when that median is +∞."""
    m = float(np.median(np.array([np.inf if s is None else s for s in per_seed], dtype=np.float64)))
    return int(round(m)) if np.isfinite(m) else None


def seed_record(results, lr, cap: int) -> dict:
    """The JSON record of one tuned optimizer over seeds: its lr, the median steps to tolerance (None unless
    every seed reached it), the per-seed steps, the status and the step cap."""
    per = steps_per_seed(results)
    return {
        "lr": lr,
        "steps_to_tol": int(np.median(per)) if all(s is not None for s in per) else None,
        "steps_to_tol_per_seed": per,
        "status": run_status(results),
        "max_steps": int(cap),
    }
