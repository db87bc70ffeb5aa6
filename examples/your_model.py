"""Your own model's Hessian blocks, end to end, in about a minute on a CPU (``--quick``: under 15 s).

    python examples/your_model.py [--quick] [--out DIR]

1. Two small networks in plain torch: a Transformer built from ``torch.nn.TransformerEncoderLayer`` (a byte-level
   language model on real text) and a CNN (the scikit-learn 8×8 digits), both at initialisation.
2. Their block spectra with :func:`quadlab.extract.block_spectra`: per Transformer layer the query (the first
   third of the packed ``in_proj_weight``, one block per head with ``heads(..., stop=width)``), the key, the value,
   the attention output and the two MLP matrices, and the embedding; per CNN the convolutions and the classifier.
3. JS⁰ of each network's blocks (max-|λ| normalised densities): how different the blocks' spectra are.
4. The quadratic cases built from them as the paper builds Cases 1–2: 25 eigenvalues per chosen block, read into
   [1, κ] (``stored.sampled_spectrum``, the default "log" reading), Haar-rotated per block.
5. GD and Adam (theory form and β1 = 0.9), each tuned, on those cases; the steps to ‖∇f‖ ≤ 1e-6‖∇f(w₀)‖.

Writes ``spectra.png`` (block densities), ``convergence.png`` (GD vs Adam), both networks' spectra as npz (read
them with ``quadlab stored-report --spectra FILE`` or ``quadlab case1_4 --spectra FILE --blocks ...``) and a JSON
summary into --out (default out/examples/your_model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import quadlab
from quadlab import heterogeneity, optim, stored, tune
from quadlab.extract import block_spectra, heads
from quadlab.extract.data import digit_batches, text_batches


class TinyTransformer(nn.Module):
    """Byte-level causal LM: token + position embeddings, ``layers`` pre-LN TransformerEncoderLayers, a head."""

    def __init__(self, width=32, heads=2, layers=2, context=16, vocab=256):
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0,
                                                                batch_first=True, norm_first=True)
                                     for _ in range(layers)])
        self.head = nn.Linear(width, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, tok):
        T = tok.shape[1]
        x = self.emb(tok) + self.pos(torch.arange(T, device=tok.device))
        for layer in self.layers:
            x = layer(x, src_mask=self.mask[:T, :T], is_causal=True)
        return self.head(x)


def lm_loss(model, batch):
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


class TinyCNN(nn.Module):
    """Three 3×3 convolutions (ReLU, no normalisation) and a linear classifier.  quadlab's digit batches are
    3×32×32 (the 8×8 digits upsampled for ResNet18); a 4×4 average pool takes them back to 8×8."""

    def __init__(self, width=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = F.relu(self.conv1(F.avg_pool2d(x, 4)))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.fc(x.mean(dim=(2, 3)))


def image_loss(model, batch):
    images, labels = batch
    return F.cross_entropy(model(images), labels)


# Factories for the command line, e.g.
#   quadlab extract --model examples/your_model.py:transformer --loss examples/your_model.py:lm_loss \
#                   --batches examples/your_model.py:text_data --blocks 'layers\.0\.' --m 30 --probes 2
def transformer():
    torch.manual_seed(0)
    return TinyTransformer()


def cnn():
    torch.manual_seed(0)
    return TinyCNN()


def text_data():
    return text_batches(2, 8, 16, seed=0)[0]


def digit_data():
    return digit_batches(2, 32, seed=0)[0]


def transformer_blocks(width: int, heads_n: int) -> dict:
    """The paper's Transformer blocks of layer 0: query per head, key, value, attention output, MLP in and out
    (the packed in_proj_weight holds query, key, value as rows [0, w), [w, 2w), [2w, 3w)), and the embedding."""
    from quadlab.extract import rows

    w = width
    attn = "layers.0.self_attn."
    return {"emb": ["emb.weight"],
            "query": heads(attn + "in_proj_weight", heads_n, stop=w),
            "key": rows(attn + "in_proj_weight", size=w, start=w, stop=2 * w),
            "value": rows(attn + "in_proj_weight", size=w, start=2 * w, stop=3 * w),
            "attn_out": [attn + "out_proj.weight"], "mlp_in": ["layers.0.linear1.weight"],
            "mlp_out": ["layers.0.linear2.weight"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer Lanczos steps, κ = 500, one seed (under 15 s)")
    ap.add_argument("--out", type=Path, default=Path("out/examples/your_model" + ("-quick" if "--quick" in
                                                                                   (argv or sys.argv) else "")))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only spin (see quadlab.extract.build)
    m, probes = (20, 2) if args.quick else (60, 4)
    kappa, seeds = (500.0, [0]) if args.quick else (5000.0, [0, 1, 2])

    # 1-2. The networks and their block spectra.
    width, nheads = 32, 2  # TinyTransformer's defaults
    nets = {
        "transformer": (transformer(), lm_loss, text_data(), transformer_blocks(width, nheads)),
        "cnn": (cnn(), image_loss, digit_data(), {n: [f"{n}.weight"] for n in ("conv1", "conv2", "conv3", "fc")}),
    }
    spectra, summary = {}, {"m": m, "probes": probes, "kappa": kappa, "seeds": seeds}
    for name, (net, loss, batches, blocks) in nets.items():
        info: dict = {}
        q = block_spectra(net, loss, batches, blocks, m=m, probes=probes, seed=0, mode="eval", info=info)
        spectra[name] = q
        stored.save(args.out / f"{name}_blocks.npz", q, {"model": f"examples/your_model.py:{name}", "quick": False,
                                                          "mode": "eval", "hvp_products": info["hvp_products"]})
        summary[name] = {"blocks": dict(zip(q.names, q.sizes, strict=True)), "hvp_products": info["hvp_products"],
                         "seconds": round(info["seconds"], 2)}
        print(f"{name}: {len(q.names)} blocks, {info['hvp_products']} Hessian-vector products, "
              f"{info['seconds']:.1f} s")

    # 3. JS⁰ between the blocks of each network.
    for name, q in spectra.items():
        summary[name]["js0_max_abs"] = heterogeneity.js0(q, normalize="max_abs")
        print(f"{name}: JS⁰ = {summary[name]['js0_max_abs']:.4f} nats (max-|λ| normalised block densities)")

    # 4-5. Quadratic cases from four blocks each, GD vs Adam.
    chosen = {"transformer": ["emb", "query[head 0]", "value[rows 64-95]", "mlp_in"],
              "cnn": ["conv1", "conv2", "conv3", "fc"]}
    optimizers = {"gd": (optim.gd(), (1e-6, 1e-1)), "adam_theory": (optim.adam_theory(lr=1.0), (1e-4, 1e2)),
                  "adam": (optim.adam(b1=0.9), (1e-5, 1e1))}
    steps = int(1.2 * np.log(1e6) * kappa)
    traces = {}
    for name, q in spectra.items():
        st = stored.StoredSpectra(q, {}, name)
        spec = stored.sampled_spectrum(st, chosen[name], 25, kappa)
        probs = [quadlab.BlockQuadratic(spec, rotation="block", seed=s) for s in seeds]
        summary[name]["case"] = {"blocks": chosen[name], "max_block_kappa": float(spec.block_kappas.max()),
                                 "js0": heterogeneity.js0(spec)}
        traces[name] = {}
        for key, (opt, rng) in optimizers.items():
            t = tune.tune_lr(probs, opt, lr_range=rng, points=8, refine=1, seeds=seeds, steps=steps, tol=1e-6,
                             race=True)
            traces[name][key] = list(t.best)
            reached = t.best_steps is not None and t.best_steps >= 0  # tune_lr: -1 when no lr reached tol
            summary[name]["case"][key] = {"lr": t.best_lr, "steps": int(t.best_steps) if reached else None}
        c = summary[name]["case"]
        print(f"{name} case (κ = {kappa:g}, max κ_l = {c['max_block_kappa']:.3g}, JS⁰ = {c['js0']:.3f}): steps to "
              "tol  " + ", ".join(f"{k} {c[k]['steps'] if c[k]['steps'] is not None else '—'}" for k in optimizers))

    _figures(spectra, traces, args.out, kappa)
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    print(f"figures and spectra in {args.out} ({summary['seconds']} s)")
    torch.set_num_threads(saved_threads)
    return 0


def _figures(spectra, traces, out: Path, kappa: float) -> None:
    from quadlab import plots

    plt = plots.pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for ax, (name, q) in zip(axes, spectra.items(), strict=True):
        d = q.density(normalize="max_abs", sigma=0.01)
        for i, b in enumerate(d.names):
            ax.plot(d.grid, d.values[i], lw=1.2, label=b, color=plots.OKABE_ITO[i % len(plots.OKABE_ITO)])
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 1e3)  # a block's near-zero bulk is a spike far above the rest of the spectrum
        ax.set_xlabel("λ / max |λ| of the block")
        ax.set_ylabel("density (SLQ, Gaussian σ = 1 %)")
        ax.set_title(f"{name}: block Hessian spectra at initialisation")
        ax.legend(fontsize=7, ncol=2)
    fig.savefig(out / "spectra.png", dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    labels = {"gd": "GD, tuned", "adam_theory": "Adam theory form, tuned", "adam": "Adam β1 = 0.9, tuned"}
    for ax, (name, runs) in zip(axes, traces.items(), strict=True):
        for key, res in runs.items():
            plots.median_band(ax, res, label=labels[key], color=plots.color(key))
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("iteration k")
        ax.set_ylabel("log10 ‖∇f(w_k)‖")
        ax.set_title(f"quadratic from the {name}'s blocks (κ = {kappa:g})")
        ax.legend(fontsize=8)
    fig.savefig(out / "convergence.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
