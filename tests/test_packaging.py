"""What the distribution promises: type information, one home for scikit-learn's
private names, and declared dependency floors that are the tested ones."""

import ast
import importlib
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import sk_mmoe
from sk_mmoe import _compat

ROOT = Path(__file__).resolve().parents[1]

COMPAT_NAMES = {
    "fit_context": ("sklearn.base", "_fit_context"),
    "Interval": ("sklearn.utils._param_validation", "Interval"),
    "StrOptions": ("sklearn.utils._param_validation", "StrOptions"),
    "validate_params": ("sklearn.utils._param_validation", "validate_params"),
    "get_feature_names": ("sklearn.utils.validation", "_get_feature_names"),
    "validate_data": ("sklearn.utils.validation", "validate_data"),
    "BaseKFold": ("sklearn.model_selection._split", "_BaseKFold"),
    "RepeatedSplits": ("sklearn.model_selection._split", "_RepeatedSplits"),
}


def _pyproject():
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _min_versions():
    pins = {}
    for line in (ROOT / ".ci" / "min-versions.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = re.split(r"\s*==\s*", line)
            pins[name.lower()] = Version(version)
    return pins


def test_installed_package_ships_py_typed():
    assert files("sk_mmoe").joinpath("py.typed").is_file()
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["sk_mmoe"]


@pytest.mark.parametrize("name", sorted(COMPAT_NAMES))
def test_compat_exports_scikit_learn_names(name):
    module, attribute = COMPAT_NAMES[name]
    assert name in _compat.__all__
    assert getattr(_compat, name) is getattr(importlib.import_module(module), attribute)


def test_compat_error_names_what_is_missing():
    with pytest.raises(ImportError, match=r"sklearn\.base\._no_such_name"):
        _compat._import("sklearn.base", "_no_such_name")


def _private_sklearn_imports(path):
    """The private scikit-learn names that the module at ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules, names = [node.module], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        else:
            continue
        for module in modules:
            if module.split(".")[0] != "sklearn":
                continue
            if any(part.startswith("_") for part in module.split(".")):
                found.append(f"{path.name}:{node.lineno} {module}")
            found += [
                f"{path.name}:{node.lineno} {module}.{name}"
                for name in names
                if name.startswith("_")
            ]
    return found


def test_private_scikit_learn_names_only_in_compat():
    package = Path(sk_mmoe.__file__).parent
    found = [
        hit
        for path in sorted(package.rglob("*.py"))
        if path.name != "_compat.py"
        for hit in _private_sklearn_imports(path)
    ]
    assert not found, f"import these from sk_mmoe._compat instead: {found}"


def test_declared_floors_are_the_tested_minimum_versions():
    project = _pyproject()["project"]
    pins = _min_versions()
    requirements = [Requirement(r) for r in project["dependencies"]]
    # Every runtime dependency is tested at its floor.
    assert {r.name.lower() for r in requirements} <= set(pins)
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra]
    seen = set()
    for requirement in requirements:
        name = requirement.name.lower()
        if name not in pins:
            continue
        seen.add(name)
        floors = [s for s in requirement.specifier if s.operator == ">="]
        assert len(floors) == 1, f"{requirement} declares no single floor"
        assert Version(floors[0].version) == pins[name], (
            f"pyproject.toml declares {requirement}, .ci/min-versions.txt "
            f"tests {name}=={pins[name]}"
        )
    assert seen == set(pins), f"pinned but not declared: {set(pins) - seen}"


@pytest.mark.parametrize("name", sk_mmoe._SUBMODULES)
def test_public_submodules_are_attributes_of_the_package(name):
    code = f"import sk_mmoe; print(sk_mmoe.{name}.__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() in {f"sk_mmoe.{name}", f"sk_mmoe.nn.{name}"}
    assert name in dir(sk_mmoe)


def test_unknown_attribute_of_the_package_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_module"):
        sk_mmoe.no_such_module  # noqa: B018
