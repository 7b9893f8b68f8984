"""Property-based tests (hypothesis) of the estimators' contract.

For any input drawn here (label dtypes, missing patterns, shapes, parameter
values) a call either raises a clear scikit-learn-style error (``ValueError``
or ``TypeError`` whose message names the offending argument or task, never an
internal ``RuntimeError`` / ``IndexError`` / ``KeyError`` / ``AttributeError``)
or returns a finite, well-formed result; and a failed call never changes a
fitted model.

The models are tiny and the example counts small, so that the file runs in
well under a minute; ``derandomize=True`` makes every run draw the same
examples (reproducible CI).
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from skorch.callbacks import Callback

from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier, MultiTaskMMoERegressor

TINY = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(4,),
    tower_hidden_layer_sizes=(),
    max_epochs=1,
    batch_size=16,
    random_state=0,
)

ESTIMATORS = {
    "classifier": MultiTaskMMoEClassifier,
    "regressor": MultiTaskMMoERegressor,
    "mixed": MultiTaskMMoE,
}

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


# ----------------------------------------------------------------------
# Contract helpers
# ----------------------------------------------------------------------


def record(outcome: str) -> None:
    """Count an outcome in hypothesis' statistics (inside a given test only)."""
    with contextlib.suppress(InvalidArgument):  # a plain test, outside hypothesis
        event(outcome)


def clear_error(exc: BaseException, names=()) -> None:
    """Assert that ``exc`` is a scikit-learn-style error naming one of ``names``."""
    record(f"refused: {type(exc).__name__}")
    assert isinstance(exc, ValueError | TypeError), (
        f"expected a ValueError or TypeError, got {type(exc).__name__}: {exc}"
    )
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} without a message"
    if names:
        assert any(str(name) in message for name in names), (
            f"the error does not name any of {list(names)}: {message}"
        )


def attempt(call, *args, **kwargs):
    """``(result, None)`` or ``(None, exception)`` for an ordinary exception."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(*args, **kwargs), None
        except Exception as exc:  # noqa: BLE001 - judged by the caller
            return None, exc


def snapshot(model) -> dict:
    """Everything a fitted model's predictions and continued training depend on."""
    net = model.net_
    return {
        "ids": (id(model.net_), id(model.module_)),
        "module": {
            k: v.detach().clone() for k, v in model.module_.state_dict().items()
        },
        "criterion": copy.deepcopy(net.criterion_.state_dict()),
        "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
        "history": copy.deepcopy(list(net.history)),
        "attrs": {
            key: copy.deepcopy(value)
            for key, value in vars(model).items()
            if key.endswith("_")
            and not key.startswith("_")
            and key not in ("net_", "module_")
        },
        "private": {
            key: copy.deepcopy(value)
            for key, value in vars(model).items()
            if key in ("_single_task",)
        },
    }


def assert_same(a, b, path="model") -> None:
    """Recursive exact equality of snapshots (tensors, arrays, containers)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))
        ), f"{path} changed"
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, path
        assert a.shape == b.shape, path
        equal_nan = a.dtype.kind in "fc"
        assert np.array_equal(a, b, equal_nan=equal_nan), f"{path} changed"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{path} keys changed"
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), f"{path} changed"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{path} changed"
    else:
        assert a == b, f"{path} changed: {a!r} -> {b!r}"


def outputs(model, X) -> list:
    """Everything a fitted model returns for ``X`` (to compare before/after)."""
    out = [model.predict(X), model.gate_weights(X)]
    if hasattr(model, "predict_proba"):
        out.append(model.predict_proba(X))
    return out


def assert_outputs_same(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        if isinstance(x, list):
            for p, q in zip(x, y, strict=True):
                assert (p is None and q is None) or np.array_equal(p, q)
        else:
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f")


def assert_finite(result) -> None:
    """Every number in a prediction (array, or list of arrays / None) is finite."""
    if result is None:
        return
    if isinstance(result, list):
        for part in result:
            assert_finite(part)
        return
    result = np.asarray(result)
    if result.dtype.kind in "fc":
        assert np.isfinite(result).all(), result
    elif result.dtype == object:
        for value in result.ravel().tolist():
            if isinstance(value, float):
                assert math.isfinite(value), result


def as_list(values) -> list:
    return np.asarray(values, dtype=object).tolist()


def check_classification_column(pred, proba, classes, labelled, n) -> None:
    """One classification task's predictions, probabilities and classes."""
    expected = sorted(set(labelled))
    assert classes.tolist() == expected, (classes.tolist(), expected)
    assert proba.shape == (n, len(classes))
    assert proba.dtype == np.float64
    assert np.isfinite(proba).all() and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    allowed = set(classes.tolist())
    assert all(p in allowed for p in as_list(pred))
    # predict is the most probable class.
    assert as_list(pred) == classes[proba.argmax(axis=1)].tolist()


def check_fitted(model, X, columns, single) -> None:
    """A fitted model's predictions are finite and well-formed.

    ``columns``: per task, ``(kind, labelled python values)`` where kind is
    "classification" or "regression".
    """
    record("fitted")
    n, n_tasks = X.shape[0], len(columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = model.predict(X)
        proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
        gates = model.gate_weights(X)
    assert isinstance(pred, np.ndarray)
    assert pred.shape == ((n,) if single else (n, n_tasks))
    assert model.n_outputs_ == n_tasks == len(model.task_names_)
    assert model.n_features_in_ == X.shape[1]
    assert gates.shape[:2] == (n, n_tasks) and np.isfinite(gates).all()
    np.testing.assert_allclose(gates.sum(axis=2), 1.0, atol=1e-5)
    pred2 = pred.reshape(n, -1)
    classes = model.classes_ if hasattr(model, "classes_") else [None] * n_tasks
    if single:
        classes = classes if isinstance(classes, list) else [classes]
        proba = proba if isinstance(proba, list) else [proba]
    elif proba is None:
        proba = [None] * n_tasks
    assert len(proba) == n_tasks
    for k, (kind, labelled) in enumerate(columns):
        if kind == "regression":
            assert model.task_types_[k] == "regression"
            assert proba[k] is None and classes[k] is None
            values = np.asarray(pred2[:, k], dtype=np.float64)
            assert np.isfinite(values).all()
            mean = np.mean(np.asarray(labelled, dtype=np.float64))
            assert np.isclose(model.target_mean_[k], mean, rtol=1e-6, atol=1e-6)
        else:
            assert model.task_types_[k] in ("binary", "multiclass")
            if model.task_types_[k] == "binary":
                assert len(set(labelled)) <= 2
            check_classification_column(pred2[:, k], proba[k], classes[k], labelled, n)
    # Each task's labels keep their dtype; the matrix is an object array
    # when the tasks' dtypes differ.
    dtypes = {
        np.dtype(np.float64) if kind == "regression" else classes[k].dtype
        for k, (kind, _) in enumerate(columns)
    }
    assert pred.dtype == (dtypes.pop() if len(dtypes) == 1 else object)
    if model.n_iter_:
        losses = [epoch["train_loss"] for epoch in model.history_]
        assert np.isfinite(losses).all()


# ----------------------------------------------------------------------
# Strategies: X
# ----------------------------------------------------------------------


@st.composite
def features(draw, n_rows, allow_sparse=True):
    n_features = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    X = np.random.default_rng(seed).normal(size=(n_rows, n_features))
    X[np.abs(X) < 0.3] = 0.0
    if allow_sparse and draw(st.booleans()):
        return sp.csr_matrix(X)
    return X


# ----------------------------------------------------------------------
# Strategies: label columns of many dtypes and missing patterns
# ----------------------------------------------------------------------

# dtype kind -> pool of class labels (python values).
CLASS_POOLS = {
    "int": [0, 1, 2],
    "int_shifted": [3, 7, 11],
    "bool": [False, True],
    "str": ["a", "b", "c"],
    "float": [0.0, 1.0, 2.0],
    "Int64": [0, 1, 5],
    "string": ["x", "y", "z"],
    "category": ["lo", "mid", "hi"],
    "object": ["u", "v", "w"],
}
PANDAS_ONLY = {"Int64", "string", "category"}
MARKERS = [-1, "?", None, float("nan")]


def can_hold_marker(kind: str, marker) -> str | None:
    """How a column of ``kind`` writes a missing entry under ``marker``.

    Returns "nan", "none", "na", "marker" or None (the column cannot have a
    missing entry: bool, or ints/strings whose marker has another type).
    """
    if kind == "float":
        return "nan"
    if kind in ("object",):
        return "marker" if marker == "?" else "none"
    if kind in PANDAS_ONLY:
        return "na"
    if kind in ("int", "int_shifted") and isinstance(marker, int):
        return "marker"
    if kind == "str" and marker == "?":
        return "marker"
    return None


@st.composite
def missing_masks(draw, n_rows):
    pattern = draw(st.sampled_from(["none", "random", "all", "all_but_one"]))
    if pattern == "none":
        return np.zeros(n_rows, dtype=bool)
    if pattern == "all":
        return np.ones(n_rows, dtype=bool)
    if pattern == "all_but_one":
        mask = np.ones(n_rows, dtype=bool)
        mask[draw(st.integers(0, n_rows - 1))] = False
        return mask
    return np.array(draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows)))


