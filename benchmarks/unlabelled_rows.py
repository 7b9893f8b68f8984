"""Rows with no label: skipped in training (the default) or trained on.

A row labelled for no task adds nothing to the tasks' losses, so ``fit``
skips it (the scaling statistics and the vocabularies still come from every
row). This compares, side by side on the same labels and seed, the default
fit with one that trains on every row, as releases before the skip did (the
estimator's private row selection replaced for that arm). Data: the census
sample of ``quality.py`` (40,000 rows), every task labelled on ``--rate`` of
the rows; score: mean test ROC AUC over the three tasks on 20,000 rows of
the test file.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/unlabelled_rows.py --rate 0.0025 --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))

import quality  # noqa: E402  (the census sample of the quality benchmark)

from sk_mmoe import MultiTaskMMoEClassifier  # noqa: E402
from sk_mmoe._base import BaseMultiTaskMMoE  # noqa: E402


def scarce_labels(Y, rate, rng):
    """``Y`` with each task labelled on about ``rate`` of the rows (-1 else),
    with both classes among the labels."""
    Y = Y.copy()
    for column in Y.columns:
        while True:
            keep = rng.random(len(Y)) < rate
            if Y[column][keep].nunique() == 2:
                break
        Y.loc[~keep, column] = -1
    return Y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=0.0025)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    X, Y = quality.census_sample(False, 40_000)
    data = quality.census(False)
    X_test, Y_test = data["X_test"].iloc[:20_000], data["Y_test"].iloc[:20_000]
    skipping = BaseMultiTaskMMoE._trained_rows
    for seed in range(args.seeds):
        labels = scarce_labels(Y, args.rate, np.random.default_rng(seed))
        for arm, rows in (("skipped", skipping), ("trained on", lambda self, e: None)):
            BaseMultiTaskMMoE._trained_rows = rows
            start = time.perf_counter()
            model = MultiTaskMMoEClassifier(random_state=seed, n_threads=1)
            model.fit(X, labels)
            seconds = time.perf_counter() - start
            auc = np.mean(
                [
                    roc_auc_score(Y_test[task], proba[:, 1])
                    for task, proba in zip(
                        Y.columns, model.predict_proba(X_test), strict=True
                    )
                ]
            )
            print(
                f"seed {seed}, unlabelled rows {arm:10s}: AUC {auc:.4f}, "
                f"{seconds:.1f} s, {model.n_iter_} epochs",
                flush=True,
            )
        BaseMultiTaskMMoE._trained_rows = skipping


if __name__ == "__main__":
    main()
