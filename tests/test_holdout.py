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


def test_rows_without_any_label_are_skipped_in_training():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    Y[::3] = np.nan  # a third of the rows have no label at all
    labelled = ~np.isnan(Y).all(axis=1)
    # Without scaling, nothing reads the unlabelled rows: the fit equals the
    # fit on the labelled rows alone (the same batches, in the same order).
    params = dict(
        max_epochs=3,
        batch_size=32,
        numeric_scaling=None,
        numeric_embedding=None,
        random_state=0,
    )
    every = MultiTaskMMoEClassifier(**params).fit(X, Y)
    only = MultiTaskMMoEClassifier(**params).fit(X[labelled], Y[labelled])
    for a, b in zip(every.predict_proba(X), only.predict_proba(X), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # The gates' balance loss reads every row: they are kept then.
    balanced = MultiTaskMMoEClassifier(**params, gate_balance=0.1).fit(X, Y)
    assert len(balanced.net_.history[-1]["batches"]) == -(-300 // 32)
    assert len(every.net_.history[-1]["batches"]) == -(-200 // 32)
