"""What a trial's figure is: one sweep.csv column of its job, read from the job's own files.

The figure is always the job's across-seed aggregate (``summary.json``), never one seed's.
A job with no figure to give still tells Optuna something:

- failed or missing job dir (``failed.json``, no ``COMPLETE``) -> the trial FAILs;
- every seed diverged (``diverged_rate == 1``), or the figure is null/NaN (a median that
  was never reached, an accuracy with no test split) -> the objective's worst value:
  a fraction (``*_rate``, ``success_*``, ``solved_by_end``, ``*acc*``) gets 0 when
  maximised and 1 when minimised; an epochs figure (``*epochs*``) minimised gets the job's
  whole budget, ``epochs``; anything else gets -inf (maximised) or +inf (minimised).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

DIRECTIONS = ("maximize", "minimize")


def is_fraction(objective: str) -> bool:
    """Whether the column is a fraction of seeds (or of examples) in [0, 1]."""
    return (objective.endswith("_rate") or objective.startswith(("success_", "solved_by_end"))
            or "acc" in objective)


def default_direction(objective: str) -> str:
    """Maximise success and accuracy figures, minimise everything else (losses, epochs,
    divergence, time)."""
    higher_is_better = objective.startswith(("success_", "solved_by_end")) or "acc" in objective
    return "maximize" if higher_is_better else "minimize"


def worst_value(objective: str, direction: str, summary: dict[str, Any]) -> float:
    """The value told for a job that trained but has no figure (see the module docstring)."""
    maximize = direction == "maximize"
    if is_fraction(objective):
        return 0.0 if maximize else 1.0
    epochs = (summary.get("config") or {}).get("epochs")
    if "epochs" in objective and not maximize and epochs is not None:
        return float(epochs)
    return -math.inf if maximize else math.inf


def job_value(job_dir: Path, objective: str, direction: str) -> tuple[float | None, str]:
    """``(value, note)`` of one job: ``value`` is None when the trial failed, and ``note``
    says why, or why the worst value stands in for a missing figure."""
    from jaxbp import results

    job = results.JobDir(job_dir)
    status = job.status()
    try:
        if status == "failed":
            return None, job.failure().get("reason", "failed")
        if status != "ok":
            return None, job.why_incomplete() or "no results"
        summary = job.summary()
    except results.ResultsError as err:
        return None, str(err)
    value = summary.get(objective)
    if summary.get("diverged_rate") == 1.0:
        return worst_value(objective, direction, summary), "every seed diverged"
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return worst_value(objective, direction, summary), f"{objective} has no value"
    return float(value), ""
