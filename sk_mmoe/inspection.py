"""Inspect the gates of a fitted MMoE model.

The gates say which experts each task relies on. This module averages them
over a data set (:func:`expert_utilization`), compares them between tasks
(:func:`gate_similarity`) and plots the average as a heat map
(:class:`ExpertUtilizationDisplay`). Each function accepts a fitted
:class:`~sk_mmoe.MultiTaskMMoEClassifier` or a fitted
:class:`~sklearn.pipeline.Pipeline` or fitted search (such as
:class:`~sklearn.model_selection.GridSearchCV`) whose final estimator is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import rel_entr
from sklearn.utils.validation import check_is_fitted

from ._compat import StrOptions, validate_params
from ._composition import final_estimator_and_X
from ._data.targets import default_task_names

__all__ = ["ExpertUtilizationDisplay", "expert_utilization", "gate_similarity"]


def _expert_names(estimator: Any, n_gate_experts: int) -> list[str]:
    """Names of the experts of the last level, in the order of the gates.

    ``"expert0"``, ``"expert1"``... when all experts are shared; with
    task-specific experts, ``"shared0"``... then ``"<task>.0"``... for each
    task in turn.
    """
    n_task_experts = getattr(estimator, "n_task_experts", 0) or 0
    task_names = list(getattr(estimator, "task_names_", []))
    n_shared = n_gate_experts - n_task_experts * len(task_names)
    if n_task_experts == 0 or n_shared < 0:
        return [f"expert{j}" for j in range(n_gate_experts)]
    names = [f"shared{j}" for j in range(n_shared)]
    for task in task_names:
        names.extend(f"{task}.{j}" for j in range(n_task_experts))
    return names


def _gates(estimator: Any, X: Any) -> tuple[np.ndarray, Any]:
    """Gate weights of the model inside ``estimator`` on ``X``, and the model."""
    check_is_fitted(estimator)
    model, X = final_estimator_and_X(estimator, X)
    if not callable(getattr(model, "gate_weights", None)):
        raise TypeError(
            "estimator must be a fitted sk_mmoe estimator, or a Pipeline "
            f"or fitted search ending in one, got {type(model).__name__}, which "
            "has no gate_weights method."
        )
    return model.gate_weights(X), model


def _utilization(estimator: Any, X: Any) -> tuple[np.ndarray, list[str], list[str]]:
    """Mean gate weights on ``X``, with the task and expert names."""
    weights, model = _gates(estimator, X)
    utilization = weights.mean(axis=0)
    expert_names = _expert_names(model, utilization.shape[1])
    return utilization, list(model.task_names_), expert_names


@validate_params(
    {
        "estimator": [object],
        "X": ["array-like", "sparse matrix"],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def expert_utilization(estimator: Any, X: Any, *, as_frame: bool = False) -> Any:
    """Average gate weight of every expert in every task's mixture.

    Entry ``[k, j]`` is the mean over the rows of ``X`` of the weight that
    task ``k``'s gate gives expert ``j``, i.e. ``estimator.gate_weights(X)``
    averaged over the samples. Each row sums to 1.

    Read more in the :ref:`User Guide <inspection>`.

    Parameters
    ----------
    estimator : MultiTaskMMoEClassifier, Pipeline or fitted search
        A fitted :class:`~sk_mmoe.MultiTaskMMoEClassifier`, or a fitted
        :class:`~sklearn.pipeline.Pipeline` whose last step is one (``X`` is
        then transformed by the steps before it), or a fitted search such as
        :class:`~sklearn.model_selection.GridSearchCV` over either.

    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        Input samples over which the gate weights are averaged.

    as_frame : bool, default=False
        If True, return a :class:`pandas.DataFrame` indexed by the task names
        (``task_names_``) with one column per expert (see Notes). Requires
        pandas.

    Returns
    -------
    utilization : ndarray or DataFrame of shape (n_tasks, n_gate_experts)
        Mean gate weight of each expert (columns) for each task (rows).

    See Also
    --------
    sk_mmoe.MultiTaskMMoEClassifier.gate_weights : The per-sample weights.
    gate_similarity : How similarly two tasks use the experts.
    ExpertUtilizationDisplay : Plot the utilization as a heat map.

    Notes
    -----
    The experts are those of the model's last level, in the order of
    :meth:`~sk_mmoe.MultiTaskMMoEClassifier.gate_weights`. The DataFrame's
    columns are named ``"expert0"``, ``"expert1"``... or, with task-specific
    experts (``n_task_experts > 0``), ``"shared0"``... followed by
    ``"<task>.0"``, ``"<task>.1"``... for each task; a task's weight on
    another task's private experts is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mmoe import MultiTaskMMoEClassifier
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> from sk_mmoe.inspection import expert_utilization
    >>> X, Y = make_task_correlation(300, correlation=0.5, n_features=8, random_state=0)
    >>> clf = MultiTaskMMoEClassifier(n_experts=3, max_epochs=2, random_state=0).fit(
    ...     X, Y
    ... )
    >>> utilization = expert_utilization(clf, X)
    >>> utilization.shape
    (2, 3)
    >>> bool(np.allclose(utilization.sum(axis=1), 1.0))
    True
    >>> expert_utilization(clf, X, as_frame=True).index.tolist()
    ['task0', 'task1']
    """
    utilization, task_names, expert_names = _utilization(estimator, X)
    if not as_frame:
        return utilization
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "expert_utilization(..., as_frame=True) requires pandas; install it "
            "with `pip install pandas` or use as_frame=False."
        ) from exc
    return pd.DataFrame(
        utilization,
        index=pd.Index(task_names, name="task"),
        columns=pd.Index(expert_names, name="expert"),
    )


def _js_similarity(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise ``1 - `` Jensen-Shannon distance (base 2) of distributions."""
    m = (p + q) / 2
    divergence = (rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1)) / 2
    # Base-2 divergence lies in [0, 1]; clip the rounding errors around it.
    divergence = np.clip(divergence / np.log(2), 0.0, 1.0)
    return 1.0 - np.sqrt(divergence)


