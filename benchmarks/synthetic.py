"""Shared-Bottom, OMoE, MMoE and CGC on data of varying task correlation.

Reproduces the synthetic-data experiment of Ma et al. (2018), Figure 4, with
binary tasks: :func:`sk_mmoe.datasets.make_task_correlation` draws two tasks
whose weight vectors have a given cosine similarity, and each model of the
family is trained on them with Adam at (about) equal parameter counts.

For every correlation and seed, fresh training, validation and test sets
(10,000 / 1,000 / 1,000 rows by default) are drawn; all models of a seed see
the same data. Each model is trained one epoch at a time (``partial_fit``) and
evaluated on the validation and test sets after every epoch. The reported
test metrics are those of the epoch with the lowest validation log-loss
(averaged over the two tasks) of each run.

Usage::

    python benchmarks/synthetic.py            # full run (see --help)
    python benchmarks/synthetic.py --quick    # a few seconds, for CI

Outputs (full run), in ``benchmarks/results/``: ``synthetic.csv`` and
``synthetic.md`` (the printed table: mean ± std over seeds),
``synthetic_paired.csv`` and ``synthetic_paired.md`` (differences within a
seed: to the same model at the highest correlation and to Shared-Bottom),
``synthetic_summary.csv`` (the statistics of the first table as numbers),
``synthetic_runs.csv`` (one row per run and task, at the selected epoch) and
``synthetic_curves.csv`` (losses per epoch, mean over seeds); and the figures
``docs/images/synthetic_curves.png`` and
``docs/images/synthetic_correlation.png``. ``--quick`` writes all of them to
a temporary folder unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss, roc_auc_score

ROOT = Path(__file__).resolve().parent.parent

try:
    from sk_mmoe import MultiTaskMMoEClassifier
    from sk_mmoe.datasets import make_task_correlation
except ImportError:  # run from a source checkout without installing sk_mmoe
    sys.path.insert(0, str(ROOT))
    from sk_mmoe import MultiTaskMMoEClassifier
    from sk_mmoe.datasets import make_task_correlation

# The paper's settings (Ma et al. 2018) for d = 100 inputs: MMoE
# and OMoE have 8 experts, each one ReLU layer of 16 units; the towers have
# one layer of 8 units. The Shared-Bottom bottom has 113 units, which matches
# the experts' and towers' parameters (13,200) without the gates. CGC splits
# the same 8 experts into 4 shared and 2 per task.
MODELS = {
    "Shared-Bottom": dict(
        n_experts=1, shared_gate=True, expert_hidden_layer_sizes=(113,)
    ),
    "OMoE": dict(n_experts=8, shared_gate=True, expert_hidden_layer_sizes=(16,)),
    "MMoE": dict(n_experts=8, expert_hidden_layer_sizes=(16,)),
    "CGC": dict(n_experts=4, n_task_experts=2, expert_hidden_layer_sizes=(16,)),
}
TOWERS = (8,)
TASKS = ("task0", "task1")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--correlations", type=float, nargs="+", default=[1.0, 0.9, 0.5, 0.0]
    )
    parser.add_argument("--seeds", type=int, default=5, help="runs per setting")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=3,
        default=[10000, 1000, 1000],
        metavar=("TRAIN", "VAL", "TEST"),
    )
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default: see above)"
    )
    parser.add_argument(
        "--figures", type=Path, default=None, help="figures folder (default: see above)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny run for a smoke test: 2 correlations, 1 seed, 2 epochs",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.correlations = [1.0, 0.0]
        args.seeds, args.epochs = 1, 2
        args.sizes, args.n_features = [600, 200, 200], 20
    if args.out is None:
        args.out = (
            Path(tempfile.mkdtemp(prefix="sk_mmoe_synthetic_"))
            if args.quick
            else ROOT / "benchmarks" / "results"
        )
    if args.figures is None:
        args.figures = args.out if args.quick else ROOT / "docs" / "images"
    return args


def make_model(name, args, seed):
    return MultiTaskMMoEClassifier(
        **MODELS[name],
        tower_hidden_layer_sizes=TOWERS,
        optimizer="adam",
        lr=args.lr,
        batch_size=args.batch_size,
        random_state=seed,
    )


def parameter_counts(model):
    """Total trainable parameters, and those outside the gates."""
    params = list(model.module_.named_parameters())
    total = sum(p.numel() for _, p in params)
    gates = sum(p.numel() for name, p in params if "gate" in name)
    return total, total - gates


def task_metrics(model, X, Y):
    """Log-loss and ROC AUC of each task."""
    out = {}
    for k, proba in enumerate(model.predict_proba(X)):
        out[k] = (
            log_loss(Y[:, k], proba, labels=[0, 1]),
            roc_auc_score(Y[:, k], proba[:, 1]),
        )
    return out


def run_one(name, correlation, seed, splits, args):
    """Train one model epoch by epoch; return per-epoch metrics and the model."""
    (X_train, Y_train), (X_val, Y_val), (X_test, Y_test) = splits
    model = make_model(name, args, seed)
    rows = []
    for epoch in range(1, args.epochs + 1):
        model.partial_fit(X_train, Y_train, classes=[[0, 1], [0, 1]])
        history = model.history_[-1]
        val = task_metrics(model, X_val, Y_val)
        test = task_metrics(model, X_test, Y_test)
        for k, task in enumerate(TASKS):
            rows.append(
                dict(
                    correlation=correlation,
                    model=name,
                    seed=seed,
                    epoch=epoch,
                    task=task,
                    train_loss=history[f"train_loss_{task}"],
                    val_log_loss=val[k][0],
                    test_log_loss=test[k][0],
                    test_auc=test[k][1],
                )
            )
    return rows, model


def select_best_epochs(curves):
    """Per run, the test metrics at the epoch of lowest mean validation loss."""
    keys = ["correlation", "model", "seed"]
    val = curves.groupby([*keys, "epoch"], as_index=False)["val_log_loss"].mean()
    best = val.loc[val.groupby(keys)["val_log_loss"].idxmin(), [*keys, "epoch"]]
    return curves.merge(best, on=[*keys, "epoch"])


def summarize(runs, params):
    """Mean and standard deviation over seeds, one row per setting."""
    wide = runs.pivot_table(
        index=["correlation", "model", "seed"],
        columns="task",
        values=["test_log_loss", "test_auc"],
    )
    wide.columns = [f"{metric}_{task}" for metric, task in wide.columns]
    wide["epoch"] = runs.groupby(["correlation", "model", "seed"])["epoch"].first()
    grouped = wide.groupby(["correlation", "model"], sort=False)
    summary = grouped.mean().add_suffix("_mean").join(grouped.std().add_suffix("_std"))
    summary = summary.reset_index()
    summary["n_seeds"] = grouped.size().to_numpy()
    summary["params"] = summary["model"].map(lambda m: params[m][0])
    return _in_model_order(summary)


def format_table(summary):
    """A readable table of mean ± std, one row per setting."""
    table = pd.DataFrame(
        {"correlation": summary["correlation"], "model": summary["model"]}
    )
    for metric, label, digits in [
        ("test_log_loss", "log-loss", 3),
        ("test_auc", "AUC", 3),
    ]:
        for task in TASKS:
            mean = summary[f"{metric}_{task}_mean"]
            std = summary[f"{metric}_{task}_std"]
            table[f"{label} {task}"] = [
                _mean_std(m, s, digits) for m, s in zip(mean, std, strict=True)
            ]
    table["best epoch"] = [
        _mean_std(m, s, 0)
        for m, s in zip(summary["epoch_mean"], summary["epoch_std"], strict=True)
    ]
    return table


def paired_differences(runs):
    """Differences within a seed, which cancel the seeds' unequal difficulty.

    For each run, the test metrics averaged over the two tasks, minus those
    of (a) the same model and seed at the highest correlation and (b) the
    Shared-Bottom model at the same correlation and seed. Returns the mean
    and standard deviation over seeds.
    """
    keys = ["correlation", "model", "seed"]
    metrics = ["test_log_loss", "test_auc"]
    per_run = runs.groupby(keys, as_index=False)[metrics].mean()
    top = per_run["correlation"].max()
    by_model = per_run[per_run["correlation"] == top].drop(columns="correlation")
    by_correlation = per_run[per_run["model"] == "Shared-Bottom"].drop(columns="model")
    diffs = per_run.merge(by_model, on=["model", "seed"], suffixes=("", "_top"))
    diffs = diffs.merge(
        by_correlation, on=["correlation", "seed"], suffixes=("", "_sb")
    )
    for metric in metrics:
        diffs[f"{metric}_vs_top"] = diffs[metric] - diffs[f"{metric}_top"]
        diffs[f"{metric}_vs_sb"] = diffs[metric] - diffs[f"{metric}_sb"]
    columns = [f"{m}_vs_{ref}" for ref in ("top", "sb") for m in metrics]
    grouped = diffs.groupby(["correlation", "model"])[columns]
    out = grouped.mean().add_suffix("_mean").join(grouped.std().add_suffix("_std"))
    return _in_model_order(out.reset_index()), top


def _in_model_order(frame):
    order = {name: i for i, name in enumerate(MODELS)}
    return frame.sort_values(
        ["correlation", "model"],
        ascending=[False, True],
        key=lambda s: s.map(order) if s.name == "model" else s,
    ).reset_index(drop=True)


def format_paired(paired, top):
    table = pd.DataFrame(
        {"correlation": paired["correlation"], "model": paired["model"]}
    )
    for column, label in [
        ("test_log_loss_vs_top", f"Δ log-loss vs corr. {top:g}"),
        ("test_auc_vs_top", f"Δ AUC vs corr. {top:g}"),
        ("test_log_loss_vs_sb", "Δ log-loss vs Shared-Bottom"),
        ("test_auc_vs_sb", "Δ AUC vs Shared-Bottom"),
    ]:
        table[label] = [
            _mean_std(m, s, 4, signed=True)
            for m, s in zip(
                paired[f"{column}_mean"], paired[f"{column}_std"], strict=True
            )
        ]
    return table


def _mean_std(mean, std, digits, signed=False):
    sign = "+" if signed else ""
    # A single seed has no standard deviation.
    if np.isnan(std):
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} ± {std:.{digits}f}"


def to_markdown(table):
    lines = ["| " + " | ".join(table.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def plot(curves, paired, top, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.figures.mkdir(parents=True, exist_ok=True)
    # Mean over the two tasks, then over the seeds.
    mean_curves = (
        curves.groupby(["correlation", "model", "epoch", "seed"])[
            ["train_loss", "test_log_loss"]
        ]
        .mean()
        .groupby(["correlation", "model", "epoch"])
        .mean()
        .reset_index()
    )
    correlations = sorted(curves["correlation"].unique(), reverse=True)
    fig, axes = plt.subplots(
        2,
        len(correlations),
        figsize=(3.2 * len(correlations), 5.6),
        sharex=True,
        sharey="row",
        squeeze=False,
    )
    for col, correlation in enumerate(correlations):
        for row, (metric, label) in enumerate(
            [("train_loss", "training loss"), ("test_log_loss", "test log-loss")]
        ):
            ax = axes[row, col]
            for name in MODELS:
                sel = mean_curves[
                    (mean_curves["correlation"] == correlation)
                    & (mean_curves["model"] == name)
                ]
                ax.plot(sel["epoch"], sel[metric], label=name)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(f"{label} (mean of tasks)")
        axes[0, col].set_title(f"correlation {correlation:g}")
        axes[1, col].set_xlabel("epoch")
    axes[0, -1].legend()
    fig.tight_layout()
    curves_path = args.figures / "synthetic_curves.png"
    fig.savefig(curves_path, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    panels = [
        (axes[0], "test_log_loss_vs_top", f"vs the same model at correlation {top:g}"),
        (axes[1], "test_log_loss_vs_sb", "vs Shared-Bottom at the same correlation"),
    ]
    # Offset the models a little along x so that the error bars do not overlap.
    offsets = np.linspace(-0.015, 0.015, len(MODELS))
    for ax, column, title in panels:
        for offset, name in zip(offsets, MODELS, strict=True):
            sel = paired[paired["model"] == name].sort_values("correlation")
            ax.errorbar(
                sel["correlation"] + offset,
                sel[f"{column}_mean"],
                yerr=sel[f"{column}_std"].fillna(0.0),
                marker="o",
                capsize=3,
                label=name,
            )
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_title(f"Δ test log-loss {title}", fontsize=9)
        ax.set_xlabel("task correlation")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Δ test log-loss (mean of tasks)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    correlation_path = args.figures / "synthetic_correlation.png"
    fig.savefig(correlation_path, dpi=110)
    plt.close(fig)
    return curves_path, correlation_path


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    rows, params = [], {}
    for correlation in args.correlations:
        for seed in range(args.seeds):
            # One draw of tasks per (correlation, seed), shared by all models.
            splits = make_task_correlation(
                tuple(args.sizes),
                correlation,
                n_features=args.n_features,
                random_state=seed,
            )
            for name in MODELS:
                run_rows, model = run_one(name, correlation, seed, splits, args)
                rows.extend(run_rows)
                params[name] = parameter_counts(model)
            print(
                f"correlation {correlation:g}, seed {seed}: done "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )

    print("\nParameters (total / without gates):")
    for name, (total, no_gates) in params.items():
        print(f"  {name:14s} {total:6d} / {no_gates:6d}")

    curves = pd.DataFrame(rows)
    runs = select_best_epochs(curves)
    summary = summarize(runs, params)
    table = format_table(summary)
    paired, top = paired_differences(runs)
    paired_table = format_paired(paired, top)

    runs.to_csv(args.out / "synthetic_runs.csv", index=False, float_format="%.5f")
    (
        curves.groupby(["correlation", "model", "epoch"])[
            ["train_loss", "val_log_loss", "test_log_loss", "test_auc"]
        ]
        .mean()
        .reset_index()
        .to_csv(args.out / "synthetic_curves.csv", index=False, float_format="%.5f")
    )
    summary.to_csv(args.out / "synthetic_summary.csv", index=False, float_format="%.5f")
    table.to_csv(args.out / "synthetic.csv", index=False)
    (args.out / "synthetic.md").write_text(to_markdown(table), encoding="utf-8")
    paired_table.to_csv(args.out / "synthetic_paired.csv", index=False)
    (args.out / "synthetic_paired.md").write_text(
        to_markdown(paired_table), encoding="utf-8"
    )
    figures = plot(curves, paired, top, args)

    elapsed = time.perf_counter() - start
    print(
        f"\nTest metrics at the best validation epoch, mean ± std over "
        f"{args.seeds} seed(s); {args.epochs} epochs, sizes {args.sizes}, "
        f"d={args.n_features}, lr={args.lr}, batch {args.batch_size}, "
        f"{args.threads} torch thread(s), {elapsed:.0f} s:\n"
    )
    print(table.to_string(index=False))
    print(
        "\nDifferences within each seed (test metrics averaged over the tasks), "
        "mean ± std over seeds:\n"
    )
    print(paired_table.to_string(index=False))
    print(f"\nResults in {args.out}; figures {', '.join(map(str, figures))}")


if __name__ == "__main__":
    main()
