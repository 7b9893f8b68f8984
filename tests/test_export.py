"""ONNX export: the graph computes predict_proba / predict."""

import io
import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mmoe import (
    MultiTaskMMoE,
    MultiTaskMMoEClassifier,
    MultiTaskMMoERegressor,
    export_onnx,
)
from sk_mmoe.export import METADATA_KEY, onnx_feed

try:
    import onnx
    import onnxruntime
    import onnxscript  # noqa: F401
except ImportError:
    onnx = onnxruntime = None

needs_onnx = pytest.mark.skipif(
    onnxruntime is None,
    reason='needs onnx, onnxscript and onnxruntime: pip install ".[onnx]"',
)

N_FEATURES = 5
TINY = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    max_epochs=2,
    batch_size=64,
    random_state=0,
)


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    binary = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    multiclass = np.digitize(X[:, 1], [-0.5, 0.5])  # 3 classes
    regression = 50.0 + 12.0 * X[:, 2] + rng.normal(size=n)
    return X, binary, multiclass, regression


def _fit(kind):
    """A small fitted estimator of each exported kind, and its outputs' types."""
    X, binary, multiclass, regression = _data()
    strings = np.array(["no", "yes"])[binary]
    if kind == "classifier":
        return MultiTaskMMoEClassifier(**TINY).fit(
            X, np.column_stack([strings, multiclass.astype(str)])
        )
    if kind == "single_task":
        return MultiTaskMMoEClassifier(**TINY).fit(X, multiclass)
    if kind == "single_task_binary":
        return MultiTaskMMoEClassifier(**TINY).fit(X, binary)
    if kind == "regressor":
        Y = np.column_stack([regression, 1e4 + 3 * regression])
        return MultiTaskMMoERegressor(**TINY).fit(X, Y)
    if kind == "single_task_regressor":
        return MultiTaskMMoERegressor(**TINY).fit(X, regression)
    if kind == "mixed":
        return MultiTaskMMoE(**TINY).fit(
            X, np.column_stack([binary, regression, multiclass])
        )
    if kind == "cgc":
        return MultiTaskMMoE(**{**TINY, "n_task_experts": 1}).fit(
            X, np.column_stack([binary, regression, multiclass])
        )
    if kind == "ple":
        return MultiTaskMMoEClassifier(
            **{**TINY, "n_task_experts": 1, "n_levels": 2}
        ).fit(X, np.column_stack([binary, multiclass]))
    if kind == "poisson":
        counts = np.random.default_rng(1).poisson(np.exp(0.5 * X[:, 3]))
        return MultiTaskMMoE(**TINY, loss={"views": "poisson"}).fit(
            X, pd.DataFrame({"click": binary, "views": counts, "time": regression})
        )
    if kind == "conditional":
        # A chain click -> cart -> buy, the child first: joint probabilities.
        cart = binary * (X[:, 3] > 0)
        buy = np.where(cart == 1, (X[:, 4] > 0).astype(float), np.nan)
        return MultiTaskMMoEClassifier(
            **TINY, conditional_on={"buy": "cart", "cart": "click"}
        ).fit(X, pd.DataFrame({"buy": buy, "click": binary, "cart": cart}))
    if kind == "shared_gate":
        return MultiTaskMMoE(**{**TINY, "shared_gate": True}).fit(
            X, np.column_stack([regression, multiclass])
        )
    if kind == "gate_options":
        options = dict(
            n_experts=3,
            gate="dselect_k",
            gate_temperature=2.0,
            expert_activation="silu",
            expert_normalization="layer",
        )
        return MultiTaskMMoE(**{**TINY, **options}).fit(
            X, np.column_stack([binary, regression, multiclass])
        )
    if kind == "ensemble":
        options = dict(ensemble_size=3, n_task_experts=1, n_levels=2)
        return MultiTaskMMoE(**{**TINY, **options}).fit(
            X, np.column_stack([binary, regression, multiclass])
        )
    raise ValueError(kind)


KINDS = [
    "classifier",
    "single_task",
    "single_task_binary",
    "regressor",
    "single_task_regressor",
    "mixed",
    "cgc",
    "ple",
    "shared_gate",
    "poisson",
    "gate_options",
    "ensemble",
    "conditional",
]

# Task types whose output is a value, not probabilities.
NUMERIC = ("regression", "poisson")


