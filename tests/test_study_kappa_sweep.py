"""The κ-sweep study (quadlab.studies.kappa_sweep) in --quick mode, checked against what theory fixes."""

import json
import math
from pathlib import Path

import pytest

import quadlab
from quadlab import spectra, theory
from quadlab.studies import kappa_sweep


def _run(out, *extra):
    js = out / "x.json"
    assert kappa_sweep.main(["--quick", "--quiet", "--out", str(out), "--json", str(js), *extra]) == 0
    return json.loads(js.read_text())


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("kappa_sweep")
    return out, _run(out)


def test_outputs_and_quiet(quick, capsys):
    out, res = quick
    assert (out / "kappa_sweep.png").stat().st_size > 0 and (out / "kappa_sweep.pdf").stat().st_size > 0
    assert set(res["cases"]) == {"het", "hom"}
    assert len(res["kappas"]) >= 3 and res["kappas"][0] > 103
    assert res["computed_points"] == 2 * len(res["kappas"]) and res["reused_points"] == 0
    # a resumed run with --quiet prints nothing at all
    _run(out)
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""


def test_gd_best_step_matches_theory(quick):
    _, res = quick
    tol = res["settings"]["tol"]
    for case, recs in res["cases"].items():
        for r in recs:
            # the start-free count from theory alone, on a freshly built problem
            prob = quadlab.BlockQuadratic(kappa_sweep.CASES[case][1](r["kappa"]), rotation="none")
            bound = theory.iterations_to(theory.gd_rates(prob).best_rate, tol**2)
            assert r["predicted"]["gd_best_bound"] == pytest.approx(bound, rel=1e-12)
            assert bound == pytest.approx(math.log(1 / tol) * r["kappa"] / 2, rel=0.01)
            obs = r["methods"]["gd_best"]["steps_to_tol_per_seed"]
            for o, p in zip(obs, r["predicted"]["gd_best_per_seed"], strict=True):
                assert o is not None and o <= math.ceil(bound)  # ‖∇f_k‖ ≤ ρ^k ‖∇f_0‖ for every start
                # only the two extreme components are left: the start-corrected count is exact to a step
                # (on "hom" the next-slowest components carry more weight, so allow 0.1 % there)
                assert abs(o - math.ceil(p)) <= (2 if case == "het" else 2 + 1e-3 * p)


def test_slopes(quick):
    _, res = quick
    s = res["slopes"]["steps_vs_kappa"]
    for case in ("het", "hom"):
        assert s[case]["gd_best"] == pytest.approx(1.0, abs=0.05)
        assert res["slopes"]["theory"][f"gd_best_bound_vs_kappa_{case}"] == pytest.approx(1.0, abs=0.02)
        assert 0.5 < s[case]["gd"] <= 1.02  # tuned GD: below 1 under the gradient criterion (see the docstring)
    # on the heterogeneous case r̃·max κ_l does not grow with κ, and neither do Adam's steps
    assert abs(s["het"]["adam_theory_thm"]) < 0.15
    het = res["cases"]["het"]
    assert all(r["max_block_kappa"] == pytest.approx(3.0) for r in het)
    last = het[-1]["methods"]
    assert last["gd"]["steps_to_tol"] > 50 * last["adam_theory"]["steps_to_tol"]
    # homogeneous: max κ_l = κ − 2, and Adam's theory form is slower than tuned GD (or misses the cap)
    for r in res["cases"]["hom"]:
        assert r["max_block_kappa"] == pytest.approx(r["kappa"] - 2)
        a, g = r["methods"]["adam_theory"]["steps_to_tol"], r["methods"]["gd"]["steps_to_tol"]
        assert a is None or a > g


def test_theorem_constant_and_step(quick):
    _, res = quick
    tol = res["settings"]["tol"]
    r = res["cases"]["het"][0]
    spec = spectra.simple_heterogeneous(r["kappa"])
    for s, x in zip(r["seeds"], r["r_tilde_max_block_kappa_per_seed"], strict=True):
        prob = quadlab.BlockQuadratic(spec, rotation="block", seed=s)
        w0 = quadlab.starts(prob, [s])[0]
        c = theory.adam_constants(prob, w0)
        assert x == pytest.approx(float(c.r_tilde) * 3.0, rel=1e-12)
        assert r["methods"]["adam_theory_thm"]["lr_per_seed"][s] == pytest.approx(float(c.eta), rel=1e-12)
    # the theorem's line: ln(1/tol)/(−ln(1 − 1/x)) ≈ ln(1/tol)·x
    assert kappa_sweep.theorem_steps(1e4, tol) == pytest.approx(math.log(1 / tol) * 1e4, rel=1e-3)


def test_resume_reuses_finished_points_and_new_settings_recompute(quick, tmp_path, capsys):
    out, res = quick
    n = 2 * len(res["kappas"])
    ckp = Path(res["checkpoint"])
    assert ckp.parent == out and ckp.name.startswith("kappa_sweep.") and ckp.name.endswith(".checkpoint.jsonl")
    header, *recs = [json.loads(line) for line in ckp.read_text().splitlines()]
    assert header["settings"]["seeds"] == 2 and len(recs) == n
    keys = [r["key"] for r in recs]
    # an interrupted sweep: one point never finished; mark a finished one to see that it is reused
    gone = json.loads(keys[-1])
    recs[0]["value"]["methods"]["gd_best"]["steps_to_tol"] = -12345
    mine = tmp_path / ckp.name
    mine.write_text("".join(json.dumps(x) + "\n" for x in [header, *recs[:-1]]))
    again = _run(tmp_path)
    assert again["reused_points"] == n - 1 and again["computed_points"] == 1
    first = json.loads(keys[0])
    assert again["cases"][first["case"]][0]["methods"]["gd_best"]["steps_to_tol"] == -12345
    # the recomputed point equals the original run's (the study is deterministic)
    assert again["cases"][gone["case"]][-1] == res["cases"][gone["case"]][-1]
    # the point was appended as one line, not by rewriting the file
    assert len(mine.read_text().splitlines()) == n + 1
    kept = mine.read_bytes()
    # another setting (here the number of seeds) gets its own file and leaves this one untouched
    other = _run(tmp_path, "--cases", "het", "--seeds", "1", "--n-kappa", "2")
    assert other["reused_points"] == 0 and other["computed_points"] == 2
    assert other["checkpoint"] != again["checkpoint"] and mine.read_bytes() == kept
    assert other["cases"]["het"][0]["methods"]["gd_best"]["steps_to_tol"] != -12345
    assert len(other["cases"]["het"][0]["seeds"]) == 1
    # an explicit --checkpoint written under other settings is refused, naming --fresh, and kept
    with pytest.raises(SystemExit) as exc:
        kappa_sweep.main(["--quick", "--quiet", "--out", str(tmp_path), "--seeds", "1", "--checkpoint", str(mine)])
    assert exc.value.code == 2 and "--fresh" in capsys.readouterr().err
    assert mine.read_bytes() == kept


def test_bad_options(tmp_path):
    with pytest.raises(SystemExit):
        kappa_sweep.main(["--quiet", "--out", str(tmp_path), "--kappa-min", "50"])
    with pytest.raises(SystemExit):
        kappa_sweep.main(["--quiet", "--out", str(tmp_path), "--cases", "het,nope"])
