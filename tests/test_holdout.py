"""Tests of the early-stopping hold-out (sk_mmoe._fitting.holdout)."""

import numpy as np
import pytest

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe._fitting.holdout import validation_split


def _sparse_targets(n_rows, labelled_per_task, seed=0):
    rng = np.random.default_rng(seed)
    targets = np.full((n_rows, len(labelled_per_task)), np.nan, dtype=np.float32)
    for k, n in enumerate(labelled_per_task):
        rows = rng.choice(n_rows, size=n, replace=False)
        targets[rows, k] = rng.integers(0, 2, size=n)
    return targets


@pytest.mark.parametrize("seed", range(20))
def test_every_task_with_two_labels_gets_a_validation_and_a_training_label(seed):
    targets = _sparse_targets(2_000, [1_000, 12, 2, 1], seed=seed)
    train, valid = validation_split(targets, 0.1, seed)
    np.testing.assert_array_equal(np.sort(np.r_[train, valid]), np.arange(2_000))
    labelled = ~np.isnan(targets)
    for k in range(3):
        assert labelled[valid, k].any() and labelled[train, k].any(), k
    assert labelled[train, 3].any() and not labelled[valid, 3].any()
    # Only labelled rows are held out, about validation_fraction of them.
    assert labelled[valid].any(axis=1).all()
    n_labelled = labelled.any(axis=1).sum()
    assert abs(len(valid) - 0.1 * n_labelled) <= 3


def test_auto_early_stopping_counts_labelled_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12_000, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(float)
    sparse = np.where(rng.random(12_000) < 0.01, y, np.nan)
    params = dict(max_epochs=2, batch_size=512, random_state=0)
    clf = MultiTaskMMoEClassifier(**params).fit(X, sparse)
    assert "early_stopping" not in dict(clf.net_.callbacks_)
    assert "valid_loss" not in clf.history_[0]
    dense = MultiTaskMMoEClassifier(**params).fit(X, y)
    assert "early_stopping" in dict(dense.net_.callbacks_)