@pytest.fixture(scope="module", params=KINDS)
def exported(request, tmp_path_factory):
    if onnxruntime is None:
        pytest.skip('needs onnx, onnxscript and onnxruntime: pip install ".[onnx]"')
    estimator = _fit(request.param)
    path = tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx"
    model = export_onnx(estimator, path)
    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    return estimator, model, session


def _expected(estimator, X):
    """Each task's expected output: probabilities or predictions."""
    single = estimator._single_task
    kinds = estimator.task_types_
    predictions = estimator.predict(X)
    if single:
        predictions = predictions.reshape(-1, 1)
    if all(kind in NUMERIC for kind in kinds):
        proba = [None] * len(kinds)
    else:
        proba = estimator.predict_proba(X)
        if single:
            proba = [proba]
    return [
        predictions[:, k].astype(np.float64) if kind in NUMERIC else proba[k]
        for k, kind in enumerate(kinds)
    ]


@needs_onnx
@pytest.mark.parametrize("n_rows", [1, 1000])
def test_outputs_equal_predict_proba_and_predict(exported, n_rows):
    estimator, _, session = exported
    X = np.random.default_rng(n_rows).normal(size=(n_rows, N_FEATURES))
    outputs = session.run(None, {"X": X.astype(np.float32)})
    expected = _expected(estimator, X)
    assert len(outputs) == len(expected) == estimator.n_outputs_
    for k, (got, want) in enumerate(zip(outputs, expected, strict=True)):
        if estimator.task_types_[k] in NUMERIC:
            assert got.dtype == np.float64 and got.shape == (n_rows,)
            scale = estimator._tasks[k].scale
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
            if estimator.task_types_[k] == "poisson":
                assert (got > 0).all()
        else:
            n_classes = len(estimator._tasks[k].classes)
            assert got.dtype == np.float32 and got.shape == (n_rows, n_classes)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@needs_onnx
def test_graph_inputs_outputs_and_metadata(exported):
    estimator, model, session = exported
    (graph_input,) = session.get_inputs()
    assert graph_input.name == "X"
    assert graph_input.type == "tensor(float)"
    assert isinstance(graph_input.shape[0], str)  # any number of rows
    assert graph_input.shape[1] == N_FEATURES
    assert [o.name for o in session.get_outputs()] == estimator.task_names_

    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta["format"] == 1
    assert meta["estimator"] == type(estimator).__name__
    assert meta["input"] == "X" and meta["n_features_in"] == N_FEATURES
    assert meta["feature_names_in"] is None
    assert [t["name"] for t in meta["tasks"]] == estimator.task_names_
    assert [t["output"] for t in meta["tasks"]] == estimator.task_names_
    assert [t["type"] for t in meta["tasks"]] == estimator.task_types_
    for task, entry in zip(estimator._tasks, meta["tasks"], strict=True):
        if entry["type"] in NUMERIC:
            assert (entry["mean"], entry["scale"]) == (task.mean, task.scale)
        else:
            assert entry["classes"] == task.classes.tolist()
        parent = task.parent
        assert entry.get("conditional_on") == (
            None if parent is None else estimator.task_names_[parent]
        )
    onnx.checker.check_model(model)


@needs_onnx
def test_string_classes_and_dataframe_names_in_metadata():
    pd = pytest.importorskip("pandas")
    X, binary, multiclass, _ = _data()
    X = pd.DataFrame(X, columns=[f"f{j}" for j in range(N_FEATURES)])
    Y = pd.DataFrame(
        {"click rate": np.array(["no", "yes"])[binary], "grade": multiclass}
    )
    clf = MultiTaskMMoEClassifier(**TINY).fit(X, Y)
    buffer = io.BytesIO()
    export_onnx(clf, buffer)
    session = onnxruntime.InferenceSession(buffer.getvalue())
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta["feature_names_in"] == list(X.columns)
    assert [t["classes"] for t in meta["tasks"]] == [["no", "yes"], [0, 1, 2]]
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {"X": X.to_numpy(np.float32)}),
            strict=True,
        )
    )
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(outputs["click rate"], proba[0], atol=1e-5)
    np.testing.assert_allclose(outputs["grade"], proba[1], atol=1e-5)
    # Labels from the metadata: the argmax is predict.
    labels = np.array(meta["tasks"][0]["classes"])
    assert (labels[outputs["click rate"].argmax(axis=1)] == clf.predict(X)[:, 0]).all()


