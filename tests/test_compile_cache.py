"""JAX's persistent compilation cache serves jaxbp's programs: a rerun compiles nothing."""

import os

import pytest

from cli import run_cli
from jaxbp import compile_cache
from jaxbp.checks import ConfigError

MISS = "PERSISTENT COMPILATION CACHE MISS"  # JAX logs one per program it compiles
SWEEP = ["-m", "lr=0.1,1.0", "num_seeds=8", "epochs=30", "curve_seeds=2"]


def _entries(cache) -> set[str]:
    return {p.name for p in cache.iterdir()} if cache.exists() else set()


def test_a_rerun_of_a_fused_sweep_loads_every_program_from_the_cache(tmp_path):
    """The fused launcher trains before any task runs; the cache must be on by then (it was
    not: a sweep compiled every program again and its cache dir stayed empty)."""
    cache = tmp_path / "xla"
    env = {"JAXBP_COMPILE_CACHE": str(cache), "JAX_EXPLAIN_CACHE_MISSES": "1"}
    cold = run_cli("jaxbp.train", *SWEEP, f"hydra.sweep.dir={tmp_path / 'cold'}", cwd=tmp_path, env=env)
    assert cold.returncode == 0, cold.stderr[-2000:]
    written = _entries(cache)
    assert cold.stdout.count(MISS) + cold.stderr.count(MISS) >= 3, "init, chunk and finalize compiled"
    assert len(written) >= 3, "each compiled program is written to the cache"
    warm = run_cli("jaxbp.train", *SWEEP, f"hydra.sweep.dir={tmp_path / 'warm'}", cwd=tmp_path, env=env)
    assert warm.returncode == 0, warm.stderr[-2000:]
    assert MISS not in warm.stdout + warm.stderr, "the rerun compiled a program again"
    assert _entries(cache) == written, "the rerun added cache entries"


def test_no_cache_dir_leaves_jax_alone_and_a_bad_one_is_refused(tmp_path):
    assert compile_cache.configure(None) is None and compile_cache.configure("") is None
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(ConfigError, match="compile_cache"):
        compile_cache.configure(str(blocker / "xla"))


# ------------------------------------------------------------------ the executable store
TINY = dict(num_seeds=8, epochs=30, curve_seeds=2)


def _fresh_process_caches(monkeypatch):
    """What a new process has: no program or executable built yet."""
    from jaxbp import plan, runner

    monkeypatch.setattr(runner, "_PROGRAMS", plan.Bounded(32))
    monkeypatch.setattr(runner, "_COMPILED", plan.Bounded(128))


def _run_counting_compiles(monkeypatch, cfg):
    """Trains ``cfg`` as a fresh process would; returns the result and how many programs
    were traced and compiled (rather than loaded from the store)."""
    import jax

    from jaxbp import runner

    _fresh_process_caches(monkeypatch)
    lowered = []
    real = jax.stages.Traced.lower

    def counting(self, *args, **kwargs):
        lowered.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jax.stages.Traced, "lower", counting)
    result = runner.run(cfg)
    monkeypatch.setattr(jax.stages.Traced, "lower", real)
    return result, len(lowered)


def _same(a, b) -> bool:
    import jax
    import numpy as np

    return all(np.array_equal(a.metrics[k], b.metrics[k], equal_nan=True) for k in a.metrics) and \
        np.array_equal(a.curves, b.curves, equal_nan=True) and \
        all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))


def test_a_new_process_loads_its_executables_without_tracing_and_gets_the_same_numbers(tmp_path, monkeypatch):
    """The second 'process' traces nothing (JAX's own cache needs the lowered program to
    find an entry; the store does not), and trains bit for bit as the first compiled."""
    from jaxbp.config import RunConfig

    cfg = RunConfig(compile_cache=str(tmp_path / "xla"), lr=0.7, **TINY)
    compiled, traced_first = _run_counting_compiles(monkeypatch, cfg)
    assert traced_first == 3, "init, chunk and finalize are traced once"
    assert len(list((tmp_path / "xla" / compile_cache.EXECUTABLES).iterdir())) == 3
    loaded, traced_again = _run_counting_compiles(monkeypatch, cfg)
    assert traced_again == 0
    assert _same(compiled, loaded)
    other_lr, traced = _run_counting_compiles(monkeypatch, RunConfig(compile_cache=cfg.compile_cache, lr=0.2, **TINY))
    assert traced == 0, "a traced value (lr) is an argument, not part of the program"
    assert not _same(compiled, other_lr), "…and it reaches the program"


def test_a_changed_program_description_source_or_setting_is_another_entry(tmp_path, monkeypatch):
    """Whatever decides the traced program is in the key: a different config shape, a
    changed jaxbp source file, or a JAX setting each compile anew (never a stale hit)."""
    import jax

    from jaxbp.config import RunConfig

    cfg = RunConfig(compile_cache=str(tmp_path / "xla"), **TINY)
    _run_counting_compiles(monkeypatch, cfg)
    assert _run_counting_compiles(monkeypatch, RunConfig(compile_cache=str(tmp_path / "xla"), hidden=4, **TINY))[1] == 3
    monkeypatch.setattr(compile_cache, "_source_digest", lambda: "an edited jaxbp")
    assert _run_counting_compiles(monkeypatch, cfg)[1] == 3
    monkeypatch.undo()
    with jax.default_matmul_precision("highest"):
        assert _run_counting_compiles(monkeypatch, cfg)[1] == 3
    assert _run_counting_compiles(monkeypatch, cfg)[1] == 0


