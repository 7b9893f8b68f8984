"""
==============================================================
A recommendation log: ID features and a scarcely labelled task
==============================================================

Recommender logs are the data multi-task models such as MMoE were made for
(Ma et al., 2018; Zhao et al., 2019): every impression says whether the item
was clicked, but only a few say whether the user rated it highly, and almost
none whether they shared it. The features are mostly IDs, with thousands of
levels, and a few context columns.

:func:`~sk_mmoe.datasets.make_recommendation_tasks` generates such a log
from users and items with latent tastes. This example fits one
:class:`~sk_mmoe.MultiTaskMMoE` to its four tasks and compares it, task by
task, with a linear model trained on the labelled rows of that task only.
"""

# %%
# The log
# -------
# Each row is one impression: a user, an item and its context. ``click`` is
# known for every row; ``rated_highly`` and ``watch_time`` only for clicked
# rows (``NaN`` elsewhere); ``shared`` for about 0.5% of the rows by default.
# ``task_correlation=0.5`` makes the four tasks share half of the variance of
# the user-item affinity behind them.
import numpy as np

from sk_mmoe.datasets import make_recommendation_tasks

X, Y = make_recommendation_tasks(20000, task_correlation=0.5, random_state=0)
print(X.dtypes.to_string())
print("labelled fraction per task:", Y.notna().mean().round(4).to_dict())
print("distinct users / items:", X.user_id.nunique(), "/", X.item_id.nunique())
X.head()

# %%
# The evaluation
# --------------
# A test set with 37 ``shared`` labels would give a very noisy AUC. The
# generator can give every row a ``shared`` label (``share_fraction=1.0``); we
# keep all of them in the test set, a luxury that real logs lack, and hide
# all but 0.5% of them in the training set, which is what the generator does
# itself with the default ``share_fraction``. Watch time, in seconds, has a
# long right tail: both models learn and are scored on its logarithm.
from sklearn.model_selection import train_test_split


def make_split(seed, task_correlation=0.5):
    X, Y = make_recommendation_tasks(
        30000,
        task_correlation=task_correlation,
        share_fraction=1.0,
        random_state=seed,
    )
    Y["watch_time"] = np.log(Y["watch_time"])
    X_train, X_test, Y_train, Y_test = train_test_split(
        X, Y, test_size=0.25, random_state=seed
    )
    rng = np.random.default_rng(seed)
    hidden = rng.random(len(Y_train)) >= 0.005
    Y_train.loc[hidden, "shared"] = np.nan
    return X_train, X_test, Y_train, Y_test


X_train, X_test, Y_train, Y_test = make_split(seed=0)
print("training labels:", Y_train.notna().sum().to_dict())
print("test labels:    ", Y_test.notna().sum().to_dict())

# %%
# Encoding IDs and context
# ------------------------
# The estimators take numbers, so a :class:`~sklearn.compose.ColumnTransformer`
# one-hot encodes the IDs, the device and the hour. ``max_categories`` keeps
# the 199 most frequent users (and items) and pools the others, and the ones
# never seen in training, in one "infrequent" column. The two heavy-tailed
# numbers are log-transformed and standardised.
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

encoder = ColumnTransformer(
    [
        (
            "categories",
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=200),
            ["user_id", "item_id", "device", "hour"],
        ),
        (
            "numbers",
            make_pipeline(FunctionTransformer(np.log1p), StandardScaler()),
            ["item_age_days", "user_activity"],
        ),
    ]
)
print("encoded width:", encoder.fit(X_train).transform(X_train[:1]).shape[1])

# %%
# One model for four tasks, and one baseline per task
# ---------------------------------------------------
# The multi-task model sees every training row; a row contributes to the loss
# of each task it has a label for. Each baseline is a
# :class:`~sklearn.linear_model.LogisticRegression` (or, for watch time, a
# :class:`~sklearn.linear_model.Ridge`) on the same encoding, fitted on the
# rows labelled for its task. Both are scored on the test rows labelled for
# each task: ROC AUC for the binary tasks, :math:`R^2` of log watch time.
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score

from sk_mmoe import MultiTaskMMoE

TASKS = ["click", "rated_highly", "shared", "watch_time"]


