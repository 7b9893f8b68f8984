"""Save and load fitted sk_mmoe estimators without pickle.

The file is a :func:`torch.save` archive of tensors and plain Python values
(None, bool, int, float, str, bytes, lists, tuples and dicts), which
:func:`torch.load` reads with ``weights_only=True``: loading it cannot run
code from the file. The model is stored as one inner archive with its
SHA-256 digest, so that a damaged file is refused rather than loaded as a
different model, and every field and tensor shape is checked before the
network is built.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import warnings
from typing import IO, Any, cast

import numpy as np
import torch

from ._base import BaseMultiTaskMMoE
from ._building import NetworkSpec
from ._checks import check_device
from ._classifier import MultiTaskMMoEClassifier
from ._data.features import CategoricalEncoder
from ._fitted import FittedData, NetState
from ._fitting.training import OPTIMIZERS
from ._mixed import MultiTaskMMoE
from ._persistence_upgrade import upgrade
from ._regressor import MultiTaskMMoERegressor
from ._tasks import Task, task_from_state

__all__ = ["load_model", "save_model"]

_FORMAT = "sk_mmoe.model"
# 3: the file holds the network specification, each task's state names its
# loss, and the loss state no longer lists the tasks of each kind (it
# derives them from the tasks; a bias tower is in the specification and its
# weights in the module state). Files of format 2 are read too, upgraded to
# the current content first (sk_mmoe._persistence_upgrade).
_FORMAT_VERSION = 3
# 4: the categorical encoder may hold list columns (its "sequences"), which
# readers of format 3 would ignore; models without list columns are still
# written in format 3.
_SEQUENCES_VERSION = 4
_READABLE_VERSIONS = (2, 3, 4)

#: The estimators a file can hold, by class name.
_ESTIMATORS: dict[str, type[BaseMultiTaskMMoE]] = {
    cls.__name__: cls
    for cls in (MultiTaskMMoEClassifier, MultiTaskMMoERegressor, MultiTaskMMoE)
}

_Path = str | os.PathLike | IO[bytes]


def _to_plain(value: Any, what: str) -> Any:
    """``value`` as tensors and plain Python values, or a ValueError."""
    # Subclasses of the plain types (np.float64, torch's version string...)
    # are not plain: the weights-only loader would refuse them.
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool):
        return value
    for plain in (int, float, str, bytes):
        if isinstance(value, plain):
            return cast(Any, plain)(value)
    if isinstance(value, np.ndarray):
        return _to_plain(value.tolist(), what)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, list):
        return [_to_plain(v, what) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_plain(v, what) for v in value)
    if isinstance(value, dict):
        return {_to_plain(k, what): _to_plain(v, what) for k, v in value.items()}
    raise ValueError(
        f"{what} holds a {type(value).__name__}, which cannot be saved without pickle."
    )


def _params_to_plain(estimator: BaseMultiTaskMMoE) -> dict[str, Any]:
    params = estimator.get_params(deep=False)
    if params["callbacks"] is not None:
        warnings.warn(
            "callbacks cannot be saved without pickle: the loaded model has "
            "callbacks=None. Set them again with set_params before training "
            "further, or save the model with joblib.",
            UserWarning,
            stacklevel=3,
        )
        params["callbacks"] = None
    if not isinstance(params["optimizer"], str):
        names = [n for n, cls in OPTIMIZERS.items() if cls is params["optimizer"]]
        if not names:
            raise ValueError(
                f"optimizer={params['optimizer']!r} cannot be saved without "
                f"pickle: only the optimizers {sorted(OPTIMIZERS)} can. Save "
                f"the model with joblib instead."
            )
        params["optimizer"] = names[0]
    # A RandomState is stored as its state; load_model rebuilds it.
    if isinstance(params["random_state"], np.random.RandomState):
        params["random_state"] = None
    return {
        name: _to_plain(value, f"Parameter {name}") for name, value in params.items()
    }


def _random_state_to_plain(random_state: Any) -> dict[str, Any] | None:
    if not isinstance(random_state, np.random.RandomState):
        return None
    state = cast("tuple[Any, ...]", random_state.get_state())
    name, keys, pos, has_gauss, cached_gaussian = state
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _random_state_from_plain(state: dict[str, Any]) -> np.random.RandomState:
    random_state = np.random.RandomState()
    random_state.set_state(
        (
            state["name"],
            state["keys"].numpy().astype(np.uint32),
            state["pos"],
            state["has_gauss"],
            state["cached_gaussian"],
        )
    )
    return random_state


def _history_to_plain(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training history, without entries that are not plain values."""
    plain = []
    for epoch in history:
        entries = {}
        for key, value in epoch.items():
            try:
                entries[str(key)] = _to_plain(value, "history_")
            except ValueError:
                continue  # e.g. an object recorded by a user callback
        plain.append(entries)
    return plain


