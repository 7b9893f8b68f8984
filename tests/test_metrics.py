"""Tests for sk_mmoe.metrics."""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    fbeta_score,
    log_loss,
    matthews_corrcoef,
    mean_absolute_error,
    mean_squared_error,
    median_absolute_error,
    ndcg_score,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_validate
from sklearn.multioutput import MultiOutputClassifier, MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier, MultiTaskMMoERegressor
from sk_mmoe.datasets import make_task_correlation
from sk_mmoe.metrics import (
    gauc_score,
    multitask_scoring,
    ndcg_at_k_score,
    task_scorer,
)

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
        (("roc_auc", [0]), dict(n_tasks=1), "at most one of tasks and n_tasks"),
        (("roc_auc",), dict(n_tasks=0), "positive int"),
        (("roc_auc",), dict(n_tasks=True), "positive int"),
        (([],), {}, "at least one metric"),
        (("auc",), {}, "Unknown metric"),
        (({"click": "roc_auc"}, ["click"]), {}, "neither tasks nor n_tasks"),
        (({"click": "roc_auc"},), dict(n_tasks=1), "neither tasks nor n_tasks"),
        (({},), {}, "at least one task"),
        (({"click": []},), {}, r"metrics\['click'\] must name at least one"),
        (({"click": ["r2", "r2"]},), {}, "duplicates"),
        (({"click": "auc"},), {}, "Unknown metric 'auc'"),
        (({0: "r2", "task0": "r2"},), {}, "task 'task0' twice"),
        (({-1: "r2"},), {}, "non-negative"),
        (({"mean": "r2", "x": "r2"},), {}, "clash"),
        (({"x": "f1_macro", "macro_x": "f1"},), {}, "duplicate keys"),
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


# ---------------------------------------------------------------------------
# Regression tasks and models with tasks of different types
# ---------------------------------------------------------------------------

REGRESSION_METRICS = {
    "r2": r2_score,
    "neg_mean_squared_error": lambda y, p, **kw: -mean_squared_error(y, p, **kw),
    "neg_mean_absolute_error": lambda y, p, **kw: -mean_absolute_error(y, p, **kw),
    "neg_root_mean_squared_error": (
        lambda y, p, **kw: -root_mean_squared_error(y, p, **kw)
    ),
}


class FakeRegressor(RegressorMixin, BaseEstimator):
    """The fitted interface of a multi-task regressor of sk_mmoe, in numpy.

    ``task_types_``, ``task_names_`` and ``missing_target`` as the
    estimators have them; ``predict`` is a least-squares fit of each task on
    its labelled rows, 1-D for a 1-D ``y``; ``calls_`` counts predictions.
    """

    def __init__(self, missing_target=None):
        self.missing_target = missing_target

    def fit(self, X, Y):
        names = list(Y.columns) if hasattr(Y, "columns") else None
        Y = np.asarray(Y, dtype=float)
        self.single_ = Y.ndim == 1
        Y = Y.reshape(len(Y), -1)
        K = Y.shape[1]
        self.task_names_ = names or [f"task{k}" for k in range(K)]
        self.task_types_ = ["regression"] * K
        self.n_outputs_ = K
        A = np.column_stack([X, np.ones(len(X))])
        self.coef_ = np.column_stack(
            [
                np.linalg.lstsq(
                    A[_known(Y[:, k], self)], Y[_known(Y[:, k], self), k], rcond=None
                )[0]
                for k in range(K)
            ]
        )
        self.calls_ = {"predict": 0}
        return self

    def predict(self, X):
        self.calls_["predict"] += 1
        pred = np.column_stack([X, np.ones(len(X))]) @ self.coef_
        return pred[:, 0] if self.single_ else pred


def _known(y, model):
    marker = getattr(model, "missing_target", None)
    return ~np.isnan(y) & (y != marker if marker is not None else True)


