"""The optimizer contract: what passes between :func:`quadlab.run` and an optimizer of :mod:`quadlab.optim`.

An optimizer is a grid of hyperparameters and up to four callbacks, all called by the runner::

    state          = init(g0, hp, ctx)                    once, from the gradients at the starts
    (delta, state) = update(g, state, hp, ctx, t)         w_t = w_{t−1} − delta,  t = 1, 2, …
    state          = step(e, g, state, hp, ctx, t)        optional fused form: e ← e − delta in place
    spec           = linear(hp, ctx, g0)                  optional: the closed form (linear methods)

``g``, ``g0``, ``e`` and ``delta`` are trees: tuples with one array (k, R, d) per group of k equal-size blocks
(:mod:`quadlab._engine.layout`), R runs.  ``hp`` maps every grid hyperparameter except ``lr`` to its
per-run values in layout form (a Python float where every run shares the value, else an array (1, R, 1);
host (R,) float64 arrays on the closed-form path).  Everything else an optimizer knows about the problem it
asks ``ctx``, an object with exactly the members of :class:`Context`; nothing else passes.

The learning rate has one representation: every run's step as a host float64 array (R,), from
``ctx.lr(options)``, whether the grid configured it or a rule ("optimal", "theorem") resolved it for each
start (:func:`quadlab.rules.resolve_lr`).  ``linear`` passes it on as it is; ``init`` moves it into the
layout with ``ctx.per_run`` (the function every per-run hyperparameter goes through) and keeps it in the
state, where the Adam family's forms derive what they need from it (contiguous copies for numpy in place,
a column of the compiled step's parameters).

States are NamedTuples (below) whose fields are trees, layout-form per-run values, or host objects with a
``take_runs(keep)`` method; the runner keeps the runs that are still going by indexing axis 1 of every
array leaf, so a state holds nothing else.  Where ``ctx.inplace`` is true (numpy) ``update`` may overwrite
its own state and return a ``delta`` that lives in it (the runner consumes it before the next call); it
never keeps a reference to ``g``, which the runner overwrites with the next gradient.  Elsewhere
``update`` is pure.

Examples
--------
Gradient descent written against the contract alone gives :func:`quadlab.optim.gd`'s bits:

>>> import numpy as np
>>> import quadlab
>>> from quadlab import optim
>>> from quadlab.contract import GDState
>>> def init(g0, hp, ctx):
...     return GDState(ctx.per_run(ctx.lr({})))
>>> def update(g, state, hp, ctx, t):
...     return tuple(state.lr * x for x in g), state
>>> mine = optim.Optimizer("my_gd", {"lr": np.array([1e-3, 1e-2])}, init, update)
>>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
>>> a = quadlab.run(prob, mine, steps=50, record="all")
>>> b = quadlab.run(prob, optim.gd(lr=[1e-3, 1e-2]), steps=50, record="all", method="iterate")
>>> bool((a.grad_norm == b.grad_norm).all()), a.method
(True, 'iterate')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ._engine.adam_rule import AdamScalars
    from ._engine.layout import Layout

__all__ = ["Context", "GDState", "MomentumState", "PreconditionedState", "AdamState", "FusedAdamState", "SignState"]


@runtime_checkable
class Context(Protocol):
    """What an optimizer may ask the runner, and nothing more (the runner's ``_Context`` implements it).

    Attributes
    ----------
    xp : module
        The array namespace of the iterate (numpy, cupy, or any array-API namespace).
    layout : Layout or None
        The runner's group-major layout (:class:`quadlab._engine.layout.Layout`): ``per_coordinate``,
        ``per_block``, ``per_run``, ``block_mean``.  None on the closed-form path, where nothing is laid out.
    inplace : bool
        True on numpy: ``update`` may overwrite its state and return a delta that lives in it.
    fused : str
        The fused form the runner will call instead of ``update``: ``""`` (none), ``"numba"`` (the
        compiled numpy step, :mod:`quadlab._engine.kernels`) or ``"gpu"`` (cupy elementwise kernels,
        :mod:`quadlab._engine.adam_rule`); ``init`` builds the state that form expects.
    host_hp : dict of str to numpy.ndarray
        Every grid hyperparameter of every run, host float64 (R,), as configured.
    block_sizes : tuple of int
        The size of each block, in order (L blocks, sum n).
    """

    xp: Any
    layout: Layout | None
    inplace: bool
    fused: str
    host_hp: dict[str, np.ndarray]
    block_sizes: tuple[int, ...]

    def lr(self, options: dict) -> np.ndarray:
        """Every run's step, host float64 (R,): the configured lr, or the optimizer's rule
        (``options["lr"]``: "optimal", "theorem") resolved for each start by :func:`quadlab.rules.resolve_lr`."""
        ...

    def per_run(self, values: np.ndarray) -> float | Any:
        """Host per-run values (R,) in layout form: a Python float where every run shares the value, else an
        array (1, R, 1) of the iterate's dtype (the two give the same bits in every operation)."""
        ...

    def host_diag(self) -> np.ndarray:
        """diag(H) as stored, host float64 (n,)."""
        ...

    def block_steps(self, options: dict) -> np.ndarray:
        """Blockwise GD's per-block steps η_l, host float64 (L,): the oracle rule or the given array."""
        ...

    def require_nonzero_g0(self) -> None:
        """Raise ValueError naming the run and coordinate where ∇f(w_0) has an exact zero entry."""
        ...


class GDState(NamedTuple):
    """Gradient descent: delta = η g."""

    lr: Any  #: per-run step in layout form: float or (1, R, 1)


class MomentumState(NamedTuple):
    """Heavy ball and Nesterov in PyTorch's form: m ← β m + g."""

    m: tuple  #: the momentum buffer, one (k, R, d) leaf per group (m_0 = 0)
    lr: Any  #: per-run step in layout form: float or (1, R, 1)


class PreconditionedState(NamedTuple):
    """A fixed diagonal preconditioner: delta = η (p ∘ g) (Jacobi GD, blockwise GD, the Adam theory form)."""

    precond: tuple  #: p, one leaf per group: (k, 1, d) shared by the runs, or (k, R, d) per run (1/|g_0|)
    lr: Any  #: per-run step in layout form: float or (1, R, 1)


class SignState(NamedTuple):
    """(Momentum) sign descent: m ← β m + g, delta = η sign(m) (β = 0: delta = η sign(g))."""

    m: tuple  #: the momentum buffer, one (k, R, d) leaf per group; () when every run has β = 0
    scratch: tuple  #: numpy in place: one (k, R, d) buffer per leaf that receives delta; () elsewhere
    lr: Any  #: per-run step in layout form: float or (1, R, 1)


class AdamState(NamedTuple):
    """The Adam family (Adam, RMSprop, Adam-mini) on the numpy (in-place or functional) and GPU forms, in the
    stored form m_s = m/(1−β1), v' = v/(1−β2) of :mod:`quadlab._engine.adam_rule`."""

    m: tuple  #: m_s, one (k, R, d) leaf per group; () when every run has β1 = 0 (the first moment is g)
    v: tuple  #: v', (k, R, d) leaves; Adam-mini: one value per block, (k, R, 1) (or (1, R, n) broadcast)
    scratch: tuple  #: numpy in place: one (k, R, d) buffer per leaf that receives delta; () elsewhere
    lr: Any  #: per-run step: float; else (1, R, 1), or in place one contiguous (k, R, d) copy per leaf
    scalars: AdamScalars  #: the per-step s_t, e_t of every run (host)


class FusedAdamState(NamedTuple):
    """The Adam family on the compiled numpy step (:func:`quadlab._engine.kernels.adam_step`)."""

    m: tuple  #: as in :class:`AdamState`
    v: tuple  #: as in :class:`AdamState` (per coordinate: Adam-mini has no compiled numpy step)
    params: np.ndarray  #: (1, R, 6) per-run (η, β1, 1, β2, s_t, e_t), the kernel's ``ADAM_PARAMS``
    scalars: AdamScalars  #: the per-step s_t, e_t of every run (host)
