"""``diagnosis.png``: what :mod:`jaxbp.diagnose` found, as one matplotlib ``Figure``.

Left, every seed's weight norm ‖θ‖ against its loss E(θ), coloured by verdict, with an
arrow from each continued seed to where the extra epochs took it: drifting seeds move up
(growing weights) and barely left (loss hardly falls). Right, the Hessian's spectrum of a
sample of seeds per verdict: each seed is a vertical bar from its smallest to its largest
eigenvalue, on a symmetric log axis, so a bar that crosses below zero is a saddle.

The figure is built without pyplot and drawn under ``rc_context``: no global state changes.
No JAX here; it reads a ``diagnosis.csv`` frame only.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jaxbp.diagnose import VERDICTS

STYLE = {"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
         "font.size": 9}
COLOURS = dict(zip(VERDICTS, ("tab:green", "tab:red", "tab:blue", "tab:orange", "tab:purple", "black", "tab:gray")))
SPECTRUM_SEEDS = 25  # seeds per verdict in the spectrum panel
ARROW_SEEDS = 60  # continued seeds per verdict drawn with an arrow


def diagnosis_figure(frame: pd.DataFrame, title: str = "", seed: int = 0) -> Figure:
    """The two panels described in the module docstring, for a ``diagnosis.csv`` frame.
    ``seed`` picks the sampled seeds reproducibly."""
    rng = np.random.default_rng(seed)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 4.4), layout="constrained")
        ax_norm, ax_spec = fig.subplots(1, 2)
        present = [v for v in VERDICTS if (frame["verdict"] == v).any()]
        for verdict in present:
            rows = frame[frame["verdict"] == verdict]
            _norm_panel(ax_norm, rows, verdict, rng)
        ax_norm.set(xscale="log", xlabel="loss E(θ) at the end of training (log)",
                    ylabel="weight norm ‖θ‖", title="where each seed ended (○ and arrows: after the continuation)")
        ax_norm.legend(fontsize=8, loc="best")
        _spectrum_panel(ax_spec, frame, present, rng)
        if title:
            fig.suptitle(title, fontsize=10)
    return fig


def _norm_panel(ax, rows: pd.DataFrame, verdict: str, rng) -> None:
    colour = COLOURS[verdict]
    ax.scatter(rows["loss"], rows["weight_norm"], s=10, color=colour, alpha=0.6,
               label=f"{verdict} ({len(rows)})")
    continued = rows[np.isfinite(rows["continued_loss"]) & (rows["continued_loss"] > 0)]
    ax.scatter(continued["continued_loss"], continued["continued_weight_norm"], s=12, facecolors="none",
               edgecolors=colour, alpha=0.6, lw=0.7)  # also sets the axis limits the arrows need
    if len(continued) > ARROW_SEEDS:
        continued = continued.iloc[np.sort(rng.choice(len(continued), ARROW_SEEDS, replace=False))]
    for _, row in continued.iterrows():
        ax.annotate("", xy=(row["continued_loss"], row["continued_weight_norm"]),
                    xytext=(row["loss"], row["weight_norm"]),
                    arrowprops={"arrowstyle": "->", "color": colour, "alpha": 0.4, "lw": 0.7})


def _spectrum_panel(ax, frame: pd.DataFrame, present: list[str], rng) -> None:
    position, ticks = 0, []
    for verdict in present:
        rows = frame[(frame["verdict"] == verdict) & np.isfinite(frame["hessian_min_eig"])]
        if len(rows) > SPECTRUM_SEEDS:
            rows = rows.iloc[np.sort(rng.choice(len(rows), SPECTRUM_SEEDS, replace=False))]
        xs = position + np.arange(len(rows))
        ax.vlines(xs, rows["hessian_min_eig"], rows["hessian_max_eig"], color=COLOURS[verdict], lw=1.5)
        ax.scatter(xs, rows["hessian_min_eig"], s=8, color=COLOURS[verdict], marker="v")
        ax.scatter(xs, rows["hessian_max_eig"], s=8, color=COLOURS[verdict], marker="^")
        ticks.append((position + (len(rows) - 1) / 2, verdict))
        position += len(rows) + 3
    tol = frame["eig_tol"].median() if "eig_tol" in frame and len(frame) else 1e-8
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_yscale("symlog", linthresh=max(float(tol) if np.isfinite(tol) else 1e-8, 1e-12))
    ax.set_xticks([t for t, _ in ticks], [v for _, v in ticks])
    ax.set(ylabel="Hessian eigenvalue (symlog): min ▼ to max ▲",
           title=f"Hessian spectrum, up to {SPECTRUM_SEEDS} seeds per verdict")


def diagnosis_lines(frame: pd.DataFrame) -> list[str]:
    """The lines ``report.md`` gives the diagnosis: seeds per verdict, and for the failed
    ones where their loss and weight norm went during the continuation."""
    counts = frame["verdict"].value_counts()
    parts = [f"{int(counts[v])} {v}" for v in VERDICTS if v in counts.index]
    lines = [f"- diagnosis (`diagnosis.csv`, `python -m jaxbp.diagnose`): {', '.join(parts)} of {len(frame)} seeds"]
    failed = frame[~frame["verdict"].isin(["solved", "diverged"]) & np.isfinite(frame["continued_loss"])]
    if len(failed):
        epochs = int(failed["continued_epochs"].iloc[0])
        lines.append(f"- unsolved seeds over {epochs:,} more epochs: median loss {failed['loss'].median():.4g} → "
                     f"{failed['continued_loss'].median():.4g}, median weight norm "
                     f"{failed['weight_norm'].median():.3g} → {failed['continued_weight_norm'].median():.3g}")
    return lines
