"""A ranker trained on its own biased log: the position, ignored or modelled.

Reproduces the point of Zhao et al. (RecSys 2019) on
:func:`sk_mmoe.datasets.make_recommendation_tasks` with ``position_bias``:
impressions shown in slots by an old ranker that favoured fresh items, and
clicks that fall with the slot whatever the item. The click and
``rated_highly`` tasks are learned by a :class:`sk_mmoe.MultiTaskMMoEClassifier`
three ways:

(a) without the position;
(b) with the position as an ordinary feature, set to the top slot (0) at
    prediction;
(c) with the position in the shallow bias tower (``bias_features``), left
    out at prediction.

Each model ranks the candidates of held-out requests by its click
probability, judged against the true relevance of the item (the click logit
without the slot's term): per-request AUC (:func:`sk_mmoe.metrics.gauc_score`,
the relevant half of a request being the items above its median relevance)
and NDCG@10 (:func:`sk_mmoe.metrics.ndcg_at_k_score`, gains the
position-free click probability). Then the combined score of (c),
``rank_score(X, {"click": 1, "rated_highly": 1})``, is set against a
single-task click model (with the same bias tower) on the true utility
``P(click) + P(rated_highly)`` without position.

Requests are split 80/20 into training and test rows, every fit sees the
same data within a seed; the table gives mean ± standard error over seeds
and, for each method, the paired difference to (a) or to the single-task
model (mean ± SE of the within-seed differences).

Usage::

    python benchmarks/ranker.py              # about 8 min on 2 busy CPU cores
    python benchmarks/ranker.py --quick      # smoke run, seconds

It prints one line per fit and the table, and writes
``benchmarks/results/ranker.md``, ``docs/images/ranker_results.inc`` and
the figure ``docs/images/ranker_position.png`` (the click logit the bias
tower adds per slot against the true effect); ``--quick`` writes
``ranker_quick.md`` only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
from joblib import Parallel, delayed
from seed_stats import mean_se

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's sk_mmoe, even if one is installed

from sk_mmoe import MultiTaskMMoEClassifier  # noqa: E402
from sk_mmoe.datasets import make_recommendation_tasks  # noqa: E402
from sk_mmoe.metrics import gauc_score, ndcg_at_k_score  # noqa: E402

TASKS = ["click", "rated_highly"]
RANK_WEIGHTS = {"click": 1.0, "rated_highly": 1.0}
N_SLOTS = 10
METHODS = {
    "a": "(a) no position",
    "b": "(b) position as a feature, slot 0 at prediction",
    "c": "(c) position in the bias tower",
}


def expit(x: np.ndarray) -> np.ndarray:
    """The logistic function (scipy's ufunc does not pickle to the workers)."""
    return 1.0 / (1.0 + np.exp(-x))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n-samples", type=int, default=30000, help="rows")
    parser.add_argument("--position-bias", type=float, default=1.0)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2, help="fits run at a time")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n_samples, args.max_epochs = 2, 3000, 2
    return args


def make_data(seed: int, args) -> dict:
    X, Y, S = make_recommendation_tasks(
        args.n_samples,
        position_bias=args.position_bias,
        n_slots=N_SLOTS,
        return_watch_time=False,
        return_scores=True,
        random_state=seed,
    )
    request = np.arange(len(X)) // N_SLOTS
    train = request < int(0.8 * (request[-1] + 1))
    test = ~train
    click_truth = S["click"].to_numpy()[test]
    utility = expit(click_truth) + expit(S["rated_highly"].to_numpy()[test])
    return {
        "X_train": X[train],
        "Y_train": Y.loc[train, TASKS],
        "X_test": X[test].reset_index(drop=True),
        "groups": request[test],
        "click_truth": click_truth,
        "utility": utility,
    }


def model(seed: int, args, **params) -> MultiTaskMMoEClassifier:
    return MultiTaskMMoEClassifier(
        max_epochs=args.max_epochs,
        early_stopping=False,
        n_threads=1,
        random_state=seed,
        **params,
    )


def judge(score, truth, gains, groups) -> tuple:
    """Per-request AUC and NDCG@10 of ``score`` against a true relevance.

    The relevant items of a request, for the AUC, are those above its median
    ``truth``; the NDCG's gains are ``gains``.
    """
    median = np.zeros_like(truth)
    for g in np.unique(groups):
        rows = groups == g
        median[rows] = np.median(truth[rows])
    relevant = (truth > median).astype(int)
    return (
        gauc_score(relevant, score, groups=groups),
        ndcg_at_k_score(gains, score, groups=groups, k=10),
    )


