"""The vmap launcher's work. A task that is not jaxbp's runs exactly as under Hydra's basic
launcher: each job composed, run and logged in turn. jaxbp's task (:func:`jaxbp.fuse.fusable`)
gets its jobs resolved once (:func:`jaxbp.plan.plan`), grouped and trained fused
(:mod:`jaxbp.fuse`), each job's files written as soon as its group has trained; then every
job still runs through Hydra's ``run_job``, so it gets its ``.hydra`` files, logs and
callbacks as under the basic launcher, and the task finds its dir complete. Complete jobs
are skipped as usual; a job that cannot be resolved, or whose group failed to train, is
left to its task, which trains it alone or records why it failed.
"""

import logging
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig, open_dict

log = logging.getLogger("hydra_plugins.jaxbp_vmap_launcher")


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    setup_globals()
    assert launcher.config is not None and launcher.hydra_context is not None
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    from jaxbp import fuse

    if not fuse.is_fusable(launcher.task_function):
        log.info(f"Launching {len(job_overrides)} jobs locally")
        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        return [_run(launcher, num, overrides, _compose(launcher, num, overrides)) for num, overrides in jobs]
    return _launch_fused(launcher, job_overrides, initial_job_idx)


def _compose(launcher, num: int, overrides: list[str]) -> DictConfig:
    """Job ``num``'s config, as Hydra's basic launcher composes it (once per job: the sweep
    callback's checks composed it already, :func:`jaxbp.app.compose_job`)."""
    from jaxbp import app

    sweep_config = app.compose_job(launcher.hydra_context.config_loader, launcher.config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = num
        sweep_config.hydra.job.num = num
    return sweep_config


def _run(launcher, num: int, overrides: list[str], sweep_config: DictConfig) -> JobReturn:
    log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
    ret = run_job(hydra_context=launcher.hydra_context, task_function=launcher.task_function,
                  config=sweep_config, job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    return ret


def _launch_fused(launcher, job_overrides, initial_job_idx: int) -> Sequence[JobReturn]:
    from jaxbp import app, distributed, fuse, results

    _check_settings(launcher)
    configs = {initial_job_idx + i: (list(o), _compose(launcher, initial_job_idx + i, list(o)))
               for i, o in enumerate(job_overrides)}
    dirs = [(num, app.sweep_job_dir(cfg)) for num, (_, cfg) in configs.items()]
    if why := fuse.shared_dir(dirs):
        app.refuse_message(why)
    setting = str(launcher.config.get("distributed", "auto"))
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    if distributed.is_lead(setting):
        results.SweepDir(sweep_dir).add_jobs([{"num": n, "overrides": o} for n, (o, _) in configs.items()])
    # A multi-process sweep joins JAX's runtime in its first task, before JAX starts: its
    # jobs train one by one there, unfused.
    pending = [] if distributed.planned(setting) else _pending(configs)
    # The width policy asks JAX for its backend: only when there is something to train.
    groups = fuse.group(pending, launcher.max_members, _width_policy(launcher) if pending else 0.0)
    skipped = f" ({len(configs) - len(pending)} skipped here: complete, or left to their task)"
    log.info(f"Launching {len(configs)} jobs as {len(groups)} fused program(s)"
             + (skipped if len(pending) < len(configs) else ""))
    returns: dict[int, JobReturn] = {}
    for group in groups:
        fuse.train_group(group)  # writes each job's dir; nothing of the group outlives this
        for job in group:
            returns[job.num] = _run(launcher, job.num, *configs[job.num])
    for num, (overrides, cfg) in configs.items():
        if num not in returns:  # complete, unresolvable, or trained alone by the task
            returns[num] = _run(launcher, num, overrides, cfg)
    return [returns[num] for num in configs]


def _pending(configs: dict) -> list:
    """The jobs to train here, resolved: incomplete ones whose config and data check out."""
    from jaxbp import app, fuse, plan, results
    from jaxbp.checks import ConfigError

    pending = []
    for num, (overrides, sweep_config) in configs.items():
        job_dir = app.sweep_job_dir(sweep_config)
        try:
            cfg = app.to_run_config(sweep_config)
            done = results.JobDir(job_dir)
            why = done.why_incomplete(plan.vouches(cfg))
            if why is None:
                continue
            if reason := done.why_recomputed(why):
                log.info(f"job {num} recomputed: {reason}")
            pending.append(fuse.Job(num, job_dir, overrides, plan.plan(cfg)))
        except (ConfigError, OSError) as err:
            log.info(f"job {num} left to its task: {err}")  # which records the failure
    return pending


def _check_settings(launcher) -> None:
    """A backstop: the sweep callback refuses bad settings before the sweep dir is claimed."""
    from jaxbp import app, fuse

    if why := fuse.settings_error(launcher.max_members, launcher.fuse_widths, launcher.width_work_factor):
        app.refuse_message(why)


def _width_policy(launcher) -> float:
    """The largest padded/unpadded work ratio at which widths fuse (0: never)."""
    if launcher.fuse_widths == "never":
        return 0.0
    if launcher.fuse_widths == "always":
        return float("inf")
    import jax

    return float("inf") if jax.default_backend() != "cpu" else float(launcher.width_work_factor)
