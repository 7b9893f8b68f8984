"""Scorers that evaluate one task of a multi-task classifier at a time.

A multi-task model is judged task by task. :func:`task_scorer` builds a
scikit-learn scorer ``scorer(estimator, X, Y) -> float`` for one task, and
:func:`multitask_scoring` a dict of them (one per metric and task) to pass
as ``scoring`` to :class:`~sklearn.model_selection.GridSearchCV` or
:func:`~sklearn.model_selection.cross_validate`. Every scorer uses only the
rows labelled for its task, and accepts a fitted
:class:`~sk_mmoe.MultiTaskMMoEClassifier` or a fitted
:class:`~sklearn.pipeline.Pipeline` that ends in one.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.utils import check_consistent_length
from sklearn.utils.validation import check_is_fitted

from ._composition import final_estimator
from ._targets import missing_mask, split_columns

__all__ = ["multitask_scoring", "task_scorer"]

_RESPONSE_METHODS = ("predict", "predict_proba")


@dataclass(frozen=True)
class _Metric:
    """How to compute a named metric from one task's labels and predictions.

    ``kind`` is ``"label"`` (compares ``predict`` with the labels),
    ``"ranking"`` (one-vs-rest on ``predict_proba``; undefined with fewer
    than two classes among the labelled rows) or ``"probability"`` (the
    whole ``predict_proba`` row, with every class of the task as labels).
    """

    function: Callable[..., float]
    kind: str
    sign: float = 1.0
    binary_only: bool = False  # pos_label metrics: binary tasks only
    kwargs: dict = field(default_factory=dict)

    @property
    def response_method(self) -> str:
        return "predict" if self.kind == "label" else "predict_proba"


_METRICS: dict[str, _Metric] = {
    "accuracy": _Metric(accuracy_score, "label"),
    "balanced_accuracy": _Metric(balanced_accuracy_score, "label"),
    "matthews_corrcoef": _Metric(matthews_corrcoef, "label"),
    "f1": _Metric(f1_score, "label", binary_only=True),
    "precision": _Metric(precision_score, "label", binary_only=True),
    "recall": _Metric(recall_score, "label", binary_only=True),
    "roc_auc": _Metric(roc_auc_score, "ranking"),
    "roc_auc_ovr_weighted": _Metric(
        roc_auc_score, "ranking", kwargs={"average": "weighted"}
    ),
    "average_precision": _Metric(average_precision_score, "ranking"),
    "neg_log_loss": _Metric(log_loss, "probability", sign=-1.0),
    "neg_brier_score": _Metric(brier_score_loss, "probability", sign=-1.0),
}
for _average in ("macro", "micro", "weighted"):
    for _name, _function in (
        ("f1", f1_score),
        ("precision", precision_score),
        ("recall", recall_score),
    ):
        _METRICS[f"{_name}_{_average}"] = _Metric(
            _function, "label", kwargs={"average": _average}
        )

# Names of the losses themselves: their scorers return the negated loss.
_ALIASES = {"log_loss": "neg_log_loss", "brier_score_loss": "neg_brier_score"}


def _metric_names() -> list[str]:
    return sorted([*_METRICS, *_ALIASES])


# ---------------------------------------------------------------------------
# What the scorers need to know about the fitted model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tasks:
    """The tasks of a fitted model, as the scorers see them."""

    names: list[str]
    classes: list[np.ndarray]
    missing_label: Any
    single: bool  # 1-D predictions: predict_proba returns one array

    @classmethod
    def of(cls, estimator: Any, Y_names: list[str] | None) -> _Tasks:
        model = final_estimator(estimator)
        check_is_fitted(model)
        classes = getattr(model, "classes_", None)
        if classes is None:
            raise TypeError(
                f"estimator must be a fitted classifier, got "
                f"{type(model).__name__}, which has no classes_."
            )
        single = not isinstance(classes, list)
        classes = [np.asarray(classes)] if single else [np.asarray(c) for c in classes]
        names = getattr(model, "task_names_", None) or Y_names
        if names is None or len(names) != len(classes):
            names = [f"task{k}" for k in range(len(classes))]
        # Models without missing_label know no marker: only NaN/None count.
        return cls(list(names), classes, getattr(model, "missing_label", None), single)

    def index(self, task: int | str) -> int:
        if isinstance(task, str):
            if task not in self.names:
                raise ValueError(
                    f"Unknown task {task!r}: the model was fitted on the tasks "
                    f"{self.names}."
                )
            return self.names.index(task)
        if task >= len(self.names):
            raise ValueError(
                f"task={task} is out of range: the model was fitted on "
                f"{len(self.names)} task(s) {self.names}."
            )
        return int(task)


def _task_labels(
    columns: list[np.ndarray], names: list[str] | None, tasks: _Tasks, k: int
) -> np.ndarray:
    """The column of ``Y`` (split in ``columns``) with task ``k``'s labels."""
    if names is not None and tasks.names[k] in names:
        # A DataFrame: select by name, whatever the order of its columns.
        return columns[names.index(tasks.names[k])]
    if len(columns) != len(tasks.names):
        raise ValueError(
            f"Y has {len(columns)} column(s) but the model was fitted on "
            f"{len(tasks.names)} task(s) {tasks.names}."
        )
    return columns[k]


