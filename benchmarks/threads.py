"""Threads: fit speed with a busy core, parallel searches, per-batch overhead.

Three measurements, each printed as a table of medians and ratios:

1. ``fit`` (50,000 x 64 rows, the reference network of
   ``benchmarks/performance.py``, 2 epochs) on an idle machine and while
   another process spins on one core, with ``n_threads=None`` (automatic),
   with all of PyTorch's threads, and with one thread. Goal: busy / idle
   <= 2.5 for the default.
2. ``GridSearchCV`` over 4 candidates x 3 folds with ``n_jobs=2`` against
   ``n_jobs=1``. Goal: ``n_jobs=2`` no slower.
3. ``fit`` against a hand-written PyTorch loop of the same network, at batch
   sizes 64 to 4096, one thread each. Goal: <= 1.05.

The compared runs alternate, and each figure is the median over the repeats.

Usage::

    python benchmarks/threads.py            # a few minutes on 2 cores
    python benchmarks/threads.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from sklearn.model_selection import GridSearchCV

sys.path.insert(0, str(Path(__file__).resolve().parent))

from performance import NETWORK, fit_sk_mmoe, fit_torch_loop, make_data  # noqa: E402

from sk_mmoe import MultiTaskMMoEClassifier  # noqa: E402


def median_times(functions: dict, repeats: int) -> dict[str, float]:
    """Median wall time of each function after a warm-up, the calls alternating."""
    times = {name: [] for name in functions}
    for function in functions.values():
        function()  # warm-up: first calls pay for imports and allocations
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def spinner() -> subprocess.Popen:
    """Another process that keeps one core busy."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def busy_core(rows: int, repeats: int) -> None:
    X, Y = make_data(rows, 64)
    settings = {
        "n_threads=None (auto)": None,
        f"n_threads={os.cpu_count()} (all)": os.cpu_count(),
        "n_threads=1": 1,
    }

    def fits():
        return {
            name: (
                lambda n=n: MultiTaskMMoEClassifier(
                    **NETWORK,
                    batch_size=1024,
                    max_epochs=2,
                    early_stopping=False,
                    n_threads=n,
                    random_state=0,
                ).fit(X, Y)
            )
            for name, n in settings.items()
        }

    idle = median_times(fits(), repeats)
    process = spinner()
    try:
        time.sleep(0.5)
        busy = median_times(fits(), repeats)
    finally:
        process.kill()
    print(
        f"\n1. fit {rows:,} x 64, 2 epochs, idle vs one core busy (median of {repeats})"
    )
    print(f"{'setting':<24} {'idle s':>8} {'busy s':>8} {'busy/idle':>10}")
    for name in settings:
        print(
            f"{name:<24} {idle[name]:>8.3f} {busy[name]:>8.3f} "
            f"{busy[name] / idle[name]:>10.2f}"
        )


def search(rows: int, repeats: int) -> None:
    X, Y = make_data(rows, 64)
    grid = {"n_experts": [2, 4], "lr": [1e-3, 3e-3]}
    base = MultiTaskMMoEClassifier(
        expert_hidden_layer_sizes=(32,), max_epochs=3, batch_size=256, random_state=0
    )

    def run(n_jobs):
        return lambda: GridSearchCV(base, grid, cv=3, n_jobs=n_jobs).fit(X, Y)

    times = median_times({"n_jobs=1": run(1), "n_jobs=2": run(2)}, repeats)
    print(f"\n2. GridSearchCV, 4 candidates x 3 folds, {rows:,} rows")
    print(f"(median of {repeats})")
    for name, value in times.items():
        print(f"{name:<10} {value:>8.3f} s")
    print(f"n_jobs=2 / n_jobs=1: {times['n_jobs=2'] / times['n_jobs=1']:.2f}")


def overhead(rows: int, repeats: int) -> None:
    X, Y = make_data(rows, 64)
    print(f"\n3. fit / hand-written loop, {rows:,} x 64, 1 epoch, 1 thread")
    print(f"{'batch':>6} {'sk_mmoe s':>10} {'loop s':>8} {'ratio':>6}")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for batch_size in (64, 256, 1024, 4096):
            times = median_times(
                {
                    "sk_mmoe": lambda b=batch_size: fit_sk_mmoe(X, Y, 1, b),
                    "loop": lambda b=batch_size: fit_torch_loop(X, Y, 1, b),
                },
                repeats,
            )
            ratio = times["sk_mmoe"] / times["loop"]
            print(
                f"{batch_size:>6} {times['sk_mmoe']:>10.3f} {times['loop']:>8.3f} "
                f"{ratio:>6.2f}"
            )
    finally:
        torch.set_num_threads(previous)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument(
        "--sections", default="busy,search,overhead", help="comma-separated"
    )
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}"
    )
    if "busy" in sections:
        busy_core(2_000 if args.quick else 50_000, 1 if args.quick else 5)
    if "search" in sections:
        search(300 if args.quick else 3_000, 1 if args.quick else 3)
    if "overhead" in sections:
        overhead(2_000 if args.quick else 100_000, 1 if args.quick else 5)


if __name__ == "__main__":
    main()
