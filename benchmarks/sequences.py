"""A user's history as input: no history, mean pooling, target attention.

The log of :func:`sk_mmoe.datasets.make_recommendation_tasks` with
``history_length=10``: every user's ten past items (drawn near three
interests of the user) sit in the list column ``history``, and the click
and rating scores rise with the similarity of the candidate to the single
most similar past item. The users of the test rows are not among those of
the training rows (a quarter of the users held out), so a model learns
about histories, not about users; ``user_id`` is dropped.

Models, on the same rows, for each of 5 seeds (data and model):

* ``no_history``, ``mean``, ``attention``:
  :class:`~sk_mmoe.MultiTaskMMoEClassifier` on ``click`` and
  ``rated_highly``, without the history, with it mean-pooled
  (``sequence_pooling="mean"``), and with target attention; the history
  shares the table of ``item_id``;
* ``lgbm``, ``lgbm_mean_sim``, ``lgbm_max_sim``: LightGBM on the click,
  without the history, and with a hand-made feature: the mean or the
  largest similarity of the candidate to the past items, the cosine of the
  items' co-occurrence profiles in the training users' histories.

Reported: the test AUC of the click, mean and paired standard error of each
difference, and the fit time of the network with the history against
without it (median ratio over seeds; other work shared the CPU).

Results of each size go to ``results/sequences_<rows>.csv``;
``results/sequences.md`` holds the tables of every size run so far.

Usage::

    python benchmarks/sequences.py               # 20,000 rows, 5 seeds, about 15 min
    python benchmarks/sequences.py --rows 60000  # 60,000 rows
    python benchmarks/sequences.py --quick       # smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import quality  # the paired differences of the quality benchmark
from sklearn.metrics import roc_auc_score

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import make_recommendation_tasks

RESULTS = Path(__file__).parent / "results"
NETWORKS = {"no_history": None, "mean": "mean", "attention": "attention"}
GOALS = (
    ("mean", "no_history", 0.10, "mean pooling beats no history by >= 0.10"),
    ("attention", "mean", None, "attention beats mean pooling by >= 2 SE"),
    ("attention", "lgbm_max_sim", -0.02, "attention within 0.02 of lgbm_max_sim"),
)


def _split(X, Y, seed):
    users = X["user_id"].astype(int).to_numpy()
    rng = np.random.default_rng(seed)
    held = rng.permutation(np.unique(users))[: len(np.unique(users)) // 4]
    test = np.isin(users, held)
    X = X.drop(columns="user_id")
    return X[~test], X[test], Y[~test], Y[test]


def _similarities(X_train, X_test, n_items):
    """Mean and largest cosine of the candidate's co-occurrence profile to
    those of the past items (profiles from the training histories)."""
    histories = np.array(X_train["history"].tolist())
    counts = np.zeros((n_items, n_items))
    for row in np.unique(histories, axis=0):
        present = np.zeros(n_items)
        present[row] = 1
        counts += np.outer(present, present)
    np.fill_diagonal(counts, 0)
    profiles = counts / (np.linalg.norm(counts, axis=1, keepdims=True) + 1e-12)
    cosine = profiles @ profiles.T

    def features(X):
        past = np.array(X["history"].tolist())
        items = X["item_id"].astype(int).to_numpy()
        sims = cosine[items[:, None], past]
        return sims.mean(1), sims.max(1)

    return features(X_train), features(X_test)


def _lightgbm(X_train, y_train, X_test, seed):
    from lightgbm import LGBMClassifier

    model = LGBMClassifier(n_estimators=300, learning_rate=0.05, verbose=-1)
    model.fit(X_train, y_train, categorical_feature=["item_id", "device"])
    return model.predict_proba(X_test)[:, 1]


def run(n_samples, seeds, max_epochs, partial=None):
    rows = []
    # A first, untimed fit: the first fit of a process pays for imports and
    # thread start-up, which would count against the first model timed.
    X, Y = make_recommendation_tasks(500, history_length=10, random_state=0)
    MultiTaskMMoEClassifier(max_epochs=1).fit(X.drop(columns="history"), Y["click"])
    for seed in seeds:
        X, Y = make_recommendation_tasks(
            n_samples, history_length=10, return_watch_time=False, random_state=seed
        )
        Y = Y[["click", "rated_highly"]]
        X_train, X_test, Y_train, Y_test = _split(X, Y, seed)
        y_test = Y_test["click"].to_numpy()
        result = {"seed": seed}
        for name, pooling in NETWORKS.items():
            # No early stopping: its validation rows, drawn at random, are of
            # the training users, whose histories a network can learn as
            # user IDs, and it stopped the fits before the item vectors had
            # learned the items' similarities (at about 10 epochs).
            params = dict(
                max_epochs=max_epochs, early_stopping=False, random_state=seed
            )
            train, test = X_train, X_test
            if pooling is None:
                train, test = (
                    X_train.drop(columns="history"),
                    X_test.drop(columns="history"),
                )
            else:
                params.update(
                    sequence_features={"history": "item_id"}, sequence_pooling=pooling
                )
            start = time.perf_counter()
            clf = MultiTaskMMoEClassifier(**params).fit(train, Y_train)
            result[f"{name}_seconds"] = time.perf_counter() - start
            result[name] = roc_auc_score(y_test, clf.predict_proba(test)[0][:, 1])
        plain_train = X_train.drop(columns="history")
        plain_test = X_test.drop(columns="history")
        y_train = Y_train["click"].to_numpy()
        result["lgbm"] = roc_auc_score(
            y_test, _lightgbm(plain_train, y_train, plain_test, seed)
        )
        n_items = int(X["item_id"].cat.categories.size)
        (tr_mean, tr_max), (te_mean, te_max) = _similarities(X_train, X_test, n_items)
        for name, train_f, test_f in (
            ("lgbm_mean_sim", tr_mean, te_mean),
            ("lgbm_max_sim", tr_max, te_max),
        ):
            train = plain_train.assign(similarity=train_f)
            test = plain_test.assign(similarity=test_f)
            result[name] = roc_auc_score(y_test, _lightgbm(train, y_train, test, seed))
        print(result, flush=True)
        rows.append(result)
        if partial is not None:
            pd.DataFrame(rows).to_csv(partial, index=False)
    return pd.DataFrame(rows)


def report(frame, n_rows):
    models = [*NETWORKS, "lgbm", "lgbm_mean_sim", "lgbm_max_sim"]
    n = len(frame)
    lines = [
        f"Test click AUC, {n_rows:,} rows, users unseen at test, {n} seed(s)",
        "",
        "| model | AUC mean | sd over seeds |",
        "|---|---|---|",
    ]
    for model in models:
        lines.append(
            f"| {model} | {frame[model].mean():.4f} | {frame[model].std(ddof=1):.4f} |"
            if n > 1
            else f"| {model} | {frame[model].mean():.4f} | - |"
        )
    lines += [
        "",
        "| goal | difference (paired SE) | margin | met |",
        "|---|---|---|---|",
    ]
    for a, b, threshold, text in GOALS:
        mean, _, se, _ = quality.paired(frame[a], frame[b])
        bar = 2 * se if threshold is None else threshold
        margin = mean - bar
        lines.append(
            f"| {text} | {mean:+.4f} ({se:.4f}) | {margin:+.4f} | "
            f"{'yes' if margin >= 0 else 'no'} |"
        )
    ratios = frame["attention_seconds"] / frame["no_history_seconds"]
    mean_ratios = frame["mean_seconds"] / frame["no_history_seconds"]
    lines += [
        "",
        f"Fit time with a history of 10 values over without: attention "
        f"{ratios.median():.2f}x (range {ratios.min():.2f} to {ratios.max():.2f}), "
        f"mean {mean_ratios.median():.2f}x; goal <= 2x: "
        f"{'met' if ratios.median() <= 2 else 'not met'} (median; other work "
        f"shared the CPU).",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", "--samples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    if args.quick:
        frame = run(3000, [0], 2)
        print(report(frame, 3000))
        return
    RESULTS.mkdir(exist_ok=True)
    csv = RESULTS / f"sequences_{args.rows}.csv"
    frame = run(args.rows, list(range(args.seeds)), args.epochs, partial=csv)
    print(report(frame, args.rows))
    summarise()


def summarise():
    """Write ``results/sequences.md``: the tables of every size run so far."""
    runs = sorted(
        (int(path.stem.split("_")[1]), path) for path in RESULTS.glob("sequences_*.csv")
    )
    text = "\n\n".join(report(pd.read_csv(path), rows) for rows, path in runs)
    (RESULTS / "sequences.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
