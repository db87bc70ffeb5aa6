"""Every bad command line of issue 15 ends in one line `quadlab <command>: error: ...` and exit status 2, before
any work; help texts name the real commands."""

import importlib

import pytest

from quadlab import cli


def run(argv, capsys):
    """(exit status, stdout, stderr) of `quadlab argv` run in-process."""
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"quadlab {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any study starts computing (every case below must be refused before that)."""
    import quadlab

    def boom(*a, **k):
        raise AssertionError("work started before the arguments were refused")

    monkeypatch.setattr(quadlab, "BlockQuadratic", boom)
    monkeypatch.setattr(quadlab, "run", boom)


CASES = [
    (["case1_4", "--backend", "foo"], "--backend"),
    (["case1_4", "--kappa", "nan"], "finite"),
    (["case1_4", "--kappa", "inf"], "finite"),
    (["case1_4", "--cases", "5"], "'5' is not one of 1,2,3,4"),
    (["case1_4", "--cases", ""], "name at least one"),
    (["case1_4", "--kappa", "1", "--cases", "1"], "must be > 1"),
    (["case1_4", "--kappa", "50", "--cases", "3"], "need κ > 103"),
    (["case1_4", "--seeds", "0"], "between 1 and 1000"),
    (["case1_4", "--seeds", "0.7"], "not an integer"),
    (["case1_4", "--tol", "0"], "> 0 and < 1"),
    (["case1_4", "--nope"], "unrecognized arguments"),
    (["r-distribution", "--starts", "0"], "between 1"),
    (["r-distribution", "--seed", "-1"], "at least 0"),
    (["r-distribution", "--kappa", "100"], "> 103"),
    (["kappa-sweep", "--cap-factor", "0"], ">= 1"),
    (["kappa-sweep", "--kappa-min", "50"], "> 103"),
    (["kappa-sweep", "--kappa-min", "2000", "--kappa-max", "1000"], "--kappa-min <= --kappa-max"),
    (["kappa-sweep", "--cases", "het,nope"], "'nope' is not one of het,hom"),
    (["stored-report", "--seeds", "0"], "between 1"),
    (["stored-report", "--data", "/nonexistent/folder"], "not a folder"),
    (["theory", "--case", "5"], "invalid choice"),
    (["theory", "--kappa", "50"], "kappa > 103"),
    (["theory", "--steps", "inf"], "not an integer"),
    (["blockwise-lrs", "--kappa", "50"], "> 103"),
    (["blockwise-lrs", "--block-kappa", "1e4", "--kappa", "5000"], "--kappa >= --block-kappa"),
    (["heterogeneity-sweep", "--tol", "2"], "< 1"),
    (["rotation", "--seeds", "-3"], "between 1 and 1000"),
    (["block-spectra", "--sigma", "nan"], "finite"),
    (["figures", "--only", "nope"], "'nope' is not one of"),
    (["extract", "gpt2", "--m", "0"], "between 1 and 10000"),
    (["extract", "gpt2", "--probes", "-1"], "between 1 and 1000"),
    (["extract", "all", "--quick", "--replace-shipped"], "toy spectra"),
]


@pytest.mark.parametrize("argv, what", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_arguments_give_one_line_and_exit_2(argv, what, capsys, no_work):
    rc, _, err = run(argv, capsys)
    assert rc == 2
    assert what in one_error_line(err, argv[0])


@pytest.mark.parametrize("command", ["case1_4", "rotation", "kappa-sweep", "heterogeneity-sweep", "blockwise-lrs",
                                     "r-distribution", "figures", "block-spectra", "extract"])
def test_bad_output_paths_are_refused_before_any_work(command, tmp_path, capsys, no_work):
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = [command] + (["gpt2", "--quick"] if command == "extract" else [])
    rc, _, err = run(argv + ["--out", str(afile)], capsys)
    assert rc == 2 and "is a file, not a folder" in one_error_line(err, command)
    rc, _, err = run(argv + ["--out", str(afile / "sub")], capsys)
    assert rc == 2 and "is a file" in one_error_line(err, command)
    if command not in ("figures", "block-spectra", "extract"):
        rc, _, err = run(argv + ["--out", str(tmp_path / "o"), "--json", str(afile / "x.json")], capsys)
        assert rc == 2 and "--json" in one_error_line(err, command)
        rc, _, err = run(argv + ["--out", str(tmp_path / "o"), "--json", str(tmp_path)], capsys)
        assert rc == 2 and "is a folder" in one_error_line(err, command)


def test_extract_without_torch_is_one_line(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    rc, _, err = run(["extract", "gpt2", "--quick", "--out", str(tmp_path)], capsys)
    assert rc == 2 and 'pip install "quadlab[extract]"' in one_error_line(err, "extract")


def test_extract_refuses_the_package_folder_without_replace_shipped(capsys):
    from quadlab import stored

    rc, _, err = run(["extract", "gpt2", "--out", str(stored.data_path("gpt2").parent)], capsys)
    assert rc == 2 and "--replace-shipped" in one_error_line(err, "extract")


def test_library_value_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", "1M")
    argv = ["r-distribution", "--starts", "100000", "--out", str(tmp_path), "--quiet"]
    rc, _, err = run(argv, capsys)
    line = one_error_line(err, "r-distribution")
    assert rc == 2 and "needs about" in line and "GiB are available" in line and "fewer starts" in line
    assert not (tmp_path / "r_histogram.png").exists()
    with pytest.raises(ValueError, match="needs about"):
        cli.main(argv + ["--debug"])


def test_r_distribution_size_guard_refuses_100_million_starts(capsys):
    rc, _, err = run(["r-distribution", "--starts", "100000000", "--quiet", "--out", "/tmp"], capsys)
    assert rc == 2 and "100000000 random starts" in one_error_line(err, "r-distribution")


@pytest.mark.parametrize("command", list(cli.STUDIES))
def test_help_names_the_real_command(command, capsys):
    rc, out, _ = run([command, "--help"], capsys)
    assert rc == 0
    assert out.startswith(f"usage: quadlab {command} "), out[:80]
    assert "case1-4" not in out
    description = out.split("\n\n")[1]
    assert description.rstrip().endswith((".", "?", ")")), description  # a whole sentence, not cut


def test_case1_4_options_have_help(capsys):
    _, out, _ = run(["case1_4", "--help"], capsys)
    options = " ".join(out.split("options:")[1].split())
    for opt in ("--kappa KAPPA condition number", "--backend {numpy,cupy,array_api_strict} array library",
                "--cases CASES comma-separated"):
        assert opt in options, opt


def test_figures_only_takes_command_names(tmp_path, capsys):
    rc, _, err = run(["figures", "--only", "r-distribution", "--out", str(tmp_path), "--quiet"], capsys)
    assert rc == 0, err
    assert (tmp_path / "r_histogram.png").is_file()
