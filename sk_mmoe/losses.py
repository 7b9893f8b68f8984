"""The multi-task loss: per-task losses on labelled rows, then their weighting."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .weighting import FixedWeights, LossWeighting

__all__ = ["REGRESSION_LOSSES", "MultiTaskLoss"]

#: Names of the per-row losses of regression tasks.
REGRESSION_LOSSES = ("squared_error", "huber")


class MultiTaskLoss(nn.Module):
    r"""Per-task losses that skip missing targets, combined by a weighting.

    The loss is ``weighting(L)``, by default :math:`\sum_k \lambda_k L_k`,
    where :math:`L_k` is task :math:`k`'s loss averaged over the rows of the
    batch that have a target for task :math:`k` (weighted by the sample
    weights, if any). A task with no labelled row in the batch contributes 0.
    Classification tasks use the cross-entropy (with optional class weights
    that multiply the loss of each row by its class's weight), regression
    tasks the squared error or the Huber loss of the first output column.

    Parameters
    ----------
    task_losses : sequence of {"cross_entropy", "regression"}
        The kind of loss of each task.
    regression_loss : {"squared_error", "huber"}, default="squared_error"
        The loss of the regression tasks (Huber with ``delta=1`` on the
        standardised targets).
    weighting : LossWeighting, default=None
        How the per-task losses are combined; equal fixed weights by default.
    class_weights : sequence of (sequence of float or None), default=None
        For each task, one weight per class (classification tasks) or None.
    gate_balance : float, default=0.0
        Weight of the network's gate balance penalty
        (:meth:`~sk_mmoe.network.MMoENetwork.pop_gate_balance`), which the
        training loop adds to ``weighting(L)``.

    Examples
    --------
    >>> import torch
    >>> from sk_mmoe.losses import MultiTaskLoss
    >>> loss = MultiTaskLoss(["cross_entropy", "regression"])
    >>> outputs = torch.zeros(4, 2, 2)
    >>> target = torch.tensor([[0, 1.0], [1, float("nan")], [1, 3.0], [0, -1.0]])
    >>> round(loss(outputs, target).item(), 4)  # log(2) + (1 + 9 + 1) / 3
    4.3598
    """

    def __init__(
        self,
        task_losses: Sequence[str],
        regression_loss: str = "squared_error",
        weighting: LossWeighting | None = None,
        class_weights: Sequence[Sequence[float] | None] | None = None,
        gate_balance: float = 0.0,
    ) -> None:
        super().__init__()
        self.gate_balance = float(gate_balance)
        task_losses = list(task_losses)
        unknown = set(task_losses) - {"cross_entropy", "regression"}
        if unknown:
            raise ValueError(f"unknown task losses {sorted(unknown)}")
        if regression_loss not in REGRESSION_LOSSES:
            raise ValueError(
                f"regression_loss must be one of {REGRESSION_LOSSES}, got "
                f"{regression_loss!r}."
            )
        n_tasks = len(task_losses)
        self.regression_loss = regression_loss
        self.weighting = (
            FixedWeights([1.0] * n_tasks) if weighting is None else weighting
        )
        classification = [
            k for k, kind in enumerate(task_losses) if kind != "regression"
        ]
        regression = [k for k, kind in enumerate(task_losses) if kind == "regression"]
        self.register_buffer(
            "classification_tasks", torch.tensor(classification, dtype=torch.long)
        )
        self.register_buffer(
            "regression_tasks", torch.tensor(regression, dtype=torch.long)
        )
        self._all_classification = len(classification) == n_tasks
        self._all_regression = len(regression) == n_tasks
        widths = [len(w) for w in class_weights or () if w is not None] or [1]
        table = torch.ones(len(classification), max(widths))
        if class_weights is not None:
            for row, k in enumerate(classification):
                if class_weights[k] is not None:
                    table[row, : len(class_weights[k])] = torch.as_tensor(
                        class_weights[k], dtype=table.dtype
                    )
        self.register_buffer("class_weights", table)
        self._has_class_weights = bool((table != 1).any())

    def _select(self, tensor: torch.Tensor, tasks: torch.Tensor, every: bool):
        return tensor if every else tensor.index_select(1, tasks)

    def task_losses(
        self,
        outputs: torch.Tensor,
        target: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of each task and total weight of its labelled rows.

        Parameters
        ----------
        outputs : Tensor of shape (batch, n_tasks, width)
            The network's outputs: class logits (``-inf`` in the padding of
            tasks with fewer classes), or the prediction in column 0 for a
            regression task.
        target : Tensor of shape (batch, n_tasks)
            Float targets: class indices or standardised values, NaN where
            missing.
        sample_weight : Tensor of shape (batch,), default=None
            Row weights.

        Returns
        -------
        losses : Tensor of shape (n_tasks,)
            Each task's mean loss over its labelled rows.
        counts : Tensor of shape (n_tasks,)
            Number (or total sample weight) of each task's labelled rows.
        """
        target = target.to(outputs.dtype)
        labelled = ~torch.isnan(target)
        # Missing entries read a finite stand-in and are then multiplied by 0.
        safe = torch.where(labelled, target, torch.zeros_like(target))
        row_weight = labelled.to(outputs.dtype)
        if sample_weight is not None:
            row_weight = row_weight * sample_weight.to(outputs.dtype).unsqueeze(1)
        per_row = torch.empty_like(target)
        if self.classification_tasks.numel():
            every = self._all_classification
            logits = self._select(outputs, self.classification_tasks, every)
            codes = self._select(safe, self.classification_tasks, every).long()
            log_proba = F.log_softmax(logits, dim=-1)
            nll = -log_proba.gather(-1, codes.unsqueeze(-1)).squeeze(-1)
            if self._has_class_weights:
                rows = torch.arange(codes.shape[1], device=codes.device)
                nll = nll * self.class_weights[rows, codes]
            if every:
                per_row = nll
            else:
                per_row[:, self.classification_tasks] = nll
        if self.regression_tasks.numel():
            every = self._all_regression
            predicted = self._select(outputs[..., 0], self.regression_tasks, every)
            true = self._select(safe, self.regression_tasks, every)
            if self.regression_loss == "huber":
                error = F.huber_loss(predicted, true, reduction="none")
            else:
                error = (predicted - true).square()
            if every:
                per_row = error
            else:
                per_row[:, self.regression_tasks] = error
        counts = row_weight.sum(dim=0)
        losses = (per_row * row_weight).sum(dim=0) / counts.clamp(min=1e-12)
        return losses, counts

    def forward(
        self,
        outputs: torch.Tensor,
        target: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Total loss of a batch (see :meth:`task_losses` for the arguments)."""
        return self.weighting(self.task_losses(outputs, target, sample_weight)[0])
