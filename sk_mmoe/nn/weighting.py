r"""Loss weighting strategies: how the per-task losses add up to one loss.

A strategy is a :class:`torch.nn.Module` that maps the vector of per-task
losses :math:`(L_1, \dots, L_K)` to the total loss that is minimised, and
reports the weight it currently gives each task. Learned strategies hold
their parameters as module parameters, so the optimizer trains them with the
network. A new strategy is one subclass of :class:`LossWeighting` added to
:data:`WEIGHTING_STRATEGIES`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "WEIGHTING_STRATEGIES",
    "FixedWeights",
    "LossWeighting",
    "UncertaintyWeights",
]


class LossWeighting(nn.Module):
    """Base class: ``forward(losses) -> total``; ``weights()`` per task."""

    def weights(self) -> torch.Tensor:
        """The weight each task's loss currently gets, shape ``(n_tasks,)``."""
        raise NotImplementedError

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.weights() * losses).sum()


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


#: ``task_weights`` strings -> the strategy they select.
WEIGHTING_STRATEGIES: dict[str, type[LossWeighting]] = {
    "uncertainty": UncertaintyWeights,
}
