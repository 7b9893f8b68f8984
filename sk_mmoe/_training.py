"""The skorch training plumbing behind the estimators.

:class:`MultiTaskNet` is a skorch ``NeuralNet`` that records each task's
loss (and learned task weights) per epoch and lets interrupts through; the
rest are the callbacks and helpers that a fit assembles around it.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import (
    Callback,
    EpochTimer,
    PassthroughScoring,
    PrintLog,
    ProgressBar,
)

from ._batches import ArrayBatches

__all__ = [
    "OPTIMIZERS",
    "HoldOut",
    "MultiTaskNet",
    "NonFiniteLoss",
    "StopOnNonFinite",
    "logging_callbacks",
    "n_validation_rows",
    "seeded",
    "silent",
]

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

# Epochs with at least this many batches get a progress bar when verbose.
_PROGRESS_BAR_MIN_BATCHES = 50

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def n_validation_rows(n_samples: int, fraction: float) -> int:
    """Rows held out for early stopping."""
    return max(1, int(round(fraction * n_samples)))


class HoldOut:
    """skorch ``train_split``: a random validation fraction of the rows."""

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset: ArrayBatches, y: Any = None, **fit_params: Any):
        n_valid = n_validation_rows(len(dataset), self.fraction)
        order = np.random.default_rng(self.seed).permutation(len(dataset))
        return dataset.subset(order[n_valid:]), dataset.subset(order[:n_valid])


class MultiTaskNet(NeuralNet):
    """skorch ``NeuralNet`` that also records each task's loss per epoch.

    The per-task sums stay on the device during an epoch and are read once
    at its end, so they add no host synchronisation per batch. A learned
    loss weighting's task weights are recorded too. Unlike skorch's
    ``partial_fit``, an interrupt (``KeyboardInterrupt``) is not swallowed: it
    propagates, and the estimator discards the half-trained copy.
    """

    def __init__(
        self,
        *args: Any,
        task_names: Sequence[str] = (),
        module_params: dict | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.task_names = list(task_names)
        # The architecture the module was built with, to refuse continuing
        # training (warm_start, partial_fit) with another one.
        self.module_params = dict(module_params or {})
        self._task_loss_sums = {}

    @property
    def _default_callbacks(self) -> list[tuple[str, Callback]]:
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]

    def partial_fit(self, X: Any, y: Any = None, classes: Any = None, **fit_params):
        if not self.initialized_:
            self.initialize()
        self.notify("on_train_begin", X=X, y=y)
        with _watch_interrupts() as interrupted:
            try:
                self.fit_loop(X, y, **fit_params)
            except KeyboardInterrupt:
                # skorch callbacks (EarlyStopping) stop training by raising
                # KeyboardInterrupt; a real interrupt (Ctrl-C) propagates.
                if interrupted():
                    raise
        self.notify("on_train_end", X=X, y=y)
        return self

    def _set_training(self, training: bool = True) -> None:
        # skorch calls this before every batch, and switching modes walks and
        # sets every submodule (a few % of a small batch's step): only switch
        # when some module is in the other mode.
        modules = [getattr(self, name + "_") for name in self._modules + self._criteria]
        if any(
            sub.training != training
            for module in modules
            if isinstance(module, torch.nn.Module)
            for sub in module.modules()
        ):
            super()._set_training(training)

    def on_epoch_begin(self, net: NeuralNet, **kwargs: Any) -> None:
        super().on_epoch_begin(net, **kwargs)
        self._task_loss_sums = {}

    def get_loss(
        self,
        y_pred: torch.Tensor,
        y_true: Any,
        X: Any = None,
        training: bool = False,
    ) -> torch.Tensor:
        target, weight = y_true if isinstance(y_true, tuple) else (y_true, None)
        target = target.to(y_pred.device)
        if weight is not None:
            weight = weight.to(y_pred.device)
        losses, counts = self.criterion_.task_losses(y_pred, target, weight)
        sums = self._task_loss_sums.get(training)
        batch_sums = torch.stack([losses.detach() * counts, counts.to(losses.dtype)])
        self._task_loss_sums[training] = (
            batch_sums if sums is None else sums + batch_sums
        )
        return self.criterion_.weighting(losses)

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        super().on_epoch_end(net, **kwargs)
        for training, sums in self._task_loss_sums.items():
            prefix = "train" if training else "valid"
            total, count = sums.cpu().numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.where(count > 0, total / count, np.nan)
            for name, value in zip(self.task_names, means, strict=True):
                self.history.record(f"{prefix}_loss_{name}", float(value))
        weighting = self.criterion_.weighting
        if any(True for _ in weighting.parameters()):
            weights = weighting.weights().detach().cpu().numpy()
            for name, value in zip(self.task_names, weights, strict=True):
                self.history.record(f"task_weight_{name}", float(value))


@contextlib.contextmanager
def _watch_interrupts() -> Iterator[Any]:
    """Tell a real interrupt (SIGINT) from a ``KeyboardInterrupt`` raised by code.

    Yields a function that says whether SIGINT arrived in the block. Signals
    are handled by the main thread only, so elsewhere a KeyboardInterrupt
    can only have been raised by code (a callback asking to stop).
    """
    received = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    if callable(previous):
        signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(received)
    finally:
        if callable(previous):
            signal.signal(signal.SIGINT, previous)


class NonFiniteLoss(Exception):
    """Training produced a non-finite loss or weight."""


class StopOnNonFinite(Callback):
    """Stop training as soon as an epoch ends with a non-finite loss or weight.

    The loss of an epoch is computed before its last update, so the weights
    are checked too.
    """

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        loss = net.history[-1, "train_loss"]
        if not np.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss}")
        params = [*net.module_.parameters(), *net.criterion_.parameters()]
        finite = torch.stack([p.isfinite().all() for p in params])
        if not bool(finite.all()):
            raise NonFiniteLoss("the weights became infinite or NaN")


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch within the block and restore the caller's RNG state after.

    Initialisation, dropout and gate dropout then depend on
    ``random_state`` only, and fitting leaves the global RNG untouched.
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def silent(*args: Any, **kwargs: Any) -> None:
    """A sink for skorch callbacks' messages."""


def _plain_print(text: str) -> None:
    """Print without colour codes: for logs that are not a terminal."""
    print(_ANSI_ESCAPE.sub("", text))


def logging_callbacks(n_batches: int) -> list[tuple[str, Callback]]:
    """The callbacks that ``verbose`` adds: a log line per epoch, and a bar.

    On a terminal, long epochs get a progress bar and the log is coloured;
    when the output goes to a file or a pipe, each epoch is one plain line
    (no carriage-return redraws, no colour codes).
    """
    interactive = getattr(sys.stdout, "isatty", lambda: False)()
    callbacks = []
    if interactive and n_batches >= _PROGRESS_BAR_MIN_BATCHES:
        callbacks.append(("progress_bar", ProgressBar(batches_per_epoch=n_batches)))
    sink = print if interactive else _plain_print
    callbacks.append(("print_log", PrintLog(keys_ignored=["event_lr"], sink=sink)))
    return callbacks
