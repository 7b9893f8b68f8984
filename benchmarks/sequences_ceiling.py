"""How much of the click the history can explain, and how much a model
that knows the form of the signal learns of it.

On the log of ``benchmarks/sequences.py`` (20,000 rows of
:func:`sk_mmoe.datasets.make_recommendation_tasks` with
``history_length=10``; a quarter of the users held out):

* ceilings: the click AUC of the true logit, of the true logit without the
  history's term, and of the history's term alone (all rows); on the test
  rows, of the true largest and mean cosine between the candidate's topic
  and the past items' topics (the topics read from the generator);
* a model that knows the form of the signal: a logistic regression on an
  item bias and the mean, or the softmax-weighted (a soft maximum),
  dot product of learned item vectors (16 numbers, shared by the candidate
  and the past items), trained with Adam, 30 epochs, batches of 256, each
  past item dropped with probability 0.1, at 20,000 and 60,000 rows.

Usage::

    python benchmarks/sequences_ceiling.py            # 5 seeds, 2 for the model
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import sk_mmoe.datasets._history as history_module
from sk_mmoe.datasets import make_recommendation_tasks


def _log(n_samples, seed, weight=2.0):
    """The log, its scores, and the items' topics (the generator's first
    unit vectors)."""
    unit = history_module._unit
    seen = []

    def recording(vectors):
        seen.append(unit(vectors))
        return seen[-1]

    history_module._unit = recording
    try:
        X, Y, S = make_recommendation_tasks(
            n_samples,
            history_length=10,
            history_weight=weight,
            return_watch_time=False,
            return_scores=True,
            random_state=seed,
        )
    finally:
        history_module._unit = unit
    return X, Y, S, seen[0]


def _held_out(X, seed):
    users = X["user_id"].astype(int).to_numpy()
    rng = np.random.default_rng(seed)
    held = rng.permutation(np.unique(users))[: len(np.unique(users)) // 4]
    return np.isin(users, held)


def ceilings(seed):
    X, Y, S, topics = _log(20000, seed)
    _, _, S0, _ = _log(20000, seed, weight=0.0)
    y = Y["click"].to_numpy()
    full = S["click"].to_numpy()
    term = full - S0["click"].to_numpy()  # the history's term, plus a constant
    test = _held_out(X, seed)
    items = X["item_id"].astype(int).to_numpy()[test]
    past = np.array(X["history"].tolist())[test]
    cosine = np.einsum("rf,rhf->rh", topics[items], topics[past])
    return {
        "truth": roc_auc_score(y, full),
        "without_history": roc_auc_score(y, full - term),
        "history_alone": roc_auc_score(y, term),
        "test_max_cosine": roc_auc_score(y[test], cosine.max(1)),
        "test_mean_cosine": roc_auc_score(y[test], cosine.mean(1)),
    }


def known_form(n_samples, seed, pooling, lr=0.01, epochs=30, dim=16):
    """Test and train AUC of the model that knows the form of the signal."""
    X, Y, _, _ = _log(n_samples, seed)
    test = _held_out(X, seed)
    items = torch.tensor(X["item_id"].astype(int).to_numpy())
    past = torch.tensor(np.array(X["history"].tolist()))
    y = torch.tensor(Y["click"].to_numpy(), dtype=torch.float32)
    n_items = int(X["item_id"].cat.categories.size)
    torch.manual_seed(seed)
    vectors = torch.nn.Embedding(n_items, dim)
    torch.nn.init.normal_(vectors.weight, std=dim**-0.5)
    bias = torch.nn.Embedding(n_items, 1)
    torch.nn.init.zeros_(bias.weight)
    sharpness, gain, intercept = (
        torch.nn.Parameter(torch.tensor(v)) for v in (3.0, 1.0, 0.0)
    )
    params = [*vectors.parameters(), *bias.parameters(), sharpness, gain, intercept]
    optimizer = torch.optim.Adam(params, lr=lr)

    def logit(c, h, training=False):
        s = (vectors(h) * vectors(c)[:, None]).sum(2)
        dropped = (
            torch.rand(s.shape) < 0.1 if training else torch.zeros_like(s, dtype=bool)
        )
        if pooling == "mean":
            keep = (~dropped).float()
            pooled = (s * keep).sum(1) / keep.sum(1).clamp(min=1)
        else:
            w = torch.softmax((sharpness * s).masked_fill(dropped, -1e4), 1)
            pooled = (w * s).sum(1)
        return intercept + bias(c).squeeze(1) + gain * pooled

    train_rows = torch.tensor(np.flatnonzero(~test))
    for _ in range(epochs):
        for batch in train_rows[torch.randperm(len(train_rows))].split(256):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logit(items[batch], past[batch], True), y[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        scores = logit(items, past).numpy()
    return roc_auc_score(y[test], scores[test]), roc_auc_score(y[~test], scores[~test])


def main():
    torch.set_num_threads(1)
    rows = [ceilings(seed) for seed in range(5)]
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(
            f"{key:>18}: {np.mean(values):.3f} ({min(values):.3f} to {max(values):.3f})"
        )
    for n_samples in (20000, 60000):
        for pooling in ("mean", "soft maximum"):
            results = [known_form(n_samples, seed, pooling) for seed in range(2)]
            text = ", ".join(f"test {t:.3f} train {r:.3f}" for t, r in results)
            print(f"known form, {pooling}, {n_samples} rows: {text}", flush=True)


if __name__ == "__main__":
    main()