class FakeMixed(ClassifierMixin, BaseEstimator):
    """The fitted interface of MultiTaskMMoE on a binary and a regression task.

    ``classes_`` has None for the regression task, ``predict`` returns an
    object array and ``predict_proba`` a list with None for that task.
    """

    missing_label = None

    def fit(self, X, Y):
        self.task_names_ = list(Y.columns)
        self.task_types_ = ["binary", "regression"]
        self.classes_ = [np.array([0, 1]), None]
        self.calls_ = {"predict": 0, "predict_proba": 0}
        return self

    def predict_proba(self, X):
        self.calls_["predict_proba"] += 1
        p = 1 / (1 + np.exp(-X[:, 0]))
        return [np.column_stack([1 - p, p]), None]

    def predict(self, X):
        self.calls_["predict"] += 1
        pred = np.empty((len(X), 2), dtype=object)
        pred[:, 0] = (X[:, 0] > 0).astype(int).tolist()
        pred[:, 1] = (3 * X[:, 1] + 1).tolist()
        return pred


def _regression_data(n=200, seed=0):
    """Two regression tasks in different units; a third of task 1 is NaN."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    Y = np.column_stack(
        [
            3 * X[:, 1] + 1 + rng.normal(size=n),
            100 * np.sin(X[:, 2]) + rng.normal(scale=10, size=n),
        ]
    )
    Y[::3, 1] = np.nan
    return X, Y


def _mixed_data(n=200, seed=0):
    """click (binary) and watch_time (known for clicked rows only)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    click = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    watch = np.where(click == 1, 3 * X[:, 1] + 1 + rng.normal(size=n), np.nan)
    return X, pd.DataFrame({"click": click, "watch_time": watch})


@pytest.fixture(scope="module")
def regression_models():
    """Regression models by name, each with its X and Y."""
    X, Y = _regression_data()
    Y_full = np.column_stack([Y[:, 0], X[:, 0] - Y[:, 0]])  # no missing target
    Y_marker = np.where(np.isnan(Y), -999.0, Y)
    return {
        "fake": (FakeRegressor().fit(X, Y), X, Y),
        "marker": (FakeRegressor(missing_target=-999.0).fit(X, Y_marker), X, Y_marker),
        # No task_types_, no classes_: a regressor's tasks are regression.
        "multioutput": (MultiOutputRegressor(Ridge()).fit(X, Y_full), X, Y_full),
    }


@pytest.mark.parametrize("name", ["fake", "marker", "multioutput"])
@pytest.mark.parametrize("metric", list(REGRESSION_METRICS))
def test_regression_metric_equals_sklearn_on_labelled_rows(
    regression_models, name, metric
):
    model, X, Y = regression_models[name]
    pred = model.predict(X)
    w = np.linspace(0.5, 2.0, len(X))
    for k in range(2):
        known = _known(Y[:, k], model)
        function = REGRESSION_METRICS[metric]
        expected = function(Y[known, k], pred[known, k])
        assert task_scorer(metric, k)(model, X, Y) == pytest.approx(expected)
        expected = function(Y[known, k], pred[known, k], sample_weight=w[known])
        score = task_scorer(metric, f"task{k}")(model, X, Y, sample_weight=w)
        assert score == pytest.approx(expected)


def test_regression_missing_targets_are_left_out(regression_models):
    model, X, Y = regression_models["marker"]
    scorer = task_scorer("r2", 1)
    # NaN is missing too, whatever missing_target is.
    assert scorer(model, X, np.where(Y == -999.0, np.nan, Y)) == scorer(model, X, Y)
    # Had the scorer used the marker as a target, the score would collapse.
    assert scorer(model, X, Y) > 0.5
    with pytest.warns(UndefinedMetricWarning, match="no labelled row"):
        assert np.isnan(scorer(model, X[::3], Y[::3]))


def test_single_task_regressor_and_callable_regression_metric():
    X, Y = _regression_data()
    y = Y[:, 0]
    model = FakeRegressor().fit(X, y)
    assert model.predict(X).ndim == 1
    assert task_scorer("r2", 0)(model, X, y) == pytest.approx(model.score(X, y))
    ridge = Ridge().fit(X, y)  # a plain scikit-learn regressor
    assert task_scorer("neg_mean_absolute_error", 0)(ridge, X, y) == pytest.approx(
        -mean_absolute_error(y, ridge.predict(X))
    )
    scorer = task_scorer(median_absolute_error, 0, greater_is_better=False)
    assert scorer(model, X, y) == pytest.approx(
        -median_absolute_error(y, model.predict(X))
    )
    scores = multitask_scoring("r2")(model, X, y)
    assert scores == {"r2_task0": pytest.approx(model.score(X, y))}


