"""Tests for sk_mmoe.nn._optim."""

import pytest
import torch
from torch.nn import functional as F

from sk_mmoe.nn._optim import LazyAdam


def _embedding_steps(optimizer_class, n_steps=6, **options):
    """Weights and state after steps of a sum of embedding bags."""
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(30, 4))
    optimizer = optimizer_class([weight], lr=0.1, **options)
    for _ in range(n_steps):
        # Repeated columns: an uncoalesced gradient, with duplicate rows.
        columns = torch.randint(0, 30, (12,))
        columns[1] = columns[0]
        values = torch.rand(12)
        out = F.embedding_bag(
            columns,
            weight,
            torch.tensor([0, 5, 5]),
            mode="sum",
            sparse=True,
            per_sample_weights=values,
        )
        optimizer.zero_grad()
        (out * torch.randn(out.shape)).sum().backward()
        optimizer.step()
    return weight.detach(), optimizer


@pytest.mark.parametrize("maximize", [False, True])
def test_lazy_adam_equals_sparse_adam(maximize):
    options = {"betas": (0.8, 0.99), "eps": 1e-6, "maximize": maximize}
    ours, lazy = _embedding_steps(LazyAdam, **options)
    ref, sparse_adam = _embedding_steps(torch.optim.SparseAdam, **options)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    state, ref_state = lazy.state_dict(), sparse_adam.state_dict()
    assert state["param_groups"] == ref_state["param_groups"]
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(
            state["state"][0][key], ref_state["state"][0][key], rtol=1e-6, atol=1e-6
        )
    assert state["state"][0]["step"] == ref_state["state"][0]["step"] == 6


def test_lazy_adam_leaves_untouched_rows_and_loads_sparse_adam_state():
    weight = torch.nn.Parameter(torch.zeros(5, 2))
    reference = torch.optim.SparseAdam([weight], lr=0.5)
    weight.grad = torch.sparse_coo_tensor(
        [[1, 3]], torch.ones(2, 2), (5, 2), check_invariants=True
    )
    reference.step()
    before = weight.detach().clone()
    second_moment = reference.state[weight]["exp_avg_sq"].clone()
    optimizer = LazyAdam([weight], lr=0.5)
    optimizer.load_state_dict(reference.state_dict())
    weight.grad = torch.sparse_coo_tensor(
        [[3, 3]], torch.ones(2, 2), (5, 2), check_invariants=True
    )
    optimizer.step()
    assert optimizer.state[weight]["step"] == 2
    changed = (weight.detach() != before).any(dim=1)
    assert changed.tolist() == [False, False, False, True, False]
    # Row 1 moved at the first step only, and its moments did not decay.
    torch.testing.assert_close(
        optimizer.state[weight]["exp_avg_sq"][1], second_moment[1]
    )


def test_lazy_adam_refuses_dense_gradients():
    weight = torch.nn.Parameter(torch.zeros(3, 2))
    weight.grad = torch.ones(3, 2)
    with pytest.raises(RuntimeError, match="sparse"):
        LazyAdam([weight]).step()
