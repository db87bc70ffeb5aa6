"""Optimizers of the theory as small (init, update) pairs.

An :class:`Optimizer` holds hyperparameters and two functions:

    state            = init(g0, hp, ctx)
    (delta, state)   = update(g, state, hp, ctx, t)          w_{t} = w_{t-1} − delta,  t = 1, 2, …

``g`` and ``delta`` are trees (tuples of backend arrays in the runner's layout, see :mod:`quadlab._engine.layout`);
every hyperparameter in ``hp`` is a backend array of shape (1, R, 1), one value per run, so one call runs a
whole grid, or a Python float where every run shares the value.  A hyperparameter given as a 1-D array
spans a grid axis; several arrays span their outer product (in the order of the constructor's arguments).

Where ``ctx.inplace`` is true (the numpy backend) ``update`` may overwrite its own state and return a
``delta`` that lives in that state (the runner consumes it before the next call); it never keeps a
reference to ``g``, which the runner overwrites with the next gradient.  Elsewhere both are pure.

An optimizer may also carry a fused ``step(e, g, state, hp, ctx, t)`` that applies e ← e − delta in place
in one compiled pass (:mod:`quadlab._engine.kernels`); the runner uses it on numpy when ``ctx.fused`` is set, and
``init`` then builds the state that ``step`` expects.  Both routes give the same bits.

The linear methods (GD, heavy ball, Nesterov, Adam theory form, blockwise GD, Jacobi GD) also describe
themselves as ``e_{t+1} = A(e_t)`` in the preconditioned eigenbasis (``linear``), which lets
:func:`quadlab.run` skip iterating (see :mod:`quadlab._engine.closed_form`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from ._engine import kernels
from ._engine.layout import tmap

__all__ = [
    "Optimizer",
    "gd",
    "heavy_ball",
    "nesterov",
    "adam",
    "adam_theory",
    "rmsprop",
    "adam_mini",
    "blockwise_gd",
    "jacobi_gd",
    "sign_descent",
    "sign_descent_diagonal",
    "SPECTRA_SOURCES",
    "AdamScalars",
]

SPECTRA_SOURCES = ("exact", "lanczos")


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

    ``hyper`` maps each numeric hyperparameter to a 1-D float array; the runs are the outer product of
    these arrays.  ``options`` holds non-grid settings (e.g. ``bias_correction``, ``lr="theorem"``)."""

    name: str
    hyper: dict[str, np.ndarray]
    init: Callable = field(repr=False)
    update: Callable = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    linear: Callable | None = field(default=None, repr=False)
    step: Callable | None = field(default=None, repr=False)

    def grid(self) -> dict[str, np.ndarray]:
        """Hyperparameters per configuration: each entry (C,), C = product of the grid axes' lengths."""
        names = list(self.hyper)
        if not names:
            return {}
        mesh = np.meshgrid(*[self.hyper[k] for k in names], indexing="ij")
        return {k: m.reshape(-1) for k, m in zip(names, mesh, strict=True)}

    @property
    def n_configs(self) -> int:
        return int(np.prod([v.size for v in self.hyper.values()])) if self.hyper else 1

    @property
    def is_linear(self) -> bool:
        return self.linear is not None

    def with_hyper(self, **values) -> Optimizer:
        """The same optimizer with some hyperparameters replaced (validated like the constructor)."""
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


def _check_source(spectra: str) -> str:
    if spectra not in SPECTRA_SOURCES:
        raise ValueError(f"spectra must be one of {SPECTRA_SOURCES}, got {spectra!r}")
    return spectra


def _zeros(g):
    return tmap(lambda x: x * 0, g)


# -- GD family -------------------------------------------------------------------------------------
def gd(lr=1e-3, *, spectra: str = "exact") -> Optimizer:
    """Gradient descent, w ← w − η ∇f(w).

    ``lr="optimal"`` uses η* = 2/(λ_min + λ_max), the step that minimises max_i |1 − ηλ_i|, from the exact
    spectrum or from Lanczos estimates (``spectra="lanczos"``, with the safety margin on λ_max)."""
    _check_source(spectra)
    options = {"spectra": spectra}
    if isinstance(lr, str):
        if lr != "optimal":
            raise ValueError(f"gd: lr must be positive numbers or 'optimal', got {lr!r}")
        options["lr"] = "optimal"
        hyper = {}
    else:
        hyper = _hyper(lr=lr)

    def init(g0, hp, ctx):
        return (ctx.run_lr(hp, options),)

    def update(g, state, hp, ctx, t):
        (eta,) = state
        return tmap(lambda x: eta * x, g), state

    def linear(hp, ctx, g0):
        return LinearSpec("gd", ctx.host_lr(hp, options), None, None)

    return Optimizer("gd", hyper, init, update, options, linear)


