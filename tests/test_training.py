"""Tests for sk_mmoe._fitting.training: the skorch plumbing."""

import signal
import sys
import threading

import numpy as np
import pytest
import torch
from skorch.callbacks import PrintLog, ProgressBar

from sk_mmoe._fitting.batches import ArrayBatches
from sk_mmoe._fitting.training import (
    OPTIMIZERS,
    HoldOut,
    StopOnNonFinite,
    _plain_print,
    _watch_interrupts,
    logging_callbacks,
    seeded,
)


def test_optimizers():
    assert OPTIMIZERS["adam"] is torch.optim.Adam
    assert set(OPTIMIZERS) == {"adam", "adamw", "sgd", "rmsprop", "adagrad"}


def _fit_one_epoch(**params):
    from sk_mmoe import MultiTaskMMoEClassifier

    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    Y = (X[:, :2] > 0).astype(int)
    return MultiTaskMMoEClassifier(max_epochs=1, random_state=0, **params).fit(X, Y)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_step_all_parameters_at_once(name):
    # Adam's and AdamW's fused kernel, the others' multi-tensor step, unless
    # the optimizer was told otherwise.
    clf = _fit_one_epoch(optimizer=name)
    groups = clf.net_.optimizer_.param_groups
    if name in ("adam", "adamw"):
        assert all(g["fused"] is True and not g["foreach"] for g in groups)
    else:
        assert all(g["foreach"] is True for g in groups)


def test_fused_adam_steps_like_the_multi_tensor_one():
    # The same training, up to float rounding, whichever kernel steps.
    class ForeachAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            super().__init__(params, foreach=True, **kwargs)

    fused = _fit_one_epoch(optimizer="adam")
    foreach = _fit_one_epoch(optimizer=ForeachAdam)
    assert not any(g["fused"] for g in foreach.net_.optimizer_.param_groups)
    for a, b in zip(
        fused.net_.module_.parameters(), foreach.net_.module_.parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_an_optimizer_choice_of_step_is_kept():
    class LoopAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            super().__init__(params, foreach=False, **kwargs)

    clf = _fit_one_epoch(optimizer=LoopAdam)
    assert all(g["foreach"] is False for g in clf.net_.optimizer_.param_groups)


@pytest.mark.parametrize(
    "n, fraction, expected", [(100, 0.1, 10), (5, 0.01, 1), (7, 0.5, 4)]
)
def test_n_validation_rows(n, fraction, expected):
    from sk_mmoe._fitting.holdout import n_validation_rows

    assert n_validation_rows(n, fraction) == expected


def test_hold_out_splits_rows_reproducibly():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20, dtype=np.float32).reshape(20, 1)
    train, valid = HoldOut(0.25, seed=3)(ArrayBatches(X, y))
    assert len(train) == 15 and len(valid) == 5
    rows = np.concatenate([train.rows, valid.rows])
    assert sorted(rows) == list(range(20))
    again = HoldOut(0.25, seed=3)(ArrayBatches(X, y))
    np.testing.assert_array_equal(again[1].rows, valid.rows)
    other = HoldOut(0.25, seed=4)(ArrayBatches(X, y))
    assert not np.array_equal(other[1].rows, valid.rows)


def test_seeded_restores_the_global_rng():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with seeded(123, torch.device("cpu")):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with seeded(123, torch.device("cpu")):
        assert torch.equal(torch.rand(3), inside)


def test_logging_callbacks_when_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    callbacks = dict(logging_callbacks(n_batches=1000))
    assert set(callbacks) == {"print_log"}
    assert isinstance(callbacks["print_log"], PrintLog)
    assert callbacks["print_log"].sink is _plain_print


def test_logging_callbacks_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    callbacks = dict(logging_callbacks(n_batches=1000))
    assert isinstance(callbacks["progress_bar"], ProgressBar)
    assert callbacks["print_log"].sink is print
    # Short epochs: no bar.
    assert set(dict(logging_callbacks(n_batches=3))) == {"print_log"}


