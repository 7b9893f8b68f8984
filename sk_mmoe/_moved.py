"""The modules of earlier versions, under their old names.

The PyTorch modules moved into :mod:`sk_mmoe.nn` (``sk_mmoe.network`` is now
:mod:`sk_mmoe.nn.network`), and the private modules into subpackages. A
pickle names the module of every class it holds, private modules included.
:func:`alias_moved_modules` registers each new module under its old name as
well, so that ``from sk_mmoe.network import MMoENetwork`` keeps working, the
old name is the very same module object as the new one, and pickles made by
earlier versions still load.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["MOVED_MODULES", "alias_moved_modules"]

#: Old module name: new module name.
MOVED_MODULES = {
    "sk_mmoe._batches": "sk_mmoe._fitting.batches",
    "sk_mmoe._bias": "sk_mmoe.nn._bias",
    "sk_mmoe._distributed": "sk_mmoe._fitting.distributed",
    "sk_mmoe._features": "sk_mmoe._data.features",
    "sk_mmoe._inputs": "sk_mmoe._data.inputs",
    "sk_mmoe._optim": "sk_mmoe.nn._optim",
    "sk_mmoe._ranking": "sk_mmoe._rank_score",
    "sk_mmoe._targets": "sk_mmoe._data.targets",
    "sk_mmoe._threads": "sk_mmoe._fitting.threads",
    "sk_mmoe._training": "sk_mmoe._fitting.training",
    "sk_mmoe.losses": "sk_mmoe.nn.losses",
    "sk_mmoe.network": "sk_mmoe.nn.network",
    "sk_mmoe.weighting": "sk_mmoe.nn.weighting",
}


def alias_moved_modules() -> None:
    """Register every moved module under its old name too."""
    for old, new in MOVED_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))
