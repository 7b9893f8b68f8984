"""Training and prediction speed and memory of MultiTaskMMoEClassifier.

Compares, on the same data and network sizes:

* ``fit`` against a hand-written PyTorch training loop of the same network
  (:class:`sk_mmoe.nn.network.MMoENetwork`, Adam, shuffled index batches, one
  ``loss.item()`` per batch), built as the estimator builds it for these
  data (the learned fill of missing values included, see
  ``numeric_missing``), and against DeepCTR-Torch's ``MMOE`` (if
  ``deepctr-torch`` is installed, see below), and the time from the call
  of ``fit`` to its first training batch (input checks, encoding, building
  the network and the skorch net) against a fit of one second;
* ``predict_proba`` against a raw ``module(X)`` forward pass under
  ``torch.no_grad()``, on 100,000 rows and on a single row;
* the peak memory of ``fit`` on 1,000,000 x 100 float32 features (dense,
  float64 and sparse CSR inputs), each case in its own process;
* the scaling of ``fit`` time with the number of rows and of experts.

The compared runs alternate (ABCABC..., the order rotating every repeat) and
every figure is the median over the repeats, so that load from other
processes affects all contestants alike. Each timing is reported as wall
time and as process CPU time (the sum over threads), which is less
sensitive to a shared machine.

Usage::

    python benchmarks/performance.py            # about 3 min on 2 CPU cores
    python benchmarks/performance.py --quick    # smoke run, a few seconds

On a machine shared with other jobs, OpenMP threads that spin while they
wait for each other (the default) can slow two-thread runs down several-fold;
``OMP_WAIT_POLICY=PASSIVE python benchmarks/performance.py`` avoids that, but
makes small operations slower on an idle machine. The policy used is printed
and recorded.

DeepCTR-Torch (and ``requests``, which it imports without declaring it)
come with the benchmarks extra; install torch first so that pip keeps the
installed build::

    pip install torch==2.13.0 && pip install -e ".[benchmarks]"

Outputs (full run): ``benchmarks/results/performance.txt`` (the printed
tables) and ``performance.json`` (every measurement, the machine and the
versions). ``--quick`` writes them to a temporary folder unless ``--out`` is
given.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import inspect
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from skorch.callbacks import Callback
from torch.nn import functional as F

import sk_mmoe
from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.nn.network import MMoENetwork

ROOT = Path(__file__).resolve().parent.parent

# The sizes of the reference comparison: 8 experts of two ReLU layers
# (64, 32), towers of one hidden layer of 16 units, 3 binary tasks.
N_FEATURES = 64
N_TASKS = 3
NETWORK = dict(
    n_experts=8, expert_hidden_layer_sizes=(64, 32), tower_hidden_layer_sizes=(16,)
)
BATCH_SIZE = 1024
LR = 1e-3
# The gates of the hand-written loop's network (MMoENetwork's defaults): no
# gate dropout, no temperature; the estimators' defaults soften both.
PLAIN_GATES = {"gate_dropout": 0.0, "gate_temperature": 1.0}
# What the estimator's network also does by default, which the hand-written
# loop's network does too (the same work): the learned fill of missing
# numeric values (``numeric_missing="learn"``; the data have none).
INPUT_LAYERS = {"numeric_missing": True}

FULL = dict(
    fit_rows=100_000,
    fit_epochs=2,
    small_batch_size=64,
    step_batch_sizes=(256, 1024),
    predict_rows=100_000,
    single_row_calls=200,
    memory_rows=1_000_000,
    memory_features=100,
    memory_nnz_per_row=10,
    scaling_rows=(12_500, 25_000, 50_000, 100_000, 200_000),
    scaling_experts=(1, 2, 4, 8, 16, 32),
    scaling_experts_rows=50_000,
    repeats=5,
    predict_repeats=11,
    scaling_repeats=3,
)
QUICK = dict(
    fit_rows=2_000,
    fit_epochs=1,
    small_batch_size=64,
    step_batch_sizes=(256,),
    predict_rows=2_000,
    single_row_calls=10,
    memory_rows=20_000,
    memory_features=100,
    memory_nnz_per_row=10,
    scaling_rows=(1_000, 2_000),
    scaling_experts=(1, 8),
    scaling_experts_rows=1_000,
    repeats=1,
    predict_repeats=1,
    scaling_repeats=1,
)
SECTIONS = ("fit", "predict", "memory", "scaling")


# ----------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------


def make_data(
    n_rows: int, n_features: int, seed: int = 0, dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features and ``N_TASKS`` binary tasks, each a noisy linear rule.

    Filled chunk by chunk, so that building the data never needs more memory
    than the data itself (the memory cases measure from there).
    """
    rng = np.random.default_rng(seed)
    X = np.empty((n_rows, n_features), dtype=dtype)
    Y = np.empty((n_rows, N_TASKS), dtype=np.int64)
    weights = rng.standard_normal((n_features, N_TASKS)).astype(dtype)
    chunk = 65_536
    for start in range(0, n_rows, chunk):
        rows = slice(start, min(start + chunk, n_rows))
        rng.standard_normal(out=X[rows], dtype=dtype)
        noise = rng.standard_normal((X[rows].shape[0], N_TASKS))
        Y[rows] = X[rows] @ weights + noise * np.sqrt(n_features) > 0
    return X, Y


