"""Task types: what each column of ``Y`` is, and how the network learns it.

A task type knows, for one column of ``Y``, how to learn its encoding from
the labelled entries (:meth:`Task.fit`), how to encode targets for the loss
(:meth:`Task.encode`), how wide the network's output for it is
(:attr:`Task.n_outputs`), which per-row loss of :mod:`sk_mmoe.nn.losses` trains
it (:attr:`Task.loss`), the torch prediction head that turns the network's
outputs into probabilities or values (:meth:`Task.head`, run by ``predict``
and by the ONNX export alike), how to read predictions from the head
(:meth:`Task.decode`, :meth:`Task.proba`), its share of a ranking score
(:meth:`Task.rank_values`), its class weights, its fitted attributes, its
saved state, its default score and the family of :mod:`sk_mmoe.metrics`
metrics that score it.

This is the only module that names task classes or branches on a task's
type: the estimators, the loss, the export, the persistence and the metrics
only talk to tasks through this interface, so a new kind of task (ordinal,
count...) is one new class registered in :data:`TASK_TYPES` plus, if it
needs one, a new per-row loss in :mod:`sk_mmoe.nn.losses`.

A binary task can be conditional on another (:class:`ConditionalTask`,
ESMM): its tower learns the conditional probability given its parent's
positive class, and its head and loss read the joint probability.

Encoded targets are float32, with NaN where an entry is missing: class
indices for classification tasks, standardised values for regression tasks,
counts over their mean for count tasks.
"""

from __future__ import annotations

import numbers
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, cast

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    d2_tweedie_score,
    mean_poisson_deviance,
    r2_score,
)
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import type_of_target

__all__ = [
    "TASK_TYPES",
    "ClassificationTask",
    "ConditionalTask",
    "PoissonTask",
    "RegressionTask",
    "Task",
    "infer_task_type",
    "accepts_loss",
    "complete_targets",
    "condition_tasks",
    "make_task",
    "task_from_state",
    "task_outputs",
    "task_type",
]


