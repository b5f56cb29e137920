"""``python -m jaxbp.bench``: how fast is jaxbp, against baselines measured in the same run.

Every implementation trains the same job: XOR 2-H-1, sigmoid hidden and output units, MSE,
full-batch SGD, E epochs, S seeds (float32). Throughput is seed-epochs per second, measured
in steady state: each implementation runs once to warm up (compile), then is timed, with
``block_until_ready`` so JAX's asynchronous dispatch cannot hide work.

``impl`` rows:

* ``jaxbp_vmap``: :func:`jaxbp.runner.run`, every seed in one compiled program.
* ``jaxbp_sequential``: the same engine (``jit(make_train(cfg))``) called seed by seed. It
  is linear in S, so it is timed on ``min(S, --sequential-seeds)`` seeds; ``num_seeds``
  says how many.
* ``numpy_batched``: the same maths hand-vectorised over seeds with NumPy: what a careful
  user writes without JAX. ``--numpy-seeds`` caps its seeds for very large S (its
  throughput is flat in S once the arrays outgrow the caches).
* ``roofline``: an upper bound for this machine. A seed-epoch of XOR 2-H-1 evaluates the
  sigmoid ``4·(H+1)`` times (4 rows; H hidden units and 1 output; the backward pass reuses
  ``h`` so needs none), and the sigmoid's exp and divide dominate the arithmetic of such a
  small net: the matmuls are ``2·4·(2H+H)`` multiply-adds, cheaper than the
  transcendentals. We measure jitted ``sigmoid`` throughput on a large float32 array and
  divide it by ``4·(H+1)``; no implementation that evaluates those sigmoids can go faster
  than that on this device (apart from the sigmoid array's own memory traffic, which the
  bound pays and a fused kernel does not; so the bound is loose from below by at most that).

``--scaling`` adds ``jaxbp_vmap`` rows for S = 1, 10, ..., 100,000 (``--max-scaling-seeds``).

``--kernel pallas`` adds a ``jaxbp_pallas`` row after ``jaxbp_vmap``:
:func:`jaxbp.pallas_kernel.train_blocks` on the same seeds, initial weights and epochs, and
prints its throughput as a multiple of ``jaxbp_vmap``'s. On a GPU it compiles with Triton;
elsewhere it runs in Pallas interpret mode, which checks that it runs but says nothing about
its speed on a GPU.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time

from jaxbp import cores

if __name__ == "__main__":
    cores.configure_xla()  # before JAX starts; the library import leaves XLA alone

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jaxbp import config, engine, runner

COLUMNS = ["impl", "num_seeds", "epochs", "hidden", "seed_epochs_per_s", "wall_s", "compile_s",
           "backend", "device", "peak_rss_mb"]


def job_config(seeds: int, epochs: int, hidden: int, dataset: str = "xor") -> config.RunConfig:
    """The benchmark job; curves are off so only training is timed."""
    return config.from_dict({
        "num_seeds": seeds, "epochs": epochs, "hidden": hidden, "lr": 0.5,
        "log_every": min(epochs, 100), "curve_seeds": 0, "progress": False,
        "compile_cache": None, "data": {"name": dataset},
    })


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def _row(impl, seeds, cfg, wall, compile_s):
    device = jax.local_devices()[0]
    return {"impl": impl, "num_seeds": seeds, "epochs": cfg.epochs, "hidden": cfg.hidden,
            "seed_epochs_per_s": seeds * cfg.epochs / wall, "wall_s": wall, "compile_s": compile_s,
            "backend": jax.default_backend(), "device": device.device_kind,
            "peak_rss_mb": _peak_rss_mb()}


def bench_vmap(cfg: config.RunConfig) -> dict:
    first = runner.run(cfg)  # compiles
    steady = runner.run(cfg)
    assert steady.compile_s == 0.0
    return _row("jaxbp_vmap", cfg.num_seeds, cfg, steady.wall_s, first.compile_s)


def bench_sequential(cfg: config.RunConfig, seeds: int) -> dict:
    train = jax.jit(engine.make_train(cfg))
    lr = jnp.float32(cfg.lr)
    start = time.perf_counter()
    jax.block_until_ready(train(engine.seed_key(0), lr))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for seed in range(seeds):
        jax.block_until_ready(train(engine.seed_key(seed), lr))
    return _row("jaxbp_sequential", seeds, cfg, time.perf_counter() - start, compile_s)


def bench_pallas(cfg: config.RunConfig) -> dict:
    from jaxbp import pallas_kernel, pallas_train

    program = runner.program_for(cfg)  # the data and init the jaxbp rows used
    ds, spec = program.dataset, program.spec
    why = pallas_train.unsupported(cfg, spec, *ds.x_train.shape)
    if why:
        raise SystemExit(f"--kernel pallas cannot run this job: {why}")
    hyper = engine.member_hyper(cfg)
    init = jax.jit(jax.vmap(lambda s: program.init(engine.seed_key(s), hyper).params))
    packed = pallas_kernel.pack(init(jnp.arange(cfg.num_seeds, dtype=jnp.uint32)))
    seeds = cfg.num_seeds

    def train():
        return pallas_kernel.train_blocks(
            spec, ds.x_train, ds.y_train, packed, None, jnp.full(seeds, cfg.lr, jnp.float32),
            jnp.full(seeds, hyper.get("momentum", 0.0), jnp.float32), jnp.full(seeds, -1, jnp.int32),
            jnp.zeros(seeds, bool), first_epoch=0, n_blocks=cfg.blocks, log_every=cfg.sample_every,
            epochs=cfg.epochs, target_loss=cfg.target_loss, optimizer=cfg.optim.name,
            interpret=jax.default_backend() != "gpu")

    start = time.perf_counter()
    jax.block_until_ready(train())  # compiles
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.device_get(train())  # with the results on the host, as runner.run's are
    return _row("jaxbp_pallas", seeds, cfg, time.perf_counter() - start, compile_s)


def numpy_train(x: np.ndarray, y: np.ndarray, params: list[np.ndarray], lr: float, epochs: int):
    """Full-batch SGD on a 2-H-1 sigmoid/MSE net for S seeds at once, in NumPy.

    ``params = [W1 (S,2,H), b1 (S,H), W2 (S,H,1), b2 (S,1)]``; the equations are
    :mod:`jaxbp.backprop`'s. Returns the final params.
    """
    W1, b1, W2, b2 = (p.copy() for p in params)
    n = x.shape[0]
    for _ in range(epochs):
        h = 1.0 / (1.0 + np.exp(-(np.matmul(x, W1) + b1[:, None, :])))  # (S, n, H)
        y_hat = 1.0 / (1.0 + np.exp(-(np.matmul(h, W2) + b2[:, None, :])))  # (S, n, 1)
        d2 = (y_hat - y) * y_hat * (1.0 - y_hat) / n  # δ_L for sigmoid + mse
        d1 = np.matmul(d2, W2.transpose(0, 2, 1)) * h * (1.0 - h)  # δ_l
        W2 -= lr * np.matmul(h.transpose(0, 2, 1), d2)
        b2 -= lr * d2.sum(axis=1)
        W1 -= lr * np.matmul(x.T, d1)
        b1 -= lr * d1.sum(axis=1)
    return [W1, b1, W2, b2]


def bench_numpy(cfg: config.RunConfig, seeds: int) -> dict:
    program = runner.program_for(cfg)  # the data and init the jaxbp rows used
    ds = program.dataset
    x, y = ds.x_train.astype(np.float32), ds.y_train.astype(np.float32)
    hyper = engine.member_hyper(cfg)
    init = jax.jit(jax.vmap(lambda s: program.init(engine.seed_key(s), hyper).params))
    layers = init(jnp.arange(seeds, dtype=jnp.uint32))
    params = [np.asarray(layers[0]["W"]), np.asarray(layers[0]["b"]),
              np.asarray(layers[1]["W"]), np.asarray(layers[1]["b"])]
    lr = np.float32(cfg.lr)
    numpy_train(x, y, params, lr, 2)  # warm caches and allocator
    start = time.perf_counter()
    numpy_train(x, y, params, lr, cfg.epochs)
    return _row("numpy_batched", seeds, cfg, time.perf_counter() - start, 0.0)


def bench_roofline(cfg: config.RunConfig, repeats: int = 20) -> dict:
    # Large enough to keep every core (or the whole GPU) busy for many microseconds.
    size = 1 << 24 if jax.default_backend() == "cpu" else 1 << 28
    sigmoid = jax.jit(jax.nn.sigmoid)
    z = jax.random.normal(jax.random.PRNGKey(0), (size,), jnp.float32)
    start = time.perf_counter()
    jax.block_until_ready(sigmoid(z))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        out = sigmoid(z)
    jax.block_until_ready(out)
    evals_per_s = size * repeats / (time.perf_counter() - start)
    rows = runner.program_for(cfg).dataset.x_train.shape[0]
    sigmoids_per_seed_epoch = rows * (cfg.hidden + 1)
    rate = evals_per_s / sigmoids_per_seed_epoch
    wall = cfg.num_seeds * cfg.epochs / rate  # the time this job would take at the bound
    return _row("roofline", cfg.num_seeds, cfg, wall, compile_s)


def run_benchmark(seeds: int, epochs: int, hidden: int, dataset: str = "xor",
                  sequential_seeds: int = 256, numpy_seeds: int | None = None,
                  impls=None, kernel: str = "xla") -> pd.DataFrame:
    """One row per implementation, all measured in this process; ``kernel="pallas"`` adds
    ``jaxbp_pallas`` after ``jaxbp_vmap``."""
    cfg = job_config(seeds, epochs, hidden, dataset)
    impls = list(impls or ["jaxbp_vmap", "jaxbp_sequential", "numpy_batched", "roofline"])
    if kernel == "pallas" and "jaxbp_pallas" not in impls:
        impls.insert(impls.index("jaxbp_vmap") + 1 if "jaxbp_vmap" in impls else 0, "jaxbp_pallas")
    bench = {
        "jaxbp_vmap": lambda: bench_vmap(cfg),
        "jaxbp_pallas": lambda: bench_pallas(cfg),
        "jaxbp_sequential": lambda: bench_sequential(cfg, min(seeds, sequential_seeds)),
        "numpy_batched": lambda: bench_numpy(cfg, min(seeds, numpy_seeds or seeds)),
        "roofline": lambda: bench_roofline(cfg),
    }
    return pd.DataFrame([bench[name]() for name in impls], columns=COLUMNS)


def scaling(epochs: int, hidden: int, max_seeds: int, dataset: str = "xor") -> pd.DataFrame:
    """``jaxbp_vmap`` throughput for S = 1, 10, 100, ... up to ``max_seeds``."""
    sizes = [10**k for k in range(0, 9) if 10**k <= max_seeds]
    return pd.DataFrame([bench_vmap(job_config(s, epochs, hidden, dataset)) for s in sizes],
                        columns=COLUMNS)


def launcher_speedup(num_lrs: int = 10, seeds: int = 1000, epochs: int = 1000) -> pd.DataFrame:
    """Wall time of ``-m lr=<num_lrs values> num_seeds=<seeds>`` under the basic and the vmap
    launcher, each a fresh ``python -m jaxbp.train`` process with no persistent compile cache
    (so both pay their compiles), run one after the other on this machine."""
    import subprocess
    import tempfile

    lrs = ",".join(f"{lr:.3g}" for lr in np.geomspace(0.05, 5.0, num_lrs))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for launcher in ("basic", "vmap"):
            args = [sys.executable, "-m", "jaxbp.train", "-m", f"lr={lrs}", f"num_seeds={seeds}",
                    f"epochs={epochs}", f"hydra/launcher={launcher}", "compile_cache=null",
                    "progress=false", f"hydra.sweep.dir={tmp}/{launcher}"]
            start = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True, cwd=tmp)
            rows.append({"launcher": launcher, "jobs": num_lrs, "num_seeds": seeds, "epochs": epochs,
                         "sweep_wall_s": time.perf_counter() - start})
    table = pd.DataFrame(rows)
    table["speedup_vs_basic"] = table["sweep_wall_s"].iloc[0] / table["sweep_wall_s"]
    return table


SWEEP = ["lr=0.01,0.1,1.0", "hidden=2,3,8"]


def sweep_speedup(seeds: int = 1000, epochs: int = 5000, launchers=("basic", "vmap")) -> pd.DataFrame:
    """The design card's sweep ``-m lr=0.01,0.1,1.0 hidden=2,3,8`` end to end, once per
    launcher, each a fresh ``python -m jaxbp.train`` process with no persistent compile
    cache, one after the other on this machine. Per launcher: the programs compiled, the
    seconds compiling and training (each program counted once, from the jobs' summaries),
    and the whole process's wall time."""
    import json
    import subprocess
    import tempfile
    from pathlib import Path

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for launcher in launchers:
            sweep_dir = Path(tmp) / launcher
            args = [sys.executable, "-m", "jaxbp.train", "-m", *SWEEP, f"num_seeds={seeds}",
                    f"epochs={epochs}", f"hydra/launcher={launcher}", "compile_cache=null",
                    "progress=false", f"hydra.sweep.dir={sweep_dir}"]
            start = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True, cwd=tmp)
            wall = time.perf_counter() - start
            summaries = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
            # A fused group's jobs share one program and report its (wall, compile) once each.
            programs = {}
            for index, summary in enumerate(summaries):
                fused = summary.get("fused_jobs", 1) > 1
                programs[(summary["wall_s"], summary["compile_s"]) if fused else index] = summary
            rows.append({"launcher": launcher, "jobs": len(summaries), "num_seeds": seeds, "epochs": epochs,
                         "programs_compiled": sum(p["compile_s"] > 0 for p in programs.values()),
                         "compile_s": sum(p["compile_s"] for p in programs.values()),
                         "train_s": sum(p["wall_s"] - p["compile_s"] for p in programs.values()),
                         "sweep_wall_s": wall})
    table = pd.DataFrame(rows)
    table["speedup_vs_basic"] = table["sweep_wall_s"].iloc[0] / table["sweep_wall_s"]
    return table


