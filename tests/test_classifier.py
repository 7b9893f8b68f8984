"""Tests for MultiTaskMMoEClassifier (sk_mmoe._classifier)."""

import pickle
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import make_task_correlation

SMALL = dict(
    n_experts=3,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    batch_size=32,
    max_epochs=3,
    random_state=0,
)


@pytest.fixture(scope="module")
def data():
    X, Y = make_task_correlation(300, 0.8, n_features=6, random_state=0)
    return X, Y


@pytest.fixture(scope="module")
def fitted(data):
    X, Y = data
    return MultiTaskMMoEClassifier(**SMALL).fit(X, Y)


def _state(clf):
    """Everything a fitted model is: its learned attributes and weights."""
    state = {k: v for k, v in vars(clf).items() if k.endswith("_") and k != "net_"}
    state["weights"] = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    return state


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if key == "weights":
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), name
        elif key not in ("module_", "history_"):
            np.testing.assert_equal(a[key], b[key])


# ---------------------------------------------------------------------------
# The estimator contract
# ---------------------------------------------------------------------------


def test_fit_predict_shapes_and_attributes(fitted, data):
    X, Y = data
    assert fitted.n_outputs_ == 2 and fitted.n_features_in_ == 6
    assert fitted.task_names_ == ["task0", "task1"]
    assert not hasattr(fitted, "feature_names_in_")
    assert [c.tolist() for c in fitted.classes_] == [[0, 1], [0, 1]]
    assert isinstance(fitted.module_, torch.nn.Module)
    assert fitted.module_ is fitted.net_.module_

    Y_pred = fitted.predict(X)
    assert Y_pred.shape == (300, 2) and Y_pred.dtype == Y.dtype
    proba = fitted.predict_proba(X)
    assert isinstance(proba, list) and len(proba) == 2
    for p, y_pred in zip(proba, Y_pred.T, strict=True):
        assert p.shape == (300, 2) and p.dtype == np.float64
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(p.argmax(axis=1), y_pred)

    gates = fitted.gate_weights(X[:5])
    assert gates.shape == (5, 2, 3)
    np.testing.assert_allclose(gates.sum(axis=-1), 1.0, atol=1e-6)


def test_history_has_total_and_per_task_losses(fitted):
    assert len(fitted.history_) == fitted.n_iter_ == 3
    for epoch in fitted.history_:
        for key in ("train_loss", "train_loss_task0", "train_loss_task1", "dur"):
            assert np.isfinite(epoch[key])
        # Equal task weights: the total is about the sum of the task losses
        # (the total is averaged per batch, the task losses per row).
        assert epoch["train_loss"] == pytest.approx(
            epoch["train_loss_task0"] + epoch["train_loss_task1"], rel=0.05
        )
    assert fitted.history_[-1]["train_loss"] < fitted.history_[0]["train_loss"]


def test_learns_related_tasks():
    (X, Y), (X_test, Y_test) = make_task_correlation(
        (2000, 500), 0.9, n_features=8, random_state=1
    )
    clf = MultiTaskMMoEClassifier(max_epochs=15, lr=5e-3, random_state=0).fit(X, Y)
    assert clf.score(X_test, Y_test) > 0.8


def test_single_task_follows_the_classifier_convention(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y[:, 1])
    assert clf.n_outputs_ == 1 and isinstance(clf.classes_, np.ndarray)
    assert clf.predict(X).shape == (300,)
    proba = clf.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == (300, 2)
    assert clf.gate_weights(X).shape == (300, 1, 3)
    assert 0 <= clf.score(X, Y[:, 1]) <= 1
    # A 2-D Y with one column keeps the multi-task layout.
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y[:, :1])
    assert clf.predict(X).shape == (300, 1) and isinstance(clf.predict_proba(X), list)


def test_dataframes_mixed_label_types(data):
    X, Y = data
    X_df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    Y_df = pd.DataFrame(
        {
            "click": Y[:, 0],
            "rating": np.where(
                Y[:, 1] == 1, "high", np.where(X[:, 0] > 0, "mid", "low")
            ),
            "liked": Y[:, 0].astype(bool),
        }
    )
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X_df, Y_df)
    assert clf.task_names_ == ["click", "rating", "liked"]
    np.testing.assert_array_equal(clf.feature_names_in_, X_df.columns)
    assert clf.classes_[1].tolist() == ["high", "low", "mid"]
    assert clf.classes_[2].tolist() == [False, True]
    Y_pred = clf.predict(X_df)
    assert Y_pred.dtype == object and Y_pred.shape == (300, 3)
    assert set(Y_pred[:, 1]) <= {"high", "low", "mid"}
    assert set(Y_pred[:, 2]) <= {False, True}
    assert [p.shape[1] for p in clf.predict_proba(X_df)] == [2, 3, 2]


