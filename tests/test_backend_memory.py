"""The shared memory guard: quadlab.backend.available_memory and check_memory."""

import pytest

from quadlab import backend


def test_available_memory_is_positive_and_overridable(monkeypatch):
    monkeypatch.delenv("QUADLAB_MEMORY_LIMIT", raising=False)
    assert backend.available_memory() > 0
    monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", "2G")
    assert backend.available_memory() == 2 * 2**30
    monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", "512M")
    assert backend.available_memory() == 512 * 2**20
    monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", "1000")
    assert backend.available_memory() == 1000
    for bad in ("lots", "-1G", "0"):
        monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", bad)
        with pytest.raises(ValueError, match="QUADLAB_MEMORY_LIMIT"):
            backend.available_memory()


def test_fallbacks_when_proc_meminfo_is_missing(monkeypatch):
    monkeypatch.delenv("QUADLAB_MEMORY_LIMIT", raising=False)
    real_open = open

    def no_meminfo(path, *a, **k):
        if str(path) == "/proc/meminfo":
            raise OSError("no procfs")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", no_meminfo)
    assert backend.available_memory() > 0  # from os.sysconf
    monkeypatch.setattr(backend.os, "sysconf", lambda name: (_ for _ in ()).throw(OSError("no sysconf")))
    assert backend.available_memory() == backend._FALLBACK_AVAILABLE


def test_check_memory_passes_and_refuses_with_the_numbers(monkeypatch):
    monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", "1G")
    backend.check_memory(0, "nothing")
    backend.check_memory(2**29, "half a GiB")
    with pytest.raises(ValueError) as exc:
        backend.check_memory(3 * 2**30, "100000000 starts of n = 9", "pass fewer --starts")
    msg = str(exc.value)
    assert "needs about 3 GiB for 100000000 starts of n = 9" in msg
    assert "only 1 GiB are available" in msg and msg.endswith("pass fewer --starts")
    for bad in (float("nan"), -1, "x"):
        with pytest.raises(ValueError, match="nbytes"):
            backend.check_memory(bad, "bad")
