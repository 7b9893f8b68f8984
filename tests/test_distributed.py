"""Data-parallel training: 2 CPU processes (gloo) against a single process.

One ``torch.multiprocessing.spawn`` of two ranks runs every scenario (a
process group costs seconds to start); the single-process references are
fitted in the test process. Parity is float32 rounding: the ranks add the
rows of a global batch in another order than one process does.
"""

from __future__ import annotations

import datetime
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sk_mmoe import MultiTaskMMoEClassifier, load_model, save_model
from sk_mmoe._fitting.batches import ArrayBatches, BatchIterator, ShardTargets
from sk_mmoe._fitting.distributed import World, current_world, single_process
from sk_mmoe.nn.network import MMoENetwork

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

if "fork" not in torch.multiprocessing.get_all_start_methods():
    pytest.skip("the ranks are forked processes", allow_module_level=True)

WORLD_SIZE = 2
# Largest |difference| allowed between the 2-process and the 1-process fits
# (weights and probabilities): float32 rounding, measured ~1e-7 here.
TOLERANCE = 1e-5
# Probabilities and losses compound the rounding of every weight on their path.
OUTPUT_TOLERANCE = 1e-4


def make_data(n=150, missing=0.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    Y = np.stack(
        [(X[:, 0] + X[:, 1] > 0), np.digitize(X[:, 2] - X[:, 3], [-0.7, 0.7])],
        axis=1,
    ).astype(np.float64)
    if missing:
        Y[rng.random(Y.shape) < missing] = np.nan
        Y[np.isnan(Y).all(axis=1), 0] = 1.0
    weights = rng.uniform(0.5, 2.0, size=n)
    return X, Y, weights


def make_estimator(**params):
    # batch_size 25: the ranks get 12 and 13 rows of every global batch.
    base = dict(
        n_experts=3,
        expert_hidden_layer_sizes=(8,),
        tower_hidden_layer_sizes=(4,),
        batch_size=25,
        max_epochs=3,
        missing_label=np.nan,
        n_threads=1,
        # Dropout draws other masks on every rank: parity holds without it.
        dropout=0.0,
        gate_dropout=0.0,
        random_state=0,
    )
    return MultiTaskMMoEClassifier(**{**base, **params})


# name -> (estimator parameters, data parameters, fit twice with partial_fit)
SCENARIOS = {
    "labelled_sgd": ({"optimizer": "sgd", "lr": 0.1}, {}, True),
    "missing_weighted_uncertainty": (
        {"task_weights": "uncertainty", "lr": 0.01},
        {"missing": 0.4},
        False,
    ),
    "early_stopping": (
        {
            "early_stopping": True,
            "validation_fraction": 0.2,
            "n_iter_no_change": 2,
            "tol": 0.05,
            "max_epochs": 40,
            "lr": 0.01,
        },
        {"missing": 0.2},
        False,
    ),
    # Every member's rows in the loss: each task's labelled count scales too.
    "ensemble_missing": ({"ensemble_size": 2, "lr": 0.01}, {"missing": 0.3}, False),
}


def fit_scenario(name):
    params, data, again = SCENARIOS[name]
    X, Y, weights = make_data(**data)
    sample_weight = weights if "weighted" in name else None
    estimator = make_estimator(**params).fit(X, Y, sample_weight=sample_weight)
    if again:
        estimator.partial_fit(X, Y)
    return estimator


def summary(estimator):
    X, _, _ = make_data()
    return {
        "weights": torch.cat(
            [p.detach().reshape(-1) for p in estimator.module_.parameters()]
        ).numpy(),
        "proba": np.concatenate(estimator.predict_proba(X), axis=1),
        # Everything but the epochs' durations.
        "history": [
            {k: v for k, v in epoch.items() if k != "dur"}
            for epoch in estimator.history_
        ],
        "module_type": type(estimator.module_),
    }


def _worker(rank, store, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results = {"world": current_world()}
        for name in SCENARIOS:
            estimator = fit_scenario(name)
            results[name] = summary(estimator)
            if name == "labelled_sgd" and rank == 0:
                save_model(estimator, out_dir / "model.skmmoe")
        with single_process():
            results["local_world"] = current_world()
        # Rank 1 has one feature more: every rank must refuse, none hang.
        X, Y, _ = make_data()
        if rank == 1:
            X = np.hstack([X, X[:, :1]])
        try:
            make_estimator().fit(X, Y)
        except ValueError as exc:
            results["mismatch"] = str(exc)
        # Wide sparse inputs (the sparse projection) are refused on every rank.
        X_wide = sp.random(40, 1500, density=0.01, format="csr", random_state=0)
        try:
            make_estimator().fit(X_wide, Y[:40])
        except ValueError as exc:
            results["sparse_projection"] = str(exc)
        # Still in step after the refusals: a collective completes.
        flag = torch.ones(1)
        dist.all_reduce(flag)
        results["after_mismatch"] = float(flag)
        with open(out_dir / f"rank{rank}.pkl", "wb") as file:
            pickle.dump(results, file)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, single):
    # Forked after the single-process fits, the ranks start with torch and
    # sk_mmoe imported and warm (a spawned interpreter takes seconds more).
    out_dir = tmp_path_factory.mktemp("ddp")
    torch.multiprocessing.start_processes(
        _worker,
        args=(out_dir / "store", out_dir),
        nprocs=WORLD_SIZE,
        join=True,
        start_method="fork",
    )
    results = []
    for rank in range(WORLD_SIZE):
        with open(out_dir / f"rank{rank}.pkl", "rb") as file:
            results.append(pickle.load(file))
    return results, out_dir


@pytest.fixture(scope="module")
def single():
    return {name: summary(fit_scenario(name)) for name in SCENARIOS}


def test_every_rank_saw_the_process_group(ranks):
    results, _ = ranks
    assert [r["world"].rank for r in results] == [0, 1]
    assert all(r["world"].size == WORLD_SIZE for r in results)
    assert all(r["local_world"] is None for r in results)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_ranks_end_with_identical_weights(ranks, name):
    results, _ = ranks
    first, second = (r[name] for r in results)
    # DDP all-reduced the gradients: the ranks stay equal bit for bit.
    np.testing.assert_array_equal(first["weights"], second["weights"])
    np.testing.assert_array_equal(first["proba"], second["proba"])
    assert first["history"] == second["history"]
    # The fitted module is the plain network, not the DDP wrapper.
    assert first["module_type"] is MMoENetwork


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_matches_a_single_process_fit(ranks, single, name):
    """Fully labelled, missing labels with sample weights and a learned
    weighting, early stopping: the global batch's loss is reproduced exactly
    (each task averaged over its labelled rows of the whole global batch),
    so only float32 rounding separates the fits."""
    results, _ = ranks
    ddp, ref = results[0][name], single[name]
    assert len(ddp["history"]) == len(ref["history"])
    np.testing.assert_allclose(ddp["weights"], ref["weights"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(
        ddp["proba"], ref["proba"], rtol=0, atol=OUTPUT_TOLERANCE
    )
    for got, expected in zip(ddp["history"], ref["history"], strict=True):
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, abs=OUTPUT_TOLERANCE), key
            else:
                assert got[key] == value, key


def test_early_stopping_agrees_on_every_rank(ranks, single):
    results, _ = ranks
    histories = [r["early_stopping"]["history"] for r in results]
    valid = [[epoch["valid_loss"] for epoch in h] for h in histories]
    assert valid[0] == valid[1]  # Bit for bit: stopping cannot diverge.
    n_epochs = len(single["early_stopping"]["history"])
    assert len(histories[0]) == n_epochs < SCENARIOS["early_stopping"][0]["max_epochs"]


def test_rank_zero_saved_a_model_that_predicts_like_the_ranks(ranks):
    results, out_dir = ranks
    model = load_model(out_dir / "model.skmmoe")
    X, _, _ = make_data()
    proba = np.concatenate(model.predict_proba(X), axis=1)
    np.testing.assert_array_equal(proba, results[0]["labelled_sgd"]["proba"])


def test_ranks_with_different_data_shapes_fail_clearly(ranks):
    results, _ = ranks
    for result in results:
        message = result["mismatch"]
        assert "every process must pass the same X" in message
        assert "n_features: rank 0: 5, rank 1: 6" in message
        assert result["after_mismatch"] == WORLD_SIZE


def test_wide_sparse_inputs_are_refused_clearly(ranks):
    results, _ = ranks
    for result in results:
        assert "does not support sparse inputs" in result["sparse_projection"]


def test_missing_labels_make_the_mean_of_slice_means_wrong():
    """Why the loss is scaled by global counts: with missing labels, the
    average of the two slices' per-task means is not the global batch's
    mean, while the counted shares average to it exactly."""
    X, Y, _ = make_data(missing=0.4)
    data = ArrayBatches(X, Y.astype(np.float32))
    loss = torch.nn.functional.binary_cross_entropy_with_logits
    logits = torch.from_numpy(X[:, 0])

    def task0(positions):
        target = torch.from_numpy(Y[positions, 0]).float()
        labelled = ~torch.isnan(target)
        rows = torch.from_numpy(np.asarray(positions))[labelled]
        return loss(logits[rows], target[labelled], reduction="sum"), labelled.sum()

    slices = [
        next(iter(BatchIterator(data, 25, shuffle=True, seed=3, rank=r, world_size=2)))
        for r in range(2)
    ]
    whole = next(iter(BatchIterator(data, 25, shuffle=True, seed=3)))
    order = np.random.default_rng(3).permutation(len(X))[:25]
    positions = [order[:12], order[12:]]
    # The slices partition the global batch, and carry its labelled counts.
    np.testing.assert_array_equal(
        torch.cat([s[0] for s in slices]).numpy(), whole[0].numpy()
    )
    for s in slices:
        assert isinstance(s[1], ShardTargets)
        np.testing.assert_array_equal(
            s[1].counts.numpy(), (~np.isnan(Y[order])).sum(axis=0)
        )
    (s0, c0), (s1, c1) = task0(positions[0]), task0(positions[1])
    total, count = task0(order)
    assert c0 != c1
    global_mean = total / count
    naive = (s0 / c0 + s1 / c1) / 2
    shares = (2 * s0 / count + 2 * s1 / count) / 2
    assert abs(float(naive - global_mean)) > 1e-3
    assert float(shares) == pytest.approx(float(global_mean), abs=1e-6)


def test_a_single_process_never_shards():
    assert current_world() is None
    X, Y, _ = make_data()
    batches = list(BatchIterator(ArrayBatches(X, Y), 25))
    assert not any(isinstance(b[1], ShardTargets) for b in batches)
    with pytest.raises(ValueError, match="rank"):
        BatchIterator(ArrayBatches(X, Y), 25, rank=2, world_size=2)


def test_cuda_local_rank_beyond_the_visible_gpus_is_a_clear_error(monkeypatch):
    import sk_mmoe._fitting.distributed as distributed

    monkeypatch.setattr(distributed, "current_world", lambda: World(rank=3, size=4))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(ValueError, match=r"LOCAL_RANK=3 .* 1 visible CUDA"):
        distributed.local_device(torch.device("cuda"))
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda", 0)
    # An explicit index is kept: that is how ranks share one GPU.
    assert distributed.local_device(torch.device("cuda:0")) == torch.device("cuda", 0)
