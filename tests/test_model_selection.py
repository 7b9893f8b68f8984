"""Tests for the multi-task stratified splitters."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    cross_validate,
    permutation_test_score,
)

from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier
from sk_mmoe.metrics import multitask_scoring
from sk_mmoe.model_selection import (
    MultiTaskStratifiedKFold,
    RepeatedMultiTaskStratifiedKFold,
)


def _targets(n=2000, seed=0):
    """A dense binary task, a half-labelled 5-class task marked with -1 and a
    scarce binary task marked with NaN (2% labelled)."""
    rng = np.random.default_rng(seed)
    Y = np.column_stack(
        [rng.random(n) < 0.3, rng.integers(0, 5, n), rng.random(n) < 0.2]
    ).astype(float)
    Y[rng.random(n) < 0.5, 1] = -1
    Y[rng.random(n) >= 0.02, 2] = np.nan
    return Y


def _test_folds(cv, X, Y):
    folds = np.full(len(X), -1)
    for i, (train, test) in enumerate(cv.split(X, Y)):
        assert np.all(folds[test] == -1)  # each row is tested once
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(X)))
        folds[test] = i
    assert np.all(folds >= 0)
    return folds


def _strata_counts(Y, folds, n_splits):
    """For every (task, stratum): its number of rows in each fold."""
    counts = []
    for k in range(Y.shape[1]):
        column = np.where(np.isnan(Y[:, k]), -1, Y[:, k])
        for value in np.unique(column):
            counts.append(np.bincount(folds[column == value], minlength=n_splits))
    return counts


def test_every_task_class_and_missing_stratum_is_balanced_across_folds():
    Y = _targets()
    X = np.zeros((len(Y), 1))
    ours = _test_folds(MultiTaskStratifiedKFold(5, shuffle=True, random_state=0), X, Y)
    for counts in _strata_counts(Y, ours, 5):
        # The rare strata (the scarce task's) are split to the row, the
        # large ones within a row or two.
        assert np.ptp(counts) <= (1 if counts.sum() < 200 else 2)
    assert np.ptp(np.bincount(ours)) <= 2
    # Plain shuffled folds are much less even on the scarce task.
    kfold = np.empty(len(Y), dtype=int)
    for i, (_, test) in enumerate(KFold(5, shuffle=True, random_state=0).split(X)):
        kfold[test] = i
    spread = [np.ptp(c) for c in _strata_counts(Y[:, 2:], kfold, 5)]
    assert max(spread) > 3


@pytest.mark.parametrize(
    "column, missing_label",
    [
        (["x", "y", None, "y", "x", None, "x", "y", None, "x"] * 6, -1),
        ([1.0, 0.0, np.nan, 0.0, 1.0, np.nan, 1.0, 0.0, np.nan, 1.0] * 6, -1),
        ([1, 0, -1, 0, 1, -1, 1, 0, -1, 1] * 6, -1),
        (["x", "y", "?", "y", "x", "?", "x", "y", "?", "x"] * 6, "?"),
    ],
    ids=["strings-None", "floats-NaN", "ints-marker", "strings-marker"],
)
def test_each_kind_of_missing_entry_is_its_own_stratum(column, missing_label):
    Y = pd.DataFrame({"dense": np.arange(60) % 2, "sparse": column})
    cv = MultiTaskStratifiedKFold(3, missing_label=missing_label)
    folds = _test_folds(cv, np.zeros((60, 1)), Y)
    missing = Y["sparse"].isin([None, -1, "?"]).to_numpy() | Y["sparse"].isna()
    # 18 missing and 42 labelled rows (24 and 18 per class): 6, 8 and 6 per fold.
    assert np.array_equal(np.bincount(folds[missing.to_numpy()]), [6, 6, 6])
    labels = Y["sparse"].to_numpy()
    for value in set(labels[~missing.to_numpy()]):
        counts = np.bincount(folds[labels == value], minlength=3)
        assert np.ptp(counts) == 0


def test_regression_task_is_stratified_on_quantile_bins():
    rng = np.random.default_rng(0)
    value = rng.lognormal(size=500)
    value[rng.random(500) < 0.3] = np.nan
    Y = np.column_stack([rng.random(500) < 0.5, value])
    folds = _test_folds(MultiTaskStratifiedKFold(5, n_bins=4), np.zeros((500, 1)), Y)
    labelled = ~np.isnan(value)
    edges = np.quantile(value[labelled], [0.25, 0.5, 0.75])
    bins = np.searchsorted(edges, value[labelled], side="right")
    for b in range(4):
        assert np.ptp(np.bincount(folds[labelled][bins == b], minlength=5)) <= 1
    assert np.ptp(np.bincount(folds[~labelled], minlength=5)) <= 1
    # n_bins=1: the regression task counts as labelled or missing only.
    one_bin = MultiTaskStratifiedKFold(5, n_bins=1)
    assert one_bin._strata(Y)[:, 1].max() == 1


def test_splits_are_deterministic_without_shuffle_and_seeded_with_it():
    Y = _targets(300)
    X = np.zeros((300, 1))

    def folds(cv):
        return _test_folds(cv, X, Y)

    assert np.array_equal(
        folds(MultiTaskStratifiedKFold(3)), folds(MultiTaskStratifiedKFold(3))
    )
    seeded = [
        folds(MultiTaskStratifiedKFold(3, shuffle=True, random_state=s))
        for s in (0, 0, 1)
    ]
    assert np.array_equal(seeded[0], seeded[1])
    assert not np.array_equal(seeded[0], seeded[2])


def test_single_task_y_and_task_without_labels():
    y = np.array([0, 1, -1] * 10)
    folds = _test_folds(MultiTaskStratifiedKFold(5), np.zeros((30, 1)), y)
    for value in (0, 1, -1):
        assert np.array_equal(np.bincount(folds[y == value]), [2] * 5)
    Y = np.column_stack([y, np.full(30, np.nan)])
    _test_folds(MultiTaskStratifiedKFold(5), np.zeros((30, 1)), Y)


def test_warns_when_a_class_has_fewer_labelled_rows_than_folds():
    Y = np.column_stack([np.arange(40) % 2, [1, 0] + [-1] * 38])
    with pytest.warns(
        UserWarning, match=r"Task 'task1'.*only 1 labelled rows.*n_splits=5"
    ):
        list(MultiTaskStratifiedKFold(5).split(np.zeros((40, 1)), Y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(MultiTaskStratifiedKFold(5).split(np.zeros((40, 1)), Y[:, :1]))


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_splits": 1}, ValueError, "n_splits=2 or more"),
        ({"n_splits": 2.5}, ValueError, "must be of Integral type"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
        ({"random_state": 0}, ValueError, "Setting a random_state has no effect"),
        ({"n_bins": 0}, ValueError, "n_bins must be at least 1, got 0"),
        ({"n_bins": "3"}, TypeError, "n_bins must be an int"),
        ({"missing_label": [-1]}, TypeError, "missing_label must be an int"),
    ],
)
def test_bad_parameters_are_refused(params, error, match):
    with pytest.raises(error, match=match):
        MultiTaskStratifiedKFold(**params)


def test_bad_split_arguments_are_refused():
    X = np.zeros((4, 1))
    with pytest.raises(ValueError, match="pass y"):
        next(MultiTaskStratifiedKFold(2).split(X, None))
    with pytest.raises(
        ValueError, match="n_splits=5 greater than the number of samples"
    ):
        next(MultiTaskStratifiedKFold(5).split(X, np.arange(4) % 2))
    with pytest.raises(TypeError, match="mixes label types"):
        next(
            MultiTaskStratifiedKFold(2).split(
                X, np.array(["a", 1, "b", 2], dtype=object)
            )
        )


def test_repeated_splits_reshuffle_every_repetition():
    Y = _targets(200)[:, :2]
    X = np.zeros((200, 1))
    cv = RepeatedMultiTaskStratifiedKFold(n_splits=4, n_repeats=3, random_state=0)
    assert cv.get_n_splits() == 12
    tests = [test for _, test in cv.split(X, Y)]
    assert len(tests) == 12
    for r in range(3):
        rows = np.sort(np.concatenate(tests[4 * r : 4 * r + 4]))
        assert np.array_equal(rows, np.arange(200))
    assert not np.array_equal(np.sort(tests[0]), np.sort(tests[4]))
    assert "n_bins=5" in repr(cv) and "n_repeats=3" in repr(cv)


@pytest.fixture(scope="module")
def labelled_data():
    """String labels with None and float labels with NaN, 90 rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    strings = pd.DataFrame(
        {
            "a": np.where(X[:, 0] > 0, "yes", "no").astype(object),
            "b": np.where(X[:, 1] > 0, "u", "v").astype(object),
        }
    )
    strings.loc[::3, "b"] = None
    floats = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    floats[::3, 1] = np.nan
    return X, {"strings-None": strings, "floats-NaN": floats}


