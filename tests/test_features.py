"""Tests for categorical input columns (sk_mmoe._data.features and the estimators)."""

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mmoe import (
    MultiTaskMMoE,
    MultiTaskMMoEClassifier,
    MultiTaskMMoERegressor,
    load_model,
    save_model,
)
from sk_mmoe._data.features import CategoricalEncoder, categorical_mask
from sk_mmoe._persistence_upgrade import upgrade
from sk_mmoe.nn.network import (
    NUMERIC_EMBEDDING_DIM,
    FeatureEmbedding,
    MMoENetwork,
    embedding_size,
    embedding_sizes,
)

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(),
    max_epochs=20,
    batch_size=64,
    lr=0.02,
    random_state=0,
)


@pytest.fixture(scope="module")
def frame():
    """A numeric column, a string colour that decides task 0, a city ID."""
    rng = np.random.default_rng(0)
    n = 600
    colour = rng.choice(["red", "green", "blue"], n)
    city = pd.Categorical(rng.integers(0, 40, n).astype(str))
    amount = rng.normal(size=n)
    X = pd.DataFrame({"amount": amount, "colour": colour, "city": city})
    Y = pd.DataFrame(
        {
            "is_red": (colour == "red").astype(int),
            "positive": (amount > 0).astype(int),
        }
    )
    return X, Y


def test_mask_from_dtype_names_indices_and_mask(frame):
    X, _ = frame
    np.testing.assert_array_equal(
        categorical_mask(X, "from_dtype"), [False, True, True]
    )
    np.testing.assert_array_equal(categorical_mask(X, ["city"]), [False, False, True])
    np.testing.assert_array_equal(categorical_mask(X, [1]), [False, True, False])
    np.testing.assert_array_equal(
        categorical_mask(X, [True, False, False]), [True, False, False]
    )
    assert not categorical_mask(X.to_numpy(), "from_dtype").any()
    assert not categorical_mask(X, None).any()
    for bad, match in [
        (["nope"], "does not have"),
        ([5], "out of range"),
        ([True, False], "one entry per feature"),
        ([1.5], "names or indices"),
        ("auto", "from_dtype"),
    ]:
        with pytest.raises(ValueError, match=match):
            categorical_mask(X, bad)


def test_encoder_codes_missing_rare_and_unseen():
    X = pd.DataFrame({"c": ["a", "a", "b", "b", "b", "c", None]})
    encoder = CategoricalEncoder(np.array([True]), max_categories=10, min_frequency=2)
    encoder.fit(X)
    # Most frequent first; "c" (seen once) is rare.
    assert encoder.categories == [["b", "a"]]
    assert encoder.cardinalities == [4]
    codes = encoder.transform(X)[:, 0]
    np.testing.assert_array_equal(codes, [3, 3, 2, 2, 2, 1, 0])
    unseen = encoder.transform(pd.DataFrame({"c": ["zzz", np.nan, "a"]}))[:, 0]
    np.testing.assert_array_equal(unseen, [1, 0, 3])
    # max_categories bounds the table: here one value keeps its own code.
    small = CategoricalEncoder(np.array([True]), max_categories=3, min_frequency=1)
    assert small.fit(X).categories == [["b"]]
    restored = CategoricalEncoder.from_state(encoder.state())
    np.testing.assert_array_equal(restored.transform(X), encoder.transform(X))


@pytest.mark.parametrize("min_frequency", [1, 2])
def test_category_columns_code_as_their_text(min_frequency):
    # A pandas category column is read through its categories, each
    # converted once: the codes are those of the same values as objects,
    # categories of the same text count as one and unused ones are not kept.
    values = [1, "1", None, "b", "b", 2, "b"]
    X = pd.DataFrame({"c": pd.Categorical(values, categories=[1, "1", "b", 2, "z"])})
    mask = np.array([True])
    by_category = CategoricalEncoder(mask, 10, min_frequency).fit(X)
    by_object = CategoricalEncoder(mask, 10, min_frequency).fit(X.astype(object))
    assert by_category.categories == by_object.categories
    assert "z" not in by_category.categories[0]
    np.testing.assert_array_equal(
        by_category.transform(X), by_object.transform(X.astype(object))
    )
    unseen = pd.DataFrame({"c": pd.Categorical(["z", None, "b"])})
    np.testing.assert_array_equal(
        by_category.transform(unseen), by_object.transform(unseen.astype(object))
    )
    empty = pd.DataFrame({"c": pd.Categorical([None, None])})
    codes = CategoricalEncoder(mask, 10, 1).fit(empty).transform(empty)
    np.testing.assert_array_equal(codes, [[0], [0]])


