"""The fused ``vmap`` launcher, in-process: how it splits groups, that it holds one group's
results at a time, and that fused jobs equal the same jobs trained one by one."""

import gc

import numpy as np
import pandas as pd
import pytest

from cli import run_cli, run_in_process
from jaxbp import cores, results, runner


def _live_results() -> int:
    gc.collect()
    return sum(isinstance(obj, runner.RunResult) for obj in gc.get_objects())


def test_max_members_splits_groups_and_holds_one_groups_results_at_a_time(tmp_path, monkeypatch):
    real_run = runner.run
    calls = []

    def counting_run(cfg, **kwargs):
        calls.append((len(kwargs["seeds"]), _live_results()))
        return real_run(cfg, **kwargs)

    monkeypatch.setattr(runner, "run", counting_run)
    sweep_dir = tmp_path / "sw"
    status = run_in_process(monkeypatch, "-m", "lr=0.1,1", "hidden=2,3", "num_seeds=6", "epochs=20",
                            "progress=false", "hydra.launcher.max_members=6", f"hydra.sweep.dir={sweep_dir}")
    assert status == 0
    # Two shapes × two lrs of 6 members each, at most 6 members per program: 4 programs.
    assert [members for members, _ in calls] == [6, 6, 6, 6]
    assert [live for _, live in calls] == [0, 0, 0, 0], "a group's results are freed before the next trains"
    table = pd.read_csv(sweep_dir / "sweep.csv")
    assert (table["status"] == "ok").all() and len(table) == 4


def test_groups_of_one_shape_fuse_up_to_max_members(tmp_path, monkeypatch):
    real_run = runner.run
    sizes = []
    monkeypatch.setattr(runner, "run", lambda cfg, **kw: sizes.append(len(kw["seeds"])) or real_run(cfg, **kw))
    status = run_in_process(monkeypatch, "-m", "lr=0.1,0.2,0.3", "num_seeds=4", "epochs=10", "progress=false",
                            "hydra.launcher.max_members=8", f"hydra.sweep.dir={tmp_path / 'sw'}")
    assert status == 0 and sizes == [8, 4]


def test_a_fused_failure_falls_back_to_one_job_at_a_time(tmp_path, monkeypatch):
    real_run = runner.run

    def fused_fails(cfg, **kwargs):
        if kwargs.get("hyper") is not None:  # the launcher's fused call
            raise MemoryError("fused program too big")
        return real_run(cfg, **kwargs)

    monkeypatch.setattr(runner, "run", fused_fails)
    sweep_dir = tmp_path / "sw"
    status = run_in_process(monkeypatch, "-m", "lr=0.1,1", "num_seeds=4", "epochs=10", "progress=false",
                            f"hydra.sweep.dir={sweep_dir}")
    assert status == 0
    assert all(results.JobDir(sweep_dir / str(j)).summary()["fused_jobs"] == 1 for j in (0, 1))


SWEEP = ["-m", "lr=0.1,1.0", "optim=momentum", "optim.momentum=0.5,0.9", "l2=0.0001,0.01",
         "num_seeds=8", "epochs=150", "progress=false"]


def _fused_and_alone(tmp_path, args):
    """The same sweep under the fused launcher and under basic: (fused process, both seeds frames)."""
    fused = run_cli("jaxbp.train", *args, f"hydra.sweep.dir={tmp_path / 'fused'}", cwd=tmp_path)
    assert fused.returncode == 0, fused.stderr
    alone = run_cli("jaxbp.train", *args, "hydra/launcher=basic", f"hydra.sweep.dir={tmp_path / 'alone'}",
                    cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    return (fused, pd.read_csv(tmp_path / "fused" / "sweep_seeds.csv"),
            pd.read_csv(tmp_path / "alone" / "sweep_seeds.csv"))


def _assert_same_seeds(fused: pd.DataFrame, alone: pd.DataFrame) -> None:
    """Bit for bit where jaxbp turns FMA contraction off (x86-64, jaxbp.cores); elsewhere
    XLA may round a product differently per program, so to rtol 1e-5."""
    if cores.NO_FMA in cores.cpu_flags():
        pd.testing.assert_frame_equal(fused, alone, check_exact=True)
    else:
        np.testing.assert_allclose(fused["final_loss"], alone["final_loss"], rtol=1e-5)
        assert (fused["converged"] == alone["converged"]).all()


@pytest.mark.heavy
def test_fused_traced_hyperparameters_equal_jobs_run_alone(tmp_path):
    # lr × momentum × l2 differ only in traced values: one program, same numbers as basic.
    fused, a, b = _fused_and_alone(tmp_path, SWEEP)
    assert "Launching 8 jobs as 1 fused program(s)" in fused.stdout + fused.stderr
    assert len(a) == len(b) == 64
    _assert_same_seeds(a, b)


@pytest.mark.parametrize("bad", ["hydra.launcher.max_members=0"])
def test_launcher_settings_are_typed(tmp_path, bad):
    proc = run_cli("jaxbp.train", "-m", "lr=0.1", bad, "num_seeds=2", "epochs=5", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


@pytest.mark.heavy
def test_widths_fuse_into_one_program_equal_to_each_width_alone(tmp_path):
    args = ["-m", "hidden=2,3,8", "lr=1.0", "num_seeds=16", "epochs=200", "progress=false"]
    fused, a, b = _fused_and_alone(tmp_path, args)
    assert "Launching 3 jobs as 1 fused program(s)" in fused.stdout + fused.stderr
    _assert_same_seeds(a, b)
    # Each job keeps its own width's params.
    for job, hidden in ((0, 2), (1, 3), (2, 8)):
        assert np.load(tmp_path / "fused" / str(job) / "params.npz")["W0"].shape == (16, 2, hidden)
    never = run_cli("jaxbp.train", *args, "hydra.launcher.fuse_widths=never",
                    f"hydra.sweep.dir={tmp_path / 'never'}", cwd=tmp_path)
    assert "Launching 3 jobs as 3 fused program(s)" in never.stdout + never.stderr
