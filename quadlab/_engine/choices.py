"""Argument vocabulary: one check for "this argument names one of these choices" (so every such error reads the
same), and one warning for a renamed public name (docs/ARCHITECTURE.md has the glossary)."""

from __future__ import annotations

import warnings

__all__ = ["deprecated", "one_of"]


def deprecated(old: str, new: str) -> None:
    """Warn (DeprecationWarning, at the caller's caller) that ``old`` was renamed ``new``."""
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)


def one_of(what: str, value, choices: tuple, hint: str = "") -> None:
    """Raise ValueError("<what> must be one of <choices>, got <value><hint>") unless ``value`` is a choice."""
    # `in` on a tuple of str compares with ==, so an unhashable value (a list) gets the message, not a TypeError
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {choices}, got {value!r}{hint}")
