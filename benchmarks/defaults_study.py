"""Defaults study: which estimator defaults win across several datasets.

The current defaults of the sk_mmoe estimators are compared with changes of
one parameter at a time and a few combinations, on four datasets:

* ``census``: Census-Income (KDD), a fixed sample of 40,000 training rows,
  three binary tasks, raw DataFrame (category columns embedded, money columns
  robust-scaled inside the network); scored on 20,000 validation rows from
  the validation half of the test file (the same 1:1 split as
  ``quality.py``; the test half is never read here);
* ``recsys``: ``make_recommendation_tasks`` (30,000 rows, task correlation
  0.2, ``share_fraction=0.02`` so that the validation rows hold enough
  ``shared`` labels), :class:`~sk_mmoe.MultiTaskMMoE` on click,
  rated_highly, shared (binary) and log watch time (regression);
  24,000 rows train, 6,000 validate;
* ``tc_binary`` / ``tc_continuous``: ``make_task_correlation`` at
  correlation 0.2, 20,000 training and 10,000 validation rows,
  :class:`~sk_mmoe.MultiTaskMMoEClassifier` /
  :class:`~sk_mmoe.MultiTaskMMoERegressor`.

Quality is the mean over tasks of the validation ROC AUC (binary tasks) or
R^2 (regression tasks), each on its labelled rows. Every configuration is
compared with the current defaults within each dataset and seed (paired
difference), and ranked within each dataset and seed; the summary averages
the differences and ranks over datasets, so that no one dataset decides.
Fit time is the wall time of ``fit`` (one torch thread, two processes at
most), also given relative to the defaults' on the same dataset and seed.

Run from the repository root::

    python benchmarks/defaults_study.py             # about 12 min, 2 cores
    python benchmarks/defaults_study.py --quick     # smoke run, seconds
    python benchmarks/defaults_study.py --report    # tables from the CSV

Results: ``benchmarks/results/defaults_study.csv`` (one row per dataset,
configuration and seed, appended as fits finish, so an interrupted run keeps
what it has and a rerun skips what is done) and ``defaults_study.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score

try:
    import sk_mmoe  # noqa: F401
except ImportError:  # run from a source checkout without installing sk_mmoe
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier, MultiTaskMMoERegressor
from sk_mmoe.datasets import (
    load_census_income,
    make_recommendation_tasks,
    make_task_correlation,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATASETS = ("census", "recsys", "tc_binary", "tc_continuous")


def plateau():
    """Divide the learning rate by 3 after 3 epochs without a better
    validation loss (the early-stopping patience is 10)."""
    from skorch.callbacks import LRScheduler
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    return [
        (
            "lr_plateau",
            LRScheduler(
                policy=ReduceLROnPlateau,
                monitor="valid_loss",
                factor=1 / 3,
                patience=3,
            ),
        )
    ]


def cosine():
    """Cosine decay of the learning rate over ``max_epochs`` (50) epochs."""
    from skorch.callbacks import LRScheduler
    from torch.optim.lr_scheduler import CosineAnnealingLR

    return [("lr_cosine", LRScheduler(policy=CosineAnnealingLR, T_max=50))]


# Name -> parameters changed from the defaults ("callbacks" by factory name).
CONFIGS: dict[str, dict] = {
    "default": {},
    "experts=(64,)": {"expert_hidden_layer_sizes": (64,)},
    "experts=(128,)": {"expert_hidden_layer_sizes": (128,)},
    "experts=(64,32)": {"expert_hidden_layer_sizes": (64, 32)},
    "n_experts=8": {"n_experts": 8},
    "towers=(32,)": {"tower_hidden_layer_sizes": (32,)},
    "lr=3e-3": {"lr": 3e-3},
    "lr=1e-2": {"lr": 1e-2},
    "batch=512": {"batch_size": 512},
    "batch=1024": {"batch_size": 1024},
    "dropout=0.1": {"dropout": 0.1},
    "wd=1e-5": {"weight_decay": 1e-5},
    "wd=1e-4": {"weight_decay": 1e-4},
    "scaling=None": {"numeric_scaling": None},
    # numeric_embedding="auto" (the default) embeds census's and recsys's
    # numeric columns but not make_task_correlation's 100: each setting below
    # differs from the default on two of the four datasets.
    "numemb=None": {"numeric_embedding": None},
    "numemb=periodic": {"numeric_embedding": "periodic"},
    "sched=plateau": {"callbacks": "plateau"},
    "sched=cosine": {"callbacks": "cosine"},
    # Combinations: faster batches with a higher learning rate, then wider
    # experts and a schedule on top.
    "A: lr=3e-3,batch=1024": {"lr": 3e-3, "batch_size": 1024},
    "B: A+plateau": {"lr": 3e-3, "batch_size": 1024, "callbacks": "plateau"},
    "C: B+experts=(64,)": {
        "lr": 3e-3,
        "batch_size": 1024,
        "callbacks": "plateau",
        "expert_hidden_layer_sizes": (64,),
    },
    "D: C+n_experts=8": {
        "lr": 3e-3,
        "batch_size": 1024,
        "callbacks": "plateau",
        "expert_hidden_layer_sizes": (64,),
        "n_experts": 8,
    },
    "E: lr=3e-3,batch=512,plateau": {
        "lr": 3e-3,
        "batch_size": 512,
        "callbacks": "plateau",
    },
    # Second stage, after the first: fewer epochs of patience (the
    # validation loss is usually best 10 epochs before the stop) and the
    # regularisation that helped census.
    "patience=5": {"n_iter_no_change": 5},
    "F: lr=3e-3,patience=5": {"lr": 3e-3, "n_iter_no_change": 5},
    "G: wd=1e-4,dropout=0.1": {"weight_decay": 1e-4, "dropout": 0.1},
    "H: G+patience=5": {"weight_decay": 1e-4, "dropout": 0.1, "n_iter_no_change": 5},
}
CALLBACKS = {"plateau": plateau, "cosine": cosine}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run, seconds")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per dataset")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument(
        "--report", action="store_true", help="only write the tables from the CSV"
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


# --------------------------------------------------------------------- data
_CACHE: dict = {}


def load_dataset(name: str, quick: bool):
    """(estimator class, X_train, Y_train, X_val, Y_val) of a dataset."""
    key = (name, quick)
    if key in _CACHE:
        return _CACHE[key]
    n_train = 3000 if quick else None
    if name == "census":
        X_tr, X_te, Y_tr, Y_te = load_census_income(return_X_y=True)
        rows = np.random.default_rng(0).permutation(len(X_tr))[: n_train or 40_000]
        # Validation half of the test file, as in quality.py (seed 0).
        val = np.random.default_rng(0).permutation(len(X_te))[: len(X_te) // 2]
        val = val[: 2000 if quick else 20_000]
        out = (
            MultiTaskMMoEClassifier,
            X_tr.iloc[rows].reset_index(drop=True),
            Y_tr.iloc[rows].reset_index(drop=True),
            X_te.iloc[val].reset_index(drop=True),
            Y_te.iloc[val].reset_index(drop=True),
        )
    elif name == "recsys":
        n = 5000 if quick else 30_000
        X, Y = make_recommendation_tasks(
            n, task_correlation=0.2, share_fraction=0.02, random_state=0
        )
        Y = Y.copy()
        Y["watch_time"] = np.log(Y["watch_time"])
        cut = int(0.8 * n)
        out = (
            MultiTaskMMoE,
            X.iloc[:cut],
            Y.iloc[:cut],
            X.iloc[cut:].reset_index(drop=True),
            Y.iloc[cut:].reset_index(drop=True),
        )
    elif name in ("tc_binary", "tc_continuous"):
        binary = name == "tc_binary"
        sizes = (3000, 2000) if quick else (20_000, 10_000)
        (X_tr, Y_tr), (X_va, Y_va) = make_task_correlation(
            sizes,
            correlation=0.2,
            target_type="binary" if binary else "continuous",
            random_state=0,
        )
        est = MultiTaskMMoEClassifier if binary else MultiTaskMMoERegressor
        out = (est, X_tr, Y_tr, X_va, Y_va)
    else:
        raise ValueError(name)
    _CACHE[key] = out
    return out


def task_scores(model, X, Y) -> list[float]:
    """Validation ROC AUC (classification) or R^2 (regression) of each task,
    on the rows that have its label."""
    Y = np.asarray(Y, dtype=float)
    if Y.ndim == 1:
        Y = Y[:, None]
    proba = getattr(model, "predict_proba", None)
    proba = proba(X) if proba is not None else [None] * Y.shape[1]
    if not isinstance(proba, list):
        proba = [proba]
    pred = np.asarray(model.predict(X), dtype=float).reshape(len(Y), -1)
    scores = []
    for k in range(Y.shape[1]):
        seen = ~np.isnan(Y[:, k])
        if proba[k] is not None:
            scores.append(roc_auc_score(Y[seen, k], proba[k][seen, 1]))
        else:
            scores.append(r2_score(Y[seen, k], pred[seen, k]))
    return scores


def run_one(dataset: str, config: str, seed: int, quick: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    est, X_tr, Y_tr, X_va, Y_va = load_dataset(dataset, quick)
    params = dict(CONFIGS[config])
    if "callbacks" in params:
        params["callbacks"] = CALLBACKS[params["callbacks"]]()
    if quick:
        params["max_epochs"] = 2
    model = est(n_threads=1, random_state=seed, **params)
    start = time.perf_counter()
    model.fit(X_tr, Y_tr)
    fit_time = time.perf_counter() - start
    scores = task_scores(model, X_va, Y_va)
    return {
        "dataset": dataset,
        "config": config,
        "seed": seed,
        "score": float(np.mean(scores)),
        "task_scores": " ".join(f"{s:.5f}" for s in scores),
        "fit_time": fit_time,
        "n_iter": model.n_iter_,
        "n_train": len(X_tr),
    }


# ------------------------------------------------------------------ report
def summarise(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per dataset and overall: paired difference to the defaults, rank,
    relative fit time."""
    base = df[df.config == "default"].set_index(["dataset", "seed"])
    df = df.join(
        base[["score", "fit_time"]].rename(
            columns={"score": "base_score", "fit_time": "base_time"}
        ),
        on=["dataset", "seed"],
    )
    df["delta"] = df.score - df.base_score
    df["time_ratio"] = df.fit_time / df.base_time
    df["rank"] = df.groupby(["dataset", "seed"]).score.rank(ascending=False)
    per = (
        df.groupby(["config", "dataset"])
        .agg(
            score=("score", "mean"),
            delta=("delta", "mean"),
            delta_sd=("delta", "std"),
            rank=("rank", "mean"),
            time_ratio=("time_ratio", "mean"),
            fit_time=("fit_time", "mean"),
            n_iter=("n_iter", "mean"),
            seeds=("seed", "count"),
        )
        .reset_index()
    )
    overall = (
        per.groupby("config")
        .agg(
            mean_delta=("delta", "mean"),
            min_delta=("delta", "min"),
            wins=("delta", lambda d: int((d > 0).sum())),
            n_datasets=("delta", "count"),
            mean_rank=("rank", "mean"),
            time_ratio=("time_ratio", lambda r: float(np.exp(np.log(r).mean()))),
        )
        .sort_values("mean_rank")
        .reset_index()
    )
    return per, overall


