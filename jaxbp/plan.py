"""Resolve a job once: from a frozen ``RunConfig`` to everything the job needs.

:func:`plan` loads the job's data, derives its network, runs every check that needs the
data (batch size, outputs, the Pallas kernel's scope, memory per member, results in memory
and files on disk) and returns a :class:`Plan`. The sweep callback, the launcher's
grouping, the runner, the job writer and the atlas all take that object, so a sweep job is
resolved once, not once per stage.

Datasets are cached on the frozen data option (and, for ``data=file``, on the file's
identity: device, inode, size and modification time), so the jobs of one sweep that read the
same file read and hash it once; a file changed on disk is a new key and is read again.
Imports no JAX: a refused job never starts it.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxbp import config, memory
from jaxbp import data as datasets
from jaxbp import spec as specs
from jaxbp.checks import ConfigError, require

MEMBER_BYTES_LIMIT = 4 * 2**30  # one network's training state; more is a typo, not an experiment
CACHED_DATASETS = 8  # a sweep over data options holds at most this many datasets at once
CACHED_HASHES = 64


@dataclass(frozen=True, eq=False)
class Plan:
    """A job resolved once: its config, its data (read-only arrays), its network, and the
    content hash of a user's data file (``None`` for a built-in dataset)."""

    cfg: config.RunConfig
    dataset: datasets.Dataset
    spec: specs.Spec
    data_sha256: str | None = None

    def vouches(self) -> dict[str, Any]:
        """What a complete job's marker must match (see :func:`vouches`)."""
        return _promise(self.cfg, self.data_sha256)


def plan(cfg: config.RunConfig, out_dir: Path | None = None) -> Plan:
    """Resolves ``cfg``: loads its data (cached), checks it against the data and, given the
    job's output dir, checks that its results fit in memory and its files on disk.

    Raises:
        ConfigError: the first check that fails, naming its key and what is allowed.
    """
    dataset = load_dataset(cfg)
    spec = check_fits(cfg, dataset)
    check_resources(cfg, spec, out_dir)
    return Plan(cfg, dataset, spec, data_hash(cfg.data))


def vouches(cfg: config.RunConfig) -> dict[str, Any]:
    """What a complete job's marker must match: the result-determining config, and the
    content of a user's data file (a changed file means a changed job)."""
    return _promise(cfg, data_hash(cfg.data))


def _promise(cfg: config.RunConfig, data_sha256: str | None) -> dict[str, Any]:
    promise: dict[str, Any] = {"config": config.result_values(cfg)}
    if data_sha256 is not None:
        promise["data_sha256"] = data_sha256
    return promise


# --- the data, read once --------------------------------------------------------------

class Bounded(collections.OrderedDict):
    """A least-recently-used dict of at most ``size`` entries (the process's caches: a
    long-lived process, a notebook or a long sweep, never grows without end)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or_make(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


_DATASETS = Bounded(CACHED_DATASETS)
_HASHES = Bounded(CACHED_HASHES)


def _file_identity(option: datasets.DataOption) -> tuple | None:
    """Which version of a user's file ``option`` names: changes when the file does."""
    path = getattr(option, "path", None)
    if option.name != "file" or not path:
        return None
    try:
        info = os.stat(Path(path).expanduser())
    except OSError:
        return None  # the loader refuses it with the reason
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def load_dataset(cfg: config.RunConfig) -> datasets.Dataset:
    """``cfg``'s dataset, loaded once per process for equal data options (and file
    versions). Its arrays are read-only: every job that shares them sees the same data."""
    key = (cfg.data, cfg.loss, _file_identity(cfg.data))  # options are frozen and hashable
    return _DATASETS.get_or_make(key, lambda: _frozen(cfg.data.load(cfg.loss)))


def _frozen(dataset: datasets.Dataset) -> datasets.Dataset:
    for value in dataset:
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return dataset


def data_hash(option: datasets.DataOption) -> str | None:
    """The SHA-256 of a ``data=file``'s bytes, once per file version; ``None`` otherwise."""
    identity = _file_identity(option)
    if identity is None:
        return None
    from jaxbp import datafile

    return _HASHES.get_or_make(identity, lambda: datafile.content_hash(option.path))


# --- the checks that need the data ------------------------------------------------------

