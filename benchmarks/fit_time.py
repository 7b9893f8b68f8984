"""Fit time and test AUC of the default classifier against per-task boosting.

On the 40,000-row census sample of ``benchmarks/quality.py`` (the raw
frame, three binary tasks, the test half of the census test file), every
seed fits, side by side in one process and on one thread each:

* ``sk_mmoe defaults``: :class:`~sk_mmoe.MultiTaskMMoEClassifier` with its
  defaults (on this sample a learning-rate schedule of 10 epochs, the best
  epoch kept by early stopping);
* ``sk_mmoe, max_epochs=15``: the same schedule over 15 epochs;
* ``sk_mmoe, lr_schedule=None``: the defaults of earlier versions,
  reproduced by that parameter: a constant rate for up to 50 epochs with
  early stopping;
* ``LightGBM``: three per-task ``LGBMClassifier`` fits (defaults);
* ``XGBoost``: three per-task ``XGBClassifier`` fits (``hist``, native
  categorical splits).

The order of the five rotates from seed to seed. Fit time is wall-clock
seconds of the whole fit (all three tasks); the ratios are those of the
medians over seeds, and the medians over seeds of each seed's ratio.
Quality is the mean test ROC AUC over the three tasks, compared per seed
(paired differences, mean and standard error).

Writes ``fit_time.csv`` and ``fit_time.md`` to ``benchmarks/results/``, the
table in reStructuredText to ``docs/images/fit_time.inc`` and the figure
``docs/images/fit_time.png`` (test AUC against fit seconds).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/fit_time.py            # 5 seeds
    OMP_NUM_THREADS=1 python benchmarks/fit_time.py --rows 200000 --seeds 3 \
        --name fit_time_full                                   # full census
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
IMAGES = ROOT / "docs" / "images"  # NAME.png and NAME.inc

DEFAULT = "sk_mmoe defaults"
LONGER = "sk_mmoe, max_epochs=15"
PREVIOUS = "sk_mmoe, lr_schedule=None"
# The parameters of each sk_mmoe configuration beyond the defaults.
SK_MMOE = {
    DEFAULT: {},
    LONGER: {"max_epochs": 15},
    PREVIOUS: {"lr_schedule": None},
}
METHODS = (DEFAULT, LONGER, PREVIOUS, "LightGBM", "XGBoost")


def add_run_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The arguments of a run side by side on the census sample (``name``:
    the default stem of its files), shared with ``fit_budget.py``."""
    parser.add_argument("--quick", action="store_true", help="smoke run, seconds")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument(
        "--name", default=name, help="stem of the result and figure files"
    )
    parser.add_argument(
        "--from-csv",
        type=Path,
        default=None,
        help="write the tables and figure of an earlier run's CSV, fitting nothing",
    )
    parser.add_argument(
        "--load", default="not recorded", help="with --from-csv: the load average"
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, "fit_time")
    parser.add_argument(
        "--grid",
        action="store_true",
        help="time a 9-candidate, 3-fold GridSearchCV against LightGBM's instead",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        metavar="METHOD",
        help=f"the methods to fit, of {METHODS}",
    )
    return parser.parse_args(argv)


def fit_method(
    method: str, X, Y, X_test, Y_test, seed: int, quick: bool, params=None
) -> dict:
    """Fit seconds, mean test AUC and epochs of one method on one seed
    (``params``: those of an sk_mmoe configuration not in ``SK_MMOE``)."""
    from sklearn.metrics import roc_auc_score

    if method in SK_MMOE or params is not None:
        model = quality.joint_model("sk_mmoe", seed, quick)
        params = SK_MMOE[method] if params is None else params
        if quick:  # the quick run's two epochs
            params = {k: v for k, v in params.items() if k != "max_epochs"}
        model.set_params(**params)
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


def census_data(args):
    """The training sample and the test rows of a run, on one thread."""
    import torch

    torch.set_num_threads(1)
    X, Y = quality.census_sample(args.quick, args.rows)
    data = quality.census(args.quick)
    X_test, Y_test = data["X_test"], data["Y_test"][list(Y.columns)]
    return X, Y, X_test, Y_test


def run(args, out: Path) -> pd.DataFrame:
    X, Y, X_test, Y_test = census_data(args)

    def fit(method: str, seed: int) -> dict:
        row = fit_method(method, X, Y, X_test, Y_test, seed, args.quick)
        return {**row, "rows": len(X)}

    methods = [m for m in METHODS if m in args.methods]
    return side_by_side(args, methods, fit, out)


