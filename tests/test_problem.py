import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quadlab
from quadlab import spectra
from quadlab._engine import build
from quadlab.backend import BackendUnavailableError, get_backend
from quadlab.problem import BlockQuadratic

EPS = np.finfo(np.float64).eps


def mixed_spectrum():
    # two sizes, interleaved, so the size groups are not contiguous
    return quadlab.BlockSpectrum.from_blocks(
        [spectra.uniform(6, 1, 10), spectra.uniform(3, 2, 5), spectra.log_uniform(6, 3, 800)], names=["a", "b", "c"]
    )


@pytest.mark.parametrize("rotation", ["block", "none", "global"])
def test_dense_spectrum_is_the_requested_one(xp, rotation):
    prob = BlockQuadratic(mixed_spectrum(), rotation=rotation, seed=7, xp=xp)
    H = prob.backend.to_numpy(prob.dense())
    np.testing.assert_array_equal(H, H.T)
    ev = np.linalg.eigvalsh(H)
    tol = 20 * prob.n * EPS * prob.spectrum.lambda_max
    np.testing.assert_allclose(ev, np.sort(prob.eigenvalues), rtol=0, atol=tol)


def test_block_structure_kept_by_block_rotation_and_destroyed_by_global():
    spec = mixed_spectrum()
    Hb = BlockQuadratic(spec, rotation="block", seed=0).backend.to_numpy(BlockQuadratic(spec, seed=0).dense())
    Hg = BlockQuadratic(spec, rotation="global", seed=0).backend.to_numpy(BlockQuadratic(spec, rotation="global", seed=0).dense())
    mask = np.zeros_like(Hb, dtype=bool)
    for s in BlockQuadratic(spec).block_slices:
        mask[s, s] = True
    assert np.all(Hb[~mask] == 0)
    # a global Haar rotation fills the off-block part: its mass is a sizeable share of the total
    assert np.linalg.norm(Hg[~mask]) > 0.3 * np.linalg.norm(Hg)
    for s, lam in zip(BlockQuadratic(spec).block_slices, spec.blocks):
        np.testing.assert_allclose(np.linalg.eigvalsh(Hb[s, s]), np.sort(lam), atol=50 * EPS * lam.max())


def test_rotations_are_orthogonal(xp):
    prob = BlockQuadratic(mixed_spectrum(), seed=3, xp=xp)
    for g, V in zip(prob.groups, prob.eigenvectors()):
        V = prob.backend.to_numpy(V)
        for j in range(g.k):
            np.testing.assert_allclose(V[j].T @ V[j], np.eye(g.size), atol=20 * g.size * EPS)
            H = prob.backend.to_numpy(g.H)[j]
            np.testing.assert_allclose(V[j] @ np.diag(g.lam[j]) @ V[j].T, H, atol=50 * g.size * EPS * g.lam.max())


def test_haar_columns_have_no_sign_bias():
    # QR without the sign fix gives diag(R) > 0 conventions that bias Q; with it, E[Q] = 0.
    spec = quadlab.BlockSpectrum.from_blocks([np.ones(4)] * 400)
    Vs = np.stack([v for V in BlockQuadratic(spec, seed=0).eigenvectors() for v in np.asarray(V)])
    assert np.abs(Vs.mean(axis=0)).max() < 5 / np.sqrt(400)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**31 - 1), rotation=st.sampled_from(["block", "none", "global"]), R=st.integers(1, 4))
def test_grad_is_the_derivative_of_f(seed, rotation, R):
    prob = BlockQuadratic(mixed_spectrum(), rotation=rotation, optimum="random", seed=seed)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((R, prob.n))
    V = rng.standard_normal((R, prob.n))
    G = prob.grad(W)
    h = 1e-5
    # f is quadratic, so the central difference is exact up to rounding: (f(w+hv) − f(w−hv)) / 2h = ∇f·v
    fd = (prob.f(W + h * V) - prob.f(W - h * V)) / (2 * h)
    scale = np.abs(prob.f(W)).max() + abs(prob.f_star) + 1
    np.testing.assert_allclose(fd, np.sum(G * V, axis=1), rtol=0, atol=100 * EPS * scale / h)


