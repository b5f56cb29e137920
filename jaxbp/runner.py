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
    lrs: np.ndarray
    metrics: dict[str, np.ndarray]
    params: list[dict[str, np.ndarray]]
    curve_members: np.ndarray  # indices into the member axis
    curve_epochs: np.ndarray  # (T,) epochs at which curves are sampled, ending at `epochs`
    curves: np.ndarray  # (len(curve_members), T)
    wall_s: float
    compile_s: float
    backend: str
    device: str


class _Programs(NamedTuple):
    program: engine.Program
    chunks: dict  # jitted init and chunk functions, by what they were specialised for
    finalize: object


_PROGRAMS: dict[RunConfig, _Programs] = {}
_COMPILED: dict[tuple, object] = {}
COMPILE_COUNT = 0  # programs compiled by this process (tests read it)


def _programs(cfg: RunConfig) -> _Programs:
    key = config.shape_key(cfg)
    if key not in _PROGRAMS:
        program = engine.make_program(cfg)
        finalize = jax.jit(jax.vmap(program.finalize, in_axes=(0, None)))
        _PROGRAMS[key] = _Programs(program, {}, finalize)
    return _PROGRAMS[key]


def program_for(cfg: RunConfig) -> engine.Program:
    """The (cached) program for ``cfg``; building it loads and checks the data."""
    return _programs(cfg).program


def _constrain(states, sharding):
    """Pins every state leaf to the member sharding, so chunk outputs can feed the next call
    of the same compiled program unchanged."""
    if sharding is None:
        return states
    return jax.tree.map(lambda leaf: jax.lax.with_sharding_constraint(leaf, sharding), states)


def _init_fn(programs: _Programs, sharding):
    key = ("init", sharding)
    if key not in programs.chunks:
        init = jax.vmap(lambda seed: programs.program.init(engine.seed_key(seed)))
        programs.chunks[key] = jax.jit(lambda seeds: _constrain(init(seeds), sharding))
    return programs.chunks[key]


def _chunk_fn(programs: _Programs, n_blocks: int, log_every: int, sharding):
    key = ("chunk", n_blocks, log_every, sharding)
    if key not in programs.chunks:
        step_all = jax.vmap(programs.program.step, in_axes=(0, 0, None))

        def chunk(states, lrs, first_block, epochs, curve_members):
            states, curve = engine.run_blocks(step_all, states, lrs, first_block, n_blocks, epochs,
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
    global COMPILE_COUNT
    key = (id(fn), _signature(args))
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    COMPILE_COUNT += 1
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


def _place_members(cfg: RunConfig, seeds: np.ndarray, lrs: np.ndarray, n_devices: int, sharding):
    """Device arrays of per-member seeds and lrs, padded with copies of the last member to a
    multiple of the device count (the padding is dropped from the results)."""
    padding = math.ceil(len(seeds) / n_devices) * n_devices - len(seeds)
    seed_arr = np.concatenate([seeds, np.repeat(seeds[-1:], padding)]).astype(np.uint32)
    lr_arr = np.concatenate([lrs, np.repeat(lrs[-1:], padding)]).astype(jnp.dtype(cfg.dtype))
    place = (lambda a: jax.device_put(a, sharding)) if sharding else jnp.asarray
    return place(seed_arr), place(lr_arr)


def _train(cfg: RunConfig, programs: _Programs, seed_arr, lr_arr, curve_members, sharding, bar):
    """Compiles (or reuses) init, chunk and finalize, then runs every chunk of epochs.

    Returns ``(params, metrics, curves (T, members), compile_s)`` as device arrays.
    """
    total_blocks = math.ceil(cfg.epochs / cfg.log_every)
    blocks_per_chunk = math.ceil(total_blocks / TARGET_CHUNKS)
    epochs, curve_idx = jnp.int32(cfg.epochs), jnp.asarray(curve_members)
    init, compile_s = _compiled(_init_fn(programs, sharding), seed_arr)
    states = init(seed_arr)
    chunk, seconds = _compiled(_chunk_fn(programs, blocks_per_chunk, cfg.log_every, sharding),
                               states, lr_arr, jnp.int32(0), epochs, curve_idx)
    finalize, more_seconds = _compiled(programs.finalize, states, epochs)
    compile_s += seconds + more_seconds

    curves = []
    for first_block in range(0, total_blocks, blocks_per_chunk):
        states, curve = chunk(states, lr_arr, jnp.int32(first_block), epochs, curve_idx)
        curves.append(curve)
        if not bar.disable:  # waiting here is what lets the bar move
            jax.block_until_ready(curve)
            bar.update(min(cfg.epochs, (first_block + blocks_per_chunk) * cfg.log_every) - bar.n)
    params, metrics = finalize(states, epochs)
    return params, metrics, jnp.concatenate(curves, axis=0)[:total_blocks], compile_s


def run(cfg: RunConfig, seeds=None, lrs=None, curve_members=None, progress: bool | None = None,
        desc: str = "train") -> RunResult:
    """Trains every member and returns host-side results.

    Args:
        cfg: the job; ``seeds`` default to ``seed .. seed+num_seeds-1``, ``lrs`` to ``cfg.lr``.
        seeds, lrs: optional per-member integer seeds and learning rates, equal lengths.
        curve_members: member indices whose curves are kept (default the first
            ``curve_seeds``).
        progress: force the bar on or off; default ``cfg.progress`` on a TTY.
    """
    started = time.perf_counter()
    seeds = np.arange(cfg.seed, cfg.seed + cfg.num_seeds) if seeds is None else np.asarray(seeds)
    lrs = np.full(len(seeds), cfg.lr) if lrs is None else np.broadcast_to(lrs, seeds.shape)
    if curve_members is None:
        curve_members = np.arange(min(cfg.curve_seeds, len(seeds)))
    curve_members = np.asarray(curve_members, np.int32)
    sharding, n_devices = _mesh_sharding(cfg)
    seed_arr, lr_arr = _place_members(cfg, seeds, lrs, n_devices, sharding)
    with _progress_bar(cfg, progress, desc) as bar:
        params, metrics, curves, compile_s = _train(cfg, _programs(cfg), seed_arr, lr_arr,
                                                    curve_members, sharding, bar)
    n = len(seeds)
    metrics = {k: np.asarray(v)[:n] for k, v in metrics.items()}
    params = jax.tree.map(lambda a: np.asarray(a)[:n], params)
    final = metrics["final_loss"][curve_members][:, None]  # the curve's last point, at `epochs`
    device = jax.local_devices()[0]
    return RunResult(
        seeds=seeds, lrs=np.asarray(lrs), metrics=metrics, params=params,
        curve_members=curve_members,
        curve_epochs=np.append(engine.curve_epochs(cfg), cfg.epochs),
        curves=np.concatenate([np.asarray(curves).T, final], axis=1),
        wall_s=time.perf_counter() - started, compile_s=compile_s,
        backend=jax.default_backend(), device=f"{device.device_kind} x{n_devices}",
    )
