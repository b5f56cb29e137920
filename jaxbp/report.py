"""``python -m jaxbp.report <run-or-sweep-dir>``: figures and a ``report.md`` from results.

It only reads files: a sweep dir (``sweep.csv`` and its job dirs), a run dir (``seeds.csv``,
``curves.csv``, ``summary.json``), or a ``bench.csv`` (throughput against seeds). Output goes
to ``<dir>/report/`` (next to a ``bench.csv``, ``bench_report/``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from jaxbp import results, stats

FIGURE_DPI = 110


class ReportError(Exception):
    """A directory or file the report cannot use; the message is one line."""


def kind_of(path: Path) -> str:
    if path.is_file() and path.suffix == ".csv" and "seed_epochs_per_s" in pd.read_csv(path, nrows=0):
        return "bench"
    if path.is_dir() and ((path / "sweep.csv").is_file() or (path / "multirun.yaml").is_file()):
        return "sweep"
    if path.is_dir() and (path / "summary.json").is_file() and (path / "seeds.csv").is_file():
        return "run"
    raise ReportError(f"{path} is neither a jaxbp run dir (seeds.csv, summary.json), a sweep dir "
                      "(sweep.csv) nor a bench.csv")


def _save(fig, out: Path, name: str) -> Path:
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    results.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=FIGURE_DPI, format="png"))
    plt.close(fig)
    return path


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def _markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _job_label(row: pd.Series, swept: list[str]) -> str:
    return " ".join(f"{k}={_fmt(row[k])}" for k in swept) or f"job {row['job']}"


def _describe_job(summary: dict, swept=()) -> str:
    """What the run trained, leaving out what a sweep varies."""
    cfg = summary["config"]
    sizes = "" if {"hidden", "depth"} & set(swept) else " " + "-".join(map(str, summary["spec"]))
    optim = "" if "optim" in swept else f", {cfg['optim']['name']}"
    lr = "" if "lr" in swept else f" lr={cfg['lr']:g}"
    epochs = "" if "epochs" in swept else f", {cfg['epochs']} epochs"
    return (f"{cfg['data']['name']}{sizes} {cfg['activation']}/{cfg['output']}/{cfg['loss']}"
            f"{optim}{lr}{epochs}, {summary['num_seeds']} seeds")


def _sweep_figures(sweep_dir: Path, ok: pd.DataFrame, swept: list[str], jobs: dict[str, str],
                   seeds: dict[str, pd.DataFrame], what: str, target: float) -> list[Path]:
    """The sweep's PNGs: success rates, loss curves, final losses, epochs to target."""
    from jaxbp import figures

    out, figs = sweep_dir / "report", []
    success_title = f"Seeds reaching loss ≤ {target:g}: {what}"
    if len(swept) >= 2:
        figs.append(_save(figures.success_heatmap(ok, swept[0], swept[1], swept[2:], success_title),
                          out, "success_rate.png"))
    elif len(swept) == 1:
        figs.append(_save(figures.success_bars(ok, swept[0], success_title), out, "success_rate.png"))
    curves = {jobs[d]: pd.read_csv(sweep_dir / d / "curves.csv") for d in jobs}
    figs.append(_save(figures.curve_panels(curves, f"Train loss, median and IQR across seeds: {what}"),
                      out, "curves.png"))
    figs.append(_save(figures.final_loss_panels(
        {jobs[d]: s["final_loss"].to_numpy(float) for d, s in seeds.items()},
        f"Final train loss per seed (dashed: target {target:g}): {what}", target), out, "final_loss.png"))
    figs.append(_save(figures.epochs_to_target_boxes(
        {jobs[d]: s["epochs_to_target"].to_numpy(float) for d, s in seeds.items()},
        f"Epochs to loss ≤ {target:g}: {what}"), out, "epochs_to_target.png"))
    return figs


