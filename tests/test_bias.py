"""The shallow bias tower: bias columns explain the training labels only."""

import io

import numpy as np
import pandas as pd
import pytest
import torch

from sk_mmoe import (
    MultiTaskMMoE,
    MultiTaskMMoEClassifier,
    MultiTaskMMoERegressor,
    load_model,
    save_model,
)
from sk_mmoe.nn._bias import BiasColumns, BiasTower

TINY = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    max_epochs=2,
    early_stopping=False,
    random_state=0,
)


def _position_data(n=400, seed=0):
    """Clicks from a relevant feature x0 and a position that lowers them."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"])
    X["position"] = rng.integers(0, 10, n)
    logit = 2 * X["x0"] - 0.5 * X["position"] + 2
    click = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    like = (X["x1"] + rng.normal(size=n) > 0).astype(int)
    return X, pd.DataFrame({"click": click, "like": like})


@pytest.mark.parametrize(
    "Estimator", [MultiTaskMMoEClassifier, MultiTaskMMoERegressor, MultiTaskMMoE]
)
def test_bias_features_left_out_at_prediction(Estimator):
    X, Y = _position_data()
    if Estimator is MultiTaskMMoERegressor:
        Y = Y.astype(float) + np.random.default_rng(0).normal(size=Y.shape)
    model = Estimator(bias_features=["position"], **TINY).fit(X, Y)
    assert model.n_features_in_ == 3
    assert model.feature_names_in_.tolist() == ["x0", "x1", "x2"]
    assert model.bias_features_in_.tolist() == ["position"]
    # With or without the bias column, and whatever its values: the same.
    full = model.predict(X)
    np.testing.assert_array_equal(full, model.predict(X.drop(columns="position")))
    np.testing.assert_array_equal(full, model.predict(X.assign(position=99)))
    # The trained network has a tower; the predicting one has none.
    assert hasattr(model.net_.module_, "bias_tower")
    assert not hasattr(model.module_, "bias_tower")


def test_bias_tower_learns_the_position_effect():
    X, Y = _position_data(n=2000)
    model = MultiTaskMMoEClassifier(
        bias_features={"click": ["position"]},
        **{**TINY, "max_epochs": 15},
    ).fit(X, Y)
    network = model.net_.module_
    positions = torch.arange(10, dtype=torch.float32).view(-1, 1)
    network.eval()
    with torch.no_grad():
        added = network.bias_tower(positions)  # (10, n_tasks, width)
    click_logit = added[:, 0, 1] - added[:, 0, 0]
    # Lower slots get lower click logits; the like task gets nothing.
    assert click_logit[0] - click_logit[-1] > 1.0
    assert torch.all(added[:, 1] == 0)


def test_bias_tower_feature_dropout_and_missing_values():
    tower = BiasTower(np.ones((2, 1), dtype=bool), width=2, dropout=0.5)
    torch.nn.init.normal_(tower.output.weight)
    tower.fill.data.fill_(5.0)
    x = torch.zeros(2000, 1)
    tower.eval()
    assert torch.allclose(tower(x), tower(torch.zeros(1, 1)).expand(2000, -1, -1))
    missing = tower(torch.full((1, 1), float("nan")))
    assert torch.allclose(missing, tower(torch.full((1, 1), 5.0)))
    tower.train()
    out = tower(x)[:, 0, 0]
    dropped = ~torch.isclose(out, tower.eval()(x)[:, 0, 0])
    assert 0.4 < dropped.float().mean() < 0.6


def test_bias_features_by_index_on_arrays():
    X, Y = _position_data()
    X = X.to_numpy()
    model = MultiTaskMMoEClassifier(bias_features=[-1], **TINY).fit(X, Y.to_numpy())
    assert model.n_features_in_ == 3
    assert model.bias_features_in_.tolist() == [3]
    np.testing.assert_array_equal(model.predict(X), model.predict(X[:, :3]))
    with pytest.raises(ValueError, match="expecting 3 features"):
        model.predict(X[:, :2])


def test_bias_tower_saved_loaded_and_continued():
    X, Y = _position_data()
    model = MultiTaskMMoEClassifier(bias_features=["position"], **TINY).fit(X, Y)
    buffer = io.BytesIO()
    save_model(model, buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    np.testing.assert_array_equal(loaded.predict_proba(X)[0], model.predict_proba(X)[0])
    tower, tower_loaded = model.net_.module_.bias_tower, loaded.net_.module_.bias_tower
    for a, b in zip(
        tower.state_dict().values(), tower_loaded.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    loaded.set_params(warm_start=True, max_epochs=1).fit(X, Y)
    assert loaded.n_iter_ == model.n_iter_ + 1


def test_bias_features_errors():
    X, Y = _position_data()
    with pytest.raises(ValueError, match="which X does not have"):
        MultiTaskMMoEClassifier(bias_features=["slot"], **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="no feature names"):
        MultiTaskMMoEClassifier(bias_features=["position"], **TINY).fit(X.to_numpy(), Y)
    with pytest.raises(ValueError, match="unknown tasks"):
        MultiTaskMMoEClassifier(bias_features={"watch": ["position"]}, **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="must hold numbers"):
        MultiTaskMMoEClassifier(bias_features=["position"], **TINY).fit(
            X.assign(position="top"), Y
        )
    with pytest.raises(ValueError, match="needs at least one other"):
        MultiTaskMMoEClassifier(bias_features=[0, 1, 2, 3], **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="bias_dropout"):
        MultiTaskMMoEClassifier(
            bias_features=["position"], bias_dropout=1.0, **TINY
        ).fit(X, Y)


def test_continued_training_needs_the_bias_columns():
    X, Y = _position_data()
    model = MultiTaskMMoEClassifier(
        bias_features=["position"], warm_start=True, **TINY
    ).fit(X, Y)
    state = {k: v.clone() for k, v in model.module_.state_dict().items()}
    with pytest.raises(ValueError, match="which X does not have"):
        model.fit(X.drop(columns="position"), Y)
    with pytest.raises(ValueError, match="bias_features must stay"):
        model.set_params(bias_features=None).fit(X, Y)
    for key, value in model.module_.state_dict().items():
        assert torch.equal(value, state[key])  # left as it was


def test_bias_columns_resolve_and_split():
    columns = BiasColumns.resolve(
        {"a": ["p"], "b": ["p", "d"]}, 4, ["x", "p", "d", "y"]
    )
    assert columns.indices == (1, 2)
    np.testing.assert_array_equal(
        columns.task_mask(["a", "b"]), [[True, False], [True, True]]
    )
    X = np.arange(8.0).reshape(2, 4)
    main, values = columns.split(X, required=True)
    np.testing.assert_array_equal(main, X[:, [0, 3]])
    np.testing.assert_array_equal(values, X[:, [1, 2]])
    assert BiasColumns.from_state(columns.state()) == columns


def test_bias_tower_with_an_ensemble_and_the_gate_balance_penalty():
    X, Y = _position_data()
    params = {**TINY, "ensemble_size": 3, "gate_balance": 0.1, "max_epochs": 3}
    model = MultiTaskMMoEClassifier(bias_features=["position"], **params).fit(X, Y)
    assert np.isfinite(model.history_[-1]["train_loss"])
    # The tower trained beside every member: it moved off its zero start.
    assert model.net_.module_.bias_tower.output.weight.abs().sum() > 0
    network = model.net_.module_.train()
    with torch.no_grad():
        x = torch.as_tensor(X.to_numpy(np.float32)[:8])
        assert network(x).shape[0] == 8 * 3  # every member's rows
    network.eval()
    np.testing.assert_array_equal(
        model.predict(X), model.predict(X.drop(columns="position"))
    )