def test_string_labels_only_give_string_predictions(data):
    X, Y = data
    Y_str = np.where(Y == 1, "yes", "no")
    Y_pred = MultiTaskMMoEClassifier(**SMALL).fit(X, Y_str).predict(X)
    assert Y_pred.dtype.kind == "U" and set(np.unique(Y_pred)) <= {"yes", "no"}


# ---------------------------------------------------------------------------
# Missing labels
# ---------------------------------------------------------------------------


def test_missing_markers_are_equivalent(data):
    X, Y = data
    missing = np.random.default_rng(0).random(300) < 0.7
    Y_int = Y.copy()
    Y_int[missing, 1] = -1
    Y_nan = Y.astype(float)
    Y_nan[missing, 1] = np.nan
    Y_obj = Y.astype(object)
    Y_obj[missing, 1] = None
    Y_str = np.where(Y == 1, "b", "a").astype(object)  # same order as 0, 1
    Y_str[missing, 1] = "?"

    probas = [
        MultiTaskMMoEClassifier(**SMALL).fit(X, Y_int).predict_proba(X),
        MultiTaskMMoEClassifier(**SMALL).fit(X, Y_nan).predict_proba(X),
        MultiTaskMMoEClassifier(**SMALL).fit(X, Y_obj).predict_proba(X),
        MultiTaskMMoEClassifier(**SMALL, missing_label="?")
        .fit(X, Y_str)
        .predict_proba(X),
    ]
    for proba in probas[1:3]:
        np.testing.assert_array_equal(proba[0], probas[0][0])
        np.testing.assert_array_equal(proba[1], probas[0][1])
    np.testing.assert_array_equal(probas[3][1], probas[0][1])


def test_rows_missing_one_task_still_train_the_others(data):
    X, Y = data
    missing = np.random.default_rng(0).random(300) < 0.5
    Y_a = Y.copy()
    Y_a[missing, 1] = -1
    # Change task 0's labels on the rows that task 1 does not have: task 0's
    # model must change, so those rows do train task 0.
    Y_b = Y_a.copy()
    Y_b[missing, 0] = 1 - Y_b[missing, 0]
    a = MultiTaskMMoEClassifier(**SMALL).fit(X, Y_a)
    b = MultiTaskMMoEClassifier(**SMALL).fit(X, Y_b)
    assert not np.array_equal(a.predict_proba(X)[0], b.predict_proba(X)[0])


def test_sparse_task_learns_from_rows_it_has(data):
    X, Y = data
    Y_sparse = Y.copy()
    Y_sparse[50:, 1] = -1
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y_sparse)
    assert clf.history_[-1]["train_loss_task1"] > 0
    # The score ignores the unlabelled entries.
    acc0 = np.mean(clf.predict(X)[:, 0] == Y[:, 0])
    acc1 = np.mean(clf.predict(X[:50])[:, 1] == Y[:50, 1])
    assert clf.score(X, Y_sparse) == pytest.approx((acc0 + acc1) / 2)


def test_missing_label_none_allows_minus_one_as_class(data):
    X, Y = data
    Y_pm = np.where(Y == 1, 1, -1)
    clf = MultiTaskMMoEClassifier(**SMALL, missing_label=None).fit(X, Y_pm)
    assert [c.tolist() for c in clf.classes_] == [[-1, 1], [-1, 1]]


# ---------------------------------------------------------------------------
# Training options
# ---------------------------------------------------------------------------


def test_zero_task_weight_means_the_task_does_not_train(data):
    X, Y = data
    params = dict(SMALL, task_weights=[1.0, 0.0])
    a = MultiTaskMMoEClassifier(**params).fit(X, Y)
    Y_other = Y.copy()
    Y_other[:, 1] = np.random.default_rng(1).integers(0, 2, 300)
    b = MultiTaskMMoEClassifier(**params).fit(X, Y_other)
    np.testing.assert_array_equal(a.predict_proba(X)[0], b.predict_proba(X)[0])
    c = MultiTaskMMoEClassifier(**dict(SMALL, task_weights={"task1": 0.0})).fit(X, Y)
    np.testing.assert_array_equal(a.predict_proba(X)[0], c.predict_proba(X)[0])


def test_class_weight_balanced_raises_minority_recall():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 4)).astype(np.float32)
    Y = np.column_stack(
        [(X[:, 0] + rng.normal(0, 1, 600) > 1.6), (X[:, 1] > 0)]
    ).astype(int)
    params = dict(SMALL, max_epochs=10, lr=5e-3)
    plain = MultiTaskMMoEClassifier(**params).fit(X, Y)
    balanced = MultiTaskMMoEClassifier(**params, class_weight="balanced").fit(X, Y)
    per_task = MultiTaskMMoEClassifier(
        **params, class_weight=[{0: 1.0, 1: 10.0}, None]
    ).fit(X, Y)
    positives = Y[:, 0] == 1
    recall = [m.predict(X)[positives, 0].mean() for m in (plain, balanced, per_task)]
    assert recall[1] > recall[0] + 0.2 and recall[2] > recall[0] + 0.2
    w = balanced.net_.criterion_.class_weights[0].numpy()
    np.testing.assert_allclose(w, 600 / (2 * np.bincount(Y[:, 0])), rtol=1e-6)