def test_f_gap_grad_closed_forms(xp):
    prob = BlockQuadratic(mixed_spectrum(), optimum="random", seed=1, xp=xp)
    b = prob.backend
    H = b.to_numpy(prob.dense())
    ws = prob.optimum_host
    W = np.random.default_rng(0).standard_normal((3, prob.n))
    E = W - ws
    # Both sides are exact formulas evaluated in different orders (quadlab's fixed order against the BLAS's and
    # einsum's, which depend on the machine), so each comparison is held to the sum of the two evaluations'
    # error bounds (Higham §3.1, u = 2⁻⁵³, γ_m = m·u/(1 − m·u)), n = 15 coordinates:
    # H·e: a dot product of n terms, ≤ γ_n·Σ_j |H_ij||e_j| each; a quadratic form ½eᵀHe through H·e and a dot
    # product (≤ 2n + 1 roundings per term) or einsum's n² triple products (≤ n² + 1 per term), each ≤ γ·½|e|ᵀ|H||e|;
    # f = ½wᵀHw − wᵀ(Hw*) against f* + gap adds f*'s own ½|w*|ᵀ|H||w*| term.
    n = prob.n
    u = EPS / 2

    def gamma(m):
        return m * u / (1 - m * u)

    aH = np.abs(H)
    quad = lambda X: 0.5 * np.sum((np.abs(X) @ aH) * np.abs(X), axis=1)  # noqa: E731
    quad_pair = gamma(2 * n + 1) + gamma(n * n + 2)
    assert (np.abs(b.to_numpy(prob.grad(W)) - E @ H) <= 2 * gamma(n) * (np.abs(E) @ aH)).all()
    gap_direct = 0.5 * np.einsum("ri,ij,rj->r", E, H, E)
    assert (np.abs(b.to_numpy(prob.gap(W)) - gap_direct) <= quad_pair * quad(E)).all()
    f_direct = 0.5 * np.einsum("ri,ij,rj->r", W, H, W) - W @ (H @ ws)
    f_scale = quad(E) + quad(W) + np.abs(W) @ (aH @ np.abs(ws)) + quad(ws[None])[0]
    assert (np.abs(b.to_numpy(prob.f(W)) - f_direct) <= 2 * quad_pair * f_scale).all()
    assert abs(prob.f_star - (-0.5 * ws @ H @ ws)) <= quad_pair * quad(ws[None])[0]
    # one point in, scalar out
    assert b.to_numpy(prob.gap(b.asarray(W[0]))).shape == ()
    np.testing.assert_allclose(b.to_numpy(prob.diagonal()), np.diag(H), rtol=1e-14)
    for l, s in enumerate(prob.block_slices):
        np.testing.assert_array_equal(b.to_numpy(prob.block(l)), H[s, s])


def test_same_seed_same_arrays_other_seed_other_arrays():
    spec = mixed_spectrum()
    a = BlockQuadratic(spec, seed=5, optimum="random")
    b = BlockQuadratic(spec, seed=5, optimum="random")
    c = BlockQuadratic(spec, seed=6, optimum="random")
    np.testing.assert_array_equal(np.asarray(a.dense()), np.asarray(b.dense()))
    np.testing.assert_array_equal(a.optimum_host, b.optimum_host)
    assert not np.array_equal(np.asarray(a.dense()), np.asarray(c.dense()))
    # the optimum draw does not disturb the rotations
    np.testing.assert_array_equal(np.asarray(a.dense()), np.asarray(BlockQuadratic(spec, seed=5).dense()))


def test_numpy_and_strict_build_the_same_problem():
    # blocks up to build.PORTABLE_MAX_SIZE are built on the host by quadlab's fixed-order code for every backend
    spec = mixed_spectrum()
    a = BlockQuadratic(spec, seed=2, xp="numpy")
    s = BlockQuadratic(spec, seed=2, xp="array_api_strict")
    assert max(spec.sizes) <= build.PORTABLE_MAX_SIZE
    np.testing.assert_array_equal(np.asarray(a.dense()), s.backend.to_numpy(s.dense()))


