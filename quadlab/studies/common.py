"""What every study shares: one error path, argument validators, output checks, atomic output files,
resumable sweeps, progress bars, figure saving.

One error path.  Every study builds its parser with :func:`new_parser` (or :func:`study_parser`, which adds
the shared options); that is a :class:`StudyParser`, whose ``error`` prints ONE line
``quadlab <command>: error: <what and how to fix it>`` and exits with status 2 (argparse's usage block and
tracebacks are left out).  A problem found after parsing goes through ``fail(ap, msg)``, the same line.  A
ValueError (and the few other expected failures: a missing backend, an unwritable path, missing torch) raised
by the library while a command runs is turned into the same line by :func:`run_command`, which
``quadlab.cli.main`` wraps around every command; ``--debug`` (anywhere on the command line) or
``QUADLAB_DEBUG=1`` shows the traceback instead.

Validators usable as argparse ``type=``: :func:`positive_int`, :func:`int_in` (lo, hi), :func:`finite_float`
(lo, hi, open or closed ends), :func:`comma_choices` (a comma-separated subset of fixed names).  They raise
``argparse.ArgumentTypeError``, so the error line names the option.  :func:`add_backend_option` adds a
``--backend`` with its choices; :func:`check_common` checks that the backend is installed before any work.

Outputs are checked before computing.  :func:`check_output_dir` and :func:`check_output_file` refuse a path
whose parent is a file, a folder given as a file (and vice versa) or a place where no file can be created,
by creating and removing a probe file, so a bad ``--out``/``--json`` fails in a second, not after an hour.
:func:`check_common` runs them for ``--out`` and ``--json``.  Without ``--out``, a study writes to
``out/<study>`` and, with ``--quick``, to ``out/<study>-quick``: a quick run never replaces a full run's
figure, JSON or checkpoint.

Atomic writes: a result file is written to a uniquely named temporary file in the same folder, flushed to
disk (``os.fsync``) and renamed over the target (``os.replace`` is atomic on POSIX), so an interrupted study
never leaves a half-written file and two runs writing into one folder never share a temporary file.
:func:`finish` writes the results (``--json`` and ``<out>/<stem>.json``) BEFORE drawing the figure, so a
failing figure never loses a finished result; studies without a checkpoint call :func:`save_partial` after
each finished part (marked ``"partial": true``), so a crash loses only the part in progress.

Resumable sweeps: :class:`Checkpoint` keeps the finished points of a sweep in an append-only JSON-lines file
(a header line with the settings' fingerprint, then one fsynced line per finished point, keyed by the point's
parameters).  :meth:`Checkpoint.in_folder` names the file after the settings' hash, so a run with other
settings writes its own file and never destroys another's; an explicit path written under other settings is
refused with a message naming ``--fresh``.  An interrupted append leaves at most one torn last line, which
is skipped on reading.  It is also the store of :meth:`quadlab.dist.Executor.map` (serial or dask) and of
``quadlab sweep``'s content-keyed records; :func:`add_dist_options` and :func:`open_executor` give --scheduler.

Adopting all of it in a new study is one line each::

    ap = study_parser("my_study", __doc__, "what --quick does")      # or new_parser("my_study", __doc__)
    ap.add_argument("--kappa", type=finite_float(1, 1e8, lo_open=True), default=5000.0, help="...")
    args = ap.parse_args(argv); check_common(ap, args)                # validated, outputs checked, out made
    ck = Checkpoint.in_folder(args.out, "my_study", settings, fresh=args.fresh)
    ...
    return finish(result, args, "my_study", figure=lambda path: plot(..., path))
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

import quadlab
from quadlab._engine.fileio import replace_atomic, write_text_atomic
from quadlab.stability import median_steps

__all__ = ["BACKENDS", "Checkpoint", "StudyParser", "add_backend_option", "add_dist_options", "check_common", "check_output_dir",
           "check_output_file", "comma_choices", "command_name", "default_out", "describe", "fail", "finish",
           "finite_float", "int_in", "median_steps", "new_parser", "open_checkpoint", "open_executor", "positive_int",
           "progress", "run_command", "run_status", "save_figure", "save_partial", "seed_record", "steps_bound",
           "steps_per_seed", "study_parser", "tuning", "write_json_atomic", "write_text_atomic"]

BACKENDS = ("numpy", "cupy", "array_api_strict")


# ================================================================================================
# One error path
# ================================================================================================
class StudyParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``<prog>: error: <message>``, with exit status 2."""

    def error(self, message):  # argparse calls this for every bad or missing argument
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def _one_line(text) -> str:
    return " ".join(str(text).split())


