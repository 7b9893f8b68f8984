"""Demo: ``python -m sk_mmoe``.

Does learning several tasks together help a task with few labels? Fits a
single-task model, a Shared-Bottom model and an MMoE on a synthetic
recommendation log whose ``shared`` task is labelled on 2% of the rows,
over a few seeds, prints each task's held-out score as mean ± standard
error, and ends on the comparisons that the numbers support.
"""

from __future__ import annotations

import argparse
import textwrap
import time
import warnings
from typing import Any

import numpy as np

from . import MultiTaskMMoEClassifier
from .datasets import make_recommendation_tasks

# The columns of make_recommendation_tasks(as_frame=False) (no pandas needed).
TASKS = ["click", "rated_highly", "shared"]
SCARCE_TASK = "shared"
# user, item and device IDs: embedded as categories, as a DataFrame's would be.
ID_COLUMNS = [0, 1, 3]
MODELS: dict[str, tuple[str, dict[str, Any], str]] = {
    # name: (what it is, constructor arguments, tasks it learns)
    "single-task": (
        f"the MMoE below, fitted on the labelled rows of {SCARCE_TASK} alone",
        {},
        "scarce",
    ),
    "Shared-Bottom": (
        "all tasks, one expert shared by every task (n_experts=1)",
        {"n_experts": 1},
        "all",
    ),
    "MMoE": (
        "all tasks, 4 experts mixed by one gate per task (the default)",
        {},
        "all",
    ),
}
# The comparisons drawn in the conclusion: (better if positive, reference).
PAIRS = [
    ("Shared-Bottom", "single-task"),
    ("MMoE", "single-task"),
    ("MMoE", "Shared-Bottom"),
]


def score_correlation(proba: np.ndarray, true_logit: np.ndarray) -> float:
    """Correlation of the predicted logit with the generator's true logit."""
    p = np.clip(proba[:, 1], 1e-7, 1 - 1e-7)
    return float(np.corrcoef(np.log(p / (1 - p)), true_logit)[0, 1])


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error of the mean."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def compare(a, b) -> tuple[float, float, float]:
    """Mean and standard error of the paired differences ``a - b``, and
    their ratio (how many standard errors the mean difference is)."""
    diff, se = mean_se(np.asarray(a) - np.asarray(b))
    n_se = abs(diff) / se if se > 0 else (np.inf if diff else 0.0)
    return diff, se, n_se


def conclusion_paragraph(results: dict) -> str:
    """The conclusion on the scarce task, wrapped to 79 columns; model names
    such as "Shared-Bottom" are never split at their hyphen."""
    text = f"Conclusion on {SCARCE_TASK}: {conclusion(results)}"
    return textwrap.fill(text, 79, break_on_hyphens=False)


def conclusion(results: dict[tuple[str, str], tuple[float, float, float]]) -> str:
    """The sentence that ``results`` of :func:`compare` support: a pair is
    ranked when its difference is 2 standard errors or more, else a tie."""
    wins, ties = [], []
    for (name_a, name_b), (diff, _, n_se) in results.items():
        if n_se < 2:
            ties.append(f"{name_a} and {name_b} tie within noise")
        else:
            better, worse = (name_a, name_b) if diff > 0 else (name_b, name_a)
            wins.append(f"{better} beats {worse}")
    return "; ".join(wins + ties) + "."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sk_mmoe", description=__doc__)
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--share-fraction", type=float, default=0.02)
    parser.add_argument("--task-correlation", type=float, default=0.8)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 to give a standard error")

    scores, labelled, seconds = fit_models(args)
    print_report(args, scores, np.mean(labelled, axis=0), seconds)


