"""``python -m jaxbp.report <path> [--seed N] [--zoom x0,x1,y0,y1]``: figures and a ``report.md``.

It reads results only through :mod:`jaxbp.results`: a sweep dir (its ``sweep.csv`` and the
job dirs it lists; a sweep that has not finished gets a partial report of its finished
jobs, an Optuna study a search view), a run dir (one whose job failed is reported as
failed, with its reason), an atlas dir, or a benchmark CSV (the implementations compared,
and throughput against seeds); it never writes a result file. ``--seed N`` draws one
network of a run. Output goes to ``<dir>/report/`` (next to a benchmark's ``<name>.csv``,
``<name>_report/``). How fast seeds learn is shown by Kaplan–Meier curves, which count the
seeds that never reached the target too. Anything it cannot use ends the command with one
line and exit status 2."""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from jaxbp import pipes, results, stats
from jaxbp.checks import ConfigError

FIGURE_DPI = 110
# What a run or sweep report draws; one it did not draw this time is removed, not left stale.
FIGURE_NAMES = ("success_rate.png", "curves.png", "final_loss.png", "km.png", "decision_boundaries.png",
                "epochs_to_target.png", "test_loss.png", "search.png", "diagnosis.png")
SEARCH_KEYS = ("trial",)  # sweep.csv columns before `job` that number an Optuna trial, not a key
FAINT_SEEDS = 30  # single seeds drawn behind a run's median curve
BOUNDARY_SEEDS = 4  # networks in a run's decision-boundary figure
BAR_ROWS = 60  # training rows in a seed's output bar chart


class ReportError(Exception):
    """A directory or file the report cannot use; the message is one line."""


def kind_of(path: Path) -> str:
    """``bench``, ``atlas``, ``sweep``, ``failed`` (a run dir with ``failed.json``) or ``run``."""
    if not path.exists():
        raise ReportError(f"{path} does not exist")
    if path.is_file() and path.suffix == ".csv":
        try:
            columns = pd.read_csv(path, nrows=0).columns
        except (OSError, ValueError, pd.errors.ParserError):
            raise ReportError(f"{path} cannot be read as a CSV table") from None
        if "seed_epochs_per_s" in columns:
            return "bench"
    if path.is_dir():
        if (path / "atlas.npz").is_file():
            return "atlas"
        if any((path / name).is_file() for name in ("sweep.csv", "sweep.json", "multirun.yaml")) or any(
                path.glob(f"*/{results.MARKER}")) or any(path.glob("*/.hydra")):
            return "sweep"
        if (path / results.FAILED).is_file():
            return "failed"
        if any((path / name).is_file() for name in (results.MARKER, "summary.json", "seeds.csv")):
            return "run"
    raise ReportError(f"{path} is neither a jaxbp run dir (seeds.csv, summary.json), a sweep dir "
                      "(sweep.csv), an atlas dir (atlas.npz) nor a bench.csv")


def failed_run(path: Path) -> list[Path]:
    """A run dir whose job failed: nothing to draw; the refusal says why it failed."""
    try:
        reason = results.JobDir(path).failure().get("reason") or "no reason recorded"
    except (results.ResultsError, AttributeError):
        reason = "its failed.json cannot be read"
    raise ReportError(f"{path} is a run that failed, so it has no results to report: "
                      f"{str(reason).splitlines()[0]}")


def _write_report(out: Path, text: list[str], figs: list[Path]) -> list[Path]:
    """Writes ``report.md`` (``text`` and the figures) and removes figures of an earlier
    report that this one did not draw; returns the files written."""
    for name in set(FIGURE_NAMES) - {p.name for p in figs}:
        (out / name).unlink(missing_ok=True)
    text = text + [f"![{p.stem}]({p.name})" for p in figs]
    results.write_text(out / "report.md", "\n".join(text) + "\n")
    return [*figs, out / "report.md"]


