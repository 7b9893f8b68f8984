"""Cross-validation splitters for multi-task targets with missing labels.

scikit-learn's :class:`~sklearn.model_selection.StratifiedKFold`
stratifies on one target, and ``cv=<int>`` inspects ``Y`` with
:func:`~sklearn.utils.multiclass.type_of_target`, which fails on missing
labels (``NaN``, ``None``). :class:`MultiTaskStratifiedKFold` stratifies on
every task at once, with each task's missing entries as a stratum of their
own, so that every fold gets its share of each task's classes and of its
labelled rows.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from ._compat import BaseKFold, RepeatedSplits
from ._data.targets import read_targets
from ._tasks import _homogeneous_labels, infer_task_type

__all__ = ["MultiTaskStratifiedKFold", "RepeatedMultiTaskStratifiedKFold"]

_MISSING_LABEL_DOC = """missing_label : int, float, str or None, default=-1
        Value of ``Y`` that marks a missing entry, besides NaN and None
        (always missing): the default of
        :class:`~sk_mmoe.MultiTaskMMoEClassifier`. Missing entries form a
        stratum of their own, as does every class, so the marker only
        matters for regression tasks, whose binned values leave it out."""

_N_BINS_DOC = """n_bins : int, default=5
        Regression tasks (columns of numbers that are not all integers) are
        stratified on this many quantile bins of their labelled values;
        ``n_bins=1`` stratifies them on labelled or missing only."""


class MultiTaskStratifiedKFold(BaseKFold):
    """K-fold splits stratified on every task of ``Y``, missing labels included.

    Each task's strata are its classes (its quantile bins for a regression
    task) and its missing entries, a stratum of their own. The rows are
    assigned to folds by iterative stratification (Sechidis et al., 2011):
    the stratum with the fewest rows left is placed first, each of its rows
    going to the fold that lacks most of that stratum, so that the rare
    classes and the few labelled rows of a sparsely labelled task are spread
    evenly over the folds, while the common strata absorb the rounding.

    Unlike ``cv=<int>`` with a classifier, it accepts any ``Y`` the
    estimators accept: a 2-D array or DataFrame (a 1-D ``y`` is one task),
    string labels with ``None``, numbers with ``NaN`` or the
    ``missing_label`` marker. Pass it as ``cv`` to
    :func:`~sklearn.model_selection.cross_validate`,
    :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.permutation_test_score` and the like.

    Read more in the :ref:`User Guide <scoring_splits>`.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.

    shuffle : bool, default=False
        Whether to shuffle the rows and break ties between equally needy
        folds at random. With False the rows are taken in order and ties go
        to the first fold, so the splits are deterministic.

    random_state : int, RandomState instance or None, default=None
        Controls the shuffling when ``shuffle`` is True; must be None
        otherwise. Pass an int for reproducible splits.

    {missing_label}

    {n_bins}

    See Also
    --------
    RepeatedMultiTaskStratifiedKFold : These splits repeated with different
        randomizations.
    sklearn.model_selection.StratifiedKFold : Stratified on a single target.

    Notes
    -----
    Folds differ in size by about as many rows as there are strata with
    fewer rows than folds. A task class with fewer labelled rows than
    ``n_splits`` cannot appear in every test fold: a warning says so, since
    a ranking score such as ROC AUC is then undefined on some folds.

    References
    ----------
    .. [1] K. Sechidis, G. Tsoumakas and I. Vlahavas, "On the Stratification
       of Multi-Label Data", ECML PKDD 2011, pp. 145-158.
       https://doi.org/10.1007/978-3-642-23808-6_10

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mmoe.model_selection import MultiTaskStratifiedKFold
    >>> Y = np.array(
    ...     [
    ...         ["a", 1.0],
    ...         ["b", np.nan],
    ...         ["a", 0.0],
    ...         [None, 1.0],
    ...         ["b", 0.0],
    ...         ["a", np.nan],
    ...     ],
    ...     dtype=object,
    ... )
    >>> X = np.zeros((6, 1))
    >>> cv = MultiTaskStratifiedKFold(n_splits=2)
    >>> for train, test in cv.split(X, Y):
    ...     print(test)
    [1 2 3]
    [0 4 5]
    """

    missing_label: int | float | str | None
    n_bins: int

    def __init__(
        self,
        n_splits: int = 5,
        *,
        shuffle: bool = False,
        random_state: int | np.random.RandomState | None = None,
        missing_label: int | float | str | None = -1,
        n_bins: int = 5,
    ) -> None:
        super().__init__(n_splits=n_splits, shuffle=shuffle, random_state=random_state)
        if not isinstance(n_bins, numbers.Integral) or isinstance(n_bins, bool):
            raise TypeError(f"n_bins must be an int, got {n_bins!r}.")
        if n_bins < 1:
            raise ValueError(f"n_bins must be at least 1, got {n_bins}.")
        if missing_label is not None and not isinstance(
            missing_label, numbers.Real | str
        ):
            raise TypeError(
                f"missing_label must be an int, float, str or None, got "
                f"{missing_label!r}."
            )
        self.missing_label = missing_label
        self.n_bins = n_bins

    def split(self, X: Any, y: Any, groups: Any = None):
        """Generate indices to split data into training and test set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; only its number of rows is used.

        y : array-like or DataFrame of shape (n_samples,) or \
(n_samples, n_tasks)
            The targets, one column per task, with missing entries.

        groups : object
            Always ignored, exists for compatibility.

        Yields
        ------
        train : ndarray
            The training set indices for that split.

        test : ndarray
            The testing set indices for that split.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} stratifies on the targets: pass y "
                f"(one column per task) to split."
            )
        return super().split(X, y, groups)

    def _iter_test_masks(self, X: Any, y: Any = None, groups: Any = None):
        folds = self._make_test_folds(y)
        for i in range(self.n_splits):
            yield folds == i

    def _make_test_folds(self, y: Any) -> np.ndarray:
        strata = self._strata(y)
        rng = check_random_state(self.random_state) if self.shuffle else None
        return _iterative_stratification(strata, self.n_splits, rng)

    def _strata(self, y: Any) -> np.ndarray:
        """One column of stratum codes per task; 0 is "missing"."""
        targets = read_targets(y, self.missing_label, require_labels=False)
        codes = np.zeros((len(targets.columns[0]), len(targets.columns)), dtype=int)
        for k, name in enumerate(targets.names):
            labelled = targets.labelled[k]
            if not labelled.any():
                continue
            values = _homogeneous_labels(targets.labelled_values(k), name)
            if infer_task_type(values, name) == "regression":
                values = _quantile_bins(values.astype(float), self.n_bins)
            else:
                self._warn_rare_classes(values, name)
            codes[labelled, k] = 1 + np.unique(values, return_inverse=True)[1]
        return codes

    def _warn_rare_classes(self, values: np.ndarray, name: str) -> None:
        classes, counts = np.unique(values, return_counts=True)
        if counts.min() < self.n_splits:
            rare = classes.tolist()[counts.argmin()]
            warnings.warn(
                f"Task {name!r}: its class {rare!r} has only {counts.min()} "
                f"labelled rows, fewer than n_splits={self.n_splits}, so some "
                f"test folds have none of it.",
                UserWarning,
                stacklevel=4,
            )


class RepeatedMultiTaskStratifiedKFold(RepeatedSplits):
    """:class:`MultiTaskStratifiedKFold` repeated with different shuffles.

    Read more in the :ref:`User Guide <scoring_splits>`.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.

    n_repeats : int, default=10
        Number of times the splitting is repeated.

    random_state : int, RandomState instance or None, default=None
        Controls the shuffling of every repetition. Pass an int for
        reproducible splits.

    {missing_label}

    {n_bins}

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mmoe.model_selection import RepeatedMultiTaskStratifiedKFold
    >>> Y = np.array([[0, 1], [1, -1], [0, 0], [1, 1], [0, -1], [1, 0]])
    >>> cv = RepeatedMultiTaskStratifiedKFold(n_splits=2, n_repeats=3, random_state=0)
    >>> cv.get_n_splits()
    6
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        n_repeats: int = 10,
        random_state: int | np.random.RandomState | None = None,
        missing_label: int | float | str | None = -1,
        n_bins: int = 5,
    ) -> None:
        super().__init__(
            MultiTaskStratifiedKFold,
            n_repeats=n_repeats,
            random_state=random_state,
            n_splits=n_splits,
            missing_label=missing_label,
            n_bins=n_bins,
        )


for _cls in (MultiTaskStratifiedKFold, RepeatedMultiTaskStratifiedKFold):
    if _cls.__doc__ is not None:  # None under python -OO
        _cls.__doc__ = _cls.__doc__.format(
            missing_label=_MISSING_LABEL_DOC, n_bins=_N_BINS_DOC
        )


def _quantile_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """The quantile bin of each value (fewer bins where quantiles tie)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def _iterative_stratification(
    strata: np.ndarray, n_splits: int, rng: np.random.RandomState | None
) -> np.ndarray:
    """The fold of each row, stratified on every column of ``strata``.

    Iterative stratification (Sechidis et al., 2011) where every row has
    one stratum per column. ``rng`` shuffles the rows and breaks ties
    between folds; without it, rows go in order and ties to the first fold.
    """
    n_samples, n_tasks = strata.shape
    # One global id per (task, stratum) pair.
    offsets = np.concatenate([[0], np.cumsum(strata.max(axis=0) + 1)[:-1]])
    labels = strata + offsets
    n_labels = int(labels.max()) + 1
    order = np.arange(n_samples) if rng is None else rng.permutation(n_samples)
    # The rows of each label, in the order they are visited.
    flat = labels[order].ravel(order="F")
    by_label = np.argsort(flat, kind="stable")
    rows_of = np.split(
        np.tile(order, n_tasks)[by_label],
        np.cumsum(np.bincount(flat, minlength=n_labels))[:-1],
    )
    # Plain lists: the loop below touches a few numbers per row, which is
    # several times faster than with numpy's small-array overhead.
    remaining = [len(rows) for rows in rows_of]
    # How many more rows of each label (and in all) each fold should get.
    wanted = [[count / n_splits] * n_splits for count in remaining]
    wanted_rows = [n_samples / n_splits] * n_splits
    row_labels = labels.tolist()
    folds = [-1] * n_samples
    all_folds = list(range(n_splits))
    while any(remaining):
        # The label with the fewest rows left (ties: the first, or at random).
        fewest = min(count for count in remaining if count)
        candidates = [i for i, count in enumerate(remaining) if count == fewest]
        label = (
            candidates[0] if rng is None else candidates[rng.randint(len(candidates))]
        )
        for row in rows_of[label].tolist():
            if folds[row] >= 0:
                continue
            # The fold that lacks most of this label; among equals, the one
            # that lacks most of the row's labels, then of rows.
            best = _argmax_all(wanted[label], all_folds)
            if len(best) > 1:
                lacking = [sum(wanted[k][f] for k in row_labels[row]) for f in best]
                best = _argmax_all(lacking, best)
            if len(best) > 1:
                best = _argmax_all([wanted_rows[f] for f in best], best)
            fold = best[0] if rng is None else best[rng.randint(len(best))]
            folds[row] = fold
            for k in row_labels[row]:
                wanted[k][fold] -= 1
                remaining[k] -= 1
            wanted_rows[fold] -= 1
    return np.asarray(folds)


def _argmax_all(values: list[float], ids: list[int]) -> list[int]:
    """The ``ids`` (one per value) whose ``values`` are the largest."""
    top = max(values)
    return [i for i, value in zip(ids, values, strict=True) if value == top]
