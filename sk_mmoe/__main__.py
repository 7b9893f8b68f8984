"""Demo: ``python -m sk_mmoe``.

Fits an MMoE and a Shared-Bottom model of about the same size on the
synthetic two-task data of Ma et al. (2018) and prints each task's test
scores, for a few task correlations.
"""

from __future__ import annotations

import argparse
import time

from sklearn.metrics import accuracy_score, roc_auc_score

from . import MultiTaskMMoEClassifier
from .datasets import make_task_correlation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sk_mmoe", description=__doc__)
    parser.add_argument("--n-samples", type=int, default=4000)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument(
        "--correlations", type=float, nargs="+", default=[0.9, 0.5, 0.0]
    )
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)

    common = dict(
        tower_hidden_layer_sizes=(8,),
        lr=3e-3,
        batch_size=128,
        max_epochs=args.max_epochs,
        random_state=args.random_state,
    )
    models = {
        # About the same number of hidden units: 8 x 16 against 128.
        "Shared-Bottom": dict(n_experts=1, expert_hidden_layer_sizes=(128,)),
        "MMoE": dict(n_experts=8, expert_hidden_layer_sizes=(16,)),
    }
    print(
        f"Two binary tasks, {args.n_samples} training rows, 20 features; "
        f"test set of {args.n_samples // 2} rows."
    )
    header = (
        f"{'correlation':>11}  {'model':<13} {'task':<6} {'ROC AUC':>8} {'accuracy':>9}"
    )
    print(header)
    print("-" * len(header))
    for correlation in args.correlations:
        (X, Y), (X_test, Y_test) = make_task_correlation(
            (args.n_samples, args.n_samples // 2),
            correlation,
            n_features=20,
            random_state=args.random_state,
        )
        for name, params in models.items():
            start = time.perf_counter()
            clf = MultiTaskMMoEClassifier(**params, **common).fit(X, Y)
            seconds = time.perf_counter() - start
            proba = clf.predict_proba(X_test)
            Y_pred = clf.predict(X_test)
            for k, task in enumerate(clf.task_names_):
                auc = roc_auc_score(Y_test[:, k], proba[k][:, 1])
                acc = accuracy_score(Y_test[:, k], Y_pred[:, k])
                print(
                    f"{correlation:>11.2f}  {name:<13} {task:<6} {auc:>8.4f} "
                    f"{acc:>9.4f}" + (f"   (fit {seconds:.1f} s)" if k == 0 else "")
                )


if __name__ == "__main__":
    main()