def test_early_stopping_restores_the_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10)).astype(np.float32)
    Y = rng.integers(0, 2, (200, 2))  # pure noise: validation loss rises

    class Snapshots(Callback):
        def initialize(self):
            self.states = []
            return self

        def on_epoch_end(self, net, **kwargs):
            self.states.append(
                {k: v.clone() for k, v in net.module_.state_dict().items()}
            )

    clf = MultiTaskMMoEClassifier(
        **dict(SMALL, max_epochs=60, lr=0.02),
        early_stopping=True,
        n_iter_no_change=3,
        callbacks=[Snapshots()],
    ).fit(X, Y)
    assert clf.n_iter_ < 60
    valid = [epoch["valid_loss"] for epoch in clf.history_]
    assert all("valid_loss_task1" in epoch for epoch in clf.history_)
    best = int(np.argmin(valid))
    assert best < clf.n_iter_ - 1
    (snapshots,) = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, Snapshots)]
    for name, value in clf.module_.state_dict().items():
        assert torch.equal(value, snapshots.states[best][name]), name
    # The callback given as a parameter is left untouched.
    assert not hasattr(clf.callbacks[0], "states")


def test_warm_start_continues_training(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL, warm_start=True).fit(X, Y)
    weights = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    first = clf.history_[-1]["train_loss"]
    clf.fit(X, Y)
    assert clf.n_iter_ == 6 and len(clf.history_) == 6
    assert clf.history_[-1]["train_loss"] < first
    # The second call started from the first call's weights: its first epoch
    # is far closer to the end of the first call than a fresh start is.
    cold = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    assert cold.n_iter_ == 3
    fresh_start = cold.history_[0]["train_loss"]
    assert abs(clf.history_[3]["train_loss"] - first) < abs(fresh_start - first)
    assert any(
        not torch.equal(v, clf.module_.state_dict()[k]) for k, v in weights.items()
    )


def test_warm_start_uses_the_new_optimisation_parameters(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL, warm_start=True).fit(X, Y)
    clf.set_params(lr=0.05, weight_decay=0.01, batch_size=100).fit(X, Y)
    for group in clf.net_.optimizer_.param_groups:
        assert group["lr"] == 0.05 and group["weight_decay"] == 0.01
    assert clf.history_[-1]["train_batch_count"] == 3  # 300 rows / 100
    clf.set_params(optimizer="sgd").fit(X, Y)
    assert isinstance(clf.net_.optimizer_, torch.optim.SGD)

    before = _state(clf)
    with pytest.raises(ValueError, match="architecture parameters changed"):
        clf.set_params(n_experts=5).fit(X, Y)
    _assert_same_state(before, _state(clf))


def test_continuing_training_with_one_column_y(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL, warm_start=True).fit(X, Y[:, :1])
    clf.fit(X, Y[:, :1])
    clf.partial_fit(X, Y[:, :1])
    assert clf.n_iter_ == 7 and clf.predict(X).shape == (300, 1)


def test_task_columns_are_matched_by_name(data):
    X, Y = data
    Y_df = pd.DataFrame({"click": Y[:, 0], "share": np.where(Y[:, 1], "y", "n")})
    clf = MultiTaskMMoEClassifier(**SMALL, warm_start=True).fit(X, Y_df)
    assert 0 <= clf.score(X, Y_df) <= 1
    before = _state(clf)
    for call in (clf.score, clf.fit, clf.partial_fit):
        with pytest.raises(ValueError, match=r"tasks the model was fitted on"):
            call(X, Y_df[["share", "click"]])
    _assert_same_state(before, _state(clf))
    # Arrays are taken by position.
    assert clf.score(X, Y_df.to_numpy()) == clf.score(X, Y_df)


def test_partial_fit_runs_one_epoch_per_call(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, Y)
    # The first chunk lacks class 1 of task 0: fine, classes are given.
    chunk = Y[:, 0] == 0
    clf.partial_fit(X[chunk], Y[chunk], classes=[[0, 1], [0, 1]])
    assert clf.n_iter_ == 1
    clf.partial_fit(X, Y)
    clf.partial_fit(X, Y)
    assert clf.n_iter_ == 3
    assert [c.tolist() for c in clf.classes_] == [[0, 1], [0, 1]]
    before = _state(clf)
    with pytest.raises(ValueError, match=r"labels \[2\] that are not in its classes"):
        clf.partial_fit(X, Y + 1)
    with pytest.raises(ValueError, match="tasks the model was fitted on"):
        clf.partial_fit(X, Y[:, :1])
    _assert_same_state(before, _state(clf))


