"""Stochastic gradients for :func:`quadlab.run`: g_k = ∇f(w_k) + ξ_k with ξ_k independent across steps.

Three models, each a frozen description that :func:`quadlab.run` turns into a stream per run:

* :class:`NQM` (Zhang et al. 2019, "Which algorithmic choices matter at which batch sizes?"): the noisy
  quadratic model ξ ~ N(0, (scale/B)·H), the covariance of a mini-batch of B per-example gradients whose
  covariance is proportional to the Hessian.
* :class:`Isotropic`: ξ ~ N(0, σ²I).
* :class:`HeavyTailed`: the NQM's covariance with Student-t tails.  ξ = √(scale/B)·L·t, L Lᵀ = H, with t_i
  independent Student-t variables with ν > 2 degrees of freedom rescaled to unit variance
  (t_i = T_i·√((ν−2)/ν)), so Cov ξ = (scale/B)·H exactly, as for the NQM; the components of ξ in H's
  eigenbasis are independent and heavy-tailed.
* :class:`AlphaStable`: the NQM's scale with symmetric α-stable tails, 1 < α ≤ 2: ξ = √(scale/B)·L·t with t_i
  independent, E[exp(iθt_i)] = exp(−|θ|^α/2^{α/2}), so α = 2 is exactly the NQM's N(0, 1) draws.  For α < 2
  the variance is infinite: the same *scale*, not the same covariance, and no closed form of
  :mod:`quadlab.nqm` applies.

How ξ is formed.  H = Q Λ Qᵀ is known exactly by construction (:meth:`quadlab.BlockQuadratic.eigenvectors`),
so L = Q Λ^{1/2} is an exact square root: ξ = c·Q(Λ^{1/2} z) with z the unit-variance draws and
c = √(scale/B) (σ and L = I for the isotropic model).  This is computed on the host in float64, group by
group of equal-size blocks, with the fixed-order product of :mod:`quadlab._engine.ordered`, then rounded to
the iterate's dtype.  Its cost per step is one product with L per seed (not per run).

Seeding: common random numbers.  Seed s draws its z_0, z_1, … from ``numpy.random.default_rng(
SeedSequence([s, STREAM_TAG]))``, a stream apart from the starting point's ``default_rng(s)``, z_k being the
k-th row of n values.  Every run with seed s (whatever its hyperparameters) sees the same ξ_k, and a run's
noise, hence its bits, does not depend on the other runs of the batch or on when they stop.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._engine import ordered

__all__ = ["NQM", "Isotropic", "HeavyTailed", "AlphaStable", "NoiseModel", "STREAM_TAG", "check_noise"]

#: the second word of every noise seed, so that the noise stream of seed s differs from its start's
STREAM_TAG = 0x6E6F697365  # "noise"


def _positive(name: str, value, *, integer: bool = False, above: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v <= above:
        raise ValueError(f"{name} must be finite and > {above:g}, got {value!r}")
    if integer and not v.is_integer():
        raise ValueError(f"{name} must be a whole number of examples, got {value!r}")
    return v


class NoiseModel:
    """The common interface of the noise models: ξ = c·L·z, z unit-variance i.i.d. draws.

    Attributes
    ----------
    coef : float
        c in ξ = c·L·z (√(scale/batch), or σ for the isotropic model).
    uses_hessian : bool
        True where L Lᵀ = H (L = Q Λ^{1/2}), False where L = I.

    Examples
    --------
    The variance of ξ along a unit eigenvector of H with eigenvalue λ is c²λ, or c² for L = I:

    >>> from quadlab import noise
    >>> noise.NQM(batch=4, scale=2.0).direction_variance([1.0, 10.0])
    array([0.5, 5. ])
    >>> noise.Isotropic(sigma=0.5).direction_variance([1.0, 10.0])
    array([0.25, 0.25])
    """

    coef: float
    uses_hessian: bool

    def draw(self, rng: np.random.Generator, shape) -> np.ndarray:
        """The unit-variance i.i.d. draws z (standard normal here; each model's law in its docstring).

        Parameters
        ----------
        rng : numpy.random.Generator
            The seed's noise stream.
        shape : tuple of int
            The shape of the draws, (steps, n) in the runner.

        Returns
        -------
        numpy.ndarray
            float64 draws of that shape, mean 0 and variance 1 (α-stable: the scale of N(0, 1) at α = 2).

        Examples
        --------
        >>> import numpy as np
        >>> from quadlab import noise
        >>> z = noise.HeavyTailed(batch=1, df=5.0).draw(np.random.default_rng(0), (400_000,))
        >>> round(float(z.var()), 1)
        1.0
        """
        return rng.standard_normal(shape)

    def direction_variance(self, lam) -> np.ndarray:
        """Var(uᵀξ) for a unit eigenvector u of H with eigenvalue λ: c²λ, or c² where L = I.

        These variances are all the closed forms of :mod:`quadlab.nqm` need of a model.

        Parameters
        ----------
        lam : array_like
            Eigenvalues λ of H.

        Returns
        -------
        numpy.ndarray
            float64, the variance along each eigenvector.
        """
        lam = np.asarray(lam, dtype=np.float64)
        return self.coef**2 * (lam if self.uses_hessian else np.ones_like(lam))

    def describe(self) -> dict:
        """The model's name and parameters, JSON-ready (results record the noise they ran under).

        Returns
        -------
        dict
            ``{"model": name, ...}`` with every parameter of the model.

        Examples
        --------
        >>> from quadlab import noise
        >>> noise.NQM(batch=8).describe()
        {'model': 'nqm', 'batch': 8.0, 'scale': 1.0}
        """
        raise NotImplementedError


class _HessianScaled(NoiseModel):
    """The NQM's scaling, shared by the models whose noise is shaped by H: ξ = √(scale/batch)·L·z, L Lᵀ = H."""

    uses_hessian = True

    @property
    def coef(self) -> float:
        return float(np.sqrt(self.scale / self.batch))

    def _check_batch_scale(self, who: str) -> None:
        """Validate and store ``batch`` (a positive whole number) and ``scale`` (positive, finite)."""
        object.__setattr__(self, "batch", _positive(f"{who} batch", self.batch, integer=True))
        object.__setattr__(self, "scale", _positive(f"{who} scale", self.scale))


@dataclass(frozen=True)
class NQM(_HessianScaled):
    """The noisy quadratic model: ξ ~ N(0, (scale/batch)·H).

    Parameters
    ----------
    batch : float
        The batch size B > 0 (a whole number of examples).
    scale : float, default 1.0
        The per-example covariance factor: Cov of one example's gradient noise is ``scale``·H.

    Raises
    ------
    ValueError
        If ``batch`` is not a positive whole number or ``scale`` is not positive and finite.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import noise, optim, spectra
    >>> P = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks([[1.0, 10.0]]), rotation="none")
    >>> res = quadlab.run(P, optim.gd(lr=0.1), seeds=[0, 1], steps=50, noise=noise.NQM(batch=16))
    >>> res.gap.shape[0]
    2
    """

    batch: float
    scale: float = 1.0

    def __post_init__(self):
        self._check_batch_scale("NQM")

    def describe(self) -> dict:
        return {"model": "nqm", "batch": self.batch, "scale": self.scale}


@dataclass(frozen=True)
class Isotropic(NoiseModel):
    """Isotropic Gaussian noise ξ ~ N(0, σ²I).

    Parameters
    ----------
    sigma : float
        The standard deviation σ > 0 of every coordinate.

    Raises
    ------
    ValueError
        If ``sigma`` is not positive and finite.
    """

    sigma: float

    def __post_init__(self):
        object.__setattr__(self, "sigma", _positive("Isotropic sigma", self.sigma))

    @property
    def coef(self) -> float:
        return self.sigma

    uses_hessian = False

    def describe(self) -> dict:
        return {"model": "isotropic", "sigma": self.sigma}


@dataclass(frozen=True)
class HeavyTailed(_HessianScaled):
    """Student-t noise with the NQM's covariance: ξ = √(scale/batch)·L·t, Cov ξ = (scale/batch)·H.

    t has independent components T_i·√((ν−2)/ν), T_i ~ Student-t(ν): unit variance, tails P(|t_i| > x) ∝
    x^{−ν}.  Small ν (just above 2) gives the heaviest tails that still have a covariance.

    Parameters
    ----------
    batch : float
        The batch size B > 0 (a whole number).
    df : float, default 3.0
        Degrees of freedom ν > 2.
    scale : float, default 1.0
        As for :class:`NQM`.

    Raises
    ------
    ValueError
        If ``df`` ≤ 2 (the variance would be infinite) or ``batch``/``scale`` are invalid.
    """

    batch: float
    df: float = 3.0
    scale: float = 1.0

    def __post_init__(self):
        self._check_batch_scale("HeavyTailed")
        object.__setattr__(self, "df", _positive("HeavyTailed df (degrees of freedom, needs > 2 for a finite "
                                                 "covariance)", self.df, above=2.0))

    def draw(self, rng, shape):
        return rng.standard_t(self.df, shape) * np.sqrt((self.df - 2.0) / self.df)

    def describe(self) -> dict:
        return {"model": "heavy_tailed", "batch": self.batch, "df": self.df, "scale": self.scale}


@dataclass(frozen=True)
class AlphaStable(_HessianScaled):
    """Symmetric α-stable noise at the NQM's scale: ξ = √(scale/batch)·L·t, L Lᵀ = H.

    t has independent components with characteristic function exp(−|θ|^α/2^{α/2}) (α = 2: N(0, 1)), drawn
    by the Chambers–Mallows–Stuck formula from U ~ Uniform(−π/2, π/2) and W ~ Exp(1):

        X = sin(αU)/cos(U)^{1/α} · (cos((1−α)U)/W)^{(1−α)/α},   t = X/√2.

    Parameters
    ----------
    batch : float
        The batch size B > 0 (a whole number).
    alpha : float
        The stability index, 1 < α ≤ 2 (α ≤ 1 has no mean; α < 2 has infinite variance).
    scale : float, default 1.0
        As for :class:`NQM` (the covariance factor at α = 2).

    Raises
    ------
    ValueError
        For α outside (1, 2] or an invalid ``batch``/``scale``.
    """

    batch: float
    alpha: float = 1.8
    scale: float = 1.0

    def __post_init__(self):
        self._check_batch_scale("AlphaStable")
        a = _positive("AlphaStable alpha (the stability index, in (1, 2])", self.alpha, above=1.0)
        if a > 2.0:
            raise ValueError(f"AlphaStable alpha (the stability index) must lie in (1, 2], got {self.alpha!r}")
        object.__setattr__(self, "alpha", a)

    def draw(self, rng, shape):
        # U and W interleaved per value, so that the stream does not depend on how many rows a chunk holds
        r = rng.random((*shape, 2))
        u = np.pi * (r[..., 0] - 0.5)
        w = -np.log1p(-r[..., 1])
        a = self.alpha
        x = np.sin(a * u) / np.cos(u) ** (1 / a) * (np.cos((1 - a) * u) / w) ** ((1 - a) / a)
        return x / np.sqrt(2.0)

    def direction_variance(self, lam):
        """c²λ at α = 2 (the NQM); for α < 2 the variance is infinite.

        Parameters
        ----------
        lam
            As for :meth:`NoiseModel.direction_variance`, which gives the result at α = 2.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        ValueError
            For α < 2, where no second-moment closed form applies.
        """
        if self.alpha < 2:
            raise ValueError(f"AlphaStable noise with alpha = {self.alpha:g} < 2 has infinite variance: the "
                             "second-moment closed forms do not apply (use Monte Carlo with quadlab.run)")
        return super().direction_variance(lam)

    def describe(self) -> dict:
        return {"model": "alpha_stable", "batch": self.batch, "alpha": self.alpha, "scale": self.scale}


def check_noise(noise) -> NoiseModel | None:
    """``noise`` as the runner takes it.

    Parameters
    ----------
    noise : NoiseModel or None
        A model of this module, or None for exact gradients.

    Returns
    -------
    NoiseModel or None
        ``noise`` itself.

    Raises
    ------
    ValueError
        For anything else (a class instead of an instance, a number, a string).

    Examples
    --------
    >>> from quadlab import noise
    >>> noise.check_noise(None) is None
    True
    >>> noise.check_noise(noise.NQM)  # the class, not a model  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: noise must be None or a model from quadlab.noise (...), got <class 'quadlab.noise.NQM'>
    """
    if noise is None or isinstance(noise, NoiseModel):
        return noise
    raise ValueError("noise must be None or a model from quadlab.noise (NQM, Isotropic, HeavyTailed, AlphaStable), "
                     f"got {noise!r}")


class Stream:
    """The noise of one batch of runs in the runner's layout (private to :mod:`quadlab.runner`).

    ``seeds`` (R,) is every run's seed; the draws are made once per distinct seed, ``chunk`` steps at a time
    (the generator's output does not depend on how it is chunked, and the fixed-order product treats each
    row alone, so neither does ξ)."""

    budget = 1 << 21  # float64 values per chunk of host noise, all seeds and groups together

    def __init__(self, model: NoiseModel, problem, layout, seeds: np.ndarray):
        self.model, self.layout = model, layout
        self.backend = problem.backend
        uniq, self.which = np.unique(np.asarray(seeds, dtype=np.int64), return_inverse=True)
        self.which = self.which.reshape(-1)
        self.rngs = [np.random.default_rng(np.random.SeedSequence([int(s), STREAM_TAG])) for s in uniq]
        self.n = problem.n
        self.coords = [np.asarray(c).reshape(shape) for c, shape in zip(layout._coords, layout.shapes, strict=True)]
        self.factors = _factors(problem) if model.uses_hessian else None
        self.chunk = max(1, min(64, self.budget // max(1, len(uniq) * self.n)))
        self.k0, self.buf = 0, None

    def _fill(self, k: int) -> None:
        m, U = self.chunk, len(self.rngs)
        Z = np.stack([self.model.draw(rng, (m, self.n)) for rng in self.rngs], axis=1)  # (m, U, n)
        out = []
        for j, idx in enumerate(self.coords):
            Zg = np.ascontiguousarray(np.moveaxis(Z[:, :, idx], 2, 0)).reshape(idx.shape[0], m * U, idx.shape[1])
            if self.factors is not None:
                kind, F = self.factors[j]
                Zg = F * Zg if kind == "diag" else ordered.matmul(np, Zg, F)
            out.append((self.model.coef * Zg).reshape(idx.shape[0], m, U, idx.shape[1]))
        self.buf, self.k0 = out, k

    def at(self, k: int, rows: np.ndarray):
        """ξ_k for the runs ``rows`` (original run indices), as a tree in the backend's dtype."""
        if self.buf is None or not self.k0 <= k < self.k0 + self.chunk:
            self._fill(k)
        i, sel = k - self.k0, self.which[rows]
        b = self.backend
        return tuple(b.asarray(np.ascontiguousarray(X[:, i][:, sel, :])) for X in self.buf)


def _factors(problem):
    """Per layout group, the host float64 factor A with ξ_row = z_row @ A and AᵀA = H_g: A = Λ^{1/2}Qᵀ per
    block ("matmul", (k, d, d)), or ("diag", √λ as (1, 1, n)) for a diagonal H."""
    if problem._diag is not None:
        return [("diag", np.sqrt(problem.eigenvalues)[None, None, :])]
    out = []
    for g, V in zip(problem.groups, problem.eigenvectors(), strict=True):
        Q = problem.backend.to_numpy(V).astype(np.float64)
        out.append(("matmul", np.ascontiguousarray(np.sqrt(g.lam)[:, :, None] * np.swapaxes(Q, 1, 2))))
    return out
