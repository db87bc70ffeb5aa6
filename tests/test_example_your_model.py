"""examples/your_model.py --quick (about 5 s): block spectra of a TransformerEncoderLayer model and a CNN, JS⁰, the
quadratic cases built from them and GD vs Adam, with the figures."""

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from quadlab import stored  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "your_model.py"


def test_example_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("your_model_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--out", str(tmp_path)]) == 0
    for name in ("spectra.png", "convergence.png", "transformer_blocks.npz", "cnn_blocks.npz", "summary.json"):
        assert (tmp_path / name).is_file(), name
    s = json.loads((tmp_path / "summary.json").read_text())
    assert "query[head 1]" in s["transformer"]["blocks"] and s["transformer"]["blocks"]["query[head 1]"] == 16 * 32
    for net in ("transformer", "cnn"):
        assert s[net]["js0_max_abs"] > 0 and s[net]["case"]["gd"]["steps"] is not None
    assert stored.load(tmp_path / "cnn_blocks.npz").names == ("conv1", "conv2", "conv3", "fc")
