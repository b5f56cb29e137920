"""Reads a user's data file (``data=file``) and refuses, in one line, any file it cannot
trust: the one door through which a ``.csv`` or ``.npz`` becomes arrays.

A ``.csv`` has a header line naming the columns (a first line of numbers alone is refused,
not silently taken as names); ``target`` names the target column (default: the last). A
``.npz`` holds arrays ``x`` and ``y`` (or ``target`` naming the y array). A 1-D target whose
values are all whole numbers is read as class labels. Sizes are checked before anything
is loaded: the file with ``stat``, each ``.npz`` member from its ``.npy`` header, and an
``.npz`` is never unpickled. NumPy and pandas only, no JAX.
"""

from __future__ import annotations

import csv
import hashlib
import math
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib import format as npy_format

MAX_FILE_BYTES = 1 << 30  # 1 GiB: the file on disk, and an .npz's arrays once loaded
MAX_CLASSES = 1000  # more distinct whole-number labels is almost surely a real-valued target
MIN_ROWS = 2
SUFFIXES = (".csv", ".npz")
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what float64 holds
NPY_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0,
                      (2, 0): npy_format.read_array_header_2_0}
# What a damaged or hostile zip member can raise while it is opened, inflated or parsed.
NPZ_ERRORS = (ValueError, EOFError, OSError, RuntimeError, NotImplementedError,
              zipfile.BadZipFile, zlib.error)


class DataFileError(ValueError):
    """A data file that cannot be used: ``key`` (``data.path`` or ``data.target``), the
    offending ``value``, and ``allowed``: what is wrong and what would be accepted."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


def read(path: str, target: str | None = None, max_bytes: int = MAX_FILE_BYTES,
         max_classes: int = MAX_CLASSES) -> tuple[np.ndarray, np.ndarray, bool]:
    """Reads and checks a ``.csv`` or ``.npz`` data file.

    Args:
      path: the file, as the user wrote it (``~`` is expanded).
      target: the target column (csv) or array (npz); ``None`` for the last column or ``y``.
      max_bytes: the largest file, and the largest total of an npz's two arrays in memory.
      max_classes: the most distinct labels a class target may have.

    Returns:
      ``(x, y, classes)``: ``x`` (rows, features) float64; ``y`` int64 (rows,) labels when
      ``classes``, else float64 with one row per example.

    Raises:
      DataFileError: one line saying what is wrong with the file and what is allowed.
    """
    file = _checked_file(path, max_bytes)
    if file.suffix.lower() == ".csv":
        x, y = _read_csv(path, file, target)
    else:
        x, y = _read_npz(path, file, target, max_bytes)
    return _finish(path, target, x, y, max_classes)


def content_hash(path: str, chunk_bytes: int = 1 << 20) -> str:
    """sha256 hex digest of the file's bytes, read in chunks (memory stays flat)."""
    digest = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_file(path: str, max_bytes: int) -> Path:
    """The file, once it exists, is a regular .csv/.npz file and its size is in range."""
    file = Path(path).expanduser()
    if not file.exists():
        raise DataFileError("data.path", path, "an existing .csv or .npz file; nothing is there")
    if file.is_dir():
        raise DataFileError("data.path", path, "a .csv or .npz file, not a directory")
    if not file.is_file():
        raise DataFileError("data.path", path, "a regular .csv or .npz file")
    if file.suffix.lower() not in SUFFIXES:
        raise DataFileError("data.path", path, "a file ending in .csv or .npz")
    size = file.stat().st_size
    if size > max_bytes:
        raise DataFileError("data.path", path,
                            f"a file of at most {_size(max_bytes)}; this one is {_size(size)}")
    if size == 0:
        raise DataFileError("data.path", path, "a non-empty file; this one is empty (0 bytes)")
    return file