def _momentum_family(name: str, lr, momentum, nesterov_: bool) -> Optimizer:
    hyper = _hyper(lr=lr, momentum=momentum)

    def init(g0, hp, ctx):
        return (_zeros(g0),)

    def update(g, state, hp, ctx, t):
        lr_, mu = hp["lr"], hp["momentum"]
        m = tmap(lambda m_, g_: mu * m_ + g_, state[0], g)
        if nesterov_:
            delta = tmap(lambda m_, g_: lr_ * (g_ + mu * m_), m, g)
        else:
            delta = tmap(lambda m_: lr_ * m_, m)
        return delta, (m,)

    def linear(hp, ctx, g0):
        return LinearSpec(name, hp["lr"], hp["momentum"], None)

    return Optimizer(name, hyper, init, update, {}, linear)


def heavy_ball(lr=1e-3, momentum=0.9) -> Optimizer:
    """SGD with momentum in PyTorch's form: m ← β m + g, w ← w − η m (m_0 = 0).

    On a quadratic each eigencomponent follows e_{t+1} = (1 + β − ηλ) e_t − β e_{t−1}; the best pair
    η = 4/(√λ_min + √λ_max)², β = ((√κ − 1)/(√κ + 1))² contracts by (√κ − 1)/(√κ + 1) per step."""
    return _momentum_family("heavy_ball", lr, momentum, False)


def nesterov(lr=1e-3, momentum=0.9) -> Optimizer:
    """Nesterov momentum in PyTorch's form: m ← β m + g, w ← w − η (g + β m) (m_0 = 0)."""
    return _momentum_family("nesterov", lr, momentum, True)


def jacobi_gd(lr=1.0) -> Optimizer:
    """Jacobi-preconditioned GD: w ← w − η g / diag(H)."""
    hyper = _hyper(lr=lr)

    def init(g0, hp, ctx):
        return (tmap(lambda d: 1.0 / d, ctx.layout.per_coordinate(ctx.host_diag())),)

    def update(g, state, hp, ctx, t):
        lr_ = hp["lr"]
        return tmap(lambda x, p: lr_ * (p * x), g, state[0]), state

    def linear(hp, ctx, g0):
        return LinearSpec("gd", hp["lr"], None, 1.0 / ctx.host_diag())

    return Optimizer("jacobi_gd", hyper, init, update, {}, linear)


def blockwise_gd(lr=1.0, *, block_lr="oracle", spectra: str = "exact") -> Optimizer:
    """Blockwise GD, one step per block: w_l ← w_l − η·η_l g_l.

    ``block_lr="oracle"`` takes η_l = 2/(λ_min(H_l) + λ_max(H_l)), the best GD step for block l alone (from
    the exact block spectra or Lanczos estimates); or give η_l as an array (L,).  ``lr`` multiplies every
    η_l (1 for the oracle itself); it is the grid axis a learning-rate search scans."""
    _check_source(spectra)
    options = {"spectra": spectra}
    if isinstance(block_lr, str):
        if block_lr != "oracle":
            raise ValueError(f"blockwise_gd: block_lr must be 'oracle' or an array of steps, got {block_lr!r}")
        options["block_lr"] = "oracle"
    else:
        b = np.asarray(block_lr, dtype=np.float64)
        if b.ndim != 1 or not np.isfinite(b).all() or (b <= 0).any():
            raise ValueError(f"blockwise_gd: block_lr must be a 1-D array of positive finite steps, got {block_lr!r}")
        options["block_lr"] = b
    hyper = _hyper(lr=lr)

    def init(g0, hp, ctx):
        return (ctx.layout.per_block(ctx.block_steps(options)),)

    def update(g, state, hp, ctx, t):
        lr_ = hp["lr"]
        return tmap(lambda x, s: lr_ * (s * x), g, state[0]), state

    def linear(hp, ctx, g0):
        steps = ctx.block_steps(options)
        return LinearSpec("gd", hp["lr"], None, np.repeat(steps, ctx.problem.block_sizes))

    return Optimizer("blockwise_gd", hyper, init, update, options, linear)


