"""List input columns: a user's history, a film's genres.

A column whose values are lists, tuples or 1-D arrays of categories (a
pandas column of such objects, a polars ``List`` or ``Array`` column, a
pyarrow list column) is one input of many values. Each row's values become
the codes of a categorical column (:mod:`sk_mmoe._data.features`: 1 for a
value rare or unseen in ``fit``, 2 and up for the kept values), the last
``max_length`` of them (the most recent) in ``max_length`` columns appended
after those of ``X``, padded with :data:`PAD_CODE`; missing values inside a
list are dropped, and a missing cell (None) or an empty list holds none. The
list column's own position holds its number of values, read as a number.

A list column has its own vocabulary, or shares that of a categorical column
(its *target*: ``sequence_features={"history": "item_id"}``), so that the
network embeds a past item and a candidate item with one table
(:class:`sk_mmoe.nn.sequences.SequencePooling`).
"""

from __future__ import annotations

import numbers
from typing import Any, cast

import numpy as np

from .features import N_RESERVED, category_codes, kept_categories
from .frames import is_polars

__all__ = [
    "PAD_CODE",
    "SequenceColumns",
    "is_list_column",
    "padded_text",
    "resolve_sequences",
]

#: The code of the padding after a row's values.
PAD_CODE = -1
SEQUENCE_POOLINGS = ("auto", "mean", "sum", "attention")
_LIST_TYPES = (list, tuple, np.ndarray)


def _column_name(X: Any, j: int) -> str:
    columns = getattr(X, "columns", None)
    return repr(str(list(columns)[j])) if columns is not None else f"{j}"


def _cells(X: Any, j: int) -> np.ndarray:
    """Column ``j`` of ``X`` as objects (a list, array or None per row)."""
    if hasattr(X, "iloc"):
        return X.iloc[:, j].to_numpy(dtype=object)
    if is_polars(X, "DataFrame"):
        series = X.to_series(j)
        return np.fromiter(series.to_list(), dtype=object, count=len(series))
    return np.asarray(X[:, j], dtype=object)


def _is_missing(value: Any) -> bool:
    """None, NaN, or pandas' NA (pyarrow lists read as objects hold it)."""
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or type(value).__name__ == "NAType"
    )


def is_list_column(X: Any, j: int) -> bool:
    """Whether column ``j`` of ``X`` holds lists: a polars ``List`` or
    ``Array``, a pyarrow list, or objects whose first present one is a list,
    tuple or 1-D array."""
    if is_polars(X, "DataFrame"):
        dtype = X.dtypes[j]
        if is_polars(dtype, "List", "Array"):
            return True
        if not is_polars(dtype, "Object"):
            return False
    elif hasattr(X, "iloc"):
        dtype = X.dtypes.iloc[j]
        name = str(dtype)
        if name.startswith(("list<", "large_list<", "fixed_size_list<")):
            return True
        if getattr(dtype, "kind", None) != "O":
            return False
    elif getattr(getattr(X, "dtype", None), "kind", None) != "O":
        return False
    for value in _cells(X, j):
        if not _is_missing(value):
            return isinstance(value, _LIST_TYPES)
    return False


def _row_values(cell: Any, name: str, row: int) -> list[Any]:
    """A cell's present values; a ValueError naming the column if it is not
    a flat list of categories."""
    if _is_missing(cell):
        return []
    if not isinstance(cell, _LIST_TYPES) or (
        isinstance(cell, np.ndarray) and cell.ndim != 1
    ):
        raise ValueError(
            f"The list column {name} holds {cell!r} in row {row}: each value "
            f"must be a flat list, tuple or 1-D array of categories, or None."
        )
    values = []
    for value in cell:
        if _is_missing(value):
            continue
        if isinstance(value, (*_LIST_TYPES, dict, set)):
            raise ValueError(
                f"The list column {name} holds a nested list in row {row} "
                f"({cell!r}); its values must be categories (text or "
                f"numbers), not lists."
            )
        if not isinstance(value, str | numbers.Number | np.generic):
            raise ValueError(
                f"The list column {name} holds {value!r} (of type "
                f"{type(value).__name__}) in row {row}, which cannot be "
                f"encoded: its values must be text or numbers."
            )
        values.append(value)
    return values


