"""Sweeps: task keys, the executor and its records (quadlab.dist), the TOML spec (quadlab.sweep), tidy rows
(quadlab.results, Result.to_frame) and the `quadlab sweep` command.

On dask (skipped cleanly without the dist extra): a LocalCluster(processes=True, n_workers=2,
threads_per_worker=1) gives records bit-identical to the serial ones; a worker killed mid-sweep still yields
every record; a sweep whose client is killed resumes with no duplicate and no missing record; a real
`dask scheduler` with two `dask worker` processes over tcp runs `quadlab kappa-sweep --quick` to the serial
JSON.  Every record is compared whole, except a sweep row's "seconds" (wall time, the one field that differs
between two runs of one spec)."""

import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import quadlab
from quadlab import cli, optim, results, spectra, sweep
from quadlab.dist import Executor, check_scheduler, task_key
from quadlab.studies.common import Checkpoint

HAVE_DASK = all(importlib.util.find_spec(m) is not None for m in ("dask", "distributed", "threadpoolctl"))
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason='needs the dist extra (pip install "quadlab[dist]")')
ROOT = Path(__file__).resolve().parents[1]

# 8 closed-form tasks, 12 runs each: long enough to be killed mid-sweep, short enough for the suite
SPEC = {"steps": 6000, "tol": 1e-6, "seeds": 2,
        "problem": [{"case": ["simple_heterogeneous", "simple_homogeneous"], "kappa": [300.0, 600.0, 1200.0, 2400.0]}],
        "optimizer": [{"name": "heavy_ball", "lr": [1e-4, 3e-4, 1e-3], "momentum": [0.5, 0.9]}]}
SPEC_TOML = """steps = 6000
tol = 1e-6
seeds = 2
[[problem]]
case = ["simple_heterogeneous", "simple_homogeneous"]
kappa = [300.0, 600.0, 1200.0, 2400.0]
[[optimizer]]
name = "heavy_ball"
lr = [1e-4, 3e-4, 1e-3]
momentum = [0.5, 0.9]
"""


