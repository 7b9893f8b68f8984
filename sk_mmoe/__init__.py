"""Multi-gate Mixture-of-Experts multi-task classifiers with a scikit-learn API."""

from ._classifier import MultiTaskMMoEClassifier

__version__ = "0.1.0"

__all__ = ["MultiTaskMMoEClassifier", "__version__"]
