"""Reading the multi-task target matrix ``Y`` column by column.

Every column of ``Y`` is a task. An entry equal to the estimator's missing
marker (``missing_label`` / ``missing_target``), or NaN/None, means "no
target for this task". :func:`read_targets` splits ``Y`` into columns and
their labelled masks; the task types (:mod:`sk_mmoe._tasks`) then learn and
apply each column's encoding, and :func:`encode_targets` assembles the float32
matrix the loss consumes, with NaN for missing entries.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .._tasks import complete_targets
from .frames import check_not_lazy, is_polars, polars_values

__all__ = [
    "TargetColumns",
    "default_task_name",
    "default_task_names",
    "encode_targets",
    "check_not_dask_key",
    "missing_mask",
    "read_targets",
    "split_columns",
]


def check_not_dask_key(y: Any) -> None:
    """Refuse the key of a dask block, ``(name, i, ...)``, given as ``y``.

    dask-ml's ``Incremental`` addresses the blocks of ``y`` by row only: a 2-D
    dask array ``y`` reaches ``partial_fit`` as the key of its block rather
    than the block itself.
    """
    if (
        isinstance(y, tuple)
        and len(y) >= 2
        and isinstance(y[0], str)
        and all(isinstance(i, numbers.Integral) for i in y[1:])
    ):
        raise TypeError(
            f"y is the key of a dask block, {y!r}, not its values: "
            "dask_ml.wrappers.Incremental passes a 2-D dask array y to "
            "partial_fit this way (it splits y by rows only). Pass y as a dask "
            "DataFrame with the same partitions instead, e.g. "
            "dask.dataframe.from_dask_array(Y, columns=[...]) (see the Dask "
            "page of the user guide)."
        )


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


def split_columns(Y: Any) -> tuple[list[np.ndarray], list[str] | None, bool]:
    """Split ``Y`` into one 1-D array per task, keeping each column's dtype.

    Returns the columns, the task names (DataFrame columns, else None) and
    whether ``Y`` was 1-D (a single task).
    """
    check_not_lazy(Y, "y")
    if is_polars(Y, "DataFrame"):
        return [polars_values(s) for s in Y.get_columns()], list(Y.columns), False
    if is_polars(Y, "Series"):
        return [polars_values(Y)], None, True
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


def default_task_name(k: int) -> str:
    """The name of column ``k`` of a ``Y`` without column names."""
    return f"task{k}"


def default_task_names(n_tasks: int) -> list[str]:
    """The names of the tasks of a ``Y`` without column names."""
    return [default_task_name(k) for k in range(n_tasks)]


class TargetColumns(NamedTuple):
    """The result of :func:`read_targets`."""

    columns: list[np.ndarray]  # one 1-D array per task, in its own dtype
    labelled: list[np.ndarray]  # one boolean mask per task
    names: list[str]
    is_single_task: bool  # Y was 1-D

    def labelled_values(self, k: int) -> np.ndarray:
        """The labelled entries of task ``k``."""
        return self.columns[k][self.labelled[k]]

    def completed(self, tasks: Sequence[Any]) -> TargetColumns:
        """The targets with the entries that follow from other tasks' filled
        in (a conditional task's negatives where its parent is negative), as
        the fitted :class:`sk_mmoe._tasks.Task` objects ``tasks`` say."""
        columns, labelled = complete_targets(list(tasks), self.columns, self.labelled)
        return self._replace(columns=columns, labelled=labelled)


def read_targets(
    Y: Any,
    missing_label: Any = None,
    *,
    n_samples: int | None = None,
    require_labels: bool = True,
) -> TargetColumns:
    """Validate ``Y`` and find the labelled entries of every task.

    Parameters
    ----------
    Y : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        Targets, one column per task.
    missing_label : int, float, str or None, default=None
        Marker of a missing entry (NaN and None always are).
    n_samples : int, default=None
        Expected number of rows (that of ``X``).
    require_labels : bool, default=True
        Refuse a task without any labelled entry (training needs them;
        scoring does not).

    Returns
    -------
    TargetColumns
    """
    if Y is None:
        raise ValueError(
            "requires y to be passed, but the target y is None: pass one column "
            "of targets per task."
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
    names = default_task_names(len(columns)) if names is None else names
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"y has duplicate task names {duplicates}: every column of Y must "
            f"have its own name."
        )
    labelled = []
    for k, (column, name) in enumerate(zip(columns, names, strict=True)):
        mask = ~missing_mask(column, missing_label)
        if require_labels and not mask.any():
            raise ValueError(
                f"Task {name!r} (column {k} of y) has no labelled rows: every "
                f"entry is missing (marker {missing_label!r}, NaN or None)."
            )
        _check_marker_type(column[mask], missing_label, name)
        labelled.append(mask)
    return TargetColumns(columns, labelled, names, is_single_task)


def _check_marker_type(values: np.ndarray, marker: Any, name: str) -> None:
    """Refuse labels that equal the missing marker but for their type.

    ``"-1"`` labels with ``missing_label=-1`` (or ``-1`` with ``"-1"``) are
    almost always a marker that was meant to match, not a class.
    """
    if marker is None or (isinstance(marker, float) and marker != marker):
        return
    if isinstance(marker, str):
        lookalike = values.dtype.kind in "biuf" or values.dtype == object
        text = marker.strip()
        if lookalike and any(
            not isinstance(v, str) and str(v) == text for v in values.tolist()
        ):
            raise ValueError(
                f"Task {name!r} has the number {text} among its labels while "
                f"the missing marker is the string {marker!r}: the two differ "
                f"only in type. Pass the marker with the labels' type."
            )
        return
    if values.dtype.kind in "OUS" and any(
        isinstance(v, str) and v.strip() == str(marker) for v in values.tolist()
    ):
        raise ValueError(
            f"Task {name!r} has the string label {str(marker)!r} while the "
            f"missing marker is the number {marker!r}: the two differ only in "
            f"type. Pass the marker with the labels' type (e.g. "
            f"missing_label={str(marker)!r})."
        )


def encode_targets(targets: TargetColumns, tasks: Sequence[Any]) -> np.ndarray:
    """The float32 matrix of encoded targets, NaN where an entry is missing.

    ``tasks`` are fitted :class:`sk_mmoe._tasks.Task` objects, one per column.
    """
    n_rows = len(targets.columns[0])
    encoded = np.full((n_rows, len(tasks)), np.nan, dtype=np.float32)
    for k, task in enumerate(tasks):
        encoded[targets.labelled[k], k] = task.encode(targets.labelled_values(k))
    return encoded
