"""quadlab: block-diagonal quadratics for the Hessian view of why Transformers need Adam."""

from . import backend, spectra
from .backend import get_backend
from .problem import BlockQuadratic
from .spectra import BlockSpectrum

__all__ = ["BlockQuadratic", "BlockSpectrum", "backend", "get_backend", "spectra"]
__version__ = "0.1.0"
