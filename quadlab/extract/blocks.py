"""Block selections for :func:`quadlab.extract.block_spectra`: which coordinates of a torch model form a block.

A selection names whole parameter tensors (a name or regex), several tensors as one block (a dict entry with a
list), or sub-tensor blocks: ``rows(pattern)``, ``heads(pattern, n)`` and ``tokens(pattern)`` split a tensor
along its first dimension (Adam-mini's partitions; :mod:`quadlab.extract.spectra`, "Sub-tensor partitions",
has the details).  :func:`resolve_blocks` turns any selection into flat coordinate ranges per tensor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Split", "heads", "resolve_blocks", "rows", "tokens"]


@dataclass(frozen=True)
class Split:
    """A tensor (or each tensor whose name matches ``pattern``) split along its first dimension into blocks.

    Build one with :func:`rows`, :func:`heads` or :func:`tokens`.

    Parameters
    ----------
    pattern : str
        A parameter name or regex.
    kind : {"rows", "heads", "tokens"}, default "rows"
        "rows": one block per row (``size`` rows per block); "heads": ``groups`` equal consecutive row groups;
        "tokens": one block per row, labelled as tokens.
    groups : int, optional
        The number of heads ("heads").
    size : int, default 1
        Rows per block ("rows").
    start, stop : int
        The row range split (default all rows).
    select : tuple of int, optional
        Indices of the groups kept (default all).

    Examples
    --------
    >>> from quadlab.extract import heads
    >>> heads("attn.query.weight", 2).ranges("attn.query.weight", (4, 3))
    [('head 0', 0, 6), ('head 1', 6, 12)]
    """

    pattern: str
    kind: str = "rows"
    groups: int | None = None
    size: int = 1
    start: int = 0
    stop: int | None = None
    select: tuple | None = None

    def ranges(self, name: str, shape: tuple) -> list[tuple[str, int, int]]:
        """(label, flat start, flat stop) per kept group of one tensor; group g holds rows
        start + g·size … start + (g + 1)·size − 1.

        Parameters
        ----------
        name : str
            The tensor's name (for labels and messages).
        shape : tuple of int
            Its shape.

        Returns
        -------
        list of tuple
            (label, flat start, flat stop) per kept group.

        Raises
        ------
        ValueError
            If the tensor is 0-d, the row range does not fit, the rows do not split evenly, or ``select`` is out of
            range.
        """
        if len(shape) == 0:
            raise ValueError(f"{name}: a 0-d parameter has no rows to split; select it whole instead")
        nrows = int(shape[0])
        rowlen = int(math.prod(shape[1:]))
        stop = nrows if self.stop is None else self.stop
        if not (0 <= self.start < stop <= nrows):
            raise ValueError(f"{name}: row range [{self.start}, {stop}) is not inside its {nrows} rows")
        span = stop - self.start
        if self.kind == "heads":
            if not self.groups or span % self.groups:
                raise ValueError(f"{name}: {span} rows cannot be split into {self.groups} equal heads; pass the "
                                 "number of heads that divides the rows (and start/stop for a packed weight)")
            size, label = span // self.groups, "head"
        else:
            if self.size < 1 or span % self.size:
                raise ValueError(f"{name}: {span} rows cannot be split into groups of {self.size}")
            size, label = self.size, "token" if self.kind == "tokens" else "row"
        count = span // size
        keep = range(count) if self.select is None else list(self.select)
        bad = [g for g in keep if not (isinstance(g, (int, np.integer)) and 0 <= g < count)]
        if bad:
            raise ValueError(f"{name}: select={bad} out of range; it has {count} {label}s (0 … {count - 1})")
        out = []
        for g in keep:
            r0 = self.start + int(g) * size
            # Rows and tokens are labelled by their own index (row r0 of the tensor), heads by their number.
            tag = (f"head {int(g)}" if label == "head" else f"{label} {r0}" if size == 1
                   else f"rows {r0}-{r0 + size - 1}")
            out.append((tag, r0 * rowlen, (r0 + size) * rowlen))
        return out


def _check_pattern(pattern) -> re.Pattern:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"a block selection must be a non-empty parameter name or regex, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression ({exc})") from None


def rows(pattern: str, *, size: int = 1, start: int = 0, stop: int | None = None, select=None) -> Split:
    """One block per output row (neuron / channel), or per ``size`` consecutive rows, of each matching tensor.

    Parameters
    ----------
    pattern : str
        A parameter name or regex.
    size : int, keyword-only, default 1
    start, stop : int, keyword-only
        The row range (default all).
    select : sequence of int, keyword-only, optional
        The row groups kept (default all), numbered from ``start``.

    Returns
    -------
    Split
        Row blocks of every tensor the pattern matches.

    Raises
    ------
    ValueError
        When the pattern is empty or does not compile as a regular expression.

    Examples
    --------
    >>> from quadlab.extract import rows
    >>> [r[0] for r in rows("fc.weight", size=2).ranges("fc.weight", (4, 5))]
    ['rows 0-1', 'rows 2-3']
    """
    return Split(pattern, "rows", None, int(size), int(start), stop, None if select is None else tuple(select))


def heads(pattern: str, n: int, *, start: int = 0, stop: int | None = None, select=None) -> Split:
    """n blocks per matching tensor: its rows [start, stop) cut into n equal consecutive groups (attention heads).

    Parameters
    ----------
    pattern : str
        A parameter name or regex.
    n : int
        The number of heads, ≥ 1.
    start, stop : int, keyword-only
        The row range (default all), e.g. the query part of a fused qkv weight.
    select : sequence of int, keyword-only, optional
        Which heads to keep; all by default.

    Returns
    -------
    Split
        Head blocks of every tensor the pattern matches.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer or ``pattern`` is invalid.

    Examples
    --------
    >>> from quadlab.extract import heads
    >>> len(heads("qkv.weight", 4, start=0, stop=8).ranges("qkv.weight", (24, 8)))
    4
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"heads: n must be a positive number of heads, got {n!r}")
    return Split(pattern, "heads", int(n), 1, int(start), stop, None if select is None else tuple(select))


