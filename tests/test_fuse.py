"""jaxbp.fuse's grouping rules, in-process and without training: which jobs share a program."""

from pathlib import Path

import numpy as np
import pytest

from jaxbp import config, fuse, plan


def _job(num: int, **values) -> fuse.Job:
    cfg = config.from_dict({"num_seeds": 10, "epochs": 5, "progress": False, "compile_cache": None, **values})
    return fuse.Job(num, Path(f"/nowhere/{num}"), [], plan.plan(cfg))


def _nums(groups) -> list[list[int]]:
    return [[job.num for job in group] for group in groups]


def test_jobs_that_differ_only_in_traced_values_share_one_program():
    jobs = [_job(0, lr=0.1), _job(1, lr=1.0, seed=7), _job(2, l2=0.01), _job(3, l2=0.1), _job(4, activation="tanh")]
    # l2 > 0 is part of the shape (a job without a penalty never pays for it); tanh is another program.
    assert _nums(fuse.group(jobs, max_members=1000)) == [[0, 1], [2, 3], [4]]


def test_widths_fuse_only_when_the_padding_is_cheap_enough():
    narrow_and_wide = [_job(0, hidden=2), _job(1, hidden=3)]
    assert _nums(fuse.group(narrow_and_wide, 1000, width_factor=0.0)) == [[0], [1]]  # never
    # 2-2-1 has 9 parameters, 2-3-1 has 13: padding both to 3 costs 26/22 of the work.
    assert _nums(fuse.group(narrow_and_wide, 1000, width_factor=26 / 22)) == [[1, 0]]  # widest first
    assert _nums(fuse.group(narrow_and_wide, 1000, width_factor=26 / 22 - 0.01)) == [[0], [1]]


def test_the_pallas_kernel_never_trains_padded_members():
    jobs = [_job(0, hidden=2, kernel="pallas"), _job(1, hidden=3, kernel="pallas")]
    assert _nums(fuse.group(jobs, 1000, width_factor=float("inf"))) == [[0], [1]]


def test_groups_split_at_max_members_and_a_big_job_trains_alone():
    jobs = [_job(i, lr=0.1 * (i + 1)) for i in range(5)] + [_job(5, lr=2.0, num_seeds=50)]
    assert _nums(fuse.group(jobs, max_members=20)) == [[0, 1], [2, 3], [4], [5]]


def test_shared_dirs_and_bad_settings_are_named():
    assert "jobs 0 and 2" in fuse.shared_dir([(0, Path("a")), (1, Path("b")), (2, Path("a"))])
    assert fuse.shared_dir([(0, Path("a")), (1, Path("b"))]) == ""
    assert "max_members" in fuse.settings_error(0, "auto", 2.0)
    assert "fuse_widths" in fuse.settings_error(10, "sometimes", 2.0)
    assert "width_work_factor" in fuse.settings_error(10, "auto", 0.5)
    assert fuse.settings_error(10, "never", 1.0) == ""


@pytest.mark.parametrize("nums, text", [([0, 2], "jobs 0,2"), ([5, 3, 4], "jobs 3-5"), ([7], "job 7")])
def test_labels(nums, text):
    assert fuse.label(nums) == text


def test_unpad_keeps_each_jobs_own_units():
    members, n_in, wide, n_out = 3, 2, 5, 1
    rng = np.random.default_rng(0)
    padded = [{"W": rng.normal(size=(members, n_in, wide)), "b": rng.normal(size=(members, wide))},
              {"W": rng.normal(size=(members, wide, n_out)), "b": rng.normal(size=(members, n_out)),
               "S": rng.normal(size=(members, n_in, n_out))}]
    cut = fuse.unpad(padded, 2)
    np.testing.assert_array_equal(cut[0]["W"], padded[0]["W"][:, :, :2])
    np.testing.assert_array_equal(cut[0]["b"], padded[0]["b"][:, :2])
    np.testing.assert_array_equal(cut[1]["W"], padded[1]["W"][:, :2, :])
    np.testing.assert_array_equal(cut[1]["b"], padded[1]["b"])
    np.testing.assert_array_equal(cut[1]["S"], padded[1]["S"])
