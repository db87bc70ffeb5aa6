"""Optimizers of the theory: a hyperparameter grid and the callbacks of the optimizer contract.

An :class:`Optimizer` holds hyperparameters and the callbacks that :func:`quadlab.run` calls
(:mod:`quadlab.contract` states the contract in full)::

    state            = init(g0, hp, ctx)
    (delta, state)   = update(g, state, hp, ctx, t)          w_{t} = w_{t-1} − delta,  t = 1, 2, …

``g`` and ``delta`` are trees (tuples of backend arrays in the runner's layout, see :mod:`quadlab._engine.layout`);
every hyperparameter in ``hp`` (all but ``lr``) is a backend array of shape (1, R, 1), one value per run, so
one call runs a whole grid, or a Python float where every run shares the value.  A hyperparameter given as a 1-D array
spans a grid axis; several arrays span their outer product (in the order of the constructor's arguments).
An optimizer asks the runner only what :class:`quadlab.contract.Context` lists (the step sizes
``ctx.lr(options)``, the layout, diag(H), blockwise GD's block steps, …) and keeps its state in a
NamedTuple of :mod:`quadlab.contract`.

Where ``ctx.inplace`` is true (the numpy backend) ``update`` may overwrite its own state and return a
``delta`` that lives in that state (the runner consumes it before the next call); it never keeps a
reference to ``g``, which the runner overwrites with the next gradient.  Elsewhere ``update`` is pure.

An optimizer may also carry a fused ``step(e, g, state, hp, ctx, t)`` that applies e ← e − delta in place
in one compiled pass (:mod:`quadlab._engine.kernels`); the runner uses it on numpy when ``ctx.fused`` is
``"numba"``, and ``init`` then builds the state that ``step`` expects.  ``gpu_step`` is the same for cupy
elementwise kernels (``ctx.fused == "gpu"``).  Every route gives the same bits; the Adam family's routes
are the forms of one :class:`quadlab._engine.adam_rule.AdamRule`.

The linear methods (GD, heavy ball, Nesterov, Adam theory form, blockwise GD, Jacobi GD) also describe
themselves as ``e_{t+1} = A(e_t)`` in the preconditioned eigenbasis (``linear``), which lets
:func:`quadlab.run` skip iterating (see :mod:`quadlab._engine.closed_form`).
"""

from __future__ import annotations

import warnings

import numpy as np

from ._engine.adam_rule import AdamRule, AdamScalars
from ._engine.choices import one_of
from ._engine.layout import tmap
from ._engine.optimizer import _LIMITS, LinearSpec, Optimizer, _grid_axis, _hyper, _zeros
from .contract import GDState, MomentumState, PreconditionedState, SignState
from .spectra import EXTREMES_SOURCES

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

SPECTRA_SOURCES = EXTREMES_SOURCES  # kept for old imports: the sources are named in quadlab.spectra


def _source_options(who: str, source: str, spectra: str | None) -> dict:
    """The optimizer's options for a spectrum source (where named rules read extremes), checked; the old
    keyword ``spectra=`` still works, with a DeprecationWarning."""
    if spectra is not None:
        warnings.warn(f"{who}(spectra=...) is deprecated: use source=...", DeprecationWarning, stacklevel=3)
        source = spectra
    one_of("source", source, EXTREMES_SOURCES)
    return {"source": source}


def _rule_or_grid(who: str, lr, rule: str, options: dict) -> dict:
    """The hyperparameter grid of ``lr``, or none where ``lr`` names the step rule (kept in ``options``)."""
    if isinstance(lr, str):
        if lr != rule:
            raise ValueError(f"{who}: lr must be positive numbers or {rule!r}, got {lr!r}")
        options["lr"] = rule
        return {}
    return _hyper(lr=lr)


# -- GD family -------------------------------------------------------------------------------------
# Every rule below reads its step sizes once, in init, through the contract's one function ctx.lr (host
# (R,)), and moves them into the layout with ctx.per_run.
def _scaled(g, state, hp, ctx, t):
    """delta = η g."""
    return tmap(lambda x: state.lr * x, g), state


def _preconditioned(g, state, hp, ctx, t):
    """delta = η (p ∘ g), the product in this order for every preconditioned rule."""
    return tmap(lambda x, p: state.lr * (p * x), g, state.precond), state


