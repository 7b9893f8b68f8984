"""Every private scikit-learn name sk_mmoe uses, imported in one place.

scikit-learn gives no public home to the tools that its own estimators use to
validate parameters (``Interval``, ``StrOptions``, ``validate_params``), to run
``fit`` under that validation (``_fit_context``) and to read the column names
of a data frame (``_get_feature_names``), nor to the bases of its k-fold
splitters (``_BaseKFold``, ``_RepeatedSplits``). sk_mmoe uses them so that its
estimators and splitters behave exactly like scikit-learn's. The rest of the
package imports them from here, so that a scikit-learn release that moves one
of them breaks this module alone, with an error that says what to do.

``validate_data`` is public since scikit-learn 1.6 (below the declared floor);
it is re-exported so that all of scikit-learn's validation helpers come from
one place.

The ``sklearn-compat`` package was considered and not used: it backports
``_fit_context``, ``validate_params`` and ``validate_data`` (which the floor
scikit-learn already has) but not ``Interval``, ``StrOptions`` or
``_get_feature_names``, and it pins an upper bound on scikit-learn that would
keep users off new releases which sk_mmoe supports.
"""

from __future__ import annotations

import importlib

import sklearn

__all__ = [
    "BaseKFold",
    "Interval",
    "RepeatedSplits",
    "StrOptions",
    "fit_context",
    "get_feature_names",
    "validate_data",
    "validate_params",
]

# Our name -> (scikit-learn module, scikit-learn name).
_NAMES = {
    "fit_context": ("sklearn.base", "_fit_context"),
    "Interval": ("sklearn.utils._param_validation", "Interval"),
    "StrOptions": ("sklearn.utils._param_validation", "StrOptions"),
    "validate_params": ("sklearn.utils._param_validation", "validate_params"),
    "get_feature_names": ("sklearn.utils.validation", "_get_feature_names"),
    "validate_data": ("sklearn.utils.validation", "validate_data"),
    "BaseKFold": ("sklearn.model_selection._split", "_BaseKFold"),
    "RepeatedSplits": ("sklearn.model_selection._split", "_RepeatedSplits"),
}


def _import(module_name: str, name: str):
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            f"sk_mmoe uses {module_name}.{name}, which scikit-learn "
            f"{sklearn.__version__} does not have. Install a scikit-learn "
            f"release that sk_mmoe supports (see its declared dependencies) "
            f"or a newer sk_mmoe."
        ) from exc


fit_context = _import(*_NAMES["fit_context"])
Interval = _import(*_NAMES["Interval"])
StrOptions = _import(*_NAMES["StrOptions"])
validate_params = _import(*_NAMES["validate_params"])
get_feature_names = _import(*_NAMES["get_feature_names"])
validate_data = _import(*_NAMES["validate_data"])
BaseKFold = _import(*_NAMES["BaseKFold"])
RepeatedSplits = _import(*_NAMES["RepeatedSplits"])