def _save(fig, out: Path, name: str) -> Path:
    """Writes a ``Figure`` (no pyplot: it renders with Agg itself) atomically as ``out/name``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    results.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=FIGURE_DPI, format="png"))
    return path


# ---------------------------------------------------------------- reading a job
class Job(NamedTuple):
    """A complete job as the report needs it."""

    label: str
    dir: results.JobDir
    summary: dict
    seeds: pd.DataFrame
    figures: dict  # stats.SUMMARY_COLUMNS
    survival: stats.Survival

    @property
    def config(self) -> dict:
        return self.summary["config"]


def read_job(path: Path, label: str = "") -> Job:
    """A complete job dir's summary, seeds and figures (those of summary.json, which
    ``sweep.csv`` shows too; recomputed for a dir written before they existed)."""
    job = results.JobDir(path)
    why = job.why_incomplete()
    if why is not None:
        raise ReportError(f"{path} is not a complete jaxbp job ({why})")
    summary = job.summary()
    cfg = summary.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("epochs"), int) or not isinstance(summary.get("spec"), list):
        raise ReportError(f"{path / 'summary.json'} lacks the job's config or spec (written by another jaxbp?)")
    seeds = job.seeds()
    figures = ({k: summary[k] for k in stats.SUMMARY_COLUMNS} if all(k in summary for k in stats.SUMMARY_COLUMNS)
               else stats.summarize_seeds(seeds, cfg["epochs"]))
    return Job(label, job, summary, seeds, figures, stats.kaplan_meier(seeds, cfg["epochs"]))


# ---------------------------------------------------------------- words for figures
def same_precision(value: float, *others: float, digits: int = 3) -> list[str]:
    """``value`` to ``digits`` significant digits and ``others`` (its interval) to the same
    decimal places: ``0.00277 (CI 0.00266–0.00288)``, never ``0.00277 (CI 0.00266–0.002876)``."""
    numbers = [value, *others]
    if not all(np.isfinite(numbers)) or value == 0 or abs(value) >= 10 ** digits or abs(value) < 1e-4:
        return [format(v, f".{digits}g") for v in numbers]
    decimals = max(0, digits - 1 - int(np.floor(np.log10(abs(value)))))
    return [f"{v:.{decimals}f}" for v in numbers]


def _fmt(value, spec: str = ".4g") -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def target_phrase(cfg: dict) -> str:
    """What "reaching the target" means under the job's criterion."""
    from jaxbp.config import criterion_phrase

    return criterion_phrase(cfg)


def median_text(figures: dict, epochs: int) -> str:
    """The Kaplan–Meier median with its interval: ``120 [95, 160]``, ``not reached``."""
    median = figures.get("epochs_to_target_km_median")
    if median is None:
        return "not reached"
    low, high = figures.get("epochs_to_target_km_median_ci_low"), figures.get("epochs_to_target_km_median_ci_high")
    return f"{median:.0f} [{_fmt(low, '.0f') or '?'}, {'>' + str(epochs) if high is None else format(high, '.0f')}]"


def _ci(value, low, high, spec=".3g", scale=1.0, missing="—") -> str:
    """``value [low, high]``; an upper bound that is unbounded (a resample where no seed
    solved costs infinitely many epochs) reads ``∞``."""
    if value is None:
        return missing
    low = "?" if low is None else format(scale * low, spec)
    high = "∞" if high is None else format(scale * high, spec)
    return f"{scale * value:{spec}} [{low}, {high}]"


def _mean_converged(figures: dict) -> str:
    """The mean epochs to target of the converged seeds with its bootstrap CI; ``—`` when no
    seed converged or the job predates the figure."""
    return _ci(figures.get("epochs_to_target_mean_converged"), figures.get("epochs_to_target_mean_converged_ci_low"),
               figures.get("epochs_to_target_mean_converged_ci_high"), ".0f")


def describe_job(summary: dict, swept=()) -> str:
    """What the job trained, leaving out what a sweep varies."""
    cfg = summary["config"]
    sizes = "" if {"hidden", "depth"} & set(swept) else " " + "-".join(map(str, summary["spec"]))
    optim = "" if "optim" in swept else f", {cfg.get('optim', {}).get('name', '?')}"
    lr = "" if "lr" in swept else f" lr={cfg.get('lr', float('nan')):g}"
    epochs = "" if "epochs" in swept else f", {cfg['epochs']} epochs"
    return (f"{cfg.get('data', {}).get('name', '?')}{sizes} {cfg.get('activation')}/{cfg.get('output')}/"
            f"{cfg.get('loss')}{optim}{lr}{epochs}, {summary.get('num_seeds', '?')} seeds")


def _markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _diverged(job: Job) -> set:
    return set(job.seeds.loc[job.seeds["diverged"].astype(bool), "seed"])


def _diverged_note(job: Job) -> str:
    n, diverged = len(job.seeds), len(_diverged(job))
    return "" if not diverged else f"all {n} diverged" if diverged == n else f"{diverged} of {n} diverged"


