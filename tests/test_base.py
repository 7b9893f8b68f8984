"""Behaviour shared by the three estimators (sk_mmoe._base).

Every test runs on MultiTaskMMoEClassifier, MultiTaskMMoERegressor and
MultiTaskMMoE, each on data of its kind.
"""

import copy
import pickle
import signal

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, EarlyStopping

from sk_mmoe import MultiTaskMMoE, MultiTaskMMoEClassifier, MultiTaskMMoERegressor
from sk_mmoe._building import step_params
from sk_mmoe.nn.network import GATES, BatchedLinear

SMALL = dict(
    n_experts=2,
    expert_hidden_layer_sizes=(8,),
    tower_hidden_layer_sizes=(4,),
    batch_size=32,
    max_epochs=2,
    lr=0.01,
    random_state=0,
)

KINDS = ["classifier", "regressor", "mixed"]
ESTIMATORS = {
    "classifier": MultiTaskMMoEClassifier,
    "regressor": MultiTaskMMoERegressor,
    "mixed": MultiTaskMMoE,
}


def _make_data(kind, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    click = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    like = (X[:, 1] - X[:, 2] > 0).astype(int)
    watch = 30 + 10 * X[:, 0] + 5 * X[:, 3] + rng.normal(size=n)
    if kind == "classifier":
        Y = np.column_stack([click, like])
    elif kind == "regressor":
        Y = np.column_stack([watch, X[:, 1] * X[:, 2]])
    else:
        Y = np.column_stack([click, watch])
    return X, Y


def _make(kind, **params):
    return ESTIMATORS[kind](**{**SMALL, **params})


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def data(kind):
    return _make_data(kind)


def _fitted_attributes(est):
    return sorted(k for k in vars(est) if k.endswith("_") and not k.startswith("_"))


def _state(est):
    """Everything a fitted model is: learned attributes, weights, optimizer."""
    state = {
        k: copy.deepcopy(getattr(est, k))
        for k in _fitted_attributes(est)
        if k not in ("net_", "module_")
    }
    state["weights"] = {k: v.clone() for k, v in est.module_.state_dict().items()}
    state["criterion"] = {
        k: v.clone() for k, v in est.net_.criterion_.state_dict().items()
    }
    state["optimizer"] = copy.deepcopy(est.net_.optimizer_.state_dict())
    state["net"] = est.net_
    return state


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    assert a["net"] is b["net"]
    for key in a:
        if key in ("weights", "criterion"):
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), name
        elif key == "optimizer":
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        elif key == "history_":
            assert len(a[key]) == len(b[key])
        elif key != "net":
            np.testing.assert_equal(a[key], b[key])


def _assert_unfitted(est):
    assert _fitted_attributes(est) == []
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


def _outputs(est, X):
    """All of a model's predictions as one float array."""
    parts = [np.asarray(est.predict(X), dtype=np.float64).ravel()]
    if hasattr(est, "predict_proba"):
        proba = est.predict_proba(X)
        for p in proba if isinstance(proba, list) else [proba]:
            if p is not None:
                parts.append(p.ravel())
    return np.concatenate(parts)


# ---------------------------------------------------------------------------
# The common contract
# ---------------------------------------------------------------------------


def test_fit_predict_and_fitted_attributes(kind, data):
    X, Y = data
    est = _make(kind).fit(X, Y)
    assert est.n_features_in_ == 5 and est.n_outputs_ == 2
    assert est.task_names_ == ["task0", "task1"]
    assert len(est.task_types_) == 2 and est.n_iter_ == len(est.history_) == 2
    assert est.task_weights_.shape == (2,) and est.task_weights_.dtype == np.float64
    np.testing.assert_array_equal(est.task_weights_, [1.0, 1.0])
    assert est.predict(X).shape == (120, 2)
    gates = est.gate_weights(X[:7])
    assert gates.shape == (7, 2, 2)
    np.testing.assert_allclose(gates.sum(-1), 1.0, atol=1e-6)
    for epoch in est.history_:
        for key in ("train_loss", "train_loss_task0", "train_loss_task1"):
            assert np.isfinite(epoch[key])
    assert np.isfinite(est.score(X, Y))


def test_not_fitted(kind):
    est = _make(kind)
    for method in ("predict", "gate_weights"):
        with pytest.raises(NotFittedError):
            getattr(est, method)(np.zeros((2, 5)))