def adam_theory(lr="theorem", *, spectra: str = "exact") -> Optimizer:
    """Adam in the theory's form (β1 = 0, β2 = 1, v_0 = g_0∘g_0, ε = 0): w ← w − η g / |g_0|.

    A fixed diagonal preconditioner D = diag(|∇f(w_0)|), so the method is linear.  ``lr="theorem"`` takes the
    theorem's step η = min_l C_{l,1}, C_{l,1} = min_{i∈l} |g_{0,i}| / λ_max(H_l), per run (it depends on w_0).
    Every entry of g_0 must be non-zero."""
    _check_source(spectra)
    options = {"spectra": spectra}
    if isinstance(lr, str):
        if lr != "theorem":
            raise ValueError(f"adam_theory: lr must be positive numbers or 'theorem', got {lr!r}")
        options["lr"] = "theorem"
        hyper = {}
    else:
        hyper = _hyper(lr=lr)

    def init(g0, hp, ctx):
        absg = tmap(ctx.xp.abs, g0)
        ctx.require_nonzero_g0()
        return (tmap(lambda a: 1.0 / a, absg), ctx.run_lr(hp, options))

    def update(g, state, hp, ctx, t):
        inv, eta = state
        return tmap(lambda x, p: eta * (p * x), g, inv), state

    def linear(hp, ctx, g0):
        absg = np.abs(g0)
        return LinearSpec("gd", ctx.host_lr(hp, options), None, 1.0 / absg)

    return Optimizer("adam_theory", hyper, init, update, options, linear)


# -- adaptive (nonlinear) ---------------------------------------------------------------------------
class AdamScalars:
    """The per-step scalars of the Adam family, s_t and e_t, for every run, from host float64 arithmetic only.

    With c1 = 1−β1^t, c2 = 1−β2^t (both 1 without bias correction) and q = c1/(1−β1):

        s_t = q²(1−β2)/c2,    e_t = q·ε,    so that η m̂/(√v̂ + ε) = η m_s/(√(s_t v') + e_t)

    for the stored moments m_s = m/(1−β1) and v' = v/(1−β2) (see :func:`_adam_like`).  The values are
    computed for each distinct (β1, β2, ε) of the batch, 256 steps at a time, by the same numpy operations
    whatever the batch holds, so a run's scalars are the same bits alone or in any grid.  :meth:`at` returns
    Python floats where every run shares them (the update then broadcasts a scalar, which is faster) and
    per-run (R,) arrays otherwise; both carry the same values (a float is cast to the iterate's dtype exactly
    as a per-run array is).  β2 = 1 with bias correction gives c2 = 0 and s_t = 0/0 = NaN, the textbook
    update's own 0/0, and the run is flagged as diverged."""

    block = 256

    def __init__(self, b1, b2, eps, bias_correction: bool):
        combos = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in (b1, b2, eps)], axis=1)
        self.values, which = np.unique(combos, axis=0, return_inverse=True)
        self.bias_correction = bias_correction
        self._t0, self._s, self._e = None, None, None
        self._set_runs(which.reshape(-1))

    def _set_runs(self, which: np.ndarray) -> None:
        self.which = which
        # decided once per batch, not per step: every run on one (β1, β2, ε) gets Python floats
        self.shared = bool((which == which[0]).all())
        self._u = int(which[0])

    def take_runs(self, keep: np.ndarray) -> AdamScalars:
        """The scalars of the runs ``keep`` (host indices) only; values are unchanged."""
        out = object.__new__(AdamScalars)
        out.values, out.bias_correction = self.values, self.bias_correction
        out._t0, out._s, out._e = self._t0, self._s, self._e
        if self._t0 is not None:
            out._s_list, out._e_list = self._s_list, self._e_list
        out._set_runs(self.which[keep])
        return out

    def _fill(self, t: int) -> None:
        b1, b2, eps = (self.values[:, j][None, :] for j in range(3))
        ts = np.arange(t, t + self.block, dtype=np.float64)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            c1 = 1.0 - b1**ts if self.bias_correction else np.ones_like(ts * b1)
            c2 = 1.0 - b2**ts if self.bias_correction else np.ones_like(ts * b2)
            q = c1 / (1.0 - b1)
            self._s = q * q * (1.0 - b2) / c2
            self._e = q * eps
        # the same float64 values as Python floats, for the shared case's per-step lookup
        self._s_list, self._e_list = self._s.tolist(), self._e.tolist()
        self._t0 = t

    def at(self, t: int):
        """(s_t, e_t) for step t ≥ 1: floats when every run shares them, else (R,) host arrays."""
        if self._t0 is None or not self._t0 <= t < self._t0 + self.block:
            self._fill(t)
        i = t - self._t0
        if self.shared:
            return self._s_list[i][self._u], self._e_list[i][self._u]
        return self._s[i, self.which], self._e[i, self.which]


