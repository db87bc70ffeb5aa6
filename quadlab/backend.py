"""The one place in quadlab that knows one array library from another.

Every other module asks a :class:`Backend` for its array namespace ``xp`` (an
array-API namespace: ``array_api_compat.numpy``, ``array_api_compat.cupy``,
``array_api_strict``, ...) and its floating dtype, and moves data with
:meth:`Backend.asarray` / :meth:`Backend.to_numpy`.  Random numbers are always
drawn on the host with a seeded :class:`numpy.random.Generator` and then moved
to the device, so that the numpy and cupy versions of a problem are the same
problem, bit for bit before any arithmetic.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["Backend", "BackendUnavailableError", "available_memory", "check_memory", "get_backend", "host_rng",
           "DTYPES"]

DTYPES = ("float64", "float32")

_GPU_HINT = (
    'Install the GPU extra with  pip install "quadlab[gpu]"  (cupy for CUDA 12; use cupy-cuda13x '
    "for CUDA 13) on a machine with an NVIDIA GPU, or use xp=\"numpy\"."
)


class BackendUnavailableError(RuntimeError):
    """The requested array library is not installed or has no device to run on.

    A subclass of RuntimeError; its message says how to install the library (e.g. ``pip install "quadlab[gpu]"``).

    Parameters
    ----------
    message : str
    """


def _load_cupy() -> ModuleType:
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(f"xp='cupy' was requested but cupy is not installed. {_GPU_HINT}") from exc
    try:
        ndev = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy raises CUDARuntimeError without a driver
        raise BackendUnavailableError(f"xp='cupy' was requested but CUDA reports no usable device ({exc}). {_GPU_HINT}") from exc
    if ndev < 1:
        raise BackendUnavailableError(f"xp='cupy' was requested but no GPU is present. {_GPU_HINT}")
    from array_api_compat import cupy as xp_cupy

    return xp_cupy


def _resolve_namespace(xp: Any) -> tuple[str, ModuleType]:
    if isinstance(xp, str):
        key = xp.lower().replace("-", "_")
        if key in ("numpy", "np"):
            from array_api_compat import numpy as xp_numpy

            return "numpy", xp_numpy
        if key in ("cupy", "cp"):
            return "cupy", _load_cupy()
        if key == "array_api_strict":
            try:
                return "array_api_strict", importlib.import_module("array_api_strict")
            except ImportError as exc:
                raise BackendUnavailableError(
                    'xp="array_api_strict" needs the dev extra: pip install "quadlab[dev]"'
                ) from exc
        raise ValueError(
            f"unknown backend {xp!r}: use 'numpy', 'cupy', 'array_api_strict', or pass an array-API namespace module"
        )
    if isinstance(xp, ModuleType):
        name = xp.__name__
        if name in ("numpy", "array_api_compat.numpy"):
            return _resolve_namespace("numpy")
        if name in ("cupy", "array_api_compat.cupy"):
            return _resolve_namespace("cupy")
        for attr in ("asarray", "matmul", "linalg", "float64"):
            if not hasattr(xp, attr):
                raise ValueError(f"module {name!r} is not an array-API namespace (it has no {attr!r})")
        return name, xp
    raise ValueError(f"xp must be a backend name or an array-API namespace module, not {type(xp).__name__}")


@dataclass(frozen=True)
class Backend:
    """An array namespace together with the floating dtype quadlab computes in.

    Parameters
    ----------
    name : str
        ``"numpy"``, ``"cupy"``, ``"array_api_strict"`` or the module name of another namespace.
    xp : module
        The array-API namespace.
    dtype_name : {"float64", "float32"}, default "float64"

    Attributes
    ----------
    dtype : dtype object
        ``getattr(xp, dtype_name)``.
    eps : float
        Machine epsilon of the dtype.
    is_gpu : bool

    Examples
    --------
    >>> from quadlab.backend import get_backend
    >>> b = get_backend("numpy", "float32")
    >>> b.name, b.dtype_name, b.eps == 2.0 ** -23
    ('numpy', 'float32', True)
    """

    name: str
    xp: ModuleType
    dtype_name: str = "float64"

    @property
    def dtype(self):
        return getattr(self.xp, self.dtype_name)

    @property
    def eps(self) -> float:
        return float(np.finfo(self.dtype_name).eps)

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    def asarray(self, x, dtype=None):
        """Move a host array, scalar or backend array to this backend, cast to ``dtype``.

        Parameters
        ----------
        x : array_like
        dtype : dtype, optional
            Default: the backend's floating dtype.

        Returns
        -------
        backend array
            On this backend, in ``dtype``.
        """
        a = self.xp.asarray(x)
        target = self.dtype if dtype is None else dtype
        return a if a.dtype == target else self.xp.astype(a, target)

    def to_numpy(self, x) -> np.ndarray:
        """Copy a backend array to a host numpy array (numpy arrays are returned as they are).

        Parameters
        ----------
        x : backend array

        Returns
        -------
        numpy.ndarray
            A host copy (no copy for a numpy array).
        """
        if isinstance(x, np.ndarray):
            return x
        if self.name == "cupy":
            return x.get()
        try:
            return np.asarray(x)
        except Exception:  # namespaces without __array__ still speak DLPack
            return np.from_dlpack(x)

    def contiguous(self, x):
        """``x`` in C order, copied only where needed.

        Elementwise kernels and batched matmuls run several times faster on C-ordered data; namespaces without a
        layout notion return ``x`` unchanged.

        Parameters
        ----------
        x : backend array

        Returns
        -------
        backend array
            C-ordered.
        """
        if self.name == "numpy":
            return np.ascontiguousarray(x)
        if self.name == "cupy":
            import cupy

            return cupy.ascontiguousarray(x)
        return x

    def sync(self) -> None:
        """Wait for queued device work to finish (a no-op on the CPU); call before reading a clock.
        """
        if self.name == "cupy":
            import cupy

            cupy.cuda.get_current_stream().synchronize()


def get_backend(xp: Any = "numpy", dtype: str | Any = "float64") -> Backend:
    """The :class:`Backend` for an array library and a dtype.

    Parameters
    ----------
    xp : str, module or Backend, default "numpy"
        "numpy", "cupy", "array_api_strict", an array-API namespace module, or a Backend (its dtype is replaced).
    dtype : str or dtype, default "float64"
        "float64" or "float32".

    Returns
    -------
    Backend
        The namespace and the floating dtype quadlab computes in.

    Raises
    ------
    ValueError
        For an unknown backend name or another dtype.
    BackendUnavailableError
        When cupy is asked for but not installed or no GPU is present.

    Examples
    --------
    >>> from quadlab.backend import get_backend
    >>> get_backend().name, get_backend("numpy").dtype_name
    ('numpy', 'float64')
    """
    if isinstance(xp, Backend):
        if dtype is None or _dtype_name(dtype) == xp.dtype_name:
            return xp
        return Backend(xp.name, xp.xp, _dtype_name(dtype))
    name, ns = _resolve_namespace(xp)
    return Backend(name, ns, _dtype_name(dtype))


def _dtype_name(dtype) -> str:
    if dtype is None:
        return "float64"
    name = dtype if isinstance(dtype, str) else getattr(dtype, "__name__", None) or str(dtype)
    name = str(name).split(".")[-1].strip("'>")
    if name not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported: quadlab computes in {' or '.join(DTYPES)}")
    return name


def host_rng(seed) -> np.random.Generator:
    """A seeded host random Generator.

    Parameters
    ----------
    seed : int, numpy.random.SeedSequence or numpy.random.Generator
        A Generator is returned as it is.

    Returns
    -------
    numpy.random.Generator
        Seeded from ``seed`` (or ``seed`` itself when it is a Generator).

    Examples
    --------
    >>> from quadlab.backend import host_rng
    >>> float(host_rng(0).random()) == float(host_rng(0).random())
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("a seed is required: quadlab never draws unseeded random numbers")
    return np.random.default_rng(seed)