def save_model(estimator: BaseMultiTaskMMoE, path: _Path) -> None:
    """Save a fitted sk_mmoe estimator without pickle.

    The file holds the estimator's parameters, what it learnt about the data
    (every task's type, classes or standardisation, the task names, the
    number and names of the features, the training history) and the state of
    its network, loss (learned task weights) and optimizer, as tensors and
    plain Python values only, with a SHA-256 digest of that content.
    :func:`load_model` reads it back with ``torch.load(weights_only=True)``,
    which cannot execute code from the file.

    Read more in the :ref:`User Guide <persistence>`.

    Parameters
    ----------
    estimator : MultiTaskMMoEClassifier, MultiTaskMMoERegressor or MultiTaskMMoE
        A fitted estimator. The ``callbacks`` parameter cannot be stored: the
        loaded estimator gets ``callbacks=None`` (with a warning here). An
        ``optimizer`` given as a class is stored by its name (e.g.
        ``torch.optim.Adam`` as ``"adam"``); other optimizer classes cannot
        be saved. A ``RandomState`` instance as ``random_state`` is stored as
        its current state.

    path : str, path-like or binary file object
        Where to write, as for :func:`torch.save`.

    Raises
    ------
    NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If a parameter holds an object that cannot be stored without pickle.

    See Also
    --------
    load_model : Rebuild the estimator from the file.

    Examples
    --------
    >>> import io
    >>> from sk_mmoe import MultiTaskMMoEClassifier, load_model, save_model
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> X, Y = make_task_correlation(200, 0.5, n_features=5, random_state=0)
    >>> clf = MultiTaskMMoEClassifier(max_epochs=2, random_state=0).fit(X, Y)
    >>> buffer = io.BytesIO()
    >>> save_model(clf, buffer)
    >>> _ = buffer.seek(0)
    >>> clf2 = load_model(buffer)
    >>> bool((clf2.predict(X) == clf.predict(X)).all())
    True
    """
    if type(estimator) not in _ESTIMATORS.values():
        raise TypeError(
            f"save_model saves the sk_mmoe estimators {sorted(_ESTIMATORS)}, got "
            f"{type(estimator).__name__}. Save pipelines and other estimators "
            f"with joblib.dump."
        )
    state = estimator._fitted_state()
    data, saved = state.data, NetState.of(state.net)
    from . import __version__

    content = {
        "estimator": type(estimator).__name__,
        "params": _params_to_plain(estimator),
        "random_state": _random_state_to_plain(estimator.random_state),
        "tasks": [task.state() for task in data.tasks],
        "network": data.spec.state(),
        "single_task": bool(data.single_task),
        "n_features_in": int(data.n_features_in),
        "feature_names_in": None
        if data.feature_names_in is None
        else data.feature_names_in.tolist(),
        "categorical": None if data.encoder is None else data.encoder.state(),
        "history": _history_to_plain(saved.history),
        # The trained network: module_, and the bias tower beside it if any.
        "module_state": _to_plain(saved.module, "net_.module_"),
        "criterion_state": _to_plain(saved.criterion, "the loss"),
        "optimizer_state": _to_plain(saved.optimizer, "the optimizer's state"),
        "sparse_optimizer_state": _to_plain(
            saved.sparse_optimizer, "the sparse optimizer's state"
        ),
    }
    buffer = io.BytesIO()
    torch.save(content, buffer)
    inner = buffer.getvalue()
    torch.save(
        {
            "format": _FORMAT,
            "format_version": _SEQUENCES_VERSION
            if getattr(data.encoder, "sequences", None) is not None
            else _FORMAT_VERSION,
            "sk_mmoe_version": __version__,
            "torch_version": str(torch.__version__),
            "sha256": hashlib.sha256(inner).hexdigest(),
            "content": inner,
        },
        path,
    )


