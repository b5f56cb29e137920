"""jaxbp.stats computes the job figures with NumPy, by scipy.stats' formulas: the same
values, to the bit, as scipy.stats itself, which is the independent truth here."""

import inspect
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from jaxbp import stats


def _jobs():
    """Random jobs' (reached, solved, end) and the edge cases: nobody, everybody, one seed,
    one solver, ties, and every seed at one epoch."""
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 17, 200, 1000):
        for share in (0.0, 0.3, 0.9, 1.0):
            reached = rng.integers(1, 500, n).astype(float)
            reached[rng.random(n) >= share] = np.nan
            yield reached, 500.0
    yield np.array([5.0, 5.0, 5.0, np.nan]), 10.0
    yield np.array([np.nan] * 9 + [3.0]), 10.0


def _scipy_restarts(reached, solved, end):
    rng = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"
    with np.errstate(all="ignore"):
        result = sps.bootstrap((np.nan_to_num(reached), solved.astype(float)),
                               lambda r, s, axis=-1: stats._restart_cost(r, s, end, axis), n_resamples=2000,
                               method="percentile", paired=True, vectorized=True,
                               batch=max(1, stats.RESAMPLED_VALUES // len(reached)),
                               **{rng: np.random.default_rng(0)})
    return result.confidence_interval.low, result.confidence_interval.high


def test_the_normal_quantile_is_scipys():
    assert stats._z(0.95) == special.ndtri(0.5 + 0.5 * 0.95) == special.ndtri(1 / 2 + 0.95 / 2)
    assert stats._z(0.9) == special.ndtri(0.95)


@pytest.mark.parametrize("n", [1, 2, 7, 40, 263, 1000, 100_000])
def test_wilson_is_scipys_to_the_bit(n):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        ci = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert stats.wilson(k, n) == (ci.low, ci.high), (k, n)


def test_kaplan_meier_and_its_band_are_scipys_to_the_bit():
    for reached, end in _jobs():
        solved = np.isfinite(reached)
        sf = sps.ecdf(sps.CensoredData(uncensored=reached[solved], right=np.full((~solved).sum(), end))).sf
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns where the band is undefined
            band = sf.confidence_interval(0.95, method="log-log")
        t, s, low, high = stats._km_with_band(reached[solved], int((~solved).sum()), end, 0.95)
        np.testing.assert_array_equal(t, sf.quantiles)
        np.testing.assert_array_equal(s, sf.probabilities)
        np.testing.assert_array_equal(low, band.low.probabilities)
        np.testing.assert_array_equal(high, band.high.probabilities)


def test_the_restart_bootstrap_is_scipys_to_the_bit():
    for reached, end in _jobs():
        solved = np.isfinite(reached)
        if len(reached) < 2 or not solved.any():
            continue  # epochs_with_restarts draws no resamples there
        with np.errstate(all="ignore"):
            ours = stats._paired_bootstrap((np.nan_to_num(reached), solved.astype(float)),
                                           lambda r, s, axis=-1, end=end: stats._restart_cost(r, s, end, axis),
                                           2000, 0.95, 0)
        np.testing.assert_array_equal(np.array(ours), np.array(_scipy_restarts(reached, solved, end)))


@pytest.mark.parametrize("statistic", [np.mean, np.median])
def test_the_one_sample_bootstrap_is_scipys_to_the_bit(statistic):
    for reached, _ in _jobs():
        values = reached[np.isfinite(reached)]
        if len(values) < 2:
            continue  # bootstrap_ci answers those without resampling
        expected = sps.bootstrap((values,), statistic, n_resamples=2000, confidence_level=0.95, method="percentile",
                                 batch=max(1, stats.RESAMPLED_VALUES // len(values)), rng=0).confidence_interval
        assert stats.bootstrap_ci(values, statistic) == (float(expected.low), float(expected.high))


def test_a_jobs_figures_do_not_import_scipy_stats():
    code = ("import sys, pandas as pd, numpy as np; from jaxbp import stats\n"
            "f = pd.DataFrame({'final_loss': [0.1, 0.2, 0.3], 'train_acc': 1.0, 'test_acc': np.nan,\n"
            "    'epochs_to_target': [3, 5, None], 'converged': [True, True, False], 'diverged': False})\n"
            "stats.summarize_seeds(f, 10)\n"
            "assert 'scipy.stats' not in sys.modules, 'scipy.stats was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1000:]

