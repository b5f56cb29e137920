"""``python -m jaxbp.atlas [key=value ...]``: an atlas of where backprop succeeds.

One network per point of a plane of initial parameters around seed ``atlas.seed``'s, each
trained like ``jaxbp.train`` trains it (every training key applies), and a map of how many
epochs each needed (Kolen & Pollack 1990). :mod:`jaxbp.atlas_plane` builds and trains the
plane; this module owns the atlas dir and the Hydra app::

    python -m jaxbp.atlas hidden=2 optim=momentum atlas.resolution=512      # W0[0,0] × W0[1,0]
    python -m jaxbp.atlas atlas.x=W1.0.0 atlas.y=b1.0 atlas.range=8        # two other weights
    python -m jaxbp.atlas atlas.plane=random atlas.direction_seed=3        # θ₀ + a·u + b·v

The dir holds ``atlas.npz`` (per point, rows y and columns x: ``epochs_to_solve``, censored
at ``epochs``, ``solved``, ``final_loss``, ``converged``, ``diverged``; the axes ``x``, ``y``,
``x_name``, ``y_name``; ``base_point``, ``epochs``), then ``summary.json`` (its presence
marks the dir complete), then ``atlas.png``. Bad values are refused by
:class:`AtlasCallback` before Hydra creates any dir.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import sys
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from jaxbp import app, config, cores, paths, plan, results
from jaxbp.atlas_plane import AtlasOptions, Grid, Plane, check_options, prepare, train_grid
from jaxbp.checks import ConfigError
from jaxbp.config import RunConfig

NPZ, SUMMARY, PNG = "atlas.npz", "summary.json", "atlas.png"
log = logging.getLogger("jaxbp.atlas")


# ---------------------------------------------------------------- one atlas, into its dir
def run_atlas(cfg: RunConfig, options: AtlasOptions, out_dir, progress: bool | None = None) -> dict:
    """Checks, trains and writes one atlas into ``out_dir``; returns its summary.

    Raises:
        ConfigError: a value that does not fit the data or the network.
    """
    job = prepare(cfg, options)
    grid = train_grid(job.cfg, job.plane, job.chunk, progress)
    return write_atlas(Path(out_dir), job.cfg, options, job.plane, grid, job.sizes)


def write_atlas(out_dir: Path, cfg: RunConfig, options: AtlasOptions, plane: Plane, grid: Grid, sizes) -> dict:
    """``atlas.npz``, then ``summary.json``, then the map; each written atomically."""
    arrays = {k: getattr(grid, k) for k in ("epochs_to_solve", "solved", "final_loss", "converged", "diverged")}
    arrays |= {"x": plane.x, "y": plane.y, "x_name": np.str_(plane.names[0]), "y_name": np.str_(plane.names[1]),
               "base_point": np.asarray(plane.base_point), "epochs": np.int32(cfg.epochs)}
    results.atomic_write(out_dir / NPZ, lambda tmp: results.save_npz(tmp, **arrays))
    summary = summarize(cfg, options, plane, grid, sizes)
    summary["line"] = describe(summary, out_dir)
    results.write_json(out_dir / SUMMARY, summary)
    draw_map(out_dir, out_dir / PNG)
    return summary


def summarize(cfg: RunConfig, options: AtlasOptions, plane: Plane, grid: Grid, sizes) -> dict:
    """The facts of ``summary.json``. Shares are of the plane's area (each grid point counts
    once): they describe this plane, they do not estimate a rate over random inits."""
    solved = grid.epochs_to_solve[grid.solved]
    return {
        "kind": "atlas",
        "config": config.result_values(cfg),  # its `seed` is the base network's
        "atlas": dataclasses.asdict(options),
        "spec": list(sizes),
        "points": int(grid.solved.size),
        "axes": [{"name": name, "min": float(values[0]), "max": float(values[-1])}
                 for name, values in zip(plane.names, (plane.x, plane.y))],
        "base_point": list(plane.base_point),
        "success_share": float(grid.solved.mean()),  # reached loss <= target_loss, never diverged
        "converged_share": float(grid.converged.mean()),
        "diverged_share": float(grid.diverged.mean()),
        "epochs_to_solve_median": float(np.median(solved)) if solved.size else math.nan,
        "wall_s": grid.wall_s, "compile_s": grid.compile_s, "chunks": grid.chunks, "device": grid.device,
    }


def _plane_label(summary: dict) -> str:
    atlas = summary["atlas"]
    if atlas["plane"] == "random":
        return f"random plane (directions seed {atlas['direction_seed']}) around seed {atlas['seed']}"
    return f"{summary['axes'][0]['name']} × {summary['axes'][1]['name']} around seed {atlas['seed']}"


def describe(summary: dict, atlas_dir: Path) -> str:
    """The one line printed when an atlas is done."""
    cfg, n, median = summary["config"], summary["atlas"]["resolution"], summary["epochs_to_solve_median"]
    solved = f"median {median:.0f} epochs" if math.isfinite(median) else "none solved"
    return (f"atlas {n}×{n} of {cfg['data']['name']} {'-'.join(map(str, summary['spec']))}, "
            f"{cfg['optim']['name']} lr={cfg['lr']:g}, {cfg['epochs']} epochs, {_plane_label(summary)}: "
            f"{summary['success_share']:.1%} of the plane {config.success_words(cfg)} ({solved}), "
            f"{summary['diverged_share']:.1%} diverged; {summary['wall_s']:.1f} s "
            f"(compile {summary['compile_s']:.1f} s) → {atlas_dir}")


def is_atlas_dir(path) -> bool:
    """Whether ``path`` is a complete atlas dir (``atlas.npz`` and an atlas ``summary.json``)."""
    path = Path(path)
    try:
        return (path / NPZ).is_file() and json.loads((path / SUMMARY).read_text()).get("kind") == "atlas"
    except (OSError, ValueError, AttributeError):
        return False


def read_atlas(atlas_dir) -> tuple[dict, dict]:
    """``(arrays of atlas.npz, summary)``.

    Raises:
        results.ResultsError: ``atlas_dir`` is not a complete atlas dir.
    """
    atlas_dir = Path(atlas_dir)
    if not is_atlas_dir(atlas_dir):
        raise results.ResultsError(f"{atlas_dir} is not a complete atlas dir ({NPZ} and {SUMMARY})")
    with np.load(atlas_dir / NPZ, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads((atlas_dir / SUMMARY).read_text())


# ---------------------------------------------------------------- the map, zooms, the report
def _extent(values: np.ndarray) -> list[float]:
    half_step = (values[-1] - values[0]) / (len(values) - 1) / 2  # pixels centred on grid points
    return [values[0] - half_step, values[-1] + half_step]


def _mark_base(ax, base_point, extent, seed: int) -> list:
    """A cross at the base network, when the map shows it; returns its legend handle."""
    from matplotlib.lines import Line2D

    bx, by = base_point
    if not (extent[0] <= bx <= extent[1] and extent[2] <= by <= extent[3]):
        return []
    marker = dict(marker="+", color="red", markeredgewidth=2, linestyle="none")
    ax.plot([bx], [by], markersize=16, **marker)
    return [Line2D([], [], markersize=12, label=f"base: seed {seed}'s init", **marker)]


def draw_map(atlas_dir, out_png) -> Path:
    """The map of an atlas dir: epochs to the target in colour (log scale), points never
    solved black, diverged ones grey, the base network marked; written atomically."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    arrays, summary = read_atlas(atlas_dir)
    epochs, solved, extent = int(arrays["epochs"]), arrays["solved"], _extent(arrays["x"]) + _extent(arrays["y"])
    shown = dict(origin="lower", extent=extent, aspect="auto", interpolation="nearest")
    fig = Figure(figsize=(8, 7), layout="constrained")  # no pyplot: the user's backend stays as it is
    ax = fig.add_subplot()
    cfg = summary["config"]
    if not solved.any():  # one black square would say nothing: show how far each start got
        return _draw_final_loss(fig, ax, arrays, summary, shown, extent, Path(out_png))
    fastest = max(1, int(arrays["epochs_to_solve"][solved].min()))
    image = ax.imshow(np.ma.masked_array(np.maximum(arrays["epochs_to_solve"], 1), mask=~solved),
                      cmap=colormaps["viridis"].with_extremes(bad="black"),
                      norm=LogNorm(fastest, max(epochs, fastest + 1)), **shown)
    handles = [Patch(color="black", label=f"not solved in {epochs} epochs")]
    if arrays["diverged"].any():
        ax.imshow(np.ma.masked_array(np.ones(solved.shape), mask=~arrays["diverged"]),
                  cmap=ListedColormap(["0.6"]), **shown)
        handles.append(Patch(color="0.6", label="diverged"))
    handles += _mark_base(ax, arrays["base_point"], extent, summary["atlas"]["seed"])
    bar = fig.colorbar(image, ax=ax, label=f"epochs to train loss ≤ {cfg['target_loss']:g}")
    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 3, 5)))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel=str(arrays["x_name"]), ylabel=str(arrays["y_name"]))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    ax.set_title(f"{cfg['data']['name']} {'-'.join(map(str, summary['spec']))}, {cfg['optim']['name']} "
                 f"lr={cfg['lr']:g}, {epochs} epochs: {summary['success_share']:.1%} of "
                 f"{summary['points']:,} initial points solve it", fontsize=11)
    out_png = Path(out_png)
    results.atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=150, format="png"))
    return out_png


