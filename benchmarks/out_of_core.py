"""Out-of-core training: ``partial_fit`` over chunks read from a Parquet file.

The data set (by default 20,000,000 rows x 64 float32 features and 3 binary
tasks, 5.1 GB of features) is generated chunk by chunk with a known rule (the
one of ``benchmarks/performance.py``: Gaussian features, each task a noisy
linear rule) and written to one Parquet file, one row group per chunk. The
model then trains with one ``partial_fit`` call per row group, the row groups
in a new random order every epoch, so that at most one chunk is in memory at
a time. Reported:

* training throughput (rows/s, reading from disk included);
* the peak resident memory (``VmHWM``) of the process during training,
  against the size of the data;
* the test ROC AUC of every task on held-out rows drawn from the same rule,
  against an in-memory ``fit`` on a subsample that fits in memory
  (``--in-memory-rows``, default 1,000,000) trained for the **same number of
  gradient steps** (the same number of rows seen) as the out-of-core run.
  The out-of-core model sees each row once per epoch, the in-memory one
  revisits its subsample, so any gap is what training on more distinct rows
  buys, not an artefact of streaming.

Usage::

    python benchmarks/out_of_core.py --quick        # a few seconds
    python benchmarks/out_of_core.py --rows 20000000 --dir /big/disk

The Parquet file is written to ``--dir`` (a temporary folder by default) and
removed at the end unless ``--keep`` is given; an existing file with the same
parameters is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sklearn.metrics import roc_auc_score

import sk_mmoe
from sk_mmoe import MultiTaskMMoEClassifier

N_TASKS = 3
NETWORK = dict(
    n_experts=8, expert_hidden_layer_sizes=(64, 32), tower_hidden_layer_sizes=(16,)
)
BATCH_SIZE = 1024
LR = 1e-3


# ----------------------------------------------------------------------
# Data: a known rule, generated chunk by chunk
# ----------------------------------------------------------------------


def task_weights(n_features: int, seed: int) -> np.ndarray:
    """The linear rule of every task (fixed by ``seed``)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_features, N_TASKS)).astype(np.float32)


