"""Batch-level data access for training and prediction.

A default PyTorch ``DataLoader`` fetches every row with its own
``__getitem__`` call and stacks the rows with ``default_collate``, which
dominates the cost of training a small network. Here a batch is one
``index_select`` (or one slice) of a tensor that shares memory with the
NumPy input, and a sparse input is densified one batch at a time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset

__all__ = ["ArrayBatches", "BatchIterator"]


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        return torch.from_numpy(array)
    # catch_warnings swaps the global warning filters (slow, not thread-safe):
    # only for arrays that would warn.
    with warnings.catch_warnings():
        # Read-only arrays are fine: batches are copied, never written to.
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(array)


class ArrayBatches(Dataset):
    """Rows of ``X`` (dense float32 or CSR), of the targets and row weights.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or CSR matrix
        Features, float32. Dense arrays are shared, not copied.
    y : ndarray of shape (n_samples, n_tasks), default=None
        Encoded targets (float32, NaN where missing).
    sample_weight : ndarray of shape (n_samples,), default=None
        Row weights (float32); a batch's targets are then the pair
        ``(targets, weights)``.
    rows : ndarray of int, default=None
        Restrict the data set to these rows of ``X`` and ``y``, without
        copying them.
    """

    def __init__(
        self,
        X: np.ndarray | sp.csr_matrix,
        y: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        self.rows = rows
        self._X = None if sp.issparse(X) else _as_tensor(X)
        self._y = None if y is None else _as_tensor(y)
        self._w = None if sample_weight is None else _as_tensor(sample_weight)

    def __len__(self) -> int:
        return self.X.shape[0] if self.rows is None else len(self.rows)

    def subset(self, rows: np.ndarray) -> ArrayBatches:
        """The data set restricted to ``rows`` (positions in this data set)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.rows is not None:
            rows = self.rows[rows]
        return ArrayBatches(self.X, self.y, self.sample_weight, rows)

    def batch(self, positions: np.ndarray | slice) -> tuple[torch.Tensor, Any]:
        """Features and targets (with the row weights, if any) at ``positions``."""
        if self.rows is not None:
            positions = self.rows[positions]
        if isinstance(positions, slice):
            # Contiguous rows: views, no copy.
            def take(tensor):
                return tensor[positions]
        else:
            index = torch.from_numpy(positions)

            def take(tensor):
                return tensor.index_select(0, index)

        if self._X is not None:
            Xb = take(self._X)
        else:
            Xb = torch.from_numpy(self.X[positions].toarray())
        yb = None if self._y is None else take(self._y)
        if self._w is not None:
            yb = (yb, take(self._w))
        return Xb, yb

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        Xb, yb = self.batch(np.array([i]))
        if isinstance(yb, tuple):
            return Xb[0], tuple(part[0] for part in yb)
        return Xb[0], None if yb is None else yb[0]


class BatchIterator:
    """Iterate over an :class:`ArrayBatches` in mini-batches.

    Used by skorch as ``iterator_train`` / ``iterator_valid``: it is built
    once per training call and iterated once per epoch. With ``shuffle``,
    every epoch draws a new order from a generator seeded by ``seed``.
    """

    def __init__(
        self,
        dataset: ArrayBatches,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            positions = slice(start, stop) if order is None else order[start:stop]
            yield self.dataset.batch(positions)
