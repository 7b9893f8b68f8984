"""The raw columns of ``X`` as the inputs of an exported ONNX graph.

:func:`sk_mmoe.export_onnx` with ``inputs="columns"`` puts a small graph in
front of the network's: one ``(n, 1)`` input per column of ``X``, named
after it, and the categorical encoding of ``fit`` (``ai.onnx.ml``
``LabelEncoder`` nodes, one per categorical column) that turns them into the
float32 matrix the network reads. :func:`onnx_feed` turns a DataFrame into
what such a graph (or one with the single input ``X``) is fed.

Input types: a numeric column is float32 (missing: NaN); a categorical
column of text (or booleans, or mixed values) is a string tensor (missing:
the empty string); a categorical column of numbers is float32 if ``fit`` saw
float32 values, else float64 (integers included, exact up to 2**53), with
NaN for missing. A value is looked up as ``predict`` looks it up: code
``first_code + position`` for a kept category, ``missing_code`` for a missing
value and ``other_code`` for any other value.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np

from ._data.features import MISSING_CODE, N_RESERVED, OTHER_CODE, _text_column
from ._data.frames import check_not_lazy, is_polars, polars_values
from ._data.sequences import PAD_CODE, padded_text
from ._data.targets import missing_mask

if TYPE_CHECKING:
    from ._fitted import FittedData

__all__ = [
    "INPUT_FORMS",
    "LENGTH_SUFFIX",
    "column_inputs",
    "input_form",
    "onnx_feed",
    "prepend_column_inputs",
]

#: Values of export_onnx's ``inputs``.
INPUT_FORMS = ("auto", "columns", "matrix")
#: The input of a list column's number of values: its name and this suffix.
LENGTH_SUFFIX = ":length"
# The version of the ai.onnx.ml domain: LabelEncoder 4 takes keys of any type
# (float64 included) and matches a NaN key to a NaN input.
_ML_OPSET = 4
_ML_DOMAIN = "ai.onnx.ml"
# The NumPy dtype of each input type (ONNX's names for them).
_STRING, _FLOAT, _DOUBLE, _INT64 = "string", "float", "double", "int64"
_DTYPES = {_FLOAT: np.float32, _DOUBLE: np.float64, _STRING: object}


class ColumnInput(NamedTuple):
    """One input of the graph: a column of ``X``."""

    name: str
    type: str  # "float", "double" or "string"
    # The kept values of a categorical column as the input's type (text or
    # numbers), in code order; None for a numeric column.
    keys: np.ndarray | None
    # Values per row: 1, or a list column's max_sequence_length (its input
    # is then the padded text of its values, beside their number).
    length: int = 1


def input_form(fitted: FittedData, inputs: str) -> str:
    """``"columns"`` or ``"matrix"``: what ``inputs`` asks for a model fitted
    as ``fitted`` says."""
    if not isinstance(inputs, str) or inputs not in INPUT_FORMS:
        raise ValueError(
            f"inputs must be one of {', '.join(map(repr, INPUT_FORMS))}, "
            f"got {inputs!r}."
        )
    encoder = fitted.encoder
    if inputs == "auto":
        return "matrix" if encoder is None else "columns"
    if inputs == "matrix" and getattr(encoder, "sequences", None) is not None:
        raise ValueError(
            "export_onnx(inputs='matrix') cannot export a model with list "
            "columns: its graph reads them as padded values and lengths; "
            "export with inputs='columns' (the default)."
        )
    return inputs


def column_inputs(fitted: FittedData, outputs: list[str]) -> list[ColumnInput]:
    """The graph's inputs, one per column of ``X`` in ``fit``, in order.

    Named after the fitted feature names, or ``x0``, ``x1``... for an array;
    checked against the names of the graph's ``outputs`` (the tasks', and
    the ranking score's if any) before any export work.
    """
    fitted_names = fitted.feature_names_in
    names = (
        [f"x{j}" for j in range(fitted.n_features_in)]
        if fitted_names is None
        else [str(name) for name in fitted_names]
    )
    if "" in names or len(set(names)) != len(names):
        raise ValueError(
            "export_onnx(inputs='columns') names the graph's inputs after the "
            "columns of X, which must be distinct and non-empty; export with "
            "inputs='matrix' instead."
        )
    clashes = [name for name in outputs if name in names]
    if clashes:
        raise ValueError(
            f"An output of the graph (a task, or the ranking score) and a "
            f"column of X are both named {clashes[0]!r}: the graph's inputs "
            f"and outputs need distinct names; rename the task (the column of "
            f"Y) or the column, or export with inputs='matrix'."
        )
    specs = [ColumnInput(name, _FLOAT, None) for name in names]
    encoder = fitted.encoder
    if encoder is None:
        return specs
    for j, categories, value_type in zip(
        encoder.columns, encoder.categories, encoder.value_types, strict=True
    ):
        kind = {"str": _STRING, "float32": _FLOAT, "float64": _DOUBLE}[value_type]
        if kind == _STRING:
            keys = np.array(categories, dtype=object)
            if "" in categories:
                warnings.warn(
                    f"Column {names[j]!r} has the empty string as a category; "
                    f"the exported graph reads an empty string as a missing "
                    f"value (code {MISSING_CODE}).",
                    UserWarning,
                    stacklevel=3,
                )
        else:
            keys = _numeric_keys(names[j], categories, _DTYPES[kind])
        specs[j] = ColumnInput(names[j], kind, keys)
    sequences = encoder.sequences
    if sequences is None:
        return specs
    shared = dict(zip(encoder.columns, encoder.categories, strict=True))
    for j, target, own in zip(
        sequences.columns, sequences.targets, sequences.categories, strict=True
    ):
        length_name = names[j] + LENGTH_SUFFIX
        if length_name in names or length_name in outputs:
            raise ValueError(
                f"The graph reads the number of values of the list column "
                f"{names[j]!r} as the input {length_name!r}, which is also a "
                f"column of X or an output; rename it."
            )
        categories = own if target is None else shared[target]
        keys = np.array(categories, dtype=object)
        specs[j] = ColumnInput(names[j], _STRING, keys, sequences.max_length)
    return specs


def prepend_column_inputs(model: Any, specs: list[ColumnInput]) -> Any:
    """``model`` (whose one input is the encoded ``X``) fed from raw columns.

    The network's names get a prefix that no column starts with, so that a
    column may be named like any of them; its outputs keep their names.
    """
    import onnx
    from onnx import compose, helper

    (network_input,) = model.graph.input
    outputs = {output.name for output in model.graph.output}
    prefix = "sk_mmoe/"
    while any(name.startswith(prefix) for name in [*outputs, *(s.name for s in specs)]):
        prefix = "_" + prefix
    network = onnx.ModelProto()
    network.CopyFrom(model)
    compose.add_prefix_graph(network.graph, prefix, rename_outputs=False, inplace=True)
    batch = network.graph.input[0].type.tensor_type.shape.dim[0].dim_param or "batch"

    nodes, graph_inputs, columns, blocks = [], [], [], []
    for j, spec in enumerate(specs):
        elem_type = getattr(onnx.TensorProto, spec.type.upper())
        graph_inputs.append(
            helper.make_tensor_value_info(spec.name, elem_type, [batch, spec.length])
        )
        if spec.keys is None:
            columns.append(spec.name)
            continue
        codes = f"{prefix}codes_{j}"
        if spec.length == 1:
            nodes.extend(_encoding_nodes(spec, codes, f"{prefix}encode_{j}"))
            columns.append(codes)
            continue
        lengths = spec.name + LENGTH_SUFFIX
        graph_inputs.append(
            helper.make_tensor_value_info(lengths, onnx.TensorProto.INT64, [batch, 1])
        )
        list_nodes, count = _list_nodes(spec, codes, f"{prefix}list_{j}")
        nodes.extend(list_nodes)
        columns.append(count)
        blocks.append(codes)
    encoded = f"{prefix}encoded_X"
    nodes.append(
        helper.make_node(
            "Concat", columns + blocks, [encoded], name=f"{prefix}concat", axis=1
        )
    )
    width = len(specs) + sum(spec.length for spec in specs if spec.length > 1)
    graph = helper.make_graph(
        nodes,
        "sk_mmoe_column_inputs",
        graph_inputs,
        [
            helper.make_tensor_value_info(
                encoded, onnx.TensorProto.FLOAT, [batch, width]
            )
        ],
    )
    opsets = {entry.domain: entry.version for entry in network.opset_import}
    encoding = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", opsets.get("", opsets.get("ai.onnx", 18))),
            helper.make_opsetid(_ML_DOMAIN, _ML_OPSET),
        ],
        ir_version=network.ir_version,
    )
    merged = compose.merge_models(
        encoding, network, io_map=[(encoded, prefix + network_input.name)]
    )
    # merge_models lists a domain the two models share twice.
    versions = {entry.domain: entry.version for entry in merged.opset_import}
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(*item) for item in versions.items())
    merged.producer_name = model.producer_name
    merged.producer_version = model.producer_version
    return merged


def _encoding_nodes(spec: ColumnInput, codes: str, name: str) -> list[Any]:
    """Nodes that turn one categorical column into its float32 codes."""
    from onnx import TensorProto, helper, numpy_helper

    assert spec.keys is not None  # a categorical column

    kept = N_RESERVED + np.arange(len(spec.keys))
    if spec.type == _STRING:
        # "" is the missing value (a warning said so if it was a category).
        present = spec.keys != ""
        keys = np.concatenate([[""], spec.keys[present]]).astype(object)
        values = np.concatenate([[MISSING_CODE], kept[present]])
        value_dtype: type = np.float32
    else:
        # A NaN key matches a NaN input. LabelEncoder maps float32 to float32
        # and float64 to float64 only: codes in float64 are cast afterwards.
        value_dtype = _DTYPES[spec.type]
        keys = np.concatenate([[np.nan], spec.keys]).astype(value_dtype)
        values = np.concatenate([[MISSING_CODE], kept])
    float32 = value_dtype == np.float32
    label_encoder = helper.make_node(
        "LabelEncoder",
        [spec.name],
        [codes if float32 else codes + "_float64"],
        name=name,
        domain=_ML_DOMAIN,
        keys_tensor=numpy_helper.from_array(keys),
        values_tensor=numpy_helper.from_array(values.astype(value_dtype)),
        default_tensor=numpy_helper.from_array(np.array([OTHER_CODE], value_dtype)),
    )
    if float32:
        return [label_encoder]
    cast = helper.make_node(
        "Cast", [codes + "_float64"], [codes], name=name + "_cast", to=TensorProto.FLOAT
    )
    return [label_encoder, cast]


def _list_nodes(spec: ColumnInput, codes: str, name: str) -> tuple[list[Any], str]:
    """Nodes that turn a list column's padded text and number of values
    into its padded codes (``codes``) and its number of values as float32
    (the name returned), as :mod:`sk_mmoe._data.sequences` encodes them."""
    from onnx import TensorProto, helper, numpy_helper

    assert spec.keys is not None  # a list column's vocabulary

    lengths = spec.name + LENGTH_SUFFIX

    def constant(suffix: str, value: np.ndarray) -> str:
        output = f"{name}_{suffix}"
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                [output],
                name=output,
                value=numpy_helper.from_array(value),
            )
        )
        return output

    nodes: list[Any] = []
    values = N_RESERVED + np.arange(len(spec.keys))
    nodes.append(
        helper.make_node(
            "LabelEncoder",
            [spec.name],
            [f"{name}_all"],
            name=f"{name}_encode",
            domain=_ML_DOMAIN,
            keys_tensor=numpy_helper.from_array(spec.keys.astype(object)),
            values_tensor=numpy_helper.from_array(values.astype(np.float32)),
            default_tensor=numpy_helper.from_array(np.array([OTHER_CODE], np.float32)),
        )
    )
    slots = constant("slots", np.arange(spec.length, dtype=np.int64)[None, :])
    pad = constant("pad", np.array(PAD_CODE, dtype=np.float32))
    nodes.append(
        helper.make_node(
            "Less", [slots, lengths], [f"{name}_present"], name=f"{name}_less"
        )
    )
    nodes.append(
        helper.make_node(
            "Where",
            [f"{name}_present", f"{name}_all", pad],
            [codes],
            name=f"{name}_where",
        )
    )
    count = f"{name}_count"
    nodes.append(
        helper.make_node("Cast", [lengths], [count], name=count, to=TensorProto.FLOAT)
    )
    return nodes, count


def _numeric_keys(name: str, categories: list[str], dtype: type) -> np.ndarray:
    """The categories of a numeric column as numbers of its input's type.

    ``predict`` compares values as text, so two categories whose numbers are
    equal (``1`` and ``1.0`` in a column of mixed objects) are two codes that
    a graph reading numbers cannot tell apart.
    """
    keys: np.ndarray = np.array([float(c) for c in categories], dtype=dtype)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        duplicated = categories[first[counts > 1][0]]
        raise ValueError(
            f"Column {name!r} has categories that are different text but the "
            f"same number ({duplicated!r} and another), which a graph reading "
            f"{dtype.__name__} cannot tell apart; export with inputs='matrix' "
            f"and encode the column before the graph."
        )
    return keys


def onnx_feed(model: Any | str | os.PathLike, X: Any) -> dict[str, np.ndarray]:
    """The inputs of an exported graph for the rows of ``X``.

    Parameters
    ----------
    model : onnx.ModelProto, onnxruntime.InferenceSession, str or path-like
        The graph written by :func:`~sk_mmoe.export_onnx`, a session that
        runs it, or the path of its file.
    X : DataFrame or array-like of shape (n_samples, n_features)
        The rows to predict, as ``predict`` takes them. A graph with one
        input per column takes a DataFrame's columns by name (other columns
        are ignored) and an array's by position; a graph with the single
        input ``X`` takes ``X`` as a float32 matrix.

    Returns
    -------
    feed : dict of str to ndarray
        For each input of the graph, its array: ``(n_samples, 1)`` text
        (objects, missing values as ``""``, numbers written as ``predict``
        compares them) for a string input; float32 or float64 with NaN for
        missing values for a numeric input; for the input ``X``, the float32
        matrix. Pass it to ``session.run(None, feed)``.

    Raises
    ------
    ValueError
        If ``X`` lacks a column that the graph reads, has a number of columns
        other than the graph's inputs, or has text where the graph reads
        numbers.

    Examples
    --------
    >>> import pytest
    >>> ort = pytest.importorskip("onnxruntime")  # pip install ".[onnx]"
    >>> _ = pytest.importorskip("onnxscript")
    >>> import io
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sk_mmoe import MultiTaskMMoEClassifier, export_onnx, onnx_feed
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(
    ...     {
    ...         "age": rng.normal(size=200),
    ...         "city": rng.choice(["oslo", "rome", None], 200),
    ...     }
    ... )
    >>> y = (X["age"] > 0).astype(int)
    >>> clf = MultiTaskMMoEClassifier(max_epochs=2, random_state=0).fit(X, y)
    >>> buffer = io.BytesIO()
    >>> _ = export_onnx(clf, buffer)
    >>> session = ort.InferenceSession(buffer.getvalue())
    >>> [(i.name, i.type) for i in session.get_inputs()]
    [('age', 'tensor(float)'), ('city', 'tensor(string)')]
    >>> (proba,) = session.run(None, onnx_feed(session, X[:3]))
    >>> bool(np.allclose(proba, clf.predict_proba(X[:3]), atol=1e-5))
    True
    """
    check_not_lazy(X, "X")
    specs = _graph_inputs(model)
    # A list column's number of values is an input of its own, fed from the
    # column (named after it).
    counted = {
        name.removesuffix(LENGTH_SUFFIX)
        for name, kind, _ in specs
        if kind == _INT64 and name.endswith(LENGTH_SUFFIX)
    }
    specs = [spec for spec in specs if spec[1] != _INT64]
    if len(specs) == 1 and specs[0][2] != 1 and not counted:
        # The encoded matrix: one input of all the features.
        ((name, kind, _),) = specs
        try:
            matrix = np.asarray(X, dtype=_DTYPES[kind])
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"The graph reads the encoded matrix {name!r} (numbers): X has "
                f"values that are not numbers ({exc}); export the model with "
                f"inputs='columns' to feed raw columns."
            ) from None
        return {name: matrix}
    names = [name for name, _, _ in specs]
    columns = getattr(X, "columns", None)
    columns = None if columns is None else [str(c) for c in columns]
    # A one-input graph fed a frame without that column takes its one column.
    if columns is not None and (len(specs) > 1 or names[0] in columns):
        absent = [name for name in names if name not in columns]
        if absent:
            raise ValueError(
                f"X has no column {absent[0]!r}, an input of the graph (its "
                f"inputs are {names})."
            )
        X = X.select(names) if is_polars(X, "DataFrame") else X[names]
    else:
        if not hasattr(X, "shape") or getattr(X, "ndim", 2) != 2:
            X = np.asarray(X, dtype=object)
        if X.ndim != 2 or X.shape[1] != len(specs):
            raise ValueError(
                f"X must have one column per input of the graph ({len(specs)}), "
                f"got shape {X.shape}."
            )
    feed = {}
    for j, (name, kind, width) in enumerate(specs):
        if name in counted:
            # A list column's input has a fixed width: its max_length.
            feed[name], feed[name + LENGTH_SUFFIX] = padded_text(X, j, cast(int, width))
        elif kind == _STRING:
            feed[name] = _string_column(X, j)
        else:
            feed[name] = _numeric_column(X, j, name, _DTYPES[kind])
    return feed


def _string_column(X: Any, j: int) -> np.ndarray:
    """Column ``j`` as the text ``predict`` compares, ``""`` where missing."""
    text, missing = _text_column(X, j)
    text = text.astype(object)
    text[missing] = ""
    return text.reshape(-1, 1)


def _numeric_column(X: Any, j: int, name: str, dtype: type) -> np.ndarray:
    """Column ``j`` as ``dtype`` numbers, NaN where missing."""
    try:
        if hasattr(X, "iloc"):
            values = X.iloc[:, j].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = (
                polars_values(X.to_series(j)) if is_polars(X, "DataFrame") else X[:, j]
            )
            values = np.asarray(values)
            if values.dtype.kind not in "iuf":
                missing = missing_mask(values, None)
                values = np.where(missing, np.nan, values).astype(np.float64)
        return np.asarray(values, dtype=dtype).reshape(-1, 1)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Column {name!r} of X must hold numbers, as the graph reads it: {exc}"
        ) from None


def _graph_inputs(model: Any) -> list[tuple[str, str, int | None]]:
    """(name, type, width) of each input of ``model``.

    The type is "float", "double" or "string"; the width is the second
    dimension, None if unknown.
    """
    if hasattr(model, "get_inputs"):  # an onnxruntime session
        specs = [
            (
                i.name,
                i.type.removeprefix("tensor(").rstrip(")"),
                i.shape[1]
                if len(i.shape) == 2 and isinstance(i.shape[1], int)
                else None,
            )
            for i in model.get_inputs()
        ]
    else:
        import onnx

        if isinstance(model, str | bytes | os.PathLike) or hasattr(model, "read"):
            model = (
                onnx.load_model(model)
                if not isinstance(model, bytes)
                else (onnx.load_model_from_string(model))
            )
        if not isinstance(model, onnx.ModelProto):
            raise TypeError(
                f"model must be an onnx.ModelProto, an onnxruntime "
                f"InferenceSession or the path of an .onnx file, got "
                f"{type(model).__name__}."
            )
        initializers = {tensor.name for tensor in model.graph.initializer}
        types = {
            onnx.TensorProto.FLOAT: _FLOAT,
            onnx.TensorProto.DOUBLE: _DOUBLE,
            onnx.TensorProto.STRING: _STRING,
            onnx.TensorProto.INT64: _INT64,
        }
        specs = [
            (
                i.name,
                types.get(i.type.tensor_type.elem_type, "other"),
                _width(i.type.tensor_type.shape),
            )
            for i in model.graph.input
            if i.name not in initializers
        ]
    for name, kind, _ in specs:
        if kind not in _DTYPES and not (
            kind == _INT64 and name.endswith(LENGTH_SUFFIX)
        ):
            raise ValueError(
                f"The graph's input {name!r} is a {kind} tensor; onnx_feed "
                f"makes the inputs of a graph written by export_onnx."
            )
    return specs


def _width(shape: Any) -> int | None:
    """The second dimension of an ONNX tensor shape, None if not a number."""
    if len(shape.dim) != 2 or not shape.dim[1].HasField("dim_value"):
        return None
    return int(shape.dim[1].dim_value)