class Task(ABC):
    """One column of ``Y``: its name, type and learned encoding."""

    #: The type names this class implements, as in ``task_types``.
    kinds: ClassVar[tuple[str, ...]]
    #: The per-row losses of :data:`sk_mmoe.nn.losses.ROW_LOSSES` that can train
    #: the task; the first is the default.
    losses: ClassVar[tuple[str, ...]]
    #: The family of the task's own :attr:`metrics` in :mod:`sk_mmoe.metrics`.
    metric_family: ClassVar[str]
    #: Metrics of the task's family that :mod:`sk_mmoe.metrics` offers by
    #: name: ``{name: (metric(y_true, y_pred, sample_weight=None), sign)}``,
    #: the sign -1 for a loss (scorers return the negated loss).
    metrics: ClassVar[dict[str, tuple[Callable[..., float], float]]] = {}
    #: Whether ``predict_proba`` gives the task's class probabilities.
    has_proba: ClassVar[bool] = False
    #: Whether ``partial_fit`` must be told the task's classes on its first call.
    declares_classes: ClassVar[bool] = False
    #: Factor of uncertainty weighting on the task's loss: 1/2 for a Gaussian
    #: likelihood (squared error), 1 otherwise.
    uncertainty_scale: ClassVar[float] = 1.0
    #: Fitted attributes of the estimators, for the tasks they do not apply to.
    classes: np.ndarray | None = None
    mean: float = float("nan")
    scale: float = float("nan")

    def __init__(self, name: str, kind: str, loss: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.loss = self.losses[0] if loss is None else loss

    @property
    @abstractmethod
    def scored_by(self) -> tuple[str, ...]:
        """The metric families of :mod:`sk_mmoe.metrics` that score the task.

        Besides the task's own: ``"binary"`` (group AUC) for a binary task,
        ``"ranking"`` (NDCG per group) for a task whose score orders rows by
        relevance, its prediction or a binary task's positive class's
        probability, against its targets or labels as gains.
        """

    @property
    def parent(self) -> int | None:
        """The position of the task this task is conditional on; None if none."""
        return None

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

    def outputs(self, outputs: torch.Tensor, k: int) -> torch.Tensor:
        """The outputs ``(n, width)`` that the task's head and loss read.

        ``outputs`` are the network's outputs of every task, ``(n, n_tasks,
        width)``, and ``k`` the task's position. A task reads its own
        tower's; a task whose prediction depends on other tasks' (a
        conditional task reading its parent's) overrides this, and
        :func:`task_outputs` then applies it in the loss too.
        """
        return outputs[:, k]

    def own_outputs(self, outputs: torch.Tensor, k: int) -> torch.Tensor:
        """The outputs of the task's own tower, before :meth:`outputs`
        combines them with other tasks' (``predict_conditional_proba``)."""
        return outputs[:, k]

    def completed(
        self, k: int, tasks: list[Task], columns: list[np.ndarray], labelled: list
    ) -> tuple[np.ndarray, np.ndarray]:
        """The task's column of ``Y`` and its labelled mask, given every
        task's: a task whose targets follow from other tasks' (a conditional
        task where its parent is negative) fills them in."""
        return columns[k], labelled[k]

    @abstractmethod
    def head(self, outputs: torch.Tensor) -> torch.Tensor:
        """The prediction head: the task's network outputs ``(n, width)`` to
        probabilities ``(n, n_classes)`` or values ``(n,)`` in the target's
        units (float64), as ``predict_proba`` / ``predict`` and the ONNX graph
        give them."""

    @abstractmethod
    def decode(self, head: np.ndarray) -> np.ndarray:
        """Predictions from the output of :meth:`head`."""

    def proba(self, head: np.ndarray) -> np.ndarray | None:
        """Class probabilities from the output of :meth:`head`; None if none."""
        return None

    def rank_values(self, weight: Any) -> np.ndarray:
        """The value of each column of :meth:`head` in a ranking score.

        ``weight`` is the task's entry in the ``weights`` of ``rank_score``
        (None: the task counts 0); the score adds the head, as a 2-D array,
        times these values. A task with numeric targets takes a number: its
        prediction, in its own units, times the weight.
        """
        if weight is None:
            return np.zeros(self.n_outputs)
        if not _is_number(weight):
            raise ValueError(
                f"Task {self.name!r} is {self.describe()}: its weight must be a "
                f"number, got {weight!r}."
            )
        return _finite_values(self.name, [float(weight)])

    def known_classes(self) -> np.ndarray | None:
        """What continued training must declare as fixed (the classes)."""
        return None

    def class_weights(self, entry: Any, codes: np.ndarray) -> np.ndarray | None:
        """The per-class loss weights of a ``class_weight`` entry.

        ``codes`` are the encoded labelled targets (for ``"balanced"``).
        """
        if entry is not None:
            raise ValueError(
                f"class_weight for task {self.name!r} must be None: it is a "
                f"{self.kind} task."
            )
        return None

    @abstractmethod
    def score(
        self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Any = None
    ) -> float:
        """The task's default score: accuracy or R^2."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The learned encoding as plain values (see :func:`task_from_state`)."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any]) -> Task:
        """The task that :meth:`state` described."""

    @abstractmethod
    def check_compatible(self, other: Task) -> None:
        """Raise a ValueError unless ``other`` can continue training this task."""

    def metadata(self) -> dict[str, Any]:
        """What a server needs to read the task's ONNX output (JSON values)."""
        return {"name": self.name, "type": self.kind, "output": self.name}

    def describe(self) -> str:
        return f"a {self.kind} task"


class ClassificationTask(Task):
    """A binary or multiclass task: labels encoded to class indices."""

    kinds = ("binary", "multiclass")
    losses = ("cross_entropy",)
    metric_family = "classification"
    has_proba = True
    declares_classes = True

    def __init__(
        self,
        name: str,
        kind: str,
        classes: np.ndarray | None = None,
        loss: str | None = None,
    ):
        super().__init__(name, kind, loss)
        self.classes = classes

    @property
    def _classes(self) -> np.ndarray:
        """``classes``, which the constructor or :meth:`fit` sets."""
        assert self.classes is not None
        return self.classes

    @property
    def n_outputs(self) -> int:
        return len(self._classes)

    @property
    def scored_by(self) -> tuple[str, ...]:
        # A binary task's labels and positive class's probability are also
        # scored per group: by "binary" metrics (group AUC) and by ranking
        # ones (the labels as gains).
        if self.kind == "binary":
            return ("classification", "binary", "ranking")
        return ("classification",)

    def fit(
        self, values: np.ndarray, known: Any = None, sample_weight: Any = None
    ) -> ClassificationTask:
        # Every check below reads the distinct labels only (the type of
        # target too): computed once.
        labels = _distinct(_homogeneous_labels(values, self.name))
        _check_classification(labels, self.name)
        if known is None:
            classes = labels
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
        if known is not None:  # classes from the labels hold them all
            self._check_known(labels)
        return self

    def _check_known(self, values: np.ndarray) -> None:
        unknown = np.setdiff1d(values, self._classes)
        if unknown.size:
            raise ValueError(
                f"Task {self.name!r} has labels {unknown.tolist()!r} that are not in "
                f"its classes {self._classes.tolist()!r}."
            )

    def encode(self, values: np.ndarray) -> np.ndarray:
        values = _homogeneous_labels(values, self.name)
        classes = self._classes
        codes = np.searchsorted(classes, values)
        # A label is known where the class at its position is the label.
        found = classes[np.minimum(codes, classes.size - 1)] == values
        if not np.all(found):
            self._check_known(values[~np.asarray(found, dtype=bool)])
        return codes.astype(np.float32)

    def head(self, outputs: torch.Tensor) -> torch.Tensor:
        # Only the task's own columns: the -inf padding of narrower tasks
        # never reaches the softmax.
        return torch.softmax(outputs[:, : self.n_outputs], dim=-1)

    def proba(self, head: np.ndarray) -> np.ndarray:
        proba = head.astype(np.float64)
        # Renormalise in float64 so that rows sum to 1 to double precision.
        return proba / proba.sum(axis=1, keepdims=True)

    def decode(self, head: np.ndarray) -> np.ndarray:
        return self._classes[head.argmax(axis=1)]

    def rank_values(self, weight: Any) -> np.ndarray:
        """A number counts the positive class's probability of a binary task;
        a dict from class to value or a sequence of one value per class (in
        the order of ``classes``) adds the expected value of the class."""
        if weight is None:
            return np.zeros(self.n_outputs)
        classes = self._classes.tolist()
        if _is_number(weight):
            if self.kind != "binary" or self.n_outputs != 2:
                raise ValueError(
                    f"Task {self.name!r} is {self.kind} with the classes "
                    f"{classes}: give its weight as a value per class, a dict "
                    f"from class to value or a sequence in that order (the "
                    f"score adds the expected value)."
                )
            return _finite_values(self.name, [0.0, float(weight)])
        if isinstance(weight, Mapping):
            unknown = [c for c in weight if c not in classes]
            missing = [c for c in classes if c not in weight]
            if unknown or missing:
                raise ValueError(
                    f"The values of task {self.name!r} must name each of its "
                    f"classes {classes} once; unknown: {unknown}, missing: "
                    f"{missing}."
                )
            return _finite_values(self.name, [weight[c] for c in classes])
        values = list(np.asarray(weight, dtype=object).reshape(-1))
        if len(values) != len(classes) or not all(_is_number(v) for v in values):
            raise ValueError(
                f"The values of task {self.name!r} must be one number per class "
                f"{classes}, got {weight!r}."
            )
        return _finite_values(self.name, values)

    def known_classes(self) -> np.ndarray | None:
        return self.classes

    def class_weights(self, entry: Any, codes: np.ndarray) -> np.ndarray:
        if entry is None:
            return np.ones(self.n_outputs)
        if isinstance(entry, str) and entry == "balanced":
            codes = codes[~np.isnan(codes)].astype(np.int64)
            present = np.unique(codes)
            weights = np.ones(self.n_outputs)
            weights[present] = compute_class_weight(
                "balanced", classes=present, y=codes
            )
            return weights
        if not isinstance(entry, dict):
            raise ValueError(
                f"class_weight entry for task {self.name!r} must be None, "
                f"'balanced' or a dict, got {entry!r}."
            )
        return self._weights_of(entry)

    def _weights_of(self, entry: dict) -> np.ndarray:
        """The weights of a ``{label: weight}`` dict, checked."""
        classes = self._classes
        unknown = [c for c in entry if not np.isin(c, classes).item()]
        if unknown:
            raise ValueError(
                f"class_weight for task {self.name!r} names labels "
                f"{unknown} that are not among its classes "
                f"{classes.tolist()}."
            )
        weights = np.array([float(entry.get(c, 1.0)) for c in classes.tolist()])
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(
                f"class_weight for task {self.name!r} must be finite and "
                f"non-negative, got {entry!r}."
            )
        if not np.any(weights > 0):
            raise ValueError(
                f"class_weight for task {self.name!r} gives every class "
                f"weight 0, so the task would never be learned: {entry!r}."
            )
        return weights

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
            "classes": self._classes.tolist(),
            "dtype": self._classes.dtype.str,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ClassificationTask:
        classes = np.array(state["classes"], dtype=np.dtype(state["dtype"]))
        if "conditional_on" in state:
            return ConditionalTask(
                str(state["name"]),
                state["kind"],
                classes,
                chain=tuple(int(j) for j in state["conditional_on"]),
                parent_name=str(state["parent"]),
            )
        return cls(str(state["name"]), state["kind"], classes)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "classes": self._classes.tolist()}

    def describe(self) -> str:
        return f"a {self.kind} task with classes {self._classes.tolist()!r}"

    def check_compatible(self, other: Task) -> None:
        if not (
            isinstance(other, ClassificationTask)
            and other._classes.shape == self._classes.shape
            and np.array_equal(other._classes, self._classes)
        ):
            raise ValueError(
                f"Task {self.name!r} must keep its classes "
                f"{self._classes.tolist()!r} to continue training (warm_start or "
                f"partial_fit), got {other.describe()}."
            )