def side_by_side(args, methods: list[str], fit, out: Path) -> pd.DataFrame:
    """The rows of ``fit(method, seed)`` for every seed and method, the
    methods' order rotating from seed to seed; written as they come."""
    rows = []
    for seed in range(args.seeds):
        shift = seed % len(methods)
        for method in methods[shift:] + methods[:shift]:
            row = fit(method, seed)
            rows.append(row)
            # Written as it goes: an interrupted run keeps its fits.
            pd.DataFrame(rows).to_csv(out / f"{args.name}.csv", index=False)
            print(
                f"seed {seed} {method}: {row['fit_s']:.2f} s, AUC {row['auc']:.4f}, "
                f"epochs {row['epochs']}",
                flush=True,
            )
    return pd.DataFrame(rows)


def paired(frame: pd.DataFrame, a: str, b: str) -> tuple[float, float]:
    """Mean and standard error over seeds of AUC(a) - AUC(b)."""
    auc = frame.pivot(index="seed", columns="method", values="auc")
    mean, _, se, _ = quality.paired(auc[a], auc[b])
    return mean, se


HEADER = (
    "method",
    "fit s (median)",
    "ratio to LightGBM",
    "ratio per seed (median)",
    "epochs (median)",
    "mean test AUC",
    "AUC vs LightGBM (paired)",
    "AUC vs lr_schedule=None (paired)",
)


def table(frame: pd.DataFrame) -> list[list[str]]:
    """One row of cells per method, in the order of ``HEADER``."""
    seconds = frame.groupby("method")["fit_s"].median()
    auc = frame.groupby("method")["auc"].mean()
    epochs = frame.groupby("method")["epochs"].median()
    # Each seed's fits ran minutes apart: their ratio is less exposed to
    # the machine's load drifting over the run than the medians' ratio.
    by_seed = frame.pivot(index="seed", columns="method", values="fit_s")
    ratios = by_seed.div(by_seed["LightGBM"], axis=0).median()
    rows = []
    present = [m for m in METHODS if m in seconds.index]
    for method in present:
        cells = [
            method,
            f"{seconds[method]:.2f}",
            f"{seconds[method] / seconds['LightGBM']:.2f}x",
            f"{ratios[method]:.2f}x",
            "" if np.isnan(epochs[method]) else f"{epochs[method]:.0f}",
            f"{auc[method]:.4f}",
        ]
        for other in ("LightGBM", PREVIOUS):
            if method == other or other not in present:
                cells.append("")
                continue
            mean, se = paired(frame, method, other)
            cells.append(f"{mean:+.4f} ± {se:.4f}")
        rows.append(cells)
    return rows


def caption(frame: pd.DataFrame, load: str) -> str:
    return (
        f"Census, {frame['rows'].iloc[0]:,} training rows, 3 tasks, one thread, "
        f"{frame['seed'].nunique()} seeds side by side; load average {load}."
    )


def markdown(frame: pd.DataFrame, load: str) -> str:
    return markdown_table(caption(frame, load), HEADER, table(frame))


def restructuredtext(frame: pd.DataFrame, load: str) -> str:
    return restructuredtext_table(caption(frame, load), HEADER, table(frame))