def _encode(y: np.ndarray, classes: np.ndarray, task_name: str) -> np.ndarray:
    """Index of every label of ``y`` in ``classes``."""
    index = {label: i for i, label in enumerate(classes.tolist())}
    labels = y.tolist()
    unknown = sorted({repr(v) for v in labels if v not in index})
    if unknown:
        raise ValueError(
            f"Y has labels {unknown} for task {task_name!r} that the model has "
            f"not seen in fit; its classes are {classes.tolist()}."
        )
    return np.array([index[v] for v in labels], dtype=np.int64)


def _undefined(message: str) -> float:
    warnings.warn(message + " Returning NaN.", UndefinedMetricWarning, stacklevel=4)
    return float("nan")


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------


class _TaskScorer:
    """``scorer(estimator, X, Y)``: one metric on one task's labelled rows."""

    def __init__(
        self,
        metric: str | Callable[..., float],
        task: int | str,
        response_method: str | None,
        greater_is_better: bool,
        metric_kwargs: dict[str, Any],
    ) -> None:
        self.metric = metric
        self.task = task
        self.response_method = response_method
        self.greater_is_better = greater_is_better
        self.metric_kwargs = metric_kwargs

    @property
    def name(self) -> str:
        """Public name of the metric, used in :func:`multitask_scoring` keys."""
        if isinstance(self.metric, str):
            return self.metric
        return getattr(self.metric, "__name__", type(self.metric).__name__)

    def __repr__(self) -> str:
        metric = repr(self.metric) if isinstance(self.metric, str) else self.name
        args = [metric, f"task={self.task!r}"]
        if not isinstance(self.metric, str):
            args.append(f"response_method={self.response_method!r}")
            if not self.greater_is_better:
                args.append("greater_is_better=False")
        args.extend(f"{key}={value!r}" for key, value in self.metric_kwargs.items())
        return f"task_scorer({', '.join(args)})"

    def __call__(
        self, estimator: Any, X: Any, Y: Any, sample_weight: Any = None
    ) -> float:
        """Score ``estimator`` on task ``task`` of ``(X, Y)``.

        Parameters
        ----------
        estimator : estimator
            A fitted multi-task classifier, or a pipeline ending in one.
        X : array-like or DataFrame of shape (n_samples, n_features)
            Input of ``estimator``.
        Y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True labels, with missing entries as in ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, restricted to the task's labelled rows.

        Returns
        -------
        score : float
            The score (greater is better), NaN if undefined on these rows.
        """
        return self._score(estimator, X, Y, sample_weight, responses={})

    def _score(
        self,
        estimator: Any,
        X: Any,
        Y: Any,
        sample_weight: Any,
        responses: dict[str, Any],
    ) -> float:
        """Score, reusing the predictions already in ``responses``."""
        columns, Y_names, _ = split_columns(Y)
        tasks = _Tasks.of(estimator, Y_names)
        k = tasks.index(self.task)
        name, classes = tasks.names[k], tasks.classes[k]
        y = _task_labels(columns, Y_names, tasks, k)
        check_consistent_length(X, y)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            if sample_weight.shape != (len(y),):
                raise ValueError(
                    f"sample_weight must have shape ({len(y)},), one weight per "
                    f"row of X and Y, got shape {sample_weight.shape}."
                )
        labelled = ~missing_mask(y, tasks.missing_label)
        if not labelled.any():
            return _undefined(
                f"Task {name!r} has no labelled row to score {self.name} on."
            )
        method = self._response_method()
        if method not in responses:
            responses[method] = getattr(estimator, method)(X)
        response = responses[method]
        if not tasks.single:
            response = response[k] if method == "predict_proba" else response[:, k]
        weights = None if sample_weight is None else sample_weight[labelled]
        # Labels as plain arrays: an object column of a DataFrame (or of the
        # predictions of tasks with different label types) becomes ints,
        # bools or strings again, which scikit-learn's metrics recognise.
        y_true = np.asarray(y[labelled].tolist())
        response = response[labelled]
        if method == "predict":
            response = np.asarray(response.tolist())
        if isinstance(self.metric, str):
            value = self._named_metric(y_true, response, classes, name, weights)
        else:
            if method == "predict_proba" and len(classes) == 2:
                # As scikit-learn's scorers: the positive class's column.
                pos = self.metric_kwargs.get("pos_label", classes[1])
                response = response[:, _encode(np.array([pos]), classes, name)[0]]
            kwargs = dict(self.metric_kwargs)
            if weights is not None:
                kwargs["sample_weight"] = weights
            value = self.metric(y_true, response, **kwargs)
            value = value if self.greater_is_better else -value
        return float(value)

    def _response_method(self) -> str:
        if isinstance(self.metric, str):
            return _METRICS[self.metric].response_method
        return self.response_method

    def _named_metric(
        self,
        y_true: np.ndarray,
        response: np.ndarray,
        classes: np.ndarray,
        name: str,
        weights: np.ndarray | None,
    ) -> float:
        metric = _METRICS[self.metric]
        kwargs = {**metric.kwargs, **self.metric_kwargs}
        if metric.kind == "label":
            if metric.binary_only:
                if len(classes) != 2:
                    raise ValueError(
                        f"{self.metric!r} is for binary tasks, but task {name!r} "
                        f"has {len(classes)} classes; use e.g. "
                        f"'{self.metric}_macro'."
                    )
                kwargs.setdefault("pos_label", classes[1])
            return metric.function(y_true, response, sample_weight=weights, **kwargs)

        if "labels" in kwargs:
            raise ValueError(
                f"labels cannot be passed to {self.metric!r}: the scorer passes "
                f"the classes of the task."
            )
        codes = _encode(y_true, classes, name)
        if metric.kind == "probability":
            return metric.sign * metric.function(
                codes,
                response,
                labels=list(range(len(classes))),
                sample_weight=weights,
                **kwargs,
            )

        present = np.unique(codes)
        if present.size < 2:
            return _undefined(
                f"{self.metric} is undefined for task {name!r}: its labelled "
                f"rows have the single class {classes[present[0]]!r}."
            )
        if len(classes) == 2:
            kwargs.pop("average", None)
            pos_label = kwargs.pop("pos_label", classes[1])
            pos = _encode(np.array([pos_label]), classes, name)[0]
            return metric.function(
                codes == pos, response[:, pos], sample_weight=weights, **kwargs
            )
        if kwargs.get("multi_class", "ovr") != "ovr":
            return metric.function(
                codes,
                response,
                labels=list(range(len(classes))),
                sample_weight=weights,
                **kwargs,
            )
        kwargs.pop("multi_class", None)
        if present.size < len(classes):
            absent = [classes[i] for i in np.setdiff1d(range(len(classes)), present)]
            warnings.warn(
                f"Classes {absent} of task {name!r} have no labelled row: "
                f"{self.metric} averages the one-vs-rest scores of the other "
                f"classes only.",
                UndefinedMetricWarning,
                stacklevel=3,
            )
        # One-vs-rest on the classes present, each from its own column.
        indicator = codes[:, None] == present[None, :]
        return metric.function(
            indicator, response[:, present], sample_weight=weights, **kwargs
        )


