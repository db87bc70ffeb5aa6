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

    Attributes
    ----------
    names : block names.
    sizes : block dimensions d_l.
    nodes : per block a (probes, m_l) float64 array: each row holds one probe's Ritz values θ ascending;
        slots beyond the probe's quadrature (after a breakdown) hold NaN.
    weights : same shape: τ = (e_1ᵀ s)², each probe's row sums to 1 (to rounding); padding slots hold 0.
        Every function in quadlab ignores slots of zero weight, so use :meth:`measure` rather than the raw
        arrays when you want "the" measure of a block.
    residuals : same shape: |β_s e_sᵀ s|, the residual norm ‖A y − θ y‖ of each Ritz pair; some eigenvalue of
        the block lies within it of θ.
    m : the requested number of steps; ``m_used[l] = min(m, d_l)`` (a Krylov space has dimension ≤ d_l).
    probes, seed : as requested; probe i of block l is the i-th row of a standard Gaussian (probes, d_l)
        drawn from ``numpy.random.SeedSequence(seed).spawn(2L)[l]``, normalised.
    breakdown : per block, per probe: the step j at which β_j fell below :func:`breakdown_threshold` (invariant
        Krylov space, exact j-point quadrature), or None.
    status, messages : per block "ok", "invariant" or "nonfinite", and a sentence saying what happened.
    reorth : whether full reorthogonalisation was used.
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
        if isinstance(block, (int, np.integer)) and not isinstance(block, bool):
            if not 0 <= block < len(self.names):
                raise ValueError(f"block index {block} out of range for {len(self.names)} blocks")
            return int(block)
        if block not in self.names:
            raise ValueError(f"no block named {block!r}; blocks are {list(self.names)}")
        return self.names.index(block)

    def measure(self, block=0, probe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(nodes, weights) of one block with zero-weight slots dropped: all probes pooled, each weighted
        1/(number of probes with a quadrature), so the weights sum to 1; or one probe's own quadrature."""
        b = self.index(block)
        X, W = self.nodes[b], self.weights[b]
        if probe is not None:
            X, W = X[probe : probe + 1], W[probe : probe + 1]
        tot = W.sum(axis=1)
        used = tot > 0
        if not used.any():
            raise ValueError(f"block {self.names[b]!r} has no quadrature nodes: {self.messages[b]}")
        keep = (W > 0) & np.isfinite(X) & used[:, None]
        return X[keep], (W / np.where(used, tot, 1.0)[:, None])[keep] / used.sum()

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per block (min, max) of the Ritz values over all probes: θ_min ≥ λ_min and θ_max ≤ λ_max."""
        lo = np.array([np.nanmin(np.where(W > 0, X, np.nan)) for X, W in zip(self.nodes, self.weights, strict=True)])
        hi = np.array([np.nanmax(np.where(W > 0, X, np.nan)) for X, W in zip(self.nodes, self.weights, strict=True)])
        return lo, hi

    def density(self, grid=None, sigma: float = 0.01, relative: bool = True, normalize: str | None = None,
                k: int = 10, log_axis: bool = False, n_grid: int | None = None) -> Density:
        """Smoothed densities of every block on one shared grid; see :func:`density`.  No new matvecs."""
        # Imported here: quadlab.density imports SLQResult from this module, so a top-level import would be a cycle.
        from .density import density

        return density(self, grid=grid, sigma=sigma, relative=relative, normalize=normalize, k=k,
                       log_axis=log_axis, n_grid=n_grid)


def slq(op, m: int = 100, probes: int = 10, seed: int = 0, *, n=None, xp=None, reorth: bool = True,
        check_symmetric: bool = True, symmetry_rtol: float | None = None,
        breakdown_factor: float = BREAKDOWN_FACTOR) -> SLQResult:
    """Stochastic Lanczos quadrature of every block of ``op``.

    ``op``: a :class:`~quadlab.problem.BlockQuadratic` (one SLQ per nominal block H_l; equal-size blocks advance
    together through the stacked (k, d, d) arrays of ``problem.groups``; with rotation="global" a block is the
    diagonal block H[s, s]), a dense square array, a scipy LinearOperator or sparse matrix, a callable matmat
    X(n, p) → (n, p) (give ``n=``; it receives and returns arrays of the backend ``xp``, numpy by default), or a
    dict {name: any of those but a BlockQuadratic} (``n`` may then be a dict by name).

    Each block gets ``probes`` normalised Gaussian probes that advance together as one matmat; m_l = min(m, d_l)
    steps with full reorthogonalisation done twice (``reorth=False`` gives the plain three-term recurrence, as in
    the paper's public code, for comparison).  A probe whose Krylov space becomes invariant stops with the exact
    shorter quadrature; non-finite operator output stops that block with status "nonfinite" and a message naming
    the step.  By default (``check_symmetric=True``) slq first spends one matmat with two random vectors per
    block and raises ValueError when |yᵀAx − xᵀAy| exceeds ``symmetry_rtol`` (default 100·√d·eps) relative to
    ‖Ax‖‖y‖: Lanczos on a non-symmetric operator returns meaningless Ritz values without any sign of trouble.
    ``check_symmetric=False`` skips the probe (for operators symmetric by construction).

    Raises ValueError for m < 1, probes < 1, a negative seed or an operator quadlab cannot use.
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
