import sys

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import make_task_correlation
from sk_mmoe.inspection import (
    ExpertUtilizationDisplay,
    expert_utilization,
    gate_similarity,
)

FAST = dict(max_epochs=3, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_task_correlation(240, correlation=0.3, n_features=6, random_state=0)


@pytest.fixture(scope="module")
def mmoe(data):
    X, Y = data
    return MultiTaskMMoEClassifier(n_experts=3, lr=1e-2, **FAST).fit(X, Y)


@pytest.fixture
def pyplot():
    plt = pytest.importorskip("matplotlib.pyplot")
    yield plt
    plt.close("all")


class _FixedGates(BaseEstimator):
    """A fitted stand-in whose gate weights are given."""

    def __init__(self, weights):
        self.weights = weights
        self.task_names_ = [f"task{k}" for k in range(weights.shape[1])]

    def fit(self, X, Y=None):
        return self

    def gate_weights(self, X):
        return self.weights


# --- expert_utilization ------------------------------------------------------


def test_expert_utilization_is_mean_of_gate_weights(mmoe, data):
    X, _ = data
    utilization = expert_utilization(mmoe, X)
    assert utilization.shape == (2, 3)
    np.testing.assert_allclose(utilization, mmoe.gate_weights(X).mean(axis=0))
    np.testing.assert_allclose(utilization.sum(axis=1), 1.0, rtol=1e-6)


def test_gate_balance_spreads_the_utilization_of_collapsed_gates():
    # Highly correlated tasks: the default gates collapse on a few experts,
    # their dropout and temperature notwithstanding.
    X, Y = make_task_correlation(1000, 0.9, n_features=8, random_state=0)
    params = dict(n_experts=4, max_epochs=20, random_state=0, n_threads=1)
    default = MultiTaskMMoEClassifier(**params).fit(X, Y)
    balanced = MultiTaskMMoEClassifier(gate_balance=1.0, **params).fit(X, Y)
    before, after = expert_utilization(default, X), expert_utilization(balanced, X)
    assert before.min() < 0.02 and before.max() > 0.6
    assert after.min() > 0.15 and after.max() < 0.35


def test_expert_utilization_as_frame_names_tasks_and_experts(data):
    pd = pytest.importorskip("pandas")
    X, Y = data
    Y = pd.DataFrame(Y, columns=["click", "buy"])
    clf = MultiTaskMMoEClassifier(n_experts=2, **FAST).fit(X, Y)
    frame = expert_utilization(clf, X, as_frame=True)
    assert frame.index.tolist() == ["click", "buy"]
    assert frame.columns.tolist() == ["expert0", "expert1"]
    np.testing.assert_allclose(frame.to_numpy(), expert_utilization(clf, X))


def test_expert_utilization_task_experts_names_and_zeros(data):
    pd = pytest.importorskip("pandas")
    X, Y = data
    clf = MultiTaskMMoEClassifier(n_experts=2, n_task_experts=1, **FAST).fit(X, Y)
    frame = expert_utilization(clf, X, as_frame=True)
    assert frame.columns.tolist() == ["shared0", "shared1", "task0.0", "task1.0"]
    # A task never weighs another task's private expert.
    assert frame.loc["task0", "task1.0"] == 0.0
    assert frame.loc["task1", "task0.0"] == 0.0
    assert frame.loc["task0", "task0.0"] > 0.0
    assert isinstance(frame, pd.DataFrame)


def test_expert_utilization_single_task(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(n_experts=2, **FAST).fit(X, Y[:, 0])
    assert expert_utilization(clf, X).shape == (1, 2)


def test_pipeline_transforms_X_before_the_gates(data):
    X, Y = data
    # Shift and scale X so that the scaler changes what the gates see.
    X = X * 5.0 + 3.0
    pipe = make_pipeline(
        StandardScaler(), MultiTaskMMoEClassifier(n_experts=3, **FAST)
    ).fit(X, Y)
    scaled = pipe[0].transform(X)
    expected = pipe[-1].gate_weights(scaled)
    np.testing.assert_allclose(expert_utilization(pipe, X), expected.mean(axis=0))
    assert not np.allclose(
        expert_utilization(pipe, X), pipe[-1].gate_weights(X).mean(axis=0)
    )
    np.testing.assert_allclose(
        gate_similarity(pipe, X), gate_similarity(pipe[-1], scaled)
    )


def test_fitted_search_over_a_pipeline_is_unwrapped(data):
    X, Y = data
    X = X * 5.0 + 3.0
    pipe = make_pipeline(StandardScaler(), MultiTaskMMoEClassifier(**FAST))
    search = GridSearchCV(
        pipe, {"multitaskmmoeclassifier__n_experts": [2, 3]}, cv=2
    ).fit(X, Y)
    best = search.best_estimator_
    scaled = best[0].transform(X)
    np.testing.assert_allclose(
        expert_utilization(search, X), best[-1].gate_weights(scaled).mean(axis=0)
    )
    np.testing.assert_allclose(
        gate_similarity(search, X), gate_similarity(best[-1], scaled)
    )


@pytest.mark.parametrize(
    "func",
    [expert_utilization, gate_similarity, ExpertUtilizationDisplay.from_estimator],
)
def test_unfitted_estimator_raises_not_fitted(func, data, pyplot):
    X, _ = data
    with pytest.raises(NotFittedError):
        func(MultiTaskMMoEClassifier(), X)
    with pytest.raises(NotFittedError):
        func(make_pipeline(StandardScaler(), MultiTaskMMoEClassifier()), X)


def test_estimator_without_gates_is_rejected(data):
    X, Y = data
    clf = LogisticRegression().fit(X, Y[:, 0])
    with pytest.raises(TypeError, match="estimator must be a fitted"):
        expert_utilization(clf, X)


# --- gate_similarity ---------------------------------------------------------


@pytest.mark.parametrize("metric", ["jensenshannon", "cosine"])
def test_shared_gate_gives_similarity_one(data, metric):
    X, Y = data
    omoe = MultiTaskMMoEClassifier(n_experts=3, shared_gate=True, **FAST).fit(X, Y)
    np.testing.assert_allclose(gate_similarity(omoe, X, metric=metric), 1.0)


@pytest.mark.parametrize("metric", ["jensenshannon", "cosine"])
def test_similarity_is_symmetric_with_unit_diagonal(mmoe, data, metric):
    X, _ = data
    similarity = gate_similarity(mmoe, X, metric=metric)
    assert similarity.shape == (2, 2)
    np.testing.assert_array_equal(similarity, similarity.T)
    np.testing.assert_array_equal(np.diag(similarity), 1.0)
    assert np.all((similarity >= 0) & (similarity <= 1))
    # Separate gates are initialised differently: they are not identical.
    assert similarity[0, 1] < 1.0


def test_similarity_matches_per_sample_definitions(mmoe, data):
    X, _ = data
    G = mmoe.gate_weights(X)
    js = np.mean([1 - jensenshannon(g[0], g[1], base=2) for g in G])
    cos = np.mean(
        [g[0] @ g[1] / np.linalg.norm(g[0]) / np.linalg.norm(g[1]) for g in G]
    )
    assert gate_similarity(mmoe, X)[0, 1] == pytest.approx(js, abs=1e-6)
    assert gate_similarity(mmoe, X, metric="cosine")[0, 1] == pytest.approx(cos)


@pytest.mark.parametrize("metric", ["jensenshannon", "cosine"])
def test_disjoint_gates_have_similarity_zero(metric):
    # Task 0 always uses expert 0, task 1 expert 1, task 2 mixes both.
    weights = np.tile([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], (4, 1, 1))
    similarity = gate_similarity(_FixedGates(weights), np.zeros((4, 1)), metric=metric)
    assert similarity[0, 1] == pytest.approx(0.0)
    assert 0.0 < similarity[0, 2] < 1.0
    assert similarity[0, 2] == pytest.approx(similarity[1, 2])


def test_similarity_is_averaged_per_sample_not_over_averages():
    # Both tasks use each expert half of the time, but never the same one.
    weights = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    estimator = _FixedGates(weights)
    X = np.zeros((2, 1))
    np.testing.assert_allclose(expert_utilization(estimator, X), 0.5)
    assert gate_similarity(estimator, X)[0, 1] == pytest.approx(0.0)


def test_similarity_rejects_unknown_metric(mmoe, data):
    X, _ = data
    with pytest.raises(ValueError, match="metric"):
        gate_similarity(mmoe, X, metric="euclidean")


# --- ExpertUtilizationDisplay ------------------------------------------------


def test_display_from_estimator_attributes(mmoe, data, pyplot):
    X, _ = data
    disp = ExpertUtilizationDisplay.from_estimator(mmoe, X)
    utilization = expert_utilization(mmoe, X)
    np.testing.assert_allclose(disp.utilization, utilization)
    np.testing.assert_allclose(disp.im_.get_array(), utilization)
    assert disp.ax_.figure is disp.figure_
    assert disp.text_.shape == (2, 3)
    texts = [[t.get_text() for t in row] for row in disp.text_]
    assert texts == [[f"{v:.2f}" for v in row] for row in utilization]
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["task0", "task1"]
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == [
        "expert0",
        "expert1",
        "expert2",
    ]
    # Default colorbar: a second axes in the figure.
    assert len(disp.figure_.axes) == 2


def test_display_plot_options(pyplot):
    utilization = np.array([[0.7, 0.3], [0.1, 0.9]])
    _, ax = pyplot.subplots()
    disp = ExpertUtilizationDisplay(
        utilization, task_names=["a", "b"], expert_names=["e0", "e1"]
    ).plot(ax=ax, values_format=".1%", colorbar=False, cmap="Blues")
    assert disp.ax_ is ax
    assert disp.text_[1, 1].get_text() == "90.0%"
    assert disp.im_.get_cmap().name == "Blues"
    assert len(disp.figure_.axes) == 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["e0", "e1"]

    disp.plot(include_values=False, im_kw={"vmax": 1.0})
    assert disp.text_ is None
    assert disp.im_.norm.vmin == 0.0 and disp.im_.norm.vmax == 1.0


def test_display_from_estimator_custom_names_on_pipeline(data, pyplot):
    X, Y = data
    pipe = make_pipeline(
        StandardScaler(), MultiTaskMMoEClassifier(n_experts=2, **FAST)
    ).fit(X, Y)
    disp = ExpertUtilizationDisplay.from_estimator(
        pipe, X, task_names=["A", "B"], colorbar=False
    )
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["A", "B"]
    np.testing.assert_allclose(disp.utilization, expert_utilization(pipe, X))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(utilization=np.ones(3)), "2-D array"),
        (dict(utilization=np.ones((2, 3)), task_names=["a"]), "task_names has 1"),
        (dict(utilization=np.ones((2, 3)), expert_names=["a"]), "expert_names has 1"),
    ],
)
def test_display_validates_its_inputs(kwargs, match):
    utilization = kwargs.pop("utilization")
    with pytest.raises(ValueError, match=match):
        ExpertUtilizationDisplay(utilization, **kwargs)


def test_display_without_matplotlib_raises_clear_error(monkeypatch, mmoe, data):
    X, _ = data
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    disp = ExpertUtilizationDisplay(np.ones((2, 2)) / 2)
    with pytest.raises(ImportError, match="requires matplotlib"):
        disp.plot()
    with pytest.raises(ImportError, match="requires matplotlib"):
        ExpertUtilizationDisplay.from_estimator(mmoe, X)
