"""Input handling: ``X`` as the network reads it, in fit and afterwards.

:class:`InputHandling` is a base of the estimators: it splits the
``bias_features`` off the ``X`` of a fit, encodes the ``X`` of a new fit
(categorical columns to codes), checks and converts the ``X`` of a fitted
model (its columns must be those of fit, the bias columns dropped if
present) and checks that a ``Y`` has the fitted tasks.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils import assert_all_finite
from sklearn.utils.validation import check_array, check_is_fitted

from .._compat import validate_data
from ..nn._bias import BiasColumns
from .features import CategoricalEncoder, categorical_mask, feature_names
from .frames import check_not_lazy, is_polars
from .missing import check_numeric_missing
from .sequences import SequenceColumns, resolve_sequences
from .targets import default_task_names

if TYPE_CHECKING:
    from .._building import NetworkSpec

__all__ = ["InputHandling"]

# Values of a categorical column seen fewer times in fit share the code of
# unknown values, which the network thus learns from rare values.
_MIN_CATEGORY_FREQUENCY = 2


class InputHandling:
    """The estimators' handling of ``X`` (and of the task columns of ``Y``)."""

    # What it reads of the estimator: parameters, then fitted state.
    bias_features: Sequence[int | str] | Mapping[str, Any] | None
    categorical_features: str | Sequence[Any] | None
    max_categories: int
    sequence_features: dict | None
    sequence_pooling: str
    max_sequence_length: int
    numeric_missing: str
    _spec: NetworkSpec
    _encoder: CategoricalEncoder | None
    bias_features_in_: np.ndarray
    n_features_in_: int
    n_outputs_: int
    task_names_: list[str]

    def _split_bias_columns(
        self, X: Any, incremental: bool
    ) -> tuple[BiasColumns | None, Any, np.ndarray | None]:
        """The ``bias_features`` of a fit, ``X`` without them, and their values.

        ``incremental``: training continues, and the bias columns must be
        those of the first fit.
        """
        fitted = self._spec.bias_columns if incremental else None
        if self.bias_features is None:
            if fitted is not None:
                raise ValueError(
                    "warm_start and partial_fit continue training the fitted "
                    "network, which has a bias tower; bias_features must stay "
                    f"{self.bias_features_in_.tolist()} (or refit with "
                    "warm_start=False)."
                )
            return None, X, None
        if not hasattr(X, "shape"):
            X = np.asarray(X, dtype=object)
        if len(X.shape) != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}.")
        bias = BiasColumns.resolve(self.bias_features, X.shape[1], feature_names(X))
        if incremental and bias != fitted:
            raise ValueError(
                "warm_start and partial_fit continue training the fitted "
                "network, but bias_features or the columns of X changed since "
                "the first fit; refit with warm_start=False."
            )
        X, values = bias.split(X, required=True)
        return bias, X, values

    def _encode_new_X(self, X: Any) -> tuple[Any, CategoricalEncoder | None]:
        """``X`` of a new fit as float32, with its categorical encoder if any."""
        _check_has_columns(X, self.bias_features)
        sequences = None
        if (
            not hasattr(X, "dtypes")
            and (
                self.categorical_features is None
                or isinstance(self.categorical_features, str)
            )
            and self.sequence_features is None
        ):
            mask = None  # an array, nothing categorical: the usual array path
        else:
            if not hasattr(X, "shape") or getattr(X, "ndim", 2) != 2:
                X = np.asarray(X, dtype=object)
            if len(X.shape) != 2:
                raise ValueError(f"X must be 2-D, got shape {X.shape}.")
            mask = categorical_mask(X, self.categorical_features)
            sequences = self._sequence_columns(X, mask)
            if sequences is not None:
                mask[sequences.columns] = False
        names = feature_names(X)
        learn = self.numeric_missing == "learn"
        if (mask is None or not mask.any()) and sequences is None:
            X = check_array(
                X,
                accept_sparse="csr",
                dtype=np.float32,
                input_name="X",
                estimator=self,
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
        assert mask is not None  # None only without categorical or list columns
        encoder = CategoricalEncoder(
            mask, self.max_categories, _MIN_CATEGORY_FREQUENCY, sequences
        ).fit(X)
        encoded = encoder.transform(X)
        assert_all_finite(
            encoded,
            allow_nan=True,
            estimator_name=type(self).__name__,
            input_name="X",
        )
        check_numeric_missing(encoded, names, learn)
        return encoded, encoder

    def _sequence_columns(self, X: Any, mask: np.ndarray) -> SequenceColumns | None:
        """The list columns of ``X`` (see ``sequence_features``), or None."""
        columns, targets = resolve_sequences(X, mask, self.sequence_features)
        if not columns:
            return None
        return SequenceColumns(
            columns, targets, self.max_sequence_length, self.sequence_pooling
        )

    def _validate_X(self, X: Any, fitted: bool = True) -> Any:
        """``X`` for a fitted model, as the network reads it (float32).

        ``fitted=False`` skips the fitted check (continued training checks
        ``X`` before the model is published).
        """
        if fitted:
            check_is_fitted(self)
        check_not_lazy(X, "X")
        bias = self._spec.bias_columns
        if bias is not None:
            # Prediction leaves the bias tower out: its columns, if present,
            # are dropped.
            X, _ = bias.split(X, required=False)
        names = feature_names(X) if hasattr(X, "columns") else None
        return self._check_missing(self._convert_X(X), names)

    def _check_missing(self, X: Any, names: Any) -> Any:
        """``X`` (float32), its missing values refused unless the fitted
        network fills them."""
        if getattr(self, "numeric_missing", "learn") == "error":
            why = "numeric_missing='error'"
        else:
            why = "this model (fitted on a sparse X, or saved before numeric_missing)"
        allowed = getattr(self._spec, "numeric_missing", False)
        check_numeric_missing(X, names, allowed, why)
        return X

    def _convert_X(self, X: Any) -> Any:
        """``X`` (without bias columns) as the network reads it, NaN kept."""
        if self._encoder is not None:
            # Feature names and count, without converting the strings.
            self._check_columns(X)
            if not hasattr(X, "shape"):
                X = np.asarray(X, dtype=object)
            if len(X.shape) != 2 or X.shape[0] == 0:
                raise ValueError(
                    f"X must be a non-empty 2-D table, got shape {X.shape}."
                )
            encoded = self._encoder.transform(X)
            assert_all_finite(
                encoded,
                allow_nan=True,
                estimator_name=type(self).__name__,
                input_name="X",
            )
            return encoded
        if (
            type(X) is np.ndarray
            and X.dtype == np.float32
            and X.ndim == 2
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
        ):
            # validate_data would return this array unchanged after checking
            # that it is finite; its other checks cost as much as predicting
            # one row (online serving).
            assert_all_finite(
                X, allow_nan=True, estimator_name=type(self).__name__, input_name="X"
            )
            return X
        if is_polars(X, "DataFrame"):
            self._check_columns(X)
            return check_array(
                X,
                dtype=np.float32,
                input_name="X",
                estimator=self,
                ensure_all_finite="allow-nan",
            )
        return validate_data(
            self,
            X,
            reset=False,
            accept_sparse="csr",
            dtype=np.float32,
            ensure_all_finite="allow-nan",
        )

    def _check_columns(self, X: Any) -> None:
        """Check the names and number of the columns of ``X`` against fit's."""
        if not is_polars(X, "DataFrame"):
            validate_data(self, X, reset=False, skip_check_array=True)
            return
        # Not all supported scikit-learn versions read a polars frame's
        # columns (see feature_names): they are checked here, as it checks
        # those of a pandas frame.
        name = type(self).__name__
        fitted = getattr(self, "feature_names_in_", None)
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
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{self.n_features_in_} features as input."
            )

    def _check_task_columns(self, y: Any) -> None:
        """Check that ``y`` has the fitted tasks: their number and names.

        A DataFrame's columns must be the fitted task names in the same
        order, unless the model was fitted without names.
        """
        n_tasks = 1 if np.ndim(y) == 1 else np.shape(y)[1]
        names = [str(c) for c in y.columns] if hasattr(y, "columns") else None
        unnamed = self.task_names_ == default_task_names(self.n_outputs_)
        if n_tasks != self.n_outputs_ or not (
            names is None or unnamed or names == self.task_names_
        ):
            got = names if names is not None else f"{n_tasks} task(s)"
            raise ValueError(
                f"y must have the tasks the model was fitted on, "
                f"{self.task_names_}, in that order; got {got}."
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