def make_sparse_data(
    n_rows: int, n_features: int, nnz_per_row: int, seed: int = 0
) -> tuple[sp.csr_matrix, np.ndarray]:
    """CSR float32 features with ``nnz_per_row`` entries per row, and targets.

    Row ``i`` has one entry in each of ``nnz_per_row`` equal blocks of
    columns, so the indices are sorted and unique without a dense detour.
    """
    rng = np.random.default_rng(seed)
    block = n_features // nnz_per_row
    indices = (
        np.arange(nnz_per_row, dtype=np.int32) * block
        + rng.integers(0, block, (n_rows, nnz_per_row), dtype=np.int32)
    ).ravel()
    data = rng.standard_normal(n_rows * nnz_per_row, dtype=np.float32)
    indptr = np.arange(0, n_rows * nnz_per_row + 1, nnz_per_row, dtype=np.int64)
    X = sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_features))
    weights = rng.standard_normal((n_features, N_TASKS)).astype(np.float32)
    noise = rng.standard_normal((n_rows, N_TASKS)) * np.sqrt(nnz_per_row)
    Y = (np.asarray(X @ weights) + noise > 0).astype(np.int64)
    return X, Y


# ----------------------------------------------------------------------
# Contestants
# ----------------------------------------------------------------------


# perf_counter() when the latest timed fit was called and when its first
# training batch began (see ``FirstBatch``).
FIRST_BATCH: dict[str, float] = {}


class FirstBatch(Callback):
    """Records in ``FIRST_BATCH`` when a fit's first training batch begins
    (a module-level record: the estimator copies its callbacks)."""

    def on_batch_begin(self, net, training: bool = False, **kwargs) -> None:
        if training and "first_batch" not in FIRST_BATCH:
            FIRST_BATCH["first_batch"] = time.perf_counter()


def fit_sk_mmoe(
    X,
    Y,
    epochs: int,
    batch_size: int = BATCH_SIZE,
    callbacks=None,
    estimator: type = MultiTaskMMoEClassifier,
    **network,
) -> MultiTaskMMoEClassifier:
    """Fit ``estimator`` (the classifier, or that of another revision)."""
    clf = estimator(
        **(network or NETWORK),
        callbacks=callbacks,
        batch_size=batch_size,
        lr=LR,
        max_epochs=epochs,
        # The same work as the hand-written loop: every row trains, no
        # validation pass, no input scaling (the data are standardised), no
        # dropout or weight decay, plain gates, a constant learning rate.
        lr_schedule=None,
        **PLAIN_GATES,
        early_stopping=False,
        numeric_scaling=None,
        dropout=0.0,
        weight_decay=0.0,
        random_state=0,
    )
    return clf.fit(X, Y)


