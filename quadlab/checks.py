"""Observed rates of runs against the theory: per run, what happened, what the theory says, and whether the
bounds held.

Rates are per-step factors on the gap f − f* (see :mod:`quadlab.theory`).

* :func:`observed_rates` measures, from a :class:`quadlab.Result`, the worst ratio between consecutive
  recorded gaps (as a per-step factor: (gap_{j+1}/gap_j)^{1/(k_{j+1} − k_j)}) and a robust fit over the tail:
  the Theil–Sen slope of log gap against k over the last ``tail_fraction`` of the usable steps.  The usable
  records are the leading ones that are finite and above the floating-point floor; a run with too few of
  them, or whose tail scatters too much about the fitted line, is "undetermined" (NaN, with a reason).
  Both are taken from ratios of gaps (the slopes are log(gap_j/gap_i)/(k_j − k_i)), not from differences of
  logs, whose rounding eps·(|ln gap_i| + |ln gap_j|) reaches 1.5e-13 near the floor.
* :func:`report` adds, per run, the exact rate of its method at its hyperparameters and the theorem's bound,
  and says whether they held.  ``print(report(result, problem))`` prints the table.

What "holds" means depends on the method:

* GD, Adam theory form, blockwise GD, Jacobi GD (e ← (I − PH)e with P diagonal > 0): in z = P^{-1/2}e the
  iteration matrix is symmetric and commutes with the gap's matrix, so *every* step's gap factor is at most
  the exact rate max_μ |1 − μ|², μ ∈ spec(P^{1/2}HP^{1/2}).  Holds: worst ≤ exact and observed ≤ exact, and
  for the Adam theory form at a step η ≤ min_l C_{l,1} also exact ≤ bound, each up to the rounding bound
  below.
* Heavy ball, Nesterov: the exact rate is asymptotic (a spectral radius); a double root adds a factor k to
  the error (k² to the gap), so the tail fit over steps [k_1, k_2] may exceed it by up to 2/k_1 in log;
  holds compares with that allowance (plus β below, with M = ηH).
* Adam with β2 < 1, RMSprop, Adam-mini: nonlinear, no exact rate; holds is "n/a".

Slack: a bound on the rounding, not a guess.  u = eps/2 of the run's dtype, γ_m = m·u/(1 − m·u) (the error
of a sum of m terms in any order, FMA or not).  M = P^{1/2}HP^{1/2}, the step included (P = ηI for GD), has
blocks M_l of size d_l with extreme eigenvalues μ_l⁻ ≤ μ_l⁺, κ_l = μ_l⁺/μ_l⁻, μ̄ = max_l μ_l⁺, n = Σ d_l,
d = max d_l, ρ̂ = √exact.  A run holds when

    worst ≤ limit = (ρ̂·(1 + 3u) + a)²·(1 + β),     observed ≤ limit·(1 + u·(3·max(1, |ln limit|) + 3)),

with a an absolute allowance on ρ and β a relative one on a computed factor:

* The exact rate.  Each computed eigenvalue of M_l is within c(d_l)·u·μ_l⁺ of the matrix the run multiplies
  by, c(d) = 4√d + 4d: forming M entrywise (|δM| ≤ γ_4|M|, and ‖|M_l|‖₂ ≤ √d_l‖M_l‖₂) and the eigensolver's
  backward error, taken as 2d·eps·‖M_l‖ (LAPACK's approximate bound is eps·‖M‖; at most 2.4·d·u was
  measured on the 3,700 blocks of the 1,500 instances below).  GD on a rotated problem reads the prescribed
  λ, which the stored fl(QΛQᵀ) misses by up to (d(d + 1) + 16d)·u·λ_max more (the product's rounding, and Q's
  departure from orthogonality).  a_eig = max_l c(d_l)·u·μ_l⁺; 1 − μ̂, √exact and the square
  are the 3u.
* An iterated run (method "iterate", "gpu_scan").  ê ← fl(ê − p∘fl(Hê)) adds in z the error ζ with
  |ζ| ≤ γ_{d+2}|M||z| + u|z'| (the block's d-term products, the product by p, the subtraction; z' = (I − M)z),
  so ‖M^{1/2}ζ‖ ≤ δ‖M^{1/2}z‖, δ = max_l √κ_l·(√d_l·γ_{d_l+2}·μ_l⁺ + u·ρ), and √(factor) ≤ ρ + δ:
  a = a_eig + δ.  This error is relative to e_k, not to e_{k+1}, so it is absolute in ρ and decides when the
  rate is small.  The computed gap ½ fl(eᵀfl(He)) is gap·(1 + θ) with |θ| ≤ γ_{n+d}·|z|ᵀ|M||z|/zᵀMz ≤
  γ_{n+d}·max_l √d_l·κ_l = θ (the dot products err relative to |e|ᵀ|H||e| = |z|ᵀ|M||z|, which exceeds the gap
  by up to √d_l·κ_l when e lies along a small eigenvalue).
* The closed form (method "closed_form", what ``method="auto"`` gives these methods).  The run's own
  eigenvalues (a_eig again) and e^{log1p(−ημ)} (≤ (μ̄ + 1)·u): a = 2·a_eig + (μ̄ + 1)·u.  A mode's amplitude
  is exp(fl(fl(k·L_j) + ℓ_j)), L_j = log|1 − μ_j|, ℓ_j = ln(|c_j|√(μ_j/2)), x_j = k·L_j + ℓ_j: the exponent
  carries u·(|k·L_j| + |x_j|), relative in the amplitude.  Weighted by the modes' shares w_j of the gap,
  Σ_j w_j·|x_j| ≤ ½(|ln gap_k| + ln n) + 0.2 (Jensen on −w ln w) and |k·L_j| ≤ |x_j| + ℓ, ℓ = ½ ln⁺ gap_0 for
  a decaying mode and k·ln ρ for a growing one; with exp (1 ulp), the square and the sum,
  θ = u·(2·max_k |ln gap_k| + 2 ln n + 2ℓ + 6) + γ_n over the usable records: up to 3e-13 near the floor.
* β = (1 + θ)/(1 − θ)·(1 + u)³ − 1: two gaps, the division and the power 1/(k_{j+1} − k_j).  The tail fit's
  slopes are logs of such ratios: the log (1 ulp), the division and exp add u·(3·|slope| + 3).
* The bound: exact ≤ (√bound·(1 + 4u) + a_eig + (c(d) + 8)·u)²·(1 + 2u); κ_l's relative error c(d)·u·κ_l
  enters the bound through q = (η/η_thm)/(r̃κ_l) ≤ 1 as an absolute c(d)·u.

On 1,500 random theory-form instances (``bench/report_false_alarms.py``) the former slack 4·n^{3/2}·κ·eps
(3.5e-15 at n = 2, κ ≈ 1.4) said "NO" 11 times (closed form) and 7 times (iterated), all at n ≤ 3, by 2–9e-14:
eps·|ln gap| from the logs that ``worst`` was taken through and from the closed form's exponents, not the few
eps of the update.  The bound above uses at most 0.56 of its allowance there, and is 1.5e-14 relative (median;
at most 1.5e-12) for the closed form and 1.3e-12 (at most 7.6e-10: n = 18, κ_l = 7.4e4) iterated.
``report(..., slack=s)`` replaces it by the former rule: worst, observed ≤ exact·(1 + s) + s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import rules, theory
from .roundoff import rounding_bound

__all__ = ["ObservedRates", "Report", "observed_rates", "report", "SYMMETRIC", "MOMENTUM"]

SYMMETRIC = ("gd", "adam_theory", "blockwise_gd", "jacobi_gd")
MOMENTUM = ("heavy_ball", "nesterov")


@dataclass(frozen=True)
class ObservedRates:
    """Each run's measured contraction per step (:func:`observed_rates`).

    Attributes
    ----------
    worst : numpy.ndarray
        (R,) the largest per-step factor between consecutive usable records,
        (gap_{j+1}/gap_j)^{1/(k_{j+1} − k_j)}.
    tail : numpy.ndarray
        (R,) exp of the Theil–Sen slope of log gap against k over the tail; NaN when undetermined.
    status : numpy.ndarray
        (R,) "ok" or "undetermined".
    reason : numpy.ndarray
        (R,) why undetermined, else "".
    usable : numpy.ndarray
        (R,) number of leading records that are finite and above the floor.
    tail_steps : numpy.ndarray
        (R, 2) the iterations (k_1, k_2) the tail fit spans.
    floor : float
        The gap below which records are not used.
    """

    worst: np.ndarray
    tail: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    usable: np.ndarray
    tail_steps: np.ndarray
    floor: float


def _floor_for(dtype_name: str) -> float:
    """Gaps below tiny/eps·1e3 are subnormal or nearly so and have lost their relative precision.  The
    runner tracks e = w − w* itself, so no ‖w*‖-sized floor arises there."""
    fi = np.finfo(dtype_name)
    return float(fi.tiny / fi.eps * 1e3)


def _theil_sen(k: np.ndarray, gap: np.ndarray, max_points: int = 96) -> tuple[float, float]:
    """Median pairwise slope of log gap against k, and the median absolute residual about the fitted line.

    Each slope is log(gap_j/gap_i)/(k_j − k_i), the log of the computed ratio: its rounding is a few eps
    relative to the slope itself, where ln gap_j − ln gap_i would carry eps·(|ln gap_i| + |ln gap_j|), up to
    1.5e-13 near the floor (the module docstring's bound counts on the former)."""
    if k.size > max_points:
        pick = np.unique(np.round(np.linspace(0, k.size - 1, max_points)).astype(int))
        k, gap = k[pick], gap[pick]
    y = np.log(gap)
    i, j = np.triu_indices(k.size, 1)
    dk = k[j] - k[i]
    ok = dk > 0
    slope = float(np.median(_log_ratio(gap[j], gap[i], y[j], y[i])[ok] / dk[ok]))
    res = y - slope * k
    res = res - np.median(res)
    return slope, float(np.median(np.abs(res)))


def _log_ratio(a, b, ya, yb):
    """log(a/b) for positive finite a, b from the ratio (a few eps of relative error); ya − yb (logs) where
    a/b over- or underflows."""
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        r = a / b
        good = np.isfinite(r) & (r > 0)
        return np.where(good, np.log(np.where(good, r, 1.0)), ya - yb)


def observed_rates(result, *, floor: float | None = None, min_records: int = 5, tail_fraction: float = 0.5,
                   max_scatter: float = 0.05) -> ObservedRates:
    """Measure each run's contraction: the worst step factor and a robust fit over the tail (module docstring).

    Parameters
    ----------
    result : Result
        Runs with recorded gaps (:func:`quadlab.run`).
    floor : float, keyword-only, optional
        Gaps at or below it are not used (default: the run dtype's subnormal edge).
    min_records : int, keyword-only, default 5
        Fewest usable records in the tail for a fit, ≥ 2.
    tail_fraction : float, keyword-only, default 0.5
        The fraction of the usable records the fit uses, in (0, 1].
    max_scatter : float, keyword-only, default 0.05
        The largest median absolute residual of log gap about the tail line, relative to the line's total log
        drop over the tail; more scatter makes the run "undetermined".

    Returns
    -------
    ObservedRates
        Per run: worst step factor, tail fit and whether the fit is determined.

    Raises
    ------
    ValueError
        If ``tail_fraction`` ∉ (0, 1] or ``min_records`` < 2.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import checks, optim, rates, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(200), rotation="none")
    >>> res = quadlab.run(p, optim.gd(lr="optimal"), steps=3000, tol=1e-10)
    >>> obs = checks.observed_rates(res)
    >>> bool(obs.tail[0] <= rates.gd_rates(p).best_rate * (1 + 1e-6)), str(obs.status[0])
    (True, 'ok')
    """
    if not 0 < tail_fraction <= 1:
        raise ValueError(f"tail_fraction must lie in (0, 1], got {tail_fraction!r}")
    if min_records < 2:
        raise ValueError(f"min_records must be at least 2, got {min_records!r}")
    steps = np.asarray(result.steps, dtype=np.int64)
    gap = np.asarray(result.gap, dtype=np.float64)
    floor = _floor_for(result.dtype) if floor is None else float(floor)
    R = gap.shape[0]
    worst = np.full(R, np.nan)
    tail = np.full(R, np.nan)
    status = np.array(["ok"] * R, dtype=object)
    reason = np.array([""] * R, dtype=object)
    usable = np.zeros(R, dtype=np.int64)
    window = np.zeros((R, 2), dtype=np.int64)
    for r in range(R):
        good = np.isfinite(gap[r]) & (gap[r] > floor)
        m = int(np.argmin(good)) if not good.all() else good.size
        usable[r] = m
        k, g = steps[:m], gap[r, :m]
        if m >= 2:
            # from the ratios themselves: differences of logs would add eps·(|ln gap_j| + |ln gap_{j+1}|)
            y = np.log(g)
            dk = np.diff(k)
            lr_ = _log_ratio(g[1:], g[:-1], y[1:], y[:-1])
            with np.errstate(over="ignore", under="ignore", divide="ignore"):
                direct = g[1:] / g[:-1]
            f = np.where((dk == 1) & np.isfinite(direct) & (direct > 0), direct, np.exp(lr_ / dk))
            worst[r] = float(np.max(f))
        if m < min_records:
            status[r] = "undetermined"
            if m == good.size:
                why = "too few records"
            elif np.isnan(gap[r, m]):
                why = f"run stopped ({result.status[r]})"
            elif np.isinf(gap[r, m]):
                why = "overflow"
            else:
                why = "reached the floor"
            reason[r] = f"{m} usable record{'s' if m != 1 else ''} ({why}); need {min_records}"
            continue
        k_cut = k[0] + (1.0 - tail_fraction) * (k[-1] - k[0])
        sel = k >= k_cut
        if sel.sum() < min_records:
            sel = np.zeros(m, dtype=bool)
            sel[-min_records:] = True
        kt, gt = k[sel], g[sel]
        window[r] = (kt[0], kt[-1])
        slope, mad = _theil_sen(kt, gt)
        drop = abs(slope) * (kt[-1] - kt[0])
        if mad > max_scatter * max(drop, 1e-300):
            status[r] = "undetermined"
            reason[r] = f"tail too noisy: median residual {mad:.3g} vs log drop {drop:.3g}"
            continue
        tail[r] = math.exp(slope)
    return ObservedRates(worst=worst, tail=tail, status=status.astype(str), reason=reason.astype(str),
                         usable=usable, tail_steps=window, floor=floor)


# -- report ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    """Per-run comparison of observed and theoretical rates; ``print(report)`` shows it as a table.

    Attributes
    ----------
    optimizer : str
    kind : str
        What ``exact`` guarantees: "per-step", "asymptotic" or "none".
    config : dict
        The runs' hyperparameters, one entry per run.
    observed, worst : numpy.ndarray
        (R,) tail fit and worst step factor (:class:`ObservedRates`).
    exact : numpy.ndarray
        (R,) the method's exact rate at its hyperparameters.
    bound : numpy.ndarray
        (R,) the theorem's bound; NaN where it does not apply.
    lower : float
        GD's lower bound ((κ−1)/(κ+1))², the rate no GD step beats asymptotically.
    margin : numpy.ndarray
        (R,) ln(observed)/ln(reference), reference = bound where defined else exact (≥ 1: at least that many
        times faster than promised).
    holds : numpy.ndarray
        (R,) "yes", "NO", "undetermined" or "n/a".
    note : numpy.ndarray
        (R,) remarks.
    slack : float
        The largest relative allowance β over the runs (the given ``slack`` when one was given).
    observed_rates : ObservedRates
    limit : numpy.ndarray
        (R,) the largest worst step factor that holds: (√exact·(1 + 3u) + a)²·(1 + β) (module docstring,
        "Slack"), or exact·(1 + slack) + slack with a given ``slack``.
    slack_abs : float
        The largest absolute allowance a on √rate over the runs (0 with a given ``slack``).
    n_runs : int
    all_hold : bool
        No run failed (undetermined and n/a do not count as failures).
    """

    optimizer: str
    kind: str
    config: dict
    observed: np.ndarray
    worst: np.ndarray
    exact: np.ndarray
    bound: np.ndarray
    lower: float
    margin: np.ndarray
    holds: np.ndarray
    note: np.ndarray
    slack: float
    observed_rates: ObservedRates
    limit: np.ndarray | None = None
    slack_abs: float = 0.0

    @property
    def n_runs(self) -> int:
        return int(self.holds.size)

    @property
    def all_hold(self) -> bool:
        """True when no run failed (undetermined and n/a runs do not count as failures)."""
        return not (self.holds == "NO").any()

    def records(self) -> list[dict]:
        """One plain dict per run (for JSON or a DataFrame); non-finite rates become None.

        Returns
        -------
        list of dict
            One dict per run: its hyperparameters, rates and verdict.
        """
        out = []
        for r in range(self.n_runs):
            row = {k: v[r].item() if hasattr(v[r], "item") else v[r] for k, v in self.config.items()}
            for name in ("observed", "worst", "exact", "bound", "margin"):
                v = float(getattr(self, name)[r])
                row[name] = None if not np.isfinite(v) else v
            row.update(lower=self.lower, holds=str(self.holds[r]), note=str(self.note[r]))
            out.append(row)
        return out

    def __str__(self) -> str:
        names = [k for k in self.config if k != "seed"] + (["seed"] if "seed" in self.config else [])
        cols = names + ["observed", "worst", "exact", "bound", "margin", "holds", "note"]

        def fmt(v, name):
            if name in ("holds", "note"):
                return str(v)
            if name == "seed":
                return str(int(v))
            v = float(v)
            if not np.isfinite(v):
                return "-"
            if name in ("observed", "worst", "exact", "bound"):
                return f"{v:.8f}" if v < 1 else f"{v:.6g}"
            return f"{v:.4g}"

        body = []
        for r in range(self.n_runs):
            vals = [self.config[k][r] for k in names] + [self.observed[r], self.worst[r], self.exact[r],
                                                          self.bound[r], self.margin[r], self.holds[r],
                                                          self.note[r]]
            body.append([fmt(v, c) for v, c in zip(vals, cols, strict=True)])
        width = [max(len(c), *(len(row[i]) for row in body)) if body else len(c) for i, c in enumerate(cols)]
        line = lambda row: "  ".join(s.ljust(w) if c == "note" else s.rjust(w)  # noqa: E731
                                     for s, w, c in zip(row, width, cols, strict=True)).rstrip()
        head = (f"{self.optimizer}: {self.n_runs} run{'s' if self.n_runs != 1 else ''}; rates are per-step "
                f"factors on f - f*; exact is {self.kind}; GD lower bound {self.lower:.8f}; slack {self.slack:.2g}"
                + (f" (+ {self.slack_abs:.2g} on the root)" if self.slack_abs > 0 else ""))
        return "\n".join([head, line(cols)] + [line(row) for row in body])


def _lr_of(result, problem, name) -> np.ndarray:
    """The step each run used: its configured lr, or its rule resolved exactly as the runner resolved it."""
    if "lr" not in result.config and result.options.get("lr") is None:
        raise ValueError(f"cannot tell which step the runs of {name!r} used (options {result.options!r})")
    return rules.resolve_lr(problem, result.options, result.w0, result.config.get("lr"))


def report(result, problem, *, slack: float | None = None, **observe) -> Report:
    """The per-run theory report for runs on ``problem``: exact rate, bound, and whether they held.

    Parameters
    ----------
    result : Result
        Runs of one optimizer on ``problem`` (:func:`quadlab.run`).
    problem : BlockQuadratic
        The problem the runs were made on.
    slack : float, keyword-only, optional
        A fixed tolerance instead of the rounding bound: a run holds when worst and observed are at most
        exact·(1 + slack) + slack (and exact ≤ bound·(1 + slack) + 4n·eps).  Default: the bound of the module
        docstring ("Slack"), worst ≤ limit = (√exact·(1 + 3u) + a)²·(1 + β) per run, u = eps/2 of the run's
        dtype, with a (on √rate) from the eigenvalues of P^{1/2}HP^{1/2}, c(d)·u·μ_max per block of size d,
        c(d) = 4√d + 4d, plus, iterated, the update's max_l √κ_l·(√d_l·γ_{d_l+2}·μ_l,max + u·ρ); and β =
        (1 + θ)/(1 − θ)·(1 + u)³ − 1 from the gaps' own rounding, θ = γ_{n+d}·max_l √d_l·κ_l iterated and
        θ = u·(2 max |ln gap| + 2 ln n + 2ℓ + 6) + γ_n in the closed form.
    **observe
        Passed to :func:`observed_rates`.

    Returns
    -------
    Report
        Per run: observed, exact, bound, margin and whether it holds.

    Raises
    ------
    ValueError
        If the result's dimension differs from the problem's, or its step cannot be resolved.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab import optim, spectra
    >>> p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(200))
    >>> rep = quadlab.report(quadlab.run(p, optim.adam_theory(), seeds=[0, 1], steps=400), p)
    >>> rep.kind, rep.all_hold, rep.holds.tolist()
    ('per-step', True, ['yes', 'yes'])
    """
    if result.w0.shape[1] != problem.n:
        raise ValueError(f"result has points of dimension {result.w0.shape[1]}, the problem has n = {problem.n}")
    name = result.optimizer
    obs = observed_rates(result, **observe)
    R = obs.tail.size
    eps = float(np.finfo(result.dtype).eps)
    n = problem.n
    exact = np.full(R, np.nan)
    bound = np.full(R, np.nan)
    sizes = np.array([len(b) for b in theory.theory_blocks(problem)])
    ex_h = None  # the blocks' extremes of H: M = ηH for GD and the momentum methods
    lo = hi = None  # (R, L) extremes of the blocks of M = P^{1/2}HP^{1/2}, the step included
    note = np.array([""] * R, dtype=object)
    kind = "none"
    cfg = result.config
    gdr = theory.gd_rates(problem)
    if name in SYMMETRIC:
        kind = "per-step"
        lr = _lr_of(result, problem, name) if name in ("gd", "adam_theory") else np.asarray(cfg["lr"], float)
        if name == "gd":
            exact = np.asarray(theory.gd_rates(problem, lr=lr).rate, dtype=float).reshape(R)
            ex_h = theory.block_extremes(problem)
        elif name == "adam_theory":
            c = theory.adam_constants(problem, result.w0)
            exact = np.asarray(c.rate(lr)).reshape(R)
            lo = lr[:, None] * np.asarray(c.mu_min).reshape(R, -1)
            hi = lr[:, None] * np.asarray(c.mu_max).reshape(R, -1)
            eta = np.asarray(c.eta).reshape(R)
            ok = lr <= eta * (1.0 + 8.0 * np.finfo(np.float64).eps)
            if ok.any():
                sub = theory.adam_constants(problem, result.w0[ok], exact_rates=False)
                bound[ok] = np.asarray(sub.bound_at(np.minimum(lr[ok], np.asarray(sub.eta).reshape(-1))))
            note[~ok] = "lr > theorem step: bound n/a"
        else:
            if name == "jacobi_gd":
                d = problem.backend.to_numpy(problem.diagonal()).astype(np.float64)
                P = lr[:, None] / d[None, :]
            else:
                bl = result.options.get("block_lr")
                if isinstance(bl, str):  # the oracle, resolved as the run resolved it
                    bl = rules.oracle_block_lrs(problem, result.options.get("source", result.options.get("spectra", "exact")))
                P = lr[:, None] * np.repeat(np.asarray(bl, float), problem.block_sizes)[None, :]
            lo, hi = theory.preconditioned_extremes(problem, P)
            exact = np.maximum(np.abs(1 - lo), np.abs(1 - hi)).max(axis=1) ** 2
    elif name in MOMENTUM:
        kind = "asymptotic"
        f = theory.heavy_ball_rho if name == "heavy_ball" else theory.nesterov_rho
        lr = np.asarray(cfg["lr"], float).reshape(R)
        exact = np.asarray(f(problem, lr, np.asarray(cfg["momentum"], float))).reshape(R) ** 2
        ex_h = theory.block_extremes(problem)
    else:
        note[:] = "nonlinear: no exact rate"
    if ex_h is not None:
        lo, hi = lr[:, None] * ex_h[None, :, 0], lr[:, None] * ex_h[None, :, 1]
    if slack is not None or lo is None:
        s_ = 0.0 if slack is None else float(slack)
        rtol = np.full(R, s_)
        with np.errstate(invalid="ignore"):
            limit = limit_tail = exact * (1 + s_) + s_
            limit_bound = bound * (1 + s_) + 4 * n * np.finfo(np.float64).eps
        slack_abs = np.zeros(R)
    else:
        closed = kind == "per-step" and result.method == "closed_form"
        gaps = [result.gap[r, :obs.usable[r]] for r in range(R)] if closed else None
        rnd = rounding_bound(exact, lo, hi, sizes, eps=eps, closed_form=closed, steps=result.steps, gaps=gaps,
                       bound=bound, formed=name == "gd" and problem.rotation != "none")
        rtol, slack_abs = rnd.relative, rnd.absolute
        limit, limit_tail, limit_bound = rnd.limit, rnd.limit_tail, rnd.limit_bound
    holds = np.array(["n/a"] * R, dtype=object)
    ref = np.where(np.isfinite(bound), bound, exact)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where((ref > 0) & (ref < 1) & (obs.tail > 0), np.log(obs.tail) / np.log(ref), np.nan)
    for r in range(R):
        if kind == "none":
            continue
        fails = []
        if kind == "per-step":
            if np.isfinite(obs.worst[r]) and obs.worst[r] > limit[r]:
                fails.append("worst step > exact")
            if np.isfinite(obs.tail[r]) and obs.tail[r] > limit_tail[r]:
                fails.append("observed > exact")
            if np.isfinite(bound[r]) and exact[r] > limit_bound[r]:
                fails.append("exact > bound")
        elif np.isfinite(obs.tail[r]):
            k1, k2 = obs.tail_steps[r]
            # log(k²ρ^{2k}) has slope 2 ln ρ + 2/k: at most 2/k_1 above the rate over the window.
            allow = 2.0 / max(k1, 1)
            if math.log(obs.tail[r]) > math.log(exact[r]) + allow + rtol[r]:
                fails.append("observed > asymptotic rate")
        if fails:
            holds[r] = "NO"
            note[r] = "; ".join([s for s in [note[r]] if s] + fails)
        elif kind == "per-step" and np.isfinite(exact[r]) and not np.isfinite(limit[r]) and obs.status[r] == "ok":
            holds[r] = "undetermined"  # θ ≥ 1 or κ_l beyond 1/u: this dtype's rounding bound says nothing
            note[r] = "; ".join([s for s in [note[r]] if s] + ["rounding bound infinite (κ too large for the dtype)"])
        elif obs.status[r] != "ok":
            holds[r] = "undetermined"
            note[r] = "; ".join([s for s in [note[r]] if s] + [obs.reason[r]])
        else:
            holds[r] = "yes"
    config = {k: np.asarray(v) for k, v in cfg.items()}
    if "lr" not in config and kind != "none" and name in ("gd", "adam_theory"):
        config = {"lr": _lr_of(result, problem, name), **config}
    return Report(optimizer=name, kind=kind, config=config, observed=obs.tail, worst=obs.worst, exact=exact,
                  bound=bound, lower=gdr.lower_rate, margin=margin, holds=holds.astype(str),
                  note=note.astype(str), slack=float(np.max(rtol)) if R else 0.0, observed_rates=obs,
                  limit=np.asarray(limit, dtype=float), slack_abs=float(np.max(slack_abs)) if R else 0.0)