class _TaskMeanScorer:
    """``scorer(estimator, X, Y)``: the mean of task scorers of one metric.

    NaN if any task's score is NaN: the mean over the tasks is undefined
    then. The model predicts once for all tasks.
    """

    def __init__(self, scorers: Sequence[_TaskScorer]) -> None:
        self.scorers = list(scorers)

    def __repr__(self) -> str:
        return f"mean({', '.join(map(repr, self.scorers))})"

    def __call__(
        self, estimator: Any, X: Any, Y: Any, sample_weight: Any = None
    ) -> float:
        responses: dict[str, Any] = {}
        scores = [
            scorer._score(estimator, X, Y, sample_weight, responses)
            for scorer in self.scorers
        ]
        return float(np.mean(scores))


def _check_task(task: Any) -> int | str:
    if isinstance(task, str):
        return task
    if isinstance(task, numbers.Integral) and not isinstance(task, bool | np.bool_):
        if task < 0:
            raise ValueError(f"task must be a non-negative index, got {task}.")
        return int(task)
    raise ValueError(
        f"task must be a task name (str) or a column index (int), got {task!r}."
    )


def _check_metric_name(metric: Any) -> str:
    if not isinstance(metric, str):
        raise ValueError(f"metric must be a metric name (str), got {metric!r}.")
    name = _ALIASES.get(metric, metric)
    if name not in _METRICS:
        raise ValueError(
            f"Unknown metric {metric!r}; the metrics are {_metric_names()}, or "
            f"pass a callable to task_scorer."
        )
    return name


