"""Tests for sk_mmoe.nn.network."""

import math

import pytest
import torch
from torch import nn

from sk_mmoe.nn.network import (
    BatchedLinear,
    DSelectKGate,
    ExpertNormalization,
    FeatureEmbedding,
    MMoENetwork,
    NoisyTopKGate,
    SoftmaxGate,
    _drop_experts,
    _dropout,
    _mix_experts,
    _periodic_embedding,
    _shared_input_products,
    _softmax_last_dim,
    gate_balance_penalty,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_batched_linear_equals_one_linear_per_group():
    layer = BatchedLinear(3, 5, 4)
    linears = []
    for g in range(3):
        lin = nn.Linear(5, 4)
        with torch.no_grad():
            lin.weight.copy_(layer.weight[g].T)
            lin.bias.copy_(layer.bias[g, 0])
        linears.append(lin)

    shared = torch.randn(7, 5)
    expected = torch.stack([lin(shared) for lin in linears])
    torch.testing.assert_close(layer(shared), expected)

    per_group = torch.randn(3, 7, 5)
    expected = torch.stack([lin(per_group[g]) for g, lin in enumerate(linears)])
    torch.testing.assert_close(layer(per_group), expected)


def test_shared_input_products_equal_each_layers_own():
    # Layers reading one input in one product: each layer's output and the
    # gradients of its parameters and of the input are its own.
    layers = [BatchedLinear(4, 6, 8), SoftmaxGate(3, 6, 4)]
    x = torch.randn(11, 6, requires_grad=True)
    grads = [torch.randn(4, 11, 8), torch.randn(3, 11, 4)]
    params = [x, *(p for layer in layers for p in layer.parameters())]
    outs = _shared_input_products(layers, x)
    # Reference: every group fed the input through baddbmm.
    expected = [layer.bias + x @ layer.weight for layer in layers]
    for out, ref in zip(outs, expected, strict=True):
        torch.testing.assert_close(out, ref)
    ours = torch.autograd.grad(outs, params, grads)
    theirs = torch.autograd.grad(expected, params, grads)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def _reference_mmoe(net, x):
    """MMoE written with a Python loop over experts and tasks."""
    level = net.levels[0]
    experts = []
    for i in range(level.n_total_experts):
        h = x
        for layer in level.experts.layers:
            h = torch.relu(h @ layer.weight[i] + layer.bias[i, 0])
        experts.append(h)
    logits = []
    for k in range(net.n_tasks):
        gate = torch.softmax(
            x @ level.task_gates.weight[k] + level.task_gates.bias[k, 0], dim=-1
        )
        z = sum(gate[:, [i]] * experts[i] for i in range(level.n_total_experts))
        for layer in net.towers.layers:
            z = torch.relu(z @ layer.weight[k] + layer.bias[k, 0])
        out = net.tower_outputs
        logits.append(z @ out.weight[k] + out.bias[k, 0])
    return torch.stack(logits, dim=1)


def test_forward_matches_the_mmoe_equations():
    net = MMoENetwork(6, [2, 2, 2], n_experts=3, expert_hidden_layer_sizes=(8, 5))
    x = torch.randn(10, 6)
    torch.testing.assert_close(net(x), _reference_mmoe(net, x))


def test_shapes_and_class_padding():
    net = MMoENetwork(4, [2, 5, 3], n_experts=2)
    logits, gates = net(torch.randn(6, 4), return_gates=True)
    assert logits.shape == (6, 3, 5) and gates.shape == (6, 3, 2)
    assert (
        torch.isinf(logits[:, 0, 2:]).all() and torch.isfinite(logits[:, 0, :2]).all()
    )
    assert torch.isinf(logits[:, 2, 3:]).all() and torch.isfinite(logits[:, 1]).all()
    proba = torch.softmax(logits, dim=-1)
    torch.testing.assert_close(proba.sum(-1), torch.ones(6, 3))
    torch.testing.assert_close(gates.sum(-1), torch.ones(6, 3))


def test_regression_width_one_next_to_classes():
    # A regression task has one output (column 0); the rest of its row is
    # padding, as for a classification task with fewer classes.
    net = MMoENetwork(4, [1, 3], n_experts=2)
    assert net.output_sizes == [1, 3]
    outputs = net(torch.randn(6, 4))
    assert outputs.shape == (6, 2, 3)
    assert torch.isfinite(outputs[:, 0, 0]).all()
    assert torch.isinf(outputs[:, 0, 1:]).all()
    assert torch.isfinite(outputs[:, 1]).all()
    # Every task of width one: no padding at all.
    outputs = MMoENetwork(4, [1, 1], n_experts=2)(torch.randn(6, 4))
    assert outputs.shape == (6, 2, 1) and torch.isfinite(outputs).all()


def test_shared_bottom_and_one_gate():
    x = torch.randn(5, 4)
    _, gates = MMoENetwork(4, [2, 2], n_experts=1)(x, return_gates=True)
    torch.testing.assert_close(gates, torch.ones(5, 2, 1))

    _, gates = MMoENetwork(4, [2, 2, 3], n_experts=4, shared_gate=True)(
        x, return_gates=True
    )
    torch.testing.assert_close(gates[:, 0], gates[:, 1])
    torch.testing.assert_close(gates[:, 0], gates[:, 2])
    assert not torch.allclose(gates[:, 0], gates[:, 0, :1].expand(-1, 4))


@pytest.mark.parametrize("n_levels", [1, 2, 3])
def test_task_experts_are_private(n_levels):
    net = MMoENetwork(4, [2, 3], n_experts=2, n_task_experts=2, n_levels=n_levels)
    assert net.n_gate_experts == 2 + 2 * 2
    logits, gates = net(torch.randn(9, 4), return_gates=True)
    assert logits.shape == (9, 2, 3)
    # Task 0 uses the shared experts and experts 2-3; task 1 experts 4-5.
    assert (gates[:, 0, 4:] == 0).all() and (gates[:, 0, :4] > 0).all()
    assert (gates[:, 1, 2:4] == 0).all() and (gates[:, 1, 4:] > 0).all()
    torch.testing.assert_close(gates.sum(-1), torch.ones(9, 2))


def test_every_parameter_gets_a_gradient():
    net = MMoENetwork(4, [2, 3], n_experts=2, n_task_experts=1, n_levels=2)
    logits = net(torch.randn(16, 4))
    torch.log_softmax(logits, -1)[..., 0].sum().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_gate_dropout_only_in_training():
    net = MMoENetwork(4, [2, 2], n_experts=6, gate_dropout=0.5)
    x = torch.randn(64, 4)
    net.train()
    _, gates = net(x, return_gates=True)
    torch.testing.assert_close(gates.sum(-1), torch.ones(64, 2))
    assert (gates == 0).float().mean() > 0.3
    net.eval()
    _, gates = net(x, return_gates=True)
    assert (gates > 0).all()


def test_dropout_is_inverted_dropout_with_keep_probability_one_minus_p():
    x = torch.rand(200, 500) + 0.5
    x.requires_grad_()
    out = _dropout(x, 0.3)
    kept = out != 0
    # 100,000 draws: the kept fraction is 0.7 within 5 standard errors.
    assert abs(kept.float().mean().item() - 0.7) < 5 * (0.7 * 0.3 / 1e5) ** 0.5
    torch.testing.assert_close(out[kept], x.detach()[kept] / 0.7)
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, kept.float() / 0.7)
    # The same seed draws the same mask; the network drops only in training.
    torch.manual_seed(3)
    first = _dropout(x, 0.3)
    torch.manual_seed(3)
    assert torch.equal(_dropout(x, 0.3), first)
    net = MMoENetwork(4, [2, 2], n_experts=2, dropout=0.5)
    inputs = torch.randn(8, 4)
    assert not torch.equal(net(inputs), net(inputs))
    net.eval()
    assert torch.equal(net(inputs), net(inputs))


