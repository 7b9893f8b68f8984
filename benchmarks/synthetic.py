"""Shared-Bottom, OMoE, MMoE and CGC on regression tasks of varying correlation.

Reruns the synthetic-data experiment of Ma et al. (2018), section 5 and
Figure 4: :func:`sk_mmoe.datasets.make_task_correlation` with
``target_type="continuous"`` draws two regression tasks whose weight vectors
have a given cosine similarity (the task correlation), and each model of the
family is trained on them with Adam at about equal parameter counts.

For every correlation and repeat (seed), fresh training, validation and test
sets are drawn; all models and learning rates of a repeat see the same data.
Each fit is a :class:`sk_mmoe.MultiTaskMMoERegressor` with early stopping on
an internal 10% of the training rows (the best epoch's weights are kept).
The learning rate is chosen per model and per repeat from the grid
(1e-4, 1e-3, 1e-2 by default) by the validation MSE (mean of the two tasks),
and the test MSE of that fit is reported.

Usage::

    python benchmarks/synthetic.py --jobs 16 --repeats 8 --time-budget 450
    python benchmarks/synthetic.py --report        # tables and figures again
    python benchmarks/synthetic.py --quick         # seconds, for CI
    python benchmarks/synthetic.py --defaults --correlations 0.5

``--defaults`` fits the regressor with every parameter at its default (and
its Shared-Bottom, ``n_experts=1``) on the same training rows of each
repeat and prints the test MSE next to the tuned MMoE of the same repeat in
``OUT/synthetic_fits.csv`` (the paper's architecture, its learning rate
picked from the grid): the question a user who does not tune asks.

A run appends one row per fit to ``OUT/synthetic_fits.csv`` as soon as the
fit ends (``--out``, default ``benchmarks/results``), so an interrupted run
keeps its fits, and a rerun with the same ``--out`` and sizes skips the fits
already done. ``--jobs N`` runs N fits at a time in separate processes,
each with one PyTorch thread. ``--time-budget S`` stops starting fits that
would not end within S seconds of the start (estimated from the fits of
the same model and learning rate so far) and ends any fit still running
then, unrecorded, so the fitting ends S seconds after the start at the
latest; the work is ordered so that every (model, correlation) cell gets
its first repeat before any cell gets a second.

At the end of a run, or with ``--report`` alone, the fits in
``OUT/synthetic_fits.csv`` are summarised into
``benchmarks/results/synthetic.md`` (``--results-dir``): parameter counts,
test MSE per model and correlation (mean ± std over repeats), the
difference to Shared-Bottom within each repeat, and the learning rates
chosen; the same tables, in reStructuredText, go to
``docs/images/synthetic_results.inc`` for the documentation, with the
figures ``docs/images/synthetic_correlation.png`` (test MSE against
correlation) and ``docs/images/synthetic_spread.png`` (test MSE of every
repeat) (``--figures``). ``--quick`` writes everything to a temporary folder
unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from functools import lru_cache
from pathlib import Path

# One thread per fit: several fits run side by side, one per core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent

try:
    import sk_mmoe
    from sk_mmoe.datasets import make_task_correlation
except ImportError:  # run from a source checkout without installing sk_mmoe
    sys.path.insert(0, str(ROOT))
    import sk_mmoe
    from sk_mmoe.datasets import make_task_correlation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from performance import cpu_name  # noqa: E402

# The paper's models for d = 100 inputs: MMoE and OMoE have 8 experts, each
# one ReLU layer of 16 units; every model has towers of one 8-unit layer.
# The Shared-Bottom bottom has 113 units, so that bottom and towers have
# about the parameters of the experts and towers. CGC (Tang et al. 2020)
# splits the same 8 experts into 4 shared ones and 2 per task.
MODELS = {
    "Shared-Bottom": dict(
        n_experts=1, shared_gate=True, expert_hidden_layer_sizes=(113,)
    ),
    "OMoE": dict(n_experts=8, shared_gate=True, expert_hidden_layer_sizes=(16,)),
    "MMoE": dict(n_experts=8, expert_hidden_layer_sizes=(16,)),
    "CGC": dict(n_experts=4, n_task_experts=2, expert_hidden_layer_sizes=(16,)),
}
TOWERS = (8,)
TASKS = ("task0", "task1")
CORRELATIONS = (1.0, 0.9, 0.8, 0.5, 0.0)
LRS = (1e-4, 1e-3, 1e-2)
FITS_FILE = "synthetic_fits.csv"
RUN_FILE = "synthetic_run.json"
# Columns that identify a fit; a rerun skips the fits already in the CSV.
FIT_KEY = ["model", "correlation", "seed", "lr", "n_train"]
# Settings that must match for fits to be comparable (and resumable).
CONFIG_KEYS = [
    "n_train",
    "n_valid",
    "n_test",
    "n_features",
    "batch_size",
    "max_epochs",
    "n_iter_no_change",
    "lr_grid",
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--correlations", type=float, nargs="+", default=list(CORRELATIONS)
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="seeds per model and correlation"
    )
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--lrs", type=float, nargs="+", default=list(LRS))
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=list(MODELS)
    )
    parser.add_argument("--n-train", type=int, default=30000, help="training rows")
    parser.add_argument(
        "--n-valid", type=int, default=5000, help="validation rows (picks the lr)"
    )
    parser.add_argument("--n-test", type=int, default=10000, help="test rows")
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument(
        "--n-iter-no-change",
        type=int,
        default=10,
        help="early-stopping patience, in epochs",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="fits run in parallel processes"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start no fit that would end later than this after the start",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder of the per-fit CSV (default: benchmarks/results)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="folder of synthetic.md (default: benchmarks/results)",
    )
    parser.add_argument(
        "--figures",
        type=Path,
        default=None,
        help="folder of the figures and the docs tables (default: docs/images)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only summarise the fits of OUT/synthetic_fits.csv",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="run the fits, skip the summary"
    )
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="fit the default regressor per repeat, compare with the tuned MMoE",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: tiny data, 2 correlations, 1 repeat, 2 learning rates",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.correlations = [1.0, 0.0]
        args.repeats, args.lrs = 1, [1e-3, 1e-2]
        args.n_train, args.n_valid, args.n_test = 400, 200, 200
        args.n_features, args.max_epochs, args.n_iter_no_change = 20, 3, 2
    if args.out is None:
        args.out = (
            Path(tempfile.mkdtemp(prefix="sk_mmoe_synthetic_"))
            if args.quick
            else ROOT / "benchmarks" / "results"
        )
    if args.results_dir is None:
        args.results_dir = args.out if args.quick else ROOT / "benchmarks" / "results"
    if args.figures is None:
        args.figures = args.out if args.quick else ROOT / "docs" / "images"
    return args


# ---------------------------------------------------------------------------
# One fit (runs in a worker process)
# ---------------------------------------------------------------------------


def _init_worker():
    torch.set_num_threads(1)
    # Raises once the inter-op pool has started (e.g. a second call).
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


@lru_cache(maxsize=4)
def _data(correlation, seed, n_train, n_valid, n_test, n_features):
    # The same random_state at every correlation: the same directions and
    # sinusoids, so task 0 is the same task at every correlation of a seed.
    return make_task_correlation(
        (n_train, n_valid, n_test),
        correlation,
        n_features=n_features,
        target_type="continuous",
        random_state=seed,
    )


def parameter_counts(model):
    """Total trainable parameters, and those outside the gates."""
    params = [(n, p) for n, p in model.module_.named_parameters() if p.requires_grad]
    total = sum(p.numel() for _, p in params)
    gates = sum(p.numel() for name, p in params if "gate" in name)
    return total, total - gates


def run_fit(task):
    """Train one model at one learning rate; return one CSV row (a dict)."""
    from sk_mmoe import MultiTaskMMoERegressor

    _init_worker()
    cfg = task["config"]
    (X_train, Y_train), (X_valid, Y_valid), (X_test, Y_test) = _data(
        task["correlation"],
        task["seed"],
        cfg["n_train"],
        cfg["n_valid"],
        cfg["n_test"],
        cfg["n_features"],
    )
    model = MultiTaskMMoERegressor(
        **MODELS[task["model"]],
        tower_hidden_layer_sizes=TOWERS,
        optimizer="adam",
        lr=task["lr"],
        batch_size=cfg["batch_size"],
        max_epochs=cfg["max_epochs"],
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=cfg["n_iter_no_change"],
        random_state=task["seed"],
    )
    row = {key: task[key] for key in ("model", "correlation", "seed", "lr")}
    row.update(cfg)
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        model.fit(X_train, Y_train)
    except ValueError as exc:  # training diverged (non-finite loss)
        row.update(status="failed", error=str(exc).splitlines()[0][:200])
    else:
        row["status"] = "ok"
    # CPU time is what a fit costs on an idle core; wall-clock time also
    # counts waiting for a shared one.
    row["seconds"] = time.perf_counter() - start
    row["cpu_seconds"] = time.process_time() - start_cpu
    if row["status"] == "failed":
        return row
    history = model.history_
    valid_losses = [epoch.get("valid_loss", np.nan) for epoch in history]
    row.update(
        epochs=len(history),
        best_epoch=int(np.nanargmin(valid_losses)) + 1
        if np.isfinite(valid_losses).any()
        else len(history),
    )
    for split, X, Y in (("valid", X_valid, Y_valid), ("test", X_test, Y_test)):
        mse = ((model.predict(X) - Y) ** 2).mean(axis=0)
        for k, task_name in enumerate(TASKS):
            row[f"{split}_mse_{task_name}"] = float(mse[k])
        row[f"{split}_mse"] = float(mse.mean())
    row["params"], row["params_no_gates"] = parameter_counts(model)
    return row


# ---------------------------------------------------------------------------
# Scheduling the fits
# ---------------------------------------------------------------------------


def config_of(args):
    return {
        "n_train": args.n_train,
        "n_valid": args.n_valid,
        "n_test": args.n_test,
        "n_features": args.n_features,
        "batch_size": args.batch_size,
        "max_epochs": args.max_epochs,
        "n_iter_no_change": args.n_iter_no_change,
        # The learning rates a cell needs to be complete.
        "lr_grid": " ".join(f"{lr:g}" for lr in sorted(args.lrs)),
    }


def work_list(args):
    """All fits, each repeat of every (model, correlation) cell before the next.

    The learning rates of a cell follow each other, so that a run cut short
    by the time budget leaves few incomplete cells; the smallest comes first,
    as its fits take the longest.
    """
    seeds = range(args.first_seed, args.first_seed + args.repeats)
    return [
        dict(model=model, correlation=correlation, seed=seed, lr=lr)
        for seed in seeds
        for correlation in args.correlations
        for model in args.models
        for lr in sorted(args.lrs)
    ]


def _done_keys(path, config):
    if not path.is_file():
        return set()
    fits = pd.read_csv(path)
    same = np.ones(len(fits), dtype=bool)
    for key, value in config.items():
        same &= fits[key].astype(type(value)).to_numpy() == value
    fits = fits[same]
    return {
        (row.model, float(row.correlation), int(row.seed), float(row.lr))
        for row in fits.itertuples()
    }


class _Estimates:
    """Expected duration of a fit, from the fits of the same model and lr."""

    def __init__(self):
        self.seconds = {}

    def add(self, row):
        self.seconds.setdefault((row["model"], row["lr"]), []).append(row["seconds"])

    def get(self, task):
        same = self.seconds.get((task["model"], task["lr"]))
        if same:
            return max(same)
        everything = [s for values in self.seconds.values() for s in values]
        # No fit of this kind has ended yet: assume the slowest seen so far.
        return max(everything) if everything else 0.0


def _append_row(path, row, columns):
    frame = pd.DataFrame([row]).reindex(columns=columns)
    header = not path.is_file()
    frame.to_csv(path, mode="a", header=header, index=False, float_format="%.6g")


def run(args):
    start_wall = time.time()
    start = time.perf_counter()
    deadline = None if args.time_budget is None else start_wall + args.time_budget
    config = config_of(args)
    args.out.mkdir(parents=True, exist_ok=True)
    fits_path = args.out / FITS_FILE
    done = _done_keys(fits_path, config)
    todo = [
        t
        for t in work_list(args)
        if (t["model"], t["correlation"], t["seed"], t["lr"]) not in done
    ]
    columns = (
        ["model", "correlation", "seed", "lr", "status"]
        + [f"{s}_mse" for s in ("valid", "test")]
        + [f"{s}_mse_{t}" for s in ("valid", "test") for t in TASKS]
        + ["epochs", "best_epoch", "seconds", "cpu_seconds"]
        + ["params", "params_no_gates"]
        + CONFIG_KEYS
        + ["error"]
    )
    if fits_path.is_file():
        existing = list(pd.read_csv(fits_path, nrows=0).columns)
        if existing != columns:
            raise SystemExit(
                f"{fits_path} has other columns than this script writes; "
                "move it away or pass another --out."
            )
    print(
        f"{len(todo)} fits to run ({len(done)} already in {fits_path}), "
        f"{args.jobs} job(s), torch {torch.__version__}, "
        f"sizes {args.n_train}/{args.n_valid}/{args.n_test}, d={args.n_features}, "
        f"batch {args.batch_size}, at most {args.max_epochs} epochs",
        flush=True,
    )

    estimates = _Estimates()
    n_done = n_skipped = n_stopped = 0
    pending = {}
    queue = list(todo)
    context = multiprocessing.get_context("spawn")
    executor = (
        ProcessPoolExecutor(
            max_workers=args.jobs, mp_context=context, initializer=_init_worker
        )
        if args.jobs > 1
        else None
    )

    def fits_in_time(task):
        if deadline is None:
            return True
        return time.time() + estimates.get(task) < deadline

    def record(row):
        nonlocal n_done
        n_done += 1
        estimates.add(row)
        _append_row(fits_path, row, columns)
        mse = row.get("test_mse", float("nan"))
        print(
            f"[{time.perf_counter() - start:6.0f} s] {row['model']:13s} "
            f"corr {row['correlation']:.2f} seed {row['seed']} lr {row['lr']:g}: "
            f"valid {row.get('valid_mse', float('nan')):.4f} test {mse:.4f}, "
            f"{row.get('epochs', 0):.0f} epochs, {row['seconds']:.1f} s "
            f"({row['cpu_seconds']:.1f} s CPU, {row['status']})",
            flush=True,
        )

    try:
        while queue or pending:
            while queue and len(pending) < max(args.jobs, 1):
                if not fits_in_time(queue[0]):
                    n_skipped = len(queue)
                    queue.clear()
                    break
                task = dict(queue.pop(0), config=config)
                if executor is None:
                    record(run_fit(task))
                else:
                    pending[executor.submit(run_fit, task)] = task
            if pending:
                timeout = None if deadline is None else max(deadline - time.time(), 0)
                finished, _ = wait(pending, timeout, return_when=FIRST_COMPLETED)
                for future in finished:
                    pending.pop(future)
                    record(future.result())
                if not finished:
                    # The time budget is spent: end the fits still running
                    # (they are not recorded, and a rerun starts them again).
                    n_stopped = len(pending)
                    pending.clear()
                    _terminate_workers(executor)
    finally:
        if executor is not None:
            executor.shutdown(wait=n_stopped == 0, cancel_futures=True)

    elapsed = time.perf_counter() - start
    run_info = {
        "wall_seconds": round(elapsed, 1),
        "jobs": args.jobs,
        "time_budget": args.time_budget,
        "fits_run": n_done,
        "fits_not_started": n_skipped,
        "fits_stopped": n_stopped,
        "cpu_count": os.cpu_count(),
        "processor": cpu_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sk_mmoe": getattr(sk_mmoe, "__version__", "unknown"),
        **config,
    }
    # One entry per run into this folder (a resumed run adds one).
    info_path = args.out / RUN_FILE
    runs = json.loads(info_path.read_text())["runs"] if info_path.is_file() else []
    runs.append(run_info)
    info_path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(
        f"\n{n_done} fits in {elapsed:.0f} s"
        + (f"; {n_skipped} not started (time budget)" if n_skipped else "")
        + (f"; {n_stopped} stopped unfinished (time budget)" if n_stopped else ""),
        flush=True,
    )


def _terminate_workers(executor):
    # ProcessPoolExecutor has no public way to stop running tasks before
    # Python 3.14 (terminate_workers); end its worker processes directly.
    if hasattr(executor, "terminate_workers"):
        executor.terminate_workers()
        return
    for process in list(getattr(executor, "_processes", {}).values()):
        process.terminate()


# ---------------------------------------------------------------------------
# Report: tables and figures from the per-fit CSV
# ---------------------------------------------------------------------------


def select_learning_rates(fits):
    """Per (model, correlation, seed): the fit of lowest validation MSE.

    Only complete cells count: every learning rate of the run's grid
    (``lr_grid``) fitted (a failed fit counts, as a validation MSE of
    infinity). And only seeds with a complete cell for every model and
    correlation count, so that every model and correlation has the same
    repeats (a run cut short by its time budget leaves its last seed
    incomplete). Returns the selected fits and the number of cells left out.
    """
    keys = ["n_train", "model", "correlation", "seed"]
    grids = fits["lr_grid"].unique()
    if len(grids) != 1:
        raise SystemExit(
            f"The fits of {fits['n_train'].iloc[0]} training rows used different "
            f"learning-rate grids ({', '.join(map(str, grids))}); report them "
            "from separate --out folders."
        )
    lrs = [float(lr) for lr in str(grids[0]).split()]
    fits = fits[np.isclose(fits["lr"].to_numpy()[:, None], lrs).any(axis=1)].copy()
    fits["valid_key"] = fits["valid_mse"].where(fits["status"] == "ok", np.inf)
    fits["valid_key"] = fits["valid_key"].fillna(np.inf)
    grouped = fits.groupby(keys)
    complete = grouped["lr"].nunique() == len(lrs)
    complete = complete[complete].index
    fits = fits.set_index(keys).loc[complete].reset_index()
    best = fits.loc[fits.groupby(keys)["valid_key"].idxmin()]
    best = best[np.isfinite(best["valid_key"])]
    n_cells = best["model"].nunique() * best["correlation"].nunique()
    per_seed = best.groupby("seed").size()
    best = best[best["seed"].isin(per_seed[per_seed == n_cells].index)]
    n_left_out = grouped.ngroups - len(best)
    return best.drop(columns="valid_key").reset_index(drop=True), n_left_out


def _in_order(frame):
    order = {name: i for i, name in enumerate(MODELS)}
    return frame.sort_values(
        ["correlation", "model"],
        ascending=[False, True],
        key=lambda s: s.map(order) if s.name == "model" else s,
    ).reset_index(drop=True)


def summarize(best):
    """Test MSE per model and correlation: mean, std, repeats; chosen lrs."""
    grouped = best.groupby(["correlation", "model"])
    summary = pd.DataFrame(
        {
            "test_mse_mean": grouped["test_mse"].mean(),
            "test_mse_std": grouped["test_mse"].std(),
            **{f"test_mse_{t}_mean": grouped[f"test_mse_{t}"].mean() for t in TASKS},
            "repeats": grouped.size(),
            "epochs_mean": grouped["best_epoch"].mean(),
            "lrs": grouped["lr"].agg(
                lambda s: ", ".join(
                    f"{lr:g}×{n}" for lr, n in sorted(s.value_counts().items())
                )
            ),
        }
    ).reset_index()
    return _in_order(summary)


def paired_vs_shared_bottom(best):
    """Per repeat: test MSE minus that of Shared-Bottom at the same seed."""
    keys = ["correlation", "seed"]
    sb = best[best["model"] == "Shared-Bottom"][[*keys, "test_mse"]]
    diffs = best[best["model"] != "Shared-Bottom"].merge(
        sb, on=keys, suffixes=("", "_sb")
    )
    diffs["diff"] = diffs["test_mse"] - diffs["test_mse_sb"]
    grouped = diffs.groupby(["correlation", "model"])
    out = pd.DataFrame(
        {
            "diff_mean": grouped["diff"].mean(),
            "diff_std": grouped["diff"].std(),
            "wins": grouped["diff"].agg(lambda d: int((d < 0).sum())),
            "pairs": grouped.size(),
        }
    ).reset_index()
    return _in_order(out)


def _pm(mean, std, digits=4, signed=False):
    sign = "+" if signed else ""
    if std is None or not np.isfinite(std):  # a single repeat has no std
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} ± {std:.{digits}f}"


def tables(best, fits):
    """The report's tables as lists of rows (header first)."""
    summary = summarize(best)
    paired = paired_vs_shared_bottom(best)
    correlations = sorted(best["correlation"].unique(), reverse=True)
    models = [m for m in MODELS if m in set(best["model"])]

    params = (
        fits.dropna(subset=["params"])
        .groupby("model")[["params", "params_no_gates"]]
        .first()
    )
    param_rows = [["Model", "Parameters", "Without gates"]] + [
        [
            m,
            f"{int(params.loc[m, 'params']):,}",
            f"{int(params.loc[m, 'params_no_gates']):,}",
        ]
        for m in models
        if m in params.index
    ]

    mse_rows = [["Model", *[f"corr. {c:g}" for c in correlations]]]
    for m in models:
        row = [m]
        for c in correlations:
            sel = summary[(summary["model"] == m) & (summary["correlation"] == c)]
            row.append(
                _pm(sel["test_mse_mean"].iloc[0], sel["test_mse_std"].iloc[0])
                if len(sel)
                else "–"
            )
        mse_rows.append(row)

    diff_rows = [["Model", *[f"corr. {c:g}" for c in correlations]]]
    for m in models[1:] if models and models[0] == "Shared-Bottom" else models:
        row = [m]
        for c in correlations:
            sel = paired[(paired["model"] == m) & (paired["correlation"] == c)]
            if len(sel):
                s = sel.iloc[0]
                row.append(
                    f"{_pm(s['diff_mean'], s['diff_std'], signed=True)} "
                    f"({s['wins']}/{s['pairs']})"
                )
            else:
                row.append("–")
        diff_rows.append(row)

    detail_rows = [
        [
            "Correlation",
            "Model",
            "Repeats",
            *[f"MSE {t}" for t in TASKS],
            "Best epoch",
            "Learning rates chosen",
        ]
    ]
    for s in summary.itertuples():
        detail_rows.append(
            [
                f"{s.correlation:g}",
                s.model,
                str(s.repeats),
                *[f"{getattr(s, f'test_mse_{t}_mean'):.4f}" for t in TASKS],
                f"{s.epochs_mean:.0f}",
                s.lrs,
            ]
        )
    return param_rows, mse_rows, diff_rows, detail_rows, summary, paired


