"""Tests for the demo, ``python -m sk_mmoe``."""

from sk_mmoe.__main__ import main


def test_demo_prints_each_task_for_both_models(capsys):
    main(["--n-samples", "300", "--max-epochs", "2", "--correlations", "0.5", "0.0"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[3:]]
    assert len(rows) == 2 * 2 * 2  # correlations x models x tasks
    assert {row[1] for row in rows} == {"Shared-Bottom", "MMoE"}
    assert {row[0] for row in rows} == {"0.50", "0.00"}
    for row in rows:
        auc, accuracy = float(row[3]), float(row[4])
        assert 0 <= auc <= 1 and 0 <= accuracy <= 1
