"""``quadlab extract --model MODULE:FACTORY --loss MODULE:FUNCTION --batches MODULE:FUNCTION``: your model's block
spectra from the command line.

``MODULE`` is an importable dotted module (the current folder is searched first) or a path to a ``.py`` file.
``FACTORY()`` returns the ``torch.nn.Module`` (as it should be measured: at initialisation or loaded from a
checkpoint), ``FUNCTION(model, batch)`` the scalar loss and the batches ``FUNCTION()`` an iterable of batches.
Everything then goes through :func:`quadlab.extract.block_spectra`, and the result is written with
:func:`quadlab.stored.save` together with a header saying where every part came from.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from .spectra import block_spectra

__all__ = ["extract_user", "load_object"]


def load_object(spec: str, option: str):
    """The callable NAME of ``MODULE:NAME`` (MODULE dotted, importable from here, or the path of a .py file).

    Parameters
    ----------
    spec : str
        "MODULE:NAME".
    option : str
        The command-line option it came from, for messages.

    Returns
    -------
    callable
        The object the spec names.

    Raises
    ------
    ValueError
        Naming ``option``: a spec without a colon or identifier, a missing file or module, a module that fails to
        import, no such name, or a name that is not callable.

    Examples
    --------
    >>> from quadlab.extract.user import load_object
    >>> load_object("math:sqrt", "--loss")(9.0)
    3.0
    """
    if not isinstance(spec, str) or spec.count(":") < 1:
        raise ValueError(f"{option} {spec!r}: write MODULE:NAME (a module or a .py file, a colon, a function name)")
    mod_name, _, attr = spec.rpartition(":")
    if not mod_name or not attr.isidentifier():
        raise ValueError(f"{option} {spec!r}: write MODULE:NAME with NAME a Python identifier")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise ValueError(f"{option} {spec!r}: no file {path}")
            key = f"quadlab_user_{abs(hash(str(path.resolve())))}"
            module = sys.modules.get(key)
            if module is None:
                spec_ = importlib.util.spec_from_file_location(key, path)
                module = importlib.util.module_from_spec(spec_)
                sys.modules[key] = module
                try:
                    spec_.loader.exec_module(module)
                except BaseException:
                    del sys.modules[key]
                    raise
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # a module next to the user, as `python -m` would find it
            module = importlib.import_module(mod_name)
    except ValueError:
        raise
    except ModuleNotFoundError as exc:
        raise ValueError(f"{option} {spec!r}: cannot import {mod_name!r} ({exc}); give an importable module or a "
                         "path to a .py file") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing: say so in one line
        raise ValueError(f"{option} {spec!r}: importing {mod_name!r} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        names = [n for n in dir(module) if not n.startswith("_")][:10]
        raise ValueError(f"{option} {spec!r}: {mod_name!r} has no {attr!r}; it defines e.g. {names}")
    obj = getattr(module, attr)
    if not callable(obj):
        raise ValueError(f"{option} {spec!r}: {attr!r} is a {type(obj).__name__}, not a function")
    return obj


def extract_user(model: str, loss: str, batches: str, *, blocks: str | None = None, m: int = 100, probes: int = 10,
                 seed: int = 0, device: str | None = None, dtype: str | None = None, mode: str | None = None,
                 progress: bool = True) -> tuple:
    """Block spectra of the user's model: load the three objects, run :func:`block_spectra`, return the result and
    its header, ready for :func:`quadlab.stored.save`.

    Parameters
    ----------
    model : str
        MODULE:FACTORY, FACTORY() → torch.nn.Module.
    loss : str
        MODULE:FUNCTION, FUNCTION(model, batch) → scalar loss.
    batches : str
        MODULE:FUNCTION, FUNCTION() → the batches (a list or DataLoader).
    blocks : str, keyword-only, optional
        A regex of parameter names (default: one block per tensor).
    m, probes, seed, device, dtype, mode, progress : keyword-only
        As for :func:`block_spectra`.

    Returns
    -------
    tuple
        (SLQResult, meta dict: the specs, configuration, versions, products and wall time).

    Raises
    ------
    ValueError
        If a spec cannot be loaded, FACTORY() is not a Module, or as for :func:`block_spectra`.
    """
    factory = load_object(model, "--model")
    loss_fn = load_object(loss, "--loss")
    make_batches = load_object(batches, "--batches")
    net = factory()
    if not isinstance(net, torch.nn.Module):
        raise ValueError(f"--model {model!r} returned a {type(net).__name__}, not a torch.nn.Module")
    data = make_batches()
    info: dict = {}
    q = block_spectra(net, loss_fn, data, blocks, m=m, probes=probes, seed=seed, device=device, dtype=dtype,
                      mode=mode, progress=progress, info=info)
    import scipy

    first = next(net.parameters())
    meta = {
        "model": model, "loss": loss, "batches_source": batches, "selection": blocks,
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "blocks": list(q.names), "pieces": info["blocks"],
        "mode": mode or ("train" if net.training else "eval"),
        "dtype": str(dtype or first.dtype).replace("torch.", ""), "device": info["device"],
        "lanczos_on": info["lanczos_on"], "batches": info["estimate"]["batches"],
        "hessian": "mean over the batches of the per-batch Hessian of loss(model, batch)",
        "slq": {"m": m, "probes": probes, "seed": seed, "reorth": "full, CGS2",
                "breakdown": [list(b) for b in q.breakdown], "status": list(q.status)},
        "estimate": info["estimate"], "hvp_products": int(info["hvp_products"]),
        "seconds": round(info["seconds"], 1), "quick": False,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "scipy": scipy.__version__},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return q, meta
