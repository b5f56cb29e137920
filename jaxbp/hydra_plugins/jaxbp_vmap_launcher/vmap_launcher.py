"""``hydra/launcher=vmap``: a sweep's jobs that differ only in traced values train as one program.

Jobs whose configs are equal once ``lr``, ``seed`` and ``num_seeds`` are blanked
(:func:`jaxbp.config.shape_key`) form a group. Each group trains once, all of its jobs'
(seed, lr) members side by side in one vmapped program; then every job runs through Hydra's
ordinary ``run_job``, so it gets its own dir, ``.hydra`` files, logs and callbacks exactly
as under the basic launcher, and the task writes that job's slice of the group's results.
Jobs that differ in shape (``hidden``, ``depth``, ``data``, ...) form separate groups;
complete jobs are skipped as usual. If a group fails to train, its jobs fall back to
training one by one inside the task, so a fused failure never loses a job.
"""


import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


@dataclass
class VmapLauncherConf:
    _target_: str = "hydra_plugins.jaxbp_vmap_launcher.vmap_launcher.VmapLauncher"
    # A fused program holds at most this many (seed, lr) members; larger groups are split,
    # which bounds memory (a million XOR members peak near 1 GB of host memory).
    max_members: int = 2_000_000


ConfigStore.instance().store(group="hydra/launcher", name="vmap", node=VmapLauncherConf,
                             provider="jaxbp")


class _Job:
    def __init__(self, num: int, overrides: list[str], sweep_config: DictConfig):
        from jaxbp import config

        self.num, self.overrides, self.sweep_config = num, overrides, sweep_config
        self.values = config.resolved_values(sweep_config)
        self.dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


class VmapLauncher(Launcher):
    def __init__(self, max_members: int = 2_000_000) -> None:
        super().__init__()
        self.max_members = max_members
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [self._job(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        groups = group_jobs(jobs, self.max_members)
        log.info(f"Launching {len(jobs)} jobs as {len(groups)} fused program(s)")
        for group in groups:
            train_group(group)
        returns = []
        for job in jobs:
            log.info(f"\t#{job.num} : {' '.join(filter_overrides(job.overrides))}")
            returns.append(run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                                   config=job.sweep_config, job_dir_key="hydra.sweep.dir",
                                   job_subdir_key="hydra.sweep.subdir"))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns

    def _job(self, num: int, overrides: list[str]) -> _Job:
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = num
            sweep_config.hydra.job.num = num
        return _Job(num, overrides, sweep_config)


def group_jobs(jobs: list[_Job], max_members: int) -> list[list[tuple[_Job, Any]]]:
    """Incomplete, valid jobs grouped by shape, each group at most ``max_members`` members
    (a bigger job trains alone); each entry pairs a job with its RunConfig."""
    from jaxbp import config, job, results

    groups: dict[Any, list] = {}
    for item in jobs:
        if results.is_complete(item.dir, item.values):
            continue
        try:
            cfg = job.prepare(item.values)
        except Exception:  # noqa: BLE001 - the task records the failure, as under any launcher
            continue
        groups.setdefault(config.shape_key(cfg), []).append((item, cfg))
    split = []
    for group in groups.values():
        current, members = [], 0
        for item, cfg in group:
            if current and members + cfg.num_seeds > max_members:
                split.append(current)
                current, members = [], 0
            current.append((item, cfg))
            members += cfg.num_seeds
        split.append(current)
    return split


def train_group(group: list[tuple[_Job, Any]]) -> None:
    """Trains a group's members in one program and hands each job its slice."""
    import numpy as np

    from jaxbp import job, runner

    seeds, lrs, curves, members = [], [], [], []
    offset = 0
    for _, cfg in group:
        seeds.append(np.arange(cfg.seed, cfg.seed + cfg.num_seeds))
        lrs.append(np.full(cfg.num_seeds, cfg.lr))
        curves.append(offset + np.arange(min(cfg.curve_seeds, cfg.num_seeds)))
        members.append(offset + np.arange(cfg.num_seeds))
        offset += cfg.num_seeds
    nums = [item.num for item, _ in group]
    try:
        result = runner.run(group[0][1], seeds=np.concatenate(seeds), lrs=np.concatenate(lrs),
                            curve_members=np.concatenate(curves),
                            desc=f"jobs {min(nums)}-{max(nums)}")
    except Exception as err:  # noqa: BLE001 - fall back to one job at a time
        log.warning(f"fused training of jobs {nums} failed ({err}); training them one by one")
        return
    for (item, _), rows in zip(group, members):
        share = len(rows) / offset
        job.precompute(item.values, result, rows, wall_s=result.wall_s * share,
                       compile_s=result.compile_s if item is group[0][0] else 0.0, fused_jobs=len(group))
