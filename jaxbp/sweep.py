"""Sweep-level work as one Hydra ``Callback``: refuse bad jobs first, aggregate at the end.

``on_multirun_start`` expands the sweep the way Hydra's basic sweeper does and checks every
job's config (and its data) before any job trains. ``on_multirun_end`` reads the job dirs,
so it works the same under any launcher, and writes ``sweep.csv`` (one row per job) and
``sweep_seeds.csv`` (every seed of every job).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from jaxbp import config, results

JOB_COLUMNS = ["job", "job_dir", "status", "reason"]
STAT_COLUMNS = ["num_seeds", "success_rate", "success_ci_low", "success_ci_high",
                "final_loss_mean", "final_loss_median", "final_loss_std",
                "epochs_to_target_median", "train_acc_mean", "test_acc_mean",
                "diverged_rate", "wall_s", "compile_s"]


def sweep_overrides(cfg: DictConfig) -> list[str]:
    """The sweep's overrides: ``hydra.sweeper.params`` first, then the command line's."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    return [f"{k}={v}" for k, v in params.items()] + list(cfg.hydra.overrides.task)


def expand_jobs(overrides: list[str]) -> list[list[str]]:
    """Each job's override list, as Hydra's basic sweeper forms them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return BasicSweeper.split_arguments(parsed, None)[0]


def override_values(overrides: list[str]) -> dict[str, Any]:
    """``["lr=0.1", "optim=adam"]`` -> ``{"lr": 0.1, "optim": "adam"}`` (typed values)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.key_or_group.startswith("hydra"):
            continue
        value = override.value()
        values[override.key_or_group] = value if isinstance(value, (int, float, bool, str)) \
            or value is None else str(value)
    return values


def is_basic_sweep(cfg: DictConfig) -> bool:
    """Whether Hydra's basic sweeper runs this multirun (its jobs can be listed up front)."""
    return str(OmegaConf.select(cfg, "hydra.sweeper._target_", default="")).endswith("BasicSweeper")


def check_jobs(jobs: list[list[str]], config_name: str | None) -> None:
    """Composes and validates every job's config; exits 2 on the first bad one."""
    from hydra import compose
    from hydra.errors import HydraException

    from jaxbp import job

    for overrides in jobs:
        label = " ".join(overrides)
        try:
            job.prepare(config.resolved_values(compose(config_name=config_name or "config", overrides=overrides)))
        except config.ConfigError as err:
            print(config.refusal(err, label), file=sys.stderr)
            sys.exit(2)
        except HydraException as err:
            cause = f"\n{err.__cause__}" if err.__cause__ else ""
            print(f"jaxbp: job {label} cannot be composed:\n{err}{cause}\n"
                  "Nothing was trained and no results were written.", file=sys.stderr)
            sys.exit(2)
        except Exception:  # noqa: BLE001 - not a bad value: the job itself records the failure
            continue


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Every dir under ``sweep_dir`` that Hydra made for a job."""
    return sorted({p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")})


def _job_overrides(job_dir: Path) -> list[str]:
    return list(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))


def _job_num(job_dir: Path, summary: dict) -> int | None:
    if summary.get("job_num") is not None:
        return int(summary["job_num"])
    num = OmegaConf.select(OmegaConf.load(job_dir / ".hydra" / "hydra.yaml"), "hydra.job.num")
    return None if num is None else int(num)


def aggregate(sweep_dir: Path, jobs: list[list[str]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Builds ``sweep.csv`` and ``sweep_seeds.csv`` from the job dirs and writes both.

    Args:
        sweep_dir: ``hydra.sweep.dir``.
        jobs: the sweep's override lists; dirs of other (older) sweeps are then left out.
    """
    sweep_dir = Path(sweep_dir)
    wanted = None if jobs is None else {tuple(j) for j in jobs}
    rows, seed_frames = [], []
    for job_dir in job_dirs(sweep_dir):
        overrides = _job_overrides(job_dir)
        if wanted is not None and tuple(overrides) not in wanted:
            continue
        found = results.read_job(job_dir)
        keys = override_values(overrides)
        num = _job_num(job_dir, found["summary"])
        row = {**keys, "job": num, "job_dir": str(job_dir.relative_to(sweep_dir)),
               "status": found["status"], "reason": found["summary"].get("reason", "")}
        if found["status"] == "ok":
            row.update({k: found["summary"].get(k) for k in STAT_COLUMNS})
            seeds = found["seeds"]
            # A swept `seed` is already in each row's own seed column; keep one of them.
            leading = {k: v for k, v in keys.items() if k not in seeds.columns}
            seed_frames.append(pd.concat([pd.DataFrame({**leading, "job": num}, index=seeds.index),
                                          seeds], axis=1))
        rows.append(row)
    key_columns = list(dict.fromkeys(k for r in rows for k in r if k not in JOB_COLUMNS + STAT_COLUMNS))
    sweep = pd.DataFrame(rows, columns=key_columns + JOB_COLUMNS + STAT_COLUMNS)
    sweep = sweep.sort_values("job", kind="stable").reset_index(drop=True)
    seeds = pd.concat(seed_frames, ignore_index=True) if seed_frames else pd.DataFrame(
        columns=key_columns + ["job"] + results.SEED_COLUMNS)
    results.write_csv(sweep_dir / "sweep.csv", sweep)
    results.write_csv(sweep_dir / "sweep_seeds.csv", seeds)
    return sweep, seeds


class SweepCallback(Callback):
    """Registered in ``conf/config.yaml`` under ``hydra.callbacks.sweep``."""

    def __init__(self) -> None:
        self.jobs: list[list[str]] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Other sweepers choose jobs as they go: each job validates itself, and the
        # aggregate then takes every job dir under the sweep dir.
        if is_basic_sweep(config):
            self.jobs = expand_jobs(sweep_overrides(config))
            check_jobs(self.jobs, kwargs.get("config_name"))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep, _ = aggregate(sweep_dir, self.jobs)
        bad = sweep[sweep["status"] != "ok"]
        print(f"sweep: {len(sweep) - len(bad)} of {len(sweep)} jobs ok → {sweep_dir / 'sweep.csv'}")
        if len(bad):
            for _, row in bad.iterrows():
                print(f"  job {row['job']} {row['status']}: {row['reason']}", file=sys.stderr)
            sys.exit(1)
