"""Means and standard errors over seeds, shared by the benchmarks."""

from __future__ import annotations

import numpy as np


def mean_se(values, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean of ``values`` along ``axis``.

    The standard error is NaN with fewer than two values: one seed says
    nothing about the spread.
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, values.std(axis=axis, ddof=1) / np.sqrt(n)