def fit_timing_first_batch(
    X, Y, epochs: int, estimator: type = MultiTaskMMoEClassifier
) -> float:
    """``fit_sk_mmoe``; the seconds from its call to its first batch."""
    FIRST_BATCH.clear()
    FIRST_BATCH["call"] = time.perf_counter()
    fit_sk_mmoe(X, Y, epochs, callbacks=[FirstBatch()], estimator=estimator)
    return FIRST_BATCH["first_batch"] - FIRST_BATCH["call"]


def fit_torch_loop(
    X: np.ndarray,
    Y: np.ndarray,
    epochs: int,
    batch_size: int = BATCH_SIZE,
    network: type = MMoENetwork,
    device: str = "cpu",
    fused: bool | None = None,
) -> torch.nn.Module:
    """The training loop one would write by hand for the same network (with
    the estimator's input layers, where ``network`` has them), with the data
    already on ``device``; ``fused`` is passed to Adam (None: its default
    step)."""
    torch.manual_seed(0)
    X_t, Y_t = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)
    accepted = inspect.signature(network).parameters
    layers = {k: v for k, v in INPUT_LAYERS.items() if k in accepted}
    module = network(X.shape[1], [2] * Y.shape[1], **NETWORK, **layers).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=LR, fused=fused)
    module.train()
    for _ in range(epochs):
        order = torch.randperm(X_t.shape[0], device=device)
        for start in range(0, X_t.shape[0], batch_size):
            index = order[start : start + batch_size]
            logits = module(X_t[index])
            y = Y_t[index]
            loss = sum(
                F.cross_entropy(logits[:, k], y[:, k]) for k in range(y.shape[1])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # what a loop that logs its loss pays, as skorch does
    return module


def import_deepctr() -> tuple | None:
    """DeepCTR-Torch's ``MMOE`` and ``DenseFeat``, or None if not installed.

    Importing ``deepctr_torch`` starts a thread that asks PyPI for the latest
    version; it is answered with an error here, so that the benchmark never
    uses the network.
    """
    try:
        import requests
    except ImportError:
        return None
    real_get = requests.get

    def no_network(*args, **kwargs):
        raise requests.ConnectionError("network disabled by the benchmark")

    requests.get = no_network
    before = set(threading.enumerate())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                from deepctr_torch.inputs import DenseFeat
                from deepctr_torch.models import MMOE
            except ImportError:
                return None
            finally:
                for thread in set(threading.enumerate()) - before:
                    thread.join(timeout=10)
    finally:
        requests.get = real_get
    return MMOE, DenseFeat


def deepctr_model(deepctr: tuple, n_features: int, n_experts: int = 8):
    """DeepCTR-Torch's MMOE at the sizes of ``NETWORK``.

    One ``DenseFeat`` of dimension ``n_features`` (one slice per batch, the
    cheapest input path), linear gates (``gate_dnn_hidden_units=()``), towers
    of 16 units and a sigmoid output per binary task; default regularisation
    (``l2_reg_dnn=0``).
    """
    MMOE, DenseFeat = deepctr
    with contextlib.redirect_stdout(io.StringIO()):
        model = MMOE(
            [DenseFeat("x", n_features)],
            num_experts=n_experts,
            expert_dnn_hidden_units=NETWORK["expert_hidden_layer_sizes"],
            gate_dnn_hidden_units=(),
            tower_dnn_hidden_units=NETWORK["tower_hidden_layer_sizes"],
            task_types=("binary",) * N_TASKS,
            task_names=tuple(f"task{k}" for k in range(N_TASKS)),
            device="cpu",
        )
        model.compile("adam", loss=["binary_crossentropy"] * N_TASKS)
    return model


def fit_deepctr(deepctr: tuple, X: np.ndarray, Y: np.ndarray, epochs: int):
    model = deepctr_model(deepctr, X.shape[1])
    with contextlib.redirect_stdout(io.StringIO()):  # fit prints its device
        model.fit(
            {"x": X},
            Y.astype(np.float32),
            batch_size=BATCH_SIZE,
            epochs=epochs,
            verbose=0,
        )
    return model


def iterate_deepctr_batches(X: np.ndarray, Y: np.ndarray, epochs: int) -> None:
    """Only the batching of DeepCTR-Torch's ``fit``: a shuffling ``DataLoader``
    over a ``TensorDataset``, which fetches and collates row by row."""
    from torch.utils.data import DataLoader, TensorDataset

    dataset = TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    for _ in range(epochs):
        for _batch in DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True):
            pass


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------


