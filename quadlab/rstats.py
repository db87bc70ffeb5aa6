"""The theorem's r over many random starts, and the speed-ups over GD it predicts.

For starts w₀ = w* + ξ, ξ ~ N(0, I), :func:`r_statistics` computes r̃ = max_l C_{l,2}/min_l C_{l,1} and
r_paper = r̃² (:func:`quadlab.theory.adam_constants`) and, per start, how many times fewer steps than GD at its
best step the theorem's bound, the paper's form and the exact rates promise.  :mod:`quadlab.theory` re-exports
both names; ``quadlab r-distribution`` is the study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rates import _readonly, gd_rates, speedup

__all__ = ["RStatistics", "r_statistics"]


_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


@dataclass(frozen=True)
class RStatistics:
    """The theorem's r over many random starts, and the speed-ups over GD it predicts.

    Starts are w₀ = w* + ξ, ξ the rows of ``default_rng(seed).standard_normal((n_starts, n))``.  Speed-ups are
    ratios of iteration counts against GD at its best step, ln(rate_Adam)/ln(rate_GD*) with
    rate_GD* = ((κ−1)/(κ+1))² (also GD's lower bound).

    Attributes
    ----------
    n_starts, seed, threshold : int, int, float
        The inputs.
    kappa, block_kappas : float, numpy.ndarray
    r_tilde, r_paper : numpy.ndarray
        Per start (N,): r̃ and r̃².
    speedup_bound, speedup_bound_paper : numpy.ndarray
        From Adam's guarantee with r̃, and from the paper's form 1 − 1/(r_paper κ_l).
    speedup_exact, speedup_best : numpy.ndarray
        From the exact rate at the theorem's step, and at the best constant step for that D.
    thesis_ratio : numpy.ndarray
        κ/r_paper, the back-of-envelope ratio behind "r ≤ 1000 at κ = 5000, about 5× faster".
    share_tilde_below, share_paper_below : float
        Fractions of starts with r̃ ≤ threshold, r_paper ≤ threshold.
    share_favours, share_favours_paper : float
        Fractions where the bound favours Adam (r·max_l κ_l ≤ κ).

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import spectra, theory
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000), seed=0)
    >>> s = theory.r_statistics(p, 50, seed=1)
    >>> s.r_tilde.shape, bool((s.r_paper == s.r_tilde ** 2).all()), 0.0 <= s.share_favours <= 1.0
    ((50,), True, True)
    """

    n_starts: int
    seed: int
    threshold: float
    kappa: float
    block_kappas: np.ndarray
    r_tilde: np.ndarray
    r_paper: np.ndarray
    speedup_bound: np.ndarray
    speedup_bound_paper: np.ndarray
    speedup_exact: np.ndarray
    speedup_best: np.ndarray
    thesis_ratio: np.ndarray

    @property
    def share_tilde_below(self) -> float:
        return float(np.mean(self.r_tilde <= self.threshold))

    @property
    def share_paper_below(self) -> float:
        return float(np.mean(self.r_paper <= self.threshold))

    @property
    def share_favours(self) -> float:
        return float(np.mean(self.r_tilde * self.block_kappas.max() <= self.kappa))

    @property
    def share_favours_paper(self) -> float:
        return float(np.mean(self.r_paper * self.block_kappas.max() <= self.kappa))

    def quantiles(self, name: str, q=_QUANTILES) -> np.ndarray:
        """Quantiles of one per-start quantity.

        Parameters
        ----------
        name : str
            An attribute holding per-start values (e.g. "r_tilde").
        q : sequence of float, optional
            Levels in [0, 1] (default: min, quartiles, 0.9, 0.99, max).

        Returns
        -------
        numpy.ndarray
            One value per level.
        """
        return np.quantile(np.asarray(getattr(self, name)), q)

    def table(self) -> str:
        """The quantiles of every per-start quantity, then the shares, as printable text.

        Returns
        -------
        str
            Printable lines.
        """
        rows = [("r_tilde", "r_tilde"), ("r_paper = r_tilde^2", "r_paper"),
                ("speed-up, bound (r_tilde)", "speedup_bound"),
                ("speed-up, paper form (r_paper)", "speedup_bound_paper"),
                ("speed-up, exact at theorem step", "speedup_exact"),
                ("speed-up, exact at best step", "speedup_best"), ("kappa / r_paper", "thesis_ratio")]
        w = max(len(r[0]) for r in rows)
        head = f"{'quantity':<{w}}  " + "  ".join(f"{('q' + format(q, 'g')) if 0 < q < 1 else ('min' if q == 0 else 'max'):>9}"
                                                for q in _QUANTILES)
        lines = [head]
        for label, name in rows:
            lines.append(f"{label:<{w}}  " + "  ".join(f"{v:>9.4g}" for v in self.quantiles(name)))
        t = f"{self.threshold:g}"
        lines += [
            "",
            f"starts: {self.n_starts} (seed {self.seed}); kappa = {self.kappa:g}; "
            f"max_l kappa_l = {self.block_kappas.max():.6g}",
            f"share with r_paper <= {t}: {self.share_paper_below:.3f}   share with r_tilde <= {t}: "
            f"{self.share_tilde_below:.3f}",
            f"share where the bound favours Adam (r max_l kappa_l <= kappa): r_tilde {self.share_favours:.3f}, "
            f"r_paper {self.share_favours_paper:.3f}",
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """A JSON-ready summary: quantiles, shares and the inputs (not the per-start arrays).

        Returns
        -------
        dict
            Quantiles, shares and inputs, JSON-ready.
        """
        names = ("r_tilde", "r_paper", "speedup_bound", "speedup_bound_paper", "speedup_exact", "speedup_best",
                 "thesis_ratio")
        return {
            "n_starts": self.n_starts, "seed": self.seed, "threshold": self.threshold, "kappa": self.kappa,
            "block_kappas": [float(v) for v in self.block_kappas],
            "quantile_levels": list(_QUANTILES),
            "quantiles": {n: [float(v) for v in self.quantiles(n)] for n in names},
            "share_r_paper_below": self.share_paper_below, "share_r_tilde_below": self.share_tilde_below,
            "share_favours_adam": self.share_favours, "share_favours_adam_paper": self.share_favours_paper,
        }


def r_statistics(problem, n_starts: int = 1000, *, seed: int = 0, threshold: float = 1000.0) -> RStatistics:
    """Draw ``n_starts`` Gaussian starts and summarise the theorem's r over them (:class:`RStatistics`).

    Parameters
    ----------
    problem : BlockQuadratic
    n_starts : int, default 1000
        Number of starts, ≥ 1.
    seed : int, keyword-only, default 0
        Seed of the starts (one generator for all of them).
    threshold : float, keyword-only, default 1000.0
        The r for the shares, finite and ≥ 1.

    Returns
    -------
    RStatistics
        Per start r̃, r_paper and the predicted speed-ups; the shares.

    Raises
    ------
    ValueError
        If ``n_starts`` is not a positive integer, ``threshold`` < 1, κ = 1 (no speed-up to speak of), or the
        estimated peak memory (128·n bytes per start) exceeds the available memory
        (:func:`quadlab.backend.check_memory`).

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import spectra, theory
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000), seed=0)
    >>> theory.r_statistics(p, 20).as_dict()["n_starts"]
    20
    """
    if isinstance(n_starts, bool) or int(n_starts) != n_starts or n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer, got {n_starts!r}")
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold < 1:
        raise ValueError(f"threshold must be finite and >= 1 (r >= 1 always), got {threshold!r}")
    # Peak memory: the starts and about a dozen arrays of their shape inside adam_constants (measured 0.8 KB
    # per start at n = 9; 16 float64 per coordinate bounds it).  Refusing here beats being killed by the kernel.
    from .backend import check_memory

    check_memory(16 * 8 * int(n_starts) * problem.n, f"{int(n_starts)} random starts of n = {problem.n}",
                 "use fewer starts (r-distribution: a smaller --starts)")
    W = problem.optimum_host + np.random.default_rng(seed).standard_normal((int(n_starts), problem.n))
    from .theory import adam_constants  # here, not at the top: theory re-exports this module's names

    c = adam_constants(problem, W)
    gd_rate = gd_rates(problem).best_rate
    if not 0 < gd_rate < 1:
        raise ValueError(f"GD's best rate is {gd_rate:g}: speed-ups need kappa > 1")
    return RStatistics(
        n_starts=int(n_starts), seed=int(seed), threshold=threshold, kappa=c.kappa, block_kappas=c.block_kappas,
        r_tilde=_readonly(c.r_tilde), r_paper=_readonly(c.r_paper),
        speedup_bound=_readonly(speedup(gd_rate, c.bound)),
        speedup_bound_paper=_readonly(speedup(gd_rate, c.bound_paper)),
        speedup_exact=_readonly(speedup(gd_rate, c.rate_exact)),
        speedup_best=_readonly(speedup(gd_rate, c.best_rate)),
        thesis_ratio=_readonly(c.kappa / np.asarray(c.r_paper)),
    )
