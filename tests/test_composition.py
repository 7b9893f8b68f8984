"""MultiTaskMMoEClassifier composed with scikit-learn's tools.

Pipelines with column transformers, pandas output, grid search and
cross-validation with per-task scoring, cloning and joblib.
"""

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.metrics import multitask_scoring

pd = pytest.importorskip("pandas")

NUMERIC = ["age", "minutes"]
CATEGORICAL = ["device", "channel"]


@pytest.fixture(scope="module")
def data():
    """A DataFrame X with string categories; Y with an int and a string task."""
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "minutes": rng.exponential(5.0, n).round(1),
            "device": rng.choice(["mobile", "desktop", "tablet"], n),
            "channel": rng.choice(["search", "social", "email", "direct"], n),
        }
    )
    interest = np.log1p(X["minutes"]) + 0.7 * (X["channel"] == "email")
    click = (interest + rng.normal(0, 0.5, n) > 1.8).astype(int)
    colour = np.where(
        X["device"] == "mobile", "red", np.where(X["age"] > 50, "blue", "green")
    ).astype(object)
    colour[rng.uniform(size=n) < 0.2] = None  # unlabelled for this task
    Y = pd.DataFrame({"click": click, "colour": colour})
    return X, Y


def _model(**params):
    return MultiTaskMMoEClassifier(
        n_experts=2,
        expert_hidden_layer_sizes=(8,),
        tower_hidden_layer_sizes=(4,),
        lr=1e-2,
        max_epochs=4,
        random_state=0,
        **params,
    )


def _pipeline(sparse_output=True, **params):
    preprocess = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(sparse_output=sparse_output), CATEGORICAL),
        ],
        # Keep the one-hot output sparse: the model reads sparse matrices.
        sparse_threshold=1.0,
    )
    return Pipeline([("preprocess", preprocess), ("mmoe", _model(**params))])


@pytest.fixture(scope="module")
def fitted_pipeline(data):
    X, Y = data
    return _pipeline().fit(X, Y)


def test_pipeline_with_column_transformer(data, fitted_pipeline):
    X, Y = data
    pipe = fitted_pipeline
    assert sp.issparse(pipe[0].transform(X))
    model = pipe[-1]
    assert model.task_names_ == ["click", "colour"]
    assert model.classes_[0].tolist() == [0, 1]
    assert model.classes_[1].tolist() == ["blue", "green", "red"]
    assert model.n_features_in_ == 2 + 3 + 4

    Y_pred = pipe.predict(X)
    assert Y_pred.shape == (len(X), 2)
    assert set(Y_pred[:, 0]) <= {0, 1}
    assert set(Y_pred[:, 1]) <= {"blue", "green", "red"}
    proba = pipe.predict_proba(X)
    assert [p.shape for p in proba] == [(len(X), 2), (len(X), 3)]
    # The same model on the dense transformed matrix predicts the same: a
    # narrow sparse input is scaled and embedded as its dense copy.
    dense = _model()
    dense.fit(pipe[0].transform(X).toarray(), Y)
    np.testing.assert_allclose(
        dense.predict_proba(pipe[0].transform(X).toarray())[1], proba[1], rtol=1e-5
    )
    assert 0 <= pipe.score(X, Y) <= 1


def test_pandas_output_upstream(data):
    X, Y = data
    pipe = _pipeline(sparse_output=False).set_output(transform="pandas")
    pipe.fit(X, Y)
    Xt = pipe[0].transform(X)
    assert isinstance(Xt, pd.DataFrame)
    np.testing.assert_array_equal(
        pipe[-1].feature_names_in_, pipe[0].get_feature_names_out()
    )
    assert pipe.predict(X.iloc[:5]).shape == (5, 2)


def _grid_search(n_jobs):
    scoring = multitask_scoring(["roc_auc", "accuracy"], tasks=["click", "colour"])
    search = GridSearchCV(
        _pipeline(),
        {"mmoe__n_experts": [1, 2], "mmoe__lr": [1e-2]},
        scoring=scoring,
        refit="roc_auc_colour",
        # An int cv fails in scikit-learn's check_cv on a Y that mixes ints
        # and strings (or holds None/NaN); a splitter avoids it.
        cv=KFold(2, shuffle=True, random_state=0),
        n_jobs=n_jobs,
        error_score="raise",
    )
    return search, scoring