def test_clone_and_pickle(kind, data):
    X, Y = data
    est = _make(kind).fit(X, Y)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(_outputs(est, X), _outputs(restored, X))
    fresh = clone(est)
    _assert_unfitted(fresh)
    assert fresh.get_params() == est.get_params()


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize(
    "architecture",
    [
        {},
        # Narrow layers: products smaller than torch's threshold for BLAS.
        dict(expert_hidden_layer_sizes=(2,), tower_hidden_layer_sizes=(1,)),
        dict(n_levels=2, n_task_experts=1, tower_hidden_layer_sizes=()),
    ],
)
def test_a_rows_prediction_does_not_depend_on_the_other_rows(
    kind, data, architecture, n_threads
):
    X, Y = data
    model = _make(kind, max_epochs=1, n_threads=n_threads, **architecture).fit(X, Y)

    def rows(X):
        proba = model.predict_proba(X) if hasattr(model, "predict_proba") else []
        parts = [model.predict(X), model.gate_weights(X)]
        parts += [
            p for p in (proba if isinstance(proba, list) else [proba]) if p is not None
        ]
        return np.column_stack(
            [np.asarray(p, dtype=np.float64).reshape(len(X), -1) for p in parts]
        )

    # Prediction pads the rows it evaluates so that, on most CPUs, one row
    # alone gets exactly what it gets in a batch; but BLAS libraries may pick
    # another kernel for another number of rows (seen on AMD EPYC with PLE's
    # three-output gates), which moves a value by a float32 rounding. The
    # guarantee is agreement to float32 precision, scikit-learn's own
    # subset-invariance tolerance.
    every = rows(X)
    for subset in ([0], [3], [5, 1], list(range(7, 40)), list(range(100, 120))):
        np.testing.assert_allclose(rows(X[subset]), every[subset], rtol=1e-6, atol=1e-7)


def test_reproducible_with_random_state(kind, data):
    X, Y = data
    a = _make(kind, dropout=0.2).fit(X, Y)
    b = _make(kind, dropout=0.2).fit(X, Y)
    np.testing.assert_array_equal(_outputs(a, X), _outputs(b, X))
    c = _make(kind, dropout=0.2, random_state=1).fit(X, Y)
    assert not np.array_equal(_outputs(a, X), _outputs(c, X))


@pytest.mark.parametrize(
    "options",
    [
        dict(gate="dselect_k", gate_k=1, gate_temperature=0.5),
        dict(expert_activation="silu", expert_normalization="layer"),
        dict(ensemble_size=3, n_task_experts=1, n_levels=2, gate_balance=0.5),
    ],
)
def test_gate_options_fit_predict_and_reproduce(kind, data, options):
    X, Y = data
    a = _make(kind, dropout=0.2, gate_dropout=0.1, **options).fit(X, Y)
    b = _make(kind, dropout=0.2, gate_dropout=0.1, **options).fit(X, Y)
    np.testing.assert_array_equal(_outputs(a, X), _outputs(b, X))
    assert np.isfinite(_outputs(a, X)).all()
    gates = a.gate_weights(X[:7])
    assert gates.shape[:2] == (7, 2)
    np.testing.assert_allclose(gates.sum(-1), 1.0, atol=1e-6)
    assert np.isfinite(a.score(X, Y))


def test_gate_balance_penalty_is_in_the_training_loss(kind, data):
    X, Y = data

    def penalty(est):
        # train_loss is the weighted sum of the task losses plus the penalty.
        epoch = est.history_[-1]
        return (
            epoch["train_loss"] - epoch["train_loss_task0"] - epoch["train_loss_task1"]
        )

    assert penalty(_make(kind).fit(X, Y)) == pytest.approx(0, abs=1e-5)
    assert penalty(_make(kind, gate_balance=100.0).fit(X, Y)) > 1e-4


def test_refit_trains_on_every_row_for_the_best_epoch_count(kind, data):
    X, Y = data
    params = dict(
        early_stopping=True, batch_size=10, max_epochs=6, n_iter_no_change=2, lr=0.03
    )
    stopped = _make(kind, **params).fit(X, Y)
    best = dict(stopped.net_.callbacks_)["early_stopping"].best_epoch_
    refitted = _make(kind, refit=True, **params).fit(X, Y)
    assert refitted.n_iter_ == best
    assert "early_stopping" not in dict(refitted.net_.callbacks_)
    # Every row trains: 12 batches of 10, not the 11 of the 108 kept rows.
    assert stopped.history_[0]["train_batch_count"] == 11
    assert refitted.history_[0]["train_batch_count"] == 12
    assert all("valid_loss" not in epoch for epoch in refitted.history_)
    # Without early stopping refit does nothing.
    plain = _make(kind).fit(X, Y)
    np.testing.assert_array_equal(
        _outputs(plain, X), _outputs(_make(kind, refit=True).fit(X, Y), X)
    )


