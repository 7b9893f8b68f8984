"""Tests for MultiTaskMMoERegressor (sk_mmoe._regressor)."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import r2_score

from sk_mmoe import MultiTaskMMoERegressor

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
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    Y = np.column_stack(
        [
            X @ [1.0, -2.0, 0.5, 0.0] + 0.1 * rng.normal(size=300),
            X @ [0.0, 1.0, 1.0, -1.0] + 0.1 * rng.normal(size=300),
        ]
    )
    return X, Y


def test_fit_predict_and_attributes(data):
    X, Y = data
    reg = MultiTaskMMoERegressor(**SMALL).fit(X, Y)
    assert reg.task_types_ == ["regression", "regression"]
    assert reg.n_outputs_ == 2 and reg.task_names_ == ["task0", "task1"]
    pred = reg.predict(X)
    assert pred.shape == (300, 2) and pred.dtype == np.float64
    np.testing.assert_allclose(reg.target_mean_, Y.mean(axis=0))
    np.testing.assert_allclose(reg.target_scale_, Y.std(axis=0))
    assert not hasattr(reg, "predict_proba") and not hasattr(reg, "classes_")


def test_predictions_in_original_units():
    # An easy linear problem in large, shifted units still fits: the targets
    # are standardised for training and predictions come back in the units.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    base = np.column_stack([X @ [1.0, 0.5, -1.0], X @ [-0.5, 1.0, 0.0]])
    Y = base * np.array([1000.0, 0.001]) + np.array([5e4, -3.0])
    reg = MultiTaskMMoERegressor(**dict(SMALL, max_epochs=30)).fit(X, Y)
    pred = reg.predict(X)
    for k in range(2):
        assert r2_score(Y[:, k], pred[:, k]) > 0.95
    np.testing.assert_allclose(pred.mean(axis=0), Y.mean(axis=0), rtol=0.01)
    assert reg.score(X, Y) > 0.95
    # The loss is on the standardised targets: small numbers despite units.
    assert reg.history_[-1]["train_loss_task0"] < 0.1


def test_one_dimensional_y(data):
    X, Y = data
    reg = MultiTaskMMoERegressor(**SMALL).fit(X, Y[:, 0])
    assert reg.n_outputs_ == 1
    assert reg.predict(X).shape == (300,)
    assert reg.target_mean_.shape == (1,)
    assert reg.score(X, Y[:, 0]) == pytest.approx(r2_score(Y[:, 0], reg.predict(X)))
    # A 2-D y with one column stays 2-D.
    assert MultiTaskMMoERegressor(**SMALL).fit(X, Y[:, :1]).predict(X).shape == (
        300,
        1,
    )


def test_missing_targets_nan_and_marker_are_equivalent(data):
    X, Y = data
    missing = np.random.default_rng(2).random(300) < 0.4
    Y_nan = Y.copy()
    Y_nan[missing, 1] = np.nan
    Y_marker = Y.copy()
    Y_marker[missing, 1] = -999.0
    Y_both = Y_marker.copy()
    Y_both[missing & (np.arange(300) % 2 == 0), 1] = np.nan
    a = MultiTaskMMoERegressor(**SMALL).fit(X, Y_nan)
    for Y_other in (Y_marker, Y_both):
        b = MultiTaskMMoERegressor(**SMALL, missing_target=-999.0).fit(X, Y_other)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
    # The standardisation uses the labelled entries only.
    assert a.target_mean_[1] == pytest.approx(Y[~missing, 1].mean())
    assert a.target_scale_[1] == pytest.approx(Y[~missing, 1].std())
    assert np.isfinite(a.predict(X)).all()


def test_changing_a_missing_entry_does_not_change_the_fit(data):
    X, Y = data
    missing = np.zeros(300, dtype=bool)
    missing[::3] = True
    Y_a = Y.copy()
    Y_a[missing, 0] = np.nan
    # The same rows marked with the marker, the real values elsewhere.
    Y_b = Y.copy()
    Y_b[missing, 0] = -1.0
    Y_c = Y.copy()
    Y_c[missing, 0] = -1.0
    a = MultiTaskMMoERegressor(**SMALL).fit(X, Y_a)
    b = MultiTaskMMoERegressor(**SMALL, missing_target=-1.0).fit(X, Y_b)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    # Without the marker, -1.0 is a target: another model.
    c = MultiTaskMMoERegressor(**SMALL).fit(X, Y_c)
    assert not np.array_equal(a.predict(X), c.predict(X))
    # Task 1 still learns from every row, task 0 from its labelled ones.
    assert a.history_[-1]["train_loss_task0"] > 0


def test_score_is_the_mean_r2_over_labelled_rows(data):
    X, Y = data
    reg = MultiTaskMMoERegressor(**SMALL).fit(X, Y)
    Y_test = Y.copy()
    Y_test[:100, 0] = np.nan
    pred = reg.predict(X)
    expected = np.mean(
        [r2_score(Y[100:, 0], pred[100:, 0]), r2_score(Y[:, 1], pred[:, 1])]
    )
    assert reg.score(X, Y_test) == pytest.approx(expected)
    # With sample weights: each task's weighted R^2 on its labelled rows.
    w = np.linspace(0.5, 2.0, 300)
    expected = np.mean(
        [
            r2_score(Y[100:, 0], pred[100:, 0], sample_weight=w[100:]),
            r2_score(Y[:, 1], pred[:, 1], sample_weight=w),
        ]
    )
    assert reg.score(X, Y_test, sample_weight=w) == pytest.approx(expected)
    # A task without any labelled row is left out of the mean.
    Y_test[:, 0] = np.nan
    assert reg.score(X, Y_test) == pytest.approx(r2_score(Y[:, 1], pred[:, 1]))


def test_huber_loss(data):
    X, Y = data
    squared = MultiTaskMMoERegressor(**SMALL).fit(X, Y)
    huber = MultiTaskMMoERegressor(**SMALL, loss="huber").fit(X, Y)
    assert [task.loss for task in huber._tasks] == ["huber", "huber"]
    assert not np.array_equal(squared.predict(X), huber.predict(X))
    # Huber is below the squared error / 2 ... and below |e|: its loss on
    # the standardised targets is at most half the squared error's.
    first = huber.history_[0]["train_loss_task0"]
    assert first <= squared.history_[0]["train_loss_task0"] / 2 + 1e-6
    # Heavy-tailed targets: a few huge outliers pull the squared-error fit
    # more than the Huber fit.
    rng = np.random.default_rng(3)
    Y_out = Y.copy()
    outliers = rng.choice(300, 6, replace=False)
    Y_out[outliers, 0] += 200.0
    params = dict(SMALL, max_epochs=20)
    clean = ~np.isin(np.arange(300), outliers)
    errors = {}
    for loss in ("squared_error", "huber"):
        pred = MultiTaskMMoERegressor(**params, loss=loss).fit(X, Y_out).predict(X)
        errors[loss] = np.mean((pred[clean, 0] - Y[clean, 0]) ** 2)
    assert errors["huber"] < errors["squared_error"]
    with pytest.raises(ValueError, match="loss"):
        MultiTaskMMoERegressor(loss="absolute_error").fit(X, Y)


def test_partial_fit_standardises_with_the_first_chunk(data):
    X, Y = data
    reg = MultiTaskMMoERegressor(**SMALL)
    reg.partial_fit(X[:100], Y[:100])
    mean, scale = reg.target_mean_.copy(), reg.target_scale_.copy()
    np.testing.assert_allclose(mean, Y[:100].mean(axis=0))
    np.testing.assert_allclose(scale, Y[:100].std(axis=0))
    # Later chunks, even in other units, keep the first chunk's scaling.
    reg.partial_fit(X[100:], Y[100:] * 10 + 5)
    np.testing.assert_array_equal(reg.target_mean_, mean)
    np.testing.assert_array_equal(reg.target_scale_, scale)
    assert reg.n_iter_ == 2
    # A chunk with a missing task is fine; a chunk too large to standardise
    # in float32 is refused and changes nothing.
    Y_chunk = Y[:50].copy()
    Y_chunk[:, 1] = np.nan
    Y_chunk[0, 1] = 1.0
    reg.partial_fit(X[:50], Y_chunk)
    before = {k: v.clone() for k, v in reg.module_.state_dict().items()}
    with pytest.raises(ValueError, match="too large"), np.errstate(over="ignore"):
        reg.partial_fit(X[:50], np.full((50, 2), 1e300))
    for k, v in reg.module_.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="tasks the model was fitted on"):
        reg.partial_fit(X, Y[:, 0])


def test_warm_start_continues(data):
    X, Y = data
    reg = MultiTaskMMoERegressor(**SMALL, warm_start=True).fit(X, Y)
    first = reg.history_[-1]["train_loss"]
    mean = reg.target_mean_.copy()
    reg.fit(X, Y)
    assert reg.n_iter_ == 6
    cold = MultiTaskMMoERegressor(**SMALL).fit(X, Y)
    # Continued from the fitted weights: lower loss than a fresh start.
    assert reg.history_[-1]["train_loss"] < first
    assert reg.history_[3]["train_loss"] < cold.history_[0]["train_loss"]
    # Continued training keeps the first fit's scaling, whatever the units
    # of the new targets.
    reg.fit(X, Y + 100.0)
    np.testing.assert_array_equal(reg.target_mean_, mean)


def test_dataframe_targets_keep_their_names(data):
    X, Y = data
    Y_df = pd.DataFrame({"watch_time": Y[:, 0] * 60, "rating": Y[:, 1]})
    reg = MultiTaskMMoERegressor(**SMALL).fit(X, Y_df)
    assert reg.task_names_ == ["watch_time", "rating"]
    assert "train_loss_watch_time" in reg.history_[-1]
    assert reg.score(X, Y_df) == reg.score(X, Y_df.to_numpy())
    with pytest.raises(ValueError, match="tasks the model was fitted on"):
        reg.score(X, Y_df[["rating", "watch_time"]])


@pytest.mark.parametrize(
    "Y_bad, match",
    [
        (lambda Y: np.where(Y > 0, "a", "b"), "not all numbers"),
        (lambda Y: np.where(np.arange(300)[:, None] == 0, np.inf, Y), "infinite"),
        (lambda Y: np.column_stack([Y[:, 0], np.full(300, np.nan)]), "no labelled"),
    ],
)
def test_bad_targets(data, Y_bad, match):
    X, Y = data
    with pytest.raises(ValueError, match=match):
        MultiTaskMMoERegressor(**SMALL).fit(X, Y_bad(Y))


def test_constant_target_keeps_its_units(data):
    X, Y = data
    Y_const = np.column_stack([Y[:, 0], np.full(300, 7.0)])
    reg = MultiTaskMMoERegressor(**dict(SMALL, max_epochs=10)).fit(X, Y_const)
    assert reg.target_scale_[1] == 1.0 and reg.target_mean_[1] == 7.0
    np.testing.assert_allclose(reg.predict(X)[:, 1], 7.0, atol=0.5)


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    rates = np.exp(np.column_stack([0.8 * X[:, 0], 1.0 - 0.6 * X[:, 1]]))
    return X, rng.poisson(rates).astype(float), rates


def test_poisson_loss_learns_non_negative_counts(counts):
    X, Y, rates = counts
    reg = MultiTaskMMoERegressor(**{**SMALL, "max_epochs": 30}, loss="poisson")
    reg.fit(X, Y)
    assert reg.task_types_ == ["poisson", "poisson"]
    np.testing.assert_allclose(reg.target_mean_, Y.mean(axis=0))
    assert reg.target_scale_.tolist() == [1.0, 1.0]
    pred = reg.predict(X)
    assert pred.dtype == np.float64 and (pred > 0).all()
    # Closer to the true rates than the constant mean, by the Poisson deviance.
    from sklearn.metrics import mean_poisson_deviance

    for k in range(2):
        model = mean_poisson_deviance(rates[:, k], pred[:, k])
        constant = mean_poisson_deviance(rates[:, k], np.full(len(X), Y[:, k].mean()))
        assert model < 0.5 * constant
    assert 0 < reg.score(X, Y) <= 1  # D^2, the deviance explained


def test_poisson_loss_refuses_negative_targets_and_a_changed_loss(counts):
    X, Y, _ = counts
    with pytest.raises(ValueError, match="negative targets"):
        MultiTaskMMoERegressor(**SMALL, loss="poisson").fit(X, Y - 1)
    reg = MultiTaskMMoERegressor(**SMALL, loss="poisson", warm_start=True).fit(X, Y)
    n_iter = reg.n_iter_
    with pytest.raises(ValueError, match="poisson task and must stay one"):
        reg.set_params(loss="squared_error").fit(X, Y)
    assert reg.n_iter_ == n_iter and reg.task_types_ == ["poisson", "poisson"]


def _dropout_rates(model) -> list[float]:
    return [m.p for m in model.module_.modules() if isinstance(m, torch.nn.Dropout)]


def test_default_regressor_trains_without_dropout(data):
    """Smooth regression targets pay for dropout: the regressor's default
    network has none, while the classifier's keeps 0.1, and an explicit
    dropout still gives the regressor's network its layers."""
    from sk_mmoe import MultiTaskMMoEClassifier

    X, Y = data
    reg = MultiTaskMMoERegressor(max_epochs=1, random_state=0).fit(X, Y)
    assert _dropout_rates(reg) == []
    explicit = MultiTaskMMoERegressor(dropout=0.1, max_epochs=1, random_state=0)
    assert set(_dropout_rates(explicit.fit(X, Y))) == {0.1}
    clf = MultiTaskMMoEClassifier(max_epochs=1, random_state=0)
    labels = (np.median(Y, axis=0) < Y).astype(int)
    assert set(_dropout_rates(clf.fit(X, labels))) == {0.1}
