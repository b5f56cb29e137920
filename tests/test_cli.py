"""``python -m jaxbp.train`` as a user runs it: files, columns and refusals."""

import json

import numpy as np
import pandas as pd
import pytest

from cli import run_cli
from jaxbp import results


def test_single_run_writes_every_file_with_the_contract_columns(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("jaxbp.train", f"hydra.run.dir={out}", "num_seeds=50", "epochs=400",
                   "curve_seeds=7", "log_every=50", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "50 seeds, xor 2-3-1, sgd lr=0.5, 400 epochs:" in proc.stdout
    seeds = pd.read_csv(out / "seeds.csv")
    assert list(seeds.columns) == results.SEED_COLUMNS and list(seeds["seed"]) == list(range(50))
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.columns) == ["seed", "epoch", "loss"]
    assert curves["seed"].nunique() == 7 and sorted(curves["epoch"].unique()) == list(range(0, 401, 50))
    params = np.load(out / "params.npz")
    assert params["W0"].shape == (50, 2, 3) and params["b1"].shape == (50, 1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["num_seeds"] == 50 and summary["versions"]["jax"]
    assert {"wall_s", "compile_s", "backend", "device", "success_rate"} <= set(summary)
    assert (out / results.MARKER).is_file()


BAD_INPUTS = ["lr=-1", "hidden=0", "num_seeds=0", "epochs=abc", "data=foo", "optim=foo",
              "data.test_fraction=1.5", "batch_size=5", "data=file"]


@pytest.mark.parametrize("override", BAD_INPUTS)
def test_bad_input_is_refused_cleanly_single_run(tmp_path, override):
    out = tmp_path / "outputs" / "run"
    proc = run_cli("jaxbp.train", override, f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    key = override.split("=")[0]
    assert key in proc.stderr or key.split(".")[0] in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 25
    assert not out.exists(), "a refused run leaves nothing behind"


@pytest.mark.parametrize("override", ["lr=0.1,-1", "epochs=10,abc", "batch_size=2,5"])
def test_bad_input_in_a_sweep_is_refused_before_any_job(tmp_path, override):
    sweep = tmp_path / "sweep"
    proc = run_cli("jaxbp.train", "-m", override, "num_seeds=4", f"hydra.sweep.dir={sweep}",
                   cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "Nothing was trained" in proc.stderr
    assert not sweep.exists()
