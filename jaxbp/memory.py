"""Memory and disk budgets: how many members one program may hold, and whether a job's
results fit at all. Estimates, stated as such, with generous factors.

A member's training state is its params, gradients, optimiser moments, early-stopping
copy and one batch of activations (:func:`jaxbp.config.member_bytes`); XLA's temporaries
for a vmapped epoch are a small multiple of that, measured as ``WORKING_SET_FACTOR``.
Per-seed results on the host (params, metrics, the seeds table being written) are
``host_bytes_per_member``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

WORKING_SET_FACTOR = 8  # measured: 1M XOR members train in ~0.5 GB beside their results
CHUNK_SHARE = 0.25  # of the available memory, for one chunk's working set
HOST_SHARE = 0.7  # of the available memory, for all per-seed results of a job
SEEDS_CSV_BYTES_PER_ROW = 110  # a seeds.csv row as text, with full float precision
CURVE_CSV_BYTES_PER_POINT = 30


def available_bytes() -> int:
    """Memory this process can still use: ``MemAvailable`` on Linux, else physical pages."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def device_bytes(device) -> int | None:
    """An accelerator's memory limit, or ``None`` on the CPU (host memory applies)."""
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend reports memory
        return None
    limit = stats.get("bytes_limit")
    return int(limit) - int(stats.get("bytes_in_use", 0)) if limit else None


def members_per_chunk(state_bytes: int, n_members: int, budget: int, override: int | None = None) -> int:
    """How many members one program call may train: ``override`` if set, else what fits in
    ``CHUNK_SHARE`` of ``budget`` at ``WORKING_SET_FACTOR × state_bytes`` each."""
    if override is not None:
        return max(1, min(override, n_members))
    fits = int(budget * CHUNK_SHARE // max(1, WORKING_SET_FACTOR * state_bytes))
    return max(1, min(n_members, fits))


def host_bytes_per_member(n_params: int, itemsize: int, save_params: bool = True) -> int:
    """Per-seed results held on the host while a job is written: params (twice, while
    params.npz is compressed), eight metrics, the seed, and the seeds table with the copies
    pandas makes while writing it. Measured: 3.24 GB peak RSS for 10M XOR 2-3-1 seeds, 324
    bytes a seed, against 336 from this formula."""
    params = 2 * n_params * itemsize if save_params else 0
    return params + 8 * itemsize + 8 + 24 * 8


def output_bytes(n_members: int, n_params: int, itemsize: int, curve_points: int,
                 save_params: bool = True) -> int:
    """Disk a job's files take, roughly: seeds.csv, curves.csv and params.npz."""
    params = n_members * n_params * itemsize if save_params else 0
    return n_members * SEEDS_CSV_BYTES_PER_ROW + curve_points * CURVE_CSV_BYTES_PER_POINT + params


def existing_parent(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing parent (where it would be made)."""
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the filesystem that will hold ``path`` (its nearest existing parent)."""
    return shutil.disk_usage(existing_parent(path)).free


def fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"

