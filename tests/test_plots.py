"""The figure helpers: the median-over-runs trace holds stopped runs and ends at the median stop."""

from types import SimpleNamespace

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from quadlab import plots  # noqa: E402


def test_median_band_holds_stopped_runs():
    steps = np.arange(5)
    traces = [[1.0, 0.1, np.nan, np.nan, np.nan], [1.0, 0.5, 0.2, 0.1, np.nan], [1.0, 0.9, 0.8, 0.7, 0.6]]
    runs = [SimpleNamespace(steps=steps, grad_norm=np.array([t])) for t in traces]
    fig, ax = plt.subplots()
    line = plots.median_band(ax, runs, log10=False)
    # stops at steps 1, 3, 4: the median run stops at 3; the first run is held at 0.1 after its stop
    np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
    np.testing.assert_array_equal(line.get_ydata(), [1.0, 0.5, 0.2, 0.1])
    line = plots.median_band(ax, runs, log10=True)
    np.testing.assert_allclose(line.get_ydata(), np.log10([1.0, 0.5, 0.2, 0.1]), rtol=0, atol=1e-15)
    plt.close(fig)


def test_colors_are_fixed_for_known_optimizers():
    assert plots.color("gd") == plots.OKABE_ITO[0] and plots.color("adam") == plots.OKABE_ITO[2]


def test_unknown_names_get_a_stable_color():
    import subprocess
    import sys

    code = "from quadlab import plots; print(plots.color('my_method'))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert runs == {plots.color("my_method") + "\n"}


def test_one_figure_style():
    # every study draws through plots.pyplot(): none sets up matplotlib on its own
    from pathlib import Path

    studies = Path(plots.__file__).parent / "studies"
    own = [p.name for p in sorted(studies.glob("*.py")) if "matplotlib.use" in p.read_text()]
    assert own == []
    plt_ = plots.pyplot()
    fig, ax = plt_.subplots()
    assert plt_.get_backend().lower() == "agg"
    assert plt_.rcParams["font.size"] == plots.STYLE["font.size"]
    assert ax.spines["top"].get_visible() is False
    assert [c["color"] for c in plt_.rcParams["axes.prop_cycle"]][:2] == list(plots.OKABE_ITO[:2])
    plt_.close(fig)