def test_mixed_model_scores_each_task_with_its_kind():
    X, Y = _mixed_data()
    model = FakeMixed().fit(X, Y)
    known = Y["watch_time"].notna().to_numpy()
    pred = model.predict(X)
    expected = r2_score(Y["watch_time"][known], pred[known, 1].astype(float))
    assert task_scorer("r2", "watch_time")(model, X, Y) == pytest.approx(expected)
    p = model.predict_proba(X)[0][:, 1]
    assert task_scorer("roc_auc", "click")(model, X, Y) == pytest.approx(
        roc_auc_score(Y["click"], p)
    )
    assert task_scorer("accuracy", 0)(model, X, Y) == pytest.approx(
        accuracy_score(Y["click"], pred[:, 0].astype(int))
    )


def test_metric_of_the_wrong_kind_is_a_clear_error(binary):
    X, Y = _mixed_data()
    model = FakeMixed().fit(X, Y)
    with pytest.raises(
        ValueError,
        match="'roc_auc' is a classification metric, but task 'watch_time' is a "
        "regression task",
    ):
        task_scorer("roc_auc", "watch_time")(model, X, Y)
    with pytest.raises(
        ValueError,
        match="'r2' is a regression metric, but task 'click' is a binary "
        "classification task",
    ):
        task_scorer("r2", "click")(model, X, Y)
    with pytest.raises(ValueError, match="predict_proba.*'watch_time' is a regr"):
        task_scorer(roc_auc_score, 1, response_method="predict_proba")(model, X, Y)
    with pytest.raises(ValueError, match="'accuracy' is a classification metric"):
        multitask_scoring({"watch_time": "accuracy"})["accuracy_watch_time"](
            model, X, Y
        )
    # The error comes before any prediction.
    assert model.calls_ == {"predict": 0, "predict_proba": 0}
    with pytest.raises(ValueError, match="'watch_time' is a regression task, but Y"):
        task_scorer("r2", "watch_time")(model, X, Y.assign(watch_time="long"))
    clf, X_binary, Y_binary = binary
    with pytest.raises(ValueError, match="task 'task1' is a binary classification"):
        task_scorer("neg_mean_squared_error", 1)(clf, X_binary, Y_binary)


def test_not_a_classifier_nor_a_regressor_is_refused():
    X, Y = _regression_data()
    from sklearn.decomposition import PCA

    with pytest.raises(TypeError, match="PCA.*not a regressor"):
        task_scorer("r2", 0)(PCA(2).fit(X), X, Y)


# ---------------------------------------------------------------------------
# multitask_scoring: metrics by task, and the tasks of the fitted model
# ---------------------------------------------------------------------------


def test_metrics_by_task_keys_and_mean():
    scoring = multitask_scoring(
        {
            "click": ["roc_auc", "accuracy"],
            "like": "roc_auc",
            "watch_time": ["r2", "neg_mean_absolute_error"],
        }
    )
    # A metric's mean only where it scores >= 2 tasks.
    assert list(scoring) == [
        "roc_auc_click",
        "roc_auc_like",
        "roc_auc_mean",
        "accuracy_click",
        "r2_watch_time",
        "neg_mean_absolute_error_watch_time",
    ]
    assert repr(scoring["r2_watch_time"]) == "task_scorer('r2', task='watch_time')"
    assert list(multitask_scoring({0: "r2", 1: "r2"}, mean=False)) == [
        "r2_task0",
        "r2_task1",
    ]
    X, Y = _mixed_data()
    model = FakeMixed().fit(X, Y)
    scoring = multitask_scoring({"click": "log_loss", "watch_time": "r2"})
    assert list(scoring) == ["neg_log_loss_click", "r2_watch_time"]
    assert scoring["r2_watch_time"](model, X, Y) == task_scorer("r2", 1)(model, X, Y)