@needs_onnx
def test_export_leaves_the_model_unchanged_and_uses_eval_mode(tmp_path):
    X, binary, multiclass, _ = _data()
    clf = MultiTaskMMoEClassifier(**{**TINY, "dropout": 0.5}).fit(
        X, np.column_stack([binary, multiclass])
    )
    clf.module_.train()  # a user left it in training mode
    before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    parameters = list(clf.module_.parameters())
    grads = [p.requires_grad for p in parameters]
    model = export_onnx(clf, str(tmp_path / "model.onnx"), opset=18)
    assert model.opset_import[0].version == 18
    assert clf.module_.training
    assert list(clf.module_.parameters()) == parameters
    assert [p.requires_grad for p in parameters] == grads
    assert all(p.device.type == "cpu" for p in parameters)
    for key, value in clf.module_.state_dict().items():
        assert torch.equal(value, before[key])
    # The graph is the eval-mode network: no dropout.
    session = onnxruntime.InferenceSession(model.SerializeToString())
    outputs = session.run(None, {"X": X})
    for got, want in zip(outputs, clf.predict_proba(X), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.fixture(scope="module")
def small_classifier():
    X, binary, _, _ = _data()
    return MultiTaskMMoEClassifier(**TINY).fit(X, binary)


def test_unfitted_estimator_is_refused(tmp_path):
    with pytest.raises(NotFittedError):
        export_onnx(MultiTaskMMoEClassifier(), tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_pipeline_is_refused_with_a_pointer_to_its_final_step(tmp_path):
    X, binary, multiclass, _ = _data()
    pipe = make_pipeline(StandardScaler(), MultiTaskMMoEClassifier(**TINY))
    pipe.fit(X, np.column_stack([binary, multiclass]))
    with pytest.raises(TypeError, match=r"pipeline\[-1\].*skl2onnx"):
        export_onnx(pipe, tmp_path / "model.onnx")


def test_other_estimators_are_refused(tmp_path):
    X, binary, _, _ = _data()
    with pytest.raises(TypeError, match="got LogisticRegression"):
        export_onnx(LogisticRegression().fit(X, binary), tmp_path / "model.onnx")


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch, small_classifier):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r'pip install "\.\[onnx\]" in a checkout'):
        export_onnx(small_classifier, tmp_path / "model.onnx")


@pytest.mark.parametrize("opset", [17, 0, "20", True])
def test_bad_opset_is_refused(tmp_path, opset, small_classifier):
    with pytest.raises(ValueError, match="opset must be an int >= 18"):
        export_onnx(small_classifier, tmp_path / "model.onnx", opset=opset)


@needs_onnx
def test_task_named_like_the_input_is_refused(tmp_path):
    pd = pytest.importorskip("pandas")
    X, binary, multiclass, _ = _data()
    Y = pd.DataFrame({"X": binary, "y": multiclass})
    clf = MultiTaskMMoEClassifier(**TINY).fit(X, Y)
    with pytest.raises(ValueError, match="named 'X'"):
        export_onnx(clf, tmp_path / "model.onnx")


@needs_onnx
def test_categorical_features_are_codes_described_in_metadata():
    pd = pytest.importorskip("pandas")
    if "categorical_features" not in MultiTaskMMoE().get_params():
        pytest.skip("no categorical features in this version")
    X, binary, _, regression = _data()
    rng = np.random.default_rng(1)
    X = pd.DataFrame(X, columns=[f"f{j}" for j in range(N_FEATURES)])
    X["city"] = rng.choice(["paris", "rome", "oslo", None], len(X))
    Y = np.column_stack([binary, regression])
    model = MultiTaskMMoE(**TINY, categorical_features="from_dtype").fit(X, Y)
    buffer = io.BytesIO()
    export_onnx(model, buffer, inputs="matrix")
    session = onnxruntime.InferenceSession(buffer.getvalue())
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    categorical = meta["categorical"]
    assert categorical["columns"] == [N_FEATURES]
    # Encode as the metadata says, as a server without sk_mmoe would.
    (categories,) = categorical["categories"]
    X_new = X.iloc[:50].copy()
    X_new.iloc[0, N_FEATURES] = "lima"  # unseen in fit
    codes = [
        categorical["missing_code"]
        if pd.isna(value)
        else categorical["first_code"] + categories.index(value)
        if value in categories
        else categorical["other_code"]
        for value in X_new["city"]
    ]
    encoded = X_new.iloc[:, :N_FEATURES].to_numpy(np.float32)
    encoded = np.column_stack([encoded, np.asarray(codes, dtype=np.float32)])
    proba, prediction = session.run(None, {"X": encoded})
    np.testing.assert_allclose(proba, model.predict_proba(X_new)[0], atol=1e-5)
    expected = model.predict(X_new)[:, 1].astype(np.float64)
    np.testing.assert_allclose(prediction, expected, atol=1e-5 * model.target_scale_[1])


