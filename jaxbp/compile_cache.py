"""Compiled programs kept across processes, under ``compile_cache``: JAX's persistent
compilation cache, and jaxbp's own store of executables, which a rerun loads without
tracing (:func:`executable`).

Why the runner turns it on, not only the app: JAX reads ``jax_compilation_cache_dir`` at each
compile, and a program compiled while it is unset is never written. The fused ``vmap``
launcher trains a sweep's groups before any task runs, and the task of a job the launcher
already wrote returns before it sets anything up, so a sweep compiled every program with
the cache off: a rerun compiled them all again and the cache dir stayed empty. Every
program jaxbp compiles goes through :func:`jaxbp.runner.run`, which calls :func:`configure`
first.

JAX's other rules, checked for jax 0.10 (``jax/_src/compiler.py``, ``compilation_cache.py``):
CPU executables are cached (``supports_executable_serialization``); programs over several
devices of one process are too (only multi-*process* programs are written by process 0
alone); programs with host callbacks are not (jaxbp's have none); entries of any size are
kept (``jax_persistent_cache_min_entry_size_bytes`` defaults to 0); programs faster to
compile than ``jax_persistent_cache_min_compile_time_secs`` (default 1 s) are skipped, so we
set it to 0: ours compile in well under a second each. No JAX import at module level.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import sys
from pathlib import Path

from jaxbp.checks import ConfigError


def configure(path: str | None) -> str | None:
    """Points JAX's persistent cache at ``path`` (``~`` expanded; created if missing) and
    caches every program, however fast it compiled. ``None`` or ``""`` leaves JAX as it is.
    Returns the directory used.

    Raises:
        ConfigError: on ``compile_cache``, when the dir cannot be created.
    """
    if not path:
        return None
    import jax

    cache_dir = os.path.expanduser(path)
    if jax.config.jax_compilation_cache_dir == cache_dir:
        return cache_dir  # set already: JAX's cache object is built once, on first use
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as err:
        raise ConfigError("compile_cache", path,
                          f"a directory jaxbp can create and write, or null ({err.strerror})") from None
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return cache_dir


# ------------------------------------------------------------------ compiled executables
# JAX's persistent cache is keyed on the lowered program, so even a warm run traces and
# lowers every program to find its entry: 0.45 s of a 3-job sweep's 4.5 s on 2 cores. The
# executable store skips that. It keys each program on what jaxbp knows before tracing:
# what the program is (its frozen config with traced values blanked, its role, the data
# baked into it), the shapes, dtypes and layout of its arguments, and everything else that
# decides what tracing and compiling would produce: the source of every jaxbp module, the
# versions of Python, JAX, jaxlib, optax, NumPy and ml_dtypes, the backend, the host CPU,
# JAX's config and XLA_FLAGS.
# A change to any of them is a different key, never a stale program.
EXECUTABLES = "jaxbp-executables"
EXECUTABLES_KEPT = 256  # entries beyond this are removed, least recently used first
JAX_CACHE_HIT = "/jax/compilation_cache/cache_hits"  # the event jax.monitoring records
_BOOKKEEPING = re.compile(r"_(log|logging)_|cache|explain")  # names of JAX settings that change no program


def array_digest(*arrays) -> str:
    """SHA-256 of arrays' dtypes, shapes and bytes: data a program bakes in as constants."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _host_cpu() -> str:
    """The host CPU's model and features: XLA compiles CPU code for the machine it runs on,
    so a store in a home dir shared by different machines keeps their programs apart."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags", "Features", "CPU part"))]
        return "".join(sorted(set(lines)))
    except OSError:
        import platform

        return f"{platform.machine()} {platform.processor()}"


def _environment() -> tuple:
    """What, besides the program's own description, decides the executable tracing and
    compiling would produce in this process."""
    import jax
    import jaxlib
    import ml_dtypes
    import numpy as np
    import optax

    backend = jax.devices()[0].client
    # Every JAX setting (thread-local ones like default_matmul_precision included), less
    # those that only log or cache: a notebook and a Hydra job, whose logging config sets
    # jax_logging_level, share entries.
    settings = sorted((name, repr(value)) for name, value in jax.config.values.items()
                      if not _BOOKKEEPING.search(name))
    return (_source_digest(), sys.version, jax.__version__, jaxlib.__version__, optax.__version__,
            np.__version__, ml_dtypes.__version__, backend.platform, backend.platform_version,
            tuple((d.id, d.device_kind) for d in jax.devices()), jax.process_count(), _host_cpu(),
            bool(jax.config.jax_enable_x64), os.environ.get("XLA_FLAGS", ""), tuple(settings))


def executable(cache_dir: str | None, description, compile, name: str = "program"):
    """``compile(name)``'s executable (a ``jax.stages.Compiled``), loaded from ``cache_dir``'s
    store when an earlier process stored it under the same key, and stored there otherwise.

    ``description`` must identify the program completely together with :func:`_environment`;
    ``None`` (or no ``cache_dir``) calls ``compile(None)`` without the store. Otherwise
    ``compile`` gets ``name`` with the key's start appended, to name the program it lowers.
    JAX's own cache keys on the lowered module, name included, so it holds a store-bound
    program only under the store's own key. That matters because an executable that JAX's
    cache loaded does not serialise whole on CPU (jax 0.10: the copy fails at run time with
    "Function ... not found"), so such an executable is never stored; with the name, JAX's
    cache serves a store-bound program only when its store entry was lost, not whenever an
    edit elsewhere in jaxbp changed the key but not the program.

    An entry that cannot be read is compiled again and replaced; one that cannot be
    written is skipped: the store only ever saves time.
    """
    if not cache_dir or description is None:
        return compile(None)
    import pickle

    import jax
    from jax.experimental import serialize_executable

    key = hashlib.sha256(repr((_environment(), description)).encode()).hexdigest()
    store = Path(cache_dir) / EXECUTABLES
    path = store / key
    try:
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        loaded = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
        with contextlib.suppress(OSError):  # used now: pruning removes the least recently used
            os.utime(path)
        return loaded
    except FileNotFoundError:
        pass
    except Exception:  # noqa: BLE001 - a torn, foreign or outdated entry: compile afresh
        with contextlib.suppress(OSError):  # a read-only store stays as it is
            path.unlink(missing_ok=True)
    loaded_by_jax = []

    def listen(event: str, **_) -> None:
        if event == JAX_CACHE_HIT:
            loaded_by_jax.append(event)

    jax.monitoring.register_event_listener(listen)
    try:
        compiled = compile(f"{name}_{key[:16]}")
    finally:
        jax.monitoring.unregister_event_listener(listen)
    if loaded_by_jax:
        return compiled
    temp = store / f".{key}.{os.getpid()}.tmp"
    try:
        blob = pickle.dumps(serialize_executable.serialize(compiled))
        store.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(blob)
        os.replace(temp, path)  # whole or absent, for a reader in another process
        _prune(store)
    except Exception:  # noqa: BLE001 - not serialisable here, or a full/read-only disk
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
    return compiled


def _prune(store: Path) -> None:
    entries = [entry for entry in os.scandir(store) if entry.is_file() and not entry.name.startswith(".")]
    if len(entries) <= EXECUTABLES_KEPT:
        return
    entries.sort(key=lambda entry: entry.stat().st_mtime)
    for entry in entries[: len(entries) - EXECUTABLES_KEPT]:
        Path(entry.path).unlink(missing_ok=True)
