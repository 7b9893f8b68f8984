"""Tests for sk_mmoe.metrics."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    fbeta_score,
    log_loss,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import KFold, cross_validate
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import make_task_correlation
from sk_mmoe.metrics import multitask_scoring, task_scorer

pd = pytest.importorskip("pandas")

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    lr=1e-2,
    max_epochs=3,
    random_state=0,
)


def _data(n=300, seed=0):
    X, Y = make_task_correlation(n, 0.5, n_features=5, random_state=seed)
    return X, Y


@pytest.fixture(scope="module")
def binary():
    """Two binary tasks; a third of task 1's labels are missing (-1)."""
    X, Y = _data()
    Y = Y.copy()
    Y[::3, 1] = -1
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    return clf, X, Y


@pytest.fixture(scope="module")
def mixed():
    """DataFrame Y: a binary int task and a 3-class string task with None."""
    X, Y = _data(seed=1)
    rng = np.random.default_rng(0)
    colour = np.array(["blue", "green", "red"], dtype=object)[
        np.digitize(X[:, 0] + 0.3 * rng.normal(size=len(X)), [-0.4, 0.4])
    ]
    colour[::4] = None
    Y = pd.DataFrame({"click": Y[:, 0], "colour": colour})
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    return clf, X, Y


def _expected(metric, y, proba, pred, classes):
    """The metric computed by hand with scikit-learn."""
    pos = proba[:, 1]
    y_pos = y == classes[1]
    return {
        "roc_auc": lambda: roc_auc_score(y_pos, pos),
        "average_precision": lambda: average_precision_score(y_pos, pos),
        "neg_log_loss": lambda: -log_loss(y, proba, labels=classes),
        "log_loss": lambda: -log_loss(y, proba, labels=classes),
        "neg_brier_score": lambda: -brier_score_loss(y_pos, pos),
        "accuracy": lambda: accuracy_score(y, pred),
        "balanced_accuracy": lambda: balanced_accuracy_score(y, pred),
        "matthews_corrcoef": lambda: matthews_corrcoef(y, pred),
        "f1": lambda: f1_score(y, pred, pos_label=classes[1]),
        "precision": lambda: precision_score(y, pred, pos_label=classes[1]),
        "recall": lambda: recall_score(y, pred, pos_label=classes[1]),
        "f1_macro": lambda: f1_score(y, pred, average="macro"),
        "recall_weighted": lambda: recall_score(y, pred, average="weighted"),
    }[metric]()


@pytest.mark.parametrize(
    "metric",
    [
        "roc_auc",
        "average_precision",
        "neg_log_loss",
        "log_loss",
        "neg_brier_score",
        "accuracy",
        "balanced_accuracy",
        "matthews_corrcoef",
        "f1",
        "precision",
        "recall",
        "f1_macro",
        "recall_weighted",
    ],
)
def test_task_scorer_equals_sklearn_metric_on_labelled_rows(binary, metric):
    clf, X, Y = binary
    labelled = Y[:, 1] != -1
    proba = clf.predict_proba(X)[1][labelled]
    pred = clf.predict(X)[labelled, 1]
    expected = _expected(metric, Y[labelled, 1], proba, pred, clf.classes_[1])
    assert task_scorer(metric, 1)(clf, X, Y) == pytest.approx(expected, abs=1e-12)


def test_missing_labels_are_left_out(binary):
    clf, X, Y = binary
    # Scoring every row, with the "missing" rows as class 0, differs.
    Y_filled = np.where(Y == -1, 0, Y)
    scorer = task_scorer("roc_auc", 1)
    assert scorer(clf, X, Y) != pytest.approx(scorer(clf, X, Y_filled))
    # NaN is missing too, whatever missing_label is.
    Y_nan = np.where(Y == -1, np.nan, Y.astype(float))
    assert scorer(clf, X, Y_nan) == scorer(clf, X, Y)


def test_task_by_name_and_by_index(mixed):
    clf, X, Y = mixed
    by_name = task_scorer("accuracy", "colour")(clf, X, Y)
    assert by_name == task_scorer("accuracy", 1)(clf, X, Y)
    # A DataFrame Y is matched by column name, whatever its column order.
    assert task_scorer("accuracy", "colour")(clf, X, Y[["colour", "click"]]) == by_name
    labelled = Y["colour"].notna().to_numpy()
    expected = accuracy_score(
        Y["colour"][labelled].tolist(), clf.predict(X)[labelled, 1].tolist()
    )
    assert by_name == pytest.approx(expected)


