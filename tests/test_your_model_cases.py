"""Your model's spectra in the reports: `stored-report --spectra FILE` and `case1_4 --spectra FILE --blocks ...`
(Case 5).  The file is made here from dense blocks, so no torch is needed."""

import json

import numpy as np
import pytest

from quadlab import lanczos, stored


@pytest.fixture
def spectra_file(tmp_path):
    rng = np.random.default_rng(0)
    blocks = {}
    for name, scale in (("a.weight", 1.0), ("b.weight", 30.0), ("c.weight", 0.01)):
        A = rng.standard_normal((20, 20))
        blocks[name] = scale * (A + A.T)
    q = lanczos.slq(blocks, m=20, probes=2, seed=0)
    return stored.save(tmp_path / "mine.npz", q, {"model": "test", "quick": False})


from test_cli_errors import run  # noqa: E402  (exit status, stdout, stderr) of `quadlab argv` in-process


def test_stored_report_on_your_file(spectra_file, capsys):
    rc, out, _ = run(["stored-report", "--spectra", str(spectra_file), "--seeds", "2", "--blocks",
                      "a.weight,b.weight"], capsys)
    assert rc == 0
    assert "## your model" in out and "| c.weight | 20 |" in out
    assert "your model case blocks (a.weight, b.weight)" in out


@pytest.mark.parametrize("argv, match", [
    (["--blocks", "a.weight"], "--blocks chooses blocks of --spectra"),
    (["--spectra", "SPECTRA", "--blocks", "zz"], "not in"),
    (["--spectra", "SPECTRA", "--data", "."], "not both"),
])
def test_stored_report_errors(spectra_file, capsys, argv, match):
    argv = [str(spectra_file) if a == "SPECTRA" else a for a in argv]
    rc, _, err = run(["stored-report", *argv], capsys)
    assert rc == 2 and err.strip().startswith("quadlab stored-report: error: ") and match in err


def test_case1_4_adds_your_model_as_case_5(spectra_file, tmp_path, capsys):
    rc, out, _ = run(["case1_4", "--quick", "--cases", "3", "--seeds", "1", "--kappa", "500", "--spectra",
                      str(spectra_file), "--blocks", "a.weight,c.weight", "--reading", "abs", "--out",
                      str(tmp_path / "o")], capsys)
    assert rc == 0 and "Case 5: your model, reading abs" in out
    res = json.loads((tmp_path / "o" / "case1_4.json").read_text())
    five = [c for c in res["cases"] if c["case"] == 5]
    assert len(five) == 1 and five[0]["blocks"] == ["a.weight", "c.weight"] and five[0]["kappa"] == 500
    from quadlab.studies import case1_4

    assert 5 not in case1_4.CASES  # registered for its own run only


@pytest.mark.parametrize("argv, match", [
    (["--blocks", "a.weight"], "add --spectra"),
    (["--spectra", "SPECTRA", "--blocks", "zz"], "no block named 'zz'"),
    (["--spectra", "nofile.npz"], "no such file"),
])
def test_case1_4_spectra_errors(spectra_file, capsys, argv, match):
    argv = [str(spectra_file) if a == "SPECTRA" else a for a in argv]
    rc, _, err = run(["case1_4", *argv], capsys)
    assert rc == 2 and err.strip().startswith("quadlab case1_4: error: ") and match in err
