"""Building the network, its loss and its training for a fit.

:class:`NetworkSpec` is everything the network is built from besides the
architecture parameters: the data's width, each task's output width, the
input layers that fit chose for the data and the bias columns that feed a
bias tower beside the network. ``fit`` builds a network from it
and :func:`sk_mmoe.save_model` stores it, so that :func:`sk_mmoe.load_model`
builds the same network from the same specification. The functions here
make the spec, the loss, the skorch net and its training parameters from
the values the estimator hands them.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from skorch.callbacks import EarlyStopping
from torch import nn

from ._data.features import CategoricalEncoder
from ._fitting.batches import BatchIterator
from ._fitting.schedule import WarmupCosine
from ._fitting.training import MultiTaskNet, StopOnNonFinite, logging_callbacks, silent
from ._tasks import Task, task_outputs
from .nn._bias import BiasColumns, BiasedNetwork, BiasTower
from .nn.losses import MultiTaskLoss
from .nn.network import (
    NUMERIC_FREQUENCIES,
    NUMERIC_LITE,
    MMoENetwork,
    embedding_params,
    embedding_sizes,
    first_level_width,
)
from .nn.weighting import WEIGHTING_STRATEGIES, FixedWeights, LossWeighting

__all__ = [
    "ARCHITECTURE_PARAMS",
    "INPUT_LAYER_PARAMS",
    "NetworkSpec",
    "make_criterion",
    "make_net",
    "module_params",
    "n_epochs",
    "new_network_spec",
    "step_params",
    "training_callbacks",
    "update_training_params",
]

#: The parameters of the input layers that :func:`new_network_spec` takes.
INPUT_LAYER_PARAMS = ("numeric_scaling", "numeric_embedding", "numeric_missing")

#: The parameters that build the network; declared once, here.
ARCHITECTURE_PARAMS = (
    "n_experts",
    "expert_hidden_layer_sizes",
    "tower_hidden_layer_sizes",
    "n_task_experts",
    "n_levels",
    "shared_gate",
    "gate_dropout",
    "dropout",
    "gate",
    "gate_k",
    "gate_temperature",
    "expert_activation",
    "expert_normalization",
    "ensemble_size",
)

# numeric_embedding="auto" embeds the numeric columns of inputs with at most
# this many: each costs a few operations per batch, which dominate the step
# of a small network when there are many.
_AUTO_NUMERIC_EMBEDDING_COLUMNS = 16
# The periodic embedding of a new network: this many frequencies per
# column, and a linear layer per column (False) or one shared (True). On
# the census sample 16 frequencies took 8% less fit time than 48 (a fifth
# with rtdl's own products) at the same test AUC; 8 frequencies and the
# shared layer lost 0.0008 to 0.0009 AUC (benchmarks/fit_budget.py).
_PERIODIC_FREQUENCIES = 16
_PERIODIC_LITE = False

# batch_size="auto": these sizes, the largest that makes at least this many
# batches of the training rows; lr="auto": this rate at the smallest,
# scaled with the square root of the batch size.
_AUTO_BATCH_SIZES = (256, 512, 1024)
_AUTO_MIN_BATCHES = 32
_AUTO_MIN_ROWS_PER_VALUE = 100
_AUTO_LR = 1e-3
# Under the learning-rate schedule, lr="auto" peaks at this multiple of the
# constant rate, and max_epochs="auto" gives a fit of classification tasks
# enough epochs for this many steps, within these bounds (50 epochs
# otherwise: smooth regression targets keep improving for longer). On the
# census sample fewer steps lost test AUC, and a higher peak that made up
# for them there lost it on a task labelled on few rows
# (benchmarks/fit_budget.py).
_SCHEDULED_LR_FACTOR = 5.0
_AUTO_SCHEDULE_STEPS = 300
_AUTO_EPOCHS = (10, 50)

# A sparse input at least this wide is read through a sparse projection
# (cost set by the non-zeros) rather than densified batch by batch.
_SPARSE_PROJECTION_MIN_FEATURES = 1024


@dataclass(frozen=True)
class NetworkSpec:
    """What a network is built from besides the architecture parameters.

    ``n_features`` columns of ``X`` (after encoding), ``output_sizes`` the
    width of each task's output, and the input layers fit chose for the
    data: robust scaling of the numeric columns, their periodic embedding,
    and the width of the sparse projection of a wide sparse ``X`` (None
    without one). ``bias_columns`` are the ``bias_features`` of ``X``
    (not among the ``n_features``), None without a bias tower, and
    ``bias_task_mask`` says which of them feeds which task's tower
    (``(n_tasks, n_bias)`` booleans). ``embedding_dims`` are the sizes of
    the categorical columns' embeddings, one per column; None (networks
    saved before sizes per column) for one size for all, from the largest
    cardinality. ``numeric_clip``: the scaled numeric columns are clipped
    smoothly (True in networks saved before the option). ``numeric_missing``:
    missing numeric values are replaced by a learned fill (False in networks
    saved before the option, which refuse them). ``numeric_frequencies`` and
    ``numeric_lite``: the periodic embedding's number of frequencies per
    column and whether its linear layer is shared by all columns (48 and
    False in networks saved before the options).
    """

    n_features: int
    output_sizes: tuple[int, ...]
    numeric_scaling: bool = False
    numeric_embedding: bool = False
    sparse_projection: int | None = None
    bias_columns: BiasColumns | None = None
    bias_task_mask: tuple[tuple[bool, ...], ...] | None = None
    embedding_dims: tuple[int, ...] | None = None
    numeric_clip: bool = True
    numeric_missing: bool = False
    numeric_frequencies: int = NUMERIC_FREQUENCIES
    numeric_lite: bool = NUMERIC_LITE

    def build(
        self,
        module_params: dict[str, Any],
        encoder: CategoricalEncoder | None,
        bias_dropout: float = 0.0,
    ) -> nn.Module:
        """A new network (its weights drawn from torch's current seed).

        With bias columns, a :class:`~sk_mmoe.nn._bias.BiasedNetwork`: the
        network with a bias tower beside it, whose features are dropped in
        training with probability ``bias_dropout``.
        """
        network = MMoENetwork(
            self.n_features if encoder is None else encoder.width,
            list(self.output_sizes),
            **module_params,
            **embedding_params(encoder),
            embedding_dim=self.embedding_dims,
            numeric_scaling=self.numeric_scaling,
            numeric_embedding=self.numeric_embedding,
            sparse_projection=self.sparse_projection,
            numeric_clip=self.numeric_clip,
            numeric_missing=self.numeric_missing,
            numeric_frequencies=self.numeric_frequencies,
            numeric_lite=self.numeric_lite,
        )
        if self.bias_columns is None:
            return network
        tower = BiasTower(
            np.asarray(self.bias_task_mask, dtype=bool),
            max(self.output_sizes),
            bias_dropout,
        )
        return BiasedNetwork(network, tower)

    def state(self) -> dict[str, Any]:
        """The spec as plain values (see :meth:`from_state`)."""
        return {
            "n_features": self.n_features,
            "output_sizes": list(self.output_sizes),
            "numeric_scaling": self.numeric_scaling,
            "numeric_embedding": self.numeric_embedding,
            "sparse_projection": self.sparse_projection,
            "bias_columns": None
            if self.bias_columns is None
            else self.bias_columns.state(),
            "bias_task_mask": None
            if self.bias_task_mask is None
            else [list(row) for row in self.bias_task_mask],
            "embedding_dims": None
            if self.embedding_dims is None
            else list(self.embedding_dims),
            "numeric_clip": self.numeric_clip,
            "numeric_missing": self.numeric_missing,
            "numeric_frequencies": self.numeric_frequencies,
            "numeric_lite": self.numeric_lite,
        }

    @classmethod
    def from_state(cls, state: Any) -> NetworkSpec:
        """The spec that :meth:`state` described; a ValueError if malformed.

        Older files' specifications are upgraded first
        (:func:`sk_mmoe._persistence_upgrade.upgrade`).
        """

        def positive_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value > 0

        if not (
            isinstance(state, dict)
            and positive_int(state.get("n_features"))
            and isinstance(state.get("output_sizes"), list)
            and all(positive_int(v) for v in state["output_sizes"])
            and isinstance(state.get("numeric_scaling"), bool)
            and isinstance(state.get("numeric_embedding"), bool)
            and (
                state.get("sparse_projection") is None
                or positive_int(state["sparse_projection"])
            )
            and (
                state.get("embedding_dims") is None
                or (
                    isinstance(state["embedding_dims"], list)
                    and all(positive_int(d) for d in state["embedding_dims"])
                )
            )
            and isinstance(state.get("numeric_clip"), bool)
            and isinstance(state.get("numeric_missing"), bool)
            and positive_int(state.get("numeric_frequencies"))
            and isinstance(state.get("numeric_lite"), bool)
        ):
            raise ValueError("its network specification is malformed")
        bias_columns, bias_task_mask = _bias_of(state)
        return cls(
            state["n_features"],
            tuple(state["output_sizes"]),
            state["numeric_scaling"],
            state["numeric_embedding"],
            state["sparse_projection"],
            bias_columns,
            bias_task_mask,
            None
            if state.get("embedding_dims") is None
            else tuple(state["embedding_dims"]),
            state["numeric_clip"],
            state["numeric_missing"],
            state["numeric_frequencies"],
            state["numeric_lite"],
        )


def _bias_of(
    state: dict[str, Any],
) -> tuple[BiasColumns | None, tuple[tuple[bool, ...], ...] | None]:
    """The bias columns and task mask of a spec's state, checked against its
    features and tasks (both None without a bias tower)."""
    columns_state = state.get("bias_columns")
    mask = state.get("bias_task_mask")
    if columns_state is None and mask is None:
        return None, None
    columns = BiasColumns.from_state(columns_state)
    n_bias, n_tasks = len(columns.indices), len(state["output_sizes"])
    if (
        columns.n_columns - n_bias != state["n_features"]
        or not isinstance(mask, list)
        or len(mask) != n_tasks
        or not all(
            isinstance(row, list)
            and len(row) == n_bias
            and all(isinstance(v, bool) for v in row)
            for row in mask
        )
    ):
        raise ValueError("its bias tower does not fit its features and tasks")
    return columns, tuple(tuple(row) for row in mask)


def module_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture parameters among ``params`` (an estimator's), checked,
    as the network takes them."""

    def sizes(name: str, allow_empty: bool) -> tuple[int, ...]:
        value = tuple(np.atleast_1d(np.asarray(params[name])).tolist())
        if (not value and not allow_empty) or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1
            for v in value
        ):
            raise ValueError(
                f"{name} must be a sequence of positive ints"
                f"{'' if allow_empty else ' (at least one)'}, got {value!r}."
            )
        return value

    module = {name: params[name] for name in ARCHITECTURE_PARAMS}
    module["expert_hidden_layer_sizes"] = sizes("expert_hidden_layer_sizes", False)
    module["tower_hidden_layer_sizes"] = sizes("tower_hidden_layer_sizes", True)
    if module["shared_gate"] and module["n_task_experts"] > 0:
        raise ValueError(
            "shared_gate=True (One-gate MoE) cannot be combined with "
            f"n_task_experts={module['n_task_experts']}: task experts need "
            f"per-task gates."
        )
    return module