@pytest.mark.parametrize("rotation", ["block", "global"])
def test_host_path_builds_the_batched_paths_problem(monkeypatch, rotation):
    # numpy builds blocks >= build.HOST_MIN_SIZE with CholeskyQR2 + dsyrk; array-api-strict with batched
    # Householder QR + matmul.  Both are the Q of G = QR with diag(R) > 0, so H agrees to rounding.
    # The thresholds are only speed settings: lowered here so that the test blocks stay small (and skip the
    # portable fixed-order path, which takes every block up to PORTABLE_MAX_SIZE on both backends).
    monkeypatch.setattr(build, "HOST_MIN_SIZE", 128)
    monkeypatch.setattr(build, "PORTABLE_MAX_SIZE", 64)
    spec = quadlab.BlockSpectrum.from_blocks(
        [spectra.log_uniform(160, 1, 900), spectra.uniform(5, 2, 3), spectra.uniform(130, 1, 50),
         spectra.log_uniform(160, 3, 40)], names=["a", "b", "c", "d"]
    )
    a = BlockQuadratic(spec, rotation=rotation, seed=11)
    s = BlockQuadratic(spec, rotation=rotation, seed=11, xp="array_api_strict")
    assert any(a._on_host(g.size) for g in a.groups) and not any(s._on_host(g.size) for g in s.groups)
    H = np.asarray(a.dense())
    np.testing.assert_array_equal(H, H.T)
    tol = 20 * max(g.size for g in a.groups) * EPS * spec.lambda_max
    np.testing.assert_allclose(H, s.backend.to_numpy(s.dense()), rtol=0, atol=tol)
    np.testing.assert_allclose(np.linalg.eigvalsh(H), np.sort(a.eigenvalues), rtol=0, atol=tol)
    for V, W in zip(a.eigenvectors(), s.eigenvectors(), strict=True):
        np.testing.assert_allclose(np.asarray(V), s.backend.to_numpy(W), rtol=0, atol=1e-11)
    # deterministic: the same seed rebuilds the same bits, and eigenvectors() pairs with the stored H
    b = BlockQuadratic(spec, rotation=rotation, seed=11)
    for ga, gb, V in zip(a.groups, b.groups, a.eigenvectors(), strict=True):
        np.testing.assert_array_equal(np.asarray(ga.H), np.asarray(gb.H))
        V = np.asarray(V)
        for j in range(ga.k):
            np.testing.assert_allclose(V[j].T @ V[j], np.eye(ga.size), rtol=0, atol=20 * ga.size * EPS)
            np.testing.assert_allclose((V[j] * ga.lam[j]) @ V[j].T, np.asarray(ga.H)[j], rtol=0,
                                       atol=50 * ga.size * EPS * ga.lam.max())
    np.testing.assert_array_equal(np.asarray(a.diagonal()), np.diag(H))
    for l, sl in enumerate(a.block_slices):
        np.testing.assert_array_equal(np.asarray(a.block(l)), H[sl, sl])
    f32 = BlockQuadratic(spec, rotation=rotation, seed=11, dtype="float32")
    np.testing.assert_array_equal(np.asarray(f32.dense()), H.astype(np.float32))


def conditioned(d, cond, seed):
    rng = np.random.default_rng(seed)
    if cond is None:
        return rng.standard_normal((d, d))
    U, V = (np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(2))
    return (U * np.geomspace(1, 1 / cond, d)) @ V.T


@pytest.mark.parametrize("cond, fallback", [(None, False), (1e12, True), (1e15, True)])
def test_haar_host_is_the_positive_diagonal_qr_factor(monkeypatch, cond, fallback):
    # Q orthogonal and R = QᵀG upper triangular with diag(R) > 0 characterise the Haar-convention factor;
    # past κ(G) ≈ 1e8 CholeskyQR2 must hand over to Householder QR.
    calls = []
    householder = build.householder_q
    monkeypatch.setattr(build, "householder_q", lambda X: (calls.append(X.shape), householder(X))[1])
    d = 200
    G = conditioned(d, cond, seed=3)
    Q = build.haar_host(G.copy())
    assert bool(calls) == fallback
    assert Q.shape == (d, d) and Q.flags.c_contiguous
    np.testing.assert_allclose(Q.T @ Q, np.eye(d), rtol=0, atol=20 * d * EPS)
    R = Q.T @ G
    scale = np.linalg.norm(G, 2)
    assert np.abs(np.tril(R, -1)).max() <= 20 * d * EPS * scale
    assert np.diagonal(R).min() > 0
    if cond is None:
        np.testing.assert_allclose(Q, householder(G.copy()), rtol=0, atol=1e4 * d * EPS)


def test_haar_host_fallback_after_the_first_pass_gives_the_same_q(monkeypatch):
    # With the acceptance test made impossible, the Householder fallback runs on Q₁ = G R₁⁻¹, whose
    # positive-diagonal Q factor is G's.
    d = 150
    G = conditioned(d, None, seed=5)
    Q = build.haar_host(G.copy())
    monkeypatch.setattr(build, "CHOLQR_TOL", -1.0)
    calls = []
    householder = build.householder_q
    monkeypatch.setattr(build, "householder_q", lambda X: (calls.append(1), householder(X))[1])
    Qf = build.haar_host(G.copy())
    assert calls == [1]
    np.testing.assert_allclose(Qf, Q, rtol=0, atol=1e3 * d * EPS)


@pytest.mark.parametrize("signed", [False, True])
def test_spectral_matrix_agrees_with_the_dense_product(signed):
    # λ ≥ 0 takes dsyrk on Q diag(√λ); a signed λ (not reachable from a BlockSpectrum, which is positive)
    # takes the GEMM fallback.  Both must give Q diag(λ) Qᵀ, exactly symmetric.
    d = 300
    Q = build.householder_q(np.random.default_rng(8).standard_normal((d, d)))
    lam = np.linspace(-3.0 if signed else 0.0, 7.0, d)
    out = np.full((d, d), np.nan)
    H = build.spectral_matrix(Q.copy(), lam, out)
    assert H is out
    np.testing.assert_array_equal(H, H.T)
    np.testing.assert_allclose(H, (Q * lam) @ Q.T, rtol=0, atol=20 * d * EPS * np.abs(lam).max())
    np.testing.assert_allclose(np.linalg.eigvalsh(H), lam, rtol=0, atol=20 * d * EPS * np.abs(lam).max())


