"""Numeric embeddings on the 40,000-row census sample: which kind helps.

Compares, on the sample and test half of ``quality.py`` (mean test ROC AUC
of the three tasks, one fit per variant and seed, one thread):

* ``none``: the estimator with ``numeric_embedding=None``;
* ``periodic``: ``numeric_embedding="periodic"`` (PLR embeddings, the
  default for up to 16 numeric columns);
* ``ple``: piecewise-linear embeddings (``rtdl_num_embeddings.
  PiecewiseLinearEmbeddings``, 48 quantile bins per column, ``version="B"``,
  8 dimensions) on the unscaled columns, in place of the periodic ones.

Usage::

    python benchmarks/numeric_embeddings.py --seeds 3   # ~5 min on 2 cores
    python benchmarks/numeric_embeddings.py --quick     # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from sk_mmoe import MultiTaskMMoEClassifier, network
from sk_mmoe.datasets import load_census_income

VARIANTS = ("none", "periodic", "ple")


def census_sample(n_rows: int):
    """quality.py's training sample and test half of the census data."""
    X_tr, X_te, Y_tr, Y_te = load_census_income(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X_te))
    test = order[len(order) // 2 :]
    rows = np.random.default_rng(0).permutation(len(X_tr))[:n_rows]
    return (
        X_tr.iloc[rows].reset_index(drop=True),
        Y_tr.iloc[rows].reset_index(drop=True),
        X_te.iloc[test].reset_index(drop=True),
        Y_te.iloc[test].reset_index(drop=True),
    )


def piecewise_linear(X_numeric: np.ndarray) -> type:
    """A FeatureEmbedding whose numeric columns get PLE embeddings."""
    import rtdl_num_embeddings as rne

    bins = rne.compute_bins(torch.as_tensor(X_numeric, dtype=torch.float32))

    class PiecewiseLinearFeatures(network.FeatureEmbedding):
        def __init__(self, n_features, categorical_columns, cardinalities, dim, _):
            super().__init__(n_features, categorical_columns, cardinalities, dim)
            self.numeric_embedding = rne.PiecewiseLinearEmbeddings(
                bins, network.NUMERIC_EMBEDDING_DIM, activation=False, version="B"
            )
            n_numeric = self.numeric_columns.numel()
            self.out_features += n_numeric * (network.NUMERIC_EMBEDDING_DIM - 1)

    return PiecewiseLinearFeatures


def run(variant: str, seed: int, data, quick: bool) -> dict:
    X, Y, X_test, Y_test = data
    params = {"random_state": seed, "n_threads": 1}
    params["numeric_embedding"] = "periodic" if variant == "periodic" else None
    if quick:
        params["max_epochs"] = 2
    original = network.FeatureEmbedding
    if variant == "ple":
        numeric = X.select_dtypes("number").to_numpy()
        network.FeatureEmbedding = piecewise_linear(numeric)
        params["numeric_scaling"] = None  # quantile bins need no scaling
    try:
        model = MultiTaskMMoEClassifier(**params)
        start = time.perf_counter()
        model.fit(X, Y)
        fit_time = time.perf_counter() - start
    finally:
        network.FeatureEmbedding = original
    proba = model.predict_proba(X_test)
    aucs = [roc_auc_score(Y_test.iloc[:, k], p[:, 1]) for k, p in enumerate(proba)]
    return {
        "variant": variant,
        "seed": seed,
        "mean_auc": round(float(np.mean(aucs)), 4),
        "task_auc": [round(a, 4) for a in aucs],
        "fit_s": round(fit_time, 1),
        "epochs": len(model.history_),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    data = census_sample(2000 if args.quick else args.rows)
    results = [
        run(variant, seed, data, args.quick)
        for seed in range(1 if args.quick else args.seeds)
        for variant in VARIANTS
    ]
    for row in results:
        print(json.dumps(row))
    for variant in VARIANTS:
        scores = [r["mean_auc"] for r in results if r["variant"] == variant]
        print(f"{variant:>9}: mean test AUC {np.mean(scores):.4f} over {scores}")


if __name__ == "__main__":
    main()