def new_network_spec(
    X: Any,
    encoder: CategoricalEncoder | None,
    tasks: list[Task],
    bias_columns: BiasColumns | None,
    architecture: dict[str, Any],
    *,
    numeric_scaling: str | None,
    numeric_embedding: str | None,
    numeric_missing: str,
) -> NetworkSpec:
    """The spec of a new network for the encoded ``X`` of a fit (without its
    ``bias_columns``); ``architecture``: :func:`module_params`, and the
    parameters of the input layers as the estimator has them."""
    projection = _projection_width(
        X, len(tasks), architecture, numeric_scaling, numeric_embedding
    )
    mask = None
    if bias_columns is not None:
        rows = bias_columns.task_mask([task.name for task in tasks]).tolist()
        mask = tuple(tuple(row) for row in rows)
    return NetworkSpec(
        X.shape[1] if encoder is None else encoder.n_features,
        tuple(task.n_outputs for task in tasks),
        # Scaling or embedding would densify what the projection reads
        # sparse: not for those inputs.
        numeric_scaling=numeric_scaling is not None and projection is None,
        numeric_clip=numeric_scaling != "robust_unclipped",
        numeric_embedding=projection is None
        and _embeds_numbers(X, encoder, numeric_embedding),
        sparse_projection=projection,
        bias_columns=bias_columns,
        bias_task_mask=mask,
        embedding_dims=None
        if encoder is None
        else embedding_sizes(encoder.cardinalities),
        # A sparse X (projected or densified per batch) has no missing
        # values: they are refused.
        numeric_missing=numeric_missing == "learn" and not sp.issparse(X),
        numeric_frequencies=_PERIODIC_FREQUENCIES,
        numeric_lite=_PERIODIC_LITE,
    )


