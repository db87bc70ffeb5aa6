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
    """The colour of an optimizer, the same in every figure and every process.

    Known optimizers have fixed Okabe–Ito colours; any other name gets one by crc32 (not ``hash``, which is
    salted per process).

    Parameters
    ----------
    name : str
        The optimizer's key (e.g. "gd", "adam").

    Returns
    -------
    str
        A hex colour from :data:`OKABE_ITO`.

    Examples
    --------
    >>> from quadlab import plots
    >>> plots.color("gd") == plots.OKABE_ITO[0], plots.color("mine") == plots.color("mine")
    (True, True)
    """
    # crc32, not hash(): str hashes are salted per process, so colours would change from run to run.
    return OKABE_ITO[_FIXED.get(name, zlib.crc32(name.encode()) % len(OKABE_ITO))]


def median_band(ax, results, what: str = "grad_norm", label: str | None = None, color: str | None = None,
                log10: bool = True):
    """Plot the median over runs of a recorded quantity against the recorded steps, with a min–max band.

    A run that stopped (values NaN after its stop) is held at its last value, and the curve ends where the median
    run stopped (the ⌊n/2⌋+1-th stop of n runs): without the holding, the median over the runs still going would
    jump up each time a fast run stops, since only the slow ones would be left.

    Parameters
    ----------
    ax : matplotlib Axes
    results : sequence of Result
        Runs that share their recorded steps (one run each, or several).
    what : str, default "grad_norm"
        The Result attribute to plot, (R, T) per Result.
    label, color : str, optional
        Of the median line (the band takes the line's colour).
    log10 : bool, default True
        Plot log10 of the values.

    Returns
    -------
    matplotlib.lines.Line2D
        The median line.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim, plots, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(200))
    >>> runs = [quadlab.run(p, optim.gd(lr="optimal"), seeds=[s], steps=200) for s in (0, 1, 2)]
    >>> plt = plots.pyplot()
    >>> fig, ax = plt.subplots()
    >>> line = plots.median_band(ax, runs, label="GD")
    >>> line.get_label(), len(line.get_xdata()) == runs[0].steps.size
    ('GD', True)
    >>> plt.close(fig)
    """
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
