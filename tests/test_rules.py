"""One resolver for step rules and block extremes (quadlab.rules): the run, the report and the studies agree."""

import numpy as np
import pytest

import quadlab
from quadlab import checks, optim, rules, spectra, theory

# bit-identical results: .ci/run runs these again with numpy's CPU dispatch lowered (pyproject.toml, markers)
pytestmark = pytest.mark.bitwise

ROTATIONS = ("block", "none", "global")


def spread_problem(rotation):
    # three copies of one block scaled 1, 2, 4: the per-block theorem step (min over blocks of
    # min|g_i| / λ_max(block)) and the whole-H step (min|g| / λ_max(H)) differ
    return quadlab.BlockQuadratic(spectra.scaled_blocks(spectra.log_uniform(10, 1, 10), 3, 2), rotation=rotation,
                                  seed=1)


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_report_rates_the_step_the_run_took(rotation):
    p = spread_problem(rotation)
    seeds = [0, 1, 2]
    by_rule = quadlab.run(p, optim.adam_theory(), seeds=seeds, steps=400, record="all")
    eta = rules.theorem_lr(p, by_rule.w0)
    np.testing.assert_array_equal(eta, np.asarray(theory.adam_constants(p, by_rule.w0, exact_rates=False).eta))
    rep_rule = checks.report(by_rule, p)
    np.testing.assert_array_equal(rep_rule.config["lr"], eta)
    for s, lr in zip(seeds, eta, strict=True):
        # the same step given as a number: the same trajectory, the same exact rate and bound
        num = quadlab.run(p, optim.adam_theory(lr=float(lr)), seeds=[s], steps=400, record="all")
        np.testing.assert_array_equal(num.gap[0], by_rule.gap[s])
        rep_num = checks.report(num, p)
        assert rep_num.exact[0] == rep_rule.exact[s]
        assert rep_num.bound[0] == rep_rule.bound[s]
    assert (rep_rule.holds == "yes").all(), str(rep_rule)


def test_per_block_and_whole_h_steps_differ_under_a_global_rotation():
    """The regression behind the resolver: under rotation='global' the theorem has one block (all of H); a
    step recomputed over the nominal blocks is another step, and its exact rate belongs to another run."""
    p = spread_problem("global")
    W0 = p.optimum_host + np.random.default_rng(0).standard_normal((20, p.n))
    G = np.abs(np.asarray(p.grad(W0)))
    hi = np.array([b.max() for b in p.spectrum.blocks])
    per_nominal = np.min([G[:, s].min(axis=1) / hi[l] for l, s in enumerate(p.block_slices)], axis=0)
    whole = G.min(axis=1) / p.eigenvalues.max()
    assert (np.abs(per_nominal / whole - 1) > 0.1).sum() >= 5  # the starts whose smallest |g_i| is not in block 2
    np.testing.assert_allclose(rules.theorem_lr(p, W0), whole, rtol=1e-15)


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_block_extremes_have_one_meaning_for_every_source(rotation):
    p = spread_problem(rotation)
    H = np.asarray(p.dense())
    # nominal blocks: the diagonal blocks H[s, s] as stored (mixed blocks under a global rotation)
    truth = np.array([[np.linalg.eigvalsh(H[s, s])[0], np.linalg.eigvalsh(H[s, s])[-1]] for s in p.block_slices])
    exact = rules.block_extremes(p, "exact", "nominal")
    np.testing.assert_allclose(exact, truth, rtol=1e-12)
    lz = rules.block_extremes(p, "lanczos", "nominal")
    assert (lz[:, 0] <= exact[:, 0]).all() and (lz[:, 1] >= exact[:, 1]).all()  # widened: the safe side
    np.testing.assert_allclose(lz, exact, rtol=0.03)
    # theorem blocks: the nominal ones when H is block diagonal, all of H otherwise
    th = rules.block_extremes(p, "exact", "theorem")
    if rotation == "global":
        np.testing.assert_allclose(th, [[1.0, 40.0]], rtol=1e-12)
        assert not np.allclose(exact, [[1, 10], [2, 20], [4, 40]], rtol=0.05)
    else:
        np.testing.assert_allclose(th, exact, rtol=0, atol=0)
    lo, hi = rules.whole_extremes(p, "lanczos")
    assert lo <= 1.0 and hi >= 40.0 and hi < 40.0 * 1.03
    # the blockwise oracle from either source: the exact one, or slightly shorter (widened extremes)
    o_exact, o_lz = rules.oracle_block_lrs(p, "exact"), rules.oracle_block_lrs(p, "lanczos")
    with pytest.warns(DeprecationWarning, match="oracle_block_lrs"):  # the old name still answers
        np.testing.assert_array_equal(rules.oracle_block_steps(p, "exact"), o_exact)
    assert (o_lz <= o_exact * (1 + 1e-12)).all()
    np.testing.assert_allclose(o_lz, o_exact, rtol=0.03)


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_oracle_and_optimal_runs_match_their_resolved_steps(rotation):
    p = spread_problem(rotation)
    for source in ("exact", "lanczos"):
        bw = quadlab.run(p, optim.blockwise_gd(source=source), seeds=[0], steps=300, method="iterate")
        manual = quadlab.run(p, optim.blockwise_gd(block_lr=rules.oracle_block_lrs(p, source)), seeds=[0],
                             steps=300, method="iterate")
        np.testing.assert_array_equal(bw.grad_norm, manual.grad_norm)
        gd = quadlab.run(p, optim.gd(lr="optimal", source=source), seeds=[0], steps=300, method="iterate")
        lr = rules.gd_optimal_lr(p, source)
        manual = quadlab.run(p, optim.gd(lr=lr), seeds=[0], steps=300, method="iterate")
        np.testing.assert_array_equal(gd.grad_norm, manual.grad_norm)
        assert checks.report(gd, p).config["lr"][0] == lr
    # on a block-diagonal H the oracle's iteration matrix is blockwise I − η_l H_l with every |1 − η_l λ| < 1;
    # rotated globally, the off-diagonal blocks couple them and nothing guarantees stability
    res = quadlab.run(p, optim.blockwise_gd(), seeds=[0], steps=5000, tol=1e-8)
    if rotation != "global":
        assert res.status[0] == "converged"
    rep = checks.report(res, p)
    assert rep.holds[0] in ("yes", "undetermined"), str(rep)