# ---------------------------------------------------------------- figures both reports draw
def _curve_figure(jobs: list[Job], kept: dict[str, pd.DataFrame], what: str, single: bool):
    """Median and IQR of the kept curves per job, on a y range that diverged seeds do not
    stretch; the title says how many seeds' curves that is (``curve_seeds``, not ``num_seeds``)."""
    from jaxbp import figures

    by_label = {j.label: j for j in jobs}
    steady = [c[~c["seed"].isin(_diverged(by_label[n]))] for n, c in kept.items()]
    limits = figures.loss_limits([c for c in steady if len(c)] or list(kept.values()))
    cover = {n: f"{c['seed'].nunique()} of {len(by_label[n].seeds)} seeds' curves" for n, c in kept.items()}
    same = len(set(cover.values())) == 1  # else each panel says how many curves it holds
    notes = {n: ", ".join(t for t in ("" if same else cover[n], _diverged_note(by_label[n])) if t) for n in kept}
    title = f"Train loss, median and IQR over {next(iter(cover.values())) if same else 'the kept curves'}"
    if single:
        title += f"; grey: {min(FAINT_SEEDS, kept[jobs[0].label]['seed'].nunique())} single seeds"
    return figures.curve_panels(kept, f"{title}: {what}", faint=FAINT_SEEDS if single else 0, notes=notes,
                                limits=limits, last_epoch=jobs[0].config["epochs"] if single else None)


def _common_figures(jobs: list[Job], out: Path, what: str, single: bool) -> tuple[list[Path], list[str]]:
    """Loss curves (when kept), final losses and Kaplan–Meier curves; and notes for report.md."""
    from jaxbp import figures

    figs, notes = [], []
    curves = {j.label: j.dir.curves() for j in jobs}
    kept = {name: c for name, c in curves.items() if len(c)}
    lost = [name for name, c in curves.items() if not len(c)]
    if lost:
        which = "" if single else f" for {', '.join(lost)}"
        notes.append(f"No loss curves were kept{which} (curve_seeds=0), so they are not drawn.")
    if kept:
        figs.append(_save(_curve_figure(jobs, kept, what, single), out, "curves.png"))
    cfg = jobs[0].config
    target = cfg.get("target_loss") if cfg.get("criterion", "loss") == "loss" else None
    figs.append(_save(figures.final_loss_panels(
        {j.label: pd.to_numeric(j.seeds["final_loss"], errors="coerce").to_numpy(float) for j in jobs},
        f"Final train loss per seed{f' (dashed: target {target:g})' if target else ''}: {what}", target),
        out, "final_loss.png"))
    medians = {j.label: median_text(j.figures, j.config["epochs"]) for j in jobs}
    figs.append(_save(figures.km_curves(
        {j.label: j.survival for j in jobs}, medians,
        f"Seeds at {target_phrase(cfg)} by epoch (Kaplan–Meier, 95% band; seeds that never got there "
        f"count throughout): {what}"), out, "km.png"))
    return figs, notes


# ---------------------------------------------------------------- a sweep
def _sweep_jobs(sweep_dir: Path, table: pd.DataFrame, keys: list[str]) -> tuple[list[Job], pd.DataFrame, list[str]]:
    """The ok jobs that can be read, their sweep.csv rows, and a note per job left out."""
    jobs, rows, notes = [], [], []
    for _, row in table.iterrows():
        if row["status"] != "ok":
            reason = row.get("reason")
            notes.append(f"job {row['job']} ({row['status']}) skipped: "
                         f"{'no reason recorded' if pd.isna(reason) else reason}")
            continue
        try:
            jobs.append(read_job(sweep_dir / str(row["job_dir"])))
            rows.append(row)
        except (ReportError, results.ResultsError) as err:
            notes.append(f"job {row['job']} skipped: {err}")
    if not jobs:
        raise ReportError(f"{sweep_dir} has no finished jobs ({len(table)} listed in sweep.csv)")
    ok = pd.DataFrame(rows).reset_index(drop=True)
    swept = [k for k in keys if ok[k].nunique(dropna=False) > 1]
    from jaxbp.figures import label

    labels = [" ".join(f"{k}={label(r[k])}" for k in swept) for _, r in ok.iterrows()]
    # Jobs alike in every sweep.csv key (or a sweep of one job) are told apart by number.
    labels = [f"{text} (job {r['job']})".strip() if not text or labels.count(text) > 1 else text
              for text, (_, r) in zip(labels, ok.iterrows())]
    return [j._replace(label=text) for j, text in zip(jobs, labels)], ok[swept + ["job"]], notes


