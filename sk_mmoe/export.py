"""Export a fitted estimator to ONNX, to serve it without Python or PyTorch.

:func:`export_onnx` writes the network of a fitted
:class:`~sk_mmoe.MultiTaskMMoEClassifier`, :class:`~sk_mmoe.MultiTaskMMoERegressor`
or :class:`~sk_mmoe.MultiTaskMMoE` as an ONNX graph that any ONNX runtime
(onnxruntime in C++, C#, Java, JavaScript...) can run. The graph computes what
``predict_proba`` and ``predict`` return: each classification task's class
probabilities and each regression task's prediction in the target's units,
and on demand the combined ranking score of ``rank_score``.

A model fitted on a DataFrame with categorical features reads the raw
columns (one input each) and encodes them inside the graph;
:func:`onnx_feed` turns a DataFrame into the graph's inputs.

The graph is built by PyTorch's ``torch.export``-based ONNX exporter
(``torch.onnx.export(..., dynamo=True)``), which needs the ``onnx`` and
``onnxscript`` packages; ``pip install ".[onnx]"``, run in a checkout of
``sk_mmoe``, installs them with ``onnxruntime``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from typing import IO, Any, cast

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._base import BaseMultiTaskMMoE
from ._fitted import FittedData, FittedState
from ._onnx_inputs import column_inputs, input_form, onnx_feed, prepend_column_inputs
from ._rank_score import rank_values
from ._tasks import Task

__all__ = ["METADATA_KEY", "export_onnx", "onnx_feed"]

#: Key of the model's ``metadata_props`` entry that describes the tasks (JSON).
METADATA_KEY = "sk_mmoe"
# Version of the JSON document under METADATA_KEY.
_METADATA_FORMAT = 1
# Name of the graph's input.
_INPUT_NAME = "X"
# Name of the output with the ranking score (with rank_weights).
_RANK_OUTPUT = "rank_score"
# The lowest opset the exporter has implementations for; it converts to lower
# ones after the fact, which may fail or change the graph.
_MIN_OPSET = 18
_EXTRA_HINT = (
    'pip install ".[onnx]" in a checkout of sk_mmoe '
    "(or pip install onnx onnxscript onnxruntime)"
)


class _ServingModule(nn.Module):
    """The network followed by each task's prediction head (:meth:`Task.head`).

    Returns one tensor per task, what ``predict_proba`` / ``predict`` compute:
    the softmax over the task's own classes (float32, ``(n, n_classes)``) for
    a classification task, the prediction in the target's units (float64,
    ``(n,)``) for a task with numeric targets. With ``rank_values`` (one
    vector per task, :func:`~sk_mmoe._rank_score.rank_values`), a last tensor
    holds the ranking score (float64, ``(n,)``): every head times its values,
    summed as ``rank_score`` sums them.
    """

    def __init__(
        self,
        network: nn.Module,
        tasks: list[Task],
        rank_values: list[np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.tasks = list(tasks)
        self.ranked = rank_values is not None
        if rank_values is not None:
            # One zero-padded row of values per task (buffers, not constants,
            # for the exporter).
            self.rank_widths = [len(values) for values in rank_values]
            table = torch.zeros(len(tasks), max(self.rank_widths), dtype=torch.float64)
            for k, values in enumerate(rank_values):
                table[k, : len(values)] = torch.as_tensor(values)
            self.register_buffer("rank_table", table, persistent=False)

    def forward(self, X: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs: torch.Tensor = self.network(X)
        heads = [
            task.head(task.outputs(outputs, k)) for k, task in enumerate(self.tasks)
        ]
        if self.ranked:
            score = torch.zeros(X.shape[0], dtype=torch.float64)
            table = cast(torch.Tensor, self.rank_table)
            for k, width in enumerate(self.rank_widths):
                columns = heads[k].reshape(heads[k].shape[0], -1).to(torch.float64)
                score = score + columns @ table[k, :width]
            heads.append(score)
        return tuple(heads)


def export_onnx(
    estimator: BaseMultiTaskMMoE,
    path: str | os.PathLike | IO[bytes],
    *,
    opset: int | None = None,
    inputs: str = "auto",
    rank_weights: Any = None,
) -> Any:
    """Write a fitted estimator's predictions as an ONNX graph.

    The graph reads the features in one of two forms (``inputs``):

    * ``"columns"``: one input per column of ``X`` in ``fit``, of shape
      ``(n_samples, 1)``, named after it (``feature_names_in_``, or ``x0``,
      ``x1``... for an array), as skl2onnx names a DataFrame's columns. A
      numeric column is float32. A categorical column
      (``categorical_features``) is encoded inside the graph as ``predict``
      encodes it, unseen and missing values included: a column of text is a
      string tensor (missing values as ``""``), a column of numbers float64
      (float32 if ``fit`` saw float32), missing values as NaN.
      :func:`onnx_feed` makes these inputs from a DataFrame.
    * ``"matrix"``: one input, ``X``: the float32 matrix of shape
      ``(n_samples, n_features_in_)`` that the network reads, the columns in
      the order of ``X`` in ``fit``, categorical columns as their integer
      codes (see the Notes).

    Either has any number of rows. The graph has one output per task, named
    after the task (``task_names_``):

    * a classification task gives its class probabilities, float32 of shape
      ``(n_samples, n_classes)``, the columns in the order of its
      ``classes_``, as ``predict_proba`` returns them (for a task of
      ``conditional_on``, the joint probability with its parent);
    * a regression or count task gives its prediction in the target's
      units, float64 of shape ``(n_samples,)``, as ``predict`` returns it.

    Each output is the task's own prediction head, the one ``predict`` and
    ``predict_proba`` run. Under onnxruntime the outputs equal
    ``predict_proba`` and ``predict`` within ``1e-5`` (regression: within
    ``1e-5`` times the task's ``target_scale_``; count: within ``1e-5``
    relative). With ``rank_weights``, a last output, ``"rank_score"``, holds
    the combined score of :meth:`~sk_mmoe.MultiTaskMMoE.rank_score`
    (float64 of shape ``(n_samples,)``), from the same heads. A model
    fitted with ``bias_features`` reads no bias column: the graph predicts
    as ``predict`` does, without the bias tower. The model's
    ``metadata_props`` hold, under the key ``"sk_mmoe"``, a JSON document
    that describes the tasks, so that a server can map the columns to
    labels (see the Notes).

    Parameters
    ----------
    estimator : MultiTaskMMoEClassifier, MultiTaskMMoERegressor or MultiTaskMMoE
        A fitted estimator. A :class:`~sklearn.pipeline.Pipeline` is refused:
        export its final step, and its preprocessing separately (for
        example with ``skl2onnx``).
    path : str, path-like or binary file object
        Where to write the ``.onnx`` file.
    opset : int, default=None
        ONNX opset version of the graph, at least 18; by default the
        exporter's (20 with PyTorch 2.13). The categorical encoding of
        ``inputs="columns"`` uses version 4 of the ``ai.onnx.ml`` domain.
    inputs : {"auto", "columns", "matrix"}, default="auto"
        The graph's inputs: one per column of ``X``, or the encoded matrix
        ``X``. ``"auto"`` is ``"columns"`` for a model with categorical
        features and ``"matrix"`` otherwise.
    rank_weights : sequence or dict, default=None
        The ``weights`` of :meth:`~sk_mmoe.MultiTaskMMoE.rank_score`: if
        given, the graph also outputs the combined ranking score, named
        ``"rank_score"``, so that a server ranks by one output. Recorded in
        the metadata under ``rank_weights`` (one list of output values per
        task).

    Returns
    -------
    model : onnx.ModelProto
        The written model.

    Raises
    ------
    TypeError
        If ``estimator`` is not an ``sk_mmoe`` estimator (a pipeline or a
        search included).
    ValueError
        If ``inputs``, ``opset`` or ``rank_weights`` is invalid, or an input
        and an output would share a name (a task named ``X``, or named like
        a column with ``inputs="columns"``, or a task or column named
        ``rank_score`` with ``rank_weights``), or a numeric categorical
        column has two categories that are one number (``1`` and ``1.0`` in
        a column of objects, which ``predict`` tells apart by their text).
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ImportError
        If ``onnx`` or ``onnxscript`` is not installed.

    Notes
    -----
    The graph is built from a copy of the network on the CPU, in evaluation
    mode: exporting changes neither the estimator's network nor its device
    or mode. It is made by PyTorch's ``torch.export``-based exporter
    (``torch.onnx.export(..., dynamo=True)``).

    The metadata is a JSON object with the keys ``format`` (1),
    ``sk_mmoe_version``, ``estimator`` (the class name), ``input`` (``"X"``,
    or null with ``inputs="columns"``), ``inputs`` (the names of the graph's
    inputs, in order), ``n_features_in``, ``feature_names_in`` (a list, or null),
    ``categorical`` (see below, or null) and ``tasks``:
    one object per task, in order, with ``name``, ``type`` (``"binary"``,
    ``"multiclass"``, ``"regression"`` or ``"poisson"``), ``output`` (the
    output's name), and ``classes`` (a list) for a classification task or
    ``mean`` and ``scale`` for a regression or count task, and
    ``conditional_on`` (the parent's name) for a conditional task; with
    ``rank_weights``, also ``rank_weights``: for each task, the value of
    each column of its output in the score. With onnxruntime::

        meta = session.get_modelmeta().custom_metadata_map["sk_mmoe"]
        tasks = json.loads(meta)["tasks"]

    With ``inputs="matrix"``, a model with categorical features reads their
    integer codes, as float32 in the same columns of ``X``: the metadata's
    ``categorical`` object (the encoder's state, as
    :func:`~sk_mmoe.save_model` stores it) lists the ``columns`` and, for
    each, its ``categories``; a value's code is ``first_code`` (2) plus its
    position in the list (values compared as text), ``other_code`` (1) for a
    value not in the list and ``missing_code`` (0) for a missing value.

    With ``inputs="columns"``, an empty string in a categorical column of
    text is a missing value (a warning says so if ``""`` was a category in
    ``fit``), and a numeric categorical column compares numbers where
    ``predict`` compares their text: ``3`` and ``3.0`` are one value.

    Unlike ``predict``, the graph does not check its input: NaN or infinite
    numeric features give NaN outputs instead of an error.

    Examples
    --------
    >>> import pytest
    >>> ort = pytest.importorskip("onnxruntime")  # pip install ".[onnx]"
    >>> _ = pytest.importorskip("onnxscript")
    >>> import io
    >>> import numpy as np
    >>> from sk_mmoe import MultiTaskMMoEClassifier, export_onnx
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> X, Y = make_task_correlation(200, n_features=5, random_state=0)
    >>> clf = MultiTaskMMoEClassifier(max_epochs=2, random_state=0).fit(X, Y)
    >>> buffer = io.BytesIO()
    >>> model = export_onnx(clf, buffer)  # or a file name, "model.onnx"
    >>> session = ort.InferenceSession(buffer.getvalue())
    >>> [output.name for output in session.get_outputs()]
    ['task0', 'task1']
    >>> onnx_proba = session.run(None, {"X": X[:3].astype(np.float32)})
    >>> proba = clf.predict_proba(X[:3])
    >>> all(np.allclose(p, q, atol=1e-5) for p, q in zip(onnx_proba, proba))
    True

    A DataFrame with a categorical column gives one input per column:

    >>> import pandas as pd
    >>> from sk_mmoe import onnx_feed
    >>> frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(5)])
    >>> frame["city"] = np.where(X[:, 0] > 0, "oslo", "rome")
    >>> clf = MultiTaskMMoEClassifier(max_epochs=2, random_state=0).fit(frame, Y)
    >>> model = export_onnx(clf, io.BytesIO())
    >>> session = ort.InferenceSession(model.SerializeToString())
    >>> [graph_input.name for graph_input in session.get_inputs()]
    ['f0', 'f1', 'f2', 'f3', 'f4', 'city']
    >>> onnx_proba = session.run(None, onnx_feed(session, frame[:3]))
    >>> proba = clf.predict_proba(frame[:3])
    >>> all(np.allclose(p, q, atol=1e-5) for p, q in zip(onnx_proba, proba))
    True
    """
    state = _check_estimator(estimator)._fitted_state()
    fitted = state.data
    if opset is not None and (
        isinstance(opset, bool) or not isinstance(opset, int) or opset < _MIN_OPSET
    ):
        raise ValueError(
            f"opset must be an int >= {_MIN_OPSET} (the lowest opset PyTorch's "
            f"ONNX exporter implements) or None, got {opset!r}."
        )
    form = input_form(fitted, inputs)
    onnx = _import_onnx()
    names = [task.name for task in fitted.tasks]
    values = None
    if rank_weights is not None:
        values = rank_values(list(fitted.tasks), rank_weights)
        if _RANK_OUTPUT in names:
            raise ValueError(
                f"A task is named {_RANK_OUTPUT!r}, the name of the ranking "
                f"score's output; rename the task to export it with rank_weights."
            )
        names.append(_RANK_OUTPUT)
    columns = column_inputs(fitted, names) if form == "columns" else None
    if form == "matrix" and _INPUT_NAME in names:
        raise ValueError(
            f"A task is named {_INPUT_NAME!r}, the name of the graph's input; "
            f"rename the task (the column of Y) to export the model."
        )

    module = _serving_module(state, values)
    example = torch.zeros(2, fitted.input_width)
    with _quiet_exporter():
        program = torch.onnx.export(
            module,
            (example,),
            None,
            input_names=[_INPUT_NAME],
            output_names=names,
            dynamic_shapes={"X": {0: torch.export.Dim("batch")}},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    assert program is not None  # returned when no file is given
    model = program.model_proto
    if columns is not None:
        model = prepend_column_inputs(model, columns)
    model.doc_string = (
        f"{type(estimator).__name__} exported by sk_mmoe: one output per task."
    )
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    metadata = _metadata(
        type(estimator).__name__, fitted, [i.name for i in model.graph.input], form
    )
    if values is not None:
        metadata["rank_weights"] = [v.tolist() for v in values]
    entry.value = json.dumps(metadata)
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return model


def _check_estimator(estimator: Any) -> BaseMultiTaskMMoE:
    if isinstance(estimator, BaseMultiTaskMMoE):
        check_is_fitted(estimator)
        return estimator
    name = type(estimator).__name__
    if hasattr(estimator, "steps"):
        hint = (
            f"a {name}: export its final step (export_onnx(pipeline[-1], path)) "
            f"and the preprocessing steps separately, for example with skl2onnx, "
            f"feeding their output to the model's input X"
        )
    elif hasattr(estimator, "best_estimator_"):
        hint = f"a {name}: export its best_estimator_"
    else:
        hint = f"{name}"
    raise TypeError(
        f"export_onnx exports a fitted MultiTaskMMoEClassifier, "
        f"MultiTaskMMoERegressor or MultiTaskMMoE, got {hint}."
    )


def _import_onnx():
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError as exc:
        raise ImportError(
            f"export_onnx needs the onnx and onnxscript packages "
            f"({exc.name or exc} is missing): {_EXTRA_HINT}"
        ) from exc
    return onnx


def _serving_module(
    state: FittedState, rank_values: list[np.ndarray] | None = None
) -> _ServingModule:
    """A CPU copy of the fitted network, in eval mode, with the task heads.

    The copy gets its tensors straight on the CPU (never a second copy on the
    network's device), and the estimator's network is left untouched.
    """
    network = state.module
    memo: dict[int, Any] = {}
    for tensor in [*network.parameters(), *network.buffers()]:
        copied = tensor.detach().to("cpu", copy=True)
        if isinstance(tensor, nn.Parameter):
            copied = nn.Parameter(copied, requires_grad=False)
        memo[id(tensor)] = copied
    network = copy.deepcopy(network, memo).eval()
    return _ServingModule(network, list(state.tasks), rank_values).eval()


def _metadata(
    estimator: str, fitted: FittedData, inputs: list[str], form: str
) -> dict[str, Any]:
    """The JSON document of the model's metadata (see export_onnx's Notes).

    ``categorical`` is the encoder's own state (as :func:`sk_mmoe.save_model`
    stores it), with the positions of its columns and the reserved codes.
    """
    from . import __version__
    from ._data.features import MISSING_CODE, N_RESERVED, OTHER_CODE

    encoder = fitted.encoder
    categorical = None
    if encoder is not None:
        categorical = {
            **encoder.state(),
            "columns": [int(j) for j in encoder.columns],
            "missing_code": MISSING_CODE,
            "other_code": OTHER_CODE,
            "first_code": N_RESERVED,
        }
    names = fitted.feature_names_in
    return {
        "format": _METADATA_FORMAT,
        "sk_mmoe_version": __version__,
        "estimator": estimator,
        "input": _INPUT_NAME if form == "matrix" else None,
        "inputs": inputs,
        "n_features_in": fitted.n_features_in,
        "feature_names_in": None if names is None else [str(f) for f in names],
        "categorical": categorical,
        "tasks": [task.metadata() for task in fitted.tasks],
    }


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's notices that concern PyTorch, not the user.

    It logs one warning per torchvision operator it cannot register and
    emits deprecation warnings of its own internals.
    """
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)
