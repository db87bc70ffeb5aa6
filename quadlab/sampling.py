"""The quadratic cases sampled from stored network spectra: Cases 1–2 and the readings of "scaled and
shifted to [1, κ]".

:func:`sample_block` draws d eigenvalues from one block's stored SLQ measure by its inverse distribution
function; :func:`sampled_spectrum` does so for every chosen block and maps the draws into [1, κ] by a
*reading*; :func:`gpt2_case` and :func:`resnet18_case` are the paper's Cases 1 and 2.  The mathematics of
the sampling and of every reading (what it does to κ_l and to a block's lower edge) is in the docstring of
:mod:`quadlab.stored`, which re-exports every name here.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ._engine import portable
from .spectra import BlockSpectrum

__all__ = ["DEFAULT_READING", "GPT2_CASE_BLOCKS", "LOG_FLOOR", "READINGS", "RESNET18_CASE_BLOCKS", "TOP_Q",
           "gpt2_case", "resnet18_case", "sample_block", "sampled_spectrum"]

_TRANSFORMS = ("abs", "positive", "signed")  # the deprecated ``transform=`` names, each now a reading
_METHODS = ("quantile", "random")

#: The readings of "scaled and shifted to [1, κ]" (quadlab.stored's docstring), each with one line on what it does to
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
    # the C library's scalar exp/log (quadlab._engine.portable), not numpy's SIMD loops: the spectrum's bits
    # must not depend on the CPU
    p = math.log(kappa) / math.log(M / m)
    out = []
    for b in blocks:
        v = portable.exp(p * portable.log(b / m))
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
    x, w = x[order], w[order] / float(portable.fsum(w))  # correctly rounded, so the same bits on every CPU
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
        The spectra, a shipped name or a file written by :func:`quadlab.stored.save`.
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
    from . import stored  # here, not at the top: stored re-exports this module's names

    st = stored.load(source) if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(st, stored.StoredSpectra):
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
        Four GPT2 blocks of ``d`` eigenvalues in [1, κ].

    Raises
    ------
    ValueError
        Whatever :func:`sampled_spectrum` rejects.

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
    kappa, d, **kw
        As for :func:`gpt2_case`.
    blocks : sequence of str, default ``RESNET18_CASE_BLOCKS``
        The first convolution of each stage.

    Returns
    -------
    BlockSpectrum
        Four ResNet18 blocks of ``d`` eigenvalues in [1, κ].

    Raises
    ------
    ValueError
        For an unknown block, reading or κ (:func:`sampled_spectrum`).

    Examples
    --------
    >>> from quadlab.stored import resnet18_case
    >>> resnet18_case(kappa=1000.0).sizes
    (25, 25, 25, 25)
    """
    return sampled_spectrum("resnet18", blocks, d, kappa, **kw)
