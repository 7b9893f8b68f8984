"""Find the model inside pipelines and fitted searches.

Scorers and inspection tools accept a fitted
:class:`~sk_mmoe.MultiTaskMMoEClassifier` on its own or wrapped in
(nested) :class:`~sklearn.pipeline.Pipeline` objects and fitted searches
such as :class:`~sklearn.model_selection.GridSearchCV`; these functions
reach the model they wrap.
"""

from __future__ import annotations

from typing import Any


def _wrapped(estimator: Any) -> Any:
    """The estimator that ``estimator`` delegates to, or None if it is a model.

    A pipeline delegates to its last step, a fitted search (with
    ``refit=True``) to its ``best_estimator_``.
    """
    if hasattr(estimator, "steps"):
        return estimator.steps[-1][1]
    return getattr(estimator, "best_estimator_", None)


def final_estimator(estimator: Any) -> Any:
    """The model at the end of (nested) pipelines or fitted searches."""
    while (inner := _wrapped(estimator)) is not None:
        estimator = inner
    return estimator


def final_estimator_and_X(estimator: Any, X: Any) -> tuple[Any, Any]:
    """The final model and ``X`` transformed by every step before it."""
    while (inner := _wrapped(estimator)) is not None:
        if hasattr(estimator, "steps") and len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        estimator = inner
    return estimator, X
