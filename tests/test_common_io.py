"""quadlab.studies.common: output checks, atomic fsynced writes, results before figures, settings-keyed
append-only checkpoints, --quick's own output folder, and two runs writing into one folder at once."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

import quadlab
from quadlab.studies import common


def test_check_output_dir_and_file(tmp_path):
    made = common.check_output_dir(tmp_path / "a" / "b")
    assert made.is_dir() and list(made.iterdir()) == []  # the probe file is gone
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        common.check_output_dir(afile)
    with pytest.raises(ValueError, match="is a file, so no folder can be made"):
        common.check_output_dir(afile / "sub" / "deeper")
    assert common.check_output_file(tmp_path / "new" / "r.json", "--json") == tmp_path / "new" / "r.json"
    assert not (tmp_path / "new" / "r.json").exists()
    with pytest.raises(ValueError, match="--json .* is a folder"):
        common.check_output_file(tmp_path, "--json")
    with pytest.raises(ValueError, match="--json"):
        common.check_output_file(afile / "r.json", "--json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="not writable"):
            common.check_output_dir(ro)
    finally:
        ro.chmod(0o700)


def test_atomic_writes_fsync_and_leave_no_temporary_files(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    common.write_json_atomic({"a": 1}, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert len(synced) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    with pytest.raises(ValueError):
        common.write_json_atomic({"a": float("nan")}, tmp_path / "y.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_save_figure_uses_unique_temporary_files(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    seen = []
    real = common.tempfile.mkstemp
    monkeypatch.setattr(common.tempfile, "mkstemp", lambda **kw: seen.append(real(**kw)) or seen[-1])
    paths = common.save_figure(fig, tmp_path / "f")
    plt.close(fig)
    assert [p.name for p in paths] == ["f.png", "f.pdf"] and all(p.stat().st_size > 0 for p in paths)
    assert len({name for _, name in seen}) == 2  # one fresh name per file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def _args(tmp_path, **kw):
    return SimpleNamespace(out=tmp_path, json=kw.get("json"), quiet=True, study="rotation")


def test_finish_writes_results_before_the_figure_and_survives_its_failure(tmp_path, capsys):
    def broken(path):
        raise RuntimeError("no fonts")

    rc = common.finish({"x": 1}, _args(tmp_path, json=tmp_path / "r.json"), "rotation", figure=broken)
    assert rc == 1
    assert json.loads((tmp_path / "rotation.json").read_text()) == {"x": 1}
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": 1}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quadlab rotation: error: the figure failed (RuntimeError: no fonts)")


def test_quick_runs_write_to_their_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ap = common.study_parser("rotation", "Doc.", "quick")
    for argv, where in (([], "out/rotation"), (["--quick"], "out/rotation-quick"), (["--out", "x"], "x")):
        args = ap.parse_args(argv)
        common.check_common(ap, args)
        assert str(args.out) == where and args.out.is_dir()


# -- checkpoints ---------------------------------------------------------------------------------------------
def test_checkpoint_appends_one_line_per_point_and_resumes(tmp_path):
    ck = common.Checkpoint.in_folder(tmp_path, "sweep", {"seeds": 2})
    assert ck.path.name.startswith("sweep.") and ck.path.name.endswith(".checkpoint.jsonl")
    ck.put(ck.key(k=1), {"v": 1})
    ck.put(ck.key(k=2), {"v": 2})
    assert ck.compute(ck.key(k=2), lambda: pytest.fail("recomputed")) == {"v": 2}
    lines = ck.path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["settings"] == {"seeds": 2, "quadlab": quadlab.__version__}
    again = common.Checkpoint.in_folder(tmp_path, "sweep", {"seeds": 2})
    assert again.points == ck.points


def test_checkpoint_of_other_settings_never_destroys_this_one(tmp_path):
    a = common.Checkpoint.in_folder(tmp_path, "sweep", {"seeds": 5})
    a.put("p", 1)
    kept = a.path.read_bytes()
    b = common.Checkpoint.in_folder(tmp_path, "sweep", {"seeds": 1})  # e.g. a --quick run
    assert b.path != a.path and len(b) == 0
    b.put("p", 2)
    assert a.path.read_bytes() == kept
    assert common.Checkpoint.in_folder(tmp_path, "sweep", {"seeds": 5}).get("p") == 1
    # an explicit path written under other settings: refused, naming --fresh, and left alone
    with pytest.raises(ValueError, match="other settings; pass --fresh"):
        common.Checkpoint(a.path, {"seeds": 1})
    assert a.path.read_bytes() == kept
    fresh = common.Checkpoint(a.path, {"seeds": 1}, fresh=True)
    assert len(fresh) == 0


def test_checkpoint_skips_a_torn_last_line_and_appends_after_it(tmp_path):
    ck = common.Checkpoint(tmp_path / "c.jsonl", {"s": 1})
    ck.put("a", 1)
    with open(ck.path, "a") as fh:
        fh.write('{"key": "b", "val')  # a crash in the middle of an append
    ck2 = common.Checkpoint(tmp_path / "c.jsonl", {"s": 1})
    assert ck2.points == {"a": 1}
    ck2.put("c", 3)
    assert common.Checkpoint(tmp_path / "c.jsonl", {"s": 1}).points == {"a": 1, "c": 3}


def test_checkpoint_imports_the_old_single_file_format(tmp_path):
    import hashlib

    settings = {"seeds": 3}
    # a checkpoint's settings carry quadlab's version (points of another version are never reused)
    fp = hashlib.sha256(json.dumps({**settings, "quadlab": quadlab.__version__}, sort_keys=True).encode()).hexdigest()
    (tmp_path / "sweep.checkpoint.json").write_text(json.dumps({"fingerprint": fp, "points": {"x": 7}}))
    assert common.Checkpoint.in_folder(tmp_path, "sweep", settings).get("x") == 7
    assert len(common.Checkpoint.in_folder(tmp_path, "sweep", {"seeds": 4})) == 0


def test_two_writers_with_the_same_settings_share_one_file(tmp_path):
    a = common.Checkpoint(tmp_path / "c.jsonl", {"s": 1})
    b = common.Checkpoint(tmp_path / "c.jsonl", {"s": 1})
    a.put("x", 1)
    b.put("y", 2)
    assert common.Checkpoint(tmp_path / "c.jsonl", {"s": 1}).points == {"x": 1, "y": 2}


def test_two_concurrent_runs_into_one_folder_both_succeed(tmp_path):
    """Two `quadlab r-distribution` runs started together into one --out (the issue's crash: a shared
    *.tmp.pdf name) both finish and both write their JSON."""
    procs = [subprocess.Popen([sys.executable, "-m", "quadlab.cli", "r-distribution", "--starts", "3000",
                               "--seed", str(k), "--quiet", "--out", str(tmp_path / "out"), "--json",
                               str(tmp_path / f"r{k}.json")], stderr=subprocess.PIPE, text=True)
             for k in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for k in range(2):
        assert json.loads((tmp_path / f"r{k}.json").read_text())["seed"] == k
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["r_distribution.json", "r_histogram.pdf", "r_histogram.png"]


def test_a_crash_after_a_finished_case_keeps_it(tmp_path, monkeypatch):
    """case1_4 without a checkpoint: the cases finished before a crash are on disk, marked partial."""
    from quadlab.studies import case1_4

    real = case1_4.run_case

    def run_case(case, spec, args):
        if case == 4:
            raise MemoryError("killed")
        return real(case, spec, args)

    monkeypatch.setattr(case1_4, "run_case", run_case)
    with pytest.raises(MemoryError):
        case1_4.main(["--quick", "--quiet", "--seeds", "1", "--cases", "3,4", "--out", str(tmp_path),
                      "--json", str(tmp_path / "r.json")])
    for path in (tmp_path / "case1_4.json", tmp_path / "r.json"):
        rec = json.loads(path.read_text())
        assert rec["partial"] is True and [c["case"] for c in rec["cases"]] == [3]


def test_checkpoint_recovers_from_a_torn_header_and_fresh_skips_the_old_format(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"fingerprint": "ab')  # a crash while the first line was written
    ck = common.Checkpoint(path, {"s": 1})
    assert len(ck) == 0
    ck.put("a", 1)
    assert common.Checkpoint(path, {"s": 1}).points == {"a": 1}
    import hashlib

    fp = hashlib.sha256(json.dumps({"s": 1, "quadlab": quadlab.__version__}, sort_keys=True).encode()).hexdigest()
    (tmp_path / "sw.checkpoint.json").write_text(json.dumps({"fingerprint": fp, "points": {"x": 7}}))
    assert len(common.Checkpoint.in_folder(tmp_path, "sw", {"s": 1}, fresh=True)) == 0
