"""`quadlab extract --model MODULE:FACTORY --loss MODULE:FUNCTION --batches MODULE:FUNCTION`: your model's spectra."""

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from quadlab import cli, stored  # noqa: E402
from quadlab.extract import block_spectra  # noqa: E402

MODULE = textwrap.dedent("""
    import torch

    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))

    def loss(model, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)

    def data():
        g = torch.Generator().manual_seed(1)
        return [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(2)]
""")


@pytest.fixture
def user(tmp_path, monkeypatch):
    (tmp_path / "mymod.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_writes_npz_and_paper_json_equal_to_the_api(user, capsys):
    argv = ["extract", "--model", "mymod.py:make", "--loss", "mymod.py:loss", "--batches", "mymod.py:data",
            "--m", "12", "--probes", "2", "--blocks", r"^0\.", "--out", "res/mine.npz", "--paper-json", "paper",
            "--quiet"]
    assert cli.main(argv) == 0
    st = stored.load(user / "res" / "mine.npz")
    assert st.names == ("0.weight", "0.bias") and st.meta["model"] == "mymod.py:make"
    assert st.meta["hvp_products"] <= st.meta["estimate"]["hvp_products"]
    import importlib.util

    spec = importlib.util.spec_from_file_location("mymod_ref", user / "mymod.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = block_spectra(mod.make(), mod.loss, mod.data(), r"^0\.", m=12, probes=2)
    for a, b in zip(st.slq.nodes, ref.nodes, strict=True):
        np.testing.assert_array_equal(a, b)
    back = stored.from_paper_json(user / "paper" / "values_layer.json", user / "paper" / "weights_layer.json")
    assert back.names == st.names


def test_cli_default_out_and_dotted_module(user, capsys):
    assert cli.main(["extract", "--model", "mymod:make", "--loss", "mymod:loss", "--batches", "mymod:data",
                     "--m", "3", "--probes", "1", "--blocks", "bias"]) == 0
    captured = capsys.readouterr()
    assert "Hessian-vector products" in captured.err and "Lanczos steps" in captured.err  # estimate, then the bar
    assert stored.load(user / "out" / "spectra" / "make.npz").names == ("0.bias", "2.bias")


@pytest.mark.parametrize("extra, match", [
    (["--model", "mymod:nope", "--loss", "mymod:loss", "--batches", "mymod:data"], "has no 'nope'"),
    (["--model", "mymod:make"], "missing --loss, --batches"),
    (["gpt2", "--model", "mymod:make", "--loss", "mymod:loss", "--batches", "mymod:data"], "not both"),
    (["--model", "nomod:make", "--loss", "mymod:loss", "--batches", "mymod:data"], "cannot import 'nomod'"),
    (["--model", "mymod:make", "--loss", "mymod:loss", "--batches", "mymod:data", "--blocks", "("],
     "not a regular expression"),
    (["--model", "mymod:make", "--loss", "mymod:loss", "--batches", "mymod:data", "--out", "x.txt"], ".npz file"),
    (["--model", "mymod:make", "--loss", "mymod:loss", "--batches", "mymod:data", "--blocks", "zzz"],
     "matches no parameter"),
    (["--model", "mymod:make", "--loss", "mymod:loss", "--batches", "mymod:data", "--quick"], "drop it"),
    (["gpt2", "--blocks", "x"], "belongs to --model"),
    ([], "name the spectra to rebuild"),
])
def test_cli_errors_are_one_line(user, capsys, extra, match):
    assert cli.main(["extract", *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("quadlab extract: error: ") and match in err[0], err
    assert not list(user.glob("**/*.npz"))  # outputs are checked (folders made) but nothing is written


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cli_refuses_cuda_without_a_device(user, capsys):
    assert cli.main(["extract", "--model", "mymod:make", "--loss", "mymod:loss", "--batches", "mymod:data",
                     "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
