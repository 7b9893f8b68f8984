"""The multi-task loss: a weighted sum of per-task cross-entropies."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MultiTaskCrossEntropy"]


class MultiTaskCrossEntropy(nn.Module):
    r"""Weighted sum of per-task cross-entropies that skips missing labels.

    The loss is :math:`\sum_k \lambda_k L_k`, where :math:`L_k` is the
    cross-entropy of task :math:`k` averaged over the rows of the batch that
    are labelled for task :math:`k`. A task with no labelled row in the batch
    contributes 0.

    Parameters
    ----------
    n_classes : sequence of int
        Number of classes of each task.
    task_weights : sequence of float, default=None
        :math:`\lambda_k` of each task; all ones by default.
    class_weights : sequence of sequence of float, default=None
        For each task, one weight per class that multiplies the loss of the
        rows of that class (sample weights, so the average is still taken
        over the labelled rows). All ones by default.
    ignore_index : int, default=-1
        Target value of an unlabelled entry.

    Examples
    --------
    >>> import torch
    >>> from sk_mmoe.losses import MultiTaskCrossEntropy
    >>> loss = MultiTaskCrossEntropy(n_classes=[2, 3], task_weights=[1.0, 0.5])
    >>> logits = torch.zeros(4, 2, 3)
    >>> logits[:, 0, 2] = float("-inf")  # task 0 has 2 classes
    >>> target = torch.tensor([[0, 2], [1, -1], [-1, 0], [1, 1]])
    >>> round(loss(logits, target).item(), 4)  # log(2) + 0.5 * log(3)
    1.2425
    """

    def __init__(
        self,
        n_classes: Sequence[int],
        task_weights: Sequence[float] | None = None,
        class_weights: Sequence[Sequence[float]] | None = None,
        ignore_index: int = -1,
    ) -> None:
        super().__init__()
        n_classes = [int(c) for c in n_classes]
        n_tasks, max_classes = len(n_classes), max(n_classes)
        self.n_classes = n_classes
        self.ignore_index = ignore_index
        self.register_buffer("task_weights", torch.ones(n_tasks))
        self.register_buffer("class_weights", torch.ones(n_tasks, max_classes))
        self.set_weights(task_weights, class_weights)

    def set_weights(
        self,
        task_weights: Sequence[float] | None = None,
        class_weights: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Replace the task weights and class weights (None: all ones)."""
        with torch.no_grad():
            self.task_weights.fill_(1.0)
            if task_weights is not None:
                self.task_weights.copy_(torch.as_tensor(task_weights))
            self.class_weights.fill_(1.0)
            if class_weights is not None:
                for k, weights in enumerate(class_weights):
                    self.class_weights[k, : len(weights)] = torch.as_tensor(
                        weights, dtype=self.class_weights.dtype
                    )

    def task_losses(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of each task and number of labelled rows of each task.

        Parameters
        ----------
        logits : Tensor of shape (batch, n_tasks, max_classes)
            Class logits, ``-inf`` in the padding of tasks with fewer classes.
        target : Tensor of shape (batch, n_tasks)
            Class indices, ``ignore_index`` where a label is missing.

        Returns
        -------
        losses : Tensor of shape (n_tasks,)
            Mean (class-weighted) cross-entropy over each task's labelled rows.
        counts : Tensor of shape (n_tasks,)
            Number of labelled rows of each task.
        """
        target = target.long()
        labelled = target != self.ignore_index
        # Unlabelled entries read class 0 (finite for every task) and are
        # then multiplied by 0: no -inf * 0 = NaN.
        safe_target = torch.where(labelled, target, torch.zeros_like(target))
        log_proba = F.log_softmax(logits, dim=-1)
        nll = -log_proba.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
        task_index = torch.arange(target.shape[1], device=target.device)
        weights = self.class_weights[task_index, safe_target] * labelled
        counts = labelled.sum(dim=0)
        losses = (nll * weights).sum(dim=0) / counts.clamp(min=1)
        return losses, counts

    def combine(self, losses: torch.Tensor) -> torch.Tensor:
        """The weighted sum :math:`\\sum_k \\lambda_k L_k` of task losses."""
        return (self.task_weights * losses).sum()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Total loss of a batch (see :meth:`task_losses` for the arguments)."""
        return self.combine(self.task_losses(logits, target)[0])
