r"""Loss weighting strategies: how the per-task losses add up to one loss.

A strategy is a :class:`torch.nn.Module` that maps the vector of per-task
losses :math:`(L_1, \dots, L_K)` to the total loss that is minimised, and
reports the weight it currently gives each task. Learned strategies hold
their parameters as module parameters, so the optimizer trains them with the
network. A new strategy is one subclass of :class:`LossWeighting` added to
:data:`WEIGHTING_STRATEGIES`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "WEIGHTING_STRATEGIES",
    "FixedWeights",
    "GradNormWeights",
    "LossWeighting",
    "PCGradWeights",
    "UncertaintyWeights",
]


class LossWeighting(nn.Module):
    """Base class: ``forward(losses) -> total``; ``weights()`` per task.

    Two hooks let a strategy act on training beyond the total it returns:
    :meth:`backward`, called once per training step, back-propagates the
    step's loss and may read (and set) the gradients of the parameters
    every task shares; :meth:`epoch_end` is called after every epoch with
    the epoch's mean training loss per task. A strategy whose
    :meth:`backward` reads per-task gradients sets ``reads_task_gradients``.
    """

    #: Whether :meth:`backward` reads each task's gradients.
    reads_task_gradients = False

    def weights(self) -> torch.Tensor:
        """The weight each task's loss currently gets, shape ``(n_tasks,)``."""
        raise NotImplementedError

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.weights() * losses).sum()

    def backward(
        self,
        losses: torch.Tensor,
        penalty: torch.Tensor,
        shared_parameters: Sequence[nn.Parameter],
    ) -> None:
        """Back-propagate a training step's ``losses`` (per task) and the
        ``penalty`` added to their weighting.

        ``shared_parameters`` are those every task's loss reaches (the
        expert levels). By default, the gradient of ``self(losses) +
        penalty``.
        """
        (self(losses) + penalty).backward()

    def epoch_end(self, losses: np.ndarray | None) -> None:
        """After every epoch: its mean training loss per task (None when it
        had no training batch)."""


def _task_gradients(
    losses: torch.Tensor, parameters: Sequence[nn.Parameter]
) -> torch.Tensor:
    """``(n_tasks, n_params)``: each task's gradient over ``parameters``,
    flattened (zero for a task whose loss does not reach them)."""
    rows = []
    for loss in losses:
        grads = (
            torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
            if loss.requires_grad
            else [None] * len(parameters)
        )
        rows.append(
            torch.cat(
                [
                    torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
                    for p, g in zip(parameters, grads, strict=True)
                ]
            )
        )
    return torch.stack(rows)


class FixedWeights(LossWeighting):
    r"""The weighted sum :math:`\sum_k \lambda_k L_k` with fixed :math:`\lambda_k`.

    Parameters
    ----------
    task_weights : sequence of float
        :math:`\lambda_k` of each task.

    Examples
    --------
    >>> import torch
    >>> from sk_mmoe.nn.weighting import FixedWeights
    >>> FixedWeights([1.0, 0.5])(torch.tensor([2.0, 2.0])).item()
    3.0
    """

    task_weights: torch.Tensor

    def __init__(self, task_weights: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer(
            "task_weights", torch.as_tensor(task_weights, dtype=torch.float32)
        )

    def weights(self) -> torch.Tensor:
        return self.task_weights


class UncertaintyWeights(LossWeighting):
    r"""Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla, 2018).

    Each task has a learned log-variance :math:`s_k`. A regression task's
    squared error contributes :math:`\frac{1}{2} e^{-s_k} L_k + \frac{1}{2}
    s_k` (the Gaussian likelihood), a classification task's cross-entropy
    :math:`e^{-s_k} L_k + \frac{1}{2} s_k` (the softmax likelihood with a
    temperature). Tasks whose loss stays large get a large :math:`s_k` and so
    a small weight, which balances losses of different units (a squared error
    in seconds next to a cross-entropy) without tuning ``task_weights``.

    The :math:`s_k` start at 0 (weights 1/2 for regression, 1 for
    classification) and are trained by the network's optimizer.

    Parameters
    ----------
    regression : sequence of bool or float
        Whether each task is a regression task (factor 1/2), or the factor
        of each task's loss (1/2 for a Gaussian likelihood, 1 otherwise).

    References
    ----------
    .. [1] A. Kendall, Y. Gal and R. Cipolla, "Multi-Task Learning Using
       Uncertainty to Weigh Losses for Scene Geometry and Semantics",
       CVPR 2018.

    Examples
    --------
    >>> import torch
    >>> from sk_mmoe.nn.weighting import UncertaintyWeights
    >>> weighting = UncertaintyWeights([True, False])
    >>> weighting.weights().tolist()
    [0.5, 1.0]
    >>> weighting(torch.tensor([2.0, 2.0])).item()  # 0.5 * 2 + 1 * 2 + 0
    3.0
    """

    scale: torch.Tensor

    def __init__(self, regression: Sequence[bool | float]) -> None:
        super().__init__()
        scale = torch.as_tensor(list(regression))
        if scale.dtype == torch.bool:
            # exp(-s) times 1/2 (regression) or 1 (classification).
            scale = torch.where(scale, 0.5, 1.0)
        self.log_variance = nn.Parameter(torch.zeros(len(scale)))
        self.register_buffer("scale", scale.to(torch.float32))

    def weights(self) -> torch.Tensor:
        return self.scale * torch.exp(-self.log_variance)

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.weights() * losses + 0.5 * self.log_variance).sum()


