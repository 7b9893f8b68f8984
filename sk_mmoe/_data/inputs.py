"""Input handling: ``X`` as the network reads it, in fit and afterwards.

Functions of the values they need, called by the estimators: they split the
``bias_features`` off the ``X`` of a fit, encode the ``X`` of a new fit
(categorical columns to codes), check and convert the ``X`` of a fitted
model (its columns must be those of fit, the bias columns dropped if
present) and check that a ``Y`` has the fitted tasks.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils import assert_all_finite
from sklearn.utils.validation import check_array

from .._compat import validate_data
from ..nn._bias import BiasColumns
from .features import CategoricalEncoder, categorical_mask, feature_names
from .frames import check_not_lazy, is_polars
from .missing import check_numeric_missing
from .sequences import SequenceColumns, resolve_sequences
from .targets import default_task_names

if TYPE_CHECKING:
    from .._fitted import FittedData

__all__ = [
    "ENCODING_PARAMS",
    "check_task_columns",
    "encode_new_X",
    "split_bias_columns",
    "validate_X",
]

#: The parameters of the estimators that :func:`encode_new_X` takes.
ENCODING_PARAMS = (
    "categorical_features",
    "sequence_features",
    "bias_features",
    "numeric_missing",
    "max_categories",
    "max_sequence_length",
    "sequence_pooling",
)

# Values of a categorical column seen fewer times in fit share the code of
# unknown values, which the network thus learns from rare values.
_MIN_CATEGORY_FREQUENCY = 2


def split_bias_columns(
    X: Any, bias_features: Any, fitted: BiasColumns | None, incremental: bool
) -> tuple[BiasColumns | None, Any, np.ndarray | None]:
    """The ``bias_features`` of a fit, ``X`` without them, and their values.

    ``incremental``: training continues, and the bias columns must be the
    ``fitted`` ones, those of the first fit (None without a bias tower).
    """
    fitted = fitted if incremental else None
    if bias_features is None:
        if fitted is not None:
            raise ValueError(
                "warm_start and partial_fit continue training the fitted "
                "network, which has a bias tower; bias_features must stay "
                f"{fitted.described.tolist()} (or refit with "
                "warm_start=False)."
            )
        return None, X, None
    if not hasattr(X, "shape"):
        X = np.asarray(X, dtype=object)
    if len(X.shape) != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}.")
    bias = BiasColumns.resolve(bias_features, X.shape[1], feature_names(X))
    if incremental and bias != fitted:
        raise ValueError(
            "warm_start and partial_fit continue training the fitted "
            "network, but bias_features or the columns of X changed since "
            "the first fit; refit with warm_start=False."
        )
    X, values = bias.split(X, required=True)
    return bias, X, values


def encode_new_X(
    X: Any,
    *,
    estimator: str,
    categorical_features: Any,
    sequence_features: Any,
    bias_features: Any,
    numeric_missing: str,
    max_categories: int,
    max_sequence_length: int,
    sequence_pooling: str,
) -> tuple[Any, CategoricalEncoder | None]:
    """``X`` of a new fit as float32, with its categorical encoder if any
    (``estimator``: the estimator's name, for messages; the others: the
    estimator's parameters of the same names)."""
    _check_has_columns(X, bias_features)
    sequences = None
    if (
        not hasattr(X, "dtypes")
        and (categorical_features is None or isinstance(categorical_features, str))
        and sequence_features is None
    ):
        mask = None  # an array, nothing categorical: the usual array path
    else:
        if not hasattr(X, "shape") or getattr(X, "ndim", 2) != 2:
            X = np.asarray(X, dtype=object)
        if len(X.shape) != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}.")
        mask = categorical_mask(X, categorical_features)
        sequences = _sequence_columns(
            X, mask, sequence_features, max_sequence_length, sequence_pooling
        )
        if sequences is not None:
            mask[sequences.columns] = False
    names = feature_names(X)
    learn = numeric_missing == "learn"
    if mask is None or (not mask.any() and sequences is None):
        X = check_array(
            X,
            accept_sparse="csr",
            dtype=np.float32,
            input_name="X",
            estimator=estimator,
            # Missing values of a sparse X are refused (see NetworkSpec).
            ensure_all_finite="allow-nan" if not sp.issparse(X) else True,
        )
        check_numeric_missing(X, names, learn)
        return X, None
    if hasattr(X, "toarray"):
        raise ValueError(
            "categorical_features cannot be used with a sparse X; pass a "
            "DataFrame (or a dense array) with the categorical columns."
        )
    if X.shape[0] == 0:
        raise ValueError("Found array with 0 sample(s) while fitting; X is empty.")
    encoder = CategoricalEncoder(
        mask, max_categories, _MIN_CATEGORY_FREQUENCY, sequences
    ).fit(X)
    encoded = encoder.transform(X)
    assert_all_finite(encoded, allow_nan=True, estimator_name=estimator, input_name="X")
    check_numeric_missing(encoded, names, learn)
    return encoded, encoder


