"""Tests for sk_mmoe._tasks: the task types."""

import pickle

import numpy as np
import pytest
import torch

from sk_mmoe._tasks import (
    TASK_TYPES,
    ClassificationTask,
    ConditionalTask,
    PoissonTask,
    RegressionTask,
    _distinct,
    complete_targets,
    condition_tasks,
    infer_task_type,
    make_task,
    task_from_state,
    task_outputs,
)


def test_registry():
    expected = {
        "binary": ClassificationTask,
        "multiclass": ClassificationTask,
        "regression": RegressionTask,
        "poisson": PoissonTask,
    }
    assert expected == TASK_TYPES
    assert make_task("multiclass", "a").kind == "multiclass"
    assert make_task("multiclass", "a").loss == "cross_entropy"
    assert make_task("regression", "a").loss == "squared_error"
    assert make_task("regression", "a", "huber").loss == "huber"


def test_a_loss_of_a_more_specific_type_selects_it():
    task = make_task("regression", "views", "poisson")
    assert type(task) is PoissonTask and task.kind == "poisson"
    with pytest.raises(ValueError, match="loss for task 'a' must be one of"):
        make_task("binary", "a", "poisson")
    with pytest.raises(ValueError, match="must be one of"):
        make_task("poisson", "a", "huber")


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.array([0, 1, 1]), "binary"),
        (np.array([0, 1, 2]), "multiclass"),
        (np.array([0.0, 1.0, 2.0]), "multiclass"),  # whole floats are classes
        (np.array([0.5, 1.0]), "regression"),
        (np.array(["a", "b"]), "binary"),
        (np.array([True, False]), "binary"),
        (np.array(["a", "b", "c"], dtype=object), "multiclass"),
        (np.array([1, 2.5], dtype=object), "regression"),
    ],
)
def test_infer_task_type(values, expected):
    assert infer_task_type(values, "t") == expected


def test_infer_refuses_mixed_labels():
    with pytest.raises(TypeError, match="mixes label types"):
        infer_task_type(np.array(["a", 1], dtype=object), "t")


def test_classification_task():
    task = make_task("multiclass", "rating").fit(np.array(["b", "a", "c", "a"]))
    assert task.n_outputs == 3 and task.classes.tolist() == ["a", "b", "c"]
    encoded = task.encode(np.array(["c", "a"]))
    assert encoded.dtype == np.float32 and encoded.tolist() == [2.0, 0.0]
    outputs = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]])
    assert task.decode(outputs).tolist() == ["b", "a"]
    assert task.score(np.array(["b", "b"]), np.array(["b", "a"])) == 0.5
    assert task.score(
        np.array(["b", "b"]), np.array(["b", "a"]), sample_weight=[3, 1]
    ) == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"labels \['d'\] that are not in"):
        task.encode(np.array(["d"]))


@pytest.mark.parametrize(
    "kind, values, known, match",
    [
        ("binary", np.array([1, 1]), None, "only one class"),
        ("binary", np.array([0, 1, 2]), None, "declared 'binary' but has 3"),
        ("binary", np.array([0, 1]), [0, 1, 2], "declared 'binary' but has 3"),
        ("multiclass", np.array([0, 1]), [0], "at least 2 classes"),
        ("multiclass", np.array([0, 5]), [0, 1, 2], r"labels \[5\]"),
        ("binary", np.array([0.5, 1.5]), None, "Unknown label type"),
    ],
)
def test_classification_task_errors(kind, values, known, match):
    with pytest.raises(ValueError, match=match):
        make_task(kind, "t").fit(values, known)


def test_known_classes_allow_absent_ones():
    task = make_task("multiclass", "t").fit(np.array([0, 0]), [2, 1, 0])
    assert task.classes.tolist() == [0, 1, 2]
    assert task.encode(np.array([0, 0])).tolist() == [0.0, 0.0]


def test_regression_task_standardises():
    values = np.array([10.0, 20.0, 30.0, 40.0])
    task = make_task("regression", "watch").fit(values)
    assert task.n_outputs == 1
    assert task.mean == 25.0 and task.scale == pytest.approx(values.std())
    encoded = task.encode(values)
    assert encoded.dtype == np.float32
    np.testing.assert_allclose(encoded, (values - 25.0) / values.std(), rtol=1e-6)
    predicted = task.decode(task.head(torch.from_numpy(encoded[:, None])).numpy())
    np.testing.assert_allclose(predicted, values, rtol=1e-6)
    assert predicted.dtype == np.float64
    assert task.proba(predicted) is None and not task.has_proba
    assert task.score(values, values) == 1.0