def fail(ap: argparse.ArgumentParser, message: str):
    """A bad setting found after parsing: the one error line of ``ap`` and exit status 2."""
    ap.error(message)


def open_checkpoint(ap: argparse.ArgumentParser, args, study: str, settings: dict) -> Checkpoint:
    """The study's checkpoint: ``--checkpoint PATH`` when the study offers it and it was given, else the one
    keyed by ``settings`` in ``--out`` (:meth:`Checkpoint.in_folder`); a checkpoint that cannot be used is the
    one error line of ``ap``."""
    try:
        path = getattr(args, "checkpoint", None)
        if path is None:
            return Checkpoint.in_folder(args.out, study, settings, fresh=args.fresh)
        return Checkpoint(path, settings, fresh=args.fresh)
    except ValueError as exc:
        fail(ap, str(exc))


def command_name(study: str) -> str:
    """The ``quadlab`` subcommand that runs the study module ``study`` (e.g. "case1_4" → "case1_4",
    "kappa_sweep" → "kappa-sweep", "stored_spectra" → "stored-report")."""
    from quadlab.cli import STUDIES

    for command, (module, _) in STUDIES.items():
        if module == study:
            return command
    return study.replace("_", "-")


def describe(doc: str | None) -> str:
    """The first paragraph of a module docstring as one line (the parser's description)."""
    return _one_line((doc or "").strip().split("\n\n")[0])


def new_parser(study: str, doc: str | None, **kw) -> StudyParser:
    """A :class:`StudyParser` named ``quadlab <command>`` with the first paragraph of ``doc`` as its
    description and the shared ``--debug`` flag (read by :func:`run_command`; listed here so help shows it)."""
    ap = StudyParser(prog=f"quadlab {command_name(study)}", description=describe(doc), **kw)
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return ap


def run_command(command: str, fn: Callable[[], int], *, debug: bool = False) -> int:
    """Run one command and turn its expected failures into the one error line (exit status 2).

    Expected failures: ValueError (bad input found by the library, with its actionable message),
    :class:`quadlab.backend.BackendUnavailableError`, OSError (an output that cannot be written), ImportError
    (an optional dependency such as torch is missing) and MemoryError.  KeyboardInterrupt exits with 130 (what
    a finished point wrote to a checkpoint stays there).  ``debug``: re-raise instead (full traceback)."""
    from quadlab.backend import BackendUnavailableError

    try:
        return fn()
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"quadlab {command}: interrupted (finished checkpoint points are kept)", file=sys.stderr)
        return 130
    except (ValueError, BackendUnavailableError, OSError, ImportError, MemoryError) as exc:
        if debug:
            raise
        print(f"quadlab {command}: error: {_describe_exc(exc)}", file=sys.stderr)
        return 2


