"""Scorers that evaluate one task of a multi-task model at a time.

A multi-task model is judged task by task. :func:`task_scorer` builds a
scikit-learn scorer ``scorer(estimator, X, Y) -> float`` for one task, and
:func:`multitask_scoring` the scorers of several metrics and tasks at once,
to pass as ``scoring`` to :class:`~sklearn.model_selection.GridSearchCV` or
:func:`~sklearn.model_selection.cross_validate`. Every scorer uses only the
rows labelled for its task, and accepts a fitted
:class:`~sk_mmoe.MultiTaskMMoEClassifier`, another multi-output classifier or
regressor, or a fitted :class:`~sklearn.pipeline.Pipeline` that ends in one.
Classification tasks are scored with classification metrics (from
``predict`` or ``predict_proba``), regression tasks with regression metrics
(from ``predict``).
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from sklearn.base import is_regressor
from sklearn.exceptions import NotFittedError, UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    matthews_corrcoef,
    mean_absolute_error,
    mean_squared_error,
    ndcg_score,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.utils import check_consistent_length
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.validation import check_is_fitted

from .._checks import check_weights
from .._composition import final_estimator
from .._data.targets import (
    default_task_name,
    default_task_names,
    missing_mask,
    split_columns,
)
from .._tasks import TASK_TYPES, make_task

__all__ = ["gauc_score", "multitask_scoring", "ndcg_at_k_score", "task_scorer"]

_RESPONSE_METHODS = ("predict", "predict_proba")
_REGRESSION = "regression"
# The metric family of each kind of metric, as a task's ``scored_by`` names
# it: the metrics of classification tasks, and the per-group metrics of binary
# tasks (``"binary"``) and of tasks whose score ranks rows (``"ranking"``). Any
# other kind is itself the family of tasks with numeric targets.
_FAMILIES = {
    "label": "classification",
    "threshold": "classification",
    "probability": "classification",
    "grouped_auc": "binary",
    "relevance": "ranking",
}


# ---------------------------------------------------------------------------
# Ranking metrics per group (per user, per request)
# ---------------------------------------------------------------------------


def _grouped(
    y_true: Any, y_score: Any, groups: Any, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The inputs of a per-group metric as 1-D arrays, rows sorted by group."""
    if groups is None:
        raise ValueError(
            "groups is required: one group id (user, request...) per row, to "
            "rank the rows of each group among themselves."
        )
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    groups = np.asarray(groups)
    if y_true.ndim != 1 or y_score.ndim != 1 or groups.ndim != 1:
        raise ValueError(
            f"y_true, y_score and groups must be 1-D, got shapes {y_true.shape}, "
            f"{y_score.shape} and {groups.shape}."
        )
    check_consistent_length(y_true, y_score)
    if len(groups) != len(y_true):
        raise ValueError(
            f"groups must hold one group id per row: got {len(groups)} group "
            f"ids for {len(y_true)} rows."
        )
    if not np.isfinite(y_score).all():
        raise ValueError("y_score must be finite.")
    if sample_weight is not None:
        # Finite and non-negative, one per row (a negative or NaN weight
        # would give a score outside [0, 1] or NaN).
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != y_true.shape:
            raise ValueError(
                f"sample_weight must hold one weight per row: got shape "
                f"{sample_weight.shape} for {len(y_true)} rows."
            )
        check_weights(sample_weight, "sample_weight")
    _, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    weights = None if sample_weight is None else sample_weight[order]
    return y_true[order], y_score[order], codes[order], weights


