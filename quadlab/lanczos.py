"""Lanczos, stochastic Lanczos quadrature (SLQ), extreme eigenvalues and spectral densities.

This module keeps the public API it always had; the code lives in four modules along its seams:

* :mod:`quadlab.krylov`: operator adapters, the batched Lanczos loop, :func:`lanczos`, the breakdown test;
* :mod:`quadlab.slq`: stochastic Lanczos quadrature (:func:`slq`, :class:`SLQResult`);
* :mod:`quadlab.extremes`: extreme eigenvalues (:func:`extreme_eigenvalues`, :func:`block_extremes`,
  :func:`whole_extremes`);
* :mod:`quadlab.density`: smoothed spectral densities (:func:`density`, :class:`Density`).

Their module docstrings hold the mathematics (Lanczos relation, breakdown, Gauss quadrature, densities).
"""

from __future__ import annotations

from .density import Density, density
from .extremes import BlockExtremes, Extremes, block_extremes, extreme_eigenvalues, whole_extremes
from .krylov import BREAKDOWN_FACTOR, LanczosResult, breakdown_threshold, lanczos
from .slq import SLQResult, slq

__all__ = [
    "BREAKDOWN_FACTOR",
    "BlockExtremes",
    "Density",
    "Extremes",
    "LanczosResult",
    "SLQResult",
    "block_extremes",
    "whole_extremes",
    "breakdown_threshold",
    "density",
    "extreme_eigenvalues",
    "lanczos",
    "slq",
]
