"""Multi-gate Mixture-of-Experts multi-task models with a scikit-learn API."""

import importlib as _importlib

from ._classifier import MultiTaskMMoEClassifier
from ._mixed import MultiTaskMMoE
from ._moved import alias_moved_modules as _alias_moved_modules
from ._persistence import load_model, save_model
from ._regressor import MultiTaskMMoERegressor
from .export import export_onnx, onnx_feed

__version__ = "0.2.0.dev0"

_alias_moved_modules()

# Public submodules, imported on first access (``sk_mmoe.metrics``).
_SUBMODULES = [
    "datasets",
    "export",
    "inspection",
    "losses",
    "metrics",
    "model_selection",
    "network",
    "nn",
    "parallel",
    "weighting",
]

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


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES))


def __getattr__(name: str):
    if name in _SUBMODULES:
        return _importlib.import_module(f"sk_mmoe.{name}")
    raise AttributeError(f"module 'sk_mmoe' has no attribute {name!r}")
