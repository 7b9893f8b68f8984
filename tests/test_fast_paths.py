"""The speed-ups of training and prediction behave like the general code.

Covers the CPU softmax of ``sk_mmoe.network``, the validation shortcut for
float32 arrays and the skipped mode switches of ``sk_mmoe._classifier``.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from skorch.callbacks import Callback

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import make_task_correlation
from sk_mmoe.network import MMoENetwork, _softmax_last_dim

SMALL = dict(
    n_experts=3,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    batch_size=32,
    max_epochs=2,
    random_state=0,
)


@pytest.fixture(scope="module")
def data():
    X, Y = make_task_correlation(200, 0.8, n_features=6, random_state=0)
    return X, Y


@pytest.fixture(scope="module")
def fitted(data):
    return MultiTaskMMoEClassifier(**SMALL).fit(*data)


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


def test_has_dropout_says_whether_the_mode_matters():
    assert not MMoENetwork(4, [2, 2]).has_dropout
    assert MMoENetwork(4, [2, 2], dropout=0.1).has_dropout
    assert MMoENetwork(4, [2, 2], gate_dropout=0.1).has_dropout


def test_float32_arrays_predict_like_other_inputs(fitted, data):
    X, _ = data
    assert X.dtype == np.float32
    for other in (X.astype(np.float64), X.tolist(), np.asfortranarray(X)):
        np.testing.assert_array_equal(fitted.predict(X), fitted.predict(other))
        for a, b in zip(
            fitted.predict_proba(X), fitted.predict_proba(other), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        fitted.gate_weights(X), fitted.gate_weights(X.astype(np.float64))
    )


@pytest.mark.parametrize("bad, match", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_float32_shortcut_raises_the_same_errors(fitted, data, bad, match):
    X, _ = data
    X = X.copy()
    X[2, 1] = bad
    messages = []
    for array in (X, X.astype(np.float64)):
        with pytest.raises(ValueError) as info:
            fitted.predict(array)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert match in messages[0]


def test_float32_shortcut_keeps_the_feature_name_warning(data):
    X, Y = data
    X_df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X_df, Y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(X)


def test_read_only_input_predicts_without_warnings(fitted, data):
    X = data[0].copy()
    X.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.predict_proba(X)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_prediction_leaves_the_module_mode_as_it_was(data, dropout):
    X, Y = data
    clf = MultiTaskMMoEClassifier(**SMALL, dropout=dropout).fit(X, Y)
    for mode in (True, False):
        clf.module_.train(mode)
        first = clf.predict_proba(X)
        assert all(m.training == mode for m in clf.module_.modules())
        # Deterministic: dropout is off at prediction time.
        for a, b in zip(first, clf.predict_proba(X), strict=True):
            np.testing.assert_array_equal(a, b)


class _RecordModes(Callback):
    def initialize(self):
        self.modes = {True: set(), False: set()}
        return self

    # skorch sets the mode after on_batch_begin: record it at the batch's end.
    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        modules = list(net.module_.modules()) + [net.criterion_]
        self.modes[training].update(m.training for m in modules)


def test_training_and_validation_batches_run_in_their_modes(data):
    X, Y = data
    clf = MultiTaskMMoEClassifier(
        **SMALL, dropout=0.2, early_stopping=True, callbacks=[_RecordModes()]
    ).fit(X, Y)
    recorder = dict(clf.net_.callbacks_)["_RecordModes"]
    assert recorder.modes == {True: {True}, False: {False}}
