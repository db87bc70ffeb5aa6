"""The Adam family's update, defined once, and every form that evaluates it.

With the stored moments m_s = m/(1−β1) and v' = v/(1−β2) (so m_s,t = β1 m_s,t−1 + g_t and v'_t = β2 v'_t−1
+ g_t∘g_t: no factor (1−β1) or (1−β2) per step, and no division that β2 = 1 could break),

    η m̂/(√v̂ + ε) = η (m/c1)/(√((1−β2) v'/c2) + ε) = η m_s/(√(s_t v') + e_t),
    s_t = q²(1−β2)/c2,  e_t = q ε,  q = c1/(1−β1),  c1 = 1−β1^t,  c2 = 1−β2^t,

equal to the textbook update in exact arithmetic (c1 = c2 = 1 without bias correction); β1 ∈ [0, 1) keeps q
finite.  With β1 = 0 the stored moment is 0·m + g = g; when every run has β1 = 0 it is not stored at all (the
same bits).  Adam-mini keeps one v' per block, updated with the block mean of g∘g.

The update is data, :data:`STEP`: four assignments over the names g, m, v, s, e, lr (``a`` is m, or g when
there is no first moment), each a tree of binary operations and ``sqrt``::

    m     = (m · β1) + g                  (only with a first moment)
    g2    = g · g                         (Adam-mini: then its block mean)
    v     = (v · β2) + g2
    delta = (a / (√(v · s) + e)) · η      and  e ← e − delta

:class:`Program` compiles each tree once into two Python functions, rendered from the tree as the GPU
kernels' C is: one with Python's operators (new arrays, any namespace) and one of numpy ufunc calls into
a preallocated buffer (the same operations in the same order, so the same bits).  :class:`AdamRule` runs
the step in every form: ``functional`` and ``inplace`` with those functions, ``fused`` with the compiled
numpy step (:func:`quadlab._engine.kernels.adam_step`, whose loop the tests check against the trees) and
``gpu`` with cupy elementwise kernels whose C source is rendered from the trees.  The GPU kernels are compiled with ``--fmad=false``: no multiply-add is contracted, and CUDA's default
``sqrt`` and ``/`` are correctly rounded, so each element goes through the IEEE operations of the numpy
forms; :class:`EmulatedKernel` evaluates a kernel's statements with numpy the way the kernel does (every
output written at the end, temporaries per element) and stands in for cupy in the CPU tests.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import numpy as np

from ..contract import AdamState, FusedAdamState
from . import kernels, portable
from .layout import tmap

__all__ = ["AdamScalars", "AdamRule", "STEP", "Program", "KernelSpec", "EmulatedKernel", "to_c", "evaluate",
           "gpu_enabled"]

# -- the update as data ------------------------------------------------------------------------------
M_UPDATE = ("m", ("+", ("*", "m", "b1"), "g"))
G2 = ("g2", ("*", "g", "g"))
V_UPDATE = ("v", ("+", ("*", "v", "b2"), "g2"))
DELTA = ("delta", ("*", ("/", "a", ("+", ("sqrt", ("*", "v", "s")), "e")), "lr"))
E_UPDATE = ("x", ("-", "x", "delta"))  # the iterate (error) e is ``x`` in kernels: ``e`` is e_t
STEP = (M_UPDATE, G2, V_UPDATE, DELTA)

_UFUNCS = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "sqrt": np.sqrt}


def substitute(expr, names: dict):
    """``expr`` with its leaf names replaced by ``names`` (e.g. ``a`` by ``m`` or ``g``)."""
    if isinstance(expr, str):
        return names.get(expr, expr)
    return (expr[0], *(substitute(x, names) for x in expr[1:]))


class Program:
    """An expression tree compiled once into two Python functions that evaluate it in the tree's order.

    The tree is flattened into steps (op, left, right) over one accumulator, an operand being a name or
    None for the accumulator (right is "" for ``sqrt``); this needs no operation to have two subtrees as
    operands, which holds for :data:`STEP`.  From the steps, source text is rendered and compiled (as the
    C of the GPU kernels is rendered from the same tree):

    * :meth:`functional` ``(sqrt, **names)``: one expression with Python's operators, fully parenthesised,
      new arrays on any namespace;
    * :meth:`inplace` ``(out, **names)``: one numpy ufunc call per step, each writing into ``out``.

    Both apply the same IEEE operations to the same operands in the same order, so they give the same
    bits.  Compiled code rather than a walk of the tree per call: the Adam step runs once per iteration on
    arrays of a few hundred entries, where a walk's Python overhead doubles its cost."""

    def __init__(self, expr, params: tuple[str, ...] | None = None):
        steps: list = []
        self._flatten(expr, steps)
        self.steps = tuple(steps)
        names = tuple(dict.fromkeys(x for _, *xs in steps for x in xs if x))
        # the callers' argument order: declared where the rule calls the program positionally (a keyword
        # call costs about a microsecond more, a dozen times per step)
        self.params = names if params is None else tuple(params)
        if sorted(self.params) != sorted(names):
            raise ValueError(f"Program: parameters {self.params} are not the operands {names}")
        args = ", ".join(self.params)
        calls = []
        for op, x, y in steps:
            operands = ["out" if v is None else v for v in (x, y) if v != ""]
            calls.append(f"    {_UFUNCS[op].__name__}({', '.join(operands)}, out=out)")
        self.inplace_source = f"def inplace(out, {args}):\n" + "\n".join(calls) + "\n    return out\n"
        self.functional_source = f"def functional(sqrt, {args}):\n    return {to_c(expr)}\n"
        namespace = {f.__name__: f for f in _UFUNCS.values()}
        exec(compile(self.inplace_source + self.functional_source, "<quadlab.adam_rule>", "exec"), namespace)
        self.inplace, self.functional = namespace["inplace"], namespace["functional"]

    @classmethod
    def _flatten(cls, expr, steps: list) -> None:
        if isinstance(expr, str):
            raise ValueError(f"Program: {expr!r} is a name, not an operation")
        op, *args = expr
        if op not in _UFUNCS or len(args) != (1 if op == "sqrt" else 2):
            raise ValueError(f"Program: unknown operation {op!r} with {len(args)} operands")
        if sum(not isinstance(x, str) for x in args) > 1:
            raise ValueError(f"Program: {expr!r} needs a second buffer (both operands are operations)")
        operands = []
        for x in args:
            if not isinstance(x, str):
                cls._flatten(x, steps)
            elif not x.isidentifier() or x in ("out", "sqrt"):
                raise ValueError(f"Program: {x!r} cannot name an operand")
            operands.append(x if isinstance(x, str) else None)
        steps.append((op, operands[0], operands[1] if len(operands) == 2 else ""))