def test_reproducible_and_leaves_global_rng_alone(data):
    X, Y = data
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = MultiTaskMMoEClassifier(**dict(SMALL, dropout=0.2, gate_dropout=0.2)).fit(X, Y)
    assert torch.equal(torch.rand(1), expected_next)
    b = MultiTaskMMoEClassifier(**dict(SMALL, dropout=0.2, gate_dropout=0.2)).fit(X, Y)
    for pa, pb in zip(a.predict_proba(X), b.predict_proba(X), strict=True):
        np.testing.assert_array_equal(pa, pb)
    c = MultiTaskMMoEClassifier(**dict(SMALL, random_state=1)).fit(X, Y)
    assert not np.array_equal(a.predict_proba(X)[0], c.predict_proba(X)[0])


def test_sparse_and_float64_input_give_the_same_model(data):
    X, Y = data
    X_sparse = X.copy()
    X_sparse[np.abs(X_sparse) < 0.5] = 0
    # Sparse inputs are scaled and embedded as their dense copies.
    dense = MultiTaskMMoEClassifier(**SMALL).fit(X_sparse, Y)
    for X_other in (
        sp.csr_matrix(X_sparse),
        sp.csc_matrix(X_sparse),
        X_sparse.astype(np.float64),
    ):
        other = MultiTaskMMoEClassifier(**SMALL).fit(X_other, Y)
        np.testing.assert_array_equal(
            other.predict_proba(X_other)[0], dense.predict_proba(X_sparse)[0]
        )


@pytest.mark.parametrize(
    "params",
    [
        dict(n_experts=1),  # Shared-Bottom
        dict(shared_gate=True),  # One-gate MoE
        dict(n_task_experts=2),  # CGC
        dict(n_task_experts=1, n_levels=2),  # PLE
        dict(optimizer="sgd", lr=0.05, weight_decay=1e-4, dropout=0.1),
        dict(optimizer=torch.optim.AdamW),
        dict(tower_hidden_layer_sizes=()),
    ],
)
def test_model_family_and_options_fit(data, params):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**dict(SMALL, **params)).fit(X, Y)
    gates = clf.gate_weights(X)
    n_experts = params.get("n_experts", 3) + 2 * params.get("n_task_experts", 0)
    assert gates.shape == (300, 2, n_experts)
    if params.get("shared_gate"):
        np.testing.assert_array_equal(gates[:, 0], gates[:, 1])
    assert np.isfinite(clf.history_[-1]["train_loss"])


def test_verbose_prints_per_task_losses(data, capsys):
    X, Y = data
    MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    assert capsys.readouterr().out == ""
    MultiTaskMMoEClassifier(**dict(SMALL, verbose=1)).fit(X, Y)
    out = capsys.readouterr().out
    for word in ("train_loss", "train_loss_task0", "train_loss_task1", "dur"):
        assert word in out
    assert len(out.strip().splitlines()) == 2 + 3  # header, rule, 3 epochs


def test_verbose_log_is_plain_when_not_a_terminal(data, capsys):
    # capsys' stdout is not a terminal, as a log file or a pipe: one plain
    # line per epoch, no progress bar redraws, no colour codes, even for long
    # epochs (here 75 batches).
    X, Y = data
    MultiTaskMMoEClassifier(**dict(SMALL, verbose=1, batch_size=4, max_epochs=2)).fit(
        X, Y
    )
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        assert "\r" not in text and "\x1b[" not in text
    assert "/75 [" not in captured.err
    assert len(captured.out.strip().splitlines()) == 2 + 2


def test_verbose_on_a_terminal_has_a_progress_bar(data, capsys, monkeypatch):
    X, Y = data
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    # Long epochs (here 75 batches) get a progress bar over the batches, and
    # the log is coloured.
    MultiTaskMMoEClassifier(**dict(SMALL, verbose=1, batch_size=4, max_epochs=1)).fit(
        X, Y
    )
    captured = capsys.readouterr()
    assert "/75 [" in captured.err
    assert "\x1b[" in captured.out


