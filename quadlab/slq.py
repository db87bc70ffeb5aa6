"""Stochastic Lanczos quadrature (SLQ) on the batched Lanczos loop of :mod:`quadlab.krylov`.

SLQ
---
For a unit probe v with Ritz pairs (θ_i, s_i) of T_m (T_m s_i = θ_i s_i, ‖s_i‖ = 1),

    vᵀ f(A) v ≈ Σ_i τ_i f(θ_i),   τ_i = (e_1ᵀ s_i)²,

the m-point Gauss quadrature of the spectral measure μ_v = Σ_k (q_kᵀv)² δ_{λ_k}, exact for polynomials of
degree ≤ 2m − 1.  With v uniform on the sphere (a normalized Gaussian), E μ_v = (1/d) Σ_k δ_{λ_k}, the
eigenvalue distribution of A.  SLQ averages the quadratures of ``probes`` independent probes.  The
per-probe nodes θ and weights τ are kept raw (:class:`SLQResult`), so every density is recomputed from
them without a new matrix-vector product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the annotation only: a runtime import would be a cycle (density imports SLQResult)
    from .density import Density

from ._engine import portable
from .krylov import (
    BREAKDOWN_FACTOR,
    STATUS_NONFINITE,
    _check_int,
    _check_seed,
    _collect,
    _frozen,
    _probe_block,
    _resolve_backend,
    _ritz,
    _run_lanczos,
    _status,
    _symmetry_check,
)

__all__ = ["SLQResult", "slq"]


@dataclass(frozen=True, eq=False)
class SLQResult:
    """Raw stochastic Lanczos quadrature, per block.

    Block l's spectral measure is estimated by Σ_probes Σ_j τ_j δ_{θ_j} / probes, with θ the Ritz values of
    each probe's tridiagonal and τ = (e_1ᵀ y)² the squared first components of its eigenvectors.

    Attributes
    ----------
    names : tuple of str
        Block names.
    sizes : tuple of int
        Block dimensions d_l.
    nodes : tuple of numpy.ndarray
        Per block a (probes, m_l) float64 array: each row holds one probe's Ritz values θ ascending; slots beyond
        the probe's quadrature (after a breakdown) hold NaN.
    weights : tuple of numpy.ndarray
        Same shapes: τ, each probe's row sums to 1 (to rounding); padding slots hold 0.  Every function in
        quadlab ignores slots of zero weight, so use :meth:`measure` for "the" measure of a block.
    residuals : tuple of numpy.ndarray
        Same shapes: |β_s e_sᵀ y|, the residual ‖Ay − θy‖ of each Ritz pair; an eigenvalue of the block lies
        within it of θ.
    m : int
        The requested Lanczos length; ``m_used[l] = min(m, d_l)`` (a Krylov space has dimension ≤ d_l).
    m_used : tuple of int
    probes, seed : int
        As requested; probe i of block l is the i-th row of a standard Gaussian (probes, d_l) drawn from
        ``numpy.random.SeedSequence(seed).spawn(2L)[l]``, normalised.
    breakdown : tuple of tuple
        Per block, per probe: the step j at which β_j fell below :func:`quadlab.krylov.breakdown_threshold`
        (invariant Krylov space, exact j-point quadrature), or None.
    status, messages : tuple of str
        Per block "ok", "invariant" or "nonfinite", and a sentence saying what happened.
    reorth : bool
        Whether full reorthogonalisation was used.
    ok : bool
        No block hit a non-finite operator output.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import slq, spectra
    >>> q = slq.slq(quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000)), m=10, probes=2)
    >>> q.names, q.m_used, q.status[0]
    (('low', 'mid', 'high'), (3, 3, 3), 'invariant')
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    nodes: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]
    residuals: tuple[np.ndarray, ...]
    m: int
    m_used: tuple[int, ...]
    probes: int
    seed: int
    breakdown: tuple[tuple, ...]
    status: tuple[str, ...]
    messages: tuple[str, ...]
    reorth: bool = True

    @property
    def ok(self) -> bool:
        """True when no block hit a non-finite operator output."""
        return all(s != STATUS_NONFINITE for s in self.status)

    def index(self, block) -> int:
        """The index of a block given by index or name.

        Parameters
        ----------
        block : int or str

        Returns
        -------
        int
            0 ≤ index < L.

        Raises
        ------
        ValueError
            If the index is out of range or no block has that name.
        """
        if isinstance(block, (int, np.integer)) and not isinstance(block, bool):
            if not 0 <= block < len(self.names):
                raise ValueError(f"block index {block} out of range for {len(self.names)} blocks")
            return int(block)
        if block not in self.names:
            raise ValueError(f"no block named {block!r}; blocks are {list(self.names)}")
        return self.names.index(block)

    def measure(self, block=0, probe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(nodes, weights) of one block with zero-weight slots dropped.

        All probes pooled, each weighted 1/(number of probes with a quadrature), so the weights sum to 1; or one
        probe's own quadrature.

        Parameters
        ----------
        block : int or str, default 0
        probe : int, optional
            One probe only.

        Returns
        -------
        tuple of numpy.ndarray
            Nodes and weights, 1-D.

        Raises
        ------
        ValueError
            If the block is unknown or has no quadrature node (a non-finite operator at the first step).

        Examples
        --------
        >>> import numpy as np
        >>> from quadlab import slq
        >>> x, w = slq.slq({"a": np.diag([1.0, 4.0])}, m=2, probes=3).measure("a")
        >>> np.unique(x.round(12)).tolist(), round(float(w.sum()), 12)
        ([1.0, 4.0], 1.0)
        """
        b = self.index(block)
        X, W = self.nodes[b], self.weights[b]
        if probe is not None:
            X, W = X[probe : probe + 1], W[probe : probe + 1]
        tot = portable.fsum(W)  # correctly rounded: the measure's bits must not depend on the CPU's SIMD sums
        used = tot > 0
        if not used.any():
            raise ValueError(f"block {self.names[b]!r} has no quadrature nodes: {self.messages[b]}")
        keep = (W > 0) & np.isfinite(X) & used[:, None]
        return X[keep], (W / np.where(used, tot, 1.0)[:, None])[keep] / used.sum()

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per block (min, max) of the Ritz values over all probes: θ_min ≥ λ_min and θ_max ≤ λ_max.

        Returns
        -------
        tuple of numpy.ndarray
            (lo, hi), each (L,).
        """
        lo = np.array([np.nanmin(np.where(W > 0, X, np.nan)) for X, W in zip(self.nodes, self.weights, strict=True)])
        hi = np.array([np.nanmax(np.where(W > 0, X, np.nan)) for X, W in zip(self.nodes, self.weights, strict=True)])
        return lo, hi

    def density(self, grid=None, sigma: float = 0.01, relative: bool = True, normalize: str | None = None,
                k: int = 10, log_axis: bool = False, n_grid: int | None = None) -> Density:
        """Smoothed densities of every block on one shared grid (:func:`quadlab.density.density`); no new products.

        Parameters
        ----------
        grid, sigma, relative, normalize, k, log_axis, n_grid
            As for :func:`quadlab.density.density`.

        Returns
        -------
        Density
            Every block's density on one grid.
        """
        # Imported here: quadlab.density imports SLQResult from this module, so a top-level import would be a cycle.
        from .density import density

        return density(self, grid=grid, sigma=sigma, relative=relative, normalize=normalize, k=k,
                       log_axis=log_axis, n_grid=n_grid)


def slq(op, m: int = 100, probes: int = 10, seed: int = 0, *, n=None, xp=None, reorth: bool = True,
        check_symmetric: bool = True, symmetry_rtol: float | None = None,
        breakdown_factor: float = BREAKDOWN_FACTOR) -> SLQResult:
    """Stochastic Lanczos quadrature of every block of ``op``.

    Each block gets ``probes`` normalised Gaussian probes that advance together as one matmat; m_l = min(m, d_l)
    steps with full reorthogonalisation done twice.  A probe whose Krylov space becomes invariant stops with the
    exact shorter quadrature; non-finite operator output stops that block with status "nonfinite" and a message
    naming the step.  With ``check_symmetric`` one matmat with two random vectors per block comes first, and
    |yᵀAx − xᵀAy| > ``symmetry_rtol``·‖Ax‖‖y‖ is an error: Lanczos on a non-symmetric operator returns meaningless
    Ritz values without any sign of trouble.

    Parameters
    ----------
    op : BlockQuadratic, array_like, LinearOperator, sparse matrix, callable or dict
        A BlockQuadratic (one SLQ per nominal block H_l; equal-size blocks advance together; with
        rotation="global" a block is the diagonal block H[s, s]); a dense square array, a scipy LinearOperator or
        sparse matrix; a callable matmat X(n, p) → (n, p) (give ``n=``; it receives and returns arrays of the
        backend ``xp``); or a dict {name: any of those but a BlockQuadratic}.
    m : int, default 100
        The Lanczos length, ≥ 1.
    probes : int, default 10
        Random start vectors per block, ≥ 1.
    seed : int, default 0
        Non-negative; see :class:`SLQResult` for how probes are drawn.
    n : int or dict, keyword-only, optional
        The size of a callable operator (a dict by block name for a dict of callables).
    xp : str or module, keyword-only, optional
        The backend the operator works in (default numpy).
    reorth : bool, keyword-only, default True
        False: the plain three-term recurrence, as in the paper's public code, for comparison.
    check_symmetric : bool, keyword-only, default True
        Probe the symmetry first (skip for operators symmetric by construction).
    symmetry_rtol : float, keyword-only, optional
        Default 100·√d·eps.
    breakdown_factor : float, keyword-only, default ``BREAKDOWN_FACTOR``
        c in :func:`quadlab.krylov.breakdown_threshold`, positive and finite.

    Returns
    -------
    SLQResult
        Nodes, weights and residuals per block and probe.

    Raises
    ------
    ValueError
        If m < 1, probes < 1, the seed is negative, ``breakdown_factor`` is not positive and finite, the operator
        is not one quadlab can use (shape, missing ``n``), or the symmetry probe fails.

    Examples
    --------
    >>> import numpy as np
    >>> from quadlab import slq
    >>> q = slq.slq(np.diag(np.arange(1.0, 11.0)), m=10, probes=4, seed=1)
    >>> x, w = q.measure(0)
    >>> np.unique(x.round(8)).tolist() == list(np.arange(1.0, 11.0))  # m = d: the nodes are the eigenvalues
    True
    """
    m = _check_int(m, "m (the number of Lanczos steps)")
    probes = _check_int(probes, "probes (the number of random start vectors)")
    seed = _check_seed(seed)
    if not (np.isfinite(breakdown_factor) and breakdown_factor > 0):
        raise ValueError(f"breakdown_factor must be positive and finite, got {breakdown_factor!r}")
    be = _resolve_backend(op, xp)
    names, sizes, groups = _collect(op, n, be)
    L = len(names)
    seeds = np.random.SeedSequence(seed).spawn(2 * L)
    if check_symmetric:
        for g in groups:
            _symmetry_check(be, g, names, seeds[L:], symmetry_rtol)
    nodes: list = [None] * L
    weights: list = [None] * L
    resid: list = [None] * L
    breakdown: list = [None] * L
    status: list = [None] * L
    messages: list = [None] * L
    for g in groups:
        mg = min(m, g.size)
        V0 = np.stack([_probe_block(seeds[l], probes, g.size) for l in g.indices])
        run = _run_lanczos(be, g.apply, be.asarray(V0), mg, reorth=reorth, breakdown_factor=breakdown_factor)
        X, W, R = _ritz(run.alpha.reshape(-1, mg), run.beta.reshape(-1, mg), run.steps.reshape(-1), mg)
        for j, l in enumerate(g.indices):
            rows = slice(j * probes, (j + 1) * probes)
            nodes[l], weights[l], resid[l] = _frozen(X[rows]), _frozen(W[rows]), _frozen(R[rows])
            breakdown[l] = tuple(int(run.steps[j, i]) if run.broke[j, i] else None for i in range(probes))
            status[l], messages[l] = _status(run, j, names[l])
    return SLQResult(tuple(names), tuple(sizes), tuple(nodes), tuple(weights), tuple(resid), m,
                     tuple(min(m, d) for d in sizes), probes, seed, tuple(breakdown), tuple(status),
                     tuple(messages), bool(reorth))
