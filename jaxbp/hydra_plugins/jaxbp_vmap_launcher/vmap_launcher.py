"""``hydra/launcher=vmap``: a sweep's jobs that differ only in traced values train as one program.

Jobs whose configs are equal once every traced value (``lr``, ``seed``, penalties, the
optimiser's numbers, ...) is blanked (:func:`jaxbp.config.shape_key`) form a group. Each
group trains once, all of its jobs' members side by side in one vmapped program; each job's
slice is written to its dir through :class:`jaxbp.results.JobDir` at once, and the group's
results are freed before the next group trains, so memory holds one group at a time. Then
every job runs through Hydra's ordinary ``run_job``, so it gets its ``.hydra`` files, logs
and callbacks exactly as under the basic launcher; the task finds its dir complete and
prints the stored summary line. Complete jobs are skipped as usual. If a group fails to
train, its jobs train one by one inside the task, so a fused failure never loses a job.
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
    # A fused program holds at most this many members; larger groups are split, which
    # bounds memory (a million XOR members peak near 1 GB of host memory).
    max_members: int = 2_000_000


ConfigStore.instance().store(group="hydra/launcher", name="vmap", node=VmapLauncherConf,
                             provider="jaxbp")


class _Job:
    def __init__(self, num: int, overrides: list[str], sweep_config: DictConfig):
        self.num, self.overrides, self.sweep_config = num, overrides, sweep_config
        self.dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


class VmapLauncher(Launcher):
    def __init__(self, max_members: int = 2_000_000) -> None:
        super().__init__()
        if not isinstance(max_members, int) or max_members < 1:
            from jaxbp import app

            app.refuse_message(f"hydra.launcher.max_members={max_members!r} is invalid: an integer >= 1")
        self.max_members = max_members
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from jaxbp import results

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = [self._job(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        refuse_shared_dirs(jobs)
        results.SweepDir(sweep_dir).add_jobs([{"num": j.num, "overrides": j.overrides} for j in jobs])
        groups = group_jobs(jobs, self.max_members)
        pending = sum(len(g) for g in groups)
        skipped = f" ({len(jobs) - pending} skipped here: complete, or left to their task)"
        log.info(f"Launching {len(jobs)} jobs as {len(groups)} fused program(s)"
                 + (skipped if pending < len(jobs) else ""))
        returns: dict[int, JobReturn] = {}
        for group in groups:
            train_group(group)  # writes each job's dir; nothing of the group outlives this
            for item, _ in group:
                returns[item.num] = self._run(item)
        for item in jobs:
            if item.num not in returns:  # complete, invalid, or trained alone by the task
                returns[item.num] = self._run(item)
        return [returns[item.num] for item in jobs]

    def _run(self, item: "_Job") -> JobReturn:
        log.info(f"\t#{item.num} : {' '.join(filter_overrides(item.overrides))}")
        ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                      config=item.sweep_config, job_dir_key="hydra.sweep.dir",
                      job_subdir_key="hydra.sweep.subdir")
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def _job(self, num: int, overrides: list[str]) -> _Job:
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = num
            sweep_config.hydra.job.num = num
        return _Job(num, overrides, sweep_config)


def refuse_shared_dirs(jobs: list[_Job]) -> None:
    """Two jobs writing one dir would overwrite each other: refuse before training."""
    from jaxbp import app

    seen: dict[Path, int] = {}
    for item in jobs:
        if item.dir in seen:
            app.refuse_message(f"jobs {seen[item.dir]} and {item.num} would share the dir {item.dir}; "
                               "make hydra.sweep.subdir unique per job (the default is ${hydra.job.num})")
        seen[item.dir] = item.num


def group_jobs(jobs: list[_Job], max_members: int) -> list[list[tuple[_Job, Any]]]:
    """Incomplete, valid jobs grouped by shape, each group at most ``max_members`` members
    (a bigger job trains alone); each entry pairs a job with its RunConfig."""
    from jaxbp import app, config, job, results
    from jaxbp.checks import ConfigError

    groups: dict[Any, list] = {}
    for item in jobs:
        try:
            cfg = app.to_run_config(item.sweep_config)
            if results.JobDir(item.dir).is_complete(job.vouches(cfg)):
                continue
            app.check(cfg)
        except (ConfigError, OSError) as err:
            log.info(f"job {item.num} left to its task: {err}")  # which records the failure
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


def _label(nums: list[int]) -> str:
    nums = sorted(nums)
    if nums == list(range(nums[0], nums[-1] + 1)) and len(nums) > 1:
        return f"jobs {nums[0]}-{nums[-1]}"
    return "job " + ",".join(map(str, nums)) if len(nums) == 1 else "jobs " + ",".join(map(str, nums))


def train_group(group: list[tuple[_Job, Any]]) -> None:
    """Trains a group's members in one program and writes each job's slice to its dir."""
    import numpy as np

    from jaxbp import engine, job, runner

    seeds, curves, members, hyper = [], [], [], []
    offset = 0
    for _, cfg in group:
        seeds.append(np.arange(cfg.seed, cfg.seed + cfg.num_seeds))
        hyper.append({k: np.full(cfg.num_seeds, v) for k, v in engine.member_hyper(cfg).items()})
        curves.append(offset + np.arange(min(cfg.curve_seeds, cfg.num_seeds)))
        members.append(offset + np.arange(cfg.num_seeds))
        offset += cfg.num_seeds
    nums = [item.num for item, _ in group]
    first = group[0][1]
    try:
        result = runner.run(first, seeds=np.concatenate(seeds),
                            hyper={k: np.concatenate([h[k] for h in hyper]) for k in hyper[0]},
                            curve_members=np.concatenate(curves), desc=_label(nums))
        dataset = runner.program_for(first).dataset
    except Exception as err:  # noqa: BLE001 - fall back to one job at a time, in the task
        log.warning(f"fused training of jobs {nums} failed ({err}); training them one by one")
        return
    timing = job.Timing(result.wall_s, result.compile_s, len(group))
    for (item, cfg), rows in zip(group, members):
        job.write(item.dir, cfg, result, rows, dataset, list(item.overrides), item.num, timing)
