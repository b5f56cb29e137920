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

import dataclasses
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
    # Jobs that differ only in `hidden` train as one program padded to the widest:
    # auto = when the padded work is at most `width_work_factor` × the unpadded work (on a
    # CPU; always on an accelerator), always, or never. experiments/PERF.md has the measurement.
    fuse_widths: str = "auto"
    width_work_factor: float = 2.0


ConfigStore.instance().store(group="hydra/launcher", name="vmap", node=VmapLauncherConf,
                             provider="jaxbp")


class _Job:
    def __init__(self, num: int, overrides: list[str], sweep_config: DictConfig):
        self.num, self.overrides, self.sweep_config = num, overrides, sweep_config
        self.dims = (0, 0)  # the data's (inputs, outputs), once checked
        self.dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


class VmapLauncher(Launcher):
    def __init__(self, max_members: int = 2_000_000, fuse_widths: str = "auto",
                 width_work_factor: float = 2.0) -> None:
        super().__init__()
        from jaxbp import app

        if not isinstance(max_members, int) or max_members < 1:
            app.refuse_message(f"hydra.launcher.max_members={max_members!r} is invalid: an integer >= 1")
        if fuse_widths not in ("auto", "always", "never"):
            app.refuse_message(f"hydra.launcher.fuse_widths={fuse_widths!r} is invalid: auto, always or never")
        if not width_work_factor >= 1:
            app.refuse_message(f"hydra.launcher.width_work_factor={width_work_factor!r} is invalid: a number >= 1")
        self.max_members = max_members
        self.fuse_widths, self.width_work_factor = fuse_widths, float(width_work_factor)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from jaxbp import distributed, results

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = [self._job(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        refuse_shared_dirs(jobs)
        setting = str(self.config.get("distributed", "auto"))
        if distributed.is_lead(setting):
            results.SweepDir(sweep_dir).add_jobs([{"num": j.num, "overrides": j.overrides} for j in jobs])
        # A multi-process sweep joins JAX's runtime in its first task, before JAX starts:
        # its jobs train one by one there, unfused.
        groups = [] if distributed.planned(setting) else group_jobs(jobs, self.max_members, self._width_policy())
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

    def _width_policy(self) -> float:
        """The largest padded/unpadded work ratio at which widths fuse (0: never)."""
        if self.fuse_widths == "never":
            return 0.0
        if self.fuse_widths == "always":
            return float("inf")
        import jax

        return float("inf") if jax.default_backend() != "cpu" else self.width_work_factor

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


def group_jobs(jobs: list[_Job], max_members: int, width_factor: float = 0.0) -> list[list[tuple[_Job, Any]]]:
    """Incomplete, valid jobs grouped by shape (widths fused when the padding costs at most
    ``width_factor`` × the unpadded work), each group at most ``max_members`` members (a
    bigger job trains alone); each entry pairs a job with its RunConfig."""
    from jaxbp import app, config, job, results
    from jaxbp.checks import ConfigError

    groups: dict[Any, list] = {}
    for item in jobs:
        try:
            cfg = app.to_run_config(item.sweep_config)
            if results.JobDir(item.dir).is_complete(job.vouches(cfg)):
                continue
            dataset = app.check(cfg)
            item.dims = (dataset.x_train.shape[1], dataset.y_train.shape[1])
        except (ConfigError, OSError) as err:
            log.info(f"job {item.num} left to its task: {err}")  # which records the failure
            continue
        key = config.shape_key(cfg)
        if width_factor > 0 and cfg.kernel != "pallas":  # the kernel trains no padded members
            key = dataclasses.replace(key, hidden=1)
        groups.setdefault(key, []).append((item, cfg))
    split = []
    for group in groups.values():
        for part in _by_width_cost(group, width_factor):
            split.extend(_by_members(part, max_members))
    return split


def _work(item: _Job, cfg, hidden: int) -> int:
    """Relative cost of one member-epoch: the network's scalar parameters."""
    from jaxbp import config

    return config.n_params(dataclasses.replace(cfg, hidden=hidden).spec(*item.dims))


def _by_width_cost(group: list, width_factor: float) -> list[list]:
    """The group whole if padding every job to the widest costs at most ``width_factor`` ×
    the work of training each at its own width; otherwise one group per width."""
    widths = {cfg.hidden for _, cfg in group}
    if len(widths) == 1:
        return [group]
    widest = max(widths)
    padded = sum(cfg.num_seeds * _work(item, cfg, widest) for item, cfg in group)
    own = sum(cfg.num_seeds * _work(item, cfg, cfg.hidden) for item, cfg in group)
    if padded <= width_factor * own:
        # The widest job first: its config is the program's.
        return [sorted(group, key=lambda entry: -entry[1].hidden)]
    by_width: dict[int, list] = {}
    for entry in group:
        by_width.setdefault(entry[1].hidden, []).append(entry)
    return list(by_width.values())


def _by_members(group: list, max_members: int) -> list[list]:
    split, current, members = [], [], 0
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
    first = max((cfg for _, cfg in group), key=lambda cfg: cfg.hidden)  # the program's widths
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
        own = result._replace(params=unpad(result.params, cfg.hidden))
        job.write(item.dir, cfg, result if cfg.hidden == first.hidden else own, rows, dataset,
                  list(item.overrides), item.num, timing)


def unpad(params: list, hidden: int) -> list:
    """Params of networks padded to wider hidden layers, cut to ``hidden`` units (the
    padded units' weights are zero: nothing is lost)."""
    last = len(params) - 1
    return [{**layer,  # shortcut weights S (inputs to outputs) have no hidden axis
             "W": layer["W"][:, : (hidden if l > 0 else None), : (hidden if l < last else None)],
             "b": layer["b"][:, : (hidden if l < last else None)]} for l, layer in enumerate(params)]
