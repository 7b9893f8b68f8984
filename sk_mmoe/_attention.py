"""What the target attention of list columns learned, row by row.

:meth:`~sk_mmoe.MultiTaskMMoEClassifier.attention_weights` reads, for every
list column pooled by ``sequence_pooling="attention"``, the weight the
network gives each past value of a row against the row's candidate (see
:mod:`sk_mmoe.nn.sequences`), as :meth:`gate_weights` reads the gates.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._prediction import map_chunks
from .nn._bias import main_network
from .nn.network import MMoENetwork

__all__ = ["attention_weights_of"]


def attention_weights_of(estimator: Any, X: Any) -> dict[Any, np.ndarray]:
    """The attention weights of ``estimator``'s list columns on ``X``, by
    column name (position for an array): ``(n_samples, max_length)`` each."""
    check_is_fitted(estimator)
    module = cast(MMoENetwork, main_network(estimator.module_))
    pooling = module.sequences
    if pooling is None or "attention" not in pooling.poolings:
        raise ValueError(
            "attention_weights needs a list column pooled by target attention: "
            "fit with sequence_pooling='auto' or 'attention' and sequence_features "
            "mapping the list column to its candidate's categorical column "
            "(e.g. {'history': 'item_id'}); this model has none."
        )
    X = estimator._validate_X(X)

    def run(Xb: torch.Tensor, n_rows: int) -> dict[int, torch.Tensor]:
        weights = module.attention_weights(Xb)
        return {i: w[:n_rows] for i, w in weights.items()}

    chunks = map_chunks(module, X, estimator.n_threads, run)
    positions = estimator._encoder.sequences.columns
    names = getattr(estimator, "feature_names_in_", None)
    out = {}
    for i in chunks[0]:
        j = positions[i]
        key = str(names[j]) if names is not None else j
        weights = torch.cat([chunk[i] for chunk in chunks]).cpu().numpy()
        out[key] = weights.astype(np.float64)
    return out
