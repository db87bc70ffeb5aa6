"""One check for "this argument names one of these choices", so every such error reads the same."""

from __future__ import annotations

__all__ = ["one_of"]


def one_of(what: str, value, choices: tuple, hint: str = "") -> None:
    """Raise ValueError("<what> must be one of <choices>, got <value><hint>") unless ``value`` is a choice."""
    # `in` on a tuple of str compares with ==, so an unhashable value (a list) gets the message, not a TypeError
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {choices}, got {value!r}{hint}")
