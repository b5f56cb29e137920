"""datafile.read: good files give the expected arrays; every bad one is a one-line refusal
that names the key and the problem, before anything large is loaded and without unpickling."""

import hashlib
import io
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from jaxbp import datafile
from jaxbp.datafile import DataFileError


def csv_file(text: str, name: str = "d.csv"):
    """A builder writing ``text`` to ``tmp_path / name``."""
    def build(tmp_path):
        (tmp_path / name).write_text(text)
        return str(tmp_path / name)
    return build


def raw_file(data: bytes, name: str):
    def build(tmp_path):
        (tmp_path / name).write_bytes(data)
        return str(tmp_path / name)
    return build


def npz_file(**arrays):
    def build(tmp_path):
        np.savez(tmp_path / "d.npz", **arrays)
        return str(tmp_path / "d.npz")
    return build


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_header(shape, descr="<f8") -> bytes:
    """Only the .npy magic and header: data of ``shape`` is claimed but absent."""
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def zip_file(**members: bytes):
    """An .npz built by hand: each member ``name.npy`` holds the given bytes."""
    def build(tmp_path):
        with zipfile.ZipFile(tmp_path / "d.npz", "w") as archive:
            for name, data in members.items():
                archive.writestr(f"{name}.npy", data)
        return str(tmp_path / "d.npz")
    return build


def missing(tmp_path):
    return str(tmp_path / "absent.csv")