def test_pickle_clone_and_params(fitted, data):
    X, _ = data
    restored = pickle.loads(pickle.dumps(fitted))
    for a, b in zip(restored.predict_proba(X), fitted.predict_proba(X), strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = clone(fitted)
    assert not hasattr(fresh, "module_")
    assert fresh.get_params() == fitted.get_params()
    fresh.set_params(n_experts=5, lr=0.1)
    assert fresh.n_experts == 5 and fresh.lr == 0.1


class _CorruptingSGD(torch.optim.SGD):
    """An optimizer whose steps turn the weights into NaN (a diverging fit)."""

    def step(self, closure=None):
        loss = super().step(closure)
        with torch.no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    param.fill_(float("nan"))
        return loss


def test_diverging_training_is_an_error_and_keeps_the_fitted_model(fitted, data):
    X, Y = data
    before = _state(fitted)
    with pytest.raises(ValueError, match="diverged"):
        clone(fitted).set_params(optimizer=_CorruptingSGD).fit(X, Y)
    with pytest.raises(ValueError, match="diverged"):
        fitted.set_params(optimizer=_CorruptingSGD).fit(X, Y)
    fitted.set_params(optimizer=SMALL.get("optimizer", "adam"))
    _assert_same_state(before, _state(fitted))
    assert np.isfinite(fitted.predict_proba(X)[0]).all()
    # Continued training that diverges leaves the fitted network as it was.
    warm = pickle.loads(pickle.dumps(fitted)).set_params(warm_start=True)
    before = _state(warm)
    for call in (warm.fit, warm.partial_fit):
        warm.set_params(optimizer=_CorruptingSGD)
        with pytest.raises(ValueError, match="diverged"):
            call(X, Y)
        _assert_same_state(before, _state(warm))


def test_a_runaway_learning_rate_is_an_error_and_keeps_the_fitted_model(fitted, data):
    # With Adam, lr=1e6 takes the loss to about 1e26 without ever reaching
    # infinity: the loss's growth, not only a NaN, stops the fit.
    X, Y = data
    before, lr = _state(fitted), fitted.lr
    with pytest.raises(ValueError, match=r"diverged: the training loss grew.*lr="):
        fitted.set_params(lr=1e6).fit(X, Y)
    fitted.set_params(lr=lr)
    _assert_same_state(before, _state(fitted))
    warm = pickle.loads(pickle.dumps(fitted)).set_params(warm_start=True, lr=1e6)
    with pytest.raises(ValueError, match="diverged"):
        warm.fit(X, Y)
    _assert_same_state(before, _state(warm))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_is_reproducible(data):  # pragma: no cover - needs a GPU
    X, Y = data
    a = MultiTaskMMoEClassifier(**SMALL, device="cuda").fit(X, Y)
    b = MultiTaskMMoEClassifier(**SMALL, device="cuda").fit(X, Y)
    assert next(a.module_.parameters()).is_cuda
    np.testing.assert_array_equal(a.predict_proba(X)[0], b.predict_proba(X)[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_cuda_without_gpu_is_a_clear_error(data):
    X, Y = data
    with pytest.raises(ValueError, match="CUDA is not available"):
        MultiTaskMMoEClassifier(**SMALL, device="cuda").fit(X, Y)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def _with_nan(X):
    X = X.copy()
    X[3, 2] = np.nan
    return X


def _with_inf(X):
    X = X.copy()
    X[0, 0] = np.inf
    return X


@pytest.mark.parametrize(
    "make_bad, match",
    [
        (lambda X, Y: (_with_nan(X), Y), "NaN"),
        (lambda X, Y: (_with_inf(X), Y), "infinity"),
        (lambda X, Y: (X[:-1], Y), "inconsistent numbers of samples"),
        (lambda X, Y: (X[:0], Y[:0]), "0 sample"),
        (
            lambda X, Y: (X, np.column_stack([Y[:, 0], np.full(len(Y), -1)])),
            "no labelled rows",
        ),
        (
            lambda X, Y: (X, np.column_stack([Y[:, 0], np.ones(len(Y), int)])),
            "only one class",
        ),
        (lambda X, Y: (X, Y + X[:, :2]), "Unknown label type"),
    ],
)
def test_bad_fit_input_leaves_fitted_model_unchanged(fitted, data, make_bad, match):
    X, Y = data
    before = _state(fitted)
    X_bad, Y_bad = make_bad(X, Y)
    # NaN is a missing value, an error with numeric_missing="error".
    fitted.set_params(numeric_missing="error")
    try:
        with pytest.raises(ValueError, match=match):
            fitted.fit(X_bad, Y_bad)
    finally:
        fitted.set_params(numeric_missing="learn")
    _assert_same_state(before, _state(fitted))
    assert fitted.predict(X[:5]).shape == (5, 2)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_experts=0), "n_experts"),
        (dict(lr=-1.0), "lr"),
        (dict(max_epochs=0), "max_epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(task_weights=[1.0]), "task_weights"),
        (dict(task_weights=[1.0, -1.0]), "task_weights"),
        (dict(task_weights=[0.0, 0.0]), "task_weights"),
        (dict(task_weights={"click": 2.0}), "task_weights"),
        (dict(class_weight=[None]), "class_weight"),
        (dict(class_weight={0: 1.0, 1: 2.0}), "class_weight"),
        (dict(class_weight=[{0: 1.0, 7: 2.0}, None]), "class_weight"),
        (dict(class_weight="auto"), "class_weight"),
        (dict(gate_dropout=1.0), "gate_dropout"),
        (dict(validation_fraction=1.5), "validation_fraction"),
        (dict(expert_hidden_layer_sizes=(8, 0)), "expert_hidden_layer_sizes"),
        (dict(expert_hidden_layer_sizes=()), "expert_hidden_layer_sizes"),
        (dict(shared_gate=True, n_task_experts=1), "shared_gate"),
        (dict(optimizer="lbfgs"), "optimizer"),
        (dict(optimizer=dict), "optimizer"),
        (dict(device="tpu:x"), "device"),
    ],
)
def test_invalid_parameters(fitted, data, params, match):
    X, Y = data
    before = _state(fitted)
    with pytest.raises(ValueError, match=match):
        clone(fitted).set_params(**params).fit(X, Y)
    bad = pickle.loads(pickle.dumps(fitted)).set_params(**params)
    with pytest.raises(ValueError, match=match):
        bad.fit(X, Y)
    _assert_same_state(before, _state(fitted))