def _cosine_similarity(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1)
    return np.clip(np.einsum("ij,ij->i", p, q) / norms, 0.0, 1.0)


_SIMILARITIES = {"jensenshannon": _js_similarity, "cosine": _cosine_similarity}


@validate_params(
    {
        "estimator": [object],
        "X": ["array-like", "sparse matrix"],
        "metric": [StrOptions(set(_SIMILARITIES))],
    },
    prefer_skip_nested_validation=True,
)
def gate_similarity(
    estimator: Any, X: Any, *, metric: str = "jensenshannon"
) -> np.ndarray:
    """Similarity of the tasks' gates, averaged over samples.

    For every pair of tasks ``(k, l)`` and every row ``x`` of ``X``, the two
    gate distributions over the experts, ``g_k(x)`` and ``g_l(x)``, are
    compared; the similarity matrix is the mean of this comparison over the
    rows. Two tasks whose gates agree on every sample use the same mixture of
    experts (similarity 1); tasks that put their weight on disjoint experts
    share only the input (similarity 0).

    Read more in the :ref:`User Guide <inspection>`.

    Parameters
    ----------
    estimator : MultiTaskMMoEClassifier, Pipeline or fitted search
        A fitted :class:`~sk_mmoe.MultiTaskMMoEClassifier`, or a fitted
        :class:`~sklearn.pipeline.Pipeline` whose last step is one (``X`` is
        then transformed by the steps before it), or a fitted search such as
        :class:`~sklearn.model_selection.GridSearchCV` over either.

    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        Input samples over which the similarity is averaged.

    metric : {"jensenshannon", "cosine"}, default="jensenshannon"
        How two gate distributions ``p`` and ``q`` are compared:

        - ``"jensenshannon"``: ``1 - JS(p, q)``, where ``JS`` is the
          Jensen-Shannon distance in base 2 (the square root of the
          divergence, as :func:`scipy.spatial.distance.jensenshannon`), a
          metric between distributions that lies in ``[0, 1]``;
        - ``"cosine"``: the cosine of the angle between ``p`` and ``q``; gate
          weights are non-negative, so it lies in ``[0, 1]`` too. It is less
          sensitive to small weights than the Jensen-Shannon similarity.

    Returns
    -------
    similarity : ndarray of shape (n_tasks, n_tasks)
        Symmetric matrix with values in ``[0, 1]`` and ones on the
        diagonal; 1 means identical gates on every sample.

    See Also
    --------
    expert_utilization : The average gate weight of each expert per task.

    Notes
    -----
    The similarity is averaged per sample, not computed between the average
    distributions of :func:`expert_utilization`: two tasks that each use a
    single, different expert per sample, but the same experts as often as
    each other over the data set, have identical averages yet dissimilar
    gates. The matrix describes the fitted model, not the data: compare it
    between models fitted with the same settings and several random seeds.

    Examples
    --------
    >>> from sk_mmoe import MultiTaskMMoEClassifier
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> from sk_mmoe.inspection import gate_similarity
    >>> X, Y = make_task_correlation(300, correlation=0.5, n_features=8, random_state=0)
    >>> clf = MultiTaskMMoEClassifier(n_experts=3, max_epochs=2, random_state=0).fit(
    ...     X, Y
    ... )
    >>> similarity = gate_similarity(clf, X)
    >>> similarity.shape
    (2, 2)
    >>> similarity.diagonal().tolist()
    [1.0, 1.0]
    >>> bool(0.0 <= similarity[0, 1] <= 1.0)
    True
    """
    weights, _ = _gates(estimator, X)
    compare = _SIMILARITIES[metric]
    n_tasks = weights.shape[1]
    similarity = np.eye(n_tasks)
    # One pair of tasks at a time: memory stays O(n_samples * n_experts).
    for k in range(n_tasks):
        for other in range(k + 1, n_tasks):
            value = compare(weights[:, k], weights[:, other]).mean()
            similarity[k, other] = similarity[other, k] = value
    return similarity