def test_sparse_input_gives_the_dense_model(kind, data):
    sp = pytest.importorskip("scipy.sparse")
    X, Y = data
    X = np.where(np.abs(X) < 0.5, 0, X).astype(np.float32)
    # Below the sparse projection's width, sparse batches are densified: the
    # columns are scaled and embedded as the dense copy's are.
    dense = _make(kind).fit(X, Y)
    sparse = _make(kind).fit(sp.csr_matrix(X), Y)
    assert sparse.module_.scaling is not None
    assert sparse.module_.embedding.numeric_embedding is not None
    np.testing.assert_array_equal(
        _outputs(dense, X), _outputs(sparse, sp.csr_matrix(X))
    )
    # Also with rows of weight 0 left out of the scaling statistics.
    weights = np.arange(len(X)) % 3 > 0
    np.testing.assert_array_equal(
        _outputs(_make(kind).fit(X, Y, sample_weight=weights), X),
        _outputs(_make(kind).fit(sp.csr_matrix(X), Y, sample_weight=weights), X),
    )


def test_robust_statistics_of_a_sparse_matrix_are_the_dense_ones():
    sp = pytest.importorskip("scipy.sparse")
    from sk_mmoe._building import _robust_statistics

    # More columns than one densified block, some all zero.
    X = sp.random(50, 150, density=0.3, format="csr", random_state=0)
    X = sp.csr_matrix(X.toarray() * np.linspace(-2, 5, 150))
    for sparse, dense in zip(
        _robust_statistics(X, 0), _robust_statistics(X.toarray(), 0), strict=True
    ):
        np.testing.assert_array_equal(sparse.numpy(), dense.numpy())


def test_numeric_scaling_is_robust_and_inside_the_network(kind, data):
    X, Y = data
    # A heavy-tailed column: scaled by its median and quartiles, then clipped.
    X = X.copy()
    X[:, 0] = np.exp(4 * X[:, 0])
    model = _make(kind, numeric_scaling="robust").fit(X, Y)
    scaling = model.module_.scaling
    q25, median, q75 = np.quantile(X[:, 0], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(scaling.center[0].item(), median, rtol=1e-5)
    np.testing.assert_allclose(scaling.scale[0].item(), (q75 - q25) / 1.349, rtol=1e-5)
    z = scaling(torch.as_tensor(X[:, :]))
    assert float(z[:, 0].abs().max()) <= 3
    # Unclipped: centred and divided only, the tail kept.
    unclipped = _make(kind, numeric_scaling="robust_unclipped").fit(X, Y)
    scaling = unclipped.module_.scaling
    expected = (X[:, 0] - median) / ((q75 - q25) / 1.349)
    z = scaling(torch.as_tensor(X))[:, 0].numpy()
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-4)
    assert z.max() > 3
    # The regressor's default (targets linear in the inputs are not bent).
    default = "robust_unclipped" if kind == "regressor" else "robust"
    assert _make(kind).get_params()["numeric_scaling"] == default
    # The same model without scaling sees the raw column.
    assert _make(kind, numeric_scaling=None).fit(X, Y).module_.scaling is None


def test_numeric_embedding_auto_embeds_narrow_dense_inputs(kind, data):
    sp = pytest.importorskip("scipy.sparse")
    X, Y = data

    def embeds(model):
        embedding = model.module_.embedding
        return embedding is not None and embedding.numeric_embedding is not None

    # 5 numeric columns: embedded by default, not with None.
    assert embeds(_make(kind).fit(X, Y))
    assert _make(kind, numeric_embedding=None).fit(X, Y).module_.embedding is None
    # 17 numeric columns: "auto" leaves them, "periodic" embeds them.
    wide = np.hstack([X, np.repeat(X[:, :1], 12, axis=1)])
    assert not embeds(_make(kind).fit(wide, Y))
    assert embeds(_make(kind, numeric_embedding="periodic").fit(wide, Y))
    # Sparse inputs as their dense copies.
    sparse = sp.csr_matrix(np.where(np.abs(X) < 0.5, 0, X))
    assert embeds(_make(kind).fit(sparse, Y))


def test_warm_start_and_partial_fit_continue(kind, data):
    X, Y = data
    est = _make(kind, warm_start=True).fit(X, Y)
    weights = {k: v.clone() for k, v in est.module_.state_dict().items()}
    est.fit(X, Y)
    assert est.n_iter_ == 4
    assert any(
        not torch.equal(v, est.module_.state_dict()[k]) for k, v in weights.items()
    )
    classes = None
    if kind != "regressor":
        classes = [np.unique(Y[:, 0]), np.unique(Y[:, 1]) if kind != "mixed" else None]
    kwargs = {} if classes is None else {"classes": classes}
    est = _make(kind).partial_fit(X, Y, **kwargs)
    assert est.n_iter_ == 1
    est.partial_fit(X, Y)
    assert est.n_iter_ == 2


# ---------------------------------------------------------------------------
# sample_weight
# ---------------------------------------------------------------------------


