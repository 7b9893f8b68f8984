"""Tests for save_model and load_model."""

import io
import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import GradientNormClipping

from sk_mmoe import MultiTaskMMoEClassifier, load_model, save_model
from sk_mmoe.datasets import make_task_correlation

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
    payload = torch.load(path, weights_only=True)
    payload["history"] = _RunsCodeWhenUnpickled()
    torch.save(payload, path)
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
    payload = torch.load(path, weights_only=True)
    payload["params"]["device"] = "cuda"
    torch.save(payload, path)

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
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(ValueError, match="cannot read"):
        load_model(path)
    payload["format_version"] = 1
    payload["module_state"].popitem()
    torch.save(payload, path)
    with pytest.raises(ValueError, match="do not match"):
        load_model(path)
