"""Users' histories for :func:`sk_mmoe.datasets.make_recommendation_tasks`.

Every item has a topic, a unit vector of ``n_factors`` numbers. Every user
holds :data:`N_INTERESTS` interests (unit vectors too), and their history is
``history_length`` items, each drawn by picking one of the interests at
random and then an item with probability proportional to
``exp(KAPPA * cos(topic, interest))``. A row's *history similarity* is the
largest cosine between the candidate's topic and the topics of the user's
past items, standardised over the rows: the single most similar past item
carries the signal, since the other interests' items are unlike the
candidate.
"""

from __future__ import annotations

import numpy as np

__all__ = ["N_INTERESTS", "history_similarity"]

#: Interests per user.
N_INTERESTS = 3
#: Concentration of a user's past items around their interests.
KAPPA = 6.0


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def history_similarity(
    rng: np.random.RandomState,
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    n_factors: int,
    history_length: int,
) -> tuple[list[list[int]], np.ndarray]:
    """Each row's history (the user's past item IDs, oldest first) and its
    standardised history similarity."""
    topics = _unit(rng.standard_normal((n_items, n_factors)))
    interests = _unit(rng.standard_normal((n_users * N_INTERESTS, n_factors)))
    affinity = np.exp(KAPPA * (interests @ topics.T))
    proba = affinity / affinity.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(proba, axis=1)
    picked = rng.randint(N_INTERESTS, size=(n_users, history_length))
    rows = np.arange(n_users)[:, None] * N_INTERESTS + picked
    draws = rng.random_sample((n_users, history_length))
    past = np.minimum(
        (cumulative[rows] < draws[..., None]).sum(axis=2), n_items - 1
    )  # (n_users, history_length) item IDs
    similarity = np.einsum("rf,rhf->rh", topics[items], topics[past[users]]).max(1)
    similarity = (similarity - similarity.mean()) / (similarity.std() or 1.0)
    return past[users].tolist(), similarity