def gd(lr=1e-3, *, source: str = "exact", spectra: str | None = None) -> Optimizer:
    """Gradient descent, w ← w − η ∇f(w).

    Parameters
    ----------
    lr : float, array_like or "optimal"
        The step η (a number, or a 1-D grid of positive numbers); "optimal" takes η* = 2/(λ_min + λ_max),
        the step that minimises max_i |1 − ηλ_i| (:func:`quadlab.rules.gd_optimal_lr`).
    source : {"exact", "lanczos"}
        Where "optimal" reads λ_min and λ_max: the spectrum, or Lanczos estimates widened by a safety margin.
    spectra : str, optional
        Deprecated name of ``source``.

    Returns
    -------
    Optimizer
        Linear: :func:`quadlab.run` uses the closed form unless told to iterate.

    Raises
    ------
    ValueError
        If ``lr`` is a string other than "optimal", not positive and finite, or ``source`` is unknown.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
    >>> res = quadlab.run(prob, optim.gd(lr="optimal"), steps=2000, tol=1e-6)
    >>> res.method, str(res.status[0])
    ('closed_form', 'converged')
    >>> round(quadlab.rules.gd_optimal_lr(prob) * (1 + 100), 12)   # η* = 2/(λ_min + λ_max)
    2.0
    """
    options = _source_options("gd", source, spectra)
    hyper = _rule_or_grid("gd", lr, "optimal", options)

    def init(g0, hp, ctx):
        return GDState(ctx.per_run(ctx.lr(options)))

    def linear(hp, ctx, g0):
        return LinearSpec("gd", ctx.lr(options), None, None)

    return Optimizer("gd", hyper, init, _scaled, options, linear)


def _momentum_family(name: str, lr, momentum, nesterov_: bool) -> Optimizer:
    hyper = _hyper(lr=lr, momentum=momentum)

    def init(g0, hp, ctx):
        return MomentumState(_zeros(g0), ctx.per_run(ctx.lr({})))

    def update(g, state, hp, ctx, t):
        lr_, mu = state.lr, hp["momentum"]
        m = tmap(lambda m_, g_: mu * m_ + g_, state.m, g)
        if nesterov_:
            delta = tmap(lambda m_, g_: lr_ * (g_ + mu * m_), m, g)
        else:
            delta = tmap(lambda m_: lr_ * m_, m)
        return delta, state._replace(m=m)

    def linear(hp, ctx, g0):
        return LinearSpec(name, ctx.lr({}), hp["momentum"], None)

    return Optimizer(name, hyper, init, update, {}, linear)


_MOMENTUM_DOC = """

    Parameters
    ----------
    lr : float or array_like
        The step η > 0 (a number or a 1-D grid).
    momentum : float or array_like
        β ∈ [0, 1] (a number or a 1-D grid; with ``lr`` an outer product).

    Returns
    -------
    Optimizer
        Linear: each eigencomponent follows a 2×2 recurrence, evaluated in closed form by :func:`quadlab.run`.

    Raises
    ------
    ValueError
        If ``lr`` is not positive and finite or ``momentum`` is outside [0, 1].
"""


def heavy_ball(lr=1e-3, momentum=0.9) -> Optimizer:
    return _momentum_family("heavy_ball", lr, momentum, False)


heavy_ball.__doc__ = """SGD with momentum in PyTorch's form: m ← β m + g, w ← w − η m (m_0 = 0).

    On a quadratic each eigencomponent follows e_{t+1} = (1 + β − ηλ) e_t − β e_{t−1}; the best pair
    η = 4/(√λ_min + √λ_max)², β = ((√κ − 1)/(√κ + 1))² contracts by (√κ − 1)/(√κ + 1) per step.""" + _MOMENTUM_DOC + """
    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
    >>> opt = optim.heavy_ball(lr=4 / (1 + 10) ** 2, momentum=((10 - 1) / (10 + 1)) ** 2)   # κ = 100
    >>> str(quadlab.run(prob, opt, steps=500, tol=1e-8).status[0])
    'converged'
    """


def nesterov(lr=1e-3, momentum=0.9) -> Optimizer:
    return _momentum_family("nesterov", lr, momentum, True)