def test_resolver_rejects_unknown_names():
    p = spread_problem("block")
    with pytest.raises(ValueError, match="source must be one of"):
        rules.block_extremes(p, "eigsh")
    with pytest.raises(ValueError, match="partition must be one of"):
        rules.block_extremes(p, "exact", "rows")
    with pytest.raises(ValueError, match="unknown step rule"):
        rules.resolve_lr(p, {"lr": "best"}, np.zeros(p.n))


def test_one_source_vocabulary():
    # every kind of source is named once, in quadlab.spectra; each function accepts its own subset
    from quadlab import heterogeneity, rates, spectra

    assert set(spectra.EXTREMES_SOURCES) | set(spectra.DENSITY_SOURCES) == set(spectra.SOURCES)
    p = quadlab.BlockQuadratic(spectra.simple_heterogeneous())
    for bad, call in (("slq", lambda s: rules.block_extremes(p, s)), ("slq", lambda s: rates.block_extremes(p, s)),
                      ("lanczos", lambda s: heterogeneity.js0(p, source=s))):
        with pytest.raises(ValueError, match=r"source must be one of \("):
            call(bad)
    with pytest.warns(DeprecationWarning, match="EXTREMES_SOURCES"):
        assert rules.SOURCES == spectra.EXTREMES_SOURCES


@pytest.mark.parametrize("factory", [optim.gd, optim.blockwise_gd, optim.adam_theory])
def test_the_old_spectra_keyword_warns_and_means_source(factory):
    with pytest.warns(DeprecationWarning, match=r"\(spectra=\.\.\.\) is deprecated: use source="):
        old = factory(spectra="lanczos")
    assert old.options == factory(source="lanczos").options and old.options["source"] == "lanczos"
    with pytest.raises(ValueError, match=r"source must be one of \('exact', 'lanczos'\), got 'slq'"):
        factory(source="slq")


@pytest.mark.parametrize("margin", ["x", float("nan"), 1.0, -0.1, True])
def test_a_bad_margin_gets_a_value_error_naming_it(margin):
    p = quadlab.BlockQuadratic(spectra.simple_heterogeneous(1000.0))
    with pytest.raises(ValueError, match=r"margin must be a number in \[0, 1\), got"):
        rules.whole_extremes(p, "lanczos", margin=margin)
