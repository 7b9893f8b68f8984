"""Categorical input columns: which they are, and their integer codes.

A DataFrame's categorical columns (pandas ``category``, ``object`` or
``string`` dtypes by default, as ``HistGradientBoostingClassifier``'s
``categorical_features="from_dtype"``, and polars ``Categorical``, ``Enum``,
``String`` or ``Object`` ones) are not one-hot encoded: each value is mapped
to an integer code that the network's embedding table
(:class:`sk_mmoe.nn.network.FeatureEmbedding`) turns into a learned vector. The
codes travel in the same float32 matrix as the numeric columns, so batches,
prediction and export see one array.

Code 0 is a missing value (NaN, None, ``pd.NA``, a polars null), code 1 a
value seen fewer than ``min_frequency`` times in ``fit`` or beyond the
``max_categories`` most frequent ones, or unseen in ``fit``: rare training
values teach the network what to do with values it does not know. Codes 2
and up are the kept values, most frequent first. The embedding tables are
thus bounded by ``max_categories`` rows per column, also for ID columns with
millions of distinct values.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._compat import get_feature_names
from .frames import is_polars, polars_values
from .targets import missing_mask

__all__ = [
    "CategoricalEncoder",
    "categorical_mask",
    "category_codes",
    "feature_names",
    "kept_categories",
]

MISSING_CODE = 0
OTHER_CODE = 1
N_RESERVED = 2
# What a categorical column can hold (CategoricalEncoder.value_types).
_VALUE_TYPES = ("str", "float32", "float64")


def feature_names(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame ``X`` (``feature_names_in_``), or None.

    scikit-learn before 1.9 reads a polars frame's columns through the
    dataframe interchange protocol, which polars 2 dropped: they are read
    here, alike for every version.
    """
    if is_polars(X, "DataFrame"):
        return np.asarray(X.columns, dtype=object) if X.width else None
    return get_feature_names(X)


def _is_categorical_dtype(dtype: Any) -> bool:
    if is_polars(dtype, "String", "Categorical", "Enum", "Object"):
        return True
    kind = getattr(dtype, "kind", None)
    name = str(dtype)
    return name == "category" or name.startswith("string") or kind in ("O", "U", "S")


def categorical_mask(X: Any, categorical_features: Any) -> np.ndarray:
    """Boolean mask of the categorical columns of ``X``.

    ``categorical_features`` is ``"from_dtype"`` (the DataFrame's category,
    object and string columns, or polars' Categorical, Enum, String and
    Object ones; none for an array), None (none), or column names, indices or
    a boolean mask.
    """
    n_features = X.shape[1]
    columns = list(X.columns) if hasattr(X, "columns") else None
    if categorical_features is None:
        return np.zeros(n_features, dtype=bool)
    if isinstance(categorical_features, str):
        if categorical_features != "from_dtype":
            raise ValueError(
                f"categorical_features must be 'from_dtype', None, or column "
                f"names, indices or a boolean mask, got {categorical_features!r}."
            )
        if columns is None:
            return np.zeros(n_features, dtype=bool)
        return np.array([_is_categorical_dtype(t) for t in X.dtypes], dtype=bool)
    entries = list(np.ravel(np.asarray(categorical_features, dtype=object)))
    if entries and all(isinstance(e, bool | np.bool_) for e in entries):
        if len(entries) != n_features:
            raise ValueError(
                f"categorical_features as a boolean mask must have one entry per "
                f"feature ({n_features}), got {len(entries)}."
            )
        return np.asarray(entries, dtype=bool)
    mask = np.zeros(n_features, dtype=bool)
    for entry in entries:
        if isinstance(entry, str):
            if columns is None or entry not in [str(c) for c in columns]:
                raise ValueError(
                    f"categorical_features names the column {entry!r}, which X "
                    f"does not have."
                )
            mask[[str(c) for c in columns].index(entry)] = True
        elif isinstance(entry, numbers.Integral) and not isinstance(entry, bool):
            if not -n_features <= entry < n_features:
                raise ValueError(
                    f"categorical_features index {entry} is out of range for "
                    f"{n_features} features."
                )
            mask[entry] = True
        else:
            raise ValueError(
                f"categorical_features entries must be column names or indices, "
                f"got {entry!r}."
            )
    return mask


