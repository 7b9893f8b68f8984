"""Tests for the thread control (sk_mmoe._fitting.threads and ``n_threads``)."""

import os

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sk_mmoe import MultiTaskMMoEClassifier, MultiTaskMMoERegressor
from sk_mmoe._fitting import threads as _threads

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(4,),
    tower_hidden_layer_sizes=(),
    max_epochs=1,
    batch_size=32,
    random_state=0,
)


class RecordThreads(Callback):
    """Record torch's thread count at every batch."""

    def initialize(self):
        self.counts_ = []
        return self

    def on_batch_begin(self, net, **kwargs):
        self.counts_.append(torch.get_num_threads())


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    return X, np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)


@pytest.fixture
def two_threads():
    """Run the test with two torch threads (the suite runs with one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def _threads_in_fit(estimator, X, Y):
    recorder = RecordThreads()
    estimator.set_params(callbacks=[("threads", recorder)]).fit(X, Y)
    return set(estimator.net_.callbacks_[-1][1].counts_)


def test_n_threads_is_used_during_fit_and_restored(data, two_threads):
    X, Y = data
    assert _threads_in_fit(MultiTaskMMoEClassifier(**SMALL, n_threads=1), X, Y) == {1}
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("idle, expected", [(1, {1}), (0, {1}), (8, {2}), (None, {2})])
def test_auto_threads_follow_idle_cores(data, two_threads, monkeypatch, idle, expected):
    X, Y = data
    monkeypatch.setattr(_threads, "idle_cores", lambda: idle)
    assert _threads_in_fit(MultiTaskMMoEClassifier(**SMALL), X, Y) == expected
    assert torch.get_num_threads() == 2


def test_auto_keeps_a_single_thread_without_sampling(data, monkeypatch):
    X, Y = data
    torch.set_num_threads(1)

    def fail():
        raise AssertionError("the load is sampled only when threads can be saved")

    monkeypatch.setattr(_threads, "idle_cores", fail)
    assert _threads_in_fit(MultiTaskMMoERegressor(**SMALL), X, Y.astype(float)) == {1}


def test_threads_restored_after_a_failed_fit(data, two_threads):
    X, Y = data
    with pytest.raises(ValueError):
        MultiTaskMMoEClassifier(**SMALL, n_threads=1).fit(X, Y[:10])
    assert torch.get_num_threads() == 2


def test_large_predictions_use_n_threads(data, two_threads, monkeypatch):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL, n_threads=1).fit(X, Y)
    seen = []
    forward = clf.module_.forward
    monkeypatch.setattr(
        clf.module_,
        "forward",
        lambda *a, **k: seen.append(torch.get_num_threads()) or forward(*a, **k),
    )
    clf.predict(np.repeat(X, 300, axis=0))
    assert set(seen) == {1} and torch.get_num_threads() == 2


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "2"])
def test_invalid_n_threads(data, value):
    X, Y = data
    with pytest.raises(ValueError, match="n_threads"):
        MultiTaskMMoEClassifier(**SMALL, n_threads=value).fit(X, Y)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")
def test_idle_cores_counts_allowed_cores():
    idle = _threads.idle_cores(0.01)
    assert 0 <= idle <= len(os.sched_getaffinity(0))


def test_resolve_threads():
    assert _threads.resolve_threads(3) == 3
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert _threads.resolve_threads(None) == 1
    finally:
        torch.set_num_threads(previous)