def test_plain_print_strips_colour_codes(capsys):
    _plain_print("\x1b[36mtrain_loss\x1b[0m  \x1b[1;32m0.5\x1b[0m")
    assert capsys.readouterr().out == "train_loss  0.5\n"


def test_watch_interrupts_tells_sigint_from_raised_interrupts():
    previous = signal.getsignal(signal.SIGINT)
    with _watch_interrupts() as interrupted:
        assert not interrupted()
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        assert not interrupted()  # raised by code: not a user interrupt
    with pytest.raises(KeyboardInterrupt), _watch_interrupts() as interrupted:
        try:
            signal.raise_signal(signal.SIGINT)
        finally:
            assert interrupted()
    assert signal.getsignal(signal.SIGINT) is previous


def test_watch_interrupts_calls_a_custom_handler():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with _watch_interrupts() as interrupted:
            signal.raise_signal(signal.SIGINT)
            assert interrupted()
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_watch_interrupts_in_a_thread():
    # Signals are handled by the main thread: elsewhere nothing is installed.
    results = []

    def run():
        with _watch_interrupts() as interrupted:
            results.append(interrupted())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert results == [False]


def test_fit_in_a_thread_stops_on_a_raised_interrupt():
    from skorch.callbacks import Callback

    from sk_mmoe import MultiTaskMMoEClassifier

    class Stop(Callback):
        def on_epoch_end(self, net, **kwargs):
            raise KeyboardInterrupt

    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    Y = (X[:, :2] > 0).astype(int)
    results = []

    def run():
        clf = MultiTaskMMoEClassifier(max_epochs=5, callbacks=[Stop()]).fit(X, Y)
        results.append(clf.n_iter_)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert results == [1]


class _FakeNet:
    def __init__(self, loss, params):
        self.history = [{"train_loss": loss}]
        self.module_ = torch.nn.Module()
        self.criterion_ = torch.nn.Module()
        for k, p in enumerate(params):
            self.module_.register_parameter(f"p{k}", torch.nn.Parameter(p))


class _History(list):
    def __getitem__(self, key):
        if isinstance(key, tuple):
            return super().__getitem__(key[0])[key[1]]
        return super().__getitem__(key)


@pytest.mark.parametrize(
    "loss, param, match",
    [
        (float("nan"), torch.zeros(2), "training loss became nan"),
        (float("inf"), torch.zeros(2), "training loss became inf"),
        (1.0, torch.tensor([0.0, float("nan")]), "weights became"),
    ],
)
def test_stop_on_non_finite(loss, param, match):
    from sk_mmoe._fitting.training import NonFiniteLoss

    net = _FakeNet(loss, [param])
    net.history = _History(net.history)
    with pytest.raises(NonFiniteLoss, match=match):
        StopOnNonFinite().on_epoch_end(net)
    net = _FakeNet(1.0, [torch.zeros(2)])
    net.history = _History(net.history)
    StopOnNonFinite().on_epoch_end(net)


@pytest.mark.parametrize(
    "first, loss, diverged",
    [
        (0.7, 0.7e4 + 1, False),
        (0.7, 1e4 + 1, True),
        (3.0, 2.9e4, False),
        (3.0, 1e26, True),
    ],
)
def test_stop_on_non_finite_catches_a_loss_grown_by_orders_of_magnitude(
    first, loss, diverged
):
    from sk_mmoe._fitting.training import NonFiniteLoss

    net = _FakeNet(loss, [torch.zeros(2)])
    net.history = _History(net.history)
    callback = StopOnNonFinite()
    callback.on_train_begin(net)
    callback.on_batch_end(net, training=False, loss=torch.tensor(1e-6))
    callback.on_batch_end(net, training=True, loss=torch.tensor(first))
    callback.on_batch_end(net, training=True, loss=torch.tensor(1e-6))
    if diverged:
        with pytest.raises(NonFiniteLoss, match="training loss grew from"):
            callback.on_epoch_end(net)
    else:
        callback.on_epoch_end(net)
