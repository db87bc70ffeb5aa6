"""quadlab's RMSprop and Adam, called with their defaults, are PyTorch's RMSprop and Adam with theirs.

The runner test (test_runner.py) checks each optimizer against a loop that reads its options from the optimizer
object, so a changed default (say bias correction switched on for RMSprop) would go unseen there.  Here the
defaults are pinned against an outside reference: torch.optim with its own defaults (RMSprop: α = 0.99,
ε = 1e-8, momentum 0, no bias correction; Adam: β = (0.9, 0.999), ε = 1e-8, bias correction), stepped on the
same quadratic from the same start with the same learning rate.  Only lr is passed on either side."""

import numpy as np
import pytest

import quadlab
from quadlab import BlockQuadratic, optim, spectra

torch = pytest.importorskip("torch")

STEPS = 50
LR = 1e-2


def torch_gaps(prob, w0, make):
    """f(w_k) − f* for k = 0..STEPS under a torch optimizer, the gradient H(w − w*) formed in float64."""
    H = torch.tensor(np.asarray(prob.dense()), dtype=torch.float64)
    ws = torch.tensor(prob.optimum_host, dtype=torch.float64)
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    opt = make([w])
    gaps = []
    for k in range(STEPS + 1):
        e = w.detach() - ws
        gaps.append(0.5 * float(e @ (H @ e)))
        if k == STEPS:
            break
        opt.zero_grad()
        w.grad = H @ e
        opt.step()
    return np.array(gaps)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: optim.rmsprop(lr=LR), lambda ps: torch.optim.RMSprop(ps, lr=LR)),
    (lambda: optim.adam(lr=LR), lambda ps: torch.optim.Adam(ps, lr=LR)),
], ids=["rmsprop", "adam"])
def test_defaults_match_torch(ours, theirs):
    # small, block-rotated, random optimum; eigenvalues over two decades so the per-coordinate scaling matters
    spec = quadlab.BlockSpectrum.from_blocks([spectra.log_uniform(4, 1.0, 10.0), spectra.uniform(3, 50.0, 100.0)])
    prob = BlockQuadratic(spec, rotation="block", optimum="random", seed=0)
    res = quadlab.run(prob, ours(), seeds=[0], steps=STEPS, method="iterate", record="all")
    ref = torch_gaps(prob, np.asarray(res.w0[0], dtype=np.float64), theirs)
    # Both evaluate the same arithmetic up to the order of a few float64 operations per step; over 50 steps
    # the difference stays many orders below what a changed default (bias correction, β, ε) produces.
    np.testing.assert_allclose(res.gap[0], ref, rtol=1e-10, atol=0)
    assert ref[-1] < 0.5 * ref[0]  # the runs moved: the comparison is not between two standing starts
