"""Tests for the fitted-state contract: one object read by persistence,
export and the metrics; restoring a net is the estimator's own method."""

import dataclasses
import io

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier, load_model, save_model
from sk_mmoe._fitted import FittedState, NetState
from sk_mmoe.datasets import make_task_correlation
from sk_mmoe.metrics import multitask_scoring

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    max_epochs=2,
    random_state=0,
)


@pytest.fixture(scope="module")
def fitted():
    X, Y = make_task_correlation(200, 0.5, n_features=5, random_state=0)
    return MultiTaskMMoEClassifier(**SMALL).fit(X, Y), X, Y


def test_fitted_state_describes_the_fit(fitted):
    clf, X, _ = fitted
    state = clf._fitted_state()
    assert isinstance(state, FittedState)
    assert state.net is clf.net_ and state.module is clf.module_
    assert [task.name for task in state.tasks] == clf.task_names_
    assert state.data.n_features_in == clf.n_features_in_ == X.shape[1]
    assert state.data.feature_names_in is None and state.data.encoder is None
    assert not state.data.single_task
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.data.single_task = True  # type: ignore[misc]


def test_fitted_state_of_an_unfitted_estimator_is_refused():
    with pytest.raises(NotFittedError):
        MultiTaskMMoEClassifier()._fitted_state()


def test_refit_on_an_array_forgets_the_feature_names():
    X, Y = make_task_correlation(200, 0.5, n_features=5, random_state=0)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=list("abcde"))
    model = MultiTaskMMoE(**SMALL).fit(frame, Y)
    assert model._fitted_state().data.feature_names_in.tolist() == list("abcde")
    model.fit(X, Y)
    assert not hasattr(model, "feature_names_in_")
    assert model._fitted_state().data.feature_names_in is None


def test_save_model_reads_only_the_fitted_state(fitted, monkeypatch):
    clf, X, Y = fitted
    expected = clf.predict_proba(X)
    scores = multitask_scoring(["roc_auc"])(clf, X, Y)
    state = clf._fitted_state()
    model = clone(clf)  # no fitted attribute at all besides the state
    monkeypatch.setattr(model, "_fitted_state", lambda: state)
    buffer = io.BytesIO()
    save_model(model, buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    for got, want in zip(loaded.predict_proba(X), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert multitask_scoring(["roc_auc"])(loaded, X, Y) == scores


def test_restore_rebuilds_the_net_from_its_state(fitted):
    clf, X, _ = fitted
    state = clf._fitted_state()
    restored = clone(clf)
    restored._restore(NetState.of(state.net), state.data, torch.device("cpu"))
    for got, want in zip(restored.predict_proba(X), clf.predict_proba(X), strict=True):
        np.testing.assert_array_equal(got, want)
    assert restored.n_iter_ == clf.n_iter_
    assert restored.history_ == clf.history_


def test_restore_refuses_a_state_of_another_network(fitted):
    clf, _, _ = fitted
    state = clf._fitted_state()
    saved = NetState.of(state.net)
    wider = clone(clf).set_params(n_experts=3)
    with pytest.raises(ValueError, match="weights in the file x do not match"):
        wider._restore(saved, state.data, torch.device("cpu"), source="the file x")
    assert not hasattr(wider, "net_")
