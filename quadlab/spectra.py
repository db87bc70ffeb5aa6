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
    """Case 3: blocks {1, 2, 3}, {99, 100, 101}, {κ−2, κ−1, κ} (each block well conditioned, scales apart)."""
    v = _simple_values(kappa)
    return BlockSpectrum.from_blocks(list(v), names=["low", "mid", "high"])


def simple_homogeneous(kappa: float = 5000) -> BlockSpectrum:
    """Case 4: the same nine numbers as Case 3 rearranged {1, 99, κ−2}, {2, 100, κ−1}, {3, 101, κ}."""
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
    """d eigenvalues of the uniform law on [lo, hi]: endpoints included and evenly spaced when ``seed`` is
    None (``linspace``), otherwise d independent draws."""
    d = _check_size(d)
    _check_range(lo, hi, "uniform")
    if seed is None:
        return np.linspace(lo, hi, d) if d > 1 else np.array([0.5 * (lo + hi)])
    return lo + (hi - lo) * _quantile_points(d, seed)


def log_uniform(d: int, lo: float, hi: float, *, seed=None) -> np.ndarray:
    """d eigenvalues whose logarithms are uniform on [log lo, log hi]: a geometric sequence from lo to hi
    when ``seed`` is None, otherwise d independent draws."""
    d = _check_size(d)
    _check_range(lo, hi, "log_uniform")
    if seed is None:
        return np.geomspace(lo, hi, d) if d > 1 else np.array([np.sqrt(lo * hi)])
    return lo * (hi / lo) ** _quantile_points(d, seed)


def bulk_outliers(d: int, lo: float, hi: float, n_outliers: int, top: float, *, seed=None) -> np.ndarray:
    """A bulk of d − n_outliers eigenvalues uniform on [lo, hi] plus n_outliers outliers spaced
    geometrically from above ``hi`` up to ``top`` (the outliers are hi·(top/hi)^{j/n_out}, j = 1..n_out):
    the shape of a neural-network Hessian block at initialization."""
    d = _check_size(d)
    if int(n_outliers) != n_outliers or not 0 <= n_outliers < d:
        raise ValueError(f"bulk_outliers: need 0 <= n_outliers < d={d}, got {n_outliers!r}")
    _check_range(lo, hi, "bulk_outliers bulk")
    if not np.isfinite(top) or top <= hi:
        raise ValueError(f"bulk_outliers: top={top!r} must be finite and above the bulk's hi={hi!r}")
    bulk = uniform(d - n_outliers, lo, hi, seed=seed)
    out = hi * (top / hi) ** (np.arange(1, n_outliers + 1) / n_outliers) if n_outliers else np.empty(0)
    return np.concatenate([bulk, out])


def marchenko_pastur(d: int, ratio: float, scale: float = 1.0, *, seed=None) -> np.ndarray:
    """d eigenvalues from the Marchenko–Pastur law with aspect ratio q = ``ratio`` ∈ (0, 1) and variance
    σ² = ``scale``: density √((λ₊−λ)(λ−λ₋)) / (2π σ² q λ) on [λ₋, λ₊], λ± = σ²(1 ± √q)².

    Deterministic quantiles (midpoint rule in probability) when ``seed`` is None, else inverse-CDF draws.
    The CDF is tabulated on a Chebyshev-spaced grid that resolves the square-root edges."""
    d = _check_size(d)
    if not 0 < ratio < 1:
        raise ValueError(f"marchenko_pastur: ratio must lie in (0, 1) (no atom at zero), got {ratio!r}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"marchenko_pastur: scale must be positive and finite, got {scale!r}")
    lo, hi = scale * (1 - np.sqrt(ratio)) ** 2, scale * (1 + np.sqrt(ratio)) ** 2
    # Chebyshev nodes cluster at the edges, where the density has its square-root singularity.
    theta = np.linspace(np.pi, 0.0, 20001)
    lam = 0.5 * (lo + hi) + 0.5 * (hi - lo) * np.cos(theta)
    dens = np.sqrt(np.clip((hi - lam) * (lam - lo), 0, None)) / (2 * np.pi * scale * ratio * lam)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(lam))])
    cdf /= cdf[-1]
    return np.interp(_quantile_points(d, seed), cdf, lam)


def from_array(values, name: str = "block") -> np.ndarray:
    """A block from user-given eigenvalues (validated: 1-D, non-empty, finite, positive)."""
    return np.array(_check_block(values, name))


# -- heterogeneity knob and rescaling ------------------------------------------------------------
def scaled_blocks(base, n_blocks: int, s: float, names: Sequence[str] | None = None) -> BlockSpectrum:
    """L = ``n_blocks`` copies of one block shape, block l scaled by s^l (l = 0..L−1).

    s = 1 gives identical (homogeneous) blocks; s > 1 spreads the blocks over s^{L−1} in scale while every
    κ_l stays equal to κ(base). The whole spectrum has κ = s^{L−1}·κ(base)."""
    base = _check_block(base, "base")
    if int(n_blocks) != n_blocks or n_blocks < 1:
        raise ValueError(f"n_blocks must be a positive integer, got {n_blocks!r}")
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"scale factor s must be positive and finite, got {s!r}")
    return BlockSpectrum.from_blocks([base * float(s) ** l for l in range(int(n_blocks))], names)


def rescale(spectrum: BlockSpectrum | Sequence, kappa: float, names: Sequence[str] | None = None) -> BlockSpectrum:
    """Apply one affine map λ ↦ a·λ + b (a > 0) to every block jointly so that the smallest eigenvalue of
    all blocks becomes exactly 1 and the largest exactly κ.

    Relative positions inside and across blocks are preserved.  ``spectrum`` may also be a list of signed
    1-D arrays (e.g. a network's indefinite block spectra); the result is always positive definite."""
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
