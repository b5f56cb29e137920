"""JAX's persistent compilation cache serves jaxbp's programs: a rerun compiles nothing."""

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
