"""The planes of an atlas (:mod:`jaxbp.atlas`) and their training: one network per point of a
plane of initial parameters, all trained by the vmapped engine (Kolen & Pollack 1990,
"Backpropagation is sensitive to initial conditions").

Planes (``atlas.plane``), around a base network θ₀ (seed ``atlas.seed``'s initial params,
drawn exactly as ``jaxbp.train`` draws that seed):

- ``weights``: two named parameters vary, every other one is θ₀'s. A name is the layer's
  array in ``params.npz`` and its index: ``W0[0,1]`` (layer 0, input 0 → unit 1), ``b1[0]``.
  Each axis spans ``θ₀ value ± range`` in weight units (or ``box``); with an odd
  resolution the middle point is exactly θ₀.
- ``random``: θ = θ₀ + a·u + b·v, a, b in ``[-range, range]``. u and v are Gaussian
  directions, filter-normalised as in Li et al. 2018 ("Visualizing the loss landscape of
  neural nets"): each unit's incoming weight vector in u (and v) is rescaled to the norm of
  the same unit's incoming weights in θ₀. Their bias entries are zero (Li et al.'s default,
  ``ignore='biasbn'``), so biases stay θ₀'s.

Every point trains with the base seed's key (the same minibatch order) and differs from the
base network only in its initial parameters. The grid trains in chunks of networks, each one
call of :func:`jaxbp.runner.run` with ``init_params``, so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from jaxbp import config
from jaxbp.checks import check_choice, check_int, check_real, is_real, require
from jaxbp.config import RunConfig

PLANES = ("weights", "random")
DEFAULT_RANGE = {"weights": 4.0, "random": 1.0}
# A 4096² atlas keeps 16.8M points of results (about 200 MB on the host) and one PNG pixel each.
MAX_RESOLUTION = 4096
MAX_CHUNK = 2**22
CHUNK_BYTES = 2**30  # training state of one engine call (config.member_bytes per network)
NAME_FORMS = "W<layer>[<input>,<unit>] or b<layer>[<unit>], e.g. W0[0,1] or b1[0] (or W0.0.1, b1.0)"
_NAME = re.compile(r"([Wb])(\d+)(?:\[(\d+(?:,\d+)?)\]|\.(\d+(?:\.\d+)?))")


@dataclass(frozen=True)
class AtlasOptions:
    """The ``atlas.*`` keys: which plane of initial parameters, how finely, and where."""

    resolution: int = 256  # points per axis: resolution² networks
    plane: str = "weights"  # weights | random
    x: str = "W0[0,0]"  # weights plane: the parameter on each axis
    y: str = "W0[1,0]"
    range: Optional[float] = None  # half-width of each axis around θ₀; null = 4 (weights), 1 (random)
    box: Optional[list[float]] = None  # [x0, x1, y0, y1] in axis units instead of range (a zoom)
    seed: int = 0  # the base network θ₀: this seed's initial params
    direction_seed: int = 1  # random plane: NumPy seed of the directions u, v
    chunk: int = 2**18  # networks per engine call at most (fewer if CHUNK_BYTES needs it)

    def __post_init__(self):
        check_int("atlas.resolution", self.resolution, 2, MAX_RESOLUTION,
                  allowed=f"an integer in [2, {MAX_RESOLUTION}] ({MAX_RESOLUTION}² points "
                          "keep about 200 MB of results on the host)")
        check_choice("atlas.plane", self.plane, PLANES)
        for key in ("x", "y"):
            parse_name(f"atlas.{key}", getattr(self, key))
        if self.range is not None:
            check_real("atlas.range", self.range, 0.0, low_open=True)
        if self.box is not None:
            box = tuple(self.box)
            require(len(box) == 4 and all(is_real(v) for v in box) and box[0] < box[1] and box[2] < box[3],
                    "atlas.box", self.box, "null or [x0, x1, y0, y1] with x0 < x1 and y0 < y1")
            object.__setattr__(self, "box", tuple(float(v) for v in box))
        check_int("atlas.seed", self.seed, 0, 2**32 - 1)
        check_int("atlas.direction_seed", self.direction_seed, 0)
        check_int("atlas.chunk", self.chunk, 1, MAX_CHUNK)

    @property
    def half_width(self) -> float:
        return self.range if self.range is not None else DEFAULT_RANGE[self.plane]


# ---------------------------------------------------------------- naming parameters
class Coordinate(NamedTuple):
    """One parameter of a network: ``params[layer][kind][index]``."""

    kind: str  # "W" or "b"
    layer: int
    index: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.kind}{self.layer}[{','.join(map(str, self.index))}]"


def parse_name(key: str, text) -> Coordinate:
    """``"W0[0,1]"`` or ``"W0.0.1"`` -> ``Coordinate("W", 0, (0, 1))``; checks the form only.

    Raises:
        ConfigError: naming ``key``, when ``text`` is not a parameter name.
    """
    match = _NAME.fullmatch(str(text).replace(" ", ""))
    require(match is not None, key, text, f"a parameter name: {NAME_FORMS}")
    kind, layer, bracketed, dotted = match.groups()
    index = tuple(int(i) for i in (bracketed or dotted).replace(".", ",").split(","))
    require(len(index) == (2 if kind == "W" else 1), key, text, f"a parameter name: {NAME_FORMS}")
    return Coordinate(kind, int(layer), index)


def describe_params(sizes) -> str:
    """Every parameter name a network of ``sizes`` has, as ranges."""
    parts = [f"W{l}[i,j] (i<{a}, j<{b}), b{l}[j] (j<{b})" for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return "; ".join(parts)


def locate(key: str, text, sizes) -> Coordinate:
    """The parameter ``text`` names, checked against a network of layer widths ``sizes``."""
    coord = parse_name(key, text)
    layers = len(sizes) - 1
    shape = (sizes[coord.layer], sizes[coord.layer + 1]) if coord.layer < layers else ()
    shape = shape if coord.kind == "W" else shape[1:]
    require(coord.layer < layers and all(i < n for i, n in zip(coord.index, shape)), key, text,
            f"a parameter of the {'-'.join(map(str, sizes))} network: {describe_params(sizes)}")
    return coord


def check_options(options: AtlasOptions, sizes) -> None:
    """The checks that need the network: both axes name distinct parameters it has."""
    if options.plane != "weights":
        return
    x, y = (locate(f"atlas.{k}", getattr(options, k), sizes) for k in ("x", "y"))
    require(x != y, "atlas.y", options.y, f"a parameter other than atlas.x={x.name}")


# ---------------------------------------------------------------- the plane
@dataclass(frozen=True)
class Plane:
    """Axis values and how a point (x, y) maps to initial parameters."""

    kind: str
    names: tuple[str, str]  # axis labels
    x: np.ndarray  # (resolution,) axis values, float64
    y: np.ndarray
    base_point: tuple[float, float]  # θ₀ in axis units
    base: list  # θ₀: [{"W", "b"}] NumPy arrays in the run's dtype
    axes: tuple  # weights: two Coordinates; random: the directions (u, v)


def axis_values(centre: float, half_width: float, resolution: int) -> np.ndarray:
    """``centre + half_width·t`` for ``t`` evenly spaced in [-1, 1]; t is exactly 0 at the
    middle point of an odd resolution, so the centre itself is on the grid."""
    steps = np.arange(resolution) - (resolution - 1) / 2
    return centre + half_width * steps / ((resolution - 1) / 2)


def base_params(cfg: RunConfig, seed: int) -> list:
    """Seed ``seed``'s initial params, drawn as ``jaxbp.train`` draws them (no training)."""
    from jaxbp import engine, runner

    program = runner.program_for(cfg)
    with runner.precision(cfg):
        state = program.init(engine.seed_key(seed), engine.member_hyper(cfg))
        return [{k: np.asarray(v) for k, v in layer.items()} for layer in state.params]


