"""``hydra/sweeper=jaxbp_optuna``: an Optuna study whose batches of trials train as one program.

Each batch of ``batch`` trials is asked at once (Optuna's ask-and-tell) and handed to the
launcher in one ``launch`` call, so the ``vmap`` launcher fuses every trial that differs only
in traced values (``lr``, momentum, penalties, ...) into one program. Trial ``n`` is job
``n``: its dir is ``<sweep.dir>/n`` and its row in sweep.csv has ``job == n``. The figure
told to Optuna is read back from the job's files (:mod:`.objective`).

The study lives in ``<sweep.dir>/study.db`` (SQLite). ``n_trials`` is its total: a rerun of
the same command first finishes the trials an interrupted run left RUNNING, with their own
numbers and parameters (the launcher skips the job dirs that are already complete), then
asks only the trials still missing. So every trial number occurs once, and a study of 8
rerun with ``n_trials=12`` ends with 12.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it
# is in sys.modules, where dataclasses look string annotations up.
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

# Modules, not names: Hydra's plugin scan executes a module of this package a second time
# when another one imported it first, so a class imported by name would be a stale copy.
from . import objective as objectives
from . import space as spaces
from . import study as studies

log = logging.getLogger(__name__)


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.jaxbp_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    n_trials: int = 64  # the study's total; a rerun with more trains only the missing ones
    batch: int = 16  # trials asked at once and launched together (fused by the vmap launcher)
    objective: str = "success_rate"  # a sweep.csv figure column
    direction: Optional[str] = None  # maximize | minimize; null: from the objective
    seed: int = 0  # the sampler's seed
    params: dict[str, str] = field(default_factory=dict)  # search space, as on the command line


ConfigStore.instance().store(group="hydra/sweeper", name="jaxbp_optuna", node=OptunaSweeperConf,
                             provider="jaxbp")


@dataclass(frozen=True)
class Plan:
    """The checked settings of one study."""

    space: "spaces.Space"
    n_trials: int
    batch: int
    objective: str
    direction: str
    seed: int


def check_arguments(config: DictConfig, config_name: str | None,
                    arguments: list[str] | None = None) -> Plan:
    """The study's plan, or a refusal (exit 2, one message) of a bad setting or search space
    before anything trains: every corner of the space is composed and checked like a job.
    The sweep callback may call this before it claims the sweep dir."""
    from jaxbp import app, sweep

    try:
        import optuna  # noqa: F401
    except ImportError:
        app.refuse_message("hydra/sweeper=jaxbp_optuna needs Optuna: pip install 'jaxbp[optuna]'")
    node = config.hydra.sweeper
    try:
        plan = _plan(node, list(config.hydra.overrides.task) if arguments is None else arguments)
    except spaces.SpaceError as err:
        app.refuse_message(f"hydra/sweeper=jaxbp_optuna: {err}")
    for overrides in plan.space.corners():
        composed = _compose(config_name, overrides)
        _check_numeric(plan.space, composed)
        sweep.check_job(composed, " ".join(overrides))
    return plan


def _plan(node: DictConfig, arguments: list[str]) -> Plan:
    from jaxbp import sweep

    if node.n_trials < 1:
        raise spaces.SpaceError(f"hydra.sweeper.n_trials={node.n_trials}: the study's total must be at least 1")
    if node.batch < 1:
        raise spaces.SpaceError(f"hydra.sweeper.batch={node.batch}: a batch holds at least 1 trial")
    valid = sweep.stat_columns()
    if node.objective not in valid:
        raise spaces.SpaceError(f"hydra.sweeper.objective={node.objective} is not a sweep.csv figure; "
                                f"choose one of {', '.join(valid)}")
    direction = node.direction or objectives.default_direction(node.objective)
    if direction not in objectives.DIRECTIONS:
        raise spaces.SpaceError(f"hydra.sweeper.direction={direction}: choose maximize or minimize")
    space = spaces.parse(OmegaConf.to_container(node.params), arguments)
    if not space.dimensions:
        raise spaces.SpaceError("nothing to search: give a key choice(...), range(...) or interval(...), "
                                "e.g. lr='tag(log,interval(0.001,10))'")
    return Plan(space, node.n_trials, node.batch, node.objective, direction, node.seed)


def _compose(config_name: str | None, overrides: list[str]) -> DictConfig:
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from jaxbp import app

    try:
        return compose(config_name=config_name or "config", overrides=overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        cause = f"\n{err.__cause__}" if err.__cause__ else ""
        app.refuse_message(f"the search space cannot be composed ({' '.join(overrides)}):\n{err}{cause}")


def _check_numeric(space: "spaces.Space", composed: DictConfig) -> None:
    """range/interval on a text key would compose (OmegaConf turns 0.5 into '0.5'): refuse."""
    from optuna.distributions import FloatDistribution

    from jaxbp import app

    for name, dim in space.dimensions.items():
        if dim.texts:
            continue
        value = OmegaConf.select(composed, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            app.refuse_message(f"{name}: range(...) and interval(...) sample numbers, but {name} takes "
                               f"{type(value).__name__} values; list its options with choice(...)")
        if isinstance(value, int) and isinstance(dim.distribution, FloatDistribution):
            app.refuse_message(f"{name} takes integers: use range(low,stop) (stop excluded), not interval(...)")


def _unclaim(sweep_dir: Path) -> None:
    """Undoes the sweep callback's claim of a fresh dir, so a refused space leaves no files
    and the corrected command can use the same dir."""
    try:
        names = set(os.listdir(sweep_dir))
    except OSError:
        return
    if names <= {".lock", "sweep.json"}:
        for name in names:
            (sweep_dir / name).unlink(missing_ok=True)
        try:
            sweep_dir.rmdir()
        except OSError:
            pass


class OptunaSweeper(Sweeper):
    """Its settings are read from ``hydra.sweeper`` by :func:`check_arguments`, the same
    reading the sweep callback's pre-check makes, so the constructor ignores them."""

    check_arguments = staticmethod(check_arguments)  # found by the sweep callback's pre-check

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None
        self.sweep_dir: Path | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        self.sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            plan = check_arguments(self.config, self.config.hydra.job.config_name, list(arguments))
        except SystemExit:
            _unclaim(self.sweep_dir)
            raise
        study = studies.open_study(self.sweep_dir, plan.direction, plan.objective, plan.seed)
        resumed = studies.left_running(study, set(plan.space.dimensions))
        returns = [self._launch(study, plan, chunk) for chunk in _chunks(resumed, plan.batch)]
        while (missing := plan.n_trials - studies.finished(study)) > 0:
            asked = [study.ask(plan.space.distributions) for _ in range(min(plan.batch, missing))]
            returns.append(self._launch(study, plan, [studies.Asked(t.number, t.params) for t in asked]))
        if not returns:
            log.info(f"the study already has {studies.finished(study)} finished trials "
                     f"(n_trials={plan.n_trials}): nothing to train")
        return returns

    def _launch(self, study, plan: Plan, trials: list) -> list:
        """Launches trials (one launch per run of consecutive numbers, normally the whole
        batch), records them as the sweep's jobs and tells Optuna each job's figure."""
        from jaxbp import results

        returns, told = [], []
        for run in studies.consecutive(trials):
            overrides = [plan.space.overrides(t.params) for t in run]
            run_returns = self.launcher.launch(overrides, initial_job_idx=run[0].number)
            results.SweepDir(self.sweep_dir).add_jobs(
                [{"num": t.number, "trial": t.number, "overrides": o} for t, o in zip(run, overrides)])
            for trial, ret in zip(run, run_returns):
                told.append(self._tell(study, plan, trial, ret))
            returns.extend(run_returns)
        best = studies.write_best(self.sweep_dir, study, plan)
        figures = ", ".join("failed" if v is None else f"{v:.4g}" for v in told)
        best_text = "" if best is None else (
            f"; best {best.value:.4g} (trial {best.number}: "
            f"{' '.join(plan.space.sampled(best.params))})")
        log.info(f"trials {studies.label([t.number for t in trials])}: {plan.objective} {figures}{best_text}")
        return returns

    def _tell(self, study, plan: Plan, trial, ret) -> float | None:
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        hydra_cfg = getattr(ret, "hydra_cfg", None)
        job_dir = Path(str(hydra_cfg.hydra.runtime.output_dir)) if hydra_cfg is not None \
            else self.sweep_dir / str(trial.number)
        if ret.status == JobStatus.FAILED:
            value, note = None, "its task raised"
        else:
            value, note = objectives.job_value(job_dir, plan.objective, plan.direction)
        if value is None:
            study.tell(trial.number, state=TrialState.FAIL)
            log.warning(f"trial {trial.number} failed: {note}")
        else:
            study.tell(trial.number, value)
            if note:
                log.info(f"trial {trial.number}: {note}; told the worst value {value:g}")
        return value


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