@pytest.mark.parametrize("kind", ["strings-None", "floats-NaN"])
def test_works_in_model_selection_tools_with_missing_labels(labelled_data, kind):
    X, targets = labelled_data
    Y = targets[kind]
    clf = MultiTaskMMoEClassifier(max_epochs=1, batch_size=32, random_state=0)
    cv = MultiTaskStratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_validate(clf, X, Y, cv=cv, scoring=multitask_scoring("roc_auc"))
    task_b = "b" if kind == "strings-None" else "task1"
    assert np.isfinite(scores[f"test_roc_auc_{task_b}"]).all()
    search = GridSearchCV(clf, {"n_experts": [1, 2]}, cv=cv).fit(X, Y)
    assert len(search.cv_results_["split2_test_score"]) == 2
    score, permuted, _ = permutation_test_score(
        clf, X, Y, cv=cv, n_permutations=2, random_state=0
    )
    assert np.isfinite(score) and np.isfinite(permuted).all()


def test_mixed_tasks_with_a_regression_column(labelled_data):
    X, _ = labelled_data
    Y = pd.DataFrame(
        {
            "click": (X[:, 0] > 0).astype(int),
            "time": np.where(X[:, 0] > 0, X[:, 1], np.nan),
        }
    )
    model = MultiTaskMMoE(max_epochs=1, batch_size=32, random_state=0)
    scores = cross_validate(model, X, Y, cv=MultiTaskStratifiedKFold(3))
    assert np.isfinite(scores["test_score"]).all()
