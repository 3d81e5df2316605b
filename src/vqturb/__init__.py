"""vqturb: discrete tokens for 2D turbulence (VQ-VAE) and next-scale prediction in token space."""

__version__ = "0.1.0"

from vqturb.errors import InputError, VqturbError

__all__ = ["InputError", "VqturbError", "__version__", "load_model"]


def load_model(path):
    """Load a self-describing checkpoint (any registered kind); returns ``(model, header)``.

    Imported lazily so that ``import vqturb`` stays cheap for the readers and the CLI.
    """
    from vqturb.checkpoint import load_model as _load_model

    return _load_model(path)