def _group_bounds(codes: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of every group of sorted group codes."""
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    stops = np.r_[starts[1:], len(codes)]
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def gauc_score(
    y_true: Any, y_score: Any, *, groups: Any, sample_weight: Any = None
) -> float:
    """Group AUC: the ROC AUC within each group, averaged by group size.

    The metric of recommendation logs (Zhou et al., 2018): a model is judged
    on how it orders the items shown to one user (or in one request), not
    on how it orders users against each other. Groups whose rows all have
    the same label have no AUC and are left out.

    Read more in the :ref:`User Guide <scoring>`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels (the greater of the two values is the positive class).

    y_score : array-like of shape (n_samples,)
        Scores, greater for the positive class (e.g. the positive class's
        probability).

    groups : array-like of shape (n_samples,)
        The group (user, request) of every row.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights, within each group's AUC; a group's weight in the
        average is then the sum of its rows' weights.

    Returns
    -------
    score : float
        The average of the groups' AUCs weighted by their number of rows (or
        their total weight); NaN, with an
        :class:`~sklearn.exceptions.UndefinedMetricWarning`, if no group has
        both classes.

    See Also
    --------
    ndcg_at_k_score : Normalised discounted cumulative gain per group.
    sklearn.metrics.roc_auc_score : The AUC over all rows.

    References
    ----------
    .. [1] G. Zhou et al., "Deep Interest Network for Click-Through Rate
       Prediction", KDD 2018.

    Examples
    --------
    >>> from sk_mmoe.metrics import gauc_score
    >>> y_true = [1, 0, 0, 1, 0, 1]
    >>> y_score = [0.9, 0.2, 0.1, 0.9, 0.8, 0.6]
    >>> groups = ["a", "a", "a", "b", "b", "b"]
    >>> float(gauc_score(y_true, y_score, groups=groups))
    0.75
    """
    y_true, y_score, codes, weights = _grouped(y_true, y_score, groups, sample_weight)
    classes = np.unique(y_true)
    if classes.size > 2:
        raise ValueError(
            f"gauc_score is for binary labels, got {classes.size} distinct "
            f"values: {classes.tolist()[:5]}..."
        )
    positive = y_true == classes[-1]
    total, weight_sum = 0.0, 0.0
    for start, stop in _group_bounds(codes):
        labels = positive[start:stop]
        if labels.all() or not labels.any():
            continue
        w = None if weights is None else weights[start:stop]
        group_weight = stop - start if w is None else float(w.sum())
        total += group_weight * roc_auc_score(
            labels, y_score[start:stop], sample_weight=w
        )
        weight_sum += group_weight
    if weight_sum == 0:
        return _undefined("gauc_score is undefined: no group has both classes.")
    return total / weight_sum


def ndcg_at_k_score(
    y_true: Any,
    y_score: Any,
    *,
    groups: Any,
    k: int | None = 10,
    sample_weight: Any = None,
) -> float:
    """Normalised discounted cumulative gain of the top ``k`` rows of each group.

    Each group's rows (the items shown to a user, or in a request) are
    sorted by ``y_score``, and the gains ``y_true`` of the first ``k`` are
    summed with the discount ``1 / log2(1 + rank)``, then divided by the
    same sum for the best order (ties in ``y_score`` are averaged, as in
    :func:`sklearn.metrics.ndcg_score`). Groups whose gains are all zero are
    left out.

    Read more in the :ref:`User Guide <scoring>`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Non-negative gains: 0/1 labels (clicks), or graded relevance.

    y_score : array-like of shape (n_samples,)
        Scores; rows with greater scores are ranked first.

    groups : array-like of shape (n_samples,)
        The group (user, request) of every row.

    k : int or None, default=10
        Only the ``k`` highest-scored rows of a group count; ``None``: all.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights; a group's weight in the mean is the mean weight of its
        rows (the per-row weights of one group are usually equal).

    Returns
    -------
    score : float
        Mean NDCG@k over the groups with a positive gain (weighted by
        ``sample_weight`` if given); NaN, with an
        :class:`~sklearn.exceptions.UndefinedMetricWarning`, if no group has
        one.

    See Also
    --------
    gauc_score : ROC AUC per group.
    sklearn.metrics.ndcg_score : NDCG of 2-D arrays of equal-size groups.

    Examples
    --------
    >>> from sk_mmoe.metrics import ndcg_at_k_score
    >>> y_true = [3, 0, 1, 0, 1, 0]
    >>> y_score = [0.9, 0.5, 0.1, 0.8, 0.9, 0.1]
    >>> groups = [0, 0, 0, 1, 1, 1]
    >>> round(float(ndcg_at_k_score(y_true, y_score, groups=groups, k=2)), 3)
    0.913
    """
    if k is not None and (
        isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1
    ):
        raise ValueError(f"k must be a positive int or None, got {k!r}.")
    y_true, y_score, codes, weights = _grouped(y_true, y_score, groups, sample_weight)
    gains = np.asarray(y_true, dtype=np.float64)
    if not np.isfinite(gains).all() or (gains < 0).any():
        raise ValueError("y_true must hold finite, non-negative gains.")
    total, weight_sum = 0.0, 0.0
    for start, stop in _group_bounds(codes):
        gain = gains[start:stop]
        if not gain.any():
            continue
        value = ndcg_score(gain[None, :], y_score[None, start:stop], k=k)
        group_weight = 1.0 if weights is None else float(weights[start:stop].mean())
        total += group_weight * value
        weight_sum += group_weight
    if weight_sum == 0:
        return _undefined("ndcg_at_k_score is undefined: no group has a positive gain.")
    return total / weight_sum


@dataclass(frozen=True)
class _Metric:
    """How to compute a named metric from one task's targets and predictions.

    ``kind`` is ``"label"`` (compares ``predict`` with the labels),
    ``"threshold"`` (one-vs-rest on ``predict_proba``; undefined with fewer
    than two classes among the labelled rows), ``"probability"`` (the whole
    ``predict_proba`` row, with every class of the task as labels),
    ``"regression"`` (compares ``predict`` with the targets of a regression
    task), ``"count"`` (the metric family that a task type declares with
    its own metrics, compared as ``"regression"``), ``"grouped_auc"`` (a
    binary task's labels against its positive class's probability, per
    group) or ``"relevance"`` (gains against scores: a binary task's labels
    against its positive class's probability, the targets of a task with
    numeric targets against ``predict``). ``grouped`` metrics rank the rows
    of each group (``groups``) among themselves.
    """

    function: Callable[..., float]
    kind: str
    sign: float = 1.0
    binary_only: bool = False  # pos_label metrics: binary tasks only
    kwargs: dict = field(default_factory=dict)
    grouped: bool = False

    def response_method(self, classification: bool) -> str:
        """The response a task reads; ``classification``: the task has classes."""
        if self.kind in ("threshold", "probability", "grouped_auc") or (
            self.kind == "relevance" and classification
        ):
            return "predict_proba"
        return "predict"

    @property
    def family(self) -> str:
        """The metric family, as a task's ``scored_by`` names it."""
        return _FAMILIES.get(self.kind, self.kind)


