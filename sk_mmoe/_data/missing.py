"""Missing numeric values of ``X``: accepted, or refused by column name.

``numeric_missing="learn"`` lets NaN (None, ``pd.NA``, a polars null, all
read as NaN) through to the network, which fills them
(:class:`sk_mmoe.nn.missing.MissingFill`); ``"error"``, and models that
cannot fill them (saved before the option, or fitted on a sparse ``X``),
refuse them with an error that names the first columns holding one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["check_numeric_missing"]

# Columns named in the error; the count of the others follows.
_NAMED_COLUMNS = 3


def check_numeric_missing(
    X: Any, names: Any, allowed: bool, why: str = "numeric_missing='error'"
) -> None:
    """Refuse NaN in the float32 matrix ``X`` unless ``allowed``.

    ``names`` are the column names of the ``X`` given (None for an array),
    ``why`` says what refuses them.
    """
    if allowed:
        return
    data = X.data if sp.issparse(X) else X
    if not np.isnan(np.sum(data)):
        return
    if sp.issparse(X):
        columns = np.unique(X.indices[np.isnan(X.data)])
    else:
        columns = np.flatnonzero(np.isnan(X).any(axis=0))
    labels = [
        repr(str(names[j])) if names is not None and j < len(names) else f"column {j}"
        for j in columns[:_NAMED_COLUMNS]
    ]
    others = len(columns) - len(labels)
    more = f" and {others} other column(s)" if others else ""
    raise ValueError(
        f"X has missing values (NaN) in {', '.join(labels)}{more}, which "
        f"{why} refuses. Pass numeric_missing='learn' (the default) to have "
        f"the model learn a fill per column, or impute them (e.g. "
        f"sklearn.impute.SimpleImputer)."
    )
