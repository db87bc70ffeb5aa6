"""The optimizer object and its hyperparameter grids: :class:`Optimizer` (re-exported by :mod:`quadlab.optim`),
:class:`LinearSpec` for the closed form, and the validation of every hyperparameter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from .layout import tmap


class LinearSpec(NamedTuple):
    """e_{t+1} in closed form: z = P^{-1/2} e evolves under M = P^{1/2} H P^{1/2} with a scalar recurrence
    per eigenvalue μ of M.  ``kind``: "gd" (z ← (1−ημ) z), "heavy_ball" or "nesterov" (2×2 recurrences,
    momentum β).  ``precond``: host (R, n) or (n,) diagonal of P, or None for P = I."""

    kind: str
    eta: np.ndarray  # (R,)
    momentum: np.ndarray | None  # (R,)
    precond: np.ndarray | None


@dataclass(frozen=True)
class Optimizer:
    """An update rule with its hyperparameter grid.

    Built by a factory of :mod:`quadlab.optim` (:func:`gd`, :func:`adam`, …), or directly for a rule of one's own
    written against :mod:`quadlab.contract` (its docstring has an example).

    Attributes
    ----------
    name : str
        The factory's name ("gd", "adam", …).
    hyper : dict of str to numpy.ndarray
        Each numeric hyperparameter's 1-D float64 grid axis; the configurations are their outer product.
    init, update : callable
        The contract's callbacks (:mod:`quadlab.contract`).
    options : dict
        Non-grid settings, e.g. ``bias_correction``, ``lr="optimal"``, ``spectra``.
    linear : callable or None
        ``linear(hp, ctx, g0) -> LinearSpec`` for the methods with a closed form; None otherwise.
    step, gpu_step : callable or None
        The fused forms, numba on numpy and cupy elementwise kernels (the Adam family); None otherwise.

    Examples
    --------
    >>> from quadlab import optim
    >>> opt = optim.adam(lr=[1e-3, 1e-2], b1=[0.0, 0.9])
    >>> opt.n_configs, opt.is_linear
    (4, False)
    >>> opt.grid()["b1"].tolist()
    [0.0, 0.9, 0.0, 0.9]
    """

    name: str
    hyper: dict[str, np.ndarray]
    init: Callable = field(repr=False)
    update: Callable = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    linear: Callable | None = field(default=None, repr=False)
    step: Callable | None = field(default=None, repr=False)
    gpu_step: Callable | None = field(default=None, repr=False)

    def grid(self) -> dict[str, np.ndarray]:
        """Hyperparameters per configuration.

        Returns
        -------
        dict of str to numpy.ndarray
            Each grid hyperparameter at every configuration, (C,) with C = :attr:`n_configs`, the last
            hyperparameter varying fastest; empty when the optimizer has no grid axis.

        Examples
        --------
        >>> from quadlab import optim
        >>> optim.heavy_ball(lr=[0.1, 0.2], momentum=[0.5, 0.9]).grid()["lr"].tolist()
        [0.1, 0.1, 0.2, 0.2]
        """
        names = list(self.hyper)
        if not names:
            return {}
        mesh = np.meshgrid(*[self.hyper[k] for k in names], indexing="ij")
        return {k: m.reshape(-1) for k, m in zip(names, mesh, strict=True)}

    @property
    def n_configs(self) -> int:
        """C, the number of configurations: the product of the grid axes' lengths (1 without a grid)."""
        return int(np.prod([v.size for v in self.hyper.values()])) if self.hyper else 1

    @property
    def is_linear(self) -> bool:
        """True where the update is linear in the error, so :func:`quadlab.run` can use the closed form."""
        return self.linear is not None

    def with_hyper(self, **values) -> Optimizer:
        """The same optimizer with some grid hyperparameters replaced.

        Parameters
        ----------
        **values : float or array_like
            New values (a number or a 1-D array) for hyperparameters the optimizer has.

        Returns
        -------
        Optimizer
            A copy with those grid axes replaced, everything else shared.

        Raises
        ------
        ValueError
            If a name is not a grid hyperparameter of this optimizer, or a value is outside its range
            (the constructor's checks).

        Examples
        --------
        >>> from quadlab import optim
        >>> optim.adam(lr=[1e-3, 1e-2]).with_hyper(lr=3e-3).hyper["lr"].tolist()
        [0.003]
        """
        hyper = dict(self.hyper)
        for k, v in values.items():
            if k not in hyper:
                raise ValueError(f"{self.name} has no grid hyperparameter {k!r}; it has {sorted(hyper)}")
            hyper[k] = _grid_axis(k, v, *_LIMITS[k])
        return replace(self, hyper=hyper)


# -- validation ------------------------------------------------------------------------------------
_LIMITS = {  # name: (lo, hi, lo_open, hi_open)
    "lr": (0.0, np.inf, True, True),
    "momentum": (0.0, 1.0, False, False),
    "b1": (0.0, 1.0, False, True),  # β1 < 1: the bias correction divides by 1 − β1^t
    "b2": (0.0, 1.0, True, False),  # β2 > 0: β2 = 0 keeps no second moment (v = g², sign descent)
    "eps": (0.0, np.inf, False, True),
}


def _grid_axis(name, value, lo, hi, lo_open, hi_open) -> np.ndarray:
    a = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D array, got shape {np.shape(value)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite, got {a[~np.isfinite(a)][0]!r}")
    bad = (a <= lo if lo_open else a < lo) | (a >= hi if hi_open else a > hi)
    if bad.any():
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        what = "positive" if name == "lr" else f"in {interval}"
        raise ValueError(f"{name} must be {what}, got {float(a[bad][0])!r}")
    return a


def _hyper(**kw) -> dict[str, np.ndarray]:
    return {k: _grid_axis(k, v, *_LIMITS[k]) for k, v in kw.items()}


def _zeros(g):
    return tmap(lambda x: x * 0, g)
