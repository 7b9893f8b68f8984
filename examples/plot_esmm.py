"""
==============================================================
Conversion rates over the entire space (ESMM)
==============================================================

A purchase can only happen after a click, so its label exists on the clicked
impressions only. A conversion model trained on those rows learns
P(purchase | click, x) from a biased sample (users click what they like) and
is then asked to score every impression, clicked or not: the *sample
selection bias* that the Entire Space Multi-task Model (ESMM, Ma et al.,
SIGIR 2018) removes. With ``conditional_on={"purchase": "click"}`` the
purchase tower still learns the conditional rate, but is trained on every
row through the joint probability

.. math::

    P(\\text{click and purchase} \\mid x) = P(\\text{click} \\mid x) \\cdot
    P(\\text{purchase} \\mid \\text{click}, x),

whose label (a purchase, or none) every impression has.

Here ``rated_highly`` of :func:`~sk_mmoe.datasets.make_recommendation_tasks`
plays the purchase: with ``rate_fraction=1`` it is labelled on every clicked
row and missing elsewhere, and the generator returns its true conditional
rate, so that both models can be judged on *every* test impression.
"""

# %%
# Data: clicks, and purchases after a click
# -----------------------------------------
import numpy as np
from scipy.special import expit

from sk_mmoe.datasets import make_recommendation_tasks

X, Y, scores = make_recommendation_tasks(
    12_000,
    rate_fraction=1.0,
    return_watch_time=False,
    return_scores=True,
    random_state=0,
)
Y = Y[["click", "rated_highly"]].rename(columns={"rated_highly": "purchase"})
true_rate = expit(scores["rated_highly"].to_numpy())  # P(purchase | click, x)
X_train, Y_train, X_test = X[:8000], Y[:8000], X[8000:]
rate_test = true_rate[8000:]
print(Y_train.notna().sum().to_dict())

# %%
# Fit ESMM and the naive model
# ----------------------------
# The same estimator and training for both; the naive model sees the clicked
# rows only. ``predict_conditional_proba`` gives ESMM's conversion rate,
# ``predict_proba`` the joint probability of a click and a purchase.
from sk_mmoe import MultiTaskMMoEClassifier

params = dict(max_epochs=10, early_stopping=False, lr=3e-3, random_state=0)
esmm = MultiTaskMMoEClassifier(**params, conditional_on={"purchase": "click"})
esmm.fit(X_train, Y_train)
clicked = (Y_train["click"] == 1).to_numpy()
naive = MultiTaskMMoEClassifier(**params)
naive.fit(X_train[clicked], Y_train["purchase"][clicked].astype(int))

rates = {
    "ESMM": esmm.predict_conditional_proba(X_test)[1][:, 1],
    "clicked rows only": naive.predict_proba(X_test)[:, 1],
}
joint = esmm.predict_proba(X_test)
np.testing.assert_allclose(joint[1][:, 1], joint[0][:, 1] * rates["ESMM"], rtol=1e-5)

# %%
# Judge both on every test impression
# -----------------------------------
# Against the true conversion rate: its rank correlation with the predicted
# one, and the mean Kullback-Leibler divergence from it (0 for a perfect
# model). ``benchmarks/esmm.py`` repeats this on larger data over five seeds.
from scipy.stats import spearmanr


def kl_divergence(p, q):
    q = np.clip(q, 1e-7, 1 - 1e-7)
    return np.mean(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))


for name, rate in rates.items():
    print(
        f"{name:>18}: rank correlation "
        f"{spearmanr(rate, rate_test).statistic:.3f}, "
        f"KL {kl_divergence(rate_test, rate):.3f}, "
        f"mean rate {rate.mean():.3f} (true {rate_test.mean():.3f})"
    )

# %%
# The naive model learns its rate where users like the items (they clicked
# them) and over-predicts the unclicked impressions: its mean rate is above
# the true one. ESMM's conditional rate, trained on every impression, is
# the better calibrated over the entire space (lower KL divergence). It does
# not rank the impressions better here: an unclicked impression's joint
# label is explained by the missing click and teaches the conversion tower
# little, so its ranking is learned from the clicked rows, as the naive
# model's is. The figures of ``benchmarks/esmm.py`` (five seeds, larger
# data) are in :ref:`benchmark_esmm`.
#
# The predicted against the true conversion rate
# ----------------------------------------------
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
for ax, (name, rate) in zip(axes, rates.items(), strict=True):
    ax.scatter(rate_test, rate, s=2, alpha=0.3)
    ax.plot([0, 1], [0, 1], color="black", linewidth=1)
    ax.set_title(name)
    ax.set_xlabel("true P(purchase | click, x)")
axes[0].set_ylabel("predicted")
fig.tight_layout()
plt.show()
