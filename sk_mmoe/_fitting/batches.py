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
from typing import Any, NamedTuple, cast

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset

__all__ = ["ArrayBatches", "BatchIterator", "ShardTargets"]


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


class ShardTargets(NamedTuple):
    """The targets of one rank's slice of a global batch (data-parallel fit).

    ``counts`` is the number (or total sample weight) of labelled rows of
    each task in the whole global batch, which the loss needs to average
    each task over the global batch rather than over the slice.
    """

    target: torch.Tensor
    weight: torch.Tensor | None
    counts: torch.Tensor


def _csr_tensor(X: sp.csr_matrix) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (indices as int64)."""
    X = sp.csr_matrix(X)
    with warnings.catch_warnings():
        # torch warns that CSR support is "beta" and that invariant checks
        # are off (scipy's CSR is valid by construction).
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)),
            torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(X.data, dtype=np.float32)),
            X.shape,
        )


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
    sparse_batches : bool, default=False
        For a CSR ``X``: give batches as sparse CSR tensors (for a network
        that reads them, see :class:`sk_mmoe.nn.network.SparseProjection`)
        instead of densifying them.
    """

    def __init__(
        self,
        X: np.ndarray | sp.csr_matrix,
        y: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        sparse_batches: bool = False,
    ) -> None:
        self.X = X
        self.sparse_batches = sparse_batches and sp.issparse(X)
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
        return ArrayBatches(
            self.X, self.y, self.sample_weight, rows, self.sparse_batches
        )

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
        elif self.sparse_batches:
            Xb = _csr_tensor(self.X[positions])
        else:
            # Without a dense tensor, X is sparse.
            Xb = torch.from_numpy(cast(sp.csr_matrix, self.X)[positions].toarray())
        yb = None if self._y is None else take(self._y)
        if self._w is not None:
            yb = (yb, take(self._w))
        return Xb, yb

    def labelled_counts(self, positions: np.ndarray | slice) -> torch.Tensor:
        """Labelled rows (total sample weight) of each task at ``positions``."""
        assert self._y is not None  # called on data with targets
        if self.rows is not None:
            positions = self.rows[positions]
        if isinstance(positions, slice):
            y = self._y[positions]
            w = None if self._w is None else self._w[positions]
        else:
            index = torch.from_numpy(positions)
            y = self._y.index_select(0, index)
            w = None if self._w is None else self._w.index_select(0, index)
        labelled = ~torch.isnan(y)
        if w is None:
            return labelled.sum(dim=0).to(torch.float32)
        return (labelled * w.unsqueeze(1)).sum(dim=0)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        Xb, yb = self.batch(np.array([i]))
        if Xb.layout != torch.strided:
            Xb = Xb.to_dense()
        if isinstance(yb, tuple):
            return Xb[0], tuple(part[0] for part in yb)
        return Xb[0], None if yb is None else yb[0]


class BatchIterator:
    """Iterate over an :class:`ArrayBatches` in mini-batches.

    Used by skorch as ``iterator_train`` / ``iterator_valid``: it is built
    once per training call and iterated once per epoch. With ``shuffle``,
    every epoch draws a new order from a generator seeded by ``seed``.

    In a data-parallel fit (``world_size > 1``) every rank iterates over the
    same global batches (same seed, same order) and yields only its own
    contiguous slice of each, ``world_size`` slices of near-equal size (a
    slice may be empty). Its targets are then a :class:`ShardTargets`,
    carrying the labelled counts of the whole global batch.
    """

    def __init__(
        self,
        dataset: ArrayBatches,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}.")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Any]]:
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else None
        positions: slice | np.ndarray
        whole: slice | np.ndarray
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.world_size == 1:
                positions = slice(start, stop) if order is None else order[start:stop]
                yield self.dataset.batch(positions)
                continue
            size = stop - start
            lo = start + self.rank * size // self.world_size
            hi = start + (self.rank + 1) * size // self.world_size
            if order is None:
                positions, whole = slice(lo, hi), slice(start, stop)
            else:
                positions, whole = order[lo:hi], order[start:stop]
            Xb, yb = self.dataset.batch(positions)
            target, weight = yb if isinstance(yb, tuple) else (yb, None)
            counts = self.dataset.labelled_counts(whole)
            yield Xb, ShardTargets(target, weight, counts)