def write_report(csv: Path, out: Path) -> str:
    df = pd.read_csv(csv)
    per, overall = summarise(df)
    order = list(overall.config)
    wide = per.pivot(index="config", columns="dataset", values="delta").loc[order]
    score = per[per.config == "default"].set_index("dataset").score
    lines = [
        "# Defaults study",
        "",
        f"{len(df)} fits: {df.dataset.nunique()} datasets, "
        f"{df.config.nunique()} configurations, seeds "
        f"{sorted(df.seed.unique().tolist())}. Quality: mean validation ROC AUC "
        "(binary) / R^2 (regression) over tasks. `delta`: paired difference to "
        "the current defaults (same dataset and seed), in units of 1e-3; "
        "`rank`: mean rank within dataset and seed (1 = best); `time`: "
        "geometric mean over datasets of fit time / defaults' fit time.",
        "",
        "Defaults' scores: " + ", ".join(f"{d} {s:.4f}" for d, s in score.items()),
        "",
        "| config | "
        + " | ".join(f"{d} delta" for d in wide.columns)
        + " | mean delta | min delta | wins | mean rank | time |",
        "|---" * (len(wide.columns) + 6) + "|",
    ]
    for row in overall.itertuples():
        cells = [f"{1e3 * wide.loc[row.config, d]:+.1f}" for d in wide.columns]
        lines.append(
            f"| {row.config} | "
            + " | ".join(cells)
            + f" | {1e3 * row.mean_delta:+.1f} | {1e3 * row.min_delta:+.1f} | "
            f"{row.wins}/{row.n_datasets} | {row.mean_rank:.1f} | "
            f"{row.time_ratio:.2f}x |"
        )
    lines += [
        "",
        "Per dataset (mean over seeds): score, delta (sd over seeds), fit "
        "time in s, epochs run.",
        "",
        "| dataset | config | score | delta (sd) | fit s | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for row in per.sort_values(["dataset", "rank"]).itertuples():
        sd = "" if np.isnan(row.delta_sd) else f" ({1e3 * row.delta_sd:.1f})"
        lines.append(
            f"| {row.dataset} | {row.config} | {row.score:.4f} | "
            f"{1e3 * row.delta:+.1f}{sd} | {row.fit_time:.1f} | {row.n_iter:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


def main(argv=None) -> None:
    args = parse_args(argv)
    out_dir = args.output_dir
    if args.quick:
        import tempfile

        out_dir = Path(tempfile.mkdtemp(prefix="defaults_study_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "defaults_study.csv"
    md = out_dir / "defaults_study.md"
    if args.report:
        print(write_report(csv, md))
        return
    configs = ["default", "lr=3e-3"] if args.quick else args.configs
    datasets = args.datasets
    seeds = range(1 if args.quick else args.seeds)
    done = set()
    if csv.exists():
        old = pd.read_csv(csv)
        done = set(zip(old.dataset, old.config, old.seed, strict=True))
    jobs = [
        (d, c, s)
        for d in datasets
        for s in seeds
        for c in configs
        if (d, c, s) not in done
    ]
    print(f"{len(jobs)} fits to run ({len(done)} already in {csv})", flush=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, *job, args.quick) for job in jobs]
        for future in as_completed(futures):
            row = future.result()
            header = not csv.exists()
            pd.DataFrame([row]).to_csv(csv, mode="a", header=header, index=False)
            print(
                f"[{time.perf_counter() - start:6.0f}s] {row['dataset']:13s} "
                f"{row['config']:28s} seed {row['seed']} score {row['score']:.4f} "
                f"fit {row['fit_time']:5.1f}s epochs {row['n_iter']}",
                flush=True,
            )
    print(write_report(csv, md))


if __name__ == "__main__":
    main()