def test_multitask_scoring_over_regression_tasks(regression_models):
    model, X, Y = regression_models["fake"]
    scoring = multitask_scoring(["r2", "neg_mean_squared_error"], n_tasks=2)
    scores = {key: scorer(model, X, Y) for key, scorer in scoring.items()}
    assert scores["r2_mean"] == pytest.approx(
        (scores["r2_task0"] + scores["r2_task1"]) / 2
    )
    assert scores["r2_task1"] == task_scorer("r2", 1)(model, X, Y)
    assert scores["neg_mean_squared_error_task1"] < -1  # task 1 is in hundreds


def test_scorer_of_the_fitted_tasks(mixed):
    clf, X, Y = mixed
    scorer = multitask_scoring(["roc_auc", "log_loss", "accuracy"])
    assert repr(scorer) == "multitask_scoring(['roc_auc', 'neg_log_loss', 'accuracy'])"
    scores = scorer(clf, X, Y)
    assert list(scores) == [
        "roc_auc_click",
        "roc_auc_colour",
        "roc_auc_mean",
        "neg_log_loss_click",
        "neg_log_loss_colour",
        "neg_log_loss_mean",
        "accuracy_click",
        "accuracy_colour",
        "accuracy_mean",
    ]
    explicit = multitask_scoring(
        ["roc_auc", "neg_log_loss", "accuracy"], tasks=["click", "colour"]
    )
    for key, value in scores.items():
        assert isinstance(value, float)
        assert value == pytest.approx(explicit[key](clf, X, Y), abs=1e-12)
    # One task: no mean; mean=False: none either.
    assert list(multitask_scoring("accuracy", mean=False)(clf, X, Y)) == [
        "accuracy_click",
        "accuracy_colour",
    ]
    assert repr(multitask_scoring("r2", mean=False)) == (
        "multitask_scoring('r2', mean=False)"
    )


def test_scorer_of_the_fitted_tasks_names_tasks_of_an_array_y(binary):
    clf, X, Y = binary
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(X))
    scores = multitask_scoring("roc_auc")(clf, X, Y, sample_weight=w)
    assert list(scores) == ["roc_auc_task0", "roc_auc_task1", "roc_auc_mean"]
    assert scores["roc_auc_task1"] == task_scorer("roc_auc", 1)(
        clf, X, Y, sample_weight=w
    )


def test_scorer_of_the_fitted_tasks_applies_each_metric_to_its_kind():
    X, Y = _mixed_data()
    model = FakeMixed().fit(X, Y)
    scores = multitask_scoring(["roc_auc", "accuracy", "r2", "neg_mean_squared_error"])(
        model, X, Y
    )
    assert list(scores) == [
        "roc_auc_click",
        "accuracy_click",
        "r2_watch_time",
        "neg_mean_squared_error_watch_time",
    ]
    # Each response method once for the whole dict.
    assert model.calls_ == {"predict": 1, "predict_proba": 1}
    assert scores["r2_watch_time"] == task_scorer("r2", "watch_time")(model, X, Y)
    with pytest.raises(
        ValueError,
        match=r"'f1_macro' is a classification metric, "
        r"but the model has no classification task.*'task0' \(regr",
    ):
        multitask_scoring(["r2", "f1_macro"])(
            FakeRegressor().fit(X, Y["click"]), X, Y["click"]
        )
    clf = FakeRegressor().fit(X, pd.DataFrame({"mean": X[:, 0], "b": X[:, 1]}))
    with pytest.raises(ValueError, match="named 'mean' would clash"):
        multitask_scoring("r2")(clf, X, pd.DataFrame({"mean": X[:, 0], "b": X[:, 1]}))


