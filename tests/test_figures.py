"""Figures from small hand-made frames: what each one must show, and the empty or extreme
inputs that used to break them (issue #19)."""

import numpy as np
import pandas as pd
import pytest
from test_stats import seeds

from jaxbp import figures, stats


def _curves(seed_losses: dict[int, list[float]], step: int = 10) -> pd.DataFrame:
    return pd.DataFrame([{"seed": s, "epoch": step * i, "loss": v} for s, losses in seed_losses.items()
                         for i, v in enumerate(losses)])


def _tick_labels_shown(fig, ax) -> bool:
    fig.canvas.draw()
    return any(label.get_visible() and label.get_text() for label in ax.get_xticklabels())


def test_panels_above_an_empty_slot_keep_their_x_tick_labels():
    # 5 panels in rows of 4: panels 1-3 have nothing below them, panel 0 has panel 4.
    fig, axes = figures._grid(5, sharex=True, sharey=True)
    for ax in axes:
        ax.plot([0, 100], [1, 2])
    assert [_tick_labels_shown(fig, ax) for ax in axes] == [False, True, True, True, True]


def test_ordered_puts_numbers_then_text_then_missing():
    assert figures.ordered([1.0, np.nan, 0.1, 1.0, 10.0]) == [0.1, 1.0, 10.0, pytest.approx(np.nan, nan_ok=True)]
    assert figures.ordered(["sgd", "adam"]) == ["adam", "sgd"]
    assert [figures.label(v) for v in (0.1, np.nan, "adam")] == ["0.1", "null", "adam"]


def test_a_diverged_seed_does_not_stretch_the_loss_axis():
    steady = _curves({0: [0.25, 0.1, 0.01], 1: [0.25, 0.2, 0.1]})
    limits = figures.loss_limits([steady])
    assert limits == pytest.approx((0.01 / 1.5, 0.25 * 1.5))
    diverged = _curves({2: [0.25, 1e18, 1e37, np.inf]})
    fig = figures.curve_panels({"ok": steady, "blown up": diverged}, "t", limits=limits)
    assert fig.axes[0].get_ylim() == pytest.approx(limits)
    assert any("median above the axis" in t.get_text() for t in fig.axes[1].texts)


