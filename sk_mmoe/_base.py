"""The base of the MMoE estimators: what the three share.

Their parameters, the fit / ``partial_fit`` / warm-start flow (prepare the
data, build or continue the net, train, publish), the fitted state (handed
out by ``_fitted_state``, set in one place, ``_set_fitted_state``, also
behind ``_restore`` and :func:`sk_mmoe.load_model`) and prediction. Plain
functions do the work, handed the parameters they need: ``_checks``,
``_data.inputs``, ``_building``, ``_fitting.flow`` and ``_prediction``.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._attention import attention_weights_of
from ._building import (
    INPUT_LAYER_PARAMS,
    make_criterion,
    make_net,
    module_params,
    new_network_spec,
    step_params,
    update_training_params,
)
from ._checks import (
    PARAMETER_CONSTRAINTS,
    _check_sample_weight,
    check_class_weight,
    check_device,
    check_param_types,
    check_partial_fit_class_weight,
    check_task_weights,
    optimizer_class,
)
from ._compat import fit_context
from ._data.features import CategoricalEncoder, feature_names
from ._data.frames import check_not_lazy
from ._data.inputs import (
    ENCODING_PARAMS,
    check_sequence_params,
    check_task_columns,
    encode_new_X,
    split_bias_columns,
    validate_X,
)
from ._data.targets import (
    TargetColumns,
    check_not_dask_key,
    encode_targets,
    read_targets,
)
from ._fitted import (
    FittedData,
    FittedState,
    NetState,
    check_shapes,
    epochs_of,
    load_net_state,
)
from ._fitting.distributed import agree_seed, local_device
from ._fitting.flow import (
    TRAINING_PARAMS,
    FitData,
    check_same_architecture,
    early_stopping,
    fit_tasks,
    holdout_size,
    set_input_statistics,
    train,
)
from ._fitting.holdout import labelled_rows
from ._fitting.threads import resolve_threads, torch_threads
from ._fitting.training import MultiTaskNet, seeded
from ._prediction import forward, heads, mean_score, stack_predictions
from ._rank_score import rank_score_of, rank_values
from ._tasks import Task

__all__ = ["BaseMultiTaskMMoE"]


class BaseMultiTaskMMoE(BaseEstimator):
    """Base class of the MMoE estimators; not meant to be used directly.

    Subclasses define ``__init__`` (their parameters), the task types they
    accept (:meth:`_task_kinds`), the marker of a missing target
    (:meth:`_missing_marker`) and the fitted attributes that describe their
    tasks (:meth:`_set_task_attributes`).
    """

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

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

    def _validate_params(self) -> None:
        super()._validate_params()
        check_param_types(self.get_params(deep=False), type(self).__name__)

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
        return self._fit_call(X, y, sample_weight, partial=False)

    def _fit_call(self, X, y, sample_weight, *, partial: bool, classes=None):
        """``fit`` or ``partial_fit`` (parameters validated), under its threads."""
        check_not_dask_key(y)
        with torch_threads(resolve_threads(self.n_threads)):
            return self._fit_or_refit(
                X, y, sample_weight, partial=partial, classes=classes
            )

    def _fit_or_refit(self, X, y, sample_weight, *, partial: bool, classes=None):
        """One fit, a fit then its refit (``refit``), or a partial fit."""
        if not partial:
            incremental = self.warm_start and hasattr(self, "net_")
            if not (self.refit and not incremental):
                return self._fit_and_publish(
                    X, y, sample_weight, incremental=incremental
                )
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
        check_partial_fit_class_weight(self._class_weight_param())
        first_call = not hasattr(self, "net_")
        return self._fit_and_publish(
            X,
            y,
            sample_weight,
            incremental=not first_call,
            classes=classes,
            require_classes=first_call,
            epochs=1,
            early=False,
        )

    def _fit_and_publish(
        self, X: Any, y: Any, sample_weight: Any, **options: Any
    ) -> BaseMultiTaskMMoE:
        """Train (:meth:`_trained`, with ``options``), then publish the net.

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
    ) -> tuple[MultiTaskNet, FitData]:
        """A trained net and its data, the fitted state left untouched."""
        device = local_device(check_device(self.device))
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
        params = {name: getattr(self, name) for name in TRAINING_PARAMS}
        train(net, data, seed, device, epochs, **params)
        return net, data

    def _prepare_data(
        self, X, y, sample_weight, incremental, classes, require_classes, early
    ) -> FitData:
        """The validated data of a fit call, and what it fits of the tasks."""
        check_not_lazy(X, "X")
        fitted = self._fitted_state().data if incremental else None
        bias_columns, X, bias_values = split_bias_columns(
            X,
            self.bias_features,
            None if fitted is None else fitted.spec.bias_columns,
            incremental,
        )
        if fitted is not None:
            X = validate_X(self, X, fitted, self.numeric_missing)
            names, encoder = fitted.feature_names_in, fitted.encoder
            check_sequence_params(
                encoder,
                self.sequence_features,
                self.sequence_pooling,
                self.max_sequence_length,
            )
            check_task_columns(y, self.task_names_)
        else:
            names = feature_names(X)
            X, encoder = encode_new_X(
                X,
                estimator=type(self).__name__,
                **{name: getattr(self, name) for name in ENCODING_PARAMS},
            )
        targets = read_targets(y, self._missing_marker(), n_samples=X.shape[0])
        sample_weight = _check_sample_weight(sample_weight, X.shape[0])
        tasks = fit_tasks(
            targets,
            classes,
            None if fitted is None else list(fitted.tasks),
            require_classes,
            sample_weight,
            task_kinds=self._task_kinds,
            task_loss=self._task_loss,
            conditional_on=self._conditional_on_param(),
        )
        # A conditional task's targets are the joint's (negative where its
        # parent is), before its encoding and class weights read them.
        targets = targets.completed(tasks)
        encoded = encode_targets(targets, tasks)
        labelled = labelled_rows(encoded)
        n_labelled = int(labelled.sum())
        if early is None:
            early = early_stopping(self.early_stopping, n_labelled)
        architecture = self._module_params()
        if fitted is not None:
            check_same_architecture(self.net_.module_params, architecture)
        spec = None
        if fitted is None:
            params = {name: getattr(self, name) for name in INPUT_LAYER_PARAMS}
            spec = new_network_spec(
                X, encoder, tasks, bias_columns, architecture, **params
            )
        return FitData(
            X=X,
            feature_names=names,
            encoder=encoder,
            targets=targets,
            sample_weight=sample_weight,
            tasks=tasks,
            encoded=encoded,
            task_weights=check_task_weights(self.task_weights, targets.names),
            class_weights=check_class_weight(
                self._class_weight_param(), tasks, encoded
            ),
            early=early,
            n_valid=holdout_size(n_labelled, early, self.validation_fraction),
            spec=spec,
            bias_values=bias_values,
            trained_rows=self._trained_rows(labelled),
        )

    def _trained_rows(self, labelled: np.ndarray) -> np.ndarray | None:
        """The rows ``labelled`` for some task (None: all rows): a row
        without labels adds nothing unless ``gate_balance`` reads it."""
        if self.gate_balance > 0:
            return None
        return None if labelled.all() else np.flatnonzero(labelled)

    def _new_net(self, data: FitData, seed: int, device: torch.device) -> MultiTaskNet:
        """A new net for ``data``, its initial weights drawn from ``seed``."""
        assert data.spec is not None
        criterion = make_criterion(
            data.tasks, data.task_weights, data.class_weights, self.gate_balance
        )
        options = self._net_options(data.n_train, data.encoder, data.scheduled)
        with seeded(seed, device):
            net = make_net(
                data.spec, data.tasks, criterion, device, data.encoder, **options
            )
            set_input_statistics(net, data, seed)
        return net

    def _continue_net(self, data: FitData, seed: int) -> tuple[MultiTaskNet, int]:
        """A copy of the fitted net to train further, and its seed."""
        net = copy.deepcopy(self.net_)
        # A new seed per call, so successive calls see new batch orders.
        seed = (seed + len(net.history)) % np.iinfo(np.int32).max
        options = self._net_options(data.n_train, data.encoder, data.scheduled)
        keys = ("optimizer", "batch_size", "lr", "weight_decay")
        update_training_params(net, **{key: options[key] for key in keys})
        net.criterion_ = make_criterion(
            data.tasks,
            data.task_weights,
            data.class_weights,
            self.gate_balance,
            learned=net.criterion_.weighting,
        ).to(net.device)
        if data.bias_values is not None:
            net.module_.bias_tower.dropout = self.bias_dropout
        return net, seed

    def _net_options(
        self, n_train: int, encoder: CategoricalEncoder | None, scheduled: bool
    ) -> dict[str, Any]:
        """The parameters of a net (:func:`sk_mmoe._building.make_net`) that
        trains on ``n_train`` rows (``scheduled``: under the schedule)."""
        batch_size, lr = step_params(
            n_train, encoder, scheduled, batch_size=self.batch_size, lr=self.lr
        )
        return {
            "architecture": self._module_params(),
            "optimizer": optimizer_class(self.optimizer),
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": self.weight_decay,
            "bias_dropout": self.bias_dropout,
        }

    def _module_params(self) -> dict[str, Any]:
        """The architecture parameters, checked, as the network takes them."""
        return module_params(self.get_params(deep=False))

    def _publish(self, net: MultiTaskNet, data: FitData) -> None:
        """Publish the trained net: a new fit with its data's description;
        continued training keeps the first fit's, with the tasks of the call
        (their encoding is the fitted one; their loss may have changed)."""
        previous = None if data.spec is not None else self._fitted_state().data
        self._set_fitted_state(FittedState(data.fitted(previous), net))

    def _fitted_state(self) -> FittedState:
        """The fitted state: what persistence, export and the metrics read.

        Raises NotFittedError when the estimator is not fitted.
        """
        check_is_fitted(self)
        data = FittedData(
            tasks=tuple(self._tasks),
            spec=self._spec,
            encoder=self._encoder,
            single_task=self._single_task,
            feature_names_in=getattr(self, "feature_names_in_", None),
        )
        return FittedState(data, self.net_)

    def _set_fitted_state(self, state: FittedState) -> None:
        """Publish a trained net: the one place that sets the fitted state.

        ``fit``, ``partial_fit`` and :meth:`_restore` (behind
        :func:`sk_mmoe.load_model`) all end here.
        """
        net, data = state.net, state.data
        self.net_ = net
        self.module_ = state.module
        self.history_ = epochs_of(net)
        self.n_iter_ = len(self.history_)
        weights = net.criterion_.weighting.weights().detach().cpu().numpy()
        self.task_weights_ = weights.astype(np.float64)
        attributes, absent = data.attributes()
        self.__dict__.update(attributes)
        for name in absent:  # e.g. feature_names_in_ in a refit on an array
            if hasattr(self, name):
                delattr(self, name)
        self._set_task_attributes(self._tasks, self._single_task)

    def _restore(
        self,
        saved: NetState,
        data: FittedData,
        device: torch.device,
        source: str = "the saved model",
    ) -> None:
        """Fit from a saved state: the net of ``data`` with the tensors of
        ``saved``, on ``device``; a ValueError (naming ``source``) if they
        do not fit the network that the parameters build.

        Shapes are checked first, on the meta device (no memory), so that a
        crafted state cannot make the network larger than the weights it
        holds.
        """
        tasks = list(data.tasks)
        with torch.device("meta"):
            shapes = data.spec.build(self._module_params(), data.encoder).state_dict()
        check_shapes(shapes, saved.module, f"weights in {source}")
        weights = check_task_weights(self.task_weights, [task.name for task in tasks])
        class_weights = [task.class_weights(None, None) for task in tasks]  # type: ignore[arg-type]
        criterion = make_criterion(tasks, weights, class_weights, self.gate_balance)
        check_shapes(criterion.state_dict(), saved.criterion, f"loss state in {source}")
        # Batch size and lr come again from the rows of any later fit.
        options = self._net_options(1, data.encoder, False)
        with seeded(0, device):  # The initial weights are overwritten.
            net = make_net(data.spec, tasks, criterion, device, data.encoder, **options)
            net.initialize()
        load_net_state(net, saved, source)
        self._set_fitted_state(FittedState(data, net))

    def _validate_X(self, X: Any) -> Any:
        """``X`` for the fitted model, as the network reads it (float32)."""
        fitted = self._fitted_state().data
        # Models pickled before numeric_missing existed refuse missing values.
        numeric_missing = getattr(self, "numeric_missing", "learn")
        return validate_X(self, X, fitted, numeric_missing)

    def _forward(self, X: Any, gates: bool = False) -> torch.Tensor:
        """The outputs (or gate weights) of the validated ``X``."""
        return forward(self.module_, X, self.n_threads, gates)

    def _task_outputs(self, X: Any, conditional: bool = False) -> list[np.ndarray]:
        """Each task's prediction head (see :func:`sk_mmoe._prediction.heads`)."""
        outputs = self._forward(self._validate_X(X))
        return heads(self._tasks, outputs, conditional)

    def _predict_columns(self, X: Any) -> list[np.ndarray]:
        """Each task's predictions, in its own label type or units."""
        outputs = self._task_outputs(X)
        return [
            task.decode(out) for task, out in zip(self._tasks, outputs, strict=True)
        ]

    def _predict(self, X: Any) -> np.ndarray:
        return stack_predictions(self._predict_columns(X), self._single_task)

    def _predict_proba(
        self, X: Any, conditional: bool = False
    ) -> list[np.ndarray | None] | np.ndarray:
        """Class probabilities of every classification task, None for others
        (``conditional``: see :func:`sk_mmoe._prediction.heads`)."""
        outputs = self._task_outputs(X, conditional)
        out = [
            task.proba(head) for task, head in zip(self._tasks, outputs, strict=True)
        ]
        return out[0] if self._single_task else out  # type: ignore[return-value]

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
        weights = self._forward(self._validate_X(X), gates=True)
        return weights.cpu().numpy().astype(np.float64)

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
        """Mean over tasks of each task's default score on its labelled rows
        (see :func:`sk_mmoe._prediction.mean_score`)."""
        columns = self._predict_columns(X)
        check_task_columns(y, self.task_names_)
        targets = read_targets(y, self._missing_marker(), require_labels=False)
        return mean_score(self._tasks, columns, targets, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = self.numeric_missing == "learn"
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags
