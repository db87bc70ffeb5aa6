"""Every study's JSON at two revisions, compared: a refactoring must not change a single number.

    PYTHONPATH=$PWD python bench/json_identity.py BASE [HEAD] [--only case1_4,rotation] [--keep DIR [--reuse-base]]

BASE and HEAD are git revisions (HEAD defaults to the working tree as it is, uncommitted edits included,
spelled ``WORKTREE``). Each revision other than the working tree is checked out into a temporary
``git worktree add --detach`` folder, removed afterwards. Each study then runs as ``python -m quadlab <study>
<quick arguments> --json <file>`` with PYTHONPATH pointed at that checkout and its working folder in a fresh
temporary folder, so relative output paths written into the JSON are the same at both revisions.

Fields that measure the machine rather than the mathematics (wall-clock seconds, timestamps) are dropped
before the comparison; everything else, floats included, must be equal to the bit: JSON keeps a float's
shortest round-trip repr, so equal text means equal doubles.

Prints one line per study (``identical``, or the first differing paths) and exits 1 if any study differs or
fails at either revision.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: study → its --quick command line; {json} is the JSON file it writes (studies without --quick get small
#: explicit sizes instead). stored-report writes a text report, compared line by line.
STUDIES = {
    "case1_4": ["case1_4", "--quick", "--quiet", "--out", "out/case1_4", "--json", "{json}"],
    "r-distribution": ["r-distribution", "--starts", "400", "--quiet", "--out", "out/r", "--json", "{json}"],
    "theory": ["theory", "--case", "3", "--seeds", "2", "--steps", "400", "--quiet", "--json", "{json}"],
    "heterogeneity-sweep": ["heterogeneity-sweep", "--quick", "--out", "out/het", "--json", "{json}"],
    "rotation": ["rotation", "--quick", "--quiet", "--out", "out/rotation", "--json", "{json}"],
    "kappa-sweep": ["kappa-sweep", "--quick", "--quiet", "--out", "out/kappa", "--json", "{json}"],
    "blockwise-lrs": ["blockwise-lrs", "--quick", "--quiet", "--out", "out/blockwise", "--json", "{json}"],
    "readings": ["readings", "--quick", "--quiet", "--out", "out/readings", "--json", "{json}"],
    "stored-report": ["stored-report", "--seeds", "200", "--out", "{json}"],
}
#: keys whose values are the machine's, not the study's
VOLATILE = re.compile(r"(^|_)(seconds|elapsed|wall|timestamp|date|time|host|pid|duration)(_s)?($|_)", re.I)


def strip_volatile(x):
    """``x`` with every dict entry whose key names a timing or the host removed, recursively."""
    if isinstance(x, dict):
        return {k: strip_volatile(v) for k, v in x.items() if not VOLATILE.search(str(k))}
    if isinstance(x, list):
        return [strip_volatile(v) for v in x]
    return x


def differences(a, b, path: str = "", limit: int = 5) -> list[str]:
    """Up to ``limit`` JSON paths where ``a`` and ``b`` differ (type, keys, length or value)."""
    out: list[str] = []
    if type(a) is not type(b):
        return [f"{path or '/'}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'head' if k not in a else 'base'}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}", limit - len(out))
            if len(out) >= limit:
                break
    elif isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            out += differences(u, v, f"{path}[{i}]", limit - len(out))
            if len(out) >= limit:
                break
    elif a != b and not (isinstance(a, float) and a != a and b != b):  # NaN == NaN here
        out.append(f"{path}: {a!r} vs {b!r}")
    return out[:limit]


def run_study(src: Path, study: str, work: Path) -> tuple[object | None, str, float]:
    """Run one study against the checkout ``src`` in a fresh folder ``work`` (emptied first: a checkpoint left by
    an earlier run would be reused, and the JSON would then only say so); returns (parsed output or None, error
    text, seconds)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    target = work / ("report.txt" if study == "stored-report" else "result.json")
    argv = [a.replace("{json}", target.name) for a in STUDIES[study]]
    env = {**os.environ, "PYTHONPATH": str(src), "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "quadlab", *argv], cwd=work, env=env, capture_output=True,
                          text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1], secs
    if study == "stored-report":
        return target.read_text().splitlines(), "", secs
    return strip_volatile(json.loads(target.read_text())), "", secs


