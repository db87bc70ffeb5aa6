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
        """Every run's step η: the configured lr, or the optimizer's rule resolved for each start.

        Parameters
        ----------
        options : dict
            The optimizer's options; ``options["lr"]`` may name a rule ("optimal", "theorem") that
            :func:`quadlab.rules.resolve_lr` resolves for each start.

        Returns
        -------
        numpy.ndarray
            Host float64 (R,), one step per run.
        """
        ...

    def per_run(self, values: np.ndarray) -> float | Any:
        """Host per-run values in layout form, the one way every per-run hyperparameter enters a state.

        Parameters
        ----------
        values : numpy.ndarray
            Host (R,), one value per run.

        Returns
        -------
        float or array
            A Python float where every run shares the value, else an array (1, R, 1) of the iterate's dtype
            (the two give the same bits in every operation).
        """
        ...

    def host_diag(self) -> np.ndarray:
        """diag(H) as stored (Jacobi's preconditioner is its inverse).

        Returns
        -------
        numpy.ndarray
            Host float64 (n,): H_ii in coordinate order.
        """
        ...

    def block_steps(self, options: dict) -> np.ndarray:
        """Blockwise GD's per-block steps η_l (w_l ← w_l − η_l g_l on block l).

        Parameters
        ----------
        options : dict
            The optimizer's options: the oracle rule (:func:`quadlab.rules.oracle_block_lrs`) or a given
            array of L steps.

        Returns
        -------
        numpy.ndarray
            Host float64 (L,), one step per block in block order.
        """
        ...

    def require_nonzero_g0(self) -> None:
        """Raise ValueError naming the run and coordinate where ∇f(w_0) has an exact zero entry."""
        ...


class GDState(NamedTuple):
    """Gradient descent: delta = η g.

    Attributes
    ----------
    lr : float or array (1, R, 1)
        The per-run step η in layout form (:meth:`Context.per_run`).
    """

    lr: Any


class MomentumState(NamedTuple):
    """Heavy ball and Nesterov in PyTorch's form: m ← β m + g.

    Attributes
    ----------
    m : tuple
        The momentum buffer, one (k, R, d) leaf per group (m_0 = 0).
    lr : float or array (1, R, 1)
        As in :class:`GDState`.
    """

    m: tuple
    lr: Any


class PreconditionedState(NamedTuple):
    """A fixed diagonal preconditioner: delta = η (p ∘ g) (Jacobi GD, blockwise GD, the Adam theory form).

    Attributes
    ----------
    precond : tuple
        p, one leaf per group: (k, 1, d) shared by the runs, or (k, R, d) per run (the theory form's 1/|g_0|).
    lr : float or array (1, R, 1)
        As in :class:`GDState`: the overall step η, on top of any per-block steps folded into p.
    """

    precond: tuple
    lr: Any


class SignState(NamedTuple):
    """(Momentum) sign descent: m ← β m + g, delta = η sign(m) (β = 0: delta = η sign(g)).

    Attributes
    ----------
    m : tuple
        The momentum buffer, one (k, R, d) leaf per group; () when every run has β = 0.
    scratch : tuple
        On numpy in place, one (k, R, d) buffer per leaf that receives delta; () elsewhere.
    lr : float or array (1, R, 1)
        As in :class:`GDState`.
    """

    m: tuple
    scratch: tuple
    lr: Any


class AdamState(NamedTuple):
    """The Adam family (Adam, RMSprop, Adam-mini) on the numpy (in-place or functional) and GPU forms, in the
    stored form m_s = m/(1−β1), v' = v/(1−β2) of :mod:`quadlab._engine.adam_rule`.

    Attributes
    ----------
    m : tuple
        m_s, one (k, R, d) leaf per group; () when every run has β1 = 0 (the first moment is g).
    v : tuple
        v', (k, R, d) leaves; Adam-mini: one value per block, (k, R, 1) (or (1, R, n) broadcast).
    scratch : tuple
        As in :class:`SignState`.
    lr : float or array
        The per-run step: a float; else (1, R, 1), or in place one contiguous (k, R, d) copy per leaf.
    scalars : AdamScalars
        The per-step scalars s_t, e_t of every run, host (:class:`quadlab._engine.adam_rule.AdamScalars`).
    """

    m: tuple
    v: tuple
    scratch: tuple
    lr: Any
    scalars: AdamScalars


class FusedAdamState(NamedTuple):
    """The Adam family on the compiled numpy step (:func:`quadlab._engine.kernels.adam_step`).

    Attributes
    ----------
    m, scalars
        As in :class:`AdamState`.
    v : tuple
        As in :class:`AdamState`, per coordinate (Adam-mini has no compiled numpy step).
    params : numpy.ndarray
        (1, R, 6), every run's (η, β1, 1, β2, s_t, e_t): the kernel's ``ADAM_PARAMS``.
    """

    m: tuple
    v: tuple
    params: np.ndarray
    scalars: AdamScalars