def test_drop_experts_renormalises_and_never_drops_everything():
    weights = torch.softmax(torch.randn(1000, 2, 3), dim=-1)
    dropped = _drop_experts(weights, 0.9)
    torch.testing.assert_close(dropped.sum(-1), torch.ones(1000, 2))
    # Rows where every expert was dropped keep their weights.
    all_kept = (dropped > 0).all(-1)
    torch.testing.assert_close(dropped[all_kept], weights[all_kept])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"output_sizes": [2, 0]}, "output_sizes"),
        ({"output_sizes": []}, "output_sizes"),
        ({"n_experts": 0}, "n_experts"),
        ({"n_levels": 0}, "n_levels"),
        ({"expert_hidden_layer_sizes": ()}, "expert_hidden_layer_sizes"),
        ({"shared_gate": True, "n_task_experts": 1}, "shared_gate"),
        ({"gate": "top_k"}, "gate"),
        ({"gate_k": 0}, "gate_k"),
        ({"gate_temperature": 0.0}, "gate_temperature"),
        ({"ensemble_size": 0}, "ensemble_size"),
        ({"expert_activation": "tanh"}, "activation"),
        ({"expert_normalization": "batch"}, "normalization"),
    ],
)
def test_invalid_arguments(kwargs, match):
    params = {"n_features": 3, "output_sizes": [2, 2], **kwargs}
    with pytest.raises(ValueError, match=match):
        MMoENetwork(**params)


