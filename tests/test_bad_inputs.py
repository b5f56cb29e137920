"""Every bad value a new user can type is refused within seconds, in a few lines, with no
traceback and no files. One row per case: the command-line overrides (and the data file
it needs), the exit status the CLI gives, and a phrase of the message.

Most rows are checked in-process through the same door as the CLI (compose, convert,
check against the data and the output dir); the rows marked ``cli`` also run the real
``python -m jaxbp.train`` in a subprocess, to pin down the exit status and the absence
of files and tracebacks.
"""

import zipfile

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from cli import run_cli
from jaxbp import app, paths, plan
from jaxbp.checks import ConfigError

app.register()

REFUSED, HYDRA = 2, 1  # jaxbp's refusal, Hydra's own composition error


def _csv(text):
    return lambda d: _write(d / "d.csv", text)


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _npz(**arrays):
    def build(d):
        path = d / "d.npz"
        np.savez(path, **arrays)
        return path
    return build


def _object_npz(d):
    path = d / "d.npz"
    np.savez(path, x=np.ones((4, 2)), y=np.array([{"a": 1}, 2, 3, 4], dtype=object))
    return path


def _huge_npz(d):
    # A small file whose array header claims 10^12 float64 values.
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (1_000_000, 1_000_000)})
    path = d / "d.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 64)
        archive.writestr("y.npy", header.getvalue() + b"\0" * 64)
    return path


GOOD_CSV = "a,b,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"
REAL_CSV = "a,b,y\n0,0,-2.5\n0,1,-2.4\n1,0,0.5\n1,1,0.25\n"  # real targets outside [0, 1]
NO_HEADER_CSV = "0,0,0\n0,1,1\n1,0,1\n1,1,0\n"

