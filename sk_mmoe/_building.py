"""Building the network, its loss and its training for a fit.

:class:`NetworkSpec` is everything the network is built from besides the
architecture parameters: the data's width, each task's output width, the
input layers that fit chose for the data and the bias columns that feed a
bias tower beside the network. ``fit`` builds a network from it
and :func:`sk_mmoe.save_model` stores it, so that :func:`sk_mmoe.load_model`
builds the same network from the same specification. :class:`NetworkBuilding`
is a base of the estimators that makes the spec, the loss and the skorch net.
"""

from __future__ import annotations

import copy
import math
import warnings
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
    MMoENetwork,
    embedding_params,
    embedding_sizes,
    first_level_width,
)
from .nn.weighting import WEIGHTING_STRATEGIES, FixedWeights, LossWeighting

__all__ = ["NetworkBuilding", "NetworkSpec"]

# numeric_embedding="auto" embeds the numeric columns of inputs with at most
# this many: each costs a few operations per batch, which dominate the step
# of a small network when there are many.
_AUTO_NUMERIC_EMBEDDING_COLUMNS = 16

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
# otherwise: smooth regression targets keep improving for longer).
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
    saved before the option, which refuse them).
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
        }

    @classmethod
    def from_state(cls, state: Any) -> NetworkSpec:
        """The spec that :meth:`state` described; a ValueError if malformed."""

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
            and isinstance(state.get("numeric_clip", True), bool)
            and isinstance(state.get("numeric_missing", False), bool)
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
            state.get("numeric_clip", True),
            state.get("numeric_missing", False),
        )


def _bias_of(
    state: dict[str, Any],
) -> tuple[BiasColumns | None, tuple[tuple[bool, ...], ...] | None]:
    """The bias columns and task mask of a spec's state, checked against its
    features and tasks (specs without a bias tower may lack both entries)."""
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


