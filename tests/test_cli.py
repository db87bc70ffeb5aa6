"""The quadlab command: study dispatch, the theory report and the figures runner."""

import json

import pytest

from quadlab import cli


def test_every_study_subcommand_imports():
    import importlib

    for name, (module, _) in cli.STUDIES.items():
        assert callable(importlib.import_module(f"quadlab.studies.{module}").main), name


def test_theory_report_holds_on_case3(tmp_path):
    out = tmp_path / "t.json"
    assert cli.main(["theory", "--case", "3", "--seeds", "2", "--steps", "3000", "--quiet", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert set(rec["reports"]) == {"gd", "heavy_ball", "adam_theory", "blockwise_gd"}
    # every row is a definite "yes" (not merely "not NO": "undetermined" and "n/a" would pass that), and the
    # linear methods' exact rates are the textbook ones for Case 3's spectrum [1, 5000] with blocks of
    # condition number at most 3: GD ((κ−1)/(κ+1))², heavy ball ((√κ−1)/(√κ+1))², the block oracle ((3−1)/(3+1))²
    assert [r["holds"] for rows in rec["reports"].values() for r in rows] == ["yes"] * 8
    sk, eps = 5000**0.5, 2.0**-52
    # heavy ball at its optimum has a double eigenvalue of each extreme 2×2 iteration matrix, whose computed
    # modulus carries an error of order √eps; the other two are simple roots (eps-level)
    truth = {"gd": ((4999 / 5001) ** 2, 1e3 * eps), "heavy_ball": (((sk - 1) / (sk + 1)) ** 2, 10 * eps**0.5),
             "blockwise_gd": (0.25, 1e3 * eps)}
    for name, (rate, rel) in truth.items():
        assert [r["exact"] for r in rec["reports"][name]] == pytest.approx([rate] * 2, rel=rel), name


def test_figures_rejects_unknown_names():
    with pytest.raises(SystemExit):
        cli.main(["figures", "--only", "nope"])


def test_figures_runs_a_subset(tmp_path):
    assert cli.main(["figures", "--only", "r_distribution", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "r_histogram.png").is_file() and (tmp_path / "r_histogram.pdf").is_file()


def test_python_dash_m_quadlab_is_the_command():
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "quadlab", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "usage: quadlab" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "quadlab", "case1_4", "--kappa", "0"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["quadlab case1_4: error: argument --kappa: must be > 1 and <= 100000, got 0"]
