"""Hypothesis strategies for block-diagonal PD problems, and the settings the property tests share.

A :class:`Case` is a small, printable recipe: eigenvalues per block (rounded to 4 significant digits so a
shrunk counterexample reads as plain numbers), a rotation policy, the problem seed, the start seed and the
optimum.  ``case.problem()`` builds the :class:`quadlab.BlockQuadratic`; ``case.start()`` draws
w0 = w* + N(0, I) from ``numpy.random.default_rng(start_seed)``, the same start ``quadlab.run`` draws for
that seed.  Shrinking moves eigenvalue exponents toward 0 (eigenvalue 1), block counts and sizes toward 1,
rotation toward "none" and seeds toward 0.

Example counts are fixed per test and scaled by the environment variable QUADLAB_PROPERTY_SCALE (default 1)
for a deeper local run; every test is derandomized so CI sees the same examples each time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import quadlab

ROTATIONS = ("none", "block", "global")


def examples(n: int) -> int:
    return max(1, int(round(n * float(os.environ.get("QUADLAB_PROPERTY_SCALE", "1")))))


def property_settings(n: int):
    """Deterministic settings for a property test with ``n`` examples (scaled, see the module docstring)."""
    return settings(max_examples=examples(n), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


@dataclass(frozen=True)
class Case:
    """A generated problem and start; its repr is the whole recipe."""

    blocks: tuple[tuple[float, ...], ...]
    rotation: str = "block"
    seed: int = 0
    start_seed: int = 0
    optimum: str | None = None

    def spectrum(self) -> quadlab.BlockSpectrum:
        return quadlab.BlockSpectrum.from_blocks([np.array(b) for b in self.blocks])

    def problem(self, xp="numpy") -> quadlab.BlockQuadratic:
        return quadlab.BlockQuadratic(self.spectrum(), rotation=self.rotation, optimum=self.optimum,
                                      seed=self.seed, xp=xp)

    def start(self, problem=None) -> np.ndarray:
        p = self.problem() if problem is None else problem
        return p.optimum_host + np.random.default_rng(self.start_seed).standard_normal(p.n)

    @property
    def n(self) -> int:
        return sum(len(b) for b in self.blocks)

    @property
    def kappa(self) -> float:
        v = [x for b in self.blocks for x in b]
        return max(v) / min(v)


@st.composite
def block_spectra(draw, max_blocks: int = 4, max_size: int = 5, max_log10_kappa: float = 6.0,
                  min_log10_kappa: float = 0.0, min_n: int = 1):
    """Eigenvalues per block: λ = 10^(u·log10 κ) with u ∈ [0, 1] per eigenvalue, κ = 10^t,
    t ∈ [min_log10_kappa, max_log10_kappa]; the first eigenvalue is 1 and, when κ > 1, the last one κ,
    so the whole spectrum has condition number κ exactly (up to the rounding to 4 digits)."""
    L = draw(st.integers(1, max_blocks))
    sizes = draw(st.lists(st.integers(1, max_size), min_size=L, max_size=L))
    if sum(sizes) < min_n:
        sizes[-1] += min_n - sum(sizes)
    t = draw(st.floats(min_log10_kappa, max_log10_kappa, allow_nan=False))
    n = sum(sizes)
    u = draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=n, max_size=n))
    u[0] = 0.0
    if n > 1:
        u[-1] = 1.0
    lam = [_sig(10.0 ** (ui * t)) for ui in u]
    out, i = [], 0
    for d in sizes:
        out.append(tuple(lam[i:i + d]))
        i += d
    return tuple(out)


@st.composite
def cases(draw, rotations=ROTATIONS, optimum: bool = True, **spectrum_kw) -> Case:
    """A :class:`Case`: block spectra (see :func:`block_spectra`), a rotation, seeds, w* = 0 or random."""
    return Case(
        blocks=draw(block_spectra(**spectrum_kw)),
        rotation=draw(st.sampled_from(rotations)),
        seed=draw(st.integers(0, 2**16)),
        start_seed=draw(st.integers(0, 2**16)),
        optimum=draw(st.sampled_from([None, "random"])) if optimum else None,
    )


def iterate_diag_precond(problem, w0, p, steps: int) -> np.ndarray:
    """f(w_k) − f*, k = 0..steps, for e ← e − p ∘ (He) in float64 numpy: an independent reference for
    GD (p = η) and the Adam theory form (p = η/|g0|) that does not go through quadlab.run."""
    H = problem.backend.to_numpy(problem.dense()).astype(np.float64)
    e = np.asarray(w0, dtype=np.float64) - problem.optimum_host
    p = np.broadcast_to(np.asarray(p, dtype=np.float64), e.shape)
    out = np.empty(steps + 1)
    for k in range(steps + 1):
        g = H @ e
        out[k] = 0.5 * e @ g
        e = e - p * g
    return out


def theory_form_blocks(index: int, seed: int = 0) -> list[np.ndarray]:
    """Eigenvalues per block of the ``index``-th random theory-form instance (issue 25, item 5).

    1–4 blocks of 1–5 eigenvalues; per block c ~ U(1, 10⁴) and a scale s ~ U(0.1, 10), each eigenvalue
    exp(U(0, ln c))·s.  Drawn from ``numpy.random.default_rng([seed, index])``, so an instance does not depend
    on which others are drawn (the first 300 of the 1,500 are the same whether 300 or 1,500 are run)."""
    rng = np.random.default_rng([seed, index])
    blocks = []
    for _ in range(int(rng.integers(1, 5))):
        d = int(rng.integers(1, 6))
        c = rng.uniform(1.0, 1e4)
        s = rng.uniform(0.1, 10.0)
        blocks.append(np.exp(rng.uniform(0.0, np.log(c), d)) * s)
    return blocks


def theory_form_run(index: int, seed: int = 0, steps: int = 300, method: str = "auto"):
    """(problem, result) of the ``index``-th theory-form instance: :func:`theory_form_blocks` on a
    BlockQuadratic with rotation="block" (problem seed ``index``), the Adam theory form at the theorem's step
    from the start of seed ``index``, every step recorded."""
    p = quadlab.BlockQuadratic(quadlab.BlockSpectrum.from_blocks(theory_form_blocks(index, seed)),
                               rotation="block", seed=index)
    res = quadlab.run(p, quadlab.optim.adam_theory(), seeds=[index], steps=steps, record="all", method=method)
    return p, res
