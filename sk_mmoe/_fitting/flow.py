"""The steps of a fit call, as functions of the values they need.

:class:`FitData` is a fit call's validated data; :func:`fit_tasks` makes
(or checks) the task objects of ``Y``; :func:`holdout_size` counts the rows
held out for early stopping; :func:`set_input_statistics` gives a new
network the statistics of its inputs; :func:`train` trains a net on the
data. The estimator (:class:`sk_mmoe._base.BaseMultiTaskMMoE`) calls them in
order, handing each its parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._building import _robust_statistics, n_epochs, training_callbacks
from .._checks import _per_task, _with_known_labels, resolve_conditional_on
from .._fitted import FittedData
from .._tasks import Task, condition_tasks, make_task
from .batches import ArrayBatches
from .holdout import n_validation_rows
from .training import HoldOut, MultiTaskNet, NonFiniteLoss, seeded

if TYPE_CHECKING:
    from .._building import NetworkSpec
    from .._data.features import CategoricalEncoder
    from .._data.targets import TargetColumns

__all__ = [
    "TRAINING_PARAMS",
    "FitData",
    "check_same_architecture",
    "early_stopping",
    "fit_tasks",
    "holdout_size",
    "set_input_statistics",
    "train",
]

#: The parameters of the estimators that :func:`train` takes.
TRAINING_PARAMS = (
    "max_epochs",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
    "callbacks",
    "verbose",
)

# early_stopping="auto" holds out validation rows above this many rows
# labelled for some task.
_AUTO_EARLY_STOPPING_ROWS = 10_000


@dataclass
class FitData:
    """A fit call's data, validated, with what the call fits of the tasks.

    ``spec`` is the network specification of a new fit, None when training
    continues (the fitted network's stays). ``bias_values`` are the
    ``bias_features`` columns (float32), None without a bias tower: ``X``
    does not hold them, the net trains on ``training_X``. ``trained_rows``
    are the rows training iterates over: those labelled for some task when
    nothing reads the others, None for all.
    """

    X: Any
    feature_names: np.ndarray | None
    encoder: CategoricalEncoder | None
    targets: TargetColumns
    sample_weight: np.ndarray | None
    tasks: list[Task]
    encoded: np.ndarray
    task_weights: np.ndarray | str
    class_weights: list[np.ndarray | None]
    early: bool
    n_valid: int
    spec: NetworkSpec | None
    bias_values: np.ndarray | None = None
    trained_rows: np.ndarray | None = None
    scheduled: bool = False

    @property
    def n_train(self) -> int:
        """Rows the net trains on (without the held-out validation rows)."""
        n_rows = (
            self.X.shape[0] if self.trained_rows is None else len(self.trained_rows)
        )
        return n_rows - self.n_valid

    @property
    def classifying(self) -> bool:
        """Whether every task of the fit is a classification task."""
        return all(task.declares_classes for task in self.tasks)

    def fitted(self, previous: FittedData | None) -> FittedData:
        """What the fit learnt of the data: a new fit's description, or for
        continued training the ``previous`` one with the tasks of the call
        (their encoding is the fitted one; their loss may have changed)."""
        if self.spec is None:
            assert previous is not None
            return replace(previous, tasks=tuple(self.tasks))
        return FittedData(
            tasks=tuple(self.tasks),
            spec=self.spec,
            encoder=self.encoder,
            single_task=self.targets.is_single_task,
            feature_names_in=self.feature_names,
        )

    @property
    def training_X(self) -> Any:
        """What the net trains on: ``X``, the bias columns after its own."""
        if self.bias_values is None:
            return self.X
        return np.hstack([self.X, self.bias_values])


def fit_tasks(
    targets: TargetColumns,
    classes: Sequence[Any] | None,
    fitted: list[Task] | None,
    require_classes: bool,
    sample_weight: np.ndarray | None,
    *,
    task_kinds: Callable[[TargetColumns], list[str]],
    task_loss: Callable[[str, str], str | None],
    conditional_on: Any,
) -> list[Task]:
    """The task objects of ``Y``: new ones, or the ``fitted`` ones checked
    (None for a new fit).

    ``require_classes``: the first ``partial_fit`` call must name the
    classes of every classification task, since a chunk may lack some.
    ``task_kinds`` and ``task_loss`` are the estimator's (the type of every
    task, the loss asked for a task), ``conditional_on`` its parameter.
    """
    known = _per_task(classes, targets, "classes")
    # A chunk may lack some classes: infer binary / multiclass from the
    # labels together with the declared (first partial_fit) or fitted
    # classes, not from the chunk's labels alone.
    kinds = task_kinds(
        _with_known_labels(
            targets,
            known if fitted is None else [t.known_classes() for t in fitted],
        )
    )
    tasks = []
    for k, (kind, name) in enumerate(zip(kinds, targets.names, strict=True)):
        task = make_task(kind, name, task_loss(kind, name))
        values = targets.labelled_values(k)
        if fitted is not None:
            # classes are fixed by the first call: ones given later must
            # be the fitted ones, and the labels must be among them.
            if known[k] is None:
                known[k] = fitted[k].known_classes()
            fitted[k].check_compatible(task.fit(values, known[k]))
            # The fitted encoding, trained with the loss asked for now.
            loss, task = task.loss, copy.copy(fitted[k])
            task.loss = loss
        else:
            if require_classes and known[k] is None and task.declares_classes:
                raise ValueError(
                    f"classes must be passed on the first call to "
                    f"partial_fit: the labels of every classification task "
                    f"(task {name!r} has none)."
                )
            task.fit(
                values,
                known[k],
                sample_weight=None
                if sample_weight is None
                else sample_weight[targets.labelled[k]],
            )
        tasks.append(task)
    parents = resolve_conditional_on(conditional_on, targets.names)
    if fitted is None:
        return condition_tasks(tasks, parents)
    # Continued training keeps the fitted tasks, whose conditions must not
    # change.
    conditions = {
        k: task.parent for k, task in enumerate(tasks) if task.parent is not None
    }
    if conditions != parents:
        raise ValueError(
            "warm_start and partial_fit continue training the fitted "
            "network, but conditional_on changed since the first fit; "
            "refit with warm_start=False."
        )
    return tasks


def early_stopping(early_stopping: bool | str, n_labelled: int) -> bool:
    """Whether a fit stops early: ``"auto"`` when more than 10,000 rows are
    labelled for some task, as scikit-learn's HistGradientBoosting estimators
    do above this many rows."""
    if early_stopping == "auto":
        return n_labelled > _AUTO_EARLY_STOPPING_ROWS
    return bool(early_stopping)


def check_same_architecture(
    fitted: dict[str, Any], architecture: dict[str, Any]
) -> None:
    """Refuse to continue training a network of another architecture."""
    if architecture != fitted:
        raise ValueError(
            "warm_start and partial_fit continue training the fitted "
            "network, but its architecture parameters changed since the "
            f"first fit (from {fitted} to {architecture}); refit with "
            "warm_start=False."
        )


def holdout_size(n_labelled: int, early: bool, validation_fraction: float) -> int:
    """Rows held out for early stopping (0 without), among the
    ``n_labelled`` rows labelled for some task."""
    if not early:
        return 0
    n_valid = n_validation_rows(n_labelled, validation_fraction)
    if n_valid >= n_labelled:
        raise ValueError(
            f"early_stopping holds out validation_fraction="
            f"{validation_fraction} of the {n_labelled} sample(s) "
            f"labelled for some task, which leaves none to train on: lower "
            f"validation_fraction, label more rows or pass "
            f"early_stopping=False."
        )
    return n_valid


def set_input_statistics(net: MultiTaskNet, data: FitData, seed: int) -> None:
    """Give the new network of ``net`` the statistics of its inputs in
    ``data``: the robust scaling's and the bias tower's."""
    if net.module.scaling is not None:
        assert data.spec is not None
        # Rows of weight 0 are as good as absent.
        # The columns of X (not the codes of its lists appended).
        X, weight = data.X[:, : data.spec.n_features], data.sample_weight
        rows = X if weight is None else X[weight > 0]
        net.module.scaling.set_statistics(*_robust_statistics(rows, seed))
    if data.bias_values is not None:
        net.module.bias_tower.set_statistics(data.bias_values)


def train(
    net: MultiTaskNet,
    data: FitData,
    seed: int,
    device: torch.device,
    epochs: int | None,
    *,
    max_epochs: int | str,
    validation_fraction: float,
    n_iter_no_change: int,
    tol: float,
    callbacks: list | None,
    verbose: int,
) -> None:
    """Train ``net`` on ``data`` (``epochs``: None for ``max_epochs``; the
    keyword arguments are the estimator's parameters)."""
    dataset = ArrayBatches(
        data.training_X,
        data.encoded,
        data.sample_weight,
        sparse_batches=net.module.projection is not None,
    )
    if data.trained_rows is not None:
        dataset = dataset.subset(data.trained_rows)
    early = data.early
    net.train_split = HoldOut(validation_fraction, seed) if early else None
    if epochs is None:
        epochs = n_epochs(
            max_epochs, data.n_train, net.batch_size, data.scheduled, data.classifying
        )
    net.callbacks = training_callbacks(
        early,
        data.n_train,
        net.batch_size,
        epochs if data.scheduled else 0,
        n_iter_no_change=n_iter_no_change,
        tol=tol,
        callbacks=callbacks,
        verbose=verbose,
    )
    net.iterator_train__seed = seed
    net.max_epochs = epochs
    net.verbose = verbose
    try:
        with seeded(seed, device):
            if net.initialized_:
                net.initialize_callbacks()
            else:
                net.initialize()
            net.partial_fit(dataset)
    except NonFiniteLoss as exc:
        raise ValueError(
            f"Training diverged: {exc.args[0]}. Scale the features (e.g. "
            f"StandardScaler) or lower lr (lr={net.lr:.3g})."
        ) from None
    # Prediction runs in eval mode; training switches back as it starts.
    net.module_.eval()