def test_encoder_records_what_each_categorical_column_holds():
    X = pd.DataFrame(
        {
            "text": ["a", None, "b"],
            "ints": [3, 10**12, 3],
            "float32": np.float32([0.1, 0.5, np.nan]),
            "nullable": pd.array([1, None, 2], dtype="Int64"),
            "numeric_category": pd.Categorical([1.5, 2.0, 1.5]),
            "text_category": pd.Categorical(["x", "y", "x"]),
            "mixed": pd.Series([1, "a", None], dtype=object),
            "numbers": pd.Series([1, 2.5, None], dtype=object),
            "booleans": [True, False, True],
        }
    )
    mask = np.ones(X.shape[1], dtype=bool)
    encoder = CategoricalEncoder(mask, max_categories=10, min_frequency=1).fit(X)
    expected = ["str", "float64", "float32", "float64", "float64", "str", "str"]
    assert encoder.value_types == [*expected, "float64", "str"]
    # An object array as fit reads one: its values decide.
    objects = np.array([[1, "a", np.float32(2)], [None, "b", np.float32(3)]], object)
    encoder = CategoricalEncoder(np.ones(3, dtype=bool), 10, 1).fit(objects)
    assert encoder.value_types == ["float64", "str", "float32"]
    # Saved with the encoder; a state without them (older files) is upgraded
    # to one that reads as text.
    state = encoder.state()
    assert CategoricalEncoder.from_state(state).value_types == encoder.value_types
    del state["value_types"]
    with pytest.raises(ValueError, match="value types"):
        CategoricalEncoder.from_state(state)
    older = upgrade({"format_version": 3, "categorical": state})["categorical"]
    assert CategoricalEncoder.from_state(older).value_types == ["str"] * 3
    with pytest.raises(ValueError, match="value types"):
        CategoricalEncoder.from_state({**state, "value_types": ["int"] * 3})


def test_polars_value_types(pl):
    X = pl.DataFrame(
        {
            "s": ["a", None],
            "c": pl.Series(["a", "b"], dtype=pl.Categorical),
            "i": [1, None],
            "f": pl.Series([0.1, 2.0], dtype=pl.Float32),
        }
    )
    encoder = CategoricalEncoder(np.ones(4, dtype=bool), 10, 1).fit(X)
    assert encoder.value_types == ["str", "str", "float64", "float32"]


def test_encoder_refuses_text_in_numeric_columns():
    X = pd.DataFrame({"n": ["1.5", "x"], "c": ["a", "b"]})
    encoder = CategoricalEncoder(np.array([False, True]), 10, 1).fit(X)
    with pytest.raises(ValueError, match="categorical_features"):
        encoder.transform(X)


def test_feature_embedding_shapes_and_lookup():
    embedding = FeatureEmbedding(
        4, categorical_columns=[1, 3], cardinalities=[3, 5], embedding_dim=2
    )
    x = torch.tensor([[0.5, 2.0, -1.0, 4.0]])
    out = embedding(x)
    assert out.shape == (1, 2 + 2 * 2) == (1, embedding.out_features)
    torch.testing.assert_close(out[0, :2], torch.tensor([0.5, -1.0]))
    table = embedding.table.weight
    torch.testing.assert_close(out[0, 2:4], table[2])
    torch.testing.assert_close(out[0, 4:6], table[3 + 4])
    net = MMoENetwork(4, [2], categorical_columns=[1, 3], cardinalities=[3, 5])
    assert net(x).shape == (1, 1, 2)
    assert 4 <= embedding_size([3]) <= embedding_size([10**6]) == 16