def tokens(pattern: str, *, select=None) -> Split:
    """One block per token (row) of an embedding weight (vocab, width).

    Parameters
    ----------
    pattern : str
        A parameter name or regex.
    select : sequence of int, keyword-only, optional
        Token ids to keep (default: every token).

    Returns
    -------
    Split
        Token blocks of every embedding the pattern matches.

    Raises
    ------
    ValueError
        For an empty pattern or a bad regular expression.

    Examples
    --------
    >>> from quadlab.extract import tokens
    >>> [r[0] for r in tokens("wte.weight", select=[65]).ranges("wte.weight", (256, 8))]
    ['token 65']
    """
    return Split(pattern, "tokens", None, 1, 0, None, None if select is None else tuple(select))


#: A block: the pieces (parameter name, flat start, flat stop) whose coordinates it holds, in order.
Pieces = list


def _match(params: dict, pattern: str, what: str) -> list[str]:
    if pattern in params:
        return [pattern]
    rx = _check_pattern(pattern)
    found = [n for n in params if rx.search(n)]
    if not found:
        raise ValueError(f"{what}: {pattern!r} matches no parameter (a name or a regex searched in the names); "
                         f"the model has e.g. {list(params)[:8]}")
    return found


def resolve_blocks(model: torch.nn.Module, blocks=None) -> dict[str, list[tuple[str, int, int]]]:
    r"""The blocks a selection names, as {block name: [(parameter name, flat start, flat stop), …]}.

    Parameters
    ----------
    model : torch.nn.Module
    blocks : None, str, Split, list or dict, optional
        None: one block per trainable parameter tensor; a regex: one block per tensor whose name it matches
        (``re.search``; an exact name also works); a :class:`Split`; a list of those (concatenated); or a dict
        {block name: a name or regex, a list of them (one block of all the tensors they match, in model order),
        or a Split (blocks "name[head 0]", …)}.

    Returns
    -------
    dict
        Block name → list of (parameter name, flat start, flat stop), in model order.

    Raises
    ------
    ValueError
        If the model has no trainable parameter, a selection matches nothing or is of an unusable type, a
        container is empty, or two blocks get one name.

    Examples
    --------
    >>> import torch
    >>> from quadlab.extract import resolve_blocks
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    >>> resolve_blocks(net, {"first": "0\\.", "last": "1.weight"})
    {'first': [('0.weight', 0, 6), ('0.bias', 0, 3)], 'last': [('1.weight', 0, 3)]}
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=True)")
    def whole(n):
        return [(n, 0, int(params[n].numel()))]

    out: dict[str, list] = {}

    def add(name, pieces):
        if name in out:
            raise ValueError(f"two blocks are named {name!r}; give distinct names (a dict) or distinct selections")
        out[name] = pieces

    def split(sp: Split, prefix: str | None, what: str):
        names = _match(params, sp.pattern, what)
        for n in names:
            for label, a, b in sp.ranges(n, tuple(params[n].shape)):
                add(f"{prefix or n}[{label}]" if prefix is None or len(names) == 1 else f"{prefix}.{n}[{label}]",
                    [(n, a, b)])

    def top(item):
        if isinstance(item, Split):
            split(item, None, "blocks")
        elif isinstance(item, str):
            for n in _match(params, item, "blocks"):
                add(n, whole(n))
        else:
            raise ValueError(f"blocks: cannot use a {type(item).__name__} ({item!r}); pass None, a regex, "
                             "rows()/heads()/tokens(), a list of those, or a dict name → names/regexes")

    if blocks is None:
        for n in params:
            add(n, whole(n))
    elif isinstance(blocks, Mapping):
        if not blocks:
            raise ValueError("blocks is an empty dict: name at least one block")
        for key, val in blocks.items():
            key = str(key)
            if isinstance(val, Split):
                split(val, key, f"block {key!r}")
                continue
            items = [val] if isinstance(val, str) else list(val) if isinstance(val, Iterable) else None
            if not items or not all(isinstance(v, str) for v in items):
                raise ValueError(f"block {key!r}: give a parameter name or regex, a non-empty list of them, or a "
                                 f"rows()/heads()/tokens() split; got {val!r}")
            chosen = set()
            for v in items:
                chosen.update(_match(params, v, f"block {key!r}"))
            add(key, [pc for n in params if n in chosen for pc in whole(n)])
    elif isinstance(blocks, (list, tuple)):
        if not blocks:
            raise ValueError("blocks is an empty list: name at least one block")
        for item in blocks:
            top(item)
    else:
        top(blocks)
    return out
