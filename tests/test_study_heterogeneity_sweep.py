"""The heterogeneity sweep (--quick): known truths of scaled block copies, and resumption from its checkpoint."""

import json
import math

import pytest

from quadlab.studies import heterogeneity_sweep as hs


class Interrupt(Exception):
    pass


@pytest.fixture
def counted(monkeypatch):
    """Count (and optionally interrupt) the per-point computations main() asks for."""
    calls = []
    real = hs.compute_point
    state = {"fail_after": None}

    def compute_point(s, args):
        if state["fail_after"] is not None and len(calls) >= state["fail_after"]:
            raise Interrupt
        calls.append(s)
        return real(s, args)

    monkeypatch.setattr(hs, "compute_point", compute_point)
    return calls, state


def _argv(tmp_path, *extra):
    return ["--quick", "--quiet", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "x.json"), *extra]


def _read(tmp_path):
    return json.loads((tmp_path / "x.json").read_text())


def test_quick_sweep_truths_and_resumption(tmp_path, counted, capsys):
    calls, state = counted
    n = len(hs.S_QUICK)

    # an interrupted run keeps the points it finished
    state["fail_after"] = 2
    with pytest.raises(Interrupt):
        hs.main(_argv(tmp_path))
    assert len(calls) == 2
    state["fail_after"] = None

    # the rerun with the same settings computes only the rest
    assert hs.main(_argv(tmp_path)) == 0
    assert len(calls) == n
    assert sorted(calls) == sorted(hs.S_QUICK)
    data = _read(tmp_path)
    assert (data["computed_points"], data["reused_points"]) == (n - 2, 2)
    assert data["checkpoint"].endswith(".checkpoint.jsonl") and len(list((tmp_path / "out").glob(
        "heterogeneity_sweep.*.checkpoint.jsonl"))) == 1
    assert (tmp_path / "out" / "heterogeneity_sweep.json").is_file()  # the results land next to the figure
    for ext in ("png", "pdf"):
        assert (tmp_path / "out" / f"heterogeneity_sweep.{ext}").stat().st_size > 0
    assert capsys.readouterr().out == ""  # --quiet prints nothing

    pts = data["points"]
    assert [p["s"] for p in pts] == pytest.approx(list(hs.S_QUICK))
    s1 = pts[0]
    assert s1["s"] == 1.0
    # s = 1: two identical blocks, so their densities coincide and κ = κ_l
    assert abs(s1["js0"]) < 1e-12
    assert s1["kappa"] == pytest.approx(hs.BASE_KAPPA)
    # on identical blocks the diagonal preconditioner |∇f(w0)|⁻¹ of a random start only worsens the
    # conditioning (κ_M > κ), so the Adam theory form needs more steps than GD
    assert s1["kappa_M_median"] > s1["kappa"]
    assert s1["gd_over_adam_theory"] < 1.0

    ratios = [p["gd_over_adam_theory"] for p in pts]
    assert all(b > a for a, b in zip(ratios, ratios[1:])), ratios  # grows with s
    assert ratios[-1] > 1.0 and ratios[-1] / ratios[0] > 50
    assert all(p["gd_over_adam_thm"] is not None for p in pts)

    # D⁻¹H is the same for every s (block l's gradient scales like its eigenvalues), so r̃ and κ_M are too,
    # and the Adam theory form's step count barely moves while GD's grows with κ = s·κ_l
    r = [p["r_tilde_median"] for p in pts]
    kM = [p["kappa_M_median"] for p in pts]
    assert max(r) == pytest.approx(min(r), rel=1e-9)
    assert max(kM) == pytest.approx(min(kM), rel=1e-6)
    adam = [p["optimizers"]["adam_theory"]["steps_to_tol"] for p in pts]
    gd = [p["optimizers"]["gd"]["steps_to_tol"] for p in pts]
    assert max(adam) / min(adam) < 1.5
    assert gd[-1] / gd[0] > 100
    for p in pts:  # GD at η* is guaranteed to reach tol within the cap, so the tuned GD always does
        assert p["optimizers"]["gd"]["status"] == "converged"

    # JS⁰ on the log axis: block 1 is block 0 shifted by log10 s; a 1-decade box shifted by δ decades has
    # JS = ln2·min(1, δ), smoothed at the corners; bounded by ln 2 and equal to it once the blocks separate
    js = [p["js0"] for p in pts]
    assert all(b >= a - 1e-12 for a, b in zip(js, js[1:]))
    assert max(js) <= math.log(2) + 1e-12
    mid = next(p for p in pts if p["s"] == pytest.approx(10**0.5))
    assert mid["js0"] == pytest.approx(math.log(2) / 2, abs=0.06)
    for p in pts:
        if p["s"] >= 100:
            assert p["js0"] == pytest.approx(math.log(2), abs=1e-3)

    # a second run with the same settings recomputes nothing and reports the same numbers
    assert hs.main(_argv(tmp_path)) == 0
    assert len(calls) == n
    again = _read(tmp_path)
    assert (again["computed_points"], again["reused_points"]) == (0, n)
    assert again["points"] == pts

    # other settings (one seed) start afresh
    assert hs.main(_argv(tmp_path, "--seeds", "1")) == 0
    assert len(calls) == 2 * n
    assert _read(tmp_path)["computed_points"] == n

    hs.print_table(pts)  # the table prints from the stored records alone
    table = capsys.readouterr().out
    assert "GD/Adam" in table and len(table.splitlines()) >= n + 4