def _sweep_table(jobs: list[Job], keys: pd.DataFrame) -> pd.DataFrame:
    """One row per job: success, speed (Kaplan–Meier and converged-only), cost and losses."""
    rows = []
    for job, (_, key) in zip(jobs, keys.iterrows()):
        f, n = job.figures, len(job.seeds)
        final = pd.to_numeric(job.seeds["final_loss"], errors="coerce")
        low, high = stats.bootstrap_ci(final, np.median)
        rows.append({
            **{k: _fmt(v, "g") if isinstance(v, float) else v for k, v in key.items()},
            "success % [95% CI]": _ci(f["success_rate"], f["success_ci_low"], f["success_ci_high"], ".1f", 100),
            "median epochs to target, all seeds (KM) [95% CI]": median_text(f, job.config["epochs"]),
            "median epochs, converged seeds only": _fmt(f["epochs_to_target_median_converged"], ".0f") or "—",
            "mean epochs, converged seeds only [95% CI]": _mean_converged(f),
            "epochs with restarts [95% CI]": _ci(f["epochs_with_restarts"], f["epochs_with_restarts_ci_low"],
                                                 f["epochs_with_restarts_ci_high"], ".0f"),
            "median final loss [95% CI]": _ci(f["final_loss_median"], low, high, missing="— (all diverged)"),
            "test acc %": _fmt(f["test_acc_mean"] and 100 * f["test_acc_mean"], ".1f") or "—",
            "diverged": f"{round((f['diverged_rate'] or 0) * n)} of {n}",
        })
    return pd.DataFrame(rows)


def _partial_table(sweep_dir: Path) -> pd.DataFrame:
    """sweep.csv's key and status columns for a sweep that has not written it yet, from its
    ``jobs.json`` and job dirs (read only: the sweep itself writes sweep.csv at its end)."""
    from jaxbp.sweep import override_values

    entries = results.SweepDir(sweep_dir).jobs()
    if not entries:
        raise ReportError(f"{sweep_dir} has no sweep.csv and no jobs.json: no jobs of this sweep to report")
    rows = []
    for entry in sorted(entries, key=lambda e: int(e["num"])):
        job_dir = str(entry.get("dir") or entry["num"])
        job = results.JobDir(sweep_dir / job_dir)
        status = job.status()
        reason = (job.failure().get("reason", "") if status == "failed" else
                  "" if status == "ok" else "not finished yet")
        trial = {"trial": int(entry["trial"])} if "trial" in entry else {}
        rows.append({**override_values(entry["overrides"]), **trial, "job": int(entry["num"]), "job_dir": job_dir,
                     "status": status, "reason": reason})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    keys = [c for c in columns if c not in ("job", "job_dir", "status", "reason")]
    frame = pd.DataFrame(rows, columns=keys + ["job", "job_dir", "status", "reason"])
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype={"job_dir": str})  # typed as sweep.csv is


def _test_loss_figure(jobs: list[Job], what: str):
    """Mean final train and test loss per job, side by side: where the gap opens, the job overfits."""
    from jaxbp import figures

    frame = pd.DataFrame({"job": [j.label for j in jobs],
                          "train": [j.figures.get("final_loss_mean") for j in jobs],
                          "test": [j.figures.get("test_loss_mean") for j in jobs]})
    return figures.train_test_losses(frame, f"Mean final loss over seeds, train and test: {what}")


def _search_figure(sweep_dir: Path, table: pd.DataFrame, jobs: list[Job], keys: pd.DataFrame, what: str):
    """An Optuna study: its objective against each searched parameter, and the best so far."""
    from jaxbp import figures

    best = _read_best(sweep_dir)
    objective, direction = best.get("objective", "success_rate"), best.get("direction", "maximize")
    trial_of = dict(zip(table["job"], table["trial"]))
    frame = keys.assign(trial=[int(trial_of[j]) for j in keys["job"]],
                        objective=[job.figures[objective] if objective in job.figures else job.summary.get(objective)
                                   for job in jobs])
    params = [k for k in keys.columns if k not in ("job", "trial")]
    return figures.search_view(frame, params, _log_keys(sweep_dir, params), objective, direction,
                               f"Optuna search, {len(frame)} trials: {objective} ({direction}): {what}")


def _read_best(sweep_dir: Path) -> dict:
    import json

    try:
        return json.loads((sweep_dir / "best.json").read_text())
    except (OSError, ValueError):
        return {}


