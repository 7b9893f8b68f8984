"""The fitted state of an estimator: what ``fit`` learnt, as one object.

:class:`FittedData` is what a fit learnt about the data: the tasks (their
types, classes or standardisation, and losses), the network specification,
the categorical encoder of ``X``, whether ``y`` was 1-D, and the names of
the features. :class:`FittedState` is that and the trained skorch net.

An estimator hands out its state through one method,
``_fitted_state()`` (a NotFittedError when unfitted), and publishes a new
one in one place, ``_set_fitted_state``. :func:`sk_mmoe.save_model`,
:func:`sk_mmoe.export_onnx` and the scorers of :mod:`sk_mmoe.metrics` read
only this object; :class:`NetState` holds the trained net's tensors as a
file stores them, from which the estimator's ``_restore`` rebuilds the net.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from skorch.history import History

from .nn._bias import main_network

if TYPE_CHECKING:
    from torch import nn

    from ._building import NetworkSpec
    from ._data.features import CategoricalEncoder
    from ._fitting.training import MultiTaskNet
    from ._tasks import Task

__all__ = [
    "FittedData",
    "FittedState",
    "NetState",
    "check_shapes",
    "epochs_of",
    "load_net_state",
]


@dataclass(frozen=True)
class FittedData:
    """What a fit learnt about its data, besides the network's weights.

    ``tasks`` are the fitted task objects, in the order of the columns of
    ``y``; ``spec`` the specification the network was built from;
    ``encoder`` the categorical encoder of ``X`` (None without categorical
    or list columns); ``single_task`` whether ``y`` was 1-D;
    ``feature_names_in`` the column names of ``X`` (None without names).
    """

    tasks: tuple[Task, ...]
    spec: NetworkSpec
    encoder: CategoricalEncoder | None
    single_task: bool
    feature_names_in: np.ndarray | None

    @property
    def n_features_in(self) -> int:
        """The number of columns of ``X`` in fit (without bias columns)."""
        return self.spec.n_features

    def attributes(self) -> tuple[dict[str, Any], list[str]]:
        """The estimator's attributes that describe this fit, by name, and
        the names of those it must not have (``feature_names_in_`` without
        feature names, ``bias_features_in_`` without a bias tower)."""
        bias = self.spec.bias_columns
        optional = {
            "feature_names_in_": self.feature_names_in,
            "bias_features_in_": None if bias is None else bias.described,
        }
        attributes = {
            "_tasks": list(self.tasks),
            "_spec": self.spec,
            "_encoder": self.encoder,
            "_single_task": bool(self.single_task),
            "n_features_in_": self.n_features_in,
            **{name: value for name, value in optional.items() if value is not None},
            "task_names_": [task.name for task in self.tasks],
            "task_types_": [task.kind for task in self.tasks],
            "n_outputs_": len(self.tasks),
        }
        return attributes, [name for name in optional if name not in attributes]

    @property
    def input_width(self) -> int:
        """The width of the matrix the network reads (list codes included)."""
        return self.n_features_in if self.encoder is None else self.encoder.width


@dataclass(frozen=True)
class FittedState:
    """The fitted state of an estimator: its :class:`FittedData` and net."""

    data: FittedData
    net: MultiTaskNet

    @property
    def tasks(self) -> tuple[Task, ...]:
        return self.data.tasks

    @property
    def module(self) -> nn.Module:
        """The trained network that predicts (without a bias tower)."""
        return main_network(self.net.module_)


@dataclass(frozen=True)
class NetState:
    """The tensors of a trained net, and its history, as a file holds them.

    ``module``, ``criterion``, ``optimizer`` and ``sparse_optimizer`` are
    ``state_dict()`` of the net's module (with its bias tower), loss,
    optimizer and sparse optimizer (None without one); ``history`` its
    epochs (without their batches).
    """

    module: dict[str, Any]
    criterion: dict[str, Any]
    optimizer: dict[str, Any]
    sparse_optimizer: dict[str, Any] | None
    history: list[dict[str, Any]]

    @classmethod
    def of(cls, net: MultiTaskNet) -> NetState:
        """The state of ``net``."""
        sparse = getattr(net, "optimizer_sparse_", None)
        return cls(
            module=net.module_.state_dict(),
            criterion=net.criterion_.state_dict(),
            optimizer=net.optimizer_.state_dict(),
            sparse_optimizer=None if sparse is None else sparse.state_dict(),
            history=epochs_of(net),
        )


def epochs_of(net: MultiTaskNet) -> list[dict[str, Any]]:
    """The history of ``net``, each epoch without its batches."""
    return [
        {key: value for key, value in epoch.items() if key != "batches"}
        for epoch in net.history
    ]


def check_shapes(expected: dict[str, Any], stored: dict[str, Any], what: str) -> None:
    """Refuse stored tensors whose names or shapes differ from ``expected``
    (``what``: the stored tensors, named in the message)."""
    if set(expected) != set(stored):
        raise ValueError(
            f"The {what} do not match the network built from its parameters: "
            f"missing {sorted(set(expected) - set(stored))}, unexpected "
            f"{sorted(set(stored) - set(expected))}."
        )
    for key, tensor in expected.items():
        value = stored[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else value
            raise ValueError(
                f"The {what} do not match the network built from its "
                f"parameters: {key!r} is {shape}, expected {tuple(tensor.shape)}."
            )


def load_net_state(net: MultiTaskNet, saved: NetState, source: str) -> None:
    """Load ``saved`` into the initialised ``net`` (its shapes checked), and
    leave it in eval mode, as after fit; a ValueError naming ``source`` if
    the states do not fit the net."""
    try:
        net.module_.load_state_dict(saved.module)
        net.criterion_.load_state_dict(saved.criterion)
        net.optimizer_.load_state_dict(saved.optimizer)
        sparse = getattr(net, "optimizer_sparse_", None)
        if (saved.sparse_optimizer is None) != (sparse is None):
            raise ValueError("the sparse optimizer's state and the network differ")
        if sparse is not None:
            sparse.load_state_dict(saved.sparse_optimizer)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(
            f"The state in {source} does not match the network built from its "
            f"parameters: {exc}"
        ) from None
    net.history_ = History({**epoch, "batches": []} for epoch in saved.history)
    net.module_.eval()  # As after fit: prediction never switches modes.
