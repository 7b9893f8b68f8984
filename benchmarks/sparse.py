"""Wide sparse inputs: fit time of one-hot data against dense data.

Four fits of the same estimator and tasks, 2 epochs each, one thread:

* a CSR input of 100,000 columns with 20 non-zeros per row (one-hot IDs),
  read through the network's sparse projection (the default for sparse
  inputs of 1,024 columns or more), whose weight the estimator trains with
  its lazy Adam (``sk_mmoe.nn._optim.LazyAdam``);
* the same, with the projection trained by ``torch.optim.SparseAdam``
  instead: the same update through sparse-tensor arithmetic;
* the same CSR input densified one batch at a time (the estimator's path
  for sparse inputs narrower than 1,024 columns);
* a dense input of 20 columns: as many non-zeros per row.

The compared runs alternate and each figure is the median over the repeats.

Usage::

    python benchmarks/sparse.py            # a few minutes on 2 cores
    python benchmarks/sparse.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from sk_mmoe import MultiTaskMMoEClassifier, _building
from sk_mmoe._fitting import training as _training


def make_data(n_rows: int, n_columns: int, nnz: int, seed: int = 0):
    """One-hot rows (``nnz`` ones each), two tasks of a hidden linear rule."""
    rng = np.random.default_rng(seed)
    columns = rng.integers(0, n_columns, size=(n_rows, nnz))
    X = sp.csr_matrix(
        (
            np.ones(n_rows * nnz, dtype=np.float32),
            columns.ravel(),
            np.arange(0, n_rows * nnz + 1, nnz),
        ),
        shape=(n_rows, n_columns),
    )
    X.sum_duplicates()
    weights = rng.normal(size=(n_columns, 2)).astype(np.float32)
    Y = (np.asarray(X @ weights) > 0).astype(int)
    X_dense = rng.normal(size=(n_rows, nnz)).astype(np.float32)
    return X, Y, X_dense


def fit(X, Y, epochs: int) -> float:
    start = time.perf_counter()
    MultiTaskMMoEClassifier(max_epochs=epochs, random_state=0, n_threads=1).fit(X, Y)
    return time.perf_counter() - start


def densified(X, Y, epochs: int) -> float:
    """The fit with the sparse projection switched off: batches densified."""
    threshold = _building._SPARSE_PROJECTION_MIN_FEATURES
    _building._SPARSE_PROJECTION_MIN_FEATURES = X.shape[1] + 1
    try:
        return fit(X, Y, epochs)
    finally:
        _building._SPARSE_PROJECTION_MIN_FEATURES = threshold


def with_sparse_adam(X, Y, epochs: int) -> float:
    """The fit with the projection trained by torch's SparseAdam."""
    lazy_adam = _training.LazyAdam
    _training.LazyAdam = torch.optim.SparseAdam
    try:
        return fit(X, Y, epochs)
    finally:
        _training.LazyAdam = lazy_adam


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    n_rows, n_columns, nnz = (2_000, 5_000, 20) if args.quick else (20_000, 100_000, 20)
    repeats, epochs = (1, 1) if args.quick else (3, 2)
    X, Y, X_dense = make_data(n_rows, n_columns, nnz)
    contestants = {
        "sparse input, sparse projection": lambda: fit(X, Y, epochs),
        "same, torch.optim.SparseAdam": lambda: with_sparse_adam(X, Y, epochs),
        "sparse input, densified per batch": lambda: densified(X, Y, epochs),
        f"dense input, {nnz} columns": lambda: fit(X_dense, Y, epochs),
    }
    for run in contestants.values():
        run()  # warm-up
    times = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, run in contestants.items():
            times[name].append(run())
    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians[f"dense input, {nnz} columns"]
    print(
        f"fit of {n_rows:,} rows, {epochs} epoch(s), {n_columns:,} one-hot columns "
        f"with {nnz} non-zeros per row; torch {torch.__version__}, 1 thread; "
        f"median of {repeats}"
    )
    print(f"{'input':<36} {'seconds':>8} {'/ dense':>8}  every run")
    for name, value in medians.items():
        runs = " ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:<36} {value:>8.2f} {value / reference:>8.1f}  {runs}")


if __name__ == "__main__":
    main()