def build_column(kind, codes, missing, marker, pool):
    """A column of ``kind`` holding ``pool[codes]``, missing where ``missing``.

    Returns ``(column, labelled python values)``; the column is a numpy array
    or, for pandas dtypes, a pandas Series.
    """
    how = can_hold_marker(kind, marker)
    if how is None:
        missing = np.zeros_like(missing)
    values = [pool[c] for c in codes]
    labelled = [v for v, m in zip(values, missing, strict=True) if not m]
    if kind in ("int", "int_shifted"):
        column = np.array(
            [marker if m else v for v, m in zip(values, missing, strict=True)]
        )
        column = column.astype(np.int64)
    elif kind == "bool":
        column = np.array(values, dtype=bool)
    elif kind == "str":
        column = np.array(
            [marker if m else v for v, m in zip(values, missing, strict=True)]
        )
        column = column.astype(str)
    elif kind == "float":
        column = np.array(
            [np.nan if m else v for v, m in zip(values, missing, strict=True)],
            dtype=np.float64,
        )
    elif kind == "object":
        fill = "?" if how == "marker" else None
        column = np.array(
            [fill if m else v for v, m in zip(values, missing, strict=True)],
            dtype=object,
        )
    elif kind == "Int64":
        column = pd.Series(
            [pd.NA if m else v for v, m in zip(values, missing, strict=True)],
            dtype="Int64",
        )
    elif kind == "string":
        column = pd.Series(
            [pd.NA if m else v for v, m in zip(values, missing, strict=True)],
            dtype="string",
        )
    else:  # category
        column = pd.Series(
            [None if m else v for v, m in zip(values, missing, strict=True)],
            dtype="category",
        )
    return column, labelled


def assemble(columns, container, names):
    """``Y`` from per-task columns: 1-D, a numpy matrix or a DataFrame."""
    if container == "1d":
        (column,) = columns
        return column
    if container == "series":
        (column,) = columns
        return column if isinstance(column, pd.Series) else pd.Series(column)
    if container == "frame":
        return pd.DataFrame(dict(zip(names, columns, strict=True)))
    arrays = [np.asarray(c) for c in columns]
    if len({a.dtype for a in arrays}) == 1:
        return np.column_stack(arrays)
    Y = np.empty((len(arrays[0]), len(arrays)), dtype=object)
    for k, a in enumerate(arrays):
        Y[:, k] = a.tolist()
    return Y


@st.composite
def classification_targets(draw, n_rows):
    """``(Y, missing_label, columns, single, names)`` for a classifier."""
    single = draw(st.booleans())
    n_tasks = 1 if single else draw(st.integers(1, 4))
    marker = draw(st.sampled_from(MARKERS))
    use_pandas = draw(st.booleans())
    kinds = [
        draw(
            st.sampled_from(
                sorted(CLASS_POOLS)
                if use_pandas
                else sorted(set(CLASS_POOLS) - PANDAS_ONLY)
            )
        )
        for _ in range(n_tasks)
    ]
    columns, described = [], []
    for kind in kinds:
        pool = CLASS_POOLS[kind]
        codes = draw(
            st.lists(st.integers(0, len(pool) - 1), min_size=n_rows, max_size=n_rows)
        )
        column, labelled = build_column(
            kind, codes, draw(missing_masks(n_rows)), marker, pool
        )
        columns.append(column)
        described.append(("classification", labelled))
    names = draw(
        st.sampled_from(
            [
                [f"t{k}" for k in range(n_tasks)],
                list(range(n_tasks)),
                [f"task {k}!" for k in range(n_tasks)],
            ]
        )
    )
    if single:
        container = "series" if use_pandas else "1d"
    else:
        container = "frame" if use_pandas else "numpy"
    Y = assemble(columns, container, names)
    task_names = (
        [str(n) for n in names]
        if container == "frame"
        else [f"task{k}" for k in range(n_tasks)]
    )
    return Y, marker, described, single, task_names


def expected_classification_error(described, task_names):
    """The task names a fit must refuse (fewer than 2 labelled classes)."""
    return [
        name
        for (kind, labelled), name in zip(described, task_names, strict=True)
        if kind == "classification" and len(set(labelled)) < 2
    ] + [
        name
        for (kind, labelled), name in zip(described, task_names, strict=True)
        if kind == "regression" and not labelled
    ]


# ----------------------------------------------------------------------
# Label dtypes, missing patterns and shapes: classifier
# ----------------------------------------------------------------------


@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_classifier_labels_missing_and_shapes(data):
    n_rows = data.draw(st.integers(1, 40), label="n_rows")
    X = data.draw(features(n_rows), label="X")
    Y, marker, described, single, names = data.draw(
        classification_targets(n_rows), label="Y"
    )
    model = MultiTaskMMoEClassifier(missing_label=marker, **TINY)
    fitted, exc = attempt(model.fit, X, Y)
    bad = expected_classification_error(described, names)
    if bad:
        assert exc is not None, f"tasks {bad} have < 2 classes but fit succeeded"
        clear_error(exc, bad)
        assert not hasattr(model, "net_")
        return
    assert exc is None, f"valid data refused: {type(exc).__name__}: {exc}"
    assert model.task_names_ == names
    check_fitted(model, X, described, single)
    score = model.score(X, Y)
    assert 0.0 <= score <= 1.0


# ----------------------------------------------------------------------
# Regressor: numeric dtypes, markers, magnitudes
# ----------------------------------------------------------------------

REGRESSION_KINDS = ["float", "int", "Float64", "Int64", "object", "float32"]


