"""MultiTaskMMoE: columns of ``Y`` of different types in one model."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from . import _docs
from ._base import BaseMultiTaskMMoE
from ._checks import store_params
from ._classifier import CLASS_WEIGHT_PARAMETER
from ._compat import StrOptions, fit_context
from ._data.targets import TargetColumns
from ._regressor import LOSS_PARAMETER
from ._tasks import TASK_TYPES, Task, accepts_loss, infer_task_type
from .nn.losses import REGRESSION_LOSSES

__all__ = ["MultiTaskMMoE"]

#: A numeric column of whole numbers with more distinct values than this is
#: inferred as a regression task (a count, an amount), not as classes.
MAX_INFERRED_CLASSES = 10


class MultiTaskMMoE(BaseMultiTaskMMoE):
    __doc__ = _docs.fill(
        """Multi-gate Mixture-of-Experts model for tasks of different types.

    One network learns classification and regression tasks together, as
    YouTube's ranker learns clicks (binary), watch time (regression) and
    ratings (Zhao et al., 2019): shared experts, a softmax gate and a tower
    per task, each task trained with its own loss (cross-entropy or squared
    error / Huber on the standardised target) on the rows that have its
    target. Mixing a squared error in seconds with a cross-entropy is what
    ``task_weights="uncertainty"`` is for.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
{architecture}

    task_types : "auto", list of str or dict, default="auto"
        The type of each task: ``"binary"``, ``"multiclass"`` or
        ``"regression"``. ``"auto"`` infers it from each column's labelled
        entries as :func:`~sklearn.utils.multiclass.type_of_target` does:
        floats that are not all whole numbers are a regression task, other
        values (ints, bools, strings, whole floats) classes; but whole
        numbers with more than 10 distinct values (counts, amounts) are a
        regression task, with a warning that names the ``task_types`` or
        ``loss`` to pass. A list gives one type per column, a dict a type
        per task name (tasks not named are inferred).

{class_weight}

{conditional_on}

{loss}

{missing_label}

{bias}

{training}

    Attributes
    ----------
    classes_ : list of (ndarray or None)
        The labels of each classification task; None for a regression task.

    target_mean_ : ndarray of shape (n_tasks,)
        Mean used to standardise each regression task's target (NaN for a
        classification task).

    target_scale_ : ndarray of shape (n_tasks,)
        Scale used to standardise each regression task's target (NaN for a
        classification task).

