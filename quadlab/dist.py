"""Run a sweep's independent tasks: serially in this process (the default; dask is not imported) or on
dask.distributed, a ``LocalCluster`` on this machine or a running scheduler at ``tcp://HOST:PORT``.

A task is a plain dict, its *spec* (JSON-serialisable: numbers, strings, lists, dicts), and a top-level function
``fn(spec) -> value``.  Only specs cross the wire: the worker rebuilds its problems from the spec (seeded, so
the same bits everywhere) and sends back the value; arrays are never shipped to a worker.  One task is one
batched ``run``/``tune_lr`` (a whole grid × seeds), so the batching inside one process stays.

Keys.  :func:`task_key` is the SHA-256 of the canonical JSON of ``{"spec": spec, "quadlab": version}`` (sorted
keys, no spaces, NaN refused): two tasks with the same content share one key on every machine, and a new
quadlab version never reuses an old value.  A study may pass keys of its own (its checkpoint's point keys,
within a file named after the settings' hash); they play the same part.

Records.  ``Executor.map(fn, specs, store=…)`` takes a store with ``in``, ``get`` and ``put`` (a
:class:`quadlab.studies.common.Checkpoint`: an append-only JSON-lines file, one fsynced line per value).
Values already in the store are not computed; each new value is put as soon as its task completes (dask's
``as_completed``), so a client that dies loses only the tasks in flight and a rerun computes only the rest.
A worker that dies mid-task: the scheduler hands its tasks to another worker (dask's own retry, up to its
``distributed.scheduler.allowed-failures``); the set of values is complete all the same.

Determinism.  A value depends on its spec only: the runner's sums run in a fixed order, every task runs with
BLAS pinned to one thread (``threadpoolctl``; serially too, so the serial and the distributed bits agree)
and the order in which tasks complete does not matter, since ``map`` returns the values in the order of
``specs``.

Examples
--------
>>> from quadlab.dist import Executor
>>> def square(spec):
...     return spec["x"] ** 2
>>> with Executor() as ex:                      # serial, in this process
...     ex.map(square, [{"x": 2}, {"x": 3}])
[4, 9]

On dask: ``Executor("local", workers=2)`` (a LocalCluster of 2 one-thread processes) or
``Executor("tcp://10.0.0.5:8786")`` (a cluster started with ``dask scheduler`` and ``dask worker``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence

__all__ = ["Executor", "canonical_json", "check_scheduler", "task_key"]

_ADDRESS = re.compile(r"^tcp://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
DIST_HINT = 'pip install "quadlab[dist]"'


def canonical_json(obj) -> str:
    """``obj`` as canonical JSON text: keys sorted at every depth, no spaces, NaN and ±inf refused.

    Two values with the same content give the same text whatever the order of their keys, so the text's hash
    names the content (:func:`task_key`).  Numbers keep their JSON form: ``1`` and ``1.0`` are different texts.

    Parameters
    ----------
    obj : JSON-serialisable value
        None, booleans, numbers, strings, and lists and dicts (string keys) of these.

    Returns
    -------
    str
        ``json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)``.

    Raises
    ------
    ValueError
        ``obj`` holds a NaN or ±inf, or a value JSON has no form for (an array, a numpy integer, a set):
        pass plain Python values (``int(x)``, ``arr.tolist()``).

    Examples
    --------
    >>> canonical_json({"b": [1, 2.5], "a": {"y": None, "x": "s"}})
    '{"a":{"x":"s","y":null},"b":[1,2.5]}'
    >>> canonical_json({"lr": float("nan")})
    Traceback (most recent call last):
    ...
    ValueError: a task spec must be plain JSON (numbers, strings, lists, dicts) without NaN or inf: Out of range
    float values are not JSON compliant
    """
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a task spec must be plain JSON (numbers, strings, lists, dicts) without NaN or inf: "
                         f"{exc}") from None


def task_key(spec) -> str:
    """The content key of a task: the SHA-256 of ``canonical_json({"quadlab": version, "spec": spec})``.

    Equal content gives an equal key on every machine and in every process, whatever the key order of
    ``spec``; another quadlab version gives another key, so a store never hands back a value that an older
    version computed.

    Parameters
    ----------
    spec : dict
        The task spec, plain JSON (:func:`canonical_json`).

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    ValueError
        ``spec`` is not plain JSON, or holds a NaN or ±inf.

    Examples
    --------
    >>> k = task_key({"lr": 0.01, "seed": 0})
    >>> k == task_key({"seed": 0, "lr": 0.01}), len(k)
    (True, 64)
    >>> k == task_key({"lr": 0.01, "seed": 1})
    False
    >>> import hashlib, quadlab
    >>> text = canonical_json({"spec": {"seed": 0, "lr": 0.01}, "quadlab": quadlab.__version__})
    >>> k == hashlib.sha256(text.encode()).hexdigest()
    True
    """
    from quadlab import __version__

    return hashlib.sha256(canonical_json({"quadlab": __version__, "spec": spec}).encode()).hexdigest()


def check_scheduler(scheduler: str | None, workers: int | None = None) -> tuple[str | None, int | None]:
    """Validate a ``(scheduler, workers)`` pair; returns it unchanged.

    Nothing is started or contacted: a command checks its options with this before computing.

    Parameters
    ----------
    scheduler : str or None
        None (serial, in this process), ``"local"`` (a LocalCluster here) or ``"tcp://HOST:PORT"`` (HOST a
        name, an IPv4 address or a bracketed IPv6 address).
    workers : int or None
        With ``"local"``: the number of one-thread worker processes (None: the CPU count).

    Returns
    -------
    tuple
        ``(scheduler, workers)``, unchanged.

    Raises
    ------
    ValueError
        A malformed address, a port outside 1..65535, ``workers`` < 1, or ``workers`` given without
        ``"local"`` (a remote cluster's workers are started with ``dask worker``).

    Examples
    --------
    >>> check_scheduler(None), check_scheduler("local", 4), check_scheduler("tcp://[::1]:8786")
    ((None, None), ('local', 4), ('tcp://[::1]:8786', None))
    >>> check_scheduler("tcp://127.0.0.1:8786", workers=4)
    Traceback (most recent call last):
    ...
    ValueError: workers sets the size of a local cluster: use it with scheduler 'local' (a remote cluster's
    workers are started with `dask worker`)
    """
    if scheduler is not None:
        if not isinstance(scheduler, str):
            raise ValueError(f"scheduler must be 'local' or 'tcp://HOST:PORT', got {scheduler!r}")
        if scheduler != "local":
            m = _ADDRESS.match(scheduler)
            if m is None or not 1 <= int(m.group(2)) <= 65535:
                raise ValueError(f"scheduler {scheduler!r} is neither 'local' nor 'tcp://HOST:PORT' (port 1..65535), "
                                 "e.g. tcp://127.0.0.1:8786")
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if scheduler != "local":
            raise ValueError("workers sets the size of a local cluster: use it with scheduler 'local' (a remote "
                             "cluster's workers are started with `dask worker`)")
    return scheduler, workers


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"running on dask needs the dist extra ({exc.name} is missing): {DIST_HINT}",
                          name=exc.name) from None
    return distributed


def _pinned(fn: Callable, spec, one_core: bool = False):
    """``fn(spec)`` with BLAS and OpenMP pools held to one thread, so the serial run computes with the same
    BLAS thread count as a worker.  ``one_core`` (a dask worker, which owns one core) also holds numba's
    threads to one, so the compiled scan does not split a worker's runs over threads that other workers'
    cores would have to run; serially the scan keeps its threads.  Results do not depend on either count.
    (threadpoolctl comes with the dist extra; without it a serial run keeps the BLAS default.)"""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return fn(spec)
    numba = None
    if one_core and importlib.util.find_spec("numba") is not None:
        import numba
    before = numba.get_num_threads() if numba is not None else None
    try:
        if numba is not None:
            numba.set_num_threads(1)
        with threadpool_limits(limits=1):
            return fn(spec)
    finally:
        if numba is not None:
            numba.set_num_threads(before)


class Executor:
    """Where a sweep's tasks run.

    Parameters
    ----------
    scheduler : None (default: serial, in this process, no dask import), ``"local"`` (a LocalCluster of
        ``workers`` one-thread processes, started on first use) or ``"tcp://HOST:PORT"`` (a running
        ``dask scheduler``).
    workers : with ``"local"`` only; default ``os.cpu_count()``.
    timeout : seconds to wait for a remote scheduler before giving up (OSError).

    Raises
    ------
    ValueError
        Bad ``scheduler``/``workers`` (:func:`check_scheduler`).
    ImportError
        On first use with a scheduler when dask or distributed is missing (message names the dist extra).

    Use it as a context manager, or call :meth:`close`: a local cluster's processes end with it.
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None, *, timeout: float = 30.0):
        self.scheduler, self.workers = check_scheduler(scheduler, workers)
        self.timeout = float(timeout)
        self._client = None
        self._cluster = None

    @property
    def serial(self) -> bool:
        """True when the tasks run here, one after another (``scheduler`` is None)."""
        return self.scheduler is None

    def __repr__(self) -> str:
        where = "serial" if self.serial else self.scheduler
        return f"Executor({where}{'' if self.workers is None else f', workers={self.workers}'})"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self):
        """Start the local cluster, or connect to the scheduler, now rather than in the first :meth:`map`.

        A command calls this before computing, so that an unreachable scheduler fails before any work is done.
        Once started, or when serial, it does nothing (a serial executor never imports dask).

        Returns
        -------
        distributed.Client or None
            The executor's client; None when serial.

        Raises
        ------
        ImportError
            dask or distributed is missing (the message names the dist extra).
        OSError
            A remote scheduler does not answer within ``timeout`` seconds (the message says how to start one).

        Examples
        --------
        >>> with Executor() as ex:
        ...     print(ex.start())
        None
        """
        if self.serial or self._client is not None:
            return self._client
        distributed = _import_distributed()
        import logging

        if self.scheduler == "local":
            n = self.workers or os.cpu_count() or 1
            # one single-threaded process per worker: numpy/BLAS state is per process, and the GIL never
            # serialises two tasks; no dashboard (no port to collide with another run)
            self._cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                     dashboard_address=None, silence_logs=logging.ERROR)
            self._client = distributed.Client(self._cluster, set_as_default=False)
        else:
            try:
                self._client = distributed.Client(self.scheduler, timeout=self.timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise OSError(f"cannot reach the dask scheduler at {self.scheduler} within {self.timeout:g} s "
                              f"({type(exc).__name__}); start it with `dask scheduler` and its workers with "
                              f"`dask worker {self.scheduler}`") from None
        return self._client

    def n_workers(self) -> int:
        """How many tasks run at once.

        Returns
        -------
        int
            1 when serial; else the sum of the workers' threads, at least 1 (:meth:`start` runs first, so the
            call may start a local cluster or connect to the scheduler).

        Raises
        ------
        ImportError, OSError
            As :meth:`start`.

        Examples
        --------
        >>> Executor().n_workers()
        1
        """
        if self.serial:
            return 1
        info = self.start().scheduler_info()
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def close(self) -> None:
        """Close the client and a local cluster (its worker processes end)."""
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def map(self, fn: Callable, specs: Sequence, *, keys: Sequence[str] | None = None, store=None,
            progress: Callable[[Iterator, int], Iterable] | None = None) -> list:
        """``[fn(spec) for spec in specs]``, computed here or on the cluster.

        Parameters
        ----------
        fn : a top-level (importable) function of one spec; with a ``store`` its values must be JSON.
        specs : the task specs (plain dicts).
        keys : one key per spec (default :func:`task_key` of each); tasks with equal keys run once.
        store : where values are kept (``key in store``, ``store.get(key)``, ``store.put(key, value)``):
            keys already there are not computed, new values are put as they complete.
        progress : ``progress(iterator, total)`` wraps the completions (e.g. a tqdm bar).

        Returns
        -------
        list
            The values in the order of ``specs`` (whatever order the tasks completed in).

        Raises
        ------
        ValueError
            ``keys`` of another length than ``specs``, or a spec that is not plain JSON.
        Exception
            What a task raised (on a worker too); the values put before it stay in ``store``.

        Examples
        --------
        Equal specs run once, and a value already in the store is not computed again (serial here, so ``fn``
        may be a local function; on dask it must be importable):

        >>> class Store(dict):
        ...     def put(self, key, value):
        ...         self[key] = value
        >>> computed = []
        >>> def square(spec):
        ...     computed.append(spec["x"])
        ...     return spec["x"] ** 2
        >>> store = Store()
        >>> with Executor() as ex:
        ...     ex.map(square, [{"x": 2}, {"x": 3}, {"x": 2}], store=store)
        ...     ex.map(square, [{"x": 3}, {"x": 4}], store=store)
        [4, 9, 4]
        [9, 16]
        >>> computed
        [2, 3, 4]
        """
        specs = list(specs)
        keys = [task_key(s) for s in specs] if keys is None else list(keys)
        if len(keys) != len(specs):
            raise ValueError(f"got {len(keys)} keys for {len(specs)} specs; pass one key per spec")
        values: dict[str, object] = {}
        todo: dict[str, object] = {}
        for k, s in zip(keys, specs):
            if store is not None and k in store:
                values[k] = store.get(k)
            elif k not in todo:
                todo[k] = s
        done = self._serial(fn, todo) if self.serial else self._dask(fn, todo)
        if progress is not None:
            done = progress(done, len(todo))
        for k, v in done:
            if store is not None:
                store.put(k, v)
            values[k] = v
        return [values[k] for k in keys]

    @staticmethod
    def _serial(fn, todo: dict) -> Iterator:
        for k, s in todo.items():
            yield k, _pinned(fn, s)

    def _dask(self, fn, todo: dict) -> Iterator:
        if not todo:
            return
        distributed = _import_distributed()
        client = self.start()
        run = uuid.uuid4().hex[:8]  # dask keys unique to this call: another client's results are never reused

        def dask_key(k: str) -> str:  # a study's key may be JSON text; the scheduler gets a plain name
            return f"quadlab-{hashlib.sha256(k.encode()).hexdigest()[:24]}-{run}"

        futures = {client.submit(_pinned, fn, s, True, key=dask_key(k), pure=False): k for k, s in todo.items()}
        try:
            for fut in distributed.as_completed(futures, loop=client.loop):
                yield futures[fut], fut.result()
                fut.release()
        finally:
            for fut in futures:
                if not fut.done():
                    fut.cancel()
