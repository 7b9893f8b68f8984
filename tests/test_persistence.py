"""Tests for save_model and load_model."""

import hashlib
import io
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import GradientNormClipping
from torch import nn

from sk_mmoe import (
    MultiTaskMMoE,
    MultiTaskMMoEClassifier,
    MultiTaskMMoERegressor,
    load_model,
    save_model,
)
from sk_mmoe._persistence_upgrade import upgrade
from sk_mmoe.datasets import make_task_correlation
from sk_mmoe.nn.network import embedding_sizes

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    lr=1e-2,
    max_epochs=2,
    random_state=0,
)


def _data(n=200):
    return make_task_correlation(n, 0.5, n_features=5, random_state=0)


def _rewrite(path, edit=None, edit_outer=None):
    """Edit a saved file as a crafted one would be: content, then checksum.

    ``edit`` changes the inner content (a dict) in place, ``edit_outer`` the
    outer record; the SHA-256 of the rewritten content is stored, so that the
    file passes the checksum and reaches the checks after it.
    """
    outer = torch.load(path, weights_only=True)
    if edit is not None:
        content = torch.load(io.BytesIO(outer["content"]), weights_only=True)
        edit(content)
        buffer = io.BytesIO()
        torch.save(content, buffer)
        outer["content"] = buffer.getvalue()
        outer["sha256"] = hashlib.sha256(outer["content"]).hexdigest()
    if edit_outer is not None:
        edit_outer(outer)
    torch.save(outer, path)


def _round_trip(clf, **load_kwargs):
    buffer = io.BytesIO()
    save_model(clf, buffer)
    buffer.seek(0)
    return load_model(buffer, **load_kwargs)


def _assert_same_predictions(a, b, X):
    proba_a, proba_b = a.predict_proba(X), b.predict_proba(X)
    if isinstance(proba_a, list):
        assert len(proba_a) == len(proba_b)
        for pa, pb in zip(proba_a, proba_b, strict=True):
            np.testing.assert_array_equal(pa, pb)
    else:
        np.testing.assert_array_equal(proba_a, proba_b)
    pred_a, pred_b = a.predict(X), b.predict(X)
    assert pred_a.dtype == pred_b.dtype
    np.testing.assert_array_equal(pred_a, pred_b)


def _assert_same_classes(a, b):
    classes_a = a.classes_ if isinstance(a.classes_, list) else [a.classes_]
    classes_b = b.classes_ if isinstance(b.classes_, list) else [b.classes_]
    assert type(a.classes_) is type(b.classes_)
    for ca, cb in zip(classes_a, classes_b, strict=True):
        assert ca.dtype == cb.dtype
        np.testing.assert_array_equal(ca, cb)


def test_round_trip_gives_identical_model(tmp_path):
    X, Y = _data()
    Y[::3, 1] = -1
    clf = MultiTaskMMoEClassifier(n_task_experts=1, n_levels=2, **SMALL).fit(X, Y)
    path = tmp_path / "model.pt"
    save_model(clf, path)
    loaded = load_model(path)
    _assert_same_predictions(clf, loaded, X)
    np.testing.assert_array_equal(clf.gate_weights(X), loaded.gate_weights(X))
    assert loaded.get_params() == clf.get_params()
    _assert_same_classes(clf, loaded)
    assert loaded.task_names_ == clf.task_names_
    assert loaded.n_outputs_ == clf.n_outputs_ == 2
    assert loaded.n_features_in_ == 5
    assert not hasattr(loaded, "feature_names_in_")
    assert loaded.history_ == clf.history_
    assert loaded.n_iter_ == clf.n_iter_ == 2
    assert loaded.score(X, Y) == clf.score(X, Y)


@pytest.mark.parametrize("numeric_embedding", ["periodic", None])
def test_numeric_embedding_round_trips(numeric_embedding):
    X, Y = _data()
    clf = MultiTaskMMoEClassifier(numeric_embedding=numeric_embedding, **SMALL)
    clf.fit(X, Y)
    loaded = _round_trip(clf)
    _assert_same_predictions(clf, loaded, X)
    assert (clf.module_.embedding is None) == (loaded.module_.embedding is None)
    assert (clf.module_.embedding is None) == (numeric_embedding is None)


