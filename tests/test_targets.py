"""Tests for sk_mmoe._targets."""

import numpy as np
import pandas as pd
import pytest

from sk_mmoe._targets import MISSING_CODE, encode_targets, missing_mask


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
    enc = encode_targets(Y, -1, n_samples=5)
    assert enc.task_names == ["click", "rating", "liked"]
    assert not enc.is_single_task
    np.testing.assert_array_equal(enc.classes[0], [0, 1])
    np.testing.assert_array_equal(enc.classes[1], ["high", "low", "mid"])
    np.testing.assert_array_equal(enc.classes[2], [False, True])
    expected = [
        [1, 1, 1],
        [0, 0, 0],
        [MISSING_CODE, 2, 1],
        [1, MISSING_CODE, 1],
        [0, 1, 0],
    ]
    np.testing.assert_array_equal(enc.codes, expected)


def test_nullable_and_categorical_columns():
    Y = pd.DataFrame(
        {
            "a": pd.array([1, None, 0, 1], dtype="Int64"),
            "b": pd.Categorical(["x", "y", None, "x"]),
        }
    )
    enc = encode_targets(Y)
    np.testing.assert_array_equal(enc.codes[:, 0], [1, MISSING_CODE, 0, 1])
    np.testing.assert_array_equal(enc.codes[:, 1], [0, 1, MISSING_CODE, 0])


def test_one_dimensional_y_is_one_task():
    enc = encode_targets(np.array(["b", "a", "b"]))
    assert enc.is_single_task and enc.task_names == ["task0"]
    np.testing.assert_array_equal(enc.codes[:, 0], [1, 0, 1])
    enc = encode_targets(np.array([[0], [1]]))
    assert not enc.is_single_task


def test_given_classes_allow_absent_classes():
    enc = encode_targets(np.array([[0, 2], [0, 1]]), classes=[[0, 1], [0, 1, 2]])
    np.testing.assert_array_equal(enc.codes, [[0, 2], [0, 1]])
    enc = encode_targets(np.array([0, 0]), classes=[0, 1, 2])
    assert enc.is_single_task and len(enc.classes[0]) == 3
    with pytest.raises(ValueError, match=r"labels \[3\]"):
        encode_targets(np.array([[0, 3]]), classes=[[0, 1], [0, 1, 2]])
    with pytest.raises(ValueError, match="one array of labels per task"):
        encode_targets(np.array([[0, 1]]), classes=[[0, 1]])


@pytest.mark.parametrize(
    "Y, match",
    [
        (None, "requires y to be passed"),
        (np.array([[0, -1], [1, -1]]), "'task1'.*no labelled rows"),
        (np.array([[0, 1], [1, 1], [0, -1]]), "'task1'.*only one class"),
        (np.array([[0.5, 1], [1.25, 0]]), "Unknown label type.*'task0'.*continuous"),
        (np.zeros((2, 2, 2)), "1-D .* or 2-D"),
        (np.array([["a", 1], [2, "b"]], dtype=object), "mixes label types"),
    ],
)
def test_invalid_targets(Y, match):
    with pytest.raises((ValueError, TypeError), match=match):
        encode_targets(Y, -1)


def test_length_must_match_X():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        encode_targets(np.array([0, 1, 0]), n_samples=4)


def test_dataframe_task_name_in_errors():
    with pytest.raises(ValueError, match="'share'"):
        encode_targets(pd.DataFrame({"click": [0, 1], "share": [1, 1]}))
