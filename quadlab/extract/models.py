"""The two networks whose block spectra quadlab ships, written in plain torch.

GPT2
----
A decoder-only Transformer with GPT2's block structure: token and position embeddings, pre-LayerNorm layers,
each with separate query, key, value and output projections of attention and the two MLP matrices (fc: width →
4·width, proj: 4·width → width, GELU between), a final LayerNorm and an lm_head tied to the token embedding.
Attention is computed naively, softmax(QKᵀ/√d_head + causal mask)·V, because fused attention kernels have no
double backward.  Initialisation follows GPT2: every Linear and Embedding weight N(0, 0.02²), biases 0, and the
two residual output projections (attention out, MLP proj) N(0, (0.02/√(2·layers))²).

ResNet18
--------
The CIFAR-style ResNet18: a 3×3 stride-1 stem (no max-pool), four stages of two BasicBlocks with 64, 128, 256,
512 channels (strides 1, 2, 2, 2; 1×1 convolution shortcuts where the shape changes), BatchNorm after every
convolution, global average pooling and a linear classifier.  Convolutions are initialised He fan-out normal,
N(0, 2/(k²·out_channels)), as in the paper's public code; BatchNorm weight 1, bias 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["GPT2", "GPT2Config", "ResNet18", "ResNet18Config", "gpt2_block_names", "resnet18_block_names"]


class _Config:
    """What every model configuration can do."""

    def as_dict(self) -> dict:
        """The fields as a JSON-ready dict.

        Returns
        -------
        dict
            Field name → value.
        """
        return asdict(self)


@dataclass(frozen=True)
class GPT2Config(_Config):
    """The size of a GPT2-style model.

    Parameters
    ----------
    vocab : int, default 256
        Byte-level tokens.
    context, layers, heads, width : int
        Sequence length, transformer layers, attention heads (dividing ``width``), model width.
    init_std : float, default 0.02
        Standard deviation of the initial weights (GPT2's).

    Examples
    --------
    >>> from quadlab.extract.models import GPT2, GPT2Config
    >>> cfg = GPT2Config(vocab=16, context=4, layers=1, heads=1, width=8)
    >>> cfg.as_dict()["width"]
    8
    """
    vocab: int = 256  # byte-level tokens
    context: int = 64
    layers: int = 4
    heads: int = 4
    width: int = 128
    init_std: float = 0.02


class _Attention(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        w = cfg.width
        self.heads = cfg.heads
        self.query = nn.Linear(w, w)
        self.key = nn.Linear(w, w)
        self.value = nn.Linear(w, w)
        self.out = nn.Linear(w, w)
        mask = torch.tril(torch.ones(cfg.context, cfg.context, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        B, T, W = x.shape
        h = self.heads

        def split(t):
            return t.view(B, T, h, W // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(W // h)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        y = torch.softmax(att, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(B, T, W))


class _MLP(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.fc = nn.Linear(cfg.width, 4 * cfg.width)
        self.proj = nn.Linear(4 * cfg.width, cfg.width)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class _Layer(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = _Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.mlp = _MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT2(nn.Module):
    """A GPT2-style language model in plain torch (pre-LayerNorm blocks, tied output head).

    Parameters
    ----------
    cfg : GPT2Config, optional
        The size (default GPT2Config()).

    Raises
    ------
    ValueError
        If ``width`` is not divisible by ``heads``.

    Examples
    --------
    >>> import torch
    >>> from quadlab.extract.models import GPT2, GPT2Config
    >>> cfg = GPT2Config(vocab=16, context=4, layers=1, heads=1, width=8)
    >>> model = GPT2(cfg)
    >>> tuple(model(torch.zeros(2, 4, dtype=torch.long)).shape)
    (2, 4, 16)
    """

    def __init__(self, cfg: GPT2Config = GPT2Config()):
        super().__init__()
        if cfg.width % cfg.heads:
            raise ValueError(f"width {cfg.width} must be divisible by heads {cfg.heads}")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab, cfg.width)
        self.wpe = nn.Embedding(cfg.context, cfg.width)
        self.layers = nn.ModuleList([_Layer(cfg) for _ in range(cfg.layers)])
        self.ln_f = nn.LayerNorm(cfg.width)
        self._init()

    def _init(self):
        std = self.cfg.init_std
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, 0.0, std)
                if getattr(mod, "bias", None) is not None:
                    nn.init.zeros_(mod.bias)
        for layer in self.layers:
            # GPT2 scales the residual projections so that the residual stream's variance does not grow with depth.
            for w in (layer.attn.out.weight, layer.mlp.proj.weight):
                nn.init.normal_(w, 0.0, std / math.sqrt(2 * self.cfg.layers))

    def forward(self, tokens):
        """Logits of the next token at every position.

        Parameters
        ----------
        tokens : torch.LongTensor
            (B, T), T ≤ context.

        Returns
        -------
        torch.Tensor
            (B, T, vocab).
        """
        T = tokens.shape[1]
        x = self.wte(tokens) + self.wpe(torch.arange(T, device=tokens.device))
        for layer in self.layers:
            x = layer(x)
        return self.ln_f(x) @ self.wte.weight.T  # tied lm_head

    def loss(self, batch):
        """Mean next-token cross-entropy of a token batch.

        Parameters
        ----------
        batch : torch.LongTensor
            (B, T + 1): inputs are the first T tokens, targets the last T.

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        logits = self(batch[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def gpt2_block_names(cfg: GPT2Config, layers=None) -> list[str]:
    """The paper's GPT2 blocks: the token embedding, then per chosen layer the query, key, value and output
    projections and the MLP fc and proj weights.

    Parameters
    ----------
    cfg : GPT2Config
    layers : sequence of int, optional
        Default: the first and the last layer.

    Returns
    -------
    list of str
        Parameter names.

    Raises
    ------
    ValueError
        If a layer does not exist.

    Examples
    --------
    >>> from quadlab.extract.models import GPT2Config, gpt2_block_names
    >>> gpt2_block_names(GPT2Config(layers=2), layers=[1])[:2]
    ['wte.weight', 'layers.1.attn.query.weight']
    """
    layers = sorted({0, cfg.layers - 1}) if layers is None else list(layers)
    for i in layers:
        if not 0 <= i < cfg.layers:
            raise ValueError(f"layer {i} does not exist in a {cfg.layers}-layer model")
    names = ["wte.weight"]
    for i in layers:
        names += [f"layers.{i}.attn.{p}.weight" for p in ("query", "key", "value", "out")]
        names += [f"layers.{i}.mlp.{p}.weight" for p in ("fc", "proj")]
    return names


@dataclass(frozen=True)
class ResNet18Config(_Config):
    """The size of a CIFAR-style ResNet18.

    Parameters
    ----------
    classes : int, default 10
    widths : tuple of int, default (64, 128, 256, 512)
        Channels of the four stages.
    init : {"he_fan_out", "torch_default"}, default "he_fan_out"

    Examples
    --------
    >>> from quadlab.extract.models import ResNet18Config
    >>> ResNet18Config(widths=(4, 8, 8, 8)).as_dict()["classes"]
    10
    """
    classes: int = 10
    widths: tuple = (64, 128, 256, 512)
    init: str = "he_fan_out"  # or "torch_default"


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18(nn.Module):
    """A CIFAR-style ResNet18 in plain torch (3×3 stem, four stages of two basic blocks, BatchNorm).

    Parameters
    ----------
    cfg : ResNet18Config, optional

    Raises
    ------
    ValueError
        For an ``init`` other than "he_fan_out" and "torch_default".

    Examples
    --------
    >>> import torch
    >>> from quadlab.extract.models import ResNet18, ResNet18Config
    >>> model = ResNet18(ResNet18Config(widths=(4, 8, 8, 8)))
    >>> tuple(model(torch.zeros(2, 3, 32, 32)).shape)
    (2, 10)
    """

    def __init__(self, cfg: ResNet18Config = ResNet18Config()):
        super().__init__()
        if cfg.init not in ("he_fan_out", "torch_default"):
            raise ValueError(f"init must be 'he_fan_out' or 'torch_default', got {cfg.init!r}")
        self.cfg = cfg
        w = cfg.widths
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        stages, cin = [], w[0]
        for i, cout in enumerate(w):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(cin, cfg.classes)
        if cfg.init == "he_fan_out":
            for mod in self.modules():
                if isinstance(mod, nn.Conv2d):
                    nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(mod, nn.BatchNorm2d):
                    nn.init.ones_(mod.weight)
                    nn.init.zeros_(mod.bias)

    def forward(self, x):
        """Class logits.

        Parameters
        ----------
        x : torch.Tensor
            Images (B, 3, 32, 32).

        Returns
        -------
        torch.Tensor
            (B, classes).
        """
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def loss(self, batch):
        """Mean cross-entropy of an (images, labels) batch.

        Parameters
        ----------
        batch : tuple of torch.Tensor
            Images (B, 3, 32, 32) and labels (B,).

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        images, labels = batch
        return F.cross_entropy(self(images), labels)


def resnet18_block_names(model: ResNet18, stages=None) -> list[str]:
    """Convolution weights of ResNet18 in forward order: the stem, then every 3×3 convolution of the chosen
    stages (1×1 shortcut convolutions are left out).

    Parameters
    ----------
    model : ResNet18
    stages : sequence of int, optional
        Default: all four.

    Returns
    -------
    list of str
        Parameter names, stem first.

    Raises
    ------
    ValueError
        If a stage does not exist.

    Examples
    --------
    >>> from quadlab.extract.models import ResNet18, ResNet18Config, resnet18_block_names
    >>> resnet18_block_names(ResNet18(ResNet18Config(widths=(4, 8, 8, 8))), stages=[0])
    ['conv1.weight', 'stages.0.0.conv1.weight', 'stages.0.0.conv2.weight', 'stages.0.1.conv1.weight', 'stages.0.1.conv2.weight']
    """
    stages = range(len(model.stages)) if stages is None else stages
    names = ["conv1.weight"]
    for s in stages:
        if not 0 <= s < len(model.stages):
            raise ValueError(f"stage {s} does not exist (ResNet18 has {len(model.stages)})")
        for b in range(2):
            names += [f"stages.{s}.{b}.conv1.weight", f"stages.{s}.{b}.conv2.weight"]
    return names
