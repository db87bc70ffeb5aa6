"""quadlab.extract.block_spectra against exact Hessians (torch.autograd.functional.hessian on the flattened block)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from quadlab import lanczos  # noqa: E402
from quadlab.extract import block_spectra, heads, resolve_blocks, rows, tokens  # noqa: E402
from quadlab.extract.hvp import BlockHessian  # noqa: E402


class Tiny(torch.nn.Module):
    """An embedding, a Linear with bias, tanh and a classifier: every kind of block in a few dozen parameters."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(6, 4)
        self.fc = torch.nn.Linear(4, 6)
        self.out = torch.nn.Linear(6, 3)

    def forward(self, tok):
        return self.out(torch.tanh(self.fc(self.emb(tok).mean(dim=1))))


def loss_fn(model, batch):
    tok, y = batch
    return torch.nn.functional.cross_entropy(model(tok), y)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models on a shared 2-core machine: torch's spinning OpenMP threads made one test 40x slower (6.6 s vs
    # 0.18 s); results do not depend on the thread count here.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = Tiny().double()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 6, (8, 3), generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]
    return model, batches


def exact_block(model, batches, pieces):
    """Eigenvalues of P_S H P_Sᵀ, with H the Hessian of the mean batch loss in the tensors S touches."""
    params = dict(model.named_parameters())
    names = list(dict.fromkeys(n for n, _, _ in pieces))
    flat0 = torch.cat([params[n].detach().reshape(-1) for n in names])

    def f(flat):
        d, off = {}, 0
        for n in names:
            d[n] = flat[off:off + params[n].numel()].reshape(params[n].shape)
            off += params[n].numel()
        call = lambda x: torch.func.functional_call(model, d, (x,))  # noqa: E731
        return sum(torch.nn.functional.cross_entropy(call(t), y) for t, y in batches) / len(batches)

    H = torch.autograd.functional.hessian(f, flat0).numpy()
    starts = {n: sum(params[k].numel() for k in names[:i]) for i, n in enumerate(names)}
    idx = np.concatenate([np.arange(starts[n] + a, starts[n] + b) for n, a, b in pieces])
    return np.linalg.eigvalsh(H[np.ix_(idx, idx)])


def assert_extremes(q, model, batches, sel):
    lo, hi = q.extremes()
    for i, name in enumerate(q.names):
        ev = exact_block(model, batches, sel[name])
        scale = np.abs(ev).max()
        assert q.sizes[i] == ev.size
        assert abs(lo[i] - ev.min()) <= 1e-10 * scale, name
        assert abs(hi[i] - ev.max()) <= 1e-10 * scale, name


M = 60  # ≥ every block size below: Lanczos is then exact (or stops earlier on an invariant space)


def test_one_tensor_blocks(setup):
    model, batches = setup
    q = block_spectra(model, loss_fn, batches, m=M, probes=2)
    assert q.names == tuple(n for n, _ in model.named_parameters())
    assert_extremes(q, model, batches, resolve_blocks(model))


def test_multi_tensor_block(setup):
    model, batches = setup
    blocks = {"fc": ["fc.weight", "fc.bias"], "heads": [r"^out\."]}
    q = block_spectra(model, loss_fn, batches, blocks, m=M, probes=2)
    sel = resolve_blocks(model, blocks)
    assert [n for n, _, _ in sel["fc"]] == ["fc.weight", "fc.bias"] and q.sizes == (30, 21)
    assert_extremes(q, model, batches, sel)


def test_regex_selection(setup):
    model, batches = setup
    q = block_spectra(model, loss_fn, batches, r"\.bias$", m=M, probes=2)
    assert q.names == ("fc.bias", "out.bias")
    assert_extremes(q, model, batches, resolve_blocks(model, r"\.bias$"))