def test_scorer_of_the_fitted_tasks_predicts_once(binary, monkeypatch):
    clf, X, Y = binary
    calls = {"predict": 0, "predict_proba": 0}
    for method in calls:
        original = getattr(clf, method)

        def counted(X, _method=method, _original=original):
            calls[_method] += 1
            return _original(X)

        monkeypatch.setattr(clf, method, counted)
    scores = multitask_scoring(["roc_auc", "neg_log_loss", "accuracy", "f1"])(clf, X, Y)
    assert len(scores) == 12
    assert calls == {"predict": 1, "predict_proba": 1}


def test_scorer_of_the_fitted_tasks_in_grid_search_with_refit(binary):
    _, X, Y = binary
    scoring = multitask_scoring(["roc_auc", "accuracy"])
    search = GridSearchCV(
        MultiTaskMMoEClassifier(**SMALL),
        {"n_experts": [1, 2]},
        scoring=scoring,
        refit="roc_auc_task1",
        cv=KFold(2, shuffle=True, random_state=0),
        error_score="raise",
    ).fit(X, Y)
    results = search.cv_results_
    assert {"mean_test_accuracy_task0", "mean_test_roc_auc_mean"} <= set(results)
    assert search.best_index_ == np.argmax(results["mean_test_roc_auc_task1"])
    assert search.score(X, Y) == pytest.approx(
        task_scorer("roc_auc", 1)(search.best_estimator_, X, Y)
    )


def test_scorer_of_the_fitted_tasks_with_a_pipeline_in_cross_validate(mixed):
    _, X, Y = mixed
    pipe = make_pipeline(StandardScaler(), MultiTaskMMoEClassifier(**SMALL))
    cv = cross_validate(
        pipe,
        X,
        Y,
        scoring=multitask_scoring(["roc_auc", "accuracy"]),
        cv=KFold(2, shuffle=True, random_state=0),
        return_estimator=True,
        return_indices=True,
        error_score="raise",
    )
    assert {"test_roc_auc_click", "test_roc_auc_colour", "test_accuracy_mean"} <= set(
        cv
    )
    fitted, test = cv["estimator"][1], cv["indices"]["test"][1]
    expected = task_scorer("roc_auc", "colour")(fitted, X[test], Y.iloc[test])
    assert cv["test_roc_auc_colour"][1] == pytest.approx(expected)


# ---------------------------------------------------------------------------
# The regressor and the model of mixed task types
# ---------------------------------------------------------------------------


def test_regressor_scores_in_grid_search_with_refit_on_a_task():
    X, Y = _regression_data(150)
    search = GridSearchCV(
        MultiTaskMMoERegressor(**SMALL),
        {"n_experts": [1, 2]},
        scoring=multitask_scoring(["r2", "neg_mean_absolute_error"]),
        refit="r2_task1",
        cv=KFold(2, shuffle=True, random_state=0),
        error_score="raise",
    ).fit(X, Y)
    results = search.cv_results_
    assert {"mean_test_r2_mean", "mean_test_neg_mean_absolute_error_task0"} <= set(
        results
    )
    assert search.best_index_ == np.argmax(results["mean_test_r2_task1"])
    model = search.best_estimator_
    known = ~np.isnan(Y[:, 1])
    expected = r2_score(Y[known, 1], model.predict(X)[known, 1])
    assert search.score(X, Y) == pytest.approx(expected)
    # The regressor's score is the mean R^2 over its tasks.
    scores = multitask_scoring("r2")(model, X, Y)
    assert scores["r2_mean"] == pytest.approx(model.score(X, Y))


def test_regressor_missing_target_and_single_task():
    X, Y = _regression_data(150)
    Y_marker = np.where(np.isnan(Y), -999.0, Y)
    model = MultiTaskMMoERegressor(missing_target=-999.0, **SMALL).fit(X, Y_marker)
    pred = model.predict(X)
    known = ~np.isnan(Y[:, 1])
    for metric, function in REGRESSION_METRICS.items():
        score = task_scorer(metric, 1)(model, X, Y_marker)
        assert score == pytest.approx(function(Y[known, 1], pred[known, 1]))
        assert task_scorer(metric, 1)(model, X, Y) == score
    single = MultiTaskMMoERegressor(**SMALL).fit(X, Y[:, 0])
    assert task_scorer("r2", 0)(single, X, Y[:, 0]) == pytest.approx(
        single.score(X, Y[:, 0])
    )
    with pytest.raises(ValueError, match="'roc_auc' is a classification metric"):
        multitask_scoring("roc_auc")(single, X, Y[:, 0])