class ConditionalTask(ClassificationTask):
    """A binary task conditional on another binary task, its parent (ESMM).

    The task's tower learns :math:`P(\\text{task} \\mid \\text{parent}, x)`,
    the probability of its positive class (``classes[1]``) given the
    parent's; its head and loss read the joint probability
    :math:`P(\\text{parent and task} \\mid x)`, the product of the
    conditionals along its chain of ancestors (``chain``: their positions,
    the root first), so that the conditional is learned on every row, not
    only where the parent is positive (Ma et al., SIGIR 2018). Its targets
    are the joint's: negative wherever an ancestor is negative.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        classes: np.ndarray | None = None,
        loss: str | None = None,
        *,
        chain: tuple[int, ...] = (),
        parent_name: str = "",
    ):
        super().__init__(name, kind, classes, loss)
        self.chain = tuple(chain)
        self.parent_name = parent_name

    @property
    def parent(self) -> int:
        return self.chain[-1]

    def outputs(self, outputs: torch.Tensor, k: int) -> torch.Tensor:
        # Log-probabilities (finite, unlike log(1 - p) of a saturated p):
        # log P(no) = log(P(parent no) + P(parent yes) * P(task no | parent)).
        negative, positive = _binary_log_proba(outputs[:, self.chain[0]])
        for j in (*self.chain[1:], k):
            given_negative, given_positive = _binary_log_proba(outputs[:, j])
            negative = torch.logsumexp(
                torch.stack([negative, positive + given_negative], dim=-1), dim=-1
            )
            positive = positive + given_positive
        joint = torch.stack([negative, positive], dim=-1)
        # The -inf padding of a task wider than 2 classes stays.
        return torch.cat([joint, outputs[:, k, 2:]], dim=-1)

    def completed(
        self, k: int, tasks: list[Task], columns: list[np.ndarray], labelled: list
    ) -> tuple[np.ndarray, np.ndarray]:
        values, known = columns[k], labelled[k]
        negative = np.zeros(len(values), dtype=bool)
        for j in self.chain:
            # The ancestors are binary tasks (see condition_tasks).
            ancestor = cast(ClassificationTask, tasks[j])
            negative |= labelled[j] & _equals(columns[j], ancestor._classes[0])
        positive = known & _equals(values, self._classes[1])
        wrong = np.flatnonzero(positive & negative)
        if wrong.size:
            rows = ", ".join(map(str, wrong[:5].tolist()))
            raise ValueError(
                f"Task {self.name!r} is conditional on {self.parent_name!r} "
                f"(conditional_on) but is positive ({self._classes.tolist()[1]!r}) in "
                f"{wrong.size} row(s) where {self.parent_name!r} or a task it is "
                f"conditional on is negative (rows {rows}"
                f"{', ...' if wrong.size > 5 else ''}): a conditional task can "
                f"only be positive where its parent is."
            )
        fill = negative & ~known
        if not fill.any():
            return values, known
        values = values.astype(np.result_type(values, self._classes))
        values[fill] = self._classes[0]
        return values, known | fill

    def own_outputs(self, outputs: torch.Tensor, k: int) -> torch.Tensor:
        return outputs[:, k]

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "conditional_on": list(self.chain),
            "parent": self.parent_name,
        }

    def metadata(self) -> dict[str, Any]:
        # The output is the joint probability of the task and its ancestors.
        return {**super().metadata(), "conditional_on": self.parent_name}

    def describe(self) -> str:
        return f"{super().describe()}, conditional on {self.parent_name!r}"


def _binary_log_proba(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the negative and positive class of a binary task."""
    log_proba = torch.log_softmax(outputs[:, :2], dim=-1)
    return log_proba[:, 0], log_proba[:, 1]