def score(task, y_true, y_score):
    labelled = y_true.notna().to_numpy()
    metric = r2_score if task == "watch_time" else roc_auc_score
    return metric(y_true[labelled], y_score[labelled])


def fit_mmoe(X_train, Y_train, seed):
    mmoe = MultiTaskMMoE(
        n_experts=4,
        expert_hidden_layer_sizes=(64,),
        tower_hidden_layer_sizes=(16,),
        lr=1e-3,
        weight_decay=1e-4,
        max_epochs=30,
        early_stopping=True,
        n_iter_no_change=3,
        random_state=seed,
    )
    return make_pipeline(clone(encoder), mmoe).fit(X_train, Y_train)


def evaluate_mmoe(model, X_test, Y_test):
    proba, predicted = model.predict_proba(X_test), model.predict(X_test)
    scores = {}
    for k, task in enumerate(TASKS):
        y_score = (
            predicted[:, k].astype(float) if task == "watch_time" else proba[k][:, 1]
        )
        scores[task] = score(task, Y_test[task], y_score)
    return scores


def evaluate_baselines(X_train, Y_train, X_test, Y_test):
    scores = {}
    for task in TASKS:
        labelled = Y_train[task].notna().to_numpy()
        if task == "watch_time":
            model = make_pipeline(clone(encoder), Ridge(alpha=1.0))
        else:
            model = make_pipeline(clone(encoder), LogisticRegression(max_iter=1000))
        model.fit(X_train[labelled], Y_train[task][labelled])
        if task == "watch_time":
            y_score = model.predict(X_test)
        else:
            y_score = model.predict_proba(X_test)[:, 1]
        scores[task] = score(task, Y_test[task], y_score)
        if task == "click":
            # How much of ``shared`` the click task alone can tell: the click
            # model's probability used as a score for sharing.
            click_score = y_score
    scores["shared (by click)"] = score("shared", Y_test["shared"], click_score)
    return scores


# %%
# Three data sets, each with its own users, items and split:
import pandas as pd

rows = []
for seed in range(3):
    X_train, X_test, Y_train, Y_test = make_split(seed)
    model = fit_mmoe(X_train, Y_train, seed)
    rows.append({"model": "MMoE", "seed": seed, **evaluate_mmoe(model, X_test, Y_test)})
    baseline = evaluate_baselines(X_train, Y_train, X_test, Y_test)
    rows.append({"model": "per-task linear", "seed": seed, **baseline})
scores = pd.DataFrame(rows)
summary = scores.drop(columns="seed").groupby("model", sort=False)
print("test scores (AUC; R^2 of log watch time), mean ± std over 3 data sets:")
table = summary.mean().map("{:.3f}".format) + " ± " + summary.std().map("{:.3f}".format)
print(table.T.replace("nan ± nan", "").to_string())
paired = scores[["seed", "model", *TASKS]].set_index(["seed", "model"]).unstack()
difference = paired.xs("MMoE", axis=1, level=1) - paired.xs(
    "per-task linear", axis=1, level=1
)
print("MMoE - per-task linear, per data set:")
print(difference.to_string(float_format="{:+.3f}".format))

# %%
# What the numbers say
# --------------------
# On these data the multi-task model does not beat the per-task linear
# models: it is within about 0.01 of them on the densely labelled tasks,
# slightly below on average, and level with them on ``shared``, where the
# differences change sign from one data set to the next. A one-hot encoding
# lets a linear model learn a bias per user and per item, which is most of
# what the IDs tell with about 20 impressions per user; the interaction of
# the latent tastes, which a network could add, is not learned from so few
# rows per user.
#
# The ``shared (by click)`` row is the honest measure of what there is to
# transfer: the click baseline's probability, used as a score for sharing,
# beats both models trained on the 112 share labels, since at
# ``task_correlation=0.5`` clicks and shares partly come from the same
# affinity. The multi-task model does not yet turn that relation into a
# better ``shared`` head with so few labels (giving the task a larger weight
# with ``task_weights`` did not change this in our trials). Raise
# ``task_correlation`` (up to 1) or ``share_fraction`` to see the gap move,
# and set it to 0 for tasks with nothing to share.