def test_mixed_model_scores_each_task_with_its_kind_of_metric():
    X, Y = _mixed_data(150)
    model = MultiTaskMMoE(**SMALL).fit(X, Y)
    assert list(model.task_types_) == ["binary", "regression"]
    scores = multitask_scoring(["roc_auc", "accuracy", "r2"])(model, X, Y)
    assert list(scores) == ["roc_auc_click", "accuracy_click", "r2_watch_time"]
    # The model's score is the mean of accuracy and R^2.
    assert (scores["accuracy_click"] + scores["r2_watch_time"]) / 2 == pytest.approx(
        model.score(X, Y)
    )
    known = Y["watch_time"].notna().to_numpy()
    pred = model.predict(X)
    assert scores["r2_watch_time"] == pytest.approx(
        r2_score(Y["watch_time"][known], pred[known, 1].astype(float))
    )
    assert scores["roc_auc_click"] == pytest.approx(
        roc_auc_score(Y["click"], model.predict_proba(X)[0][:, 1])
    )
    with pytest.raises(ValueError, match="'watch_time' is a regression task"):
        task_scorer("neg_log_loss", "watch_time")(model, X, Y)
    with pytest.raises(ValueError, match="'click' is a binary classification task"):
        task_scorer("neg_mean_squared_error", "click")(model, X, Y)


def test_mixed_model_in_a_pipeline_with_metrics_by_task():
    X, Y = _mixed_data(150)
    scoring = multitask_scoring(
        {"click": ["roc_auc", "accuracy"], "watch_time": "neg_mean_squared_error"}
    )
    cv = cross_validate(
        make_pipeline(StandardScaler(), MultiTaskMMoE(**SMALL)),
        X,
        Y,
        scoring=scoring,
        cv=KFold(2, shuffle=True, random_state=0),
        return_estimator=True,
        return_indices=True,
        error_score="raise",
    )
    fitted, test = cv["estimator"][0], cv["indices"]["test"][0]
    scores = multitask_scoring(["accuracy", "neg_mean_squared_error"])(
        fitted, X[test], Y.iloc[test]
    )
    assert cv["test_accuracy_click"][0] == pytest.approx(scores["accuracy_click"])
    assert cv["test_neg_mean_squared_error_watch_time"][0] == pytest.approx(
        scores["neg_mean_squared_error_watch_time"]
    )
    assert scores["neg_mean_squared_error_watch_time"] < 0


# ---------------------------------------------------------------------------
# Ranking metrics per group
# ---------------------------------------------------------------------------


def test_gauc_score_is_the_size_weighted_mean_of_the_group_aucs():
    rng = np.random.default_rng(0)
    groups = np.repeat([3, 1, 2, 7], [10, 20, 5, 8])
    y = rng.integers(0, 2, groups.size)
    y[groups == 7] = 1  # a single class: left out
    score = rng.random(groups.size)
    expected = [
        (np.sum(groups == g), roc_auc_score(y[groups == g], score[groups == g]))
        for g in (1, 2, 3)
    ]
    weights = np.array([n for n, _ in expected], dtype=float)
    aucs = np.array([a for _, a in expected])
    assert gauc_score(y, score, groups=groups) == pytest.approx(
        np.sum(weights * aucs) / weights.sum()
    )
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(gauc_score([1, 1], [0.1, 0.2], groups=[0, 0]))
    with pytest.raises(ValueError, match="groups is required"):
        gauc_score(y, score, groups=None)


