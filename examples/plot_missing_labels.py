"""
===========================================
Learning a sparsely labelled task jointly
===========================================

In practice some tasks are labelled for only a small fraction of the rows (a
purchase is observed only after a checkout, a survey answer for few users).
Entries of ``Y`` equal to ``missing_label`` (``-1`` by default, or ``NaN``)
are left out of that task's loss only, so such a task can be trained jointly
with a densely labelled, related task, whose labels shape the shared experts.

Here the second task keeps its label on 2% of the training rows. We compare
its test ROC AUC when it is learnt

* jointly with the fully labelled first task, and
* alone, from its few labelled rows.
"""

# %%
# Data: a dense task and a sparse task
# ------------------------------------
import numpy as np

from sk_mmoe.datasets import make_task_correlation

(X_train, Y_train), (X_test, Y_test) = make_task_correlation(
    n_samples=(5000, 2000), correlation=0.9, n_features=20, random_state=0
)

rng = np.random.default_rng(0)
labelled = rng.random(len(Y_train)) < 0.02
Y_sparse = Y_train.copy()
Y_sparse[~labelled, 1] = -1  # -1 = no label for task 1
print(f"task 0: {np.sum(Y_sparse[:, 0] != -1)} labelled rows")
print(f"task 1: {np.sum(Y_sparse[:, 1] != -1)} labelled rows")

# %%
# Fit both models
# ---------------
# The joint model sees every row; rows without a task-1 label only train task
# 0 and the shared experts. The single-task model is the same estimator fitted
# on a 1-D ``y``: the labelled rows of task 1. It sees far fewer rows per
# epoch, so it gets smaller batches and more epochs.
from sklearn.metrics import roc_auc_score

from sk_mmoe import MultiTaskMMoEClassifier

params = dict(
    n_experts=4,
    expert_hidden_layer_sizes=(16,),
    tower_hidden_layer_sizes=(8,),
    lr=3e-3,
    random_state=0,
)
joint = MultiTaskMMoEClassifier(max_epochs=30, **params)
joint.fit(X_train, Y_sparse)

alone = MultiTaskMMoEClassifier(max_epochs=100, batch_size=16, **params)
alone.fit(X_train[labelled], Y_train[labelled, 1])

auc_joint = roc_auc_score(Y_test[:, 1], joint.predict_proba(X_test)[1][:, 1])
auc_alone = roc_auc_score(Y_test[:, 1], alone.predict_proba(X_test)[:, 1])
auc_dense = roc_auc_score(Y_test[:, 0], joint.predict_proba(X_test)[0][:, 1])
print(f"task 1 test ROC AUC, trained jointly with task 0: {auc_joint:.3f}")
print(f"task 1 test ROC AUC, trained alone:               {auc_alone:.3f}")
print(f"task 0 test ROC AUC (dense task, joint model):    {auc_dense:.3f}")

# %%
# For a single task (1-D ``y``), ``predict_proba`` returns a single array, as
# for any scikit-learn classifier; for several tasks it returns one array per
# task.

# %%
# Plot
# ----
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3.5))
bars = ax.bar(
    ["task 1 alone", "task 1 jointly\nwith task 0"],
    [auc_alone, auc_joint],
    color=["tab:gray", "tab:blue"],
)
ax.bar_label(bars, fmt="%.3f")
ax.set_ylabel("test ROC AUC of task 1")
ax.set_ylim(0.5, 1.0)
ax.set_title("Task 1 labelled on 2% of the training rows")
fig.tight_layout()
plt.show()