class GradNormWeights(LossWeighting):
    r"""GradNorm (Chen et al., 2018): weights that balance the tasks'
    gradient norms on the shared parameters.

    The total is :math:`\sum_k w_k L_k`, with :math:`w = K
    \operatorname{softmax}(a)` (positive, summing to the number of tasks
    :math:`K`). At each step, with :math:`G_k = w_k \lVert \nabla L_k
    \rVert` the norm of task :math:`k`'s weighted gradient on the shared
    parameters, :math:`r_k` its loss relative to its first step's, divided
    by the tasks' mean of that ratio, and :math:`\bar G` the mean norm, the
    weights follow the gradient of :math:`\sum_k |G_k - \bar G
    r_k^\alpha|` (the targets held constant): a task that trains slower
    than the others gets a larger gradient. The network is trained on
    :math:`\sum_k w_k L_k` with the weights held constant. Each step
    costs one backward pass per task more.

    Parameters
    ----------
    tasks : sequence
        One entry per task (its loss factor; only the number is used).
    alpha : float, default=1.5
        How strongly slow tasks are favoured (the original's value).

    References
    ----------
    .. [1] Z. Chen, V. Badrinarayanan, C.-Y. Lee and A. Rabinovich,
       "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
       Multitask Networks", ICML 2018.

    Examples
    --------
    >>> from sk_mmoe.nn.weighting import GradNormWeights
    >>> GradNormWeights([1.0, 1.0]).weights().tolist()
    [1.0, 1.0]
    """

    reads_task_gradients = True
    initial_losses: torch.Tensor

    def __init__(self, tasks: Sequence[Any], alpha: float = 1.5) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.logits = nn.Parameter(torch.zeros(len(tasks)))
        self.register_buffer("initial_losses", torch.full((len(tasks),), math.nan))

    def weights(self) -> torch.Tensor:
        return len(self.logits) * torch.softmax(self.logits, dim=0)

    def backward(
        self,
        losses: torch.Tensor,
        penalty: torch.Tensor,
        shared_parameters: Sequence[nn.Parameter],
    ) -> None:
        detached = losses.detach()
        with torch.no_grad():
            # A task's first labelled step sets its reference loss.
            unset = torch.isnan(self.initial_losses) & (detached > 0)
            self.initial_losses.copy_(torch.where(unset, detached, self.initial_losses))
        norms = _task_gradients(losses, shared_parameters).norm(dim=1)
        weights = self.weights()
        grad_norms = weights * norms
        ratio = detached / self.initial_losses
        ratio = torch.where(torch.isfinite(ratio), ratio, torch.ones_like(ratio))
        ratio = ratio / ratio.mean().clamp(min=1e-12)
        target = (grad_norms.mean() * ratio**self.alpha).detach()
        balance = (grad_norms - target).abs().sum()
        (self.logits.grad,) = torch.autograd.grad(balance, [self.logits])
        ((weights.detach() * losses).sum() + penalty).backward()


class PCGradWeights(FixedWeights):
    r"""PCGrad (Yu et al., 2020): equal weights, with conflicting task
    gradients projected apart on the shared parameters.

    Each task's gradient :math:`g_k` on the shared parameters is, for every
    other task :math:`j` in a random order whose gradient conflicts with it
    (:math:`g_k \cdot g_j < 0`), replaced by its projection on the normal
    plane of :math:`g_j`, :math:`g_k - \frac{g_k \cdot g_j}{\lVert g_j
    \rVert^2} g_j`; the shared parameters get the sum of the projected
    gradients, the other parameters the gradient of :math:`\sum_k L_k`.
    Each step costs one backward pass per task more.

    Parameters
    ----------
    tasks : sequence
        One entry per task (only the number is used).

    References
    ----------
    .. [1] T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman and C. Finn,
       "Gradient Surgery for Multi-Task Learning", NeurIPS 2020.

    Examples
    --------
    >>> from sk_mmoe.nn.weighting import PCGradWeights
    >>> PCGradWeights([1.0, 1.0]).weights().tolist()
    [1.0, 1.0]
    """

    reads_task_gradients = True

    def __init__(self, tasks: Sequence[Any]) -> None:
        super().__init__([1.0] * len(tasks))

    def backward(
        self,
        losses: torch.Tensor,
        penalty: torch.Tensor,
        shared_parameters: Sequence[nn.Parameter],
    ) -> None:
        grads = _task_gradients(losses, shared_parameters)
        projected = grads.clone()
        for k in range(len(grads)):
            for j in torch.randperm(len(grads)).tolist():
                dot = projected[k] @ grads[j]
                if j != k and dot < 0:
                    projected[k] -= dot / grads[j].square().sum() * grads[j]
        (losses.sum() + penalty).backward()
        # The shared parameters: the projected sum instead of the plain one.
        correction = projected.sum(0) - grads.sum(0)
        offset = 0
        for p in shared_parameters:
            n = p.numel()
            if p.grad is not None:
                p.grad += correction[offset : offset + n].view_as(p)
            offset += n


#: ``task_weights`` strings -> the strategy they select.
WEIGHTING_STRATEGIES: dict[str, type[LossWeighting]] = {
    "uncertainty": UncertaintyWeights,
    "gradnorm": GradNormWeights,
    "pcgrad": PCGradWeights,
}
