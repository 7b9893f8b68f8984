"""MultiTaskMMoEClassifier: every column of ``Y`` a classification task."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from sklearn.base import ClassifierMixin

from . import _docs
from ._base import BaseMultiTaskMMoE
from ._checks import store_params
from ._compat import StrOptions, fit_context
from ._data.targets import TargetColumns
from ._tasks import Task, infer_task_type, make_task

__all__ = ["MultiTaskMMoEClassifier"]

CLASS_WEIGHT_PARAMETER = """\
class_weight : dict, list, "balanced" or None, default=None
    Weights of the classes within each task's loss. ``"balanced"``
    weights each task's classes by ``n_labelled / (n_classes *
    count(class))`` over that task's labelled rows; a list gives one
    entry per task (``None``, ``"balanced"`` or a dict from class label to
    weight); a dict is accepted for a single task. A task whose classes all
    get weight 0 is refused."""


class MultiTaskMMoEClassifier(ClassifierMixin, BaseMultiTaskMMoE):
    __doc__ = _docs.fill(
        """Multi-gate Mixture-of-Experts classifier for several tasks at once.

    One network predicts every column ("task") of a target matrix ``Y``.
    ``n_experts`` expert networks read the input; each task has its own
    softmax gate that mixes the experts' outputs, and its own tower that
    turns the mixture into class probabilities (Ma et al., 2018). Training
    minimises :math:`\\sum_k \\lambda_k L_k`, where :math:`L_k` is the
    cross-entropy of task :math:`k` averaged over the rows labelled for that
    task and :math:`\\lambda_k` its weight in ``task_weights``.

    The baselines of the MMoE paper are parameter settings of this
    estimator, so that :class:`~sklearn.model_selection.GridSearchCV` can
    compare them: ``n_experts=1`` is the Shared-Bottom model and
    ``shared_gate=True`` the One-gate Mixture-of-Experts (OMoE).
    ``n_task_experts`` and ``n_levels`` give CGC and PLE (Tang et al., 2020).
    For continuous targets see :class:`MultiTaskMMoERegressor`, for columns
    of different types :class:`MultiTaskMMoE`.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
{architecture}

{class_weight}

{conditional_on}

{missing_label}

{bias}

{training}

    Attributes
    ----------
    classes_ : list of ndarray, or ndarray
        The labels of each task. For a 1-D ``y`` (a single task), a single
        array.