_METRICS: dict[str, _Metric] = {
    "accuracy": _Metric(accuracy_score, "label"),
    "balanced_accuracy": _Metric(balanced_accuracy_score, "label"),
    "matthews_corrcoef": _Metric(matthews_corrcoef, "label"),
    "f1": _Metric(f1_score, "label", binary_only=True),
    "precision": _Metric(precision_score, "label", binary_only=True),
    "recall": _Metric(recall_score, "label", binary_only=True),
    "roc_auc": _Metric(roc_auc_score, "threshold"),
    "roc_auc_ovr_weighted": _Metric(
        roc_auc_score, "threshold", kwargs={"average": "weighted"}
    ),
    "average_precision": _Metric(average_precision_score, "threshold"),
    "gauc": _Metric(gauc_score, "grouped_auc", grouped=True),
    "ndcg": _Metric(ndcg_at_k_score, "relevance", grouped=True),
    "neg_log_loss": _Metric(log_loss, "probability", sign=-1.0),
    "neg_brier_score": _Metric(brier_score_loss, "probability", sign=-1.0),
    "r2": _Metric(r2_score, _REGRESSION),
    "neg_mean_squared_error": _Metric(mean_squared_error, _REGRESSION, sign=-1.0),
    "neg_mean_absolute_error": _Metric(mean_absolute_error, _REGRESSION, sign=-1.0),
    "neg_root_mean_squared_error": _Metric(
        root_mean_squared_error, _REGRESSION, sign=-1.0
    ),
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


def _fitted_tasks(model: Any) -> Sequence[Any] | None:
    """The fitted tasks of an sk_mmoe estimator (from its fitted state);
    None for another model or an unfitted one."""
    fitted_state = getattr(model, "_fitted_state", None)
    if fitted_state is None:
        return None
    try:
        return fitted_state().tasks
    except NotFittedError:
        return None


def _scored_by(model: Any, types: list[str]) -> list[tuple[str, ...]]:
    """The metric families that score each task: the task's own (sk_mmoe's
    estimators), else those of a task of its type."""
    fitted = _fitted_tasks(model)
    if fitted is not None and len(fitted) == len(types):
        return [task.scored_by for task in fitted]
    return [make_task(kind, "").scored_by for kind in types]


# The metrics that task types declare for their own family (Task.metrics).
for _cls in TASK_TYPES.values():
    for _name, (_function, _sign) in _cls.metrics.items():
        _METRICS[_name] = _Metric(_function, _cls.metric_family, sign=_sign)


# ---------------------------------------------------------------------------
# What the scorers need to know about the fitted model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tasks:
    """The tasks of a fitted model, as the scorers see them.

    ``types`` holds the type of each task (``"binary"``, ``"multiclass"``,
    ``"regression"``...), ``classes`` the classes of each classification
    task (None for others), ``scored_by`` the metric families that score
    each task.
    """

    names: list[str]
    types: list[str]
    classes: list[np.ndarray | None]
    missing: Any  # the model's marker of a missing entry (NaN/None always are)
    scored_by: list[tuple[str, ...]]

    @classmethod
    def of(cls, estimator: Any, n_columns: int, Y_names: list[str] | None) -> _Tasks:
        model = final_estimator(estimator)
        check_is_fitted(model)
        types = getattr(model, "task_types_", None)
        classes = getattr(model, "classes_", None)
        if classes is not None and not isinstance(classes, list):
            classes = [classes]  # a single-task classifier
        if types is not None:
            types = [types] if isinstance(types, str) else [str(t) for t in types]
            if classes is None:
                classes = [None] * len(types)
        elif classes is not None:
            types = ["binary" if len(c) <= 2 else "multiclass" for c in classes]
        elif is_regressor(model):
            n_outputs = getattr(model, "n_outputs_", None)
            if not isinstance(n_outputs, numbers.Integral):
                n_outputs = n_columns  # e.g. MultiOutputRegressor, Ridge
            types = [_REGRESSION] * int(n_outputs)
            classes = [None] * len(types)
        else:
            raise TypeError(
                f"estimator must be a fitted multi-task classifier or regressor, "
                f"got {type(model).__name__}, which has neither task_types_ nor "
                f"classes_ and is not a regressor."
            )
        classes = [None if c is None else np.asarray(c) for c in classes]
        names = getattr(model, "task_names_", None)
        if names is None or len(names) != len(types):
            names = Y_names
        if names is None or len(names) != len(types):
            names = default_task_names(len(types))
        # Models without a marker parameter know no marker: NaN/None only.
        missing = getattr(model, "missing_label", None)
        if missing is None:
            missing = getattr(model, "missing_target", None)
        scored_by = _scored_by(model, types)
        return cls([str(n) for n in names], types, classes, missing, scored_by)

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

    def describe(self) -> str:
        return ", ".join(
            f"{name!r} ({kind})"
            for name, kind in zip(self.names, self.types, strict=True)
        )


class _Evaluation:
    """One scoring call: ``Y`` split in columns, the model's tasks, and the
    predictions made so far (each response method is called at most once).
    """

    def __init__(
        self, estimator: Any, X: Any, Y: Any, sample_weight: Any, groups: Any = None
    ) -> None:
        self.estimator = estimator
        self.X = X
        self.columns, self.Y_names, _ = split_columns(Y)
        self.tasks = _Tasks.of(estimator, len(self.columns), self.Y_names)
        self.sample_weight = (
            None if sample_weight is None else np.asarray(sample_weight)
        )
        self.groups = None if groups is None else np.asarray(groups)
        self._responses: dict[str, Any] = {}

    def targets(self, k: int) -> np.ndarray:
        """The column of ``Y`` with task ``k``'s targets; a conditional task's
        are the joint's, negative where its parent is (as fit trains them)."""
        y = self._column(k)
        tasks = _fitted_tasks(final_estimator(self.estimator))
        if tasks is None or tasks[k].parent is None:
            return y
        columns = [self._column(j) for j in range(len(tasks))]
        labelled = [~missing_mask(c, self.tasks.missing) for c in columns]
        return tasks[k].completed(k, tasks, columns, labelled)[0]

    def _column(self, k: int) -> np.ndarray:
        """The column of ``Y`` with task ``k``'s targets."""
        names, columns = self.tasks.names, self.columns
        if self.Y_names is not None and names[k] in self.Y_names:
            # A DataFrame: select by name, whatever the order of its columns.
            y = columns[self.Y_names.index(names[k])]
        elif len(columns) != len(names):
            raise ValueError(
                f"Y has {len(columns)} column(s) but the model was fitted on "
                f"{len(names)} task(s) {names}."
            )
        else:
            y = columns[k]
        check_consistent_length(self.X, y)
        if self.sample_weight is not None and self.sample_weight.shape != (len(y),):
            raise ValueError(
                f"sample_weight must have shape ({len(y)},), one weight per row "
                f"of X and Y, got shape {self.sample_weight.shape}."
            )
        if self.groups is not None and self.groups.shape != (len(y),):
            raise ValueError(
                f"groups must have shape ({len(y)},), one group per row of X and "
                f"Y, got shape {self.groups.shape}."
            )
        return y

    def response(self, method: str, k: int) -> np.ndarray:
        """Task ``k``'s part of ``estimator.<method>(X)``."""
        if method not in self._responses:
            self._responses[method] = getattr(self.estimator, method)(self.X)
        response = self._responses[method]
        if method == "predict_proba":
            # A list with one array per task, or one array for a single task.
            return response[k] if isinstance(response, list) else response
        response = np.asarray(response)
        return response if response.ndim == 1 else response[:, k]


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


def _as_float(values: np.ndarray, task_name: str, what: str) -> np.ndarray:
    """The values of a regression task as float64."""
    try:
        return np.asarray(values.tolist(), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"Task {task_name!r} is a regression task, but {what} has values "
            f"that are not numbers."
        ) from None


def _undefined(message: str) -> float:
    warnings.warn(message + " Returning NaN.", UndefinedMetricWarning, stacklevel=4)
    return float("nan")


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------


class _ScoreRequests:
    """Metadata routing of a scorer (scikit-learn's ``set_config(
    enable_metadata_routing=True)``): ``groups`` is requested by default
    when a metric ranks per group, and ``set_score_request`` changes it or
    requests ``sample_weight``.
    """

    def _needs_groups(self) -> bool:
        raise NotImplementedError

    def set_score_request(self, **requests: Any) -> Any:
        """Request metadata for the scorer: ``groups`` and ``sample_weight``.

        Parameters
        ----------
        **requests : bool, None or str
            ``groups=`` and ``sample_weight=``: True to receive it, False not
            to, or the name under which it is passed (an alias).

        Returns
        -------
        self : object
            The scorer.
        """
        unknown = sorted(set(requests) - {"groups", "sample_weight"})
        if unknown:
            raise ValueError(
                f"The scorer takes the metadata groups and sample_weight, got "
                f"{unknown}."
            )
        self._score_requests = {**getattr(self, "_score_requests", {}), **requests}
        return self

    def get_metadata_routing(self) -> MetadataRequest:
        """The metadata the scorer requests, for scikit-learn's routing."""
        request = MetadataRequest(owner=type(self).__name__)
        defaults = {"groups": True} if self._needs_groups() else {}
        for param, alias in {
            **defaults,
            **getattr(self, "_score_requests", {}),
        }.items():
            request.score.add_request(param=param, alias=alias)
        return request


class _TaskScorer(_ScoreRequests):
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

    def _needs_groups(self) -> bool:
        if isinstance(self.metric, str):
            return _METRICS[self.metric].grouped
        try:
            return "groups" in inspect.signature(self.metric).parameters
        except (TypeError, ValueError):
            return False

    def __call__(
        self,
        estimator: Any,
        X: Any,
        Y: Any,
        sample_weight: Any = None,
        groups: Any = None,
    ) -> float:
        """Score ``estimator`` on task ``task`` of ``(X, Y)``.

        Parameters
        ----------
        estimator : estimator
            A fitted multi-task model, or a pipeline ending in one.
        X : array-like or DataFrame of shape (n_samples, n_features)
            Input of ``estimator``.
        Y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True targets, with missing entries as in ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, restricted to the task's labelled rows.
        groups : array-like of shape (n_samples,), default=None
            The group (user, request) of every row, for the metrics that rank
            per group (``"gauc"``, ``"ndcg"``, a callable with a ``groups``
            parameter); restricted to the task's labelled rows.

        Returns
        -------
        score : float
            The score (greater is better), NaN if undefined on these rows.
        """
        return self._score(_Evaluation(estimator, X, Y, sample_weight, groups))

    def _score(self, evaluation: _Evaluation, k: int | None = None) -> float:
        """Score task ``k`` (default: the scorer's task) of ``evaluation``."""
        tasks = evaluation.tasks
        k = tasks.index(self.task) if k is None else k
        name, kind, classes = tasks.names[k], tasks.types[k], tasks.classes[k]
        scored_by = tasks.scored_by[k]
        self._check_task_type(name, kind, scored_by)
        y = evaluation.targets(k)
        labelled = ~missing_mask(y, tasks.missing)
        if not labelled.any():
            return _undefined(
                f"Task {name!r} has no labelled row to score {self.name} on."
            )
        method = self._response_method("classification" in scored_by)
        response = evaluation.response(method, k)[labelled]
        sample_weight = evaluation.sample_weight
        weights = None if sample_weight is None else sample_weight[labelled]
        groups = None if evaluation.groups is None else evaluation.groups[labelled]
        if "classification" not in scored_by:
            y_true = _as_float(y[labelled], name, "Y")
            response = _as_float(response, name, "the prediction")
        else:
            # Labels as plain arrays: an object column of a DataFrame (or of
            # the predictions of tasks with different label types) becomes
            # ints, bools or strings again, which scikit-learn's metrics
            # recognise.
            y_true = np.asarray(y[labelled].tolist())
            if method == "predict":
                response = np.asarray(response.tolist())
        if isinstance(self.metric, str):
            value = self._named_metric(y_true, response, classes, name, weights, groups)
        else:
            if method == "predict_proba":
                assert classes is not None  # a classification task (checked)
                if len(classes) == 2:
                    # As scikit-learn's scorers: the positive class's column.
                    pos = self.metric_kwargs.get("pos_label", classes[1])
                    column = _encode(np.array([pos]), classes, name)[0]
                    response = response[:, column]
            kwargs = dict(self.metric_kwargs)
            if weights is not None:
                kwargs["sample_weight"] = weights
            if groups is not None:
                kwargs["groups"] = groups
            value = self.metric(y_true, response, **kwargs)
            value = value if self.greater_is_better else -value
        return float(value)

    def _response_method(self, classification: bool) -> str:
        if isinstance(self.metric, str):
            return _METRICS[self.metric].response_method(classification)
        assert self.response_method is not None  # set for a callable metric
        return self.response_method

    def _check_task_type(
        self, name: str, kind: str, scored_by: tuple[str, ...]
    ) -> None:
        """A classification metric for a regression task is a mistake, and
        vice versa."""
        is_regression = "classification" not in scored_by
        if isinstance(self.metric, str):
            metric = _METRICS[self.metric]
            if metric.family not in scored_by:
                task = f"a {kind}" if is_regression else f"a {kind} classification"
                raise ValueError(
                    f"{self.metric!r} is a {metric.family} metric, but task "
                    f"{name!r} is {task} task; score it with a "
                    f"{' or '.join(scored_by)} metric."
                )
        elif is_regression and self.response_method == "predict_proba":
            raise ValueError(
                f"response_method='predict_proba' is for classification tasks, "
                f"but task {name!r} is a regression task; score it from "
                f"'predict'."
            )

    def _named_metric(
        self,
        y_true: np.ndarray,
        response: np.ndarray,
        classes: np.ndarray | None,
        name: str,
        weights: np.ndarray | None,
        groups: np.ndarray | None = None,
    ) -> float:
        metric = _METRICS[cast(str, self.metric)]  # a named metric
        kwargs = {**metric.kwargs, **self.metric_kwargs}
        if metric.grouped:
            kwargs["groups"] = self._check_groups(groups)
        if metric.kind in ("grouped_auc", "relevance"):
            return self._per_group_metric(
                metric, y_true, response, classes, name, weights, kwargs
            )
        if metric.family != "classification":  # numeric targets
            return metric.sign * metric.function(
                y_true, response, sample_weight=weights, **kwargs
            )
        if metric.kind == "label":
            if metric.binary_only:
                assert classes is not None  # a classification task (checked)
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
        assert classes is not None  # a classification task (checked)
        codes = _encode(y_true, classes, name)
        if metric.kind == "probability":
            return metric.sign * metric.function(
                codes,
                response,
                labels=list(range(len(classes))),
                sample_weight=weights,
                **kwargs,
            )

        return self._score_metric(
            metric, codes, response, classes, name, weights, kwargs
        )

    def _check_groups(self, groups: np.ndarray | None) -> np.ndarray:
        """``groups`` for a metric that ranks the rows of each group."""
        if groups is None:
            raise ValueError(
                f"{self.metric!r} ranks the rows of each group: pass groups "
                f"(one per row of X) to the scorer; in a search or "
                f"cross-validation, enable scikit-learn's metadata routing "
                f"(sklearn.set_config(enable_metadata_routing=True)) and "
                f"pass groups to fit or in params."
            )
        return groups

    @staticmethod
    def _per_group_metric(metric, y_true, response, classes, name, weights, kwargs):
        """A metric computed per group and averaged (group AUC, NDCG)."""
        if classes is not None:
            # A binary task: its labels are the gains (1 for the positive
            # class), its positive class's probability the score.
            pos_label = kwargs.pop("pos_label", classes[1])
            pos = _encode(np.array([pos_label]), classes, name)[0]
            y_true = (_encode(y_true, classes, name) == pos).astype(np.float64)
            response = response[:, pos]
        return metric.function(y_true, response, sample_weight=weights, **kwargs)

    def _score_metric(self, metric, codes, response, classes, name, weights, kwargs):
        """A metric of the scores (ROC AUC, average precision) of a
        classification task: binary, or one-vs-rest over the classes present."""
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
                stacklevel=4,
            )
        # One-vs-rest on the classes present, each from its own column.
        indicator = codes[:, None] == present[None, :]
        return metric.function(
            indicator, response[:, present], sample_weight=weights, **kwargs
        )


