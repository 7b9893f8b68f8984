"""Missing numeric values: a learned fill per numeric column.

A missing numeric value (NaN) is replaced by a learned value of its column,
after the robust scaling (see :class:`sk_mmoe.nn.network.NumericScaling`),
where it starts at 0, the column's median. The periodic embedding that
follows (``numeric_embedding``) maps the fill to a vector of its own, so
the network can learn a fill apart from every observed value (the role of
a missing-value indicator) where that helps, and the median where it does
not.
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
        one) of the numeric columns replaced by their fill."""
        return torch.where(missing & self.numeric, self.fill, x)
