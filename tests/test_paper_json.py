"""stored.to_paper_json: the paper code's values_layer.json / weights_layer.json, read back by from_paper_json."""

import json

import numpy as np
import pytest

from quadlab import lanczos, stored


def test_round_trip_keeps_every_measure(tmp_path):
    # Block "few" has 3 distinct eigenvalues: its probes break down at step 3, leaving NaN-padded slots.
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((12, 12)))[0]
    few = Q @ np.diag(np.repeat([1.0, 2.0, 5.0], 4)) @ Q.T
    A = rng.standard_normal((9, 9))
    q = lanczos.slq({"few": few, "dense": A + A.T}, m=8, probes=3, seed=1)
    assert np.isnan(q.nodes[0]).any()
    v, w = stored.to_paper_json(q, tmp_path / "paper")
    assert (v.name, w.name) == ("values_layer.json", "weights_layer.json")
    raw = json.loads(v.read_text())
    assert list(raw) == ["few", "dense"] and np.shape(raw["few"]) == (3, 8)
    back = stored.from_paper_json(v, w)
    for name in q.names:
        x, y = q.measure(name)
        x2, y2 = back.measure(name)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_allclose(y, y2, rtol=1e-15, atol=0)


def test_shipped_spectra_and_bad_folder(tmp_path):
    v, w = stored.to_paper_json("resnet18", tmp_path)
    back = stored.from_paper_json(v, w)
    assert back.names == stored.load("resnet18").names
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        stored.to_paper_json("gpt2", tmp_path / "file")
