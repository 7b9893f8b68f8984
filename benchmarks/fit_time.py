"""Fit time and test AUC of the default classifier against per-task boosting.

On the 40,000-row census sample of ``benchmarks/quality.py`` (the raw
frame, three binary tasks, the test half of the census test file), every
seed fits, side by side in one process and on one thread each:

* ``sk_mmoe, lr_schedule='auto'``: :class:`~sk_mmoe.MultiTaskMMoEClassifier`
  with the learning-rate schedule (10 epochs on this sample);
* ``sk_mmoe defaults``: the same with its defaults, a constant rate for up
  to 50 epochs with early stopping;
* ``LightGBM``: three per-task ``LGBMClassifier`` fits (defaults);
* ``XGBoost``: three per-task ``XGBClassifier`` fits (``hist``, native
  categorical splits).

The order of the four rotates from seed to seed. Fit time is wall-clock
seconds of the whole fit (all three tasks); the ratios are those of the
medians over seeds. Quality is the mean test ROC AUC over the three tasks,
compared per seed (paired differences, mean and standard error).

Writes ``fit_time.csv`` and ``fit_time.md`` to ``benchmarks/results/``, the
table in reStructuredText to ``docs/images/fit_time.inc`` and the figure
``docs/images/fit_time.png`` (test AUC against fit seconds).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/fit_time.py            # 5 seeds
    python benchmarks/fit_time.py --quick                      # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

# This checkout's sk_mmoe, even if another is installed; quality.py beside.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (the census loader of the quality benchmark)

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
FIGURE = ROOT / "docs" / "images" / "fit_time.png"  # and fit_time.inc

SCHEDULED = "sk_mmoe, lr_schedule='auto'"
DEFAULT = "sk_mmoe defaults"
METHODS = (SCHEDULED, DEFAULT, "LightGBM", "XGBoost")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, seconds")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--output-dir", type=Path, default=None)
    return parser.parse_args(argv)


def fit_method(method: str, X, Y, X_test, Y_test, seed: int, quick: bool) -> dict:
    """Fit seconds, mean test AUC and epochs of one method on one seed."""
    from sklearn.metrics import roc_auc_score

    if method in (SCHEDULED, DEFAULT):
        model = quality.joint_model("sk_mmoe", seed, quick)
        if method == SCHEDULED:
            model.set_params(lr_schedule="auto")
        start = time.perf_counter()
        model.fit(X, Y)
        seconds = time.perf_counter() - start
        scores = [p[:, 1] for p in model.predict_proba(X_test)]
        epochs = model.n_iter_
    else:
        name = "LightGBM" if method == "LightGBM" else quality.XGB
        seconds, scores = 0.0, []
        for task in Y.columns:
            model = quality.single_task_model(name, X, seed, quick)
            start = time.perf_counter()
            model.fit(X, Y[task])
            seconds += time.perf_counter() - start
            scores.append(model.predict_proba(X_test)[:, 1])
        epochs = np.nan
    auc = np.mean(
        [roc_auc_score(Y_test[t], s) for t, s in zip(Y.columns, scores, strict=True)]
    )
    return {
        "method": method,
        "seed": seed,
        "fit_s": seconds,
        "auc": auc,
        "epochs": epochs,
    }


def run(args) -> pd.DataFrame:
    import torch

    torch.set_num_threads(1)
    X, Y = quality.census_sample(args.quick, args.rows)
    data = quality.census(args.quick)
    X_test, Y_test = data["X_test"], data["Y_test"][list(Y.columns)]
    rows = []
    for seed in range(args.seeds):
        shift = seed % len(METHODS)
        for method in METHODS[shift:] + METHODS[:shift]:
            row = fit_method(method, X, Y, X_test, Y_test, seed, args.quick)
            rows.append(row)
            print(
                f"seed {seed} {method}: {row['fit_s']:.2f} s, AUC {row['auc']:.4f}, "
                f"epochs {row['epochs']}",
                flush=True,
            )
    frame = pd.DataFrame(rows)
    frame["rows"] = len(X)
    return frame


def paired(frame: pd.DataFrame, a: str, b: str) -> tuple[float, float]:
    """Mean and standard error over seeds of AUC(a) - AUC(b)."""
    auc = frame.pivot(index="seed", columns="method", values="auc")
    diff = auc[a] - auc[b]
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
    return float(diff.mean()), float(se)


HEADER = (
    "method",
    "fit s (median)",
    "ratio to LightGBM",
    "epochs (median)",
    "mean test AUC",
    "AUC vs LightGBM (paired)",
    "AUC vs defaults (paired)",
)


def table(frame: pd.DataFrame) -> list[list[str]]:
    """One row of cells per method, in the order of ``HEADER``."""
    seconds = frame.groupby("method")["fit_s"].median()
    auc = frame.groupby("method")["auc"].mean()
    epochs = frame.groupby("method")["epochs"].median()
    rows = []
    for method in METHODS:
        cells = [
            method,
            f"{seconds[method]:.2f}",
            f"{seconds[method] / seconds['LightGBM']:.2f}x",
            "" if np.isnan(epochs[method]) else f"{epochs[method]:.0f}",
            f"{auc[method]:.4f}",
        ]
        for other in ("LightGBM", DEFAULT):
            mean, se = paired(frame, method, other)
            cells.append("" if method == other else f"{mean:+.4f} ± {se:.4f}")
        rows.append(cells)
    return rows


def caption(frame: pd.DataFrame, load: str) -> str:
    return (
        f"Census sample, {frame['rows'].iloc[0]:,} rows, 3 tasks, one thread, "
        f"{frame['seed'].nunique()} seeds side by side; load average {load}."
    )


def markdown(frame: pd.DataFrame, load: str) -> str:
    lines = [caption(frame, load), "", "| " + " | ".join(HEADER) + " |"]
    lines.append("|" + "---|" * len(HEADER))
    lines += ["| " + " | ".join(cells) + " |" for cells in table(frame)]
    return "\n".join(lines) + "\n"


def restructuredtext(frame: pd.DataFrame, load: str) -> str:
    lines = [caption(frame, load), "", ".. list-table::", "   :header-rows: 1", ""]
    for cells in [list(HEADER), *table(frame)]:
        lines.append("   * - " + cells[0])
        lines += [("     - " + cell).rstrip() for cell in cells[1:]]
    return "\n".join(lines) + "\n"


def figure(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for method, marker in zip(METHODS, "os^v", strict=True):
        part = frame[frame.method == method]
        ax.scatter(part.fit_s, part.auc, marker=marker, label=method, alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("fit seconds, 3 tasks, one thread (log scale)")
    ax.set_ylabel("mean test ROC AUC")
    ax.set_title(f"Census sample, {frame['rows'].iloc[0]:,} rows, one point per seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.quick:
        args.seeds, args.rows = min(args.seeds, 2), 3000
    out = args.output_dir
    if out is None:
        out = Path(tempfile.mkdtemp()) if args.quick else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    before = os.getloadavg()[0]
    frame = run(args)
    load = f"{before:.1f} before, {os.getloadavg()[0]:.1f} after"
    frame.to_csv(out / "fit_time.csv", index=False)
    text = markdown(frame, load)
    (out / "fit_time.md").write_text(text)
    images = out if args.quick else FIGURE.parent
    (images / "fit_time.inc").write_text(restructuredtext(frame, load))
    figure(frame, images / "fit_time.png")
    print(text)


if __name__ == "__main__":
    main()
