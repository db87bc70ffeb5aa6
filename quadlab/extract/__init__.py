"""Blockwise Hessian spectra of torch models (needs the ``extract`` extra: ``pip install -e ".[extract]"``).

``BlockHessian`` wraps double-backprop Hessian-vector products of named parameter blocks as matmat operators
for :func:`quadlab.lanczos.slq`; ``models`` holds the plain-torch GPT2 and ResNet18, ``data`` the offline real
batches, ``build.extract`` the pipeline that produced the spectra shipped in ``quadlab/data``, and
:func:`block_spectra` (``spectra``) the block spectra of any torch model, which that pipeline goes through.
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "quadlab.extract needs PyTorch: pip install -e \".[extract]\" (CPU build, torch==2.13.0)"
    ) from exc

from .build import CONFIGS, ExtractConfig, extract
from .hvp import BlockHessian
from .spectra import Split, block_spectra, heads, resolve_blocks, rows, tokens

__all__ = ["CONFIGS", "BlockHessian", "ExtractConfig", "Split", "block_spectra", "extract", "heads", "resolve_blocks",
           "rows", "tokens"]
