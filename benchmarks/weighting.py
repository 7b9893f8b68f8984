"""Loss weightings compared: equal, uncertainty, GradNorm and PCGrad.

Each weighting (``task_weights=None``, ``"uncertainty"``, ``"gradnorm"``,
``"pcgrad"``) is fitted with the same seeds on:

* ``census``: Census-Income (KDD), three binary tasks, a fixed sample of
  ``--rows`` training rows and as many rows of the test file to score on;
  scored by the mean validation ROC AUC of the three tasks;
* ``census:income_50k@5%``: the same rows with ``income_50k`` labelled on 5%
  of them (a new draw per seed); scored on ``income_50k`` only;
* ``recsys``: ``make_recommendation_tasks`` (``--rows`` rows plus a quarter
  for validation, task correlation 0), click, rated_highly, shared (binary)
  and log watch time (regression); scored by the mean of the binary tasks'
  ROC AUC and the regression's R^2.

Every fit runs ``--epochs`` epochs (no early stopping) on one thread. The
report gives, per dataset and weighting, the mean score and the paired
difference to equal weights (mean and standard error over the seeds).

Run: ``python benchmarks/weighting.py`` (``--quick``: a smoke run of a few
seconds). Results go to ``benchmarks/results/weighting.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from seed_stats import mean_se

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
WEIGHTINGS = {"equal": None, "uncertainty": "uncertainty"}
WEIGHTINGS.update(gradnorm="gradnorm", pcgrad="pcgrad")
DATASETS = ("census", "census:income_50k@5%", "recsys")
SCARCE_FRACTION = 0.05


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, seconds")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=10_000, help="training rows")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.rows, args.epochs = 2, 2000, 1
    return args


@functools.cache
def _census():
    """The Census-Income frames, read once per process."""
    from sk_mmoe.datasets import load_census_income

    return load_census_income(return_X_y=True)


def load(dataset: str, seed: int, rows: int):
    """(estimator kind, X_train, Y_train, X_test, Y_test, scored tasks)."""
    from sk_mmoe.datasets import make_recommendation_tasks

    if dataset == "recsys":
        X, Y = make_recommendation_tasks(
            rows + rows // 4, task_correlation=0.0, random_state=0
        )
        Y = Y.copy()
        Y["watch_time"] = np.log(Y["watch_time"])
        Y = Y.astype(float)
        return "mixed", X[:rows], Y[:rows], X[rows:], Y[rows:], list(Y.columns)
    X_tr, X_te, Y_tr, Y_te = _census()
    train = np.random.default_rng(0).permutation(len(X_tr))[:rows]
    test = np.random.default_rng(0).permutation(len(X_te))[:rows]
    X_tr, Y_tr = X_tr.iloc[train], Y_tr.iloc[train].astype(float)
    X_te, Y_te = X_te.iloc[test], Y_te.iloc[test]
    if dataset == "census":
        return "classifier", X_tr, Y_tr, X_te, Y_te, list(Y_tr.columns)
    task = dataset.split(":")[1].split("@")[0]
    hidden = np.random.default_rng(1000 + seed).permutation(rows)
    hidden = hidden[int(round(SCARCE_FRACTION * rows)) :]
    Y_tr = Y_tr.copy()
    Y_tr.iloc[hidden, Y_tr.columns.get_loc(task)] = np.nan
    return "classifier", X_tr, Y_tr, X_te, Y_te, [task]


def score(model, X, Y, scored) -> float:
    from sklearn.metrics import r2_score, roc_auc_score

    values = []
    for task in scored:
        k = list(Y.columns).index(task)
        y = Y[task].to_numpy(dtype=float)
        seen = ~np.isnan(y)  # the rows labelled for the task
        if set(np.unique(y[seen])) <= {0.0, 1.0}:
            proba = model.predict_proba(X)[k][:, 1]
            values.append(roc_auc_score(y[seen], proba[seen]))
        else:
            pred = np.asarray(model.predict(X), dtype=float)[:, k]
            values.append(r2_score(y[seen], pred[seen]))
    return float(np.mean(values))


def run_one(job) -> dict:
    from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier

    dataset, weighting, seed, rows, epochs = job
    kind, X_tr, Y_tr, X_te, Y_te, scored = load(dataset, seed, rows)
    params = dict(
        task_weights=WEIGHTINGS[weighting],
        max_epochs=epochs,
        early_stopping=False,
        n_threads=1,
        random_state=seed,
    )
    if kind == "mixed":
        types = ["binary"] * 3 + ["regression"]
        model = MultiTaskMMoE(task_types=types, **params)
    else:
        model = MultiTaskMMoEClassifier(**params)
    start = time.perf_counter()
    model.fit(X_tr, Y_tr)
    fit_time = time.perf_counter() - start
    return {
        "dataset": dataset,
        "weighting": weighting,
        "seed": seed,
        "score": score(model, X_te, Y_te, scored),
        "fit_time": round(fit_time, 2),
    }


def report(rows: list[dict]) -> str:
    lines = [
        "| dataset | weighting | mean score | paired diff. to equal (x1000) "
        "| median fit s |",
        "|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        base = {
            r["seed"]: r["score"]
            for r in rows
            if r["dataset"] == dataset and r["weighting"] == "equal"
        }
        for weighting in WEIGHTINGS:
            mine = [
                r
                for r in rows
                if r["dataset"] == dataset and r["weighting"] == weighting
            ]
            if not mine:
                continue
            scores = np.array([r["score"] for r in mine])
            diff, se = mean_se([1000 * (r["score"] - base[r["seed"]]) for r in mine])
            times = np.median([r["fit_time"] for r in mine])
            lines.append(
                f"| {dataset} | {weighting} | {scores.mean():.4f} | "
                f"{diff:+.2f} ± {se:.2f} | {times:.1f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    jobs = [
        (dataset, weighting, seed, args.rows, args.epochs)
        for seed in range(args.seeds)
        for dataset in DATASETS
        for weighting in WEIGHTINGS
    ]
    with Pool(args.jobs) as pool:
        rows = []
        for row in pool.imap_unordered(run_one, jobs):
            rows.append(row)
            print(row, flush=True)
    table = report(rows)
    print(table)
    if args.quick:
        return
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with open(args.output_dir / "weighting.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["dataset"], r["seed"])))
    (args.output_dir / "weighting.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
