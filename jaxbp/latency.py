"""``python -m jaxbp.bench --latency``: what a user waits for, as a multiple of the import floor.

Every command runs as a fresh process, as a user types it, with its own compile cache dir
(``JAXBP_COMPILE_CACHE``): *cold* is the first run into an empty dir, *warm* the same
command again with that dir. The floor is what any Python tool built on these libraries
pays, ``python -c "import jax, hydra, pandas; jax.numpy.zeros(1)"``, measured in the same
run just before each cold/warm pair; each multiple divides by that adjacent floor. Each
figure is the median of ``repeats`` runs.

Then one more cold and warm run of each training command runs under :mod:`jaxbp.phases`,
which says where its seconds went (imports, composition, compile, statistics, training;
``rest`` is the interpreter's start, Hydra's job set-up and writing files) and counts the
compositions, XLA compiles, JAX's persistent-cache hits and the executables loaded from
jaxbp's own store (:func:`jaxbp.compile_cache.executable`).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = "import jax, hydra, pandas; jax.numpy.zeros(1)"
TRAIN = [sys.executable, "-m", "jaxbp.train"]
# name -> (arguments after `python -m jaxbp.train`, the key naming its output dir or None)
COMMANDS = {
    "--help": (["--help"], None),
    "refusal (lr=-1)": (["lr=-1"], None),
    "single default run": ([], "hydra.run.dir"),
    "sweep -m lr (3 jobs)": (["-m", "lr=0.01,0.1,1.0"], "hydra.sweep.dir"),
    "sweep -m lr hidden (9 jobs)": (["-m", "lr=0.01,0.1,1.0", "hidden=2,3,8"], "hydra.sweep.dir"),
}
PHASES = ["imports", "composition", "compile", "statistics", "training"]
CPU_SECONDS: list[float] = []  # each timed process's user + system seconds, in order


def child_env(cache_dir: str | None = None) -> dict[str, str]:
    """The environment a user's shell would give: XLA flags only if they were the user's."""
    from jaxbp import cores

    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if env.get("XLA_FLAGS") == " ".join(cores.cpu_flags()):  # set by our own entry point
        del env["XLA_FLAGS"]
    if cache_dir is not None:
        env["JAXBP_COMPILE_CACHE"] = cache_dir
    return env


def timed_run(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """Wall seconds of one fresh process (its exit status is not checked: a refusal exits
    2); its CPU seconds (user + system) are added to :data:`CPU_SECONDS`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def _argv(name: str, out_dir: Path, prefix: list[str] = TRAIN) -> list[str]:
    args, dir_key = COMMANDS[name]
    return [*prefix, *args, *([f"{dir_key}={out_dir}"] if dir_key else [])]


def measure(repeats: int, tmp: Path) -> tuple[tuple[float, float], dict[str, tuple[float, ...]]]:
    """The floor's median wall and CPU seconds, and per command the medians of: cold and warm seconds,
    their ratios to the floor, and cold and warm CPU seconds. A floor run precedes each
    cold/warm pair and each ratio divides by that adjacent floor, so a machine whose load
    drifts skews the ratios less; CPU seconds (user + system, all threads) are what the
    process itself did, which another process's load changes far less than wall time."""
    floors, floor_cpu, times = [], [], {}
    for index, name in enumerate(COMMANDS):
        runs = []  # (cold, warm, cold / floor, warm / floor, cold cpu, warm cpu)
        for rep in range(repeats):
            floor = timed_run([sys.executable, "-c", FLOOR], child_env(), str(tmp))
            floors.append(floor)
            floor_cpu.append(CPU_SECONDS[-1])
            env = child_env(str(tmp / f"cache-{index}-{rep}"))  # empty: the cold run fills it
            cold = timed_run(_argv(name, tmp / f"out-{index}-{rep}-cold"), env, str(tmp))
            warm = timed_run(_argv(name, tmp / f"out-{index}-{rep}-warm"), env, str(tmp))
            runs.append((cold, warm, cold / floor, warm / floor, *CPU_SECONDS[-2:]))
        times[name] = tuple(statistics.median(column) for column in zip(*runs))
    return (statistics.median(floors), statistics.median(floor_cpu)), times


def phase_run(name: str, tmp: Path, cache: Path, label: str) -> dict:
    """One run of ``name`` under :mod:`jaxbp.phases`: its wall seconds, phases and counts."""
    out = tmp / f"phases-{label}.json"
    code = f"from jaxbp import phases; phases.main('jaxbp.train', {str(out)!r})"
    wall = timed_run(_argv(name, tmp / f"phases-out-{label}", [sys.executable, "-c", code]),
                     child_env(str(cache)), str(tmp))
    report = json.loads(out.read_text()) if out.exists() else {"phases": {}, "counts": {}}
    return {"wall": wall, **report}


def phase_table(tmp: Path) -> list[dict]:
    """Cold and warm phase breakdowns of every command that trains."""
    rows = []
    for index, name in enumerate(n for n in COMMANDS if COMMANDS[n][1]):
        cache = tmp / f"phases-cache-{index}"
        for state in ("cold", "warm"):
            run = phase_run(name, tmp, cache, f"{index}-{state}")
            phases = {p: run["phases"].get(p, 0.0) for p in PHASES}
            rows.append({"command": name, "cache": state, "wall": run["wall"], "cpu": CPU_SECONDS[-1], **phases,
                         "rest": run["wall"] - sum(phases.values()), **run["counts"]})
    return rows


def format_times(floor: tuple[float, float], times: dict[str, tuple[float, ...]]) -> str:
    lines = [f"import floor `python -c \"{FLOOR}\"`: {floor[0]:.2f} s, {floor[1]:.2f} CPU s (medians)", "",
             "| command | cold s | cold × floor | warm s | warm × floor | cold CPU s | warm CPU s |",
             "|---|---|---|---|---|---|---|"]
    for name, (cold, warm, cold_x, warm_x, cold_cpu, warm_cpu) in times.items():
        lines.append(f"| {name} | {cold:.2f} | {cold_x:.2f}× | {warm:.2f} | {warm_x:.2f}× "
                     f"| {cold_cpu:.2f} | {warm_cpu:.2f} |")
    return "\n".join(lines)


def format_phases(rows: list[dict]) -> str:
    counts = ["compositions", "backend_compiles", "cache_hits", "executables_loaded"]
    head = ["command", "cache", "wall", "cpu", *PHASES, "rest", *counts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["command"], row["cache"], *(f"{row[k]:.2f}" for k in ["wall", "cpu", *PHASES, "rest"]),
                 *(str(row.get(k, 0)) for k in counts)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(repeats: int = 3) -> int:
    """Prints both tables (Markdown, ready for PERF.md)."""
    with tempfile.TemporaryDirectory(prefix="jaxbp-latency-") as tmp:
        floor, times = measure(repeats, Path(tmp))
        print(f"Each command a fresh process; medians of {repeats}, each × the floor run just before it.\n")
        print(format_times(floor, times), flush=True)
        print("\nwhere the seconds go (one run each, under jaxbp.phases; s):\n")
        print(format_phases(phase_table(Path(tmp))))
    return 0
