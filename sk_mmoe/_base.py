"""The base of the MMoE estimators: parameters, validation, fit and prediction.

:class:`BaseMultiTaskMMoE` holds everything the classifier, the regressor and
the mixed-task estimator share: the parameters of the network and of
training, the fit / ``partial_fit`` / warm-start flow (written once), the
fitted state (set in one place, :meth:`BaseMultiTaskMMoE._set_fitted_state`,
which :func:`sk_mmoe.load_model` uses too), and the forward pass behind
``predict``, ``gate_weights`` and ``score``. The public estimators only say
which task types they accept and how they present predictions.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import warnings
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import assert_all_finite, check_consistent_length, check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_array, check_is_fitted
from skorch.callbacks import Callback, EarlyStopping

from ._batches import ArrayBatches, BatchIterator
from ._compat import Interval, StrOptions, fit_context, validate_data
from ._distributed import agree_seed, local_device
from ._features import CategoricalEncoder, categorical_mask, feature_names
from ._targets import (
    TargetColumns,
    check_not_lazy,
    default_task_names,
    encode_targets,
    is_polars,
    read_targets,
)
from ._tasks import ClassificationTask, Task, make_task
from ._threads import resolve_threads, torch_threads
from ._training import (
    OPTIMIZERS,
    HoldOut,
    MultiTaskNet,
    NonFiniteLoss,
    StopOnNonFinite,
    logging_callbacks,
    n_validation_rows,
    seeded,
    silent,
)
from .losses import MultiTaskLoss
from .network import (
    ACTIVATIONS,
    GATES,
    MMoENetwork,
    _softmax_last_dim,
    embedding_params,
)
from .weighting import WEIGHTING_STRATEGIES, FixedWeights, LossWeighting

__all__ = ["BaseMultiTaskMMoE"]

# Rows per forward pass at prediction time: large enough to amortise the
# per-call overhead, small enough to bound the activations' memory.
_PREDICT_CHUNK = 16384

# BLAS kernels multiply rows in panels, and a row's float32 result can depend
# on whether it falls in a full panel or in the remainder. Predicting on a
# multiple of this many rows makes each row's output independent of how many
# rows are predicted together (one row online gives the same as in a batch).
_ROW_ALIGN = 16

#: The parameters that build the network; declared once, here.
ARCHITECTURE_PARAMS = (
    "n_experts",
    "expert_hidden_layer_sizes",
    "tower_hidden_layer_sizes",
    "n_task_experts",
    "n_levels",
    "shared_gate",
    "gate_dropout",
    "dropout",
    "gate",
    "gate_k",
    "gate_temperature",
    "expert_activation",
    "expert_normalization",
    "ensemble_size",
)

# early_stopping="auto" holds out validation rows above this many rows, as
# scikit-learn's HistGradientBoosting estimators do.
_AUTO_EARLY_STOPPING_ROWS = 10_000

# numeric_embedding="auto" embeds the numeric columns of inputs with at most
# this many: each costs a few operations per batch, which dominate the step
# of a small network when there are many.
_AUTO_NUMERIC_EMBEDDING_COLUMNS = 16

# A sparse input at least this wide is read through a sparse projection
# (cost set by the non-zeros) rather than densified batch by batch.
_SPARSE_PROJECTION_MIN_FEATURES = 1024

# Values of a categorical column seen fewer times in fit share the code of
# unknown values, which the network thus learns from rare values.
_MIN_CATEGORY_FREQUENCY = 2

# Parameters validated as Integral that must not be booleans (True == 1).
_INTEGER_PARAMS = (
    "n_experts",
    "n_task_experts",
    "n_levels",
    "gate_k",
    "ensemble_size",
    "batch_size",
    "max_epochs",
    "n_iter_no_change",
    "n_threads",
    "max_categories",
)


class BaseMultiTaskMMoE(BaseEstimator):
    """Base class of the MMoE estimators; not meant to be used directly.

    Subclasses define ``__init__`` (their parameters), the task types they
    accept (:meth:`_task_kinds`), the marker of a missing target
    (:meth:`_missing_marker`) and the fitted attributes that describe their
    tasks (:meth:`_set_task_attributes`).
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
        "gate": [StrOptions(set(GATES))],
        "gate_k": [Interval(numbers.Integral, 1, None, closed="left")],
        "gate_temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "gate_balance": [Interval(numbers.Real, 0, None, closed="left")],
        "expert_activation": [StrOptions(set(ACTIVATIONS))],
        "expert_normalization": [StrOptions({"layer"}), None],
        "ensemble_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "refit": ["boolean"],
        "task_weights": [
            "array-like",
            dict,
            StrOptions(set(WEIGHTING_STRATEGIES)),
            None,
        ],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "callbacks": [list, None],
        "categorical_features": [
            StrOptions({"from_dtype"}),
            "array-like",
            None,
        ],
        "max_categories": [Interval(numbers.Integral, 3, None, closed="left")],
        "numeric_scaling": [StrOptions({"robust"}), None],
        "numeric_embedding": [StrOptions({"auto", "periodic"}), None],
        "device": [str, torch.device],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # ------------------------------------------------------------------
    # What subclasses say
    # ------------------------------------------------------------------

    @abstractmethod
    def _missing_marker(self) -> Any:
        """The value of ``Y`` that marks a missing target (besides NaN/None)."""

    @abstractmethod
    def _task_kinds(self, targets: TargetColumns) -> list[str]:
        """The type of every task (keys of :data:`sk_mmoe._tasks.TASK_TYPES`)."""

    @abstractmethod
    def _set_task_attributes(self, tasks: list[Task], single_task: bool) -> None:
        """Set the fitted attributes that describe the tasks (``classes_``...)."""

    def _class_weight_param(self) -> Any:
        return None

    def _regression_loss(self) -> str:
        return "squared_error"

    # ------------------------------------------------------------------
    # Fitting
    # ------------------------------------------------------------------

    def _validate_params(self) -> None:
        super()._validate_params()
        for name in _INTEGER_PARAMS:
            value = getattr(self, name)
            if isinstance(value, bool | np.bool_):
                raise ValueError(
                    f"The {name!r} parameter of {type(self).__name__} must be an "
                    f"int, got the boolean {value!r}."
                )
        for entry in self.callbacks or []:
            callback = (
                entry[1] if isinstance(entry, tuple) and len(entry) == 2 else entry
            )
            is_callback = isinstance(callback, Callback) or (
                isinstance(callback, type) and issubclass(callback, Callback)
            )
            if not is_callback or (
                isinstance(entry, tuple) and not isinstance(entry[0], str)
            ):
                raise ValueError(
                    f"callbacks must hold skorch callbacks (instances or classes "
                    f"of skorch.callbacks.Callback, or (name, callback) pairs), "
                    f"got {entry!r}."
                )

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BaseMultiTaskMMoE:
        """Fit the network to every task of ``Y``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features. Converted to float32; a sparse matrix stays sparse
            and is densified one mini-batch at a time.

        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Targets ``Y``: one column per task, with labels (ints, bools,
            strings...) for a classification task and numbers for a
            regression task. NaN, None and the estimator's missing marker
            (``missing_label`` or ``missing_target``) mark an entry without
            target, left out of that task's loss only. A 1-D ``y`` is a
            single task.

        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, applied to every task's loss: each task's loss is
            the weighted mean over its labelled rows (and a regression task
            is standardised with the weighted mean and deviation).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit_entry(X, y, sample_weight, partial=False)

    def _fit_entry(self, X, y, sample_weight, *, partial: bool, classes=None):
        """The fit flow of ``fit`` and ``partial_fit`` (parameters validated)."""
        with torch_threads(resolve_threads(self.n_threads)):
            return self._fit_flow(X, y, sample_weight, partial=partial, classes=classes)

    def _fit_flow(self, X, y, sample_weight, *, partial: bool, classes=None):
        if not partial:
            incremental = self.warm_start and hasattr(self, "net_")
            self._fit(X, y, sample_weight, incremental=incremental)
            stopper = dict(self.net_.callbacks_).get("early_stopping")
            if self.refit and not incremental and stopper is not None:
                # Early stopping found the epoch count: train anew on every row.
                epochs = max(1, stopper.best_epoch_)
                self._fit(
                    X, y, sample_weight, incremental=False, epochs=epochs, early=False
                )
            return self
        # scikit-learn's fit_context validates partial_fit's parameters only
        # on the first call; set_params may change them between calls.
        self._validate_params()
        class_weight = self._class_weight_param()
        if class_weight == "balanced" or (
            isinstance(class_weight, list) and "balanced" in class_weight
        ):
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit, since "
                "the class frequencies of the whole data are unknown; pass "
                "explicit class weights."
            )
        first_call = not hasattr(self, "net_")
        return self._fit(
            X,
            y,
            sample_weight,
            incremental=not first_call,
            classes=classes,
            require_classes=first_call,
            epochs=1,
            early=False,
        )

    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        *,
        incremental: bool,
        classes: Sequence[Any] | None = None,
        require_classes: bool = False,
        epochs: int | None = None,
        early: bool | None = None,
    ) -> BaseMultiTaskMMoE:
        device = local_device(self._check_device())
        check_not_lazy(X, "X")
        # Validate everything before touching the fitted state, so that a
        # failed call leaves a fitted model as it was.
        if incremental:
            X = self._validate_X(X, fitted=False)
            names = getattr(self, "feature_names_in_", None)
            encoder = self._encoder
            self._check_task_columns(y)
        else:
            names = feature_names(X)
            X, encoder = self._encode_new_X(X)
        if early is None:
            early = self.early_stopping
            if early == "auto":
                early = X.shape[0] > _AUTO_EARLY_STOPPING_ROWS
        targets = read_targets(y, self._missing_marker(), n_samples=X.shape[0])
        sample_weight = _check_sample_weight(sample_weight, X.shape[0])
        tasks = self._fit_tasks(
            targets, classes, incremental, require_classes, sample_weight
        )
        encoded = encode_targets(targets, tasks)
        criterion_parts = self._criterion_parts(tasks, targets, encoded)
        n_valid = (
            n_validation_rows(X.shape[0], self.validation_fraction) if early else 0
        )
        if n_valid >= X.shape[0]:
            raise ValueError(
                f"early_stopping needs at least 2 samples to hold out "
                f"validation_fraction={self.validation_fraction} of them, got "
                f"n_samples={X.shape[0]}."
            )
        module_params = self._module_params()
        if incremental and module_params != self.net_.module_params:
            raise ValueError(
                "warm_start and partial_fit continue training the fitted "
                "network, but its architecture parameters changed since the "
                f"first fit (from {self.net_.module_params} to "
                f"{module_params}); refit with warm_start=False."
            )

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        seed = agree_seed(seed)  # rank 0's, in a data-parallel fit
        if incremental:
            # Train a copy, published only if training succeeds: a failed or
            # interrupted call leaves the fitted network as it was.
            net = copy.deepcopy(self.net_)
            # A new seed per call, so successive calls see new batch orders.
            seed = (seed + len(net.history)) % np.iinfo(np.int32).max
            self._update_training_params(net)
            net.criterion_ = self._make_criterion(
                tasks, *criterion_parts, learned=net.criterion_.weighting
            ).to(net.device)
        else:
            with seeded(seed, device):
                net = self._make_net(
                    X.shape[1],
                    tasks,
                    self._make_criterion(tasks, *criterion_parts),
                    device,
                    encoder,
                    # Scaling would densify a sparse input: not for those.
                    numeric_scaling=self.numeric_scaling == "robust"
                    and not sp.issparse(X),
                    numeric_embedding=self._embeds_numbers(X, encoder),
                    sparse_projection=self._projection_width(X, len(tasks)),
                )
                if net.module.scaling is not None:
                    # Rows of weight 0 are as good as absent.
                    rows = X if sample_weight is None else X[sample_weight > 0]
                    net.module.scaling.set_statistics(*_robust_statistics(rows, seed))

        dataset = ArrayBatches(
            X,
            encoded,
            sample_weight,
            sparse_batches=net.module.projection is not None,
        )
        net.train_split = HoldOut(self.validation_fraction, seed) if early else None
        net.callbacks = self._training_callbacks(early, X.shape[0] - n_valid)
        net.iterator_train__seed = seed
        net.max_epochs = self.max_epochs if epochs is None else epochs
        net.verbose = self.verbose
        try:
            with seeded(seed, device):
                if incremental:
                    net.initialize_callbacks()
                else:
                    net.initialize()
                net.partial_fit(dataset)
        except NonFiniteLoss as exc:
            raise ValueError(
                f"Training diverged: {exc.args[0]}. Scale the features (e.g. "
                f"StandardScaler) or lower lr (lr={self.lr})."
            ) from None
        # Prediction runs in eval mode; training switches back as it starts.
        net.module_.eval()
        if incremental:
            self._set_fitted_state(net, self._tasks)
        else:
            self._set_fitted_state(
                net,
                tasks,
                n_features=X.shape[1],
                feature_names=names,
                single_task=targets.is_single_task,
                encoder=encoder,
            )
        return self

    def _encode_new_X(self, X: Any) -> tuple[Any, CategoricalEncoder | None]:
        """``X`` of a new fit as float32, with its categorical encoder if any."""
        if self.categorical_features is None or (
            isinstance(self.categorical_features, str) and not hasattr(X, "dtypes")
        ):
            mask = None  # nothing categorical: the usual array path
        else:
            if not hasattr(X, "shape") or getattr(X, "ndim", 2) != 2:
                X = np.asarray(X, dtype=object)
            if len(X.shape) != 2:
                raise ValueError(f"X must be 2-D, got shape {X.shape}.")
            mask = categorical_mask(X, self.categorical_features)
        if mask is None or not mask.any():
            X = check_array(
                X, accept_sparse="csr", dtype=np.float32, input_name="X", estimator=self
            )
            return X, None
        if hasattr(X, "toarray"):
            raise ValueError(
                "categorical_features cannot be used with a sparse X; pass a "
                "DataFrame (or a dense array) with the categorical columns."
            )
        if X.shape[0] == 0:
            raise ValueError("Found array with 0 sample(s) while fitting; X is empty.")
        encoder = CategoricalEncoder(
            mask, self.max_categories, _MIN_CATEGORY_FREQUENCY
        ).fit(X)
        encoded = encoder.transform(X)
        assert_all_finite(encoded, estimator_name=type(self).__name__, input_name="X")
        return encoded, encoder

    def _set_fitted_state(
        self,
        net: MultiTaskNet,
        tasks: list[Task],
        *,
        n_features: int | None = None,
        feature_names: np.ndarray | None = None,
        single_task: bool | None = None,
        encoder: CategoricalEncoder | None = None,
    ) -> None:
        """Publish a trained net: the one place that sets the fitted state.

        ``fit``, ``partial_fit`` and :func:`sk_mmoe.load_model` all end here.
        Continued training passes only ``net`` and ``tasks``: the data
        description (features, task columns) is that of the first fit.
        """
        self.net_ = net
        self.module_ = net.module_
        self.history_ = [
            {key: value for key, value in epoch.items() if key != "batches"}
            for epoch in net.history
        ]
        self.n_iter_ = len(self.history_)
        weights = net.criterion_.weighting.weights().detach().cpu().numpy()
        self.task_weights_ = weights.astype(np.float64)
        if n_features is None:
            return
        self.n_features_in_ = n_features
        if feature_names is not None:
            self.feature_names_in_ = feature_names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._tasks = list(tasks)
        self._single_task = bool(single_task)
        self._encoder = encoder
        self.task_names_ = [task.name for task in tasks]
        self.task_types_ = [task.kind for task in tasks]
        self.n_outputs_ = len(tasks)
        self._set_task_attributes(self._tasks, self._single_task)

    def _fit_tasks(
        self,
        targets: TargetColumns,
        classes: Sequence[Any] | None,
        incremental: bool,
        require_classes: bool,
        sample_weight: np.ndarray | None = None,
    ) -> list[Task]:
        """The task objects of ``Y``: new ones, or the fitted ones checked.

        ``require_classes``: the first ``partial_fit`` call must name the
        classes of every classification task, since a chunk may lack some.
        """
        known = _per_task(classes, targets, "classes")
        # A chunk may lack some classes: infer binary / multiclass from the
        # labels together with the declared (first partial_fit) or fitted
        # classes, not from the chunk's labels alone.
        kinds = self._task_kinds(
            _with_known_labels(
                targets,
                [
                    t.classes if isinstance(t, ClassificationTask) else None
                    for t in self._tasks
                ]
                if incremental
                else known,
            )
        )
        tasks = []
        for k, (kind, name) in enumerate(zip(kinds, targets.names, strict=True)):
            task = make_task(kind, name)
            values = targets.labelled_values(k)
            if incremental:
                fitted = self._tasks[k]
                # classes are fixed by the first call: ones given later must
                # be the fitted ones, and the labels must be among them.
                if known[k] is None and isinstance(fitted, ClassificationTask):
                    known[k] = fitted.classes
                fitted.check_compatible(task.fit(values, known[k]))
                task = fitted
            else:
                if (
                    require_classes
                    and known[k] is None
                    and isinstance(task, ClassificationTask)
                ):
                    raise ValueError(
                        f"classes must be passed on the first call to "
                        f"partial_fit: the labels of every classification task "
                        f"(task {name!r} has none)."
                    )
                task.fit(
                    values,
                    known[k],
                    sample_weight=None
                    if sample_weight is None
                    else sample_weight[targets.labelled[k]],
                )
            tasks.append(task)
        return tasks

    def _criterion_parts(
        self, tasks: list[Task], targets: TargetColumns, encoded: np.ndarray
    ) -> tuple[Any, list[np.ndarray | None]]:
        """The validated task weights and class weights."""
        return self._check_task_weights(targets.names), self._check_class_weight(
            tasks, encoded
        )

    def _make_criterion(
        self,
        tasks: list[Task],
        task_weights: Any,
        class_weights: list[np.ndarray | None],
        learned: LossWeighting | None = None,
    ) -> MultiTaskLoss:
        """The loss; ``learned`` is a fitted weighting to continue training."""
        if isinstance(task_weights, str):
            if isinstance(learned, WEIGHTING_STRATEGIES[task_weights]):
                weighting = learned  # Keeps its learned state and optimizer slot.
            else:
                weighting = WEIGHTING_STRATEGIES[task_weights](
                    [task.loss == "regression" for task in tasks]
                )
        else:
            weighting = FixedWeights(task_weights)
        if learned is not None and type(weighting) is not type(learned):
            raise ValueError(
                f"task_weights={self.task_weights!r} selects another weighting "
                f"strategy than the fitted model's ({type(learned).__name__}); "
                f"refit with warm_start=False to change it."
            )
        return MultiTaskLoss(
            [task.loss for task in tasks],
            regression_loss=self._regression_loss(),
            weighting=weighting,
            class_weights=class_weights,
            gate_balance=self.gate_balance,
        )

    def _make_net(
        self,
        n_features: int,
        tasks: list[Task],
        criterion: MultiTaskLoss,
        device: torch.device,
        encoder: CategoricalEncoder | None = None,
        numeric_scaling: bool = False,
        numeric_embedding: bool = False,
        sparse_projection: int | None = None,
    ) -> MultiTaskNet:
        """A new, uninitialised skorch net around a new network.

        Call it under :func:`~sk_mmoe._training.seeded`: it draws the initial
        weights.
        """
        module_params = self._module_params()
        module = MMoENetwork(
            n_features,
            [t.n_outputs for t in tasks],
            **module_params,
            **embedding_params(encoder),
            numeric_scaling=numeric_scaling,
            numeric_embedding=numeric_embedding,
            sparse_projection=sparse_projection,
        )
        return MultiTaskNet(
            module=module,
            criterion=criterion,
            optimizer=self._optimizer_class(),
            lr=self.lr,
            optimizer__weight_decay=self.weight_decay,
            # Learned task weights are not shrunk towards zero.
            optimizer__param_groups=[("weighting.*", {"weight_decay": 0.0})],
            batch_size=self.batch_size,
            iterator_train=BatchIterator,
            iterator_valid=BatchIterator,
            iterator_train__shuffle=True,
            train_split=None,
            device=str(device),
            task_names=[task.name for task in tasks],
            module_params=module_params,
        )

    def _update_training_params(self, net: MultiTaskNet) -> None:
        """Apply the current optimisation parameters to a fitted net."""
        net.batch_size = self.batch_size
        net.lr = self.lr
        net.optimizer__weight_decay = self.weight_decay
        if net.optimizer is not self._optimizer_class():
            net.optimizer = self._optimizer_class()
            net.initialize_optimizer()
        weighting_params = set(net.criterion_.weighting.parameters())
        sparse = getattr(net, "optimizer_sparse_", None)
        for group in [] if sparse is None else sparse.param_groups:
            group["lr"] = self.lr
        for group in net.optimizer_.param_groups:
            group["lr"] = self.lr
            learned = any(p in weighting_params for p in group["params"])
            group["weight_decay"] = 0.0 if learned else self.weight_decay

    def _check_device(self) -> torch.device:
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={self.device!r} is not a torch device.") from exc
        if device.type == "meta":
            raise ValueError(
                "device='meta' holds no data and cannot train or predict; use "
                "'cpu' or an accelerator."
            )
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} was requested but CUDA is not available "
                f"on this machine; use device='cpu'."
            )
        if device.type != "cpu":
            try:
                torch.empty(1, device=device)
            except Exception as exc:  # torch raises RuntimeError, AssertionError...
                reason = (str(exc).splitlines() or [""])[0]
                raise ValueError(
                    f"device={self.device!r} is not available on this machine "
                    f"({type(exc).__name__}: {reason}); use device='cpu'."
                ) from None
        return device

    def _embeds_numbers(self, X: Any, encoder: CategoricalEncoder | None) -> bool:
        """Whether the network embeds the numeric columns of ``X``."""
        if sp.issparse(X) or self.numeric_embedding is None:
            return False
        n_numeric = X.shape[1] - (len(encoder.columns) if encoder else 0)
        if self.numeric_embedding == "auto":
            return 0 < n_numeric <= _AUTO_NUMERIC_EMBEDDING_COLUMNS
        return n_numeric > 0

    def _projection_width(self, X: Any, n_tasks: int) -> int | None:
        """Width of the sparse projection for ``X``: only for wide sparse inputs.

        As wide as everything the first level feeds (the first layer of its
        experts and its gates), so the projection loses nothing; None when
        ``X`` is dense or narrower than that.
        """
        if not sp.issparse(X) or X.shape[1] < _SPARSE_PROJECTION_MIN_FEATURES:
            return None
        gated = self.n_experts + self.n_task_experts
        n_experts = self.n_experts + n_tasks * self.n_task_experts
        hidden = np.atleast_1d(self.expert_hidden_layer_sizes)[0]
        gates = (1 if self.shared_gate else n_tasks) * gated
        shared = n_experts if self.n_levels > 1 else 0
        width = int(n_experts * hidden + gates + shared)
        return width if width < X.shape[1] else None

    def _module_params(self) -> dict[str, Any]:
        """The architecture parameters, validated, as the network takes them."""

        def sizes(name: str, allow_empty: bool) -> tuple[int, ...]:
            value = getattr(self, name)
            value = tuple(np.atleast_1d(np.asarray(value)).tolist())
            if (not value and not allow_empty) or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                for v in value
            ):
                raise ValueError(
                    f"{name} must be a sequence of positive ints"
                    f"{'' if allow_empty else ' (at least one)'}, got {value!r}."
                )
            return value

        params = {name: getattr(self, name) for name in ARCHITECTURE_PARAMS}
        params["expert_hidden_layer_sizes"] = sizes("expert_hidden_layer_sizes", False)
        params["tower_hidden_layer_sizes"] = sizes("tower_hidden_layer_sizes", True)
        if self.shared_gate and self.n_task_experts > 0:
            raise ValueError(
                "shared_gate=True (One-gate MoE) cannot be combined with "
                f"n_task_experts={self.n_task_experts}: task experts need "
                f"per-task gates."
            )
        return params

    def _optimizer_class(self) -> type:
        if isinstance(self.optimizer, str):
            return OPTIMIZERS[self.optimizer]
        if not issubclass(self.optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)} or a subclass of "
                f"torch.optim.Optimizer, got {self.optimizer!r}."
            )
        return self.optimizer

    def _check_task_weights(self, task_names: list[str]) -> np.ndarray | str:
        n_tasks = len(task_names)
        if isinstance(self.task_weights, str):
            return self.task_weights
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

    def _check_class_weight(
        self, tasks: list[Task], encoded: np.ndarray
    ) -> list[np.ndarray | None]:
        """One array of class weights per classification task, None for others."""
        class_weight = self._class_weight_param()
        n_tasks = len(tasks)
        classification = [isinstance(t, ClassificationTask) for t in tasks]
        ones = [
            np.ones(t.n_outputs) if c else None
            for t, c in zip(tasks, classification, strict=True)
        ]
        if class_weight is None:
            return ones
        if isinstance(class_weight, str | dict):
            if isinstance(class_weight, dict) and sum(classification) > 1:
                raise ValueError(
                    "class_weight as a dict is for a single classification task; "
                    f"with {sum(classification)} pass a list of one dict (or "
                    "'balanced' or None) per task."
                )
            class_weight = [class_weight if c else None for c in classification]
        if len(class_weight) != n_tasks:
            raise ValueError(
                f"class_weight must have one entry per task: y has {n_tasks} "
                f"task(s), class_weight has {len(class_weight)}."
            )
        weights: list[np.ndarray | None] = []
        for k, (entry, task) in enumerate(zip(class_weight, tasks, strict=True)):
            if entry is None:
                weights.append(ones[k])
                continue
            if not isinstance(task, ClassificationTask):
                raise ValueError(
                    f"class_weight for task {task.name!r} must be None: it is a "
                    f"{task.kind} task."
                )
            classes = task.classes
            if isinstance(entry, str) and entry == "balanced":
                codes = encoded[:, k]
                codes = codes[~np.isnan(codes)].astype(np.int64)
                present = np.unique(codes)
                w = np.ones(len(classes))
                w[present] = compute_class_weight("balanced", classes=present, y=codes)
            elif isinstance(entry, dict):
                unknown = [c for c in entry if not np.isin(c, classes).item()]
                if unknown:
                    raise ValueError(
                        f"class_weight for task {task.name!r} names labels "
                        f"{unknown} that are not among its classes "
                        f"{classes.tolist()}."
                    )
                w = np.array([float(entry.get(c, 1.0)) for c in classes.tolist()])
                if not np.all(np.isfinite(w)) or np.any(w < 0):
                    raise ValueError(
                        f"class_weight for task {task.name!r} must be finite and "
                        f"non-negative, got {entry!r}."
                    )
                if not np.any(w > 0):
                    raise ValueError(
                        f"class_weight for task {task.name!r} gives every class "
                        f"weight 0, so the task would never be learned: {entry!r}."
                    )
            else:
                raise ValueError(
                    f"class_weight entry for task {task.name!r} must be None, "
                    f"'balanced' or a dict, got {entry!r}."
                )
            weights.append(w)
        return weights

    def _check_task_columns(self, y: Any) -> None:
        """Check that ``y`` has the fitted tasks: their number and names.

        A DataFrame's columns must be the fitted task names in the same
        order, unless the model was fitted without names.
        """
        n_tasks = 1 if np.ndim(y) == 1 else np.shape(y)[1]
        names = [str(c) for c in y.columns] if hasattr(y, "columns") else None
        unnamed = self.task_names_ == default_task_names(self.n_outputs_)
        if n_tasks != self.n_outputs_ or not (
            names is None or unnamed or names == self.task_names_
        ):
            got = names if names is not None else f"{n_tasks} task(s)"
            raise ValueError(
                f"y must have the tasks the model was fitted on, "
                f"{self.task_names_}, in that order; got {got}."
            )

    def _training_callbacks(self, early: bool, n_train: int) -> list:
        callbacks = [("stop_on_non_finite", StopOnNonFinite())]
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
                        sink=silent,
                    ),
                )
            )
        # Deep copies: fitting must not change the objects in the parameters.
        callbacks.extend(copy.deepcopy(list(self.callbacks or [])))
        if self.verbose:
            callbacks.extend(logging_callbacks(-(-n_train // self.batch_size)))
        return callbacks

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------

    def _validate_X(self, X: Any, fitted: bool = True) -> Any:
        """``X`` for a fitted model, as the network reads it (float32).

        ``fitted=False`` skips the fitted check (continued training checks
        ``X`` before the model is published).
        """
        if fitted:
            check_is_fitted(self)
        check_not_lazy(X, "X")
        if self._encoder is not None:
            # Feature names and count, without converting the strings.
            self._check_columns(X)
            if not hasattr(X, "shape"):
                X = np.asarray(X, dtype=object)
            if len(X.shape) != 2 or X.shape[0] == 0:
                raise ValueError(
                    f"X must be a non-empty 2-D table, got shape {X.shape}."
                )
            encoded = self._encoder.transform(X)
            assert_all_finite(
                encoded, estimator_name=type(self).__name__, input_name="X"
            )
            return encoded
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
        if is_polars(X, "DataFrame"):
            self._check_columns(X)
            return check_array(X, dtype=np.float32, input_name="X", estimator=self)
        return validate_data(
            self, X, reset=False, accept_sparse="csr", dtype=np.float32
        )

    def _check_columns(self, X: Any) -> None:
        """Check the names and number of the columns of ``X`` against fit's."""
        if not is_polars(X, "DataFrame"):
            validate_data(self, X, reset=False, skip_check_array=True)
            return
        # Not all supported scikit-learn versions read a polars frame's
        # columns (see feature_names): they are checked here, as it checks
        # those of a pandas frame.
        name = type(self).__name__
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is None:
            warnings.warn(
                f"X has feature names, but {name} was fitted without feature names",
                UserWarning,
            )
        elif list(X.columns) != list(fitted):
            raise ValueError(
                f"The feature names should match those that were passed during "
                f"fit, in the same order: {list(fitted)}; X has {X.columns}."
            )
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{self.n_features_in_} features as input."
            )

    def _forward(self, X: Any, gates: bool = False) -> torch.Tensor:
        """The outputs (or gate weights) of ``X``, computed chunk by chunk."""
        module = self.module_
        device = next(module.parameters()).device
        # Predict in eval mode. Fitting leaves the network in it, so this only
        # switches (for good) after a user put the module in training mode:
        # switching back and forth would race between concurrent predictions.
        if module.training:
            module.eval()
        # A network with a sparse projection reads CSR batches as they are.
        sparse_batches = module.projection is not None and sp.issparse(X)
        dataset = ArrayBatches(X, sparse_batches=sparse_batches)
        chunks = []
        # Large predictions choose their threads as fit does; small ones keep
        # the current count (sampling the load would cost more than them).
        n_threads = self.n_threads
        if n_threads is None and X.shape[0] >= _PREDICT_CHUNK:
            n_threads = resolve_threads(None)
        threads = (
            contextlib.nullcontext() if n_threads is None else torch_threads(n_threads)
        )
        with threads, torch.inference_mode():
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                Xb, _ = dataset.batch(slice(start, start + _PREDICT_CHUNK))
                n_rows = Xb.shape[0]
                out = module(_pad_rows(Xb).to(device), return_gates=gates)
                chunks.append((out[1] if gates else out)[:n_rows])
        out = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        _check_finite_outputs(out, None if gates else module.class_padding)
        return out

    def _task_outputs(self, X: Any) -> list[np.ndarray]:
        """Each task's outputs: probabilities (classification) or raw values."""
        outputs = self._forward(self._validate_X(X))
        proba = _softmax_last_dim(outputs).cpu().numpy()
        raw = outputs.cpu().numpy()
        columns = []
        for k, task in enumerate(self._tasks):
            if isinstance(task, ClassificationTask):
                p = proba[:, k, : task.n_outputs].astype(np.float64)
                # Renormalise in float64 so that rows sum to 1 to double precision.
                p /= p.sum(axis=1, keepdims=True)
                columns.append(p)
            else:
                columns.append(raw[:, k, : task.n_outputs])
        return columns

    def _predict_columns(self, X: Any) -> list[np.ndarray]:
        """Each task's predictions, in its own label type or units."""
        outputs = self._task_outputs(X)
        return [
            task.decode(out) for task, out in zip(self._tasks, outputs, strict=True)
        ]

    def _stack_predictions(self, columns: list[np.ndarray]) -> np.ndarray:
        """``(n_samples, n_tasks)`` predictions; 1-D if fitted on a 1-D ``y``."""
        if self._single_task:
            return columns[0]
        dtypes = {c.dtype for c in columns}
        dtype = dtypes.pop() if len(dtypes) == 1 else object
        Y_pred = np.empty((len(columns[0]), len(columns)), dtype=dtype)
        for k, column in enumerate(columns):
            Y_pred[:, k] = column
        return Y_pred

    def _predict(self, X: Any) -> np.ndarray:
        return self._stack_predictions(self._predict_columns(X))

    def _predict_proba(self, X: Any) -> list[np.ndarray | None] | np.ndarray:
        """Class probabilities of every classification task, None for others."""
        outputs = self._task_outputs(X)
        out = [
            p if isinstance(task, ClassificationTask) else None
            for task, p in zip(self._tasks, outputs, strict=True)
        ]
        return out[0] if self._single_task else out

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

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean over tasks of each task's default score on its labelled rows.

        Tasks without a labelled row in ``y`` are left out of the mean.
        """
        columns = self._predict_columns(X)
        self._check_task_columns(y)
        targets = read_targets(y, self._missing_marker(), require_labels=False)
        check_consistent_length(columns[0], targets.columns[0], sample_weight)
        weights = None if sample_weight is None else np.asarray(sample_weight)
        scores = [
            task.score(
                targets.labelled_values(k),
                columns[k][labelled],
                sample_weight=None if weights is None else weights[labelled],
            )
            for k, (task, labelled) in enumerate(
                zip(self._tasks, targets.labelled, strict=True)
            )
            if labelled.any()
        ]
        if not scores:
            raise ValueError("y has no labelled entry to score.")
        return float(np.mean(scores))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags


def _per_task(values: Sequence[Any] | None, targets: TargetColumns, name: str):
    """``classes`` (or a similar per-task argument) as one entry per task."""
    n_tasks = len(targets.names)
    if values is None:
        return [None] * n_tasks
    if _is_flat(values):
        if not targets.is_single_task:
            # E.g. scikit-learn's classes=[0, 1] with two tasks: not one
            # label per task, but one array of labels per task.
            raise ValueError(
                f"{name} must give one entry per task (an array of labels, or "
                f"None), y has {n_tasks} tasks; got the flat list "
                f"{list(values)!r}. For example {name}=[[0, 1]] * {n_tasks}."
            )
        values = [values]
    if len(values) != n_tasks:
        raise ValueError(
            f"{name} must give one entry per task: y has {n_tasks} task(s), "
            f"{name} has {len(values)}."
        )
    return list(values)


def _with_known_labels(targets: TargetColumns, known: list[Any]) -> TargetColumns:
    """``targets`` whose labelled entries also hold each task's known classes."""
    if all(classes is None for classes in known):
        return targets
    columns, labelled = [], []
    for k, classes in enumerate(known):
        values = targets.labelled_values(k)
        extra = None if classes is None else np.asarray(classes)
        # Labels of another kind (strings vs numbers) are refused later with
        # the task's classes in the message: leave them out here.
        if extra is not None and _is_text(extra) == _is_text(values):
            if extra.dtype != values.dtype:
                values, extra = values.astype(object), extra.astype(object)
            values = np.concatenate([values, extra])
        columns.append(values)
        labelled.append(np.ones(len(values), dtype=bool))
    return TargetColumns(columns, labelled, targets.names, targets.is_single_task)