def _describe_exc(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory" + (f" ({exc})" if str(exc) else "") + "; use smaller sizes or fewer runs"
    if isinstance(exc, ImportError) and getattr(exc, "name", None) == "torch":
        return 'this needs torch, which is not installed: pip install "quadlab[extract]"'
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return _one_line(exc) or type(exc).__name__


# ================================================================================================
# Validators (argparse type=)
# ================================================================================================
def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer with lo <= value (<= hi)."""
    def parse(text: str) -> int:
        v = _int(text)
        if v < lo or (hi is not None and v > hi):
            rng = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise argparse.ArgumentTypeError(f"must be an integer {rng}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return int_in(1)(text)


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float in [lo, hi] (``lo_open``/``hi_open``: the open ends); NaN and ±inf are
    refused."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        below = lo is not None and (v <= lo if lo_open else v < lo)
        above = hi is not None and (v >= hi if hi_open else v > hi)
        if below or above:
            left = "" if lo is None else ("> " if lo_open else ">= ") + f"{lo:g}"
            right = "" if hi is None else ("< " if hi_open else "<= ") + f"{hi:g}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(x for x in (left, right) if x)}, got {v:g}")
        return v

    parse.__name__ = "number"
    return parse


def comma_choices(choices, *, convert: Callable = str) -> Callable[[str], list]:
    """An argparse type: a non-empty comma-separated list of ``choices`` (after ``convert``; repeated names
    are kept once, in order).  Names may use - or _ interchangeably."""
    choices = list(choices)
    canon = {str(c).replace("-", "_"): c for c in choices}

    def parse(text: str) -> list:
        out = []
        for item in (t.strip() for t in str(text).split(",")):
            if not item:
                continue
            c = canon.get(item.replace("-", "_"))
            if c is None:
                raise argparse.ArgumentTypeError(f"{item!r} is not one of {','.join(map(str, choices))}")
            if c not in out:
                out.append(c)
        if not out:
            raise argparse.ArgumentTypeError(f"name at least one of {','.join(map(str, choices))}")
        return [convert(c) for c in out]

    parse.__name__ = "list"
    return parse


def add_backend_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--backend", default="numpy", choices=BACKENDS,
                    help="array library to compute with (cupy needs the gpu extra and a CUDA GPU)")


def add_dist_options(ap: argparse.ArgumentParser) -> None:
    """``--scheduler local|tcp://HOST:PORT`` and ``--workers N`` (:mod:`quadlab.dist`); without them the
    sweep runs serially in this process, as always, and dask is not imported."""
    ap.add_argument("--scheduler", default=None, metavar="local|tcp://HOST:PORT",
                    help="run the sweep's tasks on dask: 'local' (a cluster of --workers processes on this "
                         "machine) or the address of a running `dask scheduler` (needs the dist extra); "
                         "default: serially in this process")
    ap.add_argument("--workers", type=int_in(1, 1024), default=None,
                    help="with --scheduler local: worker processes, one thread each (default: the CPU count)")


def open_executor(ap: argparse.ArgumentParser, args):
    """The :class:`quadlab.dist.Executor` of ``--scheduler``/``--workers``, started (a local cluster up, a
    remote scheduler reached) before any work; every problem is the parser's one error line."""
    from quadlab.dist import Executor

    try:
        ex = Executor(args.scheduler, args.workers)
    except ValueError as exc:  # the library's words, the command's option names
        msg = str(exc).replace("with scheduler 'local'", "with --scheduler local")
        fail(ap, "--" + msg if msg.startswith(("scheduler ", "workers ")) else msg)
    try:
        ex.start()
    except (ImportError, OSError) as exc:
        fail(ap, f"--scheduler {args.scheduler}: {exc}")
    return ex


# ================================================================================================
# Outputs: checked before computing, written atomically
# ================================================================================================
def check_output_dir(path, option: str = "--out") -> Path:
    """Create the folder ``path`` if needed and prove that a file can be created in it (a probe file is
    created and removed).  Raises ValueError naming ``option`` and the fix."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder; pass a folder")
    anc = path
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise ValueError(f"{option} {path}: {anc} is a file, so no folder can be made under it; pass another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".quadlab-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{option} {path} is not writable ({exc.strerror or exc}); pass a folder you can write to") from exc
    return path


def check_output_file(path, option: str = "--json") -> Path:
    """Check that a file can be written at ``path`` (its folder is created if needed; the file itself is
    not touched).  Raises ValueError naming ``option`` and the fix."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; pass a file path")
    if str(path).endswith(("/", os.sep)) or path.name in ("", ".", ".."):
        raise ValueError(f"{option} {path!s} names no file; pass a file path")
    check_output_dir(path.parent, f"{option} {path}: its folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {path} exists and is not writable; pass another path")
    return path


def write_json_atomic(obj, path) -> Path:
    return write_text_atomic(json.dumps(obj, indent=2, allow_nan=False) + "\n", path)


def save_figure(fig, stem) -> list[Path]:
    """Save ``fig`` as stem.png and stem.pdf, each atomically through its own uniquely named temporary file
    (two runs saving into one folder at once never collide)."""
    stem = Path(stem)
    out = []
    for ext in ("png", "pdf"):
        path = stem.with_name(stem.name + "." + ext)
        # the format is given explicitly: the temporary name's suffix is not the figure's
        replace_atomic(path, lambda tmp, ext=ext: fig.savefig(tmp, dpi=130, format=ext), suffix=".tmp")
        out.append(path)
    return out


def progress(iterable: Iterable, *, total: int | None = None, desc: str = "", quiet: bool = False):
    """A tqdm bar on stderr (nothing when ``quiet``)."""
    if quiet:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


