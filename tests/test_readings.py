"""Readings of "scaled and shifted to [1, κ]" (issue 14): each reading's map on hand-made measures, against exact
expectations, and `quadlab readings --quick`."""

import json
import math

import numpy as np
import pytest

from quadlab import cli, stored
from quadlab.studies import readings as study

EPS = np.finfo(np.float64).eps
KAPPA = 1000.0


from test_stored import _fake  # noqa: E402  a StoredSpectra whose block l has the nodes given

# Four equal-weight nodes and d = 4 unsmoothed quantiles at (j − ½)/4: the draws are the sorted nodes themselves.
BIG = [-2.0, 1.0, 5.0, 10.0]
SMALL = [-1e-3, 1e-4, 2e-3, 3e-3]
ST = _fake([("big", BIG), ("small", SMALL)])


def spec(reading, **kw):
    return stored.sampled_spectrum(ST, d=4, kappa=KAPPA, reading=reading, smooth=False, **kw)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=64 * EPS * KAPPA, atol=0)


@pytest.mark.parametrize("reading", list(stored.READINGS))
def test_every_reading_is_positive_definite_with_kappa_exact(reading):
    s = spec(reading)
    assert s.lambda_min == 1.0 and s.lambda_max == KAPPA and s.kappa == KAPPA and s.sizes == (4, 4)
    assert all((b >= 1.0).all() for b in s.blocks)
    # and on random indefinite measures, smoothed, several sizes
    rng = np.random.default_rng(7)
    for trial in range(5):
        st = _fake([(f"b{l}", rng.standard_normal(12) * 10.0 ** rng.uniform(-4, 1)) for l in range(3)])
        r = stored.sampled_spectrum(st, d=[3, 7, 25], kappa=5000.0, reading=reading)
        assert r.lambda_min == 1.0 and r.lambda_max == 5000.0 and r.sizes == (3, 7, 25), trial


def test_abs_is_the_joint_affine_map_of_abs_values():
    s = spec("abs")
    m, M = 1e-4, 10.0
    close(s.blocks[0], 1 + (KAPPA - 1) * (np.array([1.0, 2.0, 5.0, 10.0]) - m) / (M - m))
    close(s.blocks[1], 1 + (KAPPA - 1) * (np.array([1e-4, 1e-3, 2e-3, 3e-3]) - m) / (M - m))
    # the small block reaches down to 1 and is squeezed: κ_l = its mapped top
    assert s.blocks[1][0] == 1.0 and s.block_kappas[1] < 1.3


def test_signed_collapses_the_small_block_where_zero_lands():
    s = spec("signed")
    close(s.blocks[0], 1 + (KAPPA - 1) * (np.array(BIG) + 2) / 12)
    zero = 1 + (KAPPA - 1) * 2 / 12
    close(s.blocks[1], 1 + (KAPPA - 1) * (np.array(SMALL) + 2) / 12)
    assert abs(s.blocks[1].min() - zero) < 1 and s.block_kappas[1] < 1.01 and s.blocks[1].min() > 100


def test_positive_puts_the_lower_edge_of_every_block_with_negative_mass_at_one():
    s = spec("positive")
    assert s.blocks[0][0] == 1.0 and s.blocks[1][0] == 1.0
    close(s.blocks[0], 1 + (KAPPA - 1) * np.array([0.0, 1.0, 5.0, 10.0]) / 10)
    close(s.block_kappas[0], KAPPA)


def test_top_draws_from_the_upper_mass_and_raises_the_lower_edge():
    # q = 1/2: levels 1/2 + (j − ½)/8 = 0.5625, 0.6875, 0.8125, 0.9375 → the 3rd and 4th sorted |θ|, twice each
    s = spec("top", q=0.5)
    raw_big, raw_small = np.array([5.0, 5.0, 10.0, 10.0]), np.array([2e-3, 2e-3, 3e-3, 3e-3])
    m, M = 2e-3, 10.0
    close(s.blocks[0], 1 + (KAPPA - 1) * (raw_big - m) / (M - m))
    close(s.blocks[1], 1 + (KAPPA - 1) * (raw_small - m) / (M - m))
    # the raw lower edge rose from the 1st sorted |θ| (1 and 1e-4) to F⁻¹(1 − q) and above; κ_l of the big block fell
    np.testing.assert_array_equal(stored.sample_block(np.abs(BIG), np.full(4, 0.25), 4, smooth=False, q=0.5), raw_big)
    assert s.block_kappas[0] < spec("abs").block_kappas[0]
    # q = 1 is "abs", to the bit; the default q is TOP_Q
    np.testing.assert_array_equal(np.concatenate(spec("top", q=1.0).blocks), np.concatenate(spec("abs").blocks))
    np.testing.assert_array_equal(np.concatenate(spec("top").blocks), np.concatenate(spec("top", q=stored.TOP_Q).blocks))