@st.composite
def regression_targets(draw, n_rows):
    single = draw(st.booleans())
    n_tasks = 1 if single else draw(st.integers(1, 4))
    marker = draw(st.sampled_from([None, float("nan"), -1.0, -999]))
    use_pandas = draw(st.booleans())
    scale = draw(st.sampled_from([1.0, 1e-6, 1e6, 1e15]))
    columns, described = [], []
    for _ in range(n_tasks):
        kind = draw(
            st.sampled_from(
                REGRESSION_KINDS
                if use_pandas
                else ["float", "int", "object", "float32"]
            )
        )
        seed = draw(st.integers(0, 2**16))
        rng = np.random.default_rng(seed)
        if kind in ("int", "Int64"):
            values = rng.integers(0, 50, size=n_rows).astype(np.float64)
        else:
            values = rng.normal(10.0, 3.0, size=n_rows) * scale
        if kind == "float32":
            values = values.astype(np.float32).astype(np.float64)
        missing = draw(missing_masks(n_rows))
        # How the column writes a missing entry.
        if kind == "int" and marker == -999:
            column = np.where(missing, -999, values).astype(np.int64)
        elif kind == "int":
            missing = np.zeros_like(missing)
            column = values.astype(np.int64)
        elif kind in ("float", "float32"):
            fill = marker if marker in (-1.0, -999) else np.nan
            column = np.where(missing, fill, values)
            column = column.astype(np.float32 if kind == "float32" else np.float64)
            if marker in (-1.0, -999):
                # A labelled value equal to the marker would be missing too.
                missing = missing | (column == marker)
        elif kind == "object":
            column = np.array(
                [None if m else float(v) for v, m in zip(values, missing, strict=True)],
                dtype=object,
            )
        elif kind == "Float64":
            column = pd.Series(
                [
                    pd.NA if m else float(v)
                    for v, m in zip(values, missing, strict=True)
                ],
                dtype="Float64",
            )
        else:  # Int64
            column = pd.Series(
                [pd.NA if m else int(v) for v, m in zip(values, missing, strict=True)],
                dtype="Int64",
            )
        labelled = [
            float(v)
            for v, m in zip(
                np.asarray(column, dtype=object).tolist(), missing, strict=True
            )
            if not m
        ]
        columns.append(column)
        described.append(("regression", labelled))
    names = [f"r{k}" for k in range(n_tasks)]
    if single:
        container = "series" if use_pandas else "1d"
    else:
        container = "frame" if use_pandas else "numpy"
    Y = assemble(columns, container, names)
    task_names = names if container == "frame" else [f"task{k}" for k in range(n_tasks)]
    return Y, marker, described, single, task_names


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_regressor_dtypes_missing_and_shapes(data):
    n_rows = data.draw(st.integers(1, 40), label="n_rows")
    X = data.draw(features(n_rows), label="X")
    Y, marker, described, single, names = data.draw(
        regression_targets(n_rows), label="Y"
    )
    model = MultiTaskMMoERegressor(missing_target=marker, **TINY)
    _, exc = attempt(model.fit, X, Y)
    bad = expected_classification_error(described, names)
    if bad:
        assert exc is not None, f"tasks {bad} have no target but fit succeeded"
        clear_error(exc, bad)
        assert not hasattr(model, "net_")
        return
    assert exc is None, f"valid data refused: {type(exc).__name__}: {exc}"
    assert model.task_names_ == names
    check_fitted(model, X, described, single)
    for k, (_, labelled) in enumerate(described):
        std = np.std(np.asarray(labelled, dtype=np.float64))
        expected = std if std > 0 else 1.0
        assert np.isclose(model.target_scale_[k], expected, rtol=1e-6)
    with warnings.catch_warnings():
        # R^2 of a task with a single labelled row is undefined (NaN).
        warnings.simplefilter("ignore")
        score = model.score(X, Y)
    if all(len(labelled) >= 2 for _, labelled in described):
        assert np.isfinite(score) or score == -np.inf
        assert score <= 1.0


# ----------------------------------------------------------------------
# Mixed task types
# ----------------------------------------------------------------------


@st.composite
def mixed_targets(draw, n_rows):
    n_tasks = draw(st.integers(1, 4))
    columns, described, declared = [], [], []
    for _ in range(n_tasks):
        kind = draw(st.sampled_from(["regression", "int", "str", "bool", "Int64"]))
        missing = draw(missing_masks(n_rows))
        if kind == "regression":
            seed = draw(st.integers(0, 2**16))
            values = np.random.default_rng(seed).normal(5.0, 2.0, size=n_rows)
            # Whole numbers would be inferred as classes.
            values = np.round(values, 3) + 0.0005
            column = np.where(missing, np.nan, values)
            labelled = values[~missing].tolist()
            declared.append("regression")
        else:
            pool = CLASS_POOLS[kind]
            codes = draw(
                st.lists(
                    st.integers(0, len(pool) - 1), min_size=n_rows, max_size=n_rows
                )
            )
            values = [pool[c] for c in codes]
            if kind == "bool":
                missing = np.zeros_like(missing)
            column = pd.Series(
                [None if m else v for v, m in zip(values, missing, strict=True)],
                dtype="Int64" if kind == "Int64" else object,
            )
            if kind == "bool":
                column = column.astype(bool)
            labelled = [v for v, m in zip(values, missing, strict=True) if not m]
            declared.append("multiclass" if len(pool) > 2 else "binary")
        columns.append(column)
        described.append(
            ("regression" if kind == "regression" else "classification", labelled)
        )
    names = [f"m{k}" for k in range(n_tasks)]
    Y = pd.DataFrame(dict(zip(names, columns, strict=True)))
    return Y, described, declared, names


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_mixed_types_missing_and_shapes(data):
    n_rows = data.draw(st.integers(1, 40), label="n_rows")
    X = data.draw(features(n_rows), label="X")
    Y, described, declared, names = data.draw(mixed_targets(n_rows), label="Y")
    how = data.draw(st.sampled_from(["auto", "list", "dict"]), label="task_types")
    if how == "auto":
        task_types = "auto"
    elif how == "list":
        task_types = ["multiclass" if d != "regression" else d for d in declared]
    else:
        task_types = {
            n: d for n, d in zip(names, declared, strict=True) if d == "regression"
        }
    model = MultiTaskMMoE(task_types=task_types, **TINY)
    _, exc = attempt(model.fit, X, Y)
    bad = expected_classification_error(described, names)
    if bad:
        assert exc is not None, f"tasks {bad} cannot be learned but fit succeeded"
        clear_error(exc, bad)
        assert not hasattr(model, "net_")
        return
    assert exc is None, f"valid data refused: {type(exc).__name__}: {exc}"
    check_fitted(model, X, described, single=False)
    pred = model.predict(X)
    kinds = {type(model.classes_[k]) for k in range(len(names))}
    if len(kinds) > 1:
        assert pred.dtype == object
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = model.score(X, Y)
    if all(len(labelled) >= 2 for _, labelled in described):
        assert score <= 1.0


# ----------------------------------------------------------------------
# Invalid label patterns: always refused with the task named
# ----------------------------------------------------------------------


