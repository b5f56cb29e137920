"""``python -m jaxbp.train [key=value ...]``: train ``num_seeds`` networks in one program.

A thin Hydra app over :mod:`jaxbp.job`. Bad values are refused by :mod:`jaxbp.sweep`'s
callback before Hydra creates any dir; with ``-m`` it sweeps, and the callback aggregates
the results at the end.

    python -m jaxbp.train                                   # the article's XOR 2-3-1, 1000 seeds
    python -m jaxbp.train -m lr=0.01,0.1,1.0 hidden=2,3,8   # a sweep
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from jaxbp import app, cores, distributed, fuse, paths
from jaxbp.checks import ConfigError

log = logging.getLogger("jaxbp.train")


def task(composed: DictConfig) -> None:
    """Hydra's task function: trains (or skips, when complete) one job in its output dir.
    Importing this module starts nothing: JAX, pandas and the job machinery load here, once
    a job runs, so ``--help`` and a refusal never pay for them."""
    from jaxbp import job, plan, results

    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    job_num = hydra_cfg.job.num if sweeping else None
    if not str(hydra_cfg.launcher._target_).endswith(("BasicLauncher", "VmapLauncher")):
        # Parallel jobs may share one GPU: JAX would otherwise grab 75% of it per process.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        cfg = app.to_run_config(composed)
        # Joins a multi-process job before anything touches JAX; within, any process's
        # failure ends them all (jaxbp.distributed). Alone, nothing changes.
        with distributed.joined(cfg.distributed, lambda reason: _failed_together(job_dir, overrides, reason)):
            if not distributed.writes():
                _log_to_console_only()
            done = results.JobDir(job_dir)
            why = done.why_incomplete(plan.vouches(cfg))
            if sweeping and distributed.lead_decides(why is None):
                if done.written_by_this_process():  # the fused launcher trained it just now
                    log.info(job.stored_line(job_dir))
                else:
                    log.info(f"job {job_num} already complete, skipped → {job_dir}")
                return
            if sweeping and (reason := done.why_recomputed(why)):
                log.info(f"job {job_num} recomputed: {reason}")
            app.setup_compile_cache(cfg)
            log.info(job.train(plan.plan(cfg), job_dir, overrides, job_num))
    except ConfigError as err:  # the callback refuses bad values first; this is a backstop
        if not sweeping:
            app.refuse(err)
        if distributed.writes():
            results.JobDir(job_dir).write_failure(str(err), overrides, None)
        print(f"job {job_num} failed: {err}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - a sweep must outlive any one job
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        if distributed.writes():
            results.JobDir(job_dir).write_failure(reason, overrides, None)
        if not sweeping:  # one line, no traceback; failed.json keeps the reason
            print(f"jaxbp: the run failed: {reason}\nNo results were marked complete in {job_dir}.",
                  file=sys.stderr)
            sys.exit(app.EXIT_FAILED)
        print(f"job {job_num} failed: {reason}", file=sys.stderr)


# The vmap launcher may train this task's jobs fused (jaxbp.fuse); any other task's jobs it
# runs one by one, as Hydra's basic launcher does.
fuse.fusable(task)
main = hydra.main(version_base="1.3", config_path=str(paths.CONF_DIR), config_name="config")(task)


def _log_to_console_only() -> None:
    """Keeps a process other than 0 out of the job's log file: under submitit, every task
    ran Hydra's job set-up, log file included (on the command line it never opens one)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def _failed_together(job_dir: Path, overrides: list[str], reason: str) -> None:
    """How each process of a failed multi-process job ends: process 0 records the reason."""
    from jaxbp import results

    if distributed.is_lead():
        results.JobDir(job_dir).write_failure(reason, overrides, None)
    print(f"jaxbp: the run failed: {reason}\nNo results were marked complete in {job_dir}.",
          file=sys.stderr, flush=True)


def cli() -> None:
    """The entry point: sets XLA's CPU flags (before anything imports JAX) and registers the
    schema with Hydra, then runs. Ctrl-C ends with one line and status 130; a job it
    interrupted has no marker, so a rerun recomputes it."""
    cores.configure_xla()
    if why := app.unknown_key(sys.argv[1:]):
        app.refuse_message(why)
    app.register()
    try:
        # Hydra writes .hydra/ and its log before the task runs: only process 0 may.
        sys.argv += distributed.quiet_overrides(sys.argv[1:])
    except distributed.DistributedEnvError as err:
        app.refuse_message(str(err))
    # A handler, not KeyboardInterrupt: an interrupt raised inside a finaliser or a garbage
    # collector callback (JAX has one) is printed and ignored, and the run would go on.
    signal.signal(signal.SIGINT, _interrupted)
    main()


def _interrupted(signum, frame) -> None:
    distributed.announce_interrupt()
    print("\njaxbp: interrupted; finished jobs are kept, the interrupted one is recomputed "
          "on a rerun", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # Leave at once: a normal exit would wait for the XLA work already queued. Every file is
    # written atomically and the marker last, so what is on disk is whole or absent.
    os._exit(app.EXIT_INTERRUPTED)


if __name__ == "__main__":
    from jaxbp import pipes

    pipes.main(cli)