def _log_keys(sweep_dir: Path, params: list[str]) -> set[str]:
    """The parameters searched on a log scale (``tag(log, ...)`` in the sweep's overrides or
    ``hydra.sweeper.params``, as multirun.yaml records them)."""
    try:
        text = (sweep_dir / "multirun.yaml").read_text()
    except OSError:
        return set()
    return {k for k in params if re.search(rf"(^|[\s'\"]){re.escape(k)}[=:]\s*'?tag\([^)]*log", text, re.M)}


def report_sweep(sweep_dir: Path) -> list[Path]:
    """``<sweep_dir>/report/``: success rates, loss curves, final losses, Kaplan–Meier curves
    and a table per job; returns the files written."""
    from jaxbp import compare, figures

    partial = not (sweep_dir / "sweep.csv").is_file()
    table = _partial_table(sweep_dir) if partial else results.SweepDir(sweep_dir).table()
    search = "trial" in table.columns
    jobs, keys, notes = _sweep_jobs(sweep_dir, table, [k for k in compare.sweep_keys(table) if k not in SEARCH_KEYS])
    swept = list(keys.columns[:-1])
    what = describe_job(jobs[0].summary, swept)
    out = sweep_dir / "report"
    rates = keys.assign(**{k: [j.figures[k] for j in jobs] for k in ("success_rate", "success_ci_low",
                                                                     "success_ci_high")})
    figs = []
    title = f"Seeds converged ({target_phrase(jobs[0].config)} at the end): {what}"
    if search:
        figs.append(_save(_search_figure(sweep_dir, table, jobs, keys, what), out, "search.png"))
    elif len(swept) >= 2:
        figs.append(_save(figures.success_heatmap(rates, swept[0], swept[1], swept[2:], title), out,
                          "success_rate.png"))
    elif len(swept) == 1:
        figs.append(_save(figures.success_bars(rates, swept[0], title), out, "success_rate.png"))
    # An Optuna study's trials are points of a search, not a grid: one panel each would be noise.
    more, curve_notes = ([], []) if search else _common_figures(jobs, out, what, single=False)
    if not search and any(j.figures.get("test_loss_mean") is not None for j in jobs):
        more.append(_save(_test_loss_figure(jobs, what), out, "test_loss.png"))
    text = [f"# Sweep report: {sweep_dir.name}" + (" (partial)" if partial else ""), ""]
    if partial:
        text += [f"The sweep has not finished (no sweep.csv yet): {len(jobs)} of {len(table)} jobs are "
                 "complete and reported here; rerun the sweep command to finish it.", ""]
        print(f"report: partial, {len(jobs)} of {len(table)} jobs finished (no sweep.csv yet)", file=sys.stderr)
    text += [f"{what}; swept: {', '.join(swept) or 'nothing'}.",
            "Success rates carry Wilson 95% intervals. Epochs to target: the Kaplan–Meier median counts "
            "every seed (half of all seeds had reached the target by then; 'not reached' when fewer than "
            "half ever did); the converged-only median ignores the seeds that never got there. Epochs with "
            "restarts: Fahlman's expected cost when failed seeds are restarted. Other medians carry "
            "percentile-bootstrap 95% intervals.", "", _markdown_table(_sweep_table(jobs, keys)), ""]
    text += curve_notes + ([""] if curve_notes else [])
    if notes:
        text += ["Jobs left out:", *[f"- {n}" for n in notes], ""]
        print(f"report: {len(notes)} job(s) not ok, skipped (see report.md)", file=sys.stderr)
    return _write_report(out, text, figs + more)