@settings(max_examples=30, **SETTINGS)
@given(
    n_rows=st.integers(4, 30),
    case=st.sampled_from(
        [
            "mixed_types",
            "marker_lookalike_str",
            "marker_lookalike_int",
            "continuous",
            "inf_target",
            "duplicate_names",
            "nd_target",
            "sparse_target",
            "wrong_length",
            "no_columns",
        ]
    ),
    estimator=st.sampled_from(sorted(ESTIMATORS)),
    task=st.integers(0, 2),
)
def test_invalid_targets_are_refused_clearly(n_rows, case, estimator, task):
    rng = np.random.default_rng(n_rows)
    X = rng.normal(size=(n_rows, 3))
    good = [rng.integers(0, 2, n_rows) for _ in range(3)]
    for column in good:
        column[:2] = [0, 1]
    columns = [c.astype(object) for c in good]
    names = [f"task{k}" for k in range(3)]
    params = dict(TINY)
    if estimator != "regressor":
        params["missing_label"] = -1
    if case == "mixed_types":
        columns[task][0] = "a"
        expected = (TypeError, ValueError)
    elif case == "marker_lookalike_str":
        columns[task] = np.where(good[task] == 0, "-1", "b").astype(object)
        expected = ValueError
        if estimator == "regressor":
            return
    elif case == "marker_lookalike_int":
        params["missing_label" if estimator != "regressor" else "missing_target"] = "-1"
        columns[task] = np.where(good[task] == 0, -1, 3).astype(object)
        expected = ValueError
        if estimator == "regressor":
            return  # missing_target must be a number (a parameter error)
    elif case == "continuous":
        if estimator != "classifier":
            return
        columns[task] = rng.normal(size=n_rows).astype(object)
        expected = ValueError
    elif case == "inf_target":
        if estimator == "classifier":
            return
        columns = [c.astype(np.float64) + 0.5 for c in good]
        columns[task][1] = np.inf
        expected = ValueError
    Y = pd.DataFrame(dict(zip(names, columns, strict=True)))
    if case == "duplicate_names":
        Y.columns = ["a", "b", "a"]
        names = ["a"]
        task = 0
    elif case == "nd_target":
        Y = np.zeros((n_rows, 2, 2))
        names = ["y"]
    elif case == "sparse_target":
        Y = sp.csr_matrix(np.column_stack(good))
        names = ["y"]
    elif case == "wrong_length":
        Y = Y.iloc[:-1]
        names = ["y", "sample"]
    elif case == "no_columns":
        Y = np.zeros((n_rows, 0))
        names = ["y"]
    if case in ("duplicate_names", "nd_target", "wrong_length", "no_columns"):
        expected = ValueError
    if case == "sparse_target":
        expected = (TypeError, ValueError)
    model = ESTIMATORS[estimator](**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(expected) as info:
            model.fit(X, Y)
    named = [names[task]] if len(names) > task else names
    if case == "inf_target" and estimator == "mixed":
        # task_types="auto" infers the type first, with scikit-learn's
        # "Input Y contains infinity" (names y, not the task).
        named = [*named, "Y"]
    clear_error(info.value, named)
    assert not hasattr(model, "net_")


# ----------------------------------------------------------------------
# Invariances: the encoding of the same data does not change the model
# ----------------------------------------------------------------------


@settings(max_examples=25, **SETTINGS)
@given(
    n_rows=st.integers(6, 40),
    seed=st.integers(0, 2**16),
    n_classes=st.integers(2, 3),
    data=st.data(),
)
def test_missing_marker_encoding_does_not_change_the_model(
    n_rows, seed, n_classes, data
):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 3))
    codes = rng.integers(0, n_classes, size=n_rows)
    codes[:n_classes] = np.arange(n_classes)
    missing = np.array(
        data.draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows))
    )
    missing[:n_classes] = False
    ints = np.array([3, 5, 8])[codes]
    strs = np.array(["a", "b", "c"])[codes]
    encodings = {
        "int -1": (np.where(missing, -1, ints), -1),
        "float NaN": (np.where(missing, np.nan, ints.astype(float)), -1),
        "float NaN marker NaN": (np.where(missing, np.nan, ints.astype(float)), np.nan),
        "Int64 NA": (pd.Series(np.where(missing, None, ints), dtype="Int64"), -1),
        "object None": (np.where(missing, None, ints.astype(object)), None),
        "str ?": (np.where(missing, "?", strs), "?"),
        "object str None": (np.where(missing, None, strs.astype(object)), "?"),
        "string NA": (pd.Series(np.where(missing, None, strs), dtype="string"), None),
        "category": (pd.Series(np.where(missing, None, strs), dtype="category"), -1),
    }
    reference = None
    for name, (y, marker) in encodings.items():
        model = MultiTaskMMoEClassifier(missing_label=marker, **TINY).fit(X, y)
        proba = model.predict_proba(X)
        assert proba.shape == (n_rows, n_classes), name
        assert len(model.classes_) == n_classes, name
        if reference is None:
            reference = proba
        else:
            np.testing.assert_array_equal(proba, reference, err_msg=name)


@settings(max_examples=20, **SETTINGS)
@given(
    n_rows=st.integers(2, 40),
    n_features=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    estimator=st.sampled_from(sorted(ESTIMATORS)),
)
def test_sparse_dense_and_1d_2d_agree(n_rows, n_features, seed, estimator):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    X[np.abs(X) < 0.5] = 0.0
    y = rng.integers(0, 2, size=n_rows)
    y[:2] = [0, 1]
    if estimator == "regressor":
        y = y + rng.normal(size=n_rows)
    cls = ESTIMATORS[estimator]
    # Sparse inputs are scaled and embedded as their dense copies.
    dense_model = cls(**TINY).fit(X, y)
    sparse_model = cls(**TINY).fit(sp.csr_matrix(X), y)
    column_model = cls(**TINY).fit(X, y.reshape(-1, 1))
    expected = dense_model.predict(X)
    assert expected.shape == (n_rows,)
    got_sparse = sparse_model.predict(sp.csr_matrix(X))
    got_column = column_model.predict(X)
    assert got_column.shape == (n_rows, 1)
    if estimator == "regressor":
        np.testing.assert_allclose(got_sparse, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_column[:, 0], expected, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got_column[:, 0].astype(expected.dtype), expected)
        if estimator == "classifier":
            np.testing.assert_allclose(
                sparse_model.predict_proba(X),
                dense_model.predict_proba(X),
                atol=1e-5,
            )


# ----------------------------------------------------------------------
# Parameter values, valid and invalid
# ----------------------------------------------------------------------

OK, ERROR, EITHER = "ok", "error", "either"


class Marker(Callback):
    """A do-nothing skorch callback."""


