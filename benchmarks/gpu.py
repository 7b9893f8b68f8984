"""The CUDA path of the estimators: correctness, determinism and speed vs CPU.

Runs only where ``torch.cuda.is_available()``; it prints the tables and
writes ``gpu.json`` (every figure, the machine and the versions) and
``gpu.txt`` to ``--out``. Checks, on the reference network of
``benchmarks/performance.py`` (8 experts (64, 32), towers of 16, 3 binary
tasks, 100,000 x 64 rows):

* ``fit`` on ``device="cuda"`` against the same fit on CPU, and against a
  hand-written PyTorch loop on the GPU, at batch sizes 1024 and 4096;
* ``predict_proba`` on 100,000 rows and on one row, GPU vs CPU;
* determinism: two fits with the same ``random_state`` on the GPU, and how
  far GPU predictions are from the CPU ones of the same weights;
* the regressor, the mixed-task estimator with ``"uncertainty"`` weights,
  and a model saved on the GPU and loaded on the CPU.

Usage::

    python benchmarks/gpu.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from performance import LR, NETWORK, fit_torch_loop, make_data  # noqa: E402

import sk_mmoe  # noqa: E402
from sk_mmoe import (  # noqa: E402
    MultiTaskMMoE,
    MultiTaskMMoEClassifier,
    MultiTaskMMoERegressor,
    load_model,
    save_model,
)


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function, repeats: int) -> tuple[float, object]:
    """Median wall time of ``function()`` (synchronised), and its last result."""
    times, result = [], None
    for _ in range(repeats):
        _synchronize()
        start = time.perf_counter()
        result = function()
        _synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def fit_estimator(X, Y, device: str, batch_size: int, epochs: int = 2):
    return MultiTaskMMoEClassifier(
        **NETWORK,
        batch_size=batch_size,
        lr=LR,
        max_epochs=epochs,
        # The settings the figures were measured with (the defaults then).
        early_stopping=False,
        numeric_scaling=None,
        dropout=0.0,
        weight_decay=0.0,
        device=device,
        random_state=0,
    ).fit(X, Y)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    # A smoke run of the script itself on a machine without GPU.
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("CUDA is not available on this machine.")
    device = args.device
    args.out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    info = {
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else device,
        "torch": torch.__version__,
        "sk_mmoe": sk_mmoe.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
    }
    say(f"machine: {info}")
    results: dict = {"machine": info}
    X, Y = make_data(args.rows, 64)

    say(f"\nfit, 100k x 64, 2 epochs (median of {args.repeats})")
    say(
        f"{'batch':>6} {'cuda s':>8} {'cpu s':>8} {'gpu loop s':>11} "
        f"{'cpu/cuda':>9} {'cuda/loop':>10}"
    )
    fit_rows = []
    for batch_size in (1024, 4096):
        fit_estimator(X[:5000], Y[:5000], device, batch_size, 1)  # warm-up
        fit_torch_loop(X[:5000], Y[:5000], 1, batch_size, device=device)
        gpu, _ = timed(
            lambda b=batch_size: fit_estimator(X, Y, device, b), args.repeats
        )
        cpu, _ = timed(lambda b=batch_size: fit_estimator(X, Y, "cpu", b), args.repeats)
        loop, _ = timed(
            lambda b=batch_size: fit_torch_loop(X, Y, 2, b, device=device), args.repeats
        )
        fit_rows.append(
            {"batch_size": batch_size, "cuda_s": gpu, "cpu_s": cpu, "gpu_loop_s": loop}
        )
        say(
            f"{batch_size:>6} {gpu:>8.3f} {cpu:>8.3f} {loop:>11.3f} "
            f"{cpu / gpu:>9.2f} {gpu / loop:>10.2f}"
        )
    results["fit"] = fit_rows

    gpu_model = fit_estimator(X, Y, device, 1024)
    cpu_model = fit_estimator(X, Y, "cpu", 1024)
    say("\npredict_proba (median of 11)")
    predict = {}
    for name, model in ((device, gpu_model), ("cpu", cpu_model)):
        model.predict_proba(X[:16])
        full, _ = timed(lambda m=model: m.predict_proba(X), 11)
        one, _ = timed(lambda m=model: m.predict_proba(X[:1]), 201)
        predict[name] = {"rows_100k_s": full, "one_row_us": one * 1e6}
        say(f"{name:>5}: 100k rows {full * 1e3:8.1f} ms, one row {one * 1e6:8.1f} us")
    results["predict"] = predict

    say("\ndeterminism and agreement")
    again = fit_estimator(X, Y, device, 1024)
    p1 = np.stack(gpu_model.predict_proba(X[:20000]))
    p2 = np.stack(again.predict_proba(X[:20000]))
    same_seed = float(np.abs(p1 - p2).max())
    # The GPU model's weights on the CPU: how far the two devices' arithmetic is.
    buffer = io.BytesIO()
    save_model(gpu_model, buffer)
    buffer.seek(0)
    on_cpu = load_model(buffer, device="cpu")
    p_cpu = np.stack(on_cpu.predict_proba(X[:20000]))
    cross_device = float(np.abs(p1 - p_cpu).max())
    agree_labels = float((gpu_model.predict(X) == on_cpu.predict(X)).mean())
    det = {
        "same_seed_max_abs_diff": same_seed,
        "gpu_vs_cpu_same_weights_max_abs_diff": cross_device,
        "gpu_vs_cpu_label_agreement": agree_labels,
        "gpu_vs_cpu_trained_label_agreement": float(
            (gpu_model.predict(X) == cpu_model.predict(X)).mean()
        ),
    }
    for key, value in det.items():
        say(f"{key}: {value:.3g}")
    results["determinism"] = det

    say("\nregressor and mixed tasks on cuda")
    rng = np.random.default_rng(0)
    Y_reg = X[:, :3] @ rng.normal(size=(3, 2)) * 50 + 100
    reg = MultiTaskMMoERegressor(
        **NETWORK, batch_size=1024, max_epochs=3, device=device, random_state=0
    ).fit(X, Y_reg)
    watch = np.where(Y[:, 0] == 1, np.exp(X[:, 1]) * 30, np.nan)
    Y_mixed = np.column_stack([Y[:, 0].astype(float), watch, Y[:, 2].astype(float)])
    mixed = MultiTaskMMoE(
        **NETWORK,
        batch_size=1024,
        max_epochs=3,
        task_weights="uncertainty",
        device=device,
        random_state=0,
    ).fit(X, Y_mixed)
    other = {
        "regressor_r2": reg.score(X, Y_reg),
        "mixed_score": mixed.score(X, Y_mixed),
        "mixed_task_types": mixed.task_types_,
        "mixed_task_weights": mixed.task_weights_.tolist(),
    }
    buffer = io.BytesIO()
    save_model(mixed, buffer)
    buffer.seek(0)
    mixed_cpu = load_model(buffer, device="cpu")
    diff = np.nanmax(
        np.abs(
            mixed.predict(X[:5000]).astype(float)
            - mixed_cpu.predict(X[:5000]).astype(float)
        )
    )
    other["mixed_gpu_saved_cpu_loaded_max_abs_diff"] = float(diff)
    for key, value in other.items():
        say(f"{key}: {value}")
    results["other"] = other

    (args.out / "gpu.json").write_text(json.dumps(results, indent=2))
    (args.out / "gpu.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