def test_curve_panels_mark_where_early_stopping_ended_a_seed():
    curves = _curves({0: [0.3, 0.2, 0.1, 0.05], 1: [0.3, 0.25]})  # seed 1 stopped at epoch 10
    fig = figures.curve_panels({"all seeds": curves}, "t", faint=2, last_epoch=30)
    marks = [line for line in fig.axes[0].lines if line.get_label() == "early stopped"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [10] and list(marks[0].get_ydata()) == [0.25]


def test_final_loss_panels_with_no_finite_loss_say_so():
    fig = figures.final_loss_panels({"all diverged": np.full(4, np.inf)}, "t", target=0.01)
    assert "all 4 seeds diverged" in fig.axes[0].texts[0].get_text()
    fig = figures.final_loss_panels({"a": np.array([0.1, 0.01]), "b": np.array([np.inf, np.nan])}, "t")
    assert "(n=2, 2 not finite)" in fig.axes[1].get_title()


def test_km_curves_draw_the_share_solved_with_bands_on_one_axis_or_in_panels():
    curve = stats.kaplan_meier(seeds([2, 4, 4, None]), epochs=10)
    fig = figures.km_curves({"a": curve, "b": curve}, {"a": "4 [2, >10]", "b": "4 [2, >10]"}, "t")
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and list(ax.lines[0].get_ydata()) == pytest.approx([0, 25, 75, 75])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a: 4 [2, >10]", "b: 4 [2, >10]"]
    many = {f"job {i}": curve for i in range(figures.FEW_CURVES + 1)}
    fig = figures.km_curves(many, {k: "4" for k in many}, "t")
    assert len([a for a in fig.axes if a.get_visible()]) == len(many) and "job 6\n4" == fig.axes[6].get_title()


def _plane():
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    gx, gy = figures.plane(x, steps=20)
    return x, gx, gy


def test_decision_boundaries_of_two_classes_have_a_colourbar_for_the_shading():
    x, gx, gy = _plane()
    fig = figures.decision_boundaries(x, np.array([0, 1, 1, 0]), {"seed 0: converged": gx / 2, "seed 1": None},
                                      gx, gy, "binary", "t")
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert "no finite prediction" in fig.axes[1].texts[0].get_text()


def test_decision_boundaries_of_three_classes_colour_each_class_and_name_it():
    x, gx, gy = _plane()
    regions = (gx > 0.5).astype(int) + (gy > 0.5).astype(int)  # classes 0, 1, 2
    fig = figures.decision_boundaries(x, np.array([0, 1, 1, 2]), {"seed 0": regions}, gx, gy, "classes", "t")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["class 0", "class 1", "class 2"]
    assert not any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_a_regression_map_shares_one_colour_scale_across_panels():
    x, gx, gy = _plane()
    fig = figures.decision_boundaries(x, np.array([0.0, 1.0, 2.0, 3.0]), {"a": gx, "b": 5 * gy}, gx, gy,
                                      "values", "t")
    colourbar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    low, high = colourbar.get_ylim()
    assert low <= -0.5 and high >= 5 * 1.5, "spans both panels' predictions, not just the first"


def test_importing_and_drawing_leave_the_backend_and_rcparams_alone(tmp_path):
    """issue #24: ``import jaxbp.figures`` once chose Agg and updated rcParams for everyone.
    In a fresh interpreter (so no earlier import hides a change): backend and rcParams are
    compared before and after the import and after a figure is drawn and saved."""
    import json
    import subprocess
    import sys

    script = f"""
import json, matplotlib
matplotlib.use("svg")  # a backend the module must not replace
def state():
    return matplotlib.get_backend(), {{k: repr(v) for k, v in matplotlib.rcParams.items()}}
before = state()
import pandas as pd
from jaxbp import figures
after_import = state()
fig = figures.success_bars(pd.DataFrame({{"lr": [0.1, 1.0], "success_rate": [0.5, 1.0],
    "success_ci_low": [0.4, 0.9], "success_ci_high": [0.6, 1.0]}}), "lr", "t")
fig.savefig({str(tmp_path / "bars.png")!r}, format="png")
after_draw = state()
drawn = {{"grid": fig.axes[0].xaxis._major_tick_kw.get("gridOn"), "dpi": fig.dpi,
          "spine": fig.axes[0].spines["top"].get_visible()}}
print(json.dumps([before == after_import, before == after_draw, before[0], after_draw[0], drawn]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    same_import, same_draw, backend_before, backend_after, drawn = json.loads(proc.stdout.splitlines()[-1])
    assert same_import and same_draw and backend_before == backend_after == "svg"
    assert (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"
    assert drawn == {"grid": True, "dpi": 110, "spine": False}  # the style applied inside its context


@pytest.mark.parametrize("value, text", [
    (100.0, "100"), (99.96, "<100"), (99.9, "99.9"), (99.6, "99.6"), (99.5, "99.5"), (99.4, "99"),
    (50.0, "50"), (0.5, "0"), (0.4, "0.4"), (0.04, ">0"), (0.0, "0")])
def test_heatmap_percentages_never_round_onto_0_or_100(value, text):
    """issue #28 item 18: 99.6% and 99.9% printed as "100", hiding the rare failures."""
    assert figures.percent_text(value) == text


def test_heatmap_cells_show_the_rare_failures():
    sweep = pd.DataFrame({"lr": [1.0, 1.0, 10.0, 10.0], "hidden": [4, 8, 4, 8],
                          "success_rate": [0.996, 1.0, 0.999, 0.0004]})
    fig = figures.success_heatmap(sweep, "hidden", "lr", [], "t")
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == sorted(["99.6", "100", "99.9", ">0"])


def test_the_median_curve_ends_when_few_seeds_still_train():
    """issue #28 item 21: after early stopping froze 18 of 20 seeds at epoch 20, the median
    went on as the median of the two survivors. It now ends where fewer than 5 still train."""
    losses = {s: [0.3, 0.2, 0.15] for s in range(18)}  # stopped at epoch 20
    losses.update({18: [0.3, 0.2, 0.1, 0.05, 0.02, 0.01], 19: [0.3, 0.2, 0.1, 0.04, 0.02, 0.01]})
    fig = figures.curve_panels({"all seeds": _curves(losses)}, "t")
    median = next(line for line in fig.axes[0].lines if line.get_label() == "median")
    assert list(median.get_xdata()) == [0, 10, 20]
    assert any("fewer than 5 of\n20 seeds still train (2 at epoch 50)" in t.get_text() for t in fig.axes[0].texts)
    everyone = figures.curve_panels({"all seeds": _curves({s: [0.3, 0.2, 0.1] for s in range(8)})}, "t")
    median = next(line for line in everyone.axes[0].lines if line.get_label() == "median")
    assert list(median.get_xdata()) == [0, 10, 20] and not everyone.axes[0].texts


# ---------------------------------------------------------------- issue #28 item 22: small things
def test_a_single_runs_final_loss_figure_is_wide_enough_for_its_title():
    title = "Final train loss per seed (dashed: target 0.01): xor 2-3-1 sigmoid/sigmoid/mse, sgd lr=0.5, 5000 epochs"
    fig = figures.final_loss_panels({"all seeds": np.array([0.001, 0.002, 0.06])}, title, 0.01)
    assert fig.get_figwidth() * fig.dpi >= 700  # was 418 px, the title wrapped onto 5 lines
    assert fig._suptitle.get_text().count("\n") <= 1


def test_a_unit_whose_line_misses_the_view_is_named_outside_the_legend():
    fig = figures.new_figure((4, 4))
    ax = fig.subplots()
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    W = np.array([[1.0, 1.0], [1.0, 0.0]])  # unit 1: x₁ + x₂ = 1, in view; unit 2: x₁ = -50, far left
    figures._unit_lines(ax, {"x": x, "y": np.array([0, 1, 1, 0]), "W": W, "b": np.array([-1.0, 50.0]),
                             "targets": "binary"})
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["class 0", "class 1", "unit 1"]
    assert legend.get_title().get_text() == "unit 2: line outside the view"
