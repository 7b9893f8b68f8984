"""The shallow bias tower: input columns that explain the training labels only.

Logs of a recommender are biased by the ranker that made them: people click
the top slots more whatever they hold. Zhao et al. (2019) feed such features
(the position, the device) to a shallow tower whose output is added to the
main network's logits during training and left out at serving, so that the
main network learns the relevance of the items and not the slot they were
shown in.

:class:`BiasColumns` says which columns of ``X`` are bias features and
splits them off (:meth:`BiasColumns.split`, the one place that removes them
before the main network); :class:`BiasTower` is the tower and
:class:`BiasedNetwork` the main network with the tower beside it, which
reads the bias columns appended after the main ones during training.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from .._data.frames import is_polars
from .network import BatchedLinear, MMoENetwork

__all__ = ["BiasColumns", "BiasTower", "BiasedNetwork", "main_network"]

# Hidden units of the bias tower: shallow, as in Zhao et al. (2019).
BIAS_TOWER_HIDDEN = 16


@dataclass(frozen=True)
class BiasColumns:
    """The bias features of a fit: where they are in ``X`` and which tasks
    they explain.

    ``indices`` are positions in the ``X`` given to ``fit`` (of
    ``n_columns`` columns), ``names`` their names when ``X`` had feature
    names, and ``tasks`` the task names whose logits get the tower's output
    with the indices (into ``indices``) of the columns that feed it, or None
    for every task and every column.
    """

    indices: tuple[int, ...]
    names: tuple[str, ...] | None
    n_columns: int
    tasks: tuple[tuple[str, tuple[int, ...]], ...] | None = None

    @classmethod
    def resolve(
        cls, bias_features: Any, n_columns: int, feature_names: Any
    ) -> BiasColumns:
        """The columns named by the ``bias_features`` parameter in ``X``."""
        per_task = None
        if isinstance(bias_features, Mapping):
            if not bias_features:
                raise ValueError("bias_features must name at least one column.")
            per_task = {
                str(task): _as_list(columns, f"bias_features[{task!r}]")
                for task, columns in bias_features.items()
            }
            entries = list(dict.fromkeys(c for cs in per_task.values() for c in cs))
        else:
            entries = _as_list(bias_features, "bias_features")
        names = None if feature_names is None else [str(f) for f in feature_names]
        position = {entry: _column_index(entry, n_columns, names) for entry in entries}
        indices = list(dict.fromkeys(position.values()))
        if len(indices) != len(entries):
            raise ValueError(f"bias_features names a column twice: {entries}.")
        if len(indices) >= n_columns:
            raise ValueError(
                f"bias_features takes all {n_columns} columns of X; the main "
                f"network needs at least one other."
            )
        tasks = None
        if per_task is not None:
            slot = {index: i for i, index in enumerate(indices)}
            tasks = tuple(
                (task, tuple(slot[position[c]] for c in columns))
                for task, columns in per_task.items()
            )
        return cls(
            tuple(indices),
            None if names is None else tuple(names[i] for i in indices),
            n_columns,
            tasks,
        )

    def task_mask(self, task_names: list[str]) -> np.ndarray:
        """``(n_tasks, n_bias)``: which bias column feeds which task's logit."""
        if self.tasks is None:
            return np.ones((len(task_names), len(self.indices)), dtype=bool)
        unknown = sorted({task for task, _ in self.tasks} - set(task_names))
        if unknown:
            raise ValueError(
                f"bias_features names unknown tasks {unknown}; the tasks are "
                f"{task_names}."
            )
        mask = np.zeros((len(task_names), len(self.indices)), dtype=bool)
        for task, columns in self.tasks:
            mask[task_names.index(task), list(columns)] = True
        return mask

    @property
    def described(self) -> np.ndarray:
        """The bias columns by name, or by index if ``X`` had no names."""
        if self.names is not None:
            return np.asarray(self.names, dtype=object)
        return np.asarray(self.indices)

    def split(self, X: Any, required: bool) -> tuple[Any, np.ndarray | None]:
        """``X`` without the bias columns, and the bias columns as float32.

        ``required`` (training): ``X`` must hold them. Otherwise
        (prediction) they may be absent, and ``X`` is then returned as it
        is, with None.
        """
        if hasattr(X, "columns") and self.names is not None:
            present = [name for name in self.names if name in _column_names(X)]
            if not present or (len(present) < len(self.names) and not required):
                # Dropping the ones present is enough at prediction.
                return (_drop_named(X, present) if present else X), None
            if len(present) < len(self.names):
                missing = sorted(set(self.names) - set(present))
                raise ValueError(
                    f"X lacks the bias_features columns {missing}, which "
                    f"training needs."
                )
            return _drop_named(X, present), _bias_values(_select_named(X, present))
        if sp.issparse(X):
            if required:
                raise ValueError(
                    "bias_features needs a dense X in fit (an array or a "
                    "DataFrame), got a sparse matrix."
                )
        elif not hasattr(X, "shape") or getattr(X, "ndim", 2) != 2:
            X = np.asarray(X)
        n_main = self.n_columns - len(self.indices)
        n_given = X.shape[1] if X.ndim == 2 else None
        if n_given == self.n_columns:
            keep = np.setdiff1d(np.arange(self.n_columns), self.indices)
            main = _take_columns(X, keep)
            if not required:
                return main, None
            return main, _bias_values(_take_columns(X, np.asarray(self.indices)))
        if n_given == n_main and not required:
            return X, None
        if not required:
            return X, None  # The usual checks then report the wrong width.
        raise ValueError(
            f"X must have the {self.n_columns} columns of fit, the bias_features "
            f"among them, to train; got shape {X.shape}."
        )

    def state(self) -> dict[str, Any]:
        return {
            "indices": list(self.indices),
            "names": None if self.names is None else list(self.names),
            "n_columns": self.n_columns,
            "tasks": None
            if self.tasks is None
            else [[task, list(columns)] for task, columns in self.tasks],
        }

    @classmethod
    def from_state(cls, state: Any) -> BiasColumns:
        try:
            tasks = state["tasks"]
            columns = cls(
                tuple(int(i) for i in state["indices"]),
                None
                if state["names"] is None
                else tuple(str(n) for n in state["names"]),
                int(state["n_columns"]),
                None
                if tasks is None
                else tuple((str(t), tuple(int(i) for i in c)) for t, c in tasks),
            )
        except (KeyError, TypeError, ValueError):
            raise ValueError("its bias columns are malformed") from None
        n_bias = len(columns.indices)
        if not 0 < n_bias < columns.n_columns or (
            columns.names is not None and len(columns.names) != n_bias
        ):
            raise ValueError("its bias columns are malformed")
        return columns