def test_ndcg_at_k_score_matches_scikit_learn_per_group():
    rng = np.random.default_rng(1)
    gains = rng.integers(0, 4, (3, 6)).astype(float)
    scores = rng.random((3, 6))
    expected = np.mean(
        [ndcg_score(gains[i : i + 1], scores[i : i + 1], k=3) for i in range(3)]
    )
    groups = np.repeat([0, 1, 2], 6)
    order = rng.permutation(18)  # rows of a group need not be together
    value = ndcg_at_k_score(
        gains.ravel()[order], scores.ravel()[order], groups=groups[order], k=3
    )
    assert value == pytest.approx(expected)
    with pytest.raises(ValueError, match="k must be a positive int"):
        ndcg_at_k_score(gains.ravel(), scores.ravel(), groups=groups, k=0)
    with pytest.raises(ValueError, match="non-negative gains"):
        ndcg_at_k_score(-gains.ravel(), scores.ravel(), groups=groups)


def _grouped_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(int)
    groups = np.repeat(np.arange(24), 10)
    return X, Y, groups


@pytest.mark.parametrize("metric", [gauc_score, ndcg_at_k_score])
@pytest.mark.parametrize(
    "weight",
    [np.nan, -60.0],
)
def test_grouped_metrics_refuse_nan_and_negative_weights(metric, weight):
    y_true = np.array([1, 0, 1, 0, 1, 0])
    y_score = np.linspace(0, 1, 6)
    weights = np.ones(6)
    weights[0] = weight
    with pytest.raises(ValueError, match="sample_weight must be finite and non"):
        metric(y_true, y_score, groups=[0, 0, 0, 1, 1, 1], sample_weight=weights)


@pytest.mark.parametrize("metric", [gauc_score, ndcg_at_k_score])
def test_grouped_metrics_name_groups_of_the_wrong_length(metric):
    with pytest.raises(ValueError, match="groups must hold one group id per row"):
        metric([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], groups=[0, 1])


def test_grouped_scorers_per_task():
    X, Y, groups = _grouped_model()
    clf = MultiTaskMMoEClassifier(max_epochs=2, random_state=0).fit(X, Y)
    proba = clf.predict_proba(X)
    assert task_scorer("gauc", 1)(clf, X, Y, groups=groups) == pytest.approx(
        gauc_score(Y[:, 1], proba[1][:, 1], groups=groups)
    )
    assert task_scorer("ndcg", 0, k=3)(clf, X, Y, groups=groups) == pytest.approx(
        ndcg_at_k_score(Y[:, 0], proba[0][:, 1], groups=groups, k=3)
    )
    callable_scorer = task_scorer(gauc_score, 1, response_method="predict_proba")
    assert callable_scorer(clf, X, Y, groups=groups) == pytest.approx(
        gauc_score(Y[:, 1], proba[1][:, 1], groups=groups)
    )
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        task_scorer("gauc", 0)(clf, X, Y)


def test_grouped_scorers_in_grid_search_with_group_kfold():
    X, Y, groups = _grouped_model()
    scoring = multitask_scoring({0: ["gauc", "roc_auc"], 1: "ndcg"})
    search = GridSearchCV(
        MultiTaskMMoEClassifier(max_epochs=1, random_state=0),
        {"n_experts": [1, 2]},
        cv=GroupKFold(2),
        scoring=scoring,
        refit="gauc_task0",
    )
    with sklearn.config_context(enable_metadata_routing=True):
        search.fit(X, Y, groups=groups)
    scores = search.cv_results_["split0_test_gauc_task0"]
    assert np.all((scores >= 0) & (scores <= 1))
    # The scorer got each test fold's groups: recompute one by hand.
    train, test = next(GroupKFold(2).split(X, Y, groups))
    model = MultiTaskMMoEClassifier(max_epochs=1, random_state=0, n_experts=1)
    model.fit(X[train], Y[train])
    expected = gauc_score(
        Y[test, 0], model.predict_proba(X[test])[0][:, 1], groups=groups[test]
    )
    assert scores[0] == pytest.approx(expected)


def test_grouped_metrics_request_groups_by_default():
    with sklearn.config_context(enable_metadata_routing=True):
        assert task_scorer("gauc", 0).get_metadata_routing().score.requests == {
            "groups": True
        }
        assert task_scorer("roc_auc", 0).get_metadata_routing().score.requests == {}
        scorer = multitask_scoring(["ndcg"]).set_score_request(groups="user")
        assert scorer.get_metadata_routing().score.requests == {"groups": "user"}