@pytest.mark.parametrize(
    "n_mixes, n_experts, width",
    # MMoE's task gates, a PLE shared gate, one expert, and products large
    # enough for the einsum.
    [(3, 4, 32), (1, 8, 32), (2, 1, 5), (4, 8, 64)],
)
def test_mix_experts_equals_the_einsum(n_mixes, n_experts, width):
    weights = torch.rand(n_mixes, 37, n_experts, dtype=torch.float64)
    experts = torch.randn(n_experts, 37, width, dtype=torch.float64)
    grad = torch.randn(n_mixes, 37, width, dtype=torch.float64)
    ours = [weights.clone().requires_grad_(), experts.clone().requires_grad_()]
    ref = [weights.clone().requires_grad_(), experts.clone().requires_grad_()]
    out = _mix_experts(*ours)
    expected = torch.einsum("kbe,ebh->kbh", *ref)
    torch.testing.assert_close(out, expected)
    out.backward(grad)
    expected.backward(grad)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    # Without gradients (prediction), the same values; the inputs are intact.
    with torch.no_grad():
        torch.testing.assert_close(_mix_experts(weights, experts), expected)
    torch.testing.assert_close(weights, ref[0].detach())
    # One gate shared by every task: its weights expanded over the tasks.
    shared = weights[:1].expand(n_mixes, -1, -1)
    torch.testing.assert_close(
        _mix_experts(shared, experts),
        torch.einsum("kbe,ebh->kbh", shared, experts),
    )


@pytest.mark.parametrize(
    "lite, activation",
    # rtdl's lite embeddings always have their activation.
    [(False, True), (False, False), (True, True)],
)
def test_periodic_embedding_equals_rtdl_forward_and_gradients(lite, activation):
    from rtdl_num_embeddings import PeriodicEmbeddings

    module = PeriodicEmbeddings(
        5,
        8,
        n_frequencies=6,
        frequency_init_scale=0.5,
        activation=activation,
        lite=lite,
    ).double()
    x = torch.randn(37, 5, dtype=torch.float64) * 3
    grad = torch.randn(37, 5 * 8, dtype=torch.float64)
    params = [x.requires_grad_(), *module.parameters()]
    out = _periodic_embedding(module, x.t()).t()
    expected = module(x).flatten(1)
    torch.testing.assert_close(out, expected)
    ours = torch.autograd.grad(out, params, grad)
    theirs = torch.autograd.grad(expected, params, grad)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)
    # Inputs without a gradient (no learned missing values before): the
    # parameters' gradients are the same.
    out = _periodic_embedding(module, x.detach().t()).t()
    ours = torch.autograd.grad(out, params[1:], grad)
    for a, b in zip(ours, theirs[1:], strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        torch.testing.assert_close(_periodic_embedding(module, x.t()).t(), expected)


@pytest.mark.parametrize("shape", [(3, 37, 8), (5, 2), (1, 1, 4), (2, 3, 4, 5)])
def test_softmax_last_dim_equals_torch_softmax(shape):
    torch.manual_seed(0)
    logits = torch.randn(*shape, dtype=torch.float64)
    logits[..., -1] = float("-inf")  # padding, as for tasks with fewer classes
    weights = torch.randn(*shape, dtype=torch.float64)
    ours = logits.clone().requires_grad_()
    ref = logits.clone().requires_grad_()
    out, expected = _softmax_last_dim(ours), torch.softmax(ref, dim=-1)
    torch.testing.assert_close(out, expected)
    assert out.is_contiguous()
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad)


