"""Real data that exists offline, with the provenance of every byte.

Text: the standard library's ``pydoc_data.topics`` (the help texts of Python's documentation topics),
keys sorted, texts joined with a blank line, UTF-8 encoded; tokens are the bytes (vocabulary 256).  A batch is
B windows of T+1 consecutive bytes at offsets drawn from ``numpy.random.default_rng(seed)``.

Images: scikit-learn's bundled digits (1,797 8×8 grey images, values 0–16, from the UCI optical recognition of
handwritten digits set), upsampled bilinearly to 32×32, repeated over 3 channels and standardised by the mean
and standard deviation over all images; labels are the digits.  A batch is B images drawn without replacement
by one seeded permutation.

Both builders return the batches and a JSON-ready description (source, versions, sha256 of the raw bytes and
of the batches actually used).
"""

from __future__ import annotations

import hashlib
import platform

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["digit_batches", "text_batches", "text_bytes"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_counts(batches: int, batch_size: int):
    for v, name in ((batches, "batches"), (batch_size, "batch_size")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def text_bytes() -> bytes:
    """The text corpus of the GPT2 batches: Python's pydoc topics as UTF-8 bytes (offline, deterministic for a
    given Python version).

    Returns
    -------
    bytes
        The corpus.

    Examples
    --------
    >>> from quadlab.extract.data import text_bytes
    >>> len(text_bytes()) > 100_000
    True
    """
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics)).encode("utf-8")


def text_batches(batches: int, batch_size: int, context: int, seed: int = 0):
    """Byte-level token batches for GPT2: random windows of :func:`text_bytes`.

    Parameters
    ----------
    batches, batch_size : int
        Positive.
    context : int
        Tokens per input; each row holds context + 1 bytes (input and next-token target).
    seed : int, default 0
        Seed of the window positions.

    Returns
    -------
    tuple
        (list of LongTensor (batch_size, context + 1), description dict with the corpus's sha256).

    Raises
    ------
    ValueError
        If a count is not a positive integer or the corpus is shorter than one window.

    Examples
    --------
    >>> from quadlab.extract.data import text_batches
    >>> bs, info = text_batches(2, 3, 8)
    >>> len(bs), tuple(bs[0].shape)
    (2, (3, 9))
    """
    _check_counts(batches, batch_size)
    raw = text_bytes()
    tokens = np.frombuffer(raw, dtype=np.uint8)
    if tokens.size <= context + 1:
        raise ValueError(f"the corpus has {tokens.size} bytes, fewer than a context of {context} needs")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, tokens.size - context - 1, size=(batches, batch_size))
    windows = tokens[starts[..., None] + np.arange(context + 1)]
    out = [torch.from_numpy(w.astype(np.int64)) for w in windows]
    info = {
        "source": "Python standard library pydoc_data.topics (keys sorted, joined by blank lines, UTF-8 bytes)",
        "python": platform.python_version(),
        "corpus_bytes": int(tokens.size),
        "corpus_sha256": _sha256(raw),
        "batches": batches, "batch_size": batch_size, "context": context, "seed": seed,
        "offsets": "numpy.random.default_rng(seed).integers(0, bytes - context - 1, (batches, batch_size))",
        "batches_sha256": _sha256(windows.astype(np.uint8).tobytes()),
    }
    return out, info


def digit_batches(batches: int, batch_size: int, seed: int = 0, dtype=torch.float32):
    """Image batches for ResNet18: scikit-learn's bundled 8×8 digits, upscaled to 3×32×32 (offline, real images).

    Parameters
    ----------
    batches, batch_size : int
        Positive; at most the 1,797 images in all.
    seed : int, default 0
        Seed of the image order.
    dtype : torch.dtype, default torch.float32

    Returns
    -------
    tuple
        (list of (images (B, 3, 32, 32), labels (B,)) pairs, description dict).

    Raises
    ------
    ValueError
        If a count is not a positive integer or more images are asked for than the set has.

    Examples
    --------
    >>> from quadlab.extract.data import digit_batches
    >>> bs, info = digit_batches(1, 4)
    >>> tuple(bs[0][0].shape), tuple(bs[0][1].shape)
    ((4, 3, 32, 32), (4,))
    """
    _check_counts(batches, batch_size)
    import sklearn
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64)
    n = images.shape[0]
    if batches * batch_size > n:
        raise ValueError(f"{batches}×{batch_size} images requested, the digits set has {n}")
    x = torch.from_numpy(images)[:, None]
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x = (x - x.mean()) / x.std()
    order = np.random.default_rng(seed).permutation(n)[: batches * batch_size].reshape(batches, batch_size)
    labels = torch.from_numpy(np.asarray(digits.target, dtype=np.int64))
    out = [(x[idx].to(dtype).contiguous(), labels[idx]) for idx in order]
    info = {
        "source": "scikit-learn load_digits (UCI optical recognition of handwritten digits, 8x8, values 0-16), "
                  "bilinear upsampling to 32x32 (torch interpolate, align_corners=False), 3 repeated channels, "
                  "standardised by the global mean and std of all 1797 images",
        "sklearn": sklearn.__version__,
        "images_sha256": _sha256(np.ascontiguousarray(images).tobytes()),
        "batches": batches, "batch_size": batch_size, "seed": seed,
        "selection": "numpy.random.default_rng(seed).permutation(1797)[:batches*batch_size]",
        "indices_sha256": _sha256(order.astype(np.int64).tobytes()),
    }
    return out, info
