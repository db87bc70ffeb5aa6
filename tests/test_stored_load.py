"""stored.load on damaged, incomplete and toy files: always a ValueError naming the file and the problem."""

import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quadlab
from quadlab import lanczos, spectra, stored


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    spec = spectra.BlockSpectrum.from_blocks([np.linspace(1, 2, 12), np.linspace(0.5, 5, 9)], ["a", "b"])
    q = lanczos.slq(quadlab.BlockQuadratic(spec, seed=3), m=6, probes=2, seed=1)
    return stored.save(tmp_path_factory.mktemp("valid") / "x.npz", q, {"model": "test"}), q


def _rewrite(src, dst, change):
    """Copy the npz ``src`` to ``dst`` with ``change(arrays)`` applied to its dict of arrays."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(dst, **arrays)
    return dst


def _meta(arrays, **kw):
    meta = json.loads(str(arrays["meta"][()]))
    for k, v in kw.items():
        if v is KeyError:
            meta.pop(k)
        else:
            meta[k] = v
    arrays["meta"] = np.array(json.dumps(meta))


def test_save_uses_a_unique_temporary_name_and_leaves_nothing_behind(valid, tmp_path):
    path, q = valid
    out = stored.save(tmp_path / "y.npz", q, {"model": "test"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.npz"]
    assert stored.load(out).names == q.names


def test_quick_files_are_refused_unless_asked(valid, tmp_path):
    path, q = valid
    toy = stored.save(tmp_path / "toy.npz", q, {"model": "test", "quick": True})
    with pytest.raises(ValueError, match=r"toy.npz: holds the toy spectra.*allow_quick=True"):
        stored.load(toy)
    assert stored.load(toy, allow_quick=True).meta["quick"] is True


def test_corrupted_member_is_found_by_its_crc(valid, tmp_path):
    path, _ = valid
    bad = tmp_path / "crc.npz"
    # a stored (uncompressed) archive, one byte of a member's data flipped: the zip structure is intact
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(bad, **arrays)
    with zipfile.ZipFile(bad) as zf:
        info = zf.getinfo("nodes_0.npy")
    raw = bytearray(bad.read_bytes())
    pos = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 3
    raw[pos] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"crc.npz: .*'nodes_0.npy' is corrupted \(CRC-32"):
        stored.load(bad)


@pytest.mark.parametrize("change, match", [
    (lambda a: _meta(a, names=KeyError), "no 'names'"),
    (lambda a: _meta(a, probes=KeyError), "no 'probes'"),
    (lambda a: _meta(a, m=0), "'m' must be a positive integer"),
    (lambda a: _meta(a, sizes=[1]), "'sizes' must list one"),
    (lambda a: _meta(a, names=["a", "a"]), "distinct"),
    (lambda a: _meta(a, seed="x"), "'seed' must be an integer"),
    (lambda a: _meta(a, quick="yes"), "'quick' must be true or false"),
    (lambda a: _meta(a, slq={"status": ["ok"]}), "slq.status"),
    (lambda a: a.update(meta=np.array("[1, 2]")), "not an object"),
    (lambda a: a.pop("weights_1"), "missing or malformed entry"),
    (lambda a: a.update(nodes_0=np.full_like(a["nodes_0"], np.nan)), "node with positive weight is not finite"),
    (lambda a: a.update(weights_0=-a["weights_0"]), "finite and non-negative"),
    (lambda a: a.update(nodes_0=np.array(["x"] * a["nodes_0"].size).reshape(a["nodes_0"].shape)),
     "unreadable entry"),
])
def test_schema_and_content_errors_name_the_file(valid, tmp_path, change, match):
    bad = _rewrite(valid[0], tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match="bad.npz: .*" + match):
        stored.load(bad)


def test_load_names_a_wrong_argument_type():
    with pytest.raises(ValueError, match="shipped name .* or a file path, not int"):
        stored.load(5)


def test_zero_weight_nodes_may_be_nan(valid, tmp_path):
    # the paper-JSON import pads short probes with NaN nodes of weight 0: those carry nothing and are kept
    def pad(a):
        a["nodes_0"] = a["nodes_0"].copy()
        a["weights_0"] = a["weights_0"].copy()
        a["nodes_0"][0, -1], a["weights_0"][0, -1] = np.nan, 0.0
    st_ = stored.load(_rewrite(valid[0], tmp_path / "pad.npz", pad))
    assert np.isnan(st_.slq.nodes[0][0, -1])


_FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_give_a_value_error(tmp_path, data):
    p = tmp_path / "rand.npz"
    p.write_bytes(data)
    with pytest.raises(ValueError, match="rand.npz"):
        stored.load(p)


@_FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 10**9)))
def test_mutated_valid_files_load_or_give_a_value_error(valid, tmp_path, edits, cut):
    raw = bytearray(valid[0].read_bytes())
    for pos, byte in edits:
        raw[pos % len(raw)] = byte
    if cut is not None:
        raw = raw[: cut % len(raw)]
    p = tmp_path / "mut.npz"
    p.write_bytes(bytes(raw))
    try:
        st_ = stored.load(p)
    except ValueError as exc:
        assert "mut.npz" in str(exc)
    else:  # a mutation that kept the file valid (e.g. a byte of the zip comment area): a consistent result
        assert st_.names == valid[1].names
        for X, W in zip(st_.slq.nodes, st_.slq.weights, strict=True):
            assert np.isfinite(W).all() and (W >= 0).all() and np.isfinite(X[W > 0]).all()


def test_shipped_files_still_load_and_are_not_quick():
    for name in ("gpt2", "resnet18"):
        assert not stored.load(name).meta["quick"]
