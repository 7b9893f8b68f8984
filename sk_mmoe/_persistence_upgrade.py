"""Older contents of :func:`sk_mmoe.save_model` files, as the current one.

:func:`upgrade` is the only place that knows older file contents: it turns
the content of any readable file into the content that the current
:func:`~sk_mmoe.save_model` writes, and :func:`~sk_mmoe.load_model` then
reads that alone. What it upgrades:

* format 2 (no network specification: it is read from the names of the
  stored weights; tasks that do not name their loss, which train with their
  type's default; the loss state lists the tasks of each kind, which the
  loss now derives from the tasks);
* files of formats 3 to 5 written before an option existed, which lack its
  entry: ``numeric_clip`` (they clipped), ``numeric_missing`` (they refused
  missing values), ``numeric_frequencies`` and ``numeric_lite`` (periodic
  embeddings of 48 frequencies, a linear layer per column),
  ``embedding_dims`` (one embedding size for all columns), the bias
  tower's entries (none), and the categorical columns' ``value_types``
  (text);
* format 4 (list columns), except a list column that shares the table of a
  categorical column and pools by ``"mean"`` or ``"attention"`` (or
  ``"auto"``, the mean): format 5
  pools such a column with the candidate (new weights and widths), so those
  files are refused with a ValueError that says to refit.

A malformed content is left as it is, for the reader to refuse with its
own message.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ._tasks import task_from_state
from .nn.network import NUMERIC_FREQUENCIES, NUMERIC_LITE

__all__ = ["upgrade"]

# The entries of a network specification that files written before their
# option lack, and the value that reproduces those files' networks.
_SPEC_DEFAULTS = {
    "bias_columns": None,
    "bias_task_mask": None,
    "embedding_dims": None,
    "numeric_clip": True,
    "numeric_missing": False,
    "numeric_frequencies": NUMERIC_FREQUENCIES,
    "numeric_lite": NUMERIC_LITE,
}
# Entries of the loss state of format 2 (the tasks of each kind).
_FORMAT_2_LOSS_ENTRIES = ("classification_tasks", "regression_tasks")


def upgrade(content: dict[str, Any], source: str = "The file") -> dict[str, Any]:
    """``content`` (with its ``format_version``) as the current format has it
    (``source``: the file, named in the message of a file refused).

    The argument is left unchanged; the result is a new dict.
    """
    content = copy.copy(content)
    if content.get("format_version") == 2:
        _upgrade_format_2(content)
    if content.get("format_version") == 4:
        _check_format_4_sequences(content, source)
    network = content.get("network")
    if isinstance(network, dict):
        content["network"] = {**_SPEC_DEFAULTS, **network}
    encoder = content.get("categorical")
    if isinstance(encoder, dict) and "value_types" not in encoder:
        categories = encoder.get("categories")
        if isinstance(categories, list):
            # Recorded since the exported graph reads numbers as numbers.
            content["categorical"] = {
                **encoder,
                "value_types": ["str"] * len(categories),
            }
    return content


def _check_format_4_sequences(content: dict[str, Any], source: str) -> None:
    """Refuse a format 4 file whose list column shares a table and pools by
    mean or attention: the current network pools such a column otherwise."""
    encoder = content.get("categorical")
    sequences = encoder.get("sequences") if isinstance(encoder, dict) else None
    if not isinstance(sequences, dict):
        return
    targets = sequences.get("targets")
    if not isinstance(targets, list) or all(target is None for target in targets):
        return
    if sequences.get("pooling") != "sum":
        raise ValueError(
            f"{source} (file format 4) holds a list column that shares the table "
            f"of a categorical column, pooled by "
            f"sequence_pooling={sequences['pooling']!r}; this version of sk_mmoe "
            f"pools such columns with the candidate, with other weights. Fit "
            f"the model again and save it with this version."
        )


def _upgrade_format_2(content: dict[str, Any]) -> None:
    """Format 2 in place: its loss state, tasks and network specification."""
    criterion = content.get("criterion_state")
    if isinstance(criterion, dict):
        content["criterion_state"] = {
            key: value
            for key, value in criterion.items()
            if key not in _FORMAT_2_LOSS_ENTRIES
        }
    tasks = content.get("tasks")
    if isinstance(tasks, list) and all(isinstance(task, dict) for task in tasks):
        # The type's default loss.
        content["tasks"] = [{"loss": None, **task} for task in tasks]
    network = _format_2_network(content)
    if network is not None:
        content["network"] = network


def _format_2_network(content: dict[str, Any]) -> dict[str, Any] | None:
    """The network specification of a format 2 file, from the names of its
    weights; None if the file is malformed (the reader refuses it)."""
    state = content.get("module_state")
    if not isinstance(state, dict) or not isinstance(content.get("tasks"), list):
        return None
    try:
        output_sizes = [task_from_state(task).n_outputs for task in content["tasks"]]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    projection = state.get("projection.bias")
    return {
        **_SPEC_DEFAULTS,
        **_periodic_options(state),
        "n_features": content.get("n_features_in"),
        "output_sizes": output_sizes,
        "numeric_scaling": "scaling.center" in state,
        "numeric_embedding": any(
            key.startswith("embedding.numeric_embedding.") for key in state
        ),
        "sparse_projection": int(projection.shape[0])
        if isinstance(projection, torch.Tensor)
        else None,
        "numeric_missing": "missing.fill" in state,
    }


def _periodic_options(state: dict[str, Any]) -> dict[str, Any]:
    """The periodic embedding's frequencies and shared layer, from the
    shapes of its weights (none: the defaults)."""
    prefix = "embedding.numeric_embedding."
    frequencies = state.get(prefix + "periodic.weight")
    linear = state.get(prefix + "linear.weight")
    if not (isinstance(frequencies, torch.Tensor) and frequencies.ndim == 2):
        return {}
    return {
        "numeric_frequencies": int(frequencies.shape[1]),
        "numeric_lite": isinstance(linear, torch.Tensor) and linear.ndim == 2,
    }
