"""Tests for sk_mmoe.nn.losses."""

import math

import pytest
import torch
from torch.nn import functional as F

from sk_mmoe.nn.losses import MultiTaskLoss
from sk_mmoe.nn.weighting import FixedWeights

NAN = float("nan")


def _logits(batch=8, n_classes=(2, 3)):
    torch.manual_seed(0)
    logits = torch.randn(batch, len(n_classes), max(n_classes))
    for k, c in enumerate(n_classes):
        logits[:, k, c:] = float("-inf")
    return logits


def test_each_task_averages_over_its_labelled_rows():
    logits = _logits()
    target = torch.tensor(
        [[0, 2], [1, NAN], [NAN, 0], [1, 1], [0, NAN], [1, 2], [0, 0]]
    )
    logits = logits[: len(target)]
    loss = MultiTaskLoss(
        ["cross_entropy", "cross_entropy"], weighting=FixedWeights([2.0, 0.5])
    )
    losses, counts = loss.task_losses(logits, target)

    for k, n_classes in enumerate([2, 3]):
        rows = ~torch.isnan(target[:, k])
        expected = F.cross_entropy(logits[rows, k, :n_classes], target[rows, k].long())
        torch.testing.assert_close(losses[k], expected)
        assert counts[k] == rows.sum()
    torch.testing.assert_close(loss(logits, target), 2.0 * losses[0] + 0.5 * losses[1])


def test_default_weighting_is_the_plain_sum():
    logits = _logits()
    target = torch.tensor([[0, 1]] * 8, dtype=torch.float32)
    loss = MultiTaskLoss(["cross_entropy", "cross_entropy"])
    assert isinstance(loss.weighting, FixedWeights)
    losses, _ = loss.task_losses(logits, target)
    torch.testing.assert_close(loss(logits, target), losses.sum())


def test_class_weights_are_sample_weights():
    logits = _logits()
    target = torch.tensor(
        [[0, 1], [1, 2], [1, 0], [0, 0], [1, 1], [1, 2], [0, 0], [1, 1]],
        dtype=torch.float32,
    )
    loss = MultiTaskLoss(
        ["cross_entropy", "cross_entropy"],
        class_weights=[[1.0, 3.0], [1.0, 1.0, 0.0]],
    )
    losses, _ = loss.task_losses(logits, target)
    codes = target.long()
    nll = F.cross_entropy(logits[:, 0, :2], codes[:, 0], reduction="none")
    w = torch.tensor([1.0, 3.0])[codes[:, 0]]
    torch.testing.assert_close(losses[0], (w * nll).sum() / len(target))
    nll = F.cross_entropy(logits[:, 1], codes[:, 1], reduction="none")
    w = torch.tensor([1.0, 1.0, 0.0])[codes[:, 1]]
    torch.testing.assert_close(losses[1], (w * nll).sum() / len(target))


def test_task_without_labels_in_batch_contributes_zero_and_no_nan():
    logits = _logits(4).requires_grad_()
    target = torch.tensor([[0, NAN], [1, NAN], [1, NAN], [0, NAN]])
    loss = MultiTaskLoss(["cross_entropy", "cross_entropy"])
    losses, counts = loss.task_losses(logits, target)
    assert losses[1] == 0 and counts[1] == 0
    total = loss(logits, target)
    total.backward()
    assert torch.isfinite(total)
    # Padding logits are -inf; their gradient must still be finite.
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[:, 1] == 0).all()


def test_uniform_logits_give_log_n_classes():
    logits = torch.zeros(5, 2, 4)
    target = torch.tensor([[0.0, 3.0]] * 5)
    losses, _ = MultiTaskLoss(["cross_entropy"] * 2).task_losses(logits, target)
    assert losses.tolist() == pytest.approx([math.log(4)] * 2)


def test_regression_tasks_use_the_first_output_column():
    torch.manual_seed(0)
    outputs = torch.randn(6, 2, 1)
    target = torch.tensor(
        [[0.5, NAN], [1.0, 2.0], [NAN, -1.0], [2.0, 0.0], [-1.0, 1.5], [0.0, 3.0]]
    )
    loss = MultiTaskLoss(["regression", "regression"])
    losses, counts = loss.task_losses(outputs, target)
    for k in range(2):
        rows = ~torch.isnan(target[:, k])
        expected = F.mse_loss(outputs[rows, k, 0], target[rows, k])
        torch.testing.assert_close(losses[k], expected)
        assert counts[k] == rows.sum()


def test_huber_loss_option():
    outputs = torch.zeros(4, 1, 1)
    target = torch.tensor([[0.5], [3.0], [-2.0], [NAN]])
    huber = MultiTaskLoss(["regression"], regression_loss="huber")
    squared = MultiTaskLoss(["regression"])
    # Huber, delta=1: 0.5 e^2 inside [-1, 1], |e| - 0.5 outside.
    expected = (0.5 * 0.25 + 2.5 + 1.5) / 3
    assert huber.task_losses(outputs, target)[0].item() == pytest.approx(expected)
    assert squared.task_losses(outputs, target)[0].item() == pytest.approx(
        (0.25 + 9 + 4) / 3
    )
    with pytest.raises(ValueError, match="regression_loss"):
        MultiTaskLoss(["regression"], regression_loss="absolute")