nesterov.__doc__ = """Nesterov momentum in PyTorch's form: m ← β m + g, w ← w − η (g + β m) (m_0 = 0).""" + \
    _MOMENTUM_DOC + """
    Examples
    --------
    >>> from quadlab import optim
    >>> optim.nesterov(lr=[1e-3, 1e-2], momentum=0.9).n_configs
    2
    """


def jacobi_gd(lr=1.0) -> Optimizer:
    """Jacobi-preconditioned GD: w ← w − η g / diag(H).

    Parameters
    ----------
    lr : float or array_like
        The step η > 0 applied after dividing by diag(H) (a number or a 1-D grid).

    Returns
    -------
    Optimizer
        Linear, with the fixed preconditioner P = diag(H)⁻¹.

    Raises
    ------
    ValueError
        If ``lr`` is not positive and finite.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 1.0], [100.0, 100.0]]))
    >>> res = quadlab.run(prob, optim.jacobi_gd(lr=1.0), steps=3, tol=1e-6)   # H = diag(H): one step
    >>> int(res.steps_to_tol[0])
    1
    """
    hyper = _hyper(lr=lr)

    def init(g0, hp, ctx):
        precond = tmap(lambda d: 1.0 / d, ctx.layout.per_coordinate(ctx.host_diag()))
        return PreconditionedState(precond, ctx.per_run(ctx.lr({})))

    def linear(hp, ctx, g0):
        return LinearSpec("gd", ctx.lr({}), None, 1.0 / ctx.host_diag())

    return Optimizer("jacobi_gd", hyper, init, _preconditioned, {}, linear)


def blockwise_gd(lr=1.0, *, block_lr="oracle", source: str = "exact", spectra: str | None = None) -> Optimizer:
    """Blockwise GD, one step per block: w_l ← w_l − η·η_l g_l.

    Parameters
    ----------
    lr : float or array_like
        η > 0, multiplying every η_l (1 for the oracle itself); the grid axis a learning-rate search scans.
    block_lr : "oracle" or array_like
        "oracle": η_l = 2/(λ_min(H_l) + λ_max(H_l)), the best GD step for block l alone
        (:func:`quadlab.rules.oracle_block_lrs`); or the steps η_l themselves, (L,) positive.
    source : {"exact", "lanczos"}
        Where the oracle reads the block extremes.
    spectra : str, optional
        Deprecated name of ``source``.

    Returns
    -------
    Optimizer
        Linear, with the fixed preconditioner P = diag(η_l on block l).

    Raises
    ------
    ValueError
        If ``block_lr`` is neither "oracle" nor a 1-D array of positive finite steps, ``lr`` is not
        positive, or ``source`` is unknown; :func:`quadlab.run` raises it when the array's length is not
        the problem's number of blocks.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 1.0], [100.0, 100.0]]))
    >>> res = quadlab.run(prob, optim.blockwise_gd(), steps=3, tol=1e-6)   # η_l = 1/λ_l: one step
    >>> int(res.steps_to_tol[0])
    1
    """
    options = _source_options("blockwise_gd", source, spectra)
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
        return PreconditionedState(ctx.layout.per_block(ctx.block_steps(options)), ctx.per_run(ctx.lr({})))

    def linear(hp, ctx, g0):
        return LinearSpec("gd", ctx.lr({}), None, np.repeat(ctx.block_steps(options), ctx.block_sizes))

    return Optimizer("blockwise_gd", hyper, init, _preconditioned, options, linear)


