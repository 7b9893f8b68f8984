"""
=====================================================
Pipeline and grid search with per-task scoring
=====================================================

This example puts :class:`~sk_mmoe.MultiTaskMMoEClassifier` at the end of a
scikit-learn :class:`~sklearn.pipeline.Pipeline` that scales numeric columns
and one-hot encodes string columns of a pandas DataFrame, and tunes it with
:class:`~sklearn.model_selection.GridSearchCV`. The search records a ROC AUC
for *each* task, built by :func:`sk_mmoe.metrics.multitask_scoring`, and
selects the model on one task's score only.
"""

# %%
# A small tabular data set with two tasks
# ---------------------------------------
# Each row is a user visit, with two numeric and two categorical columns. Two
# binary targets share some of their causes: ``click`` and ``purchase``.
import numpy as np
import pandas as pd

rng = np.random.default_rng(0)
n = 1500
X = pd.DataFrame(
    {
        "age": rng.integers(18, 80, n),
        "minutes_on_site": rng.exponential(5.0, n).round(1),
        "device": rng.choice(["mobile", "desktop", "tablet"], n),
        "channel": rng.choice(["search", "social", "email", "direct"], n),
    }
)
interest = (
    0.8 * np.log1p(X["minutes_on_site"])
    + 0.7 * (X["channel"] == "email")
    - 0.5 * (X["device"] == "tablet")
)
click = interest - 0.02 * (X["age"] - 45) + rng.normal(0, 0.5, n) > 1.3
purchase = interest + 0.03 * (X["age"] - 45) + rng.normal(0, 0.5, n) > 1.9
Y = pd.DataFrame({"click": click.astype(int), "purchase": purchase.astype(int)})

print(X.head())
print(Y.mean().rename("positive rate"))

# %%
# The pipeline
# ------------
# ``Y`` is a DataFrame, so its column names become the task names of the
# fitted model and can be used to name the scorers.
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import MultiTaskMMoEClassifier

preprocess = ColumnTransformer(
    [
        ("num", StandardScaler(), ["age", "minutes_on_site"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["device", "channel"]),
    ]
)
pipe = Pipeline(
    [
        ("preprocess", preprocess),
        (
            "mmoe",
            MultiTaskMMoEClassifier(
                expert_hidden_layer_sizes=(16,),
                tower_hidden_layer_sizes=(8,),
                max_epochs=15,
                random_state=0,
            ),
        ),
    ]
)

# %%
# Grid search with one score per task
# -----------------------------------
# :func:`~sk_mmoe.metrics.multitask_scoring` returns a dict of scorers named
# ``"<metric>_<task>"``, plus ``"<metric>_mean"``, the mean over the tasks;
# each task's scorer uses only the rows labelled for that task.
# ``refit="roc_auc_purchase"`` selects the candidate with the best
# cross-validated purchase AUC, and the click AUC of every candidate stays
# available in ``cv_results_``. The grid compares a Shared-Bottom model
# (``n_experts=1``) with a four-expert MMoE, at two learning rates.
from sklearn.model_selection import GridSearchCV

from sk_mmoe.metrics import multitask_scoring

scoring = multitask_scoring("roc_auc", tasks=["click", "purchase"])
print(list(scoring))

search = GridSearchCV(
    pipe,
    param_grid={"mmoe__n_experts": [1, 4], "mmoe__lr": [1e-3, 1e-2]},
    scoring=scoring,
    refit="roc_auc_purchase",
    cv=3,
)
search.fit(X, Y)

# %%
# Results
# -------
# Every candidate has a cross-validated score for each task. Compare the two
# task columns rather than a single average: a candidate can rank well on one
# task and poorly on the other, which a mean over tasks would hide.
columns = [
    "param_mmoe__n_experts",
    "param_mmoe__lr",
    "mean_test_roc_auc_click",
    "mean_test_roc_auc_purchase",
    "rank_test_roc_auc_purchase",
]
results = pd.DataFrame(search.cv_results_)[columns]
print(results.round(4).to_string(index=False))
print("best parameters:", search.best_params_)

# %%
# The refitted pipeline predicts both tasks for new rows: one column per task,
# in the order of the columns of ``Y``, whose names the model keeps in
# ``task_names_``.
new_visits = X.iloc[:3]
print(search.predict(new_visits))
print(search.best_estimator_[-1].task_names_)
