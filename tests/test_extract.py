"""Blockwise Hessian-vector products of torch models and the quick rebuild of the stored spectra."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the extract extra (torch) is not installed")
pytest.importorskip("sklearn", reason="the extract extra (scikit-learn) is not installed")

from quadlab import cli, stored  # noqa: E402
from quadlab.extract import BlockHessian, extract  # noqa: E402
from quadlab.extract.build import CONFIGS, _build, _flush_denormals  # noqa: E402
from quadlab.extract.data import digit_batches, text_batches  # noqa: E402
from quadlab.extract.models import GPT2Config, gpt2_block_names  # noqa: E402


def _hessian(model: str, dtype="float64", **kw):
    from dataclasses import replace

    cfg = replace(CONFIGS[(model, True)], dtype=dtype)
    net, batches, _, names = _build(cfg)
    return BlockHessian(net, lambda m, b: m.loss(b), batches, names, **kw), net, batches


def _grad(net, batches, p):
    gs = [torch.autograd.grad(net.loss(b), p)[0] for b in batches]
    return torch.stack(gs).mean(0).reshape(-1)


@pytest.mark.parametrize("model", ["gpt2", "resnet18"])
def test_hvp_matches_finite_differences(model):
    """H v against the central difference (g(θ + h v) − g(θ − h v)) / 2h in float64; the step is small because
    ReLU kinks spoil larger ones (for the quick ResNet18 the error was 24× ‖Hv‖ at h = 1e-6, 1e-8 at 1e-7)."""
    H, net, batches = _hessian(model)
    net.eval()  # the Hessian's mode: BatchNorm on running statistics
    torch.manual_seed(1)
    for block in H.blocks[:2]:
        p = H.params[block]
        v = torch.randn(p.numel(), dtype=torch.float64)
        hv = H.hvp(block, v[:, None])[:, 0]
        h = 1e-7
        with torch.no_grad():
            p += h * v.reshape(p.shape)
        gp = _grad(net, batches, p)
        with torch.no_grad():
            p -= 2 * h * v.reshape(p.shape)
        gm = _grad(net, batches, p)
        with torch.no_grad():
            p += h * v.reshape(p.shape)
        fd = (gp - gm) / (2 * h)
        assert torch.linalg.vector_norm(hv - fd) <= 1e-5 * torch.linalg.vector_norm(hv), block


def test_hvp_is_symmetric_linear_and_a_mean_over_batches():
    H, net, batches = _hessian("gpt2")
    block = H.blocks[1]
    d = H.sizes()[block]
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((d, 3)))
    Y = H.hvp(block, X)
    eps = np.finfo(np.float64).eps
    G = X.T @ Y
    assert torch.allclose(G, G.T, rtol=0, atol=100 * eps * float(torch.linalg.matrix_norm(G)))
    # columns are independent products: the matmat equals three matvecs
    for j in range(3):
        yj = H.hvp(block, X[:, j : j + 1])
        assert torch.allclose(yj[:, 0], Y[:, j], rtol=0, atol=100 * eps * float(Y.abs().max()))
    # mean, not sum: the Hessian of K batches is the average of the single-batch Hessians
    singles = [BlockHessian(net, lambda m, b: m.loss(b), [b], [block]).hvp(block, X) for b in batches]
    assert torch.allclose(Y, sum(singles) / len(singles), rtol=0, atol=100 * eps * float(Y.abs().max()))


def test_blockhessian_rejects_bad_input():
    H, net, batches = _hessian("gpt2")
    loss = lambda m, b: m.loss(b)  # noqa: E731
    with pytest.raises(ValueError, match="no parameter named"):
        BlockHessian(net, loss, batches, ["nope.weight"])
    with pytest.raises(ValueError, match="mode"):
        BlockHessian(net, loss, batches, H.blocks, mode="inference")
    with pytest.raises(ValueError, match="batches is empty"):
        BlockHessian(net, loss, [], H.blocks)
    with pytest.raises(ValueError, match="repeat"):
        BlockHessian(net, loss, batches, [H.blocks[0]] * 2)


def test_batched_and_looped_products_agree():
    H, _, _ = _hessian("gpt2")
    Hb, _, _ = _hessian("gpt2", batched=True)
    block = H.blocks[2]
    X = torch.from_numpy(np.random.default_rng(2).standard_normal((H.sizes()[block], 3)))
    Y, Yb = H.hvp(block, X), Hb.hvp(block, X)
    assert torch.allclose(Y, Yb, rtol=0, atol=1e3 * np.finfo(np.float64).eps * float(Y.abs().max()))


def test_data_is_deterministic_and_described():
    a, info = text_batches(2, 3, 16, seed=4)
    b, _ = text_batches(2, 3, 16, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)) and a[0].shape == (3, 17)
    assert info["corpus_bytes"] > 100_000 and len(info["corpus_sha256"]) == 64
    imgs, info = digit_batches(1, 5, seed=0)
    x, y = imgs[0]
    assert x.shape == (5, 3, 32, 32) and y.shape == (5,) and int(y.max()) <= 9
    assert "scikit-learn" in info["source"]
    with pytest.raises(ValueError, match="batch_size"):
        text_batches(1, 0, 16)
    with pytest.raises(ValueError, match="digits set has 1797"):
        digit_batches(100, 100)
    with pytest.raises(ValueError, match="layer 9"):
        gpt2_block_names(GPT2Config(layers=2), [9])


def test_quick_rebuild_round_trip(tmp_path, monkeypatch):
    """`quadlab extract all --quick` with default arguments writes loadable toy files to out/spectra-quick and
    leaves the shipped spectra byte-identical; the same seeds give the same spectra."""
    import hashlib

    shipped = {n: hashlib.sha256(stored.data_path(n).read_bytes()).hexdigest() for n in ("gpt2", "resnet18")}
    monkeypatch.chdir(tmp_path)
    assert cli.main(["extract", "all", "--quick", "--quiet"]) == 0
    assert {n: hashlib.sha256(stored.data_path(n).read_bytes()).hexdigest() for n in shipped} == shipped
    tmp_path = tmp_path / "out" / "spectra-quick"
    for name in ("gpt2", "resnet18"):
        with pytest.raises(ValueError, match="toy spectra"):
            stored.load(tmp_path / f"{name}_blocks.npz")
        st = stored.load(tmp_path / f"{name}_blocks.npz", allow_quick=True)
        assert st.meta["quick"] and st.meta["model"] == name and st.slq.ok
        assert st.meta["data"]["batches_sha256" if name == "gpt2" else "indices_sha256"]
        assert len(st.names) == len(st.meta["blocks"]) >= 2
    q, _ = extract("gpt2", quick=True)
    again = stored.load(tmp_path / "gpt2_blocks.npz", allow_quick=True).slq
    for a, b in zip(q.nodes, again.nodes, strict=True):
        np.testing.assert_array_equal(a, b)


def test_flush_denormals_is_restored():
    with _flush_denormals():
        assert torch.tensor([1e-40], dtype=torch.float32).item() == 0.0
    assert torch.tensor([1e-40], dtype=torch.float32).item() != 0.0


def test_extract_refuses_lanczos_bases_that_cannot_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUADLAB_MEMORY_LIMIT", "1M")
    assert cli.main(["extract", "gpt2", "--quick", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quadlab extract: error: this needs about")
    assert "lower --m or --probes" in err[0] and not list(tmp_path.iterdir())
