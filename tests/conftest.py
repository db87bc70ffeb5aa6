"""Shared fixtures: every array test runs under numpy and array-api-strict (and cupy where a GPU exists)."""

import importlib.util

import numpy as np
import pytest

from quadlab.backend import BackendUnavailableError, get_backend


def _cupy_ready() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        get_backend("cupy")
    except BackendUnavailableError:
        return False
    return True


BACKENDS = [
    "numpy",
    "array_api_strict",
    pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(not _cupy_ready(), reason="needs cupy and a CUDA GPU")]),
]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """A backend name; tests build problems with ``xp=xp``."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def count_calls(monkeypatch, module, name: str, key: str) -> dict:
    """Wrap ``module.name`` so that every call adds one to the returned ``{key: n}`` (a test that relies on a
    path can then show it was taken, rather than pass by never using it)."""
    n = {key: 0}
    real = getattr(module, name)

    def counted(*a, **kw):
        n[key] += 1
        return real(*a, **kw)

    monkeypatch.setattr(module, name, counted)
    return n