class NetworkBuilding:
    """The estimators' construction of the network, loss and skorch net."""

    def _new_network_spec(
        self,
        X: Any,
        encoder: CategoricalEncoder | None,
        tasks: list[Task],
        bias_columns: BiasColumns | None = None,
    ) -> NetworkSpec:
        """The spec of a new network for the encoded ``X`` of a fit (without
        its ``bias_columns``)."""
        projection = self._projection_width(X, len(tasks))
        mask = None
        if bias_columns is not None:
            mask = bias_columns.task_mask([task.name for task in tasks])
            mask = tuple(tuple(row) for row in mask.tolist())
        return NetworkSpec(
            X.shape[1] if encoder is None else encoder.n_features,
            tuple(task.n_outputs for task in tasks),
            # Scaling or embedding would densify what the projection reads
            # sparse: not for those inputs.
            numeric_scaling=self.numeric_scaling is not None and projection is None,
            numeric_clip=self.numeric_scaling != "robust_unclipped",
            numeric_embedding=projection is None and self._embeds_numbers(X, encoder),
            sparse_projection=projection,
            bias_columns=bias_columns,
            bias_task_mask=mask,
            embedding_dims=None
            if encoder is None
            else embedding_sizes(encoder.cardinalities),
            # A sparse X (projected or densified per batch) has no missing
            # values: they are refused.
            numeric_missing=self.numeric_missing == "learn" and not sp.issparse(X),
        )

    def _embeds_numbers(self, X: Any, encoder: CategoricalEncoder | None) -> bool:
        """Whether the network embeds the numeric columns of ``X``."""
        if self.numeric_embedding is None:
            return False
        n_numeric = (
            X.shape[1] if encoder is None else encoder.n_features - len(encoder.columns)
        )
        if self.numeric_embedding == "auto":
            return 0 < n_numeric <= _AUTO_NUMERIC_EMBEDDING_COLUMNS
        return n_numeric > 0

    def _projection_width(self, X: Any, n_tasks: int) -> int | None:
        """Width of the sparse projection for ``X``: only for wide sparse inputs.

        As wide as everything the first level feeds (the first layer of its
        experts and its gates), so the projection loses nothing; None when
        ``X`` is dense or narrower than that.
        """
        if not sp.issparse(X) or X.shape[1] < _SPARSE_PROJECTION_MIN_FEATURES:
            return None
        width = first_level_width(
            n_tasks,
            self.n_experts,
            self.n_task_experts,
            np.atleast_1d(self.expert_hidden_layer_sizes),
            self.shared_gate,
            self.n_levels,
            self.gate,
            {"gate_k": self.gate_k, "gate_temperature": self.gate_temperature},
        )
        if width >= X.shape[1]:
            return None
        skipped = [
            f"{name}={getattr(self, name)!r}"
            for name, differs in (
                ("numeric_scaling", self.numeric_scaling is not None),
                ("numeric_embedding", self.numeric_embedding == "periodic"),
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

    def _make_criterion(
        self,
        tasks: list[Task],
        task_weights: Any,
        class_weights: list[np.ndarray | None],
        learned: LossWeighting | None = None,
    ) -> MultiTaskLoss:
        """The loss; ``learned`` is a fitted weighting to continue training."""
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
            raise ValueError(
                f"task_weights={self.task_weights!r} selects another weighting "
                f"strategy than the fitted model's ({type(learned).__name__}); "
                f"refit with warm_start=False to change it."
            )
        return MultiTaskLoss(
            [task.loss for task in tasks],
            weighting=weighting,
            class_weights=class_weights,
            task_outputs=task_outputs(tasks),
            gate_balance=self.gate_balance,
        )

    def _make_net(
        self,
        spec: NetworkSpec,
        tasks: list[Task],
        criterion: MultiTaskLoss,
        device: torch.device,
        encoder: CategoricalEncoder | None,
        n_train: int,
        scheduled: bool = False,
    ) -> MultiTaskNet:
        """A new, uninitialised skorch net around a new network built from
        ``spec``, to train on ``n_train`` rows (``scheduled``: under the
        learning-rate schedule).

        Call it under :func:`~sk_mmoe._fitting.training.seeded`: it draws the initial
        weights.
        """
        module_params = self._module_params()
        batch_size, lr = self._step_params(n_train, encoder, scheduled)
        return MultiTaskNet(
            module=spec.build(module_params, encoder, self.bias_dropout),
            criterion=criterion,
            optimizer=self._optimizer_class(),
            lr=lr,
            optimizer__weight_decay=self.weight_decay,
            # Learned task weights are not shrunk towards zero.
            optimizer__param_groups=[("weighting.*", {"weight_decay": 0.0})],
            batch_size=batch_size,
            iterator_train=BatchIterator,
            iterator_valid=BatchIterator,
            iterator_train__shuffle=True,
            train_split=None,
            device=str(device),
            task_names=[task.name for task in tasks],
            module_params=module_params,
        )

    def _step_params(
        self,
        n_train: int,
        encoder: CategoricalEncoder | None = None,
        scheduled: bool = False,
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
        batch_size = self.batch_size
        if batch_size == "auto":
            cardinalities = [] if encoder is None else encoder.cardinalities
            ids = any(n_train < _AUTO_MIN_ROWS_PER_VALUE * n for n in cardinalities)
            enough = [
                size
                for size in _AUTO_BATCH_SIZES
                if n_train >= _AUTO_MIN_BATCHES * size
            ]
            batch_size = enough[-1] if enough and not ids else _AUTO_BATCH_SIZES[0]
        lr = self.lr
        if lr == "auto":
            real_batch = max(1, min(batch_size, n_train))
            lr = _AUTO_LR * math.sqrt(real_batch / _AUTO_BATCH_SIZES[0])
            if scheduled:
                lr *= _SCHEDULED_LR_FACTOR
        return batch_size, lr

    def _n_epochs(
        self, n_train: int, batch_size: int, scheduled: bool, classifying: bool
    ) -> int:
        """``max_epochs`` of a fit on ``n_train`` rows in batches of
        ``batch_size``: ``"auto"`` gives a ``scheduled`` fit of classification
        tasks only (``classifying``) enough epochs for 300 steps (10 to 50
        epochs), any other fit 50.
        """
        if self.max_epochs != "auto":
            return self.max_epochs
        if not (scheduled and classifying):
            return _AUTO_EPOCHS[1]
        n_batches = -(-n_train // batch_size)
        epochs = -(-_AUTO_SCHEDULE_STEPS // n_batches)
        return min(max(epochs, _AUTO_EPOCHS[0]), _AUTO_EPOCHS[1])

    def _update_training_params(
        self,
        net: MultiTaskNet,
        n_train: int,
        encoder: CategoricalEncoder | None = None,
        scheduled: bool = False,
    ) -> None:
        """Apply the current optimisation parameters to a fitted net."""
        net.batch_size, lr = self._step_params(n_train, encoder, scheduled)
        net.lr = lr
        net.optimizer__weight_decay = self.weight_decay
        if net.optimizer is not self._optimizer_class():
            net.optimizer = self._optimizer_class()
            net.initialize_optimizer()
        weighting_params = set(net.criterion_.weighting.parameters())
        sparse = getattr(net, "optimizer_sparse_", None)
        for group in [] if sparse is None else sparse.param_groups:
            group["lr"] = lr
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
            learned = any(p in weighting_params for p in group["params"])
            group["weight_decay"] = 0.0 if learned else self.weight_decay

    def _training_callbacks(
        self, early: bool, n_train: int, batch_size: int, n_scheduled: int = 0
    ) -> list:
        """The callbacks of a fit; ``n_scheduled``: epochs under the
        learning-rate schedule (0: none).
        """
        callbacks = [("stop_on_non_finite", StopOnNonFinite())]
        if n_scheduled:
            n_steps = n_scheduled * -(-n_train // batch_size)
            callbacks.append(("lr_schedule", WarmupCosine(n_steps)))
        if early:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss",
                        patience=self.n_iter_no_change,
                        threshold=self.tol,
                        threshold_mode="abs",
                        load_best=True,
                        sink=silent,
                    ),
                )
            )
        # Deep copies: fitting must not change the objects in the parameters.
        callbacks.extend(copy.deepcopy(list(self.callbacks or [])))
        if self.verbose:
            callbacks.extend(logging_callbacks(-(-n_train // batch_size)))
        return callbacks


def _robust_statistics(
    X: np.ndarray, seed: int, max_rows: int = 100_000
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