@needs_onnx
def test_rank_score_output_and_bias_tower():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, N_FEATURES))
    position = rng.integers(0, 5, 120)
    click = (X[:, 0] > 0.3 * position - 0.5).astype(float)
    watch = np.where(click == 1, 30 + 5 * X[:, 1], np.nan)
    Y = np.column_stack([click, watch])
    model = MultiTaskMMoE(bias_features=[N_FEATURES], **TINY).fit(
        np.column_stack([X, position]), Y
    )
    weights = {"task0": 1.0, "task1": 0.01}
    buffer = io.BytesIO()
    export_onnx(model, buffer, rank_weights=weights)
    session = onnxruntime.InferenceSession(buffer.getvalue())
    assert [o.name for o in session.get_outputs()] == ["task0", "task1", "rank_score"]
    # The graph reads the main columns only: no bias column.
    assert session.get_inputs()[0].shape[1] == N_FEATURES
    outputs = session.run(None, {"X": X.astype(np.float32)})
    np.testing.assert_allclose(outputs[2], model.rank_score(X, weights), atol=1e-5)
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta["rank_weights"] == [[0.0, 1.0], [0.01]]
    with pytest.raises(ValueError, match="one weight per task"):
        export_onnx(model, io.BytesIO(), rank_weights=[1.0])


@needs_onnx
def test_rank_score_output_with_column_inputs_and_bias_tower():
    frame, binary, multiclass, regression = _frame()
    frame["position"] = np.arange(len(frame)) % 5
    Y = np.column_stack([binary, regression, multiclass])
    model = MultiTaskMMoE(
        **TINY, categorical_features=CATEGORICAL, bias_features=["position"]
    ).fit(frame, Y)
    weights = {"task0": 1.0, "task1": 0.1, "task2": [0.0, 1.0, 2.0]}
    exported = export_onnx(model, io.BytesIO(), rank_weights=weights)
    session = onnxruntime.InferenceSession(exported.SerializeToString())
    # One input per column of fit but the bias column; the score comes last.
    assert [i.name for i in session.get_inputs()] == list(model.feature_names_in_)
    assert "position" not in [i.name for i in session.get_inputs()]
    assert [o.name for o in session.get_outputs()] == [
        "task0",
        "task1",
        "task2",
        "rank_score",
    ]
    X = _unseen_and_missing(frame)  # holds the position, which is dropped
    outputs = session.run(None, onnx_feed(session, X))
    _assert_parity(model, outputs[:3], X)
    np.testing.assert_allclose(outputs[3], model.rank_score(X, weights), atol=1e-5)
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta["rank_weights"] == [[0.0, 1.0], [0.1], [0.0, 1.0, 2.0]]
    assert meta["inputs"] == list(model.feature_names_in_)
    # A column named like the score's output would clash with it.
    renamed = frame.rename(columns={"age": "rank_score"})
    clash = MultiTaskMMoE(**TINY, categorical_features=CATEGORICAL).fit(renamed, Y)
    with pytest.raises(ValueError, match="both named 'rank_score'"):
        export_onnx(clash, io.BytesIO(), rank_weights=weights)


# Raw columns in: one input per column of a frame, the encoding in the graph.

BIG_ID = 10**12  # beyond float32's integers: a float32 input would merge IDs


def _frame(n=160, seed=0):
    """Numeric columns, a city (text with missing values), a user ID (int64,
    large), a float32 score, and columns named like the graph's own names."""
    pd = pytest.importorskip("pandas")
    X, binary, multiclass, regression = _data(n, seed)
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(X[:, :3], columns=["age", "X", "sk_mmoe/age"])
    frame["city"] = rng.choice(["paris", "rome", "oslo", None], n)
    frame["user"] = rng.choice([3, BIG_ID, BIG_ID + 1, 7], n)
    frame["score"] = rng.choice(np.float32([0.1, 0.5, 2.0, np.nan]), n)
    return frame, binary, multiclass, regression