def _draw_final_loss(fig, ax, arrays, summary, shown, extent, out_png: Path) -> Path:
    """The map of an atlas where no start solved the task: the final train loss (log scale),
    diverged points grey, so the plateaus and the near misses still show."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Patch

    loss = np.ma.masked_invalid(np.where(arrays["diverged"], np.nan, arrays["final_loss"]))
    positive = loss.compressed()[loss.compressed() > 0]
    low, high = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
    image = ax.imshow(np.ma.masked_less_equal(loss, 0), cmap=colormaps["viridis"].with_extremes(bad="0.6"),
                      norm=LogNorm(low, max(high, low * 1.01)), **shown)
    cfg = summary["config"]
    fig.colorbar(image, ax=ax, label="final train loss")
    handles = _mark_base(ax, arrays["base_point"], extent, summary["atlas"]["seed"])
    if arrays["diverged"].any():
        handles.append(Patch(color="0.6", label="diverged"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    ax.set(xlabel=str(arrays["x_name"]), ylabel=str(arrays["y_name"]))
    ax.set_title(f"{cfg['data']['name']} {'-'.join(map(str, summary['spec']))}, {cfg['optim']['name']} "
                 f"lr={cfg['lr']:g}, {int(arrays['epochs'])} epochs: none of {summary['points']:,} initial "
                 f"points {config.success_words(cfg)}\n(colour: the loss each one ended at)", fontsize=11)
    results.atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=150, format="png"))
    return out_png


def stored_config(atlas_dir) -> tuple[RunConfig, AtlasOptions]:
    """The run config and atlas options an atlas dir was made with."""
    summary = read_atlas(atlas_dir)[1]
    return config.from_dict(summary["config"]), AtlasOptions(**summary["atlas"])


def zoom(atlas_dir, box, out_dir=None, progress: bool | None = None) -> Path:
    """Re-runs an atlas at its resolution inside ``box = (x0, x1, y0, y1)``, in axis units;
    returns the new atlas dir (default ``<atlas_dir>/zoom/box_<x0>_<x1>_<y0>_<y1>``).

    Raises:
        ConfigError: a bad box. results.ResultsError: not an atlas dir.
    """
    cfg, options = stored_config(atlas_dir)
    options = dataclasses.replace(options, box=list(box))
    default = Path(atlas_dir) / "zoom" / ("box_" + "_".join(f"{v:g}" for v in options.box))  # never "-1_..."
    out_dir = Path(out_dir) if out_dir is not None else default
    run_atlas(cfg, options, out_dir, progress)
    return out_dir


_zoom = zoom  # report_atlas's `zoom` argument hides the function


def report_atlas(path, zoom=None) -> list[Path]:
    """For ``python -m jaxbp.report <atlas-dir> [--zoom x0,x1,y0,y1]``: the map and a
    ``report.md`` in ``<dir>/report/``, of the atlas itself or of a new zoom into the box
    ``zoom``. Returns the files written."""
    atlas_dir = Path(path) if zoom is None else _zoom(path, zoom)
    summary = read_atlas(atlas_dir)[1]
    out = atlas_dir / "report"
    figure = draw_map(atlas_dir, out / PNG)
    shares = "\n".join(f"| {k} | {summary[k]:.4g} |" for k in ("success_share", "converged_share", "diverged_share"))
    results.write_text(out / "report.md", f"# Atlas\n\n{summary['line']}\n\n![atlas]({PNG})\n\n"
                                          f"| share of the plane | value |\n|---|---|\n{shares}\n")
    return [figure, out / "report.md"]


# ---------------------------------------------------------------- the Hydra app
def register() -> None:
    """jaxbp's schema, plus the ``atlas`` node that ``conf/atlas.yaml`` composes first."""
    from hydra.core.config_store import ConfigStore

    app.register()
    node = app.structured(AtlasOptions)
    node.seed = "${seed}"  # the base network is the run's own `seed` unless atlas.seed says otherwise
    ConfigStore.instance().store(name="atlas_schema", node=node, package="atlas")


