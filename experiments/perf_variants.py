"""Loop-structure variants of the training program, timed in one process (see PERF.md).

    python experiments/perf_variants.py --seeds 10000 --epochs 1000

Every variant runs the same vmapped per-member ``step`` of jaxbp's engine over the same
members and epochs; only how the epochs are looped differs. Prints seed-epochs per second
(best of three after a warm-up) and the ratio to the engine's own loop.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from jaxbp import config, engine


def timed(fn, *args, repeats: int = 3) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args()
    seeds, epochs, block = args.seeds, args.epochs, 100
    cfg = config.from_dict({"num_seeds": seeds, "epochs": epochs, "log_every": block, "curve_seeds": 0,
                            "progress": False, "compile_cache": None})
    program = engine.make_program(cfg)
    # Each member carries its traced hyperparameters (lr, ...) in its state.
    hyper = {k: jnp.full((seeds,), v) for k, v in engine.member_hyper(cfg).items()}
    init = jax.vmap(lambda s, h: program.init(engine.seed_key(s), h))
    states = jax.jit(init)(jnp.arange(seeds, dtype=jnp.uint32), hyper)
    step_all = jax.vmap(program.step, in_axes=(0, None))

    def plain(unroll):
        def body(s, e):
            return step_all(s, e)[0], None
        return jax.jit(lambda s: jax.lax.scan(body, s, jnp.arange(epochs), unroll=unroll)[0])

    def blocks_without_cond(s):
        def one_block(s, b):
            epochs_in_block = b * block + jnp.arange(block)
            return jax.lax.scan(lambda c, e: (step_all(c, e)[0], None), s, epochs_in_block)[0], None
        return jax.lax.scan(one_block, s, jnp.arange(epochs // block))[0]

    variants = {
        "engine.run_blocks (cond-masked blocks)": jax.jit(lambda s: engine.run_blocks(
            step_all, s, jnp.int32(0), epochs // block, jnp.int32(epochs), block, lambda loss: loss[:0])[0]),
        "blocks, no cond": jax.jit(blocks_without_cond),
        "plain scan": plain(1),
        "plain scan, unroll=4": plain(4),
        "plain scan, unroll=10": plain(10),
    }
    print(f"backend {jax.default_backend()}, {jax.devices()[0].device_kind}, S={seeds}, E={epochs}")
    base = None
    for name, fn in variants.items():
        rate = seeds * epochs / timed(fn, states)
        base = base or rate
        print(f"{name:42s} {rate:10.3e} seed-epochs/s  {rate / base:5.2f}×")


if __name__ == "__main__":
    main()
