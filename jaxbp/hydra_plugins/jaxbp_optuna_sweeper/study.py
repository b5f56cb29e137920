"""The study's files in the sweep dir: ``study.db`` (Optuna's SQLite storage) and
``best.json``; which trials are finished, and which an interrupted run left running."""

import logging
import warnings
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger(__name__)
STUDY_FILE, STUDY_NAME, BEST_FILE = "study.db", "jaxbp", "best.json"


class Asked(NamedTuple):
    """A trial to launch: its number (its job's number) and its sampled parameters."""

    number: int
    params: dict[str, Any]


def storage_url(sweep_dir) -> str:
    return f"sqlite:///{(Path(sweep_dir) / STUDY_FILE).resolve()}"


def open_study(sweep_dir: Path, direction: str, objective: str, seed: int):
    """The sweep dir's study, created on first use. Its sampler's seed moves on with the
    study's length, so a resumed study does not redraw the trials it already has."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    from jaxbp import app

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper logs each batch itself
    study = optuna.create_study(storage=storage_url(sweep_dir), study_name=STUDY_NAME,
                                direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        app.refuse_message(f"{Path(sweep_dir) / STUDY_FILE} holds a study that was to "
                           f"{study.direction.name.lower()}; choose a new hydra.sweep.dir")
    if "objective" not in study.user_attrs:  # for readers of study.db alone (plot_study)
        study.set_user_attr("objective", objective)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # constant_liar: trials asked together in a batch do not all land on one point.
        study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)),
                                                   constant_liar=True)
    return study


def finished(study) -> int:
    """How many trials count towards ``n_trials``: COMPLETE and FAIL ones."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL,
                                                        TrialState.PRUNED)))


def left_running(study, names: set[str]) -> list[Asked]:
    """Trials an interrupted run left RUNNING, to launch again with their own numbers and
    parameters (this run holds the sweep dir's lock, so no other process runs them). One
    killed while it was being asked lacks parameters: it is told FAIL."""
    from optuna.trial import TrialState

    trials = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if names <= set(frozen.params):
            trials.append(Asked(frozen.number, frozen.params))
        else:
            study.tell(frozen.number, state=TrialState.FAIL)
            log.warning(f"trial {frozen.number} was interrupted while it was asked: recorded as failed")
    if trials:
        log.info(f"resuming trials {label([t.number for t in trials])}, left running by an interrupted "
                 "run (complete job dirs are not retrained)")
    return trials


def write_best(sweep_dir: Path, study, plan) -> Any:
    """Writes ``best.json``: the best trial (its number is its job's), its parameters,
    overrides and value. Returns the best trial, or None while no trial is complete."""
    from optuna.trial import TrialState

    from jaxbp import results

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    results.write_json(Path(sweep_dir) / BEST_FILE, {
        "objective": plan.objective, "direction": plan.direction, "value": best.value,
        "trial": best.number, "params": best.params,
        "overrides": plan.space.overrides(best.params), "finished_trials": finished(study)})
    return best


def consecutive(trials: list[Asked]) -> list[list[Asked]]:
    """Runs of consecutive trial numbers: a launch numbers its jobs from one start."""
    runs: list[list[Asked]] = []
    for trial in sorted(trials, key=lambda t: t.number):
        if runs and trial.number == runs[-1][-1].number + 1:
            runs[-1].append(trial)
        else:
            runs.append([trial])
    return runs


def label(numbers: list[int]) -> str:
    """Trial numbers as the launcher lists job numbers (:func:`jaxbp.fuse.numbers`)."""
    from jaxbp import fuse

    return fuse.numbers(numbers)