def random_directions(base: list, seed: int) -> tuple[list, list]:
    """Two Gaussian directions, filter-normalised (Li et al. 2018): unit j's incoming weights
    d[:, j] ← d[:, j] · ‖θ₀[:, j]‖ / ‖d[:, j]‖; bias entries zero."""
    rng = np.random.default_rng(seed)

    def direction():
        layers = []
        for layer in base:
            d = rng.standard_normal(layer["W"].shape)
            d *= np.linalg.norm(layer["W"], axis=0) / np.linalg.norm(d, axis=0)
            layers.append({"W": d, "b": np.zeros(layer["b"].shape)})
        return layers

    return direction(), direction()


def make_plane(cfg: RunConfig, options: AtlasOptions, sizes) -> Plane:
    base = base_params(cfg, options.seed)
    if options.plane == "weights":
        coords = tuple(locate(f"atlas.{k}", getattr(options, k), sizes) for k in ("x", "y"))
        centre = tuple(float(base[c.layer][c.kind][c.index]) for c in coords)
        names, axes = (coords[0].name, coords[1].name), coords
    else:
        centre, axes = (0.0, 0.0), random_directions(base, options.direction_seed)
        names = (f"a (θ = θ₀ + a·u + b·v, directions seed {options.direction_seed})", "b")
    if options.box is None:
        x, y = (axis_values(c, options.half_width, options.resolution) for c in centre)
    else:
        x0, x1, y0, y1 = options.box
        x, y = np.linspace(x0, x1, options.resolution), np.linspace(y0, y1, options.resolution)
    return Plane(options.plane, names, x, y, centre, base, axes)