def test_pandas_feature_names_round_trip():
    pd = pytest.importorskip("pandas")
    X, Y = _data()
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    Y = pd.DataFrame(Y, columns=["click", "like"])
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    loaded = _round_trip(clf)
    np.testing.assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    assert loaded.task_names_ == ["click", "like"]
    _assert_same_predictions(clf, loaded, X)
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(X.rename(columns={"f0": "other"}))


@pytest.mark.parametrize(
    "make_labels",
    [
        pytest.param(lambda y: np.where(y == 1, "yes", "no"), id="str"),
        pytest.param(lambda y: y.astype(bool), id="bool"),
        pytest.param(lambda y: y.astype(np.float64) + 2.0, id="float"),
        pytest.param(lambda y: y.astype(np.int32) * 7 - 3, id="int32"),
    ],
)
def test_label_types_round_trip(make_labels):
    X, Y = _data()
    labels = make_labels(Y[:, 0])
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, labels)
    loaded = _round_trip(clf)
    _assert_same_classes(clf, loaded)
    _assert_same_predictions(clf, loaded, X)


def test_mixed_label_types_across_tasks():
    pd = pytest.importorskip("pandas")
    X, Y = _data()
    Y = pd.DataFrame(
        {
            "int": Y[:, 0],
            "str": np.where(Y[:, 1] == 1, "b", "a"),
            "bool": (Y[:, 0] + Y[:, 1]) > 0,
        }
    )
    Y.loc[::4, "str"] = None
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    loaded = _round_trip(clf)
    _assert_same_classes(clf, loaded)
    _assert_same_predictions(clf, loaded, X)
    assert loaded.predict(X).dtype == object


def test_single_task_round_trip():
    X, Y = _data()
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y[:, 1])
    loaded = _round_trip(clf)
    assert isinstance(loaded.classes_, np.ndarray)
    assert loaded.predict(X).shape == (len(X),)
    assert loaded.predict_proba(X).shape == (len(X), 2)
    _assert_same_predictions(clf, loaded, X)


def test_warm_start_after_loading_continues_the_same_training():
    # The optimizer state and the history are restored: one more fit of the
    # loaded model gives the same model as one more fit of the original.
    X, Y = _data()
    clf = MultiTaskMMoEClassifier(warm_start=True, **SMALL).fit(X, Y)
    loaded = _round_trip(clf)
    clf.fit(X, Y)
    loaded.fit(X, Y)
    assert loaded.n_iter_ == clf.n_iter_ == 4
    _assert_same_predictions(clf, loaded, X)


_unpickled = []


def _record_unpickling():
    _unpickled.append(True)
    return "unpickled"


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (_record_unpickling, ())


def test_files_with_python_objects_are_refused(tmp_path):
    X, Y = _data()
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    path = tmp_path / "model.pt"
    save_model(clf, path)
    # In the content (with a valid checksum) and in the outer record.
    for where in ("content", "outer"):
        save_model(clf, path)
        if where == "content":
            _rewrite(path, lambda c: c.update(history=_RunsCodeWhenUnpickled()))
        else:
            _rewrite(path, edit_outer=lambda o: o.update(note=_RunsCodeWhenUnpickled()))
        with pytest.raises(ValueError, match="refused it.*_record_unpickling"):
            load_model(path)
    assert _unpickled == []  # the loader did not run it

    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(clf))
    with pytest.raises(ValueError, match="not a file written by save_model"):
        load_model(pickled)


def test_device_override(tmp_path):
    X, Y = _data()
    clf = MultiTaskMMoEClassifier(**SMALL).fit(X, Y)
    path = tmp_path / "model.pt"
    save_model(clf, path)
    # Pretend the model was trained on a GPU.
    _rewrite(path, lambda content: content["params"].update(device="cuda"))

    loaded = load_model(path, device=torch.device("cpu"))
    assert loaded.device == "cpu"
    assert next(loaded.module_.parameters()).device.type == "cpu"
    _assert_same_predictions(clf, loaded, X)
    if torch.cuda.is_available():
        on_gpu = load_model(path)
        assert next(on_gpu.module_.parameters()).device.type == "cuda"
        np.testing.assert_allclose(
            on_gpu.predict_proba(X)[0], clf.predict_proba(X)[0], atol=1e-5
        )
    else:
        with pytest.raises(ValueError, match=r"device='cpu'"):
            load_model(path)