def test_predict_input_errors(fitted, data):
    X, Y = data
    before = _state(fitted)
    with pytest.raises(
        ValueError, match="X has 5 features, but MultiTaskMMoEClassifier is expecting 6"
    ):
        fitted.predict(X[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        clone(fitted).set_params(numeric_missing="error").fit(_with_nan(X), Y)
    with pytest.raises(ValueError, match="0 sample"):
        fitted.gate_weights(X[:0])
    with pytest.raises(ValueError, match=r"fitted on, \['task0', 'task1'\].*1 task"):
        fitted.score(X, Y[:, 0])
    _assert_same_state(before, _state(fitted))


def test_dataframe_column_names_are_checked(data):
    X, Y = data
    X_df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X_df, Y)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(X_df.rename(columns={"f0": "other"}))
    # Same names in another order are also an error, not a silent shuffle.
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X_df[X_df.columns[::-1]])


def test_not_fitted():
    clf = MultiTaskMMoEClassifier()
    for method in ("predict", "predict_proba", "gate_weights"):
        with pytest.raises(NotFittedError):
            getattr(clf, method)(np.zeros((2, 3)))


def test_early_stopping_needs_enough_rows():
    X = np.zeros((2, 3), dtype=np.float32)
    clf = MultiTaskMMoEClassifier(early_stopping=True, validation_fraction=0.9)
    with pytest.raises(ValueError, match="early_stopping.*of the 2 sample"):
        clf.fit(X, np.array([[0, 1], [1, 0]]))


# ---------------------------------------------------------------------------
# Fast paths of prediction and training behave like the general code
# ---------------------------------------------------------------------------


def test_float32_arrays_predict_like_other_inputs(fitted, data):
    X, _ = data
    assert X.dtype == np.float32
    for other in (X.astype(np.float64), X.tolist(), np.asfortranarray(X)):
        np.testing.assert_array_equal(fitted.predict(X), fitted.predict(other))
        for a, b in zip(
            fitted.predict_proba(X), fitted.predict_proba(other), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        fitted.gate_weights(X), fitted.gate_weights(X.astype(np.float64))
    )


@pytest.mark.parametrize("bad, match", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_float32_shortcut_raises_the_same_errors(fitted, data, bad, match):
    X, Y = data
    if bad != bad:  # NaN is a missing value, refused with numeric_missing="error"
        fitted = clone(fitted).set_params(numeric_missing="error", max_epochs=1)
        fitted.fit(X, Y)
    X = X.copy()
    X[2, 1] = bad
    messages = []
    for array in (X, X.astype(np.float64)):
        with pytest.raises(ValueError) as info:
            fitted.predict(array)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert match in messages[0]


def test_float32_shortcut_keeps_the_feature_name_warning(data):
    X, Y = data
    X_df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X_df, Y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(X)


def test_read_only_input_predicts_without_warnings(fitted, data):
    X = data[0].copy()
    X.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.predict_proba(X)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_prediction_runs_in_eval_mode(data, dropout):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL, dropout=dropout).fit(X, Y)
    # Fitting leaves the network in eval mode, so prediction never switches.
    assert not any(m.training for m in clf.module_.modules())
    expected = clf.predict_proba(X)
    clf.module_.train()
    for _ in range(2):  # Deterministic: dropout is off at prediction time.
        for a, b in zip(clf.predict_proba(X), expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert not any(m.training for m in clf.module_.modules())


def test_nullable_integer_labels_stay_integers(data):
    X, Y = data
    Y_df = pd.DataFrame({"a": pd.array(Y[:, 0], dtype="Int64")})
    Y_df.loc[::5, "a"] = pd.NA
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y_df)
    assert clf.classes_[0].dtype.kind == "i"
    assert clf.predict(X).dtype.kind == "i"


