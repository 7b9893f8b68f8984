"""The README's quick start runs as written and reaches what it says."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.rst"


def _python_blocks():
    text = README.read_text() if README.exists() else ""
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text)
    return ["\n".join(line[3:] for line in block.splitlines()) for block in blocks]


def test_quick_start_reaches_its_accuracy(capsys):
    blocks = _python_blocks()
    if not blocks:
        pytest.skip("README.rst is not beside the tests")
    namespace = {}
    exec(blocks[0], namespace)
    printed = capsys.readouterr().out
    accuracy = float(re.search(r"held-out accuracy: ([0-9.]+)", printed).group(1))
    assert accuracy >= 0.9
    # The second block (mixed tasks) runs on the first block's data.
    exec(blocks[1], namespace)
    assert namespace["model"].task_types_ == ["binary", "regression"]
