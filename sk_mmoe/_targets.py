"""Validation and encoding of the multi-task target matrix ``Y``.

Every column of ``Y`` is a classification task with its own label set. An
entry equal to ``missing_label``, or NaN/None, means "no label for this
task". Tasks are encoded to integer codes ``0..n_classes_k - 1`` with
:data:`MISSING_CODE` marking the unlabelled entries, which is what the loss
(:mod:`sk_mmoe.losses`) consumes.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from sklearn.utils.multiclass import type_of_target

__all__ = [
    "MISSING_CODE",
    "EncodedTargets",
    "encode_targets",
    "missing_mask",
    "split_columns",
]

#: Integer code of an unlabelled entry in the encoded targets.
MISSING_CODE = -1


def _is_nan_scalar(value: Any) -> bool:
    return isinstance(value, numbers.Real) and value != value


def missing_mask(values: Any, missing_label: Any) -> np.ndarray:
    """Boolean mask of the entries of ``values`` that carry no label.

    An entry is missing if it equals ``missing_label``, or is NaN or None.

    Parameters
    ----------
    values : array-like of shape (n_samples,) or (n_samples, n_tasks)
        Labels, of any dtype.
    missing_label : int, float, str or None
        The marker of an unlabelled entry.

    Returns
    -------
    mask : ndarray of bool, same shape as ``values``
    """
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        mask = np.zeros(values.shape, dtype=bool)
        if values.dtype.kind == "f":
            mask |= np.isnan(values)
        if isinstance(missing_label, numbers.Real) and not _is_nan_scalar(
            missing_label
        ):
            mask |= values == missing_label
        return mask
    # Strings and objects: compare element by element, since numpy cannot
    # compare a string array with a numeric marker.
    flat = values.ravel()
    mask = np.fromiter(
        (
            v is None
            or _is_nan_scalar(v)
            or (missing_label is not None and _equal(v, missing_label))
            for v in flat
        ),
        dtype=bool,
        count=flat.size,
    )
    return mask.reshape(values.shape)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


class EncodedTargets(NamedTuple):
    """The result of :func:`encode_targets`."""

    codes: np.ndarray  # (n_samples, n_tasks) int64, MISSING_CODE if unlabelled
    classes: list[np.ndarray]  # sorted labels of each task
    task_names: list[str]
    is_single_task: bool  # Y was 1-D


def split_columns(Y: Any) -> tuple[list[np.ndarray], list[str] | None, bool]:
    """Split ``Y`` into one 1-D array per task, keeping each column's dtype.

    Returns the columns, the task names (DataFrame columns, else None) and
    whether ``Y`` was 1-D (a single task).
    """
    if hasattr(Y, "columns") and hasattr(Y, "iloc"):  # pandas DataFrame
        names = [str(name) for name in Y.columns]
        return [_column_values(Y.iloc[:, k]) for k in range(Y.shape[1])], names, False
    if hasattr(Y, "iloc"):  # pandas Series: one task
        return [_column_values(Y)], None, True
    if hasattr(Y, "toarray"):
        raise TypeError(
            "y must be a dense array-like; sparse targets are not supported."
        )
    Y = np.asarray(Y)
    if Y.ndim == 1:
        return [Y], None, True
    if Y.ndim != 2:
        raise ValueError(
            f"y must be 1-D (one task) or 2-D (n_samples, n_tasks), got shape "
            f"{Y.shape}."
        )
    return [Y[:, k] for k in range(Y.shape[1])], None, False


def _column_values(series: Any) -> np.ndarray:
    if isinstance(series.dtype, np.dtype) and series.dtype.kind != "O":
        return series.to_numpy()
    # Object, string, nullable and categorical columns: plain objects, with
    # every pandas missing value (NaN, None, pd.NA) turned into None.
    # (to_numpy() alone would turn Int64 with NA into floats.)
    return series.to_numpy(dtype=object, na_value=None)


def encode_targets(
    Y: Any,
    missing_label: Any = -1,
    *,
    n_samples: int | None = None,
    classes: Sequence[Any] | None = None,
) -> EncodedTargets:
    """Validate ``Y`` and encode every task to integer codes.

    Parameters
    ----------
    Y : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        Targets, one column per task.
    missing_label : int, float, str or None, default=-1
        Marker of an unlabelled entry (NaN and None always are).
    n_samples : int, default=None
        Expected number of rows (that of ``X``).
    classes : list of array-like, default=None
        The labels of each task. If given, every label of ``Y`` must be one of
        them and a task may show fewer classes than listed; otherwise the
        classes are the distinct labels of each task, at least two.

    Returns
    -------
    EncodedTargets
    """
    if Y is None:
        raise ValueError(
            "requires y to be passed, but the target y is None: pass one column "
            "of labels per task."
        )
    columns, names, is_single_task = split_columns(Y)
    if not columns:
        raise ValueError("y must have at least one column (task), got 0.")
    n_rows = len(columns[0])
    if n_samples is not None and n_rows != n_samples:
        raise ValueError(
            f"X and y have inconsistent numbers of samples: X has {n_samples} "
            f"rows and y has {n_rows}."
        )
    if names is None:
        names = [f"task{k}" for k in range(len(columns))]
    if classes is not None:
        classes = [classes] if is_single_task and _is_flat(classes) else classes
        if len(classes) != len(columns):
            raise ValueError(
                f"classes must give one array of labels per task: y has "
                f"{len(columns)} task(s), classes has {len(classes)}."
            )

    codes = np.full((n_rows, len(columns)), MISSING_CODE, dtype=np.int64)
    task_classes = []
    for k, (column, name) in enumerate(zip(columns, names, strict=True)):
        labelled = ~missing_mask(column, missing_label)
        values = column[labelled]
        if values.size == 0:
            raise ValueError(
                f"Task {name!r} (column {k} of y) has no labelled rows: every "
                f"entry is missing (missing_label={missing_label!r}, NaN or "
                f"None)."
            )
        if values.dtype == object:
            values = _as_homogeneous(values, name)
        _check_classification(values, name, k)
        if classes is None:
            task_classes_k = np.unique(values)
            if task_classes_k.size < 2:
                raise ValueError(
                    f"Task {name!r} (column {k} of y) has only one class "
                    f"({task_classes_k[0]!r}) among its labelled rows; each "
                    f"task needs at least 2 classes."
                )
        else:
            task_classes_k = np.unique(np.asarray(classes[k]))
            if task_classes_k.size < 2:
                raise ValueError(
                    f"classes[{k}] (task {name!r}) must list at least 2 "
                    f"classes, got {task_classes_k.tolist()!r}."
                )
            unknown = np.setdiff1d(np.unique(values), task_classes_k)
            if unknown.size:
                raise ValueError(
                    f"Task {name!r} (column {k} of y) has labels "
                    f"{unknown.tolist()!r} that are not in its classes "
                    f"{task_classes_k.tolist()!r}."
                )
        codes[labelled, k] = np.searchsorted(task_classes_k, values)
        task_classes.append(task_classes_k)
    return EncodedTargets(codes, task_classes, names, is_single_task)


def _is_flat(classes: Sequence[Any]) -> bool:
    return np.ndim(np.asarray(classes, dtype=object)) == 1 and not any(
        np.ndim(c) for c in classes
    )


def _as_homogeneous(values: np.ndarray, name: str) -> np.ndarray:
    """Labels of an object column as a sortable array."""
    kinds = {type(v) for v in values}
    if all(issubclass(t, str) for t in kinds):
        return values
    if all(issubclass(t, numbers.Number | np.bool_) for t in kinds):
        return np.asarray(values.tolist())
    raise TypeError(
        f"Task {name!r} mixes label types {sorted(t.__name__ for t in kinds)}; "
        f"the labels of a task must be all strings or all numbers."
    )


def _check_classification(values: np.ndarray, name: str, k: int) -> None:
    target_type = type_of_target(values, input_name="Y")
    if target_type not in ("binary", "multiclass"):
        raise ValueError(
            f"Unknown label type: task {name!r} (column {k} of y) has "
            f"{target_type} values; MultiTaskMMoEClassifier needs class "
            f"labels in every column (for example ints, bools or strings), "
            f"not continuous targets."
        )
