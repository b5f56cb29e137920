"""experiments/perf_variants.py, the loop-structure study PERF.md quotes, still runs."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "perf_variants.py"


@pytest.mark.heavy
def test_every_loop_variant_runs_and_reports_a_rate():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--seeds", "64", "--epochs", "100"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "seed-epochs/s" in line]
    assert len(rows) == 5 and rows[0].endswith("1.00×")
    assert all(float(row.split()[-3]) > 0 for row in rows)
