"""Multi-gate Mixture-of-Experts multi-task classifiers with a scikit-learn API."""

from ._classifier import MultiTaskMMoEClassifier
from ._persistence import load_model, save_model

__version__ = "0.1.0"

__all__ = ["MultiTaskMMoEClassifier", "__version__", "load_model", "save_model"]
