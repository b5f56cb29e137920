"""Statistics across seeds, named for what they estimate; ``scipy.stats`` does the arithmetic.

- a success rate: Wilson score interval (``binomtest(k, n).proportion_ci(method="wilson")``);
- how fast seeds learn: Kaplan–Meier (``ecdf`` of ``CensoredData``). A seed that never
  reached the target, or diverged, is right-censored at the job's epoch count, so the
  median counts every seed, not only the ones that got there;
- a median of anything else, and the mean epochs of the seeds that reached the target (the
  classic papers' figure, conditional on success): percentile bootstrap with a fixed seed,
  so reports reproduce;
- Fahlman's restart accounting: the epochs a solution costs when failed seeds are restarted;
- two jobs against each other: Newcombe's hybrid score interval for the difference of two
  success rates, Fisher's exact test, the log-rank test, and Holm's step-down correction.

Used by job summaries (so ``sweep.csv``), the report and ``jaxbp.compare``, so all agree.
A job's summary figures (Wilson, Kaplan–Meier, the restart bootstrap) run scipy's formulas
in NumPy, to the bit, so writing a job never imports ``scipy.stats``. No JAX here.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from scipy import stats as sps

LEVEL = 0.95
RESAMPLED_VALUES = 4_000_000  # values held at once while resampling (32 MB of float64)


def _scipy_stats():
    """``scipy.stats``, imported on first use: it takes most of a second, which a refused
    command or a read-only tool should not pay."""
    from scipy import stats

    return stats


# The figures of summary.json and sweep.csv are computed with NumPy alone, by the formulas
# scipy.stats uses, operation for operation, so the values are scipy's to the bit
# (tests/test_stats_scipy_parity.py checks) while writing a job never pays scipy.stats'
# import (most of a second). Reports and comparisons still call scipy.stats itself.
_NORMAL_QUANTILES = {0.95: 1.959963984540054}  # scipy.special.ndtri(0.975)


def _z(level: float) -> float:
    """The standard normal quantile at ``1/2 + level/2``."""
    if level in _NORMAL_QUANTILES:
        return np.float64(_NORMAL_QUANTILES[level])
    from scipy.special import ndtri

    return ndtri(0.5 + 0.5 * level)


def _quantile_linear(values: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """scipy.stats.quantile(method="linear") of 1-D ``values`` (Hyndman & Fan's type 7):
    ``(1 − g)·y[j] + g·y[j+1]`` at ``p·n + 1 − p = j + 1 + g`` on the sorted values."""
    y, n = np.sort(values), np.float64(len(values))
    rank = probabilities * n + (1 - probabilities)
    upper = rank // 1
    lower = upper - 1
    g = np.where(lower < 0, 0.0, rank % 1)
    lower, upper = np.clip(lower, 0, n - 1).astype(np.int64), np.clip(upper, 0, n - 1).astype(np.int64)
    with np.errstate(invalid="ignore"):  # 0·inf where a quantile sits on an infinite value
        return (1 - g) * y[lower] + g * y[upper]


def _paired_bootstrap(data, statistic, resamples: int, level: float, seed: int) -> tuple[float, float]:
    """scipy.stats.bootstrap(data, statistic, paired=True, vectorized=True,
    method="percentile", batch=…) with the same draws, batches and percentile rule."""
    rng, n = np.random.default_rng(seed), len(data[0])
    batch = max(1, RESAMPLED_VALUES // n)
    estimates = []
    for start in range(0, resamples, batch):
        rows = rng.integers(0, n, size=(min(batch, resamples - start), n), dtype="int64")
        estimates.append(statistic(*(sample[rows] for sample in data), axis=-1))
    alpha = np.float64((1 - level) / 2)
    low, high = _quantile_linear(np.concatenate(estimates, axis=-1), np.stack([alpha, 1 - alpha]))
    return low, high


SUMMARY_COLUMNS = [
    "num_seeds", "success_rate", "success_ci_low", "success_ci_high",
    "final_loss_mean", "final_loss_median", "final_loss_std",
    "epochs_to_target_median_converged", "epochs_to_target_mean_converged",
    "epochs_to_target_mean_converged_ci_low", "epochs_to_target_mean_converged_ci_high",
    "train_acc_mean", "test_acc_mean", "diverged_rate",
    "epochs_to_target_km_median", "epochs_to_target_km_median_ci_low",
    "epochs_to_target_km_median_ci_high", "solved_by_end",
    "epochs_with_restarts", "epochs_with_restarts_ci_low", "epochs_with_restarts_ci_high",
    "test_loss_mean",  # over seeds with a finite test loss; empty without a test split
]


def _defined(value):
    """A plain float, or ``None`` where the figure is undefined (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------- rates and medians
def wilson(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927): unlike the normal
    interval it stays inside [0, 1] and is exact at 0% and 100%. ``(nan, nan)`` for no trials."""
    if trials <= 0:
        return math.nan, math.nan
    k, n = int(successes), int(trials)
    # As scipy's binomtest(k, n).proportion_ci(level, method="wilson") (Newcombe 1998):
    # (2np + z² ± z·√(4npq + z²)) / 2(n + z²).
    p, z = k / n, _z(level)
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return (0.0 if k == 0 else float(center - delta)), (1.0 if k == n else float(center + delta))


def bootstrap_ci(values, statistic=np.median, resamples: int = 2000, level: float = LEVEL,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the finite entries of ``values``,
    drawn with a fixed ``seed`` so reports reproduce. ``(nan, nan)`` when none is finite."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    if values.size == 1:  # every resample is that one value
        value = float(statistic(values))
        return value, value
    # scipy.stats.bootstrap's draws and percentile rule, in NumPy: a job's summary uses this
    # and must not import scipy.stats (tests/test_stats_scipy_parity.py checks they agree).
    low, high = _paired_bootstrap((values,), statistic, resamples, level, seed)
    return float(low), float(high)


# ---------------------------------------------------------------- time to target
def reached_epochs(frame: pd.DataFrame) -> np.ndarray:
    """Each seed's first epoch at the target, NaN for a seed that never reached it or
    diverged (a diverged network is not a solution, whatever it passed through)."""
    reached = pd.to_numeric(frame["epochs_to_target"], errors="coerce").astype(float).to_numpy()
    diverged = frame["diverged"].astype(bool).to_numpy()
    return np.where(diverged, np.nan, reached)


def horizon(frame: pd.DataFrame, epochs: int | None = None) -> float:
    """Where an unsolved seed is censored: ``epochs``, or else one past the last epoch seen."""
    if epochs is not None:
        return float(epochs)
    seen = [pd.to_numeric(frame[c], errors="coerce").max() for c in ("epochs_to_target", "stopped_epoch")
            if c in frame]
    seen = [s for s in seen if pd.notna(s)]
    return float(max(seen, default=0)) + 1


def time_to_target(frame: pd.DataFrame, epochs: int | None = None) -> sps.CensoredData:
    """Epochs to the target as censored data: a seed that did not get there is right-censored
    at ``epochs`` (see :func:`horizon`)."""
    reached = reached_epochs(frame)
    solved = np.isfinite(reached)
    return _scipy_stats().CensoredData(uncensored=reached[solved],
                            right=np.full(int((~solved).sum()), horizon(frame, epochs)))


class Survival(NamedTuple):
    """Kaplan–Meier ``S(t)``: the share of seeds not yet at the target after epoch ``t``,
    a right-continuous step function from ``epochs[0] = 0`` to ``epochs[-1] = horizon``,
    with its pointwise band (log-log, Greenwood's variance)."""

    epochs: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray
    num_seeds: int

    def at(self, epoch: float) -> float:
        """``S(epoch)``."""
        i = np.searchsorted(self.epochs, epoch, side="right") - 1
        return float(self.survival[max(i, 0)])


def kaplan_meier(frame: pd.DataFrame, epochs: int | None = None, level: float = LEVEL) -> Survival:
    """``S(t)`` of one job's seeds (see :class:`Survival`); censoring as :func:`time_to_target`."""
    end = horizon(frame, epochs)
    if len(frame) == 0:
        one = np.ones(2)
        return Survival(np.array([0.0, end]), one, one, one, 0)
    reached = reached_epochs(frame)
    t, s, band_low, band_high = _km_with_band(reached[np.isfinite(reached)], int((~np.isfinite(reached)).sum()),
                                              end, level)
    low = np.where(np.isnan(band_low), np.where(s >= 1, 1.0, 0.0), band_low)
    # Past the last seed's arrival S = 0 says nothing new: keep the last upper bound there.
    high = pd.Series(np.where(s >= 1, 1.0, band_high)).ffill().fillna(1.0).to_numpy()
    if t[0] > 0:
        t, s, low, high = (np.r_[0.0, t], np.r_[1.0, s], np.r_[1.0, low], np.r_[1.0, high])
    if t[-1] < end:
        t, s, low, high = np.r_[t, end], np.r_[s, s[-1]], np.r_[low, low[-1]], np.r_[high, high[-1]]
    return Survival(t, s, low, high, len(frame))


def _km_with_band(arrived: np.ndarray, censored: int, end: float, level: float):
    """As scipy's ``ecdf(CensoredData(arrived, right=[end] * censored)).sf`` and its
    ``confidence_interval(level, method="log-log")``: the times ``t``, ``S(t)`` and the
    band (NaN where it is undefined), by scipy's formulas, operation for operation.

    ``S(t) = Π (n_i − d_i)/n_i`` over arrival times ``t_i ≤ t`` (``n_i`` at risk, ``d_i``
    arriving); band ``S^exp(±z·se)`` with ``se² = Σ d/(n(n−d)) / log² S`` (Greenwood).
    """
    if censored == 0:  # scipy's uncensored branch: S = 1 − (arrived by t)/n
        t, counts = np.unique(np.sort(arrived), return_counts=True)
        events = np.cumsum(counts)
        survival = 1 - events / arrived.size
        at_risk, arrivals = np.concatenate(([arrived.size], arrived.size - events[:-1])), counts
    else:
        times = np.concatenate((arrived, np.full(censored, end)))
        order = np.argsort(times)
        times, died = times[order], np.asarray([1] * arrived.size + [0] * censored)[order]
        unique = np.diff(times, prepend=-np.inf, append=np.inf) > 0
        t, at_risk = times[unique[:-1]], np.arange(times.size, 0, -1)[unique[:-1]]
        arrivals = np.diff(np.cumsum(died)[unique[1:]], prepend=0)
        survival = np.cumprod((at_risk - arrivals) / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):  # undefined where S is 0 or 1
        se = np.sqrt(1 / np.log(survival) ** 2 * np.cumsum(arrivals / (at_risk * (at_risk - arrivals))))
        log_log = np.log(-np.log(survival))
        z_se = _z(level) * se
        low, high = np.exp(-np.exp(log_log + z_se)), np.exp(-np.exp(log_log - z_se))
    return t, survival, np.clip(low, 0, 1), np.clip(high, 0, 1)


def _first_at_half(epochs: np.ndarray, survival: np.ndarray) -> float | None:
    """The first epoch where the curve is at or below 0.5, ``None`` if it never gets there."""
    below = np.flatnonzero(survival <= 0.5 + 1e-12)  # 1e-12: k/n products round either way of ½
    return float(epochs[below[0]]) if below.size else None


def km_median(curve: Survival) -> tuple[float | None, float | None, float | None]:
    """The epoch by which half of all seeds reached the target, with the 95% interval where
    the band's lower and upper curves cross ½ (Brookmeyer & Crowley 1982); ``None`` where a
    curve never gets down to ½."""
    return (_first_at_half(curve.epochs, curve.survival), _first_at_half(curve.epochs, curve.low),
            _first_at_half(curve.epochs, curve.high))


def _restart_cost(reached, solved, epochs, axis=-1):
    # Fahlman (1988): a failed trial costs `epochs` and is restarted; (1 − p)/p failures are
    # expected before a success, and the success itself costs E[T | solved].
    with np.errstate(divide="ignore", invalid="ignore"):
        k = solved.sum(axis=axis)
        p = k / solved.shape[axis]
        mean_time = np.where(k > 0, (reached * solved).sum(axis=axis) / np.maximum(k, 1), 0.0)
        return np.where(k > 0, mean_time + (1 - p) / p * epochs, np.inf)


def epochs_with_restarts(frame: pd.DataFrame, epochs: int | None = None, resamples: int = 2000,
                         level: float = LEVEL, seed: int = 0) -> tuple[float | None, ...]:
    """Expected epochs to a solution when seeds that have not solved by ``epochs`` are
    restarted with a fresh one: ``E[T | solved] + (1 − p)/p · epochs``, with a percentile
    bootstrap interval over seeds. ``None`` where no seed (or resample) solved."""
    reached = reached_epochs(frame)
    solved = np.isfinite(reached)
    end = horizon(frame, epochs)
    estimate = _defined(_restart_cost(np.nan_to_num(reached), solved, end))
    if estimate is None or len(frame) < 2:
        return estimate, None, None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples with no solved seed are inf
        low, high = _paired_bootstrap((np.nan_to_num(reached), solved.astype(float)),
                                      lambda r, s, axis=-1: _restart_cost(r, s, end, axis), resamples, level, seed)
    return estimate, _defined(low), _defined(high)


# ---------------------------------------------------------------- one job's figures
def _finite_mean(column) -> float | None:
    """Mean of a column's finite values (a diverged seed's inf test loss is left out)."""
    values = np.asarray(pd.to_numeric(column, errors="coerce") if column is not None else [], dtype=float)
    values = values[np.isfinite(values)]
    return values.mean() if len(values) else None


def summarize_seeds(frame: pd.DataFrame, epochs: int | None = None) -> dict[str, float | None]:
    """The per-job figures of ``summary.json`` and ``sweep.csv`` (:data:`SUMMARY_COLUMNS`)
    from one job's seeds frame; ``epochs`` is the job's epoch count (default: one past
    the last epoch seen). ``None`` marks a figure that is undefined."""
    n = len(frame)
    converged = int(frame["converged"].astype(bool).sum())
    low, high = wilson(converged, n)
    final = pd.to_numeric(frame["final_loss"], errors="coerce").astype(float)
    finite = final[np.isfinite(final)]
    reached = reached_epochs(frame)
    reached = reached[np.isfinite(reached)]
    curve = kaplan_meier(frame, epochs)
    median, median_low, median_high = km_median(curve)
    restarts = epochs_with_restarts(frame, epochs)
    # The classic papers' figure: mean epochs over the successful trials only, so it says
    # nothing of the seeds that failed (read it beside success_rate).
    mean_low, mean_high = bootstrap_ci(reached, np.mean)

    def mean(column):
        values = pd.to_numeric(frame[column], errors="coerce").astype(float).dropna()
        return values.mean() if len(values) else None

    figures = {
        "num_seeds": n,
        "success_rate": converged / n if n else None,
        "success_ci_low": low,
        "success_ci_high": high,
        "final_loss_mean": finite.mean() if len(finite) else None,
        "final_loss_median": finite.median() if len(finite) else None,
        "final_loss_std": finite.std(ddof=1) if len(finite) > 1 else None,
        "epochs_to_target_median_converged": np.median(reached) if len(reached) else None,
        "epochs_to_target_mean_converged": np.mean(reached) if len(reached) else None,
        "epochs_to_target_mean_converged_ci_low": mean_low,
        "epochs_to_target_mean_converged_ci_high": mean_high,
        "train_acc_mean": mean("train_acc"),
        "test_acc_mean": mean("test_acc"),
        "diverged_rate": frame["diverged"].astype(bool).mean() if n else None,
        "epochs_to_target_km_median": median,
        "epochs_to_target_km_median_ci_low": median_low,
        "epochs_to_target_km_median_ci_high": median_high,
        "solved_by_end": 1 - curve.at(curve.epochs[-1]) if n else None,
        "epochs_with_restarts": restarts[0],
        "epochs_with_restarts_ci_low": restarts[1],
        "epochs_with_restarts_ci_high": restarts[2],
        "test_loss_mean": _finite_mean(frame.get("test_loss")),
    }
    return {k: (v if k == "num_seeds" else _defined(v)) for k, v in figures.items()}


# ---------------------------------------------------------------- two jobs against each other
def rate_difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """``p1 − p2`` with Newcombe's hybrid score interval (Newcombe 1998, method 10), built
    from the two Wilson intervals: ``δ − √((p1−l1)² + (u2−p2)²)``, ``δ + √((u1−p1)² + (p2−l2)²)``."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    delta = p1 - p2
    return delta, delta - math.hypot(p1 - l1, u2 - p2), delta + math.hypot(u1 - p1, p2 - l2)


def success_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Fisher's exact two-sided p-value that two success rates are equal."""
    return float(_scipy_stats().fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


def logrank_p(a: sps.CensoredData, b: sps.CensoredData) -> float | None:
    """Log-rank two-sided p-value that two jobs reach the target equally fast; ``None``
    when the test has no information (no seed of either reached it, or all at one epoch)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _defined(_scipy_stats().logrank(a, b).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject where ``adjusted <= α`` to hold the
    family-wise error rate at α. (``scipy.stats.false_discovery_control`` offers only the
    Benjamini–Hochberg/Yekutieli FDR methods, so the three lines are written here.)"""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    # The i-th smallest p-value (from 0) is multiplied by m − i; then made monotone.
    stepped = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted
