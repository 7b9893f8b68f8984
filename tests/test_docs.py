"""The documentation builds without warnings and its code blocks run.

The gallery examples are not executed here (``plot_gallery=0``): they take
too long for the test suite and run in the full documentation build. The
builds run on a copy of ``docs/`` and ``examples/``, since Sphinx writes
generated pages next to the sources.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_DOCS_MODULES = (
    "sphinx",
    "numpydoc",
    "pydata_sphinx_theme",
    "sphinx_gallery",
    "sphinx-mathjax-offline",
)
for _module in _DOCS_MODULES:
    pytest.importorskip(_module, reason="the documentation dependencies are needed")

ROOT_DIR = Path(__file__).resolve().parents[1]


def _load_check_offline():
    path = ROOT_DIR / "docs" / "sphinxext" / "check_offline.py"
    spec = importlib.util.spec_from_file_location("check_offline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_offline = _load_check_offline()


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


@pytest.mark.slow
def test_html_builds_without_warnings_and_reads_offline(tmp_path, capsys):
    result = _sphinx("html", tmp_path, "-W", "--keep-going", "-q")
    assert result.returncode == 0, result.stderr[-5000:]
    html = tmp_path / "html"
    assert (html / "api.html").is_file()
    assert (html / "generated" / "sk_mmoe.MultiTaskMMoEClassifier.html").is_file()
    # No page loads anything from the network, the gallery's execution-time
    # pages included, and math is rendered by a MathJax served with the site.
    assert (html / "sg_execution_times.html").is_file()
    assert check_offline.main([str(html)]) == 0, capsys.readouterr().out[-5000:]
    page = (html / "user_guide" / "mmoe.html").read_text(encoding="utf-8")
    assert 'src="../_static/mathjax/tex-chtml.js"' in page
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_offline_check_flags_scripts_and_stylesheets_from_the_network():
    remote = [
        '<script defer="defer" src="https://cdn.jsdelivr.net/npm/mathjax@4/x.js">',
        '<script src="//code.jquery.com/jquery.js"></script>',
        '<link href="https://cdn.example.org/a.css" rel="stylesheet" />',
        "<link rel='preload' as='font' href='http://example.org/f.woff2'>",
        "<style>@import url('https://fonts.example.org/css');</style>",
    ]
    local = [
        '<script src="_static/mathjax/tex-chtml.js"></script>',
        '<link rel="stylesheet" href="_static/styles/theme.css" />',
        '<a href="https://scikit-learn.org/stable/">scikit-learn</a>',
        '<link rel="canonical" href="https://example.org/page.html" />',
    ]
    for tag in remote:
        assert len(check_offline.remote_resources(tag)) == 1, tag
    assert check_offline.remote_resources("\n".join(local)) == []


@pytest.mark.slow
def test_code_blocks_and_docstring_examples_pass(tmp_path):
    result = _sphinx("doctest", tmp_path, "-q")
    report = (tmp_path / "doctest" / "output.txt").read_text()
    assert result.returncode == 0, report[-5000:] + result.stderr[-2000:]
    assert "0 failures in tests" in report
