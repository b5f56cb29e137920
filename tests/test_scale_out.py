"""Scaling out: seeds sharded over devices, the fused-lr launcher, and process launchers all
give the basic launcher's numbers."""

import json
import os

import pandas as pd
import pytest

from cli import run_cli
from jaxbp import cores

SWEEP = ["-m", "lr=0.1,1.0", "epochs=200", "num_seeds=16"]


def _seeds(path):
    return pd.read_csv(path).sort_values(["seed"] + (["lr"] if "lr" in pd.read_csv(path) else []))


def _same_numbers(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    numeric = ["final_loss", "train_acc"]
    for column in numeric:
        assert ((a[column].to_numpy() - b[column].to_numpy()) ** 2).max() ** 0.5 <= \
            1e-5 * a[column].abs().max()
    for column in ["seed", "converged", "diverged", "epochs_to_target"]:
        assert a[column].fillna(-1).tolist() == b[column].fillna(-1).tolist()


@pytest.mark.heavy
def test_four_fake_devices_give_the_single_device_numbers(tmp_path):
    args = ["lr=0.5", "epochs=200", "num_seeds=63"]  # 63: not divisible by 4, so padded
    one = run_cli("jaxbp.train", *args, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    # The user's own flags replace jaxbp's: keep its FMA setting, so only the devices differ.
    flags = ["--xla_force_host_platform_device_count=4", *(f for f in cores.cpu_flags() if f == cores.NO_FMA)]
    four = run_cli("jaxbp.train", *args, f"hydra.run.dir={tmp_path / 'four'}", cwd=tmp_path,
                   env={"XLA_FLAGS": " ".join(flags)})
    off = run_cli("jaxbp.train", *args, "devices=1", f"hydra.run.dir={tmp_path / 'off'}", cwd=tmp_path)
    for proc in (one, four, off):
        assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "four" / "summary.json").read_text())["device"].endswith("x4")
    assert json.loads((tmp_path / "off" / "summary.json").read_text())["device"].endswith("x1")
    _same_numbers(_seeds(tmp_path / "one" / "seeds.csv"), _seeds(tmp_path / "four" / "seeds.csv"))


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("basic")
    proc = run_cli("jaxbp.train", *SWEEP, "hydra/launcher=basic", f"hydra.sweep.dir={root / 's'}", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return _seeds(root / "s" / "sweep_seeds.csv")


def test_vmap_launcher_fuses_and_matches_basic(tmp_path, basic_sweep):
    proc = run_cli("jaxbp.train", *SWEEP, "hydra/launcher=vmap", f"hydra.sweep.dir={tmp_path / 's'}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Launching 2 jobs as 1 fused program(s)" in proc.stdout + proc.stderr
    _same_numbers(basic_sweep, _seeds(tmp_path / "s" / "sweep_seeds.csv"))
    for job in ("0", "1"):  # every job still gets its own dir and files
        assert {"seeds.csv", "curves.csv", "params.npz", "summary.json", "COMPLETE", ".hydra"} <= \
            set(os.listdir(tmp_path / "s" / job))
    summary = json.loads((tmp_path / "s" / "1" / "summary.json").read_text())
    assert summary["fused_jobs"] == 2 and summary["num_seeds"] == 16


@pytest.mark.heavy
def test_vmap_launcher_keeps_shapes_apart_and_resumes(tmp_path):
    # Depth changes the program's shape; hidden width alone would fuse (masking).
    args = ["-m", "lr=0.1,1.0", "depth=1,2", "epochs=50", "num_seeds=4", f"hydra.sweep.dir={tmp_path / 's'}"]
    first = run_cli("jaxbp.train", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Launching 4 jobs as 2 fused program(s)" in first.stdout + first.stderr
    (tmp_path / "s" / "3" / "seeds.csv").unlink()
    again = run_cli("jaxbp.train", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already complete, skipped") == 3
    assert len(pd.read_csv(tmp_path / "s" / "sweep_seeds.csv")) == 16


@pytest.mark.heavy
def test_submitit_local_matches_basic(tmp_path, basic_sweep):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = run_cli("jaxbp.train", *SWEEP, "hydra/launcher=submitit_local",
                   f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _same_numbers(basic_sweep, _seeds(tmp_path / "s" / "sweep_seeds.csv"))


@pytest.mark.heavy
def test_joblib_matches_basic(tmp_path, basic_sweep):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = run_cli("jaxbp.train", *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                   f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _same_numbers(basic_sweep, _seeds(tmp_path / "s" / "sweep_seeds.csv"))
