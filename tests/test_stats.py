"""Wilson and bootstrap intervals against published values and simulation."""

import numpy as np
import pandas as pd
import pytest

from jaxbp import stats


@pytest.mark.parametrize("k,n,low,high", [
    # Values from Newcombe (1998), Table I, method 3 (Wilson score, no continuity correction).
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998(k, n, low, high):
    assert stats.wilson(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_is_exact_at_the_ends():
    assert stats.wilson(0, 1000)[0] == 0.0 and stats.wilson(1000, 1000)[1] == 1.0


def test_wilson_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    p, n = 0.3, 60
    hits = [stats.wilson(int(k), n)[0] <= p <= stats.wilson(int(k), n)[1] for k in rng.binomial(n, p, 4000)]
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


def test_summarize_seeds_counts_only_finite_losses_and_reached_targets():
    frame = pd.DataFrame({
        "final_loss": [0.001, 0.002, np.inf, 0.2], "train_acc": [1.0, 1.0, 0.5, 0.75],
        "test_acc": [np.nan] * 4, "epochs_to_target": pd.array([10, 30, pd.NA, pd.NA], dtype="Int64"),
        "converged": [True, True, False, False], "diverged": [False, False, True, False]})
    summary = stats.summarize_seeds(frame)
    assert summary["success_rate"] == 0.5 and summary["diverged_rate"] == 0.25
    assert summary["epochs_to_target_median"] == 20
    assert summary["final_loss_median"] == pytest.approx(0.002)
    assert summary["train_acc_mean"] == pytest.approx(0.8125)
