import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quadlab import spectra
from quadlab.spectra import BlockSpectrum


def test_simple_cases_are_the_same_nine_numbers_rearranged():
    het = spectra.simple_heterogeneous(5000)
    hom = spectra.simple_homogeneous(5000)
    assert [list(b) for b in het.blocks] == [[1, 2, 3], [99, 100, 101], [4998, 4999, 5000]]
    assert [list(b) for b in hom.blocks] == [[1, 99, 4998], [2, 100, 4999], [3, 101, 5000]]
    assert sorted(het.eigenvalues) == sorted(hom.eigenvalues)
    assert het.kappa == hom.kappa == 5000
    np.testing.assert_array_equal(het.block_kappas, [3, 101 / 99, 5000 / 4998])
    np.testing.assert_array_equal(hom.block_kappas, [4998, 4999 / 2, 5000 / 3])


def test_talk_version_top_block():
    assert list(spectra.simple_heterogeneous(2000).blocks[2]) == [1998, 1999, 2000]


@pytest.mark.parametrize("kappa", [103, 1, float("nan"), float("inf")])
def test_simple_cases_reject_small_or_bad_kappa(kappa):
    with pytest.raises(ValueError, match="kappa"):
        spectra.simple_heterogeneous(kappa)


def test_families_hit_their_ranges():
    np.testing.assert_allclose(spectra.uniform(5, 1, 3), [1, 1.5, 2, 2.5, 3])
    g = spectra.log_uniform(4, 1, 1000)
    np.testing.assert_allclose(g, [1, 10, 100, 1000], rtol=4 * np.finfo(float).eps)
    b = spectra.bulk_outliers(10, 1, 2, 3, 1000)
    assert b.size == 10 and b[:7].max() <= 2 and b[-1] == pytest.approx(1000)
    assert np.all(np.diff(b[7:]) > 0) and b[7] > 2


def test_random_families_are_seeded_and_in_range():
    a = spectra.uniform(100, 2, 5, seed=3)
    np.testing.assert_array_equal(a, spectra.uniform(100, 2, 5, seed=3))
    assert not np.array_equal(a, spectra.uniform(100, 2, 5, seed=4))
    assert a.min() >= 2 and a.max() <= 5
    g = spectra.log_uniform(100, 1, 1e4, seed=0)
    assert g.min() >= 1 and g.max() <= 1e4


def test_marchenko_pastur_matches_its_moments():
    # MP(q, σ²): mean σ², variance σ⁴ q.
    q, s2 = 0.25, 2.0
    v = spectra.marchenko_pastur(20000, q, s2)
    lo, hi = s2 * (1 - q**0.5) ** 2, s2 * (1 + q**0.5) ** 2
    assert lo <= v.min() and v.max() <= hi
    assert v.mean() == pytest.approx(s2, rel=1e-3)
    assert v.var() == pytest.approx(s2**2 * q, rel=1e-2)



def mp_cdf(x, q, s2):
    """The Marchenko–Pastur CDF at x by adaptive quadrature of its density, written independently of
    quadlab: with λ = m − h·cos φ (m, h the support's centre and half-width) the square-root edges become
    √((λ₊−λ)(λ−λ₋)) = h·sin φ and dλ = h·sin φ dφ, so the integrand h² sin² φ / (2π σ² q λ) is smooth."""
    from scipy import integrate

    lo, hi = s2 * (1 - q**0.5) ** 2, s2 * (1 + q**0.5) ** 2
    m, h = (lo + hi) / 2, (hi - lo) / 2
    phi = np.arccos(np.clip((m - x) / h, -1.0, 1.0))
    val, _ = integrate.quad(lambda t: h * h * np.sin(t) ** 2 / (2 * np.pi * s2 * q * (m - h * np.cos(t))), 0.0, phi,
                            epsabs=1e-14, epsrel=1e-13, limit=200)
    return val