def markdown_table(text: str, header, rows: list[list[str]]) -> str:
    """``text``, then the table of ``header`` and ``rows`` in markdown."""
    lines = [text, "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def restructuredtext_table(text: str, header, rows: list[list[str]]) -> str:
    """``text``, then the table of ``header`` and ``rows`` as a list-table."""
    lines = [text, "", ".. list-table::", "   :header-rows: 1", ""]
    for cells in [list(header), *rows]:
        lines.append("   * - " + cells[0])
        lines += [("     - " + cell).rstrip() for cell in cells[1:]]
    return "\n".join(lines) + "\n"


def figure(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for method, marker in zip(METHODS, "oDs^v", strict=True):
        part = frame[frame.method == method]
        if part.empty:
            continue
        ax.scatter(part.fit_s, part.auc, marker=marker, label=method, alpha=0.8)
    ax.set_xscale("log")
    # Plain numbers at 1, 2 and 5 times the powers of ten: the default labels
    # of the minor ticks overlap over less than a decade.
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("fit seconds, 3 tasks, one thread (log scale)")
    ax.set_ylabel("mean test ROC AUC")
    ax.set_title(f"Census, {frame['rows'].iloc[0]:,} rows, one point per seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# The search of --grid: 9 candidates each, 3 folds.
MMOE_GRID = {"n_experts": [2, 4, 8], "dropout": [0.0, 0.1, 0.2]}
LGBM_GRID = {"num_leaves": [15, 31, 63], "learning_rate": [0.05, 0.1, 0.2]}


def grid_search(args) -> pd.DataFrame:
    """Wall seconds, best cross-validated and test AUC of a 9-candidate,
    3-fold ``GridSearchCV`` of sk_mmoe and of the same search of per-task
    LightGBM (one search per task), on the same folds, one thread each.

    LightGBM's searches run before and after sk_mmoe's, and their wall
    time is the mean of the two: the machine's load drifts over a run
    this long.
    """
    from sklearn.model_selection import KFold

    X, Y, X_test, Y_test = census_data(args)
    folds = KFold(3, shuffle=True, random_state=0)
    runs = [
        search_lightgbm(X, Y, X_test, Y_test, folds),
        search_mmoe(X, Y, X_test, Y_test, folds, args.quick),
        search_lightgbm(X, Y, X_test, Y_test, folds),
    ]
    for run_ in runs:
        print(run_, flush=True)
    lightgbm = runs[0] | {"wall_s": (runs[0]["wall_s"] + runs[2]["wall_s"]) / 2}
    lightgbm["wall_s_runs"] = f"{runs[0]['wall_s']:.1f}, {runs[2]['wall_s']:.1f}"
    frame = pd.DataFrame([runs[1], lightgbm])
    frame["ratio_to_lightgbm"] = frame.wall_s / frame.wall_s.iloc[-1]
    frame["rows"] = len(X)
    return frame


def search_mmoe(X, Y, X_test, Y_test, folds, quick: bool) -> dict:
    """The search of ``MMOE_GRID`` over sk_mmoe's defaults."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV

    from sk_mmoe import MultiTaskMMoEClassifier
    from sk_mmoe.metrics import multitask_scoring

    start = time.perf_counter()
    search = GridSearchCV(
        MultiTaskMMoEClassifier(**quality.mmoe_params(quick)),
        MMOE_GRID,
        cv=folds,
        scoring=multitask_scoring("roc_auc"),
        refit="roc_auc_mean",
    ).fit(X, Y)
    seconds = time.perf_counter() - start
    proba = search.predict_proba(X_test)
    test = np.mean(
        [roc_auc_score(Y_test[t], p[:, 1]) for t, p in zip(Y, proba, strict=True)]
    )
    return {
        "method": "sk_mmoe",
        "wall_s": seconds,
        "best_cv_auc": search.best_score_,
        "test_auc": test,
        "best_params": str(search.best_params_),
    }


def search_lightgbm(X, Y, X_test, Y_test, folds) -> dict:
    """One search of ``LGBM_GRID`` per task; their total wall time."""
    from lightgbm import LGBMClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV

    best, test, seconds = [], [], 0.0
    for task in Y.columns:
        start = time.perf_counter()
        search = GridSearchCV(
            LGBMClassifier(n_jobs=1, verbose=-1, random_state=0),
            LGBM_GRID,
            cv=folds,
            scoring="roc_auc",
        ).fit(X, Y[task])
        seconds += time.perf_counter() - start
        best.append(search.best_score_)
        test.append(roc_auc_score(Y_test[task], search.predict_proba(X_test)[:, 1]))
    return {
        "method": "LightGBM",
        "wall_s": seconds,
        "best_cv_auc": np.mean(best),
        "test_auc": np.mean(test),
    }


def prepare(args, results: Path) -> Path:
    """The folder of a run's results (``results`` unless ``--output-dir``
    or ``--quick`` says otherwise); ``--quick`` also shrinks the run."""
    if args.quick:
        args.seeds, args.rows = min(args.seeds, 2), 3000
    out = args.output_dir
    if out is None:
        out = Path(tempfile.mkdtemp()) if args.quick else results
    out.mkdir(parents=True, exist_ok=True)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    out = prepare(args, RESULTS_DIR)
    before = os.getloadavg()[0]
    if args.grid:
        frame = grid_search(args)
        frame["load"] = f"{before:.1f} before, {os.getloadavg()[0]:.1f} after"
        frame.to_csv(out / f"{args.name}_grid.csv", index=False)
        print(frame.to_markdown(index=False, floatfmt=".4f"))
        return
    if args.from_csv is None:
        frame = run(args, out)
        load = f"{before:.1f} before, {os.getloadavg()[0]:.1f} after"
    else:
        frame = pd.read_csv(args.from_csv)
        frame = frame[
            frame.seed.map(frame.seed.value_counts()) == frame.method.nunique()
        ]
        load = args.load
    text = markdown(frame, load)
    (out / f"{args.name}.md").write_text(text)
    # The docs' copies are written by full runs into the default folder only.
    images = IMAGES if out == RESULTS_DIR else out
    (images / f"{args.name}.inc").write_text(restructuredtext(frame, load))
    figure(frame, images / f"{args.name}.png")
    print(text)


if __name__ == "__main__":
    main()