def _unseen_and_missing(frame):
    """Rows of ``frame`` with unseen and missing values in every categorical
    column (an unseen ID one away from a known one)."""
    X = frame.iloc[:12].copy()
    X["city"] = X["city"].astype(object)
    X.iloc[0, X.columns.get_loc("city")] = "lima"
    X.iloc[1, X.columns.get_loc("city")] = None
    X.iloc[2, X.columns.get_loc("user")] = BIG_ID + 2
    X.iloc[3, X.columns.get_loc("user")] = 11
    X.iloc[4, X.columns.get_loc("score")] = np.float32(0.7)
    X.iloc[5, X.columns.get_loc("score")] = np.nan
    return X


CATEGORICAL = ["city", "user", "score"]


@pytest.fixture(scope="module", params=["classifier", "regressor", "mixed"])
def exported_columns(request):
    if onnxruntime is None:
        pytest.skip('needs onnx, onnxscript and onnxruntime: pip install ".[onnx]"')
    frame, binary, multiclass, regression = _frame()
    params = {**TINY, "categorical_features": CATEGORICAL}
    if request.param == "classifier":
        Y = np.column_stack([binary, multiclass])
        estimator = MultiTaskMMoEClassifier(**params).fit(frame, Y)
    elif request.param == "regressor":
        Y = np.column_stack([regression, 1e4 + 3 * regression])
        estimator = MultiTaskMMoERegressor(**params).fit(frame, Y)
    else:
        Y = np.column_stack([binary, regression, multiclass])
        estimator = MultiTaskMMoE(**params).fit(frame, Y)
    buffer = io.BytesIO()
    model = export_onnx(estimator, buffer)  # raw columns by default
    session = onnxruntime.InferenceSession(buffer.getvalue())
    return estimator, model, session, frame


def _assert_parity(estimator, outputs, X):
    for k, (got, want) in enumerate(zip(outputs, _expected(estimator, X), strict=True)):
        atol = 1e-5
        if estimator.task_types_[k] == "regression":
            atol *= estimator._tasks[k].scale
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)


@needs_onnx
def test_columns_graph_has_one_typed_input_per_column(exported_columns):
    estimator, model, session, frame = exported_columns
    inputs = [(i.name, i.type, i.shape[1]) for i in session.get_inputs()]
    assert inputs == [
        ("age", "tensor(float)", 1),
        ("X", "tensor(float)", 1),
        ("sk_mmoe/age", "tensor(float)", 1),
        ("city", "tensor(string)", 1),
        ("user", "tensor(double)", 1),  # int64 in fit: exact IDs
        ("score", "tensor(float)", 1),  # float32 in fit
    ]
    assert all(isinstance(i.shape[0], str) for i in session.get_inputs())
    assert [o.name for o in session.get_outputs()] == estimator.task_names_
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta["input"] is None and meta["inputs"] == list(frame.columns)
    assert meta["categorical"]["columns"] == [3, 4, 5]
    domains = [entry.domain for entry in model.opset_import]
    assert sorted(domains) == sorted(set(domains)) and "ai.onnx.ml" in domains
    onnx.checker.check_model(model, full_check=True)


@needs_onnx
def test_columns_graph_equals_predict_with_unseen_and_missing_values(
    exported_columns,
):
    estimator, _, session, frame = exported_columns
    X = _unseen_and_missing(frame)
    _assert_parity(estimator, session.run(None, onnx_feed(session, X)), X)
    # Whole frame, and one row.
    _assert_parity(estimator, session.run(None, onnx_feed(session, frame)), frame)
    one = frame.iloc[[7]]
    _assert_parity(estimator, session.run(None, onnx_feed(session, one)), one)