# (overrides, data-file builder or None, expected status, phrase)
CASES = [
    # numbers out of range or of the wrong type
    ("lr=-1", None, REFUSED, "a number in (0.0, inf)"),
    ("lr=0", None, REFUSED, "lr=0"),
    ("lr=nan", None, REFUSED, "lr"),
    ("lr=inf", None, REFUSED, "lr"),
    ("lr=1e308", None, REFUSED, "float32"),
    ("lr=1e-50", None, REFUSED, "float32"),
    ("lr=abc", None, HYDRA, "lr"),
    ("lr=${oc.env:HOME}", None, REFUSED, "lr"),
    ("hidden=0", None, REFUSED, "hidden"),
    ("hidden=-3", None, REFUSED, "hidden"),
    ("hidden=1000000000", None, REFUSED, "hidden"),
    ("hidden=2.5", None, HYDRA, "hidden"),
    ("hidden=40000 depth=30", None, REFUSED, "GiB"),
    ("depth=-1", None, REFUSED, "depth"),
    ("depth=1000", None, REFUSED, "depth"),
    ("num_seeds=0", None, REFUSED, "num_seeds"),
    ("num_seeds=-5", None, REFUSED, "num_seeds"),
    ("num_seeds=100000000000", None, REFUSED, "2**32"),
    ("num_seeds=2000000000", None, REFUSED, "fit in memory"),
    ("seed=-1", None, REFUSED, "seed"),
    ("seed=4294967295 num_seeds=2", None, REFUSED, "2**32"),
    ("epochs=0", None, REFUSED, "epochs"),
    ("epochs=abc", None, HYDRA, "epochs"),
    ("epochs=3000000000", None, REFUSED, "epochs"),
    ("log_every=0", None, REFUSED, "log_every"),
    ("epochs=10000000 log_every=1 curve_seeds=64", None, REFUSED, "curve_seeds"),
    ("curve_seeds=-1", None, REFUSED, "curve_seeds"),
    ("batch_size=0", None, REFUSED, "batch_size"),
    ("batch_size=5", None, REFUSED, "at most the 4 training rows"),
    ("target_loss=-0.1", None, REFUSED, "target_loss"),
    ("l1=-1", None, REFUSED, "l1"),
    ("l2=-0.5", None, REFUSED, "l2"),
    ("l2=inf", None, REFUSED, "l2"),
    ("patience=0 data=moons", None, REFUSED, "patience"),
    ("patience=5", None, REFUSED, "test_fraction"),
    ("devices=0", None, REFUSED, "devices"),
    ("max_members_per_chunk=0", None, REFUSED, "max_members_per_chunk"),
    ("dtype=float16", None, REFUSED, "dtype"),
    ("dtype=int32", None, REFUSED, "dtype"),
    # names
    ("activation=swish", None, REFUSED, "activation"),
    ("output=tanh", None, REFUSED, "output"),
    ("loss=hinge", None, REFUSED, "loss"),
    ("loss=ce", None, REFUSED, "softmax"),
    ("loss=bce output=identity", None, REFUSED, "bce"),
    ("output=softmax", None, REFUSED, "two or more outputs"),
    ("grad=numeric", None, REFUSED, "grad"),
    ("init.scheme=glorot", None, REFUSED, "init.scheme"),
    ("init.scale=0", None, REFUSED, "init.scale"),
    ("init.bias=random", None, REFUSED, "init.bias"),
    ("data=foo", None, HYDRA, "foo"),
    ("optim=foo", None, HYDRA, "foo"),
    ("hiden=3", None, HYDRA, "hiden"),
    ("optim=sgd optim.b1=0.1", None, HYDRA, "b1"),
    ("optim=sgd optim.momentum=0.9", None, HYDRA, "momentum"),
    ("data=xor data.noise=0.9", None, HYDRA, "noise"),
    ("optim=momentum optim.momentum=1.5", None, REFUSED, "optim.momentum"),
    ("optim=adam optim.b2=1", None, REFUSED, "optim.b2"),
    ("optim=adam optim.eps=0", None, REFUSED, "optim.eps"),
    ("optim=rmsprop optim.decay=-0.1", None, REFUSED, "optim.decay"),
    ("optim=momentum optim.name=adam", None, REFUSED, "optim.name"),
    # datasets
    ("data.test_fraction=1.5", None, REFUSED, "data.test_fraction"),
    ("data.test_fraction=1.0", None, REFUSED, "[0.0, 1.0)"),
    ("data=xor data.test_fraction=0.9", None, REFUSED, "no training rows"),
    ("data=parity data.bits=0", None, REFUSED, "data.bits"),
    ("data=parity data.bits=40", None, REFUSED, "data.bits"),
    ("data=moons data.n_samples=1", None, REFUSED, "data.n_samples"),
    ("data=moons data.noise=-1", None, REFUSED, "data.noise"),
    ("data=moons data.seed=4294967296", None, REFUSED, "data.seed"),
    ("data=file", None, REFUSED, "data.path"),
    # data files
    ("data=file data.path=/nonexistent/d.csv", None, REFUSED, "nothing is there"),
    ("data=file data.path=DIR", None, REFUSED, "not a directory"),
    ("data=file data.path=FILE", _csv(""), REFUSED, "empty"),
    ("data=file data.path=FILE", _csv("a,b,y\n"), REFUSED, "no data rows"),
    ("data=file data.path=FILE", _csv("a,y\n1,0\n"), REFUSED, "at least 2 rows"),
    ("data=file data.path=FILE", _csv("a,y\n1,0\nabc,1\n0,1\n"), REFUSED, "not a number"),
    ("data=file data.path=FILE", _csv("a,y\n1,0\nnan,1\n0,1\n"), REFUSED, "NaN"),
    ("data=file data.path=FILE", _csv("a,y\n1,0\ninf,1\n0,1\n"), REFUSED, "infinite"),
    ("data=file data.path=FILE", _csv("a,b,y\n1,2,0\n3,1\n0,1,1\n"), REFUSED, "fields"),
    ("data=file data.path=FILE data.target=z", _csv(GOOD_CSV), REFUSED, "a column of"),
    ("data=file data.path=FILE", lambda d: _write(d / "d.csv", b"\x00\xff\xfe" * 300), REFUSED, "binary"),
    ("data=file data.path=FILE", lambda d: _write(d / "d.npz", b"not a zip at all"), REFUSED, "zip"),
    ("data=file data.path=FILE", lambda d: _write(d / "d.txt", "1,2\n"), REFUSED, ".csv or .npz"),
    ("data=file data.path=FILE", _object_npz, REFUSED, "never unpickled"),
    ("data=file data.path=FILE", _huge_npz, REFUSED, "in memory"),
    ("data=file data.path=FILE", _npz(x=np.ones((4, 2)), y=np.ones(3)), REFUSED, "rows"),
    ("data=file data.path=FILE", _npz(y=np.ones(4)), REFUSED, "'x'"),
    ("data=file data.path=FILE", _npz(x=np.ones((4, 2)), y=np.zeros(4)), REFUSED, "two classes"),
    ("data=file data.path=FILE", _npz(x=np.ones((3000, 1)), y=np.arange(3000)), REFUSED, "classes"),
    ("data=file data.path=FILE loss=ce output=softmax", _npz(x=np.ones((4, 1)), y=np.array([0.5, 1.5, 2, 3])),
     REFUSED, "class targets"),
    ("data=file data.path=FILE batch_size=10", _csv(GOOD_CSV), REFUSED, "at most the 4 training rows"),
    # targets a loss or an output cannot use, and a CSV without a header (issue #28, items 1-2)
    ("data=file data.path=FILE loss=bce", _csv(REAL_CSV), REFUSED, "bce needs targets in [0, 1]"),
    ("data=file data.path=FILE", _csv(REAL_CSV), REFUSED, "can never reach targets outside [0, 1]"),
    ("data=file data.path=FILE", _csv(NO_HEADER_CSV), REFUSED, "is all numbers"),
]

