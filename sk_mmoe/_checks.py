"""Checks of the arguments beyond their constraints: task, class and sample
weights, the device, the optimizer, counts given as booleans, callbacks, and
per-task arguments such as ``partial_fit``'s ``classes``.

Plain functions of the values they check, called by the estimators; each
raises a ValueError that names the argument, before anything is fitted.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback

from ._compat import Interval, StrOptions
from ._data.sequences import SEQUENCE_POOLINGS
from ._data.targets import TargetColumns
from ._fitting.training import OPTIMIZERS
from ._tasks import Task
from .nn.network import ACTIVATIONS, GATES, MAX_ENSEMBLE_SIZE
from .nn.weighting import WEIGHTING_STRATEGIES

__all__ = [
    "INTEGER_PARAMS",
    "PARAMETER_CONSTRAINTS",
    "check_class_weight",
    "check_device",
    "check_param_types",
    "check_partial_fit_class_weight",
    "check_task_weights",
    "check_weights",
    "optimizer_class",
    "resolve_conditional_on",
]

# Parameters validated as Integral that must not be booleans (True == 1).
INTEGER_PARAMS = (
    "n_experts",
    "n_task_experts",
    "n_levels",
    "gate_k",
    "ensemble_size",
    "batch_size",
    "max_epochs",
    "n_iter_no_change",
    "n_threads",
    "max_categories",
    "max_sequence_length",
)


#: The constraints of the estimators' shared parameters (scikit-learn's
#: ``_parameter_constraints``).
PARAMETER_CONSTRAINTS: dict = {
    "n_experts": [Interval(numbers.Integral, 1, None, closed="left")],
    "expert_hidden_layer_sizes": ["array-like"],
    "tower_hidden_layer_sizes": ["array-like"],
    "n_task_experts": [Interval(numbers.Integral, 0, None, closed="left")],
    "n_levels": [Interval(numbers.Integral, 1, None, closed="left")],
    "shared_gate": ["boolean"],
    "gate_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    "gate": [StrOptions(set(GATES))],
    "gate_k": [Interval(numbers.Integral, 1, None, closed="left")],
    "gate_temperature": [Interval(numbers.Real, 0, None, closed="neither")],
    "gate_balance": [Interval(numbers.Real, 0, None, closed="left")],
    "expert_activation": [StrOptions(set(ACTIVATIONS))],
    "expert_normalization": [StrOptions({"layer"}), None],
    "ensemble_size": [Interval(numbers.Integral, 1, MAX_ENSEMBLE_SIZE, closed="both")],
    "refit": ["boolean"],
    "bias_features": ["array-like", dict, None],
    "bias_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    "task_weights": [
        "array-like",
        dict,
        StrOptions(set(WEIGHTING_STRATEGIES)),
        None,
    ],
    "optimizer": [StrOptions(set(OPTIMIZERS)), type],
    "lr": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
    "batch_size": [
        Interval(numbers.Integral, 1, None, closed="left"),
        StrOptions({"auto"}),
    ],
    "max_epochs": [
        Interval(numbers.Integral, 1, None, closed="left"),
        StrOptions({"auto"}),
    ],
    "lr_schedule": [StrOptions({"auto", "cosine"}), None],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
    "tol": [Interval(numbers.Real, 0, None, closed="left")],
    "warm_start": ["boolean"],
    "callbacks": [list, None],
    "categorical_features": [
        StrOptions({"from_dtype"}),
        "array-like",
        None,
    ],
    "max_categories": [Interval(numbers.Integral, 3, None, closed="left")],
    "sequence_features": [dict, None],
    "sequence_pooling": [StrOptions(set(SEQUENCE_POOLINGS))],
    "max_sequence_length": [Interval(numbers.Integral, 1, None, closed="left")],
    "numeric_scaling": [StrOptions({"robust", "robust_unclipped"}), None],
    "numeric_missing": [StrOptions({"learn", "error"})],
    "numeric_embedding": [StrOptions({"auto", "periodic"}), None],
    "device": [str, torch.device],
    "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def check_weights(weights: np.ndarray, name: str) -> None:
    """Refuse weights that are not finite and non-negative, or all zero."""
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        # The values only when short enough to read (not a sample_weight).
        got = f", got {weights.tolist()}" if weights.size <= 20 else ""
        raise ValueError(f"{name} must be finite and non-negative{got}.")
    if not np.any(weights > 0):
        raise ValueError(f"{name} must not all be zero.")


def check_device(device: Any) -> torch.device:
    """The ``device`` parameter as a usable torch device, or a ValueError."""
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device.") from exc
    if torch_device.type == "meta":
        raise ValueError(
            "device='meta' holds no data and cannot train or predict; use "
            "'cpu' or an accelerator."
        )
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available "
            f"on this machine; use device='cpu'."
        )
    if torch_device.type != "cpu":
        try:
            torch.empty(1, device=torch_device)
        except Exception as exc:  # torch raises RuntimeError, AssertionError...
            reason = (str(exc).splitlines() or [""])[0]
            raise ValueError(
                f"device={device!r} is not available on this machine "
                f"({type(exc).__name__}: {reason}); use device='cpu'."
            ) from None
    return torch_device


def optimizer_class(optimizer: str | type) -> type:
    """The optimizer class that the ``optimizer`` parameter names."""
    if isinstance(optimizer, str):
        return OPTIMIZERS[optimizer]
    if not issubclass(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer must be one of {sorted(OPTIMIZERS)} or a subclass of "
            f"torch.optim.Optimizer, got {optimizer!r}."
        )
    return optimizer


def check_task_weights(task_weights: Any, task_names: list[str]) -> np.ndarray | str:
    """The ``task_weights`` parameter for these tasks: a weighting strategy's
    name, or one finite non-negative weight per task."""
    n_tasks = len(task_names)
    if isinstance(task_weights, str):
        return task_weights
    if task_weights is None:
        return np.ones(n_tasks)
    if isinstance(task_weights, Mapping):
        unknown = set(map(str, task_weights)) - set(task_names)
        if unknown:
            raise ValueError(
                f"task_weights names unknown tasks {sorted(unknown)}; the "
                f"tasks are {task_names}."
            )
        named = {str(k): v for k, v in task_weights.items()}
        weights = [named.get(name, 1.0) for name in task_names]
    else:
        weights = task_weights
    try:
        checked = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"task_weights must be numbers, got {task_weights!r}."
        ) from exc
    if checked.shape[0] != n_tasks:
        raise ValueError(
            f"task_weights must have one weight per task: y has {n_tasks} "
            f"task(s), task_weights has {checked.shape[0]}."
        )
    check_weights(checked, "task_weights")
    return checked


def check_class_weight(
    class_weight: Any, tasks: list[Task], encoded: np.ndarray
) -> list[np.ndarray | None]:
    """One array of class weights per classification task, None for others
    (``class_weight``: the parameter; ``encoded``: the encoded targets)."""
    n_tasks = len(tasks)
    weighted = [task.declares_classes for task in tasks]
    if isinstance(class_weight, str | dict):
        if isinstance(class_weight, dict) and sum(weighted) > 1:
            raise ValueError(
                "class_weight as a dict is for a single classification task; "
                f"with {sum(weighted)} pass a list of one dict (or "
                "'balanced' or None) per task."
            )
        class_weight = [class_weight if w else None for w in weighted]
    elif class_weight is None:
        class_weight = [None] * n_tasks
    if len(class_weight) != n_tasks:
        raise ValueError(
            f"class_weight must have one entry per task: y has {n_tasks} "
            f"task(s), class_weight has {len(class_weight)}."
        )
    return [
        task.class_weights(entry, encoded[:, k])
        for k, (entry, task) in enumerate(zip(class_weight, tasks, strict=True))
    ]


def check_partial_fit_class_weight(class_weight: Any) -> None:
    """Refuse ``class_weight="balanced"`` in ``partial_fit``."""
    if class_weight == "balanced" or (
        isinstance(class_weight, list) and "balanced" in class_weight
    ):
        raise ValueError(
            "class_weight='balanced' is not supported by partial_fit, since "
            "the class frequencies of the whole data are unknown; pass "
            "explicit class weights."
        )


def check_param_types(params: Mapping[str, Any], estimator: str) -> None:
    """The checks of the parameters that their constraints cannot express:
    counts that are booleans, and ``callbacks`` that are not skorch's."""
    for name in INTEGER_PARAMS:
        value = params[name]
        if isinstance(value, bool | np.bool_):
            raise ValueError(
                f"The {name!r} parameter of {estimator} must be an "
                f"int, got the boolean {value!r}."
            )
    for entry in params["callbacks"] or []:
        callback = entry[1] if isinstance(entry, tuple) and len(entry) == 2 else entry
        is_callback = isinstance(callback, Callback) or (
            isinstance(callback, type) and issubclass(callback, Callback)
        )
        if not is_callback or (
            isinstance(entry, tuple) and not isinstance(entry[0], str)
        ):
            raise ValueError(
                f"callbacks must hold skorch callbacks (instances or classes "
                f"of skorch.callbacks.Callback, or (name, callback) pairs), "
                f"got {entry!r}."
            )