def split(composed: DictConfig) -> tuple[RunConfig, AtlasOptions]:
    """The one conversion: a composed atlas config into a ``RunConfig`` and ``AtlasOptions``.

    Raises:
        ConfigError: a bad value.
    """
    run_node = composed.copy()
    with open_dict(run_node):
        del run_node["atlas"]
    cfg = app.to_run_config(run_node)
    try:
        return cfg, OmegaConf.to_object(composed.atlas)
    except OmegaConfBaseException as err:
        raise ConfigError(getattr(err, "full_key", None) or "atlas", "?", str(err).splitlines()[0]) from None


def check(composed: DictConfig) -> tuple[RunConfig, AtlasOptions]:
    """Converts and checks an atlas config against its data and network; exits 2 when bad."""
    try:
        cfg, options = split(composed)
        check_options(options, plan.plan(cfg).spec.sizes)
        return cfg, options
    except ConfigError as err:
        app.refuse(err)


class AtlasCallback(Callback):
    """Takes the sweep callback's place in ``conf/atlas.yaml``: refuses before any dir exists."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        app.refuse_message("jaxbp.atlas draws one map per command: run it without -m")


@hydra.main(version_base="1.3", config_path=str(paths.CONF_DIR), config_name="atlas")
def main(composed: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    cfg, options = check(composed)  # the callback refused bad values already; a backstop
    app.setup_compile_cache(cfg)
    log.info(run_atlas(cfg, options, out_dir)["line"])


def quote_names(args: list[str]) -> list[str]:
    """``atlas.x=W0[0,1]`` -> ``atlas.x='W0[0,1]'``: Hydra's override grammar reads brackets
    as a list, so a parameter name is quoted for it before parsing."""
    return [re.sub(r"^(\+*atlas\.[xy])=([Wb]\d+\[[\d, ]+\])$", r"\1='\2'", arg) for arg in args]


def cli() -> None:
    """The entry point: sets XLA's CPU flags before JAX starts and registers the schemas (as
    :func:`jaxbp.train.cli` does; importing this module does neither). Ctrl-C ends with one
    line and status 130."""
    cores.configure_xla()
    register()
    sys.argv[1:] = quote_names(sys.argv[1:])
    try:
        main()
    except KeyboardInterrupt:
        print("\njaxbp: interrupted; the atlas was not written", file=sys.stderr)
        sys.exit(app.EXIT_INTERRUPTED)


if __name__ == "__main__":
    from jaxbp import pipes

    pipes.main(cli)
