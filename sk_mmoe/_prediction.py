"""Prediction: the fitted network's outputs for an ``X``, chunk by chunk.

:func:`map_chunks` runs a function of the network on the rows of an ``X``,
padded so that each row's result does not depend on the rows predicted
with it; :func:`forward` runs the network (or returns its gates' weights)
so and refuses outputs that are not finite; :func:`heads` are the
tasks' prediction heads on those outputs, :func:`stack_predictions` puts
the tasks' predictions side by side and :func:`mean_score` scores them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_consistent_length
from torch import nn

from ._fitting.batches import ArrayBatches
from ._fitting.threads import resolve_threads, torch_threads
from .nn.network import BatchedLinear

if TYPE_CHECKING:
    from ._data.targets import TargetColumns
    from ._tasks import Task

__all__ = ["forward", "heads", "map_chunks", "mean_score", "stack_predictions"]

_Result = TypeVar("_Result")

# Rows per forward pass at prediction time: large enough to amortise the
# per-call overhead, small enough to bound the activations' memory.
_PREDICT_CHUNK = 16384

# BLAS kernels multiply rows in panels, and a row's float32 result can depend
# on whether it falls in a full panel or in the remainder. Predicting on a
# multiple of this many rows makes each row's output independent of how many
# rows are predicted together (one row online gives the same as in a batch).
_ROW_ALIGN = 16

# torch's CPU batched product (baddbmm) sums with its own loop, in another
# order than BLAS, while rows * in_features * out_features is under this
# (aten/src/ATen/native/LinearAlgebra.cpp): prediction pads the rows so that
# every layer takes the BLAS path, whatever the number of rows predicted.
_BMM_BLAS_MIN_SIZE = 400


def map_chunks(
    module: nn.Module,
    X: Any,
    n_threads: int | None,
    run: Callable[[torch.Tensor, int], _Result],
) -> list[_Result]:
    """``run(chunk, n_rows)`` on each chunk of ``X`` (as the network reads
    it), in eval and inference mode: the chunk on ``module``'s device, its
    rows padded so that each row's result does not depend on the rows
    computed with it (``n_rows``: the real ones, first); ``n_threads``: the
    estimator's parameter."""
    device = next(module.parameters()).device
    # Predict in eval mode. Fitting leaves the network in it, so this only
    # switches (for good) after a user put the module in training mode:
    # switching back and forth would race between concurrent predictions.
    if module.training:
        module.eval()
    # A network with a sparse projection reads CSR batches as they are.
    sparse_batches = module.projection is not None and sp.issparse(X)
    dataset = ArrayBatches(X, sparse_batches=sparse_batches)
    min_rows = _invariant_rows(module)
    results = []
    # Large predictions choose their threads as fit does; small ones keep
    # the current count (sampling the load would cost more than them).
    if n_threads is None and X.shape[0] >= _PREDICT_CHUNK:
        n_threads = resolve_threads(None)
    threads = (
        contextlib.nullcontext() if n_threads is None else torch_threads(n_threads)
    )
    with threads, torch.inference_mode():
        # Kernels split the rows between the threads: each thread's share
        # is aligned too.
        align = _ROW_ALIGN * torch.get_num_threads()
        chunk = max(align, _PREDICT_CHUNK // align * align)
        for start in range(0, X.shape[0], chunk):
            Xb, _ = dataset.batch(slice(start, start + chunk))
            n_rows = Xb.shape[0]
            Xb = _pad_rows(Xb, min_rows, align)
            results.append(run(Xb.to(device), n_rows))
    return results


def forward(
    module: nn.Module, X: Any, n_threads: int | None, gates: bool = False
) -> torch.Tensor:
    """The outputs (or gate weights) of ``module`` for ``X`` (as the network
    reads it), computed chunk by chunk; ``n_threads``: the estimator's
    parameter."""

    def run(Xb: torch.Tensor, n_rows: int) -> torch.Tensor:
        out = module(Xb, return_gates=gates)
        return (out[1] if gates else out)[:n_rows]

    chunks = map_chunks(module, X, n_threads, run)
    out = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    padding = None if gates else module.class_padding
    _check_finite_outputs(out, padding)
    return out


def heads(
    tasks: list[Task], outputs: torch.Tensor, conditional: bool = False
) -> list[np.ndarray]:
    """Each task's prediction head on the network's ``outputs``:
    probabilities or values.

    ``conditional``: a conditional task's head reads its own tower's
    outputs (the probability given its parent), not the joint's.
    """
    return [
        task.head(
            task.own_outputs(outputs, k) if conditional else task.outputs(outputs, k)
        )
        .cpu()
        .numpy()
        for k, task in enumerate(tasks)
    ]


def mean_score(
    tasks: list[Task],
    columns: list[np.ndarray],
    targets: TargetColumns,
    sample_weight: Any = None,
) -> float:
    """Mean over tasks of each task's default score of its predictions
    ``columns`` on its labelled rows of ``targets``.

    Tasks without a labelled row are left out of the mean.
    """
    targets = targets.completed(tasks)
    check_consistent_length(columns[0], targets.columns[0], sample_weight)
    weights = None if sample_weight is None else np.asarray(sample_weight)
    scores = [
        task.score(
            targets.labelled_values(k),
            columns[k][labelled],
            sample_weight=None if weights is None else weights[labelled],
        )
        for k, (task, labelled) in enumerate(zip(tasks, targets.labelled, strict=True))
        if labelled.any()
    ]
    if not scores:
        raise ValueError("y has no labelled entry to score.")
    return float(np.mean(scores))


def stack_predictions(columns: list[np.ndarray], single_task: bool) -> np.ndarray:
    """``(n_samples, n_tasks)`` predictions of the tasks' ``columns``; 1-D
    for a model fitted on a 1-D ``y`` (``single_task``)."""
    if single_task:
        return columns[0]
    dtypes = {c.dtype for c in columns}
    dtype = dtypes.pop() if len(dtypes) == 1 else object
    Y_pred = np.empty((len(columns[0]), len(columns)), dtype=dtype)
    for k, column in enumerate(columns):
        Y_pred[:, k] = column
    return Y_pred


def _check_finite_outputs(outputs: torch.Tensor, padding: Any) -> None:
    """Refuse non-finite network outputs or gate weights (e.g. features near
    float32's limit); ``padding`` marks the outputs that are -inf by design."""
    valid = (
        outputs
        if padding is None
        else outputs.masked_fill(padding.to(outputs.device), 0.0)
    )
    if not bool(torch.isfinite(valid).all()):
        raise ValueError(
            "The network's outputs are not finite for some rows of X: their "
            "features are too large for float32 arithmetic. Scale the features "
            "(e.g. StandardScaler) and clip extreme values."
        )


def _invariant_rows(module: nn.Module) -> int:
    """Fewest rows a forward pass of ``module`` needs for every row's outputs
    not to depend on the other rows: enough for its narrowest layer to take
    the BLAS path (see ``_BMM_BLAS_MIN_SIZE``)."""
    narrowest = min(
        (
            layer.in_features * layer.out_features
            for layer in module.modules()
            if isinstance(layer, BatchedLinear)
        ),
        default=_BMM_BLAS_MIN_SIZE,
    )
    return -(-_BMM_BLAS_MIN_SIZE // narrowest)


def _pad_rows(
    X: torch.Tensor, min_rows: int = 1, align: int = _ROW_ALIGN
) -> torch.Tensor:
    """``X`` with zero rows appended up to at least ``min_rows`` rows, and a
    multiple of ``align`` rows."""
    n_rows = max(X.shape[0], min_rows)
    missing = n_rows - X.shape[0] + (-n_rows % align)
    if not missing:
        return X
    if X.layout == torch.sparse_csr:
        rows = X.crow_indices()
        rows = torch.cat([rows, rows[-1:].expand(missing)])
        return torch.sparse_csr_tensor(
            rows, X.col_indices(), X.values(), (X.shape[0] + missing, X.shape[1])
        )
    return torch.cat([X, X.new_zeros(missing, X.shape[1])])
