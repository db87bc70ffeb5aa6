"""The runner's memory layout: R points of dimension n stored group by group, block-major.

A point batch W (R, n) is held as a tuple with one array (k, R, d) per group of k equal-size blocks, so that
H·W for a whole group is a single batched matmul with no copies (``X @ H_g`` with H_g of shape (k, d, d)),
per-block scalars broadcast as (k, 1, 1) and per-run scalars as (1, R, 1).  A diagonal H is one pseudo-group
(1, R, n).  Optimizers work elementwise on these tuples ("trees"), so they never see the layout.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import kernels, ordered

__all__ = ["Layout", "tmap"]


def tmap(f: Callable, *trees):
    """Apply f leaf by leaf to tuples of arrays of the same structure."""
    return tuple(f(*leaves) for leaves in zip(*trees, strict=True))


class Layout:
    """Group-major storage of R points for one :class:`~quadlab.problem.BlockQuadratic`."""

    def __init__(self, problem):
        self.problem = problem
        self.backend = problem.backend
        self.xp = problem.xp
        self._numpy = problem.backend.name == "numpy"
        xp = self.xp
        if problem._diag is not None:
            n = problem.n
            self.shapes = ((1, n),)
            self._coords = (np.arange(n),)
            self._H = None
            self._diag = xp.reshape(problem._diag, (1, 1, n))
            self._block_of = (np.repeat(np.arange(problem.spectrum.n_blocks), problem.block_sizes)[None, :],)
        else:
            self.shapes = tuple((g.k, g.size) for g in problem.groups)
            self._coords = tuple(g.coords for g in problem.groups)
            self._H = tuple(g.H for g in problem.groups)
            self._diag = None
            if problem.is_block_diagonal:
                self._block_of = tuple(np.asarray(g.blocks)[:, None] * np.ones((1, g.size), dtype=int)
                                       for g in problem.groups)
            else:
                self._block_of = (np.repeat(np.arange(problem.spectrum.n_blocks), problem.block_sizes)[None, :],)
        # numpy with numba: the compiled fixed-order product, looked up once (ordered.matmul's choice, minus the
        # per-call checks that cost microseconds per step on small problems)
        self._compiled = self._numpy and self._H is not None and kernels.available() and all(
            isinstance(H, np.ndarray) and H.flags.c_contiguous and H.dtype in (np.float32, np.float64)
            for H in self._H)
        # numpy with numba: rowdot's compiled fixed-order sum, looked up once (as for the product)
        self._sums = self._numpy and kernels.available()
        perm = np.concatenate([c for c in self._coords])
        self._identity = bool(np.array_equal(perm, np.arange(problem.n)))
        self._perm = xp.asarray(perm)
        self._inv = xp.asarray(np.argsort(perm))

    # -- conversion --------------------------------------------------------------------------------
    def split(self, W):
        """(R, n) → tuple of (k, R, d)."""
        xp = self.xp
        R = W.shape[0]
        if not self._identity:
            W = xp.take(W, self._perm, axis=1)
        out, start = [], 0
        for k, d in self.shapes:
            Wg = W[:, start:start + k * d]
            out.append(self.backend.contiguous(xp.permute_dims(xp.reshape(Wg, (R, k, d)), (1, 0, 2))))
            start += k * d
        return tuple(out)

    def merge(self, tree):
        """tuple of (k, R, d) → (R, n)."""
        xp = self.xp
        R = tree[0].shape[1]
        parts = [xp.reshape(xp.permute_dims(X, (1, 0, 2)), (R, X.shape[0] * X.shape[2])) for X in tree]
        W = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
        return W if self._identity else xp.take(W, self._inv, axis=1)

    def per_coordinate(self, v):
        """A host vector (n,) of per-coordinate constants → tree of (k, 1, d)."""
        return self.split(self.backend.asarray(np.asarray(v, dtype=np.float64))[None, :])

    def per_block(self, v):
        """A host vector (L,) of per-block constants → tree of (k, 1, d) (constant across each block)."""
        v = np.asarray(v, dtype=np.float64)
        b = self.backend
        return tuple(b.asarray(v[B])[:, None, :] for B in self._block_of)

    def per_run(self, v):
        """A host vector (R,) → (1, R, 1), broadcastable against every leaf."""
        return self.backend.asarray(np.asarray(v, dtype=np.float64))[None, :, None]

    # -- algebra -----------------------------------------------------------------------------------
    def hvp(self, tree, out=None):
        """H·e for every point, in layout form: per group the rows of X_g times H_g (H_g symmetric, so
        x H_b = H_b x), summed in the fixed per-run order of :func:`quadlab._engine.ordered.matmul` so that a run's
        product does not depend on the other runs in the batch.  ``out``: numpy only, a tree of the result's
        shape to write into (saves an allocation per group and step)."""
        xp = self.xp
        if out is not None:
            if self._diag is not None:
                return (np.multiply(tree[0], self._diag, out=out[0]),)
            if self._compiled and all(X.flags.c_contiguous and X.dtype == O.dtype == H.dtype
                                                  for X, H, O in zip(tree, self._H, out, strict=True)):
                for X, H, O in zip(tree, self._H, out, strict=True):  # the runner's per-step call: no re-checks
                    kernels.matmul_rows(X, H, O, check=False)
                return out
            return tuple(ordered.matmul(xp, X, H, out=O) for X, H, O in zip(tree, self._H, out, strict=True))
        if self._diag is not None:
            return (tree[0] * self._diag,)
        return tuple(ordered.matmul(xp, X, H) for X, H in zip(tree, self._H, strict=True))

    def hvp_into(self, tree, out):
        """:meth:`hvp` into ``out`` for the runner's own per-step call, whose leaves it allocated itself
        (C-contiguous, the problem's dtype): with the compiled product, straight to the kernel, skipping the
        checks that cost microseconds per step on small problems; otherwise :meth:`hvp`."""
        if not self._compiled:
            return self.hvp(tree, out=out)
        for X, H, O in zip(tree, self._H, out, strict=True):
            k, R, d = X.shape
            kernels._compiled_matmul(k > 1 and k * R * d * d >= kernels.PARALLEL_MIN_WORK)(X, H, O)
        return out

    def rowdot(self, a, b):
        """Σ_i a_i b_i for each of the R points → (R,), in a fixed order that does not depend on R or on the
        machine: per group :func:`quadlab._engine.ordered.block_dot` (each block's d products added in turn,
        then the group's blocks in turn), then the groups added in turn, each sum starting from its first
        term:  Σ = (…(S_0 + S_1) + …) + S_{G−1},  S_g = (…(s_{g,0} + s_{g,1}) + …) + s_{g,k_g−1}.
        The compiled scan reduces its recorded iterates with this method, and the GPU kernel sums in this
        order (:mod:`quadlab._engine.gpu_scan`)."""
        xp = self.xp
        total = None
        for x, y in zip(a, b, strict=True):
            if self._sums and type(x) is type(y) is np.ndarray and x.dtype == y.dtype and x.shape == y.shape \
                    and x.dtype in (np.float32, np.float64):
                # the runner's per-step call: ordered.block_dot's compiled loop without its general checks
                s = np.empty(x.shape[1], dtype=x.dtype)
                kernels.block_dot(x, y, s)
            else:
                s = ordered.block_dot(xp, x, y)
            total = s if total is None else total + s
        return total

    def host_norms(self, V) -> np.ndarray:
        """‖v_r‖ for host rows V (R, n) in problem coordinates: √ of :meth:`rowdot`'s sum of squares, in its
        order, in float64 on the host.  For a float64 run this is exactly the ‖∇f(w_0)‖ the runner records
        at step 0 (the same terms in the same order), which the stopping thresholds are multiples of."""
        V = np.asarray(V, dtype=np.float64)
        R = V.shape[0]
        total = None
        for (k, d), c in zip(self.shapes, self._coords, strict=True):
            X = np.transpose(V[:, c].reshape(R, k, d), (1, 0, 2))
            s = ordered.block_dot(np, X, X)
            total = s if total is None else total + s
        return np.sqrt(total)

    def block_mean(self, tree):
        """Mean over each block's coordinates, broadcast back: tree of (k, R, 1).  The sum is
        :func:`quadlab._engine.ordered.sum_last` (the block's d terms added in turn), then divided by d:
        (…(x_0 + x_1) + …) + x_{d−1}) / d.

        Defined for block-diagonal layouts (each group's rows are whole blocks); for a globally rotated
        problem the nominal blocks are contiguous coordinate ranges and are averaged as such."""
        xp = self.xp
        if self.problem.is_block_diagonal and self._diag is None:
            return tuple(ordered.sum_last(xp, X)[..., None] / X.shape[2] for X in tree)
        # one pseudo-group holding all coordinates: average each nominal block's slice
        X = tree[0]
        parts = []
        for s in self.problem.block_slices:
            d = s.stop - s.start
            m = ordered.sum_last(xp, X[:, :, s])[..., None] / d
            parts.append(xp.broadcast_to(m, (X.shape[0], X.shape[1], d)))
        return (xp.concat(parts, axis=2),)

    def take_runs(self, tree, rows):
        """Keep only the runs ``rows`` (a backend int array) in every leaf whose run axis is not 1."""
        xp = self.xp
        return tuple(x if x.shape[1] == 1 else xp.take(x, rows, axis=1) for x in tree)