def adam_theory(lr="theorem", *, source: str = "exact", spectra: str | None = None) -> Optimizer:
    """Adam in the theory's form (β1 = 0, β2 = 1, v_0 = g_0∘g_0, ε = 0): w ← w − η g / |g_0|.

    A fixed diagonal preconditioner D = diag(|∇f(w_0)|), so the method is linear.

    Parameters
    ----------
    lr : float, array_like or "theorem"
        The step η; "theorem" takes the theorem's η = min_l C_{l,1}, C_{l,1} = min_{i∈l} |g_{0,i}| /
        λ_max(H_l), per run (it depends on w_0; :func:`quadlab.rules.theorem_lr`).
    source : {"exact", "lanczos"}
        Where "theorem" reads λ_max(H_l).
    spectra : str, optional
        Deprecated name of ``source``.

    Returns
    -------
    Optimizer
        Linear once D is fixed from w_0 (per run): :func:`quadlab.run` uses the closed form unless told to
        iterate.

    Raises
    ------
    ValueError
        If ``lr`` is a string other than "theorem" or not positive, or ``source`` is unknown;
        :func:`quadlab.run` raises it when an entry of ∇f(w_0) is exactly zero (the form divides by it).

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
    >>> str(quadlab.run(prob, optim.adam_theory(), steps=5000, tol=1e-6).status[0])
    'converged'
    """
    options = _source_options("adam_theory", source, spectra)
    hyper = _rule_or_grid("adam_theory", lr, "theorem", options)

    def init(g0, hp, ctx):
        absg = tmap(ctx.xp.abs, g0)
        ctx.require_nonzero_g0()
        return PreconditionedState(tmap(lambda a: 1.0 / a, absg), ctx.per_run(ctx.lr(options)))

    def linear(hp, ctx, g0):
        return LinearSpec("gd", ctx.lr(options), None, 1.0 / np.abs(g0))

    return Optimizer("adam_theory", hyper, init, _preconditioned, options, linear)


# -- adaptive (nonlinear) ---------------------------------------------------------------------------
def _adam_like(name, lr, b1, b2, eps, bias_correction, per_block: bool) -> Optimizer:
    """Adam, RMSprop and Adam-mini: every form of the step is one :class:`AdamRule`'s (stored moments
    m/(1−β1), v/(1−β2) and the per-step scalars s_t, e_t of :class:`AdamScalars`; see
    :mod:`quadlab._engine.adam_rule`)."""
    hyper = _hyper(lr=lr, b1=b1, b2=b2, eps=eps)
    options = {"bias_correction": bool(bias_correction)}
    rule = AdamRule(options["bias_correction"], per_block)

    def init(g0, hp, ctx):
        return rule.init(g0, hp, ctx, ctx.per_run(ctx.lr(options)))

    # Adam-mini's per-block mean has no compiled numpy step (a reduction inside the row loop)
    return Optimizer(name, hyper, init, rule.update, options, None, None if per_block else rule.fused, rule.gpu)


_ADAM_DOC = """
    Parameters
    ----------
    lr : float or array_like
        The step η > 0 (a number or a 1-D grid).{b1}
    b2 : float or array_like
        β2 ∈ (0, 1] (β2 = 1 with bias correction is the textbook update's 0/0: the runs are flagged diverged).
    eps : float or array_like
        ε ≥ 0.
    bias_correction : bool
        Divide m by 1−β1^t and v by 1−β2^t.

    Returns
    -------
    Optimizer
        Not linear (no closed form); {fused}.

    Raises
    ------
    ValueError
        If a hyperparameter is outside its range or not finite.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 2.0], [50.0, 100.0]]))
    >>> res = quadlab.run(prob, optim.{name}(lr=[1e-2, 1e9]), steps=200)
    >>> res.status.tolist()
    ['max_steps', 'diverged']
    """
_B1_DOC = """
    b1 : float or array_like
        β1 ∈ [0, 1)."""


def adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, *, bias_correction: bool = True) -> Optimizer:
    return _adam_like("adam", lr, b1, b2, eps, bias_correction, per_block=False)


def rmsprop(lr=1e-3, b2=0.99, eps=1e-8, *, bias_correction: bool = False) -> Optimizer:
    return _adam_like("rmsprop", lr, 0.0, b2, eps, bias_correction, per_block=False)


def adam_mini(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, *, bias_correction: bool = True) -> Optimizer:
    return _adam_like("adam_mini", lr, b1, b2, eps, bias_correction, per_block=True)