def test_mixed_classification_and_regression():
    torch.manual_seed(1)
    outputs = torch.randn(5, 3, 3)
    outputs[:, 1, 1:] = float("-inf")  # regression task: width 1
    outputs[:, 2, 2:] = float("-inf")  # binary task: width 2
    target = torch.tensor(
        [[0, 0.5, 1], [2, NAN, 0], [1, -1.0, NAN], [NAN, 2.0, 1], [1, 0.0, 0]]
    )
    loss = MultiTaskLoss(["cross_entropy", "regression", "cross_entropy"])
    losses, counts = loss.task_losses(outputs, target)
    rows = ~torch.isnan(target[:, 0])
    torch.testing.assert_close(
        losses[0], F.cross_entropy(outputs[rows, 0], target[rows, 0].long())
    )
    rows = ~torch.isnan(target[:, 1])
    torch.testing.assert_close(
        losses[1], F.mse_loss(outputs[rows, 1, 0], target[rows, 1])
    )
    rows = ~torch.isnan(target[:, 2])
    torch.testing.assert_close(
        losses[2], F.cross_entropy(outputs[rows, 2, :2], target[rows, 2].long())
    )
    assert counts.tolist() == [4, 4, 4]


def test_sample_weights_give_weighted_means_per_task():
    torch.manual_seed(2)
    outputs = torch.randn(4, 2, 2)
    outputs[:, 1, 1:] = float("-inf")
    target = torch.tensor([[0, 1.0], [1, NAN], [1, -2.0], [0, 0.5]])
    weight = torch.tensor([1.0, 2.0, 0.0, 3.0])
    loss = MultiTaskLoss(["cross_entropy", "regression"])
    losses, counts = loss.task_losses(outputs, target, weight)
    nll = F.cross_entropy(outputs[:, 0], target[:, 0].long(), reduction="none")
    torch.testing.assert_close(losses[0], (weight * nll).sum() / weight.sum())
    rows = ~torch.isnan(target[:, 1])
    err = (outputs[rows, 1, 0] - target[rows, 1]).square()
    torch.testing.assert_close(
        losses[1], (weight[rows] * err).sum() / weight[rows].sum()
    )
    assert counts.tolist() == [6.0, 4.0]
    # Weight 0 on a row is the same as leaving the row out.
    keep = weight > 0
    dropped, _ = loss.task_losses(outputs[keep], target[keep], weight[keep])
    torch.testing.assert_close(losses, dropped)


def test_unknown_task_loss_is_refused():
    with pytest.raises(ValueError, match="unknown task losses"):
        MultiTaskLoss(["cross_entropy", "ordinal"])


def test_poisson_loss_is_the_unit_deviance_of_a_log_rate():
    log_rate = torch.tensor([[[0.0]], [[math.log(2.0)]], [[1.0]]])
    y = torch.tensor([[0.0], [2.0], [3.0]])
    loss = MultiTaskLoss(["poisson"])
    losses, _ = loss.task_losses(log_rate, y)
    mu = torch.exp(log_rate[:, 0, 0])
    deviance = 2 * (torch.special.xlogy(y[:, 0], y[:, 0] / mu) - y[:, 0] + mu)
    torch.testing.assert_close(losses, deviance.mean().reshape(1))
    # Zero at the optimum (log rate = log y), positive elsewhere.
    exact, _ = loss.task_losses(
        torch.log(torch.tensor([[[2.0]], [[5.0]]])), torch.tensor([[2.0], [5.0]])
    )
    assert abs(exact.item()) < 1e-6 and losses.item() > 0


def test_per_task_losses_of_different_kinds_in_one_batch():
    outputs = torch.randn(6, 3, 2)
    target = torch.tensor([[1.0, 0.5, 2.0]] * 6)
    losses, _ = MultiTaskLoss(["cross_entropy", "huber", "poisson"]).task_losses(
        outputs, target
    )
    for k, name in enumerate(["cross_entropy", "huber", "poisson"]):
        alone, _ = MultiTaskLoss([name]).task_losses(
            outputs[:, k : k + 1], target[:, k : k + 1]
        )
        torch.testing.assert_close(losses[k : k + 1], alone)


def test_task_outputs_map_what_the_losses_read():
    outputs = _logits(n_classes=(2, 2))
    target = torch.tensor([[0.0, 1.0]] * 8)

    def swap(out):
        return out.flip(1)

    swapped, _ = MultiTaskLoss(["cross_entropy"] * 2, task_outputs=swap).task_losses(
        outputs, target
    )
    direct, _ = MultiTaskLoss(["cross_entropy"] * 2).task_losses(
        outputs.flip(1), target
    )
    torch.testing.assert_close(swapped, direct)
