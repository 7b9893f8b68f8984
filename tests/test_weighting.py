"""Tests for sk_mmoe.nn.weighting and learned task weights in the estimators."""

import io

import numpy as np
import pytest
import torch

from sk_mmoe import (
    MultiTaskMMoE,
    MultiTaskMMoEClassifier,
    MultiTaskMMoERegressor,
    load_model,
    save_model,
)
from sk_mmoe.nn.weighting import (
    WEIGHTING_STRATEGIES,
    FixedWeights,
    GradNormWeights,
    LossWeighting,
    PCGradWeights,
    UncertaintyWeights,
)

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    batch_size=32,
    max_epochs=4,
    lr=0.05,
    random_state=0,
)


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 4)).astype(np.float32)
    click = (X[:, 0] > 0).astype(int)
    watch = 100 * X[:, 1] + 30 * rng.normal(size=160)  # noisy
    return X, np.column_stack([click, watch])


def test_fixed_weights():
    weighting = FixedWeights([1.0, 0.5, 0.0])
    losses = torch.tensor([2.0, 4.0, 100.0])
    assert weighting(losses).item() == 4.0
    assert weighting.weights().tolist() == [1.0, 0.5, 0.0]
    assert not list(weighting.parameters())


def test_uncertainty_weights_formula():
    regression = [True, False, True]
    weighting = UncertaintyWeights(regression)
    assert WEIGHTING_STRATEGIES["uncertainty"] is UncertaintyWeights
    s = torch.tensor([0.3, -0.7, 1.2])
    with torch.no_grad():
        weighting.log_variance.copy_(s)
    losses = torch.tensor([2.0, 0.5, 3.0])
    # Regression: 0.5 exp(-s) L + 0.5 s; classification: exp(-s) L + 0.5 s.
    expected = (
        0.5 * torch.exp(-s[0]) * 2.0
        + 0.5 * s[0]
        + torch.exp(-s[1]) * 0.5
        + 0.5 * s[1]
        + 0.5 * torch.exp(-s[2]) * 3.0
        + 0.5 * s[2]
    )
    torch.testing.assert_close(weighting(losses), expected)
    torch.testing.assert_close(
        weighting.weights(), torch.tensor([0.5, 1.0, 0.5]) * torch.exp(-s)
    )


def test_uncertainty_optimum_is_the_task_loss():
    # d/ds of 0.5 e^-s L + 0.5 s is zero at s = log L (regression), and of
    # e^-s L + 0.5 s at s = log 2L (classification).
    weighting = UncertaintyWeights([True, False])
    losses = torch.tensor([4.0, 0.25])
    optimizer = torch.optim.SGD(weighting.parameters(), lr=0.1)
    for _ in range(2000):
        optimizer.zero_grad()
        weighting(losses).backward()
        optimizer.step()
    torch.testing.assert_close(
        weighting.log_variance.detach(),
        torch.log(torch.tensor([4.0, 0.5])),
        atol=1e-3,
        rtol=0,
    )


def test_start_values_and_gradient():
    weighting = UncertaintyWeights([True, False])
    assert weighting.log_variance.tolist() == [0.0, 0.0]
    assert weighting.weights().tolist() == [0.5, 1.0]
    weighting(torch.tensor([3.0, 0.1])).backward()
    # d/ds = -0.5 e^-s L + 0.5 (regression), -e^-s L + 0.5 (classification).
    torch.testing.assert_close(weighting.log_variance.grad, torch.tensor([-1.0, 0.4]))


@pytest.fixture(scope="module")
def fitted():
    X, Y = _data()
    return MultiTaskMMoE(**SMALL, task_weights="uncertainty").fit(X, Y)


def test_log_variances_are_trained(fitted):
    weighting = fitted.net_.criterion_.weighting
    assert isinstance(weighting, UncertaintyWeights)
    start = np.array([1.0, 0.5])
    assert np.abs(fitted.task_weights_ - start).max() > 0.05
    np.testing.assert_allclose(
        fitted.task_weights_,
        weighting.weights().detach().numpy(),
        rtol=1e-6,
    )
    # One entry per task and epoch, the last one the fitted weights.
    for epoch in fitted.history_:
        assert {"task_weight_task0", "task_weight_task1"} <= epoch.keys()
    last = [fitted.history_[-1][f"task_weight_task{k}"] for k in range(2)]
    np.testing.assert_allclose(last, fitted.task_weights_, rtol=1e-6)
    per_epoch = [e["task_weight_task1"] for e in fitted.history_]
    assert len(set(per_epoch)) == len(per_epoch)