def test_parameters_that_are_objects(tmp_path):
    X, Y = _data()
    clf = MultiTaskMMoEClassifier(
        callbacks=[("clip", GradientNormClipping(1.0))],
        optimizer=torch.optim.SGD,
        task_weights=np.array([1.0, 2.0]),
        class_weight=[{np.int64(0): 1.0, np.int64(1): 3.0}, None],
        **{**SMALL, "random_state": np.random.RandomState(5)},
    ).fit(X, Y)
    with pytest.warns(UserWarning, match="callbacks cannot be saved"):
        loaded = _round_trip(clf)
    assert loaded.callbacks is None
    assert loaded.optimizer == "sgd"
    assert loaded.task_weights == [1.0, 2.0]
    assert loaded.class_weight == [{0: 1.0, 1: 3.0}, None]
    # A RandomState comes back in the same state.
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert loaded.random_state.randint(10**9) == clf.random_state.randint(10**9)
    _assert_same_predictions(clf, loaded, X)

    class MyAdam(torch.optim.Adam):
        pass

    custom = MultiTaskMMoEClassifier(optimizer=MyAdam, **SMALL).fit(X, Y)
    with pytest.raises(ValueError, match="optimizer=.*MyAdam.*cannot be saved"):
        save_model(custom, tmp_path / "custom.pt")


def test_save_errors(tmp_path):
    with pytest.raises(NotFittedError):
        save_model(MultiTaskMMoEClassifier(), tmp_path / "model.pt")
    X, Y = _data()
    pipe = make_pipeline(StandardScaler(), MultiTaskMMoEClassifier(**SMALL))
    with pytest.raises(TypeError, match="joblib"):
        save_model(pipe.fit(X, Y), tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a file written by save_model"):
        load_model(garbage)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a file written by save_model"):
        load_model(other)

    X, Y = _data()
    path = tmp_path / "model.pt"
    save_model(MultiTaskMMoEClassifier(**SMALL).fit(X, Y), path)
    _rewrite(path, edit_outer=lambda outer: outer.update(format_version=99))
    with pytest.raises(ValueError, match="cannot read"):
        load_model(path)
    _rewrite(path, edit_outer=lambda outer: outer.update(format_version=1))
    with pytest.raises(ValueError, match="cannot read"):
        load_model(path)
    _rewrite(path, edit_outer=lambda outer: outer.update(format_version=3))
    load_model(path)
    _rewrite(path, lambda content: content["module_state"].popitem())
    with pytest.raises(ValueError, match="do not match"):
        load_model(path)


# ---------------------------------------------------------------------------
# Damaged and crafted files
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_bytes():
    X, Y = _data()
    buffer = io.BytesIO()
    save_model(MultiTaskMMoEClassifier(**SMALL).fit(X, Y), buffer)
    return buffer.getvalue()


@pytest.fixture
def saved(tmp_path, saved_bytes):
    path = tmp_path / "model.pt"
    path.write_bytes(saved_bytes)
    return path


@pytest.mark.parametrize("step", [8, 997])
def test_corrupted_content_is_refused(saved, step):
    outer = torch.load(saved, weights_only=True)
    data = bytearray(outer["content"])
    # Flip bytes in the second half: the tensor records.
    for i in range(len(data) // 2, len(data), step):
        data[i] ^= 0xFF
    outer["content"] = bytes(data)
    torch.save(outer, saved)
    with pytest.raises(ValueError, match=r"model\.pt.*corrupted"):
        load_model(saved)


def test_damaged_outer_file_is_refused(saved):
    data = bytearray(saved.read_bytes())
    del data[len(data) // 2 :]
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a file written by save_model"):
        load_model(saved)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda c: c.update(n_features_in=10**9), id="n_features_in"),
        pytest.param(lambda c: c["params"].update(n_experts=10**7), id="n_experts"),
        pytest.param(
            lambda c: c["params"].update(expert_hidden_layer_sizes=[10**9]),
            id="hidden_layer",
        ),
        pytest.param(
            lambda c: c["tasks"][0].update(classes=list(range(10**6))),
            id="n_classes",
        ),
    ],
)
def test_huge_sizes_are_refused_before_allocating(saved, edit, monkeypatch):
    # Built as stored, these networks would need from 4 GB to many TB: the
    # file is refused before any tensor of that size is asked for.
    _rewrite(saved, edit)
    for factory in _TENSOR_FACTORIES:
        monkeypatch.setattr(torch, factory, _refuse_huge(getattr(torch, factory)))
    with pytest.raises(ValueError, match="do not match|malformed"):
        load_model(saved)


