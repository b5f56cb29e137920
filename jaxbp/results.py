"""Job directories: written atomically, marked complete last, read back by sweeps and reports.

A job dir holds ``seeds.csv``, ``curves.csv``, ``params.npz`` and ``summary.json``, each
written to a temporary name and renamed into place, and then the marker ``COMPLETE``. A dir
without the marker is partial (a killed job) and is recomputed on resume. A job that failed
leaves ``failed.json`` with a short reason instead.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxbp import config, stats
from jaxbp.runner import RunResult

MARKER = "COMPLETE"
FAILED = "failed.json"
_UMASK = os.umask(0)
os.umask(_UMASK)
JOB_FILES = ("seeds.csv", "curves.csv", "params.npz", "summary.json")
SEED_COLUMNS = ["seed", "final_loss", "train_acc", "test_loss", "test_acc",
                "epochs_to_target", "converged", "diverged"]


def atomic_write(path: Path, write) -> None:
    """Calls ``write(tmp_path)`` and then renames the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results should read like any file
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _save_npz(path, **arrays) -> None:
    with open(path, "wb") as handle:  # a handle, so numpy does not append ".npz" to tmp names
        np.savez_compressed(handle, **arrays)


def seeds_frame(result: RunResult, members=slice(None)) -> pd.DataFrame:
    """One row per member: the ``seeds.csv`` columns; never-reached targets are empty."""
    m = {k: v[members] for k, v in result.metrics.items()}
    ett = pd.Series(m["epochs_to_target"]).astype("Int64")
    return pd.DataFrame({
        "seed": result.seeds[members].astype(np.int64),
        "final_loss": m["final_loss"].astype(float),
        "train_acc": m["train_acc"].astype(float),
        "test_loss": m["test_loss"].astype(float),
        "test_acc": m["test_acc"].astype(float),
        "epochs_to_target": ett.where(ett >= 0, pd.NA),
        "converged": m["converged"].astype(bool),
        "diverged": m["diverged"].astype(bool),
    })[SEED_COLUMNS]


def curves_frame(result: RunResult, members: np.ndarray | None = None) -> pd.DataFrame:
    """Long format ``seed, epoch, loss`` for the curve members among ``members``."""
    rows = np.arange(len(result.curve_members))
    if members is not None:
        rows = rows[np.isin(result.curve_members, members)]
    seeds = result.seeds[result.curve_members[rows]]
    epochs = result.curve_epochs
    return pd.DataFrame({
        "seed": np.repeat(seeds, len(epochs)).astype(np.int64),
        "epoch": np.tile(epochs, len(rows)).astype(np.int64),
        "loss": result.curves[rows].ravel().astype(float),
    })


def write_job(job_dir: Path, result: RunResult, summary: dict[str, Any], members=None) -> dict:
    """Writes one job's files for ``members`` (default all), then the marker; returns the
    summary with the aggregate figures added."""
    job_dir = Path(job_dir)
    members = np.arange(len(result.seeds)) if members is None else np.asarray(members)
    (job_dir / MARKER).unlink(missing_ok=True)
    (job_dir / FAILED).unlink(missing_ok=True)
    seeds = seeds_frame(result, members)
    write_csv(job_dir / "seeds.csv", seeds)
    write_csv(job_dir / "curves.csv", curves_frame(result, members))
    arrays = {f"{name}{layer}": leaf[members] for layer, p in enumerate(result.params)
              for name, leaf in p.items()}
    atomic_write(job_dir / "params.npz",
                 lambda tmp: _save_npz(tmp, seed=result.seeds[members], **arrays))
    summary = {**summary, "status": "ok", **stats.summarize_seeds(seeds)}
    write_json(job_dir / "summary.json", summary)
    write_json(job_dir / MARKER, {"config": config.result_values(summary.get("config") or {})})
    return summary


def write_failure(job_dir: Path, reason: str, overrides: list[str], values: dict | None) -> None:
    """Records a failed job; its partial files stay, but it has no marker."""
    (Path(job_dir) / MARKER).unlink(missing_ok=True)
    write_json(Path(job_dir) / FAILED,
               {"status": "failed", "reason": reason, "overrides": overrides, "config": values})


def is_complete(job_dir: Path, values: dict | None = None) -> bool:
    """True when the marker and every job file exist (and, if ``values`` is given, the
    marker was written for a config with the same results: a reused dir with other settings
    is recomputed, one that differs only in progress, cache or devices is not)."""
    marker = Path(job_dir) / MARKER
    if not marker.is_file() or not all((Path(job_dir) / name).is_file() for name in JOB_FILES):
        return False
    if values is None:
        return True
    try:
        return json.loads(marker.read_text()).get("config") == json.loads(
            json.dumps(config.result_values(values), default=_json_default))
    except (OSError, ValueError):
        return False


def read_job(job_dir: Path) -> dict[str, Any]:
    """The job's status (``ok``, ``failed`` or ``missing``), summary and seeds frame."""
    job_dir = Path(job_dir)
    if is_complete(job_dir):
        return {"status": "ok", "summary": json.loads((job_dir / "summary.json").read_text()),
                "seeds": pd.read_csv(job_dir / "seeds.csv", dtype={"epochs_to_target": "Int64"})}
    if (job_dir / FAILED).is_file():
        failure = json.loads((job_dir / FAILED).read_text())
        return {"status": "failed", "summary": failure, "seeds": None}
    return {"status": "missing", "summary": {"reason": "no results (interrupted or not run)"},
            "seeds": None}
