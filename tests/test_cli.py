"""``python -m jaxbp.train`` as a user runs it: files, columns and refusals."""

import json

import numpy as np
import pandas as pd
import pytest

from cli import run_cli
from jaxbp import results


def test_single_run_writes_every_file_with_the_contract_columns(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("jaxbp.train", f"hydra.run.dir={out}", "num_seeds=50", "epochs=400",
                   "curve_seeds=7", "log_every=50", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "50 seeds, xor 2-3-1, sgd lr=0.5, 400 epochs:" in proc.stdout
    seeds = pd.read_csv(out / "seeds.csv")
    assert list(seeds.columns) == results.SEED_COLUMNS and list(seeds["seed"]) == list(range(50))
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.columns) == ["seed", "epoch", "loss"]
    assert curves["seed"].nunique() == 7 and sorted(curves["epoch"].unique()) == list(range(0, 401, 50))
    params = np.load(out / "params.npz")
    assert params["W0"].shape == (50, 2, 3) and params["b1"].shape == (50, 1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["num_seeds"] == 50 and summary["versions"]["jax"]
    assert {"wall_s", "compile_s", "backend", "device", "success_rate"} <= set(summary)
    assert (out / results.MARKER).is_file()


BAD_INPUTS = ["lr=-1", "hidden=0", "num_seeds=0", "epochs=abc", "data=foo", "optim=foo",
              "data.test_fraction=1.5", "batch_size=5", "data=file"]


@pytest.mark.parametrize("override", BAD_INPUTS)
def test_bad_input_is_refused_cleanly_single_run(tmp_path, override):
    out = tmp_path / "outputs" / "run"
    proc = run_cli("jaxbp.train", override, f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    key = override.split("=")[0]
    assert key in proc.stderr or key.split(".")[0] in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 25
    assert not out.exists(), "a refused run leaves nothing behind"


@pytest.mark.parametrize("override", ["lr=0.1,-1", "epochs=10,abc", "batch_size=2,5"])
def test_bad_input_in_a_sweep_is_refused_before_any_job(tmp_path, override):
    sweep = tmp_path / "sweep"
    proc = run_cli("jaxbp.train", "-m", override, "num_seeds=4", f"hydra.sweep.dir={sweep}",
                   cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "Nothing was trained" in proc.stderr
    assert not sweep.exists()


# What a new user hit (issue #28): each refused end to end, exit 2, nothing written.
@pytest.mark.parametrize("args, words", [
    (["lrr=0.1"], "unknown key 'lrr'"),
    (["+lrr=0.1"], "'+' cannot add a key"),
    (["+data.bitz=3"], "unknown key 'data.bitz'"),
    (["-m", "+lrr=0.1,0.2"], "did you mean lr?"),
    (["+experiment=xor_lr_hidden"], "run it as a sweep, with -m"),
    (["experiment=xor_lr_hidden"], "experiments are added, not set: +experiment=xor_lr_hidden"),
])
def test_unknown_keys_and_a_sweep_without_m_are_refused_before_hydra_writes(tmp_path, args, words):
    proc = run_cli("jaxbp.train", *args, "num_seeds=2", "epochs=2", cwd=tmp_path)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [], "no outputs/ or multirun/ dir, no failed.json"


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("a file")
    for key, args in (("hydra.run.dir", []), ("hydra.sweep.dir", ["-m", "lr=0.1,1"])):
        proc = run_cli("jaxbp.train", *args, f"{key}={tmp_path / 'taken' / 'run'}", "num_seeds=2", "epochs=2",
                       cwd=tmp_path)
        assert proc.returncode == 2 and "is a file, not a directory" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_jobs_that_would_share_a_dir_are_refused_before_the_sweep_writes(tmp_path):
    sweep_dir = tmp_path / "sw"
    proc = run_cli("jaxbp.train", "-m", "lr=0.1,1", "num_seeds=2", "epochs=2", f"hydra.sweep.dir={sweep_dir}",
                   "hydra.sweep.subdir=same", cwd=tmp_path)
    assert proc.returncode == 2 and "would share the dir" in proc.stderr
    assert not sweep_dir.exists(), "no jobs.json, multirun.yaml or sweep.json"


def test_a_relative_data_path_survives_hydra_job_chdir(tmp_path):
    pd.DataFrame({"a": [0, 0, 1, 1], "b": [0, 1, 0, 1], "y": [0, 1, 1, 0]}).to_csv(tmp_path / "xor.csv", index=False)
    proc = run_cli("jaxbp.train", "-m", "lr=0.5,1", "data=file", "data.path=xor.csv", "num_seeds=4", "epochs=20",
                   "hydra.job.chdir=true", f"hydra.sweep.dir={tmp_path / 'sw'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (pd.read_csv(tmp_path / "sw" / "sweep.csv")["status"] == "ok").all()


def test_the_same_sweep_in_another_order_resumes_and_says_why_a_job_is_recomputed(tmp_path):
    sweep_dir = tmp_path / "sw"
    first = run_cli("jaxbp.train", "-m", "lr=0.5,1", "hidden=2,3", "num_seeds=4", "epochs=20",
                    f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = pd.read_csv(sweep_dir / "sweep.csv")
    (sweep_dir / "2" / "seeds.csv").write_text("seed\n0\n")  # a damaged job
    again = run_cli("jaxbp.train", "-m", "hidden=2,3", "lr=0.5,1", "num_seeds=4", "epochs=20",
                    f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    out = again.stdout + again.stderr
    assert "job 2 recomputed: seeds.csv changed since it was written" in out
    assert out.count("already complete, skipped") == 3
    pd.testing.assert_frame_equal(pd.read_csv(sweep_dir / "sweep.csv").drop(columns=["wall_s", "compile_s"]),
                                  before.drop(columns=["wall_s", "compile_s"]))
