"""Tests for sk_mmoe._data.targets."""

import numpy as np
import pandas as pd
import pytest

from sk_mmoe._data.targets import (
    default_task_names,
    encode_targets,
    missing_mask,
    read_targets,
)
from sk_mmoe._tasks import infer_task_type, make_task


def _encode(Y, missing_label=None, classes=None, n_samples=None):
    """Read ``Y``, fit a task per column (type inferred), encode."""
    targets = read_targets(Y, missing_label, n_samples=n_samples)
    tasks = []
    for k, name in enumerate(targets.names):
        values = targets.labelled_values(k)
        known = None if classes is None else classes[k]
        # As the estimators do: the declared classes decide binary/multiclass.
        kind = infer_task_type(values if known is None else np.asarray(known), name)
        tasks.append(make_task(kind, name).fit(values, known))
    return targets, tasks, encode_targets(targets, tasks)


@pytest.mark.parametrize(
    "values, marker, expected",
    [
        ([0, -1, 1, -1], -1, [0, 1, 0, 1]),
        ([0.0, np.nan, 1.0, -1.0], -1, [0, 1, 0, 1]),
        ([0.0, np.nan, 1.0, -1.0], None, [0, 1, 0, 0]),
        (np.array(["a", "b", "?"]), "?", [0, 0, 1]),
        (np.array(["a", None, np.nan, -1], dtype=object), -1, [0, 1, 1, 1]),
        (np.array([True, False]), -1, [0, 0]),
    ],
)
def test_missing_mask(values, marker, expected):
    np.testing.assert_array_equal(
        missing_mask(values, marker), np.array(expected, bool)
    )


def test_encode_mixed_dataframe():
    Y = pd.DataFrame(
        {
            "click": [1, 0, -1, 1, 0],
            "rating": ["low", "high", "mid", None, "low"],
            "liked": [True, False, True, True, False],
        }
    )
    targets, tasks, encoded = _encode(Y, -1, n_samples=5)
    assert targets.names == ["click", "rating", "liked"]
    assert not targets.is_single_task
    np.testing.assert_array_equal(tasks[0].classes, [0, 1])
    np.testing.assert_array_equal(tasks[1].classes, ["high", "low", "mid"])
    np.testing.assert_array_equal(tasks[2].classes, [False, True])
    assert [t.kind for t in tasks] == ["binary", "multiclass", "binary"]
    expected = [
        [1, 1, 1],
        [0, 0, 0],
        [np.nan, 2, 1],
        [1, np.nan, 1],
        [0, 1, 0],
    ]
    assert encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded, expected)
    np.testing.assert_array_equal(targets.labelled[0], [1, 1, 0, 1, 1])


def test_nullable_and_categorical_columns():
    Y = pd.DataFrame(
        {
            "a": pd.array([1, None, 0, 1], dtype="Int64"),
            "b": pd.Categorical(["x", "y", None, "x"]),
        }
    )
    _, _, encoded = _encode(Y)
    np.testing.assert_array_equal(encoded[:, 0], [1, np.nan, 0, 1])
    np.testing.assert_array_equal(encoded[:, 1], [0, 1, np.nan, 0])


def test_regression_column_is_standardised():
    Y = np.array([[0, 10.5], [1, np.nan], [1, 20.5], [0, 30.5]])
    _, tasks, encoded = _encode(Y)
    assert [t.kind for t in tasks] == ["binary", "regression"]
    assert tasks[1].mean == pytest.approx(20.5)
    scale = np.std([10.5, 20.5, 30.5])
    assert tasks[1].scale == pytest.approx(scale)
    np.testing.assert_allclose(
        encoded[:, 1], [-10 / scale, np.nan, 0, 10 / scale], rtol=1e-6
    )


def test_one_dimensional_y_is_one_task():
    targets, tasks, encoded = _encode(np.array(["b", "a", "b"]))
    assert targets.is_single_task and targets.names == ["task0"]
    np.testing.assert_array_equal(encoded[:, 0], [1, 0, 1])
    targets = read_targets(np.array([[0], [1]]))
    assert not targets.is_single_task


def test_default_task_names():
    assert default_task_names(3) == ["task0", "task1", "task2"]
    assert read_targets(np.zeros((2, 2)) + [[0, 1]]).names == ["task0", "task1"]