# ---------------------------------------------------------------- a run
def _run_lines(job: Job) -> list[str]:
    f, cfg, n = job.figures, job.config, len(job.seeds)
    epochs = cfg["epochs"]
    low, high = stats.bootstrap_ci(pd.to_numeric(job.seeds["final_loss"], errors="coerce"), np.median)
    lines = [
        f"- converged ({target_phrase(cfg)} at the end): {100 * f['success_rate']:.1f}% of {n} seeds "
        f"(Wilson 95% CI {100 * f['success_ci_low']:.1f}–{100 * f['success_ci_high']:.1f}%)",
        f"- median epochs to target, all seeds (Kaplan–Meier): {median_text(f, epochs)}"
        + (f" ({100 * (f['solved_by_end'] or 0):.0f}% of seeds got there in {epochs} epochs)"
           if f["epochs_to_target_km_median"] is None else ""),
        f"- median epochs to target, converged seeds only: "
        f"{_fmt(f['epochs_to_target_median_converged'], '.0f') or '—'}",
        "- mean epochs to target, converged seeds only (the classic papers' statistic; bootstrap 95% CI): "
        + _mean_converged(f),
        "- expected epochs with restarts (Fahlman): " + _ci(
            f["epochs_with_restarts"], f["epochs_with_restarts_ci_low"], f["epochs_with_restarts_ci_high"], ".0f",
            missing="— (no seed solved)"),
        "- median final loss: " + (
            "{} (bootstrap 95% CI {}–{})".format(*same_precision(f["final_loss_median"], low, high))
            if f["final_loss_median"] is not None else "none finite: every seed diverged"),
    ]
    if job.summary.get("data", {}).get("classes", True):
        accuracy = [f"{name} {100 * f[key]:.1f}%" for name, key in (("train", "train_acc_mean"),
                                                                    ("test", "test_acc_mean")) if f[key] is not None]
        if accuracy:
            lines.append(f"- mean accuracy: {', '.join(accuracy)}")
    diverged = round((f["diverged_rate"] or 0) * n)
    stopped = int(pd.to_numeric(job.seeds.get("stopped_epoch", pd.Series(dtype=float)), errors="coerce").notna().sum())
    if diverged:
        lines.append(f"- diverged: {diverged} of {n} seeds")
    if stopped:
        lines.append(f"- stopped early (patience {cfg.get('patience')}): {stopped} of {n} seeds; "
                     "their curves end there (×)")
    lines.append(f"- wall {job.summary.get('wall_s', float('nan')):.2f} s, compile "
                 f"{job.summary.get('compile_s', float('nan')):.2f} s on {job.summary.get('device', '?')}")
    return lines


def report_run(run_dir: Path) -> list[Path]:
    """``<run_dir>/report/``: loss curves, final losses, Kaplan–Meier curve, decision
    boundaries for 2-D inputs, and the job's figures; returns the files written."""
    job = read_job(run_dir, "all seeds")
    what, out = describe_job(job.summary), run_dir / "report"
    figs, notes = _common_figures([job], out, what, single=True)
    if job.summary["spec"][0] == 2:
        try:
            figs.append(_save(_boundaries(run_dir, job, what), out, "decision_boundaries.png"))
        except (ReportError, results.ResultsError) as err:
            notes.append(f"No decision boundaries: {err}.")
    lines = _run_lines(job)
    if (run_dir / results.DIAGNOSIS).is_file():  # written by python -m jaxbp.diagnose
        from jaxbp import diagnose_figure

        diagnosis = job.dir.diagnosis()
        figs.append(_save(diagnose_figure.diagnosis_figure(diagnosis, what), out, "diagnosis.png"))
        lines += diagnose_figure.diagnosis_lines(diagnosis)
    text = [f"# Run report: {run_dir.name}", "", what + ".", "", *lines, ""]
    text += notes + ([""] if notes else [])
    return _write_report(out, text, figs)


# ---------------------------------------------------------------- networks on the input plane
def _load_run(run_dir: Path) -> results.Run:
    try:
        return results.load_run(run_dir)
    except ConfigError as err:
        raise ReportError(f"{run_dir}: its config cannot be read back ({err})") from None


def _targets(run: results.Run) -> tuple[str, np.ndarray]:
    """``binary``, ``classes`` or ``values``, and each training row's class or target."""
    y = run.dataset.y_train
    if not run.dataset.classes:
        return "values", y[:, 0]
    return ("binary", (y[:, 0] > 0.5).astype(int)) if y.shape[1] == 1 else ("classes", y.argmax(axis=1))


def _surface(run: results.Run, params, points: np.ndarray, targets: str) -> np.ndarray:
    """The network's prediction at ``points``: P(class 1), the argmax class, or output 1."""
    from jaxbp import model

    with np.errstate(all="ignore"):  # a diverged seed's huge weights overflow: drawn as missing
        output = np.asarray(model.forward(run.spec, params, points.astype(np.float32)))
    if not np.isfinite(output).all():
        return None
    return output.argmax(axis=1) if targets == "classes" else output[:, 0]