#: assumed when the operating system reports nothing usable: small enough that a real machine has it, large
#: enough that every study's default settings pass
_FALLBACK_AVAILABLE = 4 * 2**30
_GIB = 2**30


def available_memory() -> int:
    """Bytes of memory a new allocation can get without swapping, best estimate first.

    Linux: ``MemAvailable`` of /proc/meminfo (free memory plus reclaimable caches, the kernel's own estimate);
    else ``os.sysconf`` free pages × page size; else 4 GiB.  ``QUADLAB_MEMORY_LIMIT`` (bytes, or with a K/M/G
    suffix) overrides all of them, for containers whose cgroup limit the kernel does not report here and for
    tests.

    Returns
    -------
    int
        Bytes.

    Raises
    ------
    ValueError
        If ``QUADLAB_MEMORY_LIMIT`` is set but not a size.

    Examples
    --------
    >>> from quadlab.backend import available_memory
    >>> available_memory() > 0
    True
    """
    env = os.environ.get("QUADLAB_MEMORY_LIMIT", "").strip()
    if env:
        mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(env[-1].upper(), 1)
        try:
            val = float(env[:-1] if mult > 1 else env) * mult
        except ValueError:
            raise ValueError(f"QUADLAB_MEMORY_LIMIT={env!r} is not a byte count (e.g. 8G, 512M or 1000000)") from None
        if not (val > 0 and val < float("inf")):
            raise ValueError(f"QUADLAB_MEMORY_LIMIT={env!r} must be a positive byte count")
        return int(val)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return _FALLBACK_AVAILABLE


def check_memory(nbytes: int, what: str, hint: str = "use smaller sizes or fewer runs") -> None:
    """Refuse work whose estimated peak memory exceeds what is available (:func:`available_memory`).

    A too-large request then fails at once with the numbers, instead of growing until the kernel kills the
    process.

    Parameters
    ----------
    nbytes : int
        The caller's estimate of its largest simultaneous allocation (a rough upper bound is right: the check only
        has to catch orders of magnitude).
    what : str
        What the memory is for, for the message.
    hint : str, default "use smaller sizes or fewer runs"
        What to do instead, for the message.

    Returns
    -------
    None
        Nothing: the check passes silently or raises.

    Raises
    ------
    ValueError
        "this needs about X GiB for <what>, but only Y GiB are available; <hint>"; also for a NaN or negative
        estimate (a bug of the caller).

    Examples
    --------
    >>> from quadlab.backend import check_memory
    >>> check_memory(1024, "a small table")
    >>> try:
    ...     check_memory(2 ** 62, "everything")
    ... except ValueError as exc:
    ...     print(str(exc)[:16])
    this needs about
    """
    try:
        need = float(nbytes)
    except (TypeError, ValueError):
        raise ValueError(f"check_memory: nbytes must be a number of bytes, got {nbytes!r}") from None
    if not need >= 0:
        raise ValueError(f"check_memory: nbytes must be a non-negative number of bytes, got {nbytes!r}")
    have = available_memory()
    if need > have:
        raise ValueError(f"this needs about {need / _GIB:.3g} GiB for {what}, but only {have / _GIB:.3g} GiB are "
                         f"available; {hint}")
