"""Missing numeric values: a learned fill per numeric column.

A missing numeric value (NaN) is replaced by a learned value of its column,
after the robust scaling (see :class:`sk_mmoe.nn.network.NumericScaling`),
where it starts at 0, the column's median. The periodic embedding that
follows (``numeric_embedding``) maps the fill to a vector of its own, so
the network can learn a fill apart from every observed value (the role of
a missing-value indicator) where that helps, and the median where it does
not.

A training batch without a missing numeric value leaves the input as it is:
the fill's gradient is then zero, which :meth:`MissingFill.zero_gradient`
gives it directly, so the backward pass does not compute the gradient of
the first layers with respect to their input just to find that zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MissingFill"]


class MissingFill(nn.Module):
    """Replace NaN in the numeric columns by a learned value per column.

    Parameters
    ----------
    n_features : int
        Number of input columns.
    categorical_columns : sequence of int, default=()
        The columns that are codes, never NaN: left as they are.

    Attributes
    ----------
    fill : Parameter of shape (n_features,)
        The value that replaces a missing entry of each column (0 at first;
        unused for the categorical columns).
    """

    numeric: torch.Tensor

    def __init__(self, n_features: int, categorical_columns: Sequence[int] = ()):
        super().__init__()
        mask = torch.ones(n_features, dtype=torch.bool)
        if len(categorical_columns):
            mask[torch.as_tensor(list(categorical_columns))] = False
        self.register_buffer("numeric", mask, persistent=False)
        self.fill = nn.Parameter(torch.zeros(n_features))

    def forward(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """``x`` with its ``missing`` entries (a mask of the input before
        the scaling, so that a NaN the scaling makes of an overflow stays
        one) of the numeric columns replaced by their fill.

        In a training step (see :meth:`skips`) without a missing entry,
        ``x`` itself, which does not require a gradient: the caller then
        passes its outputs through :meth:`zero_gradient`.
        """
        missing = missing & self.numeric
        if self.skips(x) and not bool(missing.any()):
            return x
        return torch.where(missing, self.fill, x)

    def skips(self, x: torch.Tensor) -> bool:
        """Whether a batch without missing values may leave ``x`` untouched:
        in a training step that computes the fill's gradient, for an input
        that needs no gradient itself, outside tracing and compilation (an
        exported graph keeps the fill)."""
        return (
            self.training
            and torch.is_grad_enabled()
            and self.fill.requires_grad
            and not x.requires_grad
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
        )

    def zero_gradient(self, outputs: torch.Tensor) -> torch.Tensor:
        """``outputs`` as they are, giving the fill the zero gradient of a
        batch without missing values (an optimizer then steps it as it
        would after the fill: its moments decay, weight decay applies)."""
        return _ZeroGradient.apply(outputs, self.fill)


class _ZeroGradient(torch.autograd.Function):
    """Identity on ``outputs``; a zero gradient for ``parameter``."""

    @staticmethod
    def forward(ctx, outputs: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(parameter)
        return outputs.view_as(outputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (parameter,) = ctx.saved_tensors
        return grad, torch.zeros_like(parameter)