def _boundary_seeds(seeds: pd.DataFrame, count: int = BOUNDARY_SEEDS) -> dict[int, str]:
    """Up to ``count`` seeds, converged ones and at least one that did not converge (when
    there is one), in proportion: ``{seed: "converged" | "not converged, loss …" | "diverged"}``."""
    converged = seeds[seeds["converged"].astype(bool)]
    failed = seeds[~seeds["converged"].astype(bool)].sort_values("diverged", kind="stable")
    count = min(count, len(seeds))
    n_failed = 0 if failed.empty else max(1, round(count * len(failed) / len(seeds)))
    n_failed = max(min(n_failed, count - (not converged.empty)), count - len(converged))
    picked = pd.concat([converged.head(count - n_failed), failed.head(n_failed)])

    def state(row):
        return ("converged" if row["converged"] else "diverged" if row["diverged"]
                else f"not converged, loss {row['final_loss']:.3g}")
    return {int(row["seed"]): state(row) for _, row in picked.iterrows()}


def _boundaries(run_dir: Path, job: Job, what: str):
    from jaxbp import figures

    run = _load_run(run_dir)
    targets, y = _targets(run)
    title = "Predicted output over the input plane" if targets == "values" else "Decision boundaries"
    x = run.dataset.x_train
    gx, gy = figures.plane(x)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    surfaces = {}
    for seed, state in _boundary_seeds(job.seeds).items():
        surface = _surface(run, run.params(seed), points, targets)
        surfaces[f"seed {seed}: {state}"] = None if surface is None else surface.reshape(gx.shape)
    kind = {"binary": "P(class 1)", "classes": "the predicted class", "values": "the predicted output"}[targets]
    scale = " (standardised)" if run.cfg.data.standardize else ""
    return figures.decision_boundaries(x, y, surfaces, gx, gy, targets,
                                       f"{title}: {what}; shading: {kind}; points: training rows", scale)


def report_seed(run_dir: Path, seed: int) -> list[Path]:
    """``<run_dir>/report/seed_<seed>.png``: one network's curve, boundary and hidden units."""
    from jaxbp import figures

    job = read_job(run_dir)
    rows = job.seeds[job.seeds["seed"] == seed]
    if rows.empty:
        raise ReportError(f"seed {seed} is not in {run_dir} (its seeds are "
                          f"{job.seeds['seed'].min()}–{job.seeds['seed'].max()})")
    run = _load_run(run_dir)
    params = run.params(seed)
    curves = job.dir.curves()
    curve = curves[curves["seed"] == seed].sort_values("epoch") if len(curves) else None
    targets, y = _targets(run)
    x = run.dataset.x_train
    boundary, units = None, None
    if run.spec.sizes[0] == 2:
        gx, gy = figures.plane(x)
        surface = _surface(run, params, np.stack([gx.ravel(), gy.ravel()], axis=1), targets)
        if surface is not None:
            boundary = {"x": x, "y": y, "gx": gx, "gy": gy, "surface": surface.reshape(gx.shape), "targets": targets}
        layer = "hidden units" if run.spec.num_layers > 1 else "output units (no hidden layer)"
        units = {"W": params[0]["W"], "b": params[0]["b"], "x": x, "y": y, "targets": targets,
                 "title": f"{layer}: w·x + b = 0"}
    else:
        from jaxbp import model

        shown = x[:BAR_ROWS].astype(np.float32)
        with np.errstate(all="ignore"):
            output = np.asarray(model.forward(run.spec, params, shown))
        units = {"output": output, "target": run.dataset.y_train[:BAR_ROWS]}
    state = _boundary_seeds(rows, 1)[seed]
    title = f"Seed {seed} ({state}): {describe_job(job.summary)}"
    target = job.config.get("target_loss", 0) if job.config.get("criterion", "loss") == "loss" else None
    fig = figures.seed_figure(curve, job.config["epochs"], target, boundary, units, title)
    return [_save(fig, run_dir / "report", f"seed_{seed}.png")]


