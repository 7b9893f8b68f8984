"""MultiTaskMMoEClassifier: the MMoE network behind the scikit-learn API."""

from __future__ import annotations

import contextlib
import copy
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.utils import assert_all_finite, check_consistent_length, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import (
    _get_feature_names,
    check_array,
    check_is_fitted,
    validate_data,
)
from skorch import NeuralNet
from skorch.callbacks import (
    Callback,
    EarlyStopping,
    EpochTimer,
    PassthroughScoring,
    PrintLog,
    ProgressBar,
)

from ._batches import ArrayBatches, BatchIterator
from ._targets import MISSING_CODE, encode_targets, missing_mask, split_columns
from .losses import MultiTaskCrossEntropy
from .network import MMoENetwork, _softmax_last_dim

__all__ = ["MultiTaskMMoEClassifier"]

_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

# Rows per forward pass at prediction time: large enough to amortise the
# per-call overhead, small enough to bound the activations' memory.
_PREDICT_CHUNK = 16384

# BLAS kernels multiply rows in panels, and a row's float32 result can depend
# on whether it falls in a full panel or in the remainder. Predicting on a
# multiple of this many rows makes each row's output independent of how many
# rows are predicted together (one row online gives the same as in a batch).
_ROW_ALIGN = 16

# Epochs with at least this many batches get a progress bar when verbose.
_PROGRESS_BAR_MIN_BATCHES = 50


class _HoldOut:
    """skorch ``train_split``: a random validation fraction of the rows."""

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset: ArrayBatches, y: Any = None, **fit_params: Any):
        n_valid = _n_validation_rows(len(dataset), self.fraction)
        order = np.random.default_rng(self.seed).permutation(len(dataset))
        return dataset.subset(order[n_valid:]), dataset.subset(order[:n_valid])


def _n_validation_rows(n_samples: int, fraction: float) -> int:
    return max(1, int(round(fraction * n_samples)))


class _MultiTaskNet(NeuralNet):
    """skorch ``NeuralNet`` that also records each task's loss per epoch.

    The per-task sums stay on the device during an epoch and are read once
    at its end, so they add no host synchronisation per batch.
    """

    def __init__(
        self,
        *args: Any,
        task_names: Sequence[str] = (),
        module_params: dict | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.task_names = list(task_names)
        # The architecture the module was built with, to refuse continuing
        # training (warm_start, partial_fit) with another one.
        self.module_params = dict(module_params or {})
        self._task_loss_sums = {}

    @property
    def _default_callbacks(self) -> list[tuple[str, Callback]]:
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]

    def _set_training(self, training: bool = True) -> None:
        # skorch calls this before every batch, and switching modes walks and
        # sets every submodule (a few % of a small batch's step): only switch
        # when some module is in the other mode.
        modules = [getattr(self, name + "_") for name in self._modules + self._criteria]
        if any(
            sub.training != training
            for module in modules
            if isinstance(module, torch.nn.Module)
            for sub in module.modules()
        ):
            super()._set_training(training)

    def on_epoch_begin(self, net: NeuralNet, **kwargs: Any) -> None:
        super().on_epoch_begin(net, **kwargs)
        self._task_loss_sums = {}

    def get_loss(
        self,
        y_pred: torch.Tensor,
        y_true: torch.Tensor,
        X: Any = None,
        training: bool = False,
    ) -> torch.Tensor:
        y_true = y_true.to(y_pred.device)
        losses, counts = self.criterion_.task_losses(y_pred, y_true)
        sums = self._task_loss_sums.get(training)
        batch_sums = torch.stack([losses.detach() * counts, counts.to(losses.dtype)])
        self._task_loss_sums[training] = (
            batch_sums if sums is None else sums + batch_sums
        )
        return self.criterion_.combine(losses)

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        super().on_epoch_end(net, **kwargs)
        for training, sums in self._task_loss_sums.items():
            prefix = "train" if training else "valid"
            total, count = sums.cpu().numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.where(count > 0, total / count, np.nan)
            for name, value in zip(self.task_names, means, strict=True):
                self.history.record(f"{prefix}_loss_{name}", float(value))


