"""Blockwise Hessian-vector products of a torch model, as operators for quadlab's batched Lanczos.

For a parameter block θ_l (one named tensor, flattened to R^{d_l}) and a fixed list of batches B_1 … B_K, the
block Hessian is the mean of the per-batch Hessians of the loss,

    H_l = (1/K) Σ_k ∂²L(θ; B_k) / ∂θ_l²,

and H_l v is computed by double backpropagation: g_k = ∂L(θ; B_k)/∂θ_l is built once per batch with
``create_graph=True`` and kept, and each product is  H_l v = (1/K) Σ_k ∂(g_k · v)/∂θ_l  (Pearlmutter's trick).
Reusing g_k's graph for every Lanczos step saves one forward and one backward pass per product.  The mean (not
the sum) over batches keeps the eigenvalues independent of how many batches are used; the paper's public code
sums, which scales every eigenvalue by K.

Train or eval mode is a choice that changes the answer for networks with BatchNorm (eval: running statistics,
which at initialisation make BN nearly the identity; train: batch statistics, whose curvature enters the
Hessian).  It is an explicit argument here and is recorded with every spectrum; for GPT2 (no BatchNorm and
no dropout) the two modes coincide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["BlockHessian"]

_MODES = ("eval", "train")


class BlockHessian:
    """Hessian-vector products of ``loss(model, batch)`` with respect to named parameter blocks.

    H_l = mean over ``batches`` of ∇²_{p_l} loss; a product is one double backward per batch (the first
    gradients and their graphs are built once per block and cached).

    Parameters
    ----------
    model : torch.nn.Module
        In the dtype the products are computed in.
    loss : callable
        (model, batch) → scalar tensor.
    batches : sequence
        The fixed batches whose mean loss defines the Hessian (non-empty).
    blocks : sequence of str
        Names of parameters of ``model`` (``dict(model.named_parameters())`` keys), distinct.
    mode : {"eval", "train"}, keyword-only, default "eval"
        Set on the model before every graph is built.
    batched : bool, keyword-only, default False
        Compute the p columns of a matmat with one vectorised double backward (``is_grads_batched``) instead of
        a loop over columns; falls back to the loop if torch refuses.  Off by default: it was slower for the
        float32 GPT2 blocks on the CPU (bench/RESULTS.md).

    Attributes
    ----------
    products : int
        Hessian-vector products computed so far (one per column per batch).

    Raises
    ------
    ValueError
        If ``mode`` is unknown, ``batches`` is empty, a block names no parameter, or names repeat.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Linear(3, 1, bias=False)
    >>> X = torch.randn(20, 3)
    >>> def loss(m, batch):  # least squares: the Hessian of w is 2·XᵀX/N, whatever w is
    ...     return ((m(batch) ** 2).mean())
    >>> H = BlockHessian(model, loss, [X], ["weight"])
    >>> A, sizes = H.operators()
    >>> Y = A["weight"](np.eye(3))
    >>> sizes, bool(np.allclose(Y, 2 * (X.T @ X).double().numpy() / 20, atol=1e-5))
    ({'weight': 3}, True)
    """

    def __init__(self, model: torch.nn.Module, loss: Callable, batches: Sequence, blocks: Sequence[str], *,
                 mode: str = "eval", batched: bool = False):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if len(batches) == 0:
            raise ValueError("batches is empty: the Hessian is a mean over at least one batch")
        params = dict(model.named_parameters())
        missing = [b for b in blocks if b not in params]
        if missing:
            raise ValueError(f"no parameter named {missing}; the model has e.g. {list(params)[:6]}")
        if len(set(blocks)) != len(blocks):
            raise ValueError(f"block names repeat: {list(blocks)}")
        self.model, self.loss_fn, self.batches = model, loss, list(batches)
        self.blocks, self.mode, self.batched = list(blocks), mode, batched
        self.params = {b: params[b] for b in self.blocks}
        self.dtype = next(iter(self.params.values())).dtype
        self.products = 0  # Hessian-vector products computed (one per column per batch)
        self._graphs: dict[str, list] = {}

    def sizes(self) -> dict[str, int]:
        """The dimension d_l of every block.

        Returns
        -------
        dict of str to int
            Block name → d_l, the number of coordinates.
        """
        return {b: int(p.numel()) for b, p in self.params.items()}

    def _set_mode(self):
        self.model.train(self.mode == "train")

    def gradients(self, block: str) -> list:
        """The per-batch first gradients g_k of one block, with their graphs (built once, then cached; one block's
        graphs are kept at a time).

        Parameters
        ----------
        block : str

        Returns
        -------
        list of torch.Tensor
            One flat (d,) gradient per batch.
        """
        if block not in self._graphs:
            self._set_mode()
            p = self.params[block]
            self._graphs = {}  # keep one block's graphs alive at a time (memory)
            gs = []
            for batch in self.batches:
                (g,) = torch.autograd.grad(self.loss_fn(self.model, batch), p, create_graph=True)
                gs.append(g.reshape(-1))
            self._graphs[block] = gs
        return self._graphs[block]

    def release(self):
        """Drop the cached gradient graphs (frees their memory).
        """
        self._graphs = {}

    def hvp(self, block: str, V: torch.Tensor) -> torch.Tensor:
        """H_l V for one block.

        Parameters
        ----------
        block : str
        V : torch.Tensor
            (d, p), in the model's dtype.

        Returns
        -------
        torch.Tensor
            (d, p).
        """
        gs = self.gradients(block)
        p = self.params[block]
        out = torch.zeros_like(V)
        # retain_graph: each g_k's graph serves every later product of this block.
        for g in gs:
            if self.batched and V.shape[1] > 1:
                try:
                    (hv,) = torch.autograd.grad(g, p, grad_outputs=V.T.contiguous(), retain_graph=True,
                                                is_grads_batched=True)
                    out += hv.reshape(V.shape[1], -1).T
                    continue
                except RuntimeError:
                    self.batched = False  # an op without a batching rule: loop over columns from now on
            for j in range(V.shape[1]):
                (hv,) = torch.autograd.grad(g, p, grad_outputs=V[:, j].contiguous(), retain_graph=True)
                out[:, j] += hv.reshape(-1)
        self.products += V.shape[1] * len(gs)
        return out / len(gs)

    def matmat(self, block: str) -> Callable[[np.ndarray], np.ndarray]:
        """One block's product as a numpy matmat for :func:`quadlab.slq.slq`.

        Parameters
        ----------
        block : str

        Returns
        -------
        callable
            X (d, p) float64 numpy → H_l X (d, p) float64 numpy.
        """
        def apply(X: np.ndarray) -> np.ndarray:
            V = torch.from_numpy(np.ascontiguousarray(X)).to(self.dtype)
            with torch.enable_grad():
                Y = self.hvp(block, V)
            return Y.detach().to(torch.float64).numpy()

        return apply

    def operators(self) -> tuple[dict, dict]:
        """Every block's matmat and size, ready for ``slq(ops, n=sizes)``.

        Returns
        -------
        tuple of dict
            ({name: matmat}, {name: d}).
        """
        return {b: self.matmat(b) for b in self.blocks}, self.sizes()
