"""
=================================================
A ranker trained on its own log: position bias
=================================================

A recommender learns from the log of the ranker before it, and people click
the top slots more whatever they hold. A click model trained on that log
learns that whatever the old ranker put on top is good. YouTube's
multi-task ranker (Zhao et al., 2019) feeds the position to a *shallow
tower* whose logit is added to the main model's during training and left
out at serving. This example does the same with ``bias_features``, judges
the rankings per request against the true relevance with
:func:`~sk_mmoe.metrics.gauc_score` and
:func:`~sk_mmoe.metrics.ndcg_at_k_score`, and ranks by a combined score,
``rank_score``.
"""

# %%
# A biased log
# ------------
# :func:`~sk_mmoe.datasets.make_recommendation_tasks` with ``position_bias``
# shows ``n_slots`` candidates per request in the order of an old ranker that
# favoured fresh items, and lowers the click logit of slot ``k`` by
# ``position_bias * log2(1 + k)``. The ``click`` score it returns is the
# item's own relevance, without the slot.
import numpy as np

from sk_mmoe.datasets import make_recommendation_tasks

N_SLOTS = 10
X, Y, S = make_recommendation_tasks(
    15000,
    position_bias=1.0,
    n_slots=N_SLOTS,
    return_watch_time=False,
    return_scores=True,
    random_state=0,
)
Y = Y[["click", "rated_highly"]]
request = np.arange(len(X)) // N_SLOTS
print(Y.click.groupby(X.position).mean().round(3).to_string())

# %%
# Train on the first 80% of the requests, rank the candidates of the others.
train = request < 0.8 * request.max()
X_train, Y_train = X[train], Y[train]
X_test, groups = X[~train], request[~train]
relevance = S.click.to_numpy()[~train]

# %%
# Three click models
# ------------------
# (a) ignores the position; (b) reads it as an ordinary feature and predicts
# every candidate as if shown in the top slot; (c) puts it in the bias tower.
from sk_mmoe import MultiTaskMMoEClassifier

params = dict(max_epochs=8, early_stopping=False, random_state=0)
models = {
    "(a) no position": MultiTaskMMoEClassifier(**params).fit(
        X_train.drop(columns="position"), Y_train
    ),
    "(b) position as a feature": MultiTaskMMoEClassifier(**params).fit(
        X_train, Y_train
    ),
    "(c) bias tower": MultiTaskMMoEClassifier(bias_features=["position"], **params).fit(
        X_train, Y_train
    ),
}
inputs = {
    "(a) no position": X_test.drop(columns="position"),
    "(b) position as a feature": X_test.assign(position=0),
    "(c) bias tower": X_test,  # the tower ignores the position here
}

# %%
# Per-request ranking quality against the truth
# ---------------------------------------------
# The relevant items of a request, for the AUC, are those above its median
# true relevance; the NDCG's gains are the position-free click probabilities.
from sk_mmoe.metrics import gauc_score, ndcg_at_k_score

median = np.array([np.median(relevance[groups == g]) for g in np.unique(groups)])
relevant = (relevance > median[groups - groups.min()]).astype(int)
gains = 1 / (1 + np.exp(-relevance))
for name, model in models.items():
    click = model.predict_proba(inputs[name])[0][:, 1]
    auc = gauc_score(relevant, click, groups=groups)
    ndcg = ndcg_at_k_score(gains, click, groups=groups, k=10)
    print(f"{name:28s} per-request AUC {auc:.3f}   NDCG@10 {ndcg:.3f}")

# %%
# What the tower learned
# ----------------------
# The click logit the tower adds in each slot, against the slot's true
# effect. Both start at slot 0.
import matplotlib.pyplot as plt
import torch

tower = models["(c) bias tower"].net_.module_.bias_tower.eval()
with torch.no_grad():
    added = tower(torch.arange(N_SLOTS, dtype=torch.float32).view(-1, 1))
learned = (added[:, 0, 1] - added[:, 0, 0]).numpy()
slots = np.arange(N_SLOTS)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(slots, -np.log2(1 + slots), "k--", label="true effect")
ax.plot(slots, learned - learned[0], "o-", label="bias tower")
ax.set_xlabel("slot (0 = top)")
ax.set_ylabel("click logit vs. slot 0")
ax.legend()
fig.tight_layout()

# %%
# One score to rank by
# --------------------
# The ranker's final score weighs the tasks by hand: here the probability of
# a click plus that of a high rating. ``rank_score`` computes it, and
# ``export_onnx(model, path, rank_weights=...)`` serves it as one output.
weights = {"click": 1.0, "rated_highly": 1.0}
combined = models["(c) bias tower"].rank_score(X_test, weights)
utility = gains + 1 / (1 + np.exp(-S.rated_highly.to_numpy()[~train]))
print("NDCG@10 of the combined score on the true utility:")
print(round(ndcg_at_k_score(utility, combined, groups=groups), 3))
