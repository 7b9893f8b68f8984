"""Task types: what each column of ``Y`` is, and how the network learns it.

A task type knows, for one column of ``Y``, how to learn its encoding from
the labelled entries (:meth:`Task.fit`), how to encode targets for the loss
(:meth:`Task.encode`), how wide the network's output for it is
(:attr:`Task.n_outputs`), which loss trains it (:attr:`Task.loss`), how to
turn the network's outputs back into predictions (:meth:`Task.decode`), and
its default score (:meth:`Task.score`).

The estimators only talk to tasks through this interface, so a new kind of
task (ordinal, count...) is one new class registered in :data:`TASK_TYPES`
plus, if it needs one, a new per-row loss in :mod:`sk_mmoe.losses`.

Encoded targets are float32, with NaN where an entry is missing: class
indices for classification tasks, standardised values for regression tasks.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.multiclass import type_of_target

__all__ = [
    "TASK_TYPES",
    "ClassificationTask",
    "RegressionTask",
    "Task",
    "infer_task_type",
    "make_task",
    "task_from_state",
]


class Task(ABC):
    """One column of ``Y``: its name, type and learned encoding."""

    #: The type names this class implements, as in ``task_types``.
    kinds: ClassVar[tuple[str, ...]]
    #: The per-row loss of :class:`sk_mmoe.losses.MultiTaskLoss` for the task.
    loss: ClassVar[str]

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind

    @property
    @abstractmethod
    def n_outputs(self) -> int:
        """Width of the network's output for this task."""

    @abstractmethod
    def fit(
        self, values: np.ndarray, known: Any = None, sample_weight: Any = None
    ) -> Task:
        """Learn the encoding from the labelled entries ``values``.

        ``known`` is what the user declared in advance (the classes of a
        classification task in ``partial_fit``), or None. ``sample_weight``
        are the row weights of ``values``, or None.
        """

    @abstractmethod
    def encode(self, values: np.ndarray) -> np.ndarray:
        """Float32 targets of the labelled entries ``values``."""

    @abstractmethod
    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """Predictions from the network's outputs ``(n, n_outputs)``."""

    @abstractmethod
    def score(
        self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Any = None
    ) -> float:
        """The task's default score: accuracy or R^2."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The learned encoding as plain values (see :func:`task_from_state`)."""

    @abstractmethod
    def check_compatible(self, other: Task) -> None:
        """Raise a ValueError unless ``other`` can continue training this task."""


class ClassificationTask(Task):
    """A binary or multiclass task: labels encoded to class indices."""

    kinds = ("binary", "multiclass")
    loss = "cross_entropy"

    def __init__(self, name: str, kind: str, classes: np.ndarray | None = None):
        super().__init__(name, kind)
        self.classes = classes

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def fit(
        self, values: np.ndarray, known: Any = None, sample_weight: Any = None
    ) -> ClassificationTask:
        values = _homogeneous_labels(values, self.name)
        _check_classification(values, self.name)
        if known is None:
            classes = np.unique(values)
            if classes.size < 2:
                raise ValueError(
                    f"Task {self.name!r} has only one class ({classes[0]!r}) among "
                    f"its labelled rows; a classification task needs at least 2."
                )
        else:
            classes = np.unique(np.asarray(known))
            if classes.size < 2:
                raise ValueError(
                    f"classes for task {self.name!r} must list at least 2 classes, "
                    f"got {classes.tolist()!r}."
                )
        self.classes = classes
        if self.kind == "binary" and classes.size > 2:
            raise ValueError(
                f"Task {self.name!r} was declared 'binary' but has "
                f"{classes.size} classes; declare it 'multiclass'."
            )
        self._check_known(values)
        return self

    def _check_known(self, values: np.ndarray) -> None:
        unknown = np.setdiff1d(np.unique(values), self.classes)
        if unknown.size:
            raise ValueError(
                f"Task {self.name!r} has labels {unknown.tolist()!r} that are not in "
                f"its classes {self.classes.tolist()!r}."
            )

    def encode(self, values: np.ndarray) -> np.ndarray:
        values = _homogeneous_labels(values, self.name)
        self._check_known(values)
        return np.searchsorted(self.classes, values).astype(np.float32)

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        return self.classes[outputs.argmax(axis=1)]

    def score(
        self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Any = None
    ) -> float:
        return float(
            accuracy_score(
                y_true.tolist(), y_pred.tolist(), sample_weight=sample_weight
            )
        )

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "classes": self.classes.tolist(),
            "dtype": self.classes.dtype.str,
        }

    def check_compatible(self, other: Task) -> None:
        if not (
            isinstance(other, ClassificationTask)
            and other.classes.shape == self.classes.shape
            and np.array_equal(other.classes, self.classes)
        ):
            raise ValueError(
                f"Task {self.name!r} must keep its classes "
                f"{self.classes.tolist()!r} to continue training (warm_start or "
                f"partial_fit), got {_describe(other)}."
            )


