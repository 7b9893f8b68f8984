"""Pooling the values of list columns (a user's history) into vectors.

Each list column arrives as ``max_length`` code columns (see
:mod:`sk_mmoe._data.sequences`; :data:`~sk_mmoe._data.sequences.PAD_CODE`
after a row's values). Its values are embedded, with a table of its own or
with the table of a categorical column (its *target*: a past item and a
candidate item are then one vector), and pooled per row:

* ``"mean"`` and ``"sum"`` of the vectors of the row's values (zeros for a
  row without values). A mean with a target also gives its product with the
  candidate's vector (the row's value of the target column), element by
  element: summed, the mean similarity of the candidate to the past values,
  which the experts read through one linear layer instead of having to
  learn a product;
* ``"attention"``, for a list with a target: target attention, as in DIN
  (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction",
  KDD 2018), scored by the similarity of each past value to the candidate:
  ``softmax(t * sqrt(dim) * past . candidate)`` over the row's values, with
  a learned sharpness ``t``, so that the past value most like the candidate
  can take most of the weight (a soft maximum). The pooled vector and its
  product with the candidate are read beside the mean and its product: a
  history otherwise serves as a user ID, and the attention alone overfits
  the users seen in ``fit``.

In training, each past value is dropped with probability
:data:`HISTORY_DROPOUT`, for the same reason. Only a row's own values enter
its pool (the padding is masked), so a row's prediction does not depend on
the lengths of the other rows' lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["HISTORY_DROPOUT", "SequencePooling"]

#: Probability of dropping each past value of a list in training.
HISTORY_DROPOUT = 0.1

Shared = Callable[[int, torch.Tensor], torch.Tensor]


class _Attention(nn.Module):
    """Scores of past vectors against a candidate: ``(batch, length)``,
    ``t * sqrt(dim) * past . candidate`` with a learned ``t`` (started at
    1: about unit variance for the random vectors of a new table)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = math.sqrt(dim)
        self.log_sharpness = nn.Parameter(torch.zeros(()))

    def forward(self, past: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        similarity = (past * candidate.unsqueeze(1)).sum(dim=2)
        return torch.exp(self.log_sharpness) * self.scale * similarity


def _widths(pooling: str, target: int | None) -> int:
    """Vectors a column's pool is made of."""
    if pooling == "attention":
        return 4
    return 2 if pooling == "mean" and target is not None else 1


class SequencePooling(nn.Module):
    """The pooled vectors of the list columns: ``(batch, out_features)``.

    Parameters
    ----------
    max_length : int
        Code columns per list column.
    cardinalities : sequence of int
        Codes of each list column's vocabulary.
    targets : sequence of int or None
        For each list column, the index (among the categorical columns) of
        the column whose embedding it shares, or None for a table of its own.
    poolings : sequence of {"mean", "sum", "attention"}
        How each column is pooled; ``"attention"`` needs a target.
    dims : sequence of int
        The embedding size of each list column (its target's where shared).
    """

    def __init__(
        self,
        max_length: int,
        cardinalities: Sequence[int],
        targets: Sequence[int | None],
        poolings: Sequence[str],
        dims: Sequence[int],
    ) -> None:
        super().__init__()
        self.max_length = int(max_length)
        self.targets = [None if k is None else int(k) for k in targets]
        self.poolings = list(poolings)
        self.tables = nn.ModuleList()
        self.attention = nn.ModuleList()
        for n, target, pooling, d in zip(
            cardinalities, self.targets, self.poolings, dims, strict=True
        ):
            if pooling == "attention" and target is None:
                raise ValueError("attention pooling needs a target column.")
            table = nn.Embedding(n, d) if target is None else nn.Identity()
            if isinstance(table, nn.Embedding):
                nn.init.normal_(table.weight, std=1.0 / math.sqrt(d))
            self.tables.append(table)
            self.attention.append(
                _Attention(d) if pooling == "attention" else nn.Identity()
            )
        self.out_features = sum(
            d * _widths(p, k)
            for d, p, k in zip(dims, self.poolings, self.targets, strict=True)
        )

    @property
    def width(self) -> int:
        """Code columns read."""
        return len(self.poolings) * self.max_length

    def _column(
        self,
        i: int,
        codes: torch.Tensor,
        candidates: torch.Tensor | None,
        shared: Shared | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Column ``i``'s past vectors ``(batch, length, dim)``, which of
        them are present ``(batch, length)``, and the candidates' vectors
        (None without a target)."""
        target = self.targets[i]
        block = codes[:, i * self.max_length : (i + 1) * self.max_length].long()
        present = block >= 0
        if self.training and HISTORY_DROPOUT > 0:
            kept = torch.rand(block.shape, device=block.device) >= HISTORY_DROPOUT
            present = present & kept
        block = block.clamp(min=0)
        if target is None:
            return self.tables[i](block), present, None
        # Given with a target column.
        assert shared is not None and candidates is not None
        candidate = shared(target, candidates[:, target].long())
        return shared(target, block), present, candidate

    def _weights(
        self, i: int, past: torch.Tensor, present: torch.Tensor, candidate
    ) -> torch.Tensor:
        """The attention weights of column ``i``: ``(batch, length)``, 0 on
        the padding (and on every position of a row without values)."""
        scores = self.attention[i](past, candidate)
        scores = scores.masked_fill(~present, torch.finfo(scores.dtype).min)
        return torch.softmax(scores, dim=1) * present.to(past.dtype)

    def forward(
        self,
        codes: torch.Tensor,
        candidates: torch.Tensor | None,
        shared: Shared | None,
    ) -> torch.Tensor:
        """Pool ``codes`` (``(batch, width)``).

        ``candidates``: the codes of the categorical columns; ``shared(k,
        codes)``: the vectors of codes of categorical column ``k``.
        """
        parts = []
        for i, pooling in enumerate(self.poolings):
            past, present, candidate = self._column(i, codes, candidates, shared)
            weight = present.to(past.dtype)
            total = (past * weight.unsqueeze(2)).sum(dim=1)
            if pooling == "sum":
                parts.append(total)
                continue
            mean = total / weight.sum(dim=1, keepdim=True).clamp(min=1)
            parts.append(mean)
            if candidate is None:
                continue
            parts.append(mean * candidate)
            if pooling == "attention":
                attention = self._weights(i, past, present, candidate)
                pooled = (past * attention.unsqueeze(2)).sum(dim=1)
                parts += [pooled, pooled * candidate]
        return torch.cat(parts, dim=1)

    def attention_weights(
        self,
        codes: torch.Tensor,
        candidates: torch.Tensor | None,
        shared: Shared | None,
    ) -> dict[int, torch.Tensor]:
        """The attention weights of the attention-pooled columns, by their
        index among the list columns: ``(batch, max_length)`` each."""
        out = {}
        for i, pooling in enumerate(self.poolings):
            if pooling == "attention":
                past, present, candidate = self._column(i, codes, candidates, shared)
                out[i] = self._weights(i, past, present, candidate)
        return out
