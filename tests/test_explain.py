"""quadlab.explain: each explanation's quantity against known truth (closed forms, exact spectra by construction,
brute force), its invariances, and the rotation test of issue 18: at a fixed spectrum the (1,1)-norm predictor
changes under rotation while GD's run does not."""

import itertools
import math

import numpy as np
import pytest

import quadlab
from quadlab import explain, heterogeneity, optim, spectra, theory

EPS = np.finfo(np.float64).eps


def het_spectrum():
    # four blocks of five on scales 1, 10, 100, 1000: κ_l = 4, κ = 4000
    return spectra.scaled_blocks(spectra.uniform(5, 1.0, 4.0), 4, 10.0)


def hom_spectrum():
    v = np.sort(het_spectrum().eigenvalues)
    return spectra.BlockSpectrum.from_blocks([v[j::4] for j in range(4)])


def eigvecs(problem) -> np.ndarray:
    """V (n×n, host) with H V = V diag(problem.eigenvalues): the columns in the spectrum's order."""
    n = problem.n
    if problem.rotation == "none":
        return np.eye(n)
    V = np.zeros((n, n))
    Vs = problem.eigenvectors()
    if problem.rotation == "global":
        return np.asarray(Vs[0][0])
    for g, Vg in zip(problem.groups, Vs):
        for j, l in enumerate(g.blocks):
            s = problem.block_slices[l]
            V[s, s] = np.asarray(Vg[j])
    return V


# -- (1,1)-norm and its relatives ------------------------------------------------------------------------------
def test_norm11_of_a_diagonal_block_is_its_trace():
    p = quadlab.BlockQuadratic(het_spectrum(), rotation="none")
    assert explain.norm11(p) == pytest.approx(float(het_spectrum().eigenvalues.sum()), rel=4 * EPS)
    q = quadlab.BlockQuadratic.from_blocks([np.diag([1.0, 2.0, 5.0]), np.diag([3.0])])
    assert explain.norm11(q) == 11.0


@pytest.mark.parametrize("rotation", ["block", "global"])
def test_norm11_is_the_entrywise_sum_of_the_dense_matrix(rotation):
    p = quadlab.BlockQuadratic(het_spectrum(), rotation=rotation, seed=3)
    dense = np.abs(np.asarray(p.dense())).sum()
    assert explain.norm11(p) == pytest.approx(dense, rel=p.n * p.n * EPS)
    # a PSD matrix has Σ|H_ij| ≥ Σ H_ii = trace, strictly once it is rotated off the axes
    assert explain.norm11(p) > float(het_spectrum().eigenvalues.sum())


def test_blockwise_constant_interpolates_between_adam_and_adasgd():
    p = quadlab.BlockQuadratic(het_spectrum(), rotation="global", seed=1)
    lam = p.eigenvalues
    assert explain.blockwise_norm11(p, "coordinates") == explain.norm11(p)
    # one block of everything: √(n·n)·‖H‖_2 = n·λ_max (AdaSGD's constant is SGD's)
    assert explain.blockwise_norm11(p, [p.n]) == pytest.approx(p.n * lam.max(), rel=16 * p.n * EPS)
    b = quadlab.BlockQuadratic(het_spectrum(), rotation="block", seed=1)
    expect = sum(blk.size * blk.max() for blk in het_spectrum().blocks)
    assert explain.blockwise_norm11(b) == pytest.approx(expect, rel=4 * EPS)
    # the same blocks through the dense path (a partition that the stored blocks do not name)
    d = quadlab.BlockQuadratic.from_blocks([np.asarray(b.dense())])
    assert explain.blockwise_norm11(d, b.block_sizes) == pytest.approx(expect, rel=64 * b.n * EPS)


