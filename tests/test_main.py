"""Tests for the demo, ``python -m sk_mmoe``."""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sk_mmoe.__main__ import compare, conclusion, conclusion_paragraph, main


def test_demo_prints_each_model_and_a_conclusion_from_its_numbers(capsys):
    main(["--n-samples", "1500", "--max-epochs", "2", "--seeds", "2"])
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.startswith("   ") and ("±" in line or " -" in line)
    }
    assert {"single-task", "Shared-Bottom", "MMoE"} <= set(rows)
    # The single-task model learns the scarce task only.
    assert rows["single-task"].split()[1:3] == ["-", "-"]
    scores = [float(x) for x in re.findall(r"(-?\d\.\d{3}) ± ", out)]
    assert scores and all(-1 <= x <= 1 for x in scores)
    # Every comparison is printed, and the conclusion follows from its size.
    pairs = re.findall(r"   (\S+) - (\S+)\s+([+-]\d\.\d{3}) ± \S+\s+(\S+) SE", out)
    assert len(pairs) == 3
    assert "\nConclusion on shared: " in out
    # The conclusion, wrapped over lines, then the time taken.
    last = " ".join(out.split("\nConclusion on shared: ")[1].splitlines()[:-1])
    for name_a, name_b, diff, n_se in pairs:
        if float(n_se) < 2:
            assert f"{name_a} and {name_b} tie within noise" in last
        elif float(diff) > 0:
            assert f"{name_a} beats {name_b}" in last
        else:
            assert f"{name_b} beats {name_a}" in last


def test_conclusion_ranks_a_pair_only_beyond_two_standard_errors():
    base = np.array([0.5, 0.6, 0.4, 0.7, 0.55])
    clear = compare(base + [1.0, 1.1, 0.9, 1.0, 1.05], base)
    noisy = compare(base + [0.1, -0.1, 0.2, -0.2, 0.05], base)
    assert clear[2] > 2 and noisy[2] < 2
    text = conclusion({("A", "B"): clear, ("C", "D"): noisy})
    assert text == "A beats B; C and D tie within noise."
    assert conclusion({("A", "B"): compare(base - 1, base)}) == "B beats A."


def test_demo_needs_two_seeds_for_a_standard_error(capsys):
    with pytest.raises(SystemExit):
        main(["--seeds", "1"])
    assert "--seeds" in capsys.readouterr().err


def test_demo_runs_without_pandas():
    # pandas is an optional extra: the README's demo command installs the
    # core dependencies only. A fresh interpreter in which pandas cannot be
    # imported runs the demo.
    code = textwrap.dedent(
        """
        import sys
        from importlib.machinery import PathFinder

        class WithoutPandas(PathFinder):
            @classmethod
            def find_spec(cls, name, path=None, target=None):
                if name.split(".")[0] == "pandas":
                    return None  # as if it were not installed
                return PathFinder.find_spec(name, path, target)

        sys.meta_path = [
            WithoutPandas if finder is PathFinder else finder
            for finder in sys.meta_path
        ]
        from sk_mmoe.__main__ import main

        main(["--n-samples", "1500", "--max-epochs", "1", "--seeds", "2"])
        assert "pandas" not in sys.modules
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Conclusion on shared" in done.stdout


def test_conclusion_paragraph_keeps_model_names_whole():
    # The sentence of a run whose line break fell inside "Shared-Bottom".
    clear, noise = (0.05, 0.01, 5.0), (0.0, 0.01, 0.1)
    results = {
        ("MMoE", "single-task"): clear,
        ("MMoE", "Shared-Bottom"): clear,
        ("Shared-Bottom", "single-task"): noise,
    }
    lines = conclusion_paragraph(results).splitlines()
    assert len(lines) > 1
    assert all(len(line) <= 79 for line in lines)
    assert not any(line.endswith("-") for line in lines)
    assert "Shared-Bottom and single-task tie within noise" in " ".join(lines)
