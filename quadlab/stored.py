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
from .spectra import BlockSpectrum

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
        If ``name`` is not a shipped set.

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


# ================================================================================================
# Sampling block spectra for the quadratic cases
# ================================================================================================
_TRANSFORMS = ("abs", "positive", "signed")  # the deprecated ``transform=`` names, each now a reading
_METHODS = ("quantile", "random")

#: The readings of "scaled and shifted to [1, κ]" (module docstring), each with one line on what it does to
#: κ_l and to a block's lower edge; ``quadlab readings`` compares them.
READINGS = {
    "abs": "joint affine map of |λ| to [1, κ]; blocks drawing their near-zero bulk reach down to ≈ 1, so κ_l ≈ "
           "the block's mapped top (small-scale blocks squeezed to κ_l ≈ 1)",
    "signed": "joint affine map of the signed λ; small-scale blocks collapse where 0 lands (κ_l → 1, lower edge "
              "far above 1)",
    "positive": "joint affine map of max(λ, 0); blocks drawing λ ≤ 0 have lower edge exactly 1, κ_l = their top",
    "top": "only the top fraction q of each block's |λ| mass, then the joint affine map; the lower edge rises "
           "to the block's (1 − q) quantile, κ_l falls",
    "log": "affine map of ln|λ|: λ ↦ (|λ|/m)^p; κ_l = (block's own max/min)^p, lower edge (a_l/m)^p, ratios "
           "within and across blocks kept on a log axis",
    "block_shift": "each block's signed λ shifted by its own lower edge, one joint scale; lower edge exactly 1 "
                   "for every block, κ_l − 1 ∝ the block's spread",
}
#: The reading Cases 1–2 use unless told otherwise.  Chosen by ``quadlab readings`` (THEORY.md §7): of the readings,
#: "log" alone keeps every block's whole measure (its relative range, on a log axis), keeps Case 1's JS⁰ above Case
#: 2's (heterogeneity across blocks) and makes Case 1 behave like Case 3 and Case 2 like Case 4.  "abs", quadlab's
#: default before the readings study, stays one argument away.
DEFAULT_READING = "log"
#: The fraction of each block's mass that the "top" reading keeps, unless ``q`` is given.
TOP_Q = 0.1
#: The "log" reading lifts |θ| below LOG_FLOOR·(the block's max |θ|) to that value: the stored spectra come from
#: float32 Hessian-vector products, whose relative resolution is 2⁻²³, so smaller Ritz values are numerically 0
#: and their logarithm would be noise (ResNet18's zero bulk sits anywhere from 1e-8 to 1e-12).
LOG_FLOOR = 2.0**-23

#: The blocks of Cases 1–2 (4 × 25 by default): for GPT2 the embedding and three layer-0 blocks of different
#: kinds (attention query and value, MLP fc), for ResNet18 the first convolution of each stage.
GPT2_CASE_BLOCKS = ("wte.weight", "layers.0.attn.query.weight", "layers.0.attn.value.weight",
                    "layers.0.mlp.fc.weight")
RESNET18_CASE_BLOCKS = ("stages.0.0.conv1.weight", "stages.1.0.conv1.weight", "stages.2.0.conv1.weight",
                        "stages.3.0.conv1.weight")


def _transform(x: np.ndarray, transform: str, floor: float = 0.0) -> np.ndarray:
    """The values a reading draws from: |θ| ("abs", "top"), max(|θ|, floor) ("log"), max(θ, 0) ("positive")
    or θ itself ("signed", "block_shift")."""
    if transform in ("abs", "top"):
        return np.abs(x)
    if transform == "log":
        return np.maximum(np.abs(x), floor)
    if transform == "positive":
        return np.maximum(x, 0.0)
    return x


def _check_kappa(kappa) -> float:
    kappa = float(kappa)
    if not np.isfinite(kappa) or kappa < 1:
        raise ValueError(f"kappa must be a finite number >= 1, got {kappa!r}")
    return kappa


