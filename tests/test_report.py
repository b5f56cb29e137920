"""Reports from real runs and sweeps, the ready-made experiments shrunk, and bad input."""

import pandas as pd
import pytest
from PIL import Image

from cli import run_cli
from jaxbp import paths, report

EXPERIMENTS = sorted(p.stem for p in paths.EXPERIMENTS_DIR.glob("*.yaml"))


def _check_figures(out, at_least):
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= at_least
    for png in pngs:
        width, height = Image.open(png).size
        assert 300 <= width <= 3000 and 250 <= height <= 3000, f"{png.name}: {width}x{height}"
    text = (out / "report.md").read_text()
    assert all(f"({png.name})" in text for png in pngs)
    return text


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_shrunk_and_reports(tmp_path, name):
    sweep = tmp_path / name
    proc = run_cli("jaxbp.train", "-m", f"+experiment={name}", "num_seeds=3", "epochs=12",
                   "log_every=4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(sweep / "sweep.csv")
    assert (table["status"] == "ok").all() and len(table) >= 4
    assert report.main([str(sweep)]) == 0
    text = _check_figures(sweep / "report", at_least=2)
    assert "Wilson 95%" in text and "| job |" in text


def test_run_report_has_decision_boundaries_for_2d_data(tmp_path):
    run = tmp_path / "run"
    proc = run_cli("jaxbp.train", "data=moons", "hidden=5", "num_seeds=6", "epochs=30",
                   f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert report.main([str(run)]) == 0
    _check_figures(run / "report", at_least=3)
    assert (run / "report" / "decision_boundaries.png").is_file()


def test_report_skips_failed_jobs_and_says_so(tmp_path, capsys):
    good = tmp_path / "good.csv"
    pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "y": [0, 1, 1, 0]}).to_csv(good, index=False)
    broken = tmp_path / "broken.csv"
    broken.write_text("a,y\nx,1\n")
    sweep = tmp_path / "sweep"
    run_cli("jaxbp.train", "-m", "data=file", f"data.path={good},{broken}", "num_seeds=3",
            "epochs=10", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert report.main([str(sweep)]) == 0
    assert "skipped" in capsys.readouterr().err
    assert "Jobs left out" in (sweep / "report" / "report.md").read_text()


def test_report_refuses_what_it_cannot_read(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "neither a jaxbp run dir" in message
    empty = tmp_path / "sweep"
    empty.mkdir()
    pd.DataFrame(columns=["lr", "job", "job_dir", "status", "reason"]).to_csv(empty / "sweep.csv", index=False)
    assert report.main([str(empty)]) == 2
    assert "no finished jobs" in capsys.readouterr().err