{attributes}

    See Also
    --------
    MultiTaskMMoERegressor : The same model for continuous targets.
    MultiTaskMMoE : The same model for tasks of different types.
    sk_mmoe.nn.network.MMoENetwork : The network, usable without the estimator.
    sklearn.multioutput.MultiOutputClassifier : One independent model per task.

    Notes
    -----
    A 1-D ``y`` is a single task: ``predict`` then returns a 1-D array and
    ``predict_proba`` a single array, as for other scikit-learn classifiers.

    References
    ----------
    .. [1] J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling
       Task Relationships in Multi-task Learning with Multi-gate
       Mixture-of-Experts", KDD 2018.

    Examples
    --------
    >>> from sk_mmoe import MultiTaskMMoEClassifier
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> X, Y = make_task_correlation(500, correlation=0.8, n_features=10,
    ...                              random_state=0)
    >>> clf = MultiTaskMMoEClassifier(max_epochs=5, random_state=0).fit(X, Y)
    >>> clf.predict(X[:3]).shape
    (3, 2)
    >>> [p.shape for p in clf.predict_proba(X[:3])]
    [(3, 2), (3, 2)]
    >>> clf.gate_weights(X[:3]).shape
    (3, 2, 4)
    """,
        class_weight=CLASS_WEIGHT_PARAMETER,
        conditional_on=_docs.CONDITIONAL_ON_PARAMETER,
        missing_label=_docs.MISSING_LABEL_PARAMETER,
    )

    _parameter_constraints: dict = {
        **BaseMultiTaskMMoE._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, list, None],
        "conditional_on": [dict, None],
        "missing_label": [numbers.Real, str, None],
    }

    def __init__(
        self,
        n_experts: int = 4,
        *,
        expert_hidden_layer_sizes: Sequence[int] = (32,),
        tower_hidden_layer_sizes: Sequence[int] = (16,),
        n_task_experts: int = 0,
        n_levels: int = 1,
        shared_gate: bool = False,
        gate_dropout: float = 0.1,
        dropout: float = 0.1,
        gate: str = "softmax",
        gate_k: int = 2,
        gate_temperature: float = 2.0,
        gate_balance: float = 0.0,
        expert_activation: str = "relu",
        expert_normalization: str | None = None,
        ensemble_size: int = 1,
        task_weights: Sequence[float] | Mapping[str, float] | str | None = None,
        class_weight: str | dict | list | None = None,
        conditional_on: Mapping[str | int, str | int] | None = None,
        missing_label: int | float | str | None = -1,
        bias_features: Sequence[int | str] | Mapping[str, Any] | None = None,
        bias_dropout: float = 0.1,
        optimizer: str | type = "adam",
        lr: float | str = "auto",
        lr_schedule: str | None = "auto",
        weight_decay: float = 1e-4,
        batch_size: int | str = "auto",
        max_epochs: int | str = "auto",
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        tol: float = 1e-4,
        refit: bool = False,
        warm_start: bool = False,
        callbacks: list | None = None,
        categorical_features: str | Sequence[Any] | None = "from_dtype",
        max_categories: int = 10_000,
        sequence_features: dict | None = None,
        sequence_pooling: str = "auto",
        max_sequence_length: int = 50,
        numeric_scaling: str | None = "robust",
        numeric_missing: str = "learn",
        numeric_embedding: str | None = "auto",
        device: str | torch.device = "cpu",
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        store_params(self, locals())

    def _missing_marker(self) -> Any:
        return self.missing_label

    def _class_weight_param(self) -> Any:
        return self.class_weight

    def _conditional_on_param(self) -> Any:
        return self.conditional_on

    def _task_kinds(self, targets: TargetColumns) -> list[str]:
        kinds = []
        for k, name in enumerate(targets.names):
            kind = infer_task_type(targets.labelled_values(k), name)
            if not make_task(kind, name).declares_classes:
                raise ValueError(
                    f"Unknown label type: task {name!r} (column {k} of y) has "
                    f"continuous values; MultiTaskMMoEClassifier needs class "
                    f"labels in every column (for example ints, bools or "
                    f"strings). Use MultiTaskMMoERegressor or MultiTaskMMoE for "
                    f"continuous targets."
                )
            kinds.append(kind)
        return kinds

    def _set_task_attributes(self, tasks: list[Task], single_task: bool) -> None:
        classes = [task.classes for task in tasks]
        self.classes_ = classes[0] if single_task else classes

    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self,
        X: Any,
        y: Any,
        classes: Sequence[Any] | None = None,
        sample_weight: Any = None,
    ) -> MultiTaskMMoEClassifier:
        """Run one epoch of training on ``(X, Y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Targets, one column per task, as in :meth:`fit`.

        classes : list of array-like, default=None
            The labels of every task (one array per task; for a 1-D ``y``, one
            array). Required in the first call, since a chunk may lack some
            classes; ignored (but checked) afterwards.

        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, as in :meth:`fit`.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit_call(X, y, sample_weight, partial=True, classes=classes)

    def predict_proba(self, X: Any) -> list[np.ndarray] | np.ndarray:
        """Class probabilities of every task.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        proba : list of ndarray of shape (n_samples, n_classes_k), or ndarray
            One array per task, with columns in the order of ``classes_[k]``
            and rows summing to 1. A single array if fitted on a 1-D ``y``.
        """
        # Every task of a classifier has class probabilities.
        return cast(list[np.ndarray] | np.ndarray, self._predict_proba(X))

    def predict_conditional_proba(self, X: Any) -> list[np.ndarray] | np.ndarray:
        """Class probabilities, conditional ones for the conditional tasks.

        As :meth:`predict_proba`, except for the tasks of ``conditional_on``:
        their probabilities given that their parent is positive (their own
        tower's, :math:`P(\\text{child} \\mid \\text{parent}, x)`), where
        :meth:`predict_proba` gives the joint probability of the task and
        its parent (and the parent's own ancestors). Other tasks' are the
        same as :meth:`predict_proba`'s.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        proba : list of ndarray of shape (n_samples, n_classes_k), or ndarray
            One entry per task, as :meth:`predict_proba` returns them.
        """
        return cast(
            list[np.ndarray] | np.ndarray, self._predict_proba(X, conditional=True)
        )

    def predict(self, X: Any) -> np.ndarray:
        """Predicted label of every task.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_tasks) or (n_samples,)
            The most probable label of each task, in the tasks' own label
            types (an object array if they differ). 1-D if fitted on a 1-D
            ``y``.
        """
        return self._predict(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean over tasks of each task's accuracy on its labelled rows.

        For every task, the rows whose label in ``Y`` is ``missing_label``,
        NaN or None are dropped and the accuracy of :meth:`predict` is
        computed on the others (weighted by ``sample_weight`` if given). The
        result is the unweighted mean of these accuracies over the tasks.
        For a single task this is the ordinary accuracy.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True labels, one column per task, with missing entries as in
            :meth:`fit`.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean per-task accuracy.
        """
        return self._score(X, y, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