def _keys(path) -> list[str]:
    """The task keys of the whole record lines of a records file (a torn line, left by a kill mid-append, is
    no record: the reader skips it)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "key" in rec:
            out.append(rec["key"])
    return out


def _timeless(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _by_task(rows) -> dict:
    """Rows grouped by task, without "seconds": a records file lists tasks in the order they finished."""
    out = {}
    for r in _timeless(rows):
        out.setdefault(r["task"], []).append(r)
    return out


@pytest.fixture(scope="module")
def serial_values():
    tasks = sweep.expand(SPEC)
    return tasks, Executor().map(sweep.run_task, tasks)


# -- keys and scheduler addresses -------------------------------------------------------------------------
def test_task_key_is_the_hash_of_canonical_json_with_the_version(monkeypatch):
    spec = {"b": [1, 2.5], "a": "x"}
    text = '{"quadlab":"' + quadlab.__version__ + '","spec":{"a":"x","b":[1,2.5]}}'
    truth = hashlib.sha256(text.encode())
    assert task_key(spec) == truth.hexdigest()
    assert task_key({"a": "x", "b": [1, 2.5]}) == task_key(spec)  # key order does not matter
    assert task_key({"a": "x", "b": [1, 2.5 + 2**-51]}) != task_key(spec)  # one ulp does
    monkeypatch.setattr(quadlab, "__version__", "9.9.9")
    assert task_key(spec) != truth.hexdigest()  # a new version never reuses an old value
    with pytest.raises(ValueError, match="plain JSON"):
        task_key({"x": float("nan")})


@pytest.mark.parametrize("scheduler, workers", [("tcp://host", None), ("tcp://h:0", None), ("tcp://h:70000", None),
                                                ("http://h:8786", None), ("cluster", None), (8786, None),
                                                ("tcp://h:8786", 2), (None, 2), ("local", 0), ("local", True)])
def test_check_scheduler_refuses(scheduler, workers):
    with pytest.raises(ValueError):
        check_scheduler(scheduler, workers)


def test_check_scheduler_accepts():
    for s, w in ((None, None), ("local", None), ("local", 3), ("tcp://127.0.0.1:8786", None),
                 ("tcp://[::1]:8786", None), ("tcp://node-7.cluster:1", None)):
        assert check_scheduler(s, w) == (s, w)


# -- the serial executor and its records ---------------------------------------------------------------------
def test_serial_map_computes_each_key_once_and_resumes(tmp_path):
    calls = []

    def square(spec):
        calls.append(spec["x"])
        return spec["x"] ** 2

    specs = [{"x": 3}, {"x": 1}, {"x": 3}, {"x": 2}]
    path = tmp_path / "r.jsonl"
    assert Executor().map(square, specs, store=Checkpoint(path, {"s": 1})) == [9, 1, 9, 4]
    assert calls == [3, 1, 2]  # the duplicate task ran once
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["settings"] == {"s": 1, "quadlab": quadlab.__version__}
    # an append torn by a crash: the last record is half written
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    calls.clear()
    assert Executor().map(square, specs, store=Checkpoint(path, {"s": 1})) == [9, 1, 9, 4]
    assert calls == [2]  # only the torn one is computed again
    assert sorted(_keys(path)) == sorted({task_key(s) for s in specs})  # no duplicate, none missing


def test_serial_map_passes_a_task_error_on_and_keeps_the_finished(tmp_path):
    def f(spec):
        if spec["x"] == 2:
            raise ValueError("bad point")
        return spec["x"]

    store = Checkpoint(tmp_path / "r.jsonl", {})
    with pytest.raises(ValueError, match="bad point"):
        Executor().map(f, [{"x": 0}, {"x": 1}, {"x": 2}, {"x": 3}], store=store)
    assert sorted(store.points.values()) == [0, 1]
    with pytest.raises(ValueError, match="one key per spec"):
        Executor().map(f, [{"x": 0}], keys=["a", "b"])


# -- the spec ------------------------------------------------------------------------------------------------------
def test_expand_builds_the_outer_product():
    spec = {"steps": 100, "seeds": [3, 5],
            "problem": [{"case": "case3", "kappa": [200.0, 300.0], "rotation": ["block", "global"]},
                        {"family": "log_uniform", "block_size": 4, "n_blocks": 3, "block_scale": [1.0, 10.0],
                         "lo": 1.0, "hi": 10.0, "kappa": 1000.0}],
            "optimizer": [{"name": "gd", "lr": "optimal"}, {"name": "adam", "lr": [0.01, 0.1], "b1": [0.0, 0.9]}]}
    tasks = sweep.expand(spec)
    assert len(tasks) == (4 + 2) * 2
    assert tasks[0] == {"steps": 100, "tol": 1e-6, "seeds": [3, 5], "method": "auto",
                        "problem": {"case": "case3", "kappa": 200.0, "rotation": "block"},
                        "optimizer": {"name": "gd", "lr": "optimal"}}
    fam = sweep.build_spectrum(tasks[-1]["problem"])
    # three geometric blocks on [1, 10] scaled by 10^l, then one affine map to [1, 1000]
    assert fam.sizes == (4, 4, 4) and fam.lambda_min == 1.0 and fam.lambda_max == pytest.approx(1000.0, rel=4e-16)


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown top-level"),
    ({"steps": 0}, "steps"),
    ({"tol": 1.5}, "tol"),
    ({"seeds": [1, 1]}, "repeats"),
    ({"problem": [{"case": "case9", "kappa": 500.0}]}, "case9"),
    ({"problem": [{"case": "case3", "kappa": 50.0}]}, "kappa > 103"),
    ({"problem": [{"case": "case3"}]}, "needs kappa"),
    ({"problem": [{"case": "case3", "kappa": 500.0, "lo": 1}]}, "unknown key"),
    ({"problem": [{"family": "uniform", "block_size": 3, "lo": 1.0}]}, "needs hi"),
    ({"problem": [{"case": "case3", "kappa": 500.0, "rotation": "diagonal"}]}, "rotation"),
    ({"problem": [{"case": "case3", "kappa": []}]}, "empty list"),
    ({"optimizer": [{"name": "sgd"}]}, "sgd"),
    ({"optimizer": [{"name": "adam", "lr": -1.0}]}, "lr must be positive"),
    ({"optimizer": [{"name": "adam", "beta1": 0.9}]}, "unknown key"),
    ({"optimizer": [{"name": "gd", "lr": 0.1, "tune": {"lr_range": [1e-3, 1.0]}}]}, "drop lr"),
    ({"optimizer": [{"name": "gd", "tune": {"lr_range": [1.0, 0.1]}}]}, "lr_range"),
])
def test_expand_names_what_is_wrong(change, message):
    spec = {"steps": 100, "problem": [{"case": "case3", "kappa": 500.0}], "optimizer": [{"name": "gd"}], **change}
    with pytest.raises(ValueError, match=message):
        sweep.expand(spec)


def test_the_example_spec_expands():
    tasks = sweep.load_spec(ROOT / "examples" / "sweep.toml")
    assert len(tasks) == 2 * 3 * 4 and {t["optimizer"]["name"] for t in tasks} == {"gd", "adam_theory", "adam",
                                                                                      "heavy_ball"}


def test_a_task_rows_are_the_runs_of_one_batched_run():
    spec = {"steps": 20000, "tol": 1e-6, "seeds": 2, "problem": [{"case": "case3", "kappa": 1000.0}],
            "optimizer": [{"name": "gd", "lr": "optimal"}]}
    task = sweep.expand(spec)[0]
    rows = sweep.run_task(task)
    res = quadlab.run(quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000.0), seed=0), optim.gd(lr="optimal"),
                      seeds=[0, 1], steps=20000, tol=1e-6)
    assert _timeless(rows) == [{"case": "case3", "kappa": 1000.0, "n": 9, **r, "tuned": False, "task": task_key(task)}
                               for r in results.result_rows(res)]
    # known truth: GD at 2/(λmin + λmax) shrinks ‖∇f‖ by at least ρ = (κ−1)/(κ+1) per step, so it reaches tol
    # within ⌈ln(1/tol)/ln(1/ρ)⌉ steps
    bound = int(np.ceil(np.log(1e6) / np.log(1001 / 999)))
    assert all(r["status"] == "converged" and 0 < r["steps_to_tol"] <= bound for r in rows)
    assert all(r["final_grad_norm"] <= r["grad_norm0"] for r in rows)


def test_result_to_frame_is_one_row_per_run():
    pytest.importorskip("pandas")
    p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(200.0), seed=1)
    res = quadlab.run(p, optim.adam(lr=[0.01, 0.1], b1=0.9), seeds=[0, 1, 2], steps=300, tol=1e-6)
    df = res.to_frame()
    assert len(df) == res.n_runs == 6
    assert df["lr"].tolist() == res.config["lr"].tolist() and df["seed"].tolist() == res.config["seed"].tolist()
    assert df["status"].tolist() == res.status.tolist()
    assert df["final_grad_norm"].to_numpy() == pytest.approx(res.final("grad_norm"), rel=0, abs=0)


def test_load_without_pandas_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "records.jsonl").write_text('{"fingerprint": "x"}\n{"key": "k", "value": [{"a": 1}]}\n')
    assert results.read_records(tmp_path) == [{"a": 1}]
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"quadlab\[dist\]"):
        results.load(tmp_path)
    with pytest.raises(ValueError, match="no sweep records"):
        results.read_records(tmp_path / "nothing")


# -- the command ----------------------------------------------------------------------------------------------
def test_sweep_command_writes_records_and_reruns_nothing(tmp_path, serial_values):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC_TOML)
    out = tmp_path / "out"
    assert cli.main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    tasks, values = serial_values
    assert _by_task(results.read_records(out)) == _by_task([r for v in values for r in v])
    before = (out / "records.jsonl").read_bytes()
    assert cli.main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    assert (out / "records.jsonl").read_bytes() == before  # every task was recorded: nothing is appended
    if importlib.util.find_spec("pandas") is not None:
        df = results.load(out)
        assert len(df) == 8 * 12 and set(df["case"]) == {"simple_heterogeneous", "simple_homogeneous"}


@pytest.mark.parametrize("argv, message", [
    (["nope.toml"], "no such spec file"),
    (["BAD"], "not a valid TOML"),
    (["GOOD", "--workers", "2"], "--workers sets the size of a local cluster"),
    (["GOOD", "--scheduler", "tcp://nowhere"], "--scheduler 'tcp://nowhere' is neither"),
    (["GOOD", "--out", "GOOD"], "is a file"),
])
def test_sweep_command_errors_are_one_line(argv, message, tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("steps = = 3")
    (tmp_path / "good.toml").write_text(SPEC_TOML)
    argv = [str(tmp_path / "bad.toml") if a == "BAD" else str(tmp_path / "good.toml") if a == "GOOD" else a
            for a in argv]
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("quadlab sweep: error: ") and message in err[0]


@pytest.mark.parametrize("command", ["kappa-sweep", "heterogeneity-sweep", "rotation", "readings", "r-distribution",
                                     "case1_4"])
def test_every_sweep_study_checks_its_dist_options_first(command, tmp_path, capsys, monkeypatch):
    def never(*a, **k):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(quadlab, "BlockQuadratic", never)
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--workers", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err == [f"quadlab {command}: error: --workers sets the size of a local cluster: "
                                           "use it with --scheduler local (a remote cluster's workers are started "
                                           "with `dask worker`)"]


def test_a_scheduler_without_the_dist_extra_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "s.toml").write_text(SPEC_TOML)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the dist extra were not installed
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path), "--scheduler", "local"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and 'pip install "quadlab[dist]"' in err[0]
    assert not (tmp_path / "records.jsonl").exists()


# -- on dask ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    if not HAVE_DASK:
        pytest.skip('needs the dist extra (pip install "quadlab[dist]")')
    with Executor("local", workers=2) as ex:
        ex.start()
        yield ex


@needs_dask
def test_local_cluster_records_are_bit_identical_to_serial(cluster, serial_values, tmp_path):
    info = cluster.start().scheduler_info()["workers"]
    assert len(info) == 2 and all(w["nthreads"] == 1 for w in info.values())
    tasks, values = serial_values
    store = Checkpoint(tmp_path / "records.jsonl", {"format": "test"})
    got = cluster.map(sweep.run_task, tasks, store=store)
    assert [_timeless(v) for v in got] == [_timeless(v) for v in values]
    # as written to disk too: JSON floats round-trip exactly
    assert _by_task(results.read_records(tmp_path)) == _by_task([r for v in values for r in v])


@needs_dask
def test_worker_killed_mid_sweep_still_yields_every_record(cluster, serial_values, tmp_path):
    client = cluster.start()
    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_after_first(done, n):
        for i, item in enumerate(done):
            if i == 0:  # one task finished, the others queued or running: kill a worker process outright
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            yield item

    tasks, values = serial_values
    store = Checkpoint(tmp_path / "records.jsonl", {"format": "test"})
    got = cluster.map(sweep.run_task, tasks, store=store, progress=kill_after_first)
    assert killed and [_timeless(v) for v in got] == [_timeless(v) for v in values]
    assert sorted(_keys(tmp_path / "records.jsonl")) == sorted(task_key(t) for t in tasks)  # no duplicate, none missing


def _stop(proc):
    """End a process started with start_new_session=True, and everything it started (its process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (a nanny's worker)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":")}


@needs_dask
def test_killed_client_sweep_resumes_without_duplicates(tmp_path, serial_values):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC_TOML)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "quadlab", "sweep", str(spec), "--out", str(out), "--quiet",
                             "--scheduler", "local", "--workers", "2"], env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "records.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if records.is_file() and records.read_text().count('{"key"') >= 2:
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the client, its cluster and its workers, mid-sweep
    finally:
        _stop(proc)
    written = len(_keys(records))
    assert 2 <= written < 8, f"{written} of 8 tasks recorded when the client was killed"
    assert cli.main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0  # the rerun, serial
    tasks, values = serial_values
    assert sorted(_keys(records)) == sorted(task_key(t) for t in tasks)  # no duplicate, none missing
    assert _by_task(results.read_records(out)) == _by_task([r for v in values for r in v])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_dask