def _markdown(rows):
    lines = ["", "| " + " | ".join(rows[0]) + " |"]
    lines.append("|" + "|".join("---" for _ in rows[0]) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines) + "\n"


def _rst(rows):
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(lines) + "\n"


def _setup_sentence(fits, best, n_incomplete, runs):
    cfg = fits.iloc[0]
    repeats = best.groupby(["model", "correlation"]).size()
    lrs = ", ".join(f"{lr:g}" for lr in sorted(fits["lr"].unique()))
    text = (
        f"{int(cfg['n_train']):,} training rows (10% of them held out for "
        f"early stopping), {int(cfg['n_valid']):,} validation rows (to choose "
        f"the learning rate among {lrs}) and {int(cfg['n_test']):,} test rows "
        f"per repeat; d = {int(cfg['n_features'])}; batches of "
        f"{int(cfg['batch_size'])} rows; at most {int(cfg['max_epochs'])} epochs, "
        f"early-stopping patience {int(cfg['n_iter_no_change'])} epochs. "
        + (
            f"{repeats.min()} repeat(s)"
            if repeats.min() == repeats.max()
            else f"{repeats.min()} to {repeats.max()} repeats"
        )
        + f" per model and correlation ({len(fits)} fits"
    )
    if n_incomplete:
        text += (
            f"; {n_incomplete} fitted model-correlation-seed combinations left "
            "out, as not every learning rate, model and correlation of their "
            "seed was fitted"
        )
    n_failed = int((fits["status"] == "failed").sum())
    if n_failed:
        text += f"; {n_failed} fits diverged"
    text += ")."
    if runs:
        last = runs[-1]
        text += (
            f" The run took {_duration(sum(r['wall_seconds'] for r in runs))} "
            "of wall-clock time"
            + (f" (in {len(runs)} parts)" if len(runs) > 1 else "")
            + f" with {last['jobs']} parallel fit(s) of one PyTorch thread each "
            f"on {last['cpu_count']} cores ({last['processor']}), PyTorch "
            f"{last['torch']}"
        )
        if "cpu_seconds" in fits:
            cpu = _duration(fits["cpu_seconds"].sum())
            text += f"; the fits used {cpu} of CPU time together"
        text += "."
    return text


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def report(args):
    fits_path = args.out / FITS_FILE
    if not fits_path.is_file():
        raise SystemExit(f"No fits to report: {fits_path} does not exist.")
    all_fits = pd.read_csv(fits_path)
    run_info_path = args.out / RUN_FILE
    runs = (
        json.loads(run_info_path.read_text())["runs"] if run_info_path.is_file() else []
    )
    sizes = sorted(all_fits["n_train"].unique())
    args.results_dir.mkdir(parents=True, exist_ok=True)
    args.figures.mkdir(parents=True, exist_ok=True)

    md = [
        "# Synthetic regression tasks of varying correlation\n",
        "Generated by `python benchmarks/synthetic.py --report` from "
        f"`{FITS_FILE}`. Test MSE is the mean over the two tasks of the mean "
        "squared error on the test rows, in the targets' units (the noise "
        "alone gives 0.01), for the learning rate of lowest validation MSE "
        "of each model and repeat. ± is one standard deviation over the "
        "repeats.\n",
    ]
    main_best = None
    for n_train in sizes:
        fits = all_fits[all_fits["n_train"] == n_train]
        best, n_incomplete = select_learning_rates(fits)
        if best.empty:
            md.append(f"\n## {n_train:,} training rows\n\nNo complete cells yet.\n")
            continue
        this_info = [r for r in runs if r["n_train"] == n_train]
        params, mse, diff, detail, _, _ = tables(best, fits)
        setup = _setup_sentence(fits, best, n_incomplete, this_info)
        md += [
            f"\n## {n_train:,} training rows\n",
            setup + "\n",
            "\nTrainable parameters:\n",
            _markdown(params),
            "\nTest MSE (mean of the two tasks), mean ± std over repeats:\n",
            _markdown(mse),
            "\nTest MSE minus that of Shared-Bottom at the same correlation "
            "and seed, mean ± std over repeats (in brackets: repeats in which "
            "the model beat Shared-Bottom, of all):\n",
            _markdown(diff),
            "\nPer task, with the mean best epoch and the learning rates "
            "chosen (lr × number of repeats):\n",
            _markdown(detail),
        ]
        # The docs and figures show the training size with the most
        # complete cells (the largest one on a tie).
        if main_best is None or len(best) >= len(main_best[0]):
            main_best = (best, fits, n_incomplete, this_info, params, mse, diff)

    md_path = args.results_dir / "synthetic.md"
    md_path.write_text("".join(md), encoding="utf-8")
    outputs = [md_path]
    if main_best is not None:
        best, fits, n_incomplete, this_info, params, mse, diff = main_best
        inc = [
            ".. This file is generated by benchmarks/synthetic.py --report.\n\n",
            _setup_sentence(fits, best, n_incomplete, this_info) + "\n\n",
            "Trainable parameters:\n\n",
            _rst(params),
            "\nTest MSE (mean of the two tasks), mean ± standard deviation "
            "over the repeats:\n\n",
            _rst(mse),
            "\nTest MSE minus that of Shared-Bottom at the same correlation and "
            "seed, mean ± standard deviation over the repeats (in brackets: "
            "the repeats in which the model beat Shared-Bottom, of all):\n\n",
            _rst(diff),
        ]
        inc_path = args.figures / "synthetic_results.inc"
        inc_path.write_text("".join(inc), encoding="utf-8")
        outputs.append(inc_path)
        outputs += plot(best, args.figures)
        print(md_path.read_text(encoding="utf-8"))
    print("Wrote " + ", ".join(map(str, outputs)))