def test_given_classes_allow_absent_classes():
    _, _, encoded = _encode(np.array([[0, 2], [0, 1]]), classes=[[0, 1], [0, 1, 2]])
    np.testing.assert_array_equal(encoded, [[0, 2], [0, 1]])
    _, tasks, _ = _encode(np.array([0, 0]), classes=[[0, 1, 2]])
    assert len(tasks[0].classes) == 3
    with pytest.raises(ValueError, match=r"labels \[3\]"):
        _encode(np.array([[0, 3]]), classes=[[0, 1], [0, 1, 2]])


@pytest.mark.parametrize(
    "Y, match",
    [
        (None, "requires y to be passed"),
        (np.array([[0, -1], [1, -1]]), "'task1'.*no labelled rows"),
        (np.zeros((2, 2, 2)), "1-D .* or 2-D"),
        (np.zeros((3, 0)), "at least one column"),
    ],
)
def test_invalid_targets(Y, match):
    with pytest.raises(ValueError, match=match):
        read_targets(Y, -1)


@pytest.mark.parametrize(
    "Y, match",
    [
        (np.array([[0, 1], [1, 1], [0, -1]]), "'task1'.*only one class"),
        (np.array([["a", 1], [2, "b"]], dtype=object), "mixes label types"),
    ],
)
def test_invalid_labels(Y, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _encode(Y, -1)


def test_sparse_targets_are_refused():
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse targets"):
        read_targets(sp.csr_matrix(np.eye(3)))


def test_length_must_match_X():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        read_targets(np.array([0, 1, 0]), n_samples=4)


def test_dataframe_task_name_in_errors():
    with pytest.raises(ValueError, match="'share'"):
        _encode(pd.DataFrame({"click": [0, 1], "share": [1, 1]}))


def test_duplicate_task_names_are_refused():
    Y = pd.DataFrame([[0, 1], [1, 0]], columns=["click", "click"])
    with pytest.raises(ValueError, match=r"duplicate task names \['click'\]"):
        read_targets(Y)
    # Names that only become equal as strings are duplicates too.
    Y = pd.DataFrame([[0, 1], [1, 0]], columns=[1, "1"])
    with pytest.raises(ValueError, match="duplicate task names"):
        read_targets(Y)


@pytest.mark.parametrize(
    "column, marker",
    [
        (np.array(["0", "1", "-1"]), -1),  # string labels, numeric marker
        (np.array(["0", "1", " -1"], dtype=object), -1),
        (np.array([0, 1, -1]), "-1"),  # numeric labels, string marker
        (np.array([0, 1, -1], dtype=object), "-1"),
    ],
)
def test_marker_that_differs_from_labels_only_in_type_is_refused(column, marker):
    with pytest.raises(ValueError, match="differ only in type"):
        read_targets(column, marker)


def test_marker_of_the_labels_type_is_fine():
    targets = read_targets(np.array(["0", "1", "-1"]), "-1")
    np.testing.assert_array_equal(targets.labelled[0], [True, True, False])
    targets = read_targets(np.array([0, 1, -1]), -1)
    np.testing.assert_array_equal(targets.labelled[0], [True, True, False])


def test_require_labels_false_accepts_empty_tasks():
    targets = read_targets(np.array([[0, np.nan], [1, np.nan]]), require_labels=False)
    assert not targets.labelled[1].any()


def test_polars_targets_read_as_pandas():
    pl = pytest.importorskip("polars")
    values = {
        "click": [1, 0, None, 1, 0],
        "rating": ["low", "high", "mid", None, "low"],
        "liked": [True, False, True, None, False],
        "amount": [1.5, None, 2.0, 3.0, 4.5],
    }
    targets, tasks, encoded = _encode(pl.DataFrame(values))
    as_pandas = pd.DataFrame(
        {
            "click": pd.array(values["click"], dtype="Int64"),
            "rating": values["rating"],
            "liked": pd.array(values["liked"], dtype="boolean"),
            "amount": np.array(values["amount"], dtype=float),
        }
    )
    _, pandas_tasks, pandas_encoded = _encode(as_pandas)
    assert targets.names == list(values)
    # Nulls are missing labels, and the labels keep their type.
    np.testing.assert_array_equal(encoded, pandas_encoded)
    for task, pandas_task in zip(tasks[:3], pandas_tasks[:3], strict=True):
        np.testing.assert_array_equal(task.classes, pandas_task.classes)
        assert type(task.classes[0]) is type(pandas_task.classes[0])
    np.testing.assert_array_equal(targets.labelled[0], [1, 1, 0, 1, 1])
    # A Series is a single task, as a pandas one.
    single = read_targets(pl.Series("y", [0, None, 1]))
    assert single.is_single_task and single.names == ["task0"]
    np.testing.assert_array_equal(single.labelled_values(0), [0, 1])
