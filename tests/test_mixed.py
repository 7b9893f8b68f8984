"""Tests for MultiTaskMMoE, tasks of different types (sk_mmoe._mixed)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import accuracy_score, r2_score

from sk_mmoe import MultiTaskMMoE

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(16,),
    tower_hidden_layer_sizes=(8,),
    batch_size=32,
    max_epochs=3,
    lr=0.01,
    random_state=0,
)


@pytest.fixture(scope="module")
def data():
    """Click (binary), watch time (regression, clicked rows only), rating."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    click = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    watch = np.where(click == 1, 30 + 10 * X[:, 1] + rng.normal(size=300), np.nan)
    rating = np.digitize(X[:, 2], [-0.5, 0.5])  # 0, 1, 2
    return X, pd.DataFrame({"click": click, "watch": watch, "rating": rating})


@pytest.fixture(scope="module")
def fitted(data):
    X, Y = data
    return MultiTaskMMoE(**SMALL).fit(X, Y)


def test_auto_task_types_and_attributes(fitted):
    assert fitted.task_types_ == ["binary", "regression", "multiclass"]
    assert fitted.task_names_ == ["click", "watch", "rating"]
    assert fitted.classes_[0].tolist() == [0, 1]
    assert fitted.classes_[1] is None
    assert fitted.classes_[2].tolist() == [0, 1, 2]
    assert np.isnan(fitted.target_mean_[[0, 2]]).all()
    assert np.isnan(fitted.target_scale_[[0, 2]]).all()


def test_regression_task_is_standardised_on_its_labelled_rows(data, fitted):
    _, Y = data
    assert fitted.target_mean_[1] == pytest.approx(Y["watch"].mean())
    assert fitted.target_scale_[1] == pytest.approx(Y["watch"].std(ddof=0))