def test_sparse_projection_matches_a_dense_product_with_sparse_gradients():
    import numpy as np
    import scipy.sparse as sp

    from sk_mmoe._fitting.batches import _csr_tensor
    from sk_mmoe.nn.network import SparseProjection

    X = sp.random(6, 40, density=0.1, format="csr", dtype=np.float32, random_state=0)
    X[3] = 0  # an empty row
    X.eliminate_zeros()
    projection = SparseProjection(40, 5)
    sparse_out = projection(_csr_tensor(X))
    dense_out = projection(torch.from_numpy(X.toarray()))
    torch.testing.assert_close(sparse_out, dense_out)
    torch.testing.assert_close(sparse_out[3], projection.bias)
    sparse_out.sum().backward()
    grad = projection.weight.grad
    assert grad.layout == torch.sparse_coo
    # Only the rows of the columns present in the batch get a gradient.
    touched = set(grad.coalesce().indices()[0].tolist())
    assert touched == set(X.indices.tolist())


def test_gate_temperature_divides_the_logits():
    x = torch.randn(5, 4)
    hot = SoftmaxGate(2, 4, 3)
    cool = SoftmaxGate(2, 4, 3, temperature=2.0)
    cool.load_state_dict(hot.state_dict())
    logits = BatchedLinear.forward(hot, x)
    torch.testing.assert_close(hot(x), torch.softmax(logits, -1))
    torch.testing.assert_close(cool(x), torch.softmax(logits / 2, -1))


@pytest.mark.parametrize("n_experts", [2, 4, 5, 7])
def test_dselect_k_gate_is_a_distribution_over_at_most_k_experts(n_experts):
    gate = DSelectKGate(3, 6, n_experts, k=2)
    x = torch.randn(50, 6)
    weights = gate(x)
    assert weights.shape == (3, 50, n_experts)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 50))
    # Undecided at first: every expert gets some weight.
    assert (weights > 0).all()
    # Once the selectors' logits leave the smooth step's ramp, each selector
    # picks one expert: at most k per sample.
    with torch.no_grad():
        gate.selectors.weight.mul_(1e6)
        gate.selectors.bias.mul_(1e6)
    weights = gate(x)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 50))
    assert ((weights > 1e-6).sum(-1) <= 2).all()


def test_noisy_top_k_gate_mixes_exactly_k_experts():
    gate = NoisyTopKGate(3, 6, 5, k=2)
    x = torch.randn(50, 6)
    for training in (True, False):
        gate.train(training)
        weights = gate(x)
        assert weights.shape == (3, 50, 5)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 50))
        assert ((weights > 0).sum(-1) == 2).all()
    # Noise in training only.
    assert torch.equal(gate(x), gate(x))
    gate.train()
    assert not torch.equal(gate(x), gate(x))


def test_gate_balance_penalty():
    n = 4
    uniform = torch.full((2, 8, n), 1 / n)
    assert gate_balance_penalty(uniform).item() == pytest.approx(0, abs=1e-6)
    collapsed = torch.zeros(2, 8, n)
    collapsed[..., 1] = 1
    assert gate_balance_penalty(collapsed).item() == pytest.approx(math.log(n))
    # Each sample on one expert, the batch on all of them equally: no penalty.
    specialised = torch.eye(n).repeat(2, 2, 1)
    assert gate_balance_penalty(specialised).item() == pytest.approx(0, abs=1e-6)
    assert gate_balance_penalty(torch.ones(2, 8, 1)).item() == 0


@pytest.mark.parametrize("gate", ["softmax", "dselect_k", "noisy_top_k"])
def test_recorded_gates_give_a_differentiable_penalty(gate):
    net = MMoENetwork(4, [2, 2], n_experts=3, n_levels=2, gate=gate)
    x = torch.randn(16, 4)
    net(x)
    assert net.pop_gate_weights() == []  # not recording by default
    net.record_gates(True)
    net(x)
    weights = net.pop_gate_weights()
    assert len(weights) == 3  # the task gates of 2 levels, one shared gate
    penalty = torch.stack([gate_balance_penalty(w) for w in weights]).mean()
    assert penalty.ndim == 0 and penalty.item() >= 0
    penalty.backward()
    gate_weight = next(net.levels[0].task_gates.parameters())
    assert gate_weight.grad.abs().sum() > 0
    assert net.pop_gate_weights() == []  # forgotten once popped
    net.eval()
    net(x)
    assert net.pop_gate_weights() == []  # prediction records nothing
    net.record_gates(False)


def test_expert_normalization_standardises_each_output():
    norm = ExpertNormalization(3, 8)
    out = norm(100 + 50 * torch.randn(3, 10, 8))
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 10), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        out.var(-1, unbiased=False), torch.ones(3, 10), atol=1e-3, rtol=0
    )


