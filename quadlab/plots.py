"""One figure style for quadlab: readable fonts, colour-blind-safe colours (Okabe–Ito), median-and-band
traces of many runs."""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["color", "median_band", "pyplot", "OKABE_ITO", "STYLE"]

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
_FIXED = {"gd": 0, "gd_best": 0, "heavy_ball": 4, "adam_theory": 1, "adam_theory_thm": 1, "adam_beta1_0": 3,
          "adam": 2, "blockwise_gd": 5, "adam_mini": 6, "jacobi_gd": 7}


#: The one figure style: matplotlib rc settings every quadlab figure is drawn with (font sizes that stay legible
#: in a two-column paper, Okabe–Ito as the default colour cycle, light grid-free axes).
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend with quadlab's :data:`STYLE` applied.

    Every study draws its figures through this, so they share one look and none needs a display.

    Returns
    -------
    module
        ``matplotlib.pyplot``, ready for ``plt.subplots(...)``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (it is a dependency of quadlab).

    Examples
    --------
    >>> from quadlab import plots
    >>> plt = plots.pyplot()
    >>> fig, ax = plt.subplots()
    >>> plt.rcParams["legend.fontsize"] == plots.STYLE["legend.fontsize"]
    True
    >>> plt.close(fig)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update(STYLE)
    plt.rcParams["axes.prop_cycle"] = cycler(color=list(OKABE_ITO))
    return plt


def color(name: str) -> str:
    """The colour of an optimizer, the same in every figure."""
    # crc32, not hash(): str hashes are salted per process, so colours would change from run to run.
    return OKABE_ITO[_FIXED.get(name, zlib.crc32(name.encode()) % len(OKABE_ITO))]


def median_band(ax, results, what: str = "grad_norm", label: str | None = None, color: str | None = None,
                log10: bool = True):
    """Plot the median over runs of ``what`` against the recorded steps, with a min–max band.

    ``results``: Results that share their recorded steps (one run each, or several).  A run that stopped
    (values NaN after its stop) is held at its last value, and the curve ends where the median run stopped
    (the ⌊n/2⌋+1-th stop of n runs): without the holding, the median over the runs still going would jump
    up each time a fast run stops, since only the slow ones would be left."""
    steps = results[0].steps
    Y = np.concatenate([np.asarray(getattr(r, what), dtype=np.float64) for r in results], axis=0).copy()
    finite = np.isfinite(Y)
    last = np.where(finite.any(axis=1), Y.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1), -1)
    end = int(np.sort(last)[len(last) // 2])
    for y, j in zip(Y, last, strict=True):
        if j >= 0:
            y[j + 1 : end + 1] = y[j]
    Y = Y[:, : end + 1]
    if log10:
        with np.errstate(divide="ignore", invalid="ignore"):
            Y = np.log10(Y)
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of runs that never had a value
        med = np.nanmedian(Y, axis=0)
        lo, hi = np.nanmin(Y, axis=0), np.nanmax(Y, axis=0)
    x = steps[: end + 1]
    (line,) = ax.plot(x, med, label=label, color=color, lw=1.6)
    # Rasterised: a band of thousands of vertices makes the PDF slow to write and to open; the lines stay vector.
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.18, lw=0, rasterized=True)
    return line