class _StopOnNonFinite(Callback):
    """Stop training as soon as an epoch ends with a non-finite loss or weight.

    The loss of an epoch is computed before its last update, so the weights
    are checked too.
    """

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        loss = net.history[-1, "train_loss"]
        if not np.isfinite(loss):
            raise _NonFiniteLoss(f"the training loss became {loss}")
        finite = torch.stack([p.isfinite().all() for p in net.module_.parameters()])
        if not bool(finite.all()):
            raise _NonFiniteLoss("the weights became infinite or NaN")


class _NonFiniteLoss(Exception):
    pass


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch within the block and restore the caller's RNG state after.

    Initialisation, dropout and gate dropout then depend on
    ``random_state`` only, and fitting leaves the global RNG untouched.
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class MultiTaskMMoEClassifier(ClassifierMixin, BaseEstimator):
    """Multi-gate Mixture-of-Experts classifier for several tasks at once.

    One network predicts every column ("task") of a target matrix ``Y``.
    ``n_experts`` expert networks read the input; each task has its own
    softmax gate that mixes the experts' outputs, and its own tower that
    turns the mixture into class probabilities (Ma et al., 2018). Training
    minimises :math:`\\sum_k \\lambda_k L_k`, where :math:`L_k` is the
    cross-entropy of task :math:`k` averaged over the rows labelled for that
    task and :math:`\\lambda_k` its weight in ``task_weights``.

    The baselines of the MMoE paper are parameter settings of this
    estimator, so that :class:`~sklearn.model_selection.GridSearchCV` can
    compare them: ``n_experts=1`` is the Shared-Bottom model and
    ``shared_gate=True`` the One-gate Mixture-of-Experts (OMoE).
    ``n_task_experts`` and ``n_levels`` give CGC and PLE (Tang et al., 2020).

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_experts : int, default=4
        Number of shared experts :math:`M`. ``n_experts=1`` (with
        ``n_task_experts=0``) is the Shared-Bottom model.

    expert_hidden_layer_sizes : sequence of int, default=(32,)
        Units of each layer of an expert (ReLU MLP); the last entry is the
        size of the representation that the gates mix.

    tower_hidden_layer_sizes : sequence of int, default=(16,)
        Hidden units of each task tower, before its linear output layer with
        one unit per class. ``()`` gives linear towers.

    n_task_experts : int, default=0
        Experts private to each task, beside the shared ones (Customized Gate
        Control). Task :math:`k`'s gate mixes the shared experts and its own.

    n_levels : int, default=1
        Number of stacked extraction levels; ``> 1`` gives Progressive
        Layered Extraction (PLE).

    shared_gate : bool, default=False
        Use one gate for all tasks: the One-gate MoE baseline. Cannot be
        combined with ``n_task_experts > 0``.

    gate_dropout : float, default=0.0
        During training, zero each expert's gate weight with this probability
        and renormalise the others (Zhao et al., 2019, against gate
        polarisation). Not applied at prediction time.

    dropout : float, default=0.0
        Dropout probability after every hidden layer of experts and towers.

    task_weights : array-like of shape (n_tasks,) or dict, default=None
        Weight :math:`\\lambda_k` of each task's loss, in the order of the
        columns of ``Y``, or a dict from task name to weight (tasks not named
        get 1). Non-negative, not all zero. ``None`` gives equal weights.

    class_weight : dict, list, "balanced" or None, default=None
        Weights of the classes within each task's loss. ``"balanced"``
        weights each task's classes by ``n_labelled / (n_classes *
        count(class))`` over that task's labelled rows; a list gives one
        entry per task (``None``, ``"balanced"`` or a dict from class label to
        weight); a dict is accepted for a single task.

    missing_label : int, float, str or None, default=-1
        Value of ``Y`` that marks an entry without label. NaN and None are
        always missing. A missing entry is left out of its task's loss only.

    optimizer : {"adam", "adamw", "sgd", "rmsprop", "adagrad"} or \
            torch optimizer class, default="adam"
        Optimizer of the network's parameters.

    lr : float, default=1e-3
        Learning rate.

    weight_decay : float, default=0.0
        L2 penalty (the optimizer's ``weight_decay``).

    batch_size : int, default=256
        Rows per mini-batch.

    max_epochs : int, default=50
        Number of passes over the training data (the maximum, with early
        stopping). With ``warm_start``, the number of further epochs per call.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows and stop when the total
        validation loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs; the weights of the best epoch are restored.

    validation_fraction : float, default=0.1
        Fraction of the rows held out for early stopping.

    n_iter_no_change : int, default=10
        Epochs without improvement before early stopping.

    tol : float, default=1e-4
        Minimum decrease of the validation loss that counts as improvement.

    warm_start : bool, default=False
        If True, ``fit`` continues training the current network instead of
        starting anew, with the current ``lr``, ``weight_decay``,
        ``batch_size`` and ``optimizer`` (a new optimizer class starts with a
        fresh state). The tasks, their classes and the architecture
        parameters must be unchanged.

    callbacks : list of skorch callbacks, default=None
        Extra `skorch callbacks
        <https://skorch.readthedocs.io/en/stable/callbacks.html>`_ added to
        the training loop (learning-rate schedules, gradient clipping...).

    device : str or torch.device, default="cpu"
        Device that trains and runs the network, e.g. ``"cuda"``.

    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the batch order, dropout and the
        validation split. With an int, two fits on the same data give
        identical models on CPU.

    verbose : int, default=0
        ``0`` is silent; ``> 0`` prints, after every epoch, the total and
        per-task losses and the epoch's duration, with a progress bar over
        the batches of long epochs.

    Attributes
    ----------
    classes_ : list of ndarray, or ndarray
        The labels of each task. For a 1-D ``y`` (a single task), a single
        array.

    n_outputs_ : int
        Number of tasks.

    task_names_ : list of str
        Names of the tasks: the columns of a DataFrame ``Y``, else
        ``"task0"``, ``"task1"``...

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    module_ : MMoENetwork
        The trained :class:`torch.nn.Module`.

    net_ : skorch.NeuralNet
        The skorch wrapper that trained ``module_``.

    history_ : list of dict
        One dict per epoch: ``epoch``, ``train_loss`` (the weighted total),
        ``train_loss_<task>`` for every task, ``dur`` (seconds),
        ``train_batch_count`` and ``train_loss_best`` (whether the epoch
        improved on the best loss so far) and, with early stopping, the same
        ``valid_`` entries. Callbacks may add more.

    n_iter_ : int
        Number of epochs run.

    See Also
    --------
    sk_mmoe.network.MMoENetwork : The network, usable without the estimator.
    sklearn.multioutput.MultiOutputClassifier : One independent model per task.

    Notes
    -----
    A 1-D ``y`` is a single task: ``predict`` then returns a 1-D array and
    ``predict_proba`` a single array, as for other scikit-learn classifiers.

    References
    ----------
    .. [1] J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling
       Task Relationships in Multi-task Learning with Multi-gate
       Mixture-of-Experts", KDD 2018.

    Examples
    --------
    >>> from sk_mmoe import MultiTaskMMoEClassifier
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> X, Y = make_task_correlation(500, correlation=0.8, n_features=10,
    ...                              random_state=0)
    >>> clf = MultiTaskMMoEClassifier(max_epochs=5, random_state=0).fit(X, Y)
    >>> clf.predict(X[:3]).shape
    (3, 2)
    >>> [p.shape for p in clf.predict_proba(X[:3])]
    [(3, 2), (3, 2)]
    >>> clf.gate_weights(X[:3]).shape
    (3, 2, 4)
    """

    _parameter_constraints: dict = {
        "n_experts": [Interval(numbers.Integral, 1, None, closed="left")],
        "expert_hidden_layer_sizes": ["array-like"],
        "tower_hidden_layer_sizes": ["array-like"],
        "n_task_experts": [Interval(numbers.Integral, 0, None, closed="left")],
        "n_levels": [Interval(numbers.Integral, 1, None, closed="left")],
        "shared_gate": ["boolean"],
        "gate_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "task_weights": ["array-like", dict, None],
        "class_weight": [StrOptions({"balanced"}), dict, list, None],
        "missing_label": [numbers.Real, str, None],
        "optimizer": [StrOptions(set(_OPTIMIZERS)), type],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "callbacks": [list, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_experts: int = 4,
        *,
        expert_hidden_layer_sizes: Sequence[int] = (32,),
        tower_hidden_layer_sizes: Sequence[int] = (16,),
        n_task_experts: int = 0,
        n_levels: int = 1,
        shared_gate: bool = False,
        gate_dropout: float = 0.0,
        dropout: float = 0.0,
        task_weights: Sequence[float] | Mapping[str, float] | None = None,
        class_weight: str | dict | list | None = None,
        missing_label: int | float | str | None = -1,
        optimizer: str | type = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 256,
        max_epochs: int = 50,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        callbacks: list | None = None,
        device: str | torch.device = "cpu",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_experts = n_experts
        self.expert_hidden_layer_sizes = expert_hidden_layer_sizes
        self.tower_hidden_layer_sizes = tower_hidden_layer_sizes
        self.n_task_experts = n_task_experts
        self.n_levels = n_levels
        self.shared_gate = shared_gate
        self.gate_dropout = gate_dropout
        self.dropout = dropout
        self.task_weights = task_weights
        self.class_weight = class_weight
        self.missing_label = missing_label
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------
    # Fitting
    # ------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> MultiTaskMMoEClassifier:
        """Fit the network to every task of ``Y``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features. Converted to float32; a sparse matrix stays sparse
            and is densified one mini-batch at a time.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Targets ``Y``: one column per task, each with its own labels (ints, bools,
            strings...). Entries equal to ``missing_label``, NaN or None are
            unlabelled for that task only. A 1-D ``y`` is a single task.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        incremental = self.warm_start and hasattr(self, "net_")
        return self._fit(X, y, incremental=incremental, classes=None, epochs=None)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: Any, y: Any, classes: Sequence[Any] | None = None
    ) -> MultiTaskMMoEClassifier:
        """Run one epoch of training on ``(X, Y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Targets, one column per task, as in :meth:`fit`.

        classes : list of array-like, default=None
            The labels of every task (one array per task; for a 1-D ``y``, one
            array). Required in the first call, since a chunk may lack some
            classes; ignored (but checked) afterwards.

        Returns
        -------
        self : object
            The updated estimator.
        """
        first_call = not hasattr(self, "net_")
        if first_call and classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit: one "
                "array of labels per task."
            )
        if self.class_weight == "balanced" or (
            isinstance(self.class_weight, list) and "balanced" in self.class_weight
        ):
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit, since "
                "the class frequencies of the whole data are unknown; pass "
                "explicit class weights."
            )
        if not first_call and classes is None:
            classes = self._task_classes()
        return self._fit(
            X, y, incremental=not first_call, classes=classes, epochs=1, early=False
        )

    def _fit(
        self,
        X: Any,
        y: Any,
        *,
        incremental: bool,
        classes: Sequence[Any] | None,
        epochs: int | None,
        early: bool | None = None,
    ) -> MultiTaskMMoEClassifier:
        early = self.early_stopping if early is None else early
        device = self._check_device()
        # Validate everything before touching the fitted state, so that a
        # failed call leaves a fitted model as it was.
        if incremental:
            X = validate_data(
                self,
                X,
                reset=False,
                accept_sparse="csr",
                dtype=np.float32,
            )
            feature_names = getattr(self, "feature_names_in_", None)
        else:
            feature_names = _get_feature_names(X)
            X = check_array(
                X, accept_sparse="csr", dtype=np.float32, input_name="X", estimator=self
            )
        if incremental and y is not None:
            self._check_task_columns(y)
        targets = encode_targets(
            y, self.missing_label, n_samples=X.shape[0], classes=classes
        )
        if incremental:
            self._check_same_tasks(targets)
        n_classes = [len(c) for c in targets.classes]
        task_weights = self._check_task_weights(targets.task_names)
        class_weights = self._check_class_weight(targets)
        n_valid = (
            _n_validation_rows(X.shape[0], self.validation_fraction) if early else 0
        )
        if n_valid >= X.shape[0]:
            raise ValueError(
                f"early_stopping needs at least 2 samples to hold out "
                f"validation_fraction={self.validation_fraction} of them, got "
                f"n_samples={X.shape[0]}."
            )
        # A new network checks its parameters as _make_net builds it; a
        # fitted one must keep the architecture it was built with.
        if incremental:
            module_params = self._check_module_params()
            if module_params != self.net_.module_params:
                raise ValueError(
                    "warm_start and partial_fit continue training the fitted "
                    "network, but its architecture parameters changed since the "
                    f"first fit (from {self.net_.module_params} to "
                    f"{module_params}); refit with warm_start=False."
                )

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if incremental:
            # Train a copy, published only if training succeeds: a failed call
            # leaves the fitted network as it was.
            net = copy.deepcopy(self.net_)
            # A new seed per call, so successive calls see new batch orders.
            seed = (seed + len(net.history)) % np.iinfo(np.int32).max
            self._update_training_params(net)
            net.criterion_.set_weights(task_weights, class_weights)
        else:
            with _seeded(seed, device):
                net = self._make_net(X.shape[1], n_classes, targets.task_names, device)
            net.criterion.set_weights(task_weights, class_weights)

        dataset = ArrayBatches(X, targets.codes)
        n_train = X.shape[0] - n_valid
        net.train_split = _HoldOut(self.validation_fraction, seed) if early else None
        net.callbacks = self._training_callbacks(early, n_train)
        net.iterator_train__seed = seed
        net.max_epochs = self.max_epochs if epochs is None else epochs
        net.verbose = self.verbose
        try:
            with _seeded(seed, device):
                if incremental:
                    net.initialize_callbacks()
                else:
                    net.initialize()
                net.partial_fit(dataset)
        except _NonFiniteLoss as exc:
            raise ValueError(
                f"Training diverged: {exc.args[0]}. Scale the features (e.g. "
                f"StandardScaler) or lower lr (lr={self.lr})."
            ) from None
        # Prediction runs in eval mode; training switches back as it starts.
        net.module_.eval()

        # Training succeeded: publish the new state.
        self.net_ = net
        self.module_ = net.module_
        self.history_ = [
            {key: value for key, value in epoch.items() if key != "batches"}
            for epoch in net.history
        ]
        self.n_iter_ = len(self.history_)
        if not incremental:
            self.n_features_in_ = X.shape[1]
            if feature_names is not None:
                self.feature_names_in_ = feature_names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            self.task_names_ = targets.task_names
            self.n_outputs_ = len(targets.classes)
            self._single_task = targets.is_single_task
            self.classes_ = (
                targets.classes[0] if targets.is_single_task else targets.classes
            )
        return self

    def _make_net(
        self,
        n_features: int,
        n_classes: Sequence[int],
        task_names: Sequence[str],
        device: torch.device,
    ) -> _MultiTaskNet:
        """A new, uninitialised skorch net around a new network.

        Call it under :func:`_seeded`: it draws the initial weights.
        """
        module_params = self._check_module_params()
        module = MMoENetwork(n_features, n_classes, **module_params)
        return _MultiTaskNet(
            module=module,
            criterion=MultiTaskCrossEntropy(n_classes, ignore_index=MISSING_CODE),
            optimizer=self._optimizer_class(),
            lr=self.lr,
            optimizer__weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            iterator_train=BatchIterator,
            iterator_valid=BatchIterator,
            iterator_train__shuffle=True,
            train_split=None,
            device=str(device),
            task_names=task_names,
            module_params=module_params,
        )

    def _update_training_params(self, net: _MultiTaskNet) -> None:
        """Apply the current optimisation parameters to a fitted net."""
        net.batch_size = self.batch_size
        net.lr = self.lr
        net.optimizer__weight_decay = self.weight_decay
        if net.optimizer is not self._optimizer_class():
            net.optimizer = self._optimizer_class()
            net.initialize_optimizer()
        for group in net.optimizer_.param_groups:
            group["lr"] = self.lr
            group["weight_decay"] = self.weight_decay

    def _check_device(self) -> torch.device:
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={self.device!r} is not a torch device.") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} was requested but CUDA is not available "
                f"on this machine; use device='cpu'."
            )
        return device

    def _check_module_params(self) -> dict[str, Any]:
        def sizes(value: Any, name: str, allow_empty: bool) -> tuple[int, ...]:
            value = tuple(np.atleast_1d(np.asarray(value)).tolist())
            if (not value and not allow_empty) or not all(
                isinstance(v, numbers.Integral) and v >= 1 for v in value
            ):
                raise ValueError(
                    f"{name} must be a sequence of positive ints"
                    f"{'' if allow_empty else ' (at least one)'}, got {value!r}."
                )
            return value

        return dict(
            n_experts=self.n_experts,
            expert_hidden_layer_sizes=sizes(
                self.expert_hidden_layer_sizes, "expert_hidden_layer_sizes", False
            ),
            tower_hidden_layer_sizes=sizes(
                self.tower_hidden_layer_sizes, "tower_hidden_layer_sizes", True
            ),
            n_task_experts=self.n_task_experts,
            n_levels=self.n_levels,
            shared_gate=self.shared_gate,
            gate_dropout=self.gate_dropout,
            dropout=self.dropout,
        )

    def _optimizer_class(self) -> type:
        if isinstance(self.optimizer, str):
            return _OPTIMIZERS[self.optimizer]
        if not issubclass(self.optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer must be one of {sorted(_OPTIMIZERS)} or a subclass of "
                f"torch.optim.Optimizer, got {self.optimizer!r}."
            )
        return self.optimizer

    def _check_task_weights(self, task_names: list[str]) -> np.ndarray:
        n_tasks = len(task_names)
        if self.task_weights is None:
            return np.ones(n_tasks)
        if isinstance(self.task_weights, Mapping):
            unknown = set(map(str, self.task_weights)) - set(task_names)
            if unknown:
                raise ValueError(
                    f"task_weights names unknown tasks {sorted(unknown)}; the "
                    f"tasks are {task_names}."
                )
            named = {str(k): v for k, v in self.task_weights.items()}
            weights = [named.get(name, 1.0) for name in task_names]
        else:
            weights = self.task_weights
        try:
            weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"task_weights must be numbers, got {self.task_weights!r}."
            ) from exc
        if weights.shape[0] != n_tasks:
            raise ValueError(
                f"task_weights must have one weight per task: y has {n_tasks} "
                f"task(s), task_weights has {weights.shape[0]}."
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(
                f"task_weights must be finite and non-negative, got {weights.tolist()}."
            )
        if not np.any(weights > 0):
            raise ValueError("task_weights must not all be zero.")
        return weights

    def _check_class_weight(self, targets: Any) -> list[np.ndarray] | None:
        class_weight = self.class_weight
        n_tasks = len(targets.classes)
        if class_weight is None:
            return None
        if isinstance(class_weight, str | dict):
            if isinstance(class_weight, dict) and n_tasks > 1:
                raise ValueError(
                    "class_weight as a dict is for a single task; with "
                    f"{n_tasks} tasks pass a list of one dict (or 'balanced' or "
                    "None) per task."
                )
            class_weight = [class_weight] * n_tasks
        if len(class_weight) != n_tasks:
            raise ValueError(
                f"class_weight must have one entry per task: y has {n_tasks} "
                f"task(s), class_weight has {len(class_weight)}."
            )
        weights = []
        for k, (entry, classes) in enumerate(
            zip(class_weight, targets.classes, strict=True)
        ):
            name = targets.task_names[k]
            if entry is None:
                weights.append(np.ones(len(classes)))
            elif isinstance(entry, str) and entry == "balanced":
                codes = targets.codes[:, k]
                codes = codes[codes != MISSING_CODE]
                present = np.unique(codes)
                w = np.ones(len(classes))
                w[present] = compute_class_weight("balanced", classes=present, y=codes)
                weights.append(w)
            elif isinstance(entry, dict):
                unknown = [c for c in entry if not np.isin(c, classes).item()]
                if unknown:
                    raise ValueError(
                        f"class_weight for task {name!r} names labels {unknown} "
                        f"that are not among its classes {classes.tolist()}."
                    )
                w = np.array([float(entry.get(c, 1.0)) for c in classes.tolist()])
                if not np.all(np.isfinite(w)) or np.any(w < 0):
                    raise ValueError(
                        f"class_weight for task {name!r} must be finite and "
                        f"non-negative, got {entry!r}."
                    )
                weights.append(w)
            else:
                raise ValueError(
                    f"class_weight entry for task {name!r} must be None, "
                    f"'balanced' or a dict, got {entry!r}."
                )
        return weights

    def _check_task_columns(self, y: Any) -> None:
        """Check that ``y`` has the fitted tasks: their number and names.

        A DataFrame's columns must be the fitted task names in the same
        order, unless the model was fitted without names.
        """
        n_tasks = 1 if np.ndim(y) == 1 else np.shape(y)[1]
        names = [str(c) for c in y.columns] if hasattr(y, "columns") else None
        unnamed = self.task_names_ == [f"task{k}" for k in range(self.n_outputs_)]
        if n_tasks != self.n_outputs_ or not (
            names is None or unnamed or names == self.task_names_
        ):
            got = names if names is not None else f"{n_tasks} task(s)"
            raise ValueError(
                f"y must have the tasks the model was fitted on, "
                f"{self.task_names_}, in that order; got {got}."
            )

    def _check_same_tasks(self, targets: Any) -> None:
        classes = self._task_classes()
        same = len(classes) == len(targets.classes) and all(
            a.shape == b.shape and np.array_equal(a, b)
            for a, b in zip(classes, targets.classes, strict=True)
        )
        if not same:
            raise ValueError(
                "y must have the same tasks and classes as in the first fit to "
                "continue training (warm_start or partial_fit): expected classes "
                f"{[c.tolist() for c in classes]}, got "
                f"{[c.tolist() for c in targets.classes]}."
            )

    def _training_callbacks(self, early: bool, n_train: int) -> list:
        callbacks = [("stop_on_non_finite", _StopOnNonFinite())]
        if early:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss",
                        patience=self.n_iter_no_change,
                        threshold=self.tol,
                        threshold_mode="abs",
                        load_best=True,
                        sink=_silent,
                    ),
                )
            )
        # Deep copies: fitting must not change the objects in the parameters.
        callbacks.extend(copy.deepcopy(list(self.callbacks or [])))
        if self.verbose:
            n_batches = -(-n_train // self.batch_size)
            if n_batches >= _PROGRESS_BAR_MIN_BATCHES:
                callbacks.append(
                    ("progress_bar", ProgressBar(batches_per_epoch=n_batches))
                )
            callbacks.append(("print_log", PrintLog(keys_ignored=["event_lr"])))
        return callbacks

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------

    def _validate_X(self, X: Any) -> Any:
        check_is_fitted(self)
        if (
            type(X) is np.ndarray
            and X.dtype == np.float32
            and X.ndim == 2
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
        ):
            # validate_data would return this array unchanged after checking
            # that it is finite; its other checks cost as much as predicting
            # one row (online serving).
            assert_all_finite(X, estimator_name=type(self).__name__, input_name="X")
            return X
        return validate_data(
            self, X, reset=False, accept_sparse="csr", dtype=np.float32
        )

    def _forward(self, X: Any, gates: bool = False) -> torch.Tensor:
        """The logits (or gate weights) of ``X``, computed chunk by chunk."""
        module = self.module_
        device = next(module.parameters()).device
        # Predict in eval mode. Fitting leaves the network in it, so this only
        # switches (for good) after a user put the module in training mode:
        # switching back and forth would race between concurrent predictions.
        if module.training:
            module.eval()
        dataset = ArrayBatches(X)
        chunks = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                Xb, _ = dataset.batch(slice(start, start + _PREDICT_CHUNK))
                n_rows = Xb.shape[0]
                out = module(_pad_rows(Xb).to(device), return_gates=gates)
                chunks.append((out[1] if gates else out)[:n_rows])
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def _task_classes(self) -> list[np.ndarray]:
        return [self.classes_] if self._single_task else self.classes_

    def predict_proba(self, X: Any) -> list[np.ndarray] | np.ndarray:
        """Class probabilities of every task.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        proba : list of ndarray of shape (n_samples, n_classes_k), or ndarray
            One array per task, with columns in the order of ``classes_[k]``
            and rows summing to 1. A single array if fitted on a 1-D ``y``.
        """
        X = self._validate_X(X)
        proba = _softmax_last_dim(self._forward(X)).cpu().numpy()
        out = []
        for k, classes in enumerate(self._task_classes()):
            p = proba[:, k, : len(classes)].astype(np.float64)
            # Renormalise in float64 so that rows sum to 1 to double precision.
            p /= p.sum(axis=1, keepdims=True)
            out.append(p)
        return out[0] if self._single_task else out

    def predict(self, X: Any) -> np.ndarray:
        """Predicted label of every task.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_tasks) or (n_samples,)
            The most probable label of each task, in the tasks' own label
            types (an object array if they differ). 1-D if fitted on a 1-D
            ``y``.
        """
        X = self._validate_X(X)
        codes = self._forward(X).argmax(dim=-1).cpu().numpy()
        columns = [
            classes[codes[:, k]] for k, classes in enumerate(self._task_classes())
        ]
        if self._single_task:
            return columns[0]
        dtypes = {c.dtype for c in columns}
        dtype = dtypes.pop() if len(dtypes) == 1 else object
        Y_pred = np.empty((X.shape[0], len(columns)), dtype=dtype)
        for k, column in enumerate(columns):
            Y_pred[:, k] = column
        return Y_pred

    def gate_weights(self, X: Any) -> np.ndarray:
        """Softmax gate weights of every task for every sample.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        weights : ndarray of shape (n_samples, n_tasks, n_gate_experts)
            ``weights[i, k, j]`` is the weight of expert ``j`` in task ``k``'s
            mixture for sample ``i`` (rows sum to 1), as used at prediction
            time (without gate dropout). With task-specific experts the
            experts of the last level are ordered shared first, then each
            task's own ones in task order.
        """
        X = self._validate_X(X)
        return self._forward(X, gates=True).cpu().numpy().astype(np.float64)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean over tasks of each task's accuracy on its labelled rows.

        For every task, the rows whose label in ``Y`` is ``missing_label``,
        NaN or None are dropped and the accuracy of :meth:`predict` is
        computed on the others (weighted by ``sample_weight`` if given). The
        result is the unweighted mean of these accuracies over the tasks that
        have at least one labelled row. For a single task this is the
        ordinary accuracy.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True labels, one column per task, with missing entries as in
            :meth:`fit`.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean per-task accuracy.
        """
        Y_pred = self.predict(X)
        self._check_task_columns(y)
        columns, _, _ = split_columns(y)
        check_consistent_length(Y_pred, columns[0], sample_weight)
        Y_pred = Y_pred.reshape(len(Y_pred), -1)
        weights = None if sample_weight is None else np.asarray(sample_weight)
        scores = []
        for k, column in enumerate(columns):
            labelled = ~missing_mask(column, self.missing_label)
            if labelled.any():
                scores.append(
                    accuracy_score(
                        column[labelled].tolist(),
                        Y_pred[labelled, k].tolist(),
                        sample_weight=None if weights is None else weights[labelled],
                    )
                )
        if not scores:
            raise ValueError("y has no labelled entry to score.")
        return float(np.mean(scores))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags


def _pad_rows(X: torch.Tensor) -> torch.Tensor:
    """``X`` with zero rows appended up to a multiple of ``_ROW_ALIGN`` rows."""
    missing = -X.shape[0] % _ROW_ALIGN
    if not missing:
        return X
    return torch.cat([X, X.new_zeros(missing, X.shape[1])])


def _silent(*args: Any, **kwargs: Any) -> None:
    """A sink for skorch callbacks' messages."""
