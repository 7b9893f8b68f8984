"""The skorch training plumbing behind the estimators.

:class:`MultiTaskNet` is a skorch ``NeuralNet`` that records each task's
loss (and learned task weights) per epoch and lets interrupts through; the
rest are the callbacks and helpers that a fit assembles around it.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

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
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from ..nn._optim import LazyAdam
from . import distributed as _distributed
from .batches import ArrayBatches, BatchIterator, ShardTargets
from .holdout import validation_split

if TYPE_CHECKING:
    from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DIVERGENCE_FACTOR",
    "OPTIMIZERS",
    "HoldOut",
    "MultiTaskNet",
    "NonFiniteLoss",
    "StopOnNonFinite",
    "logging_callbacks",
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

#: An epoch whose training loss is this many times the loss before training
#: (or 1, if larger) stops the fit as diverged (see StopOnNonFinite).
DIVERGENCE_FACTOR = 1e4

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class HoldOut:
    """skorch ``train_split``: the validation rows of
    :func:`sk_mmoe._fitting.holdout.validation_split`, chosen per task among
    the labelled rows."""

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset: ArrayBatches, y: Any = None, **fit_params: Any):
        assert dataset.y is not None  # the training data has targets
        targets = dataset.y if dataset.rows is None else dataset.y[dataset.rows]
        train, valid = validation_split(targets, self.fraction, self.seed)
        return dataset.subset(train), dataset.subset(valid)


class MultiTaskNet(NeuralNet):
    """skorch ``NeuralNet`` that also records each task's loss per epoch.

    The per-task sums stay on the device during an epoch and are read once
    at its end, so they add no host synchronisation per batch. A learned
    loss weighting's task weights are recorded too. Unlike skorch's
    ``partial_fit``, an interrupt (``KeyboardInterrupt``) is not swallowed: it
    propagates, and the estimator discards the half-trained copy.

    When ``torch.distributed`` is initialised with several processes (see
    :mod:`sk_mmoe._fitting.distributed`), ``partial_fit`` trains data-parallel: the
    training forward passes go through a ``DistributedDataParallel`` wrapper
    that exists only during the call (``module_`` stays the plain module,
    for callbacks, prediction and persistence), each rank iterates over its
    slice of every global batch, the learned loss weighting's gradients are
    averaged over ranks too, and the epoch's losses are summed over ranks
    before the history records them.
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
        self._task_loss_sums: dict[bool, torch.Tensor] = {}
        self._world: _distributed.World | None = None
        self._ddp_module: list[DistributedDataParallel] | None = None

    @property
    def _default_callbacks(self) -> list[tuple[str, Callback]]:
        """skorch's defaults without its ``PrintLog``.

        The estimators add their own ``print_log`` when verbose (see
        :func:`logging_callbacks`); skorch's constructor only takes the
        callbacks added to its defaults, so leaving one out of the defaults
        is done here.
        """
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]

    def partial_fit(self, X: Any, y: Any = None, classes: Any = None, **fit_params):
        """skorch's ``partial_fit``, data-parallel when a process group is
        set, and letting a real interrupt through.

        skorch's catches every ``KeyboardInterrupt`` (its callbacks stop
        training by raising one) and offers no hook to tell a user's Ctrl-C
        apart, so its few lines are written here.
        """
        if not self.initialized_:
            self.initialize()
        world = _distributed.current_world()
        if world is not None:
            self._start_data_parallel(X, world)
        self.module_.record_gates(self.criterion_.gate_balance > 0)
        try:
            self.notify("on_train_begin", X=X, y=y)
            with _quiet_bucket_views(world), _watch_interrupts() as interrupted:
                try:
                    self.fit_loop(X, y, **fit_params)
                except KeyboardInterrupt:
                    # skorch callbacks (EarlyStopping) stop training by raising
                    # KeyboardInterrupt; a real interrupt (Ctrl-C) propagates.
                    if interrupted():
                        raise
            self.notify("on_train_end", X=X, y=y)
        finally:
            self.module_.record_gates(False)
            self._stop_data_parallel()
        return self

    def _stop_data_parallel(self) -> None:
        """Drop this call's DDP wrapper: module_ was never replaced.

        The wrapper's reducer hooks itself on the parameters' gradients,
        which would keep it (and its reference to the process group) alive
        as long as the fitted module, past the user's
        ``destroy_process_group``: the hooks are removed and it is collected.
        """
        wrapper = self._ddp_module[0] if self._ddp_module else None
        self._world = None
        self._ddp_module = None
        if wrapper is None:
            return
        remove_hooks = getattr(wrapper, "_remove_autograd_hooks", None)
        if remove_hooks is not None:
            remove_hooks()
        del wrapper
        gc.collect()

    def _start_data_parallel(self, dataset: Any, world: _distributed.World) -> None:
        """Check that the ranks agree, then wrap the module for this call."""
        from torch.nn.parallel import DistributedDataParallel

        _distributed.check_same_setup(dataset, self, world)
        if getattr(self.module_, "projection", None) is not None:
            # DistributedDataParallel's reducer cannot average the sparse
            # gradient of the projection's weight (only nn.Embedding's).
            raise ValueError(
                "Data-parallel training does not support sparse inputs wide "
                "enough for the sparse projection (scipy.sparse X with "
                f"{self.module_.projection.in_features} columns); fit them in "
                "a single process."
            )
        device = next(self.module_.parameters()).device
        # The wrapper broadcasts rank 0's weights, so all ranks start equal.
        # The network's buffers are constants: no broadcast before each step
        # (the option is named forward_sync_buffers from torch 2.13 on).
        options: dict[str, Any] = {
            "device_ids": [device.index] if device.type == "cuda" else None
        }
        if (
            "forward_sync_buffers"
            in inspect.signature(DistributedDataParallel).parameters
        ):
            options["forward_sync_buffers"] = False
        else:
            options["broadcast_buffers"] = False
        # Held in a list: skorch refuses modules set outside initialize_*.
        self._ddp_module = [DistributedDataParallel(self.module_, **options)]
        self._world = world
        if world.rank > 0:
            # Different dropout masks on every rank (all ranks were seeded
            # alike); rank 0 keeps the single-process stream.
            torch.manual_seed((torch.initial_seed() + 7919 * world.rank) % 2**63)

    def _sparse_params(self) -> list[torch.nn.Parameter]:
        """Parameters with sparse gradients (a wide sparse input's projection)."""
        projection = getattr(self.module_, "projection", None)
        return [] if projection is None else [projection.weight]

    def get_all_learnable_params(self):
        sparse = set(self._sparse_params())
        for name, param in super().get_all_learnable_params():
            if param not in sparse:
                yield name, param

    def initialize_optimizer(self, *args: Any, **kwargs: Any) -> MultiTaskNet:
        super().initialize_optimizer(*args, **kwargs)
        for group in self.optimizer_.param_groups:
            # torch picks its per-parameter loop on CPU. Where the optimizer
            # was not told otherwise, its fused kernel (one pass over each
            # parameter, in about a third of the multi-tensor step's time)
            # or else its multi-tensor step.
            if group.get("foreach", False) is not None or group.get("fused"):
                continue
            if isinstance(self.optimizer_, _FUSED_OPTIMIZERS) and _fusable(group):
                group["fused"] = True
            else:
                group["foreach"] = True
        sparse = self._sparse_params()
        if sparse:
            # Adam does not take sparse gradients; lazy Adam updates only the
            # rows a batch touched, as SparseAdam does, in about half its
            # time. No weight decay: it would have to shrink every row.
            self.optimizer_sparse_ = LazyAdam(sparse, lr=self.lr)
        return self

    def train_step(self, batch: Any, **fit_params: Any) -> dict:
        """One step; with a sparse optimizer too, one forward and backward
        for both optimizers. skorch's closure, its only hook for several
        optimizers, would run the forward once per optimizer, so this reads
        its private optimizer list and step helpers."""
        if len(self._optimizers) == 1:
            return super().train_step(batch, **fit_params)
        # Several optimizers: one forward and backward, then every step
        # (skorch's closure would be evaluated once per optimizer).
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        self.notify(
            "on_grad_computed",
            named_parameters=list(self.get_all_learnable_params()),
            batch=batch,
        )
        self._step_optimizer(None)
        return step

    def get_iterator(self, dataset: Any, training: bool = False) -> Any:
        iterator = super().get_iterator(dataset, training=training)
        if self._world is not None and isinstance(iterator, BatchIterator):
            iterator.rank, iterator.world_size = self._world.rank, self._world.size
        return iterator

    def infer(self, x: Any, **fit_params: Any) -> torch.Tensor:
        if self._ddp_module is not None and torch.is_grad_enabled():
            # Training forward: through DDP, which all-reduces the gradients.
            return self._ddp_module[0](to_tensor(x, device=self.device), **fit_params)
        return super().infer(x, **fit_params)

    def _average_criterion_grads(self) -> None:
        """Average the learned weighting's gradients over ranks (like DDP's)."""
        import torch.distributed as dist

        params = [p for p in self.criterion_.parameters() if p.requires_grad]
        if not params:
            return
        grads = [
            torch.zeros_like(p) if p.grad is None else p.grad.detach() for p in params
        ]
        flat = torch.cat([g.reshape(-1) for g in grads])
        world = self._world
        assert world is not None  # called in data-parallel training only
        flat = flat.to(world.collective_device)
        dist.all_reduce(flat)
        flat = flat.to(params[0].device) / world.size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def _set_training(self, training: bool = True) -> None:
        """Switch modes only when some module is in the other mode.

        skorch calls this before every batch, and switching modes walks and
        sets every submodule (a few % of a small batch's step); no public
        hook runs in its place.
        """
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
        return self._loss_terms(y_pred, y_true, training).total

    def _loss_terms(self, y_pred: torch.Tensor, y_true: Any, training: bool):
        """The criterion's terms of a batch, whose task losses the epoch's
        history records."""
        global_counts = None
        if isinstance(y_true, ShardTargets):
            target, weight, global_counts = y_true
        elif isinstance(y_true, tuple):
            target, weight = y_true
        else:
            target, weight = y_true, None
        target = target.to(y_pred.device)
        if weight is not None:
            weight = weight.to(y_pred.device)
        terms = self.criterion_.terms(
            y_pred,
            target,
            weight,
            gate_weights=self.module_.pop_gate_weights() if training else (),
            global_counts=global_counts,
            n_ranks=self._world.size if self._world is not None else 1,
        )
        sums = self._task_loss_sums.get(training)
        batch_sums = torch.stack(
            [terms.means.detach() * terms.counts, terms.counts.to(terms.means.dtype)]
        )
        self._task_loss_sums[training] = (
            batch_sums if sums is None else sums + batch_sums
        )
        return terms

    def train_step_single(self, batch: Any, **fit_params: Any) -> dict:
        """skorch's step, with the backward pass through the criterion (its
        weighting's hook may read the shared parameters' task gradients)."""
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        terms = self._loss_terms(y_pred, yi, training=True)
        weighting = self.criterion_.weighting
        if self._world is not None and weighting.reads_task_gradients:
            raise ValueError(
                f"task_weights={type(weighting).__name__} balances the task "
                "gradients of one process: it is not supported in data-"
                "parallel training."
            )
        self.criterion_.backward(terms, self.module_.shared_parameters())
        if self._world is not None:
            self._average_criterion_grads()
        return {"loss": terms.total, "y_pred": y_pred}

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        super().on_epoch_end(net, **kwargs)
        if self._world is not None:
            self._sum_epoch_over_ranks()
        train_means = None
        for training, sums in self._task_loss_sums.items():
            prefix = "train" if training else "valid"
            total, count = sums.cpu().numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.where(count > 0, total / count, np.nan)
            for name, value in zip(self.task_names, means, strict=True):
                self.history.record(f"{prefix}_loss_{name}", float(value))
            if training:
                train_means = means
        weighting = self.criterion_.weighting
        weighting.epoch_end(train_means)
        if any(True for _ in weighting.parameters()):
            weights = weighting.weights().detach().cpu().numpy()
            for name, value in zip(self.task_names, weights, strict=True):
                self.history.record(f"task_weight_{name}", float(value))

    def _sum_epoch_over_ranks(self) -> None:
        """Make the epoch's records those of the global batches, on every rank.

        Runs before the scoring callbacks read the batches: each batch's loss
        becomes the mean of the ranks' losses (the global batch's loss, for a
        weighting linear in the task losses, as the built-in ones are) and
        its size the global batch size; the per-task sums are summed. One
        collective per epoch; the result is bit-identical on every rank.
        """
        batches = self.history[-1]["batches"]
        keys = [(b, p) for b in batches for p in ("train", "valid") if f"{p}_loss" in b]
        parts = [
            torch.tensor(
                [[b[f"{p}_loss"], b[f"{p}_batch_size"]] for b, p in keys],
                dtype=torch.float64,
            ).reshape(-1)
        ]
        flags = sorted(self._task_loss_sums, reverse=True)
        parts += [self._task_loss_sums[f].double().cpu().reshape(-1) for f in flags]
        world = self._world
        assert world is not None  # called in data-parallel training only
        total = _distributed.sum_over_ranks(torch.cat(parts), world)
        records = total[: 2 * len(keys)].reshape(-1, 2).tolist()
        for (batch, prefix), (loss, size) in zip(keys, records, strict=True):
            batch[f"{prefix}_loss"] = loss / world.size
            batch[f"{prefix}_batch_size"] = int(round(size))
        offset = 2 * len(keys)
        for flag in flags:
            sums = self._task_loss_sums[flag]
            n = sums.numel()
            self._task_loss_sums[flag] = (
                total[offset : offset + n].reshape(sums.shape).to(sums.dtype)
            )
            offset += n