def test_zero_sample_weight_is_dropping_the_row(kind, data):
    X, Y = data
    drop = np.zeros(len(X), dtype=bool)
    drop[::5] = True
    weights = np.where(drop, 0.0, 1.0)
    # One batch per epoch (batch_size >= n): the same optimisation steps with
    # and without the dropped rows. Both fits draw the same seed from
    # random_state, hence the same initial weights. The batch's rows are
    # shuffled in another order (another permutation of n or n - 24 rows), so
    # the float32 sums of the loss and its gradients are taken in another
    # order: equal up to rounding, not bit for bit.
    # Without dropout: its masks depend on the number of rows.
    full_batch = dict(batch_size=1024, max_epochs=5, dropout=0.0, gate_dropout=0.0)
    weighted = _make(kind, **full_batch).fit(X, Y, sample_weight=weights)
    dropped = _make(kind, **full_batch).fit(X[~drop], Y[~drop])
    np.testing.assert_allclose(
        _outputs(weighted, X), _outputs(dropped, X), rtol=1e-5, atol=1e-5
    )
    assert weighted.history_[-1]["train_loss"] == pytest.approx(
        dropped.history_[-1]["train_loss"], rel=1e-5
    )
    for name in ("target_mean_", "target_scale_"):
        if hasattr(weighted, name):
            np.testing.assert_allclose(
                getattr(weighted, name), getattr(dropped, name), rtol=1e-12
            )
    # The tolerance is far below the effect of those rows: training on them
    # gives another model.
    unweighted = _make(kind, **full_batch).fit(X, Y)
    assert np.abs(_outputs(unweighted, X) - _outputs(dropped, X)).max() > 1e-3


def test_sample_weight_changes_the_fit(kind, data):
    X, Y = data
    weights = np.linspace(0.1, 3.0, len(X))
    plain = _make(kind).fit(X, Y)
    weighted = _make(kind).fit(X, Y, sample_weight=weights)
    ones = _make(kind).fit(X, Y, sample_weight=np.ones(len(X)))
    assert not np.array_equal(_outputs(plain, X), _outputs(weighted, X))
    np.testing.assert_allclose(_outputs(plain, X), _outputs(ones, X), atol=1e-6)


@pytest.mark.parametrize(
    "make_weights, match",
    [
        (lambda n: np.ones(n - 1), r"shape \(120,\)"),
        (lambda n: np.ones((n, 2)), r"shape \(120,\)"),
        (lambda n: -np.ones(n), "non-negative"),
        (lambda n: np.r_[np.ones(n - 1), np.nan], "finite"),
        (lambda n: np.r_[np.ones(n - 1), np.inf], "finite"),
        (lambda n: np.zeros(n), "not all be zero"),
        (lambda n: np.array(["a"] * n), "numbers"),
    ],
)
def test_bad_sample_weight_is_refused(kind, data, make_weights, match):
    X, Y = data
    est = _make(kind, warm_start=True)
    with pytest.raises(ValueError, match=match):
        est.fit(X, Y, sample_weight=make_weights(len(X)))
    _assert_unfitted(est)
    est.fit(X, Y)
    before = _state(est)
    with pytest.raises(ValueError, match=match):
        est.fit(X, Y, sample_weight=make_weights(len(X)))
    with pytest.raises(ValueError, match=match):
        est.partial_fit(X, Y, sample_weight=make_weights(len(X)))
    _assert_same_state(before, _state(est))


def test_sample_weight_in_partial_fit(kind, data):
    X, Y = data
    kwargs = {}
    if kind == "classifier":
        kwargs["classes"] = [[0, 1], [0, 1]]
    elif kind == "mixed":
        kwargs["classes"] = [[0, 1], None]
    weights = np.linspace(0.1, 3.0, len(X))
    a = _make(kind).partial_fit(X, Y, sample_weight=weights, **kwargs)
    b = _make(kind).partial_fit(X, Y, **kwargs)
    assert not np.array_equal(_outputs(a, X), _outputs(b, X))


def test_sample_weight_is_routed_through_a_pipeline(kind, data):
    X, Y = data
    weights = np.linspace(0.1, 3.0, len(X))
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=False),
            _make(kind).set_fit_request(sample_weight=True),
        )
        pipe.fit(X, Y, sample_weight=weights)
        X_scaled = StandardScaler().fit_transform(X)
        direct = _make(kind).fit(X_scaled, Y, sample_weight=weights)
        np.testing.assert_array_equal(
            _outputs(pipe[-1], X_scaled), _outputs(direct, X_scaled)
        )

        # And through a search, into every fit.
        search = GridSearchCV(
            _make(kind)
            .set_fit_request(sample_weight=True)
            .set_score_request(sample_weight=True),
            {"lr": [0.01]},
            cv=2,
        )
        search.fit(X, Y, sample_weight=weights)
        direct = _make(kind).fit(X, Y, sample_weight=weights)
        np.testing.assert_array_equal(
            _outputs(search.best_estimator_, X), _outputs(direct, X)
        )


# ---------------------------------------------------------------------------
# Interrupts and failures leave the estimator as it was
# ---------------------------------------------------------------------------