def _column(x):
    """A shared float, or a per-run (1, R, 1) array as (1, R), for one column of the fused step's (1, R, 6)."""
    return x if isinstance(x, float) else x[..., 0]


def _adam_inplace(g, m, v, scratch, lrs, b1, b2, s, e, mean):
    """One Adam step on numpy, in place, into the single buffer ``scratch`` (returned as delta):

        m ← m·β1 + g  (m = () when every β1 is 0: then m is g itself),
        v' ← v'·β2 + g∘g,    w ← √(v'·s) + e,    w ← (m / w)·η

    At most nine passes over the iterate and no allocation.  Every operation is the functional path's
    (``_adam_like``), with the same operands in the same order, so both give identical bits."""
    mul, add, div, sqrt = np.multiply, np.add, np.divide, np.sqrt
    for mi, gi in zip(m, g):
        mul(mi, b1, out=mi)
        add(mi, gi, out=mi)
    for gi, w in zip(g, scratch):
        mul(gi, gi, out=w)
    g2 = scratch if mean is None else mean(scratch)
    for vi, y in zip(v, g2):
        mul(vi, b2, out=vi)
        add(vi, y, out=vi)
    for a, vi, w, lr in zip(m or g, v, scratch, lrs):
        sqrt(mul(vi, s, out=w), out=w)  # w held g∘g until v absorbed it above
        add(w, e, out=w)
        mul(div(a, w, out=w), lr, out=w)
    return scratch