def test_int_task_beside_a_string_task(mixed):
    # predict returns an object array when the tasks' label types differ.
    clf, X, Y = mixed
    pred = clf.predict(X)
    assert pred.dtype == object
    y = Y["click"].to_numpy()
    assert task_scorer("f1", "click")(clf, X, Y) == pytest.approx(
        f1_score(y, pred[:, 0].astype(int))
    )
    assert task_scorer("accuracy", "click")(clf, X, Y) == pytest.approx(
        accuracy_score(y, pred[:, 0].astype(int))
    )


def test_multiclass_auc_is_one_vs_rest_over_the_task_classes(mixed):
    clf, X, Y = mixed
    labelled = Y["colour"].notna().to_numpy()
    y = Y["colour"][labelled].to_numpy().astype(str)
    proba = clf.predict_proba(X)[1][labelled]
    classes = clf.classes_[1].astype(str)
    for metric, average in [("roc_auc", "macro"), ("roc_auc_ovr_weighted", "weighted")]:
        expected = roc_auc_score(
            y, proba, multi_class="ovr", labels=classes, average=average
        )
        assert task_scorer(metric, "colour")(clf, X, Y) == pytest.approx(expected)
    expected = average_precision_score(y, proba)
    assert task_scorer("average_precision", "colour")(clf, X, Y) == pytest.approx(
        expected
    )
    expected = -log_loss(y, proba, labels=classes)
    assert task_scorer("neg_log_loss", "colour")(clf, X, Y) == pytest.approx(expected)


def test_multiclass_auc_with_a_class_absent_averages_the_others(mixed):
    clf, X, Y = mixed
    rows = (Y["colour"] != "red").to_numpy() & Y["colour"].notna().to_numpy()
    proba = clf.predict_proba(X[rows])[1]
    y = Y["colour"][rows].to_numpy()
    expected = np.mean(
        [roc_auc_score(y == c, proba[:, i]) for i, c in enumerate(["blue", "green"])]
    )
    with pytest.warns(UndefinedMetricWarning, match="red"):
        score = task_scorer("roc_auc", "colour")(clf, X[rows], Y[rows])
    assert score == pytest.approx(expected)


def test_string_labels_use_the_second_class_as_positive():
    X, Y = _data()
    y = np.where(Y[:, 0] == 1, "yes", "no")
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, np.column_stack([y, y]))
    proba, pred = clf.predict_proba(X)[0], clf.predict(X)[:, 0]
    Ys = np.column_stack([y, y])
    assert task_scorer("roc_auc", 0)(clf, X, Ys) == pytest.approx(
        roc_auc_score(y == "yes", proba[:, 1])
    )
    assert task_scorer("f1", 0)(clf, X, Ys) == pytest.approx(
        f1_score(y, pred, pos_label="yes")
    )
    assert task_scorer("f1", 0, pos_label="no")(clf, X, Ys) == pytest.approx(
        f1_score(y, pred, pos_label="no")
    )
    assert task_scorer("average_precision", 0, pos_label="no")(
        clf, X, Ys
    ) == pytest.approx(average_precision_score(y == "no", proba[:, 0]))


def test_single_task_model():
    X, Y = _data()
    y = Y[:, 0]
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, y)
    expected = roc_auc_score(y, clf.predict_proba(X)[:, 1])
    assert task_scorer("roc_auc", 0)(clf, X, y) == pytest.approx(expected)
    assert task_scorer("roc_auc", "task0")(clf, X, y) == pytest.approx(expected)
    assert task_scorer("accuracy", 0)(clf, X, y) == pytest.approx(clf.score(X, y))


def test_pipeline_is_scored_through_its_last_step(binary):
    _, X, Y = binary
    pipe = make_pipeline(StandardScaler(), MultiTaskMMoEClassifier(**SMALL))
    pipe.fit(X, Y)
    labelled = Y[:, 1] != -1
    expected = roc_auc_score(Y[labelled, 1], pipe.predict_proba(X)[1][labelled, 1])
    assert task_scorer("roc_auc", 1)(pipe, X, Y) == pytest.approx(expected)