def test_a_torn_entry_is_removed_and_the_program_compiled_again(tmp_path, monkeypatch):
    """A torn entry is deleted and the program traced again. JAX's own cache then serves it;
    that executable is not stored, because one JAX's cache loaded does not serialise whole
    on CPU (a stored copy failed with 'Function wrapped_broadcast.7 not found' when run)."""
    from jaxbp.config import RunConfig

    cfg = RunConfig(compile_cache=str(tmp_path / "xla"), **TINY)
    first, _ = _run_counting_compiles(monkeypatch, cfg)
    store = tmp_path / "xla" / compile_cache.EXECUTABLES
    for entry in store.iterdir():
        entry.write_bytes(entry.read_bytes()[:100])
    again, traced = _run_counting_compiles(monkeypatch, cfg)
    assert traced == 3 and _same(first, again)
    assert not list(store.iterdir()), "torn entries are removed, and JAX-loaded programs not stored"
    third, traced = _run_counting_compiles(monkeypatch, cfg)
    assert traced == 3 and _same(first, third)


def test_without_a_cache_dir_nothing_is_stored(tmp_path, monkeypatch):
    from jaxbp.config import RunConfig

    monkeypatch.chdir(tmp_path)
    _run_counting_compiles(monkeypatch, RunConfig(compile_cache=None, **TINY))
    assert _run_counting_compiles(monkeypatch, RunConfig(compile_cache=None, **TINY))[1] == 3
    assert not list(tmp_path.rglob(compile_cache.EXECUTABLES))


def test_the_store_keeps_a_bounded_number_of_entries(tmp_path, monkeypatch):
    import os

    store = tmp_path / compile_cache.EXECUTABLES
    store.mkdir()
    for index in range(10):
        (store / f"entry{index}").write_bytes(b"x")
        os.utime(store / f"entry{index}", (index, index))
    monkeypatch.setattr(compile_cache, "EXECUTABLES_KEPT", 4)
    compile_cache._prune(store)
    assert sorted(p.name for p in store.iterdir()) == ["entry6", "entry7", "entry8", "entry9"]


def test_data_that_encodes_alike_but_means_otherwise_is_another_program(tmp_path, monkeypatch):
    """Class labels 0/1 and real targets 0.0/1.0 give the same arrays, but only classes have
    an accuracy: the program differs, so its key must (a review found the store serving
    one for the other, after the file was rewritten at the same path)."""
    import numpy as np

    from jaxbp.config import RunConfig
    from jaxbp.data import File

    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    path = tmp_path / "d.npz"
    cfg = RunConfig(compile_cache=str(tmp_path / "xla"), data=File(path=str(path)), **TINY)
    np.savez(path, x=x, y=np.array([0, 1, 1, 0]))
    labels, _ = _run_counting_compiles(monkeypatch, cfg)
    np.savez(path, x=x, y=np.array([[0.0], [1.0], [1.0], [0.0]]))
    os.utime(path, ns=(1, 1))  # a new file version, whatever the clock's resolution
    values, traced = _run_counting_compiles(monkeypatch, cfg)
    assert traced >= 1
    assert np.isfinite(labels.metrics["train_acc"]).all() and np.isnan(values.metrics["train_acc"]).all()


def test_a_rewritten_data_file_gets_a_new_program_in_the_same_process(tmp_path):
    """The program bakes the data in: the process's own program cache must not serve the
    old data after the file changed."""
    import numpy as np

    from jaxbp import runner
    from jaxbp.config import RunConfig
    from jaxbp.data import File

    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    path = tmp_path / "d.npz"
    cfg = RunConfig(compile_cache=None, data=File(path=str(path)), **TINY)
    np.savez(path, x=x, y=np.array([[0.0], [1.0], [1.0], [0.0]]))
    xor = runner.run(cfg)
    np.savez(path, x=x, y=np.array([[0.0], [0.0], [0.0], [1.0]]))
    os.utime(path, ns=(1, 1))
    anded = runner.run(cfg)
    assert not np.array_equal(xor.metrics["final_loss"], anded.metrics["final_loss"])


def test_a_read_only_store_serves_what_it_holds_and_takes_nothing_new(tmp_path, monkeypatch):
    """A cache dir shared read-only (a course's prepared programs, say): entries load,
    nothing is written or deleted, and nothing fails."""
    import stat

    from jaxbp.config import RunConfig

    cfg = RunConfig(compile_cache=str(tmp_path / "xla"), **TINY)
    first, _ = _run_counting_compiles(monkeypatch, cfg)
    store = tmp_path / "xla" / compile_cache.EXECUTABLES
    held = sorted(p.name for p in store.iterdir())
    monkeypatch.setattr(os, "utime", _refuse)
    monkeypatch.setattr(os, "replace", _refuse)
    store.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        loaded, traced = _run_counting_compiles(monkeypatch, cfg)
        assert traced == 0 and _same(first, loaded)
        wider = RunConfig(compile_cache=cfg.compile_cache, hidden=5, **TINY)
        assert _run_counting_compiles(monkeypatch, wider)[1] == 3
    finally:
        store.chmod(stat.S_IRWXU)
    assert sorted(p.name for p in store.iterdir()) == held


def _refuse(*args, **kwargs):
    raise PermissionError("read-only")
