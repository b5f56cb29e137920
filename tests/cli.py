"""Running jaxbp's command-line tools as a user would: in a subprocess."""

import os
import subprocess
import sys

# One persistent compilation cache for the subprocesses of each test worker, kept out of
# the user's home: later subprocesses load what earlier ones compiled. conftest.py points it
# into pytest's own temp dir, which pytest prunes (it keeps the last three sessions), so
# even a killed session leaves nothing behind for good.
CACHE_DIR = ""


def cli_env(**extra: str) -> dict[str, str]:
    """The environment a command-line subprocess runs in: the session's compile cache,
    unbuffered output, no HYDRA_FULL_ERROR (refusals are tested as users see them), and no
    XLA_FLAGS or JAX_PLATFORMS from the calling shell, so the entry points choose their own
    XLA settings (jaxbp.cores) as they do for a user; ``extra`` may set them."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "XLA_FLAGS", "JAX_PLATFORMS")}
    return {**env, "PYTHONUNBUFFERED": "1", "JAXBP_COMPILE_CACHE": CACHE_DIR, **extra}


def run_cli(module: str, *args: str, cwd, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    env = cli_env(**(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(monkeypatch, *args: str) -> int:
    """Runs ``python -m jaxbp.train *args`` inside this process (so a test can patch the
    library) and returns its exit status."""
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from jaxbp import app, train

    app.register()  # as the entry point does (importing jaxbp registers nothing)
    monkeypatch.setattr(sys, "argv", ["jaxbp.train", *args])
    monkeypatch.setenv("JAXBP_COMPILE_CACHE", CACHE_DIR)
    try:
        train.main()
        return 0
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        GlobalHydra.instance().clear()
