"""Atomic file writes: the one way quadlab puts a result on disk.

``replace_atomic(path, write)`` lets ``write(tmp)`` fill a uniquely named temporary file next to ``path``
(two processes writing into one folder never share a name), fsyncs it, renames it over ``path`` (``os.replace``
is atomic on POSIX) and fsyncs the folder, so that a crash leaves the old file or the new one, never a torn
one, and the rename itself survives a power loss.  Results, figures, checkpoints' neighbours and the stored
spectra all go through it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_atomic", "write_text_atomic"]


def _fsync_dir(folder: Path) -> None:
    # the rename itself must reach the disk too, or a crash can bring back the old file
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the file itself is on disk
    finally:
        os.close(fd)


def replace_atomic(path, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Write a file through ``write(tmp)`` into a uniquely named temporary file next to ``path``, fsync it and
    rename it over ``path``; the temporary file is removed if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(text: str, path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`replace_atomic`)."""
    return replace_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