class _Interrupt(Callback):
    """Interrupts training at its ``at``-th batch.

    ``how``: "sigint" sends a real SIGINT (as Ctrl-C does) to this process,
    "raise" raises KeyboardInterrupt from code, "error" a RuntimeError.
    """

    def __init__(self, how="sigint", at=3):
        self.how = how
        self.at = at

    def initialize(self):
        self.batches_ = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.batches_ += 1
        if self.batches_ == self.at:
            if self.how == "sigint":
                signal.raise_signal(signal.SIGINT)
            elif self.how == "raise":
                raise KeyboardInterrupt
            else:
                raise RuntimeError("callback failed")


_PROPAGATED = {"sigint": KeyboardInterrupt, "error": RuntimeError}


def _partial_fit_kwargs(kind, Y):
    if kind == "classifier":
        return {"classes": [[0, 1], [0, 1]]}
    if kind == "mixed":
        return {"classes": [[0, 1], None]}
    return {}


@pytest.mark.parametrize("how", ["sigint", "error"])
def test_interrupted_first_fit_leaves_the_estimator_unfitted(kind, data, how):
    X, Y = data
    handler = signal.getsignal(signal.SIGINT)
    est = _make(kind, max_epochs=5, callbacks=[_Interrupt(how)])
    with pytest.raises(_PROPAGATED[how]):
        est.fit(X, Y)
    _assert_unfitted(est)
    with pytest.raises(_PROPAGATED[how]):
        est.partial_fit(X, Y, **_partial_fit_kwargs(kind, Y))
    _assert_unfitted(est)
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.parametrize("how", ["sigint", "error"])
def test_interrupted_refit_keeps_the_previous_model(kind, data, how):
    X, Y = data
    est = _make(kind, max_epochs=3).fit(X, Y)
    expected = _outputs(est, X)
    before = _state(est)
    callbacks = [_Interrupt(how, at=3)]
    for warm_start in (False, True):
        est.set_params(warm_start=warm_start, callbacks=callbacks)
        with pytest.raises(_PROPAGATED[how]):
            est.fit(X, Y)
        _assert_same_state(before, _state(est))
    with pytest.raises(_PROPAGATED[how]):
        est.partial_fit(X, Y)
    _assert_same_state(before, _state(est))
    np.testing.assert_array_equal(_outputs(est, X), expected)
    # And it still trains normally.
    est.set_params(callbacks=None, warm_start=True).fit(X, Y)
    assert est.n_iter_ == 6  # the 3 epochs kept, 3 more


class _InterruptRefit(_Interrupt):
    """Interrupts only the refit phase (the one without a validation split)."""

    def on_batch_end(self, net, **kwargs):
        if net.train_split is None:
            super().on_batch_end(net, **kwargs)


@pytest.mark.parametrize("how", ["sigint", "error"])
def test_interrupted_refit_phase_keeps_the_previous_model(kind, data, how):
    X, Y = data
    est = _make(kind, max_epochs=3).fit(X, Y)
    expected = _outputs(est, X)
    before = _state(est)
    est.set_params(
        refit=True,
        early_stopping=True,
        n_iter_no_change=1,
        callbacks=[_InterruptRefit(how, at=1)],
    )
    with pytest.raises(_PROPAGATED[how]):
        est.fit(X, Y)
    _assert_same_state(before, _state(est))
    np.testing.assert_array_equal(_outputs(est, X), expected)


def test_keyboard_interrupt_raised_by_a_callback_stops_training(kind, data):
    # Without a SIGINT, a KeyboardInterrupt raised by code is a callback
    # asking training to stop (skorch's convention, as EarlyStopping does):
    # the fit ends early and the model is kept.
    X, Y = data
    est = _make(kind, max_epochs=5, callbacks=[_Interrupt("raise", at=5)])
    est.fit(X, Y)
    assert est.n_iter_ == 2  # 4 batches per epoch: stopped in epoch 2


def test_early_stopping_callback_just_stops_training(kind, data):
    X, Y = data
    stop = EarlyStopping(monitor="train_loss", patience=1, threshold=0.99)
    est = _make(kind, max_epochs=10, callbacks=[stop]).fit(X, Y)
    assert est.n_iter_ == 2
    assert np.isfinite(_outputs(est, X)).all()
    # Also in continued training.
    est.set_params(warm_start=True).fit(X, Y)
    assert est.n_iter_ == 4


