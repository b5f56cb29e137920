"""Statistics across seeds against published values, hand computations and simulation."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from jaxbp import stats

Z95 = 1.959963984540054


def seeds(reached, diverged=None, converged=None):
    """A seeds frame: ``reached[i]`` is seed i's epochs to target, None if never."""
    n = len(reached)
    diverged = [False] * n if diverged is None else diverged
    ett = pd.array([pd.NA if r is None else r for r in reached], dtype="Int64")
    if converged is None:
        converged = [r is not None and not d for r, d in zip(reached, diverged)]
    return pd.DataFrame({
        "seed": np.arange(n), "final_loss": np.where(diverged, np.inf, 0.01), "train_acc": 1.0,
        "test_acc": np.nan, "epochs_to_target": ett, "converged": converged, "diverged": diverged,
        "stopped_epoch": pd.array([pd.NA] * n, dtype="Int64")})


# Eight seeds, 10 epochs. Two diverged: one never reached the target, the other reached it at
# epoch 3 first; both count as never reaching it, so with the one that never did, three are
# censored at 10.
HAND = seeds([2, 4, 4, None, 6, None, 3, 8], diverged=[False] * 5 + [True, True, False])


# ---------------------------------------------------------------- Wilson and bootstrap
@pytest.mark.parametrize("k,n,low,high", [
    # Values from Newcombe (1998), Table I, method 3 (Wilson score, no continuity correction).
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998(k, n, low, high):
    assert stats.wilson(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_is_exact_at_the_ends_and_undefined_without_trials():
    assert stats.wilson(0, 1000)[0] == 0.0 and stats.wilson(1000, 1000)[1] == 1.0
    assert all(math.isnan(v) for v in stats.wilson(0, 0))


def test_wilson_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    p, n = 0.3, 60
    covers = {k: stats.wilson(k, n)[0] <= p <= stats.wilson(k, n)[1] for k in range(n + 1)}
    hits = [covers[int(k)] for k in rng.binomial(n, p, 4000)]
    # 4000 draws: the coverage estimate has s.e. ≈ 0.0035, so ±0.02 is over 5 s.e.
    assert 0.93 <= np.mean(hits) <= 0.97


def test_bootstrap_interval_of_the_median():
    rng = np.random.default_rng(1)
    sample = rng.normal(10.0, 2.0, 400)
    low, high = stats.bootstrap_ci(sample, np.median)
    assert low < np.median(sample) < high
    # The asymptotic s.e. of a normal median is 1.2533·σ/√n ≈ 0.125; a 95% interval is ~±0.25.
    assert 0.3 < high - low < 0.7
    assert stats.bootstrap_ci(sample, np.median) == (low, high), "fixed seed: reproducible"
    assert np.isnan(stats.bootstrap_ci([np.nan, np.inf])[0])
    assert stats.bootstrap_ci([3.0, np.inf]) == (3.0, 3.0)


# ---------------------------------------------------------------- Kaplan–Meier
def test_kaplan_meier_by_hand_with_censoring():
    curve = stats.kaplan_meier(HAND, epochs=10)
    # S(t) = Π (1 − d/n) over event epochs: 7/8; ·5/7; ·4/5; ·3/4; three censored at 10.
    assert curve.epochs.tolist() == [0, 2, 4, 6, 8, 10]
    assert curve.survival == pytest.approx([1, 7 / 8, 5 / 8, 1 / 2, 3 / 8, 3 / 8], abs=1e-12)
    # Log-log band at t = 2: Greenwood Σ d/(n(n−d)) = 1/56; se of log(−log S) = √(1/56)/|log S|;
    # S^exp(±z·se).
    s, greenwood = 7 / 8, 1 / 56
    se = math.sqrt(greenwood) / abs(math.log(s))
    assert curve.low[1] == pytest.approx(s ** math.exp(Z95 * se), abs=1e-9)
    assert curve.high[1] == pytest.approx(s ** math.exp(-Z95 * se), abs=1e-9)
    # Half of all eight had reached it at epoch 6; the band's lower curve crosses ½ at 2, the
    # upper one never does.
    assert stats.km_median(curve) == (6.0, 2.0, None)


def test_kaplan_meier_agrees_with_scipy_on_a_random_job():
    rng = np.random.default_rng(3)
    reached = [int(t) if rng.random() < 0.6 else None for t in rng.integers(1, 300, 200)]
    diverged = list(rng.random(200) < 0.05)
    curve = stats.kaplan_meier(seeds(reached, diverged), epochs=300)
    solved = [t for t, d in zip(reached, diverged) if t is not None and not d]
    expected = sps.ecdf(sps.CensoredData(uncensored=solved, right=[300] * (200 - len(solved)))).sf
    assert curve.survival[1:] == pytest.approx(expected.evaluate(curve.epochs[1:]), abs=1e-12)
    band = expected.confidence_interval(method="log-log")
    inside = curve.epochs[1:-1]
    assert curve.low[1:-1] == pytest.approx(band.low.evaluate(inside), abs=1e-12)
    assert np.all(curve.low <= curve.survival) and np.all(curve.survival <= curve.high)


def test_kaplan_meier_band_where_all_or_no_seed_reached_it():
    every = stats.kaplan_meier(seeds([5, 5, 7]), epochs=10)
    assert every.survival[-1] == 0 and every.low[-1] == 0 and every.high[-1] == every.high[-2] < 1
    assert stats.km_median(stats.kaplan_meier(seeds([None] * 4), epochs=10)) == (None, None, None)
    assert stats.kaplan_meier(seeds([None] * 4), epochs=10).epochs.tolist() == [0, 10]


def test_km_median_ranks_many_slow_convergers_above_few_fast_ones():
    # Job "few": 10 of 100 seeds reach the target at epochs 10-19, the rest never do.
    # Job "many": 99 of 100 reach it at epochs 200-298. With restarts or without, "many"
    # is the faster way to a solution; the median over converged seeds alone says otherwise.
    few = stats.summarize_seeds(seeds([10 + i for i in range(10)] + [None] * 90), epochs=1000)
    many = stats.summarize_seeds(seeds([200 + i for i in range(99)] + [None]), epochs=1000)
    assert few["epochs_to_target_median_converged"] < many["epochs_to_target_median_converged"]
    assert few["epochs_to_target_km_median"] is None  # never reached by half of them
    assert many["epochs_to_target_km_median"] == 249  # the 50th of 100 seeds: 200 + 49
    assert many["epochs_with_restarts"] < few["epochs_with_restarts"]


# ---------------------------------------------------------------- job summaries
def test_restart_accounting_by_hand():
    summary = stats.summarize_seeds(HAND, epochs=10)
    # Solved: 2, 4, 4, 6, 8 (mean 4.8) of 8, so p = 5/8; (1 − p)/p · 10 = 6 more epochs.
    assert summary["epochs_with_restarts"] == pytest.approx(4.8 + 6)
    assert summary["epochs_with_restarts_ci_low"] < 10.8 < summary["epochs_with_restarts_ci_high"]
    assert summary["solved_by_end"] == pytest.approx(5 / 8)
    assert stats.summarize_seeds(seeds([None] * 3), 10)["epochs_with_restarts"] is None


def test_summarize_seeds_counts_only_finite_losses_and_reached_targets():
    frame = pd.DataFrame({
        "final_loss": [0.001, 0.002, np.inf, 0.2], "train_acc": [1.0, 1.0, 0.5, 0.75],
        "test_acc": [np.nan] * 4, "epochs_to_target": pd.array([10, 30, pd.NA, pd.NA], dtype="Int64"),
        "converged": [True, True, False, False], "diverged": [False, False, True, False]})
    summary = stats.summarize_seeds(frame, epochs=100)
    assert list(summary) == stats.SUMMARY_COLUMNS
    assert summary["success_rate"] == 0.5 and summary["diverged_rate"] == 0.25
    assert summary["epochs_to_target_median_converged"] == 20
    assert summary["epochs_to_target_km_median"] == 30  # the second of four seeds
    assert summary["final_loss_median"] == pytest.approx(0.002)
    assert summary["train_acc_mean"] == pytest.approx(0.8125)
    assert summary["test_acc_mean"] is None, "JSON has no NaN: undefined is None"


def test_summarize_seeds_censors_at_one_past_the_last_epoch_seen_by_default():
    # Last epoch seen: 8, so the unsolved seeds are censored at 9: (1 − p)/p · 9 = 5.4.
    assert stats.summarize_seeds(HAND)["epochs_with_restarts"] == pytest.approx(4.8 + 5.4)


def test_summary_of_a_job_where_every_seed_diverged_is_json_clean():
    summary = stats.summarize_seeds(seeds([None] * 5, diverged=[True] * 5), epochs=50)
    assert summary["success_rate"] == 0 and summary["diverged_rate"] == 1
    assert summary["solved_by_end"] == 0
    assert all(v is None or math.isfinite(v) for v in summary.values())


# ---------------------------------------------------------------- comparisons
@pytest.mark.parametrize("k1,n1,k2,n2,low,high", [
    # Newcombe (1998), Table II, method 10 (hybrid score interval from Wilson intervals).
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0),
    (10, 10, 0, 10, 0.6075, 1.0),
])
def test_rate_difference_matches_newcombe_1998(k1, n1, k2, n2, low, high):
    delta, ci_low, ci_high = stats.rate_difference(k1, n1, k2, n2)
    assert delta == pytest.approx(k1 / n1 - k2 / n2)
    assert (ci_low, ci_high) == pytest.approx((low, high), abs=1e-4)


def test_exact_and_logrank_tests_tell_different_jobs_from_equal_ones():
    assert stats.success_p(30, 40, 5, 40) < 1e-6  # 2.0e-8
    assert stats.success_p(20, 40, 20, 40) == 1.0
    fast = stats.time_to_target(seeds(list(range(10, 50))), 100)
    slow = stats.time_to_target(seeds(list(range(60, 90)) + [None] * 10), 100)
    assert stats.logrank_p(fast, slow) < 1e-8
    assert stats.logrank_p(fast, fast) == pytest.approx(1.0)
    never = stats.time_to_target(seeds([None] * 5), 100)
    assert stats.logrank_p(never, never) is None


def test_holm_step_down_by_hand():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max.
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_importing_stats_does_not_import_jax():
    code = "import sys, jaxbp.stats; sys.exit('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_mean_epochs_of_the_converged_seeds_with_a_bootstrap_interval():
    """Solved seeds reach at 2, 4, 4, 6, 8 (HAND): mean 4.8, conditional on success; the
    interval is the percentile bootstrap of that mean, recomputed here with NumPy."""
    summary = stats.summarize_seeds(HAND, epochs=10)
    assert summary["epochs_to_target_mean_converged"] == pytest.approx(4.8)
    reached = np.array([2, 4, 4, 6, 8], float)
    rng = np.random.default_rng(1)
    means = reached[rng.integers(0, 5, (20000, 5))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    # Monte Carlo error of a 2.5% quantile over 2,000 (ours) and 20,000 resamples: ~0.2 epochs.
    assert summary["epochs_to_target_mean_converged_ci_low"] == pytest.approx(low, abs=0.4)
    assert summary["epochs_to_target_mean_converged_ci_high"] == pytest.approx(high, abs=0.4)
    none = stats.summarize_seeds(seeds([None] * 3), 10)
    assert none["epochs_to_target_mean_converged"] is None and none["epochs_to_target_mean_converged_ci_low"] is None


def test_summary_has_the_mean_test_loss_over_finite_values():
    """issue #28 item 20: moons_regularization compares train and test loss per job."""
    frame = pd.DataFrame({
        "final_loss": [0.1, 0.2, 0.3], "test_loss": [0.5, np.inf, 0.25], "train_acc": [1.0] * 3,
        "test_acc": [1.0] * 3, "epochs_to_target": pd.array([pd.NA] * 3, dtype="Int64"),
        "converged": [False] * 3, "diverged": [False, True, False]})
    assert stats.summarize_seeds(frame, epochs=10)["test_loss_mean"] == pytest.approx(0.375)
    no_split = frame.assign(test_loss=np.nan)
    assert stats.summarize_seeds(no_split, epochs=10)["test_loss_mean"] is None