# Each entry: (value, OK | ERROR | EITHER). Kept compact, one row per idea.
# fmt: off
COMMON_PARAMS = {
    "n_experts": [
        (1, OK), (3, OK), (np.int64(2), OK), (64, OK),
        (0, ERROR), (-1, ERROR), (True, ERROR), (False, ERROR), (2.0, ERROR),
        (2.5, ERROR), ("2", ERROR), (None, ERROR),
    ],
    "expert_hidden_layer_sizes": [
        ((4,), OK), ([3, 2], OK), (np.array([3]), OK), ((2000,), OK),
        (4, ERROR), ((), ERROR), ((0,), ERROR), ((-1,), ERROR), ((2.5,), ERROR),
        ((True,), ERROR), (("a",), ERROR), ("abc", ERROR), (None, ERROR),
        ((4, None), ERROR), ([[4]], EITHER),
    ],
    "tower_hidden_layer_sizes": [
        ((), OK), ((3,), OK), ([2, 2], OK),
        ((0,), ERROR), ((-2,), ERROR), ((1.5,), ERROR), ((False,), ERROR),
        (None, ERROR),
    ],
    "n_task_experts": [
        (0, OK), (1, OK), (-1, ERROR), (True, ERROR), (1.0, ERROR), ("1", ERROR),
    ],
    "n_levels": [
        (1, OK), (2, OK), (0, ERROR), (True, ERROR), (1.5, ERROR), (-3, ERROR),
    ],
    "shared_gate": [
        (False, OK), (True, OK), (np.bool_(True), OK), (1, ERROR), ("yes", ERROR),
        (None, ERROR),
    ],
    "gate_dropout": [
        (0.0, OK), (0.5, OK), (1.0, ERROR), (-0.1, ERROR), (float("nan"), ERROR),
        ("0.1", ERROR), (True, ERROR),
    ],
    "dropout": [
        (0.0, OK), (0.3, OK), (1.0, ERROR), (1.5, ERROR), (-1, ERROR),
        (float("nan"), ERROR), (None, ERROR),
    ],
    "gate": [("softmax", OK), ("dselect_k", OK), ("top_k", ERROR), (None, ERROR)],
    "gate_k": [(1, OK), (3, OK), (0, ERROR), (True, ERROR), (2.0, ERROR)],
    "gate_temperature": [
        (0.5, OK), (2.0, OK), (0, ERROR), (-1.0, ERROR), (float("nan"), ERROR),
        ("1", ERROR),
    ],
    "gate_balance": [
        (0.0, OK), (0.1, OK), (-0.1, ERROR), (float("nan"), ERROR), (None, ERROR),
    ],
    "expert_activation": [("relu", OK), ("silu", OK), ("tanh", ERROR), (None, ERROR)],
    "expert_normalization": [
        (None, OK), ("layer", OK), ("batch", ERROR), (True, ERROR),
    ],
    "ensemble_size": [(1, OK), (3, OK), (0, ERROR), (True, ERROR), (2.5, ERROR)],
    "task_weights": [
        (None, OK), ([1.0, 2.0], OK), ([0, 1], OK), ({"task0": 2.0}, OK),
        ("uncertainty", OK), (np.array([1, 1]), OK),
        ([1.0], ERROR), ([1, 1, 1], ERROR), ([-1, 1], ERROR), ([0, 0], ERROR),
        ([float("nan"), 1], ERROR), ([float("inf"), 1], ERROR),
        ({"nope": 1.0}, ERROR), ("bogus", ERROR), (["a", "b"], ERROR),
        ({"task0": -1.0}, ERROR), (3, ERROR),
    ],
    "optimizer": [
        ("adam", OK), ("sgd", OK), ("adagrad", OK), (torch.optim.SGD, OK),
        ("nope", ERROR), (3, ERROR), (dict, ERROR), (None, ERROR),
    ],
    "lr": [
        (1e-3, OK), (0.1, OK), (0, ERROR), (-1e-3, ERROR), (float("nan"), ERROR),
        (float("inf"), ERROR), ("fast", ERROR), (None, ERROR), (1e6, EITHER),
    ],
    "weight_decay": [
        (0.0, OK), (0.1, OK), (-0.1, ERROR), (float("nan"), ERROR), ("x", ERROR),
    ],
    "batch_size": [
        (1, OK), (16, OK), (10**9, OK), (0, ERROR), (-16, ERROR), (True, ERROR),
        (16.0, ERROR), ("16", ERROR), (None, ERROR),
    ],
    "max_epochs": [
        (1, OK), (2, OK), ("auto", OK), (0, ERROR), (-1, ERROR), (True, ERROR),
        (1.0, ERROR), (None, ERROR), ("50", ERROR),
    ],
    "lr_schedule": [
        ("auto", OK), ("cosine", OK), (None, OK), ("linear", ERROR), (True, ERROR),
    ],
    "early_stopping": [(False, OK), (True, OK), ("yes", ERROR), (1, ERROR)],
    "validation_fraction": [
        (0.1, OK), (0.5, OK), (0, ERROR), (1, ERROR), (1.5, ERROR), (-0.2, ERROR),
        (float("nan"), ERROR), ("0.1", ERROR),
    ],
    "n_iter_no_change": [
        (1, OK), (10**9, OK), (0, ERROR), (True, ERROR), (2.0, ERROR),
    ],
    "tol": [(0.0, OK), (1e-4, OK), (-1.0, ERROR), (float("nan"), ERROR), ("x", ERROR)],
    "refit": [(False, OK), (True, OK), ("yes", ERROR), (1, ERROR)],
    "warm_start": [(False, OK), (True, OK), ("no", ERROR), (0, ERROR)],
    "callbacks": [
        (None, OK), ([], OK), ([Marker()], OK), ([("mark", Marker())], OK),
        ([Marker], OK),
        (["x"], ERROR), ([object()], ERROR), ([(1, Marker())], ERROR),
        ("x", ERROR), ([("a", "b")], ERROR), ([None], ERROR),
    ],
    "device": [
        ("cpu", OK), (torch.device("cpu"), OK), ("nope", ERROR), ("meta", ERROR),
        ("cuda:99", ERROR), (3, ERROR), (None, ERROR), ("mps", EITHER),
    ],
    "random_state": [
        (0, OK), (None, OK), (np.random.RandomState(1), OK), (2**32 - 1, OK),
        (-1, ERROR), (2**40, ERROR), ("x", ERROR), (1.5, ERROR),
    ],
    "verbose": [(0, OK), (False, OK), (-1, ERROR), ("loud", ERROR)],
}

CLASS_WEIGHT = [
    (None, OK), ("balanced", OK), ([None, "balanced"], OK),
    ([{0: 1.0, 1: 2.0}, None], OK), ([{1: 0.0}, None], OK),
    ({0: 1.0}, ERROR), ([{5: 1.0}, None], ERROR), ([{0: 0, 1: 0}, None], ERROR),
    ([{0: -1.0}, None], ERROR), ([None], ERROR), (["bogus", None], ERROR),
    ("bogus", ERROR), ([{0: float("nan")}, None], ERROR), (3, ERROR),
]

PARAMS = {
    "classifier": {
        **COMMON_PARAMS,
        "class_weight": CLASS_WEIGHT,
        "missing_label": [
            (-1, OK), ("?", OK), (None, OK), (float("nan"), OK), (-99.5, OK),
            ([1], ERROR), ({}, ERROR),
        ],
    },
    "regressor": {
        **COMMON_PARAMS,
        "loss": [
            ("squared_error", OK), ("huber", OK), ("absolute_error", ERROR),
            (None, ERROR), ("HUBER", ERROR),
        ],
        "missing_target": [
            (None, OK), (float("nan"), OK), (-1.0, OK), (-999, OK),
            ("?", ERROR), ([1.0], ERROR),
        ],
    },
    "mixed": {
        **COMMON_PARAMS,
        "class_weight": [
            (None, OK), ("balanced", OK), ({0: 2.0}, OK),
            ([{0: 1.0, 1: 2.0}, None], OK),
            ([None, {0: 1.0}], ERROR), ([None, "balanced"], ERROR),
            ({9: 1.0}, ERROR), ([{0: 0.0, 1: 0.0}, None], ERROR), ("x", ERROR),
        ],
        "loss": [("squared_error", OK), ("huber", OK), ("l1", ERROR)],
        "missing_label": [(None, OK), (-1, OK), ("?", OK), ([None], ERROR)],
        "task_types": [
            ("auto", OK), (["binary", "regression"], OK),
            (("multiclass", "regression"), OK), ({"task1": "regression"}, OK),
            (["regression", "regression"], OK), ({"task0": "auto"}, OK),
            (["binary"], ERROR), (["nope", "regression"], ERROR),
            ({"nope": "binary"}, ERROR), ("binary", ERROR), (None, ERROR),
            (["binary", "binary"], ERROR),
        ],
    },
}
# fmt: on

