"""The learning-rate schedule of a fit and the epochs of max_epochs="auto"."""

import numpy as np
import pytest
from skorch.callbacks import Callback

from sk_mmoe import MultiTaskMMoEClassifier, MultiTaskMMoERegressor
from sk_mmoe._building import n_epochs as epochs_of_fit
from sk_mmoe._fitting.schedule import warmup_cosine_factor

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    batch_size=100,
    early_stopping=False,
    random_state=0,
)


class RecordRates(Callback):
    """The optimizer's rate at every training step."""

    def initialize(self):
        self.rates_ = []
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.rates_.append(net.optimizer_.param_groups[0]["lr"])


def data(n_rows=1500):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, 4)).astype(np.float32)
    return X, (X[:, :2] > 0).astype(int)


def test_factor_warms_up_then_decays_to_zero():
    factors = [warmup_cosine_factor(step, 100) for step in range(100)]
    peak = int(np.argmax(factors))
    assert peak == 9  # the warm-up: the first tenth of the steps
    assert factors[0] == pytest.approx(0.1)
    assert factors[peak] == 1.0
    assert np.all(np.diff(factors[: peak + 1]) > 0)
    assert np.all(np.diff(factors[peak:]) < 0)
    assert factors[-1] == pytest.approx(0.0, abs=1e-12)
    assert factors[55] == pytest.approx(0.5, abs=0.02)  # half way down
    # A fit of a single step takes it at the full rate.
    assert warmup_cosine_factor(0, 1) == 1.0


def test_fit_follows_the_schedule_and_restores_the_rate():
    X, Y = data()
    recorder = RecordRates()
    clf = MultiTaskMMoEClassifier(
        **SMALL,
        lr=0.01,
        max_epochs=4,
        lr_schedule="cosine",
        callbacks=[("rates", recorder)],
    ).fit(X, Y)
    rates = np.array(clf.net_.callbacks_[-1][1].rates_)
    assert len(rates) == 4 * 15  # 1,500 rows in batches of 100
    np.testing.assert_allclose(
        rates, [0.01 * warmup_cosine_factor(s, 60) for s in range(60)]
    )
    assert rates.max() == pytest.approx(0.01)
    # After the fit the optimizer is back at lr: partial_fit trains there.
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.01)
    clf.partial_fit(X, Y)
    rates = clf.net_.callbacks_[-1][1].rates_
    assert rates == pytest.approx([0.01] * 15)


def test_schedule_by_default_and_none_keeps_the_rate():
    # The default, "auto": a classification fit with early stopping follows
    # the schedule; lr_schedule=None trains at lr throughout.
    X, Y = data()
    rates = {}
    for schedule in ("default", None):
        params = {} if schedule == "default" else {"lr_schedule": schedule}
        clf = MultiTaskMMoEClassifier(
            **{**SMALL, "early_stopping": True, "n_iter_no_change": 100},
            lr=0.01,
            max_epochs=2,
            callbacks=[RecordRates()],
            **params,
        ).fit(X, Y)
        assert clf.n_iter_ == 2
        rates[schedule] = clf.net_.callbacks_[-1][1].rates_
    assert MultiTaskMMoEClassifier().get_params()["lr_schedule"] == "auto"
    # 1,350 training rows in batches of 100: 14 steps per epoch.
    np.testing.assert_allclose(
        rates["default"], [0.01 * warmup_cosine_factor(s, 28) for s in range(28)]
    )
    assert rates[None] == pytest.approx([0.01] * 28)


def test_auto_schedule_runs_with_early_stopping_only():
    X, Y = data(1500)
    rates = {}
    for early in (True, False):
        clf = MultiTaskMMoEClassifier(
            **{**SMALL, "early_stopping": early, "n_iter_no_change": 100},
            lr=0.01,
            max_epochs=3,
            lr_schedule="auto",
            callbacks=[RecordRates()],
        ).fit(X, Y)
        rates[early] = clf.net_.callbacks_[-1][1].rates_
    assert min(rates[True]) < 0.01 / 2 and max(rates[True]) == pytest.approx(0.01)
    assert rates[False] == pytest.approx([0.01] * 45)


@pytest.mark.parametrize(
    "n_rows, scheduled, classifying, n_epochs",
    # 15 batches: 300 steps take 20 epochs; 3 batches would need 100 (the
    # most is 50); 40 batches need 8 (the least is 10); without a schedule
    # or with a regression task: 50.
    [(1500, True, True, 20), (300, True, True, 50), (4000, True, True, 10)]
    + [(1500, False, True, 50), (1500, True, False, 50)],
)
def test_auto_max_epochs_gives_classification_300_scheduled_steps(
    n_rows, scheduled, classifying, n_epochs
):
    assert epochs_of_fit("auto", n_rows, 100, scheduled, classifying) == n_epochs
    assert epochs_of_fit(7, n_rows, 100, True, True) == 7


@pytest.mark.parametrize("estimator", [MultiTaskMMoEClassifier, MultiTaskMMoERegressor])
def test_auto_max_epochs_in_a_fit(estimator):
    X, Y = data(1500)
    model = estimator(
        **{**SMALL, "n_experts": 1}, max_epochs="auto", lr_schedule="cosine"
    )
    model.fit(X, Y if estimator is MultiTaskMMoEClassifier else Y.astype(float))
    # Classification: 300 steps of 15 batches; regression: 50 epochs.
    assert model.n_iter_ == (20 if estimator is MultiTaskMMoEClassifier else 50)
    assert model.get_params()["max_epochs"] == "auto"


def test_auto_lr_peaks_at_five_times_the_constant_rate():
    X, Y = data(600)
    clf = MultiTaskMMoEClassifier(
        **{**SMALL, "batch_size": "auto"},
        max_epochs=2,
        lr_schedule="cosine",
        callbacks=[RecordRates()],
    ).fit(X, Y)
    # 600 rows: batches of 256, constant rate 1e-3, peak 5e-3.
    assert max(clf.net_.callbacks_[-1][1].rates_) == pytest.approx(5e-3)


def test_auto_schedule_leaves_regression_at_a_constant_rate():
    X, Y = data(1500)
    reg = MultiTaskMMoERegressor(
        **{**SMALL, "early_stopping": True, "n_iter_no_change": 100},
        lr=0.01,
        max_epochs=2,
        lr_schedule="auto",
        callbacks=[RecordRates()],
    ).fit(X, Y.astype(float))
    assert reg.net_.callbacks_[-1][1].rates_ == pytest.approx([0.01] * 28)