def task_scorer(
    metric: str | Callable[..., float],
    task: int | str,
    *,
    response_method: str | None = None,
    greater_is_better: bool = True,
    **metric_kwargs: Any,
) -> Callable[..., float]:
    """Scorer that evaluates a single task of a multi-task classifier.

    The scorer drops the rows whose label for ``task`` is missing (equal to
    the model's ``missing_label``, NaN or None) and computes ``metric`` on
    the others, from the task's column of ``predict_proba`` or ``predict``.

    Read more in the :ref:`User Guide <scoring>`.

    Parameters
    ----------
    metric : str or callable
        A metric name:

        - from ``predict``: ``"accuracy"``, ``"balanced_accuracy"``,
          ``"matthews_corrcoef"``, ``"f1"``, ``"precision"``, ``"recall"``
          (binary tasks; the positive class is the task's second class,
          ``classes_[k][1]``, unless ``pos_label`` is given) and their
          ``"_macro"``, ``"_micro"`` and ``"_weighted"`` averages;
        - from ``predict_proba``: ``"roc_auc"``, ``"roc_auc_ovr_weighted"``,
          ``"average_precision"`` (from the positive class's column for a
          binary task; one-vs-rest averages for a multiclass task),
          ``"neg_log_loss"`` and ``"neg_brier_score"`` (losses, negated so
          that greater is better; ``"log_loss"`` and ``"brier_score_loss"``
          are accepted for them).

        Or a callable ``metric(y_true, y_pred, **kwargs)`` that receives the
        task's true labels on its labelled rows and, as chosen by
        ``response_method``, the predicted labels or the probabilities (for a
        binary task the positive class's column only, as in scikit-learn's
        scorers; for a multiclass task all of them); also ``sample_weight``
        when the scorer is given one.

    task : int or str
        The task: a column index of ``Y``, or a task name (a column of the
        DataFrame ``Y`` the model was fitted on, as in its ``task_names_``).

    response_method : {"predict", "predict_proba"}, default=None
        For a callable ``metric``: which method of the estimator gives its
        second argument; ``None`` means ``"predict"``. Named metrics know
        their own, so it must be left to ``None`` for them.

    greater_is_better : bool, default=True
        For a callable ``metric``: whether it is a score (``True``) or a loss
        (``False``, in which case the scorer returns its negation).

    **metric_kwargs
        Passed to the metric, e.g. ``pos_label`` or ``average``. The scorer
        passes the task's classes as ``labels`` to the probability metrics
        itself.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, Y, sample_weight=None) -> float``, where
        ``estimator`` is a fitted :class:`~sk_mmoe.MultiTaskMMoEClassifier`
        (a single-task one too) or a pipeline that ends in one. The score is
        NaN, with an :class:`~sklearn.exceptions.UndefinedMetricWarning`, if
        the task has no labelled row in ``Y`` or if a ranking metric
        (``"roc_auc"``, ``"average_precision"``) sees a single class among
        them; in a cross-validation this fold's score is then NaN, as with
        scikit-learn's ``error_score=np.nan``. For a multiclass task, the
        one-vs-rest ranking metrics average over the classes present among
        the labelled rows (with a warning if some are absent).

    See Also
    --------
    multitask_scoring : Scorers for several metrics and tasks at once.
    sklearn.metrics.make_scorer : Scorers for single-output estimators.

    Examples
    --------
    >>> from sk_mmoe import MultiTaskMMoEClassifier
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> from sk_mmoe.metrics import task_scorer
    >>> X, Y = make_task_correlation(300, 0.5, n_features=5, random_state=0)
    >>> Y[::2, 1] = -1  # half of the second task's labels are missing
    >>> clf = MultiTaskMMoEClassifier(max_epochs=3, random_state=0).fit(X, Y)
    >>> scorer = task_scorer("roc_auc", task=1)
    >>> scorer
    task_scorer('roc_auc', task=1)
    >>> 0.0 <= scorer(clf, X, Y) <= 1.0
    True
    >>> from sklearn.metrics import fbeta_score
    >>> task_scorer(fbeta_score, task="task0", beta=2)
    task_scorer(fbeta_score, task='task0', response_method='predict', beta=2)
    """
    task = _check_task(task)
    if callable(metric):
        response_method = "predict" if response_method is None else response_method
        if response_method not in _RESPONSE_METHODS:
            raise ValueError(
                f"response_method must be one of {list(_RESPONSE_METHODS)}, got "
                f"{response_method!r}."
            )
        return _TaskScorer(
            metric, task, response_method, bool(greater_is_better), metric_kwargs
        )
    name = _check_metric_name(metric)
    if response_method is not None or not greater_is_better:
        raise ValueError(
            f"response_method and greater_is_better are for a callable metric; "
            f"the named metric {metric!r} knows its own."
        )
    return _TaskScorer(name, task, None, True, metric_kwargs)