def interleaved(
    contestants: dict[str, Callable[[], object]], repeats: int, warmup: bool
) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each contestant, run in turns ``repeats`` times.

    The order rotates every repeat (ABC, BCA, CAB...), so that no contestant
    always follows the same one.
    """
    names = list(contestants)
    if warmup:
        for name in names:
            contestants[name]()
    times = {name: {"wall": [], "cpu": []} for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            contestants[name]()
            times[name]["wall"].append(time.perf_counter() - wall)
            times[name]["cpu"].append(time.process_time() - cpu)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def timing_row(
    figure: str,
    times: dict,
    measured: str,
    reference: str,
    target: float | None,
    scale: float = 1.0,
    unit: str = "s",
) -> dict:
    """A table row comparing the medians of two contestants of ``times``."""
    row = {"figure": figure, "unit": unit, "target": target}
    for clock in ("wall", "cpu"):
        m = median(times[measured][clock]) * scale
        r = median(times[reference][clock]) * scale
        row[clock] = {"measured": m, "reference": r, "ratio": m / r}
    return row


# ----------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------


def bench_fit(config: dict, quick: bool) -> tuple[list[dict], dict]:
    X, Y = make_data(config["fit_rows"], N_FEATURES)
    epochs = config["fit_epochs"]
    to_first_batch = []

    def fit_and_record() -> None:
        to_first_batch.append(fit_timing_first_batch(X, Y, epochs))

    contestants = {
        "sk_mmoe": fit_and_record,
        "torch_loop": lambda: fit_torch_loop(X, Y, epochs),
    }
    deepctr = import_deepctr()
    if deepctr is None:
        print("deepctr-torch is not installed: skipping the DeepCTR-Torch comparison")
    else:
        contestants["deepctr_torch"] = lambda: fit_deepctr(deepctr, X, Y, epochs)
        Y_float = Y.astype(np.float32)
        contestants["deepctr_batches"] = lambda: iterate_deepctr_batches(
            X, Y_float, epochs
        )
    times = interleaved(contestants, config["repeats"], warmup=not quick)
    # The warm-up's first batch comes after imports and first calls: not kept.
    to_first_batch = to_first_batch[-config["repeats"] :]
    size = f"{X.shape[0]:,} x {X.shape[1]}, {epochs} epoch{'s' * (epochs > 1)}"
    # One epoch at each batch size, timed apart from the fit above: the
    # per-batch overhead of skorch and of the estimator's loss shows most at
    # small batches (the target is for the usual sizes).
    step_times = {
        batch_size: interleaved(
            {
                "sk_mmoe": lambda b=batch_size: fit_sk_mmoe(X, Y, 1, batch_size=b),
                "torch_loop": lambda b=batch_size: fit_torch_loop(
                    X, Y, 1, batch_size=b
                ),
            },
            config["repeats"],
            warmup=not quick,
        )
        for batch_size in (config["small_batch_size"], *config["step_batch_sizes"])
    }
    rows = [
        timing_row(
            f"fit {size}: sk_mmoe / hand-written torch loop",
            times,
            "sk_mmoe",
            "torch_loop",
            target=1.05,
        ),
        {
            # The fixed cost of a fit: input checks, encoding, building the
            # network, initialising the skorch net; against a fit of 1 s.
            "figure": f"fit {size}: call to first batch / a 1 s fit",
            "unit": "s",
            "target": 0.05,
            "wall": {
                "measured": median(to_first_batch),
                "reference": 1.0,
                "ratio": median(to_first_batch),
            },
        },
        *(
            timing_row(
                f"fit {X.shape[0]:,} x {X.shape[1]}, 1 epoch, batch {batch_size}: "
                "sk_mmoe / torch loop",
                batch_times,
                "sk_mmoe",
                "torch_loop",
                target=None if batch_size == config["small_batch_size"] else 1.05,
            )
            for batch_size, batch_times in step_times.items()
        ),
    ]
    details = {
        "times": times,
        "to_first_batch": to_first_batch,
        "step_times": {str(b): t for b, t in step_times.items()},
        "n_parameters": {
            "sk_mmoe": n_parameters(
                MMoENetwork(N_FEATURES, [2] * N_TASKS, **NETWORK, **INPUT_LAYERS)
            ),
        },
    }
    if deepctr is not None:
        rows.append(
            timing_row(
                f"fit {size}: sk_mmoe / DeepCTR-Torch MMOE",
                times,
                "sk_mmoe",
                "deepctr_torch",
                target=0.5,
            )
        )
        rows.append(
            timing_row(
                f"fit {size}: DeepCTR-Torch's DataLoader alone / its fit",
                times,
                "deepctr_batches",
                "deepctr_torch",
                target=None,
            )
        )
        details["n_parameters"]["deepctr_torch"] = n_parameters(
            deepctr_model(deepctr, N_FEATURES)
        )
    return rows, details


def bench_predict(config: dict, quick: bool) -> tuple[list[dict], dict]:
    X, Y = make_data(config["predict_rows"], N_FEATURES)
    clf = fit_sk_mmoe(X[:2048], Y[:2048], 1)
    module = clf.module_
    module.eval()  # predict_proba leaves the mode as it finds it
    X_t = torch.from_numpy(X)

    def raw_forward(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    many = interleaved(
        {
            "predict_proba": lambda: clf.predict_proba(X),
            "raw_forward": lambda: raw_forward(X_t),
        },
        config["predict_repeats"],
        warmup=not quick,
    )
    x_row, x_row_t = X[:1], X_t[:1]
    calls = config["single_row_calls"]

    def repeated(f: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(calls):
                f()

        return run

    one = interleaved(
        {
            "predict_proba": repeated(lambda: clf.predict_proba(x_row)),
            "raw_forward": repeated(lambda: raw_forward(x_row_t)),
        },
        config["predict_repeats"],
        warmup=not quick,
    )
    rows = [
        timing_row(
            f"predict_proba {X.shape[0]:,} rows / raw module(X) in no_grad",
            many,
            "predict_proba",
            "raw_forward",
            target=1.2,
        ),
        timing_row(
            "predict_proba 1 row / raw module(x) of 1 row in no_grad",
            one,
            "predict_proba",
            "raw_forward",
            target=3.0,
            scale=1e6 / calls,
            unit="us",
        ),
    ]
    return rows, {"many_rows": many, "one_row": one, "single_row_calls": calls}


def import_revision(revision: str):
    """``sk_mmoe`` as of a git revision, imported beside the current one.

    ``git archive`` extracts the package to a temporary folder under another
    name (its modules import each other relatively), so that both versions
    run in one process, in turns.
    """
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "sk_mmoe"],
        capture_output=True,
        check=True,
    ).stdout
    folder = Path(tempfile.mkdtemp())
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    name = "sk_mmoe_" + re.sub(r"\W", "_", revision)
    (folder / "sk_mmoe").rename(folder / name)
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def bench_revision(config: dict, quick: bool, revision: str) -> tuple[list, dict]:
    """The fit and predict figures of this tree against those of ``revision``."""
    old = import_revision(revision)
    try:
        network_module = importlib.import_module(old.__name__ + ".nn.network")
    except ModuleNotFoundError:  # revisions before the nn subpackage
        network_module = importlib.import_module(old.__name__ + ".network")
    old_network = network_module.MMoENetwork
    X, Y = make_data(config["fit_rows"], N_FEATURES)
    epochs, small = config["fit_epochs"], config["small_batch_size"]
    packages = {"this tree": sk_mmoe, revision: old}

    def fit(package, batch_size: int, n_epochs: int):
        # The same model in both trees: the gates of the older defaults.
        accepted = inspect.signature(package.MultiTaskMMoEClassifier).parameters
        gates = {k: v for k, v in PLAIN_GATES.items() if k in accepted}
        return package.MultiTaskMMoEClassifier(
            **NETWORK,
            **gates,
            batch_size=batch_size,
            lr=LR,
            max_epochs=n_epochs,
            random_state=0,
        ).fit(X, Y)

    def each(make: Callable) -> dict:
        return {label: make(package) for label, package in packages.items()}

    size = f"{X.shape[0]:,} x {X.shape[1]}"
    n_epochs = f"{epochs} epoch{'s' * (epochs > 1)}"
    runs = {
        f"fit {size}, {n_epochs}": each(lambda p: lambda: fit(p, BATCH_SIZE, epochs)),
        f"fit {size}, 1 epoch, batch {small}": each(lambda p: lambda: fit(p, small, 1)),
        f"hand-written loop {size}, {n_epochs}": {
            "this tree": lambda: fit_torch_loop(X, Y, epochs),
            revision: lambda: fit_torch_loop(X, Y, epochs, network=old_network),
        },
    }
    fitted = each(lambda p: fit(p, BATCH_SIZE, 1))
    x_row, calls = X[:1], config["single_row_calls"]

    def predict_row(clf) -> Callable[[], None]:
        def run() -> None:
            for _ in range(calls):
                clf.predict_proba(x_row)

        return run

    times = {}
    for figure, contestants in runs.items():
        times[figure] = interleaved(contestants, config["repeats"], not quick)
    times[f"predict_proba {X.shape[0]:,} rows"] = interleaved(
        {label: (lambda c=clf: c.predict_proba(X)) for label, clf in fitted.items()},
        config["predict_repeats"],
        not quick,
    )
    times["predict_proba 1 row"] = interleaved(
        {label: predict_row(clf) for label, clf in fitted.items()},
        config["predict_repeats"],
        not quick,
    )
    rows = [
        timing_row(
            f"{figure}: this tree / {revision}",
            t,
            "this tree",
            revision,
            target=None,
            scale=1e6 / calls if figure.endswith("1 row") else 1.0,
            unit="us" if figure.endswith("1 row") else "s",
        )
        for figure, t in times.items()
    ]
    return rows, {"revision": revision, "times": times}


MEMORY_CASES = {
    "dense_float32": "dense float32",
    "dense_float64": "dense float64 (converted to float32)",
    "csr_float32": "CSR float32",
}


def _status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status`` (Linux), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False if denied."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory_case(case: str, n_rows: int, n_features: int, nnz_per_row: int) -> dict:
    """Fit once on the case's data and report the peak RSS above the baseline.

    The baseline is the RSS once the data exist and a fit on a few rows has
    loaded every lazily imported module; the peak is then reset to it, so the
    increase is what ``fit`` needs for this data. The peak is the process's
    ``VmHWM``, not ``ru_maxrss``, which a child process inherits from its
    parent across ``exec``.
    """
    if case == "csr_float32":
        X, Y = make_sparse_data(n_rows, n_features, nnz_per_row)
        data_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    else:
        dtype = np.float64 if case == "dense_float64" else np.float32
        X, Y = make_data(n_rows, n_features, dtype=dtype)
        data_bytes = X.nbytes
    fit_sk_mmoe(X[:256], Y[:256], 1)
    gc.collect()
    baseline = _status_bytes("VmRSS")
    reset = reset_peak_rss()
    start = time.perf_counter()
    fit_sk_mmoe(X, Y, 1)
    return {
        "case": case,
        "n_rows": n_rows,
        "n_features": n_features,
        "data_bytes": data_bytes,
        "dense_float32_bytes": n_rows * n_features * 4,
        "baseline_rss": baseline,
        "peak_rss": _status_bytes("VmHWM"),
        "peak_reset_at_baseline": reset,
        "fit_seconds": time.perf_counter() - start,
    }


def bench_memory(config: dict, threads: int, quick: bool) -> tuple[list[dict], dict]:
    """Run the memory cases in fresh processes (one per case, or one in all
    with ``quick``) and compare each fit's peak RSS increase with the data."""
    if not Path("/proc/self/status").exists():
        print("memory section needs Linux (/proc): skipped")
        return [], {}
    groups = [list(MEMORY_CASES)] if quick else [[case] for case in MEMORY_CASES]
    results = []
    for cases in groups:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--memory-case",
            ",".join(cases),
            "--threads",
            str(threads),
            "--memory-rows",
            str(config["memory_rows"]),
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True)
        results += [json.loads(line) for line in output.stdout.strip().splitlines()]
    rows = []
    for result in results:
        if not result["peak_reset_at_baseline"]:
            print(f"warning: could not reset the peak RSS ({result['case']})")
        increase = result["peak_rss"] - result["baseline_rss"]
        shape = f"{result['n_rows']:,} x {result['n_features']}"
        label = MEMORY_CASES[result["case"]]
        references = [("data size", result["data_bytes"], 2.0)]
        if result["case"] == "csr_float32":
            references.append(
                ("size as dense float32", result["dense_float32_bytes"], None)
            )
        for name, size, target in references:
            rows.append(
                {
                    "figure": f"fit peak RSS increase, {shape} {label} / {name}",
                    "unit": "MB",
                    "target": target,
                    "wall": {
                        "measured": increase / 1e6,
                        "reference": size / 1e6,
                        "ratio": increase / size,
                    },
                }
            )
    return rows, {"cases": results}


