"""One job, from a validated ``RunConfig`` to its files and summary line, without Hydra.

The Hydra app (:mod:`jaxbp.train`) trains a job alone with :func:`train`; the fused ``vmap``
launcher trains a group of jobs in one program and writes each job's members with
:func:`write`. Both go through :class:`jaxbp.results.JobDir`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxbp import __version__, config, results
from jaxbp.config import RunConfig


class Timing(NamedTuple):
    """Wall and compile seconds of the program that trained a job; a fused job shares them
    with ``fused_jobs - 1`` others, so they are the group's, reported once."""

    wall_s: float
    compile_s: float
    fused_jobs: int = 1


def vouches(cfg: RunConfig) -> dict[str, Any]:
    """What a complete job's marker must match: the result-determining config, and the
    content of a user's data file (a changed file means a changed job)."""
    promise = {"config": config.result_values(cfg)}
    if cfg.data.name == "file":
        from jaxbp import datafile

        promise["data_sha256"] = datafile.content_hash(cfg.data.path)
    return promise


def summary_for(cfg: RunConfig, result, dataset, overrides: list[str], job_num: int | None,
                timing: Timing) -> dict[str, Any]:
    """The job-level facts of ``summary.json`` (aggregates are added when it is written)."""
    import jax

    sizes = cfg.spec(dataset.x_train.shape[1], dataset.y_train.shape[1]).sizes
    return {
        "config": config.result_values(cfg) | {k: getattr(cfg, k) for k in config.COSMETIC_KEYS},
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
             f"{_pct(summary['success_rate'])} reached loss ≤ {cfg['target_loss']:g} "
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


def write(job_dir: Path, cfg: RunConfig, result, members, dataset, overrides: list[str],
          job_num: int | None, timing: Timing) -> str:
    """Writes one job's members of ``result`` to ``job_dir``; returns its summary line."""
    job = results.JobDir(job_dir)
    summary = summary_for(cfg, result, dataset, overrides, job_num, timing)
    summary = job.write(result, members, summary, vouches(cfg), dataset,
                        describe=lambda s: describe(s, Path(job_dir)))
    return summary["line"]


def stored_line(job_dir: Path) -> str:
    """The summary line a complete job printed when it was written."""
    summary = results.JobDir(job_dir).summary()
    return summary.get("line") or describe(summary, Path(job_dir))


def train(cfg: RunConfig, job_dir: Path, overrides: list[str], job_num: int | None = None,
          dataset=None) -> str:
    """Trains one job alone and writes it; returns its summary line. In a multi-process job
    every process trains its share and only process 0 writes."""
    from jaxbp import distributed, runner

    result = runner.run(cfg, desc=f"job {job_num}" if job_num is not None else "train")
    if not distributed.writes():
        return f"{distributed.describe()}: trained its share of {cfg.num_seeds} seeds; process 0 writes {job_dir}"
    dataset = dataset if dataset is not None else runner.program_for(cfg).dataset
    return write(job_dir, cfg, result, np.arange(cfg.num_seeds), dataset, overrides, job_num,
                 Timing(result.wall_s, result.compile_s))