def _adam_like(name, lr, b1, b2, eps, bias_correction, per_block: bool) -> Optimizer:
    """Adam, RMSprop and Adam-mini, in one arithmetic form for every run, whatever the grid.

    With the stored moments m_s = m/(1−β1) and v' = v/(1−β2) (so m_s,t = β1 m_s,t−1 + g_t and v'_t = β2 v'_t−1
    + g_t∘g_t: no factor (1−β1) or (1−β2) per step, and no division that β2 = 1 could break),

        η m̂/(√v̂ + ε) = η (m/c1)/(√((1−β2) v'/c2) + ε) = η m_s/(√(s_t v') + e_t),
        s_t = q²(1−β2)/c2,  e_t = q ε,  q = c1/(1−β1),  c1 = 1−β1^t,  c2 = 1−β2^t,

    equal to the textbook update in exact arithmetic (c1, c2 = 1 without bias correction).  β1 ∈ [0, 1) keeps
    q finite.  With β1 = 0 the stored moment is 0·m + g = g; when every run has β1 = 0 it is not stored at
    all (the same bits).  s_t, e_t come from :class:`AdamScalars` (host float64, the same for a run alone
    and in any batch)."""
    hyper = _hyper(lr=lr, b1=b1, b2=b2, eps=eps)
    options = {"bias_correction": bool(bias_correction)}

    def init(g0, hp, ctx):
        no_m = isinstance(hp["b1"], float) and hp["b1"] == 0.0
        m = () if no_m else _zeros(g0)
        v = ctx.layout.block_mean(_zeros(g0)) if per_block else _zeros(g0)
        host = ctx.host_hp
        scalars = AdamScalars(host["b1"], host["b2"], host["eps"], options["bias_correction"])
        if ctx.fused:
            return (m, v, fused_params(g0[0], hp), scalars)
        if not ctx.inplace:
            return (m, v, (), (), scalars)
        # numpy: one buffer reused every step, and a per-run lr laid out at each leaf's full shape, because a
        # (1, R, 1) operand broadcast over (k, R, d) runs at about half the speed of a contiguous one
        scratch = tmap(np.empty_like, g0)
        lr_ = hp["lr"]
        lr_full = () if isinstance(lr_, float) else tmap(lambda x: np.ascontiguousarray(np.broadcast_to(lr_, x.shape)), g0)
        return (m, v, scratch, lr_full, scalars)

    def per_step(scalars, ctx, t):
        s, e = scalars.at(t)
        if isinstance(s, float):
            return s, e
        return ctx.layout.per_run(s), ctx.layout.per_run(e)

    def update(g, state, hp, ctx, t):
        m, v, scratch, lr_full, scalars = state
        b1_, b2_, lr_ = hp["b1"], hp["b2"], hp["lr"]
        s, e = per_step(scalars, ctx, t)
        mean = ctx.layout.block_mean if per_block else None
        if ctx.inplace:
            delta = _adam_inplace(g, m, v, scratch, lr_full or (lr_,) * len(g), b1_, b2_, s, e, mean)
            return delta, state
        # the functional path: the operations of _adam_inplace, in the same order
        sqrt = ctx.xp.sqrt
        if m:
            m = tuple(m_ * b1_ + g_ for m_, g_ in zip(m, g, strict=True))
        g2 = tuple(g_ * g_ for g_ in g)
        if mean is not None:
            g2 = mean(g2)
        v = tuple(v_ * b2_ + y for v_, y in zip(v, g2, strict=True))
        delta = tuple((a / (sqrt(v_ * s) + e)) * lr_ for a, v_ in zip(m or g, v, strict=True))
        return delta, (m, v, scratch, lr_full, scalars)

    def fused_params(leaf, hp):
        # (1, R, 6) per-run (η, β1, c, β2, s_t, e_t) in the leaves' dtype, as numpy casts Python floats;
        # c = 1: the stored moment is updated as m_s·β1 + g·1 = m_s·β1 + g exactly
        R = leaf.shape[1]
        cols = [hp["lr"], hp["b1"], 1.0, hp["b2"], 0.0, 0.0]
        P = np.empty((1, R, len(kernels.ADAM_PARAMS)), dtype=leaf.dtype)
        for j, x in enumerate(cols):
            P[..., j] = _column(x)
        return P

    def step(e, g, state, hp, ctx, t):
        m, v, P, scalars = state
        s, e_t = scalars.at(t)
        P[..., 4], P[..., 5] = s, e_t
        kernels.adam_step(e, g, m, v, P, check=t == 1)  # the shapes are the runner's: verified once
        return state

    return Optimizer(name, hyper, init, update, options, None, None if per_block else step)


def adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, *, bias_correction: bool = True) -> Optimizer:
    """Adam: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g∘g, w ← w − η m̂ / (√v̂ + ε), m_0 = v_0 = 0.

    With bias correction (the paper's Alg. 2) m̂ = m/(1−β1^t), v̂ = v/(1−β2^t); without (its Alg. 3)
    m̂ = m, v̂ = v.  Not linear for β2 < 1; no closed form.

    β1 = β2 = β ∈ (0, 1) is allowed and is the sign-descent limit studied by Kunstner et al. (2023): with
    weights w_s = (1−β)β^{t−s}, Cauchy–Schwarz gives (Σ w_s g_s)² ≤ (Σ w_s)(Σ w_s g_s²), i.e. |m_t| ≤
    √(1−β^t)·√v_t, so with bias correction and ε = 0 every coordinate moves by |η m̂/√v̂| ≤ η: a "soft"
    momentum sign descent, equal to η·sign(m) when the recent gradients of that coordinate share one
    magnitude (see :func:`sign_descent`).  β1 = β2 = 0 is refused (β2 must be > 0); use sign_descent."""
    return _adam_like("adam", lr, b1, b2, eps, bias_correction, per_block=False)


def rmsprop(lr=1e-3, b2=0.99, eps=1e-8, *, bias_correction: bool = False) -> Optimizer:
    """RMSprop = Adam with β1 = 0: v ← β2 v + (1−β2) g∘g, w ← w − η g / (√v + ε) (PyTorch's default:
    no bias correction, β2 = α = 0.99)."""
    return _adam_like("rmsprop", lr, 0.0, b2, eps, bias_correction, per_block=False)


