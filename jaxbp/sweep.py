"""Run- and sweep-level work as one Hydra ``Callback``: refuse first, aggregate at the end.

``on_run_start`` and ``on_multirun_start`` run before Hydra creates any dir: they compose
and check every job's config (and its data) and exit with status 2 on a bad value, so a
refusal touches nothing. A sweep then locks its dir, refuses a dir that holds a different
sweep, and records its job list. ``on_multirun_end`` builds ``sweep.csv`` (one row per job
this sweep launched) and ``sweep_seeds.csv`` (every seed of those jobs) through
:class:`jaxbp.results.SweepDir`; a failure there fails the command.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from jaxbp import app, config, distributed, plan
from jaxbp.checks import ConfigError

# pandas and jaxbp.results load when a sweep's tables are built, never for a refusal.

log = logging.getLogger("jaxbp.sweep")
JOB_COLUMNS = ["job", "job_dir", "status", "reason"]
STAT_COLUMNS = ["num_seeds", "success_rate", "success_ci_low", "success_ci_high",
                "final_loss_mean", "final_loss_median", "final_loss_std",
                "epochs_to_target_median_converged", "train_acc_mean", "test_acc_mean",
                "diverged_rate", "wall_s", "compile_s"]


def stat_columns() -> list[str]:
    """sweep.csv's figure columns: the fixed ones, then what the statistics add."""
    from jaxbp import stats

    extra = [c for c in stats.SUMMARY_COLUMNS if c not in STAT_COLUMNS]
    return STAT_COLUMNS + extra


def sweep_overrides(cfg: DictConfig) -> list[str]:
    """The sweep's overrides: ``hydra.sweeper.params`` first, then the command line's."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    return [f"{k}={v}" for k, v in params.items()] + list(cfg.hydra.overrides.task)


def expand_jobs(overrides: list[str]) -> list[list[str]]:
    """Each job's override list, as Hydra's basic sweeper forms them: the cartesian product
    of every key's values, keys in their first order, a later override of a key replacing
    an earlier one (Hydra's public override parser; its sweeper's helper is private)."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise HydraException(f"BasicSweeper does not support sweep type : {override.value_type.name}")
    return [list(job) for job in itertools.product(*choices.values())]


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


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What makes a sweep the same sweep: its arguments and its sweeper's settings, less
    the cosmetic keys and the sweeper's budget (a larger ``n_trials`` continues a study)."""
    cosmetic = tuple(f"{k}=" for k in config.COSMETIC_KEYS)
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)
    for budget in ("n_trials", "batch"):
        sweeper.pop(budget, None)
    return {"arguments": [o for o in cfg.hydra.overrides.task if not o.startswith(cosmetic)],
            "sweeper": sweeper}


