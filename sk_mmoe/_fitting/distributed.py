"""Data-parallel training across processes with ``DistributedDataParallel``.

A fit is data-parallel when ``torch.distributed`` is initialised with more
than one process (for example by a script started with ``torchrun`` that
calls ``torch.distributed.init_process_group()``) and the call is not inside
:func:`single_process`. sk_mmoe never initialises the process group itself:
that is a job-wide, blocking rendezvous which a library call should not
start behind the user's back.

In a data-parallel fit every process passes the same data. All ranks draw
the same shuffled order (the seed is broadcast from rank 0); each global
batch of ``batch_size`` rows is cut into one contiguous slice per rank (see
:class:`~sk_mmoe._fitting.batches.BatchIterator`); DDP averages the gradients; the
per-task losses are scaled by the labelled-row counts of the whole global
batch, so that a step equals the single-process step on that batch; the
epoch's losses are summed over ranks, so that ``history_`` and early stopping
agree everywhere. See ``docs/user_guide/distributed.rst``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "World",
    "agree_seed",
    "check_same_setup",
    "current_world",
    "local_device",
    "single_process",
    "sum_over_ranks",
]

_LOCAL = contextvars.ContextVar("sk_mmoe_single_process", default=False)


@dataclass(frozen=True)
class World:
    """The processes of a data-parallel fit: this one's rank and their number."""

    rank: int
    size: int
    group: Any = None

    @property
    def collective_device(self) -> torch.device:
        """Where tensors must be for collectives: CPU with gloo, else the GPU."""
        import torch.distributed as dist

        backend = str(dist.get_backend(self.group)).lower()
        if "gloo" in backend or "mpi" in backend or not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", torch.cuda.current_device())


def current_world() -> World | None:
    """The data-parallel world of a fit started now, or None (single process)."""
    if _LOCAL.get() or not torch.distributed.is_available():
        return None
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return World(rank=dist.get_rank(), size=dist.get_world_size())


@contextlib.contextmanager
def single_process() -> Iterator[None]:
    """Fit as a single process within the block, even in a process group.

    For fits that only some ranks run (a quick model on rank 0, a
    per-rank hyper-parameter search): a data-parallel fit needs every rank
    to make the same calls and would wait for the others forever.
    """
    token = _LOCAL.set(True)
    try:
        yield
    finally:
        _LOCAL.reset(token)


def local_device(device: torch.device) -> torch.device:
    """``cuda`` without an index means this process's GPU in a data-parallel fit.

    That is ``cuda:LOCAL_RANK`` (set by ``torchrun`` and ``accelerate
    launch``), or the current CUDA device when ``LOCAL_RANK`` is not set.
    """
    if device.type != "cuda" or device.index is not None or current_world() is None:
        return device
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is None:
        return torch.device("cuda", torch.cuda.current_device())
    index, visible = int(local_rank), torch.cuda.device_count()
    if index >= visible:
        # torch would fail later with "invalid device ordinal", far from the cause.
        raise ValueError(
            f"device='cuda' in a data-parallel fit means cuda:LOCAL_RANK, but "
            f"LOCAL_RANK={index} and this machine has {visible} visible CUDA "
            f"device(s). Start one process per GPU, or pass an explicit index "
            f"(device='cuda:0') to share a GPU between processes (gloo backend)."
        )
    return torch.device("cuda", index)


def sum_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    """``values`` summed over the ranks, bit for bit the same on every rank.

    The tensors are gathered and added in rank order on every rank (float64),
    so decisions taken from the sum (early stopping) cannot differ between
    ranks. Returned on ``values``' device.
    """
    import torch.distributed as dist

    local = values.detach().to(world.collective_device, torch.float64).contiguous()
    gathered = [torch.empty_like(local) for _ in range(world.size)]
    dist.all_gather(gathered, local, group=world.group)
    total = gathered[0].clone()
    for part in gathered[1:]:
        total += part
    return total.to(values.device)


def _gather_rows(values: np.ndarray, world: World) -> np.ndarray:
    """Each rank's float64 vector ``values`` (same length), one row per rank."""
    import torch.distributed as dist

    local = torch.as_tensor(values, dtype=torch.float64).to(world.collective_device)
    gathered = [torch.empty_like(local) for _ in range(world.size)]
    dist.all_gather(gathered, local, group=world.group)
    return torch.stack(gathered).cpu().numpy()


def agree_seed(seed: int) -> int:
    """Rank 0's seed on every rank of a data-parallel fit (``seed`` otherwise).

    With ``random_state=None`` each process draws its own seed; the batch
    order, the validation split and the initial weights must be the same.
    """
    world = current_world()
    if world is None:
        return seed
    return int(_gather_rows(np.array([seed], dtype=np.float64), world)[0, 0])


_SETUP_FIELDS = (
    "n_samples",
    "n_features",
    "n_tasks",
    "sample_weight given",
    "sum of X",
    "sum of the encoded targets",
    "labelled entries",
    "sum of sample_weight",
    "batch_size",
    "max_epochs",
    "n_parameters",
)


def _setup_summary(dataset: Any, net: Any) -> np.ndarray:
    """What must agree between ranks: data shape and content, and training."""
    X, y, w = dataset.X, dataset.y, dataset.sample_weight
    if dataset.rows is not None:
        X = X[dataset.rows]
        y = None if y is None else y[dataset.rows]
        w = None if w is None else w[dataset.rows]
    x_sum = (X.data if sp.issparse(X) else X).sum(dtype=np.float64)
    n_tasks = 0 if y is None else (1 if y.ndim == 1 else y.shape[1])
    n_parameters = sum(p.numel() for p in net.module_.parameters())
    return np.array(
        [
            X.shape[0],
            X.shape[1],
            n_tasks,
            w is not None,
            x_sum,
            0.0 if y is None else np.nansum(y, dtype=np.float64),
            0 if y is None else np.count_nonzero(~np.isnan(y)),
            0.0 if w is None else w.sum(dtype=np.float64),
            net.batch_size,
            net.max_epochs,
            n_parameters,
        ],
        dtype=np.float64,
    )


def check_same_setup(dataset: Any, net: Any, world: World) -> None:
    """Refuse a data-parallel fit whose ranks do not pass the same data.

    Every rank gets the same answer (the summaries are gathered), so all
    raise together instead of some waiting forever for the others.
    """
    rows = _gather_rows(_setup_summary(dataset, net), world)
    differ = [
        k
        for k in range(rows.shape[1])
        if not np.array_equal(rows[:, k], rows[0, k].repeat(world.size), equal_nan=True)
    ]
    if not differ:
        return
    details = "; ".join(
        f"{_SETUP_FIELDS[k]}: "
        + ", ".join(f"rank {r}: {rows[r, k]:g}" for r in range(world.size))
        for k in differ
    )
    raise ValueError(
        f"Data-parallel fit over {world.size} processes: every process must "
        f"pass the same X, y and sample_weight and the same training "
        f"parameters, but they differ ({details}). Load the same data on "
        f"every rank, or fit inside sk_mmoe.parallel.single_process() to "
        f"train each process on its own."
    )