@contextlib.contextmanager
def _quiet_bucket_views(world: Any) -> Iterator[None]:
    """Silence DDP's warning about the gradient strides of the biases.

    The batched layers' biases have a broadcast dimension of size 1, whose
    gradient strides differ from the parameter's; DDP then copies those few
    values into its bucket, which is harmless.
    """
    if world is None:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Grad strides do not match")
        yield


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


# Optimizers whose fused kernel runs on CPU too (torch 2.4 and later).
_FUSED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)
_FUSED_DEVICES = ("cpu", "cuda")


def _fusable(group: dict) -> bool:
    """Whether a param group of an Adam or AdamW optimizer can step fused:
    the optimizer offers it, nothing rules it out and every parameter is
    floating point on a device with the kernel."""
    return (
        group.get("fused", False) is None
        and not group.get("differentiable", False)
        and not group.get("capturable", False)
        and all(
            torch.is_floating_point(p) and p.device.type in _FUSED_DEVICES
            for p in group["params"]
        )
    )


class NonFiniteLoss(Exception):
    """Training produced a non-finite loss or weight."""


class StopOnNonFinite(Callback):
    """Stop training as soon as an epoch ends with a non-finite loss or
    weight, or with a loss that grew by orders of magnitude.

    The loss of an epoch is computed before its last update, so the weights
    are checked too. The training loss of the call's first batch (computed
    before any update) is the reference: an epoch whose mean training loss
    exceeds :data:`DIVERGENCE_FACTOR` times it (or times 1, for a first loss
    below 1: the tasks' losses are of order 1 for a constant prediction, the
    targets of a regression task being standardised) has diverged, as a
    learning rate far too large makes it do without ever reaching infinity.
    """

    first_loss_: float | None

    def on_train_begin(self, net: NeuralNet, **kwargs: Any) -> None:
        self.first_loss_ = None

    def on_batch_end(
        self, net: NeuralNet, batch: Any = None, training: bool = False, **kwargs
    ) -> None:
        if training and getattr(self, "first_loss_", None) is None:
            loss = kwargs.get("loss")
            if loss is not None:
                self.first_loss_ = float(loss.detach())

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        loss = net.history[-1, "train_loss"]
        if not np.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss}")
        params = [*net.module_.parameters(), *net.criterion_.parameters()]
        finite = torch.stack([p.isfinite().all() for p in params])
        if not bool(finite.all()):
            raise NonFiniteLoss("the weights became infinite or NaN")
        first = getattr(self, "first_loss_", None)
        growing = first is not None and np.isfinite(first)
        if growing and loss > DIVERGENCE_FACTOR * max(cast(float, first), 1.0):
            raise NonFiniteLoss(
                f"the training loss grew from {first:.3g} to {loss:.3g}"
            )


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
        if device.type == "cpu":
            # The CPU generator alone: torch.manual_seed also queues the
            # seeding of every accelerator's generator, at a cost of a few
            # milliseconds per call (a stack trace each).
            torch.default_generator.manual_seed(seed)
        else:
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
    (no carriage-return redraws, no colour codes). In a data-parallel fit
    only rank 0 logs (every rank's history holds the same values).
    """
    world = _distributed.current_world()
    if world is not None and world.rank > 0:
        return []
    interactive = getattr(sys.stdout, "isatty", lambda: False)()
    callbacks = []
    if interactive and n_batches >= _PROGRESS_BAR_MIN_BATCHES:
        callbacks.append(("progress_bar", ProgressBar(batches_per_epoch=n_batches)))
    sink = print if interactive else _plain_print
    callbacks.append(("print_log", PrintLog(keys_ignored=["event_lr"], sink=sink)))
    return callbacks