def multitask_scoring(
    metrics: str | Sequence[str],
    tasks: Sequence[int | str] | None = None,
    *,
    n_tasks: int | None = None,
    mean: bool = True,
) -> dict[str, Callable[..., float]]:
    """Per-task scorers for multi-metric evaluation and model selection.

    Builds a dict of :func:`task_scorer` for every metric and task, to pass as
    ``scoring`` to :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate` and friends, whose keys
    can be given to ``refit``.

    Read more in the :ref:`User Guide <scoring>`.

    Parameters
    ----------
    metrics : str or list of str
        Metric names, as in :func:`task_scorer`.

    tasks : list of str or int, default=None
        The tasks to score, by name (the columns of a DataFrame ``Y``) or by
        column index. The dict is built before any fit, when the task names
        are not known yet, so they must be given here (or ``n_tasks``).

    n_tasks : int, default=None
        Instead of ``tasks``: score the tasks ``0 .. n_tasks - 1`` by index.

    mean : bool, default=True
        Add, for each metric, the mean of its scores over the tasks, under
        the key ``"<metric>_mean"`` (when there are at least two tasks). It is
        NaN when a task's score is.

    Returns
    -------
    scoring : dict
        ``{"<metric>_<task>": scorer}``. ``<metric>`` is the metric's name as
        listed in :func:`task_scorer` (``"log_loss"`` gives
        ``"neg_log_loss_<task>"``, since the scorer returns the negated
        loss); ``<task>`` is the task's name, or ``"task<k>"`` for a task
        given by index ``k`` (the name the model gives column ``k`` of a
        ``Y`` without column names). The keys are ordered metric by metric.

    See Also
    --------
    task_scorer : The scorer of one metric on one task.

    Examples
    --------
    >>> from sklearn.model_selection import cross_validate
    >>> from sk_mmoe import MultiTaskMMoEClassifier
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> from sk_mmoe.metrics import multitask_scoring
    >>> X, Y = make_task_correlation(300, 0.5, n_features=5, random_state=0)
    >>> scoring = multitask_scoring(["roc_auc", "accuracy"], n_tasks=2)
    >>> list(scoring)  # doctest: +NORMALIZE_WHITESPACE
    ['roc_auc_task0', 'roc_auc_task1', 'roc_auc_mean',
     'accuracy_task0', 'accuracy_task1', 'accuracy_mean']
    >>> clf = MultiTaskMMoEClassifier(max_epochs=3, random_state=0)
    >>> cv = cross_validate(clf, X, Y, scoring=scoring, cv=3)
    >>> cv["test_roc_auc_task1"].shape
    (3,)
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    names = [_check_metric_name(metric) for metric in metrics]
    if not names:
        raise ValueError("metrics must name at least one metric.")
    if len(set(names)) != len(names):
        raise ValueError(f"metrics has duplicates: {list(metrics)}.")
    if (tasks is None) == (n_tasks is None):
        raise ValueError(
            "Pass exactly one of tasks and n_tasks: the keys of the scoring dict "
            "are needed before fit, when the model's task names are unknown."
        )
    if n_tasks is not None:
        if not isinstance(n_tasks, numbers.Integral) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}.")
        tasks = range(n_tasks)
    if isinstance(tasks, str):
        tasks = [tasks]
    tasks = [_check_task(task) for task in tasks]
    if not tasks:
        raise ValueError("tasks must name at least one task.")
    suffixes = [task if isinstance(task, str) else f"task{task}" for task in tasks]
    if len(set(suffixes)) != len(suffixes):
        raise ValueError(f"tasks has duplicates: {suffixes}.")
    with_mean = mean and len(tasks) > 1
    if with_mean and "mean" in suffixes:
        raise ValueError(
            "A task named 'mean' would clash with the mean over tasks; pass "
            "mean=False or score that task by index."
        )

    scoring: dict[str, Callable[..., float]] = {}
    for name in names:
        scorers = [_TaskScorer(name, task, None, True, {}) for task in tasks]
        for suffix, scorer in zip(suffixes, scorers, strict=True):
            scoring[f"{name}_{suffix}"] = scorer
        if with_mean:
            scoring[f"{name}_mean"] = _TaskMeanScorer(scorers)
    return scoring