def _equals(values: np.ndarray, label: Any) -> np.ndarray:
    """Elementwise ``values == label``, whatever the dtypes."""
    equal = np.asarray(values == label)
    if equal.shape != values.shape:  # e.g. strings compared with a number
        equal = np.array([v == label for v in values.tolist()], dtype=bool)
    return equal.astype(bool)


class RegressionTask(Task):
    """A continuous task, standardised so that tasks of any unit train together.

    The network learns ``(y - mean) / scale``; predictions are returned in the
    original units. ``mean`` and ``scale`` are those of the labelled entries
    of the first fit (``partial_fit``: of the first chunk), weighted by the
    sample weights if any.
    """

    kinds = ("regression",)
    losses: ClassVar[tuple[str, ...]] = ("squared_error", "huber")
    metric_family = "regression"
    scored_by: ClassVar[tuple[str, ...]] = ("regression", "ranking")
    uncertainty_scale = 0.5

    def __init__(
        self,
        name: str,
        kind: str = "regression",
        mean: float = 0.0,
        scale: float = 1.0,
        loss: str | None = None,
    ):
        super().__init__(name, kind, loss)
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
                f"Task {self.name!r} is a {self.kind} task, but its labelled "
                f"entries are not all numbers: it has strings."
            )
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"Task {self.name!r} is a {self.kind} task, but its labelled "
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
        return self._trainable(
            encoded, "standardised with the first fit's mean and scale"
        )

    def _trainable(self, encoded: np.ndarray, how: str) -> np.ndarray:
        """``encoded`` in float32, refused where it does not fit (``how``:
        how the targets were encoded, for the message)."""
        with np.errstate(over="ignore"):
            encoded = encoded.astype(np.float32)
        if not np.isfinite(encoded).all():
            raise ValueError(
                f"Task {self.name!r} has targets too large to train on once "
                f"{how} (float32 overflows)."
            )
        return encoded

    def head(self, outputs: torch.Tensor) -> torch.Tensor:
        # In float64, with float64 constants (a Python float would become a
        # float32 constant of the ONNX graph): a large mean keeps its precision.
        mean, scale = (
            torch.tensor(v, dtype=torch.float64, device=outputs.device)
            for v in (self.mean, self.scale)
        )
        return outputs[:, 0].to(torch.float64) * scale + mean

    def decode(self, head: np.ndarray) -> np.ndarray:
        return head

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
            "loss": self.loss,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RegressionTask:
        # Files of format 2 do not name the loss: the type's default then.
        loss = state.get("loss")
        return cls(
            str(state["name"]),
            state["kind"],
            float(state["mean"]),
            float(state["scale"]),
            None if loss is None else str(loss),
        )

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "mean": self.mean, "scale": self.scale}

    def check_compatible(self, other: Task) -> None:
        if type(other) is not type(self):
            raise ValueError(
                f"Task {self.name!r} is a {self.kind} task and must stay one to "
                f"continue training (warm_start or partial_fit), got "
                f"{other.describe()}."
            )