class _RecordModes(Callback):
    def initialize(self):
        self.modes = {True: set(), False: set()}
        return self

    # skorch sets the mode after on_batch_begin: record it at the batch's end.
    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        modules = list(net.module_.modules()) + [net.criterion_]
        self.modes[training].update(m.training for m in modules)


def test_training_and_validation_batches_run_in_their_modes(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(
        **SMALL, dropout=0.2, early_stopping=True, callbacks=[_RecordModes()]
    ).fit(X, Y)
    recorder = dict(clf.net_.callbacks_)["_RecordModes"]
    assert recorder.modes == {True: {True}, False: {False}}


# ---------------------------------------------------------------------------
# Refused inputs of issue 12, and classes absent from a chunk
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "class_weight",
    [[{0: 0, 1: 0}, None], [None, {0: 0.0, 1: 0.0}], [{0: 0}, {1: 0, 0: 0}]],
)
def test_all_zero_class_weights_are_refused(data, class_weight):
    X, Y = data
    with pytest.raises(ValueError, match="every class weight 0"):
        MultiTaskMMoEClassifier(**SMALL, class_weight=class_weight).fit(X, Y)
    # A zero weight on some classes only is fine.
    MultiTaskMMoEClassifier(**SMALL, class_weight=[{0: 0}, None]).fit(X, Y)


def test_single_task_class_weight_dict(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL, class_weight={0: 1.0, 1: 4.0})
    clf.fit(X, Y[:, 0])
    np.testing.assert_array_equal(clf.net_.criterion_.class_weights[0], [1.0, 4.0])
    with pytest.raises(ValueError, match="every class weight 0"):
        clf.set_params(class_weight={0: 0, 1: 0}).fit(X, Y[:, 0])


@pytest.mark.parametrize(
    "labels, marker",
    [
        (lambda Y: np.where(Y == 1, "1", np.where(Y == 0, "0", "-1")), -1),
        (lambda Y: Y, "-1"),
        (lambda Y: Y.astype(object), "-1"),
    ],
)
def test_marker_and_labels_of_other_types_are_refused(data, labels, marker):
    X, Y = data
    Y_marked = Y.copy()
    Y_marked[::4, 1] = -1
    with pytest.raises(ValueError, match="differ only in type"):
        MultiTaskMMoEClassifier(**SMALL, missing_label=marker).fit(X, labels(Y_marked))


def test_string_marker_with_string_labels(data):
    X, Y = data
    Y_str = np.where(Y == 1, "1", "0").astype("<U2")
    Y_str[::4, 1] = "-1"
    clf = MultiTaskMMoEClassifier(**SMALL, missing_label="-1").fit(X, Y_str)
    assert clf.classes_[1].tolist() == ["0", "1"]


def test_duplicate_task_names_are_refused(data):
    X, Y = data
    Y_df = pd.DataFrame(Y, columns=["click", "click"])
    with pytest.raises(ValueError, match="duplicate task names"):
        MultiTaskMMoEClassifier(**SMALL).fit(X, Y_df)


def test_multiclass_chunks_may_lack_classes(data):
    # The classes declared in the first partial_fit (or learned by fit) make
    # a task multiclass even when a chunk holds only two of them.
    X, _ = data
    y = np.arange(300) % 3
    clf = MultiTaskMMoEClassifier(**SMALL)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert clf.task_types_ == ["multiclass"]
    assert clf.classes_.tolist() == [0, 1, 2]
    assert clf.predict_proba(X).shape == (300, 3)
    clf.partial_fit(X[y > 0], y[y > 0])
    clf.partial_fit(X[y == 1], y[y == 1])
    assert clf.n_iter_ == 3
    warm = MultiTaskMMoEClassifier(**SMALL, warm_start=True).fit(X, y)
    warm.fit(X[y < 2], y[y < 2])
    assert warm.n_iter_ == 6 and warm.task_types_ == ["multiclass"]
    # Declared classes that do not hold a chunk's labels are refused.
    with pytest.raises(ValueError, match=r"labels \[2\] that are not in"):
        MultiTaskMMoEClassifier(**SMALL).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="one entry per task"):
        MultiTaskMMoEClassifier(**SMALL).partial_fit(
            X, np.column_stack([y, y]), classes=[[0, 1, 2]]
        )


