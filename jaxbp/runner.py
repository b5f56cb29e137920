"""Runs a program over many members at once: vmapped, sharded, chunked, cached.

The member axis holds one network per (seed, hyperparameters) and is sharded over local
devices with a 1-D mesh. It is trained in member chunks sized to the memory available
(:mod:`jaxbp.memory`; ``max_members_per_chunk`` overrides), every chunk padded to the same
size so one compiled program serves them all; a member's numbers depend only on its own
seed and hyperparameters, never on its chunk. Within a chunk, epochs run in blocks with the
host loop between them, which is where the progress bar moves. Compiled programs are cached
per shape, so jobs in one process that differ only in traced values compile once.
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

from jaxbp import compile_cache, config, distributed, engine, memory, pallas_train
from jaxbp.config import RunConfig
from jaxbp.plan import Bounded, load_dataset

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
    kernel: str = "xla"  # what trained the epochs: the XLA engine or the Pallas kernel
    initial_params: list | None = None  # each member's starting params (its first attempt's)

    @property
    def lrs(self) -> np.ndarray:
        return self.hyper["learning_rate"]


class _Programs(NamedTuple):
    program: engine.Program
    chunks: dict  # jitted init and chunk functions, by what they were specialised for
    finalize: object
    # What these programs are, the same in every process: the key of their compiled
    # executables in the on-disk store (jaxbp.compile_cache.executable), with each role's
    # name and its arguments' signature added.
    identity: tuple


# Bounded, least recently used first out: a notebook or a long sweep over many shapes must
# not keep every program it ever built. _COMPILED holds its functions themselves in its keys
# (not their ids), so an evicted program's id reused by a new one can never match.
_PROGRAMS: Bounded = Bounded(32)
_COMPILED: Bounded = Bounded(128)


def precision(cfg: RunConfig):
    """The context a job's program is built and run in: its dtype decides x64, per program,
    never as a process-wide switch that the last validated job would win."""
    return jax.enable_x64(cfg.dtype == "float64")


def _programs(cfg: RunConfig, masked: bool = False) -> _Programs:
    # The program bakes its data in: keyed on the dataset object too, which plan caches per
    # data option and file version, so a rewritten data file gets a new program.
    data = load_dataset(cfg)

    def build() -> _Programs:
        program = engine.make_program(cfg, data, masked=masked)
        identity = (repr(config.shape_key(cfg)), masked, data.name, data.classes,
                    compile_cache.array_digest(data.x_train, data.y_train, data.x_test, data.y_test))
        return _Programs(program, {}, jax.jit(jax.vmap(program.finalize, in_axes=(0, None))), identity)

    key = (config.shape_key(cfg), masked)
    if key in _PROGRAMS and _PROGRAMS[key].program.dataset is not data:
        del _PROGRAMS[key]
    return _PROGRAMS.get_or_make(key, build)


def program_for(cfg: RunConfig) -> engine.Program:
    """The (cached) program for ``cfg``; building it loads and checks the data."""
    with precision(cfg):
        return _programs(cfg).program


def _on_device(value, dtype=None) -> jax.Array:
    """A host value on the default device, uncommitted, without compiling anything
    (``jnp.asarray`` and ``jnp.int32`` compile a small program per shape and dtype)."""
    return jax.device_put(np.asarray(value, dtype))


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


def _layout(sharding) -> tuple | None:
    """A sharding as plain values that mean the same in another process."""
    if sharding is None:
        return None
    mesh = getattr(sharding, "mesh", None)
    if mesh is None:
        return type(sharding).__name__, tuple(sorted(d.id for d in sharding.device_set)), sharding.memory_kind
    return (type(sharding).__name__, tuple(mesh.axis_names), tuple(map(str, mesh.axis_types)), mesh.devices.shape,
            tuple(d.id for d in mesh.devices.flat), str(sharding.spec), sharding.memory_kind)


def _signature(args) -> tuple:
    """What a compiled program is specialised to in its arguments, in plain values that mean
    the same in another process: the pytree's text, and each leaf's shape, dtype, weak type
    and layout (device ids)."""
    leaves, treedef = jax.tree.flatten(args)
    return str(treedef), tuple((np.shape(a), str(jnp.result_type(a)), bool(getattr(a, "weak_type", False)),
                                _layout(getattr(a, "sharding", None)))
                               for a in leaves)


def _compiled(fn, *args, role: tuple | None = None, store: str | None = None):
    """The AOT-compiled ``fn`` for these argument shapes, and seconds spent compiling it.

    ``role`` (its name, the programs' identity and what ``fn`` was specialised for) names
    ``fn`` the same way in every process, so its executable can come from ``store``, the
    persistent cache dir, without tracing (:func:`jaxbp.compile_cache.executable`); ``None``
    keeps it out of the store."""
    signature = _signature(args)
    key = (fn, jax.config.jax_enable_x64, signature)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key], 0.0
    start = time.perf_counter()
    description = None if role is None or jax.process_count() > 1 else (*role, signature)

    def compile(name: str | None):
        return (fn if name is None else jax.jit(_named(fn.__wrapped__, name))).lower(*args).compile()

    compiled = _COMPILED.get_or_make(
        key, lambda: compile_cache.executable(store, description, compile, name=role[0] if role else "program"))
    return compiled, time.perf_counter() - start


def _named(python_fn, name: str):
    """``python_fn`` under another name, which becomes its lowered module's (``jit_<name>``)."""
    def program(*args):
        return python_fn(*args)

    program.__name__ = program.__qualname__ = name
    return program


def _mesh_sharding(cfg: RunConfig):
    if jax.process_count() > 1:  # one job over several processes: every process's devices
        devices = jax.devices()
        if cfg.devices is not None and cfg.devices != len(devices):
            import logging

            logging.getLogger("jaxbp.runner").warning(
                f"devices={cfg.devices} ignored: a multi-process job uses all {len(devices)} devices "
                f"of its {jax.process_count()} processes")
        return NamedSharding(Mesh(np.array(devices), ("members",)), PartitionSpec("members")), len(devices)
    devices = jax.local_devices()
    count = len(devices) if cfg.devices is None else min(cfg.devices, len(devices))
    if cfg.devices is not None and cfg.devices > len(devices):
        import logging

        logging.getLogger("jaxbp.runner").warning(
            f"devices={cfg.devices} asked, {len(devices)} available: using {len(devices)}")
    if count <= 1:
        return None, 1
    mesh = Mesh(np.array(devices[:count]), ("members",))
    return NamedSharding(mesh, PartitionSpec("members")), count


def _progress_bar(cfg: RunConfig, show: bool | None, desc: str, total: int, chunks: int):
    if show is None:
        show = cfg.progress and sys.stderr.isatty()
    if show:
        from tqdm.auto import tqdm  # a widget in a notebook, text on a terminal
    else:
        from tqdm import tqdm  # tqdm.auto would warn in a notebook without ipywidgets
    if chunks > 1:
        desc = f"{desc} ({chunks} member chunks)"
    return tqdm(total=total, unit="epoch", desc=desc, disable=not show, delay=PROGRESS_DELAY_S,
                leave=False, file=sys.stderr, dynamic_ncols=True)


def _place_members(cfg: RunConfig, seeds: np.ndarray, hyper: dict, params, size: int, n_devices: int,
                   sharding):
    """Device arrays of per-member seeds, hyperparameters (and initial params), padded with
    copies of the last member to ``size`` members, a multiple of the device count (the
    padding is dropped from the results)."""
    padding = size - len(seeds)

    def pad(a, dtype=None):
        a = np.asarray(a, dtype)
        return np.concatenate([a, np.repeat(a[-1:], padding, axis=0)]) if padding else a

    place = (lambda a: _sharded(a, sharding)) if sharding else _on_device
    members = [place(pad(seeds, np.uint32)),
               {k: place(pad(v, jnp.dtype(cfg.dtype))) for k, v in hyper.items()}]
    if params is not None:
        members.append(jax.tree.map(lambda a: place(pad(a, jnp.dtype(cfg.dtype))), params))
    return members


def _sharded(a: np.ndarray, sharding) -> jax.Array:
    """A global array laid out by ``sharding``: each process fills only its own devices'
    shards, from the whole member table that every process holds alike."""
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def _train(cfg: RunConfig, programs: _Programs, members, curve_idx, sharding, bar, done_epochs: int,
           kernel: str = "xla", store: str | None = None):
    """Compiles (or reuses) init, chunk and finalize, then runs every block of epochs for
    one chunk of members, with the XLA engine or (``kernel="pallas"``) the Pallas kernel.

    Returns ``(params, metrics, curves (T, curve members), initial params, compile_s)`` as arrays this
    process can read whole (in a multi-process job, gathered from every process).
    """
    total_blocks = cfg.blocks
    blocks_per_call = math.ceil(total_blocks / TARGET_CHUNKS)
    epochs = _on_device(cfg.epochs, np.int32)
    layout = _layout(sharding)
    init, compile_s = _compiled(_init_fn(programs, sharding, len(members) == 3), *members,
                                role=("init", programs.identity, layout), store=store)
    states = init(*members)
    initial = states.params  # kept for load_run(job).initial_params(seed)
    if kernel == "pallas":  # its kernel is not kept in the store: it runs where it compiles
        carry = pallas_train.start(states, members[1], cfg.optim.name)
        step, role = pallas_train.chunk_fn(cfg, programs, members[1], blocks_per_call), None
    else:
        carry, step = states, _chunk_fn(programs, blocks_per_call, cfg.sample_every, sharding)
        role = ("chunk", programs.identity, blocks_per_call, cfg.sample_every, layout)
    chunk, seconds = _compiled(step, carry, _on_device(0, np.int32), epochs, curve_idx, role=role, store=store)
    finalize, more_seconds = _compiled(programs.finalize, states, epochs,
                                       role=("finalize", programs.identity), store=store)
    compile_s += seconds + more_seconds

    curves = []
    for first_block in range(0, total_blocks, blocks_per_call):
        carry, curve = chunk(carry, _on_device(first_block, np.int32), epochs, curve_idx)
        curves.append(curve)
        if not bar.disable:  # waiting here is what lets the bar move
            jax.block_until_ready(curve)
            reached = min(cfg.epochs, (first_block + blocks_per_call) * cfg.sample_every)
            bar.update(done_epochs + reached - bar.n)
    states = pallas_train.finish(programs.program.spec, states, carry) if kernel == "pallas" else carry
    params, metrics = finalize(states, epochs)
    params, metrics, curves, initial = distributed.to_host((params, metrics, curves, initial))
    # Joined on the host: a device concatenate is one more program per chunk count.
    return params, metrics, np.concatenate([np.asarray(c) for c in curves], axis=0)[:total_blocks], initial, compile_s


def chunk_size(cfg: RunConfig, n_members: int) -> int:
    """Members per program call: what fits in the memory available (or the override)."""
    program = _programs(cfg).program
    state = config.member_bytes(cfg, program.spec, program.dataset.x_train.shape[0])
    budget = memory.device_bytes(jax.local_devices()[0]) or memory.available_bytes()
    # Processes estimate from their own memory but must run the same chunks.
    return distributed.agreed_min(memory.members_per_chunk(state, n_members, budget, cfg.max_members_per_chunk))


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
    """Trains every member and returns host-side results, whole in every process of a
    multi-process job (each trains its devices' share; :mod:`jaxbp.distributed`).

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
    store = compile_cache.configure(cfg.compile_cache)  # before anything compiles (jaxbp.compile_cache)
    seeds, table = member_table(cfg, seeds, hyper, lrs)
    n = len(seeds)
    if curve_members is None:
        curve_members = np.arange(min(cfg.curve_seeds, n))
    curve_members = np.asarray(curve_members, np.int32)
    # Members narrower than cfg's hidden layers train padded to it, with masks.
    masked = bool(np.any(table["hidden"] != cfg.hidden))
    if np.any(table["hidden"] > cfg.hidden):
        raise ValueError(f"member widths up to {table['hidden'].max():g} exceed the program's hidden={cfg.hidden}")
    with precision(cfg):
        programs = _programs(cfg, masked)
        kernel = pallas_train.choose(cfg, programs.program, table, masked)
        sharding, n_devices = _mesh_sharding(cfg) if kernel == "xla" else (None, 1)
        size = chunk_size(cfg, n)
        size = math.ceil(size / n_devices) * n_devices  # every device gets equal shares
        starts = range(0, n, size)
        # A fixed number of curve rows per chunk keeps one compiled program for all chunks.
        curve_rows = max(1, min(len(curve_members), size))
        host = _HostResults(n, curve_members, len(cfg.curve_epochs()) - 1)
        compile_s = 0.0
        bar_total = cfg.epochs * len(starts)
        with _progress_bar(cfg, progress, desc, bar_total, len(starts)) as bar:
            for index, start in enumerate(starts):
                part = np.arange(start, min(start + size, n))
                local = np.flatnonzero((curve_members >= start) & (curve_members < start + size))
                picks = np.zeros(curve_rows, np.int32)
                picks[: len(local)] = curve_members[local] - start
                given = None if init_params is None else jax.tree.map(lambda a, p=part: a[p], init_params)
                members = _place_members(cfg, seeds[part], {k: v[part] for k, v in table.items()}, given,
                                         size, n_devices, sharding)
                params, metrics, curves, initial, seconds = _train(cfg, programs, members, _on_device(picks),
                                                                   sharding, bar, index * cfg.epochs, kernel,
                                                                   store)
                compile_s += seconds
                host.add(part, params, metrics, np.asarray(curves)[:, : len(local)].T, local, initial)
    device = jax.local_devices()[0]
    return RunResult(
        seeds=seeds, hyper=table, metrics=host.metrics, params=host.params, curve_members=curve_members,
        curve_epochs=cfg.curve_epochs(), curves=host.curves_with_final(),
        wall_s=time.perf_counter() - started, compile_s=compile_s,
        backend=jax.default_backend(), device=f"{device.device_kind} x{n_devices}", devices=n_devices,
        kernel=kernel, initial_params=host.initial,
    )


class _HostResults:
    """Per-member results on the host, filled chunk by chunk (arrays allocated once)."""

    def __init__(self, n: int, curve_members: np.ndarray, samples: int):
        self.n, self.curve_members = n, curve_members
        self.metrics: dict[str, np.ndarray] = {}
        self.params: list[dict[str, np.ndarray]] = []
        self.initial: list[dict[str, np.ndarray]] = []
        self.curves = np.full((len(curve_members), samples), np.nan)

    def add(self, part: np.ndarray, params, metrics, curves: np.ndarray, curve_rows: np.ndarray,
            initial) -> None:
        count = len(part)
        metrics = {k: np.asarray(v)[:count] for k, v in metrics.items()}
        params, initial = jax.tree.map(lambda a: np.asarray(a)[:count], (params, initial))
        if not self.metrics:
            self.metrics = {k: np.empty((self.n, *v.shape[1:]), v.dtype) for k, v in metrics.items()}
            self.params, self.initial = jax.tree.map(lambda a: np.empty((self.n, *a.shape[1:]), a.dtype),
                                                     (params, initial))
        for k, v in metrics.items():
            self.metrics[k][part] = v
        for mine, theirs in zip(jax.tree.leaves((self.params, self.initial)), jax.tree.leaves((params, initial))):
            mine[part] = theirs
        self.curves = self.curves.astype(curves.dtype) if self.curves.dtype != curves.dtype else self.curves
        self.curves[curve_rows] = curves

    def curves_with_final(self) -> np.ndarray:
        """The sampled curves plus their last point, the final loss at ``epochs``."""
        final = self.metrics["final_loss"][self.curve_members][:, None]
        return np.concatenate([self.curves, final.astype(self.curves.dtype)], axis=1)
