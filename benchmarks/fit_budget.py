"""Cheaper numeric embeddings and step budgets of the default classifier.

On the 40,000-row census sample of ``benchmarks/fit_time.py`` (three binary
tasks, the test half of the census test file), every seed fits, side by
side in one process and on one thread each, the default
:class:`~sk_mmoe.MultiTaskMMoEClassifier` under variants of the defaults
that fit chooses (module constants of ``sk_mmoe._building``, set for the
fit and restored after it), and three per-task LightGBM fits:

* the periodic numeric embeddings' number of frequencies
  (``_PERIODIC_FREQUENCIES``) and a linear layer shared by all columns
  (``_PERIODIC_LITE``);
* the step budget of ``max_epochs="auto"`` (``_AUTO_SCHEDULE_STEPS`` and
  the floor of ``_AUTO_EPOCHS``; the warm-up and cosine schedule spans
  the epochs it gives) and the peak learning rate of the schedule
  (``_SCHEDULED_LR_FACTOR``);
* estimator parameters that may buy test AUC with time (``LEVERS``:
  wider experts or towers, more experts, less regularisation, more
  epochs), each on top of the current defaults.

The order of the configurations rotates from seed to seed. Fit time is
wall-clock seconds of the whole fit; the ratio to LightGBM is the median
over seeds of each seed's ratio. Quality is the mean test ROC AUC over
the three tasks, compared per seed with the reference configuration and
with LightGBM (paired differences, mean and standard error).

With ``--scarcity`` it fits instead the label-scarcity settings of
``benchmarks/quality.py`` (one census task labelled on 1% or 5% of the
40,000 rows, the other two on all) under each configuration, and compares
the test AUC of the scarce task, averaged over the settings, per seed;
with ``--yeast``, its Yeast folds with the numeric embeddings forced on
(the 14 tasks' mean test AUC).

Writes ``NAME.csv`` (as it goes) and ``NAME.md`` to
``benchmarks/results/fit_budget/``, and the table in reStructuredText to
``docs/images/NAME.inc``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/fit_budget.py             # 5 seeds
    OMP_NUM_THREADS=1 python benchmarks/fit_budget.py --configs \\
        "48 freq, 300 steps/10 epochs" "16 freq, 200 steps/6 epochs"
    OMP_NUM_THREADS=1 python benchmarks/fit_budget.py --scarcity --seeds 3 \
        --name fit_budget_scarcity --configs CONFIG...
    python benchmarks/fit_budget.py --quick                       # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fit_time  # noqa: E402  (the fits and timing of the fit-time benchmark)
import quality  # noqa: E402  (the census sample and paired differences)

from sk_mmoe import _building  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results" / "fit_budget"

LIGHTGBM = "LightGBM"
# The constants of sk_mmoe._building that each configuration sets, on top
# of the defaults of earlier versions (48 frequencies, a linear layer per
# column, 300 steps or at least 10 epochs, a peak of 5 times the constant
# rate); the first configuration is the reference of the paired differences.
PREVIOUS_DEFAULTS = {
    "_PERIODIC_FREQUENCIES": 48,
    "_PERIODIC_LITE": False,
    "_AUTO_SCHEDULE_STEPS": 300,
    "_AUTO_EPOCHS": (10, 50),
    "_SCHEDULED_LR_FACTOR": 5.0,
}
CHANGES = {
    "48 freq, 300 steps/10 epochs": {},
    "24 freq": {"_PERIODIC_FREQUENCIES": 24},
    "16 freq": {"_PERIODIC_FREQUENCIES": 16},
    "16 freq lite": {"_PERIODIC_FREQUENCIES": 16, "_PERIODIC_LITE": True},
    "8 freq": {"_PERIODIC_FREQUENCIES": 8},
    "250 steps/7 epochs": {"_AUTO_SCHEDULE_STEPS": 250, "_AUTO_EPOCHS": (7, 50)},
    "200 steps/6 epochs": {"_AUTO_SCHEDULE_STEPS": 200, "_AUTO_EPOCHS": (6, 50)},
    "200 steps/6 epochs, peak lr x1.5": {
        "_AUTO_SCHEDULE_STEPS": 200,
        "_AUTO_EPOCHS": (6, 50),
        "_SCHEDULED_LR_FACTOR": 7.5,
    },
    "16 freq, 300 steps/9 epochs": {
        "_PERIODIC_FREQUENCIES": 16,
        "_AUTO_EPOCHS": (9, 50),
    },
    # As many steps on the census sample as 10 epochs, fewer epochs on more
    # rows.
    "16 freq, 360 steps/6 epochs": {
        "_PERIODIC_FREQUENCIES": 16,
        "_AUTO_SCHEDULE_STEPS": 360,
        "_AUTO_EPOCHS": (6, 50),
    },
    "16 freq, 200 steps/6 epochs": {
        "_PERIODIC_FREQUENCIES": 16,
        "_AUTO_SCHEDULE_STEPS": 200,
        "_AUTO_EPOCHS": (6, 50),
    },
}
# The second and third rounds: 16 frequencies, shorter budgets at higher
# peak rates.
for steps, floor in ((300, 10), (300, 9), (280, 8), (250, 7), (200, 6)):
    for factor in (1.5, 2):
        budget = "" if floor == 10 else f", {steps} steps/{floor} epochs"
        CHANGES[f"16 freq{budget}, peak lr x{factor}"] = {
            "_PERIODIC_FREQUENCIES": 16,
            "_AUTO_SCHEDULE_STEPS": steps,
            "_AUTO_EPOCHS": (floor, 50),
            "_SCHEDULED_LR_FACTOR": 5.0 * factor,
        }
CONFIGS = {name: {**PREVIOUS_DEFAULTS, **c} for name, c in CHANGES.items()}
# Estimator parameters that may buy test AUC with time, each set on top of
# the current defaults (the constants as they are; ``--name fit_levers``).
LEVERS = {
    "defaults": {},
    "expert_hidden_layer_sizes=(64,)": {"expert_hidden_layer_sizes": (64,)},
    "n_experts=8": {"n_experts": 8},
    "tower_hidden_layer_sizes=(32,)": {"tower_hidden_layer_sizes": (32,)},
    "dropout=0": {"dropout": 0.0},
    "weight_decay=1e-5": {"weight_decay": 1e-5},
    "gate_dropout=0": {"gate_dropout": 0.0},
    "max_epochs=15": {"max_epochs": 15},
}
CONFIGS.update({name: {} for name in LEVERS})
# The configurations of a run without --configs (the study's first round).
FIRST_ROUND = [
    "48 freq, 300 steps/10 epochs",
    "24 freq",
    "16 freq",
    "16 freq lite",
    "250 steps/7 epochs",
    "200 steps/6 epochs",
    "200 steps/6 epochs, peak lr x1.5",
    "16 freq, 200 steps/6 epochs",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    fit_time.add_run_arguments(parser, "fit_budget")
    parser.add_argument(
        "--scarcity",
        action="store_true",
        help="fit the label-scarcity settings of quality.py (no LightGBM)",
    )
    parser.add_argument(
        "--yeast",
        action="store_true",
        help="fit quality.py's Yeast folds with the embeddings on (no LightGBM)",
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=list(CONFIGS),
        default=FIRST_ROUND,
        metavar="CONFIG",
        help=f"the configurations to fit, of {list(CONFIGS)}",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def constants(values: dict):
    """``sk_mmoe._building``'s constants set to ``values``, then restored."""
    before = {name: getattr(_building, name) for name in values}
    for name, value in values.items():
        setattr(_building, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(_building, name, value)


def run(args, out: Path) -> pd.DataFrame:
    X, Y, X_test, Y_test = fit_time.census_data(args)

    def fit(method: str, seed: int) -> dict:
        fit = (X, Y, X_test, Y_test, seed, args.quick)
        if method == LIGHTGBM:
            row = fit_time.fit_method(method, *fit)
        else:
            with constants(CONFIGS[method]):
                row = fit_time.fit_method(method, *fit, params=LEVERS.get(method, {}))
        return {**row, "rows": len(X)}

    return fit_time.side_by_side(args, [*args.configs, LIGHTGBM], fit, out)


def quality_jobs(args) -> list[tuple[str, str, str]]:
    """The (section, setting, method) jobs of ``quality.py`` that
    ``--scarcity`` or ``--yeast`` fits under each configuration."""
    if args.yeast:
        return [("yeast", f"{quality.YEAST_FOLDS}-fold", quality.EMBEDDED)]
    return [
        ("scarcity", f"{task}@{fraction:.0%}", "sk_mmoe")
        for task in quality.SCARCE_TASKS
        for fraction in quality.FRACTIONS
    ]


def run_quality(args, out: Path) -> pd.DataFrame:
    """The test AUC (mean over the jobs' tasks) and the fit seconds (sum
    over the jobs) of each configuration on the jobs of ``quality_jobs``."""

    def fit(method: str, seed: int) -> dict:
        with constants(CONFIGS[method]):
            fits = [
                quality.run_job(*job, seed, args.quick, args.rows)
                for job in quality_jobs(args)
            ]
        scores = [row for fit in fits for row in fit]
        return {
            "method": method,
            "seed": seed,
            "fit_s": sum(fit[0]["fit_time"] for fit in fits),
            "auc": sum(r["value"] for r in scores) / len(scores),
            "epochs": sum(r["n_epochs"] for r in scores) / len(scores),
            "rows": args.rows,
        }

    return fit_time.side_by_side(args, list(args.configs), fit, out)


def table(frame: pd.DataFrame, reference: str) -> tuple[tuple, list[list[str]]]:
    """The header and the rows of the table: one per configuration, then
    LightGBM."""
    seconds = frame.pivot(index="seed", columns="method", values="fit_s")
    auc = frame.pivot(index="seed", columns="method", values="auc")
    epochs = frame.groupby("method")["epochs"].median()
    ratios = (
        seconds.div(seconds[LIGHTGBM], axis=0).median()
        if LIGHTGBM in seconds
        else pd.Series(float("nan"), index=seconds.columns)
    )
    header = (
        "configuration",
        "fit s (median)",
        "ratio to LightGBM (median per seed)",
        "epochs (median)",
        "mean test AUC",
        f"AUC vs {reference} (paired)",
        "AUC vs LightGBM (paired)",
    )
    rows = []
    for method in [m for m in [*CONFIGS, LIGHTGBM] if m in seconds.columns]:
        cells = [
            method,
            f"{seconds[method].median():.2f}",
            "" if pd.isna(ratios[method]) else f"{ratios[method]:.2f}x",
            "" if pd.isna(epochs[method]) else f"{epochs[method]:.0f}",
            f"{auc[method].mean():.4f}",
        ]
        for other in (reference, LIGHTGBM):
            if method == other or other not in auc.columns:
                cells.append("")
                continue
            mean, _, se, _ = quality.paired(auc[method], auc[other])
            cells.append(f"{mean:+.4f} ± {se:.4f}")
        rows.append(cells)
    return header, rows


def main(argv=None) -> None:
    args = parse_args(argv)
    out = fit_time.prepare(args, RESULTS_DIR)
    if args.from_csv is None:
        before = os.getloadavg()[0]
        frame = (run_quality if args.scarcity or args.yeast else run)(args, out)
        load = f"{before:.1f} before, {os.getloadavg()[0]:.1f} after"
    else:
        frame, load = pd.read_csv(args.from_csv), args.load
    data = f"Census, {frame['rows'].iloc[0]:,} training rows, 3 tasks"
    if args.scarcity:
        data += ", the scarce task's AUC (mean of 4 settings)"
    if args.yeast:
        data = "Yeast, 14 tasks, 3 folds, numeric_embedding='periodic'"
    text = (
        f"{data}, one thread, "
        f"{frame['seed'].nunique()} seeds side by side; load average {load}."
    )
    header, rows = table(frame, args.configs[0])
    (out / f"{args.name}.md").write_text(fit_time.markdown_table(text, header, rows))
    # The docs' copies are written by full runs into the default folder only.
    images = fit_time.IMAGES if out == RESULTS_DIR else out
    (images / f"{args.name}.inc").write_text(
        fit_time.restructuredtext_table(text, header, rows)
    )
    print(fit_time.markdown_table(text, header, rows))


if __name__ == "__main__":
    main()
