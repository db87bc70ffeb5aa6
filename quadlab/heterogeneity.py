"""Block heterogeneity: Jensen–Shannon comparisons of block spectral densities and the JS⁰ average.

For two densities p, q on one grid with quadrature weights c_i (trapezoid; Σ c_i p_i = Σ c_i q_i = 1) and
m = ½(p + q):

    JS(p, q) = ½ KL(p‖m) + ½ KL(q‖m) = Σ_i c_i f(p_i, q_i),
    f(p, q)  = ½ p ln(2p/(p + q)) + ½ q ln(2q/(p + q))      (0·ln 0 = 0).

f(p, q) ≥ 0 and f(p, q) ≤ ½(p + q) ln 2 pointwise, so the discrete JS lies in [0, ln 2] exactly, not only in
the limit.  Variants (``variant=``):

* "divergence": JS, in nats (``base="nats"``, ≤ ln 2) or bits (``base="bits"``, ≤ 1).
* "distance":   √JS in the chosen base (a metric).
* "grid_sum":   Σ_i f(p_i, q_i), the sum over grid points without the spacing factor, i.e. JS/Δt on a
  uniform grid.  The paper's table (ResNet18 0.10 … ViT-base 286.41) exceeds ln 2, so its scaling is
  unknown; this is the guess of docs/THEORY.md §6, offered for comparison only.  Its size depends on the grid.

JS⁰ = the mean of JS over all unordered pairs of distinct blocks (L ≥ 2).

Every number depends on the smoothing σ, the per-block normalisation and the axis (see
:func:`quadlab.lanczos.density`), and on a raw shared axis the largest block sets σ and squeezes every small
block into one spike.  :func:`analyze` therefore reports those choices, the spread of block scales and (for
SLQ input) the probe-to-probe noise floor next to JS⁰.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._engine.choices import one_of
from .density import Density, density, measures, smooth
from .slq import SLQResult, slq
from .spectra import DENSITY_SOURCES, BlockSpectrum

__all__ = ["VARIANTS", "HeterogeneityReport", "analyze", "js0", "js_matrix", "js_pair"]

VARIANTS = ("divergence", "distance", "grid_sum")
BASES = ("nats", "bits")


def _check_variant(variant: str, base: str) -> None:
    one_of("variant", variant, VARIANTS)
    one_of("base", base, BASES)


def _pointwise(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    s = p + q
    pos = s > 0
    safe = np.where(pos, s, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tp = np.where(p > 0, p * np.log(np.where(p > 0, 2 * p / safe, 1.0)), 0.0)
        tq = np.where(q > 0, q * np.log(np.where(q > 0, 2 * q / safe, 1.0)), 0.0)
    return np.where(pos, 0.5 * (tp + tq), 0.0)


def js_pair(p, q, quad_weights, variant: str = "divergence", base: str = "nats") -> float:
    """JS of two densities on one grid: JS(p, q) = ½ KL(p‖m) + ½ KL(q‖m), m = (p + q)/2, integrated with the
    grid's quadrature weights (module docstring for the variants).

    Parameters
    ----------
    p, q : array_like
        Non-negative densities on the grid, used as given (not renormalised).
    quad_weights : array_like
        The grid's quadrature weights, same length.
    variant : {"divergence", "distance", "grid_sum"}, default "divergence"
    base : {"nats", "bits"}, default "nats"

    Returns
    -------
    float
        In [0, ln 2] nats (divergence), ≥ 0.

    Raises
    ------
    ValueError
        If the arrays are not 1-D of one length, a density is negative or not finite, or ``variant``/``base`` is
        unknown.

    Examples
    --------
    >>> from quadlab import heterogeneity
    >>> heterogeneity.js_pair([1.0, 0.0], [0.0, 1.0], [1.0, 1.0], base="bits")  # disjoint supports: 1 bit
    1.0
    """
    _check_variant(variant, base)
    p, q, c = (np.asarray(a, dtype=np.float64) for a in (p, q, quad_weights))
    if not (p.shape == q.shape == c.shape and p.ndim == 1):
        raise ValueError(f"p, q and quad_weights must be 1-D of one length, got {p.shape}, {q.shape}, {c.shape}")
    if (p < 0).any() or (q < 0).any() or not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("densities must be finite and non-negative")
    f = _pointwise(p, q)
    val = float(f.sum()) if variant == "grid_sum" else float(f @ c)
    # Rounding can leave −1e-17 where the true value is 0; the pointwise bound makes any larger negative impossible.
    val = max(val, 0.0)
    if base == "bits":
        val /= math.log(2)
    return math.sqrt(val) if variant == "distance" else val


def _density_of(obj, source, sigma, relative, normalize, k, log_axis, grid, n_grid, m, probes, seed) -> Density:
    if source is not None:
        one_of("source", source, DENSITY_SOURCES)
    if isinstance(obj, Density):
        return obj
    if isinstance(obj, SLQResult):
        if source == "exact":
            raise ValueError("an SLQResult holds quadrature nodes, not exact eigenvalues: use source='slq' (or None)")
    elif source == "slq":
        if isinstance(obj, BlockSpectrum):
            raise ValueError("source='slq' needs an operator: pass a BlockQuadratic (or an SLQResult), not a BlockSpectrum")
        obj = slq(obj, m=m, probes=probes, seed=seed)
    return density(obj, grid=grid, sigma=sigma, relative=relative, normalize=normalize, k=k, log_axis=log_axis,
                   n_grid=n_grid)


def _matrix(dens: Density, variant: str, base: str) -> np.ndarray:
    if variant == "grid_sum":
        dx = np.diff(dens.grid)
        if not np.allclose(dx, dx[0], rtol=1e-9, atol=0):
            raise ValueError("variant='grid_sum' is a sum over grid points and needs a uniform grid")
    L = dens.values.shape[0]
    M = np.zeros((L, L))
    for i in range(L):
        for j in range(i + 1, L):
            M[i, j] = M[j, i] = js_pair(dens.values[i], dens.values[j], dens.quad_weights, variant, base)
    return M


_DOC_ARGS = """
    ``obj``: a BlockQuadratic (exact spectra with source="exact", the default; SLQ with source="slq", run with
    ``m``, ``probes``, ``seed``), a BlockSpectrum, a list or dict of 1-D eigenvalue arrays, an SLQResult, or a
    precomputed :class:`~quadlab.lanczos.Density` (then the smoothing arguments are ignored).
    ``sigma``, ``relative``, ``normalize``, ``k``, ``log_axis``, ``grid``, ``n_grid``: the smoothing, as in
    :func:`quadlab.lanczos.density` (defaults: σ = 1 % of the pooled range, no normalisation, linear axis)."""


def js_matrix(obj, variant: str = "divergence", source: str | None = None, base: str = "nats", sigma: float = 0.01,
              relative: bool = True, normalize: str | None = None, k: int = 10, log_axis: bool = False, grid=None,
              n_grid: int | None = None, m: int = 100, probes: int = 10, seed: int = 0) -> np.ndarray:
    """The symmetric (L, L) matrix of pairwise JS values (zero diagonal) of the blocks' densities.

    Parameters
    ----------
    obj : BlockQuadratic, BlockSpectrum, sequence or dict of 1-D arrays, SLQResult or Density
        A BlockQuadratic gives exact spectra with source="exact" (the default) or SLQ with source="slq" (run with
        ``m``, ``probes``, ``seed``); a precomputed Density ignores the smoothing arguments.
    variant : {"divergence", "distance", "grid_sum"}, default "divergence"
        JS divergence, its square root, or the paper code's unweighted sum over grid points (uniform grids).
    source : {"exact", "slq"} or None, default None
        The spectrum source (:data:`quadlab.spectra.DENSITY_SOURCES`); None: whatever ``obj`` holds.
    base : {"nats", "bits"}, default "nats"
    sigma, relative, normalize, k, log_axis, grid, n_grid
        The smoothing, as in :func:`quadlab.density.density` (defaults: σ = 1 % of the pooled range, no
        normalisation, linear axis).
    m, probes, seed : int
        SLQ's Lanczos length, probes and seed with source="slq".

    Returns
    -------
    numpy.ndarray
        (L, L) float64.

    Raises
    ------
    ValueError
        If ``variant``, ``base`` or ``source`` is unknown, ``source`` does not fit ``obj`` (SLQ of a BlockSpectrum,
        exact eigenvalues of an SLQResult), "grid_sum" meets a non-uniform grid, or as for
        :func:`quadlab.density.density`.

    Examples
    --------
    >>> from quadlab import heterogeneity
    >>> M = heterogeneity.js_matrix({"a": [1.0], "b": [1.0], "c": [100.0]}, base="bits")
    >>> M.round(6).tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    """
    _check_variant(variant, base)
    dens = _density_of(obj, source, sigma, relative, normalize, k, log_axis, grid, n_grid, m, probes, seed)
    return _matrix(dens, variant, base)


def js0(obj, variant: str = "divergence", source: str | None = None, base: str = "nats", sigma: float = 0.01,
        relative: bool = True, normalize: str | None = None, k: int = 10, log_axis: bool = False, grid=None,
        n_grid: int | None = None, m: int = 100, probes: int = 10, seed: int = 0) -> float:
    """JS⁰: the mean pairwise JS over the L(L − 1)/2 unordered pairs of distinct blocks (needs L ≥ 2).

    Parameters
    ----------
    obj, variant, source, base, sigma, relative, normalize, k, log_axis, grid, n_grid, m, probes, seed
        The blocks, the divergence and the smoothing, as for :func:`js_matrix`.

    Returns
    -------
    float
        JS⁰ in ``base`` units.

    Raises
    ------
    ValueError
        As for :func:`js_matrix`, and for fewer than 2 blocks.

    Examples
    --------
    >>> from quadlab import heterogeneity, spectra
    >>> het = heterogeneity.js0(spectra.simple_heterogeneous(1000), base="bits")
    >>> hom = heterogeneity.js0(spectra.simple_homogeneous(1000), base="bits")
    >>> round(het, 4), bool(hom < 0.2 < het)  # well-separated blocks: nearly 1 bit
    (1.0, True)
    """
    M = js_matrix(obj, variant=variant, source=source, base=base, sigma=sigma, relative=relative,
                  normalize=normalize, k=k, log_axis=log_axis, grid=grid, n_grid=n_grid, m=m, probes=probes,
                  seed=seed)
    L = M.shape[0]
    if L < 2:
        raise ValueError(f"JS0 compares blocks pairwise and needs at least 2 blocks, got {L}")
    return float(M[np.triu_indices(L, 1)].mean())


js_matrix.__doc__ += _DOC_ARGS
js0.__doc__ += _DOC_ARGS


@dataclass(frozen=True, eq=False)
class HeterogeneityReport:
    """JS⁰ with everything needed to read it.

    Attributes
    ----------
    js0 : float
    matrix : numpy.ndarray
        (L, L) pairwise JS.
    names : tuple of str
    variant, base : str
    density : Density
        The densities compared (grid, σ, normalisation, axis).
    scale_spread_decades : float
        log10(max_l s_l / min_l s_l), s_l = max |λ| of block l before normalisation.
    noise_floor : float or None
        For SLQ input, the mean over blocks of the mean JS between single-probe densities of the same block
        (distinct probe pairs, same grid and σ): the level below which JS⁰ differences are SLQ noise; None for
        exact spectra or a single probe.
    """

    js0: float
    matrix: np.ndarray
    names: tuple[str, ...]
    variant: str
    base: str
    density: Density
    scale_spread_decades: float
    noise_floor: float | None

    def summary(self) -> str:
        """One line: JS⁰ and how it was measured.

        Returns
        -------
        str
            JS⁰ with its variant, base, source, smoothing and block scales.
        """
        d = self.density
        norm = d.normalize or "none"
        sig = f"sigma={d.sigma:.4g} ({'relative ' + format(d.sigma_rel, 'g') if d.sigma_rel is not None else 'absolute'})"
        floor = "" if self.noise_floor is None else f", SLQ noise floor {self.noise_floor:.4g}"
        return (f"JS0 = {self.js0:.4g} ({self.variant}, {self.base}; {d.source} spectra, {len(self.names)} blocks; "
                f"{sig}, normalisation {norm}, {'log10' if d.log_axis else 'linear'} axis; block scales span "
                f"{self.scale_spread_decades:.2f} decades{floor})")


def analyze(obj, variant: str = "divergence", source: str | None = None, base: str = "nats", sigma: float = 0.01,
            relative: bool = True, normalize: str | None = None, k: int = 10, log_axis: bool = False, grid=None,
            n_grid: int | None = None, m: int = 100, probes: int = 10, seed: int = 0) -> HeterogeneityReport:
    """JS⁰ and its context (:class:`HeterogeneityReport`).

    Parameters
    ----------
    obj, variant, source, base
        As for :func:`js0`.
    sigma, relative, normalize, k, log_axis, grid, n_grid, m, probes, seed
        The smoothing (and SLQ's settings), also as for :func:`js0`.

    Returns
    -------
    HeterogeneityReport
        JS⁰, the pairwise matrix, the densities and the SLQ noise floor.

    Raises
    ------
    ValueError
        Like :func:`js0`, before any density is computed.

    Examples
    --------
    >>> from quadlab import heterogeneity, stored
    >>> rep = heterogeneity.analyze(stored.load("gpt2").slq, source="slq", normalize="max_abs")
    >>> rep.density.source, rep.noise_floor is not None, len(rep.names) == rep.matrix.shape[0]
    ('slq', True, True)
    """
    _check_variant(variant, base)
    if source == "slq" and not isinstance(obj, (SLQResult, Density)):
        if isinstance(obj, BlockSpectrum):
            raise ValueError("source='slq' needs an operator: pass a BlockQuadratic (or an SLQResult)")
        obj = slq(obj, m=m, probes=probes, seed=seed)
    dens = _density_of(obj, source, sigma, relative, normalize, k, log_axis, grid, n_grid, m, probes, seed)
    M = _matrix(dens, variant, base)
    L = M.shape[0]
    if L < 2:
        raise ValueError(f"JS0 compares blocks pairwise and needs at least 2 blocks, got {L}")
    scales = np.asarray(dens.max_abs)
    spread = float(np.log10(scales.max() / scales.min())) if scales.min() > 0 else math.inf
    floor = None
    if isinstance(obj, SLQResult) and obj.probes > 1:
        _, _, _, per_probe = measures(obj)
        vals = []
        for b, meas in enumerate(per_probe):
            curves = []
            for x, w in meas:
                t = x / dens.scales[b]
                t = np.log10(t) if dens.log_axis else t
                p = smooth(t, w, dens.grid, dens.sigma)
                curves.append(p / (p @ dens.quad_weights))
            pairs = [js_pair(curves[i], curves[j], dens.quad_weights, variant, base)
                     for i in range(len(curves)) for j in range(i + 1, len(curves))]
            if pairs:
                vals.append(float(np.mean(pairs)))
        floor = float(np.mean(vals)) if vals else None
    return HeterogeneityReport(float(M[np.triu_indices(L, 1)].mean()), M, tuple(dens.names), variant, base, dens,
                               spread, floor)
