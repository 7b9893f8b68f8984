"""Time to the first batch of a fit, this tree against a git revision.

The fit of ``performance.py`` (100,000 x 64, 8 experts, batches of 1,024, 2
epochs, no dropout, scaling or gate dropout) by this tree and by the
revision (imported beside it, as ``performance.py --against`` does), and
the hand-written loop, in turns (the order rotating every repeat): for each,
the median fit time and its ratio to the loop's, and for the two fits the
median time from the call of ``fit`` to its first training batch::

    python benchmarks/first_batch.py --against c4afdc1 --repeats 7 --threads 1
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import performance  # noqa: E402
import torch  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, metavar="REVISION")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    old = performance.import_revision(args.against)
    X, Y = performance.make_data(args.rows, performance.N_FEATURES)
    runs = {
        "this tree": lambda: performance.fit_timing_first_batch(X, Y, args.epochs),
        args.against: lambda: performance.fit_timing_first_batch(
            X, Y, args.epochs, estimator=old.MultiTaskMMoEClassifier
        ),
        "hand-written loop": lambda: performance.fit_torch_loop(X, Y, args.epochs),
    }
    for run in runs.values():  # warm-up: imports and first calls
        run()
    wall = {name: [] for name in runs}
    first = {name: [] for name in runs}
    names = list(runs)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            start = time.perf_counter()
            result = runs[name]()
            wall[name].append(time.perf_counter() - start)
            if isinstance(result, float):
                first[name].append(result)
    loop = statistics.median(wall["hand-written loop"])
    print(
        f"{args.rows:,} x {performance.N_FEATURES}, {args.epochs} epochs, "
        f"{args.threads} thread(s), {args.repeats} repeats, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    for name in names:
        line = f"{name:20s} fit {statistics.median(wall[name]):7.3f} s"
        line += f"  / loop {statistics.median(wall[name]) / loop:5.3f}"
        if first[name]:
            line += (
                f"  call to first batch {1000 * statistics.median(first[name]):6.1f} ms"
            )
        print(line)


if __name__ == "__main__":
    main()
