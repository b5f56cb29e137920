"""The XLA flags the command-line entry points set before JAX starts (jaxbp.cores)."""

import os
import platform
import subprocess
import sys

SHOW = ("import os, sys; from jaxbp import cores; print(cores.configure_xla()); "
        "print(os.environ.get('XLA_FLAGS')); print('jax' in sys.modules)")


def _configure(**env) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    proc = subprocess.run([sys.executable, "-c", SHOW], env={**clean, **env}, capture_output=True, text=True,
                          check=True)
    return proc.stdout.splitlines()


def test_every_core_and_no_fma_on_x86_unless_the_user_chose():
    did, flags, jax_started = _configure()
    cores = len(os.sched_getaffinity(0))
    expected = ([f"--xla_force_host_platform_device_count={cores}"] if cores > 1 else []) + (
        ["--xla_cpu_max_isa=AVX"] if platform.machine().lower() in ("x86_64", "amd64") else [])
    assert flags.split() == expected and did == str(bool(expected)) and jax_started == "False"
    assert _configure(XLA_FLAGS="--xla_cpu_enable_fast_math=false")[:2] == ["False", "--xla_cpu_enable_fast_math=false"]
    # JAX_PLATFORMS picks the platform only: the CPU still gets one device per core.
    assert _configure(JAX_PLATFORMS="cpu")[:2] == [str(bool(expected)), " ".join(expected) or "None"]
