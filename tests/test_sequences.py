"""Tests for list input columns (sk_mmoe._data.sequences, sk_mmoe.nn.sequences)."""

import io
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline

from sk_mmoe import (
    MultiTaskMMoE,
    MultiTaskMMoEClassifier,
    MultiTaskMMoERegressor,
    export_onnx,
    load_model,
    onnx_feed,
    save_model,
)
from sk_mmoe._data.sequences import PAD_CODE

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(),
    max_epochs=15,
    batch_size=64,
    lr=0.02,
    random_state=0,
)
ITEMS = [f"item{k}" for k in range(20)]


@pytest.fixture(scope="module")
def log():
    """A candidate item, a history of past items, a number; the click is
    whether the candidate is in the history, the like whether "item0" is."""
    rng = np.random.default_rng(0)
    n = 800
    item = rng.choice(ITEMS, n)
    history = [list(rng.choice(ITEMS, rng.integers(0, 9))) for _ in range(n)]
    X = pd.DataFrame(
        {"item_id": item, "history": history, "amount": rng.normal(size=n)}
    )
    Y = pd.DataFrame(
        {
            "click": [int(i in h) for i, h in zip(item, history, strict=True)],
            "like": [int("item0" in h) for h in history],
        }
    )
    return X, Y


@pytest.fixture(scope="module")
def fitted(log):
    X, Y = log
    return MultiTaskMMoEClassifier(
        **SMALL, sequence_features={"history": "item_id"}, sequence_pooling="attention"
    ).fit(X, Y)


def _rows(X, histories):
    """Copies of the first row of ``X`` with these histories."""
    rows = pd.concat([X.iloc[:1]] * len(histories), ignore_index=True)
    rows["history"] = pd.Series(histories, dtype=object)
    return rows


def test_the_history_is_learned(log, fitted):
    X, Y = log
    proba = fitted.predict_proba(X)
    for k in range(2):
        accuracy = np.mean(proba[k].argmax(1) == Y.iloc[:, k].to_numpy())
        assert accuracy > 0.8, accuracy
    without = MultiTaskMMoEClassifier(**SMALL).fit(X.drop(columns="history"), Y)
    assert fitted.score(X, Y) > without.score(X.drop(columns="history"), Y) + 0.1


def test_shared_and_own_tables_and_pooling(log, fitted):
    X, Y = log
    pooling = fitted.module_.sequences
    assert pooling.poolings == ["attention"]
    assert pooling.targets == [0]
    by_default = MultiTaskMMoEClassifier(
        **{**SMALL, "max_epochs": 1}, sequence_features={"history": "item_id"}
    ).fit(X, Y)
    # "auto": attention for a list with a candidate, the mean for the others.
    assert by_default.module_.sequences.poolings == ["attention"]
    assert by_default.module_.sequences.targets == [0]
    own = MultiTaskMMoEClassifier(**{**SMALL, "max_epochs": 1}).fit(X, Y)
    assert own.module_.sequences.poolings == ["mean"]
    assert own.module_.sequences.tables[0].num_embeddings == 2 + len(ITEMS)
    summed = MultiTaskMMoEClassifier(
        **{**SMALL, "max_epochs": 1},
        sequence_features={"history": "item_id"},
        sequence_pooling="sum",
    ).fit(X, Y)
    assert summed.module_.sequences.poolings == ["sum"]
    assert summed.module_.sequences.targets == [0]


def test_empty_none_and_unseen_values(log, fitted):
    X, _ = log
    rows = _rows(X, [[], None, ["new1", "new2"], ["new3", "new4"], ["item3"]])
    proba = fitted.predict_proba(rows)[0]
    np.testing.assert_allclose(proba[0], proba[1], rtol=1e-6)
    # Unseen values share the code of unseen categories.
    np.testing.assert_allclose(proba[2], proba[3], rtol=1e-6)
    assert not np.allclose(proba[0], proba[4])
    codes = fitted._encoder.transform(rows)[:, X.shape[1] :]
    assert (codes[0] == PAD_CODE).all() and (codes[1] == PAD_CODE).all()