def _funnel(n=300, seed=0):
    """Clicks, and purchases only after a click (missing elsewhere)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    click = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    buy = np.where(click == 1, (X[:, 1] + rng.normal(size=n) > 0).astype(float), np.nan)
    return X, pd.DataFrame({"click": click, "buy": buy})


def test_conditional_task_predicts_the_joint_probability():
    X, Y = _funnel()
    clf = MultiTaskMMoEClassifier(**SMALL, conditional_on={"buy": "click"}).fit(X, Y)
    joint, conditional = clf.predict_proba(X), clf.predict_conditional_proba(X)
    np.testing.assert_array_equal(joint[0], conditional[0])
    np.testing.assert_allclose(
        joint[1][:, 1], joint[0][:, 1] * conditional[1][:, 1], rtol=1e-5
    )
    np.testing.assert_allclose(conditional[1].sum(axis=1), 1.0)
    assert (joint[1][:, 1] <= joint[0][:, 1] + 1e-6).all()
    assert (
        clf.predict(X)[:, 1].tolist()
        == clf.classes_[1][joint[1].argmax(axis=1)].tolist()
    )
    # Without conditional_on, both methods give the same.
    plain = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    for a, b in zip(
        plain.predict_proba(X), plain.predict_conditional_proba(X), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_conditional_task_trains_on_every_row_as_the_joint():
    # A missing purchase where there was no click is a negative joint label:
    # the same fit as with the zeros written in.
    X, Y = _funnel()
    filled = Y.fillna({"buy": 0.0})
    by_name = MultiTaskMMoEClassifier(**SMALL, conditional_on={"buy": "click"})
    by_index = MultiTaskMMoEClassifier(**SMALL, conditional_on={1: 0})
    a, b = by_name.fit(X, Y), by_index.fit(X, filled)
    for pa, pb in zip(a.predict_proba(X), b.predict_proba(X), strict=True):
        np.testing.assert_array_equal(pa, pb)
    # The purchase's loss is over every row, not only the clicked ones.
    unconditional = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    assert (
        a.history_[0]["train_loss_buy"] != unconditional.history_[0]["train_loss_buy"]
    )
    # score compares predict with the joint labels.
    assert a.score(X, Y) == a.score(X, filled)


def test_conditional_chain_multiplies_along_the_chain():
    X, Y = _funnel()
    rng = np.random.default_rng(1)
    Y["cart"] = np.where(Y["click"] == 1, rng.integers(0, 2, len(Y)), -1)
    Y["buy"] = np.where(Y["cart"] == 1, Y["buy"], np.nan)
    clf = MultiTaskMMoEClassifier(
        **SMALL, conditional_on={"buy": "cart", "cart": "click"}
    ).fit(X, Y)
    joint, conditional = clf.predict_proba(X), clf.predict_conditional_proba(X)
    chain = conditional[0][:, 1] * conditional[2][:, 1] * conditional[1][:, 1]
    np.testing.assert_allclose(joint[1][:, 1], chain, rtol=1e-5)


@pytest.mark.parametrize(
    "conditional_on, message",
    [
        ({"buy": "view"}, "names the task 'view'.*the tasks are"),
        ({"buy": 2}, "names the task 2"),
        ({"buy": "buy"}, r"cycle \(buy -> buy\)"),
        ({"buy": "click", "click": "buy"}, r"cycle \(buy -> click -> buy\)"),
        ({"buy": "click", 1: 0}, "names a task twice"),
        ({"click": "buy"}, r"'click' is conditional on 'buy'.*is positive"),
    ],
)
def test_bad_conditional_on_is_refused(conditional_on, message):
    X, Y = _funnel(40)
    Y = Y.fillna({"buy": -1}).astype(int)
    Y.loc[:1, ["click", "buy"]] = [[1, 0], [1, 0]]
    with pytest.raises(ValueError, match=message):
        MultiTaskMMoEClassifier(**SMALL, conditional_on=conditional_on).fit(X, Y)


def test_conditional_task_positive_where_its_parent_is_negative_is_refused():
    X, Y = _funnel(40)
    Y.loc[[3, 7], ["click", "buy"]] = [[0, 1.0], [0, 1.0]]
    with pytest.raises(
        ValueError, match=r"positive \(1.0\) in 2 row\(s\).*rows 3, 7\)"
    ):
        MultiTaskMMoEClassifier(**SMALL, conditional_on={"buy": "click"}).fit(X, Y)
    multiclass = Y.assign(buy=np.arange(40) % 3)
    with pytest.raises(ValueError, match="'buy', a multiclass task"):
        MultiTaskMMoEClassifier(**SMALL, conditional_on={"buy": "click"}).fit(
            X, multiclass
        )


def test_conditional_task_continued_training():
    X, Y = _funnel()
    clf = MultiTaskMMoEClassifier(**SMALL, conditional_on={"buy": "click"})
    clf.partial_fit(X[:150], Y[:150], classes=[[0, 1], [0.0, 1.0]])
    clf.partial_fit(X[150:], Y[150:])
    assert clf.n_iter_ == 2
    clf.set_params(conditional_on=None)
    with pytest.raises(ValueError, match="conditional_on changed since the first"):
        clf.partial_fit(X, Y)
