"""JAX's persistent compilation cache, pointed at ``compile_cache`` before a program compiles.

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

import os

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