class _TaskMeanScorer(_ScoreRequests):
    """``scorer(estimator, X, Y)``: the mean of task scorers of one metric.

    NaN if any task's score is NaN: the mean over the tasks is undefined
    then. The model predicts once for all tasks.
    """

    def __init__(self, scorers: Sequence[_TaskScorer]) -> None:
        self.scorers = list(scorers)

    def __repr__(self) -> str:
        return f"mean({', '.join(map(repr, self.scorers))})"

    def _needs_groups(self) -> bool:
        return any(scorer._needs_groups() for scorer in self.scorers)

    def __call__(
        self,
        estimator: Any,
        X: Any,
        Y: Any,
        sample_weight: Any = None,
        groups: Any = None,
    ) -> float:
        evaluation = _Evaluation(estimator, X, Y, sample_weight, groups)
        return float(np.mean([scorer._score(evaluation) for scorer in self.scorers]))


def _layout(
    plan: Mapping[str, Sequence[Any]], suffixes: Mapping[Any, str], mean: bool
) -> list[tuple[str, str, list[Any]]]:
    """The keys of a multi-metric scoring, in order.

    ``plan`` maps each metric to the tasks it scores, ``suffixes`` each task
    to its name in the keys. Gives ``(key, metric, tasks)``: one entry per
    metric and task, then (with ``mean``) one for the mean of each metric
    that scores at least two tasks, whose ``tasks`` lists them all.
    """
    entries: list[tuple[str, str, list[Any]]] = []
    for metric, tasks in plan.items():
        entries.extend((f"{metric}_{suffixes[task]}", metric, [task]) for task in tasks)
        if mean and len(tasks) > 1:
            if any(suffixes[task] == "mean" for task in tasks):
                raise ValueError(
                    f"A task named 'mean' would clash with the mean of {metric!r} "
                    f"over tasks; pass mean=False or score that task by index."
                )
            entries.append((f"{metric}_mean", metric, list(tasks)))
    keys = [key for key, _, _ in entries]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(
            f"The scores would have duplicate keys {duplicates} (a metric name "
            f"followed by a task name is ambiguous); rename the tasks."
        )
    return entries


