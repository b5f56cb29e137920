"""jaxbp.plan: a job resolved once. The dataset is loaded once per data option and file
version, shared read-only, and the process's caches are bounded."""

import os

import numpy as np
import pandas as pd
import pytest

from jaxbp import config, plan, runner
from jaxbp.checks import ConfigError


def _cfg(**values):
    return config.from_dict({"num_seeds": 4, "epochs": 5, "progress": False, "compile_cache": None, **values})


def test_equal_data_options_share_one_read_only_dataset():
    a, b = plan.plan(_cfg(lr=0.1)), plan.plan(_cfg(lr=2.0, hidden=5))
    assert a.dataset is b.dataset and a.spec.sizes == (2, 3, 1) and b.spec.sizes == (2, 5, 1)
    with pytest.raises(ValueError, match="read-only"):
        a.dataset.x_train[0, 0] = 7.0


def test_a_changed_file_is_read_again_and_vouched_for_by_its_new_hash(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"a": [0, 0, 1, 1], "b": [0, 1, 0, 1], "y": [0, 1, 1, 0]}).to_csv(path, index=False)
    cfg = _cfg(data={"name": "file", "path": str(path)})
    first = plan.plan(cfg)
    pd.DataFrame({"a": [0, 0, 1, 1, 2], "b": [0, 1, 0, 1, 2], "y": [0, 1, 1, 0, 1]}).to_csv(path, index=False)
    os.utime(path, ns=(1, 1))  # a new version even within the clock's resolution
    second = plan.plan(cfg)
    assert first.dataset.x_train.shape[0] == 4 and second.dataset.x_train.shape[0] == 5
    assert first.vouches()["data_sha256"] != second.vouches()["data_sha256"]


def test_checks_that_need_the_data_are_refused_with_their_key():
    with pytest.raises(ConfigError, match="batch_size"):
        plan.plan(_cfg(batch_size=5))  # XOR has 4 rows


def test_bounded_caches_drop_the_least_recently_used():
    cache = plan.Bounded(2)
    for key in "abc":
        cache.get_or_make(key, lambda key=key: key.upper())
    assert list(cache) == ["b", "c"]
    cache.get_or_make("b", lambda: "never called")
    cache.get_or_make("d", lambda: "D")
    assert list(cache) == ["b", "d"] and cache["b"] == "B"
    assert runner._PROGRAMS.size and runner._COMPILED.size  # the runner's caches are bounded too


def test_a_program_evicted_from_the_runners_cache_still_trains_the_same(monkeypatch):
    monkeypatch.setattr(runner, "_PROGRAMS", plan.Bounded(1))
    monkeypatch.setattr(runner, "_COMPILED", plan.Bounded(1))
    first = runner.run(_cfg(hidden=2)).metrics["final_loss"]
    runner.run(_cfg(hidden=4))  # evicts hidden=2's program and compiled functions
    np.testing.assert_array_equal(runner.run(_cfg(hidden=2)).metrics["final_loss"], first)