def directory(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    return str(tmp_path / "folder.csv")


RANDOM_BYTES = np.random.default_rng(0).bytes(4096)
GOOD_CSV = "a,b,c\n1,2,0\n3,4,1\n5,6,1\n"
X5 = np.arange(10.0).reshape(5, 2)
Y5 = np.array([0, 1, 1, 0, 1])
LABELS = "\n".join(f"{i},{i}" for i in range(1001))

REFUSALS = [
    pytest.param(missing, {}, "data.path", "nothing is there", id="missing"),
    pytest.param(directory, {}, "data.path", "not a directory", id="directory"),
    pytest.param(csv_file("a,b\n1,2\n3,4\n", "d.txt"), {}, "data.path", "ending in .csv or .npz", id="suffix"),
    pytest.param(csv_file(GOOD_CSV), {"max_bytes": 10}, "data.path", "at most 10 bytes; this one is 24 bytes",
                 id="file-too-large"),
    pytest.param(csv_file(""), {}, "data.path", "empty (0 bytes)", id="empty-csv"),
    pytest.param(raw_file(b"", "d.npz"), {}, "data.path", "empty (0 bytes)", id="empty-npz"),
    pytest.param(csv_file("\n  \n\n"), {}, "data.path", "this one is blank", id="blank-csv"),
    pytest.param(csv_file("a,b,c\n"), {}, "data.path", "header but no data rows", id="header-only"),
    pytest.param(csv_file("a,b,c\n1,2,3\n"), {}, "data.path", "at least 2 rows of data; the file has 1",
                 id="one-row-csv"),
    pytest.param(npz_file(x=X5[:1], y=Y5[:1]), {}, "data.path", "the file has 1", id="one-row-npz"),
    pytest.param(csv_file("a,b,c\n1,2,3\n4,abc,6\n"), {}, "data.path",
                 "column 'b', line 3 holds 'abc', which is not a number", id="text-cell"),
    pytest.param(csv_file("a,b,c\n1,2,3\n4,5,6\n7,8,NA\n"), {}, "data.path",
                 "column 'c', line 4 holds 'NA', which is not a number", id="na-text-cell"),
    pytest.param(csv_file("a,b,c\n1,2,3\nnan,5,6\n"), {}, "data.path", "column 'a', line 3 is NaN ('nan')",
                 id="nan-cell"),
    pytest.param(csv_file("a,b,c\n1,,3\n4,5,6\n"), {}, "data.path", "column 'b', line 2 is empty", id="empty-cell"),
    pytest.param(csv_file("a,b,c\n1,2,3\n4,inf,6\n"), {}, "data.path", "column 'b', line 3 is infinite ('inf')",
                 id="inf-cell"),
    pytest.param(csv_file("a,b,c\n1,2,3\n4,5,-inf\n"), {}, "data.path", "is infinite ('-inf')", id="minus-inf-cell"),
    pytest.param(csv_file("a,b,c\n1,2,3\n4,5\n7,8,9\n"), {}, "data.path",
                 "line 3 has 2 fields but the header has 3", id="short-row"),
    pytest.param(csv_file("a,b,c\n1,2,3\n\n4,5,6\n7,8,9,10\n"), {}, "data.path",
                 "line 5 has 4 fields but the header has 3", id="long-row-after-blank-line"),
    # pandas would take the first column as an index, or (index_col=False) drop the extra field.
    pytest.param(csv_file("a,b,c\n1,2,3,4\n4,5,6\n"), {}, "data.path", "line 2 has 4 fields but the header has 3",
                 id="long-first-row"),
    pytest.param(csv_file("a,b,c\n1,2,3\n4,x,6\n7,8\n"), {}, "data.path", "column 'b', line 3 holds 'x'",
                 id="text-cell-before-short-row"),
    # A field over the csv module's 128 KiB limit: the cell is described from pandas' side, shortened.
    pytest.param(csv_file("a,b\n1,2\n3," + "z" * 200_000 + "\n"), {}, "data.path",
                 "column 'b', data row 2 holds 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...', which", id="huge-text-cell"),
    pytest.param(csv_file(GOOD_CSV), {"target": "label"}, "data.target", "a column of ['a', 'b', 'c']",
                 id="missing-column"),
    pytest.param(csv_file("a\n1\n2\n"), {}, "data.path", "at least one feature besides the target",
                 id="csv-no-features"),
    pytest.param(raw_file(RANDOM_BYTES, "d.csv"), {}, "data.path", "a text CSV (UTF-8)", id="random-bytes-csv"),
    pytest.param(raw_file(RANDOM_BYTES, "d.npz"), {}, "data.path", "not a zip archive", id="random-bytes-npz"),
    pytest.param(npz_file(features=X5, y=Y5), {}, "data.path", "an array 'x'; it has ['features', 'y']",
                 id="npz-without-x"),
    pytest.param(npz_file(x=X5, z=Y5), {}, "data.target", "target array; it has ['x', 'z']", id="npz-without-y"),
    pytest.param(npz_file(x=X5, y=Y5), {"target": "label"}, "data.target", "it has ['x', 'y']",
                 id="npz-without-named-target"),
    pytest.param(npz_file(x=X5, y=np.array([1, "a", None, 2.0, 3], dtype=object)), {}, "data.path",
                 "'y' holds Python objects (dtype object), which are never unpickled", id="npz-object-array"),
    pytest.param(npz_file(x=X5, y=np.array(list("abcab"))), {}, "data.path", "'y' has dtype <U1", id="npz-strings"),
    pytest.param(npz_file(x=X5 + 1j, y=Y5), {}, "data.path", "'x' has dtype complex128", id="npz-complex"),
    pytest.param(zip_file(x=npy_header((10**7, 10**7)), y=npy_bytes(Y5)), {}, "data.path",
                 "at most 1 GiB in memory as float64; these would take 728 TiB", id="npz-header-claims-huge"),
    pytest.param(npz_file(x=np.zeros((100, 4), np.float32), y=np.zeros(100)), {"max_bytes": 3000}, "data.path",
                 "at most 2.93 KiB in memory as float64; these would take 3.91 KiB ('x' (100, 4) float32: 3.12 KiB",
                 id="npz-memory-counts-float64"),
    pytest.param(zip_file(x=b"not an array", y=npy_bytes(Y5)), {}, "data.path",
                 "reading array 'x' failed: the magic string is not correct", id="npz-member-not-npy"),
    pytest.param(zip_file(x=npy_header((5, 2)) + b"abc", y=npy_bytes(Y5)), {}, "data.path",
                 "reading array 'x' failed: EOF", id="npz-truncated-data"),
    pytest.param(npz_file(x=X5, y=Y5[:4]), {}, "data.path", "x has 5 rows, y has 4", id="npz-rows-differ"),
    pytest.param(npz_file(x=np.zeros((5, 0)), y=Y5), {}, "data.path", "x has 0 columns", id="npz-no-features"),
    pytest.param(npz_file(x=np.where(X5 == 5, np.nan, X5), y=Y5), {}, "data.path", "x[2, 1] is nan",
                 id="npz-nan"),
    pytest.param(npz_file(x=X5, y=np.array([0.5, 1, 2, np.inf, 3])), {}, "data.path", "y[3] is inf", id="npz-inf"),
    pytest.param(npz_file(x=X5, y=np.array(3)), {}, "data.path", "y has shape ()", id="npz-scalar-y"),
    pytest.param(csv_file("0.5,1,0\n0,1,1\n1,0,1\n"), {}, "data.path",
                 "its first line (0.5,1,0) is all numbers, a data row: add a header line such as x1,x2,y",
                 id="csv-without-header"),
    pytest.param(csv_file("1,1\n0,1\n1,0\n"), {}, "data.path", "(1,1.1) is all numbers",
                 id="csv-without-header-repeated-numbers"),
    pytest.param(csv_file("x,y\n" + LABELS), {}, "data.target",
                 "at most 1000 classes; the target has 1001 distinct whole numbers", id="too-many-classes"),
    pytest.param(npz_file(x=X5, y=np.array([1.0, 2, 3, 4, 5])), {"max_classes": 4}, "data.target",
                 "a real-valued target needs floats with a fractional part", id="whole-floats-too-many-classes"),
]


@pytest.mark.parametrize("build, options, key, phrase", REFUSALS)
def test_bad_files_are_refused_in_one_line(tmp_path, build, options, key, phrase):
    path = build(tmp_path)
    with pytest.raises(DataFileError) as caught:
        datafile.read(path, **{"target": None, **options})
    err = caught.value
    assert err.key == key
    assert err.value == (options.get("target") if key == "data.target" else path)
    assert phrase in err.allowed
    assert str(err) == f"{key}={err.value!r} is invalid: {err.allowed}"
    assert "\n" not in str(err)


def labels(count: int):
    """A CSV with ``count`` distinct class labels in its last column."""
    return "\n".join(["x,y"] + [f"{i / 2},{i}" for i in range(count)]) + "\n"


GOOD = [
    pytest.param(csv_file(GOOD_CSV), {}, [[1, 2], [3, 4], [5, 6]], [0, 1, 1], True, id="csv-last-column"),
    pytest.param(csv_file("label,a,b\n1.5,0,2\n-0.25,1,3\n"), {"target": "label"}, [[0, 2], [1, 3]],
                 [1.5, -0.25], False, id="csv-named-target-regression"),
    pytest.param(csv_file('\ufeffa,b\n\n"1",-2\n  \n3,7\n'), {}, [[1], [3]], [-2, 7], True,
                 id="csv-bom-quotes-blank-lines"),
    pytest.param(csv_file("a,b,c\n1e3,2.5,3.0\n4,5,6.0\n"), {}, [[1000, 2.5], [4, 5]], [3, 6], True,
                 id="csv-whole-float-target-is-classes"),
    pytest.param(csv_file(labels(1000)), {}, np.arange(1000)[:, None] / 2, np.arange(1000), True,
                 id="csv-max-classes-accepted"),
    pytest.param(npz_file(x=X5, y=Y5), {}, X5, Y5, True, id="npz-x-y-classes"),
    pytest.param(npz_file(x=X5, y=Y5, target=Y5 + 0.5), {"target": "target"}, X5, Y5 + 0.5, False,
                 id="npz-named-target"),
    pytest.param(npz_file(x=X5, y=-Y5), {}, X5, -Y5, True, id="npz-negative-labels"),
    pytest.param(npz_file(x=X5, y=np.stack([Y5, 2 * Y5], axis=1)), {}, X5, np.stack([Y5, 2 * Y5], axis=1), False,
                 id="npz-2d-y-regression"),
    pytest.param(npz_file(x=X5.reshape(5, 1, 2).astype(np.float32), y=Y5.astype(bool)), {}, X5, Y5, True,
                 id="npz-3d-float32-x-bool-y"),
    pytest.param(npz_file(x=X5[:, 0], y=Y5 * 0.1), {}, X5[:, :1], Y5 * 0.1, False, id="npz-1d-x-regression"),
]


@pytest.mark.parametrize("build, options, x, y, classes", GOOD)
def test_good_files_give_expected_arrays(tmp_path, build, options, x, y, classes):
    got_x, got_y, got_classes = datafile.read(build(tmp_path), **{"target": None, **options})
    assert got_classes is classes
    assert got_x.dtype == np.float64
    assert got_y.dtype == (np.int64 if classes else np.float64)
    np.testing.assert_array_equal(got_x, np.asarray(x, dtype=np.float64))
    np.testing.assert_array_equal(got_y, y)


class RunsCode:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_object_arrays_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    np.savez(path, x=X5, y=np.array([RunsCode(str(marker))] * 5, dtype=object))
    with pytest.raises(DataFileError, match="never unpickled"):
        datafile.read(str(path), None)
    assert not marker.exists()
    # The payload is live: a loader that unpickles does run it, so the test above can fail.
    np.load(path, allow_pickle=True)["y"][0].close()
    assert marker.exists()


def test_npz_size_is_checked_from_headers_before_loading(tmp_path, monkeypatch):
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, x=np.zeros((500_000, 4)), y=np.zeros(500_000))  # 20 MB inflated
    assert path.stat().st_size < 1 << 20  # so the file-size check passes and the memory check must refuse

    def load_forbidden(*args, **kwargs):
        raise AssertionError("array data was read before the size check")

    monkeypatch.setattr(datafile.npy_format, "read_array", load_forbidden)
    with pytest.raises(DataFileError, match=r"at most 1 MiB in memory as float64; these would take 19.1 MiB"):
        datafile.read(str(path), None, max_bytes=1 << 20)


def test_file_size_is_checked_before_parsing(tmp_path, monkeypatch):
    path = csv_file(GOOD_CSV)(tmp_path)

    def parse_forbidden(*args, **kwargs):
        raise AssertionError("the file was parsed before the size check")

    monkeypatch.setattr(datafile.pd, "read_csv", parse_forbidden)
    with pytest.raises(DataFileError, match="at most 23 bytes"):
        datafile.read(path, None, max_bytes=23)


def test_content_hash_streams_the_file_bytes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(GOOD_CSV.encode())
    expected = hashlib.sha256(GOOD_CSV.encode()).hexdigest()
    assert datafile.content_hash(str(path), chunk_bytes=7) == expected  # 24 bytes over 4 chunks
    assert datafile.content_hash(str(path)) == expected
    path.write_bytes(GOOD_CSV.replace("6", "7").encode())
    assert datafile.content_hash(str(path)) != expected