def _check_matplotlib(caller: str) -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} requires matplotlib. You can install it with "
            "`pip install matplotlib`."
        ) from exc
    return plt


class ExpertUtilizationDisplay:
    """Heat map of the average gate weight of each expert for each task.

    It is recommended to use :meth:`from_estimator` to create an
    :class:`ExpertUtilizationDisplay`. All parameters are stored as
    attributes. Plotting requires matplotlib.

    Read more in the :ref:`User Guide <inspection>`.

    Parameters
    ----------
    utilization : array-like of shape (n_tasks, n_experts)
        Mean gate weights, as returned by :func:`expert_utilization`.

    task_names : sequence of str, default=None
        Row labels. ``None`` gives ``"task0"``, ``"task1"``...

    expert_names : sequence of str, default=None
        Column labels. ``None`` gives ``"expert0"``, ``"expert1"``...

    Attributes
    ----------
    im_ : matplotlib AxesImage
        The heat map.

    text_ : ndarray of shape (n_tasks, n_experts) of matplotlib Text, or None
        The values written in the cells; ``None`` if ``include_values`` is
        False.

    ax_ : matplotlib Axes
        Axes with the heat map.

    figure_ : matplotlib Figure
        Figure containing the heat map.

    See Also
    --------
    expert_utilization : Compute the utilization table.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sk_mmoe import MultiTaskMMoEClassifier
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> from sk_mmoe.inspection import ExpertUtilizationDisplay
    >>> X, Y = make_task_correlation(300, correlation=0.5, n_features=8, random_state=0)
    >>> clf = MultiTaskMMoEClassifier(n_experts=3, max_epochs=2, random_state=0).fit(
    ...     X, Y
    ... )
    >>> disp = ExpertUtilizationDisplay.from_estimator(clf, X)
    >>> disp.text_.shape
    (2, 3)
    >>> [label.get_text() for label in disp.ax_.get_yticklabels()]
    ['task0', 'task1']
    """

    def __init__(
        self,
        utilization: Any,
        *,
        task_names: Sequence[str] | None = None,
        expert_names: Sequence[str] | None = None,
    ) -> None:
        utilization = np.asarray(utilization, dtype=np.float64)
        if utilization.ndim != 2:
            raise ValueError(
                "utilization must be a 2-D array of shape (n_tasks, n_experts), "
                f"got shape {utilization.shape}."
            )
        for name, labels, size in (
            ("task_names", task_names, utilization.shape[0]),
            ("expert_names", expert_names, utilization.shape[1]),
        ):
            if labels is not None and len(labels) != size:
                raise ValueError(
                    f"{name} has {len(labels)} entries but utilization has "
                    f"{size} {'rows' if name == 'task_names' else 'columns'}."
                )
        self.utilization = utilization
        self.task_names = task_names
        self.expert_names = expert_names

    def plot(
        self,
        ax: Any = None,
        *,
        cmap: Any = "viridis",
        values_format: str | None = None,
        colorbar: bool = True,
        include_values: bool = True,
        xticks_rotation: float | str = "horizontal",
        im_kw: dict | None = None,
        text_kw: dict | None = None,
    ) -> ExpertUtilizationDisplay:
        """Plot the heat map.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. ``None`` creates a new figure and axes.

        cmap : str or matplotlib Colormap, default="viridis"
            Colormap.

        values_format : str, default=None
            Format specification of the values written in the cells;
            ``None`` gives ``".2f"``.

        colorbar : bool, default=True
            Whether to add a colorbar.

        include_values : bool, default=True
            Whether to write the values in the cells.

        xticks_rotation : {"vertical", "horizontal"} or float, \
                default="horizontal"
            Rotation of the expert labels.

        im_kw : dict, default=None
            Keyword arguments passed to :meth:`matplotlib.axes.Axes.imshow`;
            by default the color scale starts at 0 (``vmin=0``).

        text_kw : dict, default=None
            Keyword arguments passed to :meth:`matplotlib.axes.Axes.text`.

        Returns
        -------
        display : ExpertUtilizationDisplay
            The display, with ``im_``, ``text_``, ``ax_`` and ``figure_``.
        """
        plt = _check_matplotlib(f"{type(self).__name__}.plot")
        if ax is None:
            _, ax = plt.subplots()
        values = self.utilization
        n_tasks, n_experts = values.shape
        task_names = (
            default_task_names(n_tasks)
            if self.task_names is None
            else list(self.task_names)
        )
        expert_names = (
            [f"expert{j}" for j in range(n_experts)]
            if self.expert_names is None
            else list(self.expert_names)
        )

        im_kw = {"interpolation": "nearest", "cmap": cmap, "vmin": 0.0, **(im_kw or {})}
        self.im_ = ax.imshow(values, **im_kw)
        self.text_ = None
        if include_values:
            self.text_ = np.empty_like(values, dtype=object)
            fmt = ".2f" if values_format is None else values_format
            # Dark text on light cells and vice versa, as scikit-learn does.
            cmap_obj = self.im_.cmap
            low, high = self.im_.norm.vmin, self.im_.norm.vmax
            threshold = (low + high) / 2.0
            for k in range(n_tasks):
                for j in range(n_experts):
                    color = cmap_obj(1.0) if values[k, j] < threshold else cmap_obj(0)
                    kw = {"ha": "center", "va": "center", "color": color}
                    kw.update(text_kw or {})
                    self.text_[k, j] = ax.text(j, k, format(values[k, j], fmt), **kw)
        if colorbar:
            ax.figure.colorbar(self.im_, ax=ax, label="mean gate weight")
        ax.set(
            xticks=np.arange(n_experts),
            yticks=np.arange(n_tasks),
            xticklabels=expert_names,
            yticklabels=task_names,
            xlabel="Expert",
            ylabel="Task",
        )
        plt.setp(ax.get_xticklabels(), rotation=xticks_rotation)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        *,
        task_names: Sequence[str] | None = None,
        expert_names: Sequence[str] | None = None,
        ax: Any = None,
        cmap: Any = "viridis",
        values_format: str | None = None,
        colorbar: bool = True,
        include_values: bool = True,
        xticks_rotation: float | str = "horizontal",
        im_kw: dict | None = None,
        text_kw: dict | None = None,
    ) -> ExpertUtilizationDisplay:
        """Plot the expert utilization of a fitted model on ``X``.

        Parameters
        ----------
        estimator : MultiTaskMMoEClassifier, Pipeline or fitted search
            A fitted :class:`~sk_mmoe.MultiTaskMMoEClassifier`, or a fitted
            :class:`~sklearn.pipeline.Pipeline` whose last step is one, or a
            fitted search such as
            :class:`~sklearn.model_selection.GridSearchCV` over either.

        X : {array-like, sparse matrix, DataFrame} of shape \
                (n_samples, n_features)
            Input samples over which the gate weights are averaged.

        task_names : sequence of str, default=None
            Row labels; ``None`` uses the model's ``task_names_``.

        expert_names : sequence of str, default=None
            Column labels; ``None`` uses the names described in
            :func:`expert_utilization`.

        ax, cmap, values_format, colorbar, include_values, xticks_rotation, \
im_kw, text_kw
            See :meth:`plot`.

        Returns
        -------
        display : ExpertUtilizationDisplay
            The plotted display.
        """
        _check_matplotlib(f"{cls.__name__}.from_estimator")
        utilization, model_task_names, model_expert_names = _utilization(estimator, X)
        display = cls(
            utilization,
            task_names=model_task_names if task_names is None else task_names,
            expert_names=(model_expert_names if expert_names is None else expert_names),
        )
        return display.plot(
            ax=ax,
            cmap=cmap,
            values_format=values_format,
            colorbar=colorbar,
            include_values=include_values,
            xticks_rotation=xticks_rotation,
            im_kw=im_kw,
            text_kw=text_kw,
        )
