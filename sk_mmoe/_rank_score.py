"""The weights of the combined ranking score, read against the fitted tasks.

A ranker scores each candidate by a weighted sum of its task scores (Zhao et
al., 2019). Each task turns its entry of the weights into one value per
column of its prediction head (:meth:`~sk_mmoe._tasks.Task.rank_values`):
the score adds every task's head (its probabilities, for a task that has
them) times its values, in ``rank_score`` and in the exported graph alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._tasks import Task

__all__ = ["rank_score_of", "rank_values"]


def rank_values(tasks: list[Task], weights: Any) -> list[np.ndarray]:
    """One float64 vector per task: the value of each column of its head.

    ``weights`` is a sequence in task order or a dict by task name (tasks
    not named count 0).
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
        task.rank_values(entry) for task, entry in zip(tasks, entries, strict=True)
    ]
    if not any(v.any() for v in values):
        raise ValueError("weights must not all be zero.")
    return values


def rank_score_of(
    tasks: list[Task], heads: list[np.ndarray], values: list[np.ndarray]
) -> np.ndarray:
    """The ranking score of the rows of the tasks' heads (float64): each
    task's probabilities as ``predict_proba`` gives them, or its head (the
    prediction) if it has none, times its values."""
    score = np.zeros(heads[0].shape[0])
    for task, head, value in zip(tasks, heads, values, strict=True):
        proba = task.proba(head)
        columns = head if proba is None else proba
        score += columns.reshape(columns.shape[0], -1).astype(np.float64) @ value
    return score
