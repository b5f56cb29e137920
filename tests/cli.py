"""Running jaxbp's command-line tools as a user would: in a subprocess."""

import os
import subprocess
import sys
import tempfile

# One persistent compilation cache for every subprocess of the test session, kept out of
# the user's home: later subprocesses load what earlier ones compiled.
CACHE_DIR = tempfile.mkdtemp(prefix="jaxbp-test-xla-")


def run_cli(module: str, *args: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAXBP_COMPILE_CACHE": CACHE_DIR}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
