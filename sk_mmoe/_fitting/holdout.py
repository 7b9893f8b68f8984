"""The validation rows that early stopping holds out, chosen per task.

Only rows labelled for some task are worth validating on: the hold-out is
``validation_fraction`` of them, drawn at random, and then completed so that
every task with at least two labelled rows has at least one of them among
the validation rows and one among the training rows. A task with a single
labelled row trains on it and has no validation label (its validation loss
is then NaN and the other tasks' losses decide). Rows without any label go
to the training side, where they add nothing to the tasks' losses.
"""

from __future__ import annotations

import numpy as np

__all__ = ["labelled_rows", "n_validation_rows", "validation_split"]


def labelled_rows(targets: np.ndarray) -> np.ndarray:
    """Mask of the rows of the encoded ``targets`` (NaN: missing) that carry
    a label for at least one task."""
    return ~np.isnan(targets).all(axis=1)


def n_validation_rows(n_labelled: int, fraction: float) -> int:
    """Rows held out for early stopping among ``n_labelled`` labelled rows,
    before the per-task completion of :func:`validation_split`."""
    return max(1, int(round(fraction * n_labelled)))


def validation_split(
    targets: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row positions for the encoded ``targets``.

    Parameters
    ----------
    targets : ndarray of shape (n_samples, n_tasks)
        Encoded targets, NaN where an entry is missing.
    fraction : float
        Share of the labelled rows to hold out.
    seed : int
        Seed of the draw.

    Returns
    -------
    train, valid : ndarray of int
        Sorted row positions; together every row once.
    """
    labelled = ~np.isnan(targets)
    rng = np.random.default_rng(seed)
    candidates = rng.permutation(np.flatnonzero(labelled.any(axis=1)))
    is_valid = np.zeros(len(targets), dtype=bool)
    is_valid[candidates[: n_validation_rows(len(candidates), fraction)]] = True
    for k in range(labelled.shape[1]):
        rows = np.flatnonzero(labelled[:, k])
        if len(rows) < 2:
            is_valid[rows] = False  # a single label trains
            continue
        if not is_valid[rows].any():
            is_valid[rng.choice(rows)] = True
        if is_valid[rows].all():
            is_valid[rng.choice(rows)] = False
    return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)