class PoissonTask(RegressionTask):
    """A count task: non-negative targets, a log link and the Poisson deviance.

    The network learns the log of the rate relative to ``mean``, the
    (weighted) mean of the labelled counts of the first fit: predictions are
    ``mean * exp(output)``, never negative, and an untrained network predicts
    the mean. ``scale`` is 1 (counts are not standardised).
    """

    kinds = ("poisson",)
    losses = ("poisson",)
    metric_family = "count"
    scored_by = ("regression", "count", "ranking")
    metrics = {"neg_mean_poisson_deviance": (mean_poisson_deviance, -1.0)}
    uncertainty_scale = 1.0

    def _as_float(self, values: np.ndarray) -> np.ndarray:
        values = super()._as_float(values)
        if (values < 0).any():
            raise ValueError(
                f"Task {self.name!r} is a count task (loss='poisson'), but it "
                f"has negative targets; counts must be >= 0."
            )
        return values

    def fit(
        self, values: np.ndarray, known: Any = None, sample_weight: Any = None
    ) -> PoissonTask:
        with np.errstate(over="ignore"):
            super().fit(values, known, sample_weight)
        if not np.isfinite(self.mean):
            raise ValueError(
                f"Task {self.name!r} has counts too large: their mean "
                f"overflows float64."
            )
        # All zeros: any positive baseline, the network learns the rest.
        self.mean = self.mean if self.mean > 0 else 1.0
        self.scale = 1.0
        return self

    def encode(self, values: np.ndarray) -> np.ndarray:
        encoded = self._as_float(values) / self.mean
        return self._trainable(encoded, "divided by the first fit's mean count")

    def head(self, outputs: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=torch.float64, device=outputs.device)
        return torch.exp(outputs[:, 0].to(torch.float64)) * mean

    def score(
        self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Any = None
    ) -> float:
        """D^2: the fraction of Poisson deviance explained, as
        :class:`~sklearn.linear_model.PoissonRegressor` scores."""
        return float(
            d2_tweedie_score(
                np.asarray(y_true, dtype=np.float64),
                y_pred,
                sample_weight=sample_weight,
                power=1,
            )
        )