def _embeds_numbers(
    X: Any, encoder: CategoricalEncoder | None, numeric_embedding: str | None
) -> bool:
    """Whether the network embeds the numeric columns of ``X``."""
    if numeric_embedding is None:
        return False
    n_numeric = (
        X.shape[1] if encoder is None else encoder.n_features - len(encoder.columns)
    )
    if numeric_embedding == "auto":
        return 0 < n_numeric <= _AUTO_NUMERIC_EMBEDDING_COLUMNS
    return n_numeric > 0


def _projection_width(
    X: Any,
    n_tasks: int,
    architecture: dict[str, Any],
    numeric_scaling: str | None,
    numeric_embedding: str | None,
) -> int | None:
    """Width of the sparse projection for ``X``: only for wide sparse inputs.

    As wide as everything the first level feeds (the first layer of its
    experts and its gates), so the projection loses nothing; None when
    ``X`` is dense or narrower than that.
    """
    if not sp.issparse(X) or X.shape[1] < _SPARSE_PROJECTION_MIN_FEATURES:
        return None
    width = first_level_width(
        n_tasks,
        architecture["n_experts"],
        architecture["n_task_experts"],
        architecture["expert_hidden_layer_sizes"],
        architecture["shared_gate"],
        architecture["n_levels"],
        architecture["gate"],
        {
            "gate_k": architecture["gate_k"],
            "gate_temperature": architecture["gate_temperature"],
        },
    )
    if width >= X.shape[1]:
        return None
    skipped = [
        f"{name}={value!r}"
        for name, value, differs in (
            ("numeric_scaling", numeric_scaling, numeric_scaling is not None),
            (
                "numeric_embedding",
                numeric_embedding,
                numeric_embedding == "periodic",
            ),
        )
        if differs
    ]
    if skipped:
        warnings.warn(
            f"X is a sparse matrix of {X.shape[1]} columns, read through a "
            f"sparse projection that keeps it sparse: {' and '.join(skipped)} "
            f"would densify it and {'are' if len(skipped) > 1 else 'is'} not "
            "applied, so the model differs "
            "from the one fitted on its dense copy. Scale the columns "
            "upstream if needed (e.g. MaxAbsScaler, which keeps them "
            "sparse), and set numeric_scaling=None (and numeric_embedding"
            "=None or 'auto') to silence this warning.",
            UserWarning,
        )
    return width