def test_padding_does_not_leak_between_rows(log, fitted):
    X, _ = log
    short = _rows(X, [["item1"]])
    alone = fitted.predict_proba(short)[0]
    batch = _rows(X, [["item1"], ITEMS * 3, ITEMS[:5], []])
    together = fitted.predict_proba(batch)[0][:1]
    np.testing.assert_allclose(alone, together, rtol=1e-6)


def test_attention_weights_point_at_the_candidate(log, fitted):
    X, Y = log
    weights = fitted.attention_weights(X)
    assert list(weights) == ["history"]
    w = weights["history"]
    lengths = X["history"].map(len).to_numpy()
    assert w.shape == (len(X), 8)  # the longest list of fit
    # Each row's weights sum to 1 over its values, 0 after them.
    np.testing.assert_allclose(w.sum(1)[lengths > 0], 1.0, rtol=1e-5)
    assert (w.sum(1)[lengths == 0] == 0).all()
    assert all((row[n:] == 0).all() for row, n in zip(w, lengths, strict=True))
    # The click is whether the candidate is in the history: the attention
    # learned to look at the past values equal to it.
    hits = [
        row[[j for j, v in enumerate(h) if v == i]].sum()
        for row, h, i in zip(w, X["history"], X["item_id"], strict=True)
        if i in h and len(set(h)) > 1
    ]
    others = [
        1.0 / len(h)
        for h, i in zip(X["history"], X["item_id"], strict=True)
        if i in h and len(set(h)) > 1
    ]
    assert np.mean(hits) > np.mean(others) + 0.2, (np.mean(hits), np.mean(others))


def test_attention_weights_of_a_row_stand_alone(log, fitted):
    X, _ = log
    alone = fitted.attention_weights(_rows(X, [["item1", "item2"]]))["history"]
    batch = _rows(X, [["item1", "item2"], ITEMS * 3, [], None])
    together = fitted.attention_weights(batch)["history"]
    np.testing.assert_allclose(alone[0], together[0], rtol=1e-6)
    assert (together[2:] == 0).all()


def test_attention_weights_need_attention(log):
    X, Y = log
    mean = MultiTaskMMoEClassifier(
        **{**SMALL, "max_epochs": 1},
        sequence_features={"history": "item_id"},
        sequence_pooling="mean",
    ).fit(X, Y)
    with pytest.raises(ValueError, match="sequence_pooling='auto' or 'attention'"):
        mean.attention_weights(X)
    # A list of its own table has no candidate to attend from.
    own = MultiTaskMMoEClassifier(**{**SMALL, "max_epochs": 1}).fit(X, Y)
    with pytest.raises(ValueError, match="target attention"):
        own.attention_weights(X)
    plain = MultiTaskMMoEClassifier(**{**SMALL, "max_epochs": 1})
    with pytest.raises(NotFittedError):
        plain.attention_weights(X)


def test_max_sequence_length_keeps_the_last_values(log):
    X, Y = log
    clf = MultiTaskMMoEClassifier(
        **{**SMALL, "max_epochs": 2},
        sequence_features={"history": "item_id"},
        max_sequence_length=3,
    ).fit(X, Y)
    rows = _rows(X, [["item1", "item2", "item3", "item4"], ["item2", "item3", "item4"]])
    proba = clf.predict_proba(rows)[0]
    np.testing.assert_allclose(proba[0], proba[1], rtol=1e-6)
    assert clf._encoder.transform(rows).shape[1] == X.shape[1] + 3
    # No wider than the longest list of fit (8 values).
    wide = MultiTaskMMoEClassifier(**{**SMALL, "max_epochs": 1}).fit(X, Y)
    assert wide._encoder.transform(rows).shape[1] == X.shape[1] + 8


