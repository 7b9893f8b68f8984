"""Save and load a fitted MultiTaskMMoEClassifier without pickle.

The file is a :func:`torch.save` archive of tensors and plain Python values
(None, bool, int, float, str, bytes, lists, tuples and dicts), which
:func:`torch.load` reads with ``weights_only=True``: loading it cannot run
code from the file.
"""

from __future__ import annotations

import os
import pickle
import warnings
from typing import IO, Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from ._classifier import _OPTIMIZERS, MultiTaskMMoEClassifier, _seeded

__all__ = ["load_model", "save_model"]

_FORMAT = "sk_mmoe.MultiTaskMMoEClassifier"
_FORMAT_VERSION = 1

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
            return plain(value)
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


def _params_to_plain(estimator: MultiTaskMMoEClassifier) -> dict[str, Any]:
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
        names = [n for n, cls in _OPTIMIZERS.items() if cls is params["optimizer"]]
        if not names:
            raise ValueError(
                f"optimizer={params['optimizer']!r} cannot be saved without "
                f"pickle: only the optimizers {sorted(_OPTIMIZERS)} can. Save "
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
    name, keys, pos, has_gauss, cached_gaussian = random_state.get_state()
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


def save_model(estimator: MultiTaskMMoEClassifier, path: _Path) -> None:
    """Save a fitted :class:`~sk_mmoe.MultiTaskMMoEClassifier` without pickle.

    The file holds the estimator's parameters, what it learnt about the data
    (the classes of every task, the task names, the number and names of the
    features, the training history) and the state of its network and
    optimizer, as tensors and plain Python values only.
    :func:`load_model` reads it back with ``torch.load(weights_only=True)``,
    which cannot execute code from the file.

    Read more in the :ref:`User Guide <persistence>`.

    Parameters
    ----------
    estimator : MultiTaskMMoEClassifier
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
    if not isinstance(estimator, MultiTaskMMoEClassifier):
        raise TypeError(
            f"save_model saves a MultiTaskMMoEClassifier, got "
            f"{type(estimator).__name__}. Save pipelines and other estimators "
            f"with joblib.dump."
        )
    check_is_fitted(estimator)
    from . import __version__

    classes = estimator._task_classes()
    feature_names = getattr(estimator, "feature_names_in_", None)
    payload = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "sk_mmoe_version": __version__,
        "torch_version": str(torch.__version__),
        "params": _params_to_plain(estimator),
        "random_state": _random_state_to_plain(estimator.random_state),
        # Labels with their dtype, so that ints, bools, floats and strings
        # come back exactly as they were.
        "classes": [{"values": c.tolist(), "dtype": c.dtype.str} for c in classes],
        "single_task": bool(estimator._single_task),
        "task_names": [str(name) for name in estimator.task_names_],
        "n_features_in": int(estimator.n_features_in_),
        "feature_names_in": None if feature_names is None else feature_names.tolist(),
        "history": _history_to_plain(estimator.history_),
        "module_state": _to_plain(estimator.module_.state_dict(), "module_"),
        "optimizer_state": _to_plain(
            estimator.net_.optimizer_.state_dict(), "the optimizer's state"
        ),
    }
    torch.save(payload, path)


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


def _read(path: _Path) -> dict[str, Any]:
    name = _describe(path)
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of files it then refuses.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location="cpu", weights_only=True)
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
            f"{name} is not a file written by save_model: torch.load failed "
            f"with {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{name} is not a file written by save_model.")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > _FORMAT_VERSION:
        raise ValueError(
            f"{name} was written by sk_mmoe "
            f"{payload.get('sk_mmoe_version')!r} in file format {version!r}, "
            f"which this version of sk_mmoe cannot read (format "
            f"{_FORMAT_VERSION}); upgrade sk_mmoe."
        )
    return payload


def load_model(
    path: _Path, device: str | torch.device | None = None
) -> MultiTaskMMoEClassifier:
    """Load a :class:`~sk_mmoe.MultiTaskMMoEClassifier` saved by :func:`save_model`.

    The file is read with ``torch.load(weights_only=True)``, so a file that
    holds anything but tensors and plain Python values is refused and no
    code from it is run.

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
    estimator : MultiTaskMMoEClassifier
        The fitted estimator, with the saved parameters (``callbacks=None``)
        and learnt attributes; it predicts exactly as the saved one on the
        same device. Its training history and optimizer state are restored,
        so that ``warm_start`` or ``partial_fit`` continue training where the
        saved model stopped.

    Raises
    ------
    ValueError
        If the file was not written by :func:`save_model`, or if the device
        is not available (e.g. a saved ``device="cuda"`` on a machine
        without GPU).

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
    payload = _read(path)
    name = _describe(path)
    params = dict(payload["params"])
    if device is not None:
        params["device"] = str(device)
    try:
        estimator = MultiTaskMMoEClassifier(**params)
    except TypeError as exc:
        raise ValueError(
            f"{name} holds parameters that this version of sk_mmoe does not know: {exc}"
        ) from None
    if payload["random_state"] is not None:
        estimator.random_state = _random_state_from_plain(payload["random_state"])
    try:
        torch_device = estimator._check_device()
    except ValueError as exc:
        raise ValueError(
            f"{exc} The model was saved with device={payload['params']['device']!r}; "
            f"pass load_model(path, device='cpu') to load it on the CPU."
        ) from None

    classes = [np.array(c["values"], dtype=c["dtype"]) for c in payload["classes"]]
    task_names = list(payload["task_names"])
    n_features = payload["n_features_in"]
    with _seeded(0, torch_device):  # The initial weights are overwritten.
        net = estimator._make_net(
            n_features, [len(c) for c in classes], task_names, torch_device
        )
        net.initialize()
    try:
        net.module_.load_state_dict(payload["module_state"])
        net.optimizer_.load_state_dict(payload["optimizer_state"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ValueError(
            f"The weights in {name} do not match the network built from its "
            f"parameters: {exc}"
        ) from None
    history = [dict(epoch) for epoch in payload["history"]]
    net.history_ = History({**epoch, "batches": []} for epoch in history)

    net.module_.eval()  # As after fit: prediction never switches modes.
    estimator.net_ = net
    estimator.module_ = net.module_
    estimator.history_ = history
    estimator.n_iter_ = len(history)
    estimator.n_features_in_ = n_features
    if payload["feature_names_in"] is not None:
        estimator.feature_names_in_ = np.asarray(
            payload["feature_names_in"], dtype=object
        )
    estimator.task_names_ = task_names
    estimator.n_outputs_ = len(classes)
    estimator._single_task = payload["single_task"]
    estimator.classes_ = classes[0] if payload["single_task"] else classes
    return estimator