def make_criterion(
    tasks: list[Task],
    task_weights: Any,
    class_weights: Sequence[Any],
    gate_balance: float,
    learned: LossWeighting | None = None,
) -> MultiTaskLoss:
    """The loss of ``tasks``; ``task_weights`` as :func:`check_task_weights`
    returns them; ``learned`` is a fitted weighting to continue training."""
    weighting: LossWeighting
    if isinstance(task_weights, str):
        if isinstance(learned, WEIGHTING_STRATEGIES[task_weights]):
            weighting = learned  # Keeps its learned state and optimizer slot.
        else:
            weighting = WEIGHTING_STRATEGIES[task_weights](
                [task.uncertainty_scale for task in tasks]
            )
    else:
        weighting = FixedWeights(task_weights)
    if learned is not None and type(weighting) is not type(learned):
        asked = task_weights if isinstance(task_weights, str) else "fixed weights"
        raise ValueError(
            f"task_weights={asked!r} selects another weighting strategy than "
            f"the fitted model's ({type(learned).__name__}); refit with "
            f"warm_start=False to change it."
        )
    return MultiTaskLoss(
        [task.loss for task in tasks],
        weighting=weighting,
        class_weights=class_weights,
        task_outputs=task_outputs(tasks),
        gate_balance=gate_balance,
    )