def test_polars_and_pyarrow_lists_read_as_pandas_objects(log, fitted):
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    X, _ = log
    rows = _rows(X, [["item1", "item2"], [], None, ["new"]])
    expected = fitted.predict_proba(rows)[0]
    frame = pl.DataFrame(
        {
            "item_id": rows["item_id"].tolist(),
            "history": rows["history"].tolist(),
            "amount": rows["amount"].tolist(),
        }
    )
    assert str(frame.schema["history"]).startswith("List")
    np.testing.assert_allclose(fitted.predict_proba(frame)[0], expected, rtol=1e-6)
    arrow = rows.copy()
    arrow["history"] = pd.Series(
        rows["history"].tolist(), dtype=pd.ArrowDtype(pa.list_(pa.string()))
    )
    np.testing.assert_allclose(fitted.predict_proba(arrow)[0], expected, rtol=1e-6)
    # A polars List column in fit too.
    Xp = pl.DataFrame({c: log[0][c].tolist() for c in log[0].columns})
    clf = MultiTaskMMoEClassifier(**{**SMALL, "max_epochs": 1}).fit(Xp, log[1])
    assert clf.module_.sequences is not None


@pytest.mark.parametrize(
    "column, sequence_features, match",
    [
        ([["a", ["b"]], ["c"]], None, "nested list"),
        ([["a", {"b": 1}], ["c"]], None, "nested list"),
        ([["a", object()], ["c"]], None, "cannot be encoded"),
        ([["a"], "abc"], None, "flat list"),
        ([["a"], ["b"]], {"history": "history"}, "is a list column"),
        ([["a"], ["b"]], {"item_id": "history"}, "not lists"),
        ([["a"], ["b"]], {"history": "amount"}, "not a categorical column"),
        ([["a"], ["b"]], {"history": "nothing"}, "not a column of X"),
    ],
)
def test_bad_list_columns_are_named(column, sequence_features, match):
    X = pd.DataFrame(
        {
            "item_id": ["a", "b"] * 10,
            "history": pd.Series(column * 10, dtype=object),
            "amount": np.arange(20.0),
        }
    )
    Y = np.tile([0, 1], 10)
    with pytest.raises(ValueError, match=match) as info:
        MultiTaskMMoEClassifier(
            **{**SMALL, "max_epochs": 1}, sequence_features=sequence_features
        ).fit(X, Y)
    assert "history" in str(info.value) or "item_id" in str(info.value)


def test_dask_frames_are_refused_with_the_route(log, fitted):
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    X, Y = log
    # Dask turns object columns, lists included, into text unless told not to.
    with dask.config.set({"dataframe.convert-string": False}):
        lazy = dd.from_pandas(X, npartitions=2)
    with pytest.raises(TypeError, match=r"X is a Dask DataFrame.*partial_fit"):
        MultiTaskMMoEClassifier(**SMALL).fit(lazy, Y)
    with pytest.raises(TypeError, match=r"X\.compute\(\)"):
        fitted.predict_proba(lazy)
    # The documented route: partial_fit on the pandas blocks.
    clf = MultiTaskMMoEClassifier(**SMALL, sequence_features={"history": "item_id"})
    for i in range(lazy.npartitions):
        block = lazy.get_partition(i).compute()
        clf.partial_fit(block, Y.loc[block.index], classes=[[0, 1], [0, 1]])
    assert clf.n_iter_ == 2 and clf.module_.sequences is not None


