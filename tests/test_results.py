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


def _frames_pandas_writes():
    import pandas as pd

    rng = np.random.default_rng(7)
    any_double = rng.integers(0, 2**64, 5000, dtype=np.uint64).view(np.float64)  # every exponent, NaNs too
    any_single = rng.integers(0, 2**32, 5000, dtype=np.uint32).view(np.float32)
    edges = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e16, 1e-5, 1e-4, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3]
    return {
        "float64 bit patterns": pd.DataFrame({"x": any_double}),
        "float32 bit patterns": pd.DataFrame({"x": any_single}),
        "nullable Float64 and big UInt64": pd.DataFrame({"x": pd.array([1.5, None, 1e16], dtype="Float64"),
                                                         "u": pd.array([2**64 - 1, None, 0], dtype="UInt64")}),
        "edges": pd.DataFrame({"x": edges, "i": np.arange(len(edges))}),
        "seeds.csv-like": pd.DataFrame({
            "seed": np.arange(3, dtype=np.int64), "loss": [0.5, math.nan, 2.0],
            "epochs_to_target": pd.array([10, None, 30], dtype="Int64"), "converged": [True, False, True],
            "flag": pd.array([True, None, False], dtype="boolean"), "n": np.array([1, 2, 3], np.uint32)}),
        "one column with empty fields": pd.DataFrame({"a": [math.nan, 1.0, math.nan]}),
        "no rows": pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=np.int64)}),
    }


@pytest.mark.parametrize("name", list(_frames_pandas_writes()))
def test_numeric_csv_writes_exactly_what_pandas_writes(name):
    frame = _frames_pandas_writes()[name]
    assert fileio.numeric_csv(frame) == frame.to_csv(index=False)


def test_numeric_csv_leaves_text_columns_and_odd_names_to_pandas(tmp_path):
    import pandas as pd

    assert fileio.numeric_csv(pd.DataFrame({"verdict": ["saddle", "a,b"]})) is None
    assert fileio.numeric_csv(pd.DataFrame({"a b,c": [1.0]})) is None
    # Types whose text differs from float64's repr, and names pandas writes its own way
    # (a review found each written wrongly by the first version).
    assert fileio.numeric_csv(pd.DataFrame({"a": pd.array([0.1, None], dtype="Float32")})) is None
    assert fileio.numeric_csv(pd.DataFrame({"a": np.array([0.1], np.longdouble)})) is None
    assert fileio.numeric_csv(pd.DataFrame({math.nan: [1.0], "b": [2.0]})) is None
    assert fileio.numeric_csv(pd.DataFrame({None: [1.0], "b": [2.0]})) is None
    frame = pd.DataFrame({"verdict": ["saddle", 'say "hi", twice'], "x": [1.0, math.nan]})
    fileio.write_csv(tmp_path / "t.csv", frame)
    assert (tmp_path / "t.csv").read_text() == frame.to_csv(index=False)
