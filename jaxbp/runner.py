"""Runs a program over many members (seed, lr) at once: vmapped, sharded, chunked, cached.

The member axis holds one network per (seed, lr) pair and is sharded over local devices
with a 1-D mesh. Epochs run in chunks of whole logging blocks with the host loop between
chunks, which is where the progress bar moves. Compiled programs are cached per shape, so
jobs in one process that differ only in ``lr`` or ``seed`` compile once.
"""

from __future__ import annotations

import math
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxbp import config, engine
from jaxbp.config import RunConfig

TARGET_CHUNKS = 20  # progress updates per job; each chunk is one call of the same program
PROGRESS_DELAY_S = 1.0  # a job that ends sooner never draws a bar


class RunResult(NamedTuple):
    """Host-side results for ``N`` members; per-member arrays have leading axis ``N``."""

    seeds: np.ndarray
    hyper: dict[str, np.ndarray]  # per-member traced hyperparameters (engine.member_hyper)
    metrics: dict[str, np.ndarray]
    params: list[dict[str, np.ndarray]]
    curve_members: np.ndarray  # indices into the member axis
    curve_epochs: np.ndarray  # (T,) epochs at which curves are sampled, ending at `epochs`
    curves: np.ndarray  # (len(curve_members), T)
    wall_s: float
    compile_s: float
    backend: str
    device: str
    devices: int

    @property
    def lrs(self) -> np.ndarray:
        return self.hyper["learning_rate"]


class _Programs(NamedTuple):
    program: engine.Program
    chunks: dict  # jitted init and chunk functions, by what they were specialised for
    finalize: object


_PROGRAMS: dict[RunConfig, _Programs] = {}
_COMPILED: dict[tuple, object] = {}


def precision(cfg: RunConfig):
    """The context a job's program is built and run in: its dtype decides x64, per program,
    never as a process-wide switch that the last validated job would win."""
    return jax.enable_x64(cfg.dtype == "float64")


def _programs(cfg: RunConfig) -> _Programs:
    key = config.shape_key(cfg)
    if key not in _PROGRAMS:
        program = engine.make_program(cfg)
        finalize = jax.jit(jax.vmap(program.finalize, in_axes=(0, None)))
        _PROGRAMS[key] = _Programs(program, {}, finalize)
    return _PROGRAMS[key]


def program_for(cfg: RunConfig) -> engine.Program:
    """The (cached) program for ``cfg``; building it loads and checks the data."""
    with precision(cfg):
        return _programs(cfg).program


def _constrain(states, sharding):
    """Pins every state leaf to the member sharding, so chunk outputs can feed the next call
    of the same compiled program unchanged."""
    if sharding is None:
        return states
    return jax.tree.map(lambda leaf: jax.lax.with_sharding_constraint(leaf, sharding), states)


def _init_fn(programs: _Programs, sharding, given_params: bool):
    key = ("init", sharding, given_params)
    if key not in programs.chunks:
        if given_params:
            init = jax.vmap(lambda seed, hyper, params: programs.program.init(
                engine.seed_key(seed), hyper, params))
        else:
            init = jax.vmap(lambda seed, hyper: programs.program.init(engine.seed_key(seed), hyper))
        programs.chunks[key] = jax.jit(lambda *members: _constrain(init(*members), sharding))
    return programs.chunks[key]


def _chunk_fn(programs: _Programs, n_blocks: int, log_every: int, sharding):
    key = ("chunk", n_blocks, log_every, sharding)
    if key not in programs.chunks:
        step_all = jax.vmap(programs.program.step, in_axes=(0, None))

        def chunk(states, first_block, epochs, curve_members):
            states, curve = engine.run_blocks(step_all, states, first_block, n_blocks, epochs,
                                              log_every, lambda loss: loss[curve_members])
            return _constrain(states, sharding), curve

        programs.chunks[key] = jax.jit(chunk)
    return programs.chunks[key]


def _signature(args) -> tuple:
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((np.shape(a), str(jnp.result_type(a)), getattr(a, "sharding", None))
                          for a in leaves)


def _compiled(fn, *args):
    """The AOT-compiled ``fn`` for these argument shapes, and seconds spent compiling it."""
    key = (id(fn), jax.config.jax_enable_x64, _signature(args))
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    _COMPILED[key] = compiled
    return compiled, time.perf_counter() - start


def _mesh_sharding(cfg: RunConfig):
    devices = jax.local_devices()
    count = len(devices) if cfg.devices is None else min(cfg.devices, len(devices))
    if count <= 1:
        return None, 1
    mesh = Mesh(np.array(devices[:count]), ("members",))
    return NamedSharding(mesh, PartitionSpec("members")), count


def _progress_bar(cfg: RunConfig, show: bool | None, desc: str):
    from tqdm.auto import tqdm

    if show is None:
        show = cfg.progress and sys.stderr.isatty()
    return tqdm(total=cfg.epochs, unit="epoch", desc=desc, disable=not show, delay=PROGRESS_DELAY_S,
                leave=False, file=sys.stderr, dynamic_ncols=True)