_TENSOR_FACTORIES = ("empty", "zeros", "ones", "rand", "randn", "full")


def _refuse_huge(factory, limit=10**8):
    """``factory``, failing the test when asked for more than ``limit`` elements
    of real memory (shapes are checked on the meta device, which has none)."""

    def guarded(*size, **kwargs):
        if (
            torch.device(kwargs.get("device") or torch.get_default_device()).type
            == "meta"
        ):
            return factory(*size, **kwargs)
        first = size[0] if size else kwargs.get("size", ())
        shape = first if isinstance(first, (tuple, list)) else size
        n = math.prod(int(dim) for dim in shape if isinstance(dim, int))
        assert n <= limit, f"torch.{factory.__name__} of {n} elements"
        return factory(*size, **kwargs)

    return guarded


def _set_task(k, **entries):
    return lambda c: c["tasks"][k].update(entries)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.pop("tasks"), "no 'tasks' entry"),
        (lambda c: c.pop("module_state"), "no 'module_state' entry"),
        (lambda c: c.update(n_features_in="5"), "'n_features_in' entry is a str"),
        (lambda c: c.update(n_features_in=True), "'n_features_in' entry is a bool"),
        (lambda c: c.update(n_features_in=0), "no tasks or no features"),
        (lambda c: c.update(single_task=1), "'single_task' entry is a int"),
        (lambda c: c.update(params=[1, 2]), "'params' entry is a list"),
        (lambda c: c.update(tasks=[]), "no tasks"),
        (lambda c: c.update(estimator="Evil"), "unknown estimator 'Evil'"),
        (lambda c: c.update(history=[1, 2]), "history"),
        (lambda c: c.update(feature_names_in=["a"]), "feature names"),
        (lambda c: c["params"].update(n_experts="many"), "invalid parameters"),
        (lambda c: c["params"].update(n_experts=True), "invalid parameters"),
        (lambda c: c["params"].update(colour="red"), "malformed"),
        (lambda c: c.update(random_state={"name": "MT19937"}), "malformed"),
        (lambda c: c["tasks"].__setitem__(0, "binary"), "malformed"),
        (_set_task(0, kind="ordinal"), "unknown task type 'ordinal'"),
        (lambda c: c["tasks"][0].pop("classes"), "malformed"),
        (_set_task(0, dtype="not a dtype"), "malformed"),
        (lambda c: c["tasks"].pop(), "do not match"),
        (lambda c: c.pop("network"), "network specification is malformed"),
        (
            lambda c: c["network"].update(numeric_scaling="yes"),
            "network specification is malformed",
        ),
        (
            lambda c: c["network"].update(numeric_frequencies=0),
            "network specification is malformed",
        ),
        (
            lambda c: c["network"].update(numeric_lite="no"),
            "network specification is malformed",
        ),
        (lambda c: c["network"].update(n_features=4), "features and its tasks"),
        (lambda c: c["network"].update(output_sizes=[2, 3]), "do not match"),
        (_set_task(1, kind="regression", mean=0.0, scale=1.0), "do not match"),
        (lambda c: c["module_state"].update(extra=torch.zeros(2)), "unexpected"),
        (
            lambda c: c["module_state"].update(
                {next(iter(c["module_state"])): "weights"}
            ),
            "do not match",
        ),
        (lambda c: c.update(criterion_state={}), "loss state"),
        (lambda c: c.update(optimizer_state={}), "state in .* does not match"),
        (
            lambda c: c.update(optimizer_state={"state": {}, "param_groups": [{}]}),
            "state in .* does not match",
        ),
    ],
)
def test_malformed_content_is_a_value_error(saved, edit, match):
    _rewrite(saved, edit)
    with pytest.raises(ValueError, match=match):
        load_model(saved)


