"""Real ``-m`` sweeps in a subprocess: the aggregated CSVs, resume, and failed jobs."""

import json

import pandas as pd
import pytest

from cli import run_cli, run_in_process
from jaxbp import results, stats, sweep

SWEEP_ARGS = ["-m", "lr=0.1,1.0", "hidden=2,3", "num_seeds=8", "epochs=60"]


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    proc = run_cli("jaxbp.train", *SWEEP_ARGS, f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root, proc


def test_sweep_csvs_have_one_row_per_job_and_per_seed(finished_sweep):
    root, proc = finished_sweep
    table = pd.read_csv(root / "sweep" / "sweep.csv")
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert list(table.columns[:3]) == ["lr", "hidden", "epochs"]
    assert list(table.columns[3:7]) == ["job", "job_dir", "status", "reason"]
    assert list(table.columns[7:]) == sweep.stat_columns()
    assert sorted(zip(table["lr"], table["hidden"])) == [(0.1, 2), (0.1, 3), (1.0, 2), (1.0, 3)]
    seeds = pd.read_csv(root / "sweep" / "sweep_seeds.csv")
    assert len(seeds) == 4 * 8
    assert list(seeds.columns[:4]) == ["lr", "hidden", "num_seeds", "epochs"]
    assert list(seeds.columns[-len(results.SEED_COLUMNS):]) == results.SEED_COLUMNS
    # sweep.csv's figures are the seeds' figures: recompute one job independently.
    job = seeds[(seeds["lr"] == 1.0) & (seeds["hidden"] == 3)]
    row = table[(table["lr"] == 1.0) & (table["hidden"] == 3)].iloc[0]
    assert row["final_loss_median"] == pytest.approx(job["final_loss"].median())
    low, high = stats.wilson(int(job["converged"].sum()), len(job))
    assert (row["success_ci_low"], row["success_ci_high"]) == pytest.approx((low, high))
    # The four jobs (two widths, padded) train as one program: each reports the group's wall
    # and compile, once.
    assert table["compile_s"].nunique() == 1 and table["wall_s"].nunique() == 1
    assert proc.stdout.count("trained fused with 3 other jobs") == 4
    assert proc.stdout.count("seeds, xor") == 4  # each job ends with its summary line


def test_resume_recomputes_only_the_broken_job(finished_sweep):
    root, _ = finished_sweep
    sweep_dir = root / "sweep"
    (sweep_dir / "2" / "seeds.csv").unlink()
    stamps = {j: (sweep_dir / str(j) / "summary.json").stat().st_mtime_ns for j in (0, 1, 3)}
    proc = run_cli("jaxbp.train", *SWEEP_ARGS, f"hydra.sweep.dir={sweep_dir}", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("already complete, skipped") == 3
    assert proc.stdout.count("seeds, xor") == 1
    assert {j: (sweep_dir / str(j) / "summary.json").stat().st_mtime_ns for j in (0, 1, 3)} == stamps
    assert len(pd.read_csv(sweep_dir / "sweep.csv")) == 4
    assert len(pd.read_csv(sweep_dir / "sweep_seeds.csv")) == 32


@pytest.mark.parametrize("launcher", ["basic", "vmap"])
def test_failed_job_is_recorded_and_the_rest_kept(tmp_path, monkeypatch, launcher):
    # A failure that is not a bad value (here injected into training) is one job's `failed`
    # row; the other job is kept and the sweep exits 1. Under the vmap launcher the fused
    # group fails first, and its jobs fall back to training one by one.
    from jaxbp import runner

    real_run = runner.run

    def failing_run(cfg, **kwargs):
        lrs = kwargs.get("lrs") if kwargs.get("hyper") is None else kwargs["hyper"]["learning_rate"]
        if cfg.lr == 1.0 or (lrs is not None and 1.0 in list(lrs)):
            raise RuntimeError("injected device failure")
        return real_run(cfg, **kwargs)

    monkeypatch.setattr(runner, "run", failing_run)
    sweep_dir = tmp_path / "sweep"
    status = run_in_process(monkeypatch, "-m", "lr=0.1,1.0", "num_seeds=4", "epochs=20",
                            f"hydra/launcher={launcher}", "progress=false", f"hydra.sweep.dir={sweep_dir}")
    assert status == 1
    table = pd.read_csv(sweep_dir / "sweep.csv")
    assert list(table["status"]) == ["ok", "failed"]
    assert "injected device failure" in table["reason"].iloc[1]
    assert len(pd.read_csv(sweep_dir / "sweep_seeds.csv")) == 4
    assert not (sweep_dir / "1" / results.MARKER).exists()


def test_divergent_lr_completes_and_reports_its_rate(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("jaxbp.train", "-m", "lr=0.1,100000", "activation=identity", "output=identity",
                   "num_seeds=6", "epochs=30", f"hydra.sweep.dir={sweep_dir}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(sweep_dir / "sweep.csv").set_index("lr")
    assert table.loc[100000, "diverged_rate"] == 1.0 and table.loc[0.1, "diverged_rate"] == 0.0
    assert "6 diverged" in proc.stdout


def test_aggregate_reports_interrupted_jobs_as_missing(finished_sweep, tmp_path):
    import shutil

    root, _ = finished_sweep
    copy = tmp_path / "copy"
    shutil.copytree(root / "sweep", copy)
    (copy / "1" / results.MARKER).unlink()  # as if killed between the files and the marker
    table, seeds = sweep.aggregate(copy)
    assert table.set_index("job").loc[1, "status"] == "missing"
    assert len(seeds) == 3 * 8


@pytest.mark.heavy
def test_sigkill_mid_sweep_loses_only_the_running_job(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from cli import cli_env

    sweep_dir = tmp_path / "sweep"
    args = [sys.executable, "-m", "jaxbp.train", "-m", "lr=0.1,0.2,0.3,0.4,0.5,0.6",
            "hydra/launcher=basic", "num_seeds=2000", "epochs=3000", f"hydra.sweep.dir={sweep_dir}"]
    env = cli_env()
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (sweep_dir / "1" / results.MARKER).exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {j for j in range(6) if results.JobDir(sweep_dir / str(j)).is_complete()}
    assert {0, 1} <= done and len(done) < 6, "killed mid-way, after job 1"
    again = run_cli("jaxbp.train", *args[3:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already complete, skipped") == len(done)
    table = pd.read_csv(sweep_dir / "sweep.csv")
    assert len(table) == 6 and (table["status"] == "ok").all()


def test_sweeping_the_seed_keeps_one_seed_column(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("jaxbp.train", "-m", "seed=0,100", "num_seeds=3", "epochs=5",
                   f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    seeds = pd.read_csv(sweep_dir / "sweep_seeds.csv")
    assert list(seeds.columns).count("seed") == 1
    assert sorted(seeds["seed"]) == [0, 1, 2, 100, 101, 102]
    assert list(pd.read_csv(sweep_dir / "sweep.csv")["seed"]) == [0, 100]


def test_resume_ignores_cosmetic_settings_but_not_real_ones(finished_sweep, tmp_path):
    import dataclasses
    import shutil

    from jaxbp import config, plan

    root, _ = finished_sweep
    copy = tmp_path / "job"
    shutil.copytree(root / "sweep" / "0", copy)
    cfg = config.from_dict(json.loads((copy / "summary.json").read_text())["config"])
    done = results.JobDir(copy)
    assert done.is_complete(plan.vouches(cfg))
    assert done.is_complete(plan.vouches(dataclasses.replace(cfg, progress=not cfg.progress, compile_cache=None)))
    assert not done.is_complete(plan.vouches(dataclasses.replace(cfg, lr=cfg.lr * 2)))
    assert set(config.COSMETIC_KEYS) <= set(json.loads((copy / "summary.json").read_text())["config"])
