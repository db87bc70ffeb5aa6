"""The explanations study (--quick): the designed instances, each explanation's prediction against known truth,
the rank table, the resume from the checkpoint, and the time budget of --quick."""

import json
import time

import numpy as np
import pytest

from quadlab import explain, theory
from quadlab.studies import explanations as ex


def test_design_fixes_the_spectrum_and_moves_the_norm11():
    het, hom = ex.design_spectrum("het"), ex.design_spectrum("hom")
    np.testing.assert_array_equal(np.sort(het.eigenvalues), np.sort(hom.eigenvalues))
    assert het.block_kappas.max() == 4.0 and hom.block_kappas.max() > 100
    gains = {}
    c = None
    for arr in ex.ARRANGEMENTS:
        p, V = ex.build("het", arr, 0)
        # V holds H's eigenvectors in the design's order, and every start has the same eigen-coordinates
        H = np.asarray(p.dense())
        np.testing.assert_allclose(H @ V, V * het.eigenvalues, rtol=0, atol=1e-11 * het.lambda_max)
        w = ex.start("het", V, 3)
        c = V.T @ w if c is None else c
        np.testing.assert_allclose(V.T @ w, c, rtol=0, atol=1e-13)
        # the mild instances are built from dense blocks: their eigenvalues are the design's to rounding
        np.testing.assert_allclose(np.sort(p.eigenvalues), np.sort(het.eigenvalues), rtol=1e-12)
        gains[arr] = explain.linf_geometry(p, partition=het.sizes).rotation_gain
        # the theorem's blocks: the nominal four while the block structure stands, all of H once it is lost
        assert len(theory.theory_blocks(p)) == (4 if arr in ("none", "block_mild", "block") else 1)
    assert gains["none"] == 1.0
    assert gains["block_mild"] < gains["block"] and gains["global_mild"] < gains["global"]
    assert max(gains["block_mild"], gains["global_mild"]) < 1.5 < min(gains["block"], gains["global"])
    # global_mild is one dense block: the theorem sees one block, the nominal partition is passed explicitly
    assert ex.build("het", "global_mild", 0)[0].block_sizes == (20,)
    # het and hom share the eigenvalues, and the start puts draw j on the j-th smallest of them in both
    Vh = ex.build("hom", "none", 0)[1]
    lam_h, lam_o = het.eigenvalues, hom.eigenvalues
    ch, co = ex.start("het", np.eye(20), 3), ex.start("hom", Vh, 3)
    np.testing.assert_array_equal(ch[np.argsort(lam_h)], co[np.argsort(lam_o)])
    # a mild rotation turns by at most the angle: its eigenvalues are e^{±iθ_j} with |θ_j| ≤ θ
    Q = ex.mild_rotation(6, 0.05, np.random.default_rng(1))
    np.testing.assert_allclose(Q @ Q.T, np.eye(6), atol=1e-14)
    assert np.abs(np.angle(np.linalg.eigvals(Q))).max() <= 0.05 * (1 + 1e-12)


@pytest.mark.slow
def test_quick_study_predicts_records_and_resumes(tmp_path, capsys):
    out, js = tmp_path / "out", tmp_path / "x.json"
    t0 = time.process_time()
    assert ex.main(["--quick", "--quiet", "--out", str(out), "--json", str(js)]) == 0
    assert time.process_time() - t0 < 30  # the --quick budget, in CPU seconds (robust to a loaded machine)
    assert capsys.readouterr().out == ""
    for ext in ("png", "pdf"):
        assert (out / f"explanations.{ext}").stat().st_size > 0
    data = json.loads(js.read_text())
    pts = data["points"]
    assert len(pts) == 10 and data["computed_points"] == 10
    n, lam_max = 20, 4000.0
    trace = float(ex.design_spectrum("het").eigenvalues.sum())
    for p in pts:
        pred, q = p["predicted"], p["quantities"]
        # ℓ∞: on the diagonal arrangement ‖H‖_{1,1} = trace, so the prediction is n·λ_max/trace exactly
        if p["arrangement"] == "none":
            assert pred["linf"] == pytest.approx(n * lam_max / trace, rel=1e-14)
            assert q["rotation_gain"] == 1.0
        # the theorem sees one block wherever the block structure is lost, and then predicts a loss
        lost = p["arrangement"] in ("global", "global_mild")
        assert q["theorem_blocks"] == (1 if lost else 4)
        if lost:
            assert pred["heterogeneity"] < 1
        # GD always reaches the tolerance (its cap is three times its worst-case count at the best step), and
        # from starts that agree in H's eigenbasis it takes the same steps on every instance
        assert p["observed"]["gd"]["steps"] == pts[0]["observed"]["gd"]["steps"] is not None
        assert set(p["noisy"]) == {"256"}
    # the NQM sees only eigenvalues: one prediction for every arrangement of the one spectrum
    assert len({p["predicted"]["noise"] for p in pts}) == 1
    assert len({p["noisy"]["256"]["predicted"]["predicted_speedup"] for p in pts}) == 1
    names = {f"{p['spectrum']}/{p['arrangement']}" for p in pts}
    for key in ex.EXPLANATIONS:
        s = data["summary"][key]
        assert s["spearman"] is None or -1 <= s["spearman"] <= 1
        for f in s["failures"]:
            assert f["instance"].rsplit("/B=", 1)[0].removesuffix("/exact") in names

    # the NQM's critical batch sizes: each the first batch of the grid within 1 + δ of the exact-gradient steps
    for c in data["summary"]["critical_batch"].values():
        ok = [b for b, k in zip(c["batches"], c["steps"]) if 0 <= k <= (1 + c["delta"]) * c["limit"]]
        assert c["critical"] == (ok[0] if ok else None)

    ex.print_table(pts, data["summary"], data["settings"]["tol"])  # the table prints from the records alone
    table = capsys.readouterr().out
    assert "Spearman" in table and "het/global_mild" in table and "fails:" in table

    # a rerun with the same settings reuses every instance
    t0 = time.process_time()
    assert ex.main(["--quick", "--quiet", "--out", str(out)]) == 0
    again = json.loads((out / "explanations.json").read_text())
    assert again["reused_points"] == 10 and again["computed_points"] == 0
    assert again["points"] == pts
    assert time.process_time() - t0 < 10


def test_bad_arguments_are_one_line(tmp_path, capsys):
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(SystemExit) as exc:
        ex.main(["--quick", "--out", str(afile)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("quadlab explanations: error:") and "\n" not in err
    with pytest.raises(SystemExit):
        ex.main(["--tol", "2"])
    with pytest.raises(SystemExit):
        ex.main(["--quick", "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path)])
    assert "--checkpoint" in capsys.readouterr().err
