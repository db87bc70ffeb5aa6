"""Independent calls spread over the machine's cores: one thread per core, each computing on one thread.

A learning-rate search runs the same grid on several problems (one Haar rotation per seed), one
:func:`quadlab.run` call each.  Those calls share nothing, so they can run side by side; each then keeps to
one thread (numba's compiled scan does not split its runs, BLAS runs single-threaded), so the machine runs
as many calls at once as it has cores instead of one call split over the cores.  On the project's 2-core
machine two Case 1 problems side by side took 0.19 s where the same two calls, each split over both cores,
took 0.24 s and alone on one core 0.35 s (Adam, 16 learning rates, 40,000 steps).

The results are those of the calls made one after the other, bit for bit: a run's arithmetic does not depend
on its thread or on the thread count of the compiled loop (:mod:`quadlab._engine.scan`), nor on BLAS's
(:mod:`quadlab._engine.ordered` sums every run in a fixed order).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from . import kernels

__all__ = ["map_calls", "workers"]


def workers() -> int:
    """How many calls :func:`map_calls` runs at once: the calling thread's numba thread count (a dask worker
    that owns one core has set it to 1, see :mod:`quadlab.dist`), or 1 without numba or threadpoolctl (which
    holds BLAS to one thread while the calls run side by side)."""
    numba = kernels._numba()
    if numba is None or importlib.util.find_spec("threadpoolctl") is None:
        return 1
    n = max(1, int(numba.get_num_threads()))  # (launches numba's threading layer, so it can be asked below)
    # numba's fallback layer, "workqueue", aborts the process when two threads enter parallel regions at once
    # (the calls may: kernels.matmul_rows); OpenMP and TBB are safe
    return n if n == 1 or numba.threading_layer() in ("omp", "tbb") else 1


def map_calls(fn: Callable, items: Sequence) -> list:
    """``[fn(x) for x in items]``, the calls running side by side on up to :func:`workers` threads, taken in
    order as threads come free; the first exception is raised once all have run.

    Each call computes on one thread, except those of a last round with fewer calls than cores, which share
    the cores: with 5 calls on 2 cores the fifth splits its runs over both (the compiled scan's own split),
    with 2 calls on 8 cores each has 4.

    Process-wide state: BLAS is held to one thread while the calls run (threadpoolctl's limit is process-wide,
    so two map_calls from two user threads at once may restore each other's; only thread counts change), and
    warnings' filters, which each run() sets and restores, are put back once every call has returned."""
    items = list(items)
    cores = workers()
    n = min(len(items), cores)
    if n <= 1:
        return [fn(x) for x in items]
    from threadpoolctl import threadpool_limits

    numba = kernels._numba()
    last_round = (len(items) // cores) * cores
    share = max(1, cores // max(1, len(items) - last_round))

    def call(i, x):
        # per thread: this call's compiled scan keeps to its share of the cores
        numba.set_num_threads(1 if i < last_round else share)
        return fn(x)

    with warnings.catch_warnings(), threadpool_limits(limits=1), ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(call, i, x) for i, x in enumerate(items)]
        return [f.result() for f in futures]
