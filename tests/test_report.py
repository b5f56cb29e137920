"""Reports from real runs and sweeps, the ready-made experiments shrunk, the defects users
hit (issue #19), and bad input of every kind (issue #20): one line and exit 2, never a
traceback."""

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_compare import FAST, SLOW, write_job

from cli import run_cli
from jaxbp import config, figures, job, paths, report, results

EXPERIMENTS = sorted(p.stem for p in paths.EXPERIMENTS_DIR.glob("*.yaml"))
XOR = {"hidden": 2, "lr": 8.0, "num_seeds": 32, "epochs": 500, "curve_seeds": 10}  # 3 in 4 converge


def _check_figures(out, at_least):
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= at_least
    for png in pngs:
        width, height = Image.open(png).size
        assert 300 <= width <= 3000 and 250 <= height <= 3000, f"{png.name}: {width}x{height}"
    text = (out / "report.md").read_text()
    assert all(f"({png.name})" in text for png in pngs)
    return text


def _data_file(path, classes: bool):
    """2-D points: three Gaussian blobs labelled 0-2, or a smooth real-valued target."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    label = np.repeat([0, 1, 2], 20)
    x = centres[label] + rng.normal(0, 0.6, (60, 2))
    target = label if classes else np.sin(x[:, 0]) + 0.5 * x[:, 1]
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": target}).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real jobs, trained in this process: one dir each under a dir that also serves as a
    hand-made sweep of the first two. Each distinct network shape compiles once (~10 s)."""
    root = tmp_path_factory.mktemp("runs")
    files = tmp_path_factory.mktemp("data")
    jobs = {
        "xor": XOR,
        "diverged": {**XOR, "activation": "relu", "output": "identity", "lr": 10.0, "epochs": 60},
        "no_curves": {**XOR, "curve_seeds": 0},
        "stopping": {"data": {"name": "moons", "n_samples": 80}, "hidden": 4, "lr": 2.0, "num_seeds": 16,
                     "epochs": 400, "patience": 10, "curve_seeds": 16},
        "classes": {"data": {"name": "file", "path": _data_file(files / "blobs.csv", True)},
                    "output": "softmax", "loss": "ce", "hidden": 3, "lr": 1.0, "num_seeds": 8, "epochs": 150},
        "values": {"data": {"name": "file", "path": _data_file(files / "values.csv", False)},
                   "output": "identity", "hidden": 4, "lr": 0.2, "num_seeds": 8, "epochs": 150},
    }
    for name, values in jobs.items():
        cfg = config.from_dict({"progress": False, "compile_cache": None, **values})
        job.train(cfg, root / name, [], None)
    shutil.rmtree(files)  # the data files "move": reports read the arrays each job kept
    results.write_csv(root / "sweep.csv", pd.DataFrame({
        "activation": ["sigmoid", "relu"], "lr": [8.0, 10.0], "job": [0, 1], "job_dir": ["xor", "diverged"],
        "status": ["ok", "ok"], "reason": ["", ""]}))
    return root


