"""Tests for sk_mmoe._tasks: the task types."""

import numpy as np
import pytest

from sk_mmoe._tasks import (
    TASK_TYPES,
    ClassificationTask,
    RegressionTask,
    infer_task_type,
    make_task,
    task_from_state,
)


def test_registry():
    expected = {
        "binary": ClassificationTask,
        "multiclass": ClassificationTask,
        "regression": RegressionTask,
    }
    assert expected == TASK_TYPES
    assert make_task("multiclass", "a").kind == "multiclass"
    assert ClassificationTask.loss == "cross_entropy"
    assert RegressionTask.loss == "regression"


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.array([0, 1, 1]), "binary"),
        (np.array([0, 1, 2]), "multiclass"),
        (np.array([0.0, 1.0, 2.0]), "multiclass"),  # whole floats are classes
        (np.array([0.5, 1.0]), "regression"),
        (np.array(["a", "b"]), "binary"),
        (np.array([True, False]), "binary"),
        (np.array(["a", "b", "c"], dtype=object), "multiclass"),
        (np.array([1, 2.5], dtype=object), "regression"),
    ],
)
def test_infer_task_type(values, expected):
    assert infer_task_type(values, "t") == expected


def test_infer_refuses_mixed_labels():
    with pytest.raises(TypeError, match="mixes label types"):
        infer_task_type(np.array(["a", 1], dtype=object), "t")


def test_classification_task():
    task = make_task("multiclass", "rating").fit(np.array(["b", "a", "c", "a"]))
    assert task.n_outputs == 3 and task.classes.tolist() == ["a", "b", "c"]
    encoded = task.encode(np.array(["c", "a"]))
    assert encoded.dtype == np.float32 and encoded.tolist() == [2.0, 0.0]
    outputs = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]])
    assert task.decode(outputs).tolist() == ["b", "a"]
    assert task.score(np.array(["b", "b"]), np.array(["b", "a"])) == 0.5
    assert task.score(
        np.array(["b", "b"]), np.array(["b", "a"]), sample_weight=[3, 1]
    ) == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"labels \['d'\] that are not in"):
        task.encode(np.array(["d"]))


@pytest.mark.parametrize(
    "kind, values, known, match",
    [
        ("binary", np.array([1, 1]), None, "only one class"),
        ("binary", np.array([0, 1, 2]), None, "declared 'binary' but has 3"),
        ("binary", np.array([0, 1]), [0, 1, 2], "declared 'binary' but has 3"),
        ("multiclass", np.array([0, 1]), [0], "at least 2 classes"),
        ("multiclass", np.array([0, 5]), [0, 1, 2], r"labels \[5\]"),
        ("binary", np.array([0.5, 1.5]), None, "Unknown label type"),
    ],
)
def test_classification_task_errors(kind, values, known, match):
    with pytest.raises(ValueError, match=match):
        make_task(kind, "t").fit(values, known)


def test_known_classes_allow_absent_ones():
    task = make_task("multiclass", "t").fit(np.array([0, 0]), [2, 1, 0])
    assert task.classes.tolist() == [0, 1, 2]
    assert task.encode(np.array([0, 0])).tolist() == [0.0, 0.0]


def test_regression_task_standardises():
    values = np.array([10.0, 20.0, 30.0, 40.0])
    task = make_task("regression", "watch").fit(values)
    assert task.n_outputs == 1
    assert task.mean == 25.0 and task.scale == pytest.approx(values.std())
    encoded = task.encode(values)
    assert encoded.dtype == np.float32
    np.testing.assert_allclose(encoded, (values - 25.0) / values.std(), rtol=1e-6)
    np.testing.assert_allclose(task.decode(encoded[:, None]), values, rtol=1e-6)
    assert task.decode(encoded[:, None]).dtype == np.float64
    assert task.score(values, values) == 1.0


def test_regression_task_weighted_standardisation():
    values = np.array([1.0, 2.0, 3.0, 100.0])
    weights = np.array([1.0, 1.0, 2.0, 0.0])
    task = make_task("regression", "t").fit(values, sample_weight=weights)
    assert task.mean == pytest.approx(np.average(values, weights=weights))
    kept = make_task("regression", "t").fit(np.array([1.0, 2.0, 3.0, 3.0]))
    assert task.mean == pytest.approx(kept.mean)
    assert task.scale == pytest.approx(kept.scale)
    # All-zero weights: the unweighted standardisation.
    task = make_task("regression", "t").fit(values, sample_weight=np.zeros(4))
    assert task.mean == values.mean()


def test_regression_task_edge_cases():
    task = make_task("regression", "t").fit(np.array([5.0, 5.0]))
    assert task.scale == 1.0 and task.mean == 5.0  # constant: keeps its units
    with pytest.raises(ValueError, match="infinite"):
        make_task("regression", "t").fit(np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="not all numbers"):
        make_task("regression", "t").fit(np.array(["a", "b"]))
    task = make_task("regression", "t").fit(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="too large"), np.errstate(over="ignore"):
        task.encode(np.array([1e300]))


@pytest.mark.parametrize(
    "task",
    [
        ClassificationTask("a", "binary", np.array([False, True])),
        ClassificationTask("b", "multiclass", np.array(["x", "y", "z"])),
        ClassificationTask("c", "binary", np.array([-3, 4], dtype=np.int32)),
        RegressionTask("d", mean=3.5, scale=0.25),
    ],
)
def test_state_round_trip(task):
    state = task.state()
    again = task_from_state(state)
    assert type(again) is type(task) and again.state() == state
    if isinstance(task, ClassificationTask):
        assert again.classes.dtype == task.classes.dtype
        np.testing.assert_array_equal(again.classes, task.classes)
        task.check_compatible(again)


def test_task_from_state_refuses_unknown_types():
    with pytest.raises(ValueError, match="unknown task type 'ordinal'"):
        task_from_state({"kind": "ordinal", "name": "t"})


def test_check_compatible():
    binary = ClassificationTask("t", "binary", np.array([0, 1]))
    regression = RegressionTask("t")
    with pytest.raises(ValueError, match="must keep its classes"):
        binary.check_compatible(ClassificationTask("t", "binary", np.array([1, 2])))
    with pytest.raises(ValueError, match="must keep its classes"):
        binary.check_compatible(regression)
    with pytest.raises(ValueError, match="must stay one"):
        regression.check_compatible(binary)
    regression.check_compatible(RegressionTask("t", mean=9.0))