def check_fits(cfg: config.RunConfig, dataset: datasets.Dataset) -> specs.Spec:
    """The checks that need the data: batch size, output width, the Pallas kernel's scope
    and memory per member. Returns the job's network."""
    n_train, n_in = dataset.x_train.shape
    n_out = dataset.y_train.shape[1]
    if cfg.batch_size is not None:
        require(cfg.batch_size <= n_train, "batch_size", cfg.batch_size,
                f"null (full batch) or at most the {n_train} training rows")
        require(cfg.shuffle or n_train % cfg.batch_size == 0, "batch_size", cfg.batch_size,
                f"with shuffle=false, a divisor of the {n_train} training rows (the rows left over "
                "would never be seen)")
    require(not (cfg.output == "softmax" and n_out < 2), "output", cfg.output,
            "softmax needs two or more outputs; these targets have one column "
            "(for two classes use output=sigmoid, or loss=ce, which one-hot encodes them)")
    _check_target_range(cfg, dataset.y_train)
    try:
        spec = cfg.spec(n_in, n_out)
    except ValueError as err:
        raise ConfigError("hidden", cfg.hidden, str(err)) from None
    if cfg.kernel == "pallas":
        from jaxbp import pallas_train

        why = pallas_train.unsupported(cfg, spec, n_train, n_in)
        require(not why, "kernel", cfg.kernel, f"kernel=xla or auto: the Pallas kernel cannot train {why}")
    per_member = config.member_bytes(cfg, spec, n_train)
    require(per_member <= MEMBER_BYTES_LIMIT, "hidden", cfg.hidden,
            f"a network whose training state fits in {MEMBER_BYTES_LIMIT / 2**30:.0f} GiB "
            f"(this one needs about {per_member / 2**30:.1f} GiB per seed)")
    return spec


def _check_target_range(cfg: config.RunConfig, y: np.ndarray) -> None:
    """A sigmoid output lies in (0, 1), and bce's −y·log ŷ − (1−y)·log(1−ŷ) is bounded below
    only for y in [0, 1]: outside it training "converges" to a negative loss (issue #28)."""
    low, high = float(np.min(y)), float(np.max(y))
    if 0.0 <= low and high <= 1.0:
        return
    span = f"these targets span [{low:.4g}, {high:.4g}]"
    require(cfg.loss != "bce", "loss", cfg.loss, f"bce needs targets in [0, 1]; {span} (use loss=mse)")
    require(cfg.output != "sigmoid", "output", cfg.output,
            f"sigmoid outputs lie in (0, 1) and can never reach targets outside [0, 1]; {span} "
            "(use output=identity)")


def check_resources(cfg: config.RunConfig, spec: specs.Spec, out_dir: Path | None) -> None:
    """Refuses a job whose results cannot fit, with the estimate, before anything is written.

    Raises:
        ConfigError: on ``num_seeds``, naming the estimate and what is available.
    """
    n_params, itemsize = config.n_params(spec), np.dtype(cfg.dtype).itemsize
    host = cfg.num_seeds * memory.host_bytes_per_member(n_params, itemsize, cfg.save_params)
    saved = host - cfg.num_seeds * memory.host_bytes_per_member(n_params, itemsize, False)
    available = memory.available_bytes()
    if host > memory.HOST_SHARE * available:
        raise ConfigError("num_seeds", cfg.num_seeds,
                          f"a job whose per-seed results fit in memory: about {memory.fmt_bytes(host)} "
                          f"needed, {memory.fmt_bytes(available)} available (save_params=false saves "
                          f"{memory.fmt_bytes(saved)}; or split the seeds "
                          "over a sweep: -m seed=0,N,2N... num_seeds=N)")
    if out_dir is None:
        return
    curve_points = min(cfg.curve_seeds, cfg.num_seeds) * (cfg.blocks + 1)
    disk = memory.output_bytes(cfg.num_seeds, n_params, itemsize, curve_points, cfg.save_params)
    free = memory.free_disk_bytes(Path(out_dir))
    if disk > free:
        raise ConfigError("num_seeds", cfg.num_seeds,
                          f"a job whose files fit on disk: about {memory.fmt_bytes(disk)} needed, "
                          f"{memory.fmt_bytes(free)} free under {out_dir} (lower curve_seeds, "
                          "or save_params=false)")