@pytest.fixture
def drawn(monkeypatch):
    """The figures the report draws, by function name: ``[(args, kwargs, figure)]``."""
    calls = {}
    for name in ("curve_panels", "decision_boundaries", "km_curves", "final_loss_panels", "seed_figure"):
        original = getattr(figures, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            fig = _original(*args, **kwargs)
            calls.setdefault(_name, []).append((args, kwargs, fig))
            return fig
        monkeypatch.setattr(figures, name, spy)
    return calls


# ---------------------------------------------------------------- real runs
def test_run_report_has_km_curves_and_decision_boundaries(runs, drawn):
    assert report.main([str(runs / "xor")]) == 0
    text = _check_figures(runs / "xor" / "report", at_least=4)
    names = {p.name for p in (runs / "xor" / "report").glob("*.png")}
    assert names == {"curves.png", "final_loss.png", "km.png", "decision_boundaries.png"}
    summary = results.JobDir(runs / "xor").summary()
    assert "median epochs to target, all seeds (Kaplan–Meier): " in text
    assert "mean accuracy: train" in text and "converged (train loss ≤ 0.01 at the end)" in text
    # The classic papers' statistic, as summary.json holds it (issue #25 left it out of here).
    seeds = results.JobDir(runs / "xor").seeds()
    reached = seeds["epochs_to_target"].dropna().to_numpy(float)
    assert summary["epochs_to_target_mean_converged"] == pytest.approx(reached.mean())
    mean = "{:.0f} [{:.0f}, {:.0f}]".format(*(summary[f"epochs_to_target_mean_converged{end}"]
                                              for end in ("", "_ci_low", "_ci_high")))
    assert f"mean epochs to target, converged seeds only (the classic papers' statistic; bootstrap 95% CI): {mean}" \
        in text
    # The curves figure says how many seeds' curves it covers: curve_seeds, not num_seeds.
    assert "over 10 of 32 seeds' curves" in drawn["curve_panels"][0][0][1]
    # At lr=8 some 2-2-1 xor networks get stuck: the boundaries show at least one of them.
    assert 0 < summary["success_rate"] < 1
    panels = list(drawn["decision_boundaries"][0][0][2])
    assert any("not converged" in p for p in panels) and any(p.endswith(": converged") for p in panels)


def test_sweep_report_with_a_diverged_job_has_no_nan_and_no_runtime_warnings(runs, drawn):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert report.main([str(runs)]) == 0
    text = _check_figures(runs / "report", at_least=4)
    assert "nan" not in text.lower()
    assert "— (all diverged)" in text and "32 of 32" in text
    assert not (runs / "report" / "epochs_to_target.png").exists()
    assert "median epochs to target, all seeds (KM) [95% CI]" in text
    assert "median epochs, converged seeds only" in text and "mean epochs, converged seeds only [95% CI]" in text
    # The diverged job's losses (1e18 and more) do not stretch the shared log axis.
    fig = drawn["curve_panels"][0][2]
    low, high = fig.axes[0].get_ylim()
    assert high < 1.0, "xor's MSE starts near 0.25; nothing above 1 is a trained curve"
    assert "all 32 diverged" in fig.axes[1].get_title()


def test_a_run_where_every_seed_diverged_reports(runs, drawn):
    assert report.main([str(runs / "diverged")]) == 0
    text = (runs / "diverged" / "report" / "report.md").read_text()
    assert "none finite: every seed diverged" in text and "diverged: 32 of 32 seeds" in text
    assert "median epochs to target, all seeds (Kaplan–Meier): not reached" in text


def test_a_run_without_curves_draws_no_curve_figure_and_says_so(runs):
    assert report.main([str(runs / "no_curves")]) == 0
    out = runs / "no_curves" / "report"
    assert not (out / "curves.png").exists() and (out / "km.png").is_file()
    assert "No loss curves were kept (curve_seeds=0)" in (out / "report.md").read_text()


def test_early_stopped_curves_end_with_a_mark(runs, drawn):
    seeds = results.JobDir(runs / "stopping").seeds()
    assert seeds["stopped_epoch"].notna().any(), "patience=10 on moons must stop some seed"
    assert report.main([str(runs / "stopping")]) == 0
    ax = drawn["curve_panels"][0][2].axes[0]
    marks = [line for line in ax.lines if line.get_label() == "early stopped"]
    stopped_before_the_end = (seeds["stopped_epoch"] < 400).sum()  # curve_seeds = num_seeds = 16
    assert marks and len(marks[0].get_xdata()) == stopped_before_the_end
    assert "stopped early" in (runs / "stopping" / "report" / "report.md").read_text()


@pytest.mark.parametrize("name,targets,classes", [("classes", "classes", 3), ("values", "values", 0)])
def test_decision_boundaries_take_classes_or_values_from_the_kept_data(runs, drawn, name, targets, classes):
    # The data files were deleted after training: the report reads the job's data.npz.
    assert report.main([str(runs / name)]) == 0
    assert (runs / name / "report" / "decision_boundaries.png").is_file()
    args, _, fig = drawn["decision_boundaries"][0]
    x, y, surfaces, gx, gy, kind, title = args[:7]
    assert kind == targets and x.shape == (60, 2) and x.shape[0] == len(y)
    if classes:
        assert sorted(set(y)) == [0, 1, 2] and "predicted class" in title
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["class 0", "class 1", "class 2"]
    else:
        assert len(set(np.round(y, 6))) == len(y) and "predicted output" in title
        assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_seed_report_draws_one_network(runs, drawn):
    assert report.main([str(runs / "xor"), "--seed", "17"]) == 0
    png = runs / "xor" / "report" / "seed_17.png"
    assert png.is_file() and Image.open(png).size[0] > 800
    fig = drawn["seed_figure"][0][2]
    lines = fig.axes[2].get_legend().get_texts()
    assert [t.get_text() for t in lines] == ["class 0", "class 1", "unit 1", "unit 2"]


def test_seed_report_of_data_that_is_not_2d_shows_the_outputs(tmp_path, drawn):
    write_job(tmp_path / "parity", [10, None, 30], {"data": {"name": "parity"}})
    assert report.main([str(tmp_path / "parity"), "--seed", "1"]) == 0
    fig = drawn["seed_figure"][0][2]
    assert len(fig.axes) == 2 and "8 training rows" in fig.axes[1].get_title()
    assert "(not converged" in fig._suptitle.get_text()


def test_a_run_without_params_reports_without_networks_and_says_why(tmp_path, capsys):
    write_job(tmp_path / "lean", [10, None, 30], {"save_params": False})
    assert report.main([str(tmp_path / "lean")]) == 0
    assert "No decision boundaries: " in (tmp_path / "lean" / "report" / "report.md").read_text()
    assert "save_params=false" in (tmp_path / "lean" / "report" / "report.md").read_text()
    capsys.readouterr()
    assert report.main([str(tmp_path / "lean"), "--seed", "1"]) == 2
    assert "save_params=false" in capsys.readouterr().err


def test_unknown_seed_is_refused_in_one_line(runs, capsys):
    assert report.main([str(runs / "xor"), "--seed", "999"]) == 2
    assert capsys.readouterr().err.strip() == f"jaxbp.report: seed 999 is not in {runs / 'xor'} (its seeds are 0–31)"


def test_bench_report_goes_next_to_the_bench_file(tmp_path):
    bench = tmp_path / "b" / "bench.csv"
    bench.parent.mkdir()
    pd.DataFrame({"impl": ["jaxbp_vmap", "jaxbp_vmap", "numpy"], "device": "cpu", "num_seeds": [10, 100, 10],
                  "seed_epochs_per_s": [1e4, 8e4, 1e3]}).to_csv(bench, index=False)
    assert report.main([str(bench)]) == 0
    assert (tmp_path / "b" / "bench_report" / "scaling.png").is_file()


# ---------------------------------------------------------------- bad input
def _copy(runs, tmp_path, name="xor"):
    return shutil.copytree(runs / name, tmp_path / name)


def _sweep(runs, tmp_path, **columns):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    shutil.copytree(runs / "xor", sweep / "xor")
    table = {"lr": [8.0], "job": [0], "job_dir": ["xor"], "status": ["ok"], "reason": [""], **columns}
    pd.DataFrame({k: v for k, v in table.items() if v is not None}).to_csv(sweep / "sweep.csv", index=False)
    return sweep


def _write(path, content: bytes):
    path.write_bytes(content)
    return path.parent if path.name != "bench.csv" else path


BAD = {
    "empty sweep.csv": (lambda r, t: _write(_sweep(r, t) / "sweep.csv", b""), "cannot be read"),
    "binary sweep.csv": (lambda r, t: _write(_sweep(r, t) / "sweep.csv", bytes(range(256)) * 4), "sweep.csv"),
    "sweep.csv without status": (lambda r, t: _sweep(r, t, status=None), "has no 'status' column"),
    "sweep.csv naming no job dir": (lambda r, t: _sweep(r, t, job_dir=["gone"]), "has no finished jobs"),
    "sweep dir without sweep.csv": (lambda r, t: (_sweep(r, t) / "sweep.csv").unlink() or t / "sweep",
                                    "has no sweep.csv and no jobs.json"),
    "a path that does not exist": (lambda r, t: t / "no such run", "does not exist"),
    "corrupt summary.json": (lambda r, t: _write(_copy(r, t) / "summary.json", b'{"config": {'),
                             "summary.json changed since it was written"),
    "garbage seeds.csv": (lambda r, t: _write(_copy(r, t) / "seeds.csv", b"seed,final_loss\nx,y\n"),
                          "seeds.csv changed"),
    "no params": (lambda r, t: (_copy(r, t) / "params.npz").unlink() or t / "xor", "params.npz missing"),
    "empty bench.csv": (lambda r, t: _write(t / "bench.csv", b""), "cannot be read as a CSV"),
    "bench.csv of words": (lambda r, t: _write(t / "bench.csv", b"seed_epochs_per_s,impl\nfast,jaxbp_vmap\n"),
                           "lacks the columns"),
    "a text file": (lambda r, t: _write(t / "notes.txt", b"hello"), "neither a jaxbp run dir"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_ends_in_one_line(runs, tmp_path, capsys, case):
    make, message = BAD[case]
    path = make(runs, tmp_path)
    assert report.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_a_sweep_job_whose_files_changed_is_left_out_and_named(runs, tmp_path, capsys):
    sweep = _sweep(runs, tmp_path, lr=[8.0, 10.0], job=[0, 1], job_dir=["xor", "diverged"], status=["ok", "ok"],
                   reason=["", ""])
    shutil.copytree(runs / "diverged", sweep / "diverged")
    (sweep / "diverged" / "summary.json").write_text(json.dumps({"config": "garbled"}))
    assert report.main([str(sweep)]) == 0
    assert "1 job(s) not ok, skipped" in capsys.readouterr().err
    assert "job 1 skipped:" in (sweep / "report" / "report.md").read_text()


def test_report_refuses_what_it_cannot_read(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "neither a jaxbp run dir" in message
    assert "an atlas dir (atlas.npz)" in message  # issue #28 item 15: the list left atlases out
    empty = tmp_path / "sweep"
    empty.mkdir()
    pd.DataFrame(columns=["lr", "job", "job_dir", "status", "reason"]).to_csv(empty / "sweep.csv", index=False)
    assert report.main([str(empty)]) == 2
    assert "no finished jobs" in capsys.readouterr().err


# ---------------------------------------------------------------- end to end, as a user runs it
# One experiment end to end in the default run; the others (each composes in test_config)
# run with -m slow.
@pytest.mark.parametrize("name", [n if n == "xor_lr_hidden" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in EXPERIMENTS])
def test_experiment_runs_shrunk_and_reports(tmp_path, name):
    sweep = tmp_path / name
    proc = run_cli("jaxbp.train", "-m", f"+experiment={name}", "num_seeds=3", "epochs=12",
                   "log_every=4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(sweep / "sweep.csv")
    assert (table["status"] == "ok").all() and len(table) >= 4
    assert report.main([str(sweep)]) == 0
    text = _check_figures(sweep / "report", at_least=3)
    assert "Wilson 95%" in text and "| job |" in text and "km.png" in text


def test_report_skips_failed_jobs_and_says_so(runs, tmp_path, capsys):
    # A data file is refused before a sweep starts now, so the failed job is written by hand.
    sweep = _sweep(runs, tmp_path, lr=[8.0, 1.0], job=[0, 1], job_dir=["xor", "1"], status=["ok", "failed"],
                   reason=["", "RuntimeError: out of memory"])
    assert report.main([str(sweep)]) == 0
    assert "1 job(s) not ok, skipped" in capsys.readouterr().err
    text = (sweep / "report" / "report.md").read_text()
    assert "Jobs left out:\n- job 1 (failed) skipped: RuntimeError: out of memory" in text


# ---------------------------------------------------------------- issue #28: failed runs, partial sweeps, searches
def test_a_failed_run_is_reported_as_failed_with_its_reason(tmp_path, capsys):
    run = tmp_path / "run"
    results.JobDir(run).path.mkdir()
    results.JobDir(run).write_failure("RuntimeError: out of memory\n  (details)", ["lr=1"], None)
    assert report.main([str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"jaxbp.report: {run} is a run that failed, so it has no results to report: "
                   "RuntimeError: out of memory")


def test_a_half_finished_sweep_gets_a_partial_report_of_its_finished_jobs(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    results.SweepDir(sweep).path.mkdir()
    results.SweepDir(sweep).add_jobs([{"num": n, "overrides": [f"lr={lr}"], "dir": str(n)}
                                      for n, lr in enumerate((0.5, 1.0, 2.0))])
    write_job(sweep / "0", FAST, {"lr": 0.5}, 0)
    write_job(sweep / "1", SLOW, {"lr": 1.0}, 1)  # job 2 never ran: the sweep was interrupted
    assert report.main([str(sweep)]) == 0
    assert "partial, 2 of 3 jobs finished" in capsys.readouterr().err
    text = (sweep / "report" / "report.md").read_text()
    assert text.startswith("# Sweep report: sweep (partial)")
    assert "2 of 3 jobs are complete" in text and "job 2 (missing) skipped: not finished yet" in text
    assert "| 0.5 | 0 | 90.0 [" in text and "| 1 | 1 | 20.0 [" in text  # 36 and 8 of 40 seeds
    assert not (sweep / "sweep.csv").exists(), "the report never writes the sweep's own table"


def test_an_optuna_sweep_gets_a_search_view(tmp_path, monkeypatch):
    """issue #28 item 17: one heatmap panel per trial, with `trial` taken for a swept key."""
    calls = []
    monkeypatch.setattr(figures, "search_view", lambda *a, **k: calls.append(a) or figures.new_figure((4, 3)))
    sweep = tmp_path / "study"
    rows = []
    for num, (lr, hidden, reached) in enumerate([(0.01, 2, SLOW), (0.3, 3, FAST), (2.0, 2, SLOW), (5.0, 4, FAST)]):
        write_job(sweep / str(num), reached, {"lr": lr, "hidden": hidden}, num)
        rows.append({"lr": lr, "hidden": hidden, "trial": num, "job": num, "job_dir": str(num), "status": "ok",
                     "reason": ""})
    results.write_csv(sweep / "sweep.csv", pd.DataFrame(rows))
    (sweep / "best.json").write_text(json.dumps({"objective": "success_rate", "direction": "maximize"}))
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - lr=tag(log,interval(0.001,10))\n"
                                         "    - hidden=range(2,9)\n")
    assert report.main([str(sweep)]) == 0
    names = {p.name for p in (sweep / "report").glob("*.png")}
    assert names == {"search.png"}
    trials, params, log_keys, objective, direction = calls[0][:5]
    assert params == ["lr", "hidden"] and log_keys == {"lr"} and (objective, direction) == ("success_rate", "maximize")
    assert list(trials["objective"]) == pytest.approx([0.2, 0.9, 0.2, 0.9])
    assert "trial=" not in (sweep / "report" / "report.md").read_text()


def test_the_search_view_draws_each_parameter_and_the_best_so_far():
    trials = pd.DataFrame({"trial": [0, 1, 2, 3], "lr": [0.01, 0.3, 2.0, 5.0], "optim": ["sgd", "adam", "sgd", "sgd"],
                           "objective": [0.2, 0.9, 0.5, 0.95]})
    fig = figures.search_view(trials, ["lr", "optim"], {"lr"}, "success_rate", "maximize", "t")
    lr_ax, optim_ax, best_ax = fig.axes[:3]
    assert lr_ax.get_xscale() == "log" and optim_ax.get_xscale() == "linear"
    best = next(line for line in best_ax.lines if line.get_label() == "best so far")
    assert list(best.get_ydata()) == [0.2, 0.9, 0.9, 0.95]


def test_a_sweep_with_a_test_split_draws_train_and_test_loss(runs, tmp_path):
    """issue #28 item 20: moons_regularization asks to compare train and test loss."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for name in ("stopping", "xor"):
        shutil.copytree(runs / name, sweep / name)
    pd.DataFrame({"data": ["moons", "xor"], "job": [0, 1], "job_dir": ["stopping", "xor"], "status": "ok",
                  "reason": ""}).to_csv(sweep / "sweep.csv", index=False)
    assert report.main([str(sweep)]) == 0
    assert (sweep / "report" / "test_loss.png").is_file()
    summary = results.JobDir(sweep / "stopping").summary()
    seeds = results.JobDir(sweep / "stopping").seeds()
    assert summary.get("test_loss_mean", seeds["test_loss"].mean()) == pytest.approx(seeds["test_loss"].mean())


def test_a_job_line_names_its_weight_penalties():
    """issue #28 item 20: an l2 sweep's job lines all read alike."""
    summary = {"config": {"data": {"name": "moons"}, "optim": {"name": "sgd"}, "lr": 0.5, "epochs": 100,
                          "target_loss": 0.01, "l1": 0.0, "l2": 0.001},
               "num_seeds": 4, "spec": [2, 3, 1], "success_rate": 0.5, "success_ci_low": 0.1,
               "success_ci_high": 0.9, "epochs_to_target_km_median": 50, "diverged_rate": 0.0, "wall_s": 1.0,
               "compile_s": 0.5}
    assert "sgd lr=0.5 l2=0.001, 100 epochs" in job.describe(summary, "d")
    summary["config"]["l2"] = 0.0
    assert "sgd lr=0.5, 100 epochs" in job.describe(summary, "d")


def test_bench_report_compares_implementations_rounds_and_keeps_one_dir_per_file(tmp_path):
    """issue #28 item 19: the README's own bench command gave one dot, report.md printed
    15798879.53…, and a second bench file overwrote the first one's report."""
    one_size = pd.DataFrame({"impl": ["jaxbp_vmap", "jaxbp_sequential", "numpy_batched"], "device": "cpu",
                             "num_seeds": [10000, 256, 10000], "epochs": 1000, "hidden": 3,
                             "seed_epochs_per_s": [15798879.5312, 1.4e6, 1.9e6], "wall_s": [0.6329113924, 0.2, 5.3]})
    one_size.to_csv(tmp_path / "bench.csv", index=False)
    one_size.assign(device="gpu").to_csv(tmp_path / "bench_gpu.csv", index=False)
    assert report.main([str(tmp_path / "bench.csv")]) == 0
    assert report.main([str(tmp_path / "bench_gpu.csv")]) == 0
    for name, device in (("bench_report", "cpu"), ("bench_gpu_report", "gpu")):
        text = (tmp_path / name / "report.md").read_text()
        assert f"| jaxbp_vmap | {device} | 10000 | 1000 | 3 | 15,798,880 | 0.633 |" in text
        assert "15798879.53" not in text and "(comparison.png)" in text
        assert {p.name for p in (tmp_path / name).glob("*.png")} == {"comparison.png"}  # one size: no scaling
    fig = figures.bench_comparison(one_size, "t")
    notes = {t.get_text() for t in fig.axes[0].texts}
    assert notes == {"1.4e+06/s, 256 seeds; vmap is 11.3× this", "1.9e+06/s, 10,000 seeds; vmap is 8.32× this",
                     "1.58e+07/s, 10,000 seeds"}


@pytest.mark.parametrize("value, low, high, shown", [
    (0.00277, 0.00266, 0.002876, ["0.00277", "0.00266", "0.00288"]),
    (0.125, 0.1249, 0.13, ["0.125", "0.125", "0.130"]),
    (12.5, 11.0, 14.0, ["12.5", "11.0", "14.0"]),
    (0.0, 0.0, 0.001, ["0", "0", "0.001"])])
def test_a_figure_and_its_interval_share_one_precision(value, low, high, shown):
    """issue #28 item 22: report.md printed "0.00277 (CI 0.00266–0.002876)"."""
    assert report.same_precision(value, low, high) == shown


def test_a_job_line_says_1_epoch_not_1_epochs():
    summary = {"config": {"data": {"name": "file"}, "optim": {"name": "sgd"}, "lr": 0.5, "epochs": 100,
                          "target_loss": 0.01}, "num_seeds": 4, "spec": [2, 1], "success_rate": 1.0,
               "success_ci_low": 0.5, "success_ci_high": 1.0, "epochs_to_target_km_median": 1, "diverged_rate": 0.0,
               "wall_s": 1.0, "compile_s": 0.5}
    assert "median 1 epoch to target" in job.describe(summary, "d")
