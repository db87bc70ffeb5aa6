"""Stored block spectra of real networks at initialisation, and the quadratic cases sampled from them.

The files
---------
``quadlab/data/gpt2_blocks.npz`` and ``quadlab/data/resnet18_blocks.npz`` hold, per parameter block, the raw
per-probe SLQ nodes θ and weights τ (probes × m arrays) of the block Hessian of a GPT2-style Transformer and of a
CIFAR-style ResNet18 at initialisation, plus a JSON header recording the model configuration, data provenance,
train/eval mode, SLQ settings, library versions and date (rebuild them with ``quadlab extract``; see
``quadlab/data/PROVENANCE.md``).  Files are plain npz read with ``allow_pickle=False``: no code runs on load.

Layout: ``format`` = "quadlab-block-spectra", ``version`` = 1, ``meta`` = the JSON header, and for block i
``nodes_i``, ``weights_i``, ``residuals_i``.

Sampling (Cases 1–2 of the paper)
---------------------------------
Block l's stored measure μ_l = Σ_i w_i δ_{θ_i} (all probes pooled, each probe weighted equally) has the
distribution function F_l.  ``sample_block`` draws d eigenvalues as the quantiles F_l⁻¹((j − ½)/d),
j = 1 … d ("quantile", deterministic), or as F_l⁻¹(u_j) for sorted uniform u_j from a seeded generator
("random"); ``smooth=True`` replaces the step function F_l by the piecewise-linear interpolation of its
mid-steps, so that the draws fill the gaps between Ritz values instead of repeating them.  ``q < 1`` draws
only from the top fraction q of the mass: the levels u become 1 − q + q·u.

Readings of "scaled and shifted to [1, κ]" (THEORY.md, "Cases 1–2: readings"; ``quadlab readings``).  The
paper samples Case 1's blocks from GPT2 (Case 2's from ResNet18), then "scaled and shifted to guarantee strong
convexity and κ = 5000, while preserving the relative range and heterogeneity across blocks".  Network blocks
are indefinite with a near-zero bulk, so that sentence has several honest readings.  Each ``reading`` below
gives a positive definite spectrum with min λ = 1 and max λ = κ exactly.  Notation: x_l are block l's d
draws from the reading's measure, a_l = min x_l, b_l = max x_l, m = min_l a_l, M = max_l b_l.

* "abs": draws of |θ|, then one joint affine map λ = 1 + (κ − 1)(x − m)/(M − m).  Lower edge 1 + (κ − 1)(a_l −
  m)/(M − m): ≈ 1 for every block whose near-zero bulk is drawn.  κ_l is then about the block's own top; a
  small-scale block is squeezed into [1, 1 + (κ − 1)b_l/M] (κ_l → 1).  quadlab's default before the readings study.
* "signed": the same joint affine map of the signed θ.  0 lands at z = 1 + (κ − 1)(−m)/(M − m).  A block of
  scale s_l ≪ M − m collapses to within (κ − 1)s_l/(M − m) of z: κ_l → 1 and its lower edge ≈ z, far above 1.
* "positive": draws of max(θ, 0), then the joint affine map.  Every block that draws its negative or zero part
  has lower edge exactly 1, so κ_l equals its mapped top.
* "top": draws of |θ| from the top fraction q of each block's mass only (default ``TOP_Q``), then the joint
  affine map.  The bulk is dropped, which raises the lower edge from F_l⁻¹(1/(2d)) to F_l⁻¹(1 − q + q/(2d)) ≥
  F_l⁻¹(1 − q), so κ_l falls.  q = 1 is "abs".
* "log" (the default, ``DEFAULT_READING``): draws of v = max(|θ|, ``LOG_FLOOR``·s_l), s_l = max |θ| of the
  block's measure, then the affine map of ln v: λ = (v/m)^p with p = ln κ / ln(M/m).  κ_l = (b_l/a_l)^p:
  every block's own ratio max/min and every ratio of block scales is raised to the same power, so relative
  ranges and the order of scales survive on a log axis.  Lower edge (a_l/m)^p.  The floor only lifts values
  that the stored float32 products cannot tell from 0.
* "block_shift": each block's signed draws are shifted by their own lower edge, then scaled jointly:
  λ = 1 + (κ − 1)(x − a_l)/max_k(b_k − a_k).  Lower edge exactly 1 for every block, and κ_l = 1 + (κ − 1)
  (b_l − a_l)/max_k(b_k − a_k): the spreads keep their ratios, so a small-scale block has κ_l → 1.

``transform=`` ("abs", "positive", "signed") is the deprecated name of the first three readings.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._engine.fileio import replace_atomic, write_text_atomic
from .krylov import STATUS_OK
from .slq import SLQResult

__all__ = ["FORMAT", "GPT2_CASE_BLOCKS", "RESNET18_CASE_BLOCKS", "StoredSpectra", "data_path", "from_paper_json",
           "gpt2_case", "load", "resnet18_case",
           "DEFAULT_READING", "LOG_FLOOR", "READINGS", "TOP_Q",
           "sample_block", "save", "sampled_spectrum", "to_paper_json"]

FORMAT = "quadlab-block-spectra"
VERSION = 1
_DATA = Path(__file__).with_name("data")
_NAMES = {"gpt2": "gpt2_blocks.npz", "resnet18": "resnet18_blocks.npz"}


@dataclass(frozen=True)
class StoredSpectra:
    """A stored set of block spectra: SLQ quadratures per block, the file's header and where it came from.

    Each block's spectral measure is Σ_i w_i δ_{θ_i} over its probes' Ritz nodes θ and quadrature weights w, so
    densities and JS⁰ (:mod:`quadlab.heterogeneity`) work on ``slq`` directly.

    Parameters
    ----------
    slq : SLQResult
        Nodes, weights and block names/sizes (:class:`quadlab.slq.SLQResult`).
    meta : dict
        The JSON header: model, configuration, data provenance, library versions.
    source : str
        The file it was read from ("" when built in memory).

    Attributes
    ----------
    names : tuple of str
        The block names (``slq.names``).

    Examples
    --------
    >>> from quadlab import stored
    >>> st = stored.load("gpt2")
    >>> st.names[0], st.meta["model"]
    ('wte.weight', 'gpt2')
    """

    slq: SLQResult
    meta: dict
    source: str

    @property
    def names(self) -> tuple[str, ...]:
        return self.slq.names

    def measure(self, block) -> tuple[np.ndarray, np.ndarray]:
        """The discrete measure of one block: (nodes, weights), NaN-padded slots dropped.

        Parameters
        ----------
        block : int or str
            The block's index or name.

        Returns
        -------
        tuple of numpy.ndarray
            Nodes θ and weights w (Σ w = 1), both 1-D.
        """
        return self.slq.measure(block)

    def scale(self) -> np.ndarray:
        """Each block's scale max |θ| over its Ritz nodes.

        Returns
        -------
        numpy.ndarray
            Shape (L,), float64.
        """
        lo, hi = self.slq.extremes()
        return np.maximum(np.abs(lo), np.abs(hi))


def data_path(name: str) -> Path:
    """The path of a shipped spectra file.

    Parameters
    ----------
    name : str
        "gpt2" or "resnet18".

    Returns
    -------
    pathlib.Path
        The .npz file inside the package's data folder.

    Raises
    ------
    ValueError
        If ``name`` is not a shipped set; the message lists them (a file of your own goes to :func:`load`).

    Examples
    --------
    >>> from quadlab import stored
    >>> stored.data_path("resnet18").name
    'resnet18_blocks.npz'
    """
    if name not in _NAMES:
        raise ValueError(f"no stored spectra named {name!r}; shipped: {sorted(_NAMES)} (or pass a file path)")
    return _DATA / _NAMES[name]


def save(path, slq: SLQResult, meta: dict) -> Path:
    """Write block spectra and their header to an .npz file, atomically.

    The archive holds the nodes, weights and breakdown data as plain arrays and ``meta`` as JSON text (no
    pickles), written through :func:`quadlab._engine.fileio.replace_atomic`: a uniquely named temporary file in
    the same folder, fsynced, then renamed over ``path``, so a reader never sees half a file.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write (``.npz``).
    slq : SLQResult
        The block spectra.
    meta : dict
        JSON-serialisable header (model, configuration, provenance).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``slq`` is not an SLQResult or ``meta`` is not JSON-serialisable.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from quadlab import stored
    >>> st = stored.load("gpt2")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = stored.save(pathlib.Path(tmp) / "copy.npz", st.slq, st.meta)
    ...     stored.load(p).names == st.names
    True
    """
    if not isinstance(slq, SLQResult):
        raise ValueError(f"save needs an SLQResult (quadlab.slq.slq's result), got {type(slq).__name__}")
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict (the file's JSON header), got {type(meta).__name__}")
    path = Path(path)
    meta = dict(meta, names=list(slq.names), sizes=list(slq.sizes), m=slq.m, probes=slq.probes, seed=slq.seed)
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta must be JSON-serialisable (str keys; str, numbers, lists, dicts): {exc}") from None
    arrays = {"format": np.array(FORMAT), "version": np.array(VERSION), "meta": np.array(text)}
    for i in range(len(slq.names)):
        arrays[f"nodes_{i}"] = np.asarray(slq.nodes[i], dtype=np.float64)
        arrays[f"weights_{i}"] = np.asarray(slq.weights[i], dtype=np.float64)
        arrays[f"residuals_{i}"] = np.asarray(slq.residuals[i], dtype=np.float64)
    replace_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".tmp.npz")
    return path


def _bad(path, why: str) -> ValueError:
    return ValueError(f"{path}: not a quadlab block-spectra file ({why}); rebuild it with `quadlab extract`")


def _check_meta(path, meta) -> None:
    """The header's schema: names (distinct strings), sizes (non-negative ints, one per name), m and probes
    (positive ints), seed (an int), optional quick (a bool) and slq.status/slq.breakdown (one per block)."""
    if not isinstance(meta, dict):
        raise _bad(path, f"the meta header is a JSON {type(meta).__name__}, not an object")
    for key in ("names", "sizes", "m", "probes", "seed"):
        if key not in meta:
            raise _bad(path, f"the meta header has no {key!r}")
    names, sizes = meta["names"], meta["sizes"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names)):
        raise _bad(path, "meta 'names' must be a non-empty list of distinct block names")
    isint = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if not (isinstance(sizes, list) and len(sizes) == len(names) and all(isint(d) and d >= 0 for d in sizes)):
        raise _bad(path, f"meta 'sizes' must list one non-negative integer per block ({len(names)} blocks)")
    for key in ("m", "probes"):
        if not (isint(meta[key]) and meta[key] >= 1):
            raise _bad(path, f"meta {key!r} must be a positive integer, got {meta[key]!r}")
    if not isint(meta["seed"]):
        raise _bad(path, f"meta 'seed' must be an integer, got {meta['seed']!r}")
    if not isinstance(meta.get("quick", False), bool):
        raise _bad(path, f"meta 'quick' must be true or false, got {meta['quick']!r}")
    slq_meta = meta.get("slq", {})
    if not isinstance(slq_meta, dict):
        raise _bad(path, "meta 'slq' must be an object")
    if "status" in slq_meta and not (isinstance(slq_meta["status"], list) and len(slq_meta["status"]) == len(names)
                                     and all(isinstance(x, str) for x in slq_meta["status"])):
        raise _bad(path, "meta slq.status must list one status string per block")
    if "breakdown" in slq_meta:
        bd = slq_meta["breakdown"]
        if not (isinstance(bd, list) and len(bd) == len(names) and all(
                isinstance(b, list) and len(b) == meta["probes"] and all(x is None or isint(x) for x in b)
                for b in bd)):
            raise _bad(path, "meta slq.breakdown must list, per block, one step count or null per probe")


def load(name_or_path="gpt2", *, allow_quick: bool = False) -> StoredSpectra:
    """Load block spectra: a shipped set by name or a file written by :func:`save`, every part checked.

    Parameters
    ----------
    name_or_path : str or pathlib.Path, default "gpt2"
        "gpt2", "resnet18" or the path of an .npz file.
    allow_quick : bool, keyword-only, default False
        Accept toy spectra written by ``quadlab extract --quick`` (header ``quick``); refused otherwise, since
        they look like the real ones but are not.

    Returns
    -------
    StoredSpectra
        The spectra with their header and file name.

    Raises
    ------
    ValueError
        Naming the file and the problem: a missing file, not an npz archive, a member whose CRC does not match
        (corruption), a wrong or missing header or meta key, pickled (object) content, shapes that disagree with
        the header, non-finite or negative weights, a non-finite node that carries weight, or quick spectra
        without ``allow_quick``.

    Examples
    --------
    >>> from quadlab import stored
    >>> st = stored.load("resnet18")
    >>> len(st.names) > 4, len(st.slq.weights) == len(st.names)
    (True, True)
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(f"load() takes a shipped name ({', '.join(sorted(_NAMES))}) or a file path, "
                         f"not {type(name_or_path).__name__}")
    path = data_path(name_or_path) if isinstance(name_or_path, str) and name_or_path in _NAMES else Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file" + (" (rebuild the shipped spectra with `quadlab extract`)"
                                                     if name_or_path in _NAMES else ""))
    if not zipfile.is_zipfile(path):
        # np.load would take any other bytes for a pickle and say so: name the real problem instead.
        raise _bad(path, "it is not an npz (zip) archive")
    try:
        with zipfile.ZipFile(path) as zf:
            broken = zf.testzip()  # reads every member and checks its CRC-32
    except Exception as exc:  # noqa: BLE001 - any failure to parse an untrusted archive is a bad file
        raise _bad(path, f"damaged zip archive ({type(exc).__name__}: {exc})") from None
    if broken is not None:
        raise _bad(path, f"member {broken!r} is corrupted (CRC-32 mismatch)")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise _bad(path, f"cannot be read as an npz archive: {type(exc).__name__}: {exc}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise _bad(path, "a single .npy array, not an npz archive")
    with z:
        try:
            fmt = str(z["format"][()]) if "format" in z.files else None
            if fmt != FORMAT:
                raise _bad(path, f"header format is {fmt!r}, expected {FORMAT!r}")
            version = int(z["version"][()])
            if version != VERSION:
                raise _bad(path, f"format version {version}, this quadlab reads version {VERSION}")
            meta = json.loads(str(z["meta"][()]))
            _check_meta(path, meta)
            if meta.get("quick", False) and not allow_quick:
                raise ValueError(f"{path}: holds the toy spectra of `quadlab extract --quick`, not a real "
                                 "build; pass allow_quick=True (command line: --allow-quick) to read it anyway")
            names, sizes = meta["names"], meta["sizes"]
            nodes, weights, resid = [], [], []
            for i in range(len(names)):
                X, W, R = (np.array(z[f"{k}_{i}"], dtype=np.float64) for k in ("nodes", "weights", "residuals"))
                if not (X.shape == W.shape == R.shape and X.ndim == 2 and X.shape[0] == meta["probes"]
                        and X.shape[1] >= 1):
                    raise _bad(path, f"block {names[i]!r}: arrays of shapes {X.shape}, {W.shape}, {R.shape}")
                if (W < 0).any() or not np.isfinite(W).all():
                    raise _bad(path, f"block {names[i]!r}: weights must be finite and non-negative")
                if not np.isfinite(X[W > 0]).all():
                    raise _bad(path, f"block {names[i]!r}: a node with positive weight is not finite")
                for a in (X, W, R):
                    a.setflags(write=False)
                nodes.append(X), weights.append(W), resid.append(R)
        except (KeyError, json.JSONDecodeError) as exc:  # JSONDecodeError is a ValueError: catch it first
            raise _bad(path, f"missing or malformed entry ({exc})") from None
        except ValueError as exc:
            if str(exc).startswith(f"{path}:"):
                raise  # already names the file and the problem
            if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                raise _bad(path, "it holds pickled (object) arrays, which quadlab never loads") from None
            raise _bad(path, f"unreadable entry ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - a damaged member: zlib, zip or npy header errors
            raise _bad(path, f"unreadable entry ({type(exc).__name__}: {exc})") from None
    slq_meta = meta.get("slq", {})
    status = tuple(slq_meta.get("status", [STATUS_OK] * len(names)))
    breakdown = tuple(tuple(b) for b in slq_meta.get("breakdown", [[None] * meta["probes"]] * len(names)))
    q = SLQResult(tuple(names), tuple(int(s) for s in sizes), tuple(nodes), tuple(weights), tuple(resid),
                  int(meta["m"]), tuple(min(int(meta["m"]), int(s)) for s in sizes), int(meta["probes"]),
                  int(meta["seed"]), breakdown, status, tuple(f"block {n!r}: stored" for n in names))
    return StoredSpectra(q, meta, str(path))


def from_paper_json(values, weights, sizes=None) -> StoredSpectra:
    """Import the paper code's SLQ output: ``values_layer.json`` and ``weights_layer.json``.

    Each file is a JSON object {block name: probes × m list} of Ritz values θ and quadrature weights w.

    Parameters
    ----------
    values, weights : str, pathlib.Path or dict
        The two files (or their parsed objects), with the same block names and shapes.
    sizes : dict of str to int, optional
        d per block, recorded when known; otherwise stored as 0 (unknown).

    Returns
    -------
    StoredSpectra
        ``source`` is the values file's path ("" for dicts).

    Raises
    ------
    ValueError
        If a file cannot be read or parsed, the names or shapes of the two disagree, or a number is not finite
        (weights also ≥ 0).

    Examples
    --------
    >>> from quadlab import stored
    >>> st = stored.from_paper_json({"b": [[1.0, 3.0]]}, {"b": [[0.25, 0.75]]})
    >>> nodes, w = st.measure("b")
    >>> nodes.tolist(), w.tolist()
    ([1.0, 3.0], [0.25, 0.75])
    """
    def read(obj, what):
        if isinstance(obj, dict):
            return obj
        try:
            with open(obj, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the {what} file {obj}: {exc}") from None

    vals, wts = read(values, "values"), read(weights, "weights")
    if set(vals) != set(wts) or not vals:
        raise ValueError(f"the values and weights files must name the same, non-empty blocks; got "
                         f"{sorted(vals)} and {sorted(wts)}")
    names = list(vals)
    nodes, weights_, resid = [], [], []
    probes = None
    for n in names:
        X, W = np.atleast_2d(np.asarray(vals[n], dtype=np.float64)), np.atleast_2d(np.asarray(wts[n], dtype=np.float64))
        if X.shape != W.shape or X.ndim != 2:
            raise ValueError(f"block {n!r}: values of shape {X.shape} but weights of shape {W.shape}")
        if probes is None:
            probes = X.shape[0]
        if X.shape[0] != probes:
            raise ValueError(f"block {n!r} has {X.shape[0]} probes, the first block {probes}")
        if not (np.isfinite(X).all() and np.isfinite(W).all() and (W >= 0).all()):
            raise ValueError(f"block {n!r}: values and weights must be finite and weights non-negative")
        nodes.append(X), weights_.append(W), resid.append(np.full_like(X, np.nan))
    m = max(X.shape[1] for X in nodes)
    pad = lambda A, fill: np.pad(A, ((0, 0), (0, m - A.shape[1])), constant_values=fill)  # noqa: E731
    nodes = [pad(X, np.nan) for X in nodes]
    weights_ = [pad(W, 0.0) for W in weights_]
    resid = [pad(R, np.nan) for R in resid]
    sz = tuple(int((sizes or {}).get(n, 0)) for n in names)
    q = SLQResult(tuple(names), sz, tuple(nodes), tuple(weights_), tuple(resid), m, tuple(m for _ in names),
                  int(probes), -1, tuple((None,) * probes for _ in names), (STATUS_OK,) * len(names),
                  tuple(f"block {n!r}: imported from the paper code's JSON" for n in names))
    return StoredSpectra(q, {"source": "paper code JSON (values_layer/weights_layer)", "names": names}, "json")


def to_paper_json(source, folder) -> tuple[Path, Path]:
    """Write block spectra in the paper code's format, atomically, one file each for values and weights.

    ``folder/values_layer.json`` and ``folder/weights_layer.json`` are {block name: probes × m list}.  JSON has no
    NaN, so slots beyond a probe's quadrature (after a breakdown) are written as node 0.0 with weight 0.0, which
    every reader of a quadrature ignores; :func:`from_paper_json` reads the files back to the same measures.

    Parameters
    ----------
    source : StoredSpectra, SLQResult, str or pathlib.Path
        The spectra, a shipped name or a file written by :func:`save`.
    folder : str or pathlib.Path
        An existing or creatable folder.

    Returns
    -------
    tuple of pathlib.Path
        (values file, weights file).

    Raises
    ------
    ValueError
        If ``source`` cannot be loaded or ``folder`` cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> from quadlab import stored
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     v, w = stored.to_paper_json("gpt2", tmp)
    ...     back = stored.from_paper_json(v, w)
    >>> back.names == stored.load("gpt2").names
    True
    """
    if isinstance(source, SLQResult):
        q = source
    else:
        q = (load(source) if isinstance(source, (str, os.PathLike)) else source).slq
        if not isinstance(q, SLQResult):
            raise ValueError(f"to_paper_json needs an SLQResult, StoredSpectra, name or path, got {type(source).__name__}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; to_paper_json writes two files into a folder")
    folder.mkdir(parents=True, exist_ok=True)
    vals, wts = {}, {}
    for name, X, W in zip(q.names, q.nodes, q.weights, strict=True):
        used = (W > 0) & np.isfinite(X)
        vals[name] = np.where(used, X, 0.0).tolist()
        wts[name] = np.where(used, W, 0.0).tolist()
    out = []
    for fname, obj in (("values_layer.json", vals), ("weights_layer.json", wts)):
        out.append(write_text_atomic(json.dumps(obj, allow_nan=False), folder / fname))
    return out[0], out[1]


# The quadratic cases sampled from these files live in quadlab.sampling; their names stay importable from here.
from .sampling import (  # noqa: E402
    DEFAULT_READING,
    GPT2_CASE_BLOCKS,
    LOG_FLOOR,
    READINGS,
    RESNET18_CASE_BLOCKS,
    TOP_Q,
    gpt2_case,
    resnet18_case,
    sample_block,
    sampled_spectrum,
)