def test_ensemble_trains_every_member_and_predicts_their_mean():
    k, n = 3, 6
    net = MMoENetwork(4, [3, 1], n_experts=2, ensemble_size=k, dropout=0.0)
    x = torch.randn(n, 4)
    net.train()
    members = net(x)
    assert members.shape == (n * k, 2, 3)
    members = members.view(n, k, 2, 3)
    # Members differ (own input scale and output layer).
    assert not torch.allclose(members[:, 0], members[:, 1])
    net.eval()
    combined, gates = net(x, return_gates=True)
    assert combined.shape == (n, 2, 3) and gates.shape == (n, 2, 2)
    torch.testing.assert_close(
        torch.softmax(combined[:, 0], -1), torch.softmax(members[:, :, 0], -1).mean(1)
    )
    torch.testing.assert_close(combined[:, 1, 0], members[:, :, 1, 0].mean(1))
    assert torch.isinf(combined[:, 1, 1:]).all()  # padding of the narrow task


@pytest.mark.parametrize(
    "options",
    [
        {"gate": "dselect_k"},
        {"gate": "noisy_top_k"},
        {"expert_normalization": "layer", "expert_activation": "silu"},
        {"ensemble_size": 2},
    ],
)
def test_every_parameter_gets_a_gradient_with_gate_options(options):
    net = MMoENetwork(4, [2, 3], n_experts=3, n_task_experts=1, n_levels=2, **options)
    logits = net(torch.randn(16, 4))
    torch.log_softmax(logits, -1)[..., 0].sum().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_experts_start_different():
    # A shared initial value would make every expert (and gate column) the
    # same function, which gradient descent cannot tell apart.
    net = MMoENetwork(4, [2, 2], n_experts=4, expert_normalization="layer")
    experts = net.levels[0].experts.layers[0].weight
    for j in range(1, 4):
        assert not torch.allclose(experts[0], experts[j])
    out = net.levels[0].experts(torch.randn(8, 4))
    assert not torch.allclose(out[0], out[1])


def test_feature_embedding_gradient_equals_the_embedding_lookup():
    # Training gathers the categorical rows with its own backward; values
    # and gradients are those of nn.Embedding (used without gradients).
    embed = FeatureEmbedding(4, categorical_columns=[1, 3], cardinalities=[3, 5])
    x = torch.tensor([[0.5, 2, -1.0, 4], [1.5, 0, 2.0, 4], [0.0, 2, 1.0, 0]])
    out = embed(x)
    codes = x[:, [1, 3]].long() + embed.offsets
    expected = embed.table(codes).flatten(1)
    torch.testing.assert_close(out[:, -2 * embed.table.embedding_dim :], expected)
    grad = torch.randn_like(out)
    (weight_grad,) = torch.autograd.grad(out, [embed.table.weight], grad)
    (expected_grad,) = torch.autograd.grad(
        expected, [embed.table.weight], grad[:, -expected.shape[1] :]
    )
    assert torch.equal(weight_grad, expected_grad)
    # Code 4 of the second column (row 3 + 4) was seen twice: its gradient
    # is the sum of both rows'.
    assert weight_grad[7].abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(embed(x), out.detach())


def test_feature_embedding_of_sizes_per_column_equals_each_columns_vectors():
    # With a size per column, every position is gathered from a flat table;
    # values and gradients are those of each column's own vectors.
    embed = FeatureEmbedding(
        4, categorical_columns=[3, 1], cardinalities=[5, 3], embedding_dim=[2, 3]
    )
    x = torch.tensor([[0.5, 2, -1.0, 4], [1.5, 0, 2.0, 4], [0.0, 2, 1.0, 0]])
    codes = x[:, [3, 1]].long()
    expected = torch.cat([embed.column_vectors(k, codes[:, k]) for k in (0, 1)], 1)
    out = embed(x)
    torch.testing.assert_close(out[:, -5:], expected)
    grad = torch.randn_like(out)
    (weight_grad,) = torch.autograd.grad(out, [embed.table.weight], grad)
    (expected_grad,) = torch.autograd.grad(expected, [embed.table.weight], grad[:, -5:])
    torch.testing.assert_close(weight_grad, expected_grad)
    # Code 4 of the first column was seen twice: its two values' gradients
    # are the sums of both rows'.
    torch.testing.assert_close(weight_grad[8:10, 0], grad[:2, 2:4].sum(0))
    with torch.no_grad():
        torch.testing.assert_close(embed(x), out.detach())
