"""Statistics across seeds: Wilson intervals for rates, bootstrap intervals for the rest.

Used by both ``sweep.csv`` (via job summaries) and the report, so the two always agree.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    ``p̂ = k/n``; centre ``(p̂ + z²/2n) / (1 + z²/n)``; half-width
    ``z·sqrt(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n)``. Unlike the normal interval it stays inside
    [0, 1] and is sensible at 0% and 100%. Returns ``(nan, nan)`` for ``trials == 0``.
    """
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # At k = 0 or k = n the bound is exactly 0 or 1; the formula leaves round-off there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def bootstrap_ci(values, statistic=np.median, resamples: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the finite entries of ``values``.

    Resamples are drawn with a fixed ``seed`` so reports are reproducible. Returns
    ``(nan, nan)`` when no finite value is left.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, values.size, size=(resamples, values.size))
    estimates = statistic(values[draws], axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


def summarize_seeds(frame) -> dict[str, float]:
    """The per-job aggregate figures of ``sweep.csv`` from one job's ``seeds.csv`` frame."""
    n = len(frame)
    converged = int(frame["converged"].sum())
    low, high = wilson(converged, n)
    final = frame["final_loss"].astype(float)
    finite = final[np.isfinite(final)]
    ett = frame["epochs_to_target"].astype(float)
    return {
        "num_seeds": n,
        "success_rate": converged / n if n else math.nan,
        "success_ci_low": low,
        "success_ci_high": high,
        "final_loss_mean": float(finite.mean()) if len(finite) else math.nan,
        "final_loss_median": float(finite.median()) if len(finite) else math.nan,
        "final_loss_std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
        "epochs_to_target_median": float(ett.dropna().median()) if ett.notna().any() else math.nan,
        "train_acc_mean": float(frame["train_acc"].astype(float).mean()),
        "test_acc_mean": float(frame["test_acc"].astype(float).mean()),
        "diverged_rate": float(frame["diverged"].mean()) if n else math.nan,
    }