def run_fit(seed: int, method: str, args) -> dict:
    data = make_data(seed, args)
    X_train, Y_train, X_test = data["X_train"], data["Y_train"], data["X_test"]
    start = time.perf_counter()
    if method == "a":
        est = model(seed, args).fit(X_train.drop(columns="position"), Y_train)
        click = est.predict_proba(X_test.drop(columns="position"))[0][:, 1]
    elif method == "b":
        est = model(seed, args).fit(X_train, Y_train)
        click = est.predict_proba(X_test.assign(position=0))[0][:, 1]
    elif method == "c":
        est = model(seed, args, bias_features=["position"]).fit(X_train, Y_train)
        click = est.predict_proba(X_test.drop(columns="position"))[0][:, 1]
        combined = est.rank_score(X_test, RANK_WEIGHTS)
        slot_effect = learned_slot_effect(est)
    else:  # single-task click model, debiased the same way
        est = model(seed, args, bias_features=["position"])
        est.fit(X_train, Y_train["click"])
        click = est.predict_proba(X_test)[:, 1]
    seconds = time.perf_counter() - start
    groups = data["groups"]
    row = {"seed": seed, "method": method, "seconds": seconds}
    truth = data["click_truth"]
    row["gauc"], row["ndcg"] = judge(click, truth, expit(truth), groups)
    utility_score = combined if method == "c" else click
    if method == "c":
        row["slot_effect"] = slot_effect
    if method in ("c", "single"):
        utility = data["utility"]
        row["utility_gauc"], row["utility_ndcg"] = judge(
            utility_score, utility, utility, groups
        )
    print(
        f"seed {seed} {method:>6}: GAUC {row['gauc']:.4f}  NDCG@10 "
        f"{row['ndcg']:.4f}  ({seconds:.1f} s)",
        flush=True,
    )
    return row


def learned_slot_effect(est: MultiTaskMMoEClassifier) -> list[float]:
    """The click logit the bias tower adds in each slot, minus slot 0's."""
    import torch

    tower = est.net_.module_.bias_tower.eval()
    with torch.no_grad():
        added = tower(torch.arange(N_SLOTS, dtype=torch.float32).view(-1, 1))
    logit = (added[:, 0, 1] - added[:, 0, 0]).numpy()
    return (logit - logit[0]).tolist()


def plot_slot_effect(rows: list[dict], position_bias: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    effects = np.array([r["slot_effect"] for r in rows if r["method"] == "c"])
    slots = np.arange(N_SLOTS)
    mean, se = mean_se(effects)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(slots, -position_bias * np.log2(1 + slots), "k--", label="true effect")
    ax.errorbar(
        slots,
        mean,
        yerr=2 * se,
        marker="o",
        capsize=3,
        label=f"bias tower (mean ± 2 SE, {len(effects)} seeds)",
    )
    ax.set_xlabel("slot (0 = top)")
    ax.set_ylabel("click logit vs. slot 0")
    ax.set_title("What the bias tower learned about the position")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mean_with_se(values) -> str:
    mean, se = mean_se(values)
    return f"{mean:.4f} ± {se:.4f}"


def tables(rows: list[dict]) -> tuple[str, list[list[str]], list[list[str]]]:
    by = {(r["method"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})

    def column(method, key):
        return np.array([by[method, s][key] for s in seeds])

    click = []
    for method, label in METHODS.items():
        line = [label]
        for key in ("gauc", "ndcg"):
            line.append(mean_with_se(column(method, key)))
            diff = column(method, key) - column("a", key)
            line.append("" if method == "a" else mean_with_se(diff))
        click.append(line)
    combined = []
    for method, label in (
        ("single", "single-task click model, P(click)"),
        ("c", "rank_score of (c), P(click) + P(rated_highly)"),
    ):
        line = [label]
        for key in ("utility_gauc", "utility_ndcg"):
            line.append(mean_with_se(column(method, key)))
            line.append(
                ""
                if method == "single"
                else mean_with_se(column(method, key) - column("single", key))
            )
        combined.append(line)
    return f"{len(seeds)} seeds", click, combined


HEADER = ["", "per-request AUC", "vs (a)", "NDCG@10", "vs (a)"]
HEADER_COMBINED = ["", "per-request AUC", "vs click model", "NDCG@10", "vs click"]


def markdown(header, lines) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def rst(header, lines) -> str:
    out = [".. list-table::", "   :header-rows: 1", ""]
    for line in [header, *lines]:
        out.append("   * - " + (line[0] or " "))
        out += [f"     - {cell or ' '}" for cell in line[1:]]
    return "\n".join(out)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    jobs = [(s, m) for s in range(args.seeds) for m in [*METHODS, "single"]]
    rows = Parallel(n_jobs=args.jobs)(delayed(run_fit)(s, m, args) for s, m in jobs)
    seeds, click, combined = tables(rows)
    setup = (
        f"{args.n_samples} impressions in requests of {N_SLOTS} slots (80% of "
        f"the requests to train), position_bias={args.position_bias}, "
        f"{args.max_epochs} epochs, {seeds}; mean ± SE, and paired differences."
    )
    report = (
        f"{setup}\n\nClick probability against the true click relevance:\n\n"
        f"{markdown(HEADER, click)}\n\nCombined score against the true utility "
        f"P(click) + P(rated_highly):\n\n{markdown(HEADER_COMBINED, combined)}\n"
    )
    print()
    print(report)
    print(f"total {time.perf_counter() - start:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "ranker_quick.md" if args.quick else "ranker.md"
    (args.out / name).write_text(report)
    if not args.quick:
        include = (
            f"{setup}\n\nClick probability against the true click relevance:\n\n"
            f"{rst(HEADER, click)}\n\nCombined score against the true utility "
            f"P(click) + P(rated_highly):\n\n{rst(HEADER_COMBINED, combined)}\n"
        )
        (ROOT / "docs" / "images" / "ranker_results.inc").write_text(include)
        plot_slot_effect(
            rows, args.position_bias, ROOT / "docs" / "images" / "ranker_position.png"
        )


if __name__ == "__main__":
    main()
