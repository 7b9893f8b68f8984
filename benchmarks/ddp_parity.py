"""Data-parallel (DDP, gloo) fit vs single-process fit: parity and time.

Run from the repository root::

    python benchmarks/ddp_parity.py                # 2 processes, CPU / gloo
    python benchmarks/ddp_parity.py --nproc 4 --n-samples 50000

The script fits the same estimator on the same data once in this process,
then once under ``torchrun --standalone --nproc_per_node N`` (the workers
are this script with ``--worker``), and prints the largest absolute
difference of the weights and of the predicted probabilities, the largest
weight difference between the ranks (0 when DDP all-reduced the gradients),
and the fit times. Each configuration is run with fully labelled targets and
with 30% of every task's labels missing. With ``--device cuda`` the workers
train on ``cuda:LOCAL_RANK`` (modulo the number of GPUs) with nccl, or with
the backend that ``--backend`` names.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_data(n_samples: int, n_features: int, missing: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features)).astype(np.float32)
    w = rng.normal(size=(n_features, 2))
    Y = np.stack(
        [
            (X @ w[:, 0] > 0).astype(np.float64),
            np.digitize(X @ w[:, 1], [-1.0, 1.0]).astype(np.float64),
        ],
        axis=1,
    )
    if missing:
        Y[rng.random(Y.shape) < missing] = np.nan
        Y[np.isnan(Y).all(axis=1), 0] = 1.0
    return X, Y


CONFIGS = {
    "sgd": {"optimizer": "sgd", "lr": 0.05},
    "adam": {"optimizer": "adam", "lr": 1e-3},
}


def make_estimator(args, optimizer: str):
    from sk_mmoe import MultiTaskMMoEClassifier

    return MultiTaskMMoEClassifier(
        n_experts=4,
        expert_hidden_layer_sizes=(32,),
        tower_hidden_layer_sizes=(16,),
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        missing_label=np.nan,
        n_threads=args.threads,
        device=args.device,
        random_state=0,
        **CONFIGS[optimizer],
    )


def fits(args):
    """(name, optimizer, missing) of every fit the script compares."""
    for optimizer in CONFIGS:
        for missing in (0.0, 0.3):
            yield f"{optimizer}-missing{missing:g}", optimizer, missing


@contextlib.contextmanager
def rows_reversed_in_batches():
    """Single-process fits whose batches hold the same rows, in reverse order.

    The loss is a mean over the rows, so only the order of the float32
    additions changes: the difference to the plain fit is the rounding floor
    against which the data-parallel difference is judged.
    """
    from sk_mmoe._fitting.batches import BatchIterator

    plain = BatchIterator.__iter__

    def reversed_iter(self):
        for Xb, yb in plain(self):
            if isinstance(yb, tuple):
                yield Xb.flip(0), tuple(part.flip(0) for part in yb)
            else:
                yield Xb.flip(0), yb.flip(0)

    BatchIterator.__iter__ = reversed_iter
    try:
        yield
    finally:
        BatchIterator.__iter__ = plain


def fit_all(args) -> dict[str, np.ndarray]:
    """Fit every configuration here; weights, probabilities and times."""
    out = {}
    # Warm up (first-call costs of torch and of the process group).
    X, Y = make_data(512, args.n_features, 0.0)
    make_estimator(args, "sgd").set_params(max_epochs=1).fit(X, Y)
    for name, optimizer, missing in fits(args):
        X, Y = make_data(args.n_samples, args.n_features, missing, args.data_seed)
        estimator = make_estimator(args, optimizer)
        start = time.perf_counter()
        estimator.fit(X, Y)
        out[f"{name}/time"] = np.array(time.perf_counter() - start)
        weights = torch.cat(
            [p.detach().cpu().reshape(-1) for p in estimator.module_.parameters()]
        )
        out[f"{name}/weights"] = weights.double().numpy()
        out[f"{name}/proba"] = np.concatenate(estimator.predict_proba(X[:2000]), axis=1)
        out[f"{name}/train_loss"] = np.array(
            [epoch["train_loss"] for epoch in estimator.history_]
        )
    return out


def worker(args) -> None:
    import torch.distributed as dist

    cuda = args.device == "cuda"
    if cuda:
        # Ranks share the GPUs there are (one GPU: every rank on cuda:0, which
        # gloo allows and NCCL refuses).
        index = int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        args.device = f"cuda:{index}"
    dist.init_process_group(backend=args.backend or ("nccl" if cuda else "gloo"))
    rank = dist.get_rank()
    try:
        out = fit_all(args)
        for name, *_ in fits(args):
            # The largest weight difference between any rank and rank 0.
            mine = torch.as_tensor(out[f"{name}/weights"])
            if cuda:
                mine = mine.cuda()
            every = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
            dist.all_gather(every, mine)
            gap = max(float((w - every[0]).abs().max()) for w in every)
            out[f"{name}/rank_gap"] = np.array(gap)
        # Only rank 0 writes files.
        if rank == 0:
            np.savez(args.out, **out)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--n-features", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads/proc")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--backend", help="process group backend (default: nccl on cuda, else gloo)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    single = fit_all(args)
    with rows_reversed_in_batches():
        floor = fit_all(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.npz"
        forwarded = [
            f"--{key.replace('_', '-')}={value}"
            for key, value in vars(args).items()
            if key not in ("worker", "out", "nproc") and value is not None
        ]
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={args.nproc}",
            __file__,
            "--worker",
            f"--out={out}",
            *forwarded,
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        launch = time.perf_counter() - start
        ddp = dict(np.load(out))

    print(
        f"{args.n_samples} x {args.n_features}, 2 classification tasks, batch "
        f"{args.batch_size}, {args.epochs} epochs, {args.threads} torch thread(s) "
        f"per process, {os.cpu_count()} CPUs, device {args.device}"
    )
    print(
        "max|dW|, max|dP|, max|dLoss|: weights, probabilities (2000 rows) and "
        "per-epoch train_loss,\n1 process vs N processes; floor dW: 1 process vs "
        "1 process with every batch's rows reversed\n(rounding only); rank gap: "
        "max|dW| between the ranks."
    )
    print(
        f"{'fit':<16} {'max|dW|':>8} {'max|dP|':>8} {'max|dLoss|':>10} "
        f"{'floor dW':>8} {'rank gap':>8} {'1 proc s':>8} {args.nproc} proc s"
    )
    for name, *_ in fits(args):
        dw = np.abs(single[f"{name}/weights"] - ddp[f"{name}/weights"]).max()
        dp = np.abs(single[f"{name}/proba"] - ddp[f"{name}/proba"]).max()
        dl = np.abs(single[f"{name}/train_loss"] - ddp[f"{name}/train_loss"]).max()
        fw = np.abs(single[f"{name}/weights"] - floor[f"{name}/weights"]).max()
        print(
            f"{name:<16} {dw:>8.1e} {dp:>8.1e} {dl:>10.1e} {fw:>8.1e} "
            f"{float(ddp[f'{name}/rank_gap']):>8.1e} "
            f"{float(single[f'{name}/time']):>8.2f} "
            f"{float(ddp[f'{name}/time']):>8.2f}"
        )
    print(f"torchrun launch, all {args.nproc}-process fits included: {launch:.1f} s")


if __name__ == "__main__":
    main()
