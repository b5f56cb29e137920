"""Job and sweep directories: the only reader and writer of jaxbp's files (no JAX here).

A job dir holds ``seeds.csv``, ``curves.csv``, ``params.npz``, ``data.npz`` and
``summary.json``, each written to a temporary name, fsynced and renamed into place, and
then the marker ``COMPLETE``, which records what it vouches for: the result-determining
config, each file's size and SHA-256, and the data file's hash for ``data=file``. A dir
whose marker is missing or does not match its files is partial, and is recomputed on
resume. A failed job leaves ``failed.json`` with a short reason instead.

A sweep dir holds the job dirs, ``sweep.json`` (what the sweep is, so a different sweep is
refused rather than merged), ``jobs.json`` (exactly the jobs this sweep launched),
``sweep.csv`` and ``sweep_seeds.csv``, and a lock file while a sweep runs in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxbp.fileio import atomic_write, file_digest, json_safe, save_npz, write_csv, write_json, write_text  # noqa: F401 (the write primitives, re-exported for readers of results)

MARKER = "COMPLETE"
INITIAL = "init_"  # params.npz: init_W0, init_b0, ... are the params each seed started from
FAILED = "failed.json"
DIAGNOSIS = "diagnosis.csv"  # jaxbp.diagnose's table; not vouched for by the marker
JOB_FILES = ("seeds.csv", "curves.csv", "params.npz", "data.npz", "summary.json")
SEED_COLUMNS = ["seed", "final_loss", "train_acc", "test_loss", "test_acc",
                "epochs_to_target", "converged", "diverged", "stopped_epoch", "attempts"]
PROCESS_STARTED = time.time()


class ResultsError(Exception):
    """A job or sweep dir that cannot be used as asked; the message is one line."""


# ---------------------------------------------------------------- frames from a run's arrays
def seeds_frame(result, members=slice(None)) -> pd.DataFrame:
    """One row per member: the ``seeds.csv`` columns; never-reached targets are empty.

    ``result`` is a :class:`jaxbp.runner.RunResult` (any object with ``seeds`` and
    ``metrics`` arrays)."""
    m = {k: np.asarray(v)[members] for k, v in result.metrics.items()}
    ett = pd.Series(m["epochs_to_target"]).astype("Int64")
    stopped = pd.Series(m.get("stopped_epoch", np.full(len(ett), -1))).astype("Int64")
    return pd.DataFrame({
        "seed": np.asarray(result.seeds)[members].astype(np.int64),
        "final_loss": m["final_loss"].astype(float),
        "train_acc": m["train_acc"].astype(float),
        "test_loss": m["test_loss"].astype(float),
        "test_acc": m["test_acc"].astype(float),
        "epochs_to_target": ett.where(ett >= 0, pd.NA),
        "converged": m["converged"].astype(bool),
        "diverged": m["diverged"].astype(bool),
        "stopped_epoch": stopped.where(stopped >= 0, pd.NA),
        "attempts": np.asarray(m.get("attempts", np.ones(len(ett)))).astype(np.int64),  # 1 + restarts
    })[SEED_COLUMNS]


def curves_frame(result, members: np.ndarray | None = None) -> pd.DataFrame:
    """Long format ``seed, epoch, loss`` for the curve members among ``members``. A seed that
    early stopping froze ends where it stopped: its later points never happened."""
    rows = np.arange(len(result.curve_members))
    if members is not None:
        rows = rows[np.isin(result.curve_members, members)]
    member_idx = result.curve_members[rows]
    epochs = np.asarray(result.curve_epochs)
    stopped = np.asarray(result.metrics.get("stopped_epoch", np.full(len(result.seeds), -1)))[member_idx]
    keep = (stopped[:, None] < 0) | (epochs[None, :] <= stopped[:, None])
    seeds = np.repeat(np.asarray(result.seeds)[member_idx], len(epochs))
    return pd.DataFrame({
        "seed": seeds.astype(np.int64),
        "epoch": np.tile(epochs, len(rows)).astype(np.int64),
        "loss": np.asarray(result.curves)[rows].ravel().astype(float),
    })[keep.ravel()].reset_index(drop=True)


# ---------------------------------------------------------------- one job dir
class JobDir:
    """One job's directory: writes its files, says whether it is complete, reads them back."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r})"

    # writing
    def write(self, seeds: pd.DataFrame, curves: pd.DataFrame, params: dict[str, np.ndarray],
              data: dict[str, np.ndarray], summary: dict[str, Any], vouches: dict[str, Any]) -> dict[str, Any]:
        """Writes a finished job's files, then the marker. Nothing is computed here: the
        caller (:func:`jaxbp.job.write`) brings the tables, arrays and summary.

        Args:
            seeds: the ``seeds.csv`` table (``SEED_COLUMNS``).
            curves: the ``curves.csv`` table (``seed, epoch, loss``).
            params: ``params.npz``'s arrays: ``seed`` and, unless ``save_params=false``,
                ``W0, b0, ...`` with a leading seed axis.
            data: ``data.npz``'s arrays, the data exactly as the job saw it.
            summary: ``summary.json`` less ``status`` and ``written``, which are added.
            vouches: what the marker records besides the files' digests: the
                result-determining ``config`` and, for a data file, its ``data_sha256``.

        Returns:
            the summary as written.
        """
        self.clean_orphans()
        (self.path / MARKER).unlink(missing_ok=True)
        (self.path / FAILED).unlink(missing_ok=True)
        (self.path / DIAGNOSIS).unlink(missing_ok=True)  # it described the old params
        write_csv(self.path / "seeds.csv", seeds)
        write_csv(self.path / "curves.csv", curves)
        atomic_write(self.path / "params.npz", lambda tmp: save_npz(tmp, **params))
        atomic_write(self.path / "data.npz", lambda tmp: save_npz(tmp, **data))
        summary = {**summary, "status": "ok", "written": {"pid": os.getpid(), "time": time.time()}}
        write_json(self.path / "summary.json", summary)
        files = {name: file_digest(self.path / name) for name in JOB_FILES}
        write_json(self.path / MARKER, {**vouches, "files": files})
        return summary

    def write_failure(self, reason: str, overrides: list[str], values: dict | None) -> None:
        """Records a failed job; its partial files stay, but it has no marker."""
        (self.path / MARKER).unlink(missing_ok=True)
        write_json(self.path / FAILED,
                   {"status": "failed", "reason": reason, "overrides": overrides, "config": values})

    def clean_orphans(self) -> None:
        """Removes ``.*.tmp`` files that a killed writer left behind."""
        if self.path.is_dir():
            for orphan in self.path.glob(".*.tmp"):
                orphan.unlink(missing_ok=True)

    # checking
    def why_incomplete(self, vouches: dict[str, Any] | None = None) -> str | None:
        """``None`` when the job is complete (and, given ``vouches``, was made by the same
        result-determining config and data); otherwise the reason, in a few words."""
        try:
            marker = json.loads((self.path / MARKER).read_text())
        except FileNotFoundError:
            return "no marker"
        except (OSError, ValueError):
            return "unreadable marker"
        if not isinstance(marker, dict):
            return "unreadable marker"
        for name in JOB_FILES:
            path = self.path / name
            if not path.is_file():
                return f"{name} missing"
            want = (marker.get("files") or {}).get(name)
            if not want or want.get("bytes") != path.stat().st_size or file_digest(path) != want:
                return f"{name} changed since it was written"
        if vouches is not None:
            for key, value in vouches.items():
                if marker.get(key) != json.loads(json.dumps(json_safe(value))):
                    return {"config": "its settings changed", "data_sha256": "its data file changed"}.get(
                        key, f"{key} changed")
        return None

    def is_complete(self, vouches: dict[str, Any] | None = None) -> bool:
        return self.why_incomplete(vouches) is None

    def why_recomputed(self, why: str | None) -> str | None:
        """Why a job dir that holds results of an earlier run is trained again, given what
        :meth:`why_incomplete` found (passed in: it hashes every file); ``None`` when it is
        complete or holds nothing yet (a first run has nothing to explain)."""
        if why is None or not any((self.path / name).exists() for name in (*JOB_FILES, MARKER)):
            return None
        return "it was interrupted before its marker was written" if why == "no marker" else why

    def written_by_this_process(self) -> bool:
        """Whether this process wrote the job (the fused launcher does, before the task)."""
        try:
            written = self.summary().get("written") or {}
        except ResultsError:
            return False
        return written.get("pid") == os.getpid() and written.get("time", 0) >= PROCESS_STARTED

    def status(self) -> str:
        """``ok``, ``failed`` or ``missing``."""
        if self.is_complete():
            return "ok"
        return "failed" if (self.path / FAILED).is_file() else "missing"

    # reading
    def _read_json(self, name: str) -> dict:
        try:
            value = json.loads((self.path / name).read_text())
        except FileNotFoundError:
            raise ResultsError(f"{self.path} has no {name}") from None
        except (OSError, ValueError) as err:
            raise ResultsError(f"{self.path / name} cannot be read ({type(err).__name__})") from None
        if not isinstance(value, dict):
            raise ResultsError(f"{self.path / name} is not a JSON object")
        return value

    def _read_csv(self, name: str, **kwargs) -> pd.DataFrame:
        try:
            return pd.read_csv(self.path / name, **kwargs)
        except FileNotFoundError:
            raise ResultsError(f"{self.path} has no {name}") from None
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise ResultsError(f"{self.path / name} cannot be read ({type(err).__name__})") from None

    def summary(self) -> dict[str, Any]:
        return self._read_json("summary.json")

    def failure(self) -> dict[str, Any]:
        return self._read_json(FAILED)

    def seeds(self) -> pd.DataFrame:
        frame = self._read_csv("seeds.csv", dtype={"epochs_to_target": "Int64", "stopped_epoch": "Int64"})
        missing = [c for c in SEED_COLUMNS if c not in frame.columns and c not in ("stopped_epoch", "attempts")]
        if missing:
            raise ResultsError(f"{self.path / 'seeds.csv'} lacks columns {missing}")
        return frame

    def curves(self) -> pd.DataFrame:
        return self._read_csv("curves.csv")

    def _npz(self, name: str) -> dict[str, np.ndarray]:
        try:
            with np.load(self.path / name, allow_pickle=False) as arrays:
                return {k: arrays[k] for k in arrays.files}
        except FileNotFoundError:
            raise ResultsError(f"{self.path} has no {name}") from None
        except (OSError, ValueError) as err:
            raise ResultsError(f"{self.path / name} cannot be read ({type(err).__name__})") from None

    def params(self, seed: int | None = None, initial: bool = False) -> list[dict[str, np.ndarray]]:
        """Every seed's params (a leading seed axis), or one seed's: the pytree
        ``model.forward`` takes. ``initial``: the params each seed started from instead of
        its final ones (its first attempt's, under restarts)."""
        arrays = self._npz("params.npz")
        prefix = INITIAL if initial else ""
        layers = sum(1 for k in arrays if k.startswith(prefix + "W"))
        if not layers:
            if initial and any(k.startswith("W") for k in arrays):
                raise ResultsError(f"{self.path} was written before jaxbp kept initial params")
            raise ResultsError(f"{self.path} kept no params (it ran with save_params=false)")
        # Arrays are named <prefix><leaf><layer>: W0, b0, W1, b1, S1 (shortcuts), init_W0, ...
        ours = {k[len(prefix):]: v for k, v in arrays.items()
                if k != "seed" and k.startswith(prefix) and (initial or not k.startswith(INITIAL))}
        tree = [{k[0]: v for k, v in ours.items() if k[1:] == str(l)} for l in range(layers)]
        if seed is None:
            return tree
        rows = np.flatnonzero(arrays["seed"] == seed)
        if not len(rows):
            raise ResultsError(f"seed {seed} is not in {self.path} (seeds {arrays['seed'].min()}–"
                               f"{arrays['seed'].max()})")
        return [{k: v[rows[0]] for k, v in layer.items()} for layer in tree]

    def write_diagnosis(self, frame: pd.DataFrame) -> Path:
        """Writes :mod:`jaxbp.diagnose`'s table as ``diagnosis.csv``; returns its path."""
        write_csv(self.path / DIAGNOSIS, frame)
        return self.path / DIAGNOSIS

    def diagnosis(self) -> pd.DataFrame:
        """``diagnosis.csv``, as :mod:`jaxbp.diagnose` wrote it."""
        return self._read_csv(DIAGNOSIS, dtype={"verdict": str, "continued_solved": "boolean"})

    def data_arrays(self) -> dict[str, np.ndarray]:
        """The train and test arrays the job trained on (``data.npz``)."""
        return self._npz("data.npz")