def test_regression_task_weighted_standardisation():
    values = np.array([1.0, 2.0, 3.0, 100.0])
    weights = np.array([1.0, 1.0, 2.0, 0.0])
    task = make_task("regression", "t").fit(values, sample_weight=weights)
    assert task.mean == pytest.approx(np.average(values, weights=weights))
    kept = make_task("regression", "t").fit(np.array([1.0, 2.0, 3.0, 3.0]))
    assert task.mean == pytest.approx(kept.mean)
    assert task.scale == pytest.approx(kept.scale)
    # All-zero weights: the unweighted standardisation.
    task = make_task("regression", "t").fit(values, sample_weight=np.zeros(4))
    assert task.mean == values.mean()


def test_regression_task_edge_cases():
    task = make_task("regression", "t").fit(np.array([5.0, 5.0]))
    assert task.scale == 1.0 and task.mean == 5.0  # constant: keeps its units
    with pytest.raises(ValueError, match="infinite"):
        make_task("regression", "t").fit(np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="not all numbers"):
        make_task("regression", "t").fit(np.array(["a", "b"]))
    task = make_task("regression", "t").fit(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="too large"), np.errstate(over="ignore"):
        task.encode(np.array([1e300]))


@pytest.mark.parametrize(
    "task",
    [
        ClassificationTask("a", "binary", np.array([False, True])),
        ClassificationTask("b", "multiclass", np.array(["x", "y", "z"])),
        ClassificationTask("c", "binary", np.array([-3, 4], dtype=np.int32)),
        RegressionTask("d", mean=3.5, scale=0.25),
        RegressionTask("e", mean=1.0, scale=2.0, loss="huber"),
        PoissonTask("f", "poisson", mean=2.5, scale=1.0),
    ],
)
def test_state_round_trip(task):
    state = task.state()
    again = task_from_state(state)
    assert type(again) is type(task) and again.state() == state
    if isinstance(task, ClassificationTask):
        assert again.classes.dtype == task.classes.dtype
        np.testing.assert_array_equal(again.classes, task.classes)
        task.check_compatible(again)


def test_task_from_state_refuses_unknown_types():
    with pytest.raises(ValueError, match="unknown task type 'ordinal'"):
        task_from_state({"kind": "ordinal", "name": "t"})


def test_check_compatible():
    binary = ClassificationTask("t", "binary", np.array([0, 1]))
    regression = RegressionTask("t")
    with pytest.raises(ValueError, match="must keep its classes"):
        binary.check_compatible(ClassificationTask("t", "binary", np.array([1, 2])))
    with pytest.raises(ValueError, match="must keep its classes"):
        binary.check_compatible(regression)
    with pytest.raises(ValueError, match="must stay one"):
        regression.check_compatible(binary)
    regression.check_compatible(RegressionTask("t", mean=9.0))


def test_classification_head_is_the_softmax_over_its_own_classes():
    task = make_task("binary", "t").fit(np.array(["a", "b"]))
    # A third, padded column of -inf never reaches the softmax.
    outputs = torch.tensor([[0.0, np.log(3.0), -np.inf]])
    head = task.head(outputs).numpy()
    np.testing.assert_allclose(task.proba(head), [[0.25, 0.75]], rtol=1e-6)
    assert task.decode(head).tolist() == ["b"]


def test_class_weights_belong_to_classification_tasks():
    task = make_task("multiclass", "t").fit(np.array([0, 1, 2]))
    assert task.class_weights(None, None).tolist() == [1.0, 1.0, 1.0]
    assert task.class_weights({2: 3.0}, None).tolist() == [1.0, 1.0, 3.0]
    codes = np.array([0, 0, 0, 1, np.nan], dtype=np.float32)
    balanced = task.class_weights("balanced", codes)
    assert balanced[0] < balanced[1] and balanced[2] == 1.0
    with pytest.raises(ValueError, match="not among its classes"):
        task.class_weights({5: 1.0}, None)
    regression = make_task("regression", "r").fit(np.array([0.5, 1.5]))
    assert regression.class_weights(None, None) is None
    with pytest.raises(ValueError, match="must be None: it is a regression task"):
        regression.class_weights("balanced", None)