@pytest.mark.parametrize(
    "edit_outer, match",
    [
        (lambda o: o.pop("content"), "content or checksum is missing"),
        (lambda o: o.update(sha256=None), "content or checksum is missing"),
        (lambda o: o.update(content="text"), "content or checksum is missing"),
        (lambda o: o.update(format_version="2"), "cannot read"),
        (lambda o: o.update(format="other"), "not a file written by save_model"),
    ],
)
def test_malformed_outer_record_is_a_value_error(saved, edit_outer, match):
    _rewrite(saved, edit_outer=edit_outer)
    with pytest.raises(ValueError, match=match):
        load_model(saved)


def test_content_that_is_not_a_dict_is_refused(saved):
    outer = torch.load(saved, weights_only=True)
    buffer = io.BytesIO()
    torch.save([1, 2, 3], buffer)
    outer["content"] = buffer.getvalue()
    outer["sha256"] = hashlib.sha256(outer["content"]).hexdigest()
    torch.save(outer, saved)
    with pytest.raises(ValueError, match="not a dict"):
        load_model(saved)


@pytest.mark.parametrize("device", ["meta", "mps", "tpu:x"])
def test_load_on_an_unusable_device_is_refused(saved, device):
    with pytest.raises(ValueError, match="device"):
        load_model(saved, device=device)


# ---------------------------------------------------------------------------
# Every estimator
# ---------------------------------------------------------------------------


def _estimator_and_data(kind, **params):
    X, Y = _data()
    rng = np.random.default_rng(0)
    if kind == "classifier":
        Y = Y.copy()
        Y[::3, 1] = -1
        return MultiTaskMMoEClassifier(**SMALL, **params), X, Y
    continuous = 100 * X[:, 0] + rng.normal(0, 5, len(X)) + 1000
    if kind == "regressor":
        Y = np.column_stack([continuous, X[:, 1] - X[:, 2]])
        Y[::4, 0] = np.nan
        return MultiTaskMMoERegressor(**SMALL, **params), X, Y
    if kind == "poisson":
        counts = rng.poisson(np.exp(X[:, 0]))
        Y = np.column_stack([counts, Y[:, 0], continuous])
        loss = {"task0": "poisson", "task2": "huber"}
        return MultiTaskMMoE(**SMALL, **params, loss=loss), X, Y
    Y = np.column_stack([Y[:, 0], continuous]).astype(object)
    Y[::4, 1] = None
    return MultiTaskMMoE(**SMALL, **params), X, Y


def _assert_same_model(a, b, X):
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.predict(X).dtype == b.predict(X).dtype
    np.testing.assert_array_equal(a.gate_weights(X), b.gate_weights(X))
    if hasattr(a, "predict_proba"):
        for pa, pb in zip(a.predict_proba(X), b.predict_proba(X), strict=True):
            if pa is None:
                assert pb is None
            else:
                np.testing.assert_array_equal(pa, pb)
    for name in ("task_names_", "task_types_", "n_outputs_", "n_iter_"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.task_weights_, b.task_weights_)
    for name in ("target_mean_", "target_scale_"):
        if hasattr(a, name):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    if hasattr(a, "classes_"):
        for ca, cb in zip(a.classes_, b.classes_, strict=True):
            np.testing.assert_array_equal(ca, cb)
    # Epoch durations differ between two runs of the same training.
    assert [{k: v for k, v in e.items() if k != "dur"} for e in a.history_] == [
        {k: v for k, v in e.items() if k != "dur"} for e in b.history_
    ]


KINDS = ["classifier", "regressor", "mixed", "poisson"]