def test_kappa_sweep_on_a_tcp_scheduler_with_two_workers_matches_serial(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask = [sys.executable, "-m", "dask"]
    kw = dict(env=_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], **kw)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([*dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                                           "--no-dashboard"], **kw))
        import distributed

        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        base = ["kappa-sweep", "--quick", "--quiet"]
        assert cli.main([*base, "--out", str(tmp_path / "tcp"), "--scheduler", address]) == 0
        assert cli.main([*base, "--out", str(tmp_path / "serial")]) == 0
    finally:
        for p in procs:
            _stop(p)
    tcp, serial = (json.loads((tmp_path / f / "kappa_sweep.json").read_text()) for f in ("tcp", "serial"))
    assert Path(tcp.pop("checkpoint")).parent == tmp_path / "tcp"
    serial.pop("checkpoint")
    assert tcp == serial and tcp["computed_points"] == 6


@needs_dask
def test_explanations_quick_on_the_cluster_gives_the_serial_points(cluster, tmp_path):
    # the study's instances as dask tasks on an existing scheduler: the same points and summary as serially
    address = cluster.start().scheduler.address
    out = {}
    for name, extra in (("serial", []), ("dask", ["--scheduler", address])):
        js = tmp_path / f"{name}.json"
        argv = ["explanations", "--quick", "--quiet", "--out", str(tmp_path / name), "--json", str(js), *extra]
        assert cli.main(argv) == 0
        out[name] = json.loads(js.read_text())
    for field in ("points", "summary"):
        assert out["dask"][field] == out["serial"][field]
