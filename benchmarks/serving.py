"""Serving latency: onnxruntime on the exported graph vs predict_proba vs torch.

Times, on the reference network (8 experts of (64, 32) units, towers of 16,
3 binary tasks, 64 features):

* ``InferenceSession.run`` of the graph written by :func:`sk_mmoe.export_onnx`
  (onnxruntime, CPU execution provider);
* ``MultiTaskMMoEClassifier.predict_proba``;
* the raw network, ``module(x)`` under ``torch.inference_mode()`` (logits
  only: no softmax, no input checks, no conversion to NumPy);

on one row (online serving) and on batches of 1,000 rows. The contestants
take turns (ABC, BCA, CAB..., ``--calls`` calls each per turn) and every call
is timed; the table gives the median (and 90th percentile) per call and the
ratios of the medians. It also checks that the graph's outputs equal
``predict_proba``.

Usage::

    python benchmarks/serving.py            # about 2 min on 2 CPU cores
    python benchmarks/serving.py --quick    # smoke run, a few seconds

Needs ``pip install ".[onnx]"``. PyTorch and onnxruntime both use
``--threads`` threads (default 1, as one serving worker per core would).
A full run writes ``benchmarks/results/serving.{txt,json}`` (``--out``
elsewhere; ``--quick`` writes nothing unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import sk_mmoe
from sk_mmoe import MultiTaskMMoEClassifier, export_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from performance import cpu_name  # noqa: E402

N_FEATURES = 64
N_TASKS = 3
NETWORK = dict(
    n_experts=8, expert_hidden_layer_sizes=(64, 32), tower_hidden_layer_sizes=(16,)
)
FULL = dict(fit_rows=4096, calls=200, repeats=25, batch_calls=10, batch_repeats=20)
QUICK = dict(fit_rows=512, calls=5, repeats=2, batch_calls=1, batch_repeats=2)
BATCH_ROWS = 1000
RESULTS = Path(__file__).resolve().parent / "results"


def make_data(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features and ``N_TASKS`` binary tasks, noisy linear rules."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    weights = rng.standard_normal((N_FEATURES, N_TASKS))
    noise = rng.standard_normal((n_rows, N_TASKS)) * np.sqrt(N_FEATURES)
    return X, (X @ weights + noise > 0).astype(np.int64)


def interleaved(
    contestants: dict[str, Callable[[], object]], calls: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds of every call of each contestant, in rotating turns."""
    names = list(contestants)
    for name in names:  # warm-up: first-call allocations, lazy initialisation
        for _ in range(max(1, calls // 10)):
            contestants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            f, record = contestants[name], times[name].append
            gc.collect()
            for _ in range(calls):
                start = time.perf_counter()
                f()
                record(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def summarize(results: dict) -> dict:
    """Median, percentiles and number of the calls of each contestant."""
    return {
        section: {
            name: {
                "n_calls": len(values),
                "median": statistics.median(values),
                "p10": percentile(values, 10),
                "p90": percentile(values, 90),
                "mean": statistics.fmean(values),
            }
            for name, values in times.items()
        }
        for section, times in results.items()
    }


def machine() -> dict:
    import onnxruntime

    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "sk_mmoe": sk_mmoe.__version__,
        "numpy": np.__version__,
    }


def format_table(results: dict, reference: str) -> str:
    header = ["contestant", "1 row (us)", "p90", "ratio"]
    header += [f"{BATCH_ROWS:,} rows (us)", "p90", "ratio"]
    rows = []
    for name in results["one_row"]:
        cells = [name]
        for section in ("one_row", "batch"):
            times = results[section]
            median = statistics.median(times[name])
            cells += [
                f"{median * 1e6:,.1f}",
                f"{percentile(times[name], 90) * 1e6:,.1f}",
                f"{median / statistics.median(times[reference]):.2f}",
            ]
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    note = f"ratio: median / median of {reference}"
    return "\n".join([line(header), rule, *map(line, rows), "", note])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and onnxruntime threads"
    )
    parser.add_argument("--out", type=Path, help="folder for serving.{txt,json}")
    args = parser.parse_args(argv)
    try:
        import onnxruntime
    except ImportError:
        sys.exit('benchmarks/serving.py needs pip install ".[onnx]"')
    config = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)

    X, Y = make_data(config["fit_rows"])
    clf = MultiTaskMMoEClassifier(
        **NETWORK, max_epochs=1, batch_size=256, random_state=0
    ).fit(X, Y)
    module = clf.module_
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        started = time.perf_counter()
        export_onnx(clf, path)
        export_seconds = time.perf_counter() - started
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        model_bytes = path.stat().st_size

    X_test, _ = make_data(BATCH_ROWS, seed=1)
    onnx_proba = session.run(None, {"X": X_test})
    parity = max(
        float(np.abs(a - b).max())
        for a, b in zip(onnx_proba, clf.predict_proba(X_test), strict=True)
    )

    def contestants(x: np.ndarray) -> dict[str, Callable[[], object]]:
        x_t = torch.from_numpy(x)

        def raw_forward() -> torch.Tensor:
            with torch.inference_mode():
                return module(x_t)

        return {
            "onnxruntime run": lambda: session.run(None, {"X": x}),
            "predict_proba": lambda: clf.predict_proba(x),
            "raw module (inference_mode)": raw_forward,
        }

    results = {
        "one_row": interleaved(
            contestants(X_test[:1].copy()), config["calls"], config["repeats"]
        ),
        "batch": interleaved(
            contestants(X_test), config["batch_calls"], config["batch_repeats"]
        ),
    }
    table = format_table(results, reference="onnxruntime run")
    info = machine()
    text = "\n".join(
        [
            f"Reference network: {NETWORK}, {N_TASKS} binary tasks, "
            f"{N_FEATURES} features; threads={args.threads}",
            f"export_onnx: {export_seconds:.2f} s, {model_bytes:,} bytes; max |onnx - "
            f"predict_proba| on {BATCH_ROWS:,} rows: {parity:.1e}",
            f"one row: {config['repeats']} turns x {config['calls']} calls; "
            f"{BATCH_ROWS:,} rows: {config['batch_repeats']} turns x "
            f"{config['batch_calls']} calls",
            "",
            table,
            "",
            f"machine: {info}",
        ]
    )
    print(text)
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "serving.txt").write_text(text + "\n")
        record = {
            "config": config,
            "threads": args.threads,
            "network": NETWORK,
            "export_seconds": export_seconds,
            "model_bytes": model_bytes,
            "max_abs_diff": parity,
            "machine": info,
            "seconds_per_call": summarize(results),
        }
        (out / "serving.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
