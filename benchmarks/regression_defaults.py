"""The regressor's defaults against the same network without regularisation.

On the MMoE paper's regression generator (``make_task_correlation``,
``target_type="continuous"``, task correlation 0.5, 100 features, 20,000
training and 10,000 test rows, new data per seed) with the paper's
architecture (8 experts of one 16-unit layer, towers of 8 units; its
Shared-Bottom a 113-unit bottom with the same towers, about as many
parameters), and on the two real regression tables of the gates study
(river's SolarFlare, three count targets, and scikit-learn's diabetes, a
new 2/3 : 1/3 split per seed, the estimator's default architecture), every
configuration is fitted with every other parameter at the regressor's
default:

* ``default``: nothing changed;
* ``off``: ``dropout=0, weight_decay=0, numeric_scaling=None``, the network
  without its regularisation and input scaling;
* ``Shared-Bottom``: the Shared-Bottom of the same defaults;
* ``dropout=0.1``, the regressor's default before it became 0 (with its
  Shared-Bottom), and ``weight_decay=0``.

Scores are the test mean squared error (mean over tasks, in the targets'
units) and :math:`R^2` (mean over tasks), compared within each seed: mean
and standard error of the paired differences. One row per fit is appended
to ``OUT/regression_defaults.csv`` as soon as it ends, and a rerun skips the
fits already there. The real tables are read from the gates study's data
cache (``python benchmarks/gates_study.py prepare`` writes it)::

    python benchmarks/regression_defaults.py --seeds 5 --jobs 2
    python benchmarks/regression_defaults.py --report
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import gates_study  # noqa: E402
import quality  # noqa: E402
from synthetic import MODELS, TOWERS  # noqa: E402

DATASETS = ("synthetic", "solar_flare", "diabetes")
OFF = {"dropout": 0.0, "weight_decay": 0.0, "numeric_scaling": None}
# Name -> parameters changed from the defaults. ``dropout=0.1`` was the
# regressor's default before it became 0.
CONFIGS = {
    "default": {},
    "off": OFF,
    "Shared-Bottom": {"n_experts": 1},
    "dropout=0.1": {"dropout": 0.1},
    "Shared-Bottom, dropout=0.1": {"n_experts": 1, "dropout": 0.1},
    "weight_decay=0": {"weight_decay": 0.0},
    "Shared-Bottom, weight_decay=0": {"n_experts": 1, "weight_decay": 0.0},
}
N_SYNTHETIC = (20_000, 10_000)
CSV = "regression_defaults.csv"


def synthetic_data(seed: int):
    from sk_mmoe.datasets import make_task_correlation

    (X, Y), (X_test, Y_test) = make_task_correlation(
        N_SYNTHETIC, 0.5, target_type="continuous", random_state=seed
    )
    return X, Y, X_test, Y_test


def make_model(dataset: str, config: str, seed: int, meta: dict | None):
    """The regressor of ``config`` for ``dataset`` (paper's architecture on
    the generator, the default one on the real tables)."""
    from sk_mmoe import MultiTaskMMoERegressor

    params = dict(CONFIGS[config], n_threads=1, random_state=seed)
    if dataset == "synthetic":
        shared_bottom = params.pop("n_experts", None) == 1
        params.update(MODELS["Shared-Bottom" if shared_bottom else "MMoE"])
        params["tower_hidden_layer_sizes"] = TOWERS
    else:
        params["categorical_features"] = meta["categorical"] or None
    return MultiTaskMMoERegressor(**params)


def run_one(job: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    dataset, config, seed, data_dir = job
    meta = None
    if dataset == "synthetic":
        X, Y, X_test, Y_test = synthetic_data(seed)
    else:
        meta, X, Y, X_test, Y_test, _ = gates_study.load(
            data_dir, dataset, seed, quick=False
        )
    model = make_model(dataset, config, seed, meta)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(X, Y[:, 0] if Y.shape[1] == 1 else Y)
    fit_time, cpu_time = time.perf_counter() - start, time.process_time() - cpu
    pred = np.asarray(model.predict(X_test), dtype=float).reshape(len(Y_test), -1)
    mse = ((pred - Y_test) ** 2).mean(axis=0)
    r2 = 1 - mse / Y_test.var(axis=0)
    return {
        "dataset": dataset,
        "config": config,
        "seed": seed,
        "mse": float(mse.mean()),
        "r2": float(r2.mean()),
        "n_iter": model.n_iter_,
        "fit_time": round(fit_time, 2),
        "cpu_time": round(cpu_time, 2),
    }


def paired(frame: pd.DataFrame, dataset: str, config: str, base: str, column: str):
    """Mean and standard error over seeds of ``config - base``."""
    rows = frame[frame.dataset == dataset].pivot(
        index="seed", columns="config", values=column
    )
    if config not in rows or base not in rows:
        return np.nan, np.nan, 0
    mean, _, se, n = quality.paired(rows[config], rows[base])
    return mean, se, n


def report(frame: pd.DataFrame) -> str:
    lines = []
    for dataset in DATASETS:
        sub = frame[frame.dataset == dataset]
        if sub.empty:
            continue
        lines.append(f"\n{dataset}:")
        lines.append(
            f"  {'config':28s} {'MSE':>9s} {'R2':>7s} {'x off':>6s} "
            f"{'R2 - default (SE)':>20s} {'R2 - dropout=0.1':>20s} "
            f"{'MSE - SB (SE)':>20s} {'epochs':>6s} {'cpu s':>6s} n"
        )
        for config in CONFIGS:
            rows = sub[sub.config == config]
            if rows.empty:
                continue
            off = sub[sub.config == "off"].set_index("seed").mse
            mine = rows.set_index("seed").mse
            common = mine.index.intersection(off.index)
            ratio = mine[common].mean() / off[common].mean() if len(common) else np.nan
            cells = []
            for base, column in (
                ("default", "r2"),
                ("dropout=0.1", "r2"),
                ("Shared-Bottom", "mse"),
            ):
                mean, se, _ = paired(frame, dataset, config, base, column)
                cells.append(f"{mean:+.4f} ({se:.4f})")
            lines.append(
                f"  {config:28s} {rows.mse.mean():9.5f} {rows.r2.mean():7.4f} "
                f"{ratio:6.2f} {cells[0]:>20s} {cells[1]:>20s} {cells[2]:>20s} "
                f"{rows.n_iter.mean():6.1f} {rows.cpu_time.mean():6.1f} {len(rows)}"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--data-dir", type=Path, default=gates_study.DATA_DIR)
    parser.add_argument("--report", action="store_true", help="only the tables")
    args = parser.parse_args(argv)
    path = args.out / CSV
    if not args.report:
        args.out.mkdir(parents=True, exist_ok=True)
        done = set()
        if path.exists():
            old = pd.read_csv(path)
            done = set(zip(old.dataset, old.config, old.seed, strict=True))
        jobs = [
            (dataset, config, seed, args.data_dir)
            for seed in range(args.seeds)
            for config in args.configs
            for dataset in args.datasets
            if (dataset, config, seed) not in done
        ]
        print(f"{len(jobs)} fits, load average {os.getloadavg()[0]:.1f}", flush=True)
        with ProcessPoolExecutor(args.jobs) as pool:
            for future in as_completed([pool.submit(run_one, job) for job in jobs]):
                row = future.result()
                pd.DataFrame([row]).to_csv(
                    path, mode="a", header=not path.exists(), index=False
                )
                print(row, flush=True)
    print(report(pd.read_csv(path)))


if __name__ == "__main__":
    main()