@pytest.mark.parametrize("d, q, s2", [(50, 0.3, 1.0), (37, 0.9, 2.5), (64, 0.05, 0.5)])
def test_marchenko_pastur_points_are_its_midpoint_quantiles(d, q, s2):
    """Without a seed the d points are the quantiles at the midpoint levels (j + ½)/d, j = 0..d−1 (docstring),
    checked in probability: F(x_j) against (j + ½)/d.  One level off would move F by 1/d ≥ 0.015."""
    lam_hi = s2 * (1 + q**0.5) ** 2
    assert mp_cdf(lam_hi, q, s2) == pytest.approx(1.0, abs=1e-12)  # the reference density has unit mass
    x = spectra.marchenko_pastur(d, q, s2)
    F = np.array([mp_cdf(v, q, s2) for v in x])
    # quadlab tabulates the CDF on 20001 Chebyshev nodes (trapezoid): about 3e-8 in probability at worst here
    np.testing.assert_allclose(F, (np.arange(d) + 0.5) / d, rtol=0, atol=1e-6)

def test_scaled_blocks_knob():
    base = spectra.uniform(4, 1, 10)
    s = spectra.scaled_blocks(base, 3, 100.0)
    np.testing.assert_allclose(s.block_kappas, [10, 10, 10])
    assert s.kappa == pytest.approx(10 * 100**2)
    hom = spectra.scaled_blocks(base, 3, 1.0)
    assert hom.kappa == pytest.approx(10)


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=6), min_size=1, max_size=5),
    st.floats(1.5, 1e8),
)
def test_rescale_hits_kappa_exactly_and_is_affine(blocks, kappa):
    flat = np.concatenate([np.asarray(b) for b in blocks])
    if flat.max() - flat.min() < 1e-3 * max(1.0, np.abs(flat).max()):
        return  # nearly constant: the affine map is ill-determined (tested separately)
    s = spectra.rescale([np.asarray(b) for b in blocks], kappa)
    assert s.lambda_min == 1.0 and s.lambda_max == kappa
    # the map is affine: t = (λ − lo)/(hi − lo) is preserved
    t_in = (flat - flat.min()) / (flat.max() - flat.min())
    t_out = (s.eigenvalues - 1) / (kappa - 1)
    np.testing.assert_allclose(t_out, t_in, atol=8 * np.finfo(float).eps)


def test_rescale_constant_spectrum():
    assert spectra.rescale([np.full(3, 7.0)], 1).eigenvalues.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="all eigenvalues equal"):
        spectra.rescale([np.full(3, 7.0)], 10)
    with pytest.raises(ValueError, match="kappa"):
        spectra.rescale(spectra.simple_heterogeneous(), 0.5)


@pytest.mark.parametrize(
    "blocks, match",
    [
        ([[1.0, 2.0], [3.0, -1.0]], r"block 'block1': eigenvalue at index 1 is -1.0"),
        ([[1.0, 0.0]], r"index 1 is 0.0"),
        ([[1.0, np.nan]], r"index 1 is nan; eigenvalues must be finite"),
        ([[np.inf]], "finite"),
        ([[1.0], []], "block 'block1' is empty"),
        ([np.ones((2, 2))], "1-D"),
        ([], "at least one block"),
    ],
)
def test_bad_spectra_name_the_block_and_index(blocks, match):
    with pytest.raises(ValueError, match=match):
        BlockSpectrum.from_blocks(blocks)


def test_bad_family_arguments():
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        spectra.uniform(3, 0, 1)
    with pytest.raises(ValueError, match="positive integer"):
        spectra.log_uniform(0, 1, 2)
    with pytest.raises(ValueError, match="ratio"):
        spectra.marchenko_pastur(3, 1.5)
    with pytest.raises(ValueError, match="n_outliers"):
        spectra.bulk_outliers(3, 1, 2, 3, 10)
    with pytest.raises(ValueError, match="names"):
        BlockSpectrum.from_blocks([[1.0]], names=["a", "b"])