class _MultiTaskScorer(_ScoreRequests):
    """``scorer(estimator, X, Y) -> dict``: metrics on the fitted tasks.

    Each metric scores every task of its kind (classification metrics the
    classification tasks, regression metrics the regression tasks), found
    at scoring time from the fitted model.
    """

    def __init__(self, metrics: list[str], mean: bool) -> None:
        self.metrics = metrics
        self.mean = mean

    def __repr__(self) -> str:
        mean = "" if self.mean else ", mean=False"
        metrics = self.metrics[0] if len(self.metrics) == 1 else self.metrics
        return f"multitask_scoring({metrics!r}{mean})"

    def _needs_groups(self) -> bool:
        return any(_METRICS[metric].grouped for metric in self.metrics)

    def __call__(
        self,
        estimator: Any,
        X: Any,
        Y: Any,
        sample_weight: Any = None,
        groups: Any = None,
    ) -> dict[str, float]:
        """Score every fitted task of ``estimator`` on ``(X, Y)``.

        Parameters
        ----------
        estimator : estimator
            A fitted multi-task model, or a pipeline ending in one.
        X : array-like or DataFrame of shape (n_samples, n_features)
            Input of ``estimator``.
        Y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True targets, with missing entries as in ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, restricted to each task's labelled rows.
        groups : array-like of shape (n_samples,), default=None
            The group of every row, for the metrics that rank per group.

        Returns
        -------
        scores : dict
            ``{"<metric>_<task>": score}`` by the fitted task names, and
            ``"<metric>_mean"`` for each metric that scores several tasks.
        """
        evaluation = _Evaluation(estimator, X, Y, sample_weight, groups)
        tasks = evaluation.tasks
        plan = {}
        for metric in self.metrics:
            family = _METRICS[metric].family
            plan[metric] = [
                k for k, families in enumerate(tasks.scored_by) if family in families
            ]
            if not plan[metric]:
                raise ValueError(
                    f"{metric!r} is a {family} metric, but the "
                    f"model has no {family} task: its tasks are "
                    f"{tasks.describe()}. Choose metrics for these task types, or "
                    f"give each task its metrics: multitask_scoring({{task: "
                    f"metrics}})."
                )
        suffixes = dict(enumerate(tasks.names))
        scores: dict[tuple[str, int], float] = {}
        result = {}
        for key, metric, ks in _layout(plan, suffixes, self.mean):
            for k in ks:
                if (metric, k) not in scores:
                    scorer = _TaskScorer(metric, k, None, True, {})
                    scores[metric, k] = scorer._score(evaluation, k)
            result[key] = float(np.mean([scores[metric, k] for k in ks]))
        return result


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