def test_sample_block_top_fraction_levels():
    x, w = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.1, 0.2, 0.3, 0.4])
    for q in (0.05, 0.3, 0.77):
        for smooth in (False, True):
            got = stored.sample_block(x, w, 9, q=q, smooth=smooth)
            # the same inverse distribution function, at the levels 1 − q + q·u
            C = np.cumsum(w)
            u = 1 - q + q * (np.arange(9) + 0.5) / 9
            want = np.interp(u, C - w / 2, x) if smooth else x[np.searchsorted(C, u, side="left")]
            np.testing.assert_array_equal(got, want)
            cut = x[np.searchsorted(C, 1 - q, side="left")]
            assert got.min() >= (cut if not smooth else np.interp(1 - q, C - w / 2, x))
    np.testing.assert_array_equal(stored.sample_block(x, w, 9, q=1.0), stored.sample_block(x, w, 9))
    for bad in (0.0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="q"):
            stored.sample_block(x, w, 4, q=bad)


def test_log_raises_every_ratio_to_one_power():
    s = spec("log")
    m, M = 1e-4, 10.0
    p = math.log(KAPPA) / math.log(M / m)
    close(s.blocks[0], (np.array([1.0, 2.0, 5.0, 10.0]) / m) ** p)
    close(s.blocks[1], (np.array([1e-4, 1e-3, 2e-3, 3e-3]) / m) ** p)
    close(s.block_kappas, [10.0**p, 30.0**p])  # κ_l = (the block's own max/min)^p
    close(s.blocks[0][0], (1.0 / m) ** p)  # lower edge (a_l/m)^p


def test_log_floors_values_the_float32_products_cannot_resolve():
    st = _fake([("z", [0.0, 1.0, 2.0, 4.0]), ("w", [-3.0, 0.5, 1.0, 8.0])])
    s = stored.sampled_spectrum(st, d=4, kappa=KAPPA, reading="log", smooth=False)
    floor = stored.LOG_FLOOR * 4.0
    p = math.log(KAPPA) / math.log(8.0 / floor)
    close(s.blocks[0], (np.array([floor, 1.0, 2.0, 4.0]) / floor) ** p)
    assert s.blocks[0][0] == 1.0
    with pytest.raises(ValueError, match="all zero"):
        stored.sampled_spectrum(_fake([("z", [0.0, 0.0]), ("w", BIG)]), d=2, reading="log")


def test_block_shift_aligns_every_lower_edge_at_one_and_keeps_spread_ratios():
    s = spec("block_shift")
    widest = 12.0
    close(s.blocks[0], 1 + (KAPPA - 1) * (np.array(BIG) + 2) / widest)
    close(s.blocks[1], 1 + (KAPPA - 1) * (np.array(SMALL) + 1e-3) / widest)
    assert s.blocks[0][0] == 1.0 and s.blocks[1][0] == 1.0
    close(s.block_kappas - 1, (KAPPA - 1) * np.array([12.0, 4e-3]) / widest)


def test_reading_arguments_are_checked():
    with pytest.raises(ValueError, match="reading must be one of"):
        spec("square")
    with pytest.raises(ValueError, match="q .* belongs to reading='top'"):
        spec("abs", q=0.5)
    with pytest.raises(ValueError, match="q"):
        spec("top", q=2.0)
    with pytest.raises(ValueError, match="kappa"):
        stored.sampled_spectrum(ST, d=4, kappa=0.5, reading="log")
    flat = _fake([("a", [2.0, 2.0]), ("b", [2.0, 2.0])])
    for reading in ("log", "block_shift", "abs"):
        with pytest.raises(ValueError, match="spread|no affine map"):
            stored.sampled_spectrum(flat, d=2, kappa=10.0, reading=reading)
        assert stored.sampled_spectrum(flat, d=2, kappa=1.0, reading=reading).lambda_max == 1.0


def test_transform_is_a_deprecated_alias_of_reading():
    for name in ("abs", "positive", "signed"):
        with pytest.warns(DeprecationWarning, match="reading="):
            old = stored.sampled_spectrum(ST, d=4, kappa=KAPPA, transform=name, smooth=False)
        np.testing.assert_array_equal(np.concatenate(old.blocks), np.concatenate(spec(name).blocks))
    with pytest.raises(ValueError, match="disagree"):
        stored.sampled_spectrum(ST, transform="abs", reading="log")
    with pytest.raises(ValueError, match="transform"):
        stored.sampled_spectrum(ST, transform="log")


def test_default_reading_is_named_and_documented():
    assert stored.DEFAULT_READING in stored.READINGS
    assert set(stored.READINGS) >= {"abs", "signed", "positive", "top", "log", "block_shift"}
    for name, text in stored.READINGS.items():
        assert "κ_l" in text and name in stored.__doc__