def format_table(table: pd.DataFrame) -> str:
    """The printed table: throughput, and jaxbp_vmap's speed as a multiple of each row's."""
    vmap = table[(table["impl"] == "jaxbp_vmap")]["seed_epochs_per_s"].max()
    lines = [f"{'impl':<18} {'seeds':>9} {'seed-epochs/s':>14} {'wall s':>8} {'compile s':>9} "
             f"{'vmap ÷ impl':>12}"]
    for _, row in table.iterrows():
        ratio = vmap / row["seed_epochs_per_s"]
        shown = f"{ratio:.1%}" if row["impl"] == "roofline" else f"{ratio:.2f}×"
        lines.append(f"{row['impl']:<18} {row['num_seeds']:>9} {row['seed_epochs_per_s']:>14.4g} "
                     f"{row['wall_s']:>8.3f} {row['compile_s']:>9.3f} {shown:>12}")
    pallas = table[table["impl"] == "jaxbp_pallas"]["seed_epochs_per_s"]
    if len(pallas) and vmap > 0:
        lines.append(f"jaxbp_pallas ÷ jaxbp_vmap: {pallas.max() / vmap:.2f}×"
                     + ("" if jax.default_backend() == "gpu" else " (interpret mode: not a GPU speed)"))
    first = table.iloc[0]
    lines.append(f"backend {first['backend']}, device {first['device']}, peak RSS "
                 f"{table['peak_rss_mb'].max():.0f} MB")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxbp.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=3)
    parser.add_argument("--data", default="xor", choices=["xor"])
    parser.add_argument("--out", default="outputs/bench.csv", help="the results table (default outputs/bench.csv)")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (64 seeds, 50 epochs)")
    parser.add_argument("--scaling", action="store_true", help="add jaxbp_vmap rows for S=1..100k")
    parser.add_argument("--max-scaling-seeds", type=int, default=100_000)
    parser.add_argument("--sequential-seeds", type=int, default=256,
                        help="seeds timed one by one (throughput is linear in S)")
    parser.add_argument("--numpy-seeds", type=int, default=None,
                        help="cap on numpy_batched's seeds (default --seeds)")
    parser.add_argument("--impls", help="comma-separated subset of impls to run")
    parser.add_argument("--kernel", choices=["xla", "pallas"], default="xla",
                        help="pallas: add a jaxbp_pallas row (jaxbp.pallas_kernel) beside jaxbp_vmap")
    parser.add_argument("--sweep", action="store_true",
                        help="time -m lr=0.01,0.1,1.0 hidden=2,3,8 under the basic and the fused launcher "
                             "(fresh processes; --seeds and --epochs default to 1000 and 5000 here)")
    parser.add_argument("--launchers", action="store_true",
                        help="also time a 10-lr sweep under the basic and the vmap launcher")
    parser.add_argument("--latency", action="store_true",
                        help="time --help, a refusal, a run and two sweeps as fresh processes, cold and warm "
                             "compile cache, against the import floor (jaxbp.latency)")
    parser.add_argument("--repeats", type=int, default=3, help="--latency: runs per figure (the median)")
    args = parser.parse_args(argv)
    if args.latency:
        from jaxbp import latency

        return latency.main(max(1, args.repeats))
    if min(args.seeds, args.epochs, args.hidden) < 1:
        parser.error("--seeds, --epochs and --hidden must be >= 1")
    if args.quick:
        args.seeds, args.epochs, args.sequential_seeds, args.max_scaling_seeds = 64, 50, 4, 100

    if args.sweep:  # the sweep's own sizes unless given
        seeds = args.seeds if "--seeds" in (argv or sys.argv) else 1000
        epochs = args.epochs if "--epochs" in (argv or sys.argv) else 5000
        print(f"sweep -m {' '.join(SWEEP)} num_seeds={seeds} epochs={epochs} "
              "(whole sweep, fresh processes, no compile cache):")
        print(sweep_speedup(seeds, epochs).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        return 0
    impls = args.impls.split(",") if args.impls else None
    table = run_benchmark(args.seeds, args.epochs, args.hidden, args.data, args.sequential_seeds,
                          args.numpy_seeds, impls, args.kernel)
    print(format_table(table))
    if args.scaling:
        series = scaling(args.epochs, args.hidden, args.max_scaling_seeds, args.data)
        print("\nscaling (jaxbp_vmap):")
        print(series[["num_seeds", "seed_epochs_per_s", "wall_s"]].to_string(index=False))
        table = pd.concat([table, series.assign(impl="jaxbp_vmap_scaling")], ignore_index=True)
    from pathlib import Path

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"→ {args.out}")
    if args.launchers:
        print("\nsweep -m lr=<10 values> (whole-sweep wall time, fresh processes):")
        print(launcher_speedup(seeds=args.seeds, epochs=args.epochs).to_string(index=False))
    return 0


if __name__ == "__main__":
    from jaxbp import pipes

    pipes.main(main)