def scaling_rows(times: dict, figures: list[str], sizes: list[int]) -> list[dict]:
    """Median times, and their ratios to the first size's, against the size."""
    base = median(times[sizes[0]]["wall"])
    return [
        {
            "figure": figure,
            "wall": median(times[size]["wall"]),
            "cpu": median(times[size]["cpu"]),
            "relative": median(times[size]["wall"]) / base,
            "relative_size": size / sizes[0],
        }
        for figure, size in zip(figures, sizes, strict=True)
    ]


def bench_scaling(config: dict, quick: bool) -> tuple[list[dict], dict]:
    """One-epoch fit time against the number of rows and of experts."""
    repeats, warmup = config["scaling_repeats"], not quick
    n_max = max(max(config["scaling_rows"]), config["scaling_experts_rows"])
    X, Y = make_data(n_max, N_FEATURES)

    def fit_rows(n: int) -> Callable[[], object]:
        return lambda: fit_sk_mmoe(X[:n], Y[:n], 1)

    by_rows = interleaved(
        {n: fit_rows(n) for n in config["scaling_rows"]}, repeats, warmup
    )
    n = config["scaling_experts_rows"]

    def fit_experts(m: int) -> Callable[[], object]:
        return lambda: fit_sk_mmoe(X[:n], Y[:n], 1, **{**NETWORK, "n_experts": m})

    by_experts = interleaved(
        {m: fit_experts(m) for m in config["scaling_experts"]}, repeats, warmup
    )
    n_rows = config["scaling_rows"]
    rows = scaling_rows(by_rows, [f"fit 1 epoch, {k:,} rows" for k in n_rows], n_rows)
    n_experts = config["scaling_experts"]
    rows += scaling_rows(
        by_experts,
        [f"fit 1 epoch, {n:,} rows, {m} experts" for m in n_experts],
        n_experts,
    )
    return rows, {
        "by_rows": {str(k): v for k, v in by_rows.items()},
        "by_experts": {str(k): v for k, v in by_experts.items()},
    }