def adam_mini(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, *, bias_correction: bool = True) -> Optimizer:
    """Adam-mini: Adam with one second moment per block, v_l ← β2 v_l + (1−β2) mean_{i∈l}(g_i²), shared by
    every coordinate of block l (m stays per coordinate)."""
    return _adam_like("adam_mini", lr, b1, b2, eps, bias_correction, per_block=True)


# -- sign descent ----------------------------------------------------------------------------------
def sign_descent(lr=1e-3, momentum=0.0) -> Optimizer:
    """(Momentum) sign descent: m ← β m + g, w ← w − η·sign(m) (m_0 = 0; β = 0: w ← w − η·sign(g)).

    Every coordinate moves by exactly η (or 0 where m_i = 0), whatever the gradient's scale: the β2 → β1
    limit of Adam (see :func:`adam`).  Both ``lr`` and ``momentum`` may be grids.

    Closed form: none in general (sign(m) couples the coordinates through H).  For a diagonal H with β = 0
    each coordinate moves independently by −η·sign(e_i) (sign(g_i) = sign(h_i e_i) = sign(e_i)), and
    :func:`sign_descent_diagonal` gives e_k exactly.  With a constant η the iterates end in a cycle of width
    η per coordinate, so ‖∇f‖ ≤ tol·‖∇f(w_0)‖ is reached only when η is small enough."""
    hyper = _hyper(lr=lr, momentum=momentum)

    def init(g0, hp, ctx):
        no_m = isinstance(hp["momentum"], float) and hp["momentum"] == 0.0
        m = () if no_m else _zeros(g0)
        return (m, tmap(np.empty_like, g0) if ctx.inplace else ())

    def update(g, state, hp, ctx, t):
        m, scratch = state
        lr_, mu = hp["lr"], hp["momentum"]
        if ctx.inplace:  # the functional path's operations, in its order, into the state's buffers
            for mi, gi in zip(m, g):
                np.add(np.multiply(mi, mu, out=mi), gi, out=mi)
            for a, w in zip(m or g, scratch):
                np.multiply(np.sign(a, out=w), lr_, out=w)
            return scratch, state
        if m:
            m = tuple(m_ * mu + g_ for m_, g_ in zip(m, g, strict=True))
        return tuple(ctx.xp.sign(a) * lr_ for a in (m or g)), (m, scratch)

    return Optimizer("sign_descent", hyper, init, update, {})


def sign_descent_diagonal(e0, lr: float, steps: int) -> np.ndarray:
    """The exact error e_k = w_k − w* of sign descent with β = 0 on a diagonal quadratic (h_i > 0).

    Each coordinate follows e ← e − η·sign(e) on its own: with a = |e_{0,i}| and K = ⌈a/η⌉,
    |e_k| = a − kη for k ≤ K, then it alternates between a − Kη ∈ (−η, 0] and a − (K−1)η ∈ (0, η] (staying
    at 0 if a/η is an integer).  Computed in float64 as a − kη, so it agrees with the iteration to rounding.

    Parameters
    ----------
    e0 : array (n,) the starting error.
    lr : the step η > 0.
    steps : k ≥ 0.

    Returns
    -------
    e_k : array (n,)

    Raises
    ------
    ValueError
        For a non-finite ``e0``, η ≤ 0 or a negative or fractional ``steps``.
    """
    e0 = np.asarray(e0, dtype=np.float64)
    if not np.isfinite(e0).all():
        raise ValueError("sign_descent_diagonal: e0 must be finite")
    lr = float(_grid_axis("lr", lr, *_LIMITS["lr"])[0])
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"sign_descent_diagonal: steps must be an integer >= 0, got {steps!r}")
    a, k = np.abs(e0), int(steps)
    K = np.ceil(a / lr)
    first = a - np.minimum(k, K) * lr
    late = (k > K) & (first != 0)
    # after K steps the coordinate alternates: odd (k − K) sits one step back, on the positive side
    out = np.where(late & ((k - K) % 2 == 1), a - (K - 1) * lr, first)
    return np.sign(e0) * out