#: Task type name -> the class that implements it.
TASK_TYPES: dict[str, type[Task]] = {
    kind: cls
    for cls in (ClassificationTask, RegressionTask, PoissonTask)
    for kind in cls.kinds
}


def task_type(kind: str, loss: str | None, name: str) -> str:
    """The type of a task of type ``kind`` trained with ``loss``.

    A loss of a more specific type selects it: a regression task trained
    with ``loss="poisson"`` is a count task (``"poisson"``). None keeps
    ``kind``; a loss that no such type trains with is a ValueError.
    """
    cls = TASK_TYPES[kind]
    if loss is None or loss in cls.losses:
        return kind
    for other in TASK_TYPES.values():
        if issubclass(other, cls) and loss in other.losses:
            return other.kinds[0]
    accepted = sorted(
        {loss for c in TASK_TYPES.values() if issubclass(c, cls) for loss in c.losses}
    )
    raise ValueError(
        f"loss for task {name!r} must be one of {accepted} (it is a {kind} "
        f"task), got {loss!r}."
    )


class TaskOutputs:
    """The map from the network's outputs to those the tasks' heads and
    losses read: :meth:`Task.outputs` of each task (picklable, unlike a
    closure)."""

    def __init__(self, tasks: list[Task]) -> None:
        self.tasks = list(tasks)

    def __call__(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [task.outputs(outputs, k) for k, task in enumerate(self.tasks)], dim=1
        )


def task_outputs(tasks: list[Task]) -> TaskOutputs | None:
    """The :class:`TaskOutputs` of ``tasks``, or None when every task reads
    its own tower's outputs."""
    if all(type(task).outputs is Task.outputs for task in tasks):
        return None
    return TaskOutputs(tasks)


def condition_tasks(tasks: list[Task], parents: dict[int, int]) -> list[Task]:
    """``tasks`` with each key of ``parents`` conditional on its value (task
    positions, acyclic): a :class:`ConditionalTask` over its chain of
    ancestors. Every task named must be a fitted binary classification task.
    """
    for k in sorted({*parents, *parents.values()}):
        task = tasks[k]
        if not (isinstance(task, ClassificationTask) and task.kind == "binary"):
            raise ValueError(
                f"conditional_on names task {task.name!r}, {task.describe()}; "
                f"a conditional task and the task it is conditional on must "
                f"both be binary classification tasks."
            )
    conditioned = list(tasks)
    for child, parent in parents.items():
        chain = [parent]
        while chain[0] in parents:
            chain.insert(0, parents[chain[0]])
        task = tasks[child]
        conditioned[child] = ConditionalTask(
            task.name,
            task.kind,
            task.classes,
            task.loss,
            chain=tuple(chain),
            parent_name=tasks[parent].name,
        )
    return conditioned