def test_sample_weight_is_restricted_to_labelled_rows(binary):
    clf, X, Y = binary
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(X))
    labelled = Y[:, 1] != -1
    expected = roc_auc_score(
        Y[labelled, 1], clf.predict_proba(X)[1][labelled, 1], sample_weight=w[labelled]
    )
    score = task_scorer("roc_auc", 1)(clf, X, Y, sample_weight=w)
    assert score == pytest.approx(expected)


def test_callable_metrics(binary):
    clf, X, Y = binary
    labelled = Y[:, 1] != -1
    y = Y[labelled, 1]
    proba = clf.predict_proba(X)[1][labelled]
    pred = clf.predict(X)[labelled, 1]
    fbeta = task_scorer(fbeta_score, 1, beta=2)
    assert fbeta(clf, X, Y) == pytest.approx(fbeta_score(y, pred, beta=2))
    # predict_proba gives a callable the positive class's column.
    auc = task_scorer(roc_auc_score, 1, response_method="predict_proba")
    assert auc(clf, X, Y) == pytest.approx(roc_auc_score(y, proba[:, 1]))
    loss = task_scorer(
        log_loss, 1, response_method="predict_proba", greater_is_better=False
    )
    assert loss(clf, X, Y) == pytest.approx(-log_loss(y, proba[:, 1]))


def test_single_class_or_no_label_gives_nan_with_a_warning(binary):
    clf, X, Y = binary
    ones = Y[:, 0] == 1
    with pytest.warns(UndefinedMetricWarning, match="single class"):
        assert np.isnan(task_scorer("roc_auc", 0)(clf, X[ones], Y[ones]))
    # Accuracy is defined with a single class.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 0 <= task_scorer("accuracy", 0)(clf, X[ones], Y[ones]) <= 1
    unlabelled = Y[:, 1] == -1
    with pytest.warns(UndefinedMetricWarning, match="no labelled row"):
        assert np.isnan(task_scorer("accuracy", 1)(clf, X[unlabelled], Y[unlabelled]))


def test_scorer_repr():
    assert (
        repr(task_scorer("roc_auc", "click")) == "task_scorer('roc_auc', task='click')"
    )
    assert repr(task_scorer("log_loss", 0)) == "task_scorer('neg_log_loss', task=0)"
    assert repr(task_scorer("f1", 1, pos_label="yes")) == (
        "task_scorer('f1', task=1, pos_label='yes')"
    )
    assert repr(task_scorer(log_loss, 1, response_method="predict_proba")) == (
        "task_scorer(log_loss, task=1, response_method='predict_proba')"
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(metric="auc", task=0), "Unknown metric 'auc'"),
        (dict(metric="roc_auc", task=-1), "non-negative"),
        (dict(metric="roc_auc", task=True), "task must be"),
        (dict(metric="roc_auc", task=0.5), "task must be"),
        (dict(metric="roc_auc", task=0, response_method="predict"), "callable"),
        (dict(metric=log_loss, task=0, response_method="proba"), "response_method"),
    ],
)
def test_task_scorer_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        task_scorer(**kwargs)


def test_task_scorer_errors_at_scoring_time(binary, mixed):
    clf, X, Y = binary
    with pytest.raises(ValueError, match=r"Unknown task 'click'.*task0"):
        task_scorer("roc_auc", "click")(clf, X, Y)
    with pytest.raises(ValueError, match="task=2 is out of range"):
        task_scorer("roc_auc", 2)(clf, X, Y)
    with pytest.raises(ValueError, match="Y has 1 column"):
        task_scorer("roc_auc", 1)(clf, X, Y[:, :1])
    with pytest.raises(ValueError, match="not seen in fit"):
        task_scorer("roc_auc", 0)(clf, X, np.where(Y == 1, 2, Y))
    with pytest.raises(ValueError, match="labels cannot be passed"):
        task_scorer("neg_log_loss", 0, labels=[0, 1])(clf, X, Y)
    clf_mixed, X_mixed, Y_mixed = mixed
    with pytest.raises(ValueError, match="'f1' is for binary tasks.*f1_macro"):
        task_scorer("f1", "colour")(clf_mixed, X_mixed, Y_mixed)


def test_inconsistent_lengths_are_rejected_before_predicting(binary):
    clf, X, Y = binary
    scorer = task_scorer("roc_auc", 1)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        scorer(clf, X[:-1], Y)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(300,\)"):
        scorer(clf, X, Y, sample_weight=np.ones(len(X) - 1))