def params_at(plane: Plane, xs: np.ndarray, ys: np.ndarray) -> list:
    """Initial params of the points ``(xs[i], ys[i])``, with a leading member axis."""
    n = len(xs)
    if plane.kind == "weights":
        params = [{k: np.repeat(v[None], n, axis=0) for k, v in layer.items()} for layer in plane.base]
        for coord, values in zip(plane.axes, (xs, ys)):
            params[coord.layer][coord.kind][(slice(None), *coord.index)] = values
        return params
    u, v = plane.axes

    def point(k, l):  # θ₀ + a·u + b·v, in float64, then the run's dtype
        shape = (n,) + (1,) * plane.base[l][k].ndim
        mixed = plane.base[l][k] + xs.reshape(shape) * u[l][k] + ys.reshape(shape) * v[l][k]
        return mixed.astype(plane.base[l][k].dtype)

    return [{k: point(k, l) for k in layer} for l, layer in enumerate(plane.base)]


# ---------------------------------------------------------------- training the grid
class Prepared(NamedTuple):
    """What training an atlas needs, resolved once by :func:`prepare`."""

    cfg: RunConfig  # the job, its `seed` set to the base network's
    plane: Plane
    chunk: int  # networks per engine call
    sizes: tuple[int, ...]


def prepare(cfg: RunConfig, options: AtlasOptions) -> Prepared:
    """Loads the data, checks ``options`` against the network and builds the plane.

    Raises:
        ConfigError: a value that does not fit the data or the network.
    """
    from jaxbp import runner

    cfg = dataclasses.replace(cfg, seed=options.seed, num_seeds=1, curve_seeds=0)
    program = runner.program_for(cfg)  # loads and checks the data
    sizes = program.spec.sizes
    check_options(options, sizes)
    size = chunk_size(cfg, options, sizes, program.dataset.x_train.shape[0], options.resolution**2)
    return Prepared(cfg, make_plane(cfg, options, sizes), size, sizes)


class Grid(NamedTuple):
    """Per-point results, each ``(len(y), len(x))``: rows are y, columns x."""

    epochs_to_solve: np.ndarray  # int32: first epoch with train loss <= target; `epochs` if never
    solved: np.ndarray  # reached the target within `epochs` and never diverged
    final_loss: np.ndarray
    converged: np.ndarray  # final loss <= target, not diverged (jaxbp's success)
    diverged: np.ndarray
    wall_s: float
    compile_s: float
    chunks: int
    device: str


def chunk_size(cfg: RunConfig, options: AtlasOptions, sizes, n_rows: int, points: int) -> int:
    """Networks per engine call: at most ``atlas.chunk`` and what fits in CHUNK_BYTES,
    spread evenly so the last call is not mostly padding."""
    spec = cfg.spec(sizes[0], sizes[-1])
    largest = max(1, min(options.chunk, CHUNK_BYTES // config.member_bytes(cfg, spec, n_rows)))
    return math.ceil(points / math.ceil(points / largest))


def train_grid(cfg: RunConfig, plane: Plane, size: int, progress: bool | None = None) -> Grid:
    """Trains every point of ``plane``, ``size`` networks per call of ``runner.run``."""
    import time

    from tqdm.auto import tqdm

    from jaxbp import runner

    started = time.perf_counter()
    xs, ys = (a.ravel() for a in np.meshgrid(plane.x, plane.y))
    n, parts, compile_s = xs.size, [], 0.0
    starts = range(0, n, size)
    show = cfg.progress and sys.stderr.isatty() if progress is None else progress
    for i, start in enumerate(tqdm(starts, desc="atlas", unit="chunk", disable=not show, file=sys.stderr)):
        # The last call repeats its last point up to `size`: one shape, one compiled program.
        rows = np.minimum(np.arange(start, start + size), n - 1)
        result = runner.run(cfg, seeds=np.full(size, cfg.seed), init_params=params_at(plane, xs[rows], ys[rows]),
                            curve_members=np.zeros(0, np.int32), progress=show,
                            desc=f"chunk {i + 1}/{len(starts)}")
        parts.append({k: v[: min(size, n - start)] for k, v in result.metrics.items()})
        compile_s += result.compile_s
    metrics = {k: np.concatenate([p[k] for p in parts]).reshape(len(plane.y), len(plane.x)) for k in parts[0]}
    solved = (metrics["epochs_to_target"] >= 0) & ~metrics["diverged"]
    return Grid(np.where(solved, metrics["epochs_to_target"], cfg.epochs).astype(np.int32), solved,
                metrics["final_loss"], metrics["converged"], metrics["diverged"],
                time.perf_counter() - started, compile_s, len(starts), result.device)