def plot(best, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    models = [m for m in MODELS if m in set(best["model"])]
    correlations = sorted(best["correlation"].unique())
    colors = {m: f"C{i}" for i, m in enumerate(MODELS)}
    summary = summarize(best)

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    offsets = np.linspace(-0.012, 0.012, len(models))
    for offset, name in zip(offsets, models, strict=True):
        sel = summary[summary["model"] == name].sort_values("correlation")
        ax.errorbar(
            sel["correlation"] + offset,
            sel["test_mse_mean"],
            yerr=sel["test_mse_std"].fillna(0.0),
            marker="o",
            capsize=3,
            color=colors[name],
            label=name,
        )
    ax.set_xlabel("task correlation")
    ax.set_ylabel("test MSE (mean of the two tasks)")
    ax.set_xticks(correlations)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    n = summary["repeats"]
    ax.set_title(
        f"Mean ± std over {n.min()}–{n.max()} repeats"
        if n.min() != n.max()
        else f"Mean ± std over {n.min()} repeats"
        if n.min() > 1
        else "One repeat",
        fontsize=9,
    )
    fig.tight_layout()
    correlation_path = folder / "synthetic_correlation.png"
    fig.savefig(correlation_path, dpi=110)
    plt.close(fig)

    # Every repeat as a point, per correlation and model, with a box of the
    # spread: Shared-Bottom's run-to-run variance against the mixtures'.
    fig, ax = plt.subplots(figsize=(8.0, 4.0))
    width = 0.8 / len(models)
    rng = np.random.default_rng(0)
    for j, name in enumerate(models):
        positions, values = [], []
        for i, c in enumerate(correlations):
            sel = best[(best["model"] == name) & (best["correlation"] == c)]
            positions.append(i + (j - (len(models) - 1) / 2) * width)
            values.append(sel["test_mse"].to_numpy())
        ax.boxplot(
            values,
            positions=positions,
            widths=width * 0.8,
            whis=(0, 100),
            showfliers=False,
            medianprops=dict(color=colors[name]),
            boxprops=dict(color=colors[name]),
            whiskerprops=dict(color=colors[name]),
            capprops=dict(color=colors[name]),
        )
        for x, v in zip(positions, values, strict=True):
            jitter = rng.uniform(-0.25, 0.25, len(v)) * width
            ax.scatter(x + jitter, v, s=10, color=colors[name], alpha=0.7, zorder=3)
        ax.scatter([], [], color=colors[name], label=name)
    ax.set_xticks(range(len(correlations)))
    ax.set_xticklabels([f"{c:g}" for c in correlations])
    ax.set_xlabel("task correlation")
    ax.set_ylabel("test MSE (mean of the two tasks)")
    if best["test_mse"].max() > 5 * best["test_mse"].min():
        ax.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title("Test MSE of every repeat", fontsize=9)
    fig.tight_layout()
    spread_path = folder / "synthetic_spread.png"
    fig.savefig(spread_path, dpi=110)
    plt.close(fig)
    return [correlation_path, spread_path]


def compare_defaults(args) -> list[dict]:
    """Default regressor and its Shared-Bottom against the tuned MMoE."""
    from sk_mmoe import MultiTaskMMoERegressor

    _init_worker()
    path = args.out / "synthetic_fits.csv"
    tuned = pd.DataFrame(columns=["model", "correlation", "seed", "test_mse"])
    if path.exists():
        fits = pd.read_csv(path)
        tuned = select_learning_rates(fits[fits.n_train == args.n_train])[0]
        tuned = tuned[tuned.model == "MMoE"]
    rows = []
    for correlation in args.correlations:
        for seed in range(args.first_seed, args.first_seed + args.repeats):
            (X, Y), _, (X_test, Y_test) = _data(
                correlation,
                seed,
                args.n_train,
                args.n_valid,
                args.n_test,
                args.n_features,
            )
            row = {"correlation": correlation, "seed": seed}
            for name, params in (("defaults", {}), ("Shared-Bottom", {"n_experts": 1})):
                model = MultiTaskMMoERegressor(**params, random_state=seed)
                start = time.process_time()
                model.fit(X, Y)
                row[f"{name} cpu_s"] = round(time.process_time() - start, 1)
                row[f"{name} epochs"] = model.n_iter_
                row[name] = float(((model.predict(X_test) - Y_test) ** 2).mean())
            match = tuned[(tuned.correlation == correlation) & (tuned.seed == seed)]
            row["tuned MMoE"] = float(match.test_mse.iloc[0]) if len(match) else np.nan
            row["ratio"] = row["defaults"] / row["tuned MMoE"]
            rows.append(row)
            print(row, flush=True)
    frame = pd.DataFrame(rows)
    print(frame.to_string(index=False))
    both = frame.dropna(subset=["tuned MMoE"])
    print(
        f"mean test MSE over {len(frame)} repeats: defaults "
        f"{frame['defaults'].mean():.4f}, Shared-Bottom "
        f"{frame['Shared-Bottom'].mean():.4f}; over the {len(both)} with a tuned "
        f"fit: defaults {both['defaults'].mean():.4f}, tuned MMoE "
        f"{both['tuned MMoE'].mean():.4f}, ratio of the means "
        f"{both['defaults'].mean() / both['tuned MMoE'].mean():.2f}"
    )
    return rows


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.defaults:
        compare_defaults(args)
        return
    if not args.report:
        run(args)
    if not args.no_report:
        report(args)


if __name__ == "__main__":
    main()