def test_fill_upper_from_lower_is_exact_for_ragged_tiles():
    A = np.random.default_rng(2).standard_normal((300, 300))
    expect = np.tril(A) + np.tril(A, -1).T
    np.testing.assert_array_equal(build.fill_upper_from_lower(A.copy(), tile=64), expect)
    np.testing.assert_array_equal(build.fill_upper_from_lower(A.copy()), expect)


def test_float32_problem():
    prob = BlockQuadratic(spectra.simple_heterogeneous(), dtype="float32", seed=0)
    assert prob.dense().dtype == np.float32
    assert prob.grad(np.ones(9, dtype=np.float32)).dtype == np.float32


def test_properties_of_the_paper_cases():
    prob = BlockQuadratic(spectra.simple_heterogeneous(5000), seed=0)
    assert prob.n == 9 and prob.block_sizes == (3, 3, 3) and prob.kappa == 5000
    assert len(prob.groups) == 1 and prob.groups[0].H.shape == (3, 3, 3)
    np.testing.assert_allclose(prob.block_kappas, [3, 101 / 99, 5000 / 4998])


def test_from_blocks_round_trip_and_validation():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    A = A @ A.T + np.eye(4)
    prob = BlockQuadratic.from_blocks([A, np.diag([1.0, 2.0])], names=["x", "y"], optimum="random")
    np.testing.assert_allclose(np.asarray(prob.block(0)), A)
    np.testing.assert_allclose(np.sort(prob.spectrum.blocks[0]), np.linalg.eigvalsh(A))
    assert prob.block_names == ("x", "y")
    with pytest.raises(ValueError, match=r"block 'block0' \(index 0\) is not symmetric"):
        BlockQuadratic.from_blocks([A + np.triu(np.ones((4, 4)), 1)])
    with pytest.raises(ValueError, match="not positive definite: smallest eigenvalue -1"):
        BlockQuadratic.from_blocks([np.diag([1.0, -1.0])])
    with pytest.raises(ValueError, match="square"):
        BlockQuadratic.from_blocks([np.ones((2, 3))])
    with pytest.raises(ValueError, match="non-finite"):
        BlockQuadratic.from_blocks([np.array([[np.nan]])])


def test_bad_input_messages():
    spec = spectra.simple_heterogeneous()
    with pytest.raises(ValueError, match="unknown rotation 'diag'"):
        BlockQuadratic(spec, rotation="diag")
    with pytest.raises(ValueError, match=r"optimum w\* must have shape \(9,\)"):
        BlockQuadratic(spec, optimum=np.zeros(8))
    with pytest.raises(ValueError, match="non-finite"):
        BlockQuadratic(spec, optimum=np.full(9, np.nan))
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        BlockQuadratic(spec, xp="torch")
    with pytest.raises(ValueError, match="dtype"):
        BlockQuadratic(spec, dtype="float16")
    with pytest.raises(ValueError, match=r"\(R, 9\)"):
        BlockQuadratic(spec).grad(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="BlockSpectrum"):
        BlockQuadratic([1.0, 2.0])


def test_cupy_missing_says_how_to_install():
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
        pytest.skip("cupy is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailableError, match=r"pip install \"quadlab\[gpu\]\""):
        get_backend("cupy")


def test_starts_are_the_runners_starts():
    # quadlab.starts must give the runner's own starts bit for bit, whatever other seeds are asked for, with a
    # non-zero optimum (w0 = w* + ξ, not ξ)
    p = BlockQuadratic(mixed_spectrum(), optimum="random", seed=3)
    res = quadlab.run(p, quadlab.optim.gd(lr=1e-3), seeds=[5, 0, 9], steps=1)
    W = quadlab.starts(p, [5, 0, 9])
    assert W.shape == (3, p.n) and W.dtype == np.float64
    assert np.array_equal(W, np.asarray(res.w0))
    assert np.array_equal(quadlab.starts(p, [9])[0], W[2]) and np.array_equal(quadlab.starts(p, 9), W[2:])
    assert np.abs(p.optimum_host).max() > 0.1  # the optimum is really there


@pytest.mark.parametrize("seeds, match", [([], "empty"), ([-1], "non-negative"), ([1.5], "non-negative"),
                                          ([True], "non-negative"), (["0"], "non-negative")])
def test_starts_reject_bad_seeds(seeds, match):
    with pytest.raises(ValueError, match=match):
        quadlab.starts(BlockQuadratic(spectra.simple_heterogeneous()), seeds)
    with pytest.raises(ValueError, match="BlockQuadratic"):
        quadlab.starts(spectra.simple_heterogeneous(), [0])
