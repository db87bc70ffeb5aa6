"""Rebuild the stored GPT2 and ResNet18 block spectra: model at initialisation, fixed real batches, blockwise
Hessian-vector products, SLQ per block, and a record of every choice next to the numbers.

``extract("gpt2" | "resnet18", quick=False)`` returns (SLQResult, meta); :func:`quadlab.stored.save` writes it.
The configurations below are the ones the shipped files were built with; ``quick=True`` shrinks every size
(model, data, m, probes) so that the whole pipeline runs in seconds for the tests.
"""

from __future__ import annotations

import contextlib
import datetime
import platform
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from ..backend import check_memory
from .data import digit_batches, text_batches
from .models import GPT2, GPT2Config, ResNet18, ResNet18Config, gpt2_block_names, resnet18_block_names
from .spectra import block_spectra

__all__ = ["CONFIGS", "ExtractConfig", "extract"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ExtractConfig:
    """Everything that determines one stored spectrum.

    Attributes
    ----------
    model : {"gpt2", "resnet18"}
    model_config : GPT2Config or ResNet18Config
    blocks : tuple of int
        The layers (GPT2) or stages (ResNet18) whose blocks are taken.
    batches, batch_size : int
        The fixed real batches whose mean loss defines the Hessian.
    m, probes : int
        SLQ's Lanczos length and probes per block.
    mode : {"eval", "train"}, default "eval"
    dtype : {"float32", "float64"}, default "float32"
    init_seed, data_seed, probe_seed : int
        Seeds of the initialisation, the batches and the probes.
    extra : dict
        Anything else recorded in the header.
    """

    model: str
    model_config: object
    blocks: tuple  # layers (GPT2) or stages (ResNet18) whose blocks are taken
    batches: int
    batch_size: int
    m: int
    probes: int
    mode: str = "eval"
    dtype: str = "float32"
    init_seed: int = 0
    data_seed: int = 0
    probe_seed: int = 0
    extra: dict = field(default_factory=dict)


CONFIGS = {
    ("gpt2", False): ExtractConfig("gpt2", GPT2Config(layers=4, heads=4, width=128, context=64), (0, 3),
                                   batches=4, batch_size=8, m=80, probes=4),
    ("gpt2", True): ExtractConfig("gpt2", GPT2Config(layers=2, heads=2, width=32, context=16), (0,),
                                  batches=2, batch_size=4, m=12, probes=2),
    # 2 batches of 16 images: one ResNet18 double backward on 64 images took ~6 s on one core, which would put
    # the 8 blocks × 40 steps × 2 probes far past the 45-minute rebuild budget.
    ("resnet18", False): ExtractConfig("resnet18", ResNet18Config(), (0, 1, 2, 3), batches=2, batch_size=16,
                                       m=40, probes=2),
    ("resnet18", True): ExtractConfig("resnet18", ResNet18Config(widths=(4, 8, 8, 8)), (0, 1, 2, 3), batches=1,
                                      batch_size=8, m=10, probes=2),
}


@contextlib.contextmanager
def _flush_denormals():
    # At initialisation many second-order terms underflow into subnormal floats, and CPU arithmetic on
    # subnormals is ~50× slower (measured: 9 s vs 0.15 s per GPT2 Hessian-vector product).  Flushing them to
    # zero changes values below 1e-38 (float32) only.
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _resnet_blocks(model: ResNet18, stages) -> list[str]:
    # Per stage, the first convolution of its first BasicBlock and the last of its second: 2 blocks per stage
    # spread over the depth at half the cost of all 16 3×3 convolutions (a product costs about the same for
    # every block of an early stage, the stem included, since it backpropagates twice through the rest).
    names = resnet18_block_names(model, stages)
    return [n for n in names[1:] if n.endswith(".0.conv1.weight") or n.endswith(".1.conv2.weight")]


def _build(cfg: ExtractConfig):
    dtype = _DTYPES[cfg.dtype]
    torch.manual_seed(cfg.init_seed)
    if cfg.model == "gpt2":
        model = GPT2(cfg.model_config).to(dtype)
        batches, data = text_batches(cfg.batches, cfg.batch_size, cfg.model_config.context, cfg.data_seed)
        names = gpt2_block_names(cfg.model_config, cfg.blocks)
    elif cfg.model == "resnet18":
        model = ResNet18(cfg.model_config).to(dtype)
        batches, data = digit_batches(cfg.batches, cfg.batch_size, cfg.data_seed, dtype=dtype)
        names = _resnet_blocks(model, cfg.blocks)
    else:
        raise ValueError(f"unknown model {cfg.model!r}; choose 'gpt2' or 'resnet18'")
    return model, batches, data, names


def extract(model: str, quick: bool = False, *, progress: bool = False, threads: int | None = None, **overrides):
    """SLQ of every chosen block of a shipped model at initialisation: the pipeline behind the shipped spectra.

    Parameters
    ----------
    model : {"gpt2", "resnet18"}
    quick : bool, default False
        The toy configuration (seconds; for tests).
    progress : bool, keyword-only, default False
        Print a progress bar.
    threads : int, keyword-only, optional
        torch's intra-op threads for the products (default: 1 for ``quick``, else torch's default).  Small
        models and shared machines want 1: torch's OpenMP threads spin while they wait (measurements in
        bench/RESULTS.md).
    **overrides
        Fields of the stored :class:`ExtractConfig` to replace (e.g. ``m=``, ``probes=``, ``mode=``, ``dtype=``).

    Returns
    -------
    tuple
        (SLQResult, meta); meta is a JSON-ready dict: configuration, data provenance, library versions, date,
        number of Hessian-vector products and wall time.

    Raises
    ------
    ValueError
        If ``model`` is unknown, an override names no field or gives a bad dtype, or ``threads`` is not a
        positive integer.

    Examples
    --------
    >>> from quadlab.extract import extract
    >>> q, meta = extract("gpt2", quick=True, m=3, probes=1)
    >>> len(q.names) > 0, meta["model"], q.m
    (True, 'gpt2', 3)
    """
    key = (model, bool(quick))
    if key not in CONFIGS:
        raise ValueError(f"unknown model {model!r}; choose 'gpt2' or 'resnet18'")
    unknown = sorted(set(overrides) - {f.name for f in fields(ExtractConfig)})
    if unknown:
        raise ValueError(f"extract: no configuration field {unknown}; fields: {[f.name for f in fields(ExtractConfig)]}")
    cfg = replace(CONFIGS[key], **overrides) if overrides else CONFIGS[key]
    if cfg.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {cfg.dtype!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads or (1 if quick else saved_threads))
    t0, c0 = time.perf_counter(), time.process_time()
    with _flush_denormals():
        net, batches, data, names = _build(cfg)
        params = dict(net.named_parameters())
        sizes = {b: int(params[b].numel()) for b in names}
        # Lanczos with full reorthogonalisation keeps probes × m_l basis vectors of length d_l per block (and
        # equal-size blocks advance together): refuse now, with the estimate, rather than after an hour.
        by_size: dict = {}
        for d in sizes.values():
            by_size[d] = by_size.get(d, 0) + 1
        check_memory(max(2 * 8 * cfg.probes * min(cfg.m, d) * d * k for d, k in by_size.items()),
                     f"the Lanczos bases of {cfg.model} (m = {cfg.m}, {cfg.probes} probes, largest block "
                     f"{max(sizes.values())})", "lower --m or --probes")
        # The one path from a torch model to block spectra (quadlab.extract.block_spectra; on the CPU the same
        # products and the same Lanczos as BlockHessian into lanczos.slq, bit for bit).  No symmetry probe:
        # autograd's products are symmetric by construction (up to float32 rounding, far above slq's float64
        # tolerance), and the probe would add a product per block to the recorded count.
        run: dict = {}
        q = block_spectra(net, lambda mod, b: mod.loss(b), batches, list(names), m=cfg.m, probes=cfg.probes,
                          seed=cfg.probe_seed, mode=cfg.mode, progress=progress, check_symmetric=False, info=run)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    used_threads = torch.get_num_threads()
    torch.set_num_threads(saved_threads)
    import scipy

    meta = {
        "model": cfg.model,
        "model_config": cfg.model_config.as_dict(),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "blocks": list(names),
        "block_shapes": {b: list(dict(net.named_parameters())[b].shape) for b in names},
        "mode": cfg.mode,
        "mode_note": ("BatchNorm uses running statistics (eval)" if cfg.mode == "eval"
                      else "BatchNorm uses batch statistics (train)") if cfg.model == "resnet18"
        else "no BatchNorm or dropout: train and eval coincide",
        "dtype": cfg.dtype,
        "denormals": "flushed to zero during the products",
        "init_seed": cfg.init_seed,
        "hessian": "mean over the fixed batches of the per-batch Hessian of the mean cross-entropy",
        "data": data,
        "slq": {"m": cfg.m, "probes": cfg.probes, "seed": cfg.probe_seed, "reorth": "full, CGS2",
                "breakdown": [list(b) for b in q.breakdown], "status": list(q.status)},
        "hvp_products": int(run["hvp_products"]),
        "seconds": round(elapsed, 1),
        # CPU time of this process: on a shared machine the honest measure of what a quiet one would take.
        "cpu_seconds": round(cpu, 1),
        "quick": bool(quick),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "scipy": scipy.__version__},
        "threads": used_threads,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return q, meta

