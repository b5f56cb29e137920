"""Where a command's seconds go: imports, composition, compile, statistics, training.

``python -c "from jaxbp import phases; phases.main('jaxbp.train', '/tmp/p.json')" ARGS``
runs ``python -m jaxbp.train ARGS`` with timers wrapped around the functions where each
phase happens, and writes their totals to the JSON file at exit. The entry point itself is
untouched, so the timed commands of :mod:`jaxbp.latency` run without any of this.

Time is charged to the innermost open phase only (exclusive time): an import inside the
statistics counts as an import, the compile inside a run as compile, and ``training`` is
what :func:`jaxbp.runner.run` spends outside both. What no phase claims (the interpreter's
own start, Hydra's job set-up, writing files) is the rest, which the caller gets by
subtracting from the wall time it measured.

- ``imports``: every ``import`` statement and ``importlib.import_module`` call;
- ``composition``: Hydra's ``ConfigLoaderImpl.load_configuration`` (every compose);
- ``compile``: :func:`jaxbp.runner._compiled` (trace, lower, and compile or cache load);
- ``statistics``: every public function of :mod:`jaxbp.stats`;
- ``training``: :func:`jaxbp.runner.run`.

``counts`` holds the calls: compositions, programs XLA compiled (``backend_compile``),
JAX's persistent-cache hits, and executables loaded from jaxbp's own store
(:func:`jaxbp.compile_cache.executable`, which skips tracing). Nothing is imported or
patched until the module it times is loaded.
"""

from __future__ import annotations

import atexit
import builtins
import functools
import importlib
import json
import sys
import time

_TOTALS: dict[str, float] = {}
_COUNTS: dict[str, int] = {}
_STACK: list[str] = []
_LAST = [0.0]  # when the current innermost phase last started being charged
_clock = time.perf_counter


def _switch() -> None:
    now = _clock()
    if _STACK:
        _TOTALS[_STACK[-1]] = _TOTALS.get(_STACK[-1], 0.0) + now - _LAST[0]
    _LAST[0] = now


def timed(phase: str, fn, count: str | None = None):
    """``fn`` with its time charged to ``phase`` (exclusive of inner phases)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if count:
            _COUNTS[count] = _COUNTS.get(count, 0) + 1
        _switch()
        _STACK.append(phase)
        try:
            return fn(*args, **kwargs)
        finally:
            _switch()
            _STACK.pop()

    wrapper.__wrapped_by_phases__ = True
    return wrapper


def _patch(module, name: str, phase: str, count: str | None = None) -> None:
    fn = getattr(module, name, None)
    if fn is not None and not getattr(fn, "__wrapped_by_phases__", False):
        setattr(module, name, timed(phase, fn, count))


def _patch_stats(module) -> None:
    for name in [n for n in dir(module) if not n.startswith("_")]:
        fn = getattr(module, name)
        if callable(fn) and getattr(fn, "__module__", None) == module.__name__ and not isinstance(fn, type):
            _patch(module, name, "statistics")


def _on_cache_hit(event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _COUNTS["cache_hits"] = _COUNTS.get("cache_hits", 0) + 1


def _patch_jax(compiler) -> None:
    _patch(compiler, "backend_compile_and_load", "compile", "backend_compiles")
    from jax._src import monitoring

    monitoring.register_event_listener(_on_cache_hit)


# module name -> how to time it, applied as soon as the module is loaded
_TARGETS = {
    "hydra._internal.config_loader_impl":
        lambda m: _patch(m.ConfigLoaderImpl, "load_configuration", "composition", "compositions"),
    "jaxbp.runner": lambda m: (_patch(m, "_compiled", "compile"), _patch(m, "run", "training")),
    "jaxbp.stats": _patch_stats,
    "jax._src.compiler": _patch_jax,
    "jax.experimental.serialize_executable":
        lambda m: _patch(m, "deserialize_and_load", "compile", "executables_loaded"),
}


def _patch_loaded() -> None:
    for name in [n for n in _TARGETS if n in sys.modules]:
        _TARGETS.pop(name)(sys.modules[name])


def _importing(fn):
    timed_import = timed("imports", fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return timed_import(*args, **kwargs)
        finally:
            if _TARGETS and "imports" not in _STACK:  # every module loaded whole by now
                _patch_loaded()
    return wrapper


def install(out_path: str) -> None:
    """Starts timing; the totals go to ``out_path`` (JSON) when the process exits."""
    builtins.__import__ = _importing(builtins.__import__)
    importlib.import_module = _importing(importlib.import_module)
    _patch_loaded()
    atexit.register(_write, out_path)


def _write(out_path: str) -> None:
    _switch()
    with open(out_path, "w") as handle:
        json.dump({"phases": _TOTALS, "counts": _COUNTS, "exit_time": time.time()}, handle)


def main(module: str, out_path: str) -> None:
    """Runs ``python -m module`` with the arguments after ``-c``'s code, timed."""
    import runpy

    install(out_path)
    sys.argv = [module, *sys.argv[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