def test_poisson_task_log_link_and_mean_baseline():
    counts = np.array([0.0, 1.0, 2.0, 5.0])
    task = make_task("regression", "views", "poisson").fit(counts)
    assert task.mean == 2.0 and task.scale == 1.0 and task.metric_family == "count"
    np.testing.assert_allclose(task.encode(counts), counts / 2.0)
    # An untrained (zero) output predicts the mean; the head is exp(output) * mean.
    outputs = torch.tensor([[0.0], [np.log(3.0)], [-50.0]])
    np.testing.assert_allclose(
        task.decode(task.head(outputs).numpy()), [2, 6, 0], atol=1e-9
    )
    assert task.head(outputs).dtype == torch.float64
    assert task.score(counts, counts + 1e-12) == pytest.approx(1.0)
    assert task.score(counts, np.full(4, 2.0)) == 0.0  # the mean explains nothing
    with pytest.raises(ValueError, match="negative targets"):
        make_task("poisson", "views").fit(np.array([1.0, -1.0]))
    assert make_task("poisson", "views").fit(np.zeros(3)).mean == 1.0


def test_infer_task_type_follows_a_numeric_loss():
    counts = np.array([0, 1, 3, 2])
    assert infer_task_type(counts, "views") == "multiclass"
    assert infer_task_type(counts, "views", "poisson") == "poisson"
    assert infer_task_type(counts, "views", "huber") == "regression"
    assert infer_task_type(counts, "views", "cross_entropy") == "multiclass"


def test_a_poisson_task_cannot_continue_as_a_regression_task():
    poisson = make_task("poisson", "t").fit(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="poisson task and must stay one"):
        poisson.check_compatible(make_task("regression", "t").fit(np.array([1.0, 2.0])))


class _ReadsFirstTower(ClassificationTask):
    """A task whose outputs are another task's (a stand-in for a task that
    depends on another's prediction)."""

    def outputs(self, outputs, k):
        return outputs[:, 0] + outputs[:, k]


def test_task_outputs_let_a_task_read_other_towers():
    plain = [make_task("binary", "a"), make_task("binary", "b")]
    assert task_outputs(plain) is None
    tasks = [plain[0], _ReadsFirstTower("b", "binary", np.array([0, 1]))]
    outputs = torch.randn(5, 2, 2)
    read = task_outputs(tasks)(outputs)
    torch.testing.assert_close(read[:, 0], outputs[:, 0])
    torch.testing.assert_close(read[:, 1], outputs[:, 0] + outputs[:, 1])
    again = pickle.loads(pickle.dumps(task_outputs(tasks)))
    torch.testing.assert_close(again(outputs), read)


def _conditional(chain=(0,), classes=(0, 1), parent_name="click"):
    return ConditionalTask(
        "buy", "binary", np.array(classes), chain=chain, parent_name=parent_name
    )


def test_conditional_task_reads_the_joint_probability_along_its_chain():
    torch.manual_seed(0)
    outputs = 3 * torch.randn(50, 3, 2)
    proba = torch.softmax(outputs, dim=-1)[..., 1]
    cart = ConditionalTask("cart", "binary", np.array([0, 1]), chain=(2,))
    buy = ConditionalTask("buy", "binary", np.array([0, 1]), chain=(2, 1))
    tasks = [buy, cart, ClassificationTask("click", "binary", np.array([0, 1]))]
    joint = task_outputs(tasks)(outputs)
    heads = [task.head(joint[:, k]) for k, task in enumerate(tasks)]
    torch.testing.assert_close(heads[1][:, 1], proba[:, 2] * proba[:, 1])
    torch.testing.assert_close(heads[0][:, 1], proba[:, 2] * proba[:, 1] * proba[:, 0])
    torch.testing.assert_close(heads[0].sum(dim=1), torch.ones(50))
    # The conditional probability is the task's own tower's.
    own = buy.head(buy.own_outputs(outputs, 0))
    torch.testing.assert_close(own[:, 1], proba[:, 0])


def test_conditional_loss_is_finite_for_saturated_probabilities():
    outputs = torch.tensor([[[-60.0, 60.0], [-60.0, 60.0]]], requires_grad=True)
    task = _conditional(chain=(0,))
    joint = task.outputs(outputs, 1)
    loss = -torch.log_softmax(joint, dim=-1)[:, 0].sum()  # a negative label
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(outputs.grad).all()


