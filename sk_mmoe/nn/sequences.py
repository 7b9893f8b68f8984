"""Pooling the values of list columns (a user's history) into vectors.

Each list column arrives as ``max_length`` code columns (see
:mod:`sk_mmoe._data.sequences`; :data:`~sk_mmoe._data.sequences.PAD_CODE`
after a row's values). Its values are embedded, with a table of its own or
with the table of a categorical column (its *target*: a past item and a
candidate item are then one vector), and pooled per row:

* ``"mean"`` and ``"sum"`` of the vectors of the row's values (zeros for a
  row without values);
* ``"attention"``, for a list with a target: target attention as in DIN
  (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction",
  KDD 2018). A small network scores each past value against the candidate
  (the row's value of the target column) from ``[past, candidate, past *
  candidate]``; a softmax over the row's values weights them. The attention
  pool is read beside the mean: a history otherwise serves as a user ID, and
  the attention alone overfits users seen in ``fit``. In training, each past
  value is dropped with probability :data:`HISTORY_DROPOUT`, for the same
  reason.

Only a row's own values enter its pool (the padding is masked), so a row's
prediction does not depend on the lengths of the other rows' lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["HISTORY_DROPOUT", "SequencePooling"]

#: Probability of dropping each past value of a list in training.
HISTORY_DROPOUT = 0.1
# Width of the hidden layer of the attention's scoring network.
_ATTENTION_HIDDEN = 16


class _Attention(nn.Module):
    """Scores of past vectors against a candidate: ``(batch, length)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(3 * dim, _ATTENTION_HIDDEN)
        self.output = nn.Linear(_ATTENTION_HIDDEN, 1)

    def forward(self, past: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        candidate = candidate.unsqueeze(1).expand_as(past)
        features = torch.cat([past, candidate, past * candidate], dim=2)
        return self.output(torch.relu(self.hidden(features))).squeeze(2)


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
            d * (2 if p == "attention" else 1)
            for d, p in zip(dims, self.poolings, strict=True)
        )

    @property
    def width(self) -> int:
        """Code columns read."""
        return len(self.poolings) * self.max_length

    def forward(
        self,
        codes: torch.Tensor,
        candidates: torch.Tensor | None,
        shared: Callable[[int, torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        """Pool ``codes`` (``(batch, width)``).

        ``candidates``: the codes of the categorical columns; ``shared(k,
        codes)``: the vectors of codes of categorical column ``k``.
        """
        parts = []
        for i, (target, pooling) in enumerate(
            zip(self.targets, self.poolings, strict=True)
        ):
            block = codes[:, i * self.max_length : (i + 1) * self.max_length].long()
            present = block >= 0
            if self.training and HISTORY_DROPOUT > 0:
                kept = torch.rand(block.shape, device=block.device) >= HISTORY_DROPOUT
                present = present & kept
            block = block.clamp(min=0)
            if target is None:
                past = self.tables[i](block)
            else:
                assert shared is not None  # given with a target column
                past = shared(target, block)
            weight = present.to(past.dtype)
            total = (past * weight.unsqueeze(2)).sum(dim=1)
            count = weight.sum(dim=1, keepdim=True)
            if pooling == "sum":
                parts.append(total)
                continue
            mean = total / count.clamp(min=1)
            parts.append(mean)
            if pooling == "attention":
                assert target is not None and candidates is not None
                assert shared is not None
                candidate = shared(target, candidates[:, target].long())
                scores = self.attention[i](past, candidate)
                # Padded positions get a softmax weight of exactly 0 (and a
                # row without values weights of 0, not NaN).
                scores = scores.masked_fill(~present, torch.finfo(scores.dtype).min)
                attention = torch.softmax(scores, dim=1) * weight
                parts.append((past * attention.unsqueeze(2)).sum(dim=1))
        return torch.cat(parts, dim=1)