def _check_metric_names(metrics: Any, where: str = "metrics") -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    names = [_check_metric_name(metric) for metric in metrics]
    if not names:
        raise ValueError(f"{where} must name at least one metric.")
    if len(set(names)) != len(names):
        raise ValueError(f"{where} has duplicates: {list(metrics)}.")
    return names


def _suffix(task: int | str) -> str:
    """A task's name in the keys: its name, or ``task<k>`` for an index."""
    return task if isinstance(task, str) else default_task_name(task)


def task_scorer(
    metric: str | Callable[..., float],
    task: int | str,
    *,
    response_method: str | None = None,
    greater_is_better: bool = True,
    **metric_kwargs: Any,
) -> Callable[..., float]:
    """Scorer that evaluates a single task of a multi-task model.

    The scorer drops the rows whose target for ``task`` is missing (equal to
    the model's ``missing_label`` or ``missing_target``, NaN or None) and
    computes ``metric`` on the others, from the task's column of
    ``predict_proba`` or ``predict``.

    Read more in the :ref:`User Guide <scoring>`.

    Parameters
    ----------
    metric : str or callable
        A metric name. For a classification task (binary or multiclass):

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

        Ranking per group (with ``groups``, one per row, passed to the
        scorer or routed to it by scikit-learn's metadata routing):
        ``"gauc"`` (:func:`gauc_score`, binary tasks) and ``"ndcg"``
        (:func:`ndcg_at_k_score`, ``k=10`` unless given; binary tasks, their
        labels as gains, and regression tasks, their targets as gains).

        For a regression task, from ``predict``: ``"r2"``,
        ``"neg_mean_squared_error"``, ``"neg_mean_absolute_error"`` and
        ``"neg_root_mean_squared_error"`` (errors, negated so that greater is
        better). A count task (``loss="poisson"``) takes these and
        ``"neg_mean_poisson_deviance"`` (the mean Poisson deviance, negated).
        A classification metric on a regression task, or a regression metric
        on a classification task, is a ``ValueError``.

        Or a callable ``metric(y_true, y_pred, **kwargs)`` that receives the
        task's true targets on its labelled rows and, as chosen by
        ``response_method``, the predictions or the probabilities (for a
        binary task the positive class's column only, as in scikit-learn's
        scorers; for a multiclass task all of them); also ``sample_weight``
        when the scorer is given one, and ``groups`` when it is given
        them (requested by default, under metadata routing, when the callable
        has a ``groups`` parameter). A regression task's targets and
        predictions are float arrays.

    task : int or str
        The task: a column index of ``Y``, or a task name (a column of the
        DataFrame ``Y`` the model was fitted on, as in its ``task_names_``).

    response_method : {"predict", "predict_proba"}, default=None
        For a callable ``metric``: which method of the estimator gives its
        second argument; ``None`` means ``"predict"`` (the only one for a
        regression task). Named metrics know their own, so it must be left
        to ``None`` for them.

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
        ``scorer(estimator, X, Y, sample_weight=None, groups=None) -> float``,
        where ``estimator`` is a fitted multi-task model of ``sk_mmoe`` (a
        single-task one too), another fitted multi-output classifier or
        regressor, or a pipeline that ends in one. The model's tasks are its
        ``task_types_`` where it has them; otherwise a model with ``classes_``
        has classification tasks and a regressor regression tasks. The score
        is NaN, with an :class:`~sklearn.exceptions.UndefinedMetricWarning`,
        if the task has no labelled row in ``Y`` or if a metric of predicted
        scores (``"roc_auc"``, ``"average_precision"``) sees a single class among
        them; in a cross-validation this fold's score is then NaN, as with
        scikit-learn's ``error_score=np.nan``. For a multiclass task, the
        one-vs-rest metrics of scores average over the classes present among
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
    metrics: str | Sequence[str] | Mapping[int | str, str | Sequence[str]],
    tasks: Sequence[int | str] | None = None,
    *,
    n_tasks: int | None = None,
    mean: bool = True,
) -> Callable[..., dict[str, float]] | dict[str, Callable[..., float]]:
    """Per-task scores for multi-metric evaluation and model selection.

    Scores every metric on every task it is asked for, to pass as ``scoring``
    to :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate` and friends. Every key
    ``"<metric>_<task>"`` (and ``"<metric>_mean"``) can be given to
    ``refit``. Three forms:

    - ``multitask_scoring(metrics)``: the tasks are those of the fitted
      model, found at scoring time. Returns one callable
      ``scorer(estimator, X, Y) -> dict``, which scikit-learn accepts as a
      multi-metric ``scoring``. Each metric scores every task of its kind:
      a classification metric the classification tasks, a regression
      metric the regression tasks (an error if the model has none).
    - ``multitask_scoring(metrics, tasks)`` (or ``n_tasks=K``): every metric
      on every task listed. Returns a dict of :func:`task_scorer`.
    - ``multitask_scoring({task: metrics, ...})``: different metrics for
      different tasks, e.g. ``{"click": ["roc_auc", "accuracy"],
      "watch_time": "r2"}``. Returns a dict of :func:`task_scorer`.

    Read more in the :ref:`User Guide <scoring>`.

    Parameters
    ----------
    metrics : str, list of str or dict
        Metric names, as in :func:`task_scorer`; or a dict that maps each
        task (a name or a column index) to its metric name(s).

    tasks : list of str or int, default=None
        The tasks to score, by name (the columns of a DataFrame ``Y``) or by
        column index. ``None`` (and ``n_tasks=None``): the tasks of the
        fitted model. Not allowed with a dict ``metrics``.

    n_tasks : int, default=None
        Instead of ``tasks``: score the tasks ``0 .. n_tasks - 1`` by index.

    mean : bool, default=True
        Add, for each metric that scores at least two tasks, the mean of its
        scores over those tasks, under the key ``"<metric>_mean"``. It is
        NaN when a task's score is. It is a plain mean: for regression
        tasks in different units, prefer ``"r2_mean"`` to a mean of errors.

    Returns
    -------
    scoring : callable or dict
        Without ``tasks`` and ``n_tasks`` and with a list ``metrics``: a
        callable ``scorer(estimator, X, Y, sample_weight=None, groups=None)``
        that returns the dict ``{"<metric>_<task>": score}`` by the fitted task names
        (``task_names_``), the model predicting once per response method.
        Otherwise the dict ``{"<metric>_<task>": scorer}``, where ``<task>``
        is the task's name, or ``"task<k>"`` for a task given by index ``k``
        (the name the model gives column ``k`` of a ``Y`` without column
        names). ``<metric>`` is the metric's name as listed in
        :func:`task_scorer` (``"log_loss"`` gives ``"neg_log_loss_<task>"``,
        since the scorer returns the negated loss). The keys are ordered
        metric by metric (in order of first mention), each metric's tasks in
        the model's (or the given) order followed by its mean.

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
    >>> clf = MultiTaskMMoEClassifier(max_epochs=3, random_state=0)
    >>> scoring = multitask_scoring(["roc_auc", "accuracy"])
    >>> cv = cross_validate(clf, X, Y, scoring=scoring, cv=3)
    >>> sorted(key for key in cv if key.startswith("test_roc_auc"))
    ['test_roc_auc_mean', 'test_roc_auc_task0', 'test_roc_auc_task1']

    Tasks named in advance give a dict of scorers:

    >>> scoring = multitask_scoring(["roc_auc", "accuracy"], n_tasks=2)
    >>> list(scoring)  # doctest: +NORMALIZE_WHITESPACE
    ['roc_auc_task0', 'roc_auc_task1', 'roc_auc_mean',
     'accuracy_task0', 'accuracy_task1', 'accuracy_mean']
    >>> list(multitask_scoring({0: ["roc_auc", "accuracy"], 1: "roc_auc"}))
    ['roc_auc_task0', 'roc_auc_task1', 'roc_auc_mean', 'accuracy_task0']
    """
    if isinstance(metrics, Mapping):
        if tasks is not None or n_tasks is not None:
            raise ValueError(
                "metrics is a dict that names the tasks: pass neither tasks nor "
                "n_tasks with it."
            )
        plan = _plan_by_task(metrics)
        return _scoring_dict(plan, mean)
    names = _check_metric_names(metrics)
    if tasks is not None and n_tasks is not None:
        raise ValueError(
            "Pass at most one of tasks and n_tasks (neither: the tasks of the "
            "fitted model)."
        )
    if tasks is None and n_tasks is None:
        return _MultiTaskScorer(names, bool(mean))
    if n_tasks is not None:
        if (
            not isinstance(n_tasks, numbers.Integral)
            or isinstance(n_tasks, bool | np.bool_)
            or n_tasks < 1
        ):
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}.")
        tasks = range(n_tasks)
    if isinstance(tasks, str):
        tasks = [tasks]
    assert tasks is not None  # given, or from n_tasks
    tasks = [_check_task(task) for task in tasks]
    if not tasks:
        raise ValueError("tasks must name at least one task.")
    suffixes = [_suffix(task) for task in tasks]
    if len(set(suffixes)) != len(suffixes):
        raise ValueError(f"tasks has duplicates: {suffixes}.")
    return _scoring_dict({name: tasks for name in names}, mean)


def _plan_by_task(metrics: Mapping[Any, Any]) -> dict[str, list[int | str]]:
    """``{task: metrics}`` turned into ``{metric: tasks}``, in order."""
    if not metrics:
        raise ValueError("metrics must name at least one task.")
    plan: dict[str, list[int | str]] = {}
    seen: dict[str, Any] = {}
    for task, names in metrics.items():
        task = _check_task(task)
        suffix = _suffix(task)
        if suffix in seen:
            raise ValueError(
                f"metrics names the task {suffix!r} twice ({seen[suffix]!r} and "
                f"{task!r})."
            )
        seen[suffix] = task
        for name in _check_metric_names(names, where=f"metrics[{task!r}]"):
            plan.setdefault(name, []).append(task)
    return plan


def _scoring_dict(
    plan: Mapping[str, Sequence[int | str]], mean: bool
) -> dict[str, Callable[..., float]]:
    suffixes = {task: _suffix(task) for tasks in plan.values() for task in tasks}
    scoring: dict[str, Callable[..., float]] = {}
    for key, metric, tasks in _layout(plan, suffixes, bool(mean)):
        scorers = [_TaskScorer(metric, task, None, True, {}) for task in tasks]
        is_mean = len(tasks) > 1
        scoring[key] = _TaskMeanScorer(scorers) if is_mean else scorers[0]
    return scoring
