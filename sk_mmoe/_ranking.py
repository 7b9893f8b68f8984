"""The weights of the combined ranking score, read against the fitted tasks.

A ranker scores each candidate by a weighted sum of its task scores (Zhao et
al., 2019): the probability of a binary task's positive class, the
prediction of a regression task in its own units, and for a multiclass task
an explicit value per class (the expected value of the class).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._tasks import ClassificationTask, Task

__all__ = ["rank_values"]


def rank_values(tasks: list[Task], weights: Any) -> list[np.ndarray]:
    """One float64 vector per task: the value of each of its outputs.

    ``weights`` is a sequence in task order or a dict by task name (tasks
    not named count 0). The score of a row is the sum over tasks of its
    probabilities (classification) or its prediction (regression) times
    these values.
    """
    names = [task.name for task in tasks]
    if isinstance(weights, Mapping):
        unknown = sorted(set(map(str, weights)) - set(names))
        if unknown:
            raise ValueError(
                f"weights names unknown tasks {unknown}; the tasks are {names}."
            )
        named = {str(k): v for k, v in weights.items()}
        entries = [named.get(name) for name in names]
    elif isinstance(weights, str) or not hasattr(weights, "__len__"):
        raise ValueError(
            f"weights must be a sequence of one weight per task or a dict by task "
            f"name, got {weights!r}."
        )
    else:
        entries = list(weights)
        if len(entries) != len(tasks):
            raise ValueError(
                f"weights must give one weight per task: the model has "
                f"{len(tasks)} task(s) {names}, weights has {len(entries)}."
            )
    values = [
        _task_values(task, entry) for task, entry in zip(tasks, entries, strict=True)
    ]
    if not any(v.any() for v in values):
        raise ValueError("weights must not all be zero.")
    return values


def _task_values(task: Task, entry: Any) -> np.ndarray:
    if entry is None:  # a task a dict leaves out
        return np.zeros(task.n_outputs)
    if _is_number(entry):
        if isinstance(task, ClassificationTask):
            if task.kind != "binary" or task.n_outputs != 2:
                raise ValueError(
                    f"Task {task.name!r} is {task.kind} with the classes "
                    f"{task.classes.tolist()}: give its weight as a value per "
                    f"class, a dict from class to value or a sequence in that "
                    f"order (the score adds the expected value)."
                )
            # A binary task counts the probability of its positive class.
            return _finite(task, [0.0, float(entry)])
        return _finite(task, [float(entry)])
    if not isinstance(task, ClassificationTask):
        raise ValueError(
            f"Task {task.name!r} is a regression task: its weight must be a "
            f"number, got {entry!r}."
        )
    classes = task.classes.tolist()
    if isinstance(entry, Mapping):
        unknown = [c for c in entry if c not in classes]
        missing = [c for c in classes if c not in entry]
        if unknown or missing:
            raise ValueError(
                f"The values of task {task.name!r} must name each of its classes "
                f"{classes} once; unknown: {unknown}, missing: {missing}."
            )
        return _finite(task, [entry[c] for c in classes])
    values = list(np.asarray(entry, dtype=object).reshape(-1))
    if len(values) != len(classes) or not all(_is_number(v) for v in values):
        raise ValueError(
            f"The values of task {task.name!r} must be one number per class "
            f"{classes}, got {entry!r}."
        )
    return _finite(task, values)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _finite(task: Task, values: list[Any]) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.array([np.nan])
    if not np.isfinite(array).all():
        raise ValueError(
            f"The weight of task {task.name!r} must be finite numbers, got {values}."
        )
    return array
