"""``jaxbp.compare``: jobs with a known large difference are told apart, equal ones are not,
and what cannot be compared is refused with one line.

The jobs are synthetic (``fake_result``: chosen epochs to target, no training), written by
``job.write`` like real ones, so each test knows the truth it checks against. Other test
files import ``fake_result``, ``write_job`` and ``write_sweep`` from here."""

import numpy as np
import pandas as pd
import pytest

from cli import run_cli
from jaxbp import compare, config, job, plan, results, runner

STUCK_LOSS = 0.125  # where an xor seed that never learns sits (two patterns wrong by ½)


def fake_result(cfg: config.RunConfig, reached, diverged=None, stopped=None, seed: int = 0, sizes=(2, 1)):
    """A ``RunResult`` whose seed i reaches the target at epoch ``reached[i]`` (None: never;
    it sits at ``STUCK_LOSS``); loss curves fall geometrically from 0.25 to the target there,
    then level off at a fifth of it.
    A diverged seed's loss blows up to 1e37 and then inf; a stopped seed's curve ends early.
    ``sizes``: the data's input and output widths."""
    n = len(reached)
    rng = np.random.default_rng(seed)
    at = np.array([np.inf if r is None else r for r in reached], float)
    diverged = np.zeros(n, bool) if diverged is None else np.asarray(diverged, bool)
    stopped = np.full(n, -1) if stopped is None else np.array([-1 if s is None else s for s in stopped])
    epochs = cfg.curve_epochs()
    with np.errstate(divide="ignore", invalid="ignore"):
        fall = np.maximum(0.25 * (cfg.target_loss / 0.25) ** (epochs[None, :] / at[:, None]), cfg.target_loss / 5)
    curves = np.where(np.isfinite(at)[:, None], fall, STUCK_LOSS + 0.1 * np.exp(-epochs[None, :] / 20))
    curves = np.where(diverged[:, None] & (epochs[None, :] > 0), 1e37, curves)
    curves[diverged, -1] = np.inf
    sizes = cfg.spec(*sizes).sizes
    params = [{"W": rng.normal(size=(n, a, b)), "b": rng.normal(size=(n, b))} for a, b in zip(sizes, sizes[1:])]
    metrics = {
        "final_loss": curves[:, -1], "train_acc": np.where(np.isfinite(at), 1.0, 0.5),
        "test_loss": np.full(n, np.nan), "test_acc": np.full(n, np.nan),
        "epochs_to_target": np.where(np.isfinite(at) & ~diverged, at, -1).astype(int),
        "converged": np.isfinite(at) & ~diverged, "diverged": diverged, "stopped_epoch": stopped,
    }
    members = np.arange(min(cfg.curve_seeds, n))
    return runner.RunResult(cfg.seed + np.arange(n), {"learning_rate": np.full(n, cfg.lr)}, metrics, params,
                            members, epochs, curves[members], 1.0, 0.5, "cpu", "synthetic", 1)


def write_job(path, reached, values=None, num=None, **kwargs):
    """A job dir of seeds (xor unless ``values`` say otherwise) that reach the target at
    ``reached``; returns its config."""
    cfg = config.from_dict({"num_seeds": len(reached), "epochs": 200, "hidden": 2, "progress": False,
                            "compile_cache": None, **(values or {})})
    resolved = plan.plan(cfg)
    result = fake_result(cfg, reached, sizes=(resolved.spec.sizes[0], resolved.spec.sizes[-1]), **kwargs)
    job.write(path, resolved, result, np.arange(len(reached)), [], num, job.Timing(result.wall_s, result.compile_s))
    return cfg


def write_sweep(sweep_dir, jobs: list[dict], keys: list[str]):
    """A sweep dir by hand: ``jobs`` are ``{key: value, ..., "reached": [...], ...}``; each
    becomes job dir ``<num>`` and a row of sweep.csv (key columns first, as jaxbp.sweep writes)."""
    rows = []
    for num, spec in enumerate(jobs):
        spec = dict(spec)
        reached = spec.pop("reached")
        kwargs = {k: spec.pop(k) for k in ("diverged", "stopped") if k in spec}
        values = {k: spec[k] for k in keys if k in {"lr", "hidden", "epochs", "activation", "output"}}
        write_job(sweep_dir / str(num), reached, values, num, **kwargs)
        rows.append({**{k: spec[k] for k in keys}, "job": num, "job_dir": str(num), "status": "ok", "reason": ""})
    results.write_csv(sweep_dir / "sweep.csv", pd.DataFrame(rows))
    return sweep_dir


FAST = [5 + i for i in range(36)] + [None] * 4  # 36 of 40 seeds, by epoch 40
SLOW = [100 + 10 * i for i in range(8)] + [None] * 32  # 8 of 40 seeds, from epoch 100


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """optim × init: at init=a, sgd is far better and faster than adam; at init=b, equal."""
    return write_sweep(tmp_path_factory.mktemp("compare"), [
        {"optim": "sgd", "init": "a", "reached": FAST},
        {"optim": "adam", "init": "a", "reached": SLOW},
        {"optim": "sgd", "init": "b", "reached": SLOW},
        {"optim": "adam", "init": "b", "reached": SLOW},
    ], ["optim", "init"])


def test_a_large_difference_is_significant_and_equal_jobs_are_not(sweep):
    frame = compare.compare(sweep, "optim").set_index("init")
    assert list(frame[["optim_a", "optim_b"]].loc["a"]) == ["sgd", "adam"]
    different, equal = frame.loc["a"], frame.loc["b"]
    assert different["success_diff"] == pytest.approx(36 / 40 - 8 / 40)
    assert 0.4 < different["success_diff_ci_low"] < 0.7 < different["success_diff_ci_high"] < 0.9
    assert different["success_differs"] and different["speed_differs"]
    assert different["km_median_a"] == 24 and np.isnan(different["km_median_b"])  # 20th of 40 seeds
    assert equal["success_diff"] == 0 and equal["success_p"] == 1.0 and equal["logrank_p"] == pytest.approx(1)
    assert not equal["success_differs"] and not equal["speed_differs"]
    # Two pairs: Holm multiplies the smaller p-value by 2.
    assert different["success_p_holm"] == pytest.approx(2 * different["success_p"])


def test_cli_prints_a_table_and_writes_compare_csv(sweep, capsys):
    assert compare.main([str(sweep), "--by", "optim"]) == 0
    out = capsys.readouterr().out
    assert "init=a" in out and "sgd vs adam" in out and "+70 [" in out and "not reached" in out
    written = pd.read_csv(sweep / "compare.csv")
    assert len(written) == 2 and written["success_differs"].tolist() == [True, False]


@pytest.mark.parametrize("args,message", [
    (["--by", "lr"], "'lr' is not a swept key"),
    (["--by", "optim.name"], "its swept keys are optim, init"),
])
def test_a_key_that_is_not_swept_is_refused(sweep, capsys, args, message):
    assert compare.main([str(sweep), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_dir_without_sweep_csv_is_refused_by_the_command(tmp_path):
    proc = run_cli("jaxbp.compare", str(tmp_path / "nowhere"), "--by", "lr", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"jaxbp.compare: {tmp_path / 'nowhere'} has no sweep.csv"]


def test_a_group_with_one_value_has_nothing_to_compare(tmp_path, capsys):
    sweep = write_sweep(tmp_path, [{"optim": "sgd", "init": "a", "reached": FAST},
                                   {"optim": "adam", "init": "b", "reached": SLOW}], ["optim", "init"])
    assert compare.main([str(sweep), "--by", "optim"]) == 2
    assert "no two complete jobs" in capsys.readouterr().err