def make_net(
    spec: NetworkSpec,
    tasks: list[Task],
    criterion: MultiTaskLoss,
    device: torch.device,
    encoder: CategoricalEncoder | None,
    *,
    architecture: dict[str, Any],
    optimizer: type,
    batch_size: int,
    lr: float,
    weight_decay: float,
    bias_dropout: float,
) -> MultiTaskNet:
    """A new, uninitialised skorch net around a new network built from
    ``spec`` and ``architecture`` (:func:`module_params`), to train with
    these optimisation parameters (:func:`step_params` gives the batch size
    and learning rate).

    Call it under :func:`~sk_mmoe._fitting.training.seeded`: it draws the
    initial weights.
    """
    return MultiTaskNet(
        module=spec.build(architecture, encoder, bias_dropout),
        criterion=criterion,
        optimizer=optimizer,
        lr=lr,
        optimizer__weight_decay=weight_decay,
        # Learned task weights are not shrunk towards zero.
        optimizer__param_groups=[("weighting.*", {"weight_decay": 0.0})],
        batch_size=batch_size,
        iterator_train=BatchIterator,
        iterator_valid=BatchIterator,
        iterator_train__shuffle=True,
        train_split=None,
        device=str(device),
        task_names=[task.name for task in tasks],
        module_params=architecture,
    )


def step_params(
    n_train: int,
    encoder: CategoricalEncoder | None,
    scheduled: bool,
    *,
    batch_size: int | str,
    lr: float | str,
) -> tuple[int, float]:
    """``batch_size`` and ``lr`` of training on ``n_train`` rows whose
    categorical columns ``encoder`` encodes (``scheduled``: ``lr`` is the
    peak of the learning-rate schedule).

    ``"auto"`` batches: the largest power of two from 256 to 1024 that
    still makes 32 batches of the rows (fewer, larger steps on large
    data, at about the same quality), but 256 when a categorical column
    has fewer than 100 rows per value on average (IDs: each value's
    vector moves only in the batches that hold it, and larger batches
    leave it fewer steps); ``"auto"`` lr: 1e-3 at batch 256, scaled with
    the square root of the batch size, as Adam's steps are (Malladi et
    al., 2022), and 5 times that as the peak of a schedule. The batch it
    scales from is the real one: no larger than the training rows.
    """
    if batch_size == "auto":
        cardinalities = [] if encoder is None else encoder.cardinalities
        ids = any(n_train < _AUTO_MIN_ROWS_PER_VALUE * n for n in cardinalities)
        enough = [
            size for size in _AUTO_BATCH_SIZES if n_train >= _AUTO_MIN_BATCHES * size
        ]
        batch_size = enough[-1] if enough and not ids else _AUTO_BATCH_SIZES[0]
    assert isinstance(batch_size, int)
    if lr == "auto":
        real_batch = max(1, min(batch_size, n_train))
        lr = _AUTO_LR * math.sqrt(real_batch / _AUTO_BATCH_SIZES[0])
        if scheduled:
            lr *= _SCHEDULED_LR_FACTOR
    assert not isinstance(lr, str)
    return batch_size, lr