def test_linf_smoothness_closed_forms_and_bounds():
    # 2×2: max over s ∈ {±1}² of sᵀAs = a + c + 2|b| = Σ|A_ij|
    A = np.array([[3.0, -1.25], [-1.25, 2.0]])
    p = quadlab.BlockQuadratic.from_blocks([A, np.diag([7.0])])
    assert explain.linf_smoothness(p) == pytest.approx(3 + 2 + 2.5 + 7, rel=4 * EPS)
    # a global rotation of n = 8 against plain enumeration of all 2^8 sign vectors
    g = quadlab.BlockQuadratic(spectra.BlockSpectrum.from_blocks([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 50.0]]),
                               rotation="global", seed=5)
    H = np.asarray(g.dense())
    brute = max(float(np.array(s) @ H @ np.array(s)) for s in itertools.product((-1.0, 1.0), repeat=8))
    val = explain.linf_smoothness(g)
    assert val == pytest.approx(brute, rel=64 * EPS)
    tr = float(g.eigenvalues.sum())
    assert tr <= val * (1 + 8 * EPS) and val <= explain.norm11(g) * (1 + 8 * EPS)
    assert val <= g.n * g.eigenvalues.max()
    # rotation none: the trace; too large a block: None
    assert explain.linf_smoothness(quadlab.BlockQuadratic(het_spectrum(), rotation="none")) == pytest.approx(
        float(het_spectrum().eigenvalues.sum()), rel=4 * EPS)
    assert explain.linf_smoothness(quadlab.BlockQuadratic(het_spectrum(), rotation="global"), max_block=8) is None


def test_constants_are_invariant_under_permutations():
    rng = np.random.default_rng(0)
    b = quadlab.BlockQuadratic(het_spectrum(), rotation="block", seed=2)
    blocks = [np.asarray(b.block(l)) for l in range(4)]
    perm_in = [rng.permutation(5) for _ in range(4)]
    shuffled = [blk[np.ix_(q, q)] for blk, q in zip(blocks, perm_in)]
    order = [2, 0, 3, 1]
    a = quadlab.BlockQuadratic.from_blocks(blocks)
    c = quadlab.BlockQuadratic.from_blocks([shuffled[i] for i in order])
    for f in (explain.norm11, explain.linf_smoothness, explain.blockwise_norm11):
        assert f(c) == pytest.approx(f(a), rel=64 * EPS)
    ga, gc = explain.linf_geometry(a), explain.linf_geometry(c)
    assert gc.predicted_speedup == pytest.approx(ga.predicted_speedup, rel=64 * EPS)


# -- the rotation test of issue 18 ---------------------------------------------------------------------------
def test_norm11_predictor_changes_under_rotation_while_gd_does_not():
    spec = het_spectrum()
    probs = {r: quadlab.BlockQuadratic(spec, rotation=r, seed=4) for r in ("none", "block", "global")}
    for p in probs.values():  # the spectrum is fixed by construction
        np.testing.assert_array_equal(p.eigenvalues, spec.eigenvalues)
    pred = {r: explain.linf_geometry(p).predicted_speedup for r, p in probs.items()}
    # the diagonal arrangement is the cheapest: ‖H‖_{1,1} = trace; every rotation raises it
    assert pred["none"] > 1.2 * pred["block"] and pred["block"] > 1.2 * pred["global"]
    # GD from the same start in H's eigenbasis: identical gradient norms, identical steps to tolerance
    c = np.random.default_rng(7).standard_normal(spec.n)
    lr = 1.9 / spec.lambda_max
    out = {}
    for r, p in probs.items():
        res = quadlab.run(p, optim.gd(lr=lr), w0=eigvecs(p) @ c, steps=4000, tol=1e-4, record="all")
        out[r] = res
    ref = out["none"]
    assert ref.steps_to_tol[0] > 100
    for r in ("block", "global"):
        assert out[r].steps_to_tol[0] == ref.steps_to_tol[0]
        k = int(ref.steps_to_tol[0])
        np.testing.assert_allclose(out[r].grad_norm[0, :k + 1], ref.grad_norm[0, :k + 1], rtol=1e-9)


# -- block heterogeneity -------------------------------------------------------------------------------------
def test_heterogeneity_reads_the_theory_and_js0():
    p = quadlab.BlockQuadratic(het_spectrum(), rotation="block", seed=0)
    h = explain.heterogeneity(p, seeds=[0, 1, 2])
    W = explain.runner_starts(p, [0, 1, 2])
    c = theory.adam_constants(p, W)
    gd = theory.gd_rates(p)
    np.testing.assert_allclose(h.r_tilde, c.r_tilde, rtol=0, atol=0)
    assert h.predicted_speedup == pytest.approx(float(np.median(np.log(c.bound) / math.log(gd.best_rate))), rel=1e-12)
    assert h.x == pytest.approx(float(np.median(np.asarray(c.r_tilde) * 4.0)), rel=1e-12)
    assert h.block_diagonal and h.js0 == pytest.approx(heterogeneity.js0(het_spectrum()), rel=1e-12)
    # heterogeneous blocks score a larger JS⁰ than the same eigenvalues mixed into every block
    hom = explain.heterogeneity(quadlab.BlockQuadratic(hom_spectrum(), rotation="block", seed=0))
    assert h.js0 > hom.js0
    assert h.favours_adam == 1.0 and hom.favours_adam == 0.0


