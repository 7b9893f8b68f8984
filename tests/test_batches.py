"""Tests for sk_mmoe._fitting.batches."""

import numpy as np
import scipy.sparse as sp
import torch

from sk_mmoe._fitting.batches import ArrayBatches, BatchIterator


def _data(n=23, d=4):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[X < 0.5] = 0
    y = np.arange(n * 2, dtype=np.int64).reshape(n, 2)
    return X, y


def test_each_epoch_visits_every_row_once_in_a_new_order():
    X, y = _data()
    it = BatchIterator(ArrayBatches(X, y), batch_size=5, shuffle=True, seed=0)
    assert len(it) == 5
    orders = []
    for _ in range(2):
        batches = list(it)
        assert [len(b[0]) for b in batches] == [5, 5, 5, 5, 3]
        rows = torch.cat([yb[:, 0] for _, yb in batches]).numpy() // 2
        assert sorted(rows) == list(range(23))
        for Xb, yb in batches:
            np.testing.assert_array_equal(Xb.numpy(), X[yb[:, 0].numpy() // 2])
        orders.append(rows)
    assert not np.array_equal(orders[0], orders[1])

    again = BatchIterator(ArrayBatches(X, y), batch_size=5, shuffle=True, seed=0)
    np.testing.assert_array_equal(
        torch.cat([yb[:, 0] for _, yb in again]).numpy() // 2, orders[0]
    )


def test_unshuffled_batches_are_views_of_the_input():
    X, y = _data()
    batches = list(BatchIterator(ArrayBatches(X, y), batch_size=10))
    first, _ = batches[0]
    assert first.data_ptr() == torch.from_numpy(X).data_ptr()
    np.testing.assert_array_equal(torch.cat([b[0] for b in batches]).numpy(), X)


def test_sparse_input_is_densified_per_batch():
    X, y = _data()
    dense = list(BatchIterator(ArrayBatches(X, y), 6, shuffle=True, seed=1))
    sparse = list(
        BatchIterator(ArrayBatches(sp.csr_matrix(X), y), 6, shuffle=True, seed=1)
    )
    for (Xd, yd), (Xs, ys) in zip(dense, sparse, strict=True):
        assert Xs.dtype == torch.float32 and Xs.shape == Xd.shape
        torch.testing.assert_close(Xs, Xd)
        torch.testing.assert_close(ys, yd)


def test_subset_selects_rows_without_copying_the_data():
    X, y = _data()
    data = ArrayBatches(X, y)
    sub = data.subset(np.array([3, 1, 7]))
    assert len(sub) == 3 and sub.X is X
    Xb, yb = sub.batch(slice(0, 3))
    np.testing.assert_array_equal(Xb.numpy(), X[[3, 1, 7]])
    np.testing.assert_array_equal(yb.numpy(), y[[3, 1, 7]])
    subsub = sub.subset(np.array([2]))
    np.testing.assert_array_equal(subsub.batch(slice(0, 1))[1].numpy(), y[[7]])
    Xi, yi = sub[1]
    np.testing.assert_array_equal(Xi.numpy(), X[1])
