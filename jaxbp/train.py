"""``python -m jaxbp.train [key=value ...]``: train ``num_seeds`` networks in one program.

A thin Hydra app over :mod:`jaxbp.job`. With ``-m`` it sweeps; :mod:`jaxbp.sweep` then
checks every job's config first and aggregates the results at the end.

    python -m jaxbp.train                                   # the article's XOR 2-3-1, 1000 seeds
    python -m jaxbp.train -m lr=0.01,0.1,1.0 hidden=2,3,8   # a sweep
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from jaxbp import config, job, paths, results
from jaxbp.config import ConfigError

config.register_schema()
config.register_experiments(paths.EXPERIMENTS_DIR)


def _remove_hydra_leftovers(job_dir: Path) -> None:
    """After a refused single run, removes the files Hydra made if nothing else is there."""
    leftovers = {".hydra", "train.log"}
    if job_dir.is_dir() and {p.name for p in job_dir.iterdir()} <= leftovers:
        for name in leftovers:
            path = job_dir / name
            if path.is_dir():
                for child in path.iterdir():
                    child.unlink()
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        job_dir.rmdir()  # its parent may be the user's own folder: left as it is


@hydra.main(version_base="1.3", config_path=str(paths.CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    job_num = hydra_cfg.job.num if sweeping else None
    values = config.resolved_values(cfg)
    if not str(hydra_cfg.launcher._target_).endswith(("BasicLauncher", "VmapLauncher")):
        # Parallel jobs may share one GPU: JAX would otherwise grab 75% of it per process.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    if sweeping and results.is_complete(job_dir, values):
        print(f"job {job_num} already complete, skipped → {job_dir}")
        return
    try:
        print(job.run(values, job_dir, overrides, job_num), flush=True)
    except ConfigError as err:
        if sweeping:  # the sweep callback refuses bad values earlier; this is a backstop
            results.write_failure(job_dir, str(err), overrides, values)
            print(f"job {job_num} failed: {err}", file=sys.stderr)
            return
        _remove_hydra_leftovers(job_dir)
        print(config.refusal(err), file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - a sweep must outlive any one job
        if not sweeping:
            raise
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        results.write_failure(job_dir, reason, overrides, values)
        print(f"job {job_num} failed: {reason}", file=sys.stderr)


if __name__ == "__main__":
    main()