def _is_text(values: np.ndarray) -> bool:
    if values.dtype == object:
        return any(isinstance(v, str) for v in values.tolist())
    return values.dtype.kind in "US"


def _is_flat(values: Sequence[Any]) -> bool:
    return np.ndim(np.asarray(values, dtype=object)) == 1 and not any(
        np.ndim(v) or v is None for v in values
    )


def _robust_statistics(
    X: np.ndarray, seed: int, max_rows: int = 100_000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Median and spread of every column of ``X`` (a row sample if large).

    The spread is the interquartile range over 1.349 (the standard deviation
    of normal data), else the standard deviation, else 1.
    """
    rows = X.shape[0]
    if rows > max_rows:
        X = X[np.random.default_rng(seed).choice(rows, max_rows, replace=False)]
    X = np.asarray(X, dtype=np.float64)
    q25, center, q75 = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
    scale = (q75 - q25) / 1.349
    std = X.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
    return (
        torch.as_tensor(center, dtype=torch.float32),
        torch.as_tensor(scale, dtype=torch.float32),
    )


def _check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """Row weights as float32, or None: 1-D, finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight)
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("sample_weight must be numbers.") from None
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per row "
            f"of X, got shape {weights.shape}."
        )
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("sample_weight must be finite and non-negative.")
    if not (weights > 0).any():
        raise ValueError("sample_weight must not all be zero.")
    return weights.astype(np.float32)


