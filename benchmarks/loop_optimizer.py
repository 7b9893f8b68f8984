"""The fit of ``performance.py`` against its hand-written loop, stepping Adam
both ways.

The estimator steps Adam with its fused kernel; the loop of
``performance.py`` uses Adam's default step. This script times the fit
(100,000 x 64, 8 experts, batches of 1,024, 2 epochs), the loop with the
default step and the loop with ``fused=True``, in turns (the order rotating
every repeat), and prints the medians and the fit's ratio to each loop::

    python benchmarks/loop_optimizer.py --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import performance  # noqa: E402
import torch  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, Y = performance.make_data(100_000, performance.N_FEATURES)
    runs = {
        "fit": lambda: performance.fit_sk_mmoe(X, Y, 2),
        "loop, Adam's default step": lambda: performance.fit_torch_loop(X, Y, 2),
        "loop, fused Adam": lambda: performance.fit_torch_loop(X, Y, 2, fused=True),
    }
    times = performance.interleaved(runs, args.repeats, warmup=True)
    medians = {name: statistics.median(t["wall"]) for name, t in times.items()}
    print(
        f"{args.threads} thread(s), {args.repeats} repeats, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    for name, value in medians.items():
        print(f"{name:28s} {value:.3f} s  fit / this {medians['fit'] / value:.3f}")


if __name__ == "__main__":
    main()
