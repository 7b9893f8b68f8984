"""Missing numeric values in X (numeric_missing; sk_mmoe.nn.missing)."""

import pickle

import numpy as np
import pandas as pd
import pytest

from sk_mmoe import (
    MultiTaskMMoE,
    MultiTaskMMoEClassifier,
    MultiTaskMMoERegressor,
    load_model,
    save_model,
)

SMALL = dict(max_epochs=30, batch_size=64, random_state=0)
ESTIMATORS = [MultiTaskMMoEClassifier, MultiTaskMMoERegressor, MultiTaskMMoE]


def _data(n=600, seed=0):
    """Column "b" is missing not at random: where the target is positive."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = (rng.random(n) < 0.5).astype(int)
    X.loc[y == 1, "b"] = np.nan
    return X, y


def _target(Estimator, y):
    return y * 3.0 + 0.1 if Estimator is MultiTaskMMoERegressor else y


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_missing_values_are_learned_from(Estimator):
    X, y = _data()
    model = Estimator(**SMALL).fit(X, _target(Estimator, y))
    pred = model.predict(X)
    if Estimator is MultiTaskMMoERegressor:
        assert np.abs(pred - _target(Estimator, y)).mean() < 0.5
    else:
        # Only the missingness of "b" tells the classes apart.
        assert (pred == y).mean() > 0.95


@pytest.mark.parametrize("missing", [np.nan, None, pd.NA], ids=["nan", "none", "pd.NA"])
def test_none_and_pd_na_are_missing_values_as_nan(missing):
    X, y = _data(200)
    if missing is None:
        other = X.astype(object).where(X.notna(), None).to_numpy()
        X = X.to_numpy()
    else:
        other = X.astype("Float64") if missing is pd.NA else X
    as_nan = MultiTaskMMoEClassifier(max_epochs=2, random_state=0).fit(X, y)
    expected = as_nan.predict_proba(X)
    model = MultiTaskMMoEClassifier(max_epochs=2, random_state=0).fit(other, y)
    np.testing.assert_allclose(model.predict_proba(other), expected, atol=1e-6)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_numeric_missing_error_names_the_column(Estimator):
    X, y = _data(200)
    strict = Estimator(max_epochs=1, numeric_missing="error")
    with pytest.raises(ValueError, match=r"missing values \(NaN\) in 'b', which "):
        strict.fit(X, _target(Estimator, y))
    strict.fit(X.fillna(0.0), _target(Estimator, y))
    with pytest.raises(ValueError, match="numeric_missing='error'"):
        strict.predict(X)
    with pytest.raises(ValueError, match=r"in column 1, which"):
        Estimator(max_epochs=1, numeric_missing="error").fit(
            X.to_numpy(), _target(Estimator, y)
        )


def test_numeric_missing_is_validated():
    X, y = _data(50)
    with pytest.raises(ValueError, match="numeric_missing"):
        MultiTaskMMoEClassifier(numeric_missing="median").fit(X, y)


def test_infinite_values_are_still_refused():
    X, y = _data(50)
    X.loc[0, "a"] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        MultiTaskMMoEClassifier(max_epochs=1).fit(X, y)


def test_a_model_with_missing_values_persists(tmp_path):
    X, y = _data(200)
    model = MultiTaskMMoE(max_epochs=3, random_state=0).fit(X, y)
    expected = model.predict_proba(X)
    save_model(model, tmp_path / "model.skmmoe")
    loaded = load_model(tmp_path / "model.skmmoe")
    np.testing.assert_allclose(loaded.predict_proba(X)[0], expected[0], atol=1e-6)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.predict_proba(X)[0], expected[0], atol=1e-6)


def test_a_network_without_fill_refuses_missing_values():
    X, y = _data(200)
    model = MultiTaskMMoEClassifier(max_epochs=1).fit(X.fillna(0.0), y)
    # As a model saved before missing values were learned.
    model._spec = type(model._spec)(**{**vars(model._spec), "numeric_missing": False})
    with pytest.raises(ValueError, match="saved before numeric_missing"):
        model.predict(X)


@pytest.mark.parametrize("embedding", [False, True])
def test_batches_without_missing_values_train_as_with_the_fill(embedding, monkeypatch):
    # A batch without missing values leaves the input untouched and gives the
    # fill a zero gradient directly: Adam with weight decay then steps every
    # parameter (the fill's moments included) as through the fill itself.
    import torch

    from sk_mmoe.nn.missing import MissingFill
    from sk_mmoe.nn.network import MMoENetwork

    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.standard_normal((4, 32, 5)).astype(np.float32))
    X[0, 3, 1] = float("nan")  # only the first batch has a missing value
    y = torch.from_numpy(rng.integers(0, 2, (4, 32, 2)))

    def train(skip):
        monkeypatch.setattr(MissingFill, "skips", lambda self, x: skip)
        torch.manual_seed(0)
        net = MMoENetwork(
            5, [2, 2], n_experts=2, numeric_missing=True, numeric_embedding=embedding
        )
        optimizer = torch.optim.AdamW(net.parameters(), lr=0.05)
        for xb, yb in zip(X, y, strict=True):
            logits = net(xb)
            loss = sum(
                torch.nn.functional.cross_entropy(logits[:, k], yb[:, k])
                for k in range(2)
            )
            optimizer.zero_grad()
            loss.backward()
            assert net.missing.fill.grad is not None
            optimizer.step()
        return net

    skipped, filled = train(True), train(False)
    # The fill moved on the first batch and kept moving with its momentum.
    assert skipped.missing.fill[1] != 0
    for a, b in zip(skipped.parameters(), filled.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    # The skip happens in training steps only.
    monkeypatch.undo()
    x = X[1]
    fill = skipped.missing
    assert fill(x, torch.isnan(x)) is x
    with torch.no_grad():
        assert fill(x, torch.isnan(x)) is not x
    assert fill.eval()(x, torch.isnan(x)) is not x