CLI_ROWS = {"lr=-1", "hidden=1000000000", "epochs=abc", "optim=sgd optim.b1=0.1", "num_seeds=2000000000",
            "lr=${oc.env:HOME}", "output=softmax", "data=file data.path=/nonexistent/d.csv"}
# Rows that share their overrides with others are picked for the CLI by their phrase.
CLI_PHRASES = {"bce needs targets in [0, 1]", "can never reach targets outside [0, 1]", "is all numbers"}


def _overrides(row, tmp_path):
    text, build, _, _ = row
    if build is not None:
        text = text.replace("FILE", str(build(tmp_path)))
    return text.replace("DIR", str(tmp_path)).split()


def _refusal(overrides, out_dir):
    """(status, message) as the CLI would give them, in-process."""
    try:
        with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base="1.3"):
            composed = compose(config_name="config", overrides=overrides)
    except HydraException as err:
        return HYDRA, f"{err} {err.__cause__}"
    try:
        plan.plan(app.to_run_config(composed), out_dir)
    except ConfigError as err:
        return REFUSED, str(err)
    return 0, ""


@pytest.mark.parametrize("row", CASES, ids=[f"{i}:{c[0][:40]}" for i, c in enumerate(CASES)])
def test_bad_input_is_refused(tmp_path, row):
    status, message = _refusal(_overrides(row, tmp_path), tmp_path / "out")
    assert status == row[2], message
    assert row[3] in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("row", [c for c in CASES if c[0] in CLI_ROWS or c[3] in CLI_PHRASES],
                         ids=lambda c: f"{c[0][:40]}:{c[3][:20]}")
def test_bad_input_on_the_command_line(tmp_path, row):
    out = tmp_path / "out"
    proc = run_cli("jaxbp.train", *_overrides(row, tmp_path), f"hydra.run.dir={out}", cwd=tmp_path, timeout=60)
    assert proc.returncode == row[2], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) <= 12
    assert not out.exists() and not (tmp_path / "outputs").exists()


# ---------------------------------------------------------------- the report and compare CLIs
def _tiny_atlas(path):
    """A 3×3 atlas of 2-2-1 nets, 20 epochs, trained in this process (about a second)."""
    from jaxbp import atlas, config
    from jaxbp.atlas_plane import AtlasOptions

    cfg = config.from_dict({"hidden": 2, "epochs": 20, "progress": False, "compile_cache": None})
    atlas.run_atlas(cfg, AtlasOptions(resolution=3, range=2.0), path, progress=False)
    return path


def test_a_negative_zoom_box_on_the_command_line(tmp_path):
    """``--zoom -1,0,-2,-1`` (issue #28 item 9): argparse took the box for an option."""
    base = _tiny_atlas(tmp_path / "atlas")
    proc = run_cli("jaxbp.report", str(base), "--zoom", "-1,0,-2,-1", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    zoomed = base / "zoom" / "box_-1_0_-2_-1"  # never a name that starts with "-"
    assert (zoomed / "report" / "atlas.png").is_file(), proc.stdout
    with np.load(zoomed / "atlas.npz") as arrays:
        assert (list(arrays["x"]), list(arrays["y"])) == ([-1, -0.5, 0], [-2, -1.5, -1])


@pytest.mark.parametrize("box", ["-1,0,-2", "-1,0,a,1"])
def test_a_malformed_zoom_box_is_refused(tmp_path, box):
    proc = run_cli("jaxbp.report", str(tmp_path), "--zoom", box, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "expected four numbers x0,x1,y0,y1" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("alpha", ["2", "0", "1", "-0.05", "nan", "abc"])
def test_compare_alpha_must_be_a_level_in_0_1(tmp_path, alpha):
    """``compare --alpha 2`` and ``--alpha 0`` were accepted (issue #28 item 10)."""
    proc = run_cli("jaxbp.compare", str(tmp_path), "--by", "lr", "--alpha", alpha, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert f"argument --alpha: {alpha!r} is not a number in (0, 1)" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "compare.csv").exists()