# ----------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------


def format_table(header: list[str], body: list[list[str]]) -> str:
    """A reStructuredText simple table."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([rule, line(header), rule, *map(line, body), rule])


def comparison_table(rows: list[dict], targets: bool = True) -> str:
    """The compared figures, with each target and whether it is met.

    ``targets=False`` leaves the target column out: for a smoke run, whose
    sizes are too small for the ratios to be compared with the targets.
    """
    header = ["figure", "measured", "reference", "ratio", "CPU ratio"]
    header += ["target"] if targets else []
    body = []
    for row in rows:
        wall, unit = row["wall"], row["unit"]
        digits = 0 if unit in ("MB", "us") else 2
        cpu = row.get("cpu")
        target = row["target"]
        cells = [
            row["figure"],
            f"{wall['measured']:.{digits}f} {unit}",
            f"{wall['reference']:.{digits}f} {unit}",
            f"{wall['ratio']:.2f}",
            "" if cpu is None else f"{cpu['ratio']:.2f}",
        ]
        if targets and target is None:
            cells.append("")
        elif targets:
            met = "met" if wall["ratio"] <= target else "MISSED"
            cells.append(f"<= {target:g} {met}")
        body.append(cells)
    return format_table(header, body)


def scaling_table(rows: list[dict]) -> str:
    header = ["figure", "wall", "CPU", "time ratio", "size ratio"]
    body = [
        [
            row["figure"],
            f"{row['wall']:.2f} s",
            f"{row['cpu']:.2f} s",
            f"{row['relative']:.2f}",
            f"{row['relative_size']:g}",
        ]
        for row in rows
    ]
    return format_table(header, body)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what platform knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict:
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sk_mmoe": sk_mmoe.__version__,
        "numpy": np.__version__,
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, one repeat (smoke run)"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch.set_num_threads (default 2)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats of the compared runs"
    )
    parser.add_argument(
        "--against",
        metavar="REVISION",
        help="also time fit and predict_proba of sk_mmoe as of this git "
        "revision against this tree, side by side",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--memory-case", help=argparse.SUPPRESS)
    parser.add_argument("--memory-rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    config = dict(QUICK if args.quick else FULL)
    if args.memory_case:
        for case in args.memory_case.split(","):
            result = memory_case(
                case,
                args.memory_rows or config["memory_rows"],
                config["memory_features"],
                config["memory_nnz_per_row"],
            )
            print(json.dumps(result), flush=True)
        return
    if args.repeats is not None:
        config.update(
            repeats=args.repeats,
            predict_repeats=args.repeats,
            scaling_repeats=args.repeats,
        )
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")

    info = machine()
    print(
        f"{info['cpu']}, {info['cpu_count']} CPUs, torch {info['torch']} "
        f"({info['torch_threads']} threads, OMP_WAIT_POLICY={info['omp_wait_policy']}"
        f"), sk_mmoe {info['sk_mmoe']}, load average {info['load_average'][0]:.1f}"
    )
    comparisons, scaling, details = [], [], {}
    for section in sections:
        start = time.perf_counter()
        if section == "fit":
            rows, details["fit"] = bench_fit(config, args.quick)
            comparisons += rows
        elif section == "predict":
            rows, details["predict"] = bench_predict(config, args.quick)
            comparisons += rows
        elif section == "memory":
            rows, details["memory"] = bench_memory(config, args.threads, args.quick)
            comparisons += rows
        else:
            scaling, details["scaling"] = bench_scaling(config, args.quick)
        print(f"[{section}: {time.perf_counter() - start:.0f} s]", flush=True)
    if args.against:
        rows, details["revision"] = bench_revision(config, args.quick, args.against)
        comparisons += rows

    report = []
    if args.quick:
        report.append(
            "Smoke run (--quick): sizes too small for the ratios to mean "
            "anything; the targets are checked by the full run only."
        )
    if comparisons:
        report.append(comparison_table(comparisons, targets=not args.quick))
    if scaling:
        report.append(scaling_table(scaling))
    report = "\n\n".join(report)
    print(report)
    if "fit" in details and "deepctr_torch" in details["fit"]["n_parameters"]:
        counts = details["fit"]["n_parameters"]
        print(
            f"parameters: sk_mmoe {counts['sk_mmoe']:,}, "
            f"DeepCTR-Torch {counts['deepctr_torch']:,}"
        )

    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp()) if args.quick else ROOT / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    info["load_average_end"] = os.getloadavg()
    record = {
        "command": " ".join(["python", "benchmarks/performance.py", *sys.argv[1:]]),
        "machine": info,
        "config": config,
        "comparisons": comparisons,
        "scaling": scaling,
        "details": details,
    }
    (out / "performance.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "performance.txt").write_text(report + "\n")
    print(f"wrote {out / 'performance.txt'} and {out / 'performance.json'}")


if __name__ == "__main__":
    main()