def test_row_head_token_partitions(setup):
    model, batches = setup
    blocks = [rows("fc.weight"), heads("fc.weight", 3, select=[0, 2]), tokens("emb.weight", select=[1, 4]),
              rows("fc.weight", size=2, start=2, stop=6)]
    sel = resolve_blocks(model, blocks)
    assert sel["fc.weight[row 2]"] == [("fc.weight", 8, 12)]
    assert list(sel)[6:8] == ["fc.weight[head 0]", "fc.weight[head 2]"]
    assert sel["fc.weight[head 2]"] == [("fc.weight", 16, 24)]  # (6, 4): two rows per head
    assert sel["emb.weight[token 4]"] == [("emb.weight", 16, 20)]
    assert sel["fc.weight[row 1]"] == [("fc.weight", 4, 8)] and sel["fc.weight[rows 4-5]"] == [("fc.weight", 16, 24)]
    with pytest.raises(ValueError, match="two blocks are named"):
        resolve_blocks(model, [rows("fc.weight"), rows("fc.weight")])
    q = block_spectra(model, loss_fn, batches, blocks[:3], m=M, probes=2)
    assert_extremes(q, model, batches, resolve_blocks(model, blocks[:3]))
    d = block_spectra(model, loss_fn, batches, {"q": heads("out.weight", 3)}, m=M, probes=1)
    assert d.names == ("q[head 0]", "q[head 1]", "q[head 2]")


def test_batch_order_and_dataloader(setup):
    model, batches = setup
    a = block_spectra(model, loss_fn, batches, "fc", m=M, probes=2)
    b = block_spectra(model, loss_fn, batches[::-1], "fc", m=M, probes=2)
    ds = torch.utils.data.TensorDataset(torch.stack([t for t, _ in batches]), torch.stack([y for _, y in batches]))
    loader = torch.utils.data.DataLoader(ds, batch_size=None)  # yields the three batches as they are
    c = block_spectra(model, loss_fn, loader, "fc", m=M, probes=2)
    for q in (b, c):
        for x, y in zip(a.nodes, q.nodes, strict=True):
            # Only the order of the sum over batches differs: equal to rounding.
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)


def test_device_loop_matches_host_loop(setup):
    """quadlab's Lanczos with torch tensors as its arrays (the path a CUDA model takes) gives the host path's
    nodes; here on the CPU."""
    model, batches = setup
    info_h, info_d = {}, {}
    h = block_spectra(model, loss_fn, batches, m=M, probes=3, info=info_h)
    d = block_spectra(model, loss_fn, batches, m=M, probes=3, on_device=True, info=info_d)
    assert info_h["lanczos_on"] == "host" and info_d["lanczos_on"] == "device"
    for x, y in zip(h.nodes, d.nodes, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-13)
    assert info_d["hvp_products"] <= info_d["estimate"]["hvp_products"]


def test_dtype_copy_leaves_model_alone(setup, capsys):
    model, batches = setup
    info = {}
    q = block_spectra(model, loss_fn, batches, "out.bias", m=3, probes=2, dtype="float32", progress=True, info=info)
    assert next(model.parameters()).dtype == torch.float64 and info["dtype"] == "torch.float32"
    assert q.ok and info["hvp_products"] == 3 * 2 * 3
    err = capsys.readouterr().err
    assert "3 Lanczos steps × 2 probes × 3 batches = 18 Hessian-vector products" in err


@pytest.mark.parametrize("blocks, match", [
    ("nothing_like_this", "matches no parameter"),
    ("(", "not a valid regular expression"),
    ({"a": []}, "block 'a'"),
    (heads("fc.weight", 4), "cannot be split into 4 equal heads"),
    (rows("fc.weight", select=[9]), "out of range"),
    (3, "cannot use a int"),
])
def test_bad_blocks(setup, blocks, match):
    model, batches = setup
    with pytest.raises(ValueError, match=match):
        block_spectra(model, loss_fn, batches, blocks, m=2, probes=1)


def test_bad_arguments(setup):
    model, batches = setup
    with pytest.raises(ValueError, match="batches is empty"):
        block_spectra(model, loss_fn, [], m=2)
    with pytest.raises(ValueError, match="scalar"):
        block_spectra(model, lambda mod, b: mod(b[0]), batches, "out.bias", m=2)
    with pytest.raises(ValueError, match="m .* >= 1"):
        block_spectra(model, loss_fn, batches, m=0)
    with pytest.raises(ValueError, match="iterable of batches"):
        block_spectra(model, loss_fn, batches[0][0], m=2)