def _flat(blocks, kappa: float, what: str) -> list[np.ndarray]:
    # every map sends the extremes apart; with nothing to spread, only κ = 1 is reachable
    if kappa != 1:
        raise ValueError(f"{what}: the draws have no spread, so no map can reach [1, {kappa:g}]; draw more "
                         "eigenvalues per block (d) or choose other blocks")
    return [np.ones_like(b) for b in blocks]


def _log_map(blocks: list[np.ndarray], kappa: float) -> list[np.ndarray]:
    """λ = (v/m)^p, p = ln κ / ln(M/m), for positive draws v (m, M: the smallest and largest of all blocks),
    with the extremes pinned to exactly 1 and κ."""
    m = min(float(b.min()) for b in blocks)
    M = max(float(b.max()) for b in blocks)
    if not m > 0:
        raise ValueError("the log reading needs positive draws (got a draw <= 0)")
    if M == m:
        return _flat(blocks, kappa, "log reading")
    p = np.log(kappa) / np.log(M / m)
    out = []
    for b in blocks:
        v = np.exp(p * np.log(b / m))
        v[b == m], v[b == M] = 1.0, kappa  # exp/log rounding must not move the extremes off 1 and κ
        out.append(v)
    return out


def _shift_map(blocks: list[np.ndarray], kappa: float) -> list[np.ndarray]:
    """λ = 1 + (κ − 1)(x − a_l)/max_k(b_k − a_k) per block l (a_l, b_l: the block's smallest and largest draw),
    with each lower edge pinned to 1 and the widest block's top to κ."""
    spread = [float(b.max() - b.min()) for b in blocks]
    widest = max(spread)
    if widest == 0:
        return _flat(blocks, kappa, "block_shift reading")
    out = []
    for b, s in zip(blocks, spread, strict=True):
        v = 1.0 + (kappa - 1.0) * ((b - b.min()) / widest)
        v[b == b.min()] = 1.0
        if s == widest:
            v[b == b.max()] = kappa
        out.append(v)
    return out


