"""rank_score: the weighted sum of the task scores of every row."""

import numpy as np
import pytest

from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier

TINY = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    max_epochs=2,
    early_stopping=False,
    random_state=0,
)


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    click = (X[:, 0] > 0).astype(float)
    watch = np.where(click == 1, 30 + 10 * X[:, 1], np.nan)
    stars = rng.integers(1, 4, 200).astype(float)
    Y = np.column_stack([click, watch, stars])
    model = MultiTaskMMoE(task_types=["binary", "regression", "multiclass"], **TINY)
    return X, model.fit(X, Y)


def test_rank_score_is_the_weighted_sum_of_the_task_scores(mixed):
    X, model = mixed
    proba = model.predict_proba(X)
    watch = model.predict(X)[:, 1].astype(float)
    expected = 2.0 * proba[0][:, 1] + 0.5 * watch + proba[2] @ [0.0, 1.0, 3.0]
    values = {1.0: 0.0, 2.0: 1.0, 3.0: 3.0}
    by_name = model.rank_score(X, {"task0": 2.0, "task1": 0.5, "task2": values})
    in_order = model.rank_score(X, [2.0, 0.5, [0.0, 1.0, 3.0]])
    np.testing.assert_allclose(by_name, expected, rtol=1e-10)
    np.testing.assert_array_equal(by_name, in_order)
    # Tasks a dict leaves out count 0.
    np.testing.assert_allclose(model.rank_score(X, {"task1": 1.0}), watch)


@pytest.mark.parametrize(
    "weights, match",
    [
        ([1.0, 1.0, 1.0], "is multiclass"),
        ([1.0, 1.0], "one weight per task"),
        ({"likes": 1.0}, "unknown tasks"),
        ([1.0, [1.0, 2.0], [0, 1, 2]], "regression task: its weight must be"),
        ([1.0, 0.0, {1.0: 1}], "must name each of its classes"),
        ([0.0, 0.0, [0, 0, 0]], "must not all be zero"),
        ([np.nan, 0.0, [0, 0, 0]], "must be finite"),
        ("click", "a sequence of one weight per task"),
    ],
)
def test_rank_score_refuses_bad_weights(mixed, weights, match):
    X, model = mixed
    with pytest.raises(ValueError, match=match):
        model.rank_score(X, weights)


def test_rank_score_of_a_single_task_classifier():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 3))
    clf = MultiTaskMMoEClassifier(**TINY).fit(X, (X[:, 0] > 0).astype(int))
    np.testing.assert_allclose(clf.rank_score(X, [3.0]), 3 * clf.predict_proba(X)[:, 1])


def test_rank_score_of_a_count_task_weights_its_prediction():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(150, 3))
    click = (X[:, 0] > 0).astype(float)
    views = rng.poisson(np.exp(0.5 * X[:, 1])).astype(float)
    model = MultiTaskMMoE(loss={"task1": "poisson"}, **TINY).fit(
        X, np.column_stack([click, views])
    )
    assert model.task_types_ == ["binary", "poisson"]
    expected = model.predict_proba(X)[0][:, 1] + 0.5 * model.predict(X)[:, 1]
    np.testing.assert_allclose(model.rank_score(X, [1.0, 0.5]), expected, rtol=1e-10)
    with pytest.raises(ValueError, match="poisson task: its weight must be"):
        model.rank_score(X, [1.0, [1.0]])