def _text_column(X: Any, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Column ``j`` of ``X`` as text, and its missing-value mask.

    Categories are compared by their text, so that the same value read as
    ``category``, ``object`` or ``string`` gets the same code.
    """
    if hasattr(X, "iloc"):
        column = X.iloc[:, j]
        missing = column.isna().to_numpy()
        return column.to_numpy(dtype=object).astype(str), missing
    if is_polars(X, "DataFrame"):
        values = polars_values(X.to_series(j))
    else:
        values = np.asarray(X[:, j], dtype=object)
    missing = missing_mask(values, None)
    return values.astype(str), missing


def _value_type(X: Any, j: int) -> str:
    """What the values of column ``j`` are: ``"float32"``, ``"float64"``
    (any other real numbers, integers included) or ``"str"`` (anything else,
    booleans included).

    Recorded in ``fit`` so that an exported graph reads a numeric categorical
    column as numbers of the precision that ``fit`` saw.
    """
    if is_polars(X, "DataFrame"):
        series = X.to_series(j)
        if series.dtype.is_numeric():
            return "float32" if is_polars(series.dtype, "Float32") else "float64"
        if not is_polars(series.dtype, "Object"):
            return "str"
        return _objects_type(polars_values(series))
    if hasattr(X, "iloc"):
        column = X.iloc[:, j]
        dtype = column.dtype
        if getattr(dtype, "categories", None) is not None:
            dtype = dtype.categories.dtype  # a pandas category: its values' type
        dtype = getattr(dtype, "numpy_dtype", dtype)  # nullable Int64, Float32...
        if isinstance(dtype, np.dtype) and dtype.kind == "O":
            return _objects_type(column.to_numpy(dtype=object))
    else:
        dtype = X[:, j].dtype
        if isinstance(dtype, np.dtype) and dtype.kind == "O":
            return _objects_type(np.asarray(X[:, j]))
    kind = getattr(dtype, "kind", "O")
    if kind not in "iuf":
        return "str"
    return "float32" if kind == "f" and dtype.itemsize == 4 else "float64"


def _objects_type(values: np.ndarray) -> str:
    """:func:`_value_type` of objects: numbers if every present one is."""
    present = values[~missing_mask(values, None)]
    if present.size == 0 or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
        for v in present
    ):
        return "str"
    return "float32" if all(isinstance(v, np.float32) for v in present) else "float64"


def _pandas_categories(X: Any, j: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Column ``j`` of a pandas ``X`` of ``category`` dtype as the text of
    its categories and each row's category (-1: missing); None for any
    other column.

    The same text as :func:`_text_column`'s, each category converted once
    rather than each row.
    """
    if not hasattr(X, "iloc"):
        return None
    column = X.iloc[:, j]
    if getattr(column.dtype, "name", None) != "category":
        return None
    labels = column.cat.categories.to_numpy(dtype=object).astype(str)
    return labels, column.cat.codes.to_numpy()


def _kept_column_categories(
    X: Any, j: int, max_categories: int, min_frequency: int
) -> list[str]:
    """:func:`kept_categories` of column ``j`` of ``X``'s present values."""
    factorized = _pandas_categories(X, j)
    if factorized is None:
        text, missing = _text_column(X, j)
        return kept_categories(text[~missing], max_categories, min_frequency)
    labels, rows = factorized
    counts = np.bincount(rows[rows >= 0], minlength=len(labels))
    # Categories of the same text (1 and "1") count as one value.
    labels, merged = np.unique(labels, return_inverse=True)
    counts = np.bincount(merged, weights=counts, minlength=len(labels))
    return _most_frequent(labels, counts, max_categories, min_frequency)


def _column_codes(X: Any, j: int, categories: list[str]) -> np.ndarray:
    """The float32 codes of column ``j`` of ``X`` (``MISSING_CODE`` where a
    value is missing) for its kept ``categories``."""
    factorized = _pandas_categories(X, j)
    if factorized is None:
        text, missing = _text_column(X, j)
        codes = category_codes(text, categories)
        codes[missing] = MISSING_CODE
        return codes
    labels, rows = factorized
    missing = rows < 0
    if not len(labels):
        return np.full(len(rows), MISSING_CODE, dtype=np.float32)
    codes = category_codes(labels, categories)[np.where(missing, 0, rows)]
    codes[missing] = MISSING_CODE
    return codes


def kept_categories(
    text: np.ndarray, max_categories: int, min_frequency: int
) -> list[str]:
    """The values of ``text`` that get their own code, in code order: the
    most frequent first (ties by text), seen at least ``min_frequency``
    times, at most ``max_categories - N_RESERVED`` of them."""
    labels, counts = np.unique(text, return_counts=True)
    return _most_frequent(labels, counts, max_categories, min_frequency)


def _most_frequent(
    labels: np.ndarray, counts: np.ndarray, max_categories: int, min_frequency: int
) -> list[str]:
    """:func:`kept_categories` of distinct ``labels`` seen ``counts`` times."""
    present = counts > 0
    labels, counts = labels[present], counts[present]
    order = np.lexsort((labels, -counts))
    order = order[counts[order] >= min_frequency]
    return [str(v) for v in labels[order[: max_categories - N_RESERVED]]]


def category_codes(text: np.ndarray, categories: list[str]) -> np.ndarray:
    """The float32 codes of the values ``text`` for the kept ``categories``:
    ``N_RESERVED`` and up for a kept value, ``OTHER_CODE`` for any other."""
    codes = np.full(len(text), OTHER_CODE, dtype=np.float32)
    if not len(categories):
        return codes
    sorter = np.argsort(categories)
    ordered = np.asarray(categories, dtype=str)[sorter]
    position = np.minimum(np.searchsorted(ordered, text), len(ordered) - 1)
    found = ordered[position] == text
    codes[found] = N_RESERVED + sorter[position[found]]
    return codes


class CategoricalEncoder:
    """Maps categorical columns to codes; numeric columns pass as float32.

    Parameters
    ----------
    mask : ndarray of bool of shape (n_features,)
        The categorical columns.
    max_categories : int
        Codes kept per column, reserved codes included: at most
        ``max_categories - 2`` distinct values get their own code.
    min_frequency : int
        Values seen fewer times in ``fit`` share the code of unknown values.

    Attributes
    ----------
    categories : list of list of str
        The kept values of each categorical column, as text, in code order.
    value_types : list of str
        What each categorical column held in ``fit``: ``"str"``,
        ``"float32"`` or ``"float64"`` (other numbers).
    sequences : SequenceColumns or None
        The list columns (:mod:`sk_mmoe._data.sequences`), whose padded codes
        :meth:`transform` appends after the columns of ``X``.
    """

    def __init__(
        self,
        mask: np.ndarray,
        max_categories: int,
        min_frequency: int,
        sequences: Any = None,
    ):
        self.mask = np.asarray(mask, dtype=bool)
        self.max_categories = int(max_categories)
        self.min_frequency = int(min_frequency)
        self.sequences = sequences
        self.categories: list[list[Any]] = []
        self.value_types: list[str] = []

    @property
    def columns(self) -> list[int]:
        """Positions of the categorical columns."""
        return np.flatnonzero(self.mask).tolist()

    @property
    def cardinalities(self) -> list[int]:
        """Codes of each categorical column, the reserved ones included."""
        return [N_RESERVED + len(c) for c in self.categories]

    @property
    def n_features(self) -> int:
        """Columns of ``X``."""
        return len(self.mask)

    @property
    def width(self) -> int:
        """Columns of the encoded ``X``: those of ``X``, then the padded
        codes of the list columns."""
        return self.n_features + (0 if self.sequences is None else self.sequences.width)

    def fit(self, X: Any) -> CategoricalEncoder:
        self.categories = []
        self.value_types = [_value_type(X, j) for j in self.columns]
        for j in self.columns:
            self.categories.append(
                _kept_column_categories(X, j, self.max_categories, self.min_frequency)
            )
        if self.sequences is not None:
            self.sequences.fit(X, self.max_categories, self.min_frequency)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``X`` as float32: numeric columns as they are, codes elsewhere."""
        n_rows, n_features = X.shape
        out = np.empty((n_rows, n_features), dtype=np.float32)
        numeric = ~self.mask
        if self.sequences is not None:
            numeric[self.sequences.columns] = False
        numeric = np.flatnonzero(numeric)
        if numeric.size:
            try:
                if hasattr(X, "iloc"):
                    # pd.NA (nullable columns) as NaN, a missing value.
                    values = X.iloc[:, numeric].to_numpy(
                        dtype=np.float32, na_value=np.nan
                    )
                else:
                    values = np.asarray(X[:, numeric], dtype=np.float32)
                out[:, numeric] = values
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"X has non-numeric values in a column that is not "
                    f"categorical ({exc}); declare it in categorical_features."
                ) from None
        for j, categories in zip(self.columns, self.categories, strict=True):
            out[:, j] = _column_codes(X, j, categories)
        if self.sequences is None:
            return out
        shared = dict(zip(self.columns, self.categories, strict=True))
        return np.hstack([out, self.sequences.transform(X, shared, out)])

    def state(self) -> dict[str, Any]:
        """The fitted encoder as plain values."""
        state = {
            "mask": self.mask.tolist(),
            "max_categories": self.max_categories,
            "min_frequency": self.min_frequency,
            "categories": [list(c) for c in self.categories],
            "value_types": list(self.value_types),
        }
        if self.sequences is not None:
            state["sequences"] = self.sequences.state()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoricalEncoder:
        encoder = cls(
            np.asarray(state["mask"], dtype=bool),
            state["max_categories"],
            state["min_frequency"],
        )
        encoder.categories = [[str(v) for v in c] for c in state["categories"]]
        if len(encoder.categories) != int(encoder.mask.sum()):
            raise ValueError("the categorical columns and their categories differ")
        value_types = state.get("value_types")
        if (
            not isinstance(value_types, list)
            or len(value_types) != len(encoder.categories)
            or not all(v in _VALUE_TYPES for v in value_types)
        ):
            raise ValueError("the value types of the categorical columns are malformed")
        encoder.value_types = list(value_types)
        if state.get("sequences") is not None:
            from .sequences import SequenceColumns

            sequences = SequenceColumns.from_state(
                state["sequences"], len(encoder.mask)
            )
            if encoder.mask[sequences.columns].any() or not all(
                k is None or encoder.mask[k] for k in sequences.targets
            ):
                raise ValueError("its list columns are malformed")
            encoder.sequences = sequences
        return encoder
