"""
=====================================
Which experts do the tasks use?
=====================================

Each task of an MMoE model has its own gate, a softmax over the experts. This
example fits :class:`~sk_mmoe.MultiTaskMMoEClassifier` on two versions of
the synthetic data of Ma et al. (2018): one where the two tasks are the same
(correlation 1.0) and one where they are unrelated (correlation 0.0), and
compares how the two tasks' gates use the experts, with the tools of
:mod:`sk_mmoe.inspection`.
"""

# %%
# Data and models
# ---------------
# :func:`~sk_mmoe.datasets.make_task_correlation` draws two binary tasks
# whose weight vectors have the given cosine similarity. We fit the same
# model, six experts of 16 units each, to a training set of each kind and
# keep a test set drawn from the same tasks to look at the gates.
import matplotlib.pyplot as plt

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import make_task_correlation
from sk_mmoe.inspection import (
    ExpertUtilizationDisplay,
    expert_utilization,
    gate_similarity,
)

correlations = [1.0, 0.0]
params = dict(
    n_experts=6,
    expert_hidden_layer_sizes=(16,),
    tower_hidden_layer_sizes=(8,),
    lr=3e-3,
    max_epochs=30,
)


def fit_on_correlation(correlation, seed):
    """Fit a model on fresh data; return it with its test set."""
    (X_train, Y_train), (X_test, Y_test) = make_task_correlation(
        (5000, 2000), correlation, n_features=20, random_state=seed
    )
    model = MultiTaskMMoEClassifier(random_state=seed, **params)
    return model.fit(X_train, Y_train), X_test, Y_test


models = {}
for correlation in correlations:
    model, X_test, Y_test = fit_on_correlation(correlation, seed=0)
    models[correlation] = (model, X_test)
    print(f"correlation {correlation}: test accuracy {model.score(X_test, Y_test):.3f}")

# %%
# Expert utilization
# ------------------
# :func:`~sk_mmoe.inspection.expert_utilization` averages each task's gate
# weights over the test set: one row per task, one column per expert, each
# row summing to 1. :class:`~sk_mmoe.inspection.ExpertUtilizationDisplay`
# draws it as a heat map. We use one color scale for both panels.
vmax = max(expert_utilization(m, X).max() for m, X in models.values())
fig, axes = plt.subplots(1, 2, figsize=(10, 3), layout="constrained")
for ax, (correlation, (model, X_test)) in zip(axes, models.items(), strict=True):
    disp = ExpertUtilizationDisplay.from_estimator(
        model, X_test, ax=ax, colorbar=False, im_kw={"vmax": vmax}
    )
    ax.set_title(f"Task correlation {correlation}")
fig.colorbar(disp.im_, ax=axes, label="mean gate weight")
plt.show()

# %%
# In this run, the two rows look alike when the tasks are the same and
# differ more when the tasks are unrelated. No expert is left unused, and
# no task concentrates its weight on a single expert: with six experts for
# two tasks, each gate spreads its weight over several of them.
#
# Gate similarity
# ---------------
# Averages can hide differences: two gates can use every expert equally
# often over the data set but never the same one for the same sample.
# :func:`~sk_mmoe.inspection.gate_similarity` compares the two gate
# distributions sample by sample (one minus their Jensen-Shannon distance,
# averaged over the samples): 1 means identical gates, 0 disjoint experts.
# One fit is one random draw of data and initial weights, so we repeat the
# comparison over three seeds.
for correlation in correlations:
    values = [gate_similarity(*models[correlation])[0, 1]]
    for seed in (1, 2):
        model, X_test, _ = fit_on_correlation(correlation, seed)
        values.append(gate_similarity(model, X_test)[0, 1])
    print(
        f"correlation {correlation}: gate similarity per seed "
        f"{', '.join(f'{v:.2f}' for v in values)}"
    )

# %%
# For every seed of this run, the gates of the two tasks are more similar
# when the tasks are identical than when they are unrelated: MMoE lets
# unrelated tasks draw on different experts. The separation is a tendency,
# not a sharp split. Even identical tasks do not get identical gates, since
# the two gates start from different random weights and nothing in the loss
# asks them to agree; and how far apart the gates end up varies from seed
# to seed. Gate similarity describes a fitted model, so compare it between
# models fitted with the same settings, over several seeds, before reading it
# as a property of the tasks.
