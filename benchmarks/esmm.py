"""Conversion rates over the entire space: ESMM against training on clicks.

A purchase (here ``rated_highly`` of
:func:`sk_mmoe.datasets.make_recommendation_tasks`, labelled on every
clicked row with ``rate_fraction=1``) is only observed after a click. The
conversion rate P(purchase | click, x) is needed on every impression, to
rank items a user has not clicked yet, but its labels exist on the clicked
rows only, which are a biased sample (users click what they like). Three
models of the same architecture and training, on the same rows:

* ``esmm``: :class:`~sk_mmoe.MultiTaskMMoEClassifier` with
  ``conditional_on={"rated_highly": "click"}``: its conversion tower is
  trained on every row through the joint probability P(click and
  purchase) (Ma et al., SIGIR 2018); the conversion rate is
  ``predict_conditional_proba``'s;
* ``clicked_rows``: a single-task model of the purchase, trained on the
  clicked rows only (the naive conversion model);
* ``missing_labels``: the two-task model without ``conditional_on``, the
  purchase labelled on the clicked rows only (missing elsewhere).

All three are judged on held-out impressions of the same users and items,
clicked or not, against the generator's true conversion probability
``expit(scores["rated_highly"])`` (the draws are independent given the
scores): the AUC against conversions drawn from it on every row, the rank
correlation with it, the mean
Kullback-Leibler divergence from it (0 for a perfect model), and the bias
of the mean predicted rate. Five seeds (data and model), mean ± paired
standard error of each model's difference to ``esmm``.

Usage::

    python benchmarks/esmm.py               # about 10 min on 2 busy cores
    python benchmarks/esmm.py --epochs 20   # esmm_20_epochs.md
    python benchmarks/esmm.py --quick    # smoke run, seconds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import spearmanr
from seed_stats import mean_se
from sklearn.metrics import roc_auc_score

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import make_recommendation_tasks

RESULTS = Path(__file__).parent / "results"
MODELS = ("esmm", "clicked_rows", "missing_labels")
METRICS = {
    "auc": "AUC vs drawn conversions (higher is better)",
    "spearman": "rank correlation with the true rate (higher is better)",
    "kl": "KL from the true rate (lower is better)",
    "bias": "mean predicted - mean true rate",
}


def make_data(n_train: int, n_test: int, click_rate: float, seed: int):
    """Train and test impressions of one population, and the true rate."""
    X, Y, scores = make_recommendation_tasks(
        n_train + n_test,
        click_rate=click_rate,
        rate_fraction=1.0,
        return_watch_time=False,
        return_scores=True,
        random_state=seed,
    )
    Y = Y[["click", "rated_highly"]]
    rate = expit(scores["rated_highly"].to_numpy())
    train, test = slice(0, n_train), slice(n_train, None)
    return X[train], Y[train], X[test], rate[test]


def conversion_rates(X, Y, X_test, params: dict) -> dict[str, np.ndarray]:
    """Each model's P(purchase | click, x) on ``X_test``."""
    esmm = MultiTaskMMoEClassifier(
        **params, conditional_on={"rated_highly": "click"}
    ).fit(X, Y)
    clicked = (Y["click"] == 1).to_numpy()
    single = MultiTaskMMoEClassifier(**params).fit(
        X[clicked], Y["rated_highly"][clicked].astype(int)
    )
    missing = MultiTaskMMoEClassifier(**params).fit(X, Y)
    return {
        "esmm": esmm.predict_conditional_proba(X_test)[1][:, 1],
        "clicked_rows": single.predict_proba(X_test)[:, 1],
        "missing_labels": missing.predict_proba(X_test)[1][:, 1],
    }


def evaluate(rate: np.ndarray, predicted: np.ndarray, drawn: np.ndarray) -> dict:
    q = np.clip(predicted, 1e-7, 1 - 1e-7)
    kl = rate * np.log(rate / q) + (1 - rate) * np.log((1 - rate) / (1 - q))
    return {
        "auc": roc_auc_score(drawn, predicted),
        "spearman": float(spearmanr(predicted, rate).statistic),
        "kl": float(np.mean(kl)),
        "bias": float(np.mean(predicted) - np.mean(rate)),
    }


def report(results: dict[str, dict[str, list[float]]], n_seeds: int) -> str:
    lines = [
        f"| metric | {' | '.join(MODELS)} | "
        + " | ".join(f"{m} - esmm" for m in MODELS[1:])
        + " |",
        "|" + "---|" * (1 + 2 * len(MODELS) - 1),
    ]
    for metric, description in METRICS.items():
        cells = []
        for model in MODELS:
            values = np.array(results[model][metric])
            cells.append(f"{values.mean():.4f}")
        for model in MODELS[1:]:
            diff = np.array(results[model][metric]) - np.array(results["esmm"][metric])
            mean, se = mean_se(diff)
            cells.append(f"{mean:+.4f} ± {se:.4f}")
        lines.append(f"| {description} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=100_000)
    parser.add_argument("--n-test", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--click-rate", type=float, default=0.1)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.n_train, args.n_test, args.epochs = 2, 3000, 2000, 2
    results = {model: {metric: [] for metric in METRICS} for model in MODELS}
    start = time.perf_counter()
    for seed in range(args.seeds):
        X, Y, X_test, rate = make_data(args.n_train, args.n_test, args.click_rate, seed)
        params = dict(
            max_epochs=args.epochs,
            early_stopping=False,
            batch_size=512,
            lr=3e-3,
            n_threads=1,
            random_state=seed,
        )
        rates = conversion_rates(X, Y, X_test, params)
        drawn = np.random.default_rng(seed).random(len(rate)) < rate
        for model, predicted in rates.items():
            scores = evaluate(rate, predicted, drawn)
            for metric, value in scores.items():
                results[model][metric].append(value)
            print(
                f"seed {seed} {model:>14}: "
                + ", ".join(f"{m} {v:.4f}" for m, v in scores.items()),
                flush=True,
            )
    table = report(results, args.seeds)
    header = (
        f"make_recommendation_tasks, {args.n_train:,} training and "
        f"{args.n_test:,} test impressions, click_rate={args.click_rate}, "
        f"{args.epochs} epochs, {args.seeds} seeds; conversion rates judged "
        f"on every test impression; mean, and mean ± paired SE of the "
        f"differences. {time.perf_counter() - start:.0f} s."
    )
    print()
    print(header)
    print(table)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        default = args.epochs == parser.get_default("epochs")
        name = "esmm.md" if default else f"esmm_{args.epochs}_epochs.md"
        (RESULTS / name).write_text(header + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
