"""Tests for sk_mmoe.losses."""

import math

import pytest
import torch
from torch.nn import functional as F

from sk_mmoe.losses import MultiTaskCrossEntropy


def _logits(batch=8, n_classes=(2, 3)):
    torch.manual_seed(0)
    logits = torch.randn(batch, len(n_classes), max(n_classes))
    for k, c in enumerate(n_classes):
        logits[:, k, c:] = float("-inf")
    return logits


def test_each_task_averages_over_its_labelled_rows():
    logits = _logits()
    target = torch.tensor([[0, 2], [1, -1], [-1, 0], [1, 1], [0, -1], [1, 2], [0, 0]])
    logits = logits[: len(target)]
    loss = MultiTaskCrossEntropy([2, 3], task_weights=[2.0, 0.5])
    losses, counts = loss.task_losses(logits, target)

    for k, n_classes in enumerate([2, 3]):
        rows = target[:, k] != -1
        expected = F.cross_entropy(logits[rows, k, :n_classes], target[rows, k])
        torch.testing.assert_close(losses[k], expected)
        assert counts[k] == rows.sum()
    torch.testing.assert_close(loss(logits, target), 2.0 * losses[0] + 0.5 * losses[1])


def test_class_weights_are_sample_weights():
    logits = _logits()
    target = torch.tensor(
        [[0, 1], [1, 2], [1, 0], [0, 0], [1, 1], [1, 2], [0, 0], [1, 1]]
    )
    loss = MultiTaskCrossEntropy([2, 3], class_weights=[[1.0, 3.0], [1.0, 1.0, 0.0]])
    losses, _ = loss.task_losses(logits, target)
    nll = F.cross_entropy(logits[:, 0, :2], target[:, 0], reduction="none")
    w = torch.tensor([1.0, 3.0])[target[:, 0]]
    torch.testing.assert_close(losses[0], (w * nll).sum() / len(target))
    nll = F.cross_entropy(logits[:, 1], target[:, 1], reduction="none")
    w = torch.tensor([1.0, 1.0, 0.0])[target[:, 1]]
    torch.testing.assert_close(losses[1], (w * nll).sum() / len(target))


def test_task_without_labels_in_batch_contributes_zero_and_no_nan():
    logits = _logits(4).requires_grad_()
    target = torch.tensor([[0, -1], [1, -1], [1, -1], [0, -1]])
    loss = MultiTaskCrossEntropy([2, 3])
    losses, counts = loss.task_losses(logits, target)
    assert losses[1] == 0 and counts[1] == 0
    total = loss(logits, target)
    total.backward()
    assert torch.isfinite(total)
    # Padding logits are -inf; their gradient must still be finite.
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[:, 1] == 0).all()


def test_set_weights_resets_to_ones():
    loss = MultiTaskCrossEntropy(
        [2, 2], task_weights=[1, 3], class_weights=[[2, 1], [1, 1]]
    )
    loss.set_weights()
    assert (loss.task_weights == 1).all() and (loss.class_weights == 1).all()


def test_uniform_logits_give_log_n_classes():
    logits = torch.zeros(5, 2, 4)
    target = torch.tensor([[0, 3]] * 5)
    losses, _ = MultiTaskCrossEntropy([4, 4]).task_losses(logits, target)
    assert losses.tolist() == pytest.approx([math.log(4)] * 2)