@needs_onnx
def test_columns_graph_encodes_as_predict(exported_columns):
    """The matrix the graph hands to the network is predict's, exactly."""
    estimator, model, _, frame = exported_columns
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    (concat,) = [node for node in probe.graph.node if node.op_type == "Concat"][:1]
    probe.graph.output.add().name = concat.output[0]
    session = onnxruntime.InferenceSession(probe.SerializeToString())
    X = _unseen_and_missing(frame)
    encoded = session.run([concat.output[0]], onnx_feed(model, X))[0]
    np.testing.assert_array_equal(encoded, estimator._encoder.transform(X))
    # Codes as the encoder documents them: unseen 1, missing 0, kept >= 2.
    codes = encoded[:, 3:]
    assert codes[0, 0] == codes[2, 1] == codes[3, 1] == codes[4, 2] == 1
    assert codes[1, 0] == codes[5, 2] == 0
    assert (encoded[6:, 4] >= 2).all()


@needs_onnx
def test_feed_from_the_model_file_arrays_and_polars(exported_columns, tmp_path):
    estimator, model, session, frame = exported_columns
    X = _unseen_and_missing(frame)
    expected = session.run(None, onnx_feed(session, X))
    path = tmp_path / "model.onnx"
    onnx.save_model(model, path)
    feed = onnx_feed(str(path), X)
    assert feed["city"].dtype == object and feed["city"][1, 0] == ""
    assert feed["user"].dtype == np.float64 and feed["user"][2, 0] == BIG_ID + 2
    assert feed["score"].dtype == np.float32 and np.isnan(feed["score"][5, 0])
    # Columns picked by name: extra or reordered columns are ignored.
    shuffled = X[X.columns[::-1]].assign(extra=1.0)
    for got, want in zip(
        session.run(None, onnx_feed(model, shuffled)), expected, strict=True
    ):
        np.testing.assert_array_equal(got, want)
    # An object array: by position.
    array_outputs = session.run(None, onnx_feed(model, X.to_numpy(dtype=object)))
    for got, want in zip(array_outputs, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    pl = pytest.importorskip("polars")
    polars_outputs = session.run(None, onnx_feed(model, pl.from_pandas(X)))
    for got, want in zip(polars_outputs, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@needs_onnx
def test_feed_errors_name_the_column(exported_columns):
    _, model, _, frame = exported_columns
    with pytest.raises(ValueError, match="no column 'city'"):
        onnx_feed(model, frame.drop(columns="city"))
    with pytest.raises(ValueError, match="'age' of X must hold numbers"):
        onnx_feed(model, frame.assign(age="old"))
    with pytest.raises(ValueError, match="one column per input of the graph"):
        onnx_feed(model, frame.to_numpy()[:, :3])
    with pytest.raises(TypeError, match="onnx.ModelProto"):
        onnx_feed(42, frame)


@needs_onnx
def test_matrix_form_stays_available(exported_columns):
    estimator, _, _, frame = exported_columns
    buffer = io.BytesIO()
    model = export_onnx(estimator, buffer, inputs="matrix")
    (graph_input,) = model.graph.input
    assert graph_input.name == "X"
    session = onnxruntime.InferenceSession(buffer.getvalue())
    X = _unseen_and_missing(frame)
    outputs = session.run(None, {"X": estimator._encoder.transform(X)})
    _assert_parity(estimator, outputs, X)
    with pytest.raises(ValueError, match="inputs='columns'"):
        onnx_feed(session, X)


@needs_onnx
def test_columns_form_of_a_numeric_model(small_classifier):
    """Without categorical features the default is the matrix; columns on
    request, named like scikit-learn's default feature names."""
    X, _, _, _ = _data(20)
    assert [
        i.name for i in export_onnx(small_classifier, io.BytesIO()).graph.input
    ] == ["X"]
    buffer = io.BytesIO()
    export_onnx(small_classifier, buffer, inputs="columns")
    session = onnxruntime.InferenceSession(buffer.getvalue())
    assert [i.name for i in session.get_inputs()] == [f"x{j}" for j in range(5)]
    assert {i.type for i in session.get_inputs()} == {"tensor(float)"}
    (proba,) = session.run(None, onnx_feed(session, X))
    np.testing.assert_allclose(proba, small_classifier.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("inputs", ["frame", None, 1])
def test_bad_inputs_is_refused(tmp_path, small_classifier, inputs):
    with pytest.raises(ValueError, match="inputs must be one of"):
        export_onnx(small_classifier, tmp_path / "model.onnx", inputs=inputs)
    assert not (tmp_path / "model.onnx").exists()


@needs_onnx
def test_column_and_task_with_one_name_are_refused(tmp_path):
    pd = pytest.importorskip("pandas")
    frame, binary, multiclass, _ = _frame(60)
    Y = pd.DataFrame({"city": binary, "grade": multiclass})
    clf = MultiTaskMMoEClassifier(**TINY, categorical_features=CATEGORICAL).fit(
        frame, Y
    )
    with pytest.raises(ValueError, match="both named 'city'.*inputs='matrix'"):
        export_onnx(clf, tmp_path / "model.onnx")
    export_onnx(clf, tmp_path / "model.onnx", inputs="matrix")


@needs_onnx
def test_numbers_that_predict_tells_apart_by_text_are_refused(tmp_path):
    """1 and 1.0 in an object column are two categories in predict (compared
    as text) but one number in a graph that reads numbers."""
    pd = pytest.importorskip("pandas")
    _, binary, _, _ = _data(60)
    X = pd.DataFrame(
        {"a": np.arange(60.0), "n": pd.Series([1, 1.0, 2] * 20, dtype=object)}
    )
    clf = MultiTaskMMoEClassifier(**TINY, categorical_features=["n"]).fit(X, binary)
    with pytest.raises(ValueError, match="Column 'n'.*inputs='matrix'"):
        export_onnx(clf, tmp_path / "model.onnx")


@needs_onnx
def test_empty_string_category_warns_that_it_reads_as_missing():
    pd = pytest.importorskip("pandas")
    _, binary, _, _ = _data(60)
    X = pd.DataFrame({"a": np.arange(60.0), "s": ["", "x", "y"] * 20})
    clf = MultiTaskMMoEClassifier(**TINY, categorical_features=["s"]).fit(X, binary)
    with pytest.warns(UserWarning, match="empty string"):
        model = export_onnx(clf, io.BytesIO())
    session = onnxruntime.InferenceSession(model.SerializeToString())
    # Other values keep their codes: rows without "" match predict.
    rows = X.iloc[1:3]
    (proba,) = session.run(None, onnx_feed(session, rows))
    np.testing.assert_allclose(proba, clf.predict_proba(rows), atol=1e-5)


@needs_onnx
def test_array_with_columns_that_keep_no_category():
    """An array fitted with categorical columns: inputs x0, x1...; columns
    whose every value is rare map anything present to other_code."""
    rng = np.random.default_rng(0)
    n = 60
    X = np.empty((n, 3), dtype=object)
    X[:, 0] = rng.normal(size=n)
    X[:, 1] = np.arange(n) * 1000  # every ID seen once: all rare
    X[:, 2] = [f"name{i}" for i in range(n)]
    X[::7, 1] = None
    X[::5, 2] = None
    y = (X[:, 0] > 0).astype(int)
    clf = MultiTaskMMoEClassifier(**TINY, categorical_features=[1, 2]).fit(X, y)
    assert clf._encoder.categories == [[], []]
    model = export_onnx(clf, io.BytesIO())
    session = onnxruntime.InferenceSession(model.SerializeToString())
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("x0", "tensor(float)"),
        ("x1", "tensor(double)"),
        ("x2", "tensor(string)"),
    ]
    (proba,) = session.run(None, onnx_feed(session, X))
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)


@needs_onnx
@pytest.mark.parametrize("inputs", ["columns", "matrix"])
def test_missing_numeric_values_are_filled_in_the_graph_as_in_predict(inputs):
    frame, binary, multiclass, regression = _frame()
    frame.iloc[::4, frame.columns.get_loc("age")] = np.nan
    frame.iloc[1::5, frame.columns.get_loc("X")] = np.nan
    params = {**TINY, "categorical_features": CATEGORICAL}
    Y = np.column_stack([binary, regression, multiclass])
    estimator = MultiTaskMMoE(**params).fit(frame, Y)
    assert estimator._spec.numeric_missing
    buffer = io.BytesIO()
    export_onnx(estimator, buffer, inputs=inputs)
    session = onnxruntime.InferenceSession(buffer.getvalue())
    X = _unseen_and_missing(frame)
    X.iloc[6, X.columns.get_loc("sk_mmoe/age")] = np.nan  # no NaN in fit
    if inputs == "columns":
        outputs = session.run(None, onnx_feed(session, X))
    else:
        outputs = session.run(None, {"X": estimator._validate_X(X)})
    assert all(np.isfinite(out).all() for out in outputs)
    _assert_parity(estimator, outputs, X)
