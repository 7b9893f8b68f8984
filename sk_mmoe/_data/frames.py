"""pandas and polars tables read without importing either library.

polars is an optional dependency: its objects are recognised by their type's
module, and its columns are read into NumPy arrays with nulls as missing
values. A polars LazyFrame, a query plan rather than a table, is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_not_lazy", "is_polars", "polars_values"]


def is_polars(obj: Any, *kinds: str) -> bool:
    """Whether ``obj`` is a polars object of one of ``kinds`` (class names).

    Read from the type (of a class too, such as ``pl.String``), so that
    polars, an optional dependency, is never imported.
    """
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__module__.partition(".")[0] == "polars" and cls.__name__ in kinds


def check_not_lazy(value: Any, name: str) -> None:
    """Refuse a polars LazyFrame or a Dask DataFrame: a query plan, not yet
    a table."""
    if is_polars(value, "LazyFrame"):
        raise TypeError(
            f"{name} is a polars LazyFrame; call its collect() method first "
            f"to pass the table itself."
        )
    kind = type(value)
    if kind.__module__.split(".")[0] in ("dask", "dask_expr") and (
        kind.__name__ == "DataFrame"
    ):
        raise TypeError(
            f"{name} is a Dask DataFrame, which the estimators do not read as "
            f"it is: pass {name}.compute(), or fit block by block with "
            f"partial_fit on pandas blocks (block.compute()), as "
            f"dask_ml.wrappers.Incremental does."
        )


def polars_values(series: Any) -> np.ndarray:
    """A polars Series as a 1-D array, with its nulls as missing values.

    Floats keep their dtype (null becomes NaN), as do integers and booleans
    without nulls; anything else is objects with None for null, as pandas'
    nullable and text columns are read, so that integer labels stay ints.
    """
    dtype = series.dtype
    if dtype.is_float() or (
        series.null_count() == 0 and (dtype.is_integer() or is_polars(dtype, "Boolean"))
    ):
        return series.to_numpy()
    return np.fromiter(series.to_list(), dtype=object, count=len(series))
