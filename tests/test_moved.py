"""The modules of earlier versions still import, and their pickles load."""

import importlib
import pickle
import subprocess
import sys

import pytest

import sk_mmoe
from sk_mmoe._moved import MOVED_MODULES


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_name_is_the_new_module(old):
    assert importlib.import_module(old) is importlib.import_module(MOVED_MODULES[old])


@pytest.mark.parametrize(
    "old, name",
    [
        ("sk_mmoe.network", "MMoENetwork"),
        ("sk_mmoe.network", "_BatchedMLP"),
        ("sk_mmoe.losses", "MultiTaskLoss"),
        ("sk_mmoe.weighting", "UncertaintyWeights"),
        ("sk_mmoe._training", "MultiTaskNet"),
        ("sk_mmoe._bias", "BiasedNetwork"),
        ("sk_mmoe._batches", "BatchIterator"),
        ("sk_mmoe._features", "CategoricalEncoder"),
        ("sk_mmoe._optim", "LazyAdam"),
    ],
)
def test_pickle_that_names_an_old_module_loads(old, name):
    # The GLOBAL opcode: how a pickle refers to a class by module and name.
    loaded = pickle.loads(f"c{old}\n{name}\n.".encode())
    new = importlib.import_module(MOVED_MODULES[old])
    assert loaded is getattr(new, name)


def test_old_names_work_in_a_fresh_interpreter():
    code = (
        "import pickle\n"
        "cls = pickle.loads(b'csk_mmoe.network\\nMMoENetwork\\n.')\n"
        "from sk_mmoe.weighting import FixedWeights\n"
        "print(cls.__module__, FixedWeights.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["sk_mmoe.nn.network", "sk_mmoe.nn.weighting"]


def test_old_public_names_are_reachable_as_attributes():
    assert sk_mmoe.network is importlib.import_module("sk_mmoe.nn.network")
    assert sk_mmoe.losses.MultiTaskLoss is sk_mmoe.nn.losses.MultiTaskLoss