def complete_targets(
    tasks: list[Task], columns: list[np.ndarray], labelled: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every task's column of ``Y`` and labelled mask, with the entries that
    follow from other tasks' filled in (see :meth:`Task.completed`)."""
    completed = [
        task.completed(k, tasks, columns, labelled) for k, task in enumerate(tasks)
    ]
    return [c for c, _ in completed], [m for _, m in completed]


def make_task(kind: str, name: str, loss: str | None = None) -> Task:
    """An unfitted task of type ``kind`` (a key of :data:`TASK_TYPES`),
    trained with ``loss`` (None: the type's default; see :func:`task_type`)."""
    kind = task_type(kind, loss, name)
    return TASK_TYPES[kind](name, kind, loss=loss)


def accepts_loss(kind: str, loss: str) -> bool:
    """Whether a task of type ``kind`` can be trained with ``loss``."""
    cls = TASK_TYPES[kind]
    return any(issubclass(c, cls) and loss in c.losses for c in TASK_TYPES.values())


def task_from_state(state: dict[str, Any]) -> Task:
    """The task that :meth:`Task.state` described."""
    kind = state["kind"]
    if kind not in TASK_TYPES:
        raise ValueError(f"unknown task type {kind!r}")
    return TASK_TYPES[kind].from_state(state)


def infer_task_type(values: np.ndarray, name: str, loss: str | None = None) -> str:
    """``"binary"``, ``"multiclass"`` or ``"regression"`` from labelled entries.

    As scikit-learn's :func:`~sklearn.utils.multiclass.type_of_target`: floats
    that are not all integers are continuous, anything else is classes. A
    ``loss`` that only numeric targets take decides instead: whole-number
    counts with ``loss="poisson"`` are a count task, not classes.
    """
    if loss is not None and not accepts_loss("binary", loss):
        return task_type("regression", loss, name)
    try:
        # The type of the distinct values is that of the values, and cheaper.
        labels = _distinct(_homogeneous_labels(values, name))
        target_type = _type_of_labels(labels)
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


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _finite_values(name: str, values: list[Any]) -> np.ndarray:
    """The values of a task in a ranking score as float64, all finite."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.array([np.nan])
    if not np.isfinite(array).all():
        raise ValueError(
            f"The weight of task {name!r} must be finite numbers, got {values}."
        )
    return array


# _distinct counts integer labels whose range is at most this wide.
_COUNTED_RANGE = 1 << 16


def _distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)``; integer labels of a narrow range (classes
    coded 0, 1, ...) by counting, several times faster than sorting."""
    if values.dtype.kind in "iu" and values.size:
        low, high = int(values.min()), int(values.max())
        if high - low < _COUNTED_RANGE:
            # Offsets from the smallest label, in a type that cannot overflow.
            kind = values.dtype if values.dtype.kind == "u" else np.dtype(np.int64)
            base = kind.type(low)
            present = np.bincount((values.astype(kind) - base).astype(np.intp)) > 0
            return (np.flatnonzero(present).astype(kind) + base).astype(values.dtype)
    return np.unique(values)


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


def _type_of_labels(labels: np.ndarray) -> str:
    """scikit-learn's type of target of the distinct ``labels``, on which
    some of its versions warn that the classes are over half the samples:
    true of distinct labels, so not said."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The number of unique classes is greater than 50%"
        )
        return type_of_target(labels, input_name="Y")


def _check_classification(values: np.ndarray, name: str) -> None:
    """Refuse ``values`` (distinct labels) that are not class labels."""
    target_type = _type_of_labels(values)
    if target_type not in ("binary", "multiclass"):
        raise ValueError(
            f"Unknown label type: task {name!r} has {target_type} values; a "
            f"classification task needs class labels (for example ints, bools "
            f"or strings), not continuous targets. Use MultiTaskMMoERegressor "
            f"or MultiTaskMMoE for continuous targets."
        )
