"""Results you can trust after anything: refusals that touch nothing, sweep dirs that are
never merged or shared, resume that verifies, precision per program, and Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from cli import cli_env, run_cli
from jaxbp import results

QUICK = ["num_seeds=8", "epochs=40", "progress=false"]


def _sweep(tmp_path, sweep_dir, *args):
    return run_cli("jaxbp.train", "-m", *args, *QUICK, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)


# ------------------------------------------------------------------- refusals touch nothing
@pytest.mark.parametrize("override,status", [
    ("lr=-1", 2), ("hidden=0", 2), ("batch_size=5", 2), ("optim=sgd optim.b1=0.1", 1),
    ("epochs=abc", 1), ("data=foo", 1),
])
def test_refused_single_run_leaves_no_outputs_entry(tmp_path, override, status):
    # The default run dir (outputs/<date>/<time>) must not even be created.
    proc = run_cli("jaxbp.train", *override.split(), cwd=tmp_path)
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_refused_run_never_touches_an_existing_run_or_the_working_dir(tmp_path):
    run = tmp_path / "run"
    assert run_cli("jaxbp.train", *QUICK, f"hydra.run.dir={run}", cwd=tmp_path).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in (run / ".hydra").iterdir()}
    proc = run_cli("jaxbp.train", "lr=-1", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 2
    assert {p.name: p.stat().st_mtime_ns for p in (run / ".hydra").iterdir()} == before
    (tmp_path / "mine.txt").write_text("the user's own file")
    proc = run_cli("jaxbp.train", "lr=-1", "hydra.run.dir=.", cwd=tmp_path)
    assert proc.returncode == 2 and (tmp_path / "mine.txt").read_text() == "the user's own file"


def test_a_file_as_run_dir_is_a_clean_failure(tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = run_cli("jaxbp.train", *QUICK, f"hydra.run.dir={tmp_path / 'afile'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert (tmp_path / "afile").read_text() == "x"


# ------------------------------------------------------------------- sweep dirs
@pytest.mark.heavy
def test_a_reused_sweep_dir_with_a_different_sweep_is_refused(tmp_path):
    sweep_dir = tmp_path / "sw"
    assert _sweep(tmp_path, sweep_dir, "lr=0.01,0.1,1.0").returncode == 0
    stamp = (sweep_dir / "0" / "summary.json").stat().st_mtime_ns
    proc = _sweep(tmp_path, sweep_dir, "lr=0.5,1.0")
    assert proc.returncode == 2 and "different sweep" in proc.stderr
    assert (sweep_dir / "0" / "summary.json").stat().st_mtime_ns == stamp
    table = pd.read_csv(sweep_dir / "sweep.csv")
    assert list(table["lr"]) == [0.01, 0.1, 1.0], "the first sweep's table is untouched"
    again = _sweep(tmp_path, sweep_dir, "lr=0.01,0.1,1.0")  # the same sweep resumes
    assert again.returncode == 0 and again.stdout.count("already complete") == 3


def test_an_experiment_with_other_settings_is_refused_in_its_fixed_dir(tmp_path):
    sweep_dir = tmp_path / "xm"
    args = ["+experiment=xor_momentum", "optim=sgd", "lr=0.1", f"hydra.sweep.dir={sweep_dir}"]
    first = run_cli("jaxbp.train", "-m", *args, "num_seeds=4", "epochs=20", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_cli("jaxbp.train", "-m", *args, "num_seeds=6", "epochs=20", cwd=tmp_path)
    assert second.returncode == 2 and "num_seeds" in second.stderr


@pytest.mark.heavy
def test_two_concurrent_sweeps_one_runs_the_other_is_refused(tmp_path):
    sweep_dir = tmp_path / "sw"
    env = cli_env()
    first = subprocess.Popen([sys.executable, "-m", "jaxbp.train", "-m", "lr=0.1,0.2", "num_seeds=2000",
                              "epochs=4000", "progress=false", f"hydra.sweep.dir={sweep_dir}"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (sweep_dir / "sweep.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    second = run_cli("jaxbp.train", "-m", "lr=0.1,0.2", "num_seeds=2000", "epochs=4000",
                     "progress=false", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    out, err = first.communicate(timeout=300)
    assert second.returncode == 2 and "another sweep is running" in second.stderr
    assert first.returncode == 0, err
    assert (pd.read_csv(sweep_dir / "sweep.csv")["status"] == "ok").all()


def test_jobs_sharing_a_subdir_are_refused_before_training(tmp_path):
    sweep_dir = tmp_path / "sw"
    proc = _sweep(tmp_path, sweep_dir, "lr=0.1,1.0", "hydra.sweep.subdir=same")
    assert proc.returncode == 2 and "share the dir" in proc.stderr
    assert not (sweep_dir / "same" / results.MARKER).exists()


@pytest.mark.heavy
def test_a_failed_aggregation_fails_the_command_and_leaves_no_stale_table(tmp_path):
    sweep_dir = tmp_path / "sw"
    assert _sweep(tmp_path, sweep_dir, "lr=0.1,1.0").returncode == 0
    (sweep_dir / "sweep_seeds.csv").unlink()
    (sweep_dir / "sweep_seeds.csv").mkdir()  # writing the table now fails
    proc = _sweep(tmp_path, sweep_dir, "lr=0.1,1.0")
    assert proc.returncode == 1 and "could not be aggregated" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (sweep_dir / "sweep.csv").exists(), "an old table never stays as if current"


# ------------------------------------------------------------------- resume verifies
@pytest.mark.heavy
def test_corrupting_any_job_file_recomputes_exactly_that_job(tmp_path):
    sweep_dir = tmp_path / "sw"
    args = ["lr=0.1,0.2,0.3,0.4,0.5", "hydra/launcher=basic"]
    assert _sweep(tmp_path, sweep_dir, *args).returncode == 0
    (sweep_dir / "1" / "summary.json").write_text("garbage{")
    params = sweep_dir / "2" / "params.npz"
    params.write_bytes(params.read_bytes()[:50])
    seeds = pd.read_csv(sweep_dir / "3" / "seeds.csv")
    seeds.head(3).to_csv(sweep_dir / "3" / "seeds.csv", index=False)
    (sweep_dir / "4" / ".seeds.csv.123.tmp").write_text("an orphan of a killed writer")
    stamp = (sweep_dir / "0" / "summary.json").stat().st_mtime_ns
    proc = _sweep(tmp_path, sweep_dir, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("already complete") == 2  # jobs 0 and 4
    assert (sweep_dir / "0" / "summary.json").stat().st_mtime_ns == stamp
    for job in (1, 2, 3):
        assert results.JobDir(sweep_dir / str(job)).is_complete()
    assert len(pd.read_csv(sweep_dir / "sweep_seeds.csv")) == 5 * 8


@pytest.mark.heavy
def test_a_changed_data_file_invalidates_its_job(tmp_path):
    data = tmp_path / "d.csv"
    pd.DataFrame({"a": [0.0, 1, 2, 3], "y": [0, 1, 1, 0]}).to_csv(data, index=False)
    sweep_dir = tmp_path / "sw"
    args = ["data=file", f"data.path={data}", "lr=0.1,1.0"]
    assert _sweep(tmp_path, sweep_dir, *args).returncode == 0
    pd.DataFrame({"a": [0.0, 1, 2, 3], "y": [1, 0, 0, 1]}).to_csv(data, index=False)
    proc = _sweep(tmp_path, sweep_dir, *args)
    assert proc.returncode == 0 and "already complete" not in proc.stdout


# ------------------------------------------------------------------- precision per program
def test_a_mixed_dtype_sweep_trains_each_job_at_its_own_precision(tmp_path):
    sweep_dir = tmp_path / "sw"
    proc = run_cli("jaxbp.train", "-m", "dtype=float64,float32", "num_seeds=4", "epochs=200",
                   f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert np.load(sweep_dir / "0" / "params.npz")["W0"].dtype == np.float64
    assert np.load(sweep_dir / "1" / "params.npz")["W0"].dtype == np.float32


def test_summary_json_is_strict_json(tmp_path):
    run = tmp_path / "run"
    assert run_cli("jaxbp.train", *QUICK, f"hydra.run.dir={run}", cwd=tmp_path).returncode == 0
    text = (run / "summary.json").read_text()
    assert "NaN" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))


# ------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_prints_one_line_exits_130_and_leaves_no_marker(tmp_path):
    run = tmp_path / "run"
    env = cli_env()
    proc = subprocess.Popen([sys.executable, "-m", "jaxbp.train", "num_seeds=2000", "epochs=2000000",
                             "progress=false", f"hydra.run.dir={run}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / ".hydra").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(3)  # compiling or training by now
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (run / results.MARKER).exists()
