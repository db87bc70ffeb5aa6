"""Smoothed spectral densities of exact spectra or SLQ quadratures.

Densities
---------
A block's density on a grid t is p(t) = Σ_i w_i φ_σ(t − x_i), with φ_σ the Gaussian of standard deviation
σ and (x_i, w_i) its nodes and weights (exact eigenvalues with weights 1/d, or the SLQ nodes with weights
τ/probes), optionally after normalising each block by its k-th largest eigenvalue or its largest |λ| and
after mapping to a log10 axis.  p is then rescaled so that its trapezoid integral over the grid is 1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .krylov import _BREAKDOWN_CAP, _check_int, _frozen
from .problem import BlockQuadratic
from .slq import SLQResult
from .spectra import BlockSpectrum

__all__ = ["NORMALIZATIONS", "Density", "density", "measures", "smooth"]


NORMALIZATIONS = (None, "kth_largest", "max_abs")


@dataclass(frozen=True, eq=False)
class Density:
    """Smoothed spectral densities of several blocks on one shared grid.

    Attributes
    ----------
    names : tuple of str
    grid : numpy.ndarray
        (G,) the axis: eigenvalue, normalised eigenvalue, or log10 of it.
    values : numpy.ndarray
        (L, G) densities, each integrating to 1 under ``quad_weights``.
    quad_weights : numpy.ndarray
        (G,) the trapezoid weights of the grid.
    sigma : float
        The Gaussian's standard deviation in axis units.
    sigma_rel : float or None
        σ as given when relative (σ = sigma_rel · range), else None.
    normalize : str or None
    k : int
    scales : numpy.ndarray
        (L,) what each block was divided by (1 without normalisation).
    log_axis : bool
    mass_on_grid : numpy.ndarray
        (L,) the fraction of each block's kernel mass on the grid before renormalisation (1 for the default grid).
    max_abs : numpy.ndarray
        (L,) max |λ| of each block before normalisation.
    source : str
        The spectrum source, "exact" or "slq".

    Examples
    --------
    >>> from quadlab import density
    >>> d = density.density({"a": [1.0, 2.0], "b": [5.0]}, sigma=0.05)
    >>> d.names, d.source, d.integrals().round(12).tolist()
    (('a', 'b'), 'exact', [1.0, 1.0])
    """

    names: tuple[str, ...]
    grid: np.ndarray
    values: np.ndarray
    quad_weights: np.ndarray
    sigma: float
    sigma_rel: float | None
    normalize: str | None
    k: int
    scales: np.ndarray
    log_axis: bool
    mass_on_grid: np.ndarray
    max_abs: np.ndarray
    source: str

    def integrals(self) -> np.ndarray:
        """∫ p_l over the grid for every block (1 up to rounding).

        Returns
        -------
        numpy.ndarray
            (L,).
        """
        return self.values @ self.quad_weights

    def __getitem__(self, block) -> np.ndarray:
        if isinstance(block, str):
            if block not in self.names:
                raise ValueError(f"no block named {block!r}; blocks are {list(self.names)}")
            block = self.names.index(block)
        return self.values[block]


def measures(obj) -> tuple[str, tuple[str, ...], list, list | None]:
    """The spectral measures of any spectral input: (source, names, pooled measures, per-probe measures).

    Exact inputs give each eigenvalue of block l weight 1/d_l; an SLQResult gives its pooled quadrature and each
    probe's own.

    Parameters
    ----------
    obj : SLQResult, BlockQuadratic, BlockSpectrum, sequence or dict of 1-D arrays

    Returns
    -------
    tuple
        (source, names, [(x, w) per block], per-probe [(x, w)] lists per block or None); source is "slq" or
        "exact".

    Raises
    ------
    ValueError
        If ``obj`` is of another type, has no block, or a block is empty, not 1-D or not finite.

    Examples
    --------
    >>> from quadlab import density
    >>> src, names, pooled, per_probe = density.measures([[1.0, 3.0]])
    >>> src, names, pooled[0][1].tolist(), per_probe
    ('exact', ('block0',), [0.5, 0.5], None)
    """
    if isinstance(obj, SLQResult):
        pooled = [obj.measure(b) for b in range(len(obj.names))]
        per_probe = [[obj.measure(b, i) for i in range(obj.probes) if obj.weights[b][i].sum() > 0]
                     for b in range(len(obj.names))]
        return "slq", obj.names, pooled, per_probe
    if isinstance(obj, BlockQuadratic):
        obj = obj.spectrum
    if isinstance(obj, BlockSpectrum):
        names, blocks = obj.names, list(obj.blocks)
    elif isinstance(obj, Mapping):
        names, blocks = tuple(str(key) for key in obj), list(obj.values())
    elif isinstance(obj, Sequence) and not isinstance(obj, str):
        blocks = list(obj)
        names = tuple(f"block{l}" for l in range(len(blocks)))
    else:
        raise ValueError(
            f"cannot take a density of a {type(obj).__name__}: pass an SLQResult, a BlockQuadratic, a BlockSpectrum, "
            "a list of 1-D eigenvalue arrays or a dict of them"
        )
    if len(blocks) == 0:
        raise ValueError("no blocks given")
    out = []
    for name, b in zip(names, blocks, strict=True):
        x = np.asarray(b, dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"block {name!r}: eigenvalues must be a non-empty 1-D array, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"block {name!r}: eigenvalues must be finite")
        out.append((x, np.full(x.size, 1.0 / x.size)))
    return "exact", names, out, None


def _kth_largest(obj, b: int, x: np.ndarray, k: int) -> float:
    if isinstance(obj, SLQResult):
        # Per probe the k-th largest Ritz value (top Ritz values converge first), averaged over probes.
        vals = []
        for X, W in zip(obj.nodes[b], obj.weights[b], strict=True):
            xs = np.sort(X[(W > 0) & np.isfinite(X)])[::-1]
            if xs.size:
                vals.append(xs[min(k, xs.size) - 1])
        return float(np.mean(vals))
    xs = np.sort(x)[::-1]
    return float(xs[min(k, xs.size) - 1])


def _transform(x: np.ndarray, scale: float, log_axis: bool, name: str) -> np.ndarray:
    t = x / scale
    if log_axis:
        if (t <= 0).any():
            raise ValueError(
                f"block {name!r}: log_axis needs positive (normalised) eigenvalues, but {int((t <= 0).sum())} node(s) "
                f"are <= 0 (smallest {t.min():.6g}); use a linear axis or map the spectrum to positive values first"
            )
        t = np.log10(t)
    return t


def _trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    dx = np.diff(grid)
    c = np.zeros_like(grid)
    c[:-1] += 0.5 * dx
    c[1:] += 0.5 * dx
    return c


def smooth(t: np.ndarray, w: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """Σ_i w_i φ_σ(grid − t_i) with φ_σ the N(0, σ²) density: a weighted Gaussian mixture on a grid (unnormalised).

    Parameters
    ----------
    t, w : numpy.ndarray
        Nodes and weights, 1-D of one length.
    grid : numpy.ndarray
        Evaluation points.
    sigma : float
        > 0.

    Returns
    -------
    numpy.ndarray
        The grid's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from quadlab import density
    >>> g = np.linspace(-10, 10, 4001)
    >>> round(float(np.trapezoid(density.smooth(np.array([0.0]), np.array([2.0]), g, 1.0), g)), 9)
    2.0
    """
    out = np.zeros_like(grid)
    norm = 1.0 / (sigma * math.sqrt(2 * math.pi))
    chunk = max(1, int(2e7 // max(grid.size, 1)))
    for s in range(0, t.size, chunk):
        z = (grid[:, None] - t[None, s : s + chunk]) / sigma
        out += np.exp(-0.5 * z * z) @ w[s : s + chunk]
    return out * norm


def density(obj, grid=None, sigma: float = 0.01, relative: bool = True, normalize: str | None = None, k: int = 10,
            log_axis: bool = False, n_grid: int | None = None) -> Density:
    """Gaussian-smoothed spectral densities of all blocks of ``obj`` on one shared grid.

    Per block, with nodes x_i and weights w_i (Σ w_i = 1): x ↦ x/s_l with s_l = |k-th largest eigenvalue|
    (``normalize="kth_largest"``; the paper's figures use k = 10; for SLQ the k-th largest Ritz value, averaged
    over probes; a block with fewer than k nodes uses its smallest) or s_l = max |x| (``"max_abs"``) or s_l = 1
    (None); then t = log10(x/s_l) if ``log_axis``; then

        p_l(t) = Σ_i w_i φ_σ(t − t_i) / Z_l,   φ_σ(u) = exp(−u²/2σ²)/(σ√(2π)),

    with Z_l the trapezoid integral over the grid, so ∫ p_l = 1 on the grid.  σ is in axis units when
    ``relative=False``, else ``sigma`` × (max t − min t over all blocks) (if that range is 0 to within √eps:
    × max |t|, or × 1).  The default grid has 2,001 to 200,001 points (or ``n_grid``).  Warns (with the numbers)
    when the grid spacing exceeds σ/2 or a block loses more than 1 % of its mass off the grid.

    Parameters
    ----------
    obj : SLQResult, BlockQuadratic, BlockSpectrum, sequence or dict of 1-D arrays
        SLQ nodes and weights (no new products), or exact eigenvalues (weight 1/d_l each).
    grid : array_like, optional
        A finite, strictly increasing axis (default: uniform from min t − 6σ to max t + 6σ, spacing ≤ σ/5).
    sigma : float, default 0.01
        The Gaussian's standard deviation: in axis units, or relative to the pooled range of t.
    relative : bool, default True
    normalize : {None, "kth_largest", "max_abs"}, default None
        Divide each block by |its k-th largest eigenvalue| or by max |λ| first.
    k : int, default 10
    log_axis : bool, default False
        Smooth log10 of the (normalised) eigenvalues; they must be positive.
    n_grid : int, optional
        Points of the default grid (not with ``grid``).

    Returns
    -------
    Density
        The L densities on their shared grid, with how they were made.

    Raises
    ------
    ValueError
        If ``obj`` is not a spectral input, ``normalize`` is unknown, σ is not positive and finite, a block cannot
        be normalised (scale 0) or put on a log axis (a value ≤ 0), ``grid`` and ``n_grid`` are both given or
        ``grid`` is not strictly increasing, or a block has no mass on the grid.

    Examples
    --------
    >>> from quadlab import density, spectra
    >>> d = density.density(spectra.simple_heterogeneous(1000), log_axis=True, sigma=0.05)
    >>> d.values.shape[0], bool(d.grid[0] < 0 < 3 < d.grid[-1])
    (3, True)
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    k = _check_int(k, "k (which largest eigenvalue to normalise by)")
    if not (isinstance(sigma, (int, float, np.floating)) and np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number (a standard deviation), got {sigma!r}")
    source, names, meas, _ = measures(obj)
    ts, ws, scales, maxabs = [], [], [], []
    for b, (name, (x, w)) in enumerate(zip(names, meas, strict=True)):
        mx = float(np.max(np.abs(x)))
        maxabs.append(mx)
        if normalize == "kth_largest":
            s = abs(_kth_largest(obj, b, x, k))
        elif normalize == "max_abs":
            s = mx
        else:
            s = 1.0
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"block {name!r}: cannot normalise by {normalize} = {s!r} (must be non-zero)")
        scales.append(s)
        ts.append(_transform(x, s, log_axis, name))
        ws.append(w)
    lo = min(float(t.min()) for t in ts)
    hi = max(float(t.max()) for t in ts)
    if relative:
        # A range at rounding level (one eigenvalue, SLQ nodes equal to the last bits) is no scale for σ.
        mag = max(abs(lo), abs(hi))
        ref = hi - lo if hi - lo > _BREAKDOWN_CAP * mag else (mag or 1.0)
        sig = float(sigma) * ref
    else:
        sig = float(sigma)
    if grid is None:
        if n_grid is None:
            G = int(min(max(math.ceil((hi - lo + 12 * sig) / (sig / 5)) + 1, 2001), 200001))
        else:
            G = _check_int(n_grid, "n_grid", 2)
        g = np.linspace(lo - 6 * sig, hi + 6 * sig, G)
    else:
        if n_grid is not None:
            raise ValueError("give either grid or n_grid, not both")
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim != 1 or g.size < 2 or not np.isfinite(g).all() or not (np.diff(g) > 0).all():
            raise ValueError("grid must be a finite, strictly increasing 1-D array with at least 2 points")
    dmax = float(np.max(np.diff(g)))
    if dmax > sig / 2:
        warnings.warn(
            f"the grid cannot resolve the kernel: spacing {dmax:.4g} exceeds sigma/2 = {sig / 2:.4g} (sigma = {sig:.4g}, "
            f"{g.size} points over [{g[0]:.4g}, {g[-1]:.4g}]); use a finer grid or a larger sigma",
            stacklevel=2,
        )
    c = _trapezoid_weights(g)
    vals, mass = [], []
    for name, t, w in zip(names, ts, ws, strict=True):
        p = smooth(t, w, g, sig)
        z = float(p @ c)
        if not z > 0:
            raise ValueError(f"block {name!r}: none of its mass falls on the grid [{g[0]:.4g}, {g[-1]:.4g}]")
        mass.append(z)
        vals.append(p / z)
    mass = np.array(mass)
    if (mass < 0.99).any():
        i = int(np.argmin(mass))
        warnings.warn(
            f"block {names[i]!r} keeps only {mass[i]:.3%} of its kernel mass on the grid [{g[0]:.4g}, {g[-1]:.4g}]; "
            "its density was renormalised to 1 on the grid",
            stacklevel=2,
        )
    return Density(tuple(names), _frozen(g), _frozen(np.array(vals)), _frozen(c), sig,
                   float(sigma) if relative else None, normalize, k, _frozen(np.array(scales)), bool(log_axis),
                   _frozen(mass), _frozen(np.array(maxabs)), source)