def resolve_conditional_on(conditional_on: Any, names: list[str]) -> dict[int, int]:
    """``conditional_on`` as ``{child position: parent position}``, checked:
    tasks named or indexed that exist, no task its own ancestor."""
    if conditional_on is None:
        return {}

    def position(task: Any) -> int:
        if isinstance(task, str) and task in names:
            return names.index(task)
        integral = isinstance(task, numbers.Integral) and not isinstance(task, bool)
        if integral and 0 <= task < len(names):
            return int(task)
        raise ValueError(
            f"conditional_on names the task {task!r}, which is not a task name "
            f"or column index of y; the tasks are {names}."
        )

    parents = {
        position(child): position(parent) for child, parent in conditional_on.items()
    }
    if len(parents) != len(conditional_on):
        raise ValueError(
            f"conditional_on names a task twice (by name and by index): "
            f"{conditional_on!r}; a task has one parent."
        )
    for child in parents:
        seen, task = [child], parents[child]
        while task in parents and task not in seen:
            seen.append(task)
            task = parents[task]
        if task in seen:
            cycle = " -> ".join(names[j] for j in [*seen[seen.index(task) :], task])
            raise ValueError(
                f"conditional_on has a cycle ({cycle}): a task cannot be "
                f"conditional on itself or on a task conditional on it."
            )
    return parents