class BiasTower(nn.Module):
    """A shallow MLP of the bias features, one per task, added to its logits.

    Each task's tower reads its own bias columns (standardised, a missing
    value replaced by a learned fill), through one hidden ReLU layer of
    :data:`BIAS_TOWER_HIDDEN` units, into one value per output unit of the
    task; tasks the tower does not explain get 0. In training mode each
    value is also replaced by the fill with probability ``dropout`` (the
    feature dropout of Zhao et al., 2019), so that the logits do not lean on
    the bias features. The output layer starts at zero: training starts from
    the main network alone.

    Parameters
    ----------
    task_mask : array-like of bool of shape (n_tasks, n_features)
        Which bias column feeds which task's tower.
    width : int
        Output units per task (the widest task's).
    dropout : float, default=0.1
        Probability that a bias value is dropped in training.
    """

    center: torch.Tensor
    scale: torch.Tensor
    task_mask: torch.Tensor
    task_on: torch.Tensor

    def __init__(self, task_mask: Any, width: int, dropout: float = 0.1) -> None:
        super().__init__()
        mask = torch.as_tensor(np.asarray(task_mask, dtype=bool))
        n_tasks, n_features = mask.shape
        self.dropout = dropout
        self.register_buffer("center", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("task_mask", mask.float().unsqueeze(1), persistent=False)
        self.register_buffer(
            "task_on", mask.any(dim=1).float().view(-1, 1, 1), persistent=False
        )
        self.fill = nn.Parameter(torch.zeros(n_features))
        self.hidden = BatchedLinear(n_tasks, n_features, BIAS_TOWER_HIDDEN)
        self.output = BatchedLinear(n_tasks, BIAS_TOWER_HIDDEN, width)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def set_statistics(self, values: np.ndarray) -> None:
        """Standardise with the mean and deviation of the training values."""
        with np.errstate(all="ignore"):
            center = np.nan_to_num(np.nanmean(values, axis=0))
            scale = np.nan_to_num(np.nanstd(values, axis=0))
        scale = np.where(scale > 0, scale, 1.0)
        self.center.copy_(torch.as_tensor(center, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_tasks, width)`` additions to the logits."""
        z = (x - self.center) / self.scale
        dropped = torch.isnan(z)
        if self.training and self.dropout > 0:
            dropped = dropped | (torch.rand_like(z) < self.dropout)
        z = torch.where(dropped, self.fill.expand_as(z), z)
        hidden = F.relu(self.hidden(z.unsqueeze(0) * self.task_mask))
        return (self.output(hidden) * self.task_on).transpose(0, 1)


class BiasedNetwork(nn.Module):
    """The main network, and a :class:`BiasTower` for the training logits.

    ``forward`` reads the main network's ``n_features`` columns followed by
    the bias columns, and adds the tower's output to the main logits; given
    the main columns only, it is the main network (as at prediction).
    """

    def __init__(self, main: MMoENetwork, bias_tower: BiasTower):
        super().__init__()
        self.main = main
        self.bias_tower = bias_tower

    # What the estimator reads of the network it trains.
    @property
    def projection(self) -> nn.Module | None:
        return self.main.projection

    @property
    def scaling(self) -> nn.Module | None:
        return self.main.scaling

    @property
    def class_padding(self) -> torch.Tensor:
        return self.main.class_padding

    def record_gates(self, record: bool) -> None:
        self.main.record_gates(record)

    def pop_gate_weights(self) -> list[torch.Tensor]:
        return self.main.pop_gate_weights()

    def shared_parameters(self) -> list[nn.Parameter]:
        return self.main.shared_parameters()

    def forward(
        self, x: torch.Tensor, return_gates: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        n_main = self.main.n_features
        if x.shape[1] == n_main:
            return self.main(x, return_gates=return_gates)
        out = self.main(x[:, :n_main], return_gates=return_gates)
        logits = out[0] if return_gates else out
        bias = self.bias_tower(x[:, n_main:])
        if logits.shape[0] != bias.shape[0]:
            # An ensemble in training: every member's rows, sample by sample.
            bias = bias.repeat_interleave(logits.shape[0] // bias.shape[0], dim=0)
        logits = logits + bias
        return (logits, out[1]) if return_gates else logits


def main_network(module: nn.Module) -> nn.Module:
    """The network that predicts: without the bias tower, if any."""
    return module.main if isinstance(module, BiasedNetwork) else module


def _as_list(columns: Any, name: str) -> list[Any]:
    if isinstance(columns, str | numbers.Integral):
        columns = [columns]
    values = list(np.asarray(columns, dtype=object).reshape(-1).tolist())
    if not values:
        raise ValueError(f"{name} must name at least one column.")
    for value in values:
        if isinstance(value, bool | np.bool_) or not isinstance(
            value, str | numbers.Integral
        ):
            raise ValueError(
                f"{name} must hold column names (str) or indices (int), got {value!r}."
            )
    return values


def _column_index(entry: Any, n_columns: int, names: list[str] | None) -> int:
    if isinstance(entry, str):
        if names is None:
            raise ValueError(
                f"bias_features names the column {entry!r}, but X has no feature "
                f"names; pass a DataFrame or column indices."
            )
        if entry not in names:
            raise ValueError(
                f"bias_features names the column {entry!r}, which X does not "
                f"have; its columns are {names}."
            )
        return names.index(entry)
    if not -n_columns <= entry < n_columns:
        raise ValueError(
            f"bias_features has the column index {entry}, out of range for X "
            f"with {n_columns} columns."
        )
    return int(entry) % n_columns


def _column_names(X: Any) -> list[str]:
    return [str(c) for c in X.columns]


def _drop_named(X: Any, names: list[str]) -> Any:
    if is_polars(X, "DataFrame"):
        return X.drop(names)
    return X.drop(columns=[c for c in X.columns if str(c) in names])


def _select_named(X: Any, names: list[str]) -> Any:
    if is_polars(X, "DataFrame"):
        return X.select(names).to_numpy()
    by_name = {str(c): c for c in X.columns}
    return X[[by_name[name] for name in names]].to_numpy()


def _take_columns(X: Any, columns: np.ndarray) -> Any:
    if hasattr(X, "iloc"):
        return X.iloc[:, columns]
    if is_polars(X, "DataFrame"):
        return X[:, columns.tolist()]
    return X[:, columns]


def _bias_values(values: Any) -> np.ndarray:
    """The bias columns as float32: numbers, NaN for a missing value."""
    try:
        values = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(
            "The bias_features columns must hold numbers (NaN for a missing "
            "value); one-hot encode categorical ones (e.g. the device) into "
            "0/1 columns."
        ) from None
    if np.isinf(values).any():
        raise ValueError("The bias_features columns must not hold infinite values.")
    return values