def make_chunk(
    n_rows: int, n_features: int, weights: np.ndarray, seed: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ``index``: Gaussian features, each task a noisy linear rule.

    ``X`` is returned column-major (Fortran order).

    Every chunk has its own random stream, so a chunk can be regenerated
    alone and the data do not depend on the chunk size's history.
    """
    rng = np.random.default_rng([seed, index])
    # Column-major, so that every feature column is contiguous for Parquet.
    X = rng.standard_normal((n_features, n_rows), dtype=np.float32).T
    noise = rng.standard_normal((n_rows, N_TASKS), dtype=np.float32)
    Y = (X @ weights + noise * np.sqrt(n_features) > 0).astype(np.int8)
    return X, Y


def columns(n_features: int) -> list[str]:
    return [f"x{j}" for j in range(n_features)] + [f"y{k}" for k in range(N_TASKS)]


def write_parquet(
    path: Path, n_rows: int, n_features: int, chunk_rows: int, seed: int
) -> float:
    """Write the data set chunk by chunk, one row group per chunk."""
    weights = task_weights(n_features, seed)
    names = columns(n_features)
    schema = pa.schema(
        [(name, pa.float32()) for name in names[:n_features]]
        + [(name, pa.int8()) for name in names[n_features:]]
    )
    start = time.perf_counter()
    tmp = path.with_suffix(".part")
    # Uncompressed: Gaussian floats do not compress, and decompression would
    # only cost training time.
    with pq.ParquetWriter(tmp, schema, compression="none") as writer:
        for index, first in enumerate(range(0, n_rows, chunk_rows)):
            rows = min(chunk_rows, n_rows - first)
            X, Y = make_chunk(rows, n_features, weights, seed, index)
            arrays = [pa.array(X[:, j]) for j in range(n_features)] + [
                pa.array(Y[:, k]) for k in range(N_TASKS)
            ]
            writer.write_table(
                pa.Table.from_arrays(arrays, schema=schema), row_group_size=rows
            )
    tmp.rename(path)
    return time.perf_counter() - start


def read_chunk(
    parquet: pq.ParquetFile, index: int, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row group ``index`` as a C-ordered float32 ``X`` and an int8 ``Y``."""
    table = parquet.read_row_group(index)
    n_rows = table.num_rows
    X = np.empty((n_rows, n_features), dtype=np.float32)
    for j in range(n_features):
        X[:, j] = table.column(j).to_numpy()
    Y = np.column_stack(
        [table.column(n_features + k).to_numpy() for k in range(N_TASKS)]
    )
    return X, Y


# ----------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """Peak RSS of this process: ``VmHWM``, else ``ru_maxrss``."""
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


# ----------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------


def make_model(seed: int, max_epochs: int = 1) -> MultiTaskMMoEClassifier:
    return MultiTaskMMoEClassifier(
        **NETWORK,
        batch_size=BATCH_SIZE,
        lr=LR,
        max_epochs=max_epochs,
        random_state=seed,
    )


def test_auc(model: MultiTaskMMoEClassifier, X: np.ndarray, Y: np.ndarray) -> list:
    proba = model.predict_proba(X)
    return [float(roc_auc_score(Y[:, k], proba[k][:, 1])) for k in range(N_TASKS)]


def train_out_of_core(
    path: Path, n_features: int, epochs: int, seed: int
) -> tuple[MultiTaskMMoEClassifier, dict]:
    parquet = pq.ParquetFile(path)
    n_groups = parquet.num_row_groups
    n_rows = parquet.metadata.num_rows
    model = make_model(seed)
    classes = [np.array([0, 1])] * N_TASKS  # one array per task
    rng = np.random.default_rng(seed)
    read_seconds = 0.0
    reset = reset_peak_rss()
    baseline = _status_bytes("VmRSS")
    start = time.perf_counter()
    for _ in range(epochs):
        for index in rng.permutation(n_groups):
            t0 = time.perf_counter()
            X, Y = read_chunk(parquet, int(index), n_features)
            read_seconds += time.perf_counter() - t0
            model.partial_fit(X, Y, classes=classes)
            del X, Y
    seconds = time.perf_counter() - start
    return model, {
        "rows_seen": n_rows * epochs,
        "seconds": seconds,
        "read_seconds": read_seconds,
        "rows_per_second": n_rows * epochs / seconds,
        "baseline_rss": baseline,
        "peak_rss": peak_rss(),
        "peak_reset_at_start": reset,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--chunk-rows", type=int, default=262_144)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--in-memory-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.chunk_rows = 40_000, 8_192
        args.test_rows, args.in_memory_rows = 10_000, 10_000

    directory = Path(args.dir or tempfile.mkdtemp(prefix="sk_mmoe_ooc_"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (
        f"data_{args.rows}x{args.features}_c{args.chunk_rows}_s{args.seed}.parquet"
    )
    data_bytes = args.rows * args.features * 4
    print(
        f"sk_mmoe {sk_mmoe.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"data: {args.rows:,} x {args.features} float32 + {N_TASKS} int8 "
        f"targets = {data_bytes / 1e9:.2f} GB of features, chunks of "
        f"{args.chunk_rows:,} rows"
    )
    if path.exists():
        write_seconds = None
        print(f"reusing {path}")
    else:
        write_seconds = write_parquet(
            path, args.rows, args.features, args.chunk_rows, args.seed
        )
        print(f"wrote {path} in {write_seconds:.1f} s")
    file_bytes = path.stat().st_size

    weights = task_weights(args.features, args.seed)
    # A stream index no training chunk uses: held-out rows of the same rule.
    X_test, Y_test = make_chunk(
        args.test_rows, args.features, weights, args.seed, 10**9
    )

    model, ooc = train_out_of_core(path, args.features, args.epochs, args.seed)
    ooc["test_auc"] = test_auc(model, X_test, Y_test)
    print(
        f"out-of-core: {ooc['rows_seen']:,} rows in {ooc['seconds']:.1f} s "
        f"({ooc['rows_per_second']:,.0f} rows/s, reading "
        f"{ooc['read_seconds']:.1f} s); peak RSS {ooc['peak_rss'] / 1e6:,.0f} MB "
        f"= {ooc['peak_rss'] / data_bytes:.1%} of the data "
        f"({data_bytes / 1e6:,.0f} MB); test AUC "
        + ", ".join(f"{a:.4f}" for a in ooc["test_auc"])
    )

    # In memory: a subsample (the first row groups), the same number of rows
    # seen, hence the same number of gradient steps (up to the last batch of
    # every chunk / epoch).
    n_sub = min(args.in_memory_rows, args.rows)
    parquet = pq.ParquetFile(path)
    parts, rows = [], 0
    for index in range(parquet.num_row_groups):
        if rows >= n_sub:
            break
        parts.append(read_chunk(parquet, index, args.features))
        rows += len(parts[-1][0])
    X_sub = np.concatenate([p[0] for p in parts])[:n_sub]
    Y_sub = np.concatenate([p[1] for p in parts])[:n_sub]
    del parts
    epochs = max(1, round(ooc["rows_seen"] / n_sub))
    start = time.perf_counter()
    in_memory = make_model(args.seed, max_epochs=epochs).fit(X_sub, Y_sub)
    mem = {
        "rows": n_sub,
        "epochs": epochs,
        "rows_seen": n_sub * epochs,
        "seconds": time.perf_counter() - start,
        "test_auc": test_auc(in_memory, X_test, Y_test),
    }
    mem["rows_per_second"] = mem["rows_seen"] / mem["seconds"]
    print(
        f"in memory: {n_sub:,} rows x {epochs} epochs = {mem['rows_seen']:,} rows "
        f"in {mem['seconds']:.1f} s ({mem['rows_per_second']:,.0f} rows/s); "
        f"test AUC " + ", ".join(f"{a:.4f}" for a in mem["test_auc"])
    )
    gap = np.subtract(ooc["test_auc"], mem["test_auc"])
    print("AUC out-of-core - in memory: " + ", ".join(f"{g:+.4f}" for g in gap))

    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "rows": args.rows,
        "features": args.features,
        "chunk_rows": args.chunk_rows,
        "epochs": args.epochs,
        "data_bytes": data_bytes,
        "file_bytes": file_bytes,
        "write_seconds": write_seconds,
        "out_of_core": ooc,
        "in_memory": mem,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    if not args.keep and args.dir is None:
        shutil.rmtree(directory, ignore_errors=True)
    elif not args.keep:
        path.unlink(missing_ok=True)
    return result


if __name__ == "__main__":
    main()
