"""The optimizer of a wide sparse input's projection.

:class:`LazyAdam` applies :class:`torch.optim.SparseAdam`'s update to the rows
of a parameter that a sparse gradient holds, with index operations on those
rows instead of sparse-tensor arithmetic on the whole parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import overload

import torch

__all__ = ["LazyAdam"]


class LazyAdam(torch.optim.SparseAdam):
    """Adam on the rows a sparse gradient touches, as ``SparseAdam`` computes it.

    The update, the hyperparameters and the state (``step``, ``exp_avg`` and
    ``exp_avg_sq`` of the whole parameter) are those of
    :class:`torch.optim.SparseAdam`, whose state dicts load into this
    optimizer and back: the moments and the weights change only in the rows
    present in the gradient ("lazy" Adam), with the same arithmetic, and
    there is no weight decay. ``SparseAdam`` reads the moments' rows through
    ``sparse_mask`` and writes them with sparse additions, which on CPU take
    about twice the time of this optimizer's step: it gathers the rows with
    ``index_select`` and adds the updates with ``index_add_``.

    Parameters
    ----------
    params : iterable
        The parameters, whose gradients must be sparse along their first
        dimension (as those of :func:`torch.nn.functional.embedding_bag` with
        ``sparse=True``).
    lr : float, default=1e-3
        Learning rate.
    betas : tuple of float, default=(0.9, 0.999)
        Decay rates of the moment averages.
    eps : float, default=1e-8
        Added to the square root of the second moment.
    maximize : bool, default=False
        Maximise the objective instead of minimising it.
    """

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one update of the rows present in the gradients.

        Parameters
        ----------
        closure : callable, default=None
            Re-evaluates the model and returns the loss.

        Returns
        -------
        loss : float or None
            What ``closure`` returned.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(
                        param, memory_format=torch.preserve_format
                    )
                    state["exp_avg_sq"] = torch.zeros_like(
                        param, memory_format=torch.preserve_format
                    )
                state["step"] += 1
                _update_rows(param, state, group)
        return loss


def _update_rows(param: torch.Tensor, state: dict, group: dict) -> None:
    """One ``SparseAdam`` update of the rows in ``param.grad``, in place."""
    grad = param.grad
    assert grad is not None  # step skips parameters without one
    if not grad.is_sparse or grad.sparse_dim() != 1:
        raise RuntimeError(
            "LazyAdam takes gradients sparse along their first dimension "
            "only; use Adam for dense gradients."
        )
    # The update is not linear in the gradient: duplicate rows are summed.
    grad = grad if grad.is_coalesced() else grad.coalesce()
    rows, values = grad._indices()[0], grad._values()
    if values.numel() == 0:
        return
    if group["maximize"]:
        values = -values
    beta1, beta2 = group["betas"]
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    # old <- b * old + (1 - b) * new as old += (1 - b) * (new - old), the
    # order of SparseAdam's operations, so that both round alike.
    old_avg = exp_avg.index_select(0, rows)
    avg_update = values.sub(old_avg).mul_(1 - beta1)
    exp_avg.index_add_(0, rows, avg_update)
    old_sq = exp_avg_sq.index_select(0, rows)
    sq_update = values.pow(2).sub_(old_sq).mul_(1 - beta2)
    exp_avg_sq.index_add_(0, rows, sq_update)
    numer = avg_update.add_(old_avg)
    denom = sq_update.add_(old_sq).sqrt_().add_(group["eps"])
    step = state["step"]
    step_size = float(group["lr"]) * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    # Rows are unique after coalescing: index_add_ adds each update once.
    param.index_add_(0, rows, numer.div_(denom).mul_(-step_size))
