"""The bounds of the theory as code: GD's rate and lower bound, the Adam theory-form theorem, heavy ball.

Notation (see docs/THEORY.md §3–§4).  f(w) − f* = ½ eᵀHe with e = w − w*, H = blockdiag(H_1, …, H_L).
Every "rate" in this module is a per-step factor on the gap f − f*; every "rho" is the spectral radius of
the iteration matrix acting on the error, so for the symmetric iterations below rate = rho².

* Adam theory form, w ← w − η g/|g_0|, i.e. e ← (I − ηD⁻¹H)e with D = diag(|g_0|).  With z = D^{1/2}e the
  iteration is z ← (I − ηM)z, M = D^{-1/2}HD^{-1/2} symmetric and block diagonal, and f − f* = ½ zᵀMz, so
  *every* step shrinks the gap by at most rho_Adam(η)² = max_μ (1 − ημ)² over the eigenvalues μ of M.
  The theorem's constants: C_{l,1} = min_{i∈l}|g_{0,i}|/λ_max(H_l), C_{l,2} = max_{i∈l}|g_{0,i}|/λ_max(H_l),
  r̃ = max_l C_{l,2} / min_l C_{l,1}, step η = min_l C_{l,1}, bound max_l (1 − 1/(r̃κ_l))².

GD's rate and lower bound, heavy ball's optimum and Nesterov's rate are in :mod:`quadlab.rates`, the
distribution of r over random starts in :mod:`quadlab.rstats` (both re-exported here); this module builds the
Adam theory form.

Block extremes come from :func:`quadlab.rules.block_extremes` (the one definition, over the theorem's
partition): the exact spectra by default, Lanczos estimates with ``source="lanczos"``; ``extremes=`` accepts
any per-block (λ_min, λ_max) table.  With estimated extremes the constants are only as good as the estimates:
an underestimated λ_max makes the theorem's step too long and its bound invalid.

For ``rotation="global"`` H is not block diagonal, so the only block structure the theorem can use is one
block: L = 1, C_1 = min|g_0|/λ_max(H), κ_1 = κ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import rates
from .rates import *  # noqa: F403 (the GD, heavy-ball and Nesterov rates, re-exported: rates.__all__)
from .rates import _lr_array, _readonly, _scalar_or_array, block_extremes, theory_blocks

#: this module's own names, then those of :mod:`quadlab.rates` it re-exports
__all__ = ["AdamConstants", "RStatistics", "adam_constants", "perturb_start", "preconditioned_extremes",
           "r_statistics", *rates.__all__]


# -- diagonally preconditioned spectra ------------------------------------------------------------
def _as_points(problem, W, what="w0") -> tuple[np.ndarray, bool]:
    W = np.asarray(problem.backend.to_numpy(W) if not isinstance(W, (list, tuple, np.ndarray)) else W,
                   dtype=np.float64)
    single = W.ndim == 1
    W2 = W[None, :] if single else W
    if W2.ndim != 2 or W2.shape[1] != problem.n:
        raise ValueError(f"{what} must have shape ({problem.n},) or (R, {problem.n}), got {W.shape}")
    if not np.isfinite(W2).all():
        raise ValueError(f"{what} has non-finite entries")
    return W2, single


def preconditioned_extremes(problem, p, *, chunk_elements: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Extreme eigenvalues of each theory block of P^{1/2} H P^{1/2} for diagonal preconditioners P = diag(p).

    The iteration e ← (I − PH)e is, in z = P^{-1/2}e, z ← (I − P^{1/2}HP^{1/2})z, and the gap is
    ½ zᵀP^{1/2}HP^{1/2}z; so max_μ |1 − μ|² bounds every step's gap factor.  Computed with ``eigvalsh`` on the
    backend in float64, one batched call per group of equal-size blocks (the whole matrix for
    ``rotation="global"``), in chunks of at most ``chunk_elements`` matrix entries.

    Parameters
    ----------
    problem : BlockQuadratic
    p : array_like
        Diagonals of P, shape (n,) or (R, n), every entry > 0 and finite.
    chunk_elements : int, keyword-only, default 2**22
        The most matrix entries one ``eigvalsh`` call holds.

    Returns
    -------
    tuple of numpy.ndarray
        (μ_min, μ_max), host float64, each (R, L), or (L,) for one p.

    Raises
    ------
    ValueError
        If ``p`` has the wrong shape, a non-finite entry or an entry ≤ 0.

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import spectra, theory
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000), seed=0)
    >>> lo, hi = theory.preconditioned_extremes(p, np.ones(9))  # P = I: the blocks' own extremes
    >>> np.allclose(lo, [1, 99, 998]) and np.allclose(hi, [3, 101, 1000])
    True
    """
    P, single = _as_points(problem, p, "p")
    if (P <= 0).any():
        raise ValueError("a diagonal preconditioner needs every entry > 0")
    R = P.shape[0]
    blocks = theory_blocks(problem)
    L = len(blocks)
    lo = np.empty((R, L))
    hi = np.empty((R, L))
    if problem.rotation == "none":
        lam = problem.eigenvalues
        for l, idx in enumerate(blocks):
            mu = P[:, idx] * lam[idx]
            lo[:, l], hi[:, l] = mu.min(axis=1), mu.max(axis=1)
    else:
        xp, b = problem.xp, problem.backend
        sq = np.sqrt(P)
        for g in problem.groups:
            H = xp.astype(g.H, xp.float64)[None, ...]
            S_all = sq[:, g.coords].reshape(R, g.k, g.size)
            target = list(g.blocks) if problem.is_block_diagonal else [0]
            step = max(1, chunk_elements // (g.k * g.size * g.size))
            for r0 in range(0, R, step):
                S = xp.asarray(S_all[r0:r0 + step])
                A = S[..., :, None] * H * S[..., None, :]
                mu = b.to_numpy(xp.linalg.eigvalsh(A))
                lo[r0:r0 + step, target] = mu.min(axis=-1)
                hi[r0:r0 + step, target] = mu.max(axis=-1)
    return (lo[0], hi[0]) if single else (lo, hi)


# -- Adam, theory form ----------------------------------------------------------------------------
def _zero_gradient_error(G, where):
    r, i = where
    count = int((G == 0).sum())
    row = f" (row {r} of the batch)" if G.shape[0] > 1 else ""
    return ValueError(
        f"g0 = ∇f(w0){row} has {count} zero entr{'y' if count == 1 else 'ies'}, first at coordinate {i}: the "
        "theorem needs every |g0_i| > 0 (D = diag(|g0|) must be invertible, and the Adam theory form divides "
        "by |g0|). A continuous random start avoids this with probability 1; "
        "quadlab.theory.perturb_start(problem, w0, seed=0) returns a nearby start without zeros."
    )


def perturb_start(problem, w0, *, scale: float | None = None, seed: int = 0, max_tries: int = 8) -> np.ndarray:
    """w₀ + scale·N(0, I), redrawn until ∇f has no zero entry (the theorem's constants divide by |∇f(w₀)|).

    Parameters
    ----------
    problem : BlockQuadratic
    w0 : array_like
        Starts, shape (n,) or (R, n), finite.
    scale : float, keyword-only, optional
        Default 1e-6·max(1, ‖w₀ − w*‖_∞): small enough to keep the start's character, large enough that the
        gradient's entries clear rounding.
    seed : int, keyword-only, default 0
        Seed of the perturbations.
    max_tries : int, keyword-only, default 8

    Returns
    -------
    numpy.ndarray
        Host float64, the shape of ``w0``.

    Raises
    ------
    ValueError
        If ``w0`` has the wrong shape or is not finite, ``scale`` is not finite and > 0, or no perturbation
        cleared the zero entries in ``max_tries`` draws.

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import spectra, theory
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000), rotation="none")
    >>> w = theory.perturb_start(p, np.zeros(9))  # w₀ = w*: ∇f = 0 everywhere
    >>> bool((p.grad(w[None, :]) != 0).all()), bool(np.abs(w).max() < 1e-4)
    (True, True)
    """
    W, single = _as_points(problem, w0)
    if scale is None:
        scale = 1e-6 * max(1.0, float(np.abs(W - problem.optimum_host).max()))
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be finite and > 0, got {scale!r}")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        Wp = W + scale * rng.standard_normal(W.shape)
        G = problem.backend.to_numpy(problem.grad(problem.backend.asarray(Wp)))
        if (G != 0).all():
            return Wp[0] if single else Wp
    raise ValueError(f"no perturbation of scale {scale:g} cleared the zero gradient entries in {max_tries} tries; "
                     "pass a larger scale")


@dataclass(frozen=True)
class AdamConstants:
    """The theorem's constants for the Adam theory form, from one start (scalars) or R starts (leading axis R).

    Per-block arrays have a last axis L (the theory blocks).  D = diag(|∇f(w₀)|), M = D^{-1/2}HD^{-1/2}.

    Attributes
    ----------
    g0_abs : numpy.ndarray
        |∇f(w₀)|, the diagonal of D.
    C1, C2 : numpy.ndarray
        C_{l,1} = min_{i∈l} |g_{0,i}|/λ_max(H_l) and C_{l,2} = max_{i∈l} |g_{0,i}|/λ_max(H_l).
    r_tilde, r_paper : float or numpy.ndarray
        r̃ = max_l C_{l,2}/min_l C_{l,1}; r_paper = r̃² (the size that matches the thesis's quoted numbers).
    kappa, block_kappas, block_lambda_max : float, numpy.ndarray, numpy.ndarray
        κ, κ_l and λ_max(H_l) of the extremes used.
    kappa_adam, kappa_adam_paper : numpy.ndarray
        r̃·κ_l and r_paper·κ_l.
    eta : float or numpy.ndarray
        min_l C_{l,1}, the theorem's step.
    mu_min, mu_max : numpy.ndarray or None
        Extreme eigenvalues of each block of M (None with ``exact_rates=False``).
    rho_exact, rate_exact : float or numpy.ndarray
        max_μ |1 − ημ| and its square: every step's gap factor is ≤ rate_exact (NaN with ``exact_rates=False``).
    bound, bound_linear, bound_paper : float or numpy.ndarray
        max_l (1 − 1/(r̃κ_l))², max_l (1 − 1/(r̃κ_l)) and the paper's stated form max_l (1 − 1/(r_paper·κ_l)).
    favours_adam, favours_adam_paper : bool or numpy.ndarray
        r̃·max_l κ_l ≤ κ and r_paper·max_l κ_l ≤ κ.
    best_lr, best_rate : float or numpy.ndarray
        2/(μ_min + μ_max) and ((κ_M − 1)/(κ_M + 1))², κ_M = μ_max/μ_min over all of M: the best constant step
        for this D (not the theorem's).
    source : str
        The spectrum source of the extremes ("exact", "lanczos") or "given".
    n_blocks : int
        L.

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import spectra, theory
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000), rotation="none")
    >>> c = theory.adam_constants(p, np.ones(9))  # |∇f| = λ: C_{l,1} = λ_min,l/λ_max,l
    >>> c.eta == 1 / 3, c.r_tilde == 3.0, c.bound <= c.bound_linear
    (True, True, True)
    """

    g0_abs: np.ndarray
    C1: np.ndarray
    C2: np.ndarray
    r_tilde: float | np.ndarray
    r_paper: float | np.ndarray
    kappa: float
    block_kappas: np.ndarray
    block_lambda_max: np.ndarray
    kappa_adam: np.ndarray
    kappa_adam_paper: np.ndarray
    eta: float | np.ndarray
    mu_min: np.ndarray | None
    mu_max: np.ndarray | None
    rho_exact: float | np.ndarray
    rate_exact: float | np.ndarray
    bound: float | np.ndarray
    bound_linear: float | np.ndarray
    bound_paper: float | np.ndarray
    favours_adam: bool | np.ndarray
    favours_adam_paper: bool | np.ndarray
    best_lr: float | np.ndarray
    best_rate: float | np.ndarray
    source: str
    n_blocks: int = field(default=0)

    def rho(self, lr):
        """ρ_Adam(η) = max_μ |1 − ημ| over the spectrum of M, for each start (η broadcast against R).

        Parameters
        ----------
        lr : float or array_like
            Step sizes η > 0, broadcast against the starts.

        Returns
        -------
        float or numpy.ndarray
            ρ_Adam(η) per start.

        Raises
        ------
        ValueError
            If the constants were computed with ``exact_rates=False`` or η is not finite and > 0.
        """
        if self.mu_min is None:
            raise ValueError("these constants were computed with exact_rates=False: no eigenvalues of M to use")
        lr = _lr_array(lr)
        lo, hi = np.asarray(self.mu_min), np.asarray(self.mu_max)
        lr_b = lr[..., None]
        r = np.maximum(np.abs(1.0 - lr_b * lo), np.abs(1.0 - lr_b * hi)).max(axis=-1)
        return _scalar_or_array(r)

    def rate(self, lr):
        """ρ_Adam(η)²: the exact bound on every step's gap factor at step η.

        Parameters
        ----------
        lr : float or array_like
            η > 0.

        Returns
        -------
        float or numpy.ndarray
            ρ_Adam(η)² per start.

        Raises
        ------
        ValueError
            As for :meth:`rho`.
        """
        return _scalar_or_array(np.asarray(self.rho(lr)) ** 2)

    def bound_at(self, lr):
        """The theorem's bound at a step η ≤ min_l C_{l,1}: max_l (1 − (η/η_thm)/(r̃κ_l))².

        For μ in block l, ημ ∈ [η/(C_{l,2}κ_l), η/C_{l,1}] ⊂ [(η/η_thm)/(r̃κ_l), 1]; at η = η_thm this is the theorem.

        Parameters
        ----------
        lr : float or array_like
            η > 0, at most the theorem's step (per start).

        Returns
        -------
        float or numpy.ndarray
            The bound per start.

        Raises
        ------
        ValueError
            For η > η_thm, where the theorem's assumption fails (:meth:`rate` still applies).
        """
        lr = _lr_array(lr)
        eta = np.asarray(self.eta)
        ratio = np.broadcast_to(lr, np.broadcast_shapes(lr.shape, eta.shape)) / eta
        bad = ratio > 1.0 + 8 * np.finfo(np.float64).eps
        if bad.any():
            k = np.unravel_index(int(np.flatnonzero(bad)[0]), ratio.shape) if ratio.ndim else ()
            raise ValueError(
                f"step {np.asarray(lr)[k] if np.asarray(lr).ndim else float(lr):.6g} exceeds the theorem's step "
                f"eta = min_l C_l1 = {np.asarray(eta)[k] if eta.ndim else float(eta):.6g}"
                f"{' (index ' + str(k) + ')' if ratio.ndim else ''}: the bound assumes eta <= min_l C_l1; use "
                "rate(lr) for the exact contraction at a longer step"
            )
        x = np.minimum(ratio, 1.0)[..., None] / np.asarray(self.kappa_adam)
        return _scalar_or_array((1.0 - x).max(axis=-1) ** 2)


def adam_constants(problem, w0, *, source: str = "exact", extremes=None, margin=None,
                   exact_rates: bool = True, spectra: bool | None = None) -> AdamConstants:
    """The Adam theory-form constants (:class:`AdamConstants`) for one start or a batch of starts.

    Parameters
    ----------
    problem : BlockQuadratic
    w0 : array_like
        Starts, shape (n,) or (R, n), host or backend, finite.
    source : {"exact", "lanczos"}, keyword-only, default "exact"
        The spectrum source of the block extremes.
    extremes : array_like, keyword-only, optional
        (L, 2) extremes to use instead.
    margin : float, keyword-only, optional
        With ``source="lanczos"``: the relative widening.
    exact_rates : bool, keyword-only, default True
        Compute the eigenvalues of M (``rho_exact``, ``rate_exact``, ``best_*``); False skips them (NaN), which
        is all the r statistics need.
    spectra : bool, keyword-only, optional
        Deprecated name of ``exact_rates`` (a DeprecationWarning).

    Returns
    -------
    AdamConstants
        The constants of every start (scalars for one start).

    Raises
    ------
    ValueError
        If ``w0`` has the wrong shape or is not finite, ∇f(w₀) has a zero entry (see :func:`perturb_start`),
        ``source`` is unknown or the extremes are invalid.

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import spectra, theory
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000), seed=0)
    >>> c = theory.adam_constants(p, quadlab.starts(p, [0, 1]))
    >>> c.eta.shape, bool((c.rate_exact <= c.bound + 1e-12).all())
    ((2,), True)
    """
    if spectra is not None:  # the old name: "spectra" is the source vocabulary's word (docs/ARCHITECTURE.md)
        import warnings

        warnings.warn("adam_constants(spectra=...) is deprecated: use exact_rates=...", DeprecationWarning,
                      stacklevel=2)
        exact_rates = bool(spectra)
    W, single = _as_points(problem, w0)
    b = problem.backend
    G = np.abs(b.to_numpy(problem.grad(b.asarray(W)))).astype(np.float64)
    zero = np.argwhere(G == 0)
    if zero.size:
        raise _zero_gradient_error(G, tuple(int(v) for v in zero[0]))
    ex = block_extremes(problem, source, extremes=extremes, margin=margin)
    blocks = theory_blocks(problem)
    lmin, lmax = ex[:, 0], ex[:, 1]
    kappa = float(lmax.max() / lmin.min())
    kl = lmax / lmin
    gmin = np.stack([G[:, idx].min(axis=1) for idx in blocks], axis=1)
    gmax = np.stack([G[:, idx].max(axis=1) for idx in blocks], axis=1)
    C1, C2 = gmin / lmax, gmax / lmax
    eta = C1.min(axis=1)
    r_tilde = C2.max(axis=1) / eta
    r_paper = r_tilde**2
    ka, kap = r_tilde[:, None] * kl, r_paper[:, None] * kl
    # log1p keeps 1 − 1/(rκ) accurate when rκ is huge; rκ = 1 (one block, one distinct eigenvalue, equal
    # gradient entries) gives log1p(−1) = −inf and the exact bound 0, which is not an error.
    with np.errstate(divide="ignore"):
        bound_linear = np.exp(np.log1p(-1.0 / ka).max(axis=1))
        bound_paper = np.exp(np.log1p(-1.0 / kap).max(axis=1))
    if exact_rates:
        lo, hi = preconditioned_extremes(problem, 1.0 / G)
        rho = np.maximum(np.abs(1.0 - eta[:, None] * lo), np.abs(1.0 - eta[:, None] * hi)).max(axis=1)
        mlo, mhi = lo.min(axis=1), hi.max(axis=1)
        best_lr = 2.0 / (mlo + mhi)
        best_rate = ((mhi - mlo) / (mhi + mlo)) ** 2
    else:
        lo = hi = None
        rho = best_lr = best_rate = np.full(W.shape[0], np.nan)

    def out(a):
        return _scalar_or_array(a[0] if single else a)

    return AdamConstants(
        g0_abs=out(G), C1=out(C1), C2=out(C2), r_tilde=out(r_tilde), r_paper=out(r_paper), kappa=kappa,
        block_kappas=_readonly(kl), block_lambda_max=_readonly(lmax), kappa_adam=out(ka),
        kappa_adam_paper=out(kap), eta=out(eta), mu_min=None if lo is None else out(lo),
        mu_max=None if hi is None else out(hi), rho_exact=out(rho), rate_exact=out(rho**2),
        bound=out(bound_linear**2), bound_linear=out(bound_linear), bound_paper=out(bound_paper),
        favours_adam=out(r_tilde * kl.max() <= kappa), favours_adam_paper=out(r_paper * kl.max() <= kappa),
        best_lr=out(best_lr), best_rate=out(best_rate),
        source="given" if extremes is not None else source, n_blocks=len(blocks),
    )


# The distribution of r over random starts lives in quadlab.rstats (built on adam_constants above); its names
# stay importable from here.
from .rstats import RStatistics, r_statistics  # noqa: E402
