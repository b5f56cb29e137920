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
    """A pandas ``frame`` as CSV, without its index: the bytes ``frame.to_csv(index=False)``
    writes, for numeric and boolean tables in a third to a half of its time."""
    text = numeric_csv(frame)
    if text is None:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    else:  # newline="": the text already ends its lines as pandas would (os.linesep)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, newline=""))


_PLAIN_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
# The column types numeric_csv formats; pandas' others (Float32, long double, sparse, Arrow,
# object...) it leaves to pandas.
_NUMPY_TYPES = frozenset(np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                                                "uint64", "bool", "float32", "float64"))
_PANDAS_TYPES = frozenset(("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "boolean",
                           "Float64"))


def numeric_csv(frame) -> str | None:
    """``frame.to_csv(index=False)`` as text, when every column is an integer, float32/64
    or boolean column (NumPy's, or pandas' nullable ``Int*``, ``UInt*``, ``boolean`` and
    ``Float64``) and every name a plain string; ``None`` for any other frame, which pandas
    then writes.

    Why: ``to_csv`` formats the 150,000 cells of a job's ``curves.csv`` row by row (0.15 s);
    this formats each column at once with the same rules: integers as ``str``, floats as
    Python's shortest round-trip ``repr`` (what NumPy's and so pandas' float-to-text gives),
    ``True``/``False``, and an empty field for NaN and NA.
    """
    if not all(isinstance(name, str) for name in frame.columns):
        return None
    names = list(frame.columns)
    if len(set(names)) != len(names) or not all(name and set(name) <= _PLAIN_NAME for name in names):
        return None
    columns = []
    for name in frame.columns:
        series = frame[name]
        dtype = series.dtype
        if not (dtype in _NUMPY_TYPES if isinstance(dtype, np.dtype) else str(dtype) in _PANDAS_TYPES):
            return None
        kind = series.dtype.kind
        missing = series.isna().to_numpy()
        if series.dtype == np.float32:  # its own shortest round trip, as pandas writes it
            text = series.to_numpy(np.float32, na_value=np.nan).astype(str).tolist()
        elif kind == "f":
            text = list(map(repr, series.to_numpy(np.float64, na_value=np.nan).tolist()))
        elif kind == "b":
            text = ["True" if value else "False" for value in series.to_numpy(bool, na_value=False).tolist()]
        else:
            text = list(map(str, series.to_numpy(np.int64 if kind == "i" else np.uint64, na_value=0).tolist()))
        for row in np.flatnonzero(missing).tolist():
            text[row] = ""
        columns.append(text)
    newline = os.linesep
    lines = [",".join(names), *map(",".join, zip(*columns))] if columns else [""]
    if len(names) == 1:  # pandas quotes a lone empty field, so a row is never a blank line
        lines[1:] = [field or '""' for field in lines[1:]]
    return newline.join(lines) + newline


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