def test_grid_search_with_per_task_scoring(data):
    X, Y = data
    search, scoring = _grid_search(n_jobs=1)
    search.fit(X, Y)
    results = search.cv_results_
    for key in scoring:
        for split in range(2):
            scores = results[f"split{split}_test_{key}"]
            assert scores.shape == (2,) and np.all(np.isfinite(scores))
        assert f"rank_test_{key}" in results
    best = int(np.argmax(results["mean_test_roc_auc_colour"]))
    assert search.best_index_ == best
    assert results["rank_test_roc_auc_colour"][best] == 1
    np.testing.assert_allclose(
        results["mean_test_roc_auc_mean"],
        (results["mean_test_roc_auc_click"] + results["mean_test_roc_auc_colour"]) / 2,
    )
    # The refitted best pipeline is scored with the refit metric.
    assert search.score(X, Y) == pytest.approx(
        scoring["roc_auc_colour"](search.best_estimator_, X, Y)
    )
    assert search.predict(X.iloc[:4]).shape == (4, 2)
    assert (
        search.best_estimator_[-1].n_experts == search.best_params_["mmoe__n_experts"]
    )


@pytest.mark.slow
def test_grid_search_in_worker_processes(data):
    # n_jobs=2 sends the pipeline and the scorers to other processes (slow
    # to start: each imports torch); they score as in this process.
    X, Y = data
    sequential = _grid_search(n_jobs=1)[0].fit(X, Y).cv_results_
    search, scoring = _grid_search(n_jobs=2)
    parallel = search.fit(X, Y).cv_results_
    for key in scoring:
        np.testing.assert_allclose(
            parallel[f"mean_test_{key}"], sequential[f"mean_test_{key}"], atol=1e-3
        )
    assert search.best_estimator_.predict(X.iloc[:4]).shape == (4, 2)


def test_cross_validate(data):
    X, Y = data
    scoring = multitask_scoring("neg_log_loss", tasks=["click", "colour"])
    cv = cross_validate(
        _pipeline(),
        X,
        Y,
        scoring=scoring,
        cv=KFold(3, shuffle=True, random_state=0),
        error_score="raise",
    )
    for key in ["neg_log_loss_click", "neg_log_loss_colour", "neg_log_loss_mean"]:
        assert cv[f"test_{key}"].shape == (3,)
        assert np.all(cv[f"test_{key}"] < 0)


def test_cross_validate_with_int_cv(data):
    # cv=3 works when scikit-learn can sort the labels of Y: here, string
    # labels with missing entries marked by missing_label instead of None.
    X, Y = data
    Y = pd.DataFrame(
        {
            "click": np.where(Y["click"] == 1, "yes", "no"),
            "colour": Y["colour"].fillna("?"),
        }
    )
    scoring = multitask_scoring(["roc_auc", "accuracy"], tasks=["click", "colour"])
    cv = cross_validate(
        _pipeline(missing_label="?"), X, Y, scoring=scoring, cv=3, error_score="raise"
    )
    for key in scoring:
        assert cv[f"test_{key}"].shape == (3,)
        assert np.all((cv[f"test_{key}"] >= 0) & (cv[f"test_{key}"] <= 1))


def test_clone_of_a_fitted_estimator(data, fitted_pipeline):
    model = fitted_pipeline[-1]
    cloned = clone(model)
    assert not hasattr(cloned, "net_") and not hasattr(cloned, "classes_")
    assert cloned.get_params() == model.get_params()
    cloned_pipeline = clone(fitted_pipeline)
    assert not hasattr(cloned_pipeline[-1], "module_")
    # Refitting the clone gives the same model (same random_state).
    X, Y = data
    np.testing.assert_allclose(
        cloned_pipeline.fit(X, Y).predict_proba(X)[0],
        fitted_pipeline.predict_proba(X)[0],
        rtol=1e-6,
    )


def test_joblib_round_trip(data, fitted_pipeline, tmp_path):
    X, Y = data
    path = tmp_path / "pipeline.joblib"
    joblib.dump(fitted_pipeline, path)
    loaded = joblib.load(path)
    for expected, got in zip(
        fitted_pipeline.predict_proba(X), loaded.predict_proba(X), strict=True
    ):
        np.testing.assert_array_equal(expected, got)
    np.testing.assert_array_equal(loaded.predict(X), fitted_pipeline.predict(X))
    assert loaded[-1].task_names_ == ["click", "colour"]
