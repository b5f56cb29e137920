"""One job, from its :class:`jaxbp.plan.Plan` to its files and summary line, without Hydra.

The Hydra app (:mod:`jaxbp.train`) trains a job alone with :func:`train`; a fused group
(:mod:`jaxbp.fuse`) trains several jobs in one program and writes each job's members with
:func:`write`. Here the tables, statistics and summary line are computed; the files are
written by :class:`jaxbp.results.JobDir`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxbp import __version__, config, results, stats
from jaxbp import plan as plans
from jaxbp.config import RunConfig
from jaxbp.plan import Plan


class Timing(NamedTuple):
    """Wall and compile seconds of the program that trained a job; a fused job shares them
    with ``fused_jobs - 1`` others, so they are the group's, reported once."""

    wall_s: float
    compile_s: float
    fused_jobs: int = 1


def summary_for(plan: Plan, result, overrides: list[str], job_num: int | None,
                timing: Timing) -> dict[str, Any]:
    """The job-level facts of ``summary.json`` (:func:`write` adds the figures over seeds)."""
    import jax

    cfg, dataset, sizes = plan.cfg, plan.dataset, plan.spec.sizes
    return {
        "config": config.result_values(cfg) | {k: getattr(cfg, k) for k in config.COSMETIC_KEYS},
        "success_criterion": config.criterion_phrase(config.result_values(cfg)),
        "overrides": overrides,
        "job_num": job_num,
        "spec": list(sizes),
        "data": {"name": dataset.name, "n_train": int(dataset.x_train.shape[0]),
                 "n_test": int(dataset.x_test.shape[0]), "classes": bool(dataset.classes)},
        "wall_s": timing.wall_s,
        "compile_s": timing.compile_s,
        "fused_jobs": timing.fused_jobs,
        "backend": result.backend,
        "device": result.device,
        "device_count": result.devices,
        "kernel": result.kernel,
        "versions": {"jaxbp": __version__, "jax": jax.__version__, "numpy": np.__version__},
    }


def _pct(value) -> str:
    return f"{100 * value:.1f}%"


def describe(summary: dict[str, Any], job_dir: Path) -> str:
    """The one-line summary printed at the end of a job, from its ``summary.json`` alone."""
    cfg = summary["config"]
    n = summary["num_seeds"]
    sizes = "-".join(map(str, summary["spec"]))
    low, high = summary["success_ci_low"], summary["success_ci_high"]
    parts = [f"{n} seed{'s' if n != 1 else ''}, {cfg['data']['name']} {sizes}, "
             f"{cfg['optim']['name']} lr={cfg['lr']:g}{_penalties(cfg)}, {cfg['epochs']} epochs: "
             f"{_pct(summary['success_rate'])} {config.success_words(cfg)} "
             f"(95% CI {100 * low:.1f}–{100 * high:.1f}%)"]
    median = summary.get("epochs_to_target_km_median")
    if median is not None and not (isinstance(median, float) and math.isnan(median)):
        parts.append(f"median {median:.0f} epoch{'' if round(median) == 1 else 's'} to target")
    elif summary.get("success_rate", 0) > 0:
        parts.append("median epochs to target: not reached by half the seeds")
    accuracy = [f"{name} acc {_pct(summary[key])}" for name, key in
                (("train", "train_acc_mean"), ("test", "test_acc_mean"))
                if _finite(summary.get(key))]
    if accuracy:
        parts.append(", ".join(accuracy))
    diverged = round((summary.get("diverged_rate") or 0) * n)
    if diverged:
        parts.append(f"{diverged} diverged")
    fused = summary.get("fused_jobs", 1)
    timing = f"{summary['wall_s']:.1f} s (compile {summary['compile_s']:.1f} s)"
    if fused > 1:
        timing = f"trained fused with {fused - 1} other job{'s' if fused > 2 else ''}: {timing} for all {fused}"
    return f"{', '.join(parts)}; {timing} → {_shown(job_dir)}"


def _penalties(cfg: dict) -> str:
    """`` l2=0.001`` for each weight penalty in use: jobs of an l1/l2 sweep differ only there."""
    return "".join(f" {key}={cfg[key]:g}" for key in ("l1", "l2") if cfg.get(key))


def _shown(path) -> str:
    """A path as the user would type it: relative to the working dir when inside it."""
    import os

    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def write(job_dir: Path, plan: Plan, result, members, overrides: list[str], job_num: int | None,
          timing: Timing) -> str:
    """Writes one job's ``members`` of ``result`` to ``job_dir``; returns its summary line.

    ``result`` is a :class:`jaxbp.runner.RunResult`, possibly of a fused group whose other
    members belong to other jobs."""
    members = np.asarray(members)
    seeds = results.seeds_frame(result, members)
    summary = summary_for(plan, result, overrides, job_num, timing)
    summary |= stats.summarize_seeds(seeds, plan.cfg.epochs)
    summary["line"] = describe(summary, Path(job_dir))
    params = {"seed": np.asarray(result.seeds)[members]}
    if plan.cfg.save_params:  # else the seeds only, so the file still vouches for them
        params |= _arrays(result.params, members)
        params |= _arrays(getattr(result, "initial_params", None) or [], members, results.INITIAL)
    data = {k: getattr(plan.dataset, k) for k in ("x_train", "y_train", "x_test", "y_test")}
    results.JobDir(job_dir).write(seeds, results.curves_frame(result, members), params, data,
                                  summary, plan.vouches())
    return summary["line"]


def _arrays(params: list, members: np.ndarray, prefix: str = "") -> dict[str, np.ndarray]:
    """``params.npz``'s arrays: ``W0, b0, ...`` (with ``prefix``) of the ``members``."""
    return {f"{prefix}{name}{layer}": np.asarray(leaf)[members]
            for layer, layer_params in enumerate(params) for name, leaf in layer_params.items()}


def stored_line(job_dir: Path) -> str:
    """The summary line a complete job printed when it was written."""
    summary = results.JobDir(job_dir).summary()
    return summary.get("line") or describe(summary, Path(job_dir))


def train(job: Plan | RunConfig, job_dir: Path, overrides: list[str], job_num: int | None = None) -> str:
    """Trains one job alone and writes it; returns its summary line. In a multi-process job
    every process trains its share and only process 0 writes. A bare ``RunConfig`` is
    resolved first (:func:`jaxbp.plan.plan`)."""
    from jaxbp import distributed, runner

    plan = job if isinstance(job, Plan) else plans.plan(job)
    cfg = plan.cfg
    result = runner.run(cfg, desc=f"job {job_num}" if job_num is not None else "train")
    if not distributed.writes():
        return f"{distributed.describe()}: trained its share of {cfg.num_seeds} seeds; process 0 writes {job_dir}"
    return write(job_dir, plan, result, np.arange(cfg.num_seeds), overrides, job_num,
                 Timing(result.wall_s, result.compile_s))