def test_gpt2_equals_the_shipped_path():
    """block_spectra on the built-in quick GPT2 gives, bit for bit, the nodes of the path the shipped spectra were
    built with (BlockHessian's products into lanczos.slq), and quadlab.extract.extract goes through it."""
    from quadlab.extract import build

    cfg = build.CONFIGS[("gpt2", True)]
    torch.set_num_threads(1)
    with build._flush_denormals():
        net, batches, _, names = build._build(cfg)
        H = BlockHessian(net, lambda mod, b: mod.loss(b), batches, names, mode=cfg.mode)
        ops, sizes = H.operators()
        ref = lanczos.slq(ops, m=cfg.m, probes=cfg.probes, seed=cfg.probe_seed, n=sizes, check_symmetric=False)
    got = block_spectra(net, lambda mod, b: mod.loss(b), batches, names, m=cfg.m, probes=cfg.probes,
                        seed=cfg.probe_seed, mode=cfg.mode)
    assert got.names == ref.names == tuple(names)
    for x, y in zip(got.nodes, ref.nodes, strict=True):
        np.testing.assert_array_equal(x, y)
    q, meta = build.extract("gpt2", quick=True)
    for x, y in zip(q.nodes, ref.nodes, strict=True):
        np.testing.assert_array_equal(x, y)
    assert meta["hvp_products"] == H.products


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_speed(setup):
    """On CUDA: the nodes equal the CPU's to rounding, and one block's SLQ time on each is printed."""
    import time

    model, batches = setup
    cpu = block_spectra(model, loss_fn, batches, m=M, probes=2)
    gpu = block_spectra(model, loss_fn, batches, m=M, probes=2, device="cuda")
    for x, y in zip(cpu.nodes, gpu.nodes, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-10)
    from quadlab.extract import build

    net, bt, _, names = build._build(build.CONFIGS[("gpt2", False)])
    times = {}
    for dev in ("cpu", "cuda"):
        block_spectra(net, lambda mod, b: mod.loss(b), bt, names[1], m=2, probes=1, device=dev)  # warm up
        t0 = time.perf_counter()
        block_spectra(net, lambda mod, b: mod.loss(b), bt, names[1], m=20, probes=4, device=dev)
        if dev == "cuda":
            torch.cuda.synchronize()
        times[dev] = time.perf_counter() - t0
    print(f"\none GPT2 block, m=20, 4 probes: cpu {times['cpu']:.2f} s, cuda {times['cuda']:.2f} s, "
          f"speed-up {times['cpu'] / times['cuda']:.1f}x")


def test_transformer_encoder_layer_heads_of_the_packed_query():
    """torch's own TransformerEncoderLayer (fused attention has no double backward; block_spectra uses the math
    kernel): the query heads of the packed in_proj_weight, split per head, against the exact Hessian."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).double()
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(2, 5, 8, generator=g, dtype=torch.float64) for _ in range(2)]
    target = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)

    def loss(mod, x):
        return ((mod(x) - target) ** 2).mean()

    blocks = {"q": heads("self_attn.in_proj_weight", 2, stop=8), "out": ["self_attn.out_proj.weight"]}
    sel = resolve_blocks(layer, blocks)
    assert sel["q[head 1]"] == [("self_attn.in_proj_weight", 32, 64)]
    q = block_spectra(layer, loss, batches, blocks, m=70, probes=1)
    params = dict(layer.named_parameters())
    lo, hi = q.extremes()
    for i, name in enumerate(q.names):
        (pname, a, b), = sel[name]
        p0 = params[pname].detach()

        def f(flat, pname=pname, p0=p0):
            call = {pname: flat.reshape(p0.shape)}
            return sum(loss(lambda x: torch.func.functional_call(layer, call, (x,)), x) for x in batches) / 2

        with sdpa_kernel([SDPBackend.MATH]):
            H = torch.autograd.functional.hessian(f, p0.reshape(-1)).numpy()[a:b, a:b]
        ev = np.linalg.eigvalsh(H)
        scale = np.abs(ev).max()
        assert abs(lo[i] - ev.min()) <= 1e-9 * scale and abs(hi[i] - ev.max()) <= 1e-9 * scale, name
