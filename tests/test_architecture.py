"""The shape of the package: no import cycles, no side effects at import, one read of a data
file per sweep, and the entry points' XLA settings under ``JAX_PLATFORMS``."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from cli import run_cli, run_in_process
from jaxbp import datafile

PACKAGE = Path(__file__).resolve().parent.parent / "jaxbp"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if "hydra_plugins" in parts:  # installed as hydra_plugins.<plugin>
        parts = parts[parts.index("hydra_plugins"):]
    return ".".join(parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every jaxbp module ``path`` imports, at module level or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in found if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_a_module_that_imports_it_back():
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _imports(path, name, set(paths)) for name, path in paths.items()}
    assert "jaxbp.plan" in graph["jaxbp.engine"], "the scan sees function-level and from-imports"
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


IMPORT_TWICE = """
import json, os, sys
import matplotlib
def state():
    umask = os.umask(0o022); os.umask(umask)
    from hydra.core.config_store import ConfigStore
    return {"backend": matplotlib.get_backend(), "rc": {k: repr(v) for k, v in matplotlib.rcParams.items()},
            "umask": umask, "store": sorted(ConfigStore.instance().repo)}
os.umask(0o027)
before = state()
import jaxbp.figures, jaxbp.results, jaxbp.atlas, jaxbp.train, jaxbp.report
after = state()
print(json.dumps({k: before[k] == after[k] for k in before}))
"""


def test_importing_the_library_changes_no_global_state():
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run([sys.executable, "-c", IMPORT_TWICE], env=env, capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == {"backend": True, "rc": True, "umask": True, "store": True}


def test_jax_platforms_cpu_keeps_one_device_per_core(tmp_path):
    proc = run_cli("jaxbp.train", "num_seeds=64", "epochs=50", "progress=false", f"hydra.run.dir={tmp_path / 'r'}",
                   cwd=tmp_path, env={"JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["device_count"] == len(os.sched_getaffinity(0))


def test_a_data_file_sweep_reads_and_hashes_the_file_once(tmp_path, monkeypatch):
    path = tmp_path / "xor.csv"
    pd.DataFrame({"a": [0, 0, 1, 1], "b": [0, 1, 0, 1], "y": [0, 1, 1, 0]}).to_csv(path, index=False)
    reads, hashes = [], []
    real_read, real_hash = datafile.read, datafile.content_hash
    monkeypatch.setattr(datafile, "read", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    monkeypatch.setattr(datafile, "content_hash", lambda *a, **k: hashes.append(a) or real_hash(*a, **k))
    sweep_dir = tmp_path / "sw"
    status = run_in_process(monkeypatch, "-m", "lr=0.1,0.2,0.3,0.4", "data=file", f"data.path={path}",
                            "num_seeds=4", "epochs=5", "progress=false", f"hydra.sweep.dir={sweep_dir}")
    assert status == 0
    assert (pd.read_csv(sweep_dir / "sweep.csv")["status"] == "ok").sum() == 4
    assert len(reads) == 1 and len(hashes) == 1