def _as_format_2(content):
    """The content as format 2 wrote it: tasks without their loss, and the
    task lists of each kind in the loss state."""
    content.pop("network")
    kinds = [task["kind"] for task in content["tasks"]]
    for task in content["tasks"]:
        task.pop("loss", None)
    state = content["criterion_state"]
    state["classification_tasks"] = torch.tensor(
        [k for k, kind in enumerate(kinds) if kind != "regression"]
    )
    state["regression_tasks"] = torch.tensor(
        [k for k, kind in enumerate(kinds) if kind == "regression"]
    )


@pytest.mark.parametrize("kind", ["classifier", "mixed"])
def test_files_of_format_2_still_load_and_train(tmp_path, kind):
    clf, X, Y = _estimator_and_data(kind, warm_start=True)
    clf.fit(X, Y)
    path = tmp_path / "model.pt"
    save_model(clf, path)
    _rewrite(path, _as_format_2, lambda outer: outer.update(format_version=2))
    loaded = load_model(path)
    _assert_same_model(clf, loaded, X)
    clf.fit(X, Y)
    loaded.fit(X, Y)
    _assert_same_model(clf, loaded, X)


def _content(path):
    outer = torch.load(path, weights_only=True)
    content = torch.load(io.BytesIO(outer["content"]), weights_only=True)
    return {**content, "format_version": outer["format_version"]}


@pytest.mark.parametrize("kind", KINDS)
def test_upgrade_turns_format_2_into_the_current_content(tmp_path, kind):
    model, X, Y = _estimator_and_data(kind)
    model.set_params(numeric_scaling="robust").fit(X, Y)
    path = tmp_path / "model.pt"
    save_model(model, path)
    current = _content(path)
    older = _content(path)
    _as_format_2(older)
    older["format_version"] = 2
    upgraded = upgrade(older)
    assert "network" not in older  # the argument is left as it was
    assert upgraded["network"] == current["network"]
    assert set(upgraded["criterion_state"]) == set(current["criterion_state"])
    # Format 2 named no loss: the type's default (the poisson task's is its
    # own, the huber task's was asked for and is lost).
    assert [task["loss"] for task in upgraded["tasks"]] == [None] * len(Y[0])
    # The current content is left as it is.
    assert upgrade(current)["network"] == current["network"]


def test_upgrade_gives_older_specifications_their_options_values(tmp_path):
    model, X, Y = _estimator_and_data("regressor")
    model.fit(X, Y)
    path = tmp_path / "model.pt"
    save_model(model, path)
    content = _content(path)
    options = (
        "numeric_clip",
        "numeric_missing",
        "embedding_dims",
        "numeric_frequencies",
        "numeric_lite",
    )
    for option in options:
        content["network"].pop(option)
    network = upgrade(content)["network"]
    assert network["numeric_clip"] is True
    assert network["numeric_missing"] is False
    assert network["embedding_dims"] is None
    assert network["numeric_frequencies"] == 48
    assert network["numeric_lite"] is False


def _history_model(target, pooling):
    rng = np.random.default_rng(0)
    items = [f"item{k}" for k in range(10)]
    X = pd.DataFrame(
        {
            "item_id": rng.choice(items, 120),
            "history": [list(rng.choice(items, 3)) for _ in range(120)],
        }
    )
    Y = np.column_stack([rng.integers(0, 2, 120), rng.integers(0, 2, 120)])
    model = MultiTaskMMoEClassifier(
        **SMALL, sequence_features={"history": target}, sequence_pooling=pooling
    )
    return model.fit(X, Y), X


@pytest.mark.parametrize("pooling", ["auto", "mean", "attention"])
def test_format_4_files_pooling_with_the_candidate_are_refused(tmp_path, pooling):
    # Format 5 pools a list column that shares a table with the candidate:
    # other weights than format 4's, so such a file asks for a new fit.
    model, _ = _history_model("item_id", pooling)
    path = tmp_path / "model.pt"
    save_model(model, path)
    assert torch.load(path, weights_only=True)["format_version"] == 5
    _rewrite(path, edit_outer=lambda outer: outer.update(format_version=4))
    with pytest.raises(ValueError, match=r"file format 4.*Fit the model again"):
        load_model(path)


