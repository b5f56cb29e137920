"""Full-size runs against known behaviour; excluded by default (``python -m pytest -m slow``)."""

import pandas as pd
import pytest

from cli import run_cli

pytestmark = pytest.mark.slow


def test_xor_lr_hidden_reproduces_the_classic_failure_pattern(tmp_path):
    # Known behaviour of batch backprop on XOR: 2-2-1 networks get stuck on a sizeable
    # minority of seeds, wider hidden layers almost never, and tiny rates are too slow.
    sweep = tmp_path / "xor"
    proc = run_cli("jaxbp.train", "-m", "+experiment=xor_lr_hidden", f"hydra.sweep.dir={sweep}",
                   cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(sweep / "sweep.csv").set_index(["lr", "hidden"])["success_rate"]
    assert 0.5 < table[(1.0, 2)] < 0.9
    assert table[(1.0, 3)] > table[(1.0, 2)] and table[(1.0, 8)] > 0.99
    assert table[(0.01, 2)] == 0.0


def test_a_million_seeds_fit_in_memory(tmp_path):
    run = tmp_path / "million"
    proc = run_cli("jaxbp.train", "num_seeds=1000000", "epochs=1000", "curve_seeds=10",
                   f"hydra.run.dir={run}", cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(run / "seeds.csv")) == 1_000_000
