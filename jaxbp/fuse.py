"""Fusion: a sweep's jobs that differ only in traced values train as one program.

Jobs whose configs are equal once every traced value (``lr``, ``seed``, penalties, the
optimiser's numbers, ...) is blanked (:func:`jaxbp.config.shape_key`) form a group. Jobs
that differ only in ``hidden`` join one group too, padded to the widest with unit masks,
when the padding costs at most ``width_factor`` times the work of training each width
alone. Each group trains once, all of its jobs' members side by side in one vmapped
program, and each job's slice is written to its dir at once (:func:`jaxbp.job.write`), so
memory holds one group at a time.

The ``vmap`` Hydra launcher (``hydra_plugins.jaxbp_vmap_launcher``) is a thin shell over
this module; any other caller may use it the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxbp import config
from jaxbp.plan import Plan

log = logging.getLogger("jaxbp.fuse")


class Job(NamedTuple):
    """One job of a sweep, resolved: Hydra's number, its output dir, its overrides (as
    recorded in ``summary.json``) and its :class:`~jaxbp.plan.Plan`."""

    num: int
    dir: Path
    overrides: list[str]
    plan: Plan


def fusable(task: Callable) -> Callable:
    """Marks a Hydra task function whose jobs the ``vmap`` launcher may train fused (it
    trains a job alone, or finds it complete, as :mod:`jaxbp.train`'s task does)."""
    task.jaxbp_fusable = True
    return task


def is_fusable(task: Callable | None) -> bool:
    return bool(getattr(task, "jaxbp_fusable", False))


FUSE_WIDTHS = ("auto", "always", "never")


def settings_error(max_members, fuse_widths, width_work_factor) -> str:
    """What is wrong with the ``vmap`` launcher's settings (``hydra.launcher.*``); ``""``."""
    if isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 1:
        return f"hydra.launcher.max_members={max_members!r} is invalid: an integer >= 1"
    if fuse_widths not in FUSE_WIDTHS:
        return f"hydra.launcher.fuse_widths={fuse_widths!r} is invalid: auto, always or never"
    if not (isinstance(width_work_factor, (int, float)) and width_work_factor >= 1):
        return f"hydra.launcher.width_work_factor={width_work_factor!r} is invalid: a number >= 1"
    return ""


def shared_dir(dirs: list[tuple[int, Path]]) -> str:
    """Why two of these ``(job number, dir)`` would overwrite each other; ``""`` if none."""
    seen: dict[Path, int] = {}
    for num, path in dirs:
        if path in seen:
            return (f"jobs {seen[path]} and {num} would share the dir {path}; make "
                    "hydra.sweep.subdir unique per job (the default is ${hydra.job.num})")
        seen[path] = num
    return ""


def group(jobs: list[Job], max_members: int, width_factor: float = 0.0) -> list[list[Job]]:
    """The jobs grouped by shape (widths fused when the padding costs at most
    ``width_factor`` × the unpadded work; 0: never), each group at most ``max_members``
    members (a bigger job trains alone). The widest job comes first: its config is the
    program's."""
    groups: dict[config.RunConfig, list[Job]] = {}
    for job in jobs:
        key = config.shape_key(job.plan.cfg)
        if width_factor > 0 and job.plan.cfg.kernel != "pallas":  # the kernel trains no padded members
            key = dataclasses.replace(key, hidden=1)
        groups.setdefault(key, []).append(job)
    split = []
    for same_shape in groups.values():
        for part in _by_width_cost(same_shape, width_factor):
            split.extend(_by_members(part, max_members))
    return split


def width_work(job: Job, hidden: int) -> int:
    """Relative cost of one member-epoch of ``job`` at width ``hidden``: its scalar parameters."""
    cfg = job.plan.cfg
    n_in, n_out = job.plan.spec.sizes[0], job.plan.spec.sizes[-1]
    return config.n_params(dataclasses.replace(cfg, hidden=hidden).spec(n_in, n_out))


def _by_width_cost(jobs: list[Job], width_factor: float) -> list[list[Job]]:
    """The jobs whole if padding every one to the widest costs at most ``width_factor`` ×
    the work of training each at its own width; otherwise one list per width."""
    widths = {job.plan.cfg.hidden for job in jobs}
    if len(widths) == 1:
        return [jobs]
    widest = max(widths)
    padded = sum(job.plan.cfg.num_seeds * width_work(job, widest) for job in jobs)
    own = sum(job.plan.cfg.num_seeds * width_work(job, job.plan.cfg.hidden) for job in jobs)
    if padded <= width_factor * own:
        return [sorted(jobs, key=lambda job: -job.plan.cfg.hidden)]
    by_width: dict[int, list[Job]] = {}
    for job in jobs:
        by_width.setdefault(job.plan.cfg.hidden, []).append(job)
    return list(by_width.values())


def _by_members(jobs: list[Job], max_members: int) -> list[list[Job]]:
    split: list[list[Job]] = []
    current: list[Job] = []
    members = 0
    for job in jobs:
        if current and members + job.plan.cfg.num_seeds > max_members:
            split.append(current)
            current, members = [], 0
        current.append(job)
        members += job.plan.cfg.num_seeds
    split.append(current)
    return split


def numbers(nums: list[int]) -> str:
    """``3-7`` for a run of numbers, else ``1,4``: how jobs and trials are listed in logs."""
    nums = sorted(nums)
    if len(nums) > 1 and nums == list(range(nums[0], nums[-1] + 1)):
        return f"{nums[0]}-{nums[-1]}"
    return ",".join(map(str, nums))


def label(nums: list[int]) -> str:
    """``jobs 3-7``, ``jobs 1,4`` or ``job 2``: how a group is named in its progress bar."""
    return f"job {nums[0]}" if len(nums) == 1 else f"jobs {numbers(nums)}"


def train_group(jobs: list[Job]) -> bool:
    """Trains a group's members in one program and writes each job's slice to its dir.
    Returns False (having written nothing) when the fused program failed: its jobs then
    train one by one, so a fused failure never loses a job."""
    from jaxbp import engine, runner
    from jaxbp import job as jobs_

    seeds, curves, members, hyper = [], [], [], []
    offset = 0
    for job in jobs:
        cfg = job.plan.cfg
        seeds.append(np.arange(cfg.seed, cfg.seed + cfg.num_seeds))
        hyper.append({k: np.full(cfg.num_seeds, v) for k, v in engine.member_hyper(cfg).items()})
        curves.append(offset + np.arange(min(cfg.curve_seeds, cfg.num_seeds)))
        members.append(offset + np.arange(cfg.num_seeds))
        offset += cfg.num_seeds
    nums = [job.num for job in jobs]
    first = max((job.plan.cfg for job in jobs), key=lambda cfg: cfg.hidden)  # the program's widths
    try:
        result = runner.run(first, seeds=np.concatenate(seeds),
                            hyper={k: np.concatenate([h[k] for h in hyper]) for k in hyper[0]},
                            curve_members=np.concatenate(curves), desc=label(nums))
    except Exception as err:  # noqa: BLE001 - fall back to one job at a time, in the task
        log.warning(f"fused training of jobs {nums} failed ({err}); training them one by one")
        return False
    timing = jobs_.Timing(result.wall_s, result.compile_s, len(jobs))
    for job, rows in zip(jobs, members):
        own = result if job.plan.cfg.hidden == first.hidden else result._replace(
            params=unpad(result.params, job.plan.cfg.hidden),
            initial_params=result.initial_params and unpad(result.initial_params, job.plan.cfg.hidden))
        jobs_.write(job.dir, job.plan, own, rows, list(job.overrides), job.num, timing)
    return True


def unpad(params: list, hidden: int) -> list:
    """Params of networks padded to wider hidden layers, cut to ``hidden`` units (the
    padded units' weights are zero: nothing is lost). Leaves have a leading member axis."""
    last = len(params) - 1
    return [{**layer,  # shortcut weights S (inputs to outputs) have no hidden axis
             "W": layer["W"][:, : (hidden if l > 0 else None), : (hidden if l < last else None)],
             "b": layer["b"][:, : (hidden if l < last else None)]} for l, layer in enumerate(params)]