def _check_finite_outputs(outputs: torch.Tensor, padding: torch.Tensor | None) -> None:
    """Refuse non-finite network outputs or gate weights (e.g. features near
    float32's limit); ``padding`` marks the outputs that are -inf by design."""
    valid = (
        outputs
        if padding is None
        else outputs.masked_fill(padding.to(outputs.device), 0.0)
    )
    if not bool(torch.isfinite(valid).all()):
        raise ValueError(
            "The network's outputs are not finite for some rows of X: their "
            "features are too large for float32 arithmetic. Scale the features "
            "(e.g. StandardScaler) and clip extreme values."
        )


def _pad_rows(X: torch.Tensor) -> torch.Tensor:
    """``X`` with zero rows appended up to a multiple of ``_ROW_ALIGN`` rows."""
    missing = -X.shape[0] % _ROW_ALIGN
    if not missing:
        return X
    if X.layout == torch.sparse_csr:
        rows = X.crow_indices()
        rows = torch.cat([rows, rows[-1:].expand(missing)])
        return torch.sparse_csr_tensor(
            rows, X.col_indices(), X.values(), (X.shape[0] + missing, X.shape[1])
        )
    return torch.cat([X, X.new_zeros(missing, X.shape[1])])


def store_params(estimator: BaseEstimator, values: dict[str, Any]) -> None:
    """Store ``__init__``'s arguments verbatim, as scikit-learn requires.

    ``values`` is ``locals()`` at the top of ``__init__``.
    """
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)