adam.__doc__ = """Adam: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g∘g, w ← w − η m̂ / (√v̂ + ε), m_0 = v_0 = 0.

    With bias correction (the paper's Alg. 2) m̂ = m/(1−β1^t), v̂ = v/(1−β2^t); without (its Alg. 3)
    m̂ = m, v̂ = v.

    β1 = β2 = β ∈ (0, 1) is allowed and is the sign-descent limit studied by Kunstner et al. (2023): with
    weights w_s = (1−β)β^{t−s}, Cauchy–Schwarz gives (Σ w_s g_s)² ≤ (Σ w_s)(Σ w_s g_s²), i.e. |m_t| ≤
    √(1−β^t)·√v_t, so with bias correction and ε = 0 every coordinate moves by |η m̂/√v̂| ≤ η: a "soft"
    momentum sign descent, equal to η·sign(m) when the recent gradients of that coordinate share one
    magnitude (see :func:`sign_descent`).  β1 = β2 = 0 is refused (β2 must be > 0); use sign_descent.
""" + _ADAM_DOC.format(b1=_B1_DOC, name="adam", fused="on numpy with numba one compiled pass per step")
rmsprop.__doc__ = """RMSprop = Adam with β1 = 0: v ← β2 v + (1−β2) g∘g, w ← w − η g / (√v + ε) (PyTorch's default:
    no bias correction, β2 = α = 0.99).
""" + _ADAM_DOC.format(b1="", name="rmsprop", fused="on numpy with numba one compiled pass per step")
adam_mini.__doc__ = """Adam-mini: Adam with one second moment per block, v_l ← β2 v_l + (1−β2) mean_{i∈l}(g_i²), shared by
    every coordinate of block l (m stays per coordinate).
""" + _ADAM_DOC.format(b1=_B1_DOC, name="adam_mini", fused="no compiled numpy step (the block mean)")


# -- sign descent ----------------------------------------------------------------------------------
def sign_descent(lr=1e-3, momentum=0.0) -> Optimizer:
    """(Momentum) sign descent: m ← β m + g, w ← w − η·sign(m) (m_0 = 0; β = 0: w ← w − η·sign(g)).

    Every coordinate moves by exactly η (or 0 where m_i = 0), whatever the gradient's scale: the β2 → β1
    limit of Adam (see :func:`adam`).  Both ``lr`` and ``momentum`` may be grids.

    Closed form: none in general (sign(m) couples the coordinates through H).  For a diagonal H with β = 0
    each coordinate moves independently by −η·sign(e_i) (sign(g_i) = sign(h_i e_i) = sign(e_i)), and
    :func:`sign_descent_diagonal` gives e_k exactly.  With a constant η the iterates end in a cycle of width
    η per coordinate, so ‖∇f‖ ≤ tol·‖∇f(w_0)‖ is reached only when η is small enough.

    Parameters
    ----------
    lr : float or array_like
        The step η > 0 (a number or a 1-D grid).
    momentum : float or array_like
        β ∈ [0, 1] (a number or a 1-D grid; with ``lr`` an outer product, lr-major).

    Returns
    -------
    Optimizer
        Not linear (no closed form): :func:`quadlab.run` iterates it.

    Raises
    ------
    ValueError
        If ``lr`` is not positive and finite or ``momentum`` is outside [0, 1].

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import optim
    >>> prob = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 4.0]]), rotation="none")
    >>> res = quadlab.run(prob, optim.sign_descent(lr=0.25), w0=np.array([1.0, -0.5]), steps=3, record="all")
    >>> res.gap[0].tolist()  # e: (1, −0.5) → (0.75, −0.25) → (0.5, 0) → (0.25, 0): sign(0) = 0 stays put
    [1.0, 0.40625, 0.125, 0.03125]
    """
    hyper = _hyper(lr=lr, momentum=momentum)

    def init(g0, hp, ctx):
        no_m = isinstance(hp["momentum"], float) and hp["momentum"] == 0.0
        m = () if no_m else _zeros(g0)
        return SignState(m, tmap(np.empty_like, g0) if ctx.inplace else (), ctx.per_run(ctx.lr({})))

    def update(g, state, hp, ctx, t):
        m, scratch = state.m, state.scratch
        lr_, mu = state.lr, hp["momentum"]
        if ctx.inplace:  # the functional path's operations, in its order, into the state's buffers
            for mi, gi in zip(m, g):
                np.add(np.multiply(mi, mu, out=mi), gi, out=mi)
            for a, w in zip(m or g, scratch):
                np.multiply(np.sign(a, out=w), lr_, out=w)
            return scratch, state
        if m:
            m = tuple(m_ * mu + g_ for m_, g_ in zip(m, g, strict=True))
        return tuple(ctx.xp.sign(a) * lr_ for a in (m or g)), state._replace(m=m)

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
