"""The documentation builds without warnings and its code blocks run.

The gallery examples are not executed here (``plot_gallery=0``): they take
too long for the test suite and run in the full documentation build. The
builds run on a copy of ``docs/`` and ``examples/``, since Sphinx writes
generated pages next to the sources.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

for _module in ("sphinx", "numpydoc", "pydata_sphinx_theme", "sphinx_gallery"):
    pytest.importorskip(_module, reason="the documentation dependencies are needed")

ROOT_DIR = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _sphinx(builder: str, out_dir: Path, *options: str) -> subprocess.CompletedProcess:
    ignore = shutil.ignore_patterns("_build", "generated", "auto_examples")
    for folder in ("docs", "examples"):
        shutil.copytree(ROOT_DIR / folder, out_dir / folder, ignore=ignore)
    # The copy's conf.py would import sk_mmoe from out_dir: point it here.
    paths = [str(ROOT_DIR), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            builder,
            "-D",
            "plot_gallery=0",
            "-d",
            str(out_dir / "doctrees"),
            *options,
            str(out_dir / "docs"),
            str(out_dir / builder),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_html_builds_without_warnings(tmp_path):
    result = _sphinx("html", tmp_path, "-W", "--keep-going", "-q")
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "html" / "api.html").is_file()
    assert (
        tmp_path / "html" / "generated" / "sk_mmoe.MultiTaskMMoEClassifier.html"
    ).is_file()


def test_code_blocks_and_docstring_examples_pass(tmp_path):
    result = _sphinx("doctest", tmp_path, "-q")
    report = (tmp_path / "doctest" / "output.txt").read_text()
    assert result.returncode == 0, report[-5000:] + result.stderr[-2000:]
    assert "0 failures in tests" in report