# Errors that name a task rather than the parameter.
ERROR_NAMES = {
    ("mixed", "task_types", "['binary', 'binary']"): ["task1", "task_types"],
    ("mixed", "class_weight", "[None, {0: 1.0}]"): ["task1", "class_weight"],
    ("mixed", "class_weight", "[None, 'balanced']"): ["task1", "class_weight"],
}


def parameter_dataset(estimator: str, n_rows: int = 24):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, 3))
    a = rng.integers(0, 2, n_rows)
    b = rng.integers(0, 2, n_rows)
    a[:2] = b[:2] = [0, 1]
    if estimator == "classifier":
        return (
            X,
            np.column_stack([a, b]),
            [
                ("classification", a.tolist()),
                ("classification", b.tolist()),
            ],
        )
    reg = rng.normal(size=n_rows)
    if estimator == "regressor":
        return (
            X,
            np.column_stack([a + reg, reg]),
            [
                ("regression", (a + reg).tolist()),
                ("regression", reg.tolist()),
            ],
        )
    return (
        X,
        np.column_stack([a, reg]),
        [
            ("classification", a.tolist()),
            ("regression", reg.tolist()),
        ],
    )


@st.composite
def parameter_sets(draw, estimator):
    table = PARAMS[estimator]
    names = draw(st.permutations(sorted(table)))[: draw(st.integers(1, 3))]
    chosen = {}
    for name in names:
        value, expectation = draw(st.sampled_from(table[name]))
        chosen[name] = (value, expectation)
    return chosen


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_parameter_values(estimator, data):
    chosen = data.draw(parameter_sets(estimator), label="params")
    X, Y, described = parameter_dataset(estimator)
    params = {**TINY, **{name: value for name, (value, _) in chosen.items()}}
    invalid = [name for name, (_, e) in chosen.items() if e == ERROR]
    unsure = [name for name, (_, e) in chosen.items() if e == EITHER]
    shared = params.get("shared_gate")
    n_task_experts = params.get("n_task_experts", 0)
    if (
        shared is not None
        and bool(shared) is True
        and isinstance(shared, bool | np.bool_)
        and isinstance(n_task_experts, int)
        and not isinstance(n_task_experts, bool)
        and n_task_experts > 0
    ):
        invalid += ["shared_gate"]
    if params.get("device") == "mps" or "lr" in unsure:
        unsure = unsure or ["device"]
    model = ESTIMATORS[estimator](**params)
    before = {k: v for k, v in model.get_params().items()}
    _, exc = attempt(model.fit, X, Y)
    # fit never changes the parameters.
    for key, value in model.get_params().items():
        assert value is before[key], f"fit changed the parameter {key}"
    if exc is not None:
        names = set(invalid) | set(unsure)
        for name in list(names):
            value = chosen.get(name, (None,))[0]
            names |= set(ERROR_NAMES.get((estimator, name, repr(value)), []))
        if "shared_gate" in names:
            names.add("n_task_experts")
        assert invalid or unsure, (
            f"valid parameters {params} refused: {type(exc).__name__}: {exc}"
        )
        clear_error(exc, sorted(names))
        assert not hasattr(model, "net_")
        return
    assert not invalid, f"invalid {invalid} accepted: {chosen}"
    if described[0][0] != "regression" and model.task_types_[0] == "regression":
        # task_types declared the first column a regression task.
        described = [("regression", described[0][1]), *described[1:]]
    if unsure:
        _, exc = attempt(model.predict, X)
        if exc is not None:
            clear_error(exc)
            return
    check_fitted(model, X, described, single=False)


# ----------------------------------------------------------------------
# A failed call never changes a fitted model
# ----------------------------------------------------------------------


class SigInt(Callback):
    """Send this process SIGINT (a real Ctrl-C) at the end of batch ``at``."""

    def __init__(self, at=0):
        self.at = at

    def initialize(self):
        self.seen_ = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.seen_ += 1
        if self.seen_ > self.at:
            signal.raise_signal(signal.SIGINT)


class Interrupt(Callback):
    """Raise ``exc`` at the end of batch number ``at``."""

    def __init__(self, exc=KeyboardInterrupt, at=0):
        self.exc = exc
        self.at = at

    def initialize(self):
        self.seen_ = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.seen_ += 1
        if self.seen_ > self.at:
            raise self.exc("interrupted by the test")


def base_data(estimator, n_rows=20, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 3))
    a = rng.integers(0, 3, n_rows)
    b = rng.integers(0, 2, n_rows)
    a[:3] = [0, 1, 2]
    b[:2] = [0, 1]
    if estimator == "classifier":
        Y = np.column_stack([a, b])
    elif estimator == "regressor":
        Y = np.column_stack([a + rng.normal(size=n_rows), rng.normal(size=n_rows)])
    else:
        Y = np.column_stack([a, rng.normal(size=n_rows)])
    return X, Y