def test_multitask_scoring_ndcg_scores_binary_and_regression_tasks():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = np.column_stack([(X[:, 0] > 0), np.abs(X[:, 1]) + 1, rng.integers(0, 3, 200)])
    model = MultiTaskMMoE(
        task_types=["binary", "regression", "multiclass"], max_epochs=1, random_state=0
    ).fit(X, Y)
    scores = multitask_scoring(["ndcg"])(
        model, X, Y, groups=np.repeat(np.arange(20), 10)
    )
    assert list(scores) == ["ndcg_task0", "ndcg_task1", "ndcg_mean"]
    with pytest.raises(
        ValueError, match="'ndcg' is a ranking metric, but task 'task2'"
    ):
        task_scorer("ndcg", 2)(model, X, Y, groups=np.zeros(200))
    regressor = MultiTaskMMoERegressor(max_epochs=1, random_state=0).fit(X, Y[:, 1])
    with pytest.raises(ValueError, match="'gauc' is a binary metric"):
        multitask_scoring(["gauc"])(regressor, X, Y[:, 1], groups=np.zeros(200))


def test_count_tasks_are_scored_by_regression_and_count_metrics():
    from sklearn.metrics import mean_poisson_deviance

    X, Y = _data()
    rng = np.random.default_rng(0)
    counts = rng.poisson(np.exp(X[:, 0])).astype(float)
    watch = 10 + 3 * X[:, 1]
    Y = np.column_stack([Y[:, 0], counts, watch])
    model = MultiTaskMMoE(**SMALL, loss={"task1": "poisson"}).fit(X, Y)
    pred = model.predict(X)[:, 1].astype(float)
    deviance = task_scorer("neg_mean_poisson_deviance", task=1)(model, X, Y)
    assert deviance == pytest.approx(-mean_poisson_deviance(counts, pred))
    assert task_scorer("r2", task=1)(model, X, Y) == pytest.approx(
        r2_score(counts, pred)
    )
    with pytest.raises(ValueError, match="is a count metric, but task 'task2'"):
        task_scorer("neg_mean_poisson_deviance", task=2)(model, X, Y)
    with pytest.raises(ValueError, match="score it with a regression or count"):
        task_scorer("roc_auc", task=1)(model, X, Y)
    scores = multitask_scoring(["neg_mean_poisson_deviance", "r2"])(model, X, Y)
    assert set(scores) == {
        "neg_mean_poisson_deviance_task1",
        "r2_task1",
        "r2_task2",
        "r2_mean",
    }


def test_ndcg_scores_a_count_task_with_its_counts_as_gains():
    X, Y = _data()
    rng = np.random.default_rng(0)
    counts = rng.poisson(np.exp(X[:, 0])).astype(float)
    Y = np.column_stack([Y[:, 0], counts])
    model = MultiTaskMMoE(**SMALL, loss={"task1": "poisson"}).fit(X, Y)
    groups = np.arange(len(X)) // 10
    expected = ndcg_at_k_score(
        counts, model.predict(X)[:, 1].astype(float), groups=groups
    )
    assert task_scorer("ndcg", 1)(model, X, Y, groups=groups) == pytest.approx(expected)
    with pytest.raises(ValueError, match="'gauc' is a binary metric, but task"):
        task_scorer("gauc", 1)(model, X, Y, groups=groups)


def test_conditional_task_is_scored_against_the_joint_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    click = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    buy = np.where(click == 1, (X[:, 1] > 0).astype(float), np.nan)
    Y = np.column_stack([click, buy])
    model = MultiTaskMMoEClassifier(**SMALL, conditional_on={1: 0}).fit(X, Y)
    joint = np.nan_to_num(buy)  # no purchase without a click
    proba = model.predict_proba(X)[1][:, 1]
    assert task_scorer("roc_auc", task=1)(model, X, Y) == pytest.approx(
        roc_auc_score(joint, proba)
    )
    assert task_scorer("neg_log_loss", task=1)(model, X, Y) == pytest.approx(
        -log_loss(joint, proba)
    )
