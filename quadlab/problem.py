"""The block-diagonal positive-definite quadratic of the theory.

    f(w) = ½ wᵀHw − hᵀw,   H = blockdiag(H_1, …, H_L),   h = H w*,   f* = f(w*) = −½ w*ᵀHw*.

With e = w − w*: ∇f(w) = He and f(w) − f* = ½ eᵀHe.  Each block is built as H_l = Q_l Λ_l Q_lᵀ with Q_l
Haar-distributed (the Q of G = QR for a Gaussian matrix G, normalised so that diag(R) > 0), so the spectrum
of H is known exactly by construction.

Blocks of at most ``quadlab._engine.build.PORTABLE_MAX_SIZE`` (512) coordinates, every block of the paper's
cases and a global rotation of up to 512, are built on the host in a fixed order of IEEE operations
(:func:`quadlab._engine.portable.haar`, :func:`quadlab._engine.portable.spectral`), so an instance is the same
bits on every CPU and on every backend.  Larger blocks take batched ``xp.linalg.qr`` and matmul, and from
``HOST_MIN_SIZE`` (1024) on, on the numpy backend, BLAS-3 calls (:func:`quadlab._engine.build.haar_host`,
:func:`quadlab._engine.build.spectral_matrix`): all compute the same Q (the unique QR factor with diag(R) > 0)
and the same H up to rounding, but those bits depend on the CPU's BLAS kernels.

H is stored once on the backend: blocks of equal size are stacked into one (k, d, d) array so a single
batched matmul applies a whole group to R points at once.  A diagonal H (rotation="none") is stored as its
diagonal only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._engine import build, ordered, portable
from ._engine.build import Group
from .backend import Backend, check_memory, get_backend
from .spectra import BlockSpectrum

__all__ = ["BlockQuadratic", "Group", "ROTATIONS", "starts"]

ROTATIONS = ("block", "none", "global")


class BlockQuadratic:
    """A block-diagonal positive-definite quadratic with an exactly known spectrum.

    f(w) = ½ wᵀHw − hᵀw with H = blockdiag(H_1, …, H_L), h = Hw*; with e = w − w*, ∇f(w) = He and
    f(w) − f* = ½ eᵀHe.  H_l = Q_l Λ_l Q_lᵀ with Q_l Haar-distributed, so the spectrum is known by construction.

    Parameters
    ----------
    spectrum : BlockSpectrum
        Eigenvalues per block.
    rotation : {"block", "none", "global"}, default "block"
        "block": H_l = Q_l Λ_l Q_lᵀ with an independent Haar Q_l per block.  "none": H = diag(Λ).
        "global": H = Q diag(Λ) Qᵀ with one Haar Q of size n, which keeps the spectrum and destroys the block
        structure (the nominal block partition is kept for reporting and for per-block optimizers).
    optimum : None, "random" or array_like (n,)
        w*: zero (default), standard Gaussian drawn from the seed, or given.
    seed : int, default 0
        Seeds every random draw (rotations, random optimum) through numpy's SeedSequence on the host.
    xp : str or module, default "numpy"
        The array backend (:func:`quadlab.backend.get_backend`).
    dtype : str, default "float64"
        Storage and iteration dtype.

    Attributes
    ----------
    n, block_sizes, block_names, block_slices : int, tuple, tuple, tuple of slice
    eigenvalues, kappa, block_kappas : numpy.ndarray, float, numpy.ndarray
        The exact spectrum (block after block), κ and κ_l.
    optimum, optimum_host, f_star : backend array, numpy.ndarray, float
        w* and f* = −½ w*ᵀHw*.
    groups : tuple of Group
        The stored blocks, stacked by size.

    Raises
    ------
    ValueError
        If ``spectrum`` is not a BlockSpectrum, ``rotation`` is unknown, ``seed`` is not a non-negative integer,
        ``optimum`` is invalid (shape, complex, non-finite), the backend or dtype is unknown, or H would not fit
        in the available memory.

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> p = quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(1000), seed=0)
    >>> p.n, p.kappa, p.block_sizes
    (9, 1000.0, (3, 3, 3))
    >>> bool(np.allclose(np.linalg.eigvalsh(p.dense()), np.sort(p.eigenvalues)))
    True
    """

    def __init__(
        self,
        spectrum: BlockSpectrum,
        rotation: str = "block",
        optimum=None,
        seed: int = 0,
        xp="numpy",
        dtype="float64",
    ):
        if not isinstance(spectrum, BlockSpectrum):
            raise ValueError(f"spectrum must be a quadlab BlockSpectrum, got {type(spectrum).__name__}")
        if rotation not in ROTATIONS:
            raise ValueError(f"unknown rotation {rotation!r}: use one of {', '.join(map(repr, ROTATIONS))}")
        self.backend: Backend = get_backend(xp, dtype)
        self.spectrum = spectrum
        self.rotation = rotation
        self.seed = seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self._seeds = np.random.SeedSequence(int(seed)).spawn(spectrum.n_blocks + 2)
        self._offsets = np.concatenate([[0], np.cumsum(spectrum.sizes)]).astype(np.int64)
        self._diag = None
        check_memory(self._build_bytes(), f"the Hessian blocks of n = {spectrum.n} ({rotation!r} rotation, "
                     f"largest block {max(spectrum.sizes)})",
                     "use smaller blocks" + (" or rotation='block'" if rotation == "global" else ""))
        self._build_groups()
        self._set_optimum(optimum)

    def _build_bytes(self) -> int:
        """Estimated peak bytes of building H: the stacked d_l×d_l blocks (one n×n matrix for a global
        rotation) plus the work arrays, about three of the largest block on the host path and four more
        stacks on the array-API path (rotations, scaled copy, product, symmetrised copy)."""
        sizes = [self.spectrum.n] if self.rotation == "global" else list(self.spectrum.sizes)
        if self.rotation == "none":
            return 8 * 4 * self.spectrum.n
        stack = 8 * sum(d * d for d in sizes)
        big = max(sizes)
        return stack + 8 * 3 * big * big if self._on_host(big) else 5 * stack

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_blocks(cls, blocks: Sequence, names: Sequence[str] | None = None, optimum=None, seed: int = 0,
                    xp="numpy", dtype="float64") -> BlockQuadratic:
        """A problem from user-given dense blocks H_l.

        Each block must be square, finite, symmetric to within 100·eps·max|H_l| (it is then symmetrised) and
        positive definite (every eigenvalue from ``eigvalsh`` > 0); the spectrum is those eigenvalues.

        Parameters
        ----------
        blocks : sequence of array_like
            The dense blocks H_l, (d_l, d_l).
        names : sequence of str, optional
            One per block (default block0, block1, …).
        optimum, seed, xp, dtype
            As for :class:`BlockQuadratic`.

        Returns
        -------
        BlockQuadratic
            With ``rotation == "given"``.

        Raises
        ------
        ValueError
            If there is no block, or a block is complex, not square, non-finite, not symmetric or not positive
            definite.

        Examples
        --------
        >>> from quadlab.problem import BlockQuadratic
        >>> p = BlockQuadratic.from_blocks([[[2.0, 1.0], [1.0, 2.0]], [[5.0]]])
        >>> p.eigenvalues.round(12).tolist(), p.rotation
        ([1.0, 3.0, 5.0], 'given')
        """
        blocks = list(blocks)
        if not blocks:
            raise ValueError("from_blocks needs at least one block")
        names = [f"block{l}" for l in range(len(blocks))] if names is None else list(names)
        mats, eigs = build.given_blocks(blocks, names)
        self = cls.__new__(cls)
        self.backend = get_backend(xp, dtype)
        self.spectrum = BlockSpectrum.from_blocks(eigs, names)
        self.rotation = "given"
        self.seed = seed
        self._seeds = np.random.SeedSequence(int(seed)).spawn(len(mats) + 2)
        self._offsets = np.concatenate([[0], np.cumsum(self.spectrum.sizes)]).astype(np.int64)
        self._diag = None
        self._build_groups(given=mats)
        self._set_optimum(optimum)
        return self

    def _on_host(self, d: int) -> bool:
        """Whether d×d rotations are built by the BLAS host path (:func:`quadlab._engine.build.haar_host`, :func:`quadlab._engine.build.spectral_matrix`)."""
        return self.backend.name == "numpy" and d >= build.HOST_MIN_SIZE

    @staticmethod
    def _portable(d: int) -> bool:
        """Whether d×d rotations are built in fixed order on the host (:mod:`quadlab._engine.portable`), any backend."""
        return d <= build.PORTABLE_MAX_SIZE

    def _gaussian(self, seed_index: int, d: int) -> np.ndarray:
        """The d×d standard Gaussian matrix whose Q factor is rotation ``seed_index`` (host, C-ordered)."""
        return np.random.default_rng(self._seeds[seed_index]).standard_normal((d, d))

    def _block_rotations(self, blocks: Sequence[int], d: int):
        """Stacked Haar matrices for the given block indices, each drawn from that block's own seed."""
        xp = self.backend.xp
        if self._portable(d):
            return xp.asarray(self._block_rotations_host(blocks, d))
        if self._on_host(d):
            return xp.asarray(np.stack([build.haar_host(self._gaussian(l, d)) for l in blocks]))
        G = np.stack([self._gaussian(l, d) for l in blocks])
        return build.haar(xp, xp.asarray(G, dtype=xp.float64))

    def _build_groups(self, given=None):
        self.groups, self._diag, self._perm = build.build_groups(self, given)

    def _block_rotations_host(self, blocks: Sequence[int], d: int) -> np.ndarray:
        """The fixed-order Haar factors (:func:`quadlab._engine.portable.haar`) of the given blocks, (k, d, d) on the host."""
        return portable.haar(np.stack([self._gaussian(l, d) for l in blocks]))

    def _global_rotation_host(self) -> np.ndarray:
        """The fixed-order Haar factor of a global rotation, (1, n, n) on the host."""
        return portable.haar(self._gaussian(-2, self.n)[None, ...])

    def _global_rotation(self):
        n = self.spectrum.n
        xp = self.backend.xp
        if self._portable(n):
            return xp.asarray(self._global_rotation_host()[0])
        if self._on_host(n):
            return xp.asarray(build.haar_host(self._gaussian(-2, n)))
        return build.haar(xp, xp.asarray(self._gaussian(-2, n), dtype=xp.float64))

    def _set_optimum(self, optimum):
        n = self.n
        if optimum is None:
            w = np.zeros(n)
        elif isinstance(optimum, str):
            if optimum != "random":
                raise ValueError(f"optimum must be None, 'random' or an array of shape ({n},), got {optimum!r}")
            w = np.random.default_rng(self._seeds[-1]).standard_normal(n)
        else:
            w = self.backend.to_numpy(optimum) if not isinstance(optimum, (list, tuple)) else optimum
            if np.iscomplexobj(w):
                raise ValueError("optimum w* is complex; pass a real array")
            w = np.asarray(w, dtype=np.float64)
            if w.shape != (n,):
                raise ValueError(f"optimum w* must have shape ({n},), got {w.shape}")
            if not np.isfinite(w).all():
                raise ValueError("optimum w* has non-finite entries")
        self.optimum_host = w
        self.optimum = self.backend.asarray(w)
        self.f_star = -0.5 * float(w @ self.backend.to_numpy(self.hvp(self.optimum[None, :]))[0])

    # -- shape and spectrum ----------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.spectrum.n

    @property
    def block_sizes(self) -> tuple[int, ...]:
        return self.spectrum.sizes

    @property
    def block_names(self) -> tuple[str, ...]:
        return self.spectrum.names

    @property
    def block_slices(self) -> tuple[slice, ...]:
        """Coordinates of nominal block l: ``slice(offset_l, offset_{l+1})``."""
        o = self._offsets
        return tuple(slice(int(o[l]), int(o[l + 1])) for l in range(len(o) - 1))

    @property
    def eigenvalues(self) -> np.ndarray:
        """The exact eigenvalues of H, block after block (host float64)."""
        return self.spectrum.eigenvalues

    @property
    def kappa(self) -> float:
        return self.spectrum.kappa

    @property
    def block_kappas(self) -> np.ndarray:
        """κ_l of each nominal block's eigenvalues Λ_l (for rotation="global" these are the spectra the
        blocks were drawn from, not the condition numbers of H's diagonal blocks, which are mixed)."""
        return self.spectrum.block_kappas

    @property
    def is_block_diagonal(self) -> bool:
        return self.rotation != "global"

    @property
    def xp(self):
        return self.backend.xp

    @property
    def dtype(self):
        return self.backend.dtype

    def __repr__(self) -> str:
        return (f"BlockQuadratic(n={self.n}, blocks={list(self.block_sizes)}, kappa={self.kappa:.6g}, "
                f"rotation={self.rotation!r}, backend={self.backend.name}, dtype={self.backend.dtype_name})")

    # -- linear algebra --------------------------------------------------------------------------
    def _as_batch(self, W):
        if np.iscomplexobj(W) if isinstance(W, (np.ndarray, list, tuple)) else "complex" in str(getattr(W, "dtype", "")):
            raise ValueError("points must be real: got a complex array (its imaginary part would be dropped)")
        W = self.backend.asarray(W)
        if W.ndim == 1:
            if W.shape[0] != self.n:
                raise ValueError(f"a point must have shape ({self.n},), got {tuple(W.shape)}")
            return W[None, :], True
        if W.ndim != 2 or W.shape[1] != self.n:
            raise ValueError(f"points must have shape ({self.n},) or (R, {self.n}), got {tuple(W.shape)}")
        return W, False

    def hvp(self, E):
        """H·e for each row e of E, in a fixed per-run summation order.

        Per group of equal-size blocks the rows are multiplied by H_b with :func:`quadlab._engine.ordered.matmul`, so a
        row's product is the same bits whatever the other rows are.

        Parameters
        ----------
        E : backend array
            (R, n), in the problem's backend and dtype.

        Returns
        -------
        backend array
            (R, n).

        Examples
        --------
        >>> import numpy as np, quadlab
        >>> p = quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(1000), rotation="none")
        >>> p.hvp(np.ones((1, 9)))[0].tolist()[:4]
        [1.0, 2.0, 3.0, 99.0]
        """
        xp = self.xp
        if self._diag is not None:
            return E * self._diag
        R = E.shape[0]
        parts = []
        for g in self.groups:
            Eg = E[:, g.start:g.stop] if g.start is not None else xp.take(E, xp.asarray(g.coords), axis=1)
            X = self.backend.contiguous(xp.permute_dims(xp.reshape(Eg, (R, g.k, g.size)), (1, 0, 2)))
            Y = ordered.matmul(xp, X, g.H)
            parts.append(xp.reshape(xp.permute_dims(Y, (1, 0, 2)), (R, g.k * g.size)))
        out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
        return out if self._perm is None else xp.take(out, self._perm, axis=1)

    def error(self, W):
        """e = w − w* for each point.

        Parameters
        ----------
        W : array_like
            Points as for :meth:`grad`.

        Returns
        -------
        backend array
            e = w − w*, shaped like ``W``.

        Raises
        ------
        ValueError
            For complex points or a shape other than (n,) and (R, n).
        """
        E, single = self._as_batch(W)
        E = E - self.optimum
        return E[0] if single else E

    def grad(self, W):
        """∇f(w) = H(w − w*) for each point.

        Parameters
        ----------
        W : array_like
            A point (n,) or a batch of points (R, n), real; host or backend array.

        Returns
        -------
        backend array
            The shape of ``W``.

        Raises
        ------
        ValueError
            If ``W`` is complex or has the wrong shape.

        Examples
        --------
        >>> import numpy as np, quadlab
        >>> p = quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(1000), optimum="random")
        >>> bool(np.abs(p.grad(p.optimum)).max() == 0)
        True
        """
        E, single = self._as_batch(W)
        G = self.hvp(E - self.optimum)
        return G[0] if single else G

    def gap(self, W):
        """f(w) − f* = ½ (w − w*)ᵀ H (w − w*), from the error (no cancellation against f*).

        Parameters
        ----------
        W : array_like
            As for :meth:`grad`.

        Returns
        -------
        float-valued backend array
            Shape () for one point, (R,) for a batch.

        Raises
        ------
        ValueError
            For the points :meth:`grad` rejects.

        Examples
        --------
        >>> import numpy as np, quadlab
        >>> p = quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(1000), rotation="none")
        >>> float(p.gap(np.eye(9)[0]))  # ½·λ₁·1²
        0.5
        """
        E, single = self._as_batch(W)
        E = E - self.optimum
        v = 0.5 * self.xp.sum(E * self.hvp(E), axis=1)
        return v[0] if single else v

    def f(self, W):
        """f(w) = ½ wᵀHw − hᵀw = f* + ½ (w − w*)ᵀ H (w − w*).

        Parameters
        ----------
        W : array_like
            One point or a batch (:meth:`grad`).

        Returns
        -------
        float-valued backend array
            f at each point: a scalar array, or one value per row.

        Raises
        ------
        ValueError
            Like :meth:`gap`.
        """
        return self.gap(W) + self.f_star

    def dense(self):
        """H as a dense (n, n) array, assembled on the host (for inspection and tests).

        Returns
        -------
        backend array
            (n, n).
        """
        b = self.backend
        if self._diag is not None:
            return b.asarray(np.diag(b.to_numpy(self._diag)))
        H = np.zeros((self.n, self.n), dtype=np.float64)
        for g in self.groups:
            Hg = b.to_numpy(g.H)
            for j, l in enumerate(g.blocks):
                s = self.block_slices[l] if g.k > 1 or self.is_block_diagonal else slice(0, self.n)
                H[s, s] = Hg[j]
        return b.asarray(H)

    def block(self, l: int):
        """H_l, the dense diagonal block of nominal block l.

        Parameters
        ----------
        l : int
            0 ≤ l < L.

        Returns
        -------
        backend array
            (d_l, d_l).

        Raises
        ------
        ValueError
            If ``l`` is out of range.
        """
        if not 0 <= l < self.spectrum.n_blocks:
            raise ValueError(f"block index {l} out of range for {self.spectrum.n_blocks} blocks")
        if self._diag is not None:
            s = self.block_slices[l]
            return self.backend.asarray(np.diag(self.backend.to_numpy(self._diag)[s]))
        if not self.is_block_diagonal:
            s = self.block_slices[l]
            return self.groups[0].H[0, s, s]
        for g in self.groups:
            if l in g.blocks:
                return g.H[g.blocks.index(l), ...]
        raise AssertionError("unreachable")

    def diagonal(self):
        """diag(H).

        Returns
        -------
        backend array
            (n,).
        """
        if self._diag is not None:
            return self._diag
        xp = self.xp
        parts = [xp.reshape(xp.linalg.diagonal(g.H), (-1,)) for g in self.groups]
        out = parts[0] if len(parts) == 1 else xp.concat(parts)
        return out if self._perm is None else xp.take(out, self._perm)

    def eigenvectors(self):
        """The exact eigenvectors, group by group, regenerated from the seed.

        The Haar factors are not kept (H is the only matrix stored); for user-given blocks they are computed with
        ``eigh``.

        Returns
        -------
        tuple of backend arrays
            One float64 (k, d, d) array per group whose columns pair with ``group.lam``; empty for
            rotation="none", where the eigenvectors are the coordinate axes.
        """
        xp = self.xp
        out = []
        for g in self.groups:
            if self.rotation == "given":
                H64 = xp.astype(g.H, xp.float64)
                _, V = xp.linalg.eigh(H64)
            elif self.rotation == "global":
                V = self._global_rotation()[None, ...]
            else:
                V = self._block_rotations(g.blocks, g.size)
            out.append(V)
        return tuple(out)


