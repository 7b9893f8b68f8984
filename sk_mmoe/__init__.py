"""Multi-gate Mixture-of-Experts multi-task models with a scikit-learn API."""

from ._classifier import MultiTaskMMoEClassifier
from ._mixed import MultiTaskMMoE
from ._persistence import load_model, save_model
from ._regressor import MultiTaskMMoERegressor
from .export import export_onnx, onnx_feed

__version__ = "0.2.0.dev0"

__all__ = [
    "MultiTaskMMoE",
    "MultiTaskMMoEClassifier",
    "MultiTaskMMoERegressor",
    "__version__",
    "export_onnx",
    "load_model",
    "onnx_feed",
    "save_model",
]