def _place_members(cfg: RunConfig, seeds: np.ndarray, hyper: dict, params, n_devices: int, sharding):
    """Device arrays of per-member seeds, hyperparameters (and initial params), padded with
    copies of the last member to a multiple of the device count (the padding is dropped
    from the results)."""
    padding = math.ceil(len(seeds) / n_devices) * n_devices - len(seeds)

    def pad(a, dtype=None):
        a = np.asarray(a, dtype)
        return np.concatenate([a, np.repeat(a[-1:], padding, axis=0)]) if padding else a

    place = (lambda a: jax.device_put(a, sharding)) if sharding else jnp.asarray
    members = [place(pad(seeds, np.uint32)),
               {k: place(pad(v, jnp.dtype(cfg.dtype))) for k, v in hyper.items()}]
    if params is not None:
        members.append(jax.tree.map(lambda a: place(pad(a, jnp.dtype(cfg.dtype))), params))
    return members


def _train(cfg: RunConfig, programs: _Programs, members, curve_members, sharding, bar):
    """Compiles (or reuses) init, chunk and finalize, then runs every chunk of epochs.

    Returns ``(params, metrics, curves (T, members), compile_s)`` as device arrays.
    """
    total_blocks = cfg.blocks
    blocks_per_chunk = math.ceil(total_blocks / TARGET_CHUNKS)
    epochs, curve_idx = jnp.int32(cfg.epochs), jnp.asarray(curve_members)
    init, compile_s = _compiled(_init_fn(programs, sharding, len(members) == 3), *members)
    states = init(*members)
    chunk, seconds = _compiled(_chunk_fn(programs, blocks_per_chunk, cfg.sample_every, sharding),
                               states, jnp.int32(0), epochs, curve_idx)
    finalize, more_seconds = _compiled(programs.finalize, states, epochs)
    compile_s += seconds + more_seconds

    curves = []
    for first_block in range(0, total_blocks, blocks_per_chunk):
        states, curve = chunk(states, jnp.int32(first_block), epochs, curve_idx)
        curves.append(curve)
        if not bar.disable:  # waiting here is what lets the bar move
            jax.block_until_ready(curve)
            bar.update(min(cfg.epochs, (first_block + blocks_per_chunk) * cfg.sample_every) - bar.n)
    params, metrics = finalize(states, epochs)
    return params, metrics, jnp.concatenate(curves, axis=0)[:total_blocks], compile_s


def member_table(cfg: RunConfig, seeds=None, hyper=None, lrs=None) -> tuple[np.ndarray, dict]:
    """Per-member seeds and hyperparameters: ``cfg``'s, with any given arrays in their place."""
    seeds = np.arange(cfg.seed, cfg.seed + cfg.num_seeds) if seeds is None else np.asarray(seeds)
    given = dict(hyper or {})
    if lrs is not None:
        given["learning_rate"] = lrs
    table = {k: np.broadcast_to(np.asarray(given.get(k, v), np.float64), seeds.shape)
             for k, v in engine.member_hyper(cfg).items()}
    return seeds, table


def run(cfg: RunConfig, seeds=None, lrs=None, curve_members=None, progress: bool | None = None,
        desc: str = "train", hyper: dict | None = None, init_params=None) -> RunResult:
    """Trains every member and returns host-side results.

    Args:
        cfg: the job; ``seeds`` default to ``seed .. seed+num_seeds-1``, every traced
            hyperparameter to ``cfg``'s.
        seeds: optional per-member integer seeds.
        lrs: optional per-member learning rates (shorthand for ``hyper["learning_rate"]``).
        curve_members: member indices whose curves are kept (default the first
            ``curve_seeds``).
        progress: force the bar on or off; default ``cfg.progress`` on a TTY.
        hyper: optional per-member arrays by :func:`jaxbp.engine.member_hyper`'s names.
        init_params: optional initial params with a leading member axis (a pytree shaped
            like ``model.init``'s), used instead of drawing them from the seeds.
    """
    started = time.perf_counter()
    seeds, table = member_table(cfg, seeds, hyper, lrs)
    if curve_members is None:
        curve_members = np.arange(min(cfg.curve_seeds, len(seeds)))
    curve_members = np.asarray(curve_members, np.int32)
    with precision(cfg):
        sharding, n_devices = _mesh_sharding(cfg)
        members = _place_members(cfg, seeds, table, init_params, n_devices, sharding)
        with _progress_bar(cfg, progress, desc) as bar:
            params, metrics, curves, compile_s = _train(cfg, _programs(cfg), members, curve_members,
                                                        sharding, bar)
        n = len(seeds)
        metrics = {k: np.asarray(v)[:n] for k, v in metrics.items()}
        params = jax.tree.map(lambda a: np.asarray(a)[:n], params)
        curves = np.asarray(curves)
    final = metrics["final_loss"][curve_members][:, None]  # the curve's last point, at `epochs`
    device = jax.local_devices()[0]
    return RunResult(
        seeds=seeds, hyper=table, metrics=metrics, params=params, curve_members=curve_members,
        curve_epochs=cfg.curve_epochs(), curves=np.concatenate([curves.T, final], axis=1),
        wall_s=time.perf_counter() - started, compile_s=compile_s,
        backend=jax.default_backend(), device=f"{device.device_kind} x{n_devices}", devices=n_devices,
    )
