"""One figure style for quadlab: readable fonts, colour-blind-safe colours (Okabe–Ito), median-and-band
traces of many runs."""

from __future__ import annotations

import numpy as np

__all__ = ["color", "median_band", "OKABE_ITO"]

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
_FIXED = {"gd": 0, "gd_best": 0, "heavy_ball": 4, "adam_theory": 1, "adam_theory_thm": 1, "adam_beta1_0": 3,
          "adam": 2, "blockwise_gd": 5, "adam_mini": 6, "jacobi_gd": 7}


def color(name: str) -> str:
    """The colour of an optimizer, the same in every figure."""
    return OKABE_ITO[_FIXED.get(name, hash(name) % len(OKABE_ITO))]


def median_band(ax, results, what: str = "grad_norm", label: str | None = None, color: str | None = None,
                log10: bool = True):
    """Plot the median over runs of ``what`` against the recorded steps, with a min–max band.

    ``results``: Results that share their recorded steps (one run each, or several); values after a run
    stopped are NaN, so each curve ends where the median run stopped."""
    steps = results[0].steps
    Y = np.concatenate([getattr(r, what) for r in results], axis=0)
    if log10:
        with np.errstate(divide="ignore", invalid="ignore"):
            Y = np.log10(Y)
    alive = np.isfinite(Y).sum(axis=0)
    keep = alive * 2 > Y.shape[0]  # plot while at least half the runs are still going
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(Y, axis=0)
            lo, hi = np.nanmin(Y, axis=0), np.nanmax(Y, axis=0)
    x = steps[keep]
    (line,) = ax.plot(x, med[keep], label=label, color=color, lw=1.6)
    # Rasterised: a band of thousands of vertices makes the PDF slow to write and to open; the lines stay vector.
    ax.fill_between(x, lo[keep], hi[keep], color=line.get_color(), alpha=0.18, lw=0, rasterized=True)
    return line