def _unpickler_reason(exc: Exception) -> str:
    """What torch's weights-only unpickler refused, in a few words."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    text = text.split("Check the documentation", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines or [type(exc).__name__])[0].split(" was not an allowed")[0]


def _describe(path: _Path) -> str:
    if isinstance(path, str | os.PathLike):
        return repr(os.fspath(path))
    return "The file object"


def _torch_load(source: Any, name: str) -> Any:
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of files it then refuses.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{name} is not a file written by save_model: "
            f"torch.load(weights_only=True) refused it ({_unpickler_reason(exc)}). "
            f"Files that hold Python objects other than tensors and plain values "
            f"are not loaded, since loading them could run code from the file; "
            f"use joblib.load for files you trust."
        ) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # torch raises RuntimeError, EOFError...
        raise ValueError(
            f"{name} is not a file written by save_model, or it is corrupted: "
            f"torch.load failed with {type(exc).__name__}: {exc}"
        ) from None


def _read(path: _Path) -> dict[str, Any]:
    """The verified content of a file written by :func:`save_model`."""
    name = _describe(path)
    outer = _torch_load(path, name)
    if not isinstance(outer, dict) or outer.get("format") != _FORMAT:
        raise ValueError(f"{name} is not a file written by save_model.")
    version = outer.get("format_version")
    if not isinstance(version, int) or version not in _READABLE_VERSIONS:
        raise ValueError(
            f"{name} was written by sk_mmoe {outer.get('sk_mmoe_version')!r} in "
            f"file format {version!r}, which this version of sk_mmoe cannot "
            f"read (formats {', '.join(map(str, _READABLE_VERSIONS))})."
        )
    data, digest = outer.get("content"), outer.get("sha256")
    if not isinstance(data, bytes) or not isinstance(digest, str):
        raise ValueError(f"{name} is malformed: its content or checksum is missing.")
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(
            f"{name} is corrupted: its content does not match its SHA-256 "
            f"checksum. Restore the file from a backup or refit the model."
        )
    content = _torch_load(io.BytesIO(data), name)
    if not isinstance(content, dict):
        raise ValueError(f"{name} is malformed: its content is not a dict.")
    content["format_version"] = version
    return content


_FIELDS: dict[str, tuple[type, ...]] = {
    "estimator": (str,),
    "params": (dict,),
    "random_state": (dict, type(None)),
    "tasks": (list,),
    "single_task": (bool,),
    "n_features_in": (int,),
    "feature_names_in": (list, type(None)),
    "categorical": (dict, type(None)),
    "history": (list,),
    "module_state": (dict,),
    "criterion_state": (dict,),
    "optimizer_state": (dict,),
    "sparse_optimizer_state": (dict, type(None)),
}


def _check_fields(content: dict[str, Any], name: str) -> None:
    for field, types in _FIELDS.items():
        if field not in content:
            raise ValueError(f"{name} is malformed: it has no {field!r} entry.")
        if not isinstance(content[field], types) or isinstance(
            content[field], bool
        ) is not (bool in types):
            raise ValueError(
                f"{name} is malformed: its {field!r} entry is a "
                f"{type(content[field]).__name__}."
            )
    if content["estimator"] not in _ESTIMATORS:
        raise ValueError(
            f"{name} holds an unknown estimator {content['estimator']!r}; "
            f"known: {sorted(_ESTIMATORS)}."
        )
    if not content["tasks"] or content["n_features_in"] < 1:
        raise ValueError(f"{name} is malformed: it has no tasks or no features.")
    names = content["feature_names_in"]
    if names is not None and (
        len(names) != content["n_features_in"]
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(
            f"{name} is malformed: its feature names are not "
            f"{content['n_features_in']} strings."
        )
    if not all(isinstance(epoch, dict) for epoch in content["history"]):
        raise ValueError(f"{name} is malformed: its history is not a list of dicts.")


def load_model(
    path: _Path, device: str | torch.device | None = None
) -> BaseMultiTaskMMoE:
    """Load an estimator saved by :func:`save_model`.

    The file is read with ``torch.load(weights_only=True)``, so a file that
    holds anything but tensors and plain Python values is refused and no
    code from it is run. Every field and tensor shape is checked before the
    network is built, so a malformed file gives a ValueError, never a
    malformed network or a large allocation. Its SHA-256 checksum is
    verified: it detects damage (a truncated or corrupted file), not
    tampering, since whoever edits a file can recompute it. A crafted file
    with a valid checksum loads as the model it holds: load models only
    from a source you trust to have saved them (see the :ref:`User Guide
    <persistence>`).

    Read more in the :ref:`User Guide <persistence>`.

    Parameters
    ----------
    path : str, path-like or binary file object
        The file written by :func:`save_model`.

    device : str or torch.device, default=None
        Device to load the network onto, which also becomes the estimator's
        ``device`` parameter; ``None`` means the saved ``device``. Pass
        ``"cpu"`` to load a model trained on a GPU on a machine without one.

    Returns
    -------
    estimator : MultiTaskMMoEClassifier, MultiTaskMMoERegressor or MultiTaskMMoE
        The fitted estimator, with the saved parameters (``callbacks=None``)
        and learnt attributes; it predicts exactly as the saved one on the
        same device. Its training history, learned task weights and
        optimizer state are restored, so that ``warm_start`` or
        ``partial_fit`` continue training where the saved model stopped.

    Raises
    ------
    ValueError
        If the file was not written by :func:`save_model`, is corrupted or
        malformed, or if the device is not available (e.g. a saved
        ``device="cuda"`` on a machine without GPU).

    See Also
    --------
    save_model : Write the file.

    Examples
    --------
    >>> import io
    >>> from sk_mmoe import MultiTaskMMoEClassifier, load_model, save_model
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> X, Y = make_task_correlation(200, 0.5, n_features=5, random_state=0)
    >>> clf = MultiTaskMMoEClassifier(max_epochs=2, random_state=0).fit(X, Y)
    >>> buffer = io.BytesIO()
    >>> save_model(clf, buffer)
    >>> _ = buffer.seek(0)
    >>> load_model(buffer, device="cpu").task_names_
    ['task0', 'task1']
    """
    name = _describe(path)
    content = upgrade(_read(path))
    _check_fields(content, name)
    estimator, data = _estimator_from(content, device, name)
    torch_device = _device_of(estimator, content, name)
    saved = NetState(
        module=content["module_state"],
        criterion=content["criterion_state"],
        optimizer=content["optimizer_state"],
        sparse_optimizer=content["sparse_optimizer_state"],
        history=content["history"],
    )
    estimator._restore(saved, data, torch_device, source=name)
    return estimator


def _estimator_from(
    content: dict[str, Any], device: Any, name: str
) -> tuple[BaseMultiTaskMMoE, FittedData]:
    """The unfitted estimator and what its fit learnt of the data, checked."""
    params = dict(content["params"])
    if device is not None:
        params["device"] = str(device)
    try:
        estimator = _ESTIMATORS[content["estimator"]](**params)
        estimator._validate_params()
        if content["random_state"] is not None:
            estimator.random_state = _random_state_from_plain(content["random_state"])
        tasks = [task_from_state(state) for state in content["tasks"]]
        estimator._module_params()
        encoder = _read_encoder(content["categorical"], content["n_features_in"])
    except ValueError as exc:
        raise ValueError(f"{name} holds invalid parameters: {exc}") from None
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"{name} is malformed or holds parameters that this version of "
            f"sk_mmoe does not know: {type(exc).__name__}: {exc}"
        ) from None
    feature_names = content["feature_names_in"]
    data = FittedData(
        tasks=tuple(tasks),
        spec=_network_spec_of(content, tasks, name),
        encoder=encoder,
        single_task=content["single_task"],
        feature_names_in=None
        if feature_names is None
        else np.asarray(feature_names, dtype=object),
    )
    return estimator, data


def _device_of(
    estimator: BaseMultiTaskMMoE, content: dict[str, Any], name: str
) -> torch.device:
    try:
        return check_device(estimator.device)
    except ValueError as exc:
        raise ValueError(
            f"{exc} The model was saved with "
            f"device={content['params'].get('device')!r}; pass "
            f"load_model(path, device='cpu') to load it on the CPU."
        ) from None


def _network_spec_of(
    content: dict[str, Any], tasks: list[Task], name: str
) -> NetworkSpec:
    """The network specification of a file, checked against its tasks and
    against the number of stored weights (a crafted file cannot make the
    network larger than the weights it holds)."""
    try:
        spec = NetworkSpec.from_state(content.get("network"))
    except ValueError as exc:
        raise ValueError(f"{name} is malformed: {exc}.") from None
    output_sizes = tuple(task.n_outputs for task in tasks)
    if spec.n_features != content["n_features_in"] or spec.output_sizes != output_sizes:
        raise ValueError(
            f"{name} is malformed: its network specification, its "
            f"{content['n_features_in']} features and its tasks do not match."
        )
    stored = sum(
        t.numel()
        for t in content["module_state"].values()
        if isinstance(t, torch.Tensor)
    )
    if spec.n_features > stored or sum(output_sizes) > stored:
        raise ValueError(
            f"{name} is malformed: it declares {spec.n_features} features and "
            f"{sum(output_sizes)} outputs for {stored} stored weights."
        )
    return spec


def _read_encoder(state: Any, n_features: int) -> CategoricalEncoder | None:
    """The categorical encoder of a file, its fields checked."""
    if state is None:
        return None
    mask, categories = state.get("mask"), state.get("categories")
    if (
        not isinstance(mask, list)
        or len(mask) != n_features
        or not all(isinstance(m, bool) for m in mask)
        or not isinstance(categories, list)
        or not all(
            isinstance(c, list) and all(isinstance(v, str) for v in c)
            for c in categories
        )
        or not isinstance(state.get("max_categories"), int)
        or not isinstance(state.get("min_frequency"), int)
    ):
        raise ValueError("its categorical encoder is malformed")
    return CategoricalEncoder.from_state(state)
