"""One job, from a resolved config to its files and summary line, without Hydra.

The Hydra app (:mod:`jaxbp.train`) and the fused-lr launcher call these functions; keeping
them Hydra-free makes them easy to test and to reuse.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxbp import __version__, config, results, runner
from jaxbp.config import RunConfig


def setup_jax(cfg: RunConfig) -> None:
    """Process-wide JAX settings a job asks for: precision and the persistent cache."""
    jax.config.update("jax_enable_x64", cfg.dtype == "float64")
    if cfg.compile_cache:
        cache_dir = os.path.expanduser(cfg.compile_cache)
        os.makedirs(cache_dir, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        # Our programs compile in about a second; cache them all, not only slow ones.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def prepare(values: dict[str, Any]) -> RunConfig:
    """Validates a resolved config against the schema and its data; raises ``ConfigError``."""
    cfg = config.from_dict(values)
    setup_jax(cfg)
    runner.program_for(cfg)  # loads the data and checks batch_size against it
    return cfg


class Precomputed(NamedTuple):
    """A job's share of a fused run (see the ``vmap`` launcher)."""

    result: runner.RunResult
    members: np.ndarray
    wall_s: float
    compile_s: float
    fused_jobs: int


_PRECOMPUTED: dict[str, Precomputed] = {}


def _values_key(values: dict) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def precompute(values: dict, result: runner.RunResult, members, wall_s: float, compile_s: float,
               fused_jobs: int) -> None:
    """Hands the job with config ``values`` its members of an already trained run."""
    _PRECOMPUTED[_values_key(values)] = Precomputed(result, np.asarray(members), wall_s,
                                                    compile_s, fused_jobs)


def summary_for(cfg: RunConfig, values: dict, result: runner.RunResult, overrides: list[str],
                job_num: int | None, wall_s: float, compile_s: float) -> dict[str, Any]:
    """The job-level facts of ``summary.json`` (aggregates are added when it is written)."""
    program = runner.program_for(cfg)
    data = program.dataset
    return {
        "config": values,
        "overrides": overrides,
        "job_num": job_num,
        "spec": list(program.spec.sizes),
        "data": {"name": data.name, "n_train": int(data.x_train.shape[0]),
                 "n_test": int(data.x_test.shape[0])},
        "wall_s": wall_s,
        "compile_s": compile_s,
        "backend": result.backend,
        "device": result.device,
        "versions": {"jaxbp": __version__, "jax": jax.__version__, "numpy": np.__version__},
    }


def describe(cfg: RunConfig, summary: dict, job_dir: Path) -> str:
    """The one-line summary printed at the end of a job."""
    sizes = "-".join(map(str, summary["spec"]))
    low, high = summary["success_ci_low"], summary["success_ci_high"]
    median = summary["epochs_to_target_median"]
    reached = "" if np.isnan(median) else f", median {median:.0f} epochs"
    diverged = round(summary["diverged_rate"] * summary["num_seeds"])
    warn = f", {diverged} diverged" if diverged else ""
    return (
        f"{summary['num_seeds']} seeds, {cfg.data.name} {sizes}, {cfg.optim.name} lr={cfg.lr:g}, "
        f"{cfg.epochs} epochs: {100 * summary['success_rate']:.1f}% reached loss ≤ "
        f"{cfg.target_loss:g} (95% CI {100 * low:.1f}–{100 * high:.1f}%){reached}{warn}; "
        f"{summary['wall_s']:.1f} s (compile {summary['compile_s']:.1f} s) → {job_dir}"
    )


def run(values: dict, job_dir: Path, overrides: list[str], job_num: int | None = None) -> str:
    """Validates, trains and writes one job; returns its summary line.

    Raises:
        ConfigError: before any training or file, for a bad value.
    """
    cfg = prepare(values)
    fused = _PRECOMPUTED.pop(_values_key(values), None)
    if fused is None:
        result = runner.run(cfg, desc=f"job {job_num}" if job_num is not None else "train")
        fused = Precomputed(result, np.arange(cfg.num_seeds), result.wall_s, result.compile_s, 1)
    summary = summary_for(cfg, values, fused.result, overrides, job_num, fused.wall_s,
                          fused.compile_s)
    summary["fused_jobs"] = fused.fused_jobs
    summary = results.write_job(job_dir, fused.result, summary, fused.members)
    return describe(cfg, summary, job_dir)