def _sequence_columns(
    X: Any,
    mask: np.ndarray,
    sequence_features: Any,
    max_sequence_length: int,
    sequence_pooling: str,
) -> SequenceColumns | None:
    """The list columns of ``X`` (see ``sequence_features``), or None."""
    columns, targets = resolve_sequences(X, mask, sequence_features)
    if not columns:
        return None
    return SequenceColumns(columns, targets, max_sequence_length, sequence_pooling)


def validate_X(estimator: Any, X: Any, fitted: FittedData, numeric_missing: str) -> Any:
    """``X`` for a model fitted as ``fitted`` says, as the network reads it
    (float32); ``estimator`` checks the columns against fit's
    (``n_features_in_``, ``feature_names_in_``), ``numeric_missing`` is its
    parameter."""
    check_not_lazy(X, "X")
    bias = fitted.spec.bias_columns
    if bias is not None:
        # Prediction leaves the bias tower out: its columns, if present,
        # are dropped.
        X, _ = bias.split(X, required=False)
    names = feature_names(X) if hasattr(X, "columns") else None
    X = _convert_X(estimator, X, fitted.encoder)
    if numeric_missing == "error":
        why = "numeric_missing='error'"
    else:
        why = "this model (fitted on a sparse X, or saved before numeric_missing)"
    check_numeric_missing(X, names, fitted.spec.numeric_missing, why)
    return X


def _convert_X(estimator: Any, X: Any, encoder: CategoricalEncoder | None) -> Any:
    """``X`` (without bias columns) as the network reads it, NaN kept."""
    name = type(estimator).__name__
    if encoder is not None:
        # Feature names and count, without converting the strings.
        _check_columns(estimator, X)
        if not hasattr(X, "shape"):
            X = np.asarray(X, dtype=object)
        if len(X.shape) != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty 2-D table, got shape {X.shape}.")
        encoded = encoder.transform(X)
        assert_all_finite(encoded, allow_nan=True, estimator_name=name, input_name="X")
        return encoded
    if (
        type(X) is np.ndarray
        and X.dtype == np.float32
        and X.ndim == 2
        and X.shape[0] > 0
        and X.shape[1] == estimator.n_features_in_
        and not hasattr(estimator, "feature_names_in_")
    ):
        # validate_data would return this array unchanged after checking
        # that it is finite; its other checks cost as much as predicting
        # one row (online serving).
        assert_all_finite(X, allow_nan=True, estimator_name=name, input_name="X")
        return X
    if is_polars(X, "DataFrame"):
        _check_columns(estimator, X)
        return check_array(
            X,
            dtype=np.float32,
            input_name="X",
            estimator=estimator,
            ensure_all_finite="allow-nan",
        )
    return validate_data(
        estimator,
        X,
        reset=False,
        accept_sparse="csr",
        dtype=np.float32,
        ensure_all_finite="allow-nan",
    )


def _check_columns(estimator: Any, X: Any) -> None:
    """Check the names and number of the columns of ``X`` against fit's."""
    if not is_polars(X, "DataFrame"):
        validate_data(estimator, X, reset=False, skip_check_array=True)
        return
    # Not all supported scikit-learn versions read a polars frame's
    # columns (see feature_names): they are checked here, as it checks
    # those of a pandas frame.
    name = type(estimator).__name__
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is None:
        warnings.warn(
            f"X has feature names, but {name} was fitted without feature names",
            UserWarning,
        )
    elif list(X.columns) != list(fitted):
        raise ValueError(
            f"The feature names should match those that were passed during "
            f"fit, in the same order: {list(fitted)}; X has {X.columns}."
        )
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )


def check_task_columns(y: Any, task_names: list[str]) -> None:
    """Check that ``y`` has the fitted tasks, ``task_names``: their number
    and names.

    A DataFrame's columns must be the fitted task names in the same
    order, unless the model was fitted without names.
    """
    n_tasks = 1 if np.ndim(y) == 1 else np.shape(y)[1]
    names = [str(c) for c in y.columns] if hasattr(y, "columns") else None
    unnamed = task_names == default_task_names(len(task_names))
    if n_tasks != len(task_names) or not (
        names is None or unnamed or names == task_names
    ):
        got = names if names is not None else f"{n_tasks} task(s)"
        raise ValueError(
            f"y must have the tasks the model was fitted on, "
            f"{task_names}, in that order; got {got}."
        )


def _check_has_columns(X: Any, bias_features: Any) -> None:
    """Refuse an ``X`` (a DataFrame, typically) without a feature column."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != 0:
        return
    after = " once the bias_features are taken out" if bias_features is not None else ""
    # scikit-learn's wording, which its estimator checks expect.
    raise ValueError(
        f"X has no feature columns{after}: found array with 0 feature(s) "
        f"(shape={tuple(shape)}) while a minimum of 1 is required."
    )