def test_predict_is_an_object_array_in_each_tasks_type(data, fitted):
    X, _ = data
    pred = fitted.predict(X)
    assert pred.shape == (300, 3) and pred.dtype == object
    assert set(pred[:, 0]) <= {0, 1} and set(pred[:, 2]) <= {0, 1, 2}
    assert all(isinstance(v, float) for v in pred[:, 1])
    proba = fitted.predict_proba(X)
    assert isinstance(proba, list) and len(proba) == 3
    assert proba[0].shape == (300, 2) and proba[1] is None
    assert proba[2].shape == (300, 3)
    for k in (0, 2):
        np.testing.assert_allclose(proba[k].sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_array_equal(
            fitted.classes_[k][proba[k].argmax(axis=1)], pred[:, k].astype(int)
        )


def test_predict_of_regression_only_tasks_is_float(data):
    X, Y = data
    model = MultiTaskMMoE(**SMALL).fit(X, Y[["watch"]].fillna(0.5))
    pred = model.predict(X)
    assert pred.dtype == np.float64 and model.predict_proba(X) == [None]


def test_score_is_the_mean_of_accuracy_and_r2(data, fitted):
    X, Y = data
    pred = fitted.predict(X)
    labelled = Y["watch"].notna().to_numpy()
    expected = np.mean(
        [
            accuracy_score(Y["click"], pred[:, 0].astype(int)),
            r2_score(Y["watch"][labelled], pred[labelled, 1].astype(float)),
            accuracy_score(Y["rating"], pred[:, 2].astype(int)),
        ]
    )
    assert fitted.score(X, Y) == pytest.approx(expected)


@pytest.mark.parametrize(
    "task_types",
    [
        ["binary", "regression", "multiclass"],
        {"watch": "regression"},
        {"click": "binary", "rating": "auto"},
        ("auto", "auto", "auto"),
    ],
)
def test_task_types_as_list_or_dict(data, task_types):
    X, Y = data
    model = MultiTaskMMoE(**dict(SMALL, max_epochs=1), task_types=task_types)
    assert model.fit(X, Y).task_types_ == ["binary", "regression", "multiclass"]


def test_declared_types_override_inference(data):
    X, Y = data
    # Whole numbers are classes unless declared a regression task.
    model = MultiTaskMMoE(
        **dict(SMALL, max_epochs=1), task_types={"rating": "regression"}
    )
    model.fit(X, Y)
    assert model.task_types_ == ["binary", "regression", "regression"]
    assert model.classes_[2] is None
    assert model.predict(X)[:, 2].dtype == object
    assert all(isinstance(v, float) for v in model.predict(X)[:, 2])


@pytest.mark.parametrize(
    "task_types, match",
    [
        (["binary", "continuous", "multiclass"], "must be one of.*'continuous'"),
        ({"watch": "ordinal"}, "must be one of.*'ordinal'"),
        (["binary", "regression"], "one type per task"),
        ({"views": "regression"}, r"unknown tasks \['views'\]"),
        ("regression", "task_types"),
        (["binary", "binary", "multiclass"], "Unknown label type|continuous"),
        (["binary", "regression", "binary"], "declared 'binary' but has 3"),
    ],
)
def test_wrong_task_types_are_refused(data, task_types, match):
    X, Y = data
    with pytest.raises(ValueError, match=match):
        MultiTaskMMoE(**SMALL, task_types=task_types).fit(X, Y)


def test_class_weight_for_a_regression_task_is_refused(data):
    X, Y = data
    with pytest.raises(ValueError, match="class_weight for task 'watch' must be None"):
        MultiTaskMMoE(**SMALL, class_weight=[None, {0: 1.0}, None]).fit(X, Y)
    with pytest.raises(ValueError, match="class_weight for task 'watch' must be None"):
        MultiTaskMMoE(**SMALL, class_weight=[None, "balanced", None]).fit(X, Y)
    # "balanced" for every task applies to the classification tasks only.
    model = MultiTaskMMoE(**dict(SMALL, max_epochs=1), class_weight="balanced")
    model.fit(X, Y)
    weights = model.net_.criterion_.class_weights
    counts = np.bincount(Y["rating"])
    np.testing.assert_allclose(weights[1].numpy(), 300 / (3 * counts), rtol=1e-6)
    # A dict only for a single classification task.
    with pytest.raises(ValueError, match="single classification task"):
        MultiTaskMMoE(**SMALL, class_weight={0: 1.0}).fit(X, Y)


def test_class_weight_all_zero_is_refused(data):
    X, Y = data
    with pytest.raises(ValueError, match="every class weight 0"):
        MultiTaskMMoE(**SMALL, class_weight=[{0: 0, 1: 0}, None, None]).fit(X, Y)


def test_partial_fit_needs_classes_for_classification_tasks(data):
    X, Y = data
    model = MultiTaskMMoE(**SMALL)
    with pytest.raises(ValueError, match="classes must be passed"):
        model.partial_fit(X, Y)
    # A first chunk without rating 2, and watch time fixed by its rows.
    chunk = (Y["rating"] < 2).to_numpy()
    model.partial_fit(X[chunk], Y[chunk], classes=[[0, 1], None, [0, 1, 2]])
    assert model.task_types_ == ["binary", "regression", "multiclass"]
    assert model.target_mean_[1] == pytest.approx(Y["watch"][chunk].mean())
    model.partial_fit(X, Y)
    # Chunks that lack a class of a multiclass task are fine, too.
    model.partial_fit(X[chunk], Y[chunk])
    assert model.n_iter_ == 3
    with pytest.raises(ValueError, match="one entry per task"):
        MultiTaskMMoE(**SMALL).partial_fit(X, Y, classes=[[0, 1]])
    # n_features_in_ is checked from the second call on.
    with pytest.raises(ValueError, match="expecting 5 features"):
        model.partial_fit(X[:, :1], Y)


def test_continued_training_keeps_task_types(data):
    X, Y = data
    model = MultiTaskMMoE(**SMALL, warm_start=True).fit(X, Y)
    Y_str = Y.assign(click=np.where(Y["click"] == 1, "y", "n"))
    with pytest.raises(ValueError, match=r"\['n', 'y'\] that are not in its classes"):
        model.fit(X, Y_str)
    Y_float = Y.assign(rating=Y["rating"] + 0.5)
    with pytest.raises(ValueError, match="must keep its classes"):
        model.fit(X, Y_float)
    assert model.n_iter_ == 3


def test_missing_label_marker_and_none(data):
    X, Y = data
    Y_obj = Y.astype(object)
    Y_obj.loc[Y["watch"].isna(), "watch"] = None
    Y_marked = Y.copy()
    Y_marked["watch"] = Y["watch"].fillna(-1.0)
    Y_marked.loc[::7, "rating"] = -1
    Y_obj.loc[::7, "rating"] = None
    a = MultiTaskMMoE(**SMALL).fit(X, Y_obj)
    b = MultiTaskMMoE(**SMALL, missing_label=-1).fit(X, Y_marked)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.task_types_ == b.task_types_ == ["binary", "regression", "multiclass"]


def test_string_marker_against_numeric_labels_is_refused(data):
    X, Y = data
    Y_marked = Y.copy()
    Y_marked.loc[::7, "rating"] = -1
    with pytest.raises(ValueError, match="differ only in type"):
        MultiTaskMMoE(**SMALL, missing_label="-1").fit(X, Y_marked)


def test_sparse_input_and_partial_fit_n_features(data):
    # What the two estimator checks listed as expected failures test.
    X, Y = data
    X_sparse = np.where(np.abs(X) < 0.5, 0, X).astype(np.float32)
    # Sparse inputs are scaled and embedded as their dense copies.
    dense = MultiTaskMMoE(**SMALL).fit(X_sparse, Y)
    for container in (sp.csr_matrix, sp.csc_matrix, sp.csr_array):
        sparse = MultiTaskMMoE(**SMALL).fit(container(X_sparse), Y)
        np.testing.assert_array_equal(
            sparse.predict(container(X_sparse)), dense.predict(X_sparse)
        )
        proba = sparse.predict_proba(container(X_sparse))
        np.testing.assert_array_equal(proba[2], dense.predict_proba(X_sparse)[2])
    one_task = MultiTaskMMoE(**SMALL).partial_fit(X, Y["rating"], classes=[0, 1, 2])
    assert one_task.n_features_in_ == 5 and one_task.predict_proba(X).shape == (300, 3)
    with pytest.raises(ValueError, match="expecting 5 features"):
        one_task.partial_fit(X[:, :1], Y["rating"])


def test_uncertainty_weights_for_mixed_tasks(data):
    X, Y = data
    model = MultiTaskMMoE(**SMALL, task_weights="uncertainty").fit(X, Y)
    weighting = model.net_.criterion_.weighting
    # Regression weights start from 1/2, classification from 1.
    np.testing.assert_array_equal(weighting.scale.numpy(), [1.0, 0.5, 1.0])
    np.testing.assert_allclose(
        model.task_weights_,
        weighting.scale.numpy() * np.exp(-weighting.log_variance.detach().numpy()),
        rtol=1e-6,
    )
    for name in ("click", "watch", "rating"):
        assert f"task_weight_{name}" in model.history_[-1]


def test_loss_per_task_makes_whole_counts_a_count_task(data):
    X = data[0]
    rng = np.random.default_rng(1)
    clicks = (X[:, 0] > 0).astype(int)
    views = rng.poisson(np.exp(0.5 * X[:, 1]))
    times = 30 + 5 * X[:, 2]
    Y = np.column_stack([clicks, views, times])
    model = MultiTaskMMoE(**SMALL, loss={"task1": "poisson", "task2": "huber"})
    model.fit(X, Y)
    assert model.task_types_ == ["binary", "poisson", "regression"]
    assert [task.loss for task in model._tasks] == ["cross_entropy", "poisson", "huber"]
    assert model.classes_[1] is None and model.target_mean_[1] == views.mean()
    assert (model.predict(X)[:, 1].astype(float) > 0).all()
    assert model.predict_proba(X)[1] is None


@pytest.mark.parametrize(
    "loss, match",
    [
        ({"nope": "poisson"}, "loss names unknown tasks"),
        ({"task0": "poisson", "task1": "cross_entropy"}, "must be one of"),
        ({"task1": "absolute"}, "must be one of"),
    ],
)
def test_wrong_losses_per_task_are_refused(data, loss, match):
    X = data[0]
    Y = np.column_stack([(X[:, 0] > 0).astype(int), X[:, 1]])
    with pytest.raises(ValueError, match=match):
        MultiTaskMMoE(**SMALL, loss=loss, task_types=["binary", "regression"]).fit(X, Y)


def test_conditional_task_among_tasks_of_other_types():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    click = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    buy = np.where(click == 1, (X[:, 1] > 0).astype(float), np.nan)
    Y = pd.DataFrame({"click": click, "time": 30 + 5 * X[:, 2], "buy": buy})
    model = MultiTaskMMoE(**SMALL, conditional_on={"buy": "click"}).fit(X, Y)
    joint, conditional = model.predict_proba(X), model.predict_conditional_proba(X)
    assert joint[1] is None and conditional[1] is None
    np.testing.assert_allclose(
        joint[2][:, 1], joint[0][:, 1] * conditional[2][:, 1], rtol=1e-5
    )
    with pytest.raises(ValueError, match="'time', a regression task.*binary"):
        MultiTaskMMoE(**SMALL, conditional_on={"time": "click"}).fit(X, Y)


def test_minus_one_is_a_missing_label_as_in_the_classifier():
    from sk_mmoe import MultiTaskMMoEClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    y[::5] = -1
    mixed = MultiTaskMMoE(max_epochs=1, task_types=["binary"]).fit(X, y)
    clf = MultiTaskMMoEClassifier(max_epochs=1).fit(X, y)
    assert mixed.task_types_ == ["binary"]
    np.testing.assert_array_equal(mixed.classes_[0], clf.classes_)
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    kept = MultiTaskMMoE(max_epochs=1, missing_label=None).fit(X, y)
    np.testing.assert_array_equal(kept.classes_[0], [-1, 0, 1])


def test_many_whole_numbers_are_a_regression_task_with_a_warning():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    counts = rng.poisson(np.exp(X[:, 0] + 1.5))
    assert np.unique(counts).size > 10
    digits = rng.integers(0, 10, size=300)
    Y = pd.DataFrame({"visits": counts, "digit": digits})
    with pytest.warns(UserWarning, match=r"task_types=\{'visits': 'multiclass'\}"):
        model = MultiTaskMMoE(max_epochs=1).fit(X, Y)
    assert model.task_types_ == ["regression", "multiclass"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        declared = MultiTaskMMoE(max_epochs=1, loss={"visits": "poisson"}).fit(X, Y)
        classes = MultiTaskMMoE(max_epochs=1, task_types={"visits": "multiclass"}).fit(
            X, Y
        )
    assert declared.task_types_ == ["poisson", "multiclass"]
    assert classes.task_types_ == ["multiclass", "multiclass"]