class RegressionTask(Task):
    """A continuous task, standardised so that tasks of any unit train together.

    The network learns ``(y - mean) / scale``; predictions are returned in the
    original units. ``mean`` and ``scale`` are those of the labelled entries
    of the first fit (``partial_fit``: of the first chunk), weighted by the
    sample weights if any.
    """

    kinds = ("regression",)
    loss = "regression"

    def __init__(
        self, name: str, kind: str = "regression", mean: float = 0.0, scale: float = 1.0
    ):
        super().__init__(name, kind)
        self.mean = mean
        self.scale = scale

    @property
    def n_outputs(self) -> int:
        return 1

    def _as_float(self, values: np.ndarray) -> np.ndarray:
        if values.dtype.kind in "USO" and any(
            isinstance(v, str | bytes) for v in values.tolist()
        ):
            raise ValueError(
                f"Task {self.name!r} is a regression task, but its labelled "
                f"entries are not all numbers: it has strings."
            )
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"Task {self.name!r} is a regression task, but its labelled "
                f"entries are not all numbers."
            ) from None
        if not np.isfinite(values).all():
            raise ValueError(
                f"Task {self.name!r} has infinite targets; only finite values "
                f"(or NaN for a missing target) are allowed."
            )
        return values

    def fit(
        self, values: np.ndarray, known: Any = None, sample_weight: Any = None
    ) -> RegressionTask:
        values = self._as_float(values)
        # Weighted as the loss is, so that a row of weight 0 is a dropped row.
        weights = None
        if sample_weight is not None and np.sum(sample_weight) > 0:
            weights = np.asarray(sample_weight, dtype=np.float64)
        self.mean = float(np.average(values, weights=weights))
        scale = float(np.sqrt(np.average((values - self.mean) ** 2, weights=weights)))
        # A constant target keeps its units: nothing to standardise.
        self.scale = scale if scale > 0 and np.isfinite(scale) else 1.0
        return self

    def encode(self, values: np.ndarray) -> np.ndarray:
        encoded = (self._as_float(values) - self.mean) / self.scale
        if not np.isfinite(encoded.astype(np.float32)).all():
            raise ValueError(
                f"Task {self.name!r} has targets too large to train on once "
                f"standardised with the first fit's mean and scale."
            )
        return encoded.astype(np.float32)

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        return outputs[:, 0].astype(np.float64) * self.scale + self.mean

    def score(
        self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Any = None
    ) -> float:
        return float(
            r2_score(
                np.asarray(y_true, dtype=np.float64),
                y_pred,
                sample_weight=sample_weight,
            )
        )

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "mean": self.mean,
            "scale": self.scale,
        }

    def check_compatible(self, other: Task) -> None:
        if not isinstance(other, RegressionTask):
            raise ValueError(
                f"Task {self.name!r} is a regression task and must stay one to "
                f"continue training (warm_start or partial_fit), got "
                f"{_describe(other)}."
            )


#: Task type name -> the class that implements it.
TASK_TYPES: dict[str, type[Task]] = {
    kind: cls for cls in (ClassificationTask, RegressionTask) for kind in cls.kinds
}


def make_task(kind: str, name: str) -> Task:
    """An unfitted task of type ``kind`` (a key of :data:`TASK_TYPES`)."""
    return TASK_TYPES[kind](name, kind)


def task_from_state(state: dict[str, Any]) -> Task:
    """The task that :meth:`Task.state` described."""
    kind = state["kind"]
    if kind not in TASK_TYPES:
        raise ValueError(f"unknown task type {kind!r}")
    if TASK_TYPES[kind] is ClassificationTask:
        classes = np.array(state["classes"], dtype=np.dtype(state["dtype"]))
        return ClassificationTask(str(state["name"]), kind, classes)
    return RegressionTask(
        str(state["name"]), kind, float(state["mean"]), float(state["scale"])
    )


def infer_task_type(values: np.ndarray, name: str) -> str:
    """``"binary"``, ``"multiclass"`` or ``"regression"`` from labelled entries.

    As scikit-learn's :func:`~sklearn.utils.multiclass.type_of_target`: floats
    that are not all integers are continuous, anything else is classes.
    """
    try:
        target_type = type_of_target(_homogeneous_labels(values, name), input_name="Y")
    except ValueError as exc:  # e.g. infinite values
        raise ValueError(f"Task {name!r}: {exc}") from None
    if target_type in ("binary", "multiclass"):
        return target_type
    if target_type == "continuous":
        return "regression"
    raise ValueError(
        f"Task {name!r} has {target_type} values; each column of Y must hold "
        f"class labels or numbers."
    )


def _describe(task: Task) -> str:
    if isinstance(task, ClassificationTask):
        return f"a {task.kind} task with classes {task.classes.tolist()!r}"
    return f"a {task.kind} task"


def _homogeneous_labels(values: np.ndarray, name: str) -> np.ndarray:
    """Labels of an object column as a sortable array."""
    if values.dtype != object:
        return values
    kinds = {type(v) for v in values}
    if all(issubclass(t, str) for t in kinds):
        return values
    if all(issubclass(t, numbers.Number | np.bool_) for t in kinds):
        return np.asarray(values.tolist())
    raise TypeError(
        f"Task {name!r} mixes label types {sorted(t.__name__ for t in kinds)}; "
        f"the labels of a task must be all strings or all numbers."
    )


def _check_classification(values: np.ndarray, name: str) -> None:
    target_type = type_of_target(values, input_name="Y")
    if target_type not in ("binary", "multiclass"):
        raise ValueError(
            f"Unknown label type: task {name!r} has {target_type} values; a "
            f"classification task needs class labels (for example ints, bools "
            f"or strings), not continuous targets. Use MultiTaskMMoERegressor "
            f"or MultiTaskMMoE for continuous targets."
        )
