"""
==============================================================
A user's history as input: list columns and target attention
==============================================================

A recommendation log often holds, for every impression, what the user did
before: here the ten items each user viewed, in the list column
``history`` of :func:`~sk_mmoe.datasets.make_recommendation_tasks`
(``history_length=10``). Each user has several interests, and the click
rises with the similarity of the candidate item to the single most similar
past item. The estimators read the list column as it is; with
``sequence_features={"history": "item_id"}`` a past item and a candidate
share one embedding, and ``sequence_pooling`` chooses how a row's past
items become one vector (see :ref:`sequences`).

The test rows belong to users never seen in training, so what a model
learns must come from the histories, not from user IDs.
"""

# %%
# Data: impressions with each user's history
# -------------------------------------------
import numpy as np
from sklearn.metrics import roc_auc_score

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import make_recommendation_tasks

X, Y = make_recommendation_tasks(
    6000, history_length=10, return_watch_time=False, random_state=0
)
Y = Y[["click", "rated_highly"]]
print(X[["item_id", "history"]].head(3))

users = X["user_id"].astype(int).to_numpy()
held_out = np.random.default_rng(0).permutation(np.unique(users))[: users.max() // 4]
test = np.isin(users, held_out)
X = X.drop(columns="user_id")
X_train, X_test, Y_train, Y_test = X[~test], X[test], Y[~test], Y[test]

# %%
# Without the history, with its mean, with target attention
# -----------------------------------------------------------
settings = {
    "no history": dict(),
    "mean pooling": dict(sequence_pooling="mean"),
    "target attention": dict(sequence_pooling="attention"),
}
for name, params in settings.items():
    columns = X.columns if params else X.columns.drop("history")
    clf = MultiTaskMMoEClassifier(
        max_epochs=8,
        sequence_features={"history": "item_id"} if params else None,
        random_state=0,
        **params,
    ).fit(X_train[columns], Y_train)
    proba = clf.predict_proba(X_test[columns])[0][:, 1]
    auc = roc_auc_score(Y_test["click"], proba)
    print(f"{name:>16}: test click AUC {auc:.3f}")
