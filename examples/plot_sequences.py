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
# The item vectors learn the items' similarities from the clicks alone,
# which takes more epochs than early stopping on rows of the training users
# allows: the fits run 15 epochs without it.
settings = {
    "no history": dict(),
    "mean pooling": dict(sequence_pooling="mean"),
    "target attention": dict(sequence_pooling="attention"),
}
models = {}
for name, params in settings.items():
    columns = X.columns if params else X.columns.drop("history")
    clf = MultiTaskMMoEClassifier(
        max_epochs=15,
        early_stopping=False,
        sequence_features={"history": "item_id"} if params else None,
        random_state=0,
        **params,
    ).fit(X_train[columns], Y_train)
    models[name] = clf
    proba = clf.predict_proba(X_test[columns])[0][:, 1]
    auc = roc_auc_score(Y_test["click"], proba)
    print(f"{name:>16}: test click AUC {auc:.3f}")

# %%
# What the attention learned
# --------------------------
# :meth:`~sk_mmoe.MultiTaskMMoEClassifier.attention_weights` gives, for each
# row, the weight of each past item against the row's candidate. As a
# yardstick of how alike two items are, outside the model: the cosine of
# their co-occurrence profiles in the training users' histories. For a few
# test rows (users unseen in training): if the attention learned the items'
# similarities, the weights rise with it. The correlation of the two,
# averaged over the test rows, says how far it did.
import matplotlib.pyplot as plt

n_items = X["item_id"].cat.categories.size
histories = np.unique(np.array(X_train["history"].tolist()), axis=0)
holds = np.zeros((len(histories), n_items))  # user by item: in the history
np.put_along_axis(holds, histories, 1.0, axis=1)
counts = holds.T @ holds  # histories holding both items
np.fill_diagonal(counts, 0)
profiles = counts / (np.linalg.norm(counts, axis=1, keepdims=True) + 1e-12)
similarity = profiles @ profiles.T

weights = models["target attention"].attention_weights(X_test)["history"]
past = np.array(X_test["history"].tolist())
candidate = X_test["item_id"].astype(int).to_numpy()
row_similarity = similarity[candidate[:, None], past]
correlation = np.array(
    [np.corrcoef(s, w)[0, 1] for s, w in zip(row_similarity, weights, strict=True)]
)
print(
    "correlation of weight and similarity, mean over test rows: "
    f"{np.nanmean(correlation):.2f}"
)

# Four rows, at the 1/8, 3/8, 5/8 and 7/8 quantiles of that correlation.
order = np.argsort(np.nan_to_num(correlation, nan=0.0))
rows = order[(len(order) * np.array([1, 3, 5, 7])) // 8]
fig, axes = plt.subplots(1, 4, figsize=(12, 3), sharey=True)
for ax, row in zip(axes, rows, strict=True):
    ax.scatter(row_similarity[row], weights[row])
    ax.set_title(f"test row {row}: item {candidate[row]}")
    ax.set_xlabel("similarity to the candidate")
axes[0].set_ylabel("attention weight")
fig.suptitle("Weights of a row's ten past items against their similarity")
fig.tight_layout()
plt.show()