def _per_task(values: Sequence[Any] | None, targets: TargetColumns, name: str):
    """``classes`` (or a similar per-task argument) as one entry per task."""
    n_tasks = len(targets.names)
    if values is None:
        return [None] * n_tasks
    if _is_flat(values):
        if not targets.is_single_task:
            # E.g. scikit-learn's classes=[0, 1] with two tasks: not one
            # label per task, but one array of labels per task.
            raise ValueError(
                f"{name} must give one entry per task (an array of labels, or "
                f"None), y has {n_tasks} tasks; got the flat list "
                f"{list(values)!r}. For example {name}=[[0, 1]] * {n_tasks}."
            )
        values = [values]
    if len(values) != n_tasks:
        raise ValueError(
            f"{name} must give one entry per task: y has {n_tasks} task(s), "
            f"{name} has {len(values)}."
        )
    return list(values)


def _with_known_labels(targets: TargetColumns, known: list[Any]) -> TargetColumns:
    """``targets`` whose labelled entries also hold each task's known classes."""
    if all(classes is None for classes in known):
        return targets
    columns, labelled = [], []
    for k, classes in enumerate(known):
        values = targets.labelled_values(k)
        extra = None if classes is None else np.asarray(classes)
        # Labels of another kind (strings vs numbers) are refused later with
        # the task's classes in the message: leave them out here.
        if extra is not None and _is_text(extra) == _is_text(values):
            if extra.dtype != values.dtype:
                values, extra = values.astype(object), extra.astype(object)
            values = np.concatenate([values, extra])
        columns.append(values)
        labelled.append(np.ones(len(values), dtype=bool))
    return TargetColumns(columns, labelled, targets.names, targets.is_single_task)


def _is_text(values: np.ndarray) -> bool:
    if values.dtype == object:
        return any(isinstance(v, str) for v in values.tolist())
    return values.dtype.kind in "US"


def _is_flat(values: Sequence[Any]) -> bool:
    return np.ndim(np.asarray(values, dtype=object)) == 1 and not any(
        np.ndim(v) or v is None for v in values
    )


def _check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """Row weights as float32, or None: 1-D, finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight)
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("sample_weight must be numbers.") from None
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per row "
            f"of X, got shape {weights.shape}."
        )
    check_weights(weights, "sample_weight")
    return weights.astype(np.float32)