# ---------------------------------------------------------------------------
# Parameters and inputs that are refused
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_experts=True), "'n_experts'.*boolean"),
        (dict(n_experts=np.True_), "'n_experts'"),
        (dict(batch_size=True), "'batch_size'.*boolean"),
        (dict(max_epochs=True), "'max_epochs'.*boolean"),
        (dict(n_levels=True), "'n_levels'.*boolean"),
        (dict(n_task_experts=False), "'n_task_experts'.*boolean"),
        (dict(n_iter_no_change=True), "'n_iter_no_change'.*boolean"),
        (dict(callbacks=[1]), "callbacks must hold skorch callbacks"),
        (dict(callbacks=["print_log"]), "callbacks must hold skorch callbacks"),
        (dict(callbacks=[("clip", 3)]), "callbacks must hold skorch callbacks"),
        (dict(callbacks=[(1, EarlyStopping())]), "callbacks must hold skorch"),
        (dict(callbacks=[dict]), "callbacks must hold skorch callbacks"),
        (dict(callbacks="print_log"), "callbacks"),
        (dict(device="meta"), "device='meta'"),
        (dict(device=torch.device("meta")), "device='meta'"),
        (dict(device="mps"), "device='mps'"),
        (dict(device="tpu:x"), "device='tpu:x'"),
        (dict(expert_hidden_layer_sizes=(8, 0)), "expert_hidden_layer_sizes"),
        (dict(task_weights=[1.0, -1.0]), "task_weights"),
        (dict(task_weights="gradnrom"), "task_weights"),
        (dict(ensemble_size=10**9), "'ensemble_size'.*1024"),
        (dict(gate="dselect_k", gate_k=5, n_experts=4), "gate_k=5 exceeds"),
        (
            dict(gate="dselect_k", gate_k=6, n_experts=4, n_task_experts=1),
            r"gate_k=6 exceeds.*\(5: n_experts \+ n_task_experts\)",
        ),
    ],
)
def test_invalid_parameters_leave_the_model_unchanged(kind, data, params, match):
    X, Y = data
    est = _make(kind, **params)
    with pytest.raises(ValueError, match=match):
        est.fit(X, Y)
    _assert_unfitted(est)
    est = _make(kind).fit(X, Y)
    before = _state(est)
    est.set_params(**params)
    with pytest.raises(ValueError, match=match):
        est.fit(X, Y)
    _assert_same_state(before, _state(est))


class _CountBatches(Callback):
    def initialize(self):
        self.batches_ = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.batches_ += 1


def test_callback_classes_and_named_pairs_are_accepted(kind, data):
    X, Y = data
    stop = EarlyStopping(monitor="train_loss", patience=1, threshold=0.99)
    est = _make(kind, max_epochs=5, callbacks=[("stop", stop), _CountBatches])
    est.fit(X, Y)
    assert est.n_iter_ == 2
    assert dict(est.net_.callbacks_)["_CountBatches"].batches_ == 2 * 4


def test_duplicate_task_names_are_refused(kind, data):
    X, Y = data
    Y_df = pd.DataFrame(Y, columns=["a", "a"])
    with pytest.raises(ValueError, match=r"duplicate task names \['a'\]"):
        _make(kind).fit(X, Y_df)


# scikit-learn's finiteness check sums X first: +3e38 - 3e38 rows overflow.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_huge_inputs_at_predict_are_an_error_not_nan(kind, data):
    X, Y = data
    est = _make(kind).fit(X, Y)
    X_huge = np.full((4, 5), 3e38, dtype=np.float32)
    X_alternating = X_huge.copy()
    X_alternating[:, 1::2] = -3e38
    # Whether rows near float32's limit overflow depends on the weights: the
    # result is either refused or finite and well-formed, never NaN.
    for rows in (X_huge, X_alternating):
        try:
            outputs = _outputs(est, rows)
        except ValueError as exc:
            assert "not finite" in str(exc)
        else:
            assert np.isfinite(outputs).all()
    # With every weight positive, the first layer overflows to inf for sure.
    with torch.no_grad():
        for param in est.module_.parameters():
            param.fill_(1.0)
    calls = [est.predict, est.gate_weights, lambda X: est.score(X, Y[:4])]
    if hasattr(est, "predict_proba"):
        calls.append(est.predict_proba)
    for call in calls:
        with pytest.raises(ValueError, match="not finite"):
            call(X_huge)
    # Finite inputs of ordinary size still predict.
    assert np.isfinite(_outputs(est, X)).all()


def test_verbose_log_to_a_file_is_plain(kind, data, capsys):
    X, Y = data
    # 120 rows in batches of 2: 60 batches, a progress bar on a terminal.
    _make(kind, verbose=1, batch_size=2).fit(X, Y)
    captured = capsys.readouterr()
    assert "train_loss_task1" in captured.out
    assert len(captured.out.strip().splitlines()) == 2 + 2  # header, rule, epochs
    for text in (captured.out, captured.err):
        assert "\r" not in text and "\x1b[" not in text


def test_failed_fit_on_bad_input_keeps_the_model(kind, data):
    X, Y = data
    est = _make(kind).fit(X, Y)
    before = _state(est)
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    Y_unlabelled = Y.astype(object)
    Y_unlabelled[:, 1] = None
    for X_bad, Y_bad, match in (
        (X_inf, Y, "infinity"),
        (X[:-1], Y, "inconsistent numbers of samples"),
        (X, Y_unlabelled, "no labelled rows"),
        (X[:0], Y[:0], "0 sample"),
    ):
        for warm_start in (False, True):
            with pytest.raises(ValueError, match=match):
                est.set_params(warm_start=warm_start).fit(X_bad, Y_bad)
    _assert_same_state(before, _state(est))
    for method in ("predict", "gate_weights"):
        with pytest.raises(ValueError, match="expecting 5 features"):
            getattr(est, method)(X[:, :4])


