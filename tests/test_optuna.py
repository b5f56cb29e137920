"""``hydra/sweeper=jaxbp_optuna``: batches of trials as fused programs, resume, refusals."""

import json
import math
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest

optuna = pytest.importorskip("optuna")

from hydra_plugins.jaxbp_optuna_sweeper import objective, plot_study, space  # noqa: E402

from cli import cli_env, run_cli, run_in_process  # noqa: E402

STUDY = ["-m", "hydra/sweeper=jaxbp_optuna", "lr=tag(log,interval(0.5,20))", "num_seeds=8", "epochs=50",
         "progress=false"]


def _trials(sweep_dir):
    storage = f"sqlite:///{sweep_dir / 'study.db'}"
    return optuna.load_study(study_name="jaxbp", storage=storage).get_trials(deepcopy=False)


def _stamps(sweep_dir, jobs):
    return {j: (sweep_dir / str(j) / "summary.json").stat().st_mtime_ns for j in jobs}


@pytest.fixture(scope="module")
def study_of_four(tmp_path_factory):
    root = tmp_path_factory.mktemp("optuna")
    proc = run_cli("jaxbp.train", *STUDY, "hydra.sweeper.n_trials=4", "hydra.sweeper.batch=2",
                   f"hydra.sweep.dir={root / 's'}", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "s", proc


def test_study_runs_in_fused_batches_and_records_every_trial(study_of_four):
    sweep_dir, proc = study_of_four
    table = pd.read_csv(sweep_dir / "sweep.csv")
    trials = _trials(sweep_dir)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # Trial n is job n: the row trained the trial's lr and Optuna was told the row's figure.
    assert list(table["job"]) == [0, 1, 2, 3] and (table["status"] == "ok").all()
    assert list(table["lr"]) == [t.params["lr"] for t in trials]
    assert list(table["success_rate"]) == [t.value for t in trials]
    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["value"] == table["success_rate"].max() and best["direction"] == "maximize"
    assert best["overrides"][0] == f"lr={trials[best['trial']].params['lr']!r}"
    # Each batch of two trials that differ only in lr is one program, compiled once.
    assert (proc.stdout + proc.stderr).count("Launching 2 jobs as 1 fused program(s)") == 2
    assert (table["compile_s"][2:] == 0.0).all()  # the second batch hit the in-process cache


def test_larger_n_trials_trains_only_the_missing_trials(study_of_four, tmp_path):
    sweep_dir = tmp_path / "s"
    shutil.copytree(study_of_four[0], sweep_dir)
    before = _stamps(sweep_dir, range(4))
    proc = run_cli("jaxbp.train", *STUDY, "hydra.sweeper.n_trials=6", "hydra.sweeper.batch=2",
                   f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [t.number for t in _trials(sweep_dir)] == list(range(6))
    assert _stamps(sweep_dir, range(4)) == before
    assert proc.stdout.count("seeds, xor") == 2  # only trials 4 and 5 ran
    assert len(pd.read_csv(sweep_dir / "sweep.csv")) == 6


# SIGKILLs the sweep at its first tell: the first batch's job dirs are COMPLETE and its trials
# are still RUNNING in study.db. Hydra's plugin scan runs first, as it executes the plugin's
# modules again (a patch made before it would be overwritten).
KILLED_AT_FIRST_TELL = """
import os, signal, sys
from hydra.core.plugins import Plugins
from jaxbp import train
Plugins.instance()
from hydra_plugins.jaxbp_optuna_sweeper import objective
objective.job_value = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
sys.argv[0] = "jaxbp.train"
train.cli()
"""


@pytest.mark.heavy
def test_killed_study_resumes_with_every_trial_once(tmp_path):
    sweep_dir = tmp_path / "s"
    args = [*STUDY, "hydra.sweeper.n_trials=4", "hydra.sweeper.batch=2", f"hydra.sweep.dir={sweep_dir}"]
    env = cli_env()
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_FIRST_TELL, *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [(t.number, t.state.name) for t in _trials(sweep_dir)] == [(0, "RUNNING"), (1, "RUNNING")]
    first_batch = _stamps(sweep_dir, [0, 1])
    proc = run_cli("jaxbp.train", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resuming trials 0-1" in proc.stdout + proc.stderr
    trials = _trials(sweep_dir)
    assert [(t.number, t.state.name) for t in trials] == [(n, "COMPLETE") for n in range(4)]
    assert _stamps(sweep_dir, [0, 1]) == first_batch  # complete job dirs were not retrained
    table = pd.read_csv(sweep_dir / "sweep.csv")
    assert list(table["job"]) == [0, 1, 2, 3] and list(table["lr"]) == [t.params["lr"] for t in trials]


def test_failed_jobs_are_failed_trials(tmp_path, monkeypatch):
    from jaxbp import runner

    def failing_run(cfg, **kwargs):
        raise RuntimeError("injected device failure")

    monkeypatch.setattr(runner, "run", failing_run)
    sweep_dir = tmp_path / "s"
    status = run_in_process(monkeypatch, *STUDY, "hydra.sweeper.n_trials=2", "hydra.sweeper.batch=2",
                            f"hydra.sweep.dir={sweep_dir}")
    assert status == 1
    assert [(t.number, t.state.name) for t in _trials(sweep_dir)] == [(0, "FAIL"), (1, "FAIL")]
    table = pd.read_csv(sweep_dir / "sweep.csv")
    assert list(table["status"]) == ["failed", "failed"]
    assert not (sweep_dir / "best.json").exists()  # no trial has a value


def test_search_space_typo_is_refused_before_anything_trains(tmp_path):
    proc = run_cli("jaxbp.train", "-m", "hydra/sweeper=jaxbp_optuna", "lrr=interval(0,1)",
                   f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown key 'lrr'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, message", [
    (["activation=interval(0.1,1)"], "activation takes str values"),
    (["lr=tag(bad,interval(0.1,1))"], "unknown tag bad"),
    (["lr=tag(log,interval(0,1))"], "a log scale needs low > 0"),
    (["lr=interval(-1,1)"], "lr=-1.0"),  # a corner that the config's own checks refuse
    (["hidden=int(interval(2,9))"], "use range(2,10)"),
    (["hidden=range(5,2)"], "the range is empty"),
    (["lr=0.5"], "nothing to search"),
    (["lr=interval(0.1,1)", "hydra.sweeper.n_trials=0"], "n_trials=0"),
    (["lr=interval(0.1,1)", "hydra.sweeper.batch=0"], "batch=0"),
    (["lr=interval(0.1,1)", "hydra.sweeper.objective=sucess_rate"], "not a sweep.csv figure"),
    (["lr=interval(0.1,1)", "hydra.sweeper.direction=up"], "choose maximize or minimize"),
])
def test_bad_settings_are_refused(tmp_path, monkeypatch, capsys, args, message):
    sweep_dir = tmp_path / "s"
    status = run_in_process(monkeypatch, "-m", "hydra/sweeper=jaxbp_optuna", *args,
                            f"hydra.sweep.dir={sweep_dir}")
    err = capsys.readouterr().err
    assert status == 2 and message in err and "Traceback" not in err
    assert not sweep_dir.exists()


def test_search_space_reads_hydra_sweeps_as_optuna_distributions():
    parsed = space.parse({"hidden": "range(2,9)"}, [
        "lr=tag(log,interval(0.001,10))", "optim=sgd,adam", "l2=range(0.1,0.5,0.1)", "num_seeds=64"])
    dists = parsed.distributions
    assert (dists["hidden"].low, dists["hidden"].high, dists["hidden"].step) == (2, 8, 1)  # stop excluded
    assert (dists["lr"].low, dists["lr"].high, dists["lr"].log) == (0.001, 10.0, True)
    assert dists["optim"].choices == ("sgd", "adam")
    assert (dists["l2"].low, dists["l2"].high) == pytest.approx((0.1, 0.4))
    assert parsed.fixed == ("num_seeds=64",)
    assert parsed.overrides({"hidden": 3, "lr": 0.01, "optim": "adam", "l2": 0.30000000000000004}) == \
        ["hidden=3", "lr=0.01", "optim=adam", "l2=0.3", "num_seeds=64"]
    # Corners reach both ends of every range and every choice.
    assert parsed.corners() == [["hidden=2", "lr=0.001", "optim=sgd", "l2=0.1", "num_seeds=64"],
                                ["hidden=8", "lr=10.0", "optim=adam", "l2=0.4", "num_seeds=64"]]


@pytest.mark.parametrize("name, direction, worst", [
    ("success_rate", "maximize", 0.0),
    ("success_ci_low", "maximize", 0.0),
    ("test_acc_mean", "maximize", 0.0),
    ("diverged_rate", "minimize", 1.0),
    ("epochs_to_target_km_median", "minimize", 50.0),  # the job's whole budget
    ("final_loss_median", "minimize", math.inf),
])
def test_direction_and_worst_value_follow_the_objective(name, direction, worst):
    assert objective.default_direction(name) == direction
    assert objective.worst_value(name, direction, {"config": {"epochs": 50}}) == worst


@pytest.mark.parametrize("status, summary, name, told", [
    ("ok", {"success_rate": 0.75, "diverged_rate": 0.25}, "success_rate", (0.75, "")),
    ("ok", {"success_rate": 0.0, "diverged_rate": 1.0}, "success_rate", (0.0, "every seed diverged")),
    ("ok", {"final_loss_median": None, "diverged_rate": 1.0}, "final_loss_median",
     (math.inf, "every seed diverged")),
    ("ok", {"epochs_to_target_km_median": None, "diverged_rate": 0.0}, "epochs_to_target_km_median",
     (50.0, "epochs_to_target_km_median has no value")),
    ("failed", {}, "success_rate", (None, "injected")),
    ("missing", {}, "success_rate", (None, "no marker")),
])
def test_a_job_is_told_its_figure_its_worst_value_or_failure(monkeypatch, tmp_path, status, summary,
                                                              name, told):
    from jaxbp import results

    class Job:  # a job dir in each state, without training one
        def __init__(self, path):
            pass

        def status(self):
            return status

        def summary(self):
            return {**summary, "config": {"epochs": 50}}

        def failure(self):
            return {"reason": "injected"}

        def why_incomplete(self):
            return "no marker"

    monkeypatch.setattr(results, "JobDir", Job)
    direction = objective.default_direction(name)
    assert objective.job_value(tmp_path, name, direction) == told


def test_plot_study_draws_the_history_and_skips_importance_for_one_parameter(study_of_four, tmp_path):
    written = plot_study(study_of_four[0], tmp_path / "report")
    assert written == [tmp_path / "report" / "optuna_history.png"]
    assert written[0].read_bytes()[:4] == b"\x89PNG"
    assert plot_study(tmp_path, tmp_path / "none") == []  # not a study dir