def read_kept(work: Path, study: str) -> tuple[object | None, str, float]:
    """A study's output kept by an earlier call (``--keep``), as :func:`run_study` returns it (0 seconds)."""
    target = work / ("report.txt" if study == "stored-report" else "result.json")
    if not target.is_file():
        return None, f"{target} not kept by an earlier call", 0.0
    if study == "stored-report":
        return target.read_text().splitlines(), "", 0.0
    return strip_volatile(json.loads(target.read_text())), "", 0.0


def checkout(rev: str, root: Path, tmp: Path) -> Path:
    """The folder holding ``rev``: the working tree itself for WORKTREE, else a detached temporary worktree."""
    if rev == "WORKTREE":
        return root
    dest = tmp / f"src-{re.sub(r'[^A-Za-z0-9_.-]', '_', rev)}"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "--quiet", str(dest), rev], check=True)
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Compare every study's JSON at two git revisions.")
    p.add_argument("base", help="git revision to compare against (e.g. df472b4)")
    p.add_argument("head", nargs="?", default="WORKTREE", help="git revision, or WORKTREE (default: the files as "
                                                              "they are now)")
    p.add_argument("--only", help=f"comma-separated studies (default all: {','.join(STUDIES)})")
    p.add_argument("--keep", help="keep each run's outputs under this folder (default: a temporary one, removed)")
    p.add_argument("--reuse-base", action="store_true",
                   help="with --keep: read the base's outputs kept by an earlier call instead of running it again")
    args = p.parse_args(argv)
    if args.reuse_base and not args.keep:
        p.error("--reuse-base reads the outputs an earlier call kept: give the same --keep DIR")
    only = list(STUDIES) if args.only is None else args.only.split(",")
    unknown = [s for s in only if s not in STUDIES]
    if unknown:
        p.error(f"--only: unknown studies {unknown}; choose from {list(STUDIES)}")
    # a kill (SIGTERM) unwinds like Ctrl-C, so the temporary worktrees are removed in the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True, capture_output=True,
                               text=True).stdout.strip())
    with tempfile.TemporaryDirectory(prefix="json-identity-") as tmpname:
        tmp = Path(tmpname)
        keep = Path(args.keep).resolve() if args.keep else tmp / "runs"
        made = []
        try:
            srcs = {}
            for side, rev in (("base", args.base), ("head", args.head))[args.reuse_base:]:
                srcs[side] = checkout(rev, root, tmp)
                if srcs[side] != root:
                    made.append(srcs[side])
            bad = 0
            print(f"{'study':22s} {'base s':>7s} {'head s':>7s}  result")
            for study in only:
                res = {side: run_study(srcs[side], study, keep / side / study)
                       for side in (("head",) if args.reuse_base else ("base", "head"))}
                if args.reuse_base:
                    res["base"] = read_kept(keep / "base" / study, study)
                (a, ea, ta), (b, eb, tb) = res["base"], res["head"]
                if a is None or b is None:
                    verdict = f"FAILED  base: {ea or 'ok'} | head: {eb or 'ok'}"
                else:
                    diff = differences(a, b)
                    verdict = "identical" if not diff else "DIFFERS " + "; ".join(diff)
                bad += verdict != "identical"
                print(f"{study:22s} {ta:7.1f} {tb:7.1f}  {verdict}", flush=True)
        finally:
            for d in made:
                subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(d)], check=False)
    print(f"{len(only) - bad} of {len(only)} studies identical ({args.base} vs {args.head})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
