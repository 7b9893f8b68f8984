"""The multi-task loss: per-task losses on labelled rows, then their weighting."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .network import gate_balance_penalty
from .weighting import FixedWeights, LossWeighting

__all__ = ["REGRESSION_LOSSES", "ROW_LOSSES", "LossTerms", "MultiTaskLoss"]


def _cross_entropy(outputs: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    log_proba = F.log_softmax(outputs, dim=-1)
    return -log_proba.gather(-1, codes.long().unsqueeze(-1)).squeeze(-1)


def _poisson_deviance(log_rate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The unit deviance 2 (y log(y / mu) - y + mu) with mu = exp(log_rate):
    # the Poisson likelihood's gradient, 0 at the optimum.
    return 2 * (torch.special.xlogy(y, y) - y * log_rate - y + torch.exp(log_rate))


#: Per-row loss name -> ``f(outputs, target)``: outputs ``(batch, m, width)``
#: and float targets ``(batch, m)`` of ``m`` tasks, losses ``(batch, m)``.
#: Losses of numeric targets read the first output column.
ROW_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": _cross_entropy,
    "squared_error": lambda outputs, y: (outputs[..., 0] - y).square(),
    "huber": lambda outputs, y: F.huber_loss(outputs[..., 0], y, reduction="none"),
    "poisson": lambda outputs, y: _poisson_deviance(outputs[..., 0], y),
}

#: Names of the per-row losses of tasks with numeric targets.
REGRESSION_LOSSES = tuple(name for name in ROW_LOSSES if name != "cross_entropy")


class MultiTaskLoss(nn.Module):
    r"""Per-task losses that skip missing targets, combined by a weighting.

    The loss is ``weighting(L)``, by default :math:`\sum_k \lambda_k L_k`,
    where :math:`L_k` is task :math:`k`'s loss averaged over the rows of the
    batch that have a target for task :math:`k` (weighted by the sample
    weights, if any). A task with no labelled row in the batch contributes 0.
    Each task has a per-row loss of :data:`ROW_LOSSES`: the cross-entropy
    (with optional class weights that multiply the loss of each row by its
    class's weight), or, on the first output column, the squared error, the
    Huber loss or the Poisson deviance (of a log rate).

    Parameters
    ----------
    task_losses : sequence of str
        The per-row loss of each task: a name of :data:`ROW_LOSSES`, or
        ``"regression"`` for ``regression_loss``.
    regression_loss : str, default="squared_error"
        The loss of the tasks whose loss is ``"regression"`` (Huber with
        ``delta=1`` on the standardised targets).
    weighting : LossWeighting, default=None
        How the per-task losses are combined; equal fixed weights by default.
    class_weights : sequence of (sequence of float or None), default=None
        For each task, one weight per class (cross-entropy tasks) or None.
    task_outputs : callable, default=None
        Maps the network's outputs to those the per-row losses read (same
        shape), for tasks whose outputs depend on other tasks'; None reads
        the network's outputs as they are.
    gate_balance : float, default=0.0
        Weight of the gate balance penalty
        (:func:`~sk_mmoe.nn.network.gate_balance_penalty`) of the gate
        weights the network recorded in the step
        (:meth:`~sk_mmoe.nn.network.MMoENetwork.pop_gate_weights`), added
        to ``weighting(L)``.

    Notes
    -----
    :meth:`terms` is what a training step minimises, everything included:
    the task losses of every ensemble member's rows, each task's share of
    a data-parallel global batch, the weighting and the gate balance
    penalty; :meth:`backward` back-propagates it through the weighting's
    :meth:`~sk_mmoe.nn.weighting.LossWeighting.backward` hook.

    Examples
    --------
    >>> import torch
    >>> from sk_mmoe.nn.losses import MultiTaskLoss
    >>> loss = MultiTaskLoss(["cross_entropy", "squared_error"])
    >>> outputs = torch.zeros(4, 2, 2)
    >>> target = torch.tensor([[0, 1.0], [1, float("nan")], [1, 3.0], [0, -1.0]])
    >>> round(loss(outputs, target).item(), 4)  # log(2) + (1 + 9 + 1) / 3
    4.3598
    """

    class_weights: torch.Tensor

    def __init__(
        self,
        task_losses: Sequence[str],
        regression_loss: str = "squared_error",
        weighting: LossWeighting | None = None,
        class_weights: Sequence[Sequence[float] | None] | None = None,
        task_outputs: Callable[[torch.Tensor], torch.Tensor] | None = None,
        gate_balance: float = 0.0,
    ) -> None:
        super().__init__()
        self.gate_balance = float(gate_balance)
        self._task_outputs = task_outputs
        if regression_loss not in REGRESSION_LOSSES:
            raise ValueError(
                f"regression_loss must be one of {REGRESSION_LOSSES}, got "
                f"{regression_loss!r}."
            )
        task_losses = [
            regression_loss if name == "regression" else name for name in task_losses
        ]
        unknown = set(task_losses) - set(ROW_LOSSES)
        if unknown:
            raise ValueError(f"unknown task losses {sorted(unknown)}")
        n_tasks = len(task_losses)
        self.regression_loss = regression_loss
        self.weighting = (
            FixedWeights([1.0] * n_tasks) if weighting is None else weighting
        )
        # The tasks of each loss, computed together (one call per loss).
        self._groups = []
        for name in dict.fromkeys(task_losses):
            tasks = [k for k, loss in enumerate(task_losses) if loss == name]
            self.register_buffer(
                f"_tasks_{name}",
                torch.tensor(tasks, dtype=torch.long),
                persistent=False,
            )
            self._groups.append((name, f"_tasks_{name}", len(tasks) == n_tasks))
        self._register_class_weights(
            [k for k, loss in enumerate(task_losses) if loss == "cross_entropy"],
            class_weights,
        )

    def _register_class_weights(
        self,
        classification: list[int],
        class_weights: Sequence[Sequence[float] | None] | None,
    ) -> None:
        """One row of class weights per cross-entropy task, padded with ones."""
        widths = [len(w) for w in class_weights or () if w is not None] or [1]
        table = torch.ones(len(classification), max(widths))
        if class_weights is not None:
            for row, k in enumerate(classification):
                weights = class_weights[k]
                if weights is not None:
                    table[row, : len(weights)] = torch.as_tensor(
                        weights, dtype=table.dtype
                    )
        self.register_buffer("class_weights", table)
        self._has_class_weights = bool((table != 1).any())

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
            task with a numeric target.
        target : Tensor of shape (batch, n_tasks)
            Float targets: class indices or encoded values, NaN where
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
        if self._task_outputs is not None:
            outputs = self._task_outputs(outputs)
        target = target.to(outputs.dtype)
        labelled = ~torch.isnan(target)
        # Missing entries read a finite stand-in and are then multiplied by 0.
        safe = torch.where(labelled, target, torch.zeros_like(target))
        row_weight = labelled.to(outputs.dtype)
        if sample_weight is not None:
            row_weight = row_weight * sample_weight.to(outputs.dtype).unsqueeze(1)
        per_row = torch.empty_like(target)
        for name, buffer, every in self._groups:
            tasks = getattr(self, buffer)
            true = safe if every else safe.index_select(1, tasks)
            loss = ROW_LOSSES[name](
                outputs if every else outputs.index_select(1, tasks), true
            )
            if name == "cross_entropy" and self._has_class_weights:
                rows = torch.arange(true.shape[1], device=true.device)
                loss = loss * self.class_weights[rows, true.long()]
            if every:
                per_row = loss
            else:
                per_row[:, tasks] = loss
        counts = row_weight.sum(dim=0)
        losses = (per_row * row_weight).sum(dim=0) / counts.clamp(min=1e-12)
        return losses, counts

    def terms(
        self,
        outputs: torch.Tensor,
        target: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
        gate_weights: Sequence[torch.Tensor] = (),
        global_counts: torch.Tensor | None = None,
        n_ranks: int = 1,
    ) -> LossTerms:
        """What a training (or validation) step minimises, term by term.

        Parameters
        ----------
        outputs, target, sample_weight
            As in :meth:`task_losses`; ``outputs`` may hold ``m`` rows per
            target row (an ensemble's members in training, sample by
            sample), each trained on the row's target.
        gate_weights : sequence of Tensor, default=()
            The gate weights the network recorded in the step.
        global_counts : Tensor of shape (n_tasks,), default=None
            In a data-parallel step, each task's labelled rows in the
            global batch, of which ``outputs`` is one of ``n_ranks`` slices.
        n_ranks : int, default=1
            Number of slices of the global batch.
        """
        n_members = outputs.shape[0] // max(1, target.shape[0])
        if n_members > 1:
            target = target.repeat_interleave(n_members, dim=0)
            if sample_weight is not None:
                sample_weight = sample_weight.repeat_interleave(n_members, dim=0)
            if global_counts is not None:
                global_counts = global_counts * n_members
        means, counts = self.task_losses(outputs, target, sample_weight)
        losses = means
        if global_counts is not None:
            # This slice's share of each task's mean over the global batch:
            # DDP averages the slices' gradients, so the share is scaled by
            # the number of slices; the average of the shares is then the
            # mean over the global batch, whatever each slice's count.
            global_counts = global_counts.to(means.device, means.dtype)
            losses = means * (counts * n_ranks / global_counts.clamp(min=1e-12))
        penalty = means.new_zeros(())
        if self.gate_balance > 0 and gate_weights:
            balance = torch.stack([gate_balance_penalty(w) for w in gate_weights])
            penalty = self.gate_balance * balance.mean()
        return LossTerms(means, counts, losses, penalty, self.weighting(losses))

    def backward(
        self, terms: LossTerms, shared_parameters: Sequence[nn.Parameter]
    ) -> None:
        """Back-propagate a training step's ``terms``, through the
        weighting's hook (which may read the ``shared_parameters``'
        per-task gradients)."""
        self.weighting.backward(terms.losses, terms.penalty, shared_parameters)

    def forward(
        self,
        outputs: torch.Tensor,
        target: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
        gate_weights: Sequence[torch.Tensor] = (),
    ) -> torch.Tensor:
        """Total loss of a batch (see :meth:`terms` for the arguments)."""
        return self.terms(outputs, target, sample_weight, gate_weights).total


@dataclass
class LossTerms:
    """The terms of a step's loss (see :meth:`MultiTaskLoss.terms`).

    ``means``: each task's mean loss over its labelled rows; ``counts``: the
    number (or sample weight) of those rows; ``losses``: each task's loss
    as minimised (its share of the global batch in a data-parallel step,
    else ``means``); ``penalty``: the weighted gate balance penalty;
    ``weighted``: the weighting of ``losses``.
    """

    means: torch.Tensor
    counts: torch.Tensor
    losses: torch.Tensor
    penalty: torch.Tensor
    weighted: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """What the step minimises."""
        return self.weighted + self.penalty