def _flat_text(X: Any, j: int, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's last ``max_length`` values of column ``j`` as text, one
    after the other, and each row's number of them."""
    name = _column_name(X, j)
    rows = [
        _row_values(cell, name, i)[-max_length:] for i, cell in enumerate(_cells(X, j))
    ]
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    flat = [str(v) for r in rows for v in r]
    return np.asarray(flat, dtype=str), lengths


def padded_text(X: Any, j: int, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Column ``j``'s last ``max_length`` values of each row as text,
    ``(n_rows, max_length)`` objects padded with ``""``, and each row's
    number of them, ``(n_rows, 1)`` int64: an exported graph's inputs."""
    text, lengths = _flat_text(X, j, max_length)
    padded = np.full((len(lengths), max_length), "", dtype=object)
    rows, slots = _positions(lengths)
    padded[rows, slots] = text
    return padded, lengths.reshape(-1, 1)


def _positions(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The row and slot of each value, for rows of these numbers of values."""
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(int(lengths.sum())) - np.repeat(starts, lengths)


def resolve_sequences(
    X: Any,
    categorical: np.ndarray,
    sequence_features: Any,
) -> tuple[list[int], list[int | None]]:
    """The list columns of ``X`` and the categorical column each shares
    its vocabulary with (None for its own).

    ``sequence_features`` maps list columns to a categorical column or None;
    the list columns it does not name have their own vocabulary.
    """
    n_features = X.shape[1]
    columns = [str(c) for c in X.columns] if hasattr(X, "columns") else None
    is_list = [is_list_column(X, j) for j in range(n_features)]

    def position(key: Any, what: str) -> int:
        if isinstance(key, str) and columns is not None and key in columns:
            return columns.index(key)
        if (
            isinstance(key, numbers.Integral)
            and not isinstance(key, bool)
            and -n_features <= key < n_features
        ):
            return int(key) % n_features
        raise ValueError(f"sequence_features {what}, which is not a column of X.")

    targets: dict[int, int | None] = {}
    if sequence_features is not None:
        if not isinstance(sequence_features, dict):
            raise ValueError(
                f"sequence_features must be a dict mapping list columns to a "
                f"categorical column or None, got {sequence_features!r}."
            )
        for key, target in sequence_features.items():
            j = position(key, f"names {key!r} as a list column")
            if not is_list[j]:
                raise ValueError(
                    f"sequence_features names {key!r} as a list column, but "
                    f"its values are not lists (or it holds no list)."
                )
            if target is None:
                targets[j] = None
                continue
            k = position(target, f"maps {key!r} to {target!r}")
            if is_list[k]:
                raise ValueError(
                    f"sequence_features maps {key!r} to {target!r}, which is a "
                    f"list column; the target must be a categorical column."
                )
            if not categorical[k]:
                raise ValueError(
                    f"sequence_features maps {key!r} to {target!r}, which is "
                    f"not a categorical column; declare it in "
                    f"categorical_features."
                )
            targets[j] = k
    lists = [j for j in range(n_features) if is_list[j]]
    return lists, [targets.get(j) for j in lists]


class SequenceColumns:
    """Encodes the list columns of ``X`` into padded code columns.

    Parameters
    ----------
    columns : list of int
        Positions of the list columns.
    targets : list of int or None
        For each, the position of the categorical column whose vocabulary it
        shares, or None for its own.
    max_length : int
        Values kept per row: the last ones; :meth:`fit` lowers it to the
        longest list it sees.
    pooling : {"auto", "mean", "sum", "attention"}
        How the network pools each column's vectors (see
        :class:`sk_mmoe.nn.sequences.SequencePooling`).

    Attributes
    ----------
    categories : list of list of str or None
        The own vocabulary of each list column (None where shared).
    """

    def __init__(
        self,
        columns: list[int],
        targets: list[int | None],
        max_length: int,
        pooling: str,
    ):
        self.columns = [int(j) for j in columns]
        self.targets = [None if k is None else int(k) for k in targets]
        self.max_length = int(max_length)
        self.pooling = str(pooling)
        self.categories: list[list[str] | None] = []
        # The estimator's parameters that made these columns (not saved).
        self.params: dict[str, Any] | None = None

    @property
    def width(self) -> int:
        """Columns appended to the encoded ``X``."""
        return len(self.columns) * self.max_length

    def poolings(self) -> list[str]:
        """Each column's pooling: attention needs a target (a candidate).

        ``"auto"`` is attention for a list with a target (it beats the mean
        in ``benchmarks/sequences.py``), the mean otherwise.
        """
        out = []
        for target in self.targets:
            pooling = self.pooling
            if pooling == "auto":
                pooling = "attention"
            if pooling == "attention" and target is None:
                pooling = "mean"
            out.append(pooling)
        return out

    def fit(self, X: Any, max_categories: int, min_frequency: int) -> SequenceColumns:
        """Learn the own vocabularies, and shorten ``max_length`` to the
        longest list of ``fit`` (at least 1): longer padding would cost
        time and hold nothing the network learned from."""
        self.categories = []
        longest = 1
        for j, target in zip(self.columns, self.targets, strict=True):
            text, lengths = _flat_text(X, j, self.max_length)
            longest = max(longest, int(lengths.max(initial=0)))
            if target is not None:
                self.categories.append(None)
                continue
            self.categories.append(kept_categories(text, max_categories, min_frequency))
        self.max_length = min(self.max_length, longest)
        return self

    def transform(
        self, X: Any, shared: dict[int, list[str]], out: np.ndarray
    ) -> np.ndarray:
        """Write each list column's length in its own position of ``out``
        and return the padded codes, ``(n_rows, width)``.

        ``shared``: the categories of the target columns.
        """
        n_rows = X.shape[0]
        block = np.full((n_rows, self.width), PAD_CODE, dtype=np.float32)
        for i, (j, target, own) in enumerate(
            zip(self.columns, self.targets, self.categories, strict=True)
        ):
            text, lengths = _flat_text(X, j, self.max_length)
            # A column without a target has its own vocabulary.
            categories = cast(list[str], own) if target is None else shared[target]
            codes = category_codes(text, categories)
            rows, slots = _positions(lengths)
            block[rows, i * self.max_length + slots] = codes
            out[:, j] = lengths
        return block

    def cardinalities(self, categorical_cardinality: dict[int, int]) -> list[int]:
        """Codes of each list column's vocabulary."""
        return [
            categorical_cardinality[k]
            if k is not None
            else N_RESERVED + len(cast(list[str], c))
            for k, c in zip(self.targets, self.categories, strict=True)
        ]

    def state(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "targets": list(self.targets),
            "max_length": self.max_length,
            "pooling": self.pooling,
            "categories": [None if c is None else list(c) for c in self.categories],
        }

    @classmethod
    def from_state(cls, state: Any, n_features: int) -> SequenceColumns:
        """The columns that :meth:`state` described; a ValueError if malformed."""

        def index(v: Any) -> bool:
            return (
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_features
            )

        if not (
            isinstance(state, dict)
            and isinstance(state.get("columns"), list)
            and all(index(j) for j in state["columns"])
            and isinstance(state.get("targets"), list)
            and len(state["targets"]) == len(state["columns"])
            and all(k is None or index(k) for k in state["targets"])
            and isinstance(state.get("max_length"), int)
            and state["max_length"] > 0
            and state.get("pooling") in SEQUENCE_POOLINGS
            and isinstance(state.get("categories"), list)
            and len(state["categories"]) == len(state["columns"])
            and all(
                (c is None) == (k is not None)
                for c, k in zip(state["categories"], state["targets"], strict=True)
            )
            and all(
                c is None
                or (isinstance(c, list) and all(isinstance(v, str) for v in c))
                for c in state["categories"]
            )
        ):
            raise ValueError("its list columns are malformed")
        columns = cls(
            state["columns"], state["targets"], state["max_length"], state["pooling"]
        )
        columns.categories = [
            None if c is None else list(c) for c in state["categories"]
        ]
        return columns