def _read_csv(path: str, file: Path, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    frame = _parse_csv(path, file)
    _check_header(path, frame)
    if frame.empty:
        raise DataFileError("data.path", path, f"a header line and at least {MIN_ROWS} data "
                            f"rows; this CSV has a header but no data rows")
    name = frame.columns[-1] if target is None else target
    if name not in frame.columns:
        raise DataFileError("data.target", target, f"a column of {list(frame.columns)}")
    values = _csv_numbers(path, file, frame)
    column = frame.columns.get_loc(name)
    return np.delete(values, column, axis=1), values[:, column]


def _check_header(path: str, frame: pd.DataFrame) -> None:
    """Refuses a first line of numbers: pandas would take that data row as the column names,
    silently training on one row fewer with the target "the column named 1"."""
    # pandas renames repeated names ("0", "0.1"), so the count of columns is what is compared.
    names = [str(name).strip() for name in frame.columns]
    if names and all(_is_number(name) for name in names):
        shown = ",".join(names) if len(",".join(names)) <= 40 else ",".join(names)[:37] + "..."
        raise DataFileError("data.path", path, f"a CSV whose first line names the columns; its first line "
                            f"({shown}) is all numbers, a data row: add a header line such as "
                            f"{','.join(f'x{i + 1}' for i in range(len(names) - 1))},y")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_csv(path: str, file: Path) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            # A first data row longer than the header only warns, and pandas drops its tail.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            return pd.read_csv(file, index_col=False)
    except pd.errors.EmptyDataError:
        raise DataFileError("data.path", path, "a CSV with a header line; this one is blank") from None
    except UnicodeDecodeError:
        raise DataFileError("data.path", path, "a text CSV (UTF-8); this file is binary "
                            "or in another encoding") from None
    except (ValueError, pd.errors.ParserWarning) as err:
        ragged = _first_ragged(path, file)
        if ragged:
            raise ragged from None
        reason = str(err).strip().splitlines()[-1]
        raise DataFileError("data.path", path, f"a well-formed CSV; pandas: {reason}") from None


def _csv_numbers(path: str, file: Path, frame: pd.DataFrame) -> np.ndarray:
    """All cells as float64, or a refusal naming the first cell that is not a finite number.

    pandas reads a missing field of a short row as NaN, like an empty cell, so every
    non-finite cell is looked up in the raw file to tell which it was."""
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    row = int(np.argmax(bad.any(axis=1)))
    column = int(np.argmax(bad[row]))
    ragged = _first_ragged(path, file, last_row=row)
    if ragged:
        raise ragged
    raw = _raw_row(file, row)
    if raw and column < len(raw[1]):
        where, text = f"line {raw[0]}", raw[1][column]
    else:  # the csv module disagrees with pandas here: show pandas' view of the cell
        where, text = f"data row {row + 1}", str(frame.iat[row, column])
    raise DataFileError("data.path", path, f"column {frame.columns[column]!r}, {where} "
                        f"{_describe(text, values[row, column])}; every cell must be a finite number")


def _describe(text: str, value: float) -> str:
    text = text.strip()
    shown = repr(text if len(text) <= 40 else text[:37] + "...")  # the refusal stays one short line
    if not text:
        return "is empty"
    if np.isinf(value):
        return f"is infinite ({shown})"
    try:
        float(text)
        return f"is NaN ({shown})"
    except ValueError:
        return f"holds {shown}, which is not a number"


def _raw_rows(file: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of the header and each row, skipping blank lines as pandas does."""
    with open(file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for fields in reader:
            if fields and (len(fields) > 1 or fields[0].strip()):
                yield reader.line_num, fields


def _raw_row(file: Path, row: int) -> tuple[int, list[str]] | None:
    """(line number, fields) of data row ``row`` as the csv module reads it, if it can."""
    try:
        return next(islice(_raw_rows(file), row + 1, None), None)
    except (UnicodeDecodeError, csv.Error):
        return None


def _first_ragged(path: str, file: Path, last_row: int | None = None) -> DataFileError | None:
    """A refusal for the first data row (up to ``last_row``) whose field count differs from
    the header's, or ``None``."""
    rows = _raw_rows(file)
    try:
        _, header = next(rows)
        for line, fields in islice(rows, None if last_row is None else last_row + 1):
            if len(fields) != len(header):
                return DataFileError("data.path", path, f"line {line} has {len(fields)} fields but the "
                                     f"header has {len(header)}; every row needs one value per column")
    except (StopIteration, UnicodeDecodeError, csv.Error):
        return None
    return None


def _read_npz(path: str, file: Path, target: str | None, max_bytes: int):
    """``x`` and the target array, checked from their headers before any data is loaded."""
    name = "y" if target is None else target
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError):
        raise DataFileError("data.path", path, "an .npz written by numpy.savez; "
                            "this file is not a zip archive") from None
    with archive:
        members = {m[:-len(".npy")]: m for m in archive.namelist() if m.endswith(".npy")}
        if "x" not in members:
            raise DataFileError("data.path", path, f"an .npz with an array 'x'; it has {sorted(members)}")
        if name not in members:
            raise DataFileError("data.target", target, f"the name of the npz's target array; it has {sorted(members)}")
        wanted = {"x": members["x"], name: members[name]}
        headers = {key: _npy_header(path, archive, key, member) for key, member in wanted.items()}
        _check_npz_memory(path, headers, max_bytes)
        x, y = (_npy_values(path, archive, key, member) for key, member in wanted.items())
    return x, y


def _npy_header(path: str, archive: zipfile.ZipFile, key: str, member: str):
    """``(shape, dtype)`` of a member from its .npy header alone, refusing non-numeric dtypes."""
    try:
        with archive.open(member) as handle:
            reader = NPY_HEADER_READERS.get(npy_format.read_magic(handle))
            if reader is None:
                raise ValueError("an unsupported .npy format version")
            shape, _, dtype = reader(handle)
    except NPZ_ERRORS as err:
        raise DataFileError("data.path", path, f"an .npz written by numpy.savez; "
                            f"reading array {key!r} failed: {_one_line(err)}") from None
    if dtype.hasobject:
        raise DataFileError("data.path", path, f"numeric arrays; {key!r} holds Python objects "
                            "(dtype object), which are never unpickled")
    if dtype.kind not in NUMERIC_KINDS:
        raise DataFileError("data.path", path, f"numeric arrays (bool, int, float); {key!r} has dtype {dtype}")
    return shape, dtype


def _check_npz_memory(path: str, headers: dict, max_bytes: int) -> None:
    # Elements count at float64's 8 bytes or more, since read returns float64.
    need = {key: math.prod(shape) * max(dtype.itemsize, 8) for key, (shape, dtype) in headers.items()}
    if sum(need.values()) > max_bytes:
        sizes = ", ".join(f"{key!r} {headers[key][0]} {headers[key][1]}: {_size(n)}" for key, n in need.items())
        raise DataFileError("data.path", path, f"arrays of at most {_size(max_bytes)} in memory "
                            f"as float64; these would take {_size(sum(need.values()))} ({sizes})")


def _npy_values(path: str, archive: zipfile.ZipFile, key: str, member: str) -> np.ndarray:
    try:
        with archive.open(member) as handle:
            array = npy_format.read_array(handle, allow_pickle=False)
    except NPZ_ERRORS as err:
        raise DataFileError("data.path", path, f"an .npz written by numpy.savez; "
                            f"reading array {key!r} failed: {_one_line(err)}") from None
    values = np.asarray(array, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        index = np.unravel_index(int(np.argmax(bad)), bad.shape)
        cell = ", ".join(str(int(i)) for i in index)
        raise DataFileError("data.path", path, f"{key}[{cell}] is {values[index]}; "
                            "every value must be a finite number")
    return values


def _finish(path: str, target: str | None, x: np.ndarray, y: np.ndarray, max_classes: int):
    """Shapes checked, x as (rows, features), and targets read as classes or as reals."""
    if x.ndim == 0 or y.ndim == 0:
        raise DataFileError("data.path", path, "x and y with one row per example; "
                            f"x has shape {x.shape}, y has shape {y.shape}")
    if len(x) != len(y):
        raise DataFileError("data.path", path, "x and y with one row each per example; "
                            f"x has {len(x)} rows, y has {len(y)}")
    if len(x) < MIN_ROWS:
        raise DataFileError("data.path", path, f"at least {MIN_ROWS} rows of data; the file has {len(x)}")
    x = x.reshape(len(x), -1)
    if x.shape[1] == 0:
        raise DataFileError("data.path", path, "at least one feature besides the target; x has 0 columns")
    classes = y.ndim == 1 and bool(np.all(y == np.round(y)))
    if not classes:
        return x, y, False
    count = len(np.unique(y))
    if count > max_classes:
        raise DataFileError("data.target", target, f"at most {max_classes} classes; the target has "
                            f"{count} distinct whole numbers, read as {count} classes (a real-valued "
                            "target needs floats with a fractional part)")
    return x, y.astype(np.int64), True


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _size(n: float) -> str:
    """Bytes in binary units: ``1 GiB``, ``3.5 MiB``, ``512 bytes``."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")
    power = 0
    while n >= 1024 and power < len(units) - 1:
        n, power = n / 1024, power + 1
    return f"{int(n)} bytes" if power == 0 else f"{n:.3g} {units[power]}"