def test_wide_sparse_input_trains_through_a_sparse_projection(kind, monkeypatch):
    sp = pytest.importorskip("scipy.sparse")
    from sk_mmoe import _building, load_model, save_model

    monkeypatch.setattr(_building, "_SPARSE_PROJECTION_MIN_FEATURES", 50)
    rng = np.random.default_rng(0)
    X = sp.random(
        200, 400, density=0.02, format="csr", dtype=np.float32, random_state=0
    )
    _, Y = _make_data(kind, n=200)
    # Scaling would densify the input: not applied, and the warning says so.
    with pytest.warns(
        UserWarning, match="numeric_scaling='robust(_unclipped)?' would densify"
    ):
        _make(kind, max_epochs=1).fit(X, Y)
    with pytest.warns(UserWarning, match="numeric_embedding='periodic' would"):
        _make(
            kind, max_epochs=1, numeric_scaling=None, numeric_embedding="periodic"
        ).fit(X, Y)
    model = _make(kind, numeric_scaling=None).fit(X, Y)
    assert model.module_.scaling is None and model.module_.embedding is None
    projection = model.module_.projection
    assert projection is not None and projection.weight.shape[0] == 400
    assert "optimizer_sparse" in model.net_._optimizers
    # Rows predict alike alone and in a batch; dense and sparse X agree.
    for row in (0, 5):
        alone = model.predict(X[row : row + 1])
        np.testing.assert_array_equal(alone[0], model.predict(X[:8])[row])
    np.testing.assert_allclose(
        _outputs(model, X), _outputs(model, X.toarray()), rtol=1e-5, atol=1e-6
    )
    buffer = __import__("io").BytesIO()
    save_model(model, buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    np.testing.assert_array_equal(_outputs(loaded, X), _outputs(model, X))
    model.set_params(warm_start=True, max_epochs=1).fit(X, Y)
    loaded.set_params(warm_start=True, max_epochs=1).fit(X, Y)
    np.testing.assert_array_equal(_outputs(loaded, X), _outputs(model, X))
    assert rng is not None


_ARCHITECTURES = {
    "mmoe": {},
    "shared_gate": {"shared_gate": True},
    "cgc": {"n_task_experts": 1},
    "ple": {"n_task_experts": 1, "n_levels": 2},
}


@pytest.mark.parametrize("architecture", sorted(_ARCHITECTURES))
@pytest.mark.parametrize("gate", sorted(GATES))
def test_sparse_projection_is_as_wide_as_what_the_first_level_reads(
    gate, architecture, monkeypatch
):
    # Every linear map of the first level's input (experts' first layers,
    # gates) reads the projection: together they are exactly as wide.
    sp = pytest.importorskip("scipy.sparse")
    from sk_mmoe import _building

    monkeypatch.setattr(_building, "_SPARSE_PROJECTION_MIN_FEATURES", 50)
    X = sp.random(60, 300, density=0.05, format="csr", random_state=0)
    _, Y = _make_data("classifier", n=60)
    params = dict(_ARCHITECTURES[architecture], n_experts=3, gate=gate, gate_k=3)
    model = _make("classifier", max_epochs=1, numeric_scaling=None, **params).fit(X, Y)
    width = model.module_.projection.weight.shape[1]
    reads = sum(
        layer.n_groups * layer.out_features
        for layer in model.module_.levels[0].modules()
        if isinstance(layer, BatchedLinear) and layer.in_features == width
    )
    assert width == reads


def test_shared_parameters_have_the_same_order_defaults_constraints_and_docs():
    import inspect
    import re

    from sklearn.utils._param_validation import make_constraint

    def parameter_docs(cls):
        """Each entry of the Parameters section of ``cls``'s docstring."""
        section = inspect.getdoc(cls).split("Parameters\n----------\n", 1)[1]
        section = re.split(r"\n\S[^\n]*\n-+\n", section, maxsplit=1)[0]
        entries = [e.strip() for e in re.split(r"\n(?=\S)", section)]
        return {e.split(" :", 1)[0]: e for e in entries if e}

    estimators = list(ESTIMATORS.values())
    signatures = [inspect.signature(cls.__init__).parameters for cls in estimators]
    docs = [parameter_docs(cls) for cls in estimators]
    shared = [
        name
        for name in signatures[0]
        if name != "self" and all(name in s for s in signatures)
    ]
    assert len(shared) > 20
    for cls, signature, doc in zip(estimators, signatures, docs, strict=True):
        assert [name for name in signature if name in shared] == shared, cls
        assert set(shared) <= set(doc), cls
    # Defaults that differ by task type, as the quality study chose them.
    own_defaults = {
        ("numeric_scaling", MultiTaskMMoERegressor): "robust_unclipped",
        ("dropout", MultiTaskMMoERegressor): 0.0,
        ("gate_dropout", MultiTaskMMoE): 0.0,
        ("gate_temperature", MultiTaskMMoE): 1.0,
    }
    for name in shared:
        for signature, doc, cls in zip(signatures, docs, estimators, strict=True):
            first = signatures[0][name]
            default = own_defaults.get((name, cls), first.default)
            assert (signature[name].default, signature[name].kind) == (
                default,
                first.kind,
            ), (cls, name)
            own_doc = docs[0][name].replace(
                f"default={first.default!r}".replace("'", '"'),
                f"default={default!r}".replace("'", '"'),
            )
            assert doc[name] == own_doc, (cls, name)
            assert [
                str(make_constraint(c)) for c in cls._parameter_constraints[name]
            ] == [
                str(make_constraint(c))
                for c in estimators[0]._parameter_constraints[name]
            ], (cls, name)


def _step(clf, n_train, encoder=None, scheduled=False):
    """The batch size and lr that ``clf`` trains ``n_train`` rows with."""
    return step_params(
        n_train, encoder, scheduled, batch_size=clf.batch_size, lr=clf.lr
    )


@pytest.mark.parametrize(
    "n_train, batch_size, lr",
    [(100, 256, 0.625e-3), (16_383, 256, 1e-3), (16_384, 512, 2**0.5 * 1e-3)]
    + [(32_768, 1024, 2e-3), (10**6, 1024, 2e-3)],
)
def test_auto_batch_size_and_lr_follow_the_training_rows(n_train, batch_size, lr):
    clf = MultiTaskMMoEClassifier()
    assert _step(clf, n_train) == pytest.approx((batch_size, lr))
    # Set values are kept; an "auto" lr follows a set batch size.
    assert _step(clf.set_params(batch_size=64, lr=0.01), n_train) == (64, 0.01)
    assert _step(clf.set_params(lr="auto"), n_train) == (64, 0.5e-3)


def test_auto_lr_scales_from_the_real_batch():
    # A batch larger than the training rows is one batch of all of them.
    clf = MultiTaskMMoEClassifier(batch_size=10**9)
    assert _step(clf, 200) == pytest.approx((10**9, (200 / 256) ** 0.5 * 1e-3))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    clf.set_params(max_epochs=20, random_state=0).fit(X, Y)
    assert np.isfinite(clf.predict_proba(X)[0]).all()


def test_auto_batch_size_stays_small_for_id_columns():
    # A categorical column of fewer than 100 rows per value (an ID) keeps
    # batches of 256, so that each value's vector gets enough steps.
    from types import SimpleNamespace

    clf = MultiTaskMMoEClassifier()
    census_like = SimpleNamespace(cardinalities=[9, 53])
    ids = SimpleNamespace(cardinalities=[4, 1000])
    assert _step(clf, 40_000, census_like) == pytest.approx((1024, 2e-3))
    assert _step(clf, 40_000, ids) == (256, 1e-3)
    assert _step(clf, 100_000, ids) == pytest.approx((1024, 2e-3))
    # Under the schedule, "auto" is its peak: 5 times the constant rate.
    assert _step(clf, 40_000, census_like, scheduled=True) == pytest.approx(
        (1024, 1e-2)
    )


def test_the_net_trains_with_the_resolved_batch_size_and_lr():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 3)).astype(np.float32)
    Y = (X[:, :2] > 0).astype(int)
    clf = MultiTaskMMoEClassifier(max_epochs=1, lr_schedule="auto", random_state=0).fit(
        X, Y
    )
    # 18,000 training rows after the 10% held out: batches of 512, and the
    # schedule's peak rate (5 times the constant one) with early stopping.
    assert clf.net_.batch_size == 512
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(5 * 2**0.5 * 1e-3)
    assert clf.get_params()["batch_size"] == "auto"
    # Continued training on fewer rows (no early stopping, so no schedule
    # under lr_schedule="auto") resolves them again.
    clf.set_params(warm_start=True).fit(X[:1000], Y[:1000])
    assert clf.net_.batch_size == 256
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3)
    clf.set_params(lr_schedule="cosine").fit(X[:1000], Y[:1000])
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(5e-3)
    # partial_fit trains at the constant rate.
    clf.partial_fit(X[:1000], Y[:1000])
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "Estimator", [MultiTaskMMoEClassifier, MultiTaskMMoERegressor, MultiTaskMMoE]
)
def test_a_dataframe_without_columns_is_a_clear_error(Estimator):
    X = pd.DataFrame(index=range(20))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=r"no feature columns: .*shape=\(20, 0\)"):
        Estimator(max_epochs=1).fit(X, y)