@functools.cache
def _program(expr) -> Program:
    return Program(expr)


def evaluate(expr, env: dict, sqrt, out=None):
    """Evaluate an expression tree on the arrays (or floats) of ``env``: as new arrays with ``sqrt`` when
    ``out`` is None, else into the numpy array ``out`` (:class:`Program`)."""
    prog = _program(expr)
    args = [env[n] for n in prog.params]
    return prog.functional(sqrt, *args) if out is None else prog.inplace(out, *args)


def to_c(expr) -> str:
    """The C expression of a tree, fully parenthesised so that C evaluates it in the tree's order."""
    if isinstance(expr, str):
        return expr
    op, *args = expr
    if op == "sqrt":
        inner = to_c(args[0])
        return f"sqrt({inner[1:-1] if inner.startswith('(') else inner})"
    return f"({to_c(args[0])} {op} {to_c(args[1])})"


_M = Program(M_UPDATE[1], ("m", "b1", "g"))
_G2 = Program(G2[1], ("g",))
_V = Program(V_UPDATE[1], ("v", "b2", "g2"))
_DELTA_M, _DELTA_G = (Program(substitute(DELTA[1], {"a": a}), (a, "v", "s", "e", "lr")) for a in ("m", "g"))


# -- GPU kernels rendered from the data ---------------------------------------------------------------
class KernelSpec(NamedTuple):
    """One elementwise kernel: typed-T inputs, in-out outputs, and the statements it runs per element."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    statements: tuple[tuple[str, object], ...]

    def source(self) -> tuple[str, str, str]:
        """(in_params, out_params, operation) for ``cupy.ElementwiseKernel``."""
        lines = []
        for name, expr in self.statements:
            body = to_c(expr)
            body = body[1:-1] if body.startswith("(") else body
            lines.append(f"{'' if name in self.outputs else 'T '}{name} = {body};")
        return (", ".join(f"T {x}" for x in self.inputs), ", ".join(f"T {x}" for x in self.outputs), " ".join(lines))


#: NVRTC options: no contraction to fused multiply-adds (the numpy forms round every product)
KERNEL_OPTIONS = ("--fmad=false",)


def kernel_specs(use_m: bool, per_block: bool) -> tuple[KernelSpec, ...]:
    """The kernels of one step.  Adam and RMSprop: one kernel over (k, R, d).  Adam-mini: g2 = block mean of
    g∘g is a reduction, computed between two kernels: v on (k, R, 1), then m and e on (k, R, d)."""
    a = "m" if use_m else "g"
    delta = (DELTA[0], substitute(DELTA[1], {"a": a}))
    first = ((M_UPDATE,) if use_m else ())
    hp = (("b1",) if use_m else ()) + ("s", "e", "lr")
    if not per_block:
        return (KernelSpec(f"quadlab_adam_{a}", ("g", "b2") + hp, (("m",) if use_m else ()) + ("v", "x"),
                           first + (G2, V_UPDATE, delta, E_UPDATE)),)
    return (KernelSpec("quadlab_adam_mini_v", ("g2", "b2"), ("v",), (V_UPDATE,)),
            KernelSpec(f"quadlab_adam_mini_{a}", ("g", "v") + hp, (("m",) if use_m else ()) + ("x",),
                       first + (delta, E_UPDATE)))


class EmulatedKernel:
    """A numpy stand-in for ``cupy.ElementwiseKernel(spec)``: called as ``kernel(*inputs, *outputs)``, it
    broadcasts the inputs against the outputs' shape (which must be the broadcast shape, as in cupy), runs
    the statements elementwise with numpy (no contraction, as the GPU kernel is compiled) and writes each
    output in place at the end."""

    def __init__(self, spec: KernelSpec):
        self.spec = spec

    def __call__(self, *args):
        spec = self.spec
        if len(args) != len(spec.inputs) + len(spec.outputs):
            raise ValueError(f"{spec.name}: {len(args)} arguments for {spec.inputs + spec.outputs}")
        outs = args[len(spec.inputs):]
        shape = np.broadcast_shapes(*(np.shape(x) for x in args))
        for name, o in zip(spec.outputs, outs, strict=True):
            if o.shape != shape:
                raise ValueError(f"{spec.name}: output {name} has shape {o.shape}, the broadcast shape is {shape}")
        env = dict(zip(spec.inputs + spec.outputs, args, strict=True))
        for name, expr in spec.statements:
            env[name] = evaluate(expr, env, np.sqrt)
        for name, o in zip(spec.outputs, outs, strict=True):
            o[...] = env[name]


@functools.cache
def _cupy_kernel(spec: KernelSpec):
    import cupy  # only reached on a cupy backend

    return cupy.ElementwiseKernel(*spec.source(), name=spec.name, options=KERNEL_OPTIONS)


#: builds a callable kernel from a :class:`KernelSpec` (tests put :class:`EmulatedKernel` here)
make_kernel = _cupy_kernel


def gpu_enabled(backend) -> bool:
    """True where the runner uses the GPU kernels: a cupy backend and ``QUADLAB_CUPY_FUSED=1`` (opt-in until
    the GPU test in tests/test_optim_contract.py has passed on a device; the functional path is the default)."""
    return backend.name == "cupy" and os.environ.get("QUADLAB_CUPY_FUSED", "0") == "1"


# -- per-step scalars ---------------------------------------------------------------------------------
def scalar_tables(values: np.ndarray, t0: int, count: int, bias_correction: bool = True):
    """Adam's per-step scalars s_t, e_t for t = t0 … t0 + count − 1 (rows), one column per row (β1, β2, ε) of
    ``values`` (U, 3): with c1 = 1 − β1^t, c2 = 1 − β2^t (both 1 without bias correction) and q = c1/(1 − β1),

        s_t = q²·(1 − β2)/c2,   e_t = q·ε.

    β^t is :func:`quadlab._engine.portable.ipow` (IEEE multiplies only): numpy's ``power`` rounds differently
    under AVX2 and AVX-512, and an Adam run near its stall regime can turn on that bit.  The one source of
    these values for the numpy path and the compiled scan.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        s and e, each (count, U) float64, C-ordered.
    """
    b1, b2, eps = (np.asarray(values, dtype=np.float64)[:, j][None, :] for j in range(3))
    ts = np.arange(t0, t0 + count, dtype=np.int64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        c1 = 1.0 - portable.ipow(b1, ts) if bias_correction else np.ones((count, b1.shape[1]))
        c2 = 1.0 - portable.ipow(b2, ts) if bias_correction else np.ones((count, b2.shape[1]))
        q = c1 / (1.0 - b1)
        return np.ascontiguousarray(q * q * (1.0 - b2) / c2), np.ascontiguousarray(q * eps)


class AdamScalars:
    """The per-step scalars of the Adam family, s_t and e_t, for every run, from host float64 arithmetic only.

    With c1 = 1−β1^t, c2 = 1−β2^t (both 1 without bias correction) and q = c1/(1−β1):

        s_t = q²(1−β2)/c2,    e_t = q·ε,    so that η m̂/(√v̂ + ε) = η m_s/(√(s_t v') + e_t)

    for the stored moments m_s = m/(1−β1) and v' = v/(1−β2) (module docstring).  The values are computed
    for each distinct (β1, β2, ε) of the batch, 256 steps at a time, by the same numpy operations whatever the
    batch holds, so a run's scalars are the same bits alone or in any grid.  :meth:`at` returns Python floats
    where every run shares them (the update then broadcasts a scalar, which is faster) and per-run (R,) arrays
    otherwise; both carry the same values (a float is cast to the iterate's dtype exactly as a per-run array
    is).  β2 = 1 with bias correction gives c2 = 0 and s_t = 0/0 = NaN, the textbook update's own 0/0, and
    the run is flagged as diverged."""

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
        self._s, self._e = scalar_tables(self.values, t, self.block, self.bias_correction)
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


# -- the rule in every form ---------------------------------------------------------------------------
def _column(x):
    """A shared float, or a per-run (1, R, 1) array as (1, R), for one column of the fused step's (1, R, 6)."""
    return x if isinstance(x, float) else x[..., 0]


class AdamRule:
    """One Adam-family rule (Adam, RMSprop = β1 0, Adam-mini = per-block v) and its forms.

    Parameters
    ----------
    bias_correction : bool
        Divide by c1 = 1−β1^t and c2 = 1−β2^t (folded into s_t and e_t).
    per_block : bool
        Adam-mini: one second moment per block, v'_l ← β2 v'_l + mean_{i∈l} g_i².

    Every form evaluates :data:`STEP` with the per-step scalars of :class:`AdamScalars`: :meth:`functional`
    and :meth:`inplace` return delta, :meth:`fused` (numba) and :meth:`gpu` (cupy) apply e ← e − delta.
    :meth:`update` picks the numpy form the context allows."""

    def __init__(self, bias_correction: bool, per_block: bool):
        self.bias_correction = bool(bias_correction)
        self.per_block = per_block

    def init(self, g0, hp, ctx, lr) -> AdamState | FusedAdamState:
        """Zero moments and the per-run step ``lr`` (layout form, from ``ctx.per_run(ctx.lr(options))``) in
        the form the runner will call (``ctx.fused``, ``ctx.inplace``)."""
        zeros = tmap(lambda x: x * 0, g0)
        m = () if isinstance(hp["b1"], float) and hp["b1"] == 0.0 else zeros
        v = ctx.layout.block_mean(zeros) if self.per_block else tmap(lambda x: x * 0, g0)
        host = ctx.host_hp
        scalars = AdamScalars(host["b1"], host["b2"], host["eps"], self.bias_correction)
        if ctx.fused == "numba":
            return FusedAdamState(m, v, self._params(g0[0], lr, hp), scalars)
        if not ctx.inplace:
            return AdamState(m, v, (), lr, scalars)
        # numpy: one buffer reused every step, and a per-run lr laid out at each leaf's full shape, because a
        # (1, R, 1) operand broadcast over (k, R, d) runs at about half the speed of a contiguous one
        lr_full = lr if isinstance(lr, float) else tmap(
            lambda x: np.ascontiguousarray(np.broadcast_to(lr, x.shape)), g0)
        return AdamState(m, v, tmap(np.empty_like, g0), lr_full, scalars)

    @staticmethod
    def _params(leaf, lr, hp):
        # (1, R, 6) per-run (η, β1, c, β2, s_t, e_t) in the leaves' dtype, as numpy casts Python floats;
        # c = 1: the stored moment is updated as m_s·β1 + g·1 = m_s·β1 + g exactly
        R = leaf.shape[1]
        P = np.empty((1, R, len(kernels.ADAM_PARAMS)), dtype=leaf.dtype)
        for j, x in enumerate([lr, hp["b1"], 1.0, hp["b2"], 0.0, 0.0]):
            P[..., j] = _column(x)
        return P

    @staticmethod
    def scalars_at(state, ctx, t):
        """(s_t, e_t) in layout form: floats when every run shares them, else (1, R, 1)."""
        s, e = state.scalars.at(t)
        if isinstance(s, float):
            return s, e
        return ctx.layout.per_run(s), ctx.layout.per_run(e)

    def update(self, g, state, hp, ctx, t):
        """delta and the new state: :meth:`inplace` where ``ctx.inplace``, else :meth:`functional`."""
        return (self.inplace if ctx.inplace else self.functional)(g, state, hp, ctx, t)

    def functional(self, g, state: AdamState, hp, ctx, t):
        """New arrays for delta, m and v (any namespace; the state is not modified)."""
        s, e = self.scalars_at(state, ctx, t)
        b1, b2, lr, sqrt = hp["b1"], hp["b2"], state.lr, ctx.xp.sqrt
        m = tuple(_M.functional(sqrt, m_, b1, g_) for m_, g_ in zip(state.m, g, strict=True)) if state.m else ()
        g2 = tuple(_G2.functional(sqrt, g_) for g_ in g)
        if self.per_block:
            g2 = ctx.layout.block_mean(g2)
        v = tuple(_V.functional(sqrt, v_, b2, y) for v_, y in zip(state.v, g2, strict=True))
        delta = _DELTA_M if m else _DELTA_G
        delta = tuple(delta.functional(sqrt, a, v_, s, e, lr) for a, v_ in zip(m or g, v, strict=True))
        return delta, state._replace(m=m, v=v)

    def inplace(self, g, state: AdamState, hp, ctx, t):
        """numpy only: m and v updated in place, delta written into the state's scratch buffers (returned).
        At most nine passes over the iterate and no allocation; the operations of :meth:`functional`."""
        s, e = self.scalars_at(state, ctx, t)
        b1, b2 = hp["b1"], hp["b2"]
        for m_, g_ in zip(state.m, g, strict=bool(state.m)):
            _M.inplace(m_, m_, b1, g_)
        for g_, w in zip(g, state.scratch, strict=True):
            _G2.inplace(w, g_)
        g2 = ctx.layout.block_mean(state.scratch) if self.per_block else state.scratch
        for v_, y in zip(state.v, g2, strict=True):
            _V.inplace(v_, v_, b2, y)
        delta = _DELTA_M if state.m else _DELTA_G
        lrs = state.lr if isinstance(state.lr, tuple) else (state.lr,) * len(g)
        for a, v_, w, lr in zip(state.m or g, state.v, state.scratch, lrs, strict=True):
            delta.inplace(w, a, v_, s, e, lr)  # w held g∘g until v took it above
        return state.scratch, state

    def fused(self, e, g, state: FusedAdamState, hp, ctx, t):  # noqa: ARG002 (the contract's step signature)
        """The compiled numpy step (:func:`quadlab._engine.kernels.adam_step`): e ← e − delta in one pass."""
        s, e_t = state.scalars.at(t)
        state.params[..., 4], state.params[..., 5] = s, e_t
        kernels.adam_step(e, g, state.m, state.v, state.params, check=t == 1)  # the runner's shapes: checked once
        return state

    def gpu(self, e, g, state: AdamState, hp, ctx, t):
        """The elementwise kernels of :func:`kernel_specs` (cupy, built by ``make_kernel``): e ← e − delta,
        m and v updated in place."""
        s, e_t = self.scalars_at(state, ctx, t)
        env = {"b1": hp["b1"], "b2": hp["b2"], "s": s, "e": e_t, "lr": state.lr}
        use_m = len(state.m) > 0
        specs = kernel_specs(use_m, self.per_block)
        run = [make_kernel(sp) for sp in specs]
        m = state.m or (None,) * len(g)
        if not self.per_block:
            for x, g_, m_, v_ in zip(e, g, m, state.v, strict=True):
                leaf = {"g": g_, "m": m_, "v": v_, "x": x}
                run[0](*(env.get(k, leaf.get(k)) for k in specs[0].inputs + specs[0].outputs))
            return state
        g2 = ctx.layout.block_mean(tuple(_G2.functional(ctx.xp.sqrt, g_) for g_ in g))
        for x, g_, m_, v_, y in zip(e, g, m, state.v, g2, strict=True):
            leaf = {"g": g_, "m": m_, "v": v_, "x": x, "g2": y}
            for sp, k in zip(specs, run, strict=True):
                k(*(env.get(n, leaf.get(n)) for n in sp.inputs + sp.outputs))
        return state
