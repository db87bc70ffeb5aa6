"""The rounding bound of :func:`quadlab.checks.report`: how far a computed per-step gap factor of e ← (I − PH)e
may exceed the exact rate through rounding alone (the derivation is :mod:`quadlab.checks`' module docstring).

* :func:`gamma`: γ_m = m·u/(1 − m·u), the error bound of an m-term sum in any order.
* :func:`eig_const`: c(d), the allowance for a computed eigenvalue of a d×d block.
* :func:`rounding_bound`: per run, the absolute allowance on ρ = √rate, the relative one on a computed factor,
  and the limits a step, the tail fit and the theorem's bound are held to (:class:`RoundingBound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["gamma", "eig_const", "rounding_bound", "RoundingBound"]


def gamma(m, u):
    """γ_m = m·u/(1 − m·u): the relative error bound of a sum or dot product of m terms in any order.

    Parameters
    ----------
    m : array_like
        Numbers of terms.
    u : float
        The unit roundoff.

    Returns
    -------
    numpy.ndarray
        γ_m, +∞ where m·u ≥ 1.
    """
    m = np.asarray(m, dtype=np.float64)
    return np.where(m * u < 1, m * u / np.maximum(1 - m * u, 1e-300), np.inf)


@dataclass(frozen=True)
class RoundingBound:
    """The rounding allowance of :func:`quadlab.checks.report` per run (:mod:`quadlab.checks`, "Slack").

    Attributes
    ----------
    absolute : numpy.ndarray
        (R,) a: the allowance on ρ = √rate (the eigenvalue errors, and the iteration's update error).
    relative : numpy.ndarray
        (R,) β: the allowance on a computed factor (the gaps' own rounding, the division).
    limit : numpy.ndarray
        (R,) (√exact·(1 + 3u) + a)²·(1 + β): the largest per-step factor that holds.
    limit_tail : numpy.ndarray
        (R,) limit·(1 + u·(3·max(1, |ln limit|) + 3)): the same for the tail fit's exp(median log slope).
    limit_bound : numpy.ndarray
        (R,) (√bound·(1 + 4u) + a_eig + (c(d) + 8)·u)²·(1 + 2u): the largest exact rate that meets the
        theorem's bound (NaN where no bound applies).
    """

    absolute: np.ndarray
    relative: np.ndarray
    limit: np.ndarray
    limit_tail: np.ndarray
    limit_bound: np.ndarray


def eig_const(d, formed: bool):
    """c(d): |μ̂ − μ| ≤ c(d)·u·‖M_l‖ for a computed eigenvalue of a d×d block.  4√d: forming
    P^{1/2}HP^{1/2} entrywise (two square roots, two products: |δM| ≤ γ_4|M|, ‖|M|‖₂ ≤ √d‖M‖₂); 4d: the
    eigensolver's backward error (LAPACK's approximate bound is eps·‖M‖; 2d·eps = 4d·u is allowed, and at
    most 2.4·d·u was measured on the 3,700 blocks of bench/report_false_alarms.py's instances); ``formed``
    (GD on a rotated problem, whose rate reads the prescribed λ while the run multiplies by the stored
    fl(QΛQᵀ)): d(d + 1) more, ‖|Q||Λ||Q|ᵀ‖₂ ≤ d·λ_max times γ_{d+1}, plus 16d for Q's own departure from
    orthogonality (QΛQᵀ has the eigenvalues of Λ^{1/2}QᵀQΛ^{1/2}, within ‖QᵀQ − I‖₂·λ_max of λ, and
    ‖QᵀQ − I‖₂ ≤ 8·d·eps = 16·d·u for quadlab's Haar factors, the bound tests/test_portable.py holds them to).

    Parameters
    ----------
    d : array_like
        Block sizes.
    formed : bool
        Whether the rate reads the prescribed λ of a stored fl(QΛQᵀ).

    Returns
    -------
    numpy.ndarray
        c(d).
    """
    d = np.asarray(d, dtype=np.float64)
    return 4.0 * np.sqrt(d) + 4.0 * d + (d * (d + 1.0) + 16.0 * d if formed else 0.0)


def rounding_bound(exact, lo, hi, sizes, *, eps: float, closed_form: bool, steps=None, gaps=None, bound=None,
             formed: bool = False) -> RoundingBound:
    """The bound on rounding that :func:`quadlab.checks.report` allows a per-step factor (:mod:`quadlab.checks`, "Slack").

    Parameters
    ----------
    exact : array_like
        (R,) the computed exact rates max_μ |1 − μ|².
    lo, hi : array_like
        (R, L) least and largest eigenvalue of each block of M = P^{1/2}HP^{1/2} (the step included).
    sizes : array_like
        (L,) the blocks' sizes d_l.
    eps : float
        Machine epsilon of the run's dtype (u = eps/2).
    closed_form : bool, keyword-only
        The gaps were evaluated by the closed form (exponentials of k·log|1 − μ|), not by iterating.
    steps : array_like, keyword-only, optional
        The recorded steps (closed form only).
    gaps : sequence of numpy.ndarray, keyword-only, optional
        Per run, the usable recorded gaps, the leading records at ``steps`` (closed form only: its error grows
        with |ln gap|); a run without any gets an infinite allowance.
    bound : array_like, keyword-only, optional
        (R,) the theorem's bound, NaN where none.
    formed : bool, keyword-only, default False
        The exact rate reads prescribed eigenvalues of a rotated H (GD): :func:`_eig_const`.

    Returns
    -------
    RoundingBound
        Per run: a, β and the limits.
    """
    u = eps / 2.0
    exact = np.asarray(exact, dtype=np.float64).reshape(-1)
    R = exact.size
    lo = np.asarray(lo, dtype=np.float64).reshape(R, -1)
    hi = np.asarray(hi, dtype=np.float64).reshape(R, -1)
    d = np.asarray(sizes, dtype=np.float64).reshape(1, -1)
    n = float(d.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        kap = np.where(lo > 0, hi / lo, np.inf)
    rho = np.sqrt(exact)
    a_eig = (eig_const(d, formed) * u * hi).max(axis=1)
    if closed_form:
        # the run's own eigenvalues (a_eig again), fl(ημ) and log1p (≤ (μ̄ + 1)u on e^L)
        a = 2.0 * a_eig + u * (hi.max(axis=1) + 1.0)
        theta = np.full(R, np.inf)
        steps = np.asarray(steps, dtype=np.float64)
        for r in range(R):
            g = np.asarray(gaps[r], dtype=np.float64) if gaps is not None else np.empty(0)
            if not g.size:
                continue
            lng = float(np.abs(np.log(g)).max())
            # Σ_j w_j|k L_j| − Σ_j w_j|x_j|: ≤ ½ ln⁺ gap_0 for decaying modes, ≤ k ln ρ for growing ones
            ell = max(0.5 * max(0.0, float(np.log(g[0]))), float(steps[g.size - 1]) * math.log(max(1.0, rho[r] + a[r])))
            theta[r] = u * (2.0 * lng + 2.0 * math.log(n) + 2.0 * ell + 6.0) + float(gamma(n, u))
    else:
        a = a_eig + (np.sqrt(kap) * (np.sqrt(d) * gamma(d + 2, u) * hi + u * (rho + a_eig)[:, None])).max(axis=1)
        theta = gamma(n + d.max(), u) * (np.sqrt(d) * kap).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta = np.where(theta < 1, (1 + theta) / (1 - theta) * (1 + u) ** 3 - 1, np.inf)
        limit = (rho * (1 + 3 * u) + a) ** 2 * (1 + beta)
        limit_tail = limit * (1 + u * (3 * np.maximum(1.0, np.abs(np.log(limit))) + 3))
        b = np.full(R, np.nan) if bound is None else np.asarray(bound, dtype=np.float64).reshape(R)
        limit_bound = (np.sqrt(b) * (1 + 4 * u) + a_eig + (eig_const(d.max(), False) + 8) * u) ** 2 * (1 + 2 * u)
    return RoundingBound(absolute=a, relative=beta, limit=limit, limit_tail=limit_tail, limit_bound=limit_bound)
