"""Matplotlib figures of runs and sweeps. Each function takes tidy frames, returns a Figure.

The Agg backend is selected before pyplot loads, so no display is needed. Figures use small
multiples rather than crowded legends, label every axis with its unit, and keep text from
overlapping with ``constrained`` layout.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
                     "axes.spines.top": False, "axes.spines.right": False})


def _title(fig, text: str) -> None:
    # About 8 characters of 11-pt text per inch of figure width.
    fig.suptitle(textwrap.fill(text, max(30, int(fig.get_figwidth() * 8))), fontsize=11)


def _grid(count: int, width: float = 3.2, height: float = 2.6, max_cols: int = 4, **share):
    cols = min(count, max_cols)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 0.6, height * rows + 0.8),
                             squeeze=False, layout="constrained", **share)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def success_heatmap(sweep: pd.DataFrame, row_key: str, col_key: str, panel_keys: list[str],
                    title: str):
    """Success rate (%) over ``row_key`` × ``col_key``, one panel per other swept value."""
    panels = list(sweep.groupby(panel_keys, sort=True)) if panel_keys else [((), sweep)]
    fig, axes = _grid(len(panels), width=4.8, height=3.6, max_cols=3)
    rows = sorted(sweep[row_key].dropna().unique())
    cols = sorted(sweep[col_key].dropna().unique())
    image = None
    for ax, (panel, frame) in zip(axes, panels):
        grid = (frame.pivot_table(index=row_key, columns=col_key, values="success_rate", aggfunc="mean")
                .reindex(index=rows, columns=cols) * 100)
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100,
                          aspect="auto", origin="lower")
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=9,
                        color="white" if value < 60 else "black")
        ax.set_xticks(range(len(cols)), [f"{c:g}" if isinstance(c, float) else str(c) for c in cols])
        ax.set_yticks(range(len(rows)), [f"{r:g}" if isinstance(r, float) else str(r) for r in rows])
        ax.set_xlabel(col_key)
        ax.set_ylabel(row_key)
        ax.grid(False)
        if panel_keys:
            values = panel if isinstance(panel, tuple) else (panel,)
            ax.set_title(", ".join(f"{k}={v}" for k, v in zip(panel_keys, values)), fontsize=10)
    fig.colorbar(image, ax=axes, label="seeds converged (%)", shrink=0.9)
    _title(fig, title)
    return fig


def success_bars(sweep: pd.DataFrame, key: str, title: str):
    """Success rate (%) with Wilson 95% intervals, for a sweep over one key."""
    frame = sweep.sort_values(key)
    labels = [f"{v:g}" if isinstance(v, float) else str(v) for v in frame[key]]
    rate = frame["success_rate"].to_numpy() * 100
    err = np.vstack([rate - frame["success_ci_low"] * 100, frame["success_ci_high"] * 100 - rate])
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * len(frame)), 3.6), layout="constrained")
    ax.bar(labels, rate, yerr=err, capsize=4, color="tab:blue")
    ax.set(xlabel=key, ylabel="seeds converged (%)", ylim=(0, 105))
    _title(fig, title)
    return fig


def _band(ax, curves: pd.DataFrame, label: str | None = None, color=None, faint: int = 0):
    """Median across seeds with the interquartile band, per epoch; ``faint`` single seeds
    drawn thinly behind them show the stragglers a median hides."""
    table = curves.pivot_table(index="epoch", columns="seed", values="loss")
    for seed in table.columns[:faint]:
        ax.plot(table.index, table[seed], color="0.6", linewidth=0.5, alpha=0.6)
    q = table.quantile([0.25, 0.5, 0.75], axis=1).T
    line, = ax.plot(q.index, q[0.5], label=label, color=color)
    ax.fill_between(q.index, q[0.25], q[0.75], alpha=0.25, color=line.get_color(), linewidth=0)
    ax.set_yscale("log")


def curve_panels(curves_by_job: dict[str, pd.DataFrame], title: str, faint: int = 0):
    """One panel per job: median train loss across seeds, interquartile band, log scale."""
    single = len(curves_by_job) == 1
    fig, axes = _grid(len(curves_by_job), width=6.5 if single else 3.2, height=4 if single else 2.6,
                      sharex=True, sharey=True)
    for ax, (label, curves) in zip(axes, curves_by_job.items()):
        _band(ax, curves, faint=faint)
        ax.set_title(label, fontsize=9)
    fig.supxlabel("epoch")
    fig.supylabel("train loss (log scale)")
    _title(fig, title)
    return fig


def final_loss_panels(losses_by_job: dict[str, np.ndarray], title: str, target: float | None = None):
    """Histogram of log10 final train loss per job: converged and stuck seeds separate.
    A dashed line marks the target loss."""
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in losses_by_job.values()] or [[1.0]])
    bins = np.linspace(np.log10(finite.min()) - 0.1, np.log10(finite.max()) + 0.1, 40)
    fig, axes = _grid(len(losses_by_job), height=2.3, sharex=True)
    for ax, (label, values) in zip(axes, losses_by_job.items()):
        values = values[np.isfinite(values) & (values > 0)]
        ax.hist(np.log10(values), bins=bins, color="tab:purple")
        if target:
            ax.axvline(np.log10(target), color="k", linestyle="--", linewidth=1)
        ax.set_title(f"{label} (n={len(values)})", fontsize=9)
    fig.supxlabel("log10 final train loss")
    fig.supylabel("seeds")
    _title(fig, title)
    return fig


def epochs_to_target_boxes(epochs_by_job: dict[str, np.ndarray], title: str):
    """Epochs to reach the target loss per job, over the seeds that reached it."""
    labels = list(epochs_by_job)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(labels) + 2), 4.2), layout="constrained")
    data = [v[np.isfinite(v)] if len(v[np.isfinite(v)]) else [np.nan] for v in epochs_by_job.values()]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="epochs to target (seeds that reached it)")
    _title(fig, title)
    return fig


def decision_boundaries(x: np.ndarray, y: np.ndarray, predict, seeds: list[int], title: str,
                        axis_note: str = ""):
    """Predicted class-1 probability over the input plane for a few seeds, with the data."""
    pad = 0.5
    (x0, y0), (x1, y1) = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, 150), np.linspace(y0, y1, 150))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    fig, axes = _grid(len(seeds), width=3.0, height=2.8)
    for ax, seed in zip(axes, seeds):
        prob = predict(seed, grid).reshape(gx.shape)
        ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.35)
        ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1)
        for label, marker, color in ((0, "o", "tab:blue"), (1, "^", "tab:red")):
            rows = y == label
            ax.scatter(x[rows, 0], x[rows, 1], marker=marker, c=color, edgecolors="k",
                       linewidths=0.5, s=28, label=f"class {label}")
        ax.set(title=f"seed {seed}", xlabel=f"x₁{axis_note}", ylabel=f"x₂{axis_note}")
        ax.grid(False)
    axes[0].legend(fontsize=7, loc="lower left")
    _title(fig, title)
    return fig


def scaling(bench: pd.DataFrame, title: str):
    """Throughput against the number of seeds trained at once (log-log)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    for (impl, device), frame in bench.groupby(["impl", "device"]):
        frame = frame.sort_values("num_seeds")
        ax.plot(frame["num_seeds"], frame["seed_epochs_per_s"], "o-", label=f"{impl} ({device})")
    ax.set(xscale="log", yscale="log", xlabel="seeds trained at once",
           ylabel="throughput (seed-epochs / s)")
    _title(fig, title)
    ax.legend(fontsize=8)
    return fig