def test_persistence_pickle_and_clone(log, fitted, tmp_path):
    X, _ = log
    expected = fitted.predict_proba(X.head(50))
    path = tmp_path / "model.pt"
    save_model(fitted, path)
    loaded = load_model(path)
    for a, b in zip(loaded.predict_proba(X.head(50)), expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert loaded.get_params()["sequence_features"] == {"history": "item_id"}
    unpickled = pickle.loads(pickle.dumps(fitted))
    for a, b in zip(unpickled.predict_proba(X.head(50)), expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert clone(fitted).get_params() == fitted.get_params()


def test_partial_fit_sample_weight_and_other_estimators(log):
    X, Y = log
    clf = MultiTaskMMoEClassifier(**SMALL, sequence_features={"history": "item_id"})
    clf.partial_fit(X, Y, classes=[[0, 1], [0, 1]])
    clf.partial_fit(X, Y)
    assert clf.n_iter_ == 2
    weight = np.where(Y["like"] == 1, 2.0, 1.0)
    clf.fit(X, Y, sample_weight=weight)
    reg = MultiTaskMMoERegressor(**{**SMALL, "max_epochs": 2}).fit(X, Y.astype(float))
    assert reg.predict(X).shape == (len(X), 2)
    mixed = MultiTaskMMoE(**{**SMALL, "max_epochs": 2}).fit(X, Y)
    assert mixed.module_.sequences is not None


@pytest.mark.parametrize(
    "change",
    [
        {"sequence_pooling": "attention"},
        {"sequence_features": None},
        {"max_sequence_length": 3},
    ],
)
def test_continued_training_refuses_changed_list_parameters(log, change):
    X, Y = log
    clf = MultiTaskMMoEClassifier(
        **{**SMALL, "max_epochs": 1},
        sequence_features={"history": "item_id"},
        warm_start=True,
    ).fit(X, Y)
    clf.fit(X, Y)  # unchanged: continues
    clf.set_params(**change)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"{name} changed since the first fit"):
        clf.fit(X, Y)
    with pytest.raises(ValueError, match=f"{name} changed since the first fit"):
        clf.partial_fit(X, Y)
    clf.set_params(warm_start=False).fit(X, Y)  # a new fit takes the change


def test_pipeline_search_and_cross_validation(log):
    X, Y = log
    passthrough = ColumnTransformer(
        [("keep", "passthrough", ["item_id", "history", "amount"])],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(
        passthrough,
        MultiTaskMMoEClassifier(**{**SMALL, "max_epochs": 2}),
    )
    search = GridSearchCV(
        pipe,
        {"multitaskmmoeclassifier__sequence_pooling": ["mean", "attention"]},
        cv=2,
    ).fit(X, Y)
    assert search.best_estimator_[-1].module_.sequences is not None
    scores = cross_validate(
        MultiTaskMMoEClassifier(**{**SMALL, "max_epochs": 2}), X, Y, cv=2
    )
    assert np.isfinite(scores["test_score"]).all()


def test_onnx_export_reads_padded_values_and_lengths(log, fitted):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    X, _ = log
    buffer = io.BytesIO()
    export_onnx(fitted, buffer)
    session = ort.InferenceSession(buffer.getvalue())
    inputs = {i.name: (i.type, i.shape[1]) for i in session.get_inputs()}
    assert inputs["history"] == ("tensor(string)", 8)  # the longest list of fit
    assert inputs["history:length"] == ("tensor(int64)", 1)
    rows = pd.concat(
        [X.head(20), _rows(X, [[], None, ["new1", "item2"], ITEMS * 4])],
        ignore_index=True,
    )
    feed = onnx_feed(session, rows)
    assert feed["history:length"][-1, 0] == 8
    outputs = session.run(None, feed)
    for got, expected in zip(outputs, fitted.predict_proba(rows), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match="inputs='columns'"):
        export_onnx(fitted, io.BytesIO(), inputs="matrix")


def test_recommendation_log_with_histories():
    from sk_mmoe.datasets import make_recommendation_tasks

    X0, Y0, S0 = make_recommendation_tasks(3000, return_scores=True, random_state=0)
    X, Y, S = make_recommendation_tasks(
        3000, history_length=7, return_scores=True, random_state=0
    )
    pd.testing.assert_frame_equal(X.drop(columns="history"), X0)
    assert X["history"].map(len).eq(7).all()
    first = X.groupby("user_id", observed=True)["history"].agg(
        lambda h: h.map(tuple).nunique()
    )
    assert (first == 1).all()  # one history per user
    # The standardised similarity, times history_weight, enters both scores.
    added = S["rated_highly"] - S0["rated_highly"]
    np.testing.assert_allclose(added.std(ddof=0), 2.0, rtol=1e-6)
    np.testing.assert_allclose(added.mean(), 0.0, atol=1e-9)
    click = S["click"] - S0["click"]
    np.testing.assert_allclose((click - added).std(), 0.0, atol=1e-9)
    assert abs(Y["click"].mean() - 0.3) < 0.03
    with pytest.raises(ValueError, match="as_frame=True"):
        make_recommendation_tasks(100, history_length=3, as_frame=False)
    with pytest.raises(ValueError, match="history_length"):
        make_recommendation_tasks(100, history_length=0)
