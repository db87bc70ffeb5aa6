"""Stored block spectra: file format, loading errors, paper-JSON import, sampling and the shipped data."""

import json
import zipfile

import numpy as np
import pytest

import quadlab
from quadlab import heterogeneity, lanczos, spectra, stored


@pytest.fixture(scope="module")
def small_slq():
    spec = spectra.BlockSpectrum.from_blocks([np.linspace(1, 2, 30), np.linspace(0.5, 5, 40)], ["a", "b"])
    return lanczos.slq(quadlab.BlockQuadratic(spec, seed=3), m=12, probes=3, seed=1)


def test_save_load_round_trip(tmp_path, small_slq):
    path = stored.save(tmp_path / "x.npz", small_slq, {"model": "test", "note": "ünïcode"})
    st = stored.load(path)
    assert st.names == small_slq.names and st.slq.sizes == small_slq.sizes
    assert st.meta["model"] == "test" and st.meta["note"] == "ünïcode" and st.meta["m"] == 12
    for a, b in zip(st.slq.nodes + st.slq.weights, small_slq.nodes + small_slq.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    x, w = st.measure("b")
    x0, w0 = small_slq.measure("b")
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    # the loaded result is a real SLQResult: densities and JS⁰ work on it unchanged
    assert heterogeneity.js0(st.slq, source="slq") == pytest.approx(heterogeneity.js0(small_slq, source="slq"))


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_load_rejects_bad_files(tmp_path, small_slq):
    with pytest.raises(ValueError, match="no such file"):
        stored.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip archive at all")
    with pytest.raises(ValueError, match="not an npz"):
        stored.load(junk)
    with pytest.raises(ValueError, match="header format"):
        stored.load(_npz(tmp_path / "nohdr.npz", nodes_0=np.zeros((1, 2))))
    with pytest.raises(ValueError, match="header format is 'other'"):
        stored.load(_npz(tmp_path / "wrong.npz", format=np.array("other")))
    with pytest.raises(ValueError, match="version 7"):
        stored.load(_npz(tmp_path / "v7.npz", format=np.array(stored.FORMAT), version=np.array(7)))
    # pickled content: the header itself stored as an object array
    path = stored.save(tmp_path / "ok.npz", small_slq, {})
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.array([json.loads(str(arrays["meta"]))], dtype=object)
    with pytest.raises(ValueError, match="pickled"):
        stored.load(_npz(tmp_path / "pickled.npz", **arrays))
    arrays["meta"] = np.array(json.dumps({"names": ["a"], "sizes": [30], "m": 12, "probes": 5, "seed": 1}))
    with pytest.raises(ValueError, match="arrays of shapes"):
        stored.load(_npz(tmp_path / "shape.npz", **arrays))
    arrays["meta"] = np.array("{not json")
    with pytest.raises(ValueError, match="malformed"):
        stored.load(_npz(tmp_path / "json.npz", **arrays))
    assert zipfile.is_zipfile(path)


def test_load_unknown_name():
    with pytest.raises(ValueError, match="gpt2"):
        stored.data_path("vgg")


def test_paper_json_import(tmp_path):
    vals = {"wte": [[1.0, 2.0, 3.0], [1.5, 2.5, 3.5]], "q": [[0.1, 0.2], [0.3, 0.4]]}
    wts = {"wte": [[0.2, 0.3, 0.5], [0.5, 0.25, 0.25]], "q": [[0.5, 0.5], [0.9, 0.1]]}
    (tmp_path / "values_layer.json").write_text(json.dumps(vals))
    (tmp_path / "weights_layer.json").write_text(json.dumps(wts))
    st = stored.from_paper_json(tmp_path / "values_layer.json", tmp_path / "weights_layer.json")
    assert st.names == ("wte", "q")
    x, w = st.measure("q")  # m padded to 3 with zero weight, dropped by measure
    np.testing.assert_allclose(np.sort(x), [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-15)
    np.testing.assert_allclose(w[np.argsort(x)], [0.25, 0.25, 0.45, 0.05], rtol=1e-15)
    with pytest.raises(ValueError, match="same, non-empty blocks"):
        stored.from_paper_json(vals, {"wte": wts["wte"]})
    with pytest.raises(ValueError, match="shape"):
        stored.from_paper_json({"a": [[1.0, 2.0]]}, {"a": [[1.0]]})
    with pytest.raises(ValueError, match="cannot read"):
        stored.from_paper_json(tmp_path / "nope.json", wts)


def test_sample_block_inverse_cdf_exact():
    x, w = np.array([3.0, 1.0, 2.0]), np.array([0.25, 0.25, 0.5])
    np.testing.assert_array_equal(stored.sample_block(x, w, 4, smooth=False), [1.0, 2.0, 2.0, 3.0])
    # mid-steps (0.125, 1), (0.5, 2), (0.875, 3); quantiles 1/8, 3/8, 5/8, 7/8
    np.testing.assert_allclose(stored.sample_block(x, w, 4, smooth=True), [1.0, 1 + 0.25 / 0.375, 2 + 0.125 / 0.375, 3.0],
                               rtol=4 * np.finfo(float).eps)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            stored.sample_block(x, w, bad)
    with pytest.raises(ValueError, match="non-negative"):
        stored.sample_block(x, -w, 4)
    with pytest.raises(ValueError, match="method"):
        stored.sample_block(x, w, 4, method="sobol")


def test_sample_block_random_matches_measure():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(50), rng.random(50)
    draw = stored.sample_block(x, w, 20_000, method="random", smooth=False, seed=5)
    np.testing.assert_array_equal(draw, stored.sample_block(x, w, 20_000, method="random", smooth=False, seed=5))
    # Kolmogorov distance between the empirical and the exact distribution function
    order = np.argsort(x)
    F = np.cumsum(w[order]) / w.sum()
    emp = np.searchsorted(np.sort(draw), x[order], side="right") / draw.size
    assert np.max(np.abs(emp - F)) < 1.63 / np.sqrt(draw.size)  # the 1% KS critical value


def _fake(blocks):
    names = [n for n, _ in blocks]
    X = [np.atleast_2d(np.asarray(v, float)) for _, v in blocks]
    W = [np.full_like(x, 1.0 / x.shape[1]) for x in X]
    q = lanczos.SLQResult(tuple(names), tuple(x.shape[1] for x in X), tuple(X), tuple(W),
                          tuple(np.zeros_like(x) for x in X), 4, (4,) * len(X), 1, 0, ((None,),) * len(X),
                          ("ok",) * len(X), ("",) * len(X))
    return stored.StoredSpectra(q, {}, "test")


def test_sampled_spectrum_transforms():
    st = _fake([("big", [-2.0, 1.0, 5.0, 10.0]), ("small", [-1e-3, 1e-4, 2e-3, 3e-3])])
    kappa = 1000.0
    for transform in ("abs", "positive", "signed"):
        s = stored.sampled_spectrum(st, d=4, kappa=kappa, reading=transform, smooth=False)
        assert s.lambda_min == 1.0 and s.lambda_max == kappa and s.sizes == (4, 4)
    signed = stored.sampled_spectrum(st, d=4, kappa=kappa, reading="signed", smooth=False)
    # literal map: 0 lands at 1 + (κ−1)·2/12, and the small block collapses around it
    assert np.ptp(signed.blocks[1]) < 1.0 and signed.blocks[0][0] == 1.0
    a = stored.sampled_spectrum(st, d=4, kappa=kappa, reading="abs", smooth=False)
    np.testing.assert_allclose(a.blocks[0], 1 + (kappa - 1) * (np.array([1, 2, 5, 10.0]) - 1e-4) / (10 - 1e-4))
    p = stored.sampled_spectrum(st, d=4, kappa=kappa, reading="positive", smooth=False)
    assert p.blocks[1][0] == 1.0 and p.blocks[0][0] == 1.0  # both negative values become 0, the global min
    with pytest.raises(ValueError, match="reading"):
        stored.sampled_spectrum(st, reading="square")
    with pytest.raises(ValueError, match="no block named"):
        stored.sampled_spectrum(st, blocks=["big", "huge"])
    with pytest.raises(ValueError, match="entries"):
        stored.sampled_spectrum(st, d=[3, 4, 5])


# -- the shipped spectra ---------------------------------------------------------------------------
shipped = pytest.mark.skipif(not (stored.data_path("gpt2").is_file() and stored.data_path("resnet18").is_file()),
                             reason="the shipped spectra are missing (rebuild with `quadlab extract all`)")


@shipped
def test_shipped_files_load_and_are_complete():
    for name in ("gpt2", "resnet18"):
        st = stored.load(name)
        assert st.slq.ok and st.meta["model"] == name and not st.meta["quick"]
        for key in ("model_config", "mode", "data", "slq", "versions", "date", "dtype"):
            assert key in st.meta
        for X, W in zip(st.slq.nodes, st.slq.weights, strict=True):
            np.testing.assert_allclose(W.sum(axis=1), 1.0, rtol=1e-10)
            assert np.isfinite(X[W > 0]).all()
    assert set(stored.GPT2_CASE_BLOCKS) <= set(stored.load("gpt2").names)
    assert set(stored.RESNET18_CASE_BLOCKS) <= set(stored.load("resnet18").names)


@shipped
def test_presets_give_the_case_spectra():
    for preset in (stored.gpt2_case, stored.resnet18_case):
        s = preset(kappa=5000)
        assert s.sizes == (25, 25, 25, 25) and s.lambda_min == 1.0 and s.lambda_max == 5000.0
        s2 = preset(kappa=100, d=10, blocks=s.names[:2])
        assert s2.sizes == (10, 10) and s2.kappa == pytest.approx(100)


@shipped
def test_shipped_js0_separates_transformer_from_cnn():
    """JS⁰ over the GPT2 blocks is far above JS⁰ over the ResNet18 blocks (each block normalised by its own
    max |λ|, σ = 0.01 of the range); the measured ratio is recorded in quadlab/data/PROVENANCE.md."""
    js = {n: heterogeneity.js0(stored.load(n).slq, source="slq", normalize="max_abs") for n in ("gpt2", "resnet18")}
    assert js["gpt2"] > 5 * js["resnet18"], js
