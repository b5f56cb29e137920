"""Durable file primitives: atomic writes, fsync, JSON without NaN, npz, digests.

Every file jaxbp writes goes through :func:`atomic_write`: written under a temporary name,
fsynced, renamed into place and the dir fsynced, so after a crash a file is either the old
one or the new one, never a torn mix. No JAX, no pandas at import, and no process-wide state
is touched (the temporary file gets the user's umask from ``os.open``, not by reading it).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np


def _new_temp(path: Path) -> str:
    """A fresh, exclusive temporary file beside ``path``, with the permissions any new file
    of the user's gets (0666 less the umask, which ``os.open`` applies)."""
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return str(tmp)
        except FileExistsError:
            continue


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems cannot open a dir; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Calls ``write(tmp_path)``, fsyncs it, renames it onto ``path`` and fsyncs the dir,
    as SQLite and git do: after a crash the file is either the old one or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def json_safe(value):
    """NaN and inf become ``null`` (JSON has no NaN); NumPy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, frame) -> None:
    """A pandas ``frame`` as CSV, without its index."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def save_npz(path, **arrays) -> None:
    with open(path, "wb") as handle:  # a handle, so numpy does not append ".npz" to tmp names
        np.savez_compressed(handle, **arrays)


def file_digest(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex}`` of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}