def test_fixed_weights_have_no_history_entries():
    X, Y = _data()
    model = MultiTaskMMoE(**SMALL, task_weights={"task1": 0.01}).fit(X, Y)
    np.testing.assert_allclose(model.task_weights_, [1.0, 0.01])
    assert not any(k.startswith("task_weight_") for k in model.history_[-1])


def test_log_variances_are_not_weight_decayed():
    X, Y = _data()
    model = MultiTaskMMoE(
        **SMALL, task_weights="uncertainty", weight_decay=0.1, optimizer="adamw"
    ).fit(X, Y)
    log_variance = model.net_.criterion_.weighting.log_variance
    groups = model.net_.optimizer_.param_groups
    (weighting_group,) = [
        g for g in groups if any(p is log_variance for p in g["params"])
    ]
    assert weighting_group["weight_decay"] == 0.0
    others = [g for g in groups if g is not weighting_group]
    assert others and all(g["weight_decay"] == 0.1 for g in others)
    # Also after continued training with new optimisation parameters.
    model.set_params(warm_start=True, weight_decay=0.2, lr=0.01).fit(X, Y)
    # Continued training works on a copy of the net: a new parameter object.
    log_variance = model.net_.criterion_.weighting.log_variance
    for group in model.net_.optimizer_.param_groups:
        learned = any(p is log_variance for p in group["params"])
        assert group["weight_decay"] == (0.0 if learned else 0.2)
        assert group["lr"] == 0.01


def test_warm_start_continues_the_learned_weights(fitted):
    X, Y = _data()
    model = load_model(_saved(fitted))
    learned = model.net_.criterion_.weighting.log_variance.detach().clone()
    torch.testing.assert_close(
        learned, fitted.net_.criterion_.weighting.log_variance.detach()
    )
    # A tiny learning rate: the weights stay where they were, not at the
    # start (1, 0.5).
    model.set_params(warm_start=True, lr=1e-7).fit(X, Y)
    torch.testing.assert_close(
        model.net_.criterion_.weighting.log_variance.detach(),
        learned,
        atol=1e-5,
        rtol=0,
    )
    assert model.n_iter_ == 8
    # partial_fit continues them too.
    model.partial_fit(X, Y)
    assert model.n_iter_ == 9 and "task_weight_task0" in model.history_[-1]


