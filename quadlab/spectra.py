"""Block spectra: the eigenvalues of each diagonal block of a block-diagonal Hessian.

A :class:`BlockSpectrum` holds, for blocks l = 1..L, the eigenvalues Λ_l of H_l (host numpy, float64,
read-only) and a name per block.  Everything here is exact and deterministic unless a ``seed`` is given.

Generators
----------
* :func:`simple_heterogeneous` / :func:`simple_homogeneous`: the paper's Cases 3 and 4.
* Families for one block (each returns a 1-D array): :func:`uniform`, :func:`log_uniform`,
  :func:`bulk_outliers`, :func:`marchenko_pastur`, :func:`from_array`.
* :func:`scaled_blocks`: the heterogeneity knob, block l = s^l · base.
* :func:`rescale`: one affine map λ ↦ aλ + b on all blocks jointly so that min = 1 and max = κ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._engine import portable
from .backend import host_rng

__all__ = [
    "SOURCES",
    "EXTREMES_SOURCES",
    "DENSITY_SOURCES",
    "BlockSpectrum",
    "simple_heterogeneous",
    "simple_homogeneous",
    "uniform",
    "log_uniform",
    "bulk_outliers",
    "marchenko_pastur",
    "from_array",
    "scaled_blocks",
    "rescale",
]

#: The spectrum sources, passed as ``source=`` everywhere (glossary in docs/ARCHITECTURE.md): where a block's
#: numbers come from.  "exact": the eigenvalues a problem was built from (or ``eigvalsh`` of H as stored);
#: "lanczos": extreme eigenvalues estimated by Lanczos on products H·x, widened to safe bounds; "slq": a
#: spectral density estimated by stochastic Lanczos quadrature.
SOURCES = ("exact", "lanczos", "slq")
#: the sources block extremes can come from (:mod:`quadlab.rules`, :mod:`quadlab.rates`, :mod:`quadlab.theory`)
EXTREMES_SOURCES = ("exact", "lanczos")
#: the sources spectral densities can come from (:mod:`quadlab.heterogeneity`)
DENSITY_SOURCES = ("exact", "slq")


def _check_block(values, name: str, positive: bool = True) -> np.ndarray:
    if np.iscomplexobj(values):
        # float64 conversion would drop the imaginary part silently: eigenvalues of a symmetric H are real
        raise ValueError(f"block {name!r}: eigenvalues are complex; a symmetric Hessian has real eigenvalues")
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"block {name!r}: eigenvalues must be a 1-D array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"block {name!r} is empty: every block needs at least one eigenvalue")
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"block {name!r}: eigenvalue at index {i} is {float(a[i])}; eigenvalues must be finite")
    if positive and (a <= 0).any():
        i = int(np.flatnonzero(a <= 0)[0])
        raise ValueError(
            f"block {name!r}: eigenvalue at index {i} is {float(a[i])}; a positive-definite quadratic needs every "
            "eigenvalue > 0 (use rescale() to map a signed spectrum onto [1, kappa])"
        )
    a = a.copy()
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class BlockSpectrum:
    """Eigenvalues per block, Λ = (Λ_1, …, Λ_L), with block names.

    The full spectrum is the multiset union of the Λ_l; κ = max Λ / min Λ and κ_l = max Λ_l / min Λ_l.
    Construct with :meth:`from_blocks` (validates: non-empty, finite, strictly positive).

    Parameters
    ----------
    blocks : tuple of 1-D float arrays
        Λ_l per block; stored as read-only float64 copies.
    names : tuple of str
        One distinct name per block.

    Attributes
    ----------
    n_blocks, sizes, n : int, tuple of int, int
        L, the block sizes d_l and n = Σ d_l.
    eigenvalues : numpy.ndarray
        All eigenvalues, block after block (not sorted).
    lambda_min, lambda_max, kappa : float
        min Λ, max Λ and κ over all blocks.
    block_kappas : numpy.ndarray
        κ_l per block, shape (L,).

    Raises
    ------
    ValueError
        If there is no block, the names are not one distinct name per block, or a block is empty, not 1-D,
        complex, non-finite or has an eigenvalue ≤ 0 (use :func:`rescale` for a signed spectrum).

    Examples
    --------
    >>> from quadlab.spectra import BlockSpectrum
    >>> s = BlockSpectrum.from_blocks([[1.0, 2.0], [10.0, 40.0]], names=["a", "b"])
    >>> s.n, s.kappa, s.block_kappas.tolist()
    (4, 40.0, [2.0, 4.0])
    """

    blocks: tuple[np.ndarray, ...]
    names: tuple[str, ...]

    def __post_init__(self):
        if len(self.blocks) == 0:
            raise ValueError("a BlockSpectrum needs at least one block")
        if len(self.names) != len(self.blocks):
            raise ValueError(f"{len(self.names)} names given for {len(self.blocks)} blocks")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"block names must be distinct, got {list(self.names)}")
        object.__setattr__(
            self, "blocks", tuple(_check_block(b, n) for b, n in zip(self.blocks, self.names, strict=True))
        )

    @classmethod
    def from_blocks(cls, blocks: Sequence, names: Sequence[str] | None = None) -> BlockSpectrum:
        """A BlockSpectrum from any sequence of blocks, with default names.

        Parameters
        ----------
        blocks : sequence of array_like
            Λ_l per block (1-D, finite, positive).
        names : sequence of str, optional
            One distinct name per block (default block0, block1, …).

        Returns
        -------
        BlockSpectrum
            The blocks, validated, under their names.

        Raises
        ------
        ValueError
            If a block is empty, not finite or not positive, or names repeat (:class:`BlockSpectrum`).

        Examples
        --------
        >>> from quadlab.spectra import BlockSpectrum
        >>> BlockSpectrum.from_blocks([[1.0], [2.0, 3.0]]).names
        ('block0', 'block1')
        """
        blocks = list(blocks)
        if names is None:
            names = [f"block{l}" for l in range(len(blocks))]
        return cls(tuple(blocks), tuple(str(n) for n in names))

    # -- sizes and condition numbers -------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(b.size) for b in self.blocks)

    @property
    def n(self) -> int:
        return sum(self.sizes)

    @property
    def eigenvalues(self) -> np.ndarray:
        """All eigenvalues, block after block (not sorted)."""
        return np.concatenate(self.blocks)

    @property
    def lambda_min(self) -> float:
        return float(min(b.min() for b in self.blocks))

    @property
    def lambda_max(self) -> float:
        return float(max(b.max() for b in self.blocks))

    @property
    def kappa(self) -> float:
        return self.lambda_max / self.lambda_min

    @property
    def block_kappas(self) -> np.ndarray:
        return np.array([b.max() / b.min() for b in self.blocks])

    def rescale(self, kappa: float) -> BlockSpectrum:
        """This spectrum mapped affinely onto [1, κ] (see :func:`quadlab.spectra.rescale`).

        Parameters
        ----------
        kappa : float
            The target condition number, ≥ 1.

        Returns
        -------
        BlockSpectrum
            The same blocks mapped onto [1, κ].
        """
        return rescale(self, kappa)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {b.size}" for n, b in zip(self.names, self.blocks, strict=True))
        return f"BlockSpectrum({parts}; kappa={self.kappa:.6g})"


# -- the paper's simple cases --------------------------------------------------------------------
def _simple_values(kappa: float) -> np.ndarray:
    kappa = float(kappa)
    if not np.isfinite(kappa) or kappa <= 103:
        raise ValueError(
            f"kappa={kappa!r}: the simple cases need kappa > 103 so that 1 < 2 < 3 < 99 < 100 < 101 < kappa-2"
        )
    return np.array([[1.0, 2.0, 3.0], [99.0, 100.0, 101.0], [kappa - 2, kappa - 1, kappa]])


def simple_heterogeneous(kappa: float = 5000) -> BlockSpectrum:
    """Case 3 of the paper: blocks {1, 2, 3}, {99, 100, 101}, {κ−2, κ−1, κ}.

    Each block is well conditioned (κ_l ≤ 3) and the blocks sit at different scales: the heterogeneous case.

    Parameters
    ----------
    kappa : float, default 5000
        κ of the whole spectrum; must exceed 103 so that the nine numbers are distinct and ordered.

    Returns
    -------
    BlockSpectrum
        Three blocks of size 3 named "low", "mid", "high".

    Raises
    ------
    ValueError
        If ``kappa`` is not a finite number > 103.

    Examples
    --------
    >>> from quadlab import spectra
    >>> s = spectra.simple_heterogeneous(1000)
    >>> s.names, s.blocks[2].tolist()
    (('low', 'mid', 'high'), [998.0, 999.0, 1000.0])
    """
    v = _simple_values(kappa)
    return BlockSpectrum.from_blocks(list(v), names=["low", "mid", "high"])


def simple_homogeneous(kappa: float = 5000) -> BlockSpectrum:
    """Case 4 of the paper: Case 3's nine numbers rearranged, {1, 99, κ−2}, {2, 100, κ−1}, {3, 101, κ}.

    Every block spans the whole range (κ_l ≈ κ): the homogeneous case with the same full spectrum as Case 3.

    Parameters
    ----------
    kappa : float, default 5000
        κ of the whole spectrum; must exceed 103.

    Returns
    -------
    BlockSpectrum
        Three blocks of size 3 named "block0", "block1", "block2".

    Raises
    ------
    ValueError
        For κ ≤ 103 or not finite: the nine numbers must be distinct and ordered.

    Examples
    --------
    >>> from quadlab import spectra
    >>> spectra.simple_homogeneous(1000).blocks[0].tolist()
    [1.0, 99.0, 998.0]
    """
    v = _simple_values(kappa)
    return BlockSpectrum.from_blocks(list(v.T), names=["block0", "block1", "block2"])


# -- families for one block ----------------------------------------------------------------------
def _check_range(lo: float, hi: float, what: str) -> None:
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi < lo:
        raise ValueError(f"{what}: need 0 < lo <= hi, finite; got lo={lo!r}, hi={hi!r}")


def _check_size(d: int) -> int:
    if int(d) != d or d < 1:
        raise ValueError(f"block size must be a positive integer, got {d!r}")
    return int(d)


def _quantile_points(d: int, seed) -> np.ndarray:
    """u ∈ (0, 1): the midpoints (i + ½)/d when seed is None, else d sorted uniform draws."""
    if seed is None:
        return (np.arange(d) + 0.5) / d
    return np.sort(host_rng(seed).random(d))


def uniform(d: int, lo: float, hi: float, *, seed=None) -> np.ndarray:
    """d eigenvalues of the uniform law on [lo, hi].

    Without a seed the points are ``linspace(lo, hi, d)`` (endpoints included; d = 1 gives the midpoint); with a
    seed they are lo + (hi − lo)·u for d sorted uniform draws u.

    Parameters
    ----------
    d : int
        Block size, ≥ 1.
    lo, hi : float
        0 < lo ≤ hi, finite.
    seed : int or None, keyword-only
        None for the deterministic grid, else the seed of the draws.

    Returns
    -------
    numpy.ndarray
        Shape (d,), float64, ascending.

    Raises
    ------
    ValueError
        If d is not a positive integer or the range is not 0 < lo ≤ hi finite.

    Examples
    --------
    >>> from quadlab import spectra
    >>> spectra.uniform(3, 1.0, 2.0).tolist()
    [1.0, 1.5, 2.0]
    """
    d = _check_size(d)
    _check_range(lo, hi, "uniform")
    if seed is None:
        return np.linspace(lo, hi, d) if d > 1 else np.array([0.5 * (lo + hi)])
    return lo + (hi - lo) * _quantile_points(d, seed)


def log_uniform(d: int, lo: float, hi: float, *, seed=None) -> np.ndarray:
    """d eigenvalues whose logarithms are uniform on [log lo, log hi].

    Without a seed a geometric sequence from lo to hi (``geomspace``; d = 1 gives √(lo·hi)); with a seed
    lo·(hi/lo)^u for d sorted uniform draws u.

    Parameters
    ----------
    d, lo, hi
        As for :func:`uniform`: size, and 0 < lo ≤ hi.
    seed : int or None, keyword-only
        None for the deterministic sequence, else the seed of the draws.

    Returns
    -------
    numpy.ndarray
        The d values, ascending.

    Raises
    ------
    ValueError
        Like :func:`uniform`.

    Examples
    --------
    >>> from quadlab import spectra
    >>> spectra.log_uniform(3, 1.0, 100.0).round(12).tolist()
    [1.0, 10.0, 100.0]
    """
    d = _check_size(d)
    _check_range(lo, hi, "log_uniform")
    if seed is None:
        return portable.geomspace(lo, hi, d) if d > 1 else np.array([np.sqrt(lo * hi)])
    return lo * portable.pow(hi / lo, _quantile_points(d, seed))


def bulk_outliers(d: int, lo: float, hi: float, n_outliers: int, top: float, *, seed=None) -> np.ndarray:
    """A bulk uniform on [lo, hi] plus outliers spaced geometrically above it up to ``top``.

    The bulk is :func:`uniform` (d − n_outliers, lo, hi); the outliers are hi·(top/hi)^{j/n_out}, j = 1..n_out, so
    the last is exactly ``top``: the shape of a neural-network Hessian block at initialisation.

    Parameters
    ----------
    d : int
        Block size, ≥ 1.
    lo, hi : float
        The bulk's range, 0 < lo ≤ hi, finite.
    n_outliers : int
        0 ≤ n_outliers < d.
    top : float
        The largest outlier, finite and > hi.
    seed : int or None, keyword-only
        Passed to :func:`uniform` for the bulk.

    Returns
    -------
    numpy.ndarray
        Shape (d,), the bulk (ascending) then the outliers (ascending).

    Raises
    ------
    ValueError
        If d, n_outliers, the bulk's range or ``top`` are out of range.

    Examples
    --------
    >>> from quadlab import spectra
    >>> spectra.bulk_outliers(4, 1.0, 2.0, 2, 200.0).round(12).tolist()
    [1.0, 2.0, 20.0, 200.0]
    """
    d = _check_size(d)
    if int(n_outliers) != n_outliers or not 0 <= n_outliers < d:
        raise ValueError(f"bulk_outliers: need 0 <= n_outliers < d={d}, got {n_outliers!r}")
    _check_range(lo, hi, "bulk_outliers bulk")
    if not np.isfinite(top) or top <= hi:
        raise ValueError(f"bulk_outliers: top={top!r} must be finite and above the bulk's hi={hi!r}")
    bulk = uniform(d - n_outliers, lo, hi, seed=seed)
    out = hi * portable.pow(top / hi, np.arange(1, n_outliers + 1) / n_outliers) if n_outliers else np.empty(0)
    return np.concatenate([bulk, out])


def marchenko_pastur(d: int, ratio: float, scale: float = 1.0, *, seed=None) -> np.ndarray:
    """d eigenvalues from the Marchenko–Pastur law with aspect ratio q and variance σ².

    The density is √((λ₊−λ)(λ−λ₋)) / (2π σ² q λ) on [λ₋, λ₊], λ± = σ²(1 ± √q)².  Without a seed the points are
    the quantiles at the probabilities (j + ½)/d, j = 0..d−1 (midpoint rule); with a seed, inverse-CDF draws.
    The CDF is tabulated on a Chebyshev-spaced grid that resolves the square-root edges.

    Parameters
    ----------
    d : int
        Block size, ≥ 1.
    ratio : float
        q ∈ (0, 1) (no atom at zero).
    scale : float, default 1.0
        σ² > 0.
    seed : int or None, keyword-only
        None for the deterministic quantiles, else the seed of the draws.

    Returns
    -------
    numpy.ndarray
        Shape (d,), ascending, inside [λ₋, λ₊].

    Raises
    ------
    ValueError
        If d is not a positive integer, q ∉ (0, 1) or σ² is not positive and finite.

    Examples
    --------
    >>> from quadlab import spectra
    >>> lam = spectra.marchenko_pastur(1000, 0.25)
    >>> bool(0.25 <= lam.min() and lam.max() <= 2.25), round(float(lam.mean()), 3)
    (True, 1.0)
    """
    d = _check_size(d)
    if not 0 < ratio < 1:
        raise ValueError(f"marchenko_pastur: ratio must lie in (0, 1) (no atom at zero), got {ratio!r}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"marchenko_pastur: scale must be positive and finite, got {scale!r}")
    lo, hi = scale * (1 - np.sqrt(ratio)) ** 2, scale * (1 + np.sqrt(ratio)) ** 2
    # Chebyshev nodes cluster at the edges, where the density has its square-root singularity.
    theta = np.linspace(np.pi, 0.0, 20001)
    lam = 0.5 * (lo + hi) + 0.5 * (hi - lo) * portable.cos(theta)
    dens = np.sqrt(np.clip((hi - lam) * (lam - lo), 0, None)) / (2 * np.pi * scale * ratio * lam)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(lam))])
    cdf /= cdf[-1]
    return np.interp(_quantile_points(d, seed), cdf, lam)


def from_array(values, name: str = "block") -> np.ndarray:
    """A block from user-given eigenvalues, validated.

    Parameters
    ----------
    values : array_like
        1-D, non-empty, real, finite and positive.
    name : str, default "block"
        Used in error messages.

    Returns
    -------
    numpy.ndarray
        A writable float64 copy, shape (d,).

    Raises
    ------
    ValueError
        If ``values`` is complex, not 1-D, empty, non-finite or has an entry ≤ 0.

    Examples
    --------
    >>> from quadlab import spectra
    >>> spectra.from_array([3, 1, 2]).tolist()
    [3.0, 1.0, 2.0]
    """
    return np.array(_check_block(values, name))


# -- heterogeneity knob and rescaling ------------------------------------------------------------
def scaled_blocks(base, n_blocks: int, s: float, names: Sequence[str] | None = None) -> BlockSpectrum:
    """L copies of one block shape, block l scaled by s^l (l = 0..L−1): the heterogeneity knob.

    s = 1 gives identical (homogeneous) blocks; s > 1 spreads the blocks over s^{L−1} in scale while every κ_l
    stays κ(base).  The whole spectrum has κ = s^{L−1}·κ(base) once s ≥ κ(base) (the blocks no longer overlap).

    Parameters
    ----------
    base : array_like
        The block shape: 1-D, finite, positive.
    n_blocks : int
        L ≥ 1.
    s : float
        Scale factor, positive and finite.
    names : sequence of str, optional
        One per block (default block0, block1, …).

    Returns
    -------
    BlockSpectrum
        L blocks, block l = s^l · base.

    Raises
    ------
    ValueError
        If ``base`` is not a valid block, L is not a positive integer or s is not positive and finite.

    Examples
    --------
    >>> from quadlab import spectra
    >>> s = spectra.scaled_blocks([1.0, 2.0], 3, 10.0)
    >>> [b.tolist() for b in s.blocks], s.kappa
    ([[1.0, 2.0], [10.0, 20.0], [100.0, 200.0]], 200.0)
    """
    base = _check_block(base, "base")
    if int(n_blocks) != n_blocks or n_blocks < 1:
        raise ValueError(f"n_blocks must be a positive integer, got {n_blocks!r}")
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"scale factor s must be positive and finite, got {s!r}")
    return BlockSpectrum.from_blocks([base * float(s) ** l for l in range(int(n_blocks))], names)


def rescale(spectrum: BlockSpectrum | Sequence, kappa: float, names: Sequence[str] | None = None) -> BlockSpectrum:
    """One affine map λ ↦ a·λ + b (a > 0) on all blocks jointly so that min = 1 and max = κ exactly.

    Relative positions inside and across blocks are kept; the extremes are pinned (rounding in a·(λ − lo) does
    not move them off 1 and κ).  A signed spectrum (a network's indefinite blocks) becomes positive definite.

    Parameters
    ----------
    spectrum : BlockSpectrum or sequence of 1-D arrays
        The blocks; raw arrays may hold any finite real numbers.
    kappa : float
        The target condition number, finite and ≥ 1.
    names : sequence of str, optional
        Block names when ``spectrum`` is a sequence of arrays (a BlockSpectrum keeps its own).

    Returns
    -------
    BlockSpectrum
        The mapped blocks, min eigenvalue 1 and max κ.

    Raises
    ------
    ValueError
        If κ is not finite and ≥ 1, a block is not a finite 1-D array, or all eigenvalues are equal while κ ≠ 1.

    Examples
    --------
    >>> from quadlab import spectra
    >>> [b.tolist() for b in spectra.rescale([[-1.0, 0.0], [1.0]], 5.0).blocks]
    [[1.0, 3.0], [5.0]]
    """
    kappa = float(kappa)
    if not np.isfinite(kappa) or kappa < 1:
        raise ValueError(f"kappa must be a finite number >= 1, got {kappa!r}")
    if isinstance(spectrum, BlockSpectrum):
        blocks, names = spectrum.blocks, spectrum.names
    else:
        blocks = [_check_block(b, f"block{l}", positive=False) for l, b in enumerate(spectrum)]
    lo = min(float(b.min()) for b in blocks)
    hi = max(float(b.max()) for b in blocks)
    if hi == lo:
        if kappa != 1:
            raise ValueError(f"all eigenvalues equal {lo!r}: no affine map can spread them to [1, {kappa}]")
        return BlockSpectrum.from_blocks([np.ones_like(b) for b in blocks], names)
    a = (kappa - 1.0) / (hi - lo)
    out = []
    for b in blocks:
        v = 1.0 + a * (b - lo)
        # Pin the extremes: rounding in a·(b − lo) must not move min off 1 or max off κ.
        v[b == lo] = 1.0
        v[b == hi] = kappa
        out.append(v)
    return BlockSpectrum.from_blocks(out, names)