def sample_block(nodes, weights, d: int, *, method: str = "quantile", smooth: bool = True, seed=0,
                 q: float = 1.0) -> np.ndarray:
    """d eigenvalues drawn from a discrete measure Σ_i w_i δ_{x_i} by its inverse distribution function F⁻¹.

    F⁻¹ is evaluated at the quantile levels (j − ½)/d, j = 1..d ("quantile") or at d sorted uniforms from
    ``default_rng(seed)`` ("random").  With ``smooth`` F⁻¹ is interpolated linearly between the mid-steps
    (C_i − w_i/2, x_i) of the cumulative weights C_i, so draws fall between nodes in proportion to the weights
    around them; without it F⁻¹ is the step function (draws are nodes).  With q < 1 the levels become
    1 − q + q·u: the measure conditioned on its upper fraction q of mass (the atom at the cut split).

    Parameters
    ----------
    nodes, weights : array_like
        x_i (finite) and w_i (≥ 0, positive sum); slots with NaN nodes and zero weight are ignored.
    d : int
        Number of eigenvalues, ≥ 1.
    method : {"quantile", "random"}, keyword-only
    seed : int, keyword-only, default 0
        Seed of the "random" levels.
    smooth : bool, keyword-only, default True
    q : float, keyword-only, default 1.0
        The top fraction of the mass to draw from, in (0, 1].

    Returns
    -------
    numpy.ndarray
        Shape (d,), ascending.

    Raises
    ------
    ValueError
        If the measure is empty or invalid, d is not a positive integer, ``method`` is unknown or q ∉ (0, 1].

    Examples
    --------
    >>> from quadlab import stored
    >>> stored.sample_block([1.0, 2.0], [0.5, 0.5], 2, smooth=False).tolist()
    [1.0, 2.0]
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d (eigenvalues per block) must be a positive integer, got {d!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating)) or not 0 < q <= 1:
        raise ValueError(f"q (the top fraction of the mass to draw from) must lie in (0, 1], got {q!r}")
    x, w = np.asarray(nodes, dtype=np.float64).ravel(), np.asarray(weights, dtype=np.float64).ravel()
    if x.shape != w.shape or x.size == 0:
        raise ValueError(f"nodes and weights must be non-empty and of one shape, got {x.shape} and {w.shape}")
    keep = w > 0
    if not (np.isfinite(x[keep]).all() and np.isfinite(w).all() and (w >= 0).all() and keep.any()):
        raise ValueError("the measure needs finite nodes and finite non-negative weights with a positive sum")
    x, w = x[keep], w[keep]
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order] / w.sum()
    C = np.cumsum(w)
    if method == "quantile":
        u = (np.arange(d) + 0.5) / d
    else:
        u = np.sort(np.random.default_rng(seed).random(d))
    if q < 1:
        u = (1.0 - q) + q * u
    if smooth:
        return np.interp(u, C - w / 2, x)
    return x[np.minimum(np.searchsorted(C, u, side="left"), x.size - 1)]


def sampled_spectrum(source, blocks=None, d: int = 25, kappa: float = 5000.0, *, reading: str | None = None,
                     q: float | None = None, method: str = "quantile", smooth: bool = True, seed: int = 0,
                     transform: str | None = None) -> BlockSpectrum:
    """A BlockSpectrum for a quadratic case: d eigenvalues per chosen block, sampled and read into [1, κ].

    Per block, :func:`sample_block` draws from the block's stored measure; the draws are then mapped into
    [1, κ] by ``reading`` (a key of ``READINGS``; the module docstring gives each one's map and what it does to
    κ_l and to a block's lower edge).  Every reading returns min λ = 1 and max λ = κ exactly.

    Parameters
    ----------
    source : StoredSpectra, str or pathlib.Path
        The spectra, a shipped name or a file written by :func:`save`.
    blocks : sequence of str, optional
        Block names (default: all of them).
    d : int or sequence of int, default 25
        Eigenvalues per block (one int for all, or one per block).
    kappa : float, default 5000.0
        κ of the result, > 1 and finite.
    reading : str, keyword-only, optional
        A key of ``READINGS`` (default ``DEFAULT_READING``).
    q : float, keyword-only, optional
        The top fraction of each block's mass that the "top" reading draws from (default ``TOP_Q``); an error
        with any other reading.
    method, smooth : keyword-only
        As for :func:`sample_block`.
    seed : int, keyword-only, default 0
        With ``method="random"`` block l uses ``SeedSequence(seed).spawn(L)[l]``.
    transform : {"abs", "positive", "signed"}, keyword-only, optional
        Deprecated alias of ``reading`` (a DeprecationWarning).

    Returns
    -------
    BlockSpectrum
        The blocks under their stored names.

    Raises
    ------
    ValueError
        If a block name is unknown, ``reading``/``q``/``transform`` are invalid or contradict each other, d or κ
        is out of range, or the spectra cannot be loaded.

    Examples
    --------
    >>> from quadlab import stored
    >>> s = stored.sampled_spectrum("gpt2", ["wte.weight", "layers.0.mlp.fc.weight"], d=5, kappa=100.0)
    >>> s.sizes, s.lambda_min, s.lambda_max
    ((5, 5), 1.0, 100.0)
    """
    if transform is not None:
        import warnings

        if transform not in _TRANSFORMS:
            raise ValueError(f"transform must be one of {_TRANSFORMS}, got {transform!r} (it is the deprecated "
                             f"name of reading=, which takes {sorted(READINGS)})")
        if reading is not None and reading != transform:
            raise ValueError(f"transform={transform!r} and reading={reading!r} disagree; pass reading= only")
        warnings.warn("sampled_spectrum(transform=...) is deprecated; pass reading= (same names)",
                      DeprecationWarning, stacklevel=2)
        reading = transform
    reading = DEFAULT_READING if reading is None else reading
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {sorted(READINGS)}, got {reading!r}")
    if q is not None and reading != "top":
        raise ValueError(f"q (the top fraction of the mass) belongs to reading='top', not reading={reading!r}")
    q = TOP_Q if q is None else q
    kappa = _check_kappa(kappa)
    st = load(source) if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(st, StoredSpectra):
        raise ValueError(f"source must be a StoredSpectra or a shipped name, got {type(source).__name__}")
    names = list(st.names if blocks is None else blocks)
    if not names:
        raise ValueError("choose at least one block")
    sizes = [d] * len(names) if isinstance(d, (int, np.integer)) and not isinstance(d, bool) else list(d)
    if len(sizes) != len(names):
        raise ValueError(f"d has {len(sizes)} entries for {len(names)} blocks")
    seeds = np.random.SeedSequence(seed).spawn(len(names))
    out = []
    for name, dl, ss in zip(names, sizes, seeds, strict=True):
        x, w = st.measure(name)  # ValueError names the block if it is not stored
        floor = 0.0
        if reading == "log":
            scale = float(np.max(np.abs(x[w > 0]))) if (w > 0).any() else 0.0
            if not scale > 0:
                raise ValueError(f"block {name!r}: its measure is all zero, so the log reading has no scale; "
                                 "choose another reading or other blocks")
            floor = LOG_FLOOR * scale
        out.append(sample_block(_transform(x, reading, floor), w, dl, method=method, smooth=smooth, seed=ss,
                                q=q if reading == "top" else 1.0))
    if reading == "log":
        return BlockSpectrum.from_blocks(_log_map(out, kappa), names)
    if reading == "block_shift":
        return BlockSpectrum.from_blocks(_shift_map(out, kappa), names)
    from .spectra import rescale

    return rescale(out, kappa, names=names)


def gpt2_case(kappa: float = 5000.0, blocks=GPT2_CASE_BLOCKS, d: int = 25, **kw) -> BlockSpectrum:
    """Case 1 (heterogeneous, Transformer-type): four GPT2 blocks sampled from the shipped spectra.

    Parameters
    ----------
    kappa : float, default 5000.0
        κ of the case.
    blocks : sequence of str, default ``GPT2_CASE_BLOCKS``
        The stored blocks to sample.
    d : int, default 25
        Eigenvalues per block.
    **kw
        ``reading``, ``q``, ``method``, ``smooth``, ``seed`` of :func:`sampled_spectrum`.

    Returns
    -------
    BlockSpectrum

    Raises
    ------
    ValueError
        As for :func:`sampled_spectrum`.

    Examples
    --------
    >>> from quadlab import stored
    >>> s = stored.gpt2_case(kappa=1000.0)
    >>> s.n_blocks, s.n, s.kappa
    (4, 100, 1000.0)
    """
    return sampled_spectrum("gpt2", blocks, d, kappa, **kw)


def resnet18_case(kappa: float = 5000.0, blocks=RESNET18_CASE_BLOCKS, d: int = 25, **kw) -> BlockSpectrum:
    """Case 2 (homogeneous, CNN-type): four ResNet18 convolution blocks sampled from the shipped spectra.

    Parameters
    ----------
    kappa : float, default 5000.0
        κ of the case.
    blocks : sequence of str, default ``RESNET18_CASE_BLOCKS``
    d : int, default 25
    **kw
        As for :func:`gpt2_case`.

    Returns
    -------
    BlockSpectrum

    Raises
    ------
    ValueError
        As for :func:`sampled_spectrum`.

    Examples
    --------
    >>> from quadlab import stored
    >>> stored.resnet18_case(kappa=1000.0).sizes
    (25, 25, 25, 25)
    """
    return sampled_spectrum("resnet18", blocks, d, kappa, **kw)
