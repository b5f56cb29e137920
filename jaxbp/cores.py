"""XLA's CPU settings for the command-line entry points, set before JAX starts.

- **Every core**: one XLA CPU device per core, so the seed axis shards over all of them
  (measured 31% faster than XLA's default on 2 cores at 10k seeds; PERF.md).
- **No fused multiply-add on x86-64** (``--xla_cpu_max_isa=AVX``, the last ISA without
  FMA): LLVM contracts ``a·b + c`` into one FMA wherever a fusion allows, and which products
  it contracts depends on the whole program, so the same network rounded differently inside
  a width-padded sweep program than alone, and 5,000 epochs grew the ulp to 4e-5. Without
  FMA every operation rounds once, as written, and a job's numbers do not depend on what it
  was fused with. It measured no slower on the benchmark job (PERF.md).

XLA reads the flags once, when JAX starts, so the entry points call :func:`configure_xla`
before anything imports JAX. A user who sets ``XLA_FLAGS`` keeps exactly what they set;
``JAX_PLATFORMS`` (say ``cpu``, on a machine with a GPU plugin) picks the platform and leaves
these flags on, so the CPU still gets one device per core. No JAX import here.
"""

from __future__ import annotations

import os
import platform
import sys

FLAG = "--xla_force_host_platform_device_count"
NO_FMA = "--xla_cpu_max_isa=AVX"


def cpu_flags() -> list[str]:
    """The XLA flags jaxbp's entry points ask for on this machine."""
    flags = []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores > 1:
        flags.append(f"{FLAG}={cores}")
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags.append(NO_FMA)
    return flags


def configure_xla() -> bool:
    """Sets :func:`cpu_flags` unless the user set ``XLA_FLAGS`` (or JAX already started);
    returns whether it did."""
    if "jax" in sys.modules or "XLA_FLAGS" in os.environ:
        return False
    flags = cpu_flags()
    if flags:
        os.environ["XLA_FLAGS"] = " ".join(flags)
    return bool(flags)