def test_feature_embedding_sizes_per_column():
    embedding = FeatureEmbedding(
        4, categorical_columns=[1, 3], cardinalities=[3, 5], embedding_dim=[2, 3]
    )
    x = torch.tensor([[0.5, 2.0, -1.0, 4.0], [0.5, 0.0, -1.0, 4.0]])
    out = embedding(x)
    assert out.shape == (2, 2 + 2 + 3) == (2, embedding.out_features)
    table = embedding.table.weight[:, 0]
    # Column 1 holds rows 0..5 (3 codes x 2), column 3 rows 6..20 (5 x 3).
    torch.testing.assert_close(out[0, 2:4], table[4:6])
    torch.testing.assert_close(out[1, 2:4], table[0:2])
    torch.testing.assert_close(out[0, 4:7], table[6 + 12 : 6 + 15])
    torch.testing.assert_close(out[1, 4:], out[0, 4:])
    # The same values without gradients (prediction, export).
    with torch.no_grad():
        torch.testing.assert_close(embedding(x), out.detach())
    # Each column starts at the scale of its own size.
    wide = FeatureEmbedding(2, [0, 1], [1000, 1000], embedding_dim=[1, 16])
    first, second = wide.table.weight[:1000], wide.table.weight[1000:]
    assert 0.8 < first.std().item() < 1.2 and 0.2 < second.std().item() < 0.3
    assert embedding_sizes([2, 3, 50, 10**6]) == (2, 3, 14, 16)
    with pytest.raises(ValueError, match="per categorical column"):
        FeatureEmbedding(4, [1, 3], [3, 5], embedding_dim=[2])


def test_numeric_embedding_gives_each_numeric_column_its_vector():
    embedding = FeatureEmbedding(
        4,
        categorical_columns=[1, 3],
        cardinalities=[3, 5],
        embedding_dim=2,
        numeric_embedding=True,
    )
    x = torch.tensor([[0.5, 2.0, -1.0, 4.0], [0.7, 2.0, -1.0, 4.0]])
    out = embedding(x)
    width = 2 * NUMERIC_EMBEDDING_DIM
    assert out.shape == (2, width + 2 * 2) == (2, embedding.out_features)
    torch.testing.assert_close(
        out[:, :width], embedding.numeric_embedding(x[:, [0, 2]]).flatten(1)
    )
    torch.testing.assert_close(out[0, width : width + 2], embedding.table.weight[2])
    # A column's vector depends on that column only.
    dim = NUMERIC_EMBEDDING_DIM
    assert not torch.equal(out[0, :dim], out[1, :dim])
    torch.testing.assert_close(out[0, dim:], out[1, dim:])
    # Numeric columns alone can be embedded; nothing to embed is refused.
    assert FeatureEmbedding(3, numeric_embedding=True).out_features == 3 * dim
    with pytest.raises(ValueError, match="columns to embed"):
        FeatureEmbedding(3)


@pytest.mark.parametrize(
    "estimator", [MultiTaskMMoEClassifier, MultiTaskMMoE], ids=["clf", "mixed"]
)
def test_raw_frame_with_categories_is_learned(frame, estimator):
    X, Y = frame
    model = estimator(**SMALL).fit(X[:500], Y[:500])
    assert model.n_features_in_ == 3
    np.testing.assert_array_equal(model.feature_names_in_, ["amount", "colour", "city"])
    assert model.module_.embedding is not None
    # The colour (a string column) decides task 0: learned through its vector.
    accuracy = (model.predict(X[500:])[:, 0] == Y["is_red"][500:]).mean()
    assert accuracy > 0.95


def test_unseen_and_missing_categories_predict(frame):
    X, Y = frame
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    new = pd.DataFrame(
        {
            "amount": [0.1, 0.2, 0.3],
            "colour": ["purple", None, "red"],
            "city": pd.Categorical(["unknown-city", None, "3"]),
        }
    )
    proba = clf.predict_proba(new)
    assert all(np.isfinite(p).all() for p in proba)
    assert clf.predict(new).shape == (3, 2)


def test_columns_are_checked_at_predict(frame):
    X, Y = frame
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X[["colour", "amount", "city"]])
    bad = X.copy()
    bad["amount"] = "text"
    with pytest.raises(ValueError, match="categorical_features"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="sparse"):
        MultiTaskMMoEClassifier(**SMALL, categorical_features=[0]).fit(
            sp.csr_matrix(np.ones((4, 2))), [[0, 1], [1, 0], [0, 1], [1, 0]]
        )


def test_explicit_columns_on_arrays_and_none(frame):
    X, Y = frame
    # Integer-coded categories in a plain array, declared by index.
    X_array = np.column_stack(
        [X["amount"], X["colour"].map({"red": 0, "green": 1, "blue": 2})]
    )
    clf = MultiTaskMMoEClassifier(**SMALL, categorical_features=[1]).fit(X_array, Y)
    assert clf.module_.embedding is not None
    # None: string columns are refused as numbers, as before.
    with pytest.raises(ValueError):
        MultiTaskMMoEClassifier(**SMALL, categorical_features=None).fit(X, Y)