def _saved(model):
    buffer = io.BytesIO()
    save_model(model, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("new", [None, [1.0, 2.0]])
def test_changing_the_strategy_on_warm_start_is_refused(fitted, new):
    X, Y = _data()
    model = load_model(_saved(fitted))
    before = model.task_weights_.copy()
    model.set_params(warm_start=True, task_weights=new)
    with pytest.raises(ValueError, match="another weighting strategy"):
        model.fit(X, Y)
    with pytest.raises(ValueError, match="another weighting strategy"):
        model.partial_fit(X, Y)
    np.testing.assert_array_equal(model.task_weights_, before)
    assert model.n_iter_ == 4
    # Refitting from scratch may change it.
    model.set_params(warm_start=False).fit(X, Y)
    assert not any(k.startswith("task_weight_") for k in model.history_[-1])


def test_fixed_to_uncertainty_on_warm_start_is_refused():
    X, Y = _data()
    model = MultiTaskMMoE(**SMALL, warm_start=True).fit(X, Y)
    with pytest.raises(ValueError, match="another weighting strategy"):
        model.set_params(task_weights="uncertainty").fit(X, Y)
    # New fixed weights are fine.
    model.set_params(task_weights=[1.0, 3.0]).fit(X, Y)
    np.testing.assert_array_equal(model.task_weights_, [1.0, 3.0])


@pytest.mark.parametrize(
    "estimator, Y_column, scale",
    [
        (MultiTaskMMoEClassifier, lambda Y: Y[:, 0], [1.0, 1.0]),
        (MultiTaskMMoERegressor, lambda Y: Y[:, 1], [0.5, 0.5]),
    ],
)
def test_uncertainty_in_single_type_estimators(estimator, Y_column, scale):
    X, Y = _data()
    Y2 = np.column_stack([Y_column(Y), Y_column(Y)])
    model = estimator(**dict(SMALL, max_epochs=1), task_weights="uncertainty")
    model.fit(X, Y2)
    np.testing.assert_array_equal(model.net_.criterion_.weighting.scale.numpy(), scale)


def _linear_task_losses(directions):
    """A shared parameter ``p`` and the task losses ``p . a_k``."""
    shared = torch.nn.Parameter(torch.zeros(len(directions[0])))
    losses = torch.stack([shared @ torch.tensor(a) for a in directions])
    return shared, losses


def test_pcgrad_projects_conflicting_gradients_apart():
    shared, losses = _linear_task_losses([[1.0, 0.0], [-1.0, 1.0]])
    PCGradWeights([1, 1]).backward(losses, torch.tensor(0.0), [shared])
    # g1 - (g1.g2)/|g2|^2 g2 = (0.5, 0.5); g2 - (g2.g1)/|g1|^2 g1 = (0, 1).
    torch.testing.assert_close(shared.grad, torch.tensor([0.5, 1.5]))
    # Gradients that do not conflict are summed as they are.
    shared, losses = _linear_task_losses([[1.0, 0.0], [1.0, 1.0]])
    PCGradWeights([1, 1]).backward(losses, torch.tensor(0.0), [shared])
    torch.testing.assert_close(shared.grad, torch.tensor([2.0, 1.0]))


def test_gradnorm_raises_the_weight_of_the_task_with_the_smaller_gradient():
    weighting = GradNormWeights([1, 1])
    shared, losses = _linear_task_losses([[10.0, 0.0], [0.0, 1.0]])
    losses = losses + 1.0  # positive losses, their first step's reference
    weighting.backward(losses, torch.tensor(0.0), [shared])
    assert weighting.logits.grad[0] > 0 > weighting.logits.grad[1]
    torch.testing.assert_close(weighting.initial_losses, losses.detach())
    # The network is trained on the weighted sum, the weights held constant.
    torch.testing.assert_close(shared.grad, torch.tensor([10.0, 1.0]))


class _Recording(FixedWeights):
    """Equal weights that record the hooks' calls."""

    def __init__(self, tasks):
        super().__init__([1.0] * len(tasks))
        self.calls = []

    def backward(self, losses, penalty, shared_parameters):
        self.calls.append(("step", len(shared_parameters)))
        super().backward(losses, penalty, shared_parameters)

    def epoch_end(self, losses):
        self.calls.append(("epoch", losses.shape))


def test_a_weighting_gets_a_hook_per_step_and_per_epoch(monkeypatch):
    monkeypatch.setitem(WEIGHTING_STRATEGIES, "recording", _Recording)
    X, Y = _data()
    est = MultiTaskMMoE(**{**SMALL, "max_epochs": 2}).fit(X, Y)
    est.set_params(task_weights="recording")
    monkeypatch.setattr(
        type(est), "_parameter_constraints", {**type(est)._parameter_constraints}
    )
    type(est)._parameter_constraints["task_weights"] = [object]
    est.fit(X, Y)
    calls = est.net_.criterion_.weighting.calls
    n_shared = len(list(est.module_.levels.parameters()))
    assert calls.count(("step", n_shared)) == 2 * 5  # 160 rows, batches of 32
    assert calls.count(("epoch", (2,))) == 2


@pytest.mark.parametrize("strategy", ["gradnorm", "pcgrad"])
def test_gradient_balancing_weightings_train_save_and_continue(strategy):
    X, Y = _data()
    est = MultiTaskMMoE(**SMALL, task_weights=strategy).fit(X, Y)
    weighting = est.net_.criterion_.weighting
    assert isinstance(weighting, WEIGHTING_STRATEGIES[strategy])
    assert isinstance(weighting, LossWeighting)
    assert np.isfinite(est.predict(X)[:, 1].astype(float)).all()
    if strategy == "gradnorm":
        assert "task_weight_task0" in est.history_[-1]
        assert est.task_weights_.sum() == pytest.approx(2.0)
        assert not np.allclose(est.task_weights_, 1.0)
    buffer = io.BytesIO()
    save_model(est, buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    np.testing.assert_array_equal(loaded.task_weights_, est.task_weights_)
    loaded.set_params(warm_start=True, max_epochs=1).fit(X, Y)
    assert loaded.n_iter_ == est.n_iter_ + 1
