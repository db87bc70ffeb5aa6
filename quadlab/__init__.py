"""quadlab: block-diagonal quadratics for the Hessian view of why Transformers need Adam."""

from . import (
    backend,
    checks,
    contract,
    dist,
    explain,
    heterogeneity,
    lanczos,
    noise,
    nqm,
    optim,
    results,
    spectra,
    sweep,
    theory,
    tune,
)
from .backend import get_backend
from .checks import report
from .problem import BlockQuadratic, starts
from .runner import Result, run
from .spectra import BlockSpectrum

__all__ = ["BlockQuadratic", "BlockSpectrum", "Result", "backend", "get_backend", "optim", "run", "spectra", "theory", "checks", "tune", "report", "lanczos", "heterogeneity", "contract", "explain", "noise", "nqm", "starts", "dist", "sweep", "results"]
__version__ = "0.2.0"