def starts(problem: BlockQuadratic, seeds) -> np.ndarray:
    """The starting points :func:`quadlab.run` draws for ``seeds``: w₀ = w* + ξ_s, ξ_s ~ N(0, I_n).

    ξ_s is ``numpy.random.default_rng(s).standard_normal(n)``, one generator per seed, so a seed's start does
    not depend on the other seeds asked for (and a study that needs a run's start, e.g. for the theory's
    constants, gets the same bits as the run).

    Parameters
    ----------
    problem : BlockQuadratic
        Supplies n and the optimum w* (``problem.optimum_host``).
    seeds : int or sequence of int
        Non-negative integer seeds, one start each.

    Returns
    -------
    numpy.ndarray
        Host float64 array of shape (len(seeds), n); row i is the start of seed ``seeds[i]``.

    Raises
    ------
    ValueError
        If ``problem`` is not a BlockQuadratic, or a seed is not a non-negative integer (bools and fractional
        numbers included), or ``seeds`` is empty.

    Examples
    --------
    >>> import quadlab
    >>> from quadlab.problem import starts
    >>> p = quadlab.BlockQuadratic(quadlab.spectra.simple_heterogeneous(1000.0), seed=0)
    >>> W = starts(p, [0, 1])
    >>> W.shape
    (2, 9)
    >>> bool((quadlab.run(p, quadlab.optim.gd(lr=1e-3), seeds=[1], steps=1).w0[0] == W[1]).all())
    True
    """
    if not isinstance(problem, BlockQuadratic):
        raise ValueError(f"problem must be a quadlab BlockQuadratic, got {type(problem).__name__}")
    seeds = [seeds] if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool) else list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one non-negative integer seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seeds must be non-negative integers (numpy's generators take no negative or "
                             f"fractional seed), got {s!r}")
    return problem.optimum_host + start_offsets(problem.n, seeds)


def start_offsets(n: int, seeds) -> np.ndarray:
    """ξ_s = ``numpy.random.default_rng(s).standard_normal(n)`` for each seed, (len(seeds), n): the one
    definition of the random starts w₀ = w* + ξ_s (the runner iterates the error e₀ = ξ_s itself)."""
    return np.stack([np.random.default_rng(int(s)).standard_normal(n) for s in seeds])