@pytest.mark.parametrize("target, pooling", [(None, "mean"), ("item_id", "sum")])
def test_format_4_files_pooling_alone_still_load(tmp_path, target, pooling):
    model, X = _history_model(target, pooling)
    path = tmp_path / "model.pt"
    save_model(model, path)
    _rewrite(path, edit_outer=lambda outer: outer.update(format_version=4))
    _assert_same_model(model, load_model(path), X)


def test_files_without_the_clip_option_clip_their_inputs(tmp_path):
    # Networks saved before numeric_clip existed all clipped.
    reg, X, Y = _estimator_and_data("regressor")
    reg.set_params(numeric_scaling="robust").fit(X, Y)
    path = tmp_path / "model.pt"
    save_model(reg, path)
    _rewrite(path, lambda content: content["network"].pop("numeric_clip"))
    loaded = load_model(path)
    assert loaded.module_.scaling.clip
    _assert_same_model(reg, loaded, X)
    unclipped = clone(reg).set_params(numeric_scaling="robust_unclipped").fit(X, Y)
    assert not _round_trip(unclipped).module_.scaling.clip


def _periodic_layer(model):
    """The numbers of frequencies and whether the linear layer is shared."""
    periodic = model.module_.embedding.numeric_embedding
    return periodic.periodic.weight.shape[1], isinstance(periodic.linear, nn.Linear)


def test_files_without_the_periodic_options_embed_with_48_frequencies(
    tmp_path, monkeypatch
):
    # Files saved before the options: 48 frequencies and a linear layer
    # per column, whatever a new fit now chooses.
    import sk_mmoe._building

    clf, X, Y = _estimator_and_data(
        "classifier", numeric_embedding="periodic", warm_start=True
    )
    with monkeypatch.context() as patch:
        patch.setattr(sk_mmoe._building, "_PERIODIC_FREQUENCIES", 48)
        patch.setattr(sk_mmoe._building, "_PERIODIC_LITE", False)
        clf.fit(X, Y)
    path = tmp_path / "model.pt"
    save_model(clf, path)

    def older(content):
        content["network"].pop("numeric_frequencies")
        content["network"].pop("numeric_lite")

    _rewrite(path, older)
    loaded = load_model(path)
    assert _periodic_layer(loaded) == (48, False)
    _assert_same_model(clf, loaded, X)
    clf.fit(X, Y)
    loaded.fit(X, Y)
    _assert_same_model(clf, loaded, X)
    # A new fit embeds with the current choice.
    refit = clone(loaded).fit(X, Y)
    assert _periodic_layer(refit) == (
        sk_mmoe._building._PERIODIC_FREQUENCIES,
        sk_mmoe._building._PERIODIC_LITE,
    )


@pytest.mark.parametrize("frequencies, lite", [(16, True), (24, False)])
def test_periodic_options_round_trip(tmp_path, monkeypatch, frequencies, lite):
    import sk_mmoe._building

    monkeypatch.setattr(sk_mmoe._building, "_PERIODIC_FREQUENCIES", frequencies)
    monkeypatch.setattr(sk_mmoe._building, "_PERIODIC_LITE", lite)
    clf, X, Y = _estimator_and_data("classifier", numeric_embedding="periodic")
    clf.fit(X, Y)
    assert _periodic_layer(clf) == (frequencies, lite)
    monkeypatch.undo()
    path = tmp_path / "model.pt"
    save_model(clf, path)
    loaded = load_model(path)
    assert _periodic_layer(loaded) == (frequencies, lite)
    _assert_same_model(clf, loaded, X)
    # Format 2 had no specification: the options are read from the weights.
    older = _content(path)
    _as_format_2(older)
    older["format_version"] = 2
    assert upgrade(older)["network"] == _content(path)["network"]