class Checkpoint:
    """Finished points of a sweep in an append-only JSON-lines file, one fsynced line per finished point.

    ``settings``: everything that determines the results (a JSON-serialisable dict); its SHA-256 fingerprint
    is the file's first line.  :meth:`in_folder` puts the fingerprint's first 12 hex digits into the file
    name, so runs with other settings keep separate files.  Opening an explicit ``path`` that holds another
    fingerprint raises ValueError naming ``--fresh`` (nothing is overwritten); ``fresh=True`` deletes this
    path's file first.  Reading skips a torn last line (an append interrupted by a crash) and keeps the last
    value of a key written twice (two runs with the same settings may append to one file).

    Cost: a point costs one ``write`` + ``fsync`` of its own line, not a rewrite of every point so far."""

    SUFFIX = ".checkpoint.jsonl"

    def __init__(self, path, settings: dict, *, fresh: bool = False, legacy=None):
        self.path = Path(path)
        # quadlab's version is part of every fingerprint: points computed by another version (other instances,
        # another tuning) are never reused
        self.settings = {**settings, "quadlab": quadlab.__version__}
        self.fingerprint = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()
        self.points: dict[str, object] = {}
        self._has_header = False
        if fresh:
            self.path.unlink(missing_ok=True)
        if self.path.is_file():
            self._read()
        elif legacy is not None and not fresh:
            self._import_legacy(Path(legacy))

    @classmethod
    def in_folder(cls, folder, study: str, settings: dict, *, fresh: bool = False) -> Checkpoint:
        """The checkpoint of ``study`` under ``settings`` in ``folder``: ``<study>.<hash12>.checkpoint.jsonl``
        (points of the old single-file format ``<study>.checkpoint.json`` written under the same settings
        are imported once)."""
        fp = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        folder = Path(folder)
        return cls(folder / f"{study}.{fp[:12]}{cls.SUFFIX}", settings, fresh=fresh,
                   legacy=folder / f"{study}.checkpoint.json")

    def _read(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"checkpoint {self.path} cannot be read ({exc}); pass --fresh to start over") from None
        header = None
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line from an interrupted append
            if not isinstance(rec, dict):
                continue
            if "fingerprint" in rec:
                header = header or rec["fingerprint"]
                continue
            if "key" in rec and "value" in rec:
                self.points[rec["key"]] = rec["value"]
        if header is not None and header != self.fingerprint:
            raise ValueError(f"checkpoint {self.path} was written by a run with other settings; pass --fresh to "
                             "replace it, or another checkpoint path to keep it")
        if header is None and self.points:
            raise ValueError(f"checkpoint {self.path} has no settings header; pass --fresh to replace it")
        self._has_header = header is not None

    def _import_legacy(self, legacy: Path) -> None:
        try:
            data = json.loads(legacy.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("fingerprint") == self.fingerprint:
            for k, v in dict(data.get("points", {})).items():
                self.put(k, v)

    @staticmethod
    def key(**params) -> str:
        return json.dumps(params, sort_keys=True)

    def __contains__(self, key: str) -> bool:
        return key in self.points

    def __len__(self) -> int:
        return len(self.points)

    def get(self, key: str):
        return self.points[key]

    def put(self, key: str, value) -> None:
        """Store one finished point: append its line (and the header, on a new file) and fsync."""
        line = json.dumps({"key": key, "value": value}, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            # close a torn line (a crash mid-append) so that this record starts a line of its own
            head = "" if size == 0 or self._ends_with_newline(size) else "\n"
            if size == 0 or not self._has_header:  # a new file, or one whose header line was torn
                head += json.dumps({"fingerprint": self.fingerprint, "settings": self.settings}, sort_keys=True,
                                   allow_nan=False) + "\n"
            os.write(fd, (head + line).encode("utf-8"))  # one write: appends of whole lines do not interleave
            os.fsync(fd)
        finally:
            os.close(fd)
        self._has_header = True
        self.points[key] = value

    def _ends_with_newline(self, size: int) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(size - 1)
            return fh.read(1) == b"\n"

    def compute(self, key: str, fn: Callable[[], object]):
        """The stored value for ``key``, or ``fn()`` stored now."""
        if key not in self.points:
            self.put(key, fn())
        return self.points[key]


def default_out(study: str, quick: bool) -> Path:
    """out/<study>, or out/<study>-quick for --quick (a quick run never replaces a full run's outputs)."""
    return Path("out") / (study + ("-quick" if quick else ""))


def study_parser(name: str, description: str, quick_help: str, *, checkpoint: bool = False,
                 backend: bool = False) -> StudyParser:
    """A :func:`new_parser` with the options every study shares: --seeds, --tol, --quick, --out (default
    out/<name>, out/<name>-quick with --quick), --json, --quiet; ``checkpoint``: --fresh; ``backend``:
    --backend.  ``description``: the module docstring (its first paragraph is used)."""
    ap = new_parser(name, description)
    ap.set_defaults(study=name)
    ap.add_argument("--seeds", type=int_in(1, 1000), default=5,
                    help="rotation/start seeds, 1 to 1000 (at most 2 with --quick)")
    ap.add_argument("--tol", type=finite_float(0, 1, lo_open=True, hi_open=True), default=1e-6,
                    help="stop at ‖∇f(w_k)‖ ≤ tol·‖∇f(w_0)‖; 0 < tol < 1")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--out", type=Path, default=None,
                    help=f"folder for the figure, results and checkpoints (default out/{name}, "
                         f"out/{name}-quick with --quick)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here (atomically)")
    ap.add_argument("--quiet", action="store_true", help="no tables, no progress bars")
    if checkpoint:
        ap.add_argument("--fresh", action="store_true",
                        help="delete this settings' checkpoint and recompute every point")
    if backend:
        add_backend_option(ap)
    return ap


def check_common(ap: argparse.ArgumentParser, args) -> None:
    """Validate the shared options and check the outputs before any work: --out defaults to
    out/<study>[-quick] and is created and probed for writability, --json's folder likewise, --backend must be
    importable.  Every problem is the parser's one error line (exit 2)."""
    if getattr(args, "quick", False) and hasattr(args, "seeds"):
        args.seeds = min(args.seeds, 2)
    if hasattr(args, "seeds") and args.seeds < 1:
        fail(ap, "--seeds must be at least 1")
    if hasattr(args, "tol") and not 0 < args.tol < 1:
        fail(ap, "--tol must lie in (0, 1)")
    if getattr(args, "out", None) is None and hasattr(args, "out"):
        args.out = default_out(getattr(args, "study", None) or ap.prog.split()[-1].replace("-", "_"),
                               getattr(args, "quick", False))
    try:
        if getattr(args, "out", None) is not None:
            args.out = check_output_dir(args.out, "--out")
        if getattr(args, "json", None) is not None:
            args.json = check_output_file(args.json, "--json")
    except ValueError as exc:
        fail(ap, str(exc))
    if getattr(args, "backend", None) is not None:
        from quadlab.backend import BackendUnavailableError, get_backend

        try:
            get_backend(args.backend)
        except (ValueError, BackendUnavailableError) as exc:
            fail(ap, f"--backend {args.backend}: {exc}")


def finish(result: dict, args, stem: str, figure: Callable[[Path], object] | None = None,
           figure_stem: str | None = None) -> int:
    """Write the results first (<out>/<stem>.json and --json, atomically), then draw the figure with
    ``figure(<out>/<figure_stem or stem>)``.  A failing figure is reported in one line and gives exit status 1;
    the results are on disk by then."""
    fig_stem = figure_stem or stem
    write_json_atomic(result, args.out / f"{stem}.json")
    if args.json is not None:
        write_json_atomic(result, args.json)
    if figure is not None:
        try:
            figure(args.out / fig_stem)
        except Exception as exc:  # the figure is secondary: the results above are already written
            where = args.json if args.json is not None else args.out / f"{stem}.json"
            print(f"{_prog(args)}: error: the figure failed ({type(exc).__name__}: {_one_line(exc)}); the "
                  f"results are in {where}", file=sys.stderr)
            return 1
    if not args.quiet:
        print(f"\nfigure: {args.out / (fig_stem + '.png')} (and .pdf); results: {args.out / (stem + '.json')}")
    return 0


def save_partial(result: dict, args, stem: str) -> None:
    """Write the results finished so far, marked ``"partial": true``, where :func:`finish` will write the
    complete ones (<out>/<stem>.json and --json): a study without a checkpoint calls this after each finished
    part (a case, a rotation), so a crash or a kill later loses only the part in progress."""
    rec = {**result, "partial": True}
    write_json_atomic(rec, args.out / f"{stem}.json")
    if args.json is not None:
        write_json_atomic(rec, args.json)


def _prog(args) -> str:
    study = getattr(args, "study", None)
    return f"quadlab {command_name(study)}" if study else "quadlab"


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


def tuning(quick: bool) -> dict:
    """The learning-rate search every study uses (:func:`quadlab.tune.tune_lr`'s ``points`` and ``refine``): the
    dense default, 128 log-spaced lrs refined twice around the three best minima, or 24 refined once with
    ``--quick``.  A study with a reason to search less (noisy runs on the numpy path) says so where it does."""
    return {"points": 24, "refine": 1} if quick else {"points": 128, "refine": 2}


def seed_record(results, lr, cap: int) -> dict:
    """The JSON record of one tuned optimizer over seeds: its lr, the steps to tolerance as every study reports
    them (:func:`median_steps`: the median over seeds with a seed that missed the cap counted as +∞, None when
    that median is +∞), how many seeds reached it, the per-seed steps, the status and the step cap."""
    per = steps_per_seed(results)
    return {
        "lr": lr,
        "steps_to_tol": median_steps(per),
        "seeds_reached": sum(s is not None for s in per),
        "seeds": len(per),
        "steps_to_tol_per_seed": per,
        "status": run_status(results),
        "max_steps": int(cap),
    }
