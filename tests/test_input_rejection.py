"""Inputs that used to be silently mangled: complex eigenvalues, blocks, optima and points; oversized problems
(refused with the estimate before any allocation); non-symmetric operators given to slq."""

import numpy as np
import pytest

import quadlab
from quadlab import lanczos, spectra, theory


def test_complex_input_is_rejected_not_truncated():
    with pytest.raises(ValueError, match="complex"):
        spectra.BlockSpectrum.from_blocks([np.array([1.0 + 1e-3j, 2.0])])
    with pytest.raises(ValueError, match="complex"):
        spectra.rescale([np.array([1.0, 2.0 + 0j])], 10.0)
    with pytest.raises(ValueError, match="complex"):
        quadlab.BlockQuadratic.from_blocks([np.eye(2) * (1 + 1j)])
    spec = spectra.simple_heterogeneous(5000)
    with pytest.raises(ValueError, match="complex"):
        quadlab.BlockQuadratic(spec, optimum=np.ones(9) * 1j)
    p = quadlab.BlockQuadratic(spec)
    with pytest.raises(ValueError, match="must be real"):
        p.grad(np.ones(9, dtype=complex))
    # real input is unchanged
    np.testing.assert_allclose(p.grad(np.zeros(9)), 0.0)


def test_block_quadratic_refuses_what_cannot_fit(monkeypatch):
    monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", "64M")
    big = spectra.BlockSpectrum.from_blocks([np.linspace(1.0, 2.0, 4000)])
    with pytest.raises(ValueError, match=r"needs about 0\.\d+ GiB for the Hessian blocks of n = 4000.*only 0\.0625 GiB"):
        quadlab.BlockQuadratic(big, rotation="global")
    with pytest.raises(ValueError, match="use smaller blocks"):
        quadlab.BlockQuadratic(big, rotation="block")
    quadlab.BlockQuadratic(big, rotation="none")  # a diagonal H needs O(n)
    quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000), rotation="global")


def test_r_statistics_refuses_too_many_starts(monkeypatch):
    p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000))
    monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", "1M")
    with pytest.raises(ValueError, match="100000 random starts of n = 9.*fewer starts"):
        theory.r_statistics(p, 100_000)
    assert theory.r_statistics(p, 100).n_starts == 100


def test_slq_checks_symmetry_by_default():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((30, 30))
    with pytest.raises(ValueError, match="not symmetric"):
        lanczos.slq(A, m=5, probes=2)
    lanczos.slq(A + A.T, m=5, probes=2)
    lanczos.slq(A, m=5, probes=2, check_symmetric=False)  # the opt-out