def bad_calls(estimator):
    """name -> (call(model, X, Y), expected exception types, names)."""
    classification = estimator != "regressor"
    calls = {}

    def add(name, call, expected=(ValueError, TypeError), names=()):
        calls[name] = (call, expected, names)

    def refit(**params):
        def call(m, X, Y):
            m.set_params(**params)
            return m.fit(X, Y)

        return call

    def warm(**params):
        return refit(warm_start=True, **params)

    # Missing values (NaN) are learned from by default: infinity is bad X.
    add(
        "fit X some inf",
        lambda m, X, Y: m.fit(np.where(X > 1, -np.inf, X), Y),
        names=["X"],
    )
    add("fit X inf", lambda m, X, Y: m.fit(np.full_like(X, np.inf), Y), names=["X"])
    add("fit X 3d", lambda m, X, Y: m.fit(X[:, :, None], Y))
    add("fit X empty", lambda m, X, Y: m.fit(X[:0], Y[:0]))
    add("fit wrong rows", lambda m, X, Y: m.fit(X[:5], Y), names=["samples"])
    add(
        "fit all missing",
        lambda m, X, Y: m.fit(X, np.column_stack([Y[:, 0], np.full(len(X), np.nan)])),
        names=["task1"],
    )
    add("fit y None", lambda m, X, Y: m.fit(X, None), names=["y"])
    add(
        "fit sample_weight negative",
        lambda m, X, Y: m.fit(X, Y, sample_weight=-np.ones(len(X))),
        names=["sample_weight"],
    )
    add(
        "fit sample_weight shape",
        lambda m, X, Y: m.fit(X, Y, sample_weight=np.ones(len(X) + 1)),
        names=["sample_weight"],
    )
    add(
        "fit sample_weight zeros",
        lambda m, X, Y: m.fit(X, Y, sample_weight=np.zeros(len(X))),
        names=["sample_weight"],
    )
    add(
        "fit sample_weight nan",
        lambda m, X, Y: m.fit(X, Y, sample_weight=np.full(len(X), np.nan)),
        names=["sample_weight"],
    )
    add("fit n_experts 0", refit(n_experts=0), names=["n_experts"])
    add("fit lr negative", refit(lr=-1.0), names=["lr"])
    add("fit bad device", refit(device="nope"), names=["device"])
    add("fit bad callbacks", refit(callbacks=["x"]), names=["callbacks"])
    add("fit bad task_weights", refit(task_weights=[1.0]), names=["task_weights"])
    add("warm n_experts", warm(n_experts=3), names=["architecture"])
    add("warm hidden", warm(expert_hidden_layer_sizes=(5,)), names=["architecture"])
    add(
        "warm n_features",
        lambda m, X, Y: m.set_params(warm_start=True).fit(X[:, :2], Y),
        names=["features"],
    )
    add(
        "warm n_tasks",
        lambda m, X, Y: m.set_params(warm_start=True).fit(X, Y[:, :1]),
        names=["task"],
    )
    add(
        "warm uncertainty",
        warm(task_weights="uncertainty"),
        names=["task_weights"],
    )
    add(
        "partial n_features",
        lambda m, X, Y: m.partial_fit(np.hstack([X, X]), Y),
        names=["features"],
    )
    add(
        "partial n_tasks",
        lambda m, X, Y: m.partial_fit(X, np.column_stack([Y, Y])),
        names=["task"],
    )
    add(
        "partial sample_weight",
        lambda m, X, Y: m.partial_fit(X, Y, sample_weight=np.ones(3)),
        names=["sample_weight"],
    )

    def edited(Y, value, rows=slice(0, 1), dtype=None):
        Y = Y.astype(dtype or Y.dtype)
        Y[rows, 0] = value
        return Y

    if classification:
        add(
            "partial new class",
            lambda m, X, Y: m.partial_fit(X, edited(Y, 7)),
            names=["7"],
        )
        add(
            "warm new class",
            lambda m, X, Y: m.set_params(warm_start=True).fit(X, edited(Y, 7)),
            names=["7"],
        )
        add(
            "fit one class",
            lambda m, X, Y: m.fit(X, edited(Y, 1, slice(None))),
            names=["task0"],
        )
        add(
            "fit bad class_weight",
            refit(class_weight=[{9: 1.0}, None]),
            names=["class_weight"],
        )
        add(
            "fit mixed label types",
            lambda m, X, Y: m.fit(X, edited(Y, "a", dtype=object)),
            names=["task0"],
        )
        add(
            "partial balanced",
            lambda m, X, Y: m.set_params(class_weight="balanced").partial_fit(X, Y),
            names=["class_weight"],
        )
    else:
        add(
            "fit inf target",
            lambda m, X, Y: m.fit(X, edited(Y, np.inf, dtype=float)),
            names=["task0"],
        )
        add(
            "partial string target",
            lambda m, X, Y: m.partial_fit(X, np.char.add(Y.astype(str), "s")),
            names=["task0"],
        )
        add(
            "partial huge target",
            lambda m, X, Y: m.partial_fit(X, edited(Y, 1e300, dtype=float)),
            names=["task0"],
        )
    if estimator == "mixed":
        add("warm task_types", warm(task_types=["regression", "regression"]))
    # Failures inside training propagate as they are (KeyboardInterrupt:
    # see test_keyboard_interrupt_propagates_and_leaves_model_unchanged).
    for exc in (RuntimeError, ZeroDivisionError):
        for at in (0, 1):
            cb = [("interrupt", Interrupt(exc, at))]
            add(f"fit {exc.__name__} {at}", refit(callbacks=cb), expected=exc)
            add(
                f"warm {exc.__name__} {at}",
                warm(callbacks=cb, max_epochs=2),
                expected=exc,
            )
        # One partial_fit epoch can be a single batch: interrupt the first.
        cb = [("interrupt", Interrupt(exc, 0))]
        add(
            f"partial {exc.__name__}",
            lambda m, X, Y, cb=cb: m.set_params(callbacks=cb).partial_fit(X, Y),
            expected=exc,
        )
    # Scoring and predicting with bad inputs.
    add("score wrong tasks", lambda m, X, Y: m.score(X, Y[:, :1]), names=["task"])
    add(
        "score all missing",
        lambda m, X, Y: m.score(X, np.full(Y.shape, np.nan)),
        names=["y"],
    )
    add("score wrong rows", lambda m, X, Y: m.score(X[:4], Y))
    add(
        "score sample_weight",
        lambda m, X, Y: m.score(X, Y, sample_weight=np.ones(3)),
    )
    for method in ("predict", "gate_weights") + (
        ("predict_proba",) if estimator != "regressor" else ()
    ):
        add(
            f"{method} n_features",
            lambda m, X, Y, f=method: getattr(m, f)(X[:, :2]),
            names=["features"],
        )
        # Missing values (NaN) are learned from by default: infinity is bad X.
        add(
            f"{method} inf",
            lambda m, X, Y, f=method: getattr(m, f)(np.full_like(X, np.inf)),
            names=["X"],
        )
        add(
            f"{method} float32 overflow",
            lambda m, X, Y, f=method: getattr(m, f)(
                np.full(X.shape, 3e38, dtype=np.float32)
            ),
            # Finite outputs, or refused: the network may saturate.
            expected=None,
            names=["X", "features"],
        )
        add(
            f"{method} too large for float32",
            lambda m, X, Y, f=method: getattr(m, f)(np.full(X.shape, 1e39)),
            names=["X", "float32", "infinity"],
        )
        add(f"{method} empty", lambda m, X, Y, f=method: getattr(m, f)(X[:0]))
        add(f"{method} 1d", lambda m, X, Y, f=method: getattr(m, f)(X[0]))
        add(
            f"{method} strings",
            lambda m, X, Y, f=method: getattr(m, f)(X.astype(str).astype(object) + "x"),
        )
    return calls


# Calls that, on this code base, are not refused as the contract requires.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def partial_classes(estimator, Y):
    if estimator == "regressor":
        return {}
    second = np.unique(Y[:, 1]) if estimator == "classifier" else None
    return {"classes": [np.unique(Y[:, 0]), second]}


BAD_CALLS = [
    (estimator, name)
    for estimator in sorted(ESTIMATORS)
    for name in sorted(bad_calls(estimator))
]