def test_conditional_targets_are_negative_where_an_ancestor_is():
    click = ClassificationTask("click", "binary", np.array([0, 1]))
    cart = ConditionalTask("cart", "binary", np.array([0, 1]), chain=(0,))
    buy = ConditionalTask("buy", "binary", np.array([0.0, 1.0]), chain=(0, 1))
    columns = [
        np.array([0, 1, 1, 1, 0]),
        np.array([-1, 0, 1, 1, -1]),
        np.array([np.nan, np.nan, 1.0, np.nan, 0.0]),
    ]
    labelled = [np.ones(5, bool), columns[1] != -1, ~np.isnan(columns[2])]
    (_, cart_y, buy_y), (_, cart_l, buy_l) = complete_targets(
        [click, cart, buy], columns, labelled
    )
    assert cart_l.all() and cart_y.tolist() == [0, 0, 1, 1, 0]
    # Row 1: the cart is negative; row 3: in the cart, the purchase unknown.
    assert buy_l.tolist() == [True, True, True, False, True]
    assert buy_y[buy_l].tolist() == [0.0, 0.0, 1.0, 0.0]
    columns[2][0] = 1.0
    labelled[2][0] = True
    with pytest.raises(
        ValueError, match=r"'buy' is conditional on .*1 row\(s\).*rows 0\)"
    ):
        complete_targets([click, cart, buy], columns, labelled)


def test_condition_tasks_builds_chains_and_refuses_non_binary_tasks():
    tasks = [
        ClassificationTask(name, "binary", np.array([0, 1]))
        for name in ("buy", "click", "cart")
    ]
    conditioned = condition_tasks(tasks, {0: 2, 2: 1})
    assert type(conditioned[1]) is ClassificationTask
    assert conditioned[0].chain == (1, 2) and conditioned[0].parent == 2
    assert conditioned[2].chain == (1,) and conditioned[2].parent_name == "click"
    assert "conditional on 'click'" in conditioned[2].describe()
    multiclass = ClassificationTask("views", "multiclass", np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="'views', a multiclass task.*both be binary"):
        condition_tasks([*tasks, multiclass], {3: 1})
    with pytest.raises(ValueError, match="'time', a regression task"):
        condition_tasks([*tasks, RegressionTask("time")], {0: 3})


def test_conditional_task_state_round_trips():
    task = _conditional(chain=(2, 0), classes=("no", "yes"), parent_name="cart")
    restored = task_from_state(pickle.loads(pickle.dumps(task.state())))
    assert type(restored) is ConditionalTask
    assert restored.chain == (2, 0) and restored.parent_name == "cart"
    assert restored.classes.tolist() == ["no", "yes"]
    assert restored.metadata()["conditional_on"] == "cart"
    plain = ClassificationTask("a", "binary", np.array([0, 1]))
    assert type(task_from_state(plain.state())) is ClassificationTask
    assert plain.parent is None


def test_poisson_task_refuses_counts_too_large_for_float32():
    task = PoissonTask("clicks", "poisson").fit(np.array([1.0, 3.0, 2.0]))
    with pytest.raises(ValueError, match="'clicks'.*too large.*float32"):
        task.encode(np.array([1.0, 1e300]))
    with pytest.raises(ValueError, match="'clicks'.*mean overflows"):
        PoissonTask("clicks", "poisson").fit(np.array([1.7e308, 1.7e308, 1.0]))


@pytest.mark.parametrize(
    "values",
    [
        np.array([3, 1, 2, 3], dtype=np.int8),
        np.array([-128, 127], dtype=np.int8),
        np.array([2**63 - 5, 2**63 - 1]),
        np.array([-(2**63), -(2**63) + 7]),
        np.array([2**64 - 1, 2**64 - 3], dtype=np.uint64),
        np.array([0, 2**40]),  # too wide a range to count
        np.random.default_rng(0).integers(-5, 5, 1000),
        np.array([], dtype=np.int64),
        np.array([True, False, True]),
        np.array([1.5, 0.5, 1.5]),
        np.array(["b", "a", "b"]),
    ],
)
def test_distinct_labels_are_numpys_unique(values):
    """The distinct labels, counted for narrow integer ranges, are exactly
    np.unique's: the same values, order and dtype."""
    distinct = _distinct(values)
    expected = np.unique(values)
    assert distinct.dtype == expected.dtype
    np.testing.assert_array_equal(distinct, expected)


def test_encode_names_every_unknown_label():
    task = ClassificationTask("t", "binary").fit(np.array([0, 1, 1, 0]))
    np.testing.assert_array_equal(task.encode(np.array([1, 0, 1])), [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"labels \[2, 5\] that are not in its"):
        task.encode(np.array([5, 0, 2, 1, 5]))
