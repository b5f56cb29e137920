"""What a new user hit (issue #19), each pinned by a test that failed before its fix."""

import json

import numpy as np
import pandas as pd
import pytest

from cli import run_cli
from jaxbp import config, engine, job, model, plan, results, runner


def _cfg(**values):
    return config.from_dict({"compile_cache": None, "progress": False, **values})


# 2. a one-unit softmax can never learn: refused in the library and on the command line
def test_one_unit_softmax_is_refused():
    with pytest.raises(ValueError, match="at least 2 output units"):
        model.Spec((2, 3, 1), output="softmax")
    with pytest.raises(config.ConfigError, match="two or more outputs"):
        engine.make_program(_cfg(output="softmax"))
    # ce one-hot encodes two classes to two outputs, so softmax + ce trains on XOR.
    assert runner.program_for(_cfg(output="softmax", loss="ce")).spec.sizes == (2, 3, 2)


# 3. early stopping: stopped_epoch per seed, and the curve ends where the seed stopped
def test_early_stopping_records_the_stop_and_ends_the_curve_there():
    cfg = _cfg(num_seeds=8, epochs=400, lr=5.0, hidden=16, optim={"name": "adam"}, patience=2,
               curve_seeds=8, log_every=1, data={"name": "moons", "n_samples": 60, "noise": 0.4})
    result = runner.run(cfg)
    stopped = result.metrics["stopped_epoch"]
    assert (stopped >= 0).any(), "with patience=2 at lr=5 some seed stops"
    curves = results.curves_frame(result)
    seeds = results.seeds_frame(result)
    for member in np.flatnonzero(stopped >= 0):
        seed = int(result.seeds[member])
        assert curves[curves["seed"] == seed]["epoch"].max() == stopped[member]
        assert seeds.loc[member, "stopped_epoch"] == stopped[member]
    never = np.flatnonzero(stopped < 0)
    assert seeds.loc[never, "stopped_epoch"].isna().all()


# 4. library defaults equal the command line's (tested in test_config too)
def test_make_train_trains_on_the_same_data_as_the_cli():
    dataset = runner.program_for(_cfg(data={"name": "moons"})).dataset
    assert dataset.x_test.shape[0] == 50 and abs(dataset.x_train.mean()) < 1e-12


# 9, 13, 14: the summary line
def _summary(**overrides):
    summary = {"config": {"data": {"name": "moons"}, "optim": {"name": "sgd"}, "lr": 0.5, "epochs": 100,
                          "target_loss": 0.01},
               "num_seeds": 1, "spec": [2, 3, 1], "success_rate": 0.0, "success_ci_low": 0.0,
               "success_ci_high": 0.95, "epochs_to_target_km_median": None, "train_acc_mean": 0.96,
               "test_acc_mean": 0.94, "diverged_rate": 0.0, "wall_s": 1.0, "compile_s": 0.5, "fused_jobs": 1}
    return {**summary, **overrides}


def test_the_summary_line_shows_accuracy_for_classification_data():
    line = job.describe(_summary(), "dir")
    assert "train acc 96.0%" in line and "test acc 94.0%" in line


def test_the_summary_line_says_one_seed_and_no_empty_median():
    line = job.describe(_summary(), "dir")
    assert "1 seed," in line and "1 seeds" not in line
    assert "median epochs to target:" not in line  # nothing reached: no empty median clause


def test_a_fused_job_reports_its_groups_time_once():
    line = job.describe(_summary(fused_jobs=4, wall_s=2.0, compile_s=1.0), "dir")
    assert "trained fused with 3 other jobs: 2.0 s (compile 1.0 s) for all 4" in line


# 10. summary.json is strict JSON: null, never NaN
def test_json_writer_writes_null_for_nan(tmp_path):
    results.write_json(tmp_path / "s.json", {"a": float("nan"), "b": [np.float32("inf"), 1.0]})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": None, "b": [None, 1.0]}


# 14. train.log holds the summary line; bench.csv lands under outputs/
def test_train_log_holds_the_summary_line(tmp_path):
    run = tmp_path / "run"
    proc = run_cli("jaxbp.train", "num_seeds=4", "epochs=20", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "4 seeds, xor 2-3-1" in (run / "train.log").read_text()


def test_devices_beyond_what_exists_says_so(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        runner.run(_cfg(num_seeds=4, epochs=5, devices=64))
    assert "devices=64 asked" in caplog.text


def test_the_fused_progress_label_lists_jobs_that_are_not_a_range():
    from jaxbp.fuse import label

    assert label([0, 2]) == "jobs 0,2" and label([3, 4, 5]) == "jobs 3-5" and label([7]) == "job 7"


def test_bench_writes_under_outputs_by_default(tmp_path):
    proc = run_cli("jaxbp.bench", "--quick", "--impls", "jaxbp_vmap", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "outputs" / "bench.csv").is_file() and not (tmp_path / "bench.csv").exists()


@pytest.mark.heavy
def test_gradcheck_prints_one_line_per_spec(capsys):
    from jaxbp import gradcheck

    assert gradcheck.main(["--sizes", "2,3,3,1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # header; the spec as is, masked, with shortcuts and a sum, with Fahlman's dead zone and
    # f′ offset; the verdict
    assert len(lines) == 6 and "dead zone, f′ offset" in lines[4]
    assert gradcheck.main(["--sizes", "2,3,3,1", "--verbose"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2 + 4 * 3



def test_seeds_frame_types_are_stable_on_read(tmp_path):
    cfg = _cfg(num_seeds=5, epochs=30)
    result = runner.run(cfg)
    job.write(tmp_path, plan.plan(cfg), result, np.arange(5), [], None, job.Timing(result.wall_s, result.compile_s))
    seeds = results.JobDir(tmp_path).seeds()
    assert str(seeds["epochs_to_target"].dtype) == "Int64"
    assert list(seeds.columns) == results.SEED_COLUMNS
    assert isinstance(pd.read_csv(tmp_path / "seeds.csv"), pd.DataFrame)