def test_max_categories_bounds_the_embedding_table(frame):
    X, Y = frame
    clf = MultiTaskMMoEClassifier(**SMALL, max_categories=5).fit(X, Y)
    assert clf._encoder.cardinalities == [5, 5]
    # A row per code and dimension of each of the two columns.
    dims = clf.module_.embedding.column_dims
    assert dims == embedding_sizes([5, 5])
    assert clf.module_.embedding.table.num_embeddings == 5 * sum(dims)
    with pytest.raises(ValueError, match="max_categories"):
        MultiTaskMMoEClassifier(**SMALL, max_categories=2).fit(X, Y)


def test_persistence_warm_start_and_pipeline(frame):
    X, Y = frame
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    buffer = io.BytesIO()
    save_model(clf, buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    for a, b in zip(loaded.predict_proba(X), clf.predict_proba(X), strict=True):
        np.testing.assert_array_equal(a, b)
    clf.set_params(warm_start=True, max_epochs=1).fit(X, Y)
    loaded.set_params(warm_start=True, max_epochs=1).fit(X, Y)
    for a, b in zip(loaded.predict_proba(X), clf.predict_proba(X), strict=True):
        np.testing.assert_array_equal(a, b)
    # Scaling upstream with pandas output keeps the categorical dtypes.
    pipe = make_pipeline(
        ColumnTransformer(
            [("scale", StandardScaler(), ["amount"])],
            remainder="passthrough",
            verbose_feature_names_out=False,
        ).set_output(transform="pandas"),
        MultiTaskMMoERegressor(**SMALL),
    )
    pipe.fit(X, Y.astype(float))
    assert pipe[-1].module_.embedding is not None
    assert pipe.predict(X).shape == (len(X), 2)


# polars frames: read as the same pandas frame would be.

TINY = dict(SMALL, max_epochs=2, n_threads=1)


@pytest.fixture(scope="module")
def pl():
    return pytest.importorskip("polars")


@pytest.fixture(scope="module")
def polars_and_pandas(pl):
    """One table as polars and as pandas: a number, a string and a categorical
    column with nulls, and targets with missing labels."""
    rng = np.random.default_rng(1)
    n = 240
    amount = rng.normal(size=n)
    colour = rng.choice(np.array(["red", "green", "blue", None], dtype=object), n)
    city = [
        None if i % 9 == 0 else f"c{v}" for i, v in enumerate(rng.integers(12, size=n))
    ]
    is_red = [None if i % 5 == 0 else int(c == "red") for i, c in enumerate(colour)]
    positive = (amount > 0).astype(int)
    X_pl = pl.DataFrame(
        {
            "amount": amount,
            "colour": colour.tolist(),
            "city": pl.Series(city, dtype=pl.Categorical),
        }
    )
    Y_pl = pl.DataFrame({"is_red": is_red, "positive": positive})
    X_pd = pd.DataFrame(
        {"amount": amount, "colour": colour, "city": pd.Categorical(city)}
    )
    Y_pd = pd.DataFrame(
        {"is_red": pd.array(is_red, dtype="Int64"), "positive": positive}
    )
    return X_pl, Y_pl, X_pd, Y_pd


def test_polars_mask_from_dtype_names_indices_and_mask(pl):
    X = pl.DataFrame(
        {
            "n": [1.5, None],
            "s": ["a", None],
            "c": pl.Series(["a", "b"], dtype=pl.Categorical),
            "e": pl.Series(["a", "b"], dtype=pl.Enum(["a", "b"])),
            "o": pl.Series([object(), None], dtype=pl.Object),
            "i": [1, 2],
            "b": [True, None],
        }
    )
    np.testing.assert_array_equal(
        categorical_mask(X, "from_dtype"), [0, 1, 1, 1, 1, 0, 0]
    )
    np.testing.assert_array_equal(
        categorical_mask(X, ["i", "s"]), [0, 1, 0, 0, 0, 1, 0]
    )
    np.testing.assert_array_equal(categorical_mask(X, [-1]), [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(
        categorical_mask(X, [True] + [False] * 6), [1] + [0] * 6
    )
    with pytest.raises(ValueError, match="'nope', which X does not have"):
        categorical_mask(X, ["nope"])


def test_polars_frame_fits_as_pandas(polars_and_pandas):
    X_pl, Y_pl, X_pd, Y_pd = polars_and_pandas
    from_polars = MultiTaskMMoEClassifier(**TINY).fit(X_pl, Y_pl)
    from_pandas = MultiTaskMMoEClassifier(**TINY).fit(X_pd, Y_pd)
    np.testing.assert_array_equal(
        from_polars.feature_names_in_, ["amount", "colour", "city"]
    )
    assert from_polars.task_names_ == ["is_red", "positive"]
    np.testing.assert_array_equal(from_polars.classes_[0], [0, 1])
    assert from_polars._encoder.categories == from_pandas._encoder.categories
    expected = from_pandas.predict_proba(X_pd)
    # Either model, either frame: the same probabilities.
    for model in (from_polars, from_pandas):
        for got, want in zip(model.predict_proba(X_pl), expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6)
    assert from_polars.score(X_pl, Y_pl) == pytest.approx(from_pandas.score(X_pd, Y_pd))
    from_polars.partial_fit(X_pl[:100], Y_pl[:100])
    from_pandas.partial_fit(X_pd[:100], Y_pd[:100])
    np.testing.assert_array_equal(from_polars.predict(X_pl), from_pandas.predict(X_pd))


def test_polars_unseen_categories_and_checked_columns(pl, polars_and_pandas):
    X_pl, Y_pl, X_pd, _ = polars_and_pandas
    clf = MultiTaskMMoEClassifier(**TINY).fit(X_pl, Y_pl)
    # Categories are compared by their text: an Enum or a string column at
    # predict time reads as the Categorical one of fit.
    new = pl.DataFrame(
        {
            "amount": [0.1, 0.2, 0.3],
            "colour": ["purple", None, "red"],
            "city": pl.Series(
                ["c3", None, "unknown"], dtype=pl.Enum(["c3", "unknown"])
            ),
        }
    )
    as_pandas = pd.DataFrame(
        {
            "amount": [0.1, 0.2, 0.3],
            "colour": ["purple", None, "red"],
            "city": ["c3", None, "unknown"],
        }
    )
    codes = clf._encoder.transform(new)
    np.testing.assert_array_equal(codes, clf._encoder.transform(as_pandas))
    # Nulls have code 0, unseen values 1, values seen in fit 2 and up.
    np.testing.assert_array_equal(np.minimum(codes[:, 1:], 2), [[1, 2], [0, 0], [2, 1]])
    for got, want in zip(
        clf.predict_proba(new), clf.predict_proba(as_pandas), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # A null number is a missing value, as pandas' NaN is.
    null = new.with_columns(pl.lit(None, dtype=pl.Float64).alias("amount"))
    nan = as_pandas.assign(amount=np.nan)
    for got, want in zip(clf.predict_proba(null), clf.predict_proba(nan), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X_pl.select("colour", "amount", "city"))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X_pl.rename({"amount": "value"}))
    # Fitted on an array (numbers only): a polars frame is read by position.
    numeric = MultiTaskMMoEClassifier(**TINY).fit(
        X_pd[["amount"]].to_numpy(), Y_pl["positive"]
    )
    with pytest.warns(UserWarning, match="fitted without feature names"):
        numeric.predict(X_pl.select("amount"))
    with (
        pytest.raises(ValueError, match="expecting 1 features"),
        pytest.warns(UserWarning),
    ):
        numeric.predict(X_pl.select("amount", amount2="amount"))


def test_polars_lazy_frames_are_refused_clearly(polars_and_pandas):
    X_pl, Y_pl, _, _ = polars_and_pandas
    model = MultiTaskMMoEClassifier(**TINY)
    with pytest.raises(TypeError, match="X is a polars LazyFrame; call its collect"):
        model.fit(X_pl.lazy(), Y_pl)
    with pytest.raises(TypeError, match="y is a polars LazyFrame"):
        model.fit(X_pl, Y_pl.lazy())
    assert not hasattr(model, "net_")
    model.fit(X_pl, Y_pl)
    with pytest.raises(TypeError, match="X is a polars LazyFrame"):
        model.predict_proba(X_pl.lazy())