# ---------------------------------------------------------------- benchmarks, atlases
def report_bench(path: Path) -> list[Path]:
    """``<stem>_report/`` next to the bench file (``bench.csv`` -> ``bench_report/``, so two
    bench files in one folder keep their own reports): the implementations compared at one
    size (``comparison.png``), throughput against seeds where a series has several sizes
    (``scaling.png``), and the table with rounded numbers. Returns the files written."""
    from jaxbp import figures

    try:
        bench = pd.read_csv(path)  # a bench.csv is the benchmark's own table, not a job file
    except (OSError, ValueError, pd.errors.ParserError):
        raise ReportError(f"{path} cannot be read as a CSV table") from None
    missing = [c for c in ("impl", "device", "num_seeds", "seed_epochs_per_s") if c not in bench.columns]
    if missing:
        raise ReportError(f"{path} lacks the columns {missing} of a jaxbp bench.csv")
    rows = bench.assign(num_seeds=pd.to_numeric(bench["num_seeds"], errors="coerce"),
                        seed_epochs_per_s=pd.to_numeric(bench["seed_epochs_per_s"], errors="coerce")).dropna(
        subset=["num_seeds", "seed_epochs_per_s"])
    if rows.empty:
        raise ReportError(f"{path} has no rows with numbers to draw")
    out, figs = path.parent / f"{path.stem}_report", []
    compared = rows[~rows["impl"].astype(str).str.endswith("_scaling")]
    if compared["impl"].nunique() >= 2:
        figs.append(_save(figures.bench_comparison(compared, f"Implementations compared: {_bench_job(bench)}"),
                          out, "comparison.png"))
    series = rows.assign(impl=rows["impl"].astype(str).str.removesuffix("_scaling"))
    series = series[series.groupby(["impl", "device"])["num_seeds"].transform("nunique") >= 2]
    if not series.empty:
        figs.append(_save(figures.scaling(series, "Throughput against seeds trained at once"), out, "scaling.png"))
    if not figs:  # one row: its number is the report
        figs.append(_save(figures.bench_comparison(rows, f"Throughput: {_bench_job(bench)}"), out, "comparison.png"))
    for stale in {"comparison.png", "scaling.png"} - {p.name for p in figs}:
        (out / stale).unlink(missing_ok=True)
    images = "\n".join(f"![{p.stem}]({p.name})" for p in figs)
    table = _markdown_table(_rounded(bench))
    results.write_text(out / "report.md", f"# Benchmark: {path.name}\n\n{table}\n\n{images}\n")
    return [*figs, out / "report.md"]


def _bench_job(bench: pd.DataFrame) -> str:
    """``1000 epochs, hidden 3, cpu``: what every row of a bench file trained."""
    parts = [f"{bench[c].iloc[0]} {name}" for c, name in (("epochs", "epochs"), ("hidden", "hidden units"))
             if c in bench.columns and bench[c].nunique() == 1]
    return ", ".join(parts + [", ".join(map(str, bench["device"].unique()))])


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Floats as a reader wants them: 3 significant digits, big ones whole with separators."""
    def show(value):
        if not isinstance(value, float) or not np.isfinite(value):
            return value
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return frame.apply(lambda column: column.map(show) if column.dtype.kind == "f" else column)


def _zoom_box(text: str) -> tuple[float, ...]:
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise argparse.ArgumentTypeError("expected four numbers x0,x1,y0,y1")
    return box


def joined_negative_values(argv: list[str], options=("--zoom",)) -> list[str]:
    """``--zoom -1,0,-2,-1`` -> ``--zoom=-1,0,-2,-1``: argparse reads a value that starts
    with ``-`` (and is not one plain negative number) as an option, and boxes left of or
    below the origin are common."""
    argv, joined = list(argv), []
    while argv:
        arg = argv.pop(0)
        if arg in options and argv and re.match(r"-[\d.]", argv[0]):
            arg = f"{arg}={argv.pop(0)}"
        joined.append(arg)
    return joined


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxbp.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a run dir, a sweep dir, a bench.csv or an atlas dir")
    parser.add_argument("--seed", type=int, help="a run dir's seed: draw that one network into report/seed_N.png")
    parser.add_argument("--zoom", type=_zoom_box, help="an atlas dir: re-run it inside x0,x1,y0,y1 "
                        "(negative numbers allowed: --zoom -1,0,-2,-1) and report that")
    args = parser.parse_args(joined_negative_values(sys.argv[1:] if argv is None else argv))
    try:
        kind = kind_of(args.path)
        if args.seed is not None and kind != "run":
            raise ReportError(f"--seed draws one network of a run dir; {args.path} is a {kind}")
        if args.seed is not None:
            kind, files = "seed", report_seed(args.path, args.seed)
        elif kind == "atlas":
            from jaxbp import atlas

            files = atlas.report_atlas(args.path, args.zoom)
        else:
            files = {"sweep": report_sweep, "run": report_run, "bench": report_bench,
                     "failed": failed_run}[kind](args.path)
    except (ReportError, results.ResultsError, ConfigError) as err:
        print(f"jaxbp.report: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    made = [p.name for p in files if p.suffix == ".png"]
    markdown = " and report.md" if any(p.name == "report.md" for p in files) else ""
    print(f"{kind} report: {len(made)} figure{'s' if len(made) != 1 else ''} ({', '.join(made)}){markdown} "
          f"→ {files[0].parent}")
    return 0


if __name__ == "__main__":
    pipes.main(main)