def _sweep_table(ok: pd.DataFrame, swept: list[str], seeds: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """sweep.csv's key figures per job, with a bootstrap interval for the median final loss."""
    rows = []
    for _, row in ok.iterrows():
        low, high = stats.bootstrap_ci(seeds[row["job_dir"]]["final_loss"], np.median)
        rows.append({
            **{k: row[k] for k in swept}, "job": row["job"],
            "success % [95% CI]": f"{100 * row['success_rate']:.1f} [{100 * row['success_ci_low']:.1f}, "
                                  f"{100 * row['success_ci_high']:.1f}]",
            "median final loss [95% CI]": f"{row['final_loss_median']:.3g} [{low:.3g}, {high:.3g}]",
            "median epochs to target": _fmt(row["epochs_to_target_median"]),
            "test acc": _fmt(row["test_acc_mean"]),
            "diverged %": f"{100 * row['diverged_rate']:.1f}",
        })
    return pd.DataFrame(rows)


def report_sweep(sweep_dir: Path) -> Path:
    from jaxbp import sweep as sweeps

    table = (pd.read_csv(sweep_dir / "sweep.csv", dtype={"job_dir": str})
             if (sweep_dir / "sweep.csv").is_file() else sweeps.aggregate(sweep_dir)[0])
    ok = table[table["status"] == "ok"].reset_index(drop=True)
    if ok.empty:
        raise ReportError(f"{sweep_dir} has no finished jobs ({len(table)} listed in sweep.csv)")
    keys = list(table.columns[: list(table.columns).index("job")])
    swept = [k for k in keys if ok[k].nunique(dropna=False) > 1]
    jobs = {row["job_dir"]: _job_label(row, swept) for _, row in ok.iterrows()}
    seeds = {d: pd.read_csv(sweep_dir / d / "seeds.csv") for d in jobs}
    first = json.loads((sweep_dir / ok["job_dir"].iloc[0] / "summary.json").read_text())
    what = _describe_job(first, swept)
    figs = _sweep_figures(sweep_dir, ok, swept, jobs, seeds, what, first["config"]["target_loss"])

    failed = table[table["status"] != "ok"]
    notes = [f"- job {r['job']} ({r['status']}) skipped: {r['reason']}" for _, r in failed.iterrows()]
    text = [f"# Sweep report: {sweep_dir.name}", "", f"{what}; swept: {', '.join(swept) or 'nothing'}.",
            "Success rates carry Wilson 95% intervals; medians carry percentile-bootstrap 95% intervals.",
            "", _markdown_table(_sweep_table(ok, swept, seeds)), ""]
    if notes:
        text += ["Jobs left out:", *notes, ""]
    text += [f"![{p.stem}]({p.name})" for p in figs]
    results.write_text(sweep_dir / "report" / "report.md", "\n".join(text) + "\n")
    if notes:
        print(f"report: {len(failed)} job(s) not ok, skipped (see report.md)", file=sys.stderr)
    return sweep_dir / "report"


def report_run(run_dir: Path) -> Path:
    from jaxbp import figures

    if not results.is_complete(run_dir):
        raise ReportError(f"{run_dir} is not a complete run (no {results.MARKER} marker)")
    summary = json.loads((run_dir / "summary.json").read_text())
    seeds, curves = pd.read_csv(run_dir / "seeds.csv"), pd.read_csv(run_dir / "curves.csv")
    what, out, figs = _describe_job(summary), run_dir / "report", []
    figs.append(_save(figures.curve_panels(
        {"median and IQR across seeds; grey: 30 single seeds": curves}, f"Train loss: {what}",
        faint=30), out, "curves.png"))
    target = summary["config"]["target_loss"]
    figs.append(_save(figures.final_loss_panels(
        {"all seeds": seeds["final_loss"].to_numpy(float)},
        f"Final train loss per seed (dashed: target {target:g}): {what}", target), out,
        "final_loss.png"))
    if summary["spec"][0] == 2:
        figs.append(_save(_boundaries(run_dir, summary, f"Decision boundaries: {what}"), out,
                          "decision_boundaries.png"))
    low, high = stats.bootstrap_ci(seeds["final_loss"], np.median)
    text = [f"# Run report: {run_dir.name}", "", what + ".", "",
            f"- success rate: {100 * summary['success_rate']:.1f}% (Wilson 95% CI "
            f"{100 * summary['success_ci_low']:.1f}–{100 * summary['success_ci_high']:.1f}%)",
            f"- median final loss: {summary['final_loss_median']:.4g} (bootstrap 95% CI {low:.4g}–{high:.4g})",
            f"- median epochs to target: {_fmt(summary['epochs_to_target_median'])}",
            f"- wall {summary['wall_s']:.2f} s, compile {summary['compile_s']:.2f} s on {summary['device']}", ""]
    text += [f"![{p.stem}]({p.name})" for p in figs]
    results.write_text(out / "report.md", "\n".join(text) + "\n")
    return out


def _boundaries(run_dir: Path, summary: dict, title: str):
    import jax.numpy as jnp

    from jaxbp import config, data, figures, model

    cfg = config.from_dict(summary["config"])
    dataset = data.load(cfg.data, cfg.loss)
    spec = cfg.spec(summary["spec"][0], summary["spec"][-1])
    arrays = np.load(run_dir / "params.npz")
    seed_row = {int(s): i for i, s in enumerate(arrays["seed"])}
    shown = [int(s) for s in arrays["seed"][:4]]

    def predict(seed, grid):
        i = seed_row[seed]
        params = [{"W": jnp.asarray(arrays[f"W{l}"][i]), "b": jnp.asarray(arrays[f"b{l}"][i])}
                  for l in range(spec.num_layers)]
        y_hat = np.asarray(model.forward(spec, params, jnp.asarray(grid, jnp.float32)))
        return y_hat[:, -1] if y_hat.shape[1] <= 2 else y_hat.argmax(axis=1) / (y_hat.shape[1] - 1)

    labels = dataset.y_train[:, -1]
    scale = " (standardised)" if cfg.data.standardize else ""
    return figures.decision_boundaries(dataset.x_train, labels, predict, shown, title, scale)


def report_bench(path: Path) -> Path:
    from jaxbp import figures

    bench = pd.read_csv(path)
    out = path.parent / "bench_report"
    series = bench[bench["impl"].str.startswith("jaxbp_vmap")]
    fig = _save(figures.scaling(series.assign(impl="jaxbp_vmap"), "jaxbp throughput vs seeds"),
                out, "scaling.png")
    results.write_text(out / "report.md", f"# Benchmark\n\n{_markdown_table(bench)}\n\n![scaling]({fig.name})\n")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxbp.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a run dir, a sweep dir or a bench.csv")
    args = parser.parse_args(argv)
    try:
        kind = kind_of(args.path)
        out = {"sweep": report_sweep, "run": report_run, "bench": report_bench}[kind](args.path)
    except ReportError as err:
        print(f"jaxbp.report: {err}", file=sys.stderr)
        return 2
    made = sorted(p.name for p in out.glob("*.png"))
    print(f"{kind} report: {len(made)} figures ({', '.join(made)}) and report.md → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
