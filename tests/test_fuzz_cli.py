"""Fuzzing the command line: random argument vectors for every subcommand, run in-process, end in exit 0
(help, or arguments that validate) or in one error line with exit 2, never in a traceback.

No vector may start a long computation: the entry points of real work (``quadlab.BlockQuadratic``,
``quadlab.run``, ``stored.load``, ``quadlab.extract.extract``) are replaced by a stub that raises ``Validated``
(a BaseException, so no study's error handling swallows it); reaching it means every argument was accepted."""

import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quadlab
from quadlab import cli, stored


class Validated(BaseException):
    """Raised where real work would start."""


@pytest.fixture
def stop_work(monkeypatch, tmp_path):
    def stop(*a, **k):
        raise Validated

    monkeypatch.setattr(quadlab, "BlockQuadratic", stop)
    monkeypatch.setattr(quadlab, "run", stop)
    monkeypatch.setattr(stored, "load", stop)
    try:
        monkeypatch.setattr(importlib.import_module("quadlab.extract"), "extract", stop)
        monkeypatch.setattr(importlib.import_module("quadlab.extract.user"), "extract_user", stop)
    except ImportError:  # no torch: `extract` ends in its one-line error before any work
        pass
    monkeypatch.chdir(tmp_path)  # default output folders land here
    (tmp_path / "afile").write_text("x")
    return tmp_path


COMMON = ["--seeds", "--tol", "--quick", "--out", "--json", "--quiet", "--debug", "--help"]
OPTIONS = {
    "case1_4": COMMON + ["--kappa", "--backend", "--cases", "--spectra", "--blocks"],
    "rotation": COMMON,
    "heterogeneity-sweep": COMMON + ["--fresh"],
    "kappa-sweep": COMMON + ["--fresh", "--backend", "--kappa-min", "--kappa-max", "--n-kappa", "--cases",
                             "--cap-factor", "--checkpoint"],
    "blockwise-lrs": COMMON + ["--backend", "--kappa", "--n-blocks", "--block-size", "--block-kappa",
                               "--adam-steps", "--momentum", "--cases"],
    "r-distribution": ["--kappa", "--starts", "--seed", "--problem-seed", "--threshold", "--out", "--json",
                       "--quiet", "--help"],
    "stored-report": ["--data", "--allow-quick", "--kappa", "--seeds", "--out", "--help", "--spectra", "--blocks"],
    "theory": ["--case", "--kappa", "--seeds", "--steps", "--json", "--quiet", "--help"],
    "figures": ["--out", "--quick", "--only", "--quiet", "--help"],
    "block-spectra": ["--data", "--allow-quick", "--out", "--quiet", "--sigma", "--help"],
    "extract": ["gpt2", "resnet18", "all", "--quick", "--out", "--replace-shipped", "--m", "--probes", "--mode",
                "--dtype", "--threads", "--quiet", "--help", "--model", "--loss", "--batches", "--blocks", "--device",
                "--seed", "--paper-json"],
}
VALUES = ["0", "1", "2", "3", "-1", "0.5", "1e-6", "5000", "1e5", "1e300", "nan", "inf", "-inf", "abc", "",
          "1,2", "5", "3,4", "het", "hom,het", "scaled", "numpy", "foo", "cupy", "eval", "float32", "kappa-sweep",
          "r_distribution", "out/x", "afile", "afile/sub", ".", "-", "--", "1.5", "0x10", "200", "1e7",
          "mod:fn", "x.py:f", "out/y.npz", "cuda", "a.weight,b"]


def _argv(command):
    # a subcommand added after this list was written is fuzzed with the shared study options
    token = st.one_of(st.sampled_from(OPTIONS.get(command, COMMON)), st.sampled_from(VALUES),
                      st.text(alphabet="-0123456789.,ae/x", max_size=6))
    return st.lists(token, max_size=7).map(lambda rest: [command, *rest])


@pytest.mark.parametrize("command", list(cli.STUDIES) + ["extract"])
def test_random_arguments_exit_0_or_2_without_traceback(command, stop_work, capsys):
    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(argv=_argv(command))
    def check(argv):
        argv = [a for a in argv if a != "--debug"]  # --debug shows tracebacks on purpose
        try:
            rc = cli.main(argv)
        except SystemExit as exc:
            rc = exc.code
        except Validated:
            rc = "validated"
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "Traceback" not in out, (argv, err)
        assert rc in (0, 2, "validated"), (argv, rc, err)
        if rc == 2:
            lines = [line for line in err.splitlines() if line.strip()]
            assert lines and lines[-1].startswith(("quadlab ", "usage: quadlab")), (argv, err)
            assert lines[-1].startswith(f"quadlab {command}: error: ") or lines[-1].startswith("quadlab: error"), \
                (argv, err)

    check()

