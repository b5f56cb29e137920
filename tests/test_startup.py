"""``--help`` and a refusal need neither JAX nor XLA, so they must not pay for importing them."""

import subprocess
import sys

import pytest

from cli import cli_env

# Runs the entry point as `python -m jaxbp.train ARGS` would, then reports at exit (after
# Hydra's SystemExit) whether JAX was ever imported.
PROBE = ("import atexit, runpy, sys\n"
         "atexit.register(lambda: print('JAX IMPORTED' if 'jax' in sys.modules else 'NO JAX'))\n"
         "sys.argv = ['jaxbp.train', *sys.argv[1:]]\n"
         "runpy.run_module('jaxbp.train', run_name='__main__', alter_sys=True)\n")


@pytest.mark.parametrize("args, status", [(["--help"], 0), (["lr=-1"], 2), (["batch_size=100"], 2), (["lrr=1"], 2)],
                         ids=["help", "refusal", "refused-against-the-data", "unknown-key"])
def test_help_and_a_refusal_do_not_import_jax(tmp_path, args, status):
    done = subprocess.run([sys.executable, "-c", PROBE, *args, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr[-2000:]
    assert "NO JAX" in done.stdout, "jax was imported"
    assert not (tmp_path / "run").exists(), "nothing is written"