@pytest.mark.parametrize(("estimator", "name"), BAD_CALLS)
@settings(max_examples=2, **SETTINGS)
@given(
    how=st.sampled_from(["fit", "partial_fit", "warm"]),
    n_rows=st.integers(6, 40),
    seed=st.integers(0, 2**16),
)
def test_failed_call_leaves_fitted_model_unchanged(estimator, name, how, n_rows, seed):
    calls = bad_calls(estimator)
    X, Y = base_data(estimator, n_rows, seed)
    model = ESTIMATORS[estimator](**{**TINY, "max_epochs": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how == "partial_fit":
            model.partial_fit(X, Y, **partial_classes(estimator, Y))
        else:
            model.fit(X, Y)
            if how == "warm":
                model.set_params(warm_start=True).fit(X, Y).set_params(warm_start=False)
    before = snapshot(model)
    predicted = outputs(model, X)
    call, expected, names = calls[name]
    if (estimator, name) in KNOWN_BUGS:
        pytest.xfail(KNOWN_BUGS[estimator, name])
    if expected is None:
        result, exc = attempt(call, model, X, Y)
        if exc is None:
            assert_finite(result)
        else:
            clear_error(exc, names)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(expected) as info:
                call(model, X, Y)
        if expected == (ValueError, TypeError):
            clear_error(info.value, names)
    assert_same(before, snapshot(model))
    assert_outputs_same(predicted, outputs(model, X))


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
@settings(max_examples=10, **SETTINGS)
@given(
    name=st.sampled_from(
        [
            "fit X some inf",
            "fit all missing",
            "fit n_experts 0",
            "fit ZeroDivisionError 1",
            "fit RuntimeError 0",
            "fit bad callbacks",
            "fit sample_weight zeros",
        ]
    ),
)
def test_failed_first_fit_leaves_estimator_unfitted(estimator, name):
    X, Y = base_data(estimator)
    model = ESTIMATORS[estimator](**TINY)
    call, expected, _ = bad_calls(estimator)[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(expected):
            call(model, X, Y)
    fitted = [k for k in vars(model) if k.endswith("_") and not k.startswith("__")]
    assert fitted == [], f"a failed first fit left {fitted}"
    assert not hasattr(model, "_tasks")


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
@settings(max_examples=15, **SETTINGS)
@given(
    n_rows=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    sparse=st.booleans(),
)
def test_successful_predictions_do_not_change_the_model(
    estimator, n_rows, seed, sparse
):
    X, Y = base_data(estimator)
    model = ESTIMATORS[estimator](**TINY).fit(X, Y)
    before = snapshot(model)
    Xq = np.random.default_rng(seed).normal(size=(n_rows, 3)) * 10
    Xq = sp.csr_matrix(Xq) if sparse else Xq
    first = outputs(model, Xq)
    model.score(X, Y)
    assert_same(before, snapshot(model))
    assert_outputs_same(first, outputs(model, Xq))
    # One row predicted alone gives what it gives within a batch (to float32
    # rounding: BLAS kernels may differ with the number of rows).
    one, batch = model.predict(Xq[:1]), first[0][:1]
    if estimator == "classifier":
        np.testing.assert_array_equal(one, batch)
    else:
        np.testing.assert_allclose(
            one.astype(np.float64), batch.astype(np.float64), rtol=1e-5, atol=1e-6
        )


# ----------------------------------------------------------------------
# Early stopping with few rows and sparse labels
# ----------------------------------------------------------------------


@settings(max_examples=30, **SETTINGS)
@given(
    n_rows=st.integers(1, 40),
    fraction=st.sampled_from([0.05, 0.1, 0.3, 0.5, 0.9]),
    data=st.data(),
)
def test_early_stopping_small_data(n_rows, fraction, data):
    X = data.draw(features(n_rows), label="X")
    Y, marker, described, single, names = data.draw(
        regression_targets(n_rows), label="Y"
    )
    model = MultiTaskMMoERegressor(
        missing_target=marker,
        early_stopping=True,
        validation_fraction=fraction,
        n_iter_no_change=1,
        **{**TINY, "max_epochs": 3},
    )
    _, exc = attempt(model.fit, X, Y)
    bad = expected_classification_error(described, names)
    if exc is not None:
        clear_error(exc, [*bad, "early_stopping", "validation_fraction"])
        if not bad:
            assert "early_stopping" in str(exc), str(exc)
        return
    assert not bad
    check_fitted(model, X, described, single)


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_keyboard_interrupt_propagates_and_leaves_model_unchanged(estimator):
    X, Y = base_data(estimator)
    classes = None
    if estimator != "regressor":
        classes = [np.unique(Y[:, 0])]
        classes.append(np.unique(Y[:, 1]) if estimator == "classifier" else None)
    failures = []
    for mode in ("first fit", "refit", "warm", "partial_fit"):
        for at in (0, 1):
            cb = [("interrupt", SigInt(at))]
            model = ESTIMATORS[estimator](**{**TINY, "max_epochs": 2})
            if mode != "first fit":
                model.fit(X, Y)
                before = snapshot(model)
            try:
                model.set_params(callbacks=cb, warm_start=mode == "warm")
                if mode == "partial_fit":
                    model.partial_fit(X, Y)
                else:
                    model.fit(X, Y)
            except KeyboardInterrupt:
                pass
            else:
                failures.append(f"{mode} at batch {at}: not propagated")
                continue
            if mode == "first fit":
                if hasattr(model, "net_"):
                    failures.append(f"{mode} at batch {at}: model fitted")
            else:
                try:
                    assert_same(before, snapshot(model))
                except AssertionError as exc:
                    failures.append(f"{mode} at batch {at}: {exc}")
    assert not failures, failures


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_partial_fit_validates_parameters_on_fitted_model(estimator):
    X, Y, _ = parameter_dataset(estimator)
    failures = []
    for name, table in PARAMS[estimator].items():
        if name not in USED_BY_PARTIAL_FIT:
            continue
        for value, expectation in table:
            if expectation != ERROR:
                continue
            model = ESTIMATORS[estimator](**TINY)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.partial_fit(X, Y, **partial_classes(estimator, Y))
            before = snapshot(model)
            model.set_params(**{name: value})
            _, exc = attempt(model.partial_fit, X, Y)
            if exc is None:
                failures.append(f"{name}={value!r} accepted")
                continue
            names = ERROR_NAMES.get((estimator, name, repr(value)), [name])
            try:
                clear_error(exc, names)
                assert_same(before, snapshot(model))
            except AssertionError as error:
                failures.append(f"{name}={value!r}: {str(error).splitlines()[0]}")
    assert not failures, "\n".join(failures)


# The parameters a partial_fit on a fitted model uses (it ignores
# max_epochs, lr_schedule, early_stopping, validation_fraction, n_iter_no_change,
# tol and warm_start, and refuses architecture changes).
USED_BY_PARTIAL_FIT = {
    "task_weights",
    "optimizer",
    "lr",
    "weight_decay",
    "batch_size",
    "callbacks",
    "device",
    "random_state",
    "verbose",
    "class_weight",
    "missing_label",
    "missing_target",
    "loss",
    "task_types",
}


@pytest.mark.parametrize("estimator", ["classifier", "mixed"])
def test_partial_fit_refuses_other_classes_later(estimator):
    X, Y = base_data(estimator)
    classes = partial_classes(estimator, Y)["classes"]
    model = ESTIMATORS[estimator](**TINY).partial_fit(X, Y, classes=classes)
    before = snapshot(model)
    other = [np.append(classes[0], 99), classes[1]]
    _, exc = attempt(model.partial_fit, X, Y, classes=other)
    assert exc is not None, "classes different from classes_ were accepted"
    clear_error(exc, ["classes"])
    assert_same(before, snapshot(model))


@settings(max_examples=30, **SETTINGS)
@given(
    estimator=st.sampled_from(sorted(ESTIMATORS)),
    scale=st.sampled_from([1e3, 1e10, 1e20, 1e30, 3e38]),
    n_rows=st.integers(6, 40),
    seed=st.integers(0, 2**16),
    float32=st.booleans(),
)
def test_huge_features_are_refused_or_give_finite_results(
    estimator, scale, n_rows, seed, float32
):
    X, Y = base_data(estimator, n_rows, seed)
    X = X / np.abs(X).max() * scale
    if float32:
        X = X.astype(np.float32)
    model = ESTIMATORS[estimator](**TINY)
    _, exc = attempt(model.fit, X, Y)
    if exc is not None:
        clear_error(exc, ["lr", "X", "features"])
        assert not hasattr(model, "net_")
        return
    for method in ("predict", "predict_proba", "gate_weights"):
        if hasattr(model, method):
            result, exc = attempt(getattr(model, method), X)
            if exc is None:
                assert_finite(result)
            else:
                clear_error(exc, ["X", "features"])
