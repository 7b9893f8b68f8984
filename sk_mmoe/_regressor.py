"""MultiTaskMMoERegressor: every column of ``Y`` a continuous target."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import RegressorMixin

from . import _docs
from ._base import BaseMultiTaskMMoE
from ._checks import store_params
from ._compat import StrOptions, fit_context
from ._data.targets import TargetColumns
from ._tasks import Task
from .nn.losses import REGRESSION_LOSSES

__all__ = ["MultiTaskMMoERegressor"]

LOSS_PARAMETER = """\
loss : {"squared_error", "huber", "poisson"}, default="squared_error"
    Loss of the regression tasks, on their standardised targets: the squared
    error, or the Huber loss (``delta=1``, i.e. one standard deviation of the
    task's target), which is less sensitive to heavy tails such as watch
    times. ``"poisson"`` makes them count tasks (type ``"poisson"``):
    non-negative targets, a log link (predictions are never negative) and
    the Poisson deviance as loss; ``score`` is then their :math:`D^2`, the
    fraction of Poisson deviance explained."""


class MultiTaskMMoERegressor(RegressorMixin, BaseMultiTaskMMoE):
    __doc__ = _docs.fill(
        """Multi-gate Mixture-of-Experts regressor for several targets at once.

    One network predicts every column ("task") of a target matrix ``Y`` of
    continuous values: experts shared by all tasks, a softmax gate per task
    that mixes them, and a tower per task with one output (Ma et al., 2018).
    Training minimises :math:`\\sum_k \\lambda_k L_k`, where :math:`L_k` is
    the squared error (or Huber loss) of task :math:`k` averaged over the
    rows that have a target for that task. Each task's target is
    standardised with the mean and standard deviation of its labelled
    entries in ``fit``, so that tasks in seconds and in fractions train
    together; predictions are returned in the original units.

    ``n_experts=1`` is the Shared-Bottom model and ``shared_gate=True`` the
    One-gate MoE; ``n_task_experts`` and ``n_levels`` give CGC and PLE.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
{architecture}

{loss}

    missing_target : float or None, default=None
        Value of ``Y`` that marks a missing target in every task, besides
        NaN (always missing), as ``missing_label`` does in the other
        estimators; no number is a marker by default, since ``-1`` is a
        regression value. A missing entry is left out of its task's loss
        only.

{bias}

{training}

    Attributes
    ----------
    target_mean_ : ndarray of shape (n_tasks,)
        Mean of each task's labelled targets, used to standardise them.

    target_scale_ : ndarray of shape (n_tasks,)
        Standard deviation of each task's labelled targets (1 for a constant
        target).

{attributes}

    See Also
    --------
    MultiTaskMMoEClassifier : The same model for classification tasks.
    MultiTaskMMoE : The same model for tasks of different types.
    sklearn.multioutput.MultiOutputRegressor : One independent model per task.

    Notes
    -----
    A 1-D ``y`` is a single task: ``predict`` then returns a 1-D array.

    Examples
    --------
    >>> from sk_mmoe import MultiTaskMMoERegressor
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> X, Y = make_task_correlation(500, correlation=0.8, n_features=10,
    ...                              target_type="continuous", random_state=0)
    >>> reg = MultiTaskMMoERegressor(max_epochs=5, random_state=0).fit(X, Y)
    >>> reg.predict(X[:3]).shape
    (3, 2)
    >>> reg.task_types_
    ['regression', 'regression']
    """,
        numeric_scaling='"robust_unclipped"',
        dropout="0.0",
        loss=LOSS_PARAMETER,
    )

    _parameter_constraints: dict = {
        **BaseMultiTaskMMoE._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES))],
        "missing_target": [numbers.Real, None],
    }

    def __init__(
        self,
        n_experts: int = 4,
        *,
        expert_hidden_layer_sizes: Sequence[int] = (32,),
        tower_hidden_layer_sizes: Sequence[int] = (16,),
        n_task_experts: int = 0,
        n_levels: int = 1,
        shared_gate: bool = False,
        gate_dropout: float = 0.1,
        dropout: float = 0.0,
        gate: str = "softmax",
        gate_k: int = 2,
        gate_temperature: float = 2.0,
        gate_balance: float = 0.0,
        expert_activation: str = "relu",
        expert_normalization: str | None = None,
        ensemble_size: int = 1,
        task_weights: Sequence[float] | Mapping[str, float] | str | None = None,
        loss: str = "squared_error",
        missing_target: float | None = None,
        bias_features: Sequence[int | str] | Mapping[str, Any] | None = None,
        bias_dropout: float = 0.1,
        optimizer: str | type = "adam",
        lr: float | str = "auto",
        lr_schedule: str | None = "auto",
        weight_decay: float = 1e-4,
        batch_size: int | str = "auto",
        max_epochs: int | str = "auto",
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        tol: float = 1e-4,
        refit: bool = False,
        warm_start: bool = False,
        callbacks: list | None = None,
        categorical_features: str | Sequence[Any] | None = "from_dtype",
        max_categories: int = 10_000,
        sequence_features: dict | None = None,
        sequence_pooling: str = "auto",
        max_sequence_length: int = 50,
        numeric_scaling: str | None = "robust_unclipped",
        numeric_missing: str = "learn",
        numeric_embedding: str | None = "auto",
        device: str | torch.device = "cpu",
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        store_params(self, locals())

    def _missing_marker(self) -> Any:
        return self.missing_target

    def _task_loss(self, kind: str, name: str) -> str | None:
        return self.loss

    def _task_kinds(self, targets: TargetColumns) -> list[str]:
        return ["regression"] * len(targets.names)

    def _set_task_attributes(self, tasks: list[Task], single_task: bool) -> None:
        self.target_mean_ = np.array([task.mean for task in tasks])
        self.target_scale_ = np.array([task.scale for task in tasks])

    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None
    ) -> MultiTaskMMoERegressor:
        """Run one epoch of training on ``(X, Y)``.

        The first call standardises each task with the mean and standard
        deviation of its targets in that call's chunk.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Targets, one column per task, as in :meth:`fit`.

        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, as in :meth:`fit`.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit_call(X, y, sample_weight, partial=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted target of every task, in the targets' original units.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_tasks) or (n_samples,)
            Float64 predictions; 1-D if fitted on a 1-D ``y``.
        """
        return self._predict(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean over tasks of each task's R^2 on its labelled rows.

        For every task, the rows whose target in ``Y`` is NaN (or
        ``missing_target``) are dropped and the coefficient of determination
        :math:`R^2` of :meth:`predict` is computed on the others (weighted by
        ``sample_weight`` if given). The result is the unweighted mean of
        these over the tasks: for a single task, the ordinary :math:`R^2`.
        A count task (``loss="poisson"``) is scored by its :math:`D^2`, the
        fraction of Poisson deviance explained.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True targets, with missing entries as in :meth:`fit`.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean per-task :math:`R^2`.
        """
        return self._score(X, y, sample_weight)
