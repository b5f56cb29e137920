"""jaxbp.fileio and jaxbp.results: durable writes, the marker's promises, and the sweep dir's
discovery of its jobs, tested on files made by hand."""

import json
import math
import os
import stat

import numpy as np
import pytest

from jaxbp import fileio, results


def test_an_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "a.json"
    fileio.write_json(target, {"v": 1})

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        fileio.atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"], "no temporary file is left behind"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_files_get_the_users_permissions_without_reading_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        fileio.write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~umask


def test_json_has_null_for_nan_and_plain_numbers():
    assert fileio.json_safe({"a": math.nan, "b": np.float32(0.5), "c": [np.int64(3), math.inf]}) == \
        {"a": None, "b": 0.5, "c": [3, None]}


def _job_dir(path, num, overrides):
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {num}\n")
    (path / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


def test_a_sweep_dir_finds_its_jobs_by_their_hydra_files(tmp_path):
    _job_dir(tmp_path / "0", 0, ["lr=0.1"])
    _job_dir(tmp_path / "1", 1, ["lr=1"])
    _job_dir(tmp_path / "elsewhere" / "x", 1, ["lr=1"])  # a second dir for job 1
    store = results.SweepDir(tmp_path)
    found = store.job_dirs()
    assert sorted(found) == [0, 1] and len(found[1]) == 2
    assert store.found_jobs() == [{"num": 0, "overrides": ["lr=0.1"]}, {"num": 1, "overrides": ["lr=1"]}]


def test_why_recomputed_is_silent_for_a_fresh_dir_and_names_the_damage(tmp_path):
    job = results.JobDir(tmp_path / "job")
    assert job.why_recomputed(job.why_incomplete()) is None  # nothing there: a first run has nothing to explain
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "seeds.csv").write_text("seed\n0\n")
    assert job.why_recomputed(job.why_incomplete()) == "it was interrupted before its marker was written"


def test_a_different_sweep_is_named_key_by_key_never_cut_mid_value(tmp_path):
    store = results.SweepDir(tmp_path)
    sweeper = {"_target_": "x.OptunaSweeper", "params": {"lr": "interval(0.1,1)"}, "seed": 0,
               "storage": "s" * 400}
    store.claim({"arguments": ["lr=1"], "sweeper": sweeper})
    with pytest.raises(results.ResultsError) as refused:
        store.claim({"arguments": ["lr=1"], "sweeper": {**sweeper, "seed": 1}})
    message = str(refused.value)
    assert "sweeper.seed: 0 before, 1 now" in message and "storage" not in message
    assert message.endswith("or delete that dir to start over")