def test_verdict_rules():
    assert study.verdict(130.0, 2.0) == "like Case 3"
    assert study.verdict(0.0, 0.6) == "like Case 4"
    assert study.verdict(0.0, 2.0) == "mixed" and study.verdict(1.2, 0.5) == "mixed"
    assert study.ratio(None, 10) is None and study.ratio(100, None) == 0.0 and study.ratio(100, 50) == 2.0
    assert study.gd_bound(5000.0, 1e-6) == 34539


# -- the study ---------------------------------------------------------------------------------------------------
shipped = pytest.mark.skipif(not (stored.data_path("gpt2").is_file() and stored.data_path("resnet18").is_file()),
                             reason="the shipped spectra are missing (rebuild with `quadlab extract all`)")


@shipped
def test_readings_quick_json(tmp_path):
    out = tmp_path / "r.json"
    assert cli.main(["readings", "--quick", "--json", str(out), "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "readings.png").is_file() and (tmp_path / "readings.pdf").is_file()
    res = json.loads(out.read_text())
    assert res["default"] == stored.DEFAULT_READING and res["settings"]["quick"] and res["settings"]["seeds"] == 2
    recs = res["readings"]
    assert {(r["model"], r["name"]) for r in recs} == {(m, n) for m in ("gpt2", "resnet18") for n in stored.READINGS}
    keys = {"gd", "heavy_ball", "adam_theory", "adam_beta1_0_beta2_0.99", "adam_beta1_0_beta2_0.999", "adam"}
    for r in recs + res["references"]:
        assert set(r["steps"]) == keys and set(r["optimizers"]) == keys
        assert r["kappa"] == 5000.0 and len(r["kappa_l"]) == len(r["lower_edge"]) == len(r["eigenvalues"])
        assert min(min(e) for e in r["eigenvalues"]) == 1.0 and max(max(e) for e in r["eigenvalues"]) == 5000.0
        rt = r["r_tilde"]
        assert rt["n_starts"] >= 200 and 1 <= rt["q25"] <= rt["median"] <= rt["q75"] and len(rt["runs_per_seed"]) == 2
        for o in r["optimizers"].values():
            assert o["seeds"] == 2 and len(o["steps_per_seed"]) == 2
            assert o["reached"] == sum(s is not None for s in o["steps_per_seed"])
            assert (o["median_steps"] is None) == (o["reached"] < 2)  # median of 2 with a not-reached seed = ∞
        assert r["verdict"] in ("like Case 3", "like Case 4", "mixed")
    by = {(r["model"], r["name"]): r for r in recs}
    for (model, name), r in by.items():
        # the record's spectrum is the reading's, to the bit
        s = stored.sampled_spectrum(model, study.MODELS[model][2], 25, 5000.0, reading=name,
                                    q=r["q"] if name == "top" else None)
        assert r["eigenvalues"] == [sorted(b.tolist()) for b in s.blocks]
    # documented effects on the shipped GPT2 blocks: signed collapses the small-scale query block far above 1;
    # block_shift puts every lower edge at 1; log gives κ_l = (own max/min)^p
    sg = by[("gpt2", "signed")]
    q_block = sg["blocks"].index("layers.0.attn.query.weight")
    assert sg["kappa_l"][q_block] < 1.01 and sg["lower_edge"][q_block] > 100
    assert all(e == 1.0 for r in recs if r["name"] == "block_shift" for e in r["lower_edge"])
    assert max(by[("gpt2", "log")]["kappa_l"]) < max(by[("gpt2", "abs")]["kappa_l"])
    # the heterogeneous reference looks like Case 3 even with --quick's coarse tuning
    c3 = next(r for r in res["references"] if r["model"] == "case3")
    assert c3["verdict"] == "like Case 3" and c3["gd_over_adam_theory"] > 30
    ev = res["evidence"]
    assert set(ev["criteria"]) == {r["label"] for r in recs} and ev["default"] == stored.DEFAULT_READING
    assert all(c["strong_convexity"] for c in ev["criteria"].values())
    assert not ev["criteria"][f"top(q={stored.TOP_Q:g})"]["whole_measure"]
    # a rerun reuses every point from the checkpoint
    out2 = tmp_path / "r2.json"
    assert study.main(["--quick", "--json", str(out2), "--out", str(tmp_path), "--quiet"]) == 0
    res2 = json.loads(out2.read_text())
    assert res2["computed_points"] == 0 and res2["readings"] == recs


def test_readings_rejects_bad_options(tmp_path):
    for argv in (["--readings", "abs,nope"], ["--top-q", "0"], ["--top-q", "x"], ["--kappa", "50"]):
        with pytest.raises(SystemExit):
            study.main(argv + ["--quick", "--out", str(tmp_path), "--quiet"])