def test_scorers_work_for_other_multi_output_classifiers(binary):
    _, X, Y = binary
    Y = Y.copy()
    Y[:, 1] = np.where(Y[:, 1] == -1, Y[:, 0], Y[:, 1])  # no missing labels
    model = MultiOutputClassifier(LogisticRegression()).fit(X, Y)
    expected = roc_auc_score(Y[:, 1], model.predict_proba(X)[1][:, 1])
    assert task_scorer("roc_auc", 1)(model, X, Y) == pytest.approx(expected)


# ---------------------------------------------------------------------------
# multitask_scoring
# ---------------------------------------------------------------------------


def test_multitask_scoring_keys_and_mean(mixed):
    clf, X, Y = mixed
    scoring = multitask_scoring(["roc_auc", "log_loss"], tasks=["click", "colour"])
    assert list(scoring) == [
        "roc_auc_click",
        "roc_auc_colour",
        "roc_auc_mean",
        "neg_log_loss_click",
        "neg_log_loss_colour",
        "neg_log_loss_mean",
    ]
    scores = {key: scorer(clf, X, Y) for key, scorer in scoring.items()}
    assert scores["roc_auc_click"] == task_scorer("roc_auc", "click")(clf, X, Y)
    for metric in ("roc_auc", "neg_log_loss"):
        assert scores[f"{metric}_mean"] == pytest.approx(
            (scores[f"{metric}_click"] + scores[f"{metric}_colour"]) / 2
        )
    assert scores["neg_log_loss_click"] < 0


def test_multitask_scoring_tasks_by_index():
    scoring = multitask_scoring("accuracy", n_tasks=3, mean=False)
    assert list(scoring) == ["accuracy_task0", "accuracy_task1", "accuracy_task2"]
    assert list(multitask_scoring("accuracy", tasks=[1])) == ["accuracy_task1"]
    assert list(multitask_scoring("f1", tasks="click")) == ["f1_click"]


def test_multitask_scoring_mean_is_nan_if_a_task_is_undefined(binary):
    clf, X, Y = binary
    ones = Y[:, 0] == 1
    scoring = multitask_scoring("roc_auc", n_tasks=2)
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(scoring["roc_auc_mean"](clf, X[ones], Y[ones]))
    assert not np.isnan(scoring["roc_auc_task1"](clf, X[ones], Y[ones]))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("roc_auc",), {}, "exactly one of tasks and n_tasks"),
        (("roc_auc", [0]), dict(n_tasks=1), "exactly one of tasks and n_tasks"),
        (("roc_auc",), dict(n_tasks=0), "positive int"),
        (("roc_auc", []), {}, "at least one task"),
        (([],), dict(n_tasks=2), "at least one metric"),
        (("auc", [0]), {}, "Unknown metric"),
        ((["roc_auc", "roc_auc"], [0]), {}, "duplicates"),
        (("roc_auc", [0, "task0"]), {}, "duplicates"),
        (("roc_auc", ["mean", "click"]), {}, "clash"),
    ],
)
def test_multitask_scoring_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        multitask_scoring(*args, **kwargs)


def test_cross_validate_with_a_mostly_unlabelled_task():
    X, Y = _data(400)
    Y = Y.copy()
    rng = np.random.default_rng(0)
    Y[rng.uniform(size=len(Y)) < 0.85, 1] = -1
    scoring = multitask_scoring(["roc_auc", "accuracy"], n_tasks=2)
    cv = cross_validate(
        MultiTaskMMoEClassifier(**SMALL),
        X,
        Y,
        scoring=scoring,
        cv=KFold(3, shuffle=True, random_state=0),
        return_estimator=True,
        return_indices=True,
        error_score="raise",
    )
    for fold, (clf, test) in enumerate(
        zip(cv["estimator"], cv["indices"]["test"], strict=True)
    ):
        labelled = test[Y[test, 1] != -1]
        expected = roc_auc_score(
            Y[labelled, 1], clf.predict_proba(X[labelled])[1][:, 1]
        )
        assert cv["test_roc_auc_task1"][fold] == pytest.approx(expected)
        assert cv["test_accuracy_mean"][fold] == pytest.approx(
            clf.score(X[test], Y[test])
        )