def test_files_with_one_embedding_size_for_all_columns_still_load(
    tmp_path, monkeypatch
):
    # Files saved before sizes per column: no "embedding_dims" in the
    # network's specification, one table row per code.
    import sk_mmoe._building

    clf, X, Y = _estimator_and_data("classifier", warm_start=True)
    codes = np.random.default_rng(1).integers(0, 4, len(X))
    X = np.column_stack([X, codes])
    clf.set_params(categorical_features=[X.shape[1] - 1])
    with monkeypatch.context() as patch:
        patch.setattr(sk_mmoe._building, "embedding_sizes", lambda cards: None)
        clf.fit(X, Y)
    assert clf.module_.embedding.column_dims is None
    path = tmp_path / "model.pt"
    save_model(clf, path)
    _rewrite(path, lambda content: content["network"].pop("embedding_dims"))
    loaded = load_model(path)
    assert loaded.module_.embedding.column_dims is None
    _assert_same_model(clf, loaded, X)
    clf.fit(X, Y)
    loaded.fit(X, Y)
    _assert_same_model(clf, loaded, X)
    # A new fit sizes each column's embedding.
    refit = clone(loaded).fit(X, Y)
    dims = embedding_sizes(refit._encoder.cardinalities)
    assert refit.module_.embedding.column_dims == dims


@pytest.mark.parametrize("task_weights", [None, "uncertainty"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_estimator_round_trips_and_continues_training(kind, task_weights):
    clf, X, Y = _estimator_and_data(kind, warm_start=True, task_weights=task_weights)
    clf.fit(X, Y)
    loaded = _round_trip(clf)
    assert type(loaded) is type(clf)
    assert loaded.get_params() == clf.get_params()
    _assert_same_model(clf, loaded, X)
    assert loaded.score(X, Y) == clf.score(X, Y)
    if task_weights == "uncertainty":
        torch.testing.assert_close(
            loaded.net_.criterion_.weighting.log_variance,
            clf.net_.criterion_.weighting.log_variance,
            rtol=0,
            atol=0,
        )
        assert "task_weight_task0" in loaded.history_[-1]
    # One more warm-start fit of each gives the same model.
    clf.fit(X, Y)
    loaded.fit(X, Y)
    assert loaded.n_iter_ == 4
    _assert_same_model(clf, loaded, X)


@pytest.mark.parametrize(
    "options",
    [
        dict(gate="dselect_k", gate_k=1, gate_temperature=0.5, gate_balance=0.1),
        dict(expert_activation="silu", expert_normalization="layer", ensemble_size=2),
    ],
)
def test_gate_options_round_trip_and_continue_training(options):
    clf, X, Y = _estimator_and_data("mixed", warm_start=True, refit=True, **options)
    clf.fit(X, Y)
    loaded = _round_trip(clf)
    assert loaded.get_params() == clf.get_params()
    _assert_same_model(clf, loaded, X)
    clf.fit(X, Y)
    loaded.fit(X, Y)
    _assert_same_model(clf, loaded, X)


@pytest.mark.parametrize("kind", KINDS)
def test_every_estimator_partial_fit_after_loading(kind):
    clf, X, Y = _estimator_and_data(kind)
    clf.fit(X, Y)
    loaded = _round_trip(clf)
    clf.partial_fit(X, Y)
    loaded.partial_fit(X, Y)
    _assert_same_model(clf, loaded, X)


def test_single_task_regressor_round_trip():
    X, Y = _data()
    reg = MultiTaskMMoERegressor(**SMALL).fit(X, X[:, 0] * 50.0)
    loaded = _round_trip(reg)
    assert loaded.predict(X).shape == (len(X),)
    _assert_same_model(reg, loaded, X)


def test_conditional_tasks_round_trip():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    click = (X[:, 0] > 0).astype(int)
    buy = np.where(click == 1, (X[:, 1] > 0).astype(float), np.nan)
    clf = MultiTaskMMoEClassifier(**SMALL, conditional_on={1: 0}).fit(
        X, np.column_stack([click, buy])
    )
    loaded = _round_trip(clf)
    assert loaded.conditional_on == {1: 0}
    _assert_same_predictions(clf, loaded, X)
    for a, b in zip(
        clf.predict_conditional_proba(X),
        loaded.predict_conditional_proba(X),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
