"""Matplotlib figures of runs and sweeps. Each function takes tidy frames, returns a Figure.

Figures are ``matplotlib.figure.Figure`` objects, not pyplot's: no backend is chosen and no
display is needed (``fig.savefig(path)`` renders with Agg), and nothing global changes.
Each is built under ``matplotlib.rc_context(STYLE)``, so importing this module, or drawing,
leaves the caller's rcParams and backend as they were. Figures use small multiples rather
than crowded legends, label every axis with its unit, and keep text from overlapping with
``constrained`` layout. No JAX here: the report computes predictions.
"""

from __future__ import annotations

import functools
import math
import textwrap

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

STYLE = {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
         "axes.spines.top": False, "axes.spines.right": False}
FEW_CURVES = 6  # up to this many jobs share one axis with a legend; more get small multiples
# A loss median is drawn only while this many seeds (and this share of them) still train.
MIN_RUNNING, MIN_RUNNING_SHARE = 5, 0.1
CLASS_COLOURS = matplotlib.colormaps["tab10"].colors


def styled(draw):
    """Runs a figure function under ``rc_context(STYLE)``: the style applies to the axes it
    creates, and the caller's rcParams are restored afterwards."""
    @functools.wraps(draw)
    def inside_style(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return inside_style


def new_figure(figsize, **kwargs) -> Figure:
    """A ``Figure`` with constrained layout, attached to no pyplot window."""
    return Figure(figsize=figsize, layout="constrained", **kwargs)


def _title(fig, text: str) -> None:
    # About 8 characters of 11-pt text per inch of figure width.
    fig.suptitle(textwrap.fill(text, max(30, int(fig.get_figwidth() * 8))), fontsize=11)


def _grid(count: int, width: float = 3.2, height: float = 2.6, max_cols: int = 4, **share):
    """``count`` panels in rows of ``max_cols``; a panel with an empty slot below it keeps
    its x tick labels, which a shared x axis would otherwise hide."""
    cols = min(count, max_cols)
    rows = math.ceil(count / cols)
    fig = new_figure((width * cols + 0.6, height * rows + 0.8))
    axes = fig.subplots(rows, cols, squeeze=False, **share)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    for ax in axes.flat[max(0, count - cols):count]:
        ax.xaxis.set_tick_params(which="both", labelbottom=True)
    return fig, list(axes.flat[:count])


def ordered(values) -> list:
    """Distinct values in a readable order: numbers, then text, then missing (``NaN``)."""
    distinct = list(dict.fromkeys(values))
    missing = [v for v in distinct if isinstance(v, float) and math.isnan(v)]
    numbers = sorted(v for v in distinct if isinstance(v, (int, float, np.number)) and v not in missing
                     and not isinstance(v, bool))
    text = sorted((v for v in distinct if v not in numbers and v not in missing), key=str)
    return numbers + text + missing[:1]


def label(value) -> str:
    """A key's value as a tick label: ``0.1``, ``adam``, ``null``."""
    if isinstance(value, (float, np.floating)):
        return "null" if math.isnan(value) else f"{value:g}"
    return str(value)


# ---------------------------------------------------------------- success rates
@styled
def success_heatmap(sweep: pd.DataFrame, row_key: str, col_key: str, panel_keys: list[str],
                    title: str):
    """Success rate (%) over ``row_key`` × ``col_key``, one panel per other swept value."""
    panels = list(sweep.groupby(panel_keys, sort=True, dropna=False)) if panel_keys else [((), sweep)]
    fig, axes = _grid(len(panels), width=4.8, height=3.6, max_cols=3)
    rows, cols = ordered(sweep[row_key]), ordered(sweep[col_key])
    image = None
    for ax, (panel, frame) in zip(axes, panels):
        grid = np.full((len(rows), len(cols)), np.nan)
        for _, job in frame.iterrows():
            grid[_index(rows, job[row_key]), _index(cols, job[col_key])] = 100 * job["success_rate"]
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto", origin="lower")
        for (i, j), value in np.ndenumerate(grid):
            finite = np.isfinite(value)
            ax.text(j, i, percent_text(value) if finite else "no job", ha="center", va="center", fontsize=9,
                    color=("white" if value < 60 else "black") if finite else "0.5")
        ax.set_xticks(range(len(cols)), [label(c) for c in cols])
        ax.set_yticks(range(len(rows)), [label(r) for r in rows])
        ax.set(xlabel=col_key, ylabel=row_key)
        ax.grid(False)
        if panel_keys:
            values = panel if isinstance(panel, tuple) else (panel,)
            ax.set_title(", ".join(f"{k}={label(v)}" for k, v in zip(panel_keys, values)), fontsize=10)
    fig.colorbar(image, ax=axes, label="seeds converged (%)", shrink=0.9)
    _title(fig, title)
    return fig


def percent_text(value: float) -> str:
    """A percentage for a heatmap cell: whole numbers, except that a share near the ends
    keeps one decimal (99.6, 0.3) and never rounds onto them: ``<100`` and ``>0`` say that
    some, but very few, seeds failed (or succeeded)."""
    if value in (0.0, 100.0) or 0.5 <= value < 99.5:
        return f"{value:.0f}"
    text = f"{value:.1f}"
    if text == "100.0":
        return "<100"
    return ">0" if text == "0.0" else text


def _index(values: list, value) -> int:
    missing = isinstance(value, float) and math.isnan(value)
    return next(i for i, v in enumerate(values) if (isinstance(v, float) and math.isnan(v)) == missing
                and (missing or v == value))


@styled
def success_bars(sweep: pd.DataFrame, key: str, title: str):
    """Success rate (%) with Wilson 95% intervals, for a sweep over one key."""
    order = ordered(sweep[key])
    frame = sweep.assign(_at=[_index(order, v) for v in sweep[key]]).sort_values("_at")
    rate = frame["success_rate"].to_numpy(float) * 100
    err = np.vstack([rate - frame["success_ci_low"].to_numpy(float) * 100,
                     frame["success_ci_high"].to_numpy(float) * 100 - rate])
    fig = new_figure((max(4.5, 0.8 * len(frame)), 3.6))
    ax = fig.subplots()
    ax.bar([label(v) for v in frame[key]], rate, yerr=err, capsize=4, color="tab:blue")
    ax.set(xlabel=key, ylabel="seeds converged (%)", ylim=(0, 105))
    _title(fig, title)
    return fig


@styled
def train_test_losses(frame: pd.DataFrame, title: str):
    """Mean final train and test loss per job (``frame``: ``job, train, test``), log scale:
    a test loss far above the train loss is overfitting."""
    fig = new_figure((max(5.0, 0.55 * len(frame) + 2), 3.8))
    ax = fig.subplots()
    at = np.arange(len(frame))
    for column, marker, colour in (("train", "o", "tab:blue"), ("test", "s", "tab:orange")):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
        ax.plot(at, values, marker, color=colour, label=f"{column} loss")
    ax.vlines(at, frame["train"].astype(float), frame["test"].astype(float), color="0.6", linewidth=1)
    ax.set_xticks(at, frame["job"], rotation=45 if len(frame) > 4 else 0, ha="right" if len(frame) > 4 else "center",
                  fontsize=8)
    ax.set(yscale="log", ylabel="mean final loss over seeds (log scale)")
    ax.legend(fontsize=8)
    _title(fig, title)
    return fig


@styled
def search_view(trials: pd.DataFrame, params: list[str], log_keys: set[str], objective: str,
                direction: str, title: str):
    """An Optuna search: the objective against each searched parameter (one panel each, a log
    axis where the space is log-scaled, categories as strips), and the best so far by trial.

    Args:
        trials: one row per trial: ``trial``, ``objective`` and each parameter's value.
    """
    fig, axes = _grid(len(params) + 1, width=3.6, height=3.0, max_cols=3)
    value = pd.to_numeric(trials["objective"], errors="coerce").to_numpy(float)
    best_at = int(np.nanargmax(value) if direction == "maximize" else np.nanargmin(value)) if np.isfinite(
        value).any() else None
    for ax, key in zip(axes, params):
        column = trials[key]
        numeric = pd.api.types.is_numeric_dtype(column)
        if numeric:
            ax.plot(column, value, "o", color="tab:blue", alpha=0.7, markersize=4)
            if key in log_keys:
                ax.set_xscale("log")
        else:
            order = ordered(column)
            ax.plot([_index(order, v) for v in column], value, "o", color="tab:blue", alpha=0.7, markersize=4)
            ax.set_xticks(range(len(order)), [label(v) for v in order])
        if best_at is not None:
            x = column.iloc[best_at] if numeric else _index(ordered(column), column.iloc[best_at])
            ax.plot([x], [value[best_at]], "*", color="tab:red", markersize=12, label="best")
        ax.set(xlabel=f"{key}{' (log scale)' if key in log_keys else ''}", ylabel=objective)
    ax = axes[-1]
    order = np.argsort(trials["trial"].to_numpy())
    seen = value[order]
    running = (np.fmax.accumulate if direction == "maximize" else np.fmin.accumulate)(
        np.where(np.isfinite(seen), seen, -np.inf if direction == "maximize" else np.inf))
    ax.plot(trials["trial"].to_numpy()[order], seen, "o", color="0.6", markersize=3, label="trial")
    ax.step(trials["trial"].to_numpy()[order], running, where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial", ylabel=objective, title="best so far")
    ax.legend(fontsize=8)
    _title(fig, title)
    return fig


# ---------------------------------------------------------------- loss curves
def loss_limits(curves: list[pd.DataFrame]) -> tuple[float, float]:
    """A log-scale y range that holds every finite positive loss of ``curves``, with a little
    room. Pass the curves of seeds that did not diverge: a diverging seed's climb to 1e36
    would flatten everyone else's curve."""
    values = np.concatenate([c["loss"].to_numpy(float) for c in curves] or [np.ones(1)])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return 1e-3, 1.0
    return values.min() / 1.5, values.max() * 1.5


def _band(ax, curves: pd.DataFrame, limits, faint: int = 0, last_epoch: int | None = None):
    """Median across seeds with the interquartile band, per epoch; ``faint`` single seeds
    drawn thinly behind them show the stragglers a median hides, and a seed whose curve
    ends early (early stopping) gets a cross where it stopped."""
    # Losses far off the axis (diverged: huge, inf or NaN) are held just beyond its edge, so
    # they still count in the quantiles without warnings; a missing point (a seed that
    # stopped early) stays missing.
    low, high = limits[0] / 10, limits[1] * 10
    table = curves.assign(loss=curves["loss"].fillna(np.inf).clip(low, high)).pivot(
        index="epoch", columns="seed", values="loss")
    last = table.index.max() if last_epoch is None else last_epoch
    stopped = []
    for seed in table.columns[:faint]:
        line = table[seed].dropna()
        ax.plot(line.index, line, color="0.6", linewidth=0.5, alpha=0.6)
        if len(line) and line.index[-1] < last:
            stopped.append((line.index[-1], line.iloc[-1]))
    if stopped:
        ax.plot(*zip(*stopped), "x", color="tab:red", markersize=5, label="early stopped", zorder=3)
    q = table.quantile([0.25, 0.5, 0.75], axis=1).T
    running = table.notna().sum(axis=1)  # early stopping ends a seed's curve
    least = min(table.shape[1], max(MIN_RUNNING, math.ceil(MIN_RUNNING_SHARE * table.shape[1])))
    enough = running >= least
    if not enough.all():  # late on, a median of one or two survivors would pose as everyone's
        q = q[enough]
        end = q.index.max() if len(q) else table.index.min()
        ax.axvline(end, color="0.5", linestyle=":", linewidth=1)
        ax.annotate(f"median ends at epoch {end:g}: after it fewer than {least} of\n{table.shape[1]} seeds "
                    f"still train ({running.iloc[-1]} at epoch {table.index.max():g})", (0.98, 0.04),
                    xycoords="axes fraction", ha="right", va="bottom", fontsize=7, color="0.3")
    line, = ax.plot(q.index, q[0.5], label="median")
    ax.fill_between(q.index, q[0.25], q[0.75], alpha=0.25, color=line.get_color(), linewidth=0,
                    label="interquartile range")
    ax.set_yscale("log")
    ax.set_ylim(*limits)
    above = q.index[q[0.5] > limits[1]]
    if len(above):  # a diverged median would otherwise leave the panel silently empty
        ax.annotate(f"median above the axis\nfrom epoch {above[0]:g}", (0.5, 0.92), xycoords="axes fraction",
                    ha="center", va="top", fontsize=8, color="tab:red")
    return len(stopped)


@styled
def curve_panels(curves_by_job: dict[str, pd.DataFrame], title: str, faint: int = 0,
                 notes: dict[str, str] | None = None, limits: tuple[float, float] | None = None,
                 last_epoch: int | None = None):
    """One panel per job: median train loss across the kept seeds' curves, interquartile
    band, log scale, on a shared y range (``limits``, default :func:`loss_limits` of all).
    ``notes`` adds a line under a panel's title (e.g. "all diverged"); a faint seed whose
    curve ends before ``last_epoch`` (default: the last epoch drawn) is marked stopped."""
    single = len(curves_by_job) == 1
    fig, axes = _grid(len(curves_by_job), width=6.5 if single else 3.2, height=4 if single else 2.6,
                      sharex=True, sharey=True)
    limits = limits or loss_limits(list(curves_by_job.values()))
    for ax, (name, curves) in zip(axes, curves_by_job.items()):
        stopped = _band(ax, curves, limits, faint=faint, last_epoch=last_epoch)
        note = (notes or {}).get(name)
        ax.set_title(f"{name}\n{note}" if note else name, fontsize=9)
        if single and (faint or stopped):
            ax.legend(fontsize=8, loc="upper right")
    fig.supxlabel("epoch")
    fig.supylabel("train loss (log scale)")
    _title(fig, title)
    return fig


@styled
def final_loss_panels(losses_by_job: dict[str, np.ndarray], title: str, target: float | None = None):
    """Histogram of log10 final train loss per job; a dashed line marks the target loss.
    A job without a finite loss (every seed diverged) says so in its panel."""
    finite = [v[np.isfinite(v) & (v > 0)] for v in losses_by_job.values()]
    pooled = np.concatenate(finite + [np.array([target])] if target else finite)
    low, high = (np.log10(pooled.min()), np.log10(pooled.max())) if pooled.size else (-3.0, 0.0)
    bins = np.linspace(low - 0.1, high + 0.1, 40)
    single = len(losses_by_job) == 1  # one run: a panel wide enough for its title
    fig, axes = _grid(len(losses_by_job), width=6.5 if single else 3.2, height=3.6 if single else 2.3, sharex=True)
    for ax, (name, values), kept in zip(axes, losses_by_job.items(), finite):
        ax.hist(np.log10(kept), bins=bins, color="tab:purple")
        if target:
            ax.axvline(np.log10(target), color="k", linestyle="--", linewidth=1)
        lost = len(values) - len(kept)
        ax.set_title(f"{name} (n={len(values)}" + (f", {lost} not finite)" if lost else ")"), fontsize=9)
        if not len(kept):
            ax.text(0.5, 0.5, f"all {len(values)} seeds diverged:\nno finite final loss",
                    transform=ax.transAxes, ha="center", va="center", fontsize=9, color="tab:red")
            ax.set_yticks([])
    fig.supxlabel("log10 final train loss")
    fig.supylabel("seeds")
    _title(fig, title)
    return fig


# ---------------------------------------------------------------- time to target
def _survival_steps(ax, curve, name: str, color=None):
    """Share of seeds at the target (%) against epoch: 1 − S(t), its band, and the median."""
    solved = 100 * (1 - curve.survival)
    line, = ax.step(curve.epochs, solved, where="post", label=name, color=color, linewidth=1.5)
    ax.fill_between(curve.epochs, 100 * (1 - curve.high), 100 * (1 - curve.low), step="post",
                    alpha=0.2, color=line.get_color(), linewidth=0)
    return line


@styled
def km_curves(curves: dict, medians: dict[str, str], title: str):
    """Kaplan–Meier: the share of seeds that have reached the target by each epoch, with
    95% bands; seeds that never did count throughout (censored at the last epoch). Few jobs
    share one axis with a legend, more get one panel each. ``medians``: each job's median text."""
    few = len(curves) <= FEW_CURVES
    if few:
        fig = new_figure((8.0, 4.6 + 0.2 * math.ceil(len(curves) / 3)))
        ax = fig.subplots()
        axes = [ax] * len(curves)
    else:
        fig, axes = _grid(len(curves), sharex=True, sharey=True)
    for ax, (name, curve) in zip(axes, curves.items()):
        if few:
            _survival_steps(ax, curve, f"{name}: {medians[name]}")
        else:
            _survival_steps(ax, curve, name, color="tab:blue")
            ax.set_title(f"{name}\n{medians[name]}", fontsize=9)
        ax.axhline(50, color="0.4", linestyle=":", linewidth=1)
        ax.set_ylim(-2, 102)
        ax.set_xlim(0, max(c.epochs[-1] for c in curves.values()))
    if few:
        axes[0].set(xlabel="epoch", ylabel="seeds at the target (%)")
        fig.legend(fontsize=8, loc="outside lower center", ncols=min(3, len(curves)),
                   title="median epochs to the target [95% CI]", title_fontsize=8)
    else:
        fig.supxlabel("epoch")
        fig.supylabel("seeds at the target (%)")
    _title(fig, title)
    return fig


# ---------------------------------------------------------------- the input plane
def plane(x: np.ndarray, steps: int = 150, pad: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A grid over the 2-D inputs ``x`` (with a margin): ``(gx, gy)`` from ``np.meshgrid``."""
    (x0, y0), (x1, y1) = x.min(axis=0) - pad, x.max(axis=0) + pad
    return np.meshgrid(np.linspace(x0, x1, steps), np.linspace(y0, y1, steps))


def _shade(ax, gx, gy, surface: np.ndarray, targets: str, n_classes: int, levels=None):
    """The prediction over the plane: P(class 1) for two classes, the argmax class for more,
    the output itself for real-valued targets (on ``levels``, shared by every panel).
    Returns the artist a colourbar describes."""
    if targets == "classes":
        cmap = ListedColormap(CLASS_COLOURS[:n_classes])
        norm = BoundaryNorm(np.arange(n_classes + 1) - 0.5, n_classes)
        return ax.pcolormesh(gx, gy, surface, cmap=cmap, norm=norm, alpha=0.3, shading="auto")
    if targets == "binary":
        shading = ax.contourf(gx, gy, np.clip(surface, 0, 1), levels=np.linspace(0, 1, 11),
                              cmap="RdBu_r", alpha=0.45)
        ax.contour(gx, gy, surface, levels=[0.5], colors="k", linewidths=1)
        return shading
    return ax.contourf(gx, gy, surface, levels=12 if levels is None else levels, cmap="viridis", alpha=0.8,
                       extend="both")


def _value_levels(arrays) -> np.ndarray:
    """Contour levels that span every finite value of ``arrays`` (predictions and targets)."""
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays if a is not None])
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    return MaxNLocator(12).tick_values(low, high if high > low else low + 1)


def _points(ax, x: np.ndarray, y: np.ndarray, targets: str, n_classes: int, shading=None):
    if targets == "values":
        colours = {"cmap": "viridis"} if shading is None else {"cmap": shading.cmap, "norm": shading.norm}
        ax.scatter(x[:, 0], x[:, 1], c=y, edgecolors="k", linewidths=0.5, s=24, **colours)
        return
    colours = ("tab:blue", "tab:red") if targets == "binary" else CLASS_COLOURS
    for k in range(n_classes):
        rows = y == k
        ax.scatter(x[rows, 0], x[rows, 1], color=colours[k], marker="o^sDvP<>*X"[k % 10],
                   edgecolors="k", linewidths=0.5, s=24, label=f"class {k}")


def _legend_and_colourbar(fig, axes, shading, targets: str, n_classes: int):
    if targets == "classes":
        handles = [Patch(color=CLASS_COLOURS[k], alpha=0.6, label=f"class {k}") for k in range(n_classes)]
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="predicted class\n(argmax)")
    elif targets == "binary":
        fig.colorbar(shading, ax=axes, label="network output (P(class 1)); line: 0.5", shrink=0.9)
        axes[0].legend(fontsize=7, loc="lower left")
    else:
        fig.colorbar(shading, ax=axes, label="predicted output (points: targets)", shrink=0.9)


@styled
def decision_boundaries(x: np.ndarray, y: np.ndarray, surfaces: dict[str, np.ndarray], gx, gy,
                        targets: str, title: str, axis_note: str = ""):
    """The prediction over the input plane for a few seeds, with the training data.

    Args:
        x, y: 2-D training inputs and, per row, the class index (``targets`` ``binary`` or
            ``classes``) or the real-valued target (``values``).
        surfaces: panel title -> prediction on the grid ``(gx, gy)``: P(class 1), the argmax
            class, or the output; ``None`` for a seed with no finite prediction.
        targets: ``binary``, ``classes`` or ``values``.
    """
    n_classes = int(np.max(y)) + 1 if targets != "values" else 0
    levels = _value_levels([*surfaces.values(), np.asarray(y, float)]) if targets == "values" else None
    fig, axes = _grid(len(surfaces), width=3.2, height=3.0)
    shadings = []
    for ax, (name, surface) in zip(axes, surfaces.items()):
        if surface is None or not np.isfinite(surface).any():
            ax.text(0.5, 0.5, "no finite prediction", transform=ax.transAxes, ha="center", color="tab:red")
        else:
            shadings.append(_shade(ax, gx, gy, surface, targets, n_classes, levels))
        _points(ax, x, y, targets, n_classes, shadings[-1] if shadings else None)
        ax.set(title=name, xlabel=f"x₁{axis_note}", ylabel=f"x₂{axis_note}",
               xlim=(gx.min(), gx.max()), ylim=(gy.min(), gy.max()))
        ax.title.set_fontsize(9)
        ax.grid(False)
    if shadings:
        _legend_and_colourbar(fig, axes, shadings[0], targets, n_classes)
    _title(fig, title)
    return fig


# ---------------------------------------------------------------- one network
@styled
def seed_figure(curve: pd.DataFrame | None, epochs: int, target: float | None, boundary: dict | None,
                units: dict, title: str):
    """One seed: its loss curve (or why there is none), its decision boundary on 2-D data,
    and its hidden units.

    Args:
        curve: ``epoch, loss`` rows, or ``None`` when the seed's curve was not kept.
        target: the target loss drawn dashed, or ``None`` when the job's criterion is not
            on the loss (margin, fahlman, rms, tss).
        boundary: ``decision_boundaries``' arguments for this seed (``x, y, surface, gx, gy,
            targets``), or ``None`` for inputs that are not 2-D.
        units: ``{"W": (2, h), "b": (h,), "x", "y", "targets"}`` to draw each first-layer
            unit's line w·x + b = 0; or ``{"output": (rows, k), "target": (rows, k)}`` for a
            bar chart of the output on the training rows.
    """
    panels = 3 if boundary is not None else 2
    fig = new_figure((4.2 * panels, 3.8))
    axes = fig.subplots(1, panels)
    _seed_curve(axes[0], curve, epochs, target)
    if boundary is not None:
        b = boundary
        n_classes = int(np.max(b["y"])) + 1 if b["targets"] != "values" else 0
        levels = _value_levels([b["surface"], np.asarray(b["y"], float)]) if b["targets"] == "values" else None
        shading = _shade(axes[1], b["gx"], b["gy"], b["surface"], b["targets"], n_classes, levels)
        _points(axes[1], b["x"], b["y"], b["targets"], n_classes, shading)
        axes[1].set(title="predicted output" if b["targets"] == "values" else "decision boundary",
                    xlabel="x₁", ylabel="x₂")
        axes[1].grid(False)
        _legend_and_colourbar(fig, [axes[1]], shading, b["targets"], n_classes)
    if "W" in units:
        _unit_lines(axes[-1], units)
    else:
        _output_bars(axes[-1], units["output"], units["target"])
    _title(fig, title)
    return fig


def _seed_curve(ax, curve, epochs: int, target: float):
    if curve is None or curve.empty:
        ax.text(0.5, 0.5, "loss curve not kept\n(curve_seeds keeps the first seeds' curves)",
                transform=ax.transAxes, ha="center", va="center")
        ax.set_title("train loss")
        ax.set_axis_off()
        return
    losses = curve["loss"].to_numpy(float)
    ax.plot(curve["epoch"], np.clip(losses, None, 1e30))
    if curve["epoch"].max() < epochs:
        ax.plot(curve["epoch"].iloc[-1], losses[-1], "x", color="tab:red", label="early stopped")
        ax.legend(fontsize=8)
    if target is None:  # the job's criterion is not on the loss: no line to draw
        ax.set(yscale="log", xlabel="epoch", ylabel="train loss (log scale)", title="train loss")
        return
    ax.axhline(target, color="k", linestyle="--", linewidth=1)
    ax.set(yscale="log", xlabel="epoch", ylabel="train loss (log scale)",
           title=f"train loss (dashed: target {target:g})")


def _unit_lines(ax, units: dict):
    """Each first-layer unit j's line w_j·x + b_j = 0: where its input changes sign."""
    x, y, W, b = units["x"], units["y"], units["W"], units["b"]
    n_classes = int(np.max(y)) + 1 if units["targets"] != "values" else 0
    _points(ax, x, y, units["targets"], n_classes)
    gx, gy = plane(x, steps=2)
    (x0, x1), (y0, y1) = (gx.min(), gx.max()), (gy.min(), gy.max())
    ts = np.linspace(-1, 1, 2) * 10 * max(x1 - x0, y1 - y0)
    corners = np.array([[x0, y0], [x0, y1], [x1, y0], [x1, y1]])
    outside = []
    for j in range(W.shape[1]):
        w, c = W[:, j], b[j]
        norm = float(np.hypot(*w))
        if norm == 0 or not np.isfinite(norm) or len(set(np.sign(corners @ w + c))) == 1:
            outside.append(j + 1)  # its line misses the view: named under the legend, not in it
            continue
        foot = -c * w / norm**2  # the point of the line nearest the origin
        along = np.array([-w[1], w[0]]) / norm
        ax.plot(foot[0] + ts * along[0], foot[1] + ts * along[1], color=CLASS_COLOURS[(j + 3) % 10],
                linewidth=1.3, label=f"unit {j + 1}")
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x₁", ylabel="x₂",
           title=units.get("title", "hidden units: w·x + b = 0"))
    ax.grid(False)
    legend = ax.legend(fontsize=7, loc="lower right")
    if outside:
        legend.set_title(f"unit{'s' if len(outside) > 1 else ''} {', '.join(map(str, outside))}: "
                         "line outside the view", prop={"size": 7})


def _output_bars(ax, output: np.ndarray, target: np.ndarray):
    rows = np.arange(len(output))
    ax.bar(rows, output[:, 0], color="tab:blue", label="output")
    ax.plot(rows, target[:, 0], "_", color="k", markersize=10, markeredgewidth=2, label="target")
    ax.set(xlabel="training row", ylabel="output 1", title=f"output on {len(rows)} training rows")
    ax.legend(fontsize=8)


# ---------------------------------------------------------------- benchmarks
@styled
def scaling(bench: pd.DataFrame, title: str):
    """Throughput against the number of seeds trained at once (log-log)."""
    fig = new_figure((5.5, 3.8))
    ax = fig.subplots()
    for (impl, device), frame in bench.groupby(["impl", "device"]):
        frame = frame.sort_values("num_seeds")
        ax.plot(frame["num_seeds"], frame["seed_epochs_per_s"], "o-", label=f"{impl} ({device})")
    ax.set(xscale="log", yscale="log", xlabel="seeds trained at once",
           ylabel="throughput (seed-epochs / s)")
    _title(fig, title)
    ax.legend(fontsize=8)
    return fig


@styled
def bench_comparison(bench: pd.DataFrame, title: str):
    """One bar per implementation (and device): its throughput, log scale, labelled with the
    seeds it trained at once and how it compares with ``jaxbp_vmap`` (the same maths)."""
    best = bench.loc[bench.groupby(["impl", "device"])["seed_epochs_per_s"].idxmax()]
    best = best.sort_values("seed_epochs_per_s").reset_index(drop=True)
    fig = new_figure((7.0, 1.0 + 0.55 * len(best)))
    ax = fig.subplots()
    at = np.arange(len(best))
    ax.barh(at, best["seed_epochs_per_s"], color=["tab:blue" if str(i).startswith("jaxbp_vmap") else "tab:gray"
                                                 for i in best["impl"]])
    ax.set_yticks(at, [f"{i} ({d})" for i, d in zip(best["impl"], best["device"])], fontsize=8)
    vmap = best.loc[best["impl"] == "jaxbp_vmap", "seed_epochs_per_s"]
    for y, row in best.iterrows():
        note = f"{row['seed_epochs_per_s']:.3g}/s, {int(row['num_seeds']):,} seeds"
        if len(vmap) and row["impl"] != "jaxbp_vmap":
            ratio = vmap.iloc[0] / row["seed_epochs_per_s"]
            note += f"; vmap is {ratio:.3g}× this" if ratio >= 1 else f"; {1 / ratio:.3g}× vmap"
        ax.annotate(note, (row["seed_epochs_per_s"], y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set(xscale="log", xlabel="throughput (seed-epochs / s, log scale)")
    ax.set_xlim(best["seed_epochs_per_s"].min() / 3, best["seed_epochs_per_s"].max() * 60)
    ax.grid(axis="y", visible=False)
    _title(fig, title)
    return fig


__all__ = ["bench_comparison", "success_heatmap", "success_bars", "percent_text", "train_test_losses",
           "search_view", "styled", "new_figure", "STYLE", "curve_panels", "final_loss_panels", "km_curves",
           "plane", "decision_boundaries", "seed_figure", "scaling", "ordered", "label", "loss_limits"]