{attributes}

    See Also
    --------
    MultiTaskMMoEClassifier : Every task a classification task.
    MultiTaskMMoERegressor : Every task a regression task.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mmoe import MultiTaskMMoE
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 5))
    >>> click = (X[:, 0] > 0).astype(int)
    >>> watch_time = np.where(click == 1, 30 + 10 * X[:, 1], np.nan)
    >>> Y = np.column_stack([click, watch_time])
    >>> model = MultiTaskMMoE(max_epochs=5, random_state=0).fit(X, Y)
    >>> model.task_types_
    ['binary', 'regression']
    >>> proba = model.predict_proba(X[:2])
    >>> proba[0].shape, proba[1]
    ((2, 2), None)
    """,
        gates=("0.0", "1.0"),
        class_weight=CLASS_WEIGHT_PARAMETER,
        conditional_on=_docs.CONDITIONAL_ON_PARAMETER,
        missing_label=_docs.MISSING_LABEL_PARAMETER,
        loss=LOSS_PARAMETER.replace(
            '"poisson"}, default', '"poisson"} or dict, default', 1
        )
        + """
    A dict ``{task name: loss}`` gives the loss of the tasks it names
    (the others keep their type's default); a loss given by name also
    decides the type of a task whose type is inferred: whole-number counts
    with ``"poisson"`` are a count task, not classes.""",
    )

    _parameter_constraints: dict = {
        **BaseMultiTaskMMoE._parameter_constraints,
        "task_types": [StrOptions({"auto"}), list, tuple, dict],
        "class_weight": [StrOptions({"balanced"}), dict, list, None],
        "conditional_on": [dict, None],
        "loss": [StrOptions(set(REGRESSION_LOSSES)), dict],
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
        gate_dropout: float = 0.0,
        dropout: float = 0.1,
        gate: str = "softmax",
        gate_k: int = 2,
        gate_temperature: float = 1.0,
        gate_balance: float = 0.0,
        expert_activation: str = "relu",
        expert_normalization: str | None = None,
        ensemble_size: int = 1,
        task_weights: Sequence[float] | Mapping[str, float] | str | None = None,
        task_types: str | Sequence[str] | Mapping[str, str] = "auto",
        class_weight: str | dict | list | None = None,
        conditional_on: Mapping[str | int, str | int] | None = None,
        loss: str | Mapping[str, str] = "squared_error",
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

    def _task_loss(self, kind: str, name: str) -> str | None:
        if isinstance(self.loss, Mapping):
            return self._named_losses().get(name)
        # The loss of the tasks that take it (the regression tasks).
        return self.loss if accepts_loss(kind, self.loss) else None

    def _named_losses(self) -> dict[str, str]:
        """``loss`` as a dict, ``{task name: loss}``."""
        return {str(name): loss for name, loss in self.loss.items()}

    def _task_kinds(self, targets: TargetColumns) -> list[str]:
        names = targets.names
        declared: list[str | None]
        if isinstance(self.task_types, str):  # "auto"
            declared = [None] * len(names)
        elif isinstance(self.task_types, Mapping):
            unknown = sorted(set(map(str, self.task_types)) - set(names))
            if unknown:
                raise ValueError(
                    f"task_types names unknown tasks {unknown}; the tasks are {names}."
                )
            named = {str(k): v for k, v in self.task_types.items()}
            declared = [named.get(name) for name in names]
        else:
            declared = list(self.task_types)
            if len(declared) != len(names):
                raise ValueError(
                    f"task_types must give one type per task: y has "
                    f"{len(names)} task(s), task_types has {len(declared)}."
                )
        named = self._named_losses() if isinstance(self.loss, Mapping) else {}
        unknown = sorted(set(named) - set(names))
        if unknown:
            raise ValueError(
                f"loss names unknown tasks {unknown}; the tasks are {names}."
            )
        kinds = []
        for k, (kind, name) in enumerate(zip(declared, names, strict=True)):
            if kind is None or kind == "auto":
                kind = infer_task_type(
                    targets.labelled_values(k), name, named.get(name)
                )
                n_values = _n_distinct_numbers(targets.labelled_values(k))
                if kind == "multiclass" and n_values > MAX_INFERRED_CLASSES:
                    kind = "regression"
                    warnings.warn(
                        f"Task {name!r} holds {n_values} distinct whole numbers "
                        f"(more than {MAX_INFERRED_CLASSES}): it is inferred as a "
                        f"regression task, not as {n_values} classes. Pass "
                        f"task_types={{{name!r}: 'multiclass'}} for classes, or "
                        f"loss={{{name!r}: 'poisson'}} for counts (or "
                        f"task_types={{{name!r}: 'regression'}} to silence this).",
                        UserWarning,
                        stacklevel=4,
                    )
            elif kind not in TASK_TYPES:
                raise ValueError(
                    f"task_types for task {name!r} must be one of "
                    f"{sorted(TASK_TYPES)} or 'auto', got {kind!r}."
                )
            kinds.append(kind)
        return kinds

    def _set_task_attributes(self, tasks: list[Task], single_task: bool) -> None:
        self.classes_ = [task.classes for task in tasks]
        self.target_mean_ = np.array([task.mean for task in tasks])
        self.target_scale_ = np.array([task.scale for task in tasks])

    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self,
        X: Any,
        y: Any,
        classes: Sequence[Any] | None = None,
        sample_weight: Any = None,
    ) -> MultiTaskMMoE:
        """Run one epoch of training on ``(X, Y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Targets, one column per task, as in :meth:`fit`.

        classes : list, default=None
            One entry per task: the labels of a classification task, None for
            a regression task. Required in the first call when there are
            classification tasks; ignored (but checked) afterwards. The first
            call also fixes each regression task's standardisation.

        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, as in :meth:`fit`.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit_call(X, y, sample_weight, partial=True, classes=classes)

    def predict(self, X: Any) -> np.ndarray:
        """Prediction of every task: its most probable label, or its value.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_tasks) or (n_samples,)
            Labels of classification tasks in their own types, values of
            regression tasks in their original units; an object array when
            the tasks' types differ. 1-D if fitted on a 1-D ``y``.
        """
        return self._predict(X)

    def predict_proba(self, X: Any) -> list[np.ndarray | None] | np.ndarray | None:
        """Class probabilities of every classification task.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        proba : list of (ndarray of shape (n_samples, n_classes_k) or None)
            One array per classification task, with columns in the order of
            ``classes_[k]`` and rows summing to 1; None for a regression
            task. A single entry if fitted on a 1-D ``y``.
        """
        return self._predict_proba(X)

    def predict_conditional_proba(
        self, X: Any
    ) -> list[np.ndarray | None] | np.ndarray | None:
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
        return self._predict_proba(X, conditional=True)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean over tasks of each task's accuracy or R^2 on its labelled rows.

        For every task, the rows whose entry in ``Y`` is missing are dropped;
        a classification task is scored by the accuracy of :meth:`predict`,
        a regression task by the coefficient of determination :math:`R^2`,
        a count task by its :math:`D^2` (the fraction of Poisson deviance
        explained), weighted by ``sample_weight`` if given. The result is the unweighted
        mean of these scores over the tasks. Since the two scales differ,
        prefer per-task scorers (:mod:`sk_mmoe.metrics`) for model selection.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True targets, with missing entries as in :meth:`fit`.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean of the per-task scores.
        """
        return self._score(X, y, sample_weight)


def _n_distinct_numbers(values: np.ndarray) -> int:
    """How many distinct values ``values`` holds; 0 unless they are numbers
    (not booleans nor text)."""
    if values.dtype == object:
        if not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
            for v in values
        ):
            return 0
        values = values.astype(np.float64)
    if values.dtype.kind not in "iuf":
        return 0
    return int(np.unique(values).size)