def check_output_dir(key: str, path: Path) -> None:
    """Refuses an output dir that is a file, lies under one, or cannot be written."""
    from jaxbp import memory

    existing = memory.existing_parent(path)
    if not existing.is_dir():
        app.refuse_message(f"{key}={path} is invalid: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        app.refuse_message(f"{key}={path} is invalid: {existing} is not writable")


def keep_recorded_order(cfg: DictConfig) -> None:
    """A rerun of a sweep with its arguments in another order is the same sweep, but Hydra
    numbers jobs by the arguments' order: the recorded order is put back before the jobs
    are listed, so job ``n`` stays the job its dir holds."""
    path = Path(str(cfg.hydra.sweep.dir)) / "sweep.json"
    try:
        recorded = json.loads(path.read_text()).get("arguments")
    except (OSError, ValueError, AttributeError):
        return
    arguments = identity(cfg)["arguments"]
    if not isinstance(recorded, list) or recorded == arguments or sorted(recorded) != sorted(arguments):
        return
    others = [o for o in cfg.hydra.overrides.task if o not in arguments]  # the cosmetic keys
    with read_write(cfg.hydra.overrides), open_dict(cfg.hydra.overrides):
        cfg.hydra.overrides.task = [*recorded, *others]
    log.info(f"the arguments in the order this sweep was started with: {' '.join(recorded)}")


def check_job(composed: DictConfig, label: str = "", out_dir: Path | None = None) -> config.RunConfig:
    """Converts and checks one job's config against its data (and what it would write to
    ``out_dir``); exits 2 when it is bad."""
    try:
        cfg = app.to_run_config(composed)
        plan.plan(cfg, out_dir)
        return cfg
    except ConfigError as err:
        app.refuse(err, label)


def check_jobs(jobs: list[list[str]], master: DictConfig, out_dir: Path | None = None) -> None:
    """Composes and checks every job's config; exits 2 on the first bad one. Each job is
    composed as the launcher will compose it (:func:`jaxbp.app.compose_job`), and once."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from jaxbp import fuse

    loader = GlobalHydra.instance().config_loader()
    dirs = []
    for num, overrides in enumerate(jobs):
        label = " ".join(overrides)
        try:
            composed = app.compose_job(loader, master, overrides)
        except (HydraException, ValueError) as err:  # ValueError: e.g. optim=1 (not a name)
            cause = f"\n{err.__cause__}" if err.__cause__ else ""
            app.refuse_message(f"job {label} cannot be composed:\n{err}{cause}")
        with open_dict(composed):  # as the launcher numbers it: the basic sweeper's one batch
            composed.hydra.job.id = composed.hydra.job.num = num
        try:
            dirs.append((num, app.sweep_job_dir(composed)))
        except OmegaConfBaseException:
            pass  # a subdir Hydra resolves only when the job runs: the launcher checks it then
        check_job(composed, label, out_dir)
    if why := fuse.shared_dir(dirs):
        app.refuse_message(why)


def check_launcher(cfg: DictConfig) -> None:
    """Refuses bad ``vmap`` launcher settings before the sweep dir is claimed."""
    launcher = OmegaConf.select(cfg, "hydra.launcher")
    if launcher is None or not str(launcher.get("_target_", "")).endswith("VmapLauncher"):
        return
    from jaxbp import fuse

    why = fuse.settings_error(launcher.get("max_members"), launcher.get("fuse_widths"),
                              launcher.get("width_work_factor"))
    if why:
        app.refuse_message(why)


def check_sweeper_arguments(cfg: DictConfig, config_name: str | None) -> None:
    """A sweeper that chooses its jobs as it goes may offer ``check_arguments(config,
    config_name)``: it refuses a bad search space here, before the sweep dir is claimed."""
    from hydra.utils import get_class

    target = OmegaConf.select(cfg, "hydra.sweeper._target_")
    check = getattr(get_class(target), "check_arguments", None) if target else None
    if check is not None:
        check(cfg, config_name)


def _job_row(sweep_dir: Path, entry: dict, dirs: list[Path], shared: dict[Path, list[int]]):
    """One sweep.csv row, and the job's seeds frame when it is ok."""
    import pandas as pd

    from jaxbp import results

    keys = override_values(entry["overrides"])
    num = int(entry["num"])
    trial = {"trial": int(entry["trial"])} if "trial" in entry else {}
    row = {**keys, **trial, "job": num, "job_dir": "", "status": "missing",
           "reason": "no results (interrupted or not run)"}
    if not dirs:
        return row, None
    job_dir = dirs[0]
    row["job_dir"] = str(job_dir.relative_to(sweep_dir))
    if len(shared.get(job_dir, [])) > 1:
        others = [n for n in shared[job_dir] if n != num]
        row.update(status="failed", reason=f"shares its dir with job(s) {others}: "
                                           "make hydra.sweep.subdir unique per job")
        return row, None
    job = results.JobDir(job_dir)
    status = job.status()
    row["status"] = status
    if status == "failed":
        row["reason"] = job.failure().get("reason", "")
        return row, None
    if status != "ok":
        row["reason"] = job.why_incomplete() or ""
        return row, None
    summary, seeds = job.summary(), job.seeds()
    row["reason"] = ""
    row.update({k: summary.get(k) for k in stat_columns()})
    # A swept `seed` is already in each row's own seed column; keep one of them.
    leading = {k: v for k, v in keys.items() if k not in seeds.columns}
    return row, pd.concat([pd.DataFrame({**leading, "job": num}, index=seeds.index), seeds], axis=1)


def aggregate(sweep_dir: Path, jobs: list[dict] | None = None):
    """Builds ``sweep.csv`` and ``sweep_seeds.csv`` from exactly this sweep's jobs and
    writes both.

    Returns:
        ``(sweep, seeds)``, the two tables as written (pandas frames).

    Args:
        sweep_dir: ``hydra.sweep.dir``.
        jobs: ``[{"num", "overrides"}]``; default the sweep dir's ``jobs.json``, or every
            job dir found when a sweeper recorded none.
    """
    import pandas as pd

    from jaxbp import results

    sweep_dir = Path(sweep_dir)
    store = results.SweepDir(sweep_dir)
    store.discard_tables()  # never leave an old table as if it were current
    by_num = store.job_dirs()
    if jobs is None:
        jobs = store.jobs() or store.found_jobs(by_num)
    shared: dict[Path, list[int]] = {}
    for num, dirs in by_num.items():
        for d in dirs:
            shared.setdefault(d, []).append(num)
    rows, seed_frames = [], []
    for entry in sorted(jobs, key=lambda j: int(j["num"])):
        row, seeds = _job_row(sweep_dir, entry, by_num.get(int(entry["num"]), []), shared)
        rows.append(row)
        if seeds is not None:
            seed_frames.append(seeds)
    columns = stat_columns()
    key_columns = list(dict.fromkeys(k for r in rows for k in r if k not in JOB_COLUMNS + columns))
    sweep = pd.DataFrame(rows, columns=key_columns + JOB_COLUMNS + columns)
    seeds = pd.concat(seed_frames, ignore_index=True) if seed_frames else pd.DataFrame(
        columns=key_columns + ["job"] + results.SEED_COLUMNS)
    store.write_tables(sweep, seeds)
    return sweep, seeds


class SweepCallback(Callback):
    """Registered in ``conf/config.yaml`` under ``hydra.callbacks.sweep``."""

    def __init__(self) -> None:
        self._lock = None

    def __getstate__(self) -> dict:
        # Process launchers (submitit) pickle the callbacks; the lock stays with this process.
        return {"_lock": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        swept = OmegaConf.select(config, "hydra.sweeper.params")
        if swept:  # e.g. +experiment=xor_lr_hidden without -m would train one default job
            app.refuse_message(f"this config sweeps {', '.join(map(str, swept))} (hydra.sweeper.params, "
                               "set by an experiment): run it as a sweep, with -m")
        out_dir = Path(str(config.hydra.run.dir))
        check_output_dir("hydra.run.dir", out_dir)
        check_job(config, out_dir=out_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_output_dir("hydra.sweep.dir", Path(str(config.hydra.sweep.dir)))
        keep_recorded_order(config)
        check_launcher(config)
        jobs = None
        if is_basic_sweep(config):
            jobs = expand_jobs(sweep_overrides(config))
            check_jobs(jobs, config, Path(str(config.hydra.sweep.dir)))
        else:
            check_sweeper_arguments(config, kwargs.get("config_name"))
        # Other sweepers choose jobs as they go: each job checks itself, and their own
        # launcher (or sweeper) records the jobs it launches.
        if not distributed.is_lead(str(config.get("distributed", "auto"))):
            return  # a multi-process sweep: process 0 owns the sweep dir
        from jaxbp import results

        store = results.SweepDir(Path(config.hydra.sweep.dir))
        try:
            self._lock = store.lock()
            self._lock.__enter__()
            store.claim(identity(config))
        except results.ResultsError as err:
            self._release()
            app.refuse_message(str(err))
        except OSError as err:
            self._release()
            app.refuse_message(f"cannot use hydra.sweep.dir={store.path}: {err.strerror}")
        if jobs is not None:
            store.add_jobs([{"num": i, "overrides": o} for i, o in enumerate(jobs)])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not distributed.is_lead(str(config.get("distributed", "auto"))):
            return  # process 0 aggregates; this one wrote nothing
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            sweep, _ = aggregate(sweep_dir)
        except Exception as err:  # noqa: BLE001 - Hydra would turn it into a warning and exit 0
            self._release()
            print(f"jaxbp: the sweep's results could not be aggregated into {sweep_dir}: "
                  f"{type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)
            sys.exit(app.EXIT_FAILED)
        self._release()
        bad = sweep[sweep["status"] != "ok"]
        print(f"sweep: {len(sweep) - len(bad)} of {len(sweep)} jobs ok → {sweep_dir / 'sweep.csv'}")
        if len(bad):
            for _, row in bad.iterrows():
                print(f"  job {row['job']} {row['status']}: {row['reason']}", file=sys.stderr)
            sys.exit(app.EXIT_FAILED)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None