def fit_models(args: argparse.Namespace) -> tuple[dict, list, float]:
    """Fit every model on a new log per seed: each model's test scores per
    task, the labelled fraction of each task per seed, and the seconds."""
    started = time.perf_counter()
    scores: dict[str, dict[str, list[float]]] = {name: {} for name in MODELS}
    labelled = []
    for seed in range(args.seeds):
        X, Y, S = make_recommendation_tasks(
            args.n_samples,
            task_correlation=args.task_correlation,
            share_fraction=args.share_fraction,
            return_watch_time=False,
            return_scores=True,
            as_frame=False,
            random_state=seed,
        )
        cut = 3 * args.n_samples // 4
        X_train, Y_train, X_test, S_test = X[:cut], Y[:cut], X[cut:], S[cut:]
        labelled.append(np.mean(~np.isnan(Y_train), axis=0))
        scarce = TASKS.index(SCARCE_TASK)
        scarce_rows = ~np.isnan(Y_train[:, scarce])
        for name, (_, params, tasks) in MODELS.items():
            model = MultiTaskMMoEClassifier(
                **params,
                categorical_features=ID_COLUMNS,
                missing_label=np.nan,
                max_epochs=args.max_epochs,
                random_state=seed,
            )
            with warnings.catch_warnings():
                # Few epochs on purpose: the demo compares, it does not tune.
                warnings.simplefilter("ignore")
                if tasks == "scarce":
                    model.fit(X_train[scarce_rows], Y_train[scarce_rows][:, [scarce]])
                else:
                    model.fit(X_train, Y_train)
            names = [SCARCE_TASK] if tasks == "scarce" else TASKS
            probas = model.predict_proba(X_test)
            for task, proba in zip(names, probas, strict=True):
                scores[name].setdefault(task, []).append(
                    score_correlation(proba, S_test[:, TASKS.index(task)])
                )
    seconds = time.perf_counter() - started
    return scores, labelled, seconds


def print_report(
    args: argparse.Namespace, scores: dict, fractions: np.ndarray, seconds: float
) -> None:
    """The data, the models, their scores and the conclusion, on one screen."""
    print(
        "Does learning several tasks together help a task with few labels?\n\n"
        f"Data: make_recommendation_tasks, a synthetic log of {args.n_samples:,} "
        "impressions\n(user and item IDs, hour, device, item age, user activity), "
        "three binary tasks\nthat share part of their user-item affinity "
        f"(task_correlation={args.task_correlation:g}).\n"
        "Trained on the first 75% of rows, where the tasks are labelled on:"
    )
    print(
        "   "
        + ", ".join(
            f"{task} {fraction:.1%}"
            for task, fraction in zip(TASKS, fractions, strict=True)
        )
    )
    print(f"Models ({args.max_epochs} epochs each):")
    for name, (description, _, _) in MODELS.items():
        print(f"   {name:<14} {description}")
    print(
        "Score: on every test row (last 25%), the correlation of the model's "
        "logit with\nthe generator's true logit (1 = perfect, 0 = no signal; "
        f"no label noise).\nMean ± standard error over {args.seeds} seeds, a new "
        "log per seed:\n"
    )
    print(f"   {'':<14}" + "".join(f"{task:>16}" for task in TASKS))
    for name in MODELS:
        cells = []
        for task in TASKS:
            if task in scores[name]:
                mean, se = mean_se(scores[name][task])
                cells.append(f"{mean:.3f} ± {se:.3f}")
            else:
                cells.append("-")
        print(f"   {name:<14}" + "".join(f"{cell:>16}" for cell in cells))
    print(f"\nOn {SCARCE_TASK}, paired differences over seeds (under 2 SE is noise):")
    results = {
        (name_a, name_b): compare(
            scores[name_a][SCARCE_TASK], scores[name_b][SCARCE_TASK]
        )
        for name_a, name_b in PAIRS
    }
    for (name_a, name_b), (diff, se, n_se) in results.items():
        print(f"   {name_a + ' - ' + name_b:<30}{diff:+.3f} ± {se:.3f}  {n_se:5.1f} SE")
    print(conclusion_paragraph(results))
    print(f"({seconds:.0f} s in all)")


if __name__ == "__main__":
    main()