# ---------------------------------------------------------------- a sweep dir
class SweepDir:
    """A sweep's directory: its identity, its job list, its lock and its two CSVs."""

    def __init__(self, path):
        self.path = Path(path)

    def claim(self, identity: dict[str, Any]) -> None:
        """Records what this sweep is; refuses a dir that holds a different sweep.

        Raises:
            ResultsError: the dir holds results of another sweep (it is never merged).
        """
        path = self.path / "sweep.json"
        if path.is_file():
            try:
                before = json.loads(path.read_text())
            except (OSError, ValueError):
                before = None
            if before != json.loads(json.dumps(json_safe(identity))):
                raise ResultsError(
                    f"{self.path} holds a different sweep ({_difference(before, identity)}); "
                    "choose a new hydra.sweep.dir, or delete that dir to start over")
        elif self.path.is_dir() and any(self.path.glob("*/.hydra/overrides.yaml")):
            raise ResultsError(f"{self.path} already holds job dirs of an earlier sweep; "
                               "choose a new hydra.sweep.dir, or delete that dir to start over")
        write_json(path, identity)

    @contextlib.contextmanager
    def lock(self):
        """Holds ``.lock`` for the sweep's duration; a second sweep into the same dir is
        refused at once. The OS drops the lock when the process ends, even when killed."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ResultsError(f"another sweep is running in {self.path}; wait for it to end, "
                               "or choose another hydra.sweep.dir") from None
        try:
            yield self
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def add_jobs(self, jobs: list[dict[str, Any]]) -> None:
        """Appends launched jobs (``num``, ``overrides``, ``dir`` relative to the sweep dir),
        replacing any earlier entry with the same number."""
        known = {j["num"]: j for j in self.jobs()}
        known.update({j["num"]: j for j in jobs})
        write_json(self.path / "jobs.json", {"jobs": [known[k] for k in sorted(known)]})

    def jobs(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads((self.path / "jobs.json").read_text())["jobs"])
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def job_dirs(self) -> dict[int, list[Path]]:
        """Job number -> the dirs Hydra made for it here (read from each job's
        ``.hydra/hydra.yaml``; two numbers sharing a dir is a broken sweep, reported)."""
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: a sweep has many jobs
        found: dict[int, list[Path]] = {}
        for hydra_yaml in self.path.glob("**/.hydra/hydra.yaml"):
            with open(hydra_yaml) as handle:
                num = ((yaml.load(handle, Loader=loader) or {}).get("hydra") or {}).get("job", {}).get("num")
            if num is not None:
                found.setdefault(int(num), []).append(hydra_yaml.parent.parent)
        return found

    def found_jobs(self, by_num: dict[int, list[Path]] | None = None) -> list[dict[str, Any]]:
        """``[{"num", "overrides"}]`` of every job dir here, for a sweep that recorded none
        (``by_num``: :meth:`job_dirs`, when the caller read them already)."""
        from omegaconf import OmegaConf

        by_num = self.job_dirs() if by_num is None else by_num
        return [{"num": n, "overrides": list(OmegaConf.load(dirs[0] / ".hydra" / "overrides.yaml"))}
                for n, dirs in sorted(by_num.items())]

    def write_tables(self, sweep: pd.DataFrame, seeds: pd.DataFrame) -> None:
        write_csv(self.path / "sweep.csv", sweep)
        write_csv(self.path / "sweep_seeds.csv", seeds)

    def discard_tables(self) -> None:
        """Removes both CSVs, so a failed aggregation never leaves an old one as if current."""
        for name in ("sweep.csv", "sweep_seeds.csv"):
            (self.path / name).unlink(missing_ok=True)

    def table(self) -> pd.DataFrame:
        try:
            frame = pd.read_csv(self.path / "sweep.csv", dtype={"job_dir": str})
        except FileNotFoundError:
            raise ResultsError(f"{self.path} has no sweep.csv") from None
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise ResultsError(f"{self.path / 'sweep.csv'} cannot be read ({type(err).__name__})") from None
        for column in ("job", "job_dir", "status"):
            if column not in frame.columns:
                raise ResultsError(f"{self.path / 'sweep.csv'} has no {column!r} column")
        return frame

    def seeds(self) -> pd.DataFrame:
        try:
            return pd.read_csv(self.path / "sweep_seeds.csv", dtype={"epochs_to_target": "Int64"})
        except FileNotFoundError:
            raise ResultsError(f"{self.path} has no sweep_seeds.csv") from None
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise ResultsError(f"{self.path / 'sweep_seeds.csv'} cannot be read ({type(err).__name__})") from None


def _difference(before, now) -> str:
    """What differs between two sweep identities, key by key (one level into the sweeper's
    settings), each value shortened whole rather than the sentence cut mid-value."""
    if not isinstance(before, dict):
        return "its sweep.json is unreadable"
    now = json.loads(json.dumps(json_safe(now)))
    parts = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            parts += [f"{key}.{k}: {_short(old.get(k))} before, {_short(new.get(k))} now"
                      for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            parts.append(f"{key}: {_short(old)} before, {_short(new)} now")
    return "; ".join(parts)


def _short(value, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- the library's door
class Run:
    """A finished job, read back: see :func:`load_run`."""

    def __init__(self, job: JobDir):
        from jaxbp import config, data

        self.dir = job
        self.summary = job.summary()
        try:
            self.cfg = config.from_dict(self.summary["config"])
        except (config.ConfigError, KeyError, TypeError) as err:
            raise ResultsError(f"{job.path} was written with a config this jaxbp cannot read ({err})") from None
        self.seeds = job.seeds()
        arrays = job.data_arrays()
        if not {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
            raise ResultsError(f"{job.path / 'data.npz'} does not hold the job's data arrays")
        has_classes = bool(self.summary.get("data", {}).get("classes", True))
        self.dataset = data.Dataset(self.cfg.data.name, arrays["x_train"], arrays["y_train"],
                                    arrays["x_test"], arrays["y_test"], has_classes)
        self.spec = self.cfg.spec(self.dataset.x_train.shape[1], self.dataset.y_train.shape[1])

    def params(self, seed: int) -> list[dict[str, np.ndarray]]:
        """Seed ``seed``'s final params, the pytree ``model.forward(run.spec, ...)`` takes."""
        return self.dir.params(seed)

    def initial_params(self, seed: int) -> list[dict[str, np.ndarray]]:
        """The params seed ``seed`` started from (its first attempt's), shaped like
        :meth:`params`."""
        return self.dir.params(seed, initial=True)

    def curves(self) -> pd.DataFrame:
        return self.dir.curves()

    def __repr__(self) -> str:
        return f"Run({str(self.dir.path)!r}: {len(self.seeds)} seeds, {self.cfg.data.name} {self.spec.sizes})"


