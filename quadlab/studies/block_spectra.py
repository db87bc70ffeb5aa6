"""Blockwise Hessian spectra at initialisation, 4 blocks of GPT2 and 4 of ResNet18, in the style of the paper's
blockwise-spectrum figure: each block's SLQ density of λ/λ₁₀ (λ₁₀: the block's 10th largest eigenvalue, as
the paper normalises) on a log frequency axis.

    quadlab block-spectra [--data DIR [--allow-quick]] [--out paper_figs/out] [--sigma 0.01] [--quiet]

Reads the spectra shipped in quadlab/data (or --data DIR from `quadlab extract --out DIR`); recomputes every
density from the stored Ritz nodes and weights, with no Hessian-vector product.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from quadlab import heterogeneity, plots, stored
from quadlab.studies.common import check_output_dir, fail, finite_float, new_parser, save_figure

PANELS = {"gpt2": stored.GPT2_CASE_BLOCKS, "resnet18": stored.RESNET18_CASE_BLOCKS}
TITLES = {"gpt2": "GPT2 (Transformer)", "resnet18": "ResNet18 (CNN)"}


def _short(name: str) -> str:
    return name.removesuffix(".weight").replace("layers.", "L").replace("stages.", "stage ")


def main(argv=None) -> int:
    ap = new_parser("block_spectra", __doc__)
    ap.add_argument("--data", help="folder with gpt2_blocks.npz and resnet18_blocks.npz (default: shipped)")
    ap.add_argument("--allow-quick", action="store_true",
                    help="read toy spectra written by `quadlab extract --quick` (refused otherwise)")
    ap.add_argument("--out", type=Path, default=Path("paper_figs/out"), help="folder for block_spectra.png and .pdf")
    ap.add_argument("--quiet", action="store_true", help="print nothing")
    ap.add_argument("--sigma", type=finite_float(0, 1, lo_open=True), default=0.01,
                    help="kernel width relative to each block's range, in (0, 1]")
    args = ap.parse_args(argv)
    if args.data is not None and not Path(args.data).is_dir():
        fail(ap, f"--data {args.data} is not a folder; pass the folder `quadlab extract --out DIR` wrote")
    try:
        check_output_dir(args.out, "--out")
    except ValueError as exc:
        fail(ap, str(exc))
    plt = plots.pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(13, 5.6), constrained_layout=True)
    for row, (model, blocks) in enumerate(PANELS.items()):
        try:
            st = stored.load(Path(args.data) / stored.data_path(model).name if args.data else model,
                             allow_quick=args.allow_quick)
        except ValueError as exc:
            fail(ap, str(exc))
        keep = [b for b in blocks if b in st.names]
        missing = sorted(set(blocks) - set(keep))
        if missing:
            fail(ap, f"{model}: blocks {missing} are not stored in {st.source}")
        dens = st.slq.density(sigma=args.sigma, normalize="kth_largest", k=10)
        rep = heterogeneity.analyze(st.slq, source="slq", normalize="max_abs")
        for col, name in enumerate(keep):
            ax = axes[row, col]
            b = dens.names.index(name)
            x = st.measure(name)[0] / dens.scales[b]
            pad = 0.05 * (x.max() - x.min())
            # Each panel gets its own grid, so σ is relative to that block's range, not to the widest block's.
            grid = np.linspace(x.min() - pad, x.max() + pad, 4000)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                y = st.slq.density(grid=grid, sigma=args.sigma, normalize="kth_largest", k=10)[name]
            for w in caught:  # the other blocks fall off this panel's grid by design; keep this block's warnings
                if repr(name) in str(w.message):
                    warnings.warn(w.message, stacklevel=1)
            y = np.where(y > y.max() * 1e-7, y, np.nan)  # log axis: hide the kernel tails below 1e-7
            ax.semilogy(grid, y, color=plots.OKABE_ITO[row * 2], lw=1.3)
            ax.set_title(f"{_short(name)}\nmax|λ| = {dens.max_abs[b]:.2g}", fontsize=9)
            ax.set_xlabel("λ / λ₁₀")
            if col == 0:
                ax.set_ylabel(f"{TITLES[model]}\ndensity (log)")
            ax.grid(alpha=0.3)
        axes[row, 0].annotate(f"JS⁰ = {rep.js0:.3g} (all {len(st.names)} stored blocks, each / max|λ|)",
                              xy=(0.02, 0.02), xycoords="axes fraction", fontsize=8)
    fig.suptitle("Block Hessian spectra at initialisation (SLQ; each block divided by its 10th largest eigenvalue)")
    paths = save_figure(fig, Path(args.out) / "block_spectra")
    plt.close(fig)
    if not args.quiet:
        print("wrote " + ", ".join(map(str, paths)))
    return 0
