"""The runner's second path: a job's members trained by the Pallas kernel.

:func:`choose` resolves the ``kernel=auto|xla|pallas`` setting for one program call.
:func:`train_chunk` has the signature of the XLA path's chunk trainer in
:mod:`jaxbp.runner`: it draws each member's starting state with the engine's own ``init``
(the same weights as the XLA path), runs :func:`jaxbp.pallas_kernel.train_blocks` block by
block, and hands the final state to the engine's ``finalize``. So the two paths share every
line except the epochs themselves, and every metric comes from the same code.

The kernel reads per member only the learning rate and the momentum; the other traced
values (penalties, target, Adam's numbers) are baked into it, so every member of one call
must share them, and it trains no masked (width-padded) members. ``config.shape_key`` keeps
such jobs apart when ``kernel=pallas``, so the vmap launcher never fuses what the kernel
cannot train.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp import distributed, pallas_kernel
from jaxbp.checks import ConfigError
from jaxbp.config import RunConfig

# The kernel has been checked on the CPU only (Pallas interpret mode): its speed on a GPU is
# unmeasured, so `auto` keeps the XLA engine everywhere until a GPU benchmark says the kernel
# is faster (PERF.md). Then `auto` picks it on a GPU for every job it can train.
AUTO_PICKS_PALLAS_ON_GPU = False
# Per member the kernel reads the learning rate and momentum; `init_scale` is used by the
# engine's init only and `margin` means nothing under criterion=loss. These it bakes in:
BAKED = ("l1", "l2", "target_loss", "b1", "b2", "eps")  # one value per kernel call


def unsupported(cfg: RunConfig, program) -> str:
    """Why the kernel cannot train ``cfg``'s job; ``""`` when it can."""
    x = program.dataset.x_train
    ok, why = pallas_kernel.supports(program.spec, x.shape[0], x.shape[1], cfg.optim.name, cfg.batch_size,
                                     criterion=cfg.criterion, patience=cfg.patience)
    if not ok:
        return why
    if jax.process_count() > 1:
        return "a job over several processes (the kernel runs on one device)"
    return ""


def _mixed(table: dict, masked: bool) -> str:
    """Why these members cannot share one kernel call; ``""`` when they can."""
    if masked:
        return "members of different hidden widths (kernel=pallas trains each width alone)"
    for key in BAKED:
        if key in table and np.ptp(table[key]) > 0:
            return f"members with different {key} (kernel=pallas bakes it into the kernel)"
    return ""


def choose(cfg: RunConfig, program, table: dict, masked: bool) -> str:
    """``"xla"`` or ``"pallas"``: what trains this call's members.

    Raises:
        ConfigError: ``kernel=pallas`` for a job or members the kernel cannot train.
    """
    if cfg.kernel == "xla":
        return "xla"
    why = unsupported(cfg, program) or _mixed(table, masked)
    if cfg.kernel == "pallas":
        if why:
            raise ConfigError("kernel", cfg.kernel, f"kernel=xla or auto: the Pallas kernel cannot train {why}")
        return "pallas"
    on_gpu = jax.default_backend() == "gpu"
    return "pallas" if AUTO_PICKS_PALLAS_ON_GPU and on_gpu and not why else "xla"


def train_chunk(cfg: RunConfig, programs, states, hyper: dict, curve_idx, bar, done_epochs: int,
                blocks_per_call: int):
    """Trains one chunk of members from their engine ``states`` (fresh from ``init``) and
    traced ``hyper`` values, unsharded, with the kernel.

    Returns ``(params, metrics, curves (T, curve rows), compile_s)`` on the host, like the
    XLA path; ``compile_s`` counts the job's first kernel call (it compiles then), so it
    includes that call's epochs.
    """
    program = programs.program
    packed = pallas_kernel.pack(states.params)
    baked = {k: float(np.asarray(hyper[k])[0]) for k in BAKED if k in hyper}
    adam = tuple(baked.get(k, default) for k, default in zip(("b1", "b2", "eps"), pallas_kernel.ADAM))
    lr = hyper["learning_rate"]
    momentum = hyper.get("momentum", jnp.zeros_like(lr))
    opt, ett, diverged = None, states.epochs_to_target, states.diverged
    x, y = program.dataset.x_train, program.dataset.y_train
    interpret = jax.default_backend() != "gpu"  # Triton needs a GPU; elsewhere (CPU, TPU) Pallas interprets
    compile_s, curves = 0.0, []
    for first_block in range(0, cfg.blocks, blocks_per_call):
        started = time.perf_counter()
        packed, opt, ett, diverged, curve = pallas_kernel.train_blocks(
            program.spec, x, y, packed, opt, lr, momentum, ett, diverged,
            first_epoch=first_block * cfg.sample_every, n_blocks=blocks_per_call, log_every=cfg.sample_every,
            epochs=cfg.epochs, target_loss=baked["target_loss"], optimizer=cfg.optim.name, adam=adam,
            l1=baked["l1"], l2=baked["l2"], interpret=interpret)
        curves.append(curve[:, curve_idx])
        if first_block == 0 and done_epochs == 0:  # the job's first call compiles; later chunks reuse it
            jax.block_until_ready(curve)
            compile_s = time.perf_counter() - started
        if not bar.disable:
            jax.block_until_ready(curve)
            reached = min(cfg.epochs, (first_block + blocks_per_call) * cfg.sample_every)
            bar.update(done_epochs + reached - bar.n)
    states = states._replace(params=pallas_kernel.unpack(program.spec, packed), epochs_to_target=ett,
                             diverged=diverged)
    params, metrics = programs.finalize(states, jnp.int32(cfg.epochs))
    curves = jnp.concatenate(curves, axis=0)[: cfg.blocks]
    return (*distributed.to_host((params, metrics, curves)), compile_s)
