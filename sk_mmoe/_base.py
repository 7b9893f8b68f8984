"""The base of the MMoE estimators: parameters, the fit flow and prediction.

:class:`BaseMultiTaskMMoE` holds everything the classifier, the regressor and
the mixed-task estimator share: the parameters of the network and of
training, the fit / ``partial_fit`` / warm-start flow (written once, in the
steps prepare the data, build or continue the net, train, publish), the
fitted state (set in one place, :meth:`BaseMultiTaskMMoE._set_fitted_state`,
which :func:`sk_mmoe.load_model` uses too), and the forward pass behind
``predict``, ``gate_weights`` and ``score``. The checks of the arguments
against the data (:mod:`sk_mmoe._checks`), the handling of ``X``
(:mod:`sk_mmoe._data.inputs`) and the building of the network and its loss
(:mod:`sk_mmoe._building`) are its bases. The public estimators only say
which task types they accept and how they present predictions; everything
that depends on a task's type is in :mod:`sk_mmoe._tasks`.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_consistent_length, check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

from ._attention import attention_weights_of
from ._building import NetworkBuilding, NetworkSpec, _robust_statistics
from ._checks import (
    ParameterChecks,
    _check_sample_weight,
    _per_task,
    _with_known_labels,
    resolve_conditional_on,
)
from ._compat import Interval, StrOptions, fit_context
from ._data.features import CategoricalEncoder, feature_names
from ._data.frames import check_not_lazy
from ._data.inputs import InputHandling
from ._data.sequences import SEQUENCE_POOLINGS
from ._data.targets import (
    TargetColumns,
    check_not_dask_key,
    encode_targets,
    read_targets,
)
from ._fitting.batches import ArrayBatches
from ._fitting.distributed import agree_seed, local_device
from ._fitting.holdout import labelled_rows, n_validation_rows
from ._fitting.threads import resolve_threads, torch_threads
from ._fitting.training import (
    OPTIMIZERS,
    HoldOut,
    MultiTaskNet,
    NonFiniteLoss,
    seeded,
)
from ._rank_score import rank_score_of, rank_values
from ._tasks import Task, condition_tasks, make_task
from .nn._bias import main_network
from .nn.network import (
    ACTIVATIONS,
    GATES,
    MAX_ENSEMBLE_SIZE,
    BatchedLinear,
    MMoENetwork,
)
from .nn.weighting import WEIGHTING_STRATEGIES

__all__ = ["BaseMultiTaskMMoE"]

# Rows per forward pass at prediction time: large enough to amortise the
# per-call overhead, small enough to bound the activations' memory.
_PREDICT_CHUNK = 16384

# BLAS kernels multiply rows in panels, and a row's float32 result can depend
# on whether it falls in a full panel or in the remainder. Predicting on a
# multiple of this many rows makes each row's output independent of how many
# rows are predicted together (one row online gives the same as in a batch).
_ROW_ALIGN = 16

# torch's CPU batched product (baddbmm) sums with its own loop, in another
# order than BLAS, while rows * in_features * out_features is under this
# (aten/src/ATen/native/LinearAlgebra.cpp): prediction pads the rows so that
# every layer takes the BLAS path, whatever the number of rows predicted.
_BMM_BLAS_MIN_SIZE = 400

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

# early_stopping="auto" holds out validation rows above this many rows
# labelled for some task, as scikit-learn's HistGradientBoosting estimators
# do above this many rows.
_AUTO_EARLY_STOPPING_ROWS = 10_000

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
    "max_sequence_length",
)


@dataclass
class _FitData:
    """A fit call's data, validated, with what the call fits of the tasks.

    ``spec`` is the network specification of a new fit, None when training
    continues (the fitted network's stays). ``bias_values`` are the
    ``bias_features`` columns (float32), None without a bias tower: ``X``
    does not hold them, the net trains on ``training_X``. ``trained_rows``
    are the rows training iterates over: those labelled for some task when
    nothing reads the others (see :meth:`BaseMultiTaskMMoE._trained_rows`),
    None for all.
    """

    X: Any
    feature_names: np.ndarray | None
    encoder: CategoricalEncoder | None
    targets: TargetColumns
    sample_weight: np.ndarray | None
    tasks: list[Task]
    encoded: np.ndarray
    task_weights: np.ndarray | str
    class_weights: list[np.ndarray | None]
    early: bool
    n_valid: int
    spec: NetworkSpec | None
    bias_values: np.ndarray | None = None
    trained_rows: np.ndarray | None = None
    scheduled: bool = False

    @property
    def n_train(self) -> int:
        """Rows the net trains on (without the held-out validation rows)."""
        n_rows = (
            self.X.shape[0] if self.trained_rows is None else len(self.trained_rows)
        )
        return n_rows - self.n_valid

    @property
    def classifying(self) -> bool:
        """Whether every task of the fit is a classification task."""
        return all(task.declares_classes for task in self.tasks)

    @property
    def training_X(self) -> Any:
        """What the net trains on: ``X``, the bias columns after its own."""
        if self.bias_values is None:
            return self.X
        return np.hstack([self.X, self.bias_values])


class BaseMultiTaskMMoE(ParameterChecks, InputHandling, NetworkBuilding, BaseEstimator):
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
        "ensemble_size": [
            Interval(numbers.Integral, 1, MAX_ENSEMBLE_SIZE, closed="both")
        ],
        "refit": ["boolean"],
        "bias_features": ["array-like", dict, None],
        "bias_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "task_weights": [
            "array-like",
            dict,
            StrOptions(set(WEIGHTING_STRATEGIES)),
            None,
        ],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "lr": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "max_epochs": [
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "lr_schedule": [StrOptions({"auto", "cosine"}), None],
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
        "sequence_features": [dict, None],
        "sequence_pooling": [StrOptions(set(SEQUENCE_POOLINGS))],
        "max_sequence_length": [Interval(numbers.Integral, 1, None, closed="left")],
        "numeric_scaling": [StrOptions({"robust", "robust_unclipped"}), None],
        "numeric_missing": [StrOptions({"learn", "error"})],
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

    def _conditional_on_param(self) -> Any:
        return None

    def _task_loss(self, kind: str, name: str) -> str | None:
        """The loss asked for task ``name`` of type ``kind``; None: its own."""
        return None

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
        check_not_dask_key(y)
        with torch_threads(resolve_threads(self.n_threads)):
            return self._fit_flow(X, y, sample_weight, partial=partial, classes=classes)

    def _fit_flow(self, X, y, sample_weight, *, partial: bool, classes=None):
        if not partial:
            incremental = self.warm_start and hasattr(self, "net_")
            if not (self.refit and not incremental):
                return self._fit(X, y, sample_weight, incremental=incremental)
            net, data = self._trained(X, y, sample_weight, incremental=False)
            stopper = dict(net.callbacks_).get("early_stopping")
            if stopper is not None:
                # Early stopping found the epoch count: train anew on every
                # row, and publish only the refit net, so that a failed or
                # interrupted refit leaves the fitted model as it was.
                epochs = max(1, stopper.best_epoch_)
                net, data = self._trained(
                    X, y, sample_weight, incremental=False, epochs=epochs, early=False
                )
            self._publish(net, data)
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
        self, X: Any, y: Any, sample_weight: Any, **options: Any
    ) -> BaseMultiTaskMMoE:
        """The fit flow, in steps as skorch's ``initialize``: prepare the
        data, build a new network or continue the fitted one, train, publish
        (``options``: those of :meth:`_trained`).

        Everything is validated before the fitted state is touched, and the
        net trained is a new one or a copy of the fitted one: a failed or
        interrupted call leaves a fitted model as it was.
        """
        net, data = self._trained(X, y, sample_weight, **options)
        self._publish(net, data)
        return self

    def _trained(
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
    ) -> tuple[MultiTaskNet, _FitData]:
        """A trained net and its data, the fitted state left untouched."""
        device = local_device(self._check_device())
        data = self._prepare_data(
            X, y, sample_weight, incremental, classes, require_classes, early
        )
        # A fit call's epochs follow the schedule ("auto": classification
        # tasks with validation rows held out); partial_fit's run at lr.
        schedule = self.lr_schedule
        if schedule == "auto":
            schedule = "cosine" if data.early and data.classifying else None
        data.scheduled = epochs is None and schedule is not None
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        seed = agree_seed(seed)  # rank 0's, in a data-parallel fit
        if incremental:
            net, seed = self._continue_net(data, seed)
        else:
            net = self._new_net(data, seed, device)
        self._train(net, data, seed, device, epochs)
        return net, data

    def _prepare_data(
        self, X, y, sample_weight, incremental, classes, require_classes, early
    ) -> _FitData:
        """The validated data of a fit call, and what it fits of the tasks."""
        check_not_lazy(X, "X")
        bias_columns, X, bias_values = self._split_bias_columns(X, incremental)
        if incremental:
            X = self._validate_X(X, fitted=False)
            self._check_sequence_params()
            names = getattr(self, "feature_names_in_", None)
            encoder = self._encoder
            self._check_task_columns(y)
        else:
            names = feature_names(X)
            X, encoder = self._encode_new_X(X)
        targets = read_targets(y, self._missing_marker(), n_samples=X.shape[0])
        sample_weight = _check_sample_weight(sample_weight, X.shape[0])
        tasks = self._fit_tasks(
            targets, classes, incremental, require_classes, sample_weight
        )
        # A conditional task's targets are the joint's (negative where its
        # parent is), before its encoding and class weights read them.
        targets = targets.completed(tasks)
        encoded = encode_targets(targets, tasks)
        task_weights = self._check_task_weights(targets.names)
        class_weights = self._check_class_weight(tasks, encoded)
        labelled = labelled_rows(encoded)
        n_labelled = int(labelled.sum())
        if early is None:
            early = self.early_stopping
            if early == "auto":
                early = n_labelled > _AUTO_EARLY_STOPPING_ROWS
        n_valid = self._n_validation_rows(n_labelled, early)
        self._check_architecture(incremental)
        spec = (
            None
            if incremental
            else self._new_network_spec(X, encoder, tasks, bias_columns)
        )
        return _FitData(
            X=X,
            feature_names=names,
            encoder=encoder,
            targets=targets,
            sample_weight=sample_weight,
            tasks=tasks,
            encoded=encoded,
            task_weights=task_weights,
            class_weights=class_weights,
            early=early,
            n_valid=n_valid,
            spec=spec,
            bias_values=bias_values,
            trained_rows=self._trained_rows(labelled),
        )

    def _trained_rows(self, labelled: np.ndarray) -> np.ndarray | None:
        """The rows worth training on: those ``labelled`` for some task (a
        mask of the rows), unless every row is (None: all rows).

        A row without any label adds nothing to the tasks' losses; only the
        gates' balance loss (``gate_balance``) reads it, so it is kept then.
        """
        if self.gate_balance > 0:
            return None
        return None if labelled.all() else np.flatnonzero(labelled)

    def _n_validation_rows(self, n_labelled: int, early: bool) -> int:
        """Rows held out for early stopping (0 without), among the
        ``n_labelled`` rows labelled for some task."""
        if not early:
            return 0
        n_valid = n_validation_rows(n_labelled, self.validation_fraction)
        if n_valid >= n_labelled:
            raise ValueError(
                f"early_stopping holds out validation_fraction="
                f"{self.validation_fraction} of the {n_labelled} sample(s) "
                f"labelled for some task, which leaves none to train on: lower "
                f"validation_fraction, label more rows or pass "
                f"early_stopping=False."
            )
        return n_valid

    def _check_architecture(self, incremental: bool) -> None:
        """Refuse to continue training a network of another architecture."""
        module_params = self._module_params()
        if incremental and module_params != self.net_.module_params:
            raise ValueError(
                "warm_start and partial_fit continue training the fitted "
                "network, but its architecture parameters changed since the "
                f"first fit (from {self.net_.module_params} to "
                f"{module_params}); refit with warm_start=False."
            )

    def _new_net(self, data: _FitData, seed: int, device: torch.device) -> MultiTaskNet:
        """A new net for ``data``, its initial weights drawn from ``seed``."""
        with seeded(seed, device):
            criterion = self._make_criterion(
                data.tasks, data.task_weights, data.class_weights
            )
            net = self._make_net(
                data.spec,
                data.tasks,
                criterion,
                device,
                data.encoder,
                data.n_train,
                data.scheduled,
            )
            if net.module.scaling is not None:
                # Rows of weight 0 are as good as absent.
                # The columns of X (not the codes of its lists appended).
                X, weight = data.X[:, : data.spec.n_features], data.sample_weight
                rows = X if weight is None else X[weight > 0]
                net.module.scaling.set_statistics(*_robust_statistics(rows, seed))
            if data.bias_values is not None:
                net.module.bias_tower.set_statistics(data.bias_values)
        return net

    def _continue_net(self, data: _FitData, seed: int) -> tuple[MultiTaskNet, int]:
        """A copy of the fitted net to train further, and its seed."""
        net = copy.deepcopy(self.net_)
        # A new seed per call, so successive calls see new batch orders.
        seed = (seed + len(net.history)) % np.iinfo(np.int32).max
        self._update_training_params(net, data.n_train, data.encoder, data.scheduled)
        net.criterion_ = self._make_criterion(
            data.tasks,
            data.task_weights,
            data.class_weights,
            learned=net.criterion_.weighting,
        ).to(net.device)
        if data.bias_values is not None:
            net.module_.bias_tower.dropout = self.bias_dropout
        return net, seed

    def _train(
        self,
        net: MultiTaskNet,
        data: _FitData,
        seed: int,
        device: torch.device,
        epochs: int | None,
    ) -> None:
        """Train ``net`` on ``data`` (``epochs``: None for ``max_epochs``)."""
        dataset = ArrayBatches(
            data.training_X,
            data.encoded,
            data.sample_weight,
            sparse_batches=net.module.projection is not None,
        )
        if data.trained_rows is not None:
            dataset = dataset.subset(data.trained_rows)
        early = data.early
        net.train_split = HoldOut(self.validation_fraction, seed) if early else None
        if epochs is None:
            epochs = self._n_epochs(
                data.n_train, net.batch_size, data.scheduled, data.classifying
            )
        net.callbacks = self._training_callbacks(
            early, data.n_train, net.batch_size, epochs if data.scheduled else 0
        )
        net.iterator_train__seed = seed
        net.max_epochs = epochs
        net.verbose = self.verbose
        try:
            with seeded(seed, device):
                if net.initialized_:
                    net.initialize_callbacks()
                else:
                    net.initialize()
                net.partial_fit(dataset)
        except NonFiniteLoss as exc:
            raise ValueError(
                f"Training diverged: {exc.args[0]}. Scale the features (e.g. "
                f"StandardScaler) or lower lr (lr={net.lr:.3g})."
            ) from None
        # Prediction runs in eval mode; training switches back as it starts.
        net.module_.eval()

    def _publish(self, net: MultiTaskNet, data: _FitData) -> None:
        """Publish the trained net: a new fit with its data's description."""
        if data.spec is None:  # continued training: the first fit's data
            self._set_fitted_state(net, data.tasks)
            return
        self._set_fitted_state(
            net,
            data.tasks,
            spec=data.spec,
            feature_names=data.feature_names,
            single_task=data.targets.is_single_task,
            encoder=data.encoder,
        )

    def _set_fitted_state(
        self,
        net: MultiTaskNet,
        tasks: list[Task],
        *,
        spec: NetworkSpec | None = None,
        feature_names: np.ndarray | None = None,
        single_task: bool | None = None,
        encoder: CategoricalEncoder | None = None,
    ) -> None:
        """Publish a trained net: the one place that sets the fitted state.

        ``fit``, ``partial_fit`` and :func:`sk_mmoe.load_model` all end here.
        Continued training passes only ``net`` and ``tasks`` (the tasks keep
        their encoding; their loss may have changed): the data description
        (network spec, features, task columns) is that of the first fit.
        """
        self.net_ = net
        self.module_ = main_network(net.module_)
        self.history_ = [
            {key: value for key, value in epoch.items() if key != "batches"}
            for epoch in net.history
        ]
        self.n_iter_ = len(self.history_)
        weights = net.criterion_.weighting.weights().detach().cpu().numpy()
        self.task_weights_ = weights.astype(np.float64)
        self._tasks = list(tasks)
        if spec is None:
            return
        self._spec = spec
        self.n_features_in_ = spec.n_features
        if feature_names is not None:
            self.feature_names_in_ = feature_names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._single_task = bool(single_task)
        self._encoder = encoder
        if spec.bias_columns is not None:
            self.bias_features_in_ = spec.bias_columns.described
        elif hasattr(self, "bias_features_in_"):
            del self.bias_features_in_
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
                [t.known_classes() for t in self._tasks] if incremental else known,
            )
        )
        tasks = []
        for k, (kind, name) in enumerate(zip(kinds, targets.names, strict=True)):
            task = make_task(kind, name, self._task_loss(kind, name))
            values = targets.labelled_values(k)
            if incremental:
                fitted = self._tasks[k]
                # classes are fixed by the first call: ones given later must
                # be the fitted ones, and the labels must be among them.
                if known[k] is None:
                    known[k] = fitted.known_classes()
                fitted.check_compatible(task.fit(values, known[k]))
                # The fitted encoding, trained with the loss asked for now.
                loss, task = task.loss, copy.copy(fitted)
                task.loss = loss
            else:
                if require_classes and known[k] is None and task.declares_classes:
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
        return self._condition_tasks(tasks, targets.names, incremental)

    def _condition_tasks(
        self, tasks: list[Task], names: list[str], incremental: bool
    ) -> list[Task]:
        """``tasks`` made conditional as ``conditional_on`` says; continued
        training keeps the fitted tasks, whose conditions must not change."""
        parents = resolve_conditional_on(self._conditional_on_param(), names)
        if not incremental:
            return condition_tasks(tasks, parents)
        fitted = {
            k: task.parent for k, task in enumerate(tasks) if task.parent is not None
        }
        if fitted != parents:
            raise ValueError(
                "warm_start and partial_fit continue training the fitted "
                "network, but conditional_on changed since the first fit; "
                "refit with warm_start=False."
            )
        return tasks

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

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------

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
        min_rows = _invariant_rows(module)
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
            # Kernels split the rows between the threads: each thread's share
            # is aligned too.
            align = _ROW_ALIGN * torch.get_num_threads()
            chunk = max(align, _PREDICT_CHUNK // align * align)
            for start in range(0, X.shape[0], chunk):
                Xb, _ = dataset.batch(slice(start, start + chunk))
                n_rows = Xb.shape[0]
                Xb = _pad_rows(Xb, min_rows, align)
                out = module(Xb.to(device), return_gates=gates)
                chunks.append((out[1] if gates else out)[:n_rows])
        out = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        _check_finite_outputs(out, None if gates else module.class_padding)
        return out

    def _task_outputs(self, X: Any, conditional: bool = False) -> list[np.ndarray]:
        """Each task's prediction head: probabilities or values.

        ``conditional``: a conditional task's head reads its own tower's
        outputs (the probability given its parent), not the joint's.
        """
        outputs = self._forward(self._validate_X(X))
        return [
            task.head(
                task.own_outputs(outputs, k)
                if conditional
                else task.outputs(outputs, k)
            )
            .cpu()
            .numpy()
            for k, task in enumerate(self._tasks)
        ]

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

    def _predict_proba(
        self, X: Any, conditional: bool = False
    ) -> list[np.ndarray | None] | np.ndarray:
        """Class probabilities of every classification task, None for others
        (``conditional``: see :meth:`_task_outputs`)."""
        outputs = self._task_outputs(X, conditional)
        out = [
            task.proba(head) for task, head in zip(self._tasks, outputs, strict=True)
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

    def attention_weights(self, X: Any) -> dict[Any, np.ndarray]:
        """Target attention weights of every row's past values.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, n_features)
            Input features, with the list columns.

        Returns
        -------
        weights : dict of str (or int) to ndarray of shape (n_samples, max_length)
            For each list column pooled by attention (named as in ``X``, by
            position for an array), ``weights[c][i, j]``: the weight of the
            ``j``-th value the network reads of row ``i``'s list (its last
            ``max_length`` values, in list order) against the row's
            candidate; each row's weights sum to 1 over its values, 0 after
            them (and on a row without values). See :ref:`sequences`.
        """
        return attention_weights_of(self, X)

    def rank_score(
        self, X: Any, weights: Sequence[Any] | Mapping[str, Any]
    ) -> np.ndarray:
        """The ranking score of every row: a weighted sum of its task scores.

        The final score of a candidate in a multi-task ranker (Zhao et al.,
        2019): for instance the click probability plus the expected watch
        time, weighted by hand. Each task contributes, times its weight, the
        probability of its positive class (binary task) or its prediction
        in its own units (regression or count task); a multiclass task
        contributes the expected value of its class, from an explicit value
        per class.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input features.

        weights : sequence or dict
            One entry per task, in task order, or a dict by task name (tasks
            not named count 0): a number for a binary, regression or count
            task; for a multiclass task, a dict from each class to its value
            or a sequence of one value per class in the order of
            ``classes_`` (also allowed for a binary task).

        Returns
        -------
        score : ndarray of shape (n_samples,)
            The combined scores (float64); sort by them to rank.

        Examples
        --------
        >>> import numpy as np
        >>> from sk_mmoe import MultiTaskMMoE
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(300, 4))
        >>> click = (X[:, 0] > 0).astype(int)
        >>> watch_minutes = np.where(click == 1, 5 + X[:, 1], np.nan)
        >>> model = MultiTaskMMoE(max_epochs=3, random_state=0)
        >>> model = model.fit(X, np.column_stack([click, watch_minutes]))
        >>> model.rank_score(X[:3], {"task0": 1.0, "task1": 0.2}).shape
        (3,)
        """
        check_is_fitted(self)
        values = rank_values(self._tasks, weights)
        # The tasks' prediction heads, as the exported graph combines them.
        return rank_score_of(self._tasks, self._task_outputs(X), values)

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean over tasks of each task's default score on its labelled rows.

        Tasks without a labelled row in ``y`` are left out of the mean.
        """
        columns = self._predict_columns(X)
        self._check_task_columns(y)
        targets = read_targets(y, self._missing_marker(), require_labels=False)
        targets = targets.completed(self._tasks)
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
        tags.input_tags.allow_nan = self.numeric_missing == "learn"
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags


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


def _invariant_rows(module: MMoENetwork) -> int:
    """Fewest rows a forward pass of ``module`` needs for every row's outputs
    not to depend on the other rows: enough for its narrowest layer to take
    the BLAS path (see ``_BMM_BLAS_MIN_SIZE``)."""
    narrowest = min(
        (
            layer.in_features * layer.out_features
            for layer in module.modules()
            if isinstance(layer, BatchedLinear)
        ),
        default=_BMM_BLAS_MIN_SIZE,
    )
    return -(-_BMM_BLAS_MIN_SIZE // narrowest)


def _pad_rows(
    X: torch.Tensor, min_rows: int = 1, align: int = _ROW_ALIGN
) -> torch.Tensor:
    """``X`` with zero rows appended up to at least ``min_rows`` rows, and a
    multiple of ``align`` rows."""
    n_rows = max(X.shape[0], min_rows)
    missing = n_rows - X.shape[0] + (-n_rows % align)
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
