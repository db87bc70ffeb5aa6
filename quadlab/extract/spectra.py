"""Block spectra of any torch model: ``block_spectra(model, loss_fn, batches, blocks)`` → an :class:`SLQResult`.

The Hessian
-----------
For fixed batches B_1 … B_K and ``loss_fn(model, B_k)`` = L_k(θ), the Hessian is the mean

    H = (1/K) Σ_k ∇²L_k(θ).

A block is a set S of coordinates of θ (one tensor, several tensors, or a slice of one tensor), and its block
Hessian is the principal submatrix H_S = P_S H P_Sᵀ, where P_S ∈ {0, 1}^{|S|×n} picks the coordinates of S.
Its product with v ∈ R^{|S|} is computed without forming H: let T be the tensors that S touches and
g_k = ∇_T L_k (built once per batch with its graph, ``create_graph=True``); then

    H_S v = P_S (1/K) Σ_k ∇_T ⟨g_k, P_Sᵀ v⟩

(Pearlmutter's double backward): v is scattered into zero tensors shaped like T, the double backward gives the
product of the whole T×T Hessian with that vector, and only the coordinates of S are kept.  Attention through
``scaled_dot_product_attention`` is computed by its math backend during the products (the fused kernels have no
double backward).  A sub-tensor block
(rows, heads, tokens) therefore costs as much per product as its whole tensor, and the graphs g_k of one tensor
serve all of its sub-blocks.

Sub-tensor partitions (Adam-mini's)
-----------------------------------
``rows(pattern)``, ``heads(pattern, n)`` and ``tokens(pattern)`` split a tensor along its first dimension, which
is the output neuron of a ``Linear`` weight (out, in), the output channel of a convolution weight
(out, in, k, k) and the token of an ``Embedding`` weight (vocab, width).  Rows r₀ … r₁ − 1 of a C-ordered tensor
are the contiguous flat range [r₀·c, r₁·c) with c the size of a row, so every such block is one slice.
``heads(pattern, n)`` groups the rows into n equal consecutive groups (a query/key weight (H·d_h, in) per head);
``start``/``stop`` restrict to a row range first (the query third of a packed ``in_proj_weight``), and
``select`` keeps only some groups (a partition's blocks are independent, so taking a few saves their cost).

Where it runs
-------------
On the CPU (the default for a CPU model) the Lanczos vectors live in host numpy and each product goes through
torch on the host: the same path, bit for bit, as the shipped GPT2/ResNet18 extraction.  On another device
(a CUDA model, or ``on_device=True``) quadlab's one Lanczos loop (:func:`quadlab.lanczos.slq`) runs with torch as
its array namespace on that device: the probes are drawn on the host from the same seeds and moved there once,
products, reorthogonalisation and basis stay there, and only α_j and β_j (two float64 numbers per probe per
step) come back to the host, where the tridiagonals and their Gauss quadratures are formed as always.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import lanczos
from ..backend import Backend, check_memory
from .blocks import Split, heads, resolve_blocks, rows, tokens  # noqa: F401 (re-exported: __all__)

__all__ = ["Split", "block_spectra", "estimate", "heads", "resolve_blocks", "rows", "tokens"]


# ================================================================================================
# Products
# ================================================================================================
class _Products:
    """H_S V for every block S, by double backward through cached per-batch gradient graphs."""

    def __init__(self, model, loss_fn, batches, blocks: dict, dtype, mode, device):
        self.model, self.loss_fn, self.batches, self.blocks = model, loss_fn, batches, blocks
        self.dtype, self.mode, self.device = dtype, mode, device
        self.params = dict(model.named_parameters())
        self.products = 0  # one per column per batch (one double backward each)
        self.graphs = 0  # per-batch gradient graphs built (one forward + backward each)
        self._key: tuple | None = None
        self._gs: list = []

    def tensors(self, block: str) -> tuple[str, ...]:
        seen: list[str] = []
        for n, _, _ in self.blocks[block]:
            if n not in seen:
                seen.append(n)
        return tuple(seen)

    def gradients(self, key: tuple[str, ...]) -> list:
        # One set of graphs at a time (their memory is the model's activations × K); consecutive blocks on the same
        # tensors (the rows or heads of one weight) reuse it.
        if key != self._key:
            self._key, self._gs = None, []
            if self.mode is not None:
                self.model.train(self.mode == "train")
            ps = [self.params[n] for n in key]
            gs = []
            for i, batch in enumerate(self.batches):
                loss = self.loss_fn(self.model, batch)
                if not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
                    raise ValueError(f"loss_fn(model, batch) must return a scalar tensor; batch {i} gave "
                                     f"{type(loss).__name__} of shape {tuple(getattr(loss, 'shape', ()))}")
                g = torch.autograd.grad(loss.reshape(()), ps, create_graph=True, allow_unused=True)
                if any(x is None for x in g):
                    unused = [n for n, x in zip(key, g, strict=True) if x is None]
                    raise ValueError(f"the loss does not depend on {unused}; select parameters the loss uses")
                gs.append(tuple(x.reshape(-1) for x in g))
                self.graphs += 1
            self._key, self._gs = key, gs
        return self._gs

    def release(self):
        self._key, self._gs = None, []

    def hvp(self, block: str, V: torch.Tensor) -> torch.Tensor:
        """H_S V for V (|S|, p) in the model's dtype, on the model's device."""
        key = self.tensors(block)
        gs = self.gradients(key)
        ps = [self.params[n] for n in key]
        pieces = self.blocks[block]
        full = len(pieces) == len(key) and all(a == 0 and b == self.params[n].numel() for n, a, b in pieces)
        out = torch.zeros_like(V)
        for g in gs:
            for j in range(V.shape[1]):
                col = V[:, j].contiguous()
                if full:
                    # Whole tensors in order: the column is their concatenation (no scatter, the shipped path's bits).
                    vs, off = [], 0
                    for p in ps:
                        vs.append(col[off:off + p.numel()])
                        off += p.numel()
                else:
                    # P_Sᵀ v: scatter into zero tensors; the zeros make the product the restriction of H.
                    vs = [torch.zeros(p.numel(), dtype=V.dtype, device=V.device) for p in ps]
                    off = 0
                    for n, a, b in pieces:
                        vs[key.index(n)][a:b] = col[off:off + b - a]
                        off += b - a
                # retain_graph: each g_k's graph serves every later product of this block (and its siblings).
                hv = torch.autograd.grad(g, ps, grad_outputs=tuple(vs), retain_graph=True)
                if full:
                    out[:, j] += hv[0].reshape(-1) if len(hv) == 1 else torch.cat([h.reshape(-1) for h in hv])
                else:
                    out[:, j] += torch.cat([hv[key.index(n)].reshape(-1)[a:b] for n, a, b in pieces])
        self.products += V.shape[1] * len(gs)
        return out / len(gs)

    def host_matmat(self, block: str) -> Callable[[np.ndarray], np.ndarray]:
        def apply(X: np.ndarray) -> np.ndarray:
            # Host vectors, products on the model's device (on_device=False with a GPU model): two copies per step.
            V = torch.from_numpy(np.ascontiguousarray(X)).to(device=self.device, dtype=self.dtype)
            with torch.enable_grad():
                Y = self.hvp(block, V)
            return Y.detach().to(device="cpu", dtype=torch.float64).numpy()

        return apply

    def device_matmat(self, block: str) -> Callable:
        def apply(X: torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                Y = self.hvp(block, X.to(self.dtype))
            return Y.detach().to(torch.float64)

        return apply


# ================================================================================================
# quadlab's Lanczos on a torch device
# ================================================================================================
@dataclass(frozen=True)
class TorchBackend(Backend):
    """quadlab's array backend for torch tensors on one device (float64 Lanczos vectors).

    ``asarray`` puts host arrays on the device, ``to_numpy`` copies back; creation functions inside the loop
    (``xp.zeros``) land on the device because :func:`block_spectra` runs the loop under ``torch.device``."""

    device: Any = field(default=None)

    @property
    def is_gpu(self) -> bool:
        return torch.device(self.device).type != "cpu"

    def asarray(self, x, dtype=None):
        target = self.dtype if dtype is None else dtype
        if isinstance(x, torch.Tensor):
            return x.to(device=self.device, dtype=target)
        return torch.as_tensor(np.asarray(x), device=self.device).to(target)

    def to_numpy(self, x) -> np.ndarray:
        if isinstance(x, np.ndarray):
            return x
        return x.detach().cpu().numpy()

    def contiguous(self, x):
        return x.contiguous()

    def sync(self) -> None:
        if self.is_gpu and torch.device(self.device).type == "cuda":
            torch.cuda.synchronize(self.device)


def torch_backend(device) -> TorchBackend:
    import array_api_compat.torch as xp_torch

    return TorchBackend("torch", xp_torch, "float64", device=torch.device(device))


# ================================================================================================
# The API
# ================================================================================================
def _to(obj, device, dtype):
    """Move every tensor of a batch (tensors, tuples, lists, dicts) to ``device``; floating ones to ``dtype``."""
    if isinstance(obj, torch.Tensor):
        if dtype is not None and obj.is_floating_point():
            return obj.to(device=device, dtype=dtype)
        return obj.to(device=device)
    if isinstance(obj, tuple):
        return tuple(_to(o, device, dtype) for o in obj)
    if isinstance(obj, list):
        return [_to(o, device, dtype) for o in obj]
    if isinstance(obj, Mapping):
        return {k: _to(v, device, dtype) for k, v in obj.items()}
    return obj


def estimate(sizes: Mapping[str, int], m: int, probes: int, batches: int, graph_sets: int) -> dict:
    """The work of an extraction before it starts.

    Per block min(m, d_l) Lanczos steps, each one matmat of ``probes`` columns, each column one double backward
    per batch:

        products = probes · K · Σ_l min(m, d_l),   graphs = K · (number of distinct tensor sets),

    and the largest Lanczos basis, 8·probes·(min(m, d) + 1)·d bytes (float64; twice that at the peak of the
    reorthogonalisation).

    Parameters
    ----------
    sizes : mapping of str to int
        d_l per block.
    m, probes : int
        SLQ's Lanczos length and probes.
    batches : int
        K.
    graph_sets : int
        The number of distinct tensor sets (a set's first gradients are built once per batch).

    Returns
    -------
    dict
        "steps" (Σ_l min(m, d_l), the Lanczos length summed over blocks), "hvp_products", "graphs", "batches",
        "basis_bytes".

    Examples
    --------
    >>> from quadlab.extract.spectra import estimate
    >>> estimate({"a": 10, "b": 3}, m=5, probes=2, batches=4, graph_sets=2)["hvp_products"]
    64
    """
    steps = {b: min(m, d) for b, d in sizes.items()}
    return {"steps": int(sum(steps.values())), "hvp_products": int(probes * batches * sum(steps.values())),
            "graphs": int(batches * graph_sets), "batches": int(batches),
            "basis_bytes": int(max(2 * 8 * probes * (steps[b] + 1) * d for b, d in sizes.items()))}


def _check_int(v, name, lo=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


_DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
           torch.float64: torch.float64}


def block_spectra(model: torch.nn.Module, loss_fn: Callable, batches: Iterable, blocks=None, *, m: int = 100,
                  probes: int = 10, seed: int = 0, device=None, dtype=None, mode: str | None = None,
                  on_device: bool | None = None, progress: bool = False, flush_denormal: bool = True,
                  check_symmetric: bool = False, info: dict | None = None) -> lanczos.SLQResult:
    """Stochastic Lanczos quadrature of the block Hessians H_S = P_S H P_Sᵀ of any torch model.

    H = mean over ``batches`` of ∇² ``loss_fn(model, batch)`` (module docstring); block l's probes come from
    ``SeedSequence(seed).spawn(2L)[l]``, so a block's result depends on its position.

    Parameters
    ----------
    model : torch.nn.Module
    loss_fn : callable
        (model, batch) → scalar tensor.
    batches : iterable
        A list or a DataLoader; read once and kept, so the Hessian is of fixed batches.
    blocks : optional
        As for :func:`resolve_blocks`.
    m, probes, seed : int, keyword-only
        As for :func:`quadlab.slq.slq` (defaults 100, 10, 0).
    device, dtype : keyword-only, optional
        Where and in what precision the products run (default: the model's own); if either differs, a copy of
        the model is moved (yours is left alone) and the batches' tensors follow (floating ones cast).
    mode : {"eval", "train"} or None, keyword-only
        Set before the graphs are built (BatchNorm and dropout change the Hessian); None leaves the model's mode.
    on_device : bool, keyword-only, optional
        Run the Lanczos vectors on the model's device as torch tensors (default: only off the CPU).
    progress : bool, keyword-only, default False
        Print the cost estimate and a per-step bar (stderr).
    flush_denormal : bool, keyword-only, default True
        On the CPU flush subnormal floats to zero during the products (products on subnormals are many times
        slower).
    check_symmetric : bool, keyword-only, default False
        Spend one product per block on quadlab's symmetry probe (float32 products fail its float64 tolerance).
    info : dict, keyword-only, optional
        Filled with the blocks' pieces, the estimate, the products done, the device and the wall time.

    Returns
    -------
    SLQResult
        One quadrature per block, under the block's name.

    Raises
    ------
    ValueError
        If ``loss_fn`` is not callable, ``mode``/``dtype``/``device`` are invalid, ``batches`` is not an iterable
        or is empty, the model has no parameters, the selection is invalid (:func:`resolve_blocks`), the loss is
        not a scalar or does not depend on a block, the Lanczos bases would not fit in memory, or an operation
        has no double backward.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from quadlab.extract import block_spectra
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Linear(4, 1, bias=False).double()
    >>> X = torch.randn(30, 4, dtype=torch.float64)
    >>> q = block_spectra(model, lambda m, x: (m(x) ** 2).mean(), [X], m=4, probes=1)
    >>> nodes, w = q.measure("weight")
    >>> bool(np.allclose(np.sort(nodes), np.linalg.eigvalsh(2 * (X.T @ X).numpy() / 30)))
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise ValueError("loss_fn must be a callable loss_fn(model, batch) -> scalar tensor")
    m = _check_int(m, "m (Lanczos steps)")
    probes = _check_int(probes, "probes")
    seed = _check_int(seed, "seed", 0)
    if mode not in (None, "eval", "train"):
        raise ValueError(f"mode must be None, 'eval' or 'train', got {mode!r}")
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64' (or the torch dtype), got {dtype!r}")
    if isinstance(batches, (torch.Tensor, str, bytes)) or not isinstance(batches, Iterable):
        raise ValueError("batches must be an iterable of batches (a list or a DataLoader), not a "
                         f"{type(batches).__name__}; wrap a single batch as [batch]")
    first = next(iter(model.parameters()), None)
    if first is None:
        raise ValueError("the model has no parameters")
    dev = first.device if device is None else torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA device; leave device=None for the model's own")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())  # "cuda" is the model's "cuda:0": no copy
    tdtype = first.dtype if dtype is None else _DTYPES[dtype]
    if dev != first.device or tdtype != first.dtype:
        model = copy.deepcopy(model).to(device=dev, dtype=tdtype)
    batches = [_to(b, dev, None if dtype is None else tdtype) for b in batches]
    if not batches:
        raise ValueError("batches is empty: the Hessian is a mean over at least one batch")
    sel = resolve_blocks(model, blocks)
    sizes = {b: int(sum(e - s for _, s, e in pcs)) for b, pcs in sel.items()}
    prods = _Products(model, loss_fn, batches, sel, tdtype, mode, dev)
    est = estimate(sizes, m, probes, len(batches), len({prods.tensors(b) for b in sel}))
    device_loop = (dev.type != "cpu") if on_device is None else bool(on_device)
    if device_loop and dev.type == "cuda":
        free = torch.cuda.mem_get_info(dev)[0]
        if est["basis_bytes"] > free:
            raise ValueError(f"the Lanczos bases need about {est['basis_bytes'] / 2**30:.3g} GiB on {dev}, which has "
                             f"{free / 2**30:.3g} GiB free; lower m or probes, or split the block")
    else:
        check_memory(est["basis_bytes"], f"the Lanczos bases (m = {m}, {probes} probes, largest block "
                     f"{max(sizes.values())})", "lower m or probes, or split the block (rows/heads)")
    if progress:
        print(f"block_spectra: {len(sel)} blocks (largest {max(sizes.values())}), {est['steps']} Lanczos steps × "
              f"{probes} probes × {len(batches)} batches = {est['hvp_products']} Hessian-vector products "
              f"+ {est['graphs']} gradient graphs, on {dev}", file=sys.stderr, flush=True)
    if device_loop:
        ops = {b: prods.device_matmat(b) for b in sel}
        be = torch_backend(dev)
    else:
        ops = {b: prods.host_matmat(b) for b in sel}
        be = None
    bar = None
    if progress:
        ops, bar = _with_bar(ops, sizes, m)
    t0 = time.perf_counter()
    flush = flush_denormal and dev.type == "cpu"
    if flush:
        torch.set_flush_denormal(True)
    try:
        with _math_attention():
            if device_loop:
                with torch.device(dev):
                    q = lanczos.slq(ops, m=m, probes=probes, seed=seed, n=sizes, xp=be,
                                    check_symmetric=check_symmetric)
            else:
                q = lanczos.slq(ops, m=m, probes=probes, seed=seed, n=sizes, check_symmetric=check_symmetric)
    except RuntimeError as exc:
        if "derivative for" in str(exc) and "not implemented" in str(exc):
            raise ValueError(f"the model uses an operation without a double backward ({exc}); a Hessian-vector "
                             "product needs one: use the plain-torch form of that layer (e.g. attention written "
                             "out, not a fused kernel)") from None
        raise
    finally:
        if flush:
            torch.set_flush_denormal(False)
        if bar is not None:
            bar.close()
        prods.release()
    if info is not None:
        info.update(blocks={b: [list(p) for p in pcs] for b, pcs in sel.items()}, sizes=sizes, estimate=est,
                    hvp_products=prods.products, graphs=prods.graphs, device=str(dev), dtype=str(tdtype),
                    lanczos_on="device" if device_loop else "host", seconds=time.perf_counter() - t0)
    return q


def _math_attention():
    """``scaled_dot_product_attention`` restricted to its math backend: the fused CPU/GPU kernels (flash,
    memory-efficient) have no double backward, while the math backend is ordinary differentiable ops (so
    ``torch.nn.MultiheadAttention`` and ``TransformerEncoderLayer`` work).  Models that write attention out are
    unaffected."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - torch without the context manager
        import contextlib

        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


def _with_bar(ops: dict, sizes: dict, m: int) -> tuple[dict, object]:
    """Wrap each block's matmat so that one tqdm bar on stderr counts Lanczos steps, naming the current block."""
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(min(m, d) for d in sizes.values()), desc="Lanczos steps", unit="step", file=sys.stderr,
               dynamic_ncols=True)

    def wrap(name, f):
        def apply(X):
            bar.set_postfix_str(name, refresh=False)
            Y = f(X)
            bar.update(1)
            return Y

        return apply

    return {b: wrap(b, f) for b, f in ops.items()}, bar
