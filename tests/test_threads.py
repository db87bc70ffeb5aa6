"""Independent calls side by side (quadlab._engine.threads): the serial results, bit for bit, in order."""

import threading
import time

import numpy as np
import pytest

import quadlab
from quadlab import optim, spectra
from quadlab._engine import kernels, threads
from quadlab.tune import tune_lr

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise

parallel = pytest.mark.skipif(threads.workers() < 2, reason="needs numba, threadpoolctl and 2 threads")


@parallel
def test_calls_run_side_by_side_each_on_one_thread():
    numba = kernels._numba()
    seen = []

    def call(x):
        seen.append((x, threading.get_ident(), numba.get_num_threads()))
        time.sleep(0.02)  # long enough that the pool starts its second thread
        return x * x

    cores = threads.workers()
    items = range(3 * cores + 1)
    assert threads.map_calls(call, items) == [x * x for x in items]
    assert len({t for _, t, _ in seen}) >= 2
    # one thread each, except the last call, alone in its round, which has every core
    assert {x: n for x, _, n in seen} == {x: (1 if x < 3 * cores else cores) for x in items}
    assert numba.get_num_threads() == cores  # the caller's own count is untouched


def test_one_call_or_one_core_runs_inline(monkeypatch):
    here = threading.get_ident()
    assert threads.map_calls(lambda x: threading.get_ident(), [0]) == [here]
    monkeypatch.setattr(threads, "workers", lambda: 1)
    assert threads.map_calls(lambda x: threading.get_ident(), range(3)) == [here] * 3


def test_an_error_in_one_call_is_raised():
    def call(x):
        if x == 2:
            raise ValueError("call 2 failed")
        return x

    with pytest.raises(ValueError, match="call 2 failed"):
        threads.map_calls(call, range(4))


@pytest.mark.parametrize("make, rng", [
    (lambda: optim.adam(b1=0.0), (1e-4, 10.0)),  # the compiled scan
    (lambda: optim.heavy_ball(momentum=0.8), (1e-5, 1e-2)),  # the closed form
])
def test_tuning_several_problems_gives_the_serial_bits(monkeypatch, make, rng):
    """tune_lr over one problem per seed runs them side by side; every number is what one after the other
    gives."""
    probs = [quadlab.BlockQuadratic(spectra.simple_heterogeneous(500.0), seed=s) for s in range(3)]
    kw = dict(lr_range=rng, points=6, refine=1, seeds=[0, 1, 2], steps=3000, tol=1e-6, race=True)
    side = tune_lr(probs, make(), **kw)
    monkeypatch.setattr(threads, "workers", lambda: 1)
    serial = tune_lr(probs, make(), **kw)
    assert side.best_lr == serial.best_lr and side.best_steps == serial.best_steps
    for name in ("lrs", "steps_to_tol", "final_grad_norm", "diverged", "caps"):
        np.testing.assert_array_equal(getattr(side, name), getattr(serial, name))
    for a, b in zip(side.best, serial.best, strict=True):
        np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
        np.testing.assert_array_equal(a.gap, b.gap)
