"""Checks of the arguments that depend on the data: task, class and sample
weights, the device, the optimizer, and per-task arguments such as
``partial_fit``'s ``classes``.

:class:`ParameterChecks` is a base of the estimators; each check raises a
ValueError that names the argument, before anything is fitted.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ._data.targets import TargetColumns
from ._fitting.training import OPTIMIZERS
from ._tasks import Task

__all__ = ["ParameterChecks", "check_weights", "resolve_conditional_on"]


def check_weights(weights: np.ndarray, name: str) -> None:
    """Refuse weights that are not finite and non-negative, or all zero."""
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        # The values only when short enough to read (not a sample_weight).
        got = f", got {weights.tolist()}" if weights.size <= 20 else ""
        raise ValueError(f"{name} must be finite and non-negative{got}.")
    if not np.any(weights > 0):
        raise ValueError(f"{name} must not all be zero.")


class ParameterChecks:
    """The estimators' checks of the parameters against the data."""

    def _check_device(self) -> torch.device:
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={self.device!r} is not a torch device.") from exc
        if device.type == "meta":
            raise ValueError(
                "device='meta' holds no data and cannot train or predict; use "
                "'cpu' or an accelerator."
            )
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} was requested but CUDA is not available "
                f"on this machine; use device='cpu'."
            )
        if device.type != "cpu":
            try:
                torch.empty(1, device=device)
            except Exception as exc:  # torch raises RuntimeError, AssertionError...
                reason = (str(exc).splitlines() or [""])[0]
                raise ValueError(
                    f"device={self.device!r} is not available on this machine "
                    f"({type(exc).__name__}: {reason}); use device='cpu'."
                ) from None
        return device

    def _optimizer_class(self) -> type:
        if isinstance(self.optimizer, str):
            return OPTIMIZERS[self.optimizer]
        if not issubclass(self.optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)} or a subclass of "
                f"torch.optim.Optimizer, got {self.optimizer!r}."
            )
        return self.optimizer

    def _check_task_weights(self, task_names: list[str]) -> np.ndarray | str:
        n_tasks = len(task_names)
        if isinstance(self.task_weights, str):
            return self.task_weights
        if self.task_weights is None:
            return np.ones(n_tasks)
        if isinstance(self.task_weights, Mapping):
            unknown = set(map(str, self.task_weights)) - set(task_names)
            if unknown:
                raise ValueError(
                    f"task_weights names unknown tasks {sorted(unknown)}; the "
                    f"tasks are {task_names}."
                )
            named = {str(k): v for k, v in self.task_weights.items()}
            weights = [named.get(name, 1.0) for name in task_names]
        else:
            weights = self.task_weights
        try:
            weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"task_weights must be numbers, got {self.task_weights!r}."
            ) from exc
        if weights.shape[0] != n_tasks:
            raise ValueError(
                f"task_weights must have one weight per task: y has {n_tasks} "
                f"task(s), task_weights has {weights.shape[0]}."
            )
        check_weights(weights, "task_weights")
        return weights

    def _check_class_weight(
        self, tasks: list[Task], encoded: np.ndarray
    ) -> list[np.ndarray | None]:
        """One array of class weights per classification task, None for others."""
        class_weight = self._class_weight_param()
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
