"""The runner's side of the optimizer contract: :class:`RunContext` implements
:class:`quadlab.contract.Context` for one batch of runs."""

from __future__ import annotations

import numpy as np

from .. import rules
from .layout import Layout

__all__ = ["RunContext", "hyperparameter"]


def hyperparameter(values: np.ndarray, lay: Layout):
    """A Python float where every run shares the value (the update then needs no per-run broadcast and the
    per-step scalars can be formed on the host), else the backend array (1, R, 1)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v[0]) if (v == v[0]).all() else lay.per_run(v)


class RunContext:
    """The runner's side of the optimizer contract: implements :class:`quadlab.contract.Context` for one
    batch, in the runner's layout (``layout`` None on the closed-form path)."""

    def __init__(self, problem, layout: Layout | None, g0_host: np.ndarray, w0_host: np.ndarray, inplace: bool):
        self._problem = problem
        self._w0 = w0_host
        self._g0 = g0_host
        self.host_hp = {}  # name → host float64 (R,) per-run hyperparameters, as configured
        self.layout = layout
        self.xp = problem.xp
        self.block_sizes = tuple(problem.block_sizes)
        # numpy arrays may be updated in place (out=); other namespaces (array_api_strict, cupy) get the
        # functional path, which numpy's in-place path reproduces bit for bit
        self.inplace = inplace and problem.backend.name == "numpy"
        self.fused = ""  # "numba" or "gpu": set by the iterate runner when an optimizer's fused form will be used

    @property
    def g0_host(self) -> np.ndarray:
        """∇f(w_0) of every run, host float64 (R, n) (the runner's stop and divergence thresholds; not part of
        the optimizer contract)."""
        return self._g0

    def lr(self, options) -> np.ndarray:
        """Every run's step, host float64 (R,): the configured lr, or the optimizer's rule (:func:`rules.resolve_lr`)."""
        if options.get("lr") is None:
            return np.asarray(self.host_hp["lr"], dtype=np.float64)
        return rules.resolve_lr(self._problem, options, self._w0)

    def per_run(self, values):
        """Host (R,) → a float where every run shares the value, else (1, R, 1) (:func:`hyperparameter`)."""
        return hyperparameter(values, self.layout)

    def host_diag(self) -> np.ndarray:
        return self._problem.backend.to_numpy(self._problem.diagonal()).astype(np.float64)

    def block_steps(self, options) -> np.ndarray:
        """Blockwise GD's per-block steps: the oracle rule resolved by :mod:`quadlab.rules`, or the given array."""
        steps = options["block_lr"]
        if isinstance(steps, str):  # "oracle"
            return rules.oracle_block_lrs(self._problem, options["source"])
        if steps.size != self._problem.spectrum.n_blocks:
            raise ValueError(f"blockwise_gd: {steps.size} block steps given for {self._problem.spectrum.n_blocks} blocks")
        return steps

    def require_nonzero_g0(self):
        if (self._g0 == 0).any():
            r, i = np.argwhere(self._g0 == 0)[0]
            raise ValueError(
                f"adam_theory: the initial gradient of run {r} is exactly zero at coordinate {i}; the theory form "
                "divides by |g_0| and the theorem needs every entry non-zero. Perturb the start, e.g. "
                "w0 + 1e-8 * np.random.default_rng(0).standard_normal(n)"
            )