def n_epochs(
    max_epochs: int | str,
    n_train: int,
    batch_size: int,
    scheduled: bool,
    classifying: bool,
) -> int:
    """``max_epochs`` of a fit on ``n_train`` rows in batches of
    ``batch_size``: ``"auto"`` gives a ``scheduled`` fit of classification
    tasks only (``classifying``) enough epochs for 300 steps (10 to 50
    epochs), any other fit 50.
    """
    if not isinstance(max_epochs, str):
        return max_epochs
    if not (scheduled and classifying):
        return _AUTO_EPOCHS[1]
    n_batches = -(-n_train // batch_size)
    epochs = -(-_AUTO_SCHEDULE_STEPS // n_batches)
    return min(max(epochs, _AUTO_EPOCHS[0]), _AUTO_EPOCHS[1])


def update_training_params(
    net: MultiTaskNet,
    *,
    optimizer: type,
    batch_size: int,
    lr: float,
    weight_decay: float,
) -> None:
    """Apply the current optimisation parameters to a fitted net."""
    net.batch_size = batch_size
    net.lr = lr
    net.optimizer__weight_decay = weight_decay
    if net.optimizer is not optimizer:
        net.optimizer = optimizer
        net.initialize_optimizer()
    weighting_params = set(net.criterion_.weighting.parameters())
    sparse = getattr(net, "optimizer_sparse_", None)
    for group in [] if sparse is None else sparse.param_groups:
        group["lr"] = lr
    for group in net.optimizer_.param_groups:
        group["lr"] = lr
        learned = any(p in weighting_params for p in group["params"])
        group["weight_decay"] = 0.0 if learned else weight_decay


def training_callbacks(
    early: bool,
    n_train: int,
    batch_size: int,
    n_scheduled: int,
    *,
    n_iter_no_change: int,
    tol: float,
    callbacks: list | None,
    verbose: int,
) -> list:
    """The callbacks of a fit; ``n_scheduled``: epochs under the
    learning-rate schedule (0: none); ``callbacks``: the user's.
    """
    chosen: list = [("stop_on_non_finite", StopOnNonFinite())]
    if n_scheduled:
        n_steps = n_scheduled * -(-n_train // batch_size)
        chosen.append(("lr_schedule", WarmupCosine(n_steps)))
    if early:
        stopper = EarlyStopping(
            monitor="valid_loss",
            patience=n_iter_no_change,
            threshold=tol,
            threshold_mode="abs",
            load_best=True,
            sink=silent,
        )
        chosen.append(("early_stopping", stopper))
    # Deep copies: fitting must not change the objects in the parameters.
    chosen.extend(copy.deepcopy(list(callbacks or [])))
    if verbose:
        chosen.extend(logging_callbacks(-(-n_train // batch_size)))
    return chosen


def _robust_statistics(
    X: Any, seed: int, max_rows: int = 100_000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Median and spread of every column of ``X`` (a row sample if large).

    The spread is the interquartile range over 1.349 (the standard deviation
    of normal data), else the standard deviation, else 1.
    """
    rows = X.shape[0]
    if rows > max_rows:
        X = X[np.random.default_rng(seed).choice(rows, max_rows, replace=False)]
    if sp.issparse(X):
        # Densified a block of columns at a time: the same statistics as
        # those of the dense copy, in bounded memory.
        X = sp.csc_matrix(X)
        step = 64
        stats = [
            _column_statistics(X[:, start : start + step].toarray())
            for start in range(0, X.shape[1], step)
        ]
        q25, center, q75, std = (np.concatenate(s) for s in zip(*stats, strict=True))
    else:
        q25, center, q75, std = _column_statistics(X)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
    return (
        torch.as_tensor(center, dtype=torch.float32),
        torch.as_tensor(scale, dtype=torch.float32),
    )


def _column_statistics(X: np.ndarray) -> tuple[np.ndarray, ...]:
    """First quartile, median, third quartile and standard deviation of every
    column of ``X``, in float64."""
    X = np.asarray(X, dtype=np.float64)
    if not np.isnan(X).any():
        q25, median, q75 = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
        return q25, median, q75, X.std(axis=0)
    # Missing values are left out; a column without any value gets 0 and 1.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        q25, median, q75 = np.nanquantile(X, [0.25, 0.5, 0.75], axis=0)
        std = np.nanstd(X, axis=0)
    return (
        np.nan_to_num(q25, nan=-1.349 / 2),
        np.nan_to_num(median, nan=0.0),
        np.nan_to_num(q75, nan=1.349 / 2),
        np.nan_to_num(std, nan=1.0),
    )
