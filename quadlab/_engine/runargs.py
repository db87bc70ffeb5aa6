"""The arguments of :func:`quadlab.run` checked and turned into starting errors and stopping thresholds (used
by the runner, its compiled scan and the GPU scan, which must agree with it bit for bit)."""

from __future__ import annotations

import numpy as np

from ..problem import start_offsets


def check_steps(steps) -> int:
    """A step count must be a finite integer ≥ 1 (an integral float such as 1e4 is accepted)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, float, np.integer, np.floating)):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not np.isfinite(steps) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


def check_seeds(seeds) -> list[int]:
    """Seeds are non-negative integers (numpy's generators take no negative seed, and a fractional seed
    would silently be truncated to another run's)."""
    if seeds is None:
        return [0]
    arr = np.atleast_1d(np.asarray(seeds, dtype=object))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    out = []
    for s in arr:
        ok = isinstance(s, (int, np.integer)) and not isinstance(s, bool)
        if isinstance(s, (float, np.floating)) and np.isfinite(s) and float(s).is_integer():
            ok, s = True, int(s)
        if not ok or s < 0:
            raise ValueError(f"seeds must be non-negative integers, got {s!r} in {seeds!r}")
        out.append(int(s))
    return out


def starts(problem, w0, seeds, C: int) -> np.ndarray:
    """The starting errors e₀ = w₀ − w* of R = C·len(seeds) runs (host float64, (R, n)): ξ_s per seed
    (:func:`quadlab.problem.start_offsets`) tiled over the C configurations, or the given w0 ((n,) for every
    run, or (R, n)) minus w*."""
    n = problem.n
    if w0 is None:
        return np.tile(start_offsets(n, seeds), (C, 1))
    W = np.asarray(problem.backend.to_numpy(w0) if not isinstance(w0, (list, tuple)) else w0)
    if W.dtype.kind not in "biuf":
        raise ValueError(f"w0 must be real numbers, got dtype {W.dtype}")
    W = W.astype(np.float64)
    R = C * len(seeds)
    if not np.isfinite(W).all():
        raise ValueError("w0 must be finite: it has NaN or infinite entries")
    if W.shape == (n,):
        return np.tile(W - problem.optimum_host, (R, 1))
    if W.shape == (R, n):
        return W - problem.optimum_host
    raise ValueError(f"w0 must have shape ({n},) or one row per run ({R}, {n}), got {W.shape}")


def thresholds(lay, g0_host, tol, divergence: float):
    """The stopping thresholds of R runs, (thr, div) host float64 (R,) each: a run converged at the first k
    with ‖∇f(w_k)‖ ≤ thr = tol·‖∇f(w_0)‖ (thr = 0 when ``tol`` is None) and diverged at the first k with
    ‖∇f(w_k)‖ > div = divergence·‖∇f(w_0)‖ (or not finite).

    ‖∇f(w_0)‖ is :meth:`quadlab._engine.layout.Layout.host_norms` of ``g0_host`` (R, n), the first gradients
    in problem coordinates: the squares summed in ``Layout.rowdot``'s fixed order, in float64, so that the
    thresholds have the same bits on every machine and in every path (the runner's numpy loop and closed
    form, the compiled scan, the GPU kernel), and, for float64 runs, thr is exactly tol times the recorded
    ‖∇f(w_0)‖.  This is the one definition of both thresholds."""
    g0n = lay.host_norms(g0_host)
    return (tol if tol is not None else 0.0) * g0n, divergence * g0n
