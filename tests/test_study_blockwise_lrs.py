"""The blockwise-learning-rate study (quadlab.studies.blockwise_lrs) in --quick mode."""

import contextlib
import io
import json
import math

import pytest

from quadlab.studies import blockwise_lrs


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("blockwise_lrs")
    js = out / "x.json"
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        rc = blockwise_lrs.main(["--quick", "--quiet", "--out", str(out), "--json", str(js)])
    assert rc == 0
    assert so.getvalue() == "" and se.getvalue() == ""  # --quiet: no table, no progress bars
    return out, json.loads(js.read_text())


def test_outputs(quick):
    out, res = quick
    assert (out / "blockwise_lrs.png").stat().st_size > 0 and (out / "blockwise_lrs.pdf").stat().st_size > 0
    cases = {r["case"]: r for r in res["cases"]}
    assert set(cases) == {"het", "scaled"}
    for r in cases.values():
        assert set(r["optimizers"]) == set(blockwise_lrs.BASE_METHODS)
        assert r["kappa"] == pytest.approx(5000.0)
    sc = cases["scaled"]
    assert sc["block_sizes"] == [25] * 4
    assert sc["block_kappas"] == pytest.approx([10.0] * 4)


def test_blockwise_oracle_meets_its_bound_and_beats_gd(quick):
    _, res = quick
    tol = res["tol"]
    for r in res["cases"]:
        # I − PH commutes with H, so ‖∇f_k‖ ≤ ρ^k ‖∇f_0‖ with ρ = max_l (κ_l − 1)/(κ_l + 1)
        rho = max((k - 1) / (k + 1) for k in r["block_kappas"])
        bound = math.log(1 / tol) / math.log(1 / rho)
        assert r["predicted"]["blockwise_gd_bound"] == pytest.approx(bound, rel=1e-12)
        bw = r["optimizers"]["blockwise_gd"]["steps_to_tol_per_seed"]
        assert all(s is not None and s <= math.ceil(bound) for s in bw)
        gd = r["optimizers"]["gd"]["steps_to_tol"]
        assert gd is not None and gd > 50 * max(bw)  # far fewer steps than GD: about κ/max κ_l fewer
        # Adam's theory form beats GD on both heterogeneous cases, so its share is defined
        assert r["optimizers"]["adam_theory"]["steps_to_tol"] < gd


def test_shares_follow_their_definition(quick):
    _, res = quick
    for r in res["cases"]:
        o, sh = r["optimizers"], r["advantage_share"]
        # without --momentum neither heavy ball nor Adam (β1 = 0.9) runs, so exactly the two β1 = 0 references
        # have shares, each for all of its methods: nothing may be skipped silently
        assert set(sh) == {"adam_theory", "adam_beta1_0"}
        for ref in sh:
            base, adam_key, methods = blockwise_lrs.SHARES[ref]
            assert set(sh[ref]) == set(methods)
            for m in methods:
                sb, sm, sa = (o[k]["steps_to_tol"] for k in (base, m, adam_key))
                if None in (sb, sm, sa):
                    assert sh[ref][m] is None
                else:
                    # the share is the fraction of the log-step advantage: S_m = S_base^(1−s)·S_ref^s
                    assert sb > sa and sb ** (1 - sh[ref][m]) * sa ** sh[ref][m] == pytest.approx(sm, rel=1e-12)
        # one oracle step per block recovers all of the theory form's advantage and more
        assert sh["adam_theory"]["blockwise_gd"] > 1.0
        assert sh["adam_theory"]["adam_mini"] > 0.8


def test_share_function():
    assert blockwise_lrs.share(1000, 10, 10) == pytest.approx(1.0)
    assert blockwise_lrs.share(1000, 1000, 10) == pytest.approx(0.0)
    assert blockwise_lrs.share(1000, 1, 10) == pytest.approx(1.5)
    assert blockwise_lrs.share(1000, 10, None) is None
    assert blockwise_lrs.share(10, 5, 20) is None  # the reference is not faster than the baseline


def test_bad_options(tmp_path):
    with pytest.raises(SystemExit):
        blockwise_lrs.main(["--quiet", "--out", str(tmp_path), "--cases", "het,nope"])
    with pytest.raises(SystemExit):
        blockwise_lrs.main(["--quiet", "--out", str(tmp_path), "--kappa", "50"])
