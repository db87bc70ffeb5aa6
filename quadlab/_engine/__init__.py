"""quadlab's engine room: modules the public API is built on, not part of it.

Their names and signatures may change between releases without notice; the public API is what
:mod:`quadlab` names in ``__all__`` and the public modules it lists.

- :mod:`.layout`: the runner's grouped block layout and its block-grouped H·x (``hvp_into``, ``rowdot``).
- :mod:`.ordered`: fixed-order products and sums that make a run's result independent of its batch.
- :mod:`.kernels`: numba kernels (fixed-order row products, fused optimizer steps); optional.
- :mod:`.context`: the runner's implementation of the optimizer contract (:class:`quadlab.contract.Context`).
- :mod:`.adam_rule`: the Adam family's update as data, and its functional, in-place, numba and GPU forms.
- :mod:`.closed_form`: steps-to-tolerance of the linear methods without iterating.
- :mod:`.recurrence`: the scalar recurrence φ_k behind the closed form, in double-double arithmetic.
- :mod:`.eigenrefine`: eigenvalues of stored H refined by exact Rayleigh quotients.
- :mod:`.build`: BLAS/LAPACK helpers that build rotated blocks (Haar rotations, CholeskyQR2, Q Λ Qᵀ).
- :mod:`.fileio`: atomic file replacement.
"""
