"""How many threads torch uses while an estimator trains or predicts.

PyTorch's CPU operations split work over an OpenMP thread pool whose threads
spin while they wait for each other: with a core taken by another process,
every operation waits for the thread that shares that core, and a small
network trains several times slower with two threads than with one. The
estimators' ``n_threads`` parameter sets the pool's size for the duration of
``fit`` and ``predict``; ``None`` chooses it from the cores that are idle
when training starts.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

__all__ = ["idle_cores", "resolve_threads", "torch_threads"]

# How long the per-core load is sampled before training: long enough to see
# a busy core, short against a fit.
_SAMPLE_SECONDS = 0.03


def _cpu_times() -> dict[str, tuple[int, int]] | None:
    """(busy, total) jiffies of every core, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as stat:
            lines = stat.readlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        values = [int(v) for v in fields[:8]]
        idle = values[3] + values[4]  # idle + iowait
        times[name] = (sum(values) - idle, sum(values))
    return times


def idle_cores(seconds: float = _SAMPLE_SECONDS) -> int | None:
    """Cores this process may use that other processes left idle over ``seconds``.

    The busy time of the allowed cores, minus this process's own (its
    thread pool may still be spinning after the last operation), in cores.
    None where the load cannot be read (not Linux).
    """
    allowed = (
        {f"cpu{i}" for i in os.sched_getaffinity(0)}
        if hasattr(os, "sched_getaffinity")
        else None
    )
    before, own_before = _cpu_times(), os.times()
    if not before:
        return None
    time.sleep(seconds)
    after, own_after = _cpu_times(), os.times()
    if not after:
        return None
    cores = (set(after) if allowed is None else allowed) & set(before) & set(after)
    if not cores:
        return None
    busy = sum(after[c][0] - before[c][0] for c in cores)
    total = sum(after[c][1] - before[c][1] for c in cores)
    if total <= 0:
        return len(cores)
    # /proc/stat counts in clock ticks; os.times in seconds.
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    own = (
        own_after.user + own_after.system - own_before.user - own_before.system
    ) * ticks
    per_core = total / len(cores)
    taken = max(0.0, busy - own) / per_core
    # Other processes' load, rounded to whole cores.
    return max(0, len(cores) - int(taken + 0.5))


def resolve_threads(n_threads: int | None) -> int:
    """The thread count for ``n_threads`` (None: automatic)."""
    if n_threads is not None:
        return int(n_threads)
    # torch's own count already honours OMP_NUM_THREADS, and joblib's worker
    # limits (GridSearchCV(n_jobs=...) sets them in its worker processes).
    current = torch.get_num_threads()
    if current <= 1:
        return 1
    idle = idle_cores()
    return current if idle is None else max(1, min(current, idle))


@contextlib.contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op threads, then restore."""
    previous = torch.get_num_threads()
    if n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