def load_run(job_dir) -> Run:
    """A complete job dir as a :class:`Run` with ``cfg`` (the validated ``RunConfig``),
    ``spec`` (``model.Spec``), ``seeds`` (the seeds frame), ``params(seed)`` and ``dataset``
    (the data as the job saw it: same split and scaling).

    Raises:
        ResultsError: ``job_dir`` is not a complete jaxbp job dir.
    """
    job = JobDir(job_dir)
    if not job.path.is_dir():
        raise ResultsError(f"{job.path} is not a directory")
    why = job.why_incomplete()
    if why is not None:
        raise ResultsError(f"{job.path} is not a complete jaxbp job ({why})")
    return Run(job)


class Sweep:
    """A finished sweep, read back: see :func:`load_sweep`."""

    def __init__(self, sweep: SweepDir):
        self.dir = sweep
        self.table = sweep.table()
        self.seeds = sweep.seeds()

    def runs(self) -> dict[int, Run]:
        """Each ok job's :class:`Run`, by job number."""
        ok = self.table[self.table["status"] == "ok"]
        return {int(row["job"]): load_run(self.dir.path / str(row["job_dir"])) for _, row in ok.iterrows()}


def load_sweep(sweep_dir) -> Sweep:
    """A sweep dir's ``sweep.csv`` (``.table``), ``sweep_seeds.csv`` (``.seeds``) and a
    :class:`Run` for each job (``.runs()``)."""
    return Sweep(SweepDir(sweep_dir))
