"""JS divergences, JS⁰ and the heterogeneity report."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr

from quadlab import BlockQuadratic, spectra
from quadlab import density as qd
from quadlab import heterogeneity as qh
from quadlab import lanczos as ql

EPS = np.finfo(np.float64).eps


def gauss(grid, mu, s):
    return np.exp(-0.5 * ((grid - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))


GRID = np.linspace(-10, 10, 4001)
C = qd._trapezoid_weights(GRID)


def test_js_pair_against_scipy_and_bounds():
    p, q = gauss(GRID, -1.0, 1.0), gauss(GRID, 1.5, 0.7)
    js = qh.js_pair(p, q, C)
    # On a uniform grid whose densities vanish at both ends the trapezoid sum is the plain sum times Δt, which is
    # what scipy's (independently written) jensenshannon computes after normalising p and q.
    assert js == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-10)
    assert qh.js_pair(p, q, C, base="bits") == pytest.approx(js / math.log(2), rel=1e-12)
    assert qh.js_pair(p, q, C, variant="distance") == pytest.approx(math.sqrt(js), rel=1e-12)
    assert qh.js_pair(p, q, C, variant="grid_sum") == pytest.approx(js / (GRID[1] - GRID[0]), rel=1e-9)
    assert qh.js_pair(q, p, C) == pytest.approx(js, rel=1e-14)
    assert qh.js_pair(p, p, C) == 0.0
    far = qh.js_pair(gauss(GRID, -6, 0.3), gauss(GRID, 6, 0.3), C)
    assert math.log(2) * (1 - 1e-9) <= far <= math.log(2) * (1 + 10 * EPS)


def test_js_pair_bad_input():
    p = gauss(GRID, 0, 1)
    with pytest.raises(ValueError, match="variant"):
        qh.js_pair(p, p, C, variant="kl")
    with pytest.raises(ValueError, match="base"):
        qh.js_pair(p, p, C, base="dits")
    with pytest.raises(ValueError, match="non-negative"):
        qh.js_pair(-p, p, C)
    with pytest.raises(ValueError, match="one length"):
        qh.js_pair(p[:-1], p, C)


@pytest.mark.parametrize("variant", qh.VARIANTS)
@pytest.mark.parametrize("base", qh.BASES)
def test_simple_homogeneous_far_below_heterogeneous(variant, base):
    hom = qh.js0(spectra.simple_homogeneous(), variant=variant, base=base)
    het = qh.js0(spectra.simple_heterogeneous(), variant=variant, base=base)
    assert hom >= 0 and het > 0
    # JS scales quadratically in a small shift and the distance linearly: the ratios differ accordingly.
    assert het / hom > (50 if variant == "distance" else 1000)


def test_js0_is_mean_of_upper_triangle_and_matrix_is_symmetric():
    spec = spectra.BlockSpectrum.from_blocks(
        [spectra.uniform(20, 1, 5), spectra.uniform(30, 3, 9), spectra.log_uniform(25, 1, 40), spectra.uniform(10, 8, 9)]
    )
    M = qh.js_matrix(spec)
    assert M.shape == (4, 4) and np.array_equal(M, M.T) and (np.diag(M) == 0).all()
    assert ((M >= 0) & (M <= math.log(2) + 1e-12)).all()
    assert qh.js0(spec) == pytest.approx(M[np.triu_indices(4, 1)].mean(), rel=1e-15)
    assert qh.js0(spec, variant="distance") == pytest.approx(np.sqrt(M)[np.triu_indices(4, 1)].mean(), rel=1e-12)


def test_input_kinds_agree():
    spec = spectra.simple_heterogeneous()
    ref = qh.js0(spec)
    p = BlockQuadratic(spec)
    assert qh.js0(p) == ref
    assert qh.js0(list(spec.blocks)) == ref
    assert qh.js0(dict(zip(spec.names, spec.blocks, strict=True))) == ref
    assert qh.js0(ql.density(spec)) == ref


def test_identical_blocks_have_zero_js0_and_the_knob_is_monotone():
    base = spectra.bulk_outliers(40, 1.0, 5.0, 3, 20.0)
    assert qh.js0(spectra.scaled_blocks(base, 4, 1.0)) == 0.0
    svals = [1.0, 1.2, 1.5, 2.0, 3.0]
    vals = [qh.js0(spectra.scaled_blocks(base, 4, s), normalize=None, log_axis=True, relative=False, sigma=0.05)
            for s in svals]
    assert spearmanr(svals, vals).statistic == pytest.approx(1.0)
    # Dividing each block by its own scale undoes the knob exactly.
    same = qh.js0(spectra.scaled_blocks(base, 4, 3.0), normalize="max_abs")
    assert same < 1e-12


def test_slq_source(xp):
    het = BlockQuadratic(spectra.simple_heterogeneous(), xp=xp)
    hom = BlockQuadratic(spectra.simple_homogeneous(), xp=xp)
    for variant in qh.VARIANTS:
        # A 3-dimensional block gives each probe Dirichlet-like weights, so the homogeneous blocks differ by
        # SLQ noise that shrinks with the number of probes (ratio ≈ 13 at 8 probes, ≈ 300 at 32).
        a = qh.js0(hom, variant=variant, source="slq", m=3, probes=32, seed=1)
        b = qh.js0(het, variant=variant, source="slq", m=3, probes=32, seed=1)
        assert b / a > (10 if variant == "distance" else 100)
    r = ql.slq(het, m=3, probes=8, seed=1)
    assert qh.js0(r) == qh.js0(het, source="slq", m=3, probes=8, seed=1)
    # Separated blocks: smoothing at 1 % of the range leaves them almost disjoint, SLQ weights or not.
    assert qh.js0(r, sigma=1e-4) == pytest.approx(qh.js0(het, sigma=1e-4), rel=1e-3)


def test_analyze_report():
    r = ql.slq(BlockQuadratic(spectra.simple_heterogeneous()), m=3, probes=6, seed=0)
    rep = qh.analyze(r, variant="divergence", sigma=1e-4)
    assert rep.js0 == pytest.approx(qh.js0(r, sigma=1e-4), rel=1e-15)
    assert rep.scale_spread_decades == pytest.approx(math.log10(5000 / 3))
    assert rep.noise_floor is not None and 0 <= rep.noise_floor < rep.js0
    text = rep.summary()
    for piece in ("JS0 =", "slq spectra", "sigma=", "normalisation none", "decades", "noise floor"):
        assert piece in text
    exact = qh.analyze(spectra.simple_homogeneous(), normalize="max_abs", log_axis=True)
    assert exact.noise_floor is None and exact.density.log_axis and exact.density.normalize == "max_abs"
    assert qh.analyze(BlockQuadratic(spectra.simple_homogeneous()), source="slq", m=3, probes=3).noise_floor is not None



def test_noise_floor_is_the_mean_over_distinct_probe_pairs():
    """noise_floor (HeterogeneityReport): per block the mean JS over the unordered pairs i < j of distinct probes'
    smoothed densities, then the mean over blocks.  Recomputed here by hand on the report's grid, σ and block
    scales.  A probe compared with itself has JS = 0: with 4 probes, counting the 4 self-pairs among the 10
    pairs would scale the floor by 6/10, far beyond the tolerance (rounding of the same sums only)."""
    r = ql.slq(BlockQuadratic(spectra.simple_heterogeneous()), m=3, probes=4, seed=0)
    rep = qh.analyze(r, sigma=0.05, normalize="max_abs")  # per-block scales: the probes' weights differ visibly
    d = rep.density
    c = d.quad_weights

    def js(p, q):  # the module docstring's JS in nats, 0·ln 0 = 0
        mid = 0.5 * (p + q)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(p > 0, p * np.log(p / mid), 0.0) + np.where(q > 0, q * np.log(q / mid), 0.0)
        return 0.5 * float(c @ t)

    per_block = []
    for b in range(len(r.names)):
        curves = []
        for i in range(r.probes):
            x, w = r.measure(b, i)
            t = x / d.scales[b]
            g = np.exp(-0.5 * ((d.grid[:, None] - t[None, :]) / d.sigma) ** 2) @ w
            curves.append(g / (c @ g))
        pairs = [js(curves[i], curves[j]) for i in range(r.probes) for j in range(i + 1, r.probes)]
        assert sum(pairs) > 0  # then self-pairs (JS 0) would scale this block's mean by exactly 6/10
        per_block.append(np.mean(pairs))
    assert rep.noise_floor == pytest.approx(np.mean(per_block), rel=1e-12)

def test_heterogeneity_bad_input():
    spec = spectra.simple_heterogeneous()
    r = ql.slq(BlockQuadratic(spec), m=3, probes=2)
    with pytest.raises(ValueError, match="variant"):
        qh.js0(spec, variant="kl")
    with pytest.raises(ValueError, match="source"):
        qh.js0(spec, source="eigsh")
    with pytest.raises(ValueError, match="source='slq'"):
        qh.js0(r, source="exact")
    with pytest.raises(ValueError, match="needs an operator"):
        qh.js0(spec, source="slq")
    with pytest.raises(ValueError, match="at least 2 blocks"):
        qh.js0([np.array([1.0, 2.0])])
    with pytest.raises(ValueError, match="at least 2 blocks"):
        qh.analyze([np.array([1.0, 2.0])])
    with pytest.raises(ValueError, match="uniform grid"):
        qh.js0(spec, variant="grid_sum", grid=np.concatenate([np.linspace(-400, 100, 80), np.linspace(101, 5400, 5000)]))