def test_heterogeneity_under_a_global_rotation_uses_one_block():
    p = quadlab.BlockQuadratic(het_spectrum(), rotation="global", seed=0)
    h = explain.heterogeneity(p)
    np.testing.assert_array_equal(h.block_kappas, [p.kappa])
    assert not h.block_diagonal and h.predicted_speedup < 1
    # JS⁰ compares the diagonal blocks of H as stored (mixed by the rotation), not the spectrum's blocks
    H = np.asarray(p.dense())
    mixed = [np.linalg.eigvalsh(H[s, s]) for s in p.block_slices]
    assert h.js0 == pytest.approx(heterogeneity.js0(mixed), rel=1e-12)


def test_diagonal_block_spectra_are_exact_for_block_rotations():
    p = quadlab.BlockQuadratic(het_spectrum(), rotation="block", seed=0)
    for got, want in zip(explain.diagonal_block_spectra(p), het_spectrum().blocks):
        np.testing.assert_array_equal(got, want)


# -- sign descent and argument checks ---------------------------------------------------------------------------
def test_sign_descent_ratios():
    s = explain.sign_descent(1000, 250, 200)
    assert s.predicted_speedup == 4.0 and s.observed_speedup == 5.0
    assert s.log_gap == pytest.approx(math.log(0.8), rel=4 * EPS)
    s = explain.sign_descent(1000, math.inf)
    assert s.predicted_speedup == 0.0 and s.observed_speedup is None
    with pytest.raises(ValueError, match="sign_steps"):
        explain.sign_descent(1000, 0)
    with pytest.raises(ValueError, match="gd_steps"):
        explain.sign_descent(float("nan"), 3)


def test_bad_arguments_are_actionable():
    p = quadlab.BlockQuadratic(het_spectrum(), rotation="block")
    with pytest.raises(ValueError, match="sum to 19"):
        explain.blockwise_norm11(p, [5, 5, 5, 4])
    with pytest.raises(ValueError, match="positive integer"):
        explain.blockwise_norm11(p, [10, 9.5, 0.5])
    with pytest.raises(ValueError, match="coordinates"):
        explain.linf_geometry(p, partition="rows")
    with pytest.raises(ValueError, match="max_block"):
        explain.linf_smoothness(p, max_block=40)
    with pytest.raises(ValueError, match="seeds"):
        explain.runner_starts(p, [-1])


# -- the noisy quadratic model ---------------------------------------------------------------------------------
def test_noise_prediction_sees_only_the_eigenvalues():
    spec = het_spectrum()
    a = explain.noise(quadlab.BlockQuadratic(spec, rotation="none"), 256, scale=0.01, target=1e-6)
    b = explain.noise(quadlab.BlockQuadratic(spec, rotation="global", seed=3), 256, scale=0.01, target=1e-6)
    assert a == b
    # power 0 makes the model of Adam GD itself: the ratio is exactly 1
    same = explain.noise(spec.eigenvalues, 256, scale=0.01, target=1e-6, power=0.0)
    assert same.gd_steps == same.adam_steps and same.predicted_speedup == 1.0
    # more noise (a smaller batch) never saves steps, for either method
    exact = explain.noise(spec.eigenvalues, None, target=1e-6)
    assert exact.batch is None and exact.gd_steps <= a.gd_steps and exact.adam_steps <= a.adam_steps
    with pytest.raises(ValueError, match="power"):
        explain.noise(spec.eigenvalues, 16, power=1.5)


def test_critical_batches_follow_their_definition():
    lam = het_spectrum().eigenvalues
    cb = explain.critical_batches(lam, scale=0.01, target=1e-6, batches=2.0 ** np.arange(4, 15, 2))
    for c in cb.values():
        ok = (c.steps >= 0) & (c.steps <= (1 + c.delta) * c.limit)
        assert c.critical == c.batches[np.flatnonzero(ok)[0]]
        assert (np.diff(c.steps[c.steps >= 0]) <= 0).all()  # a larger batch never costs steps
