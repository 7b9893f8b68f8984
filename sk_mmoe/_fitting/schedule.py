"""The learning-rate schedule of a fit: linear warm-up, then cosine decay.

A fit of ``max_epochs`` epochs of ``n_batches`` steps each raises the rate
linearly from ``lr / n_warmup`` to ``lr`` over its first ``n_warmup`` steps
(a tenth of the steps), then lowers it along a half cosine to zero at its
last step (Loshchilov and Hutter, 2017). Large steps early move the weights
quickly; the small steps at the end settle them, so a fixed budget of
epochs reaches the loss that a constant rate reaches in several times as
many epochs.
"""

from __future__ import annotations

import math
from typing import Any

from skorch.callbacks import Callback

__all__ = ["WarmupCosine", "warmup_cosine_factor"]

# The warm-up's share of a fit's steps.
_WARMUP_FRACTION = 0.1


def warmup_cosine_factor(step: int, n_steps: int) -> float:
    """The rate at (0-based) ``step`` of ``n_steps``, as a fraction of ``lr``."""
    n_warmup = max(1, math.ceil(_WARMUP_FRACTION * n_steps))
    if step < n_warmup:
        return (step + 1) / n_warmup
    n_decay = max(1, n_steps - n_warmup)
    progress = min(1.0, (step - n_warmup + 1) / n_decay)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine(Callback):
    """Set every optimizer's rate before each training step of a fit.

    ``n_steps`` is the fit's number of steps (``max_epochs`` times the
    batches per epoch). The rates the fit started with are restored when it
    ends, so that a later ``partial_fit`` trains at ``lr``.
    """

    def __init__(self, n_steps: int) -> None:
        self.n_steps = n_steps

    def initialize(self) -> WarmupCosine:
        self.step_ = 0
        self.base_lrs_: list[list[float]] = []
        return self

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.step_ = 0
        self.base_lrs_ = [
            [group["lr"] for group in optimizer.param_groups]
            for optimizer in _optimizers(net)
        ]

    def on_batch_begin(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if not training:
            return
        factor = warmup_cosine_factor(self.step_, self.n_steps)
        self._set_rates(net, factor)
        self.step_ += 1

    def on_train_end(self, net: Any, **kwargs: Any) -> None:
        self._set_rates(net, 1.0)

    def _set_rates(self, net: Any, factor: float) -> None:
        for optimizer, base in zip(_optimizers(net), self.base_lrs_, strict=True):
            for group, lr in zip(optimizer.param_groups, base, strict=True):
                group["lr"] = lr * factor


def _optimizers(net: Any) -> list[Any]:
    """The net's optimizer and, with a sparse projection, its sparse one."""
    sparse = getattr(net, "optimizer_sparse_", None)
    return [net.optimizer_] + ([] if sparse is None else [sparse])
