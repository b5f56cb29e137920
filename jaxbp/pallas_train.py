"""The runner's second path: a job's members trained by the Pallas kernel.

:func:`choose` resolves the ``kernel=auto|xla|pallas`` setting for one program call.
:func:`chunk_fn` is the kernel's counterpart of the XLA path's chunk function in
:mod:`jaxbp.runner`, with the same call signature, so the runner's one loop over blocks of
epochs drives either. Members start from the engine's own ``init`` (the same weights as the
XLA path; :func:`start` packs them) and end in the engine's ``finalize`` (:func:`finish`
unpacks them), so the two paths share everything but the epochs, and every metric comes
from the same code.

The kernel reads per member only the learning rate and the momentum; the other traced
values (penalties, target, Adam's numbers) are baked into it, so every member of one call
must share them, and it trains no masked (width-padded) members. ``config.shape_key`` keeps
such jobs apart when ``kernel=pallas``, so the vmap launcher never fuses what the kernel
cannot train.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp.checks import ConfigError
from jaxbp.config import RunConfig

# The kernel has been checked on the CPU only (Pallas interpret mode): its speed on a GPU is
# unmeasured, so `auto` keeps the XLA engine everywhere until a GPU benchmark says the kernel
# is faster (PERF.md). Then `auto` picks it on a GPU for every job it can train.
AUTO_PICKS_PALLAS_ON_GPU = False
# Per member the kernel reads the learning rate and momentum; `init_scale` is used by the
# engine's init only and `margin` means nothing under criterion=loss. These it bakes in:
BAKED = ("l1", "l2", "target_loss", "b1", "b2", "eps")  # one value per kernel call


def _kernel():
    """:mod:`jaxbp.pallas_kernel`, imported when a job asks about the kernel: Pallas and its
    Triton and Mosaic lowerings take 0.08 s to import, which a job on the XLA engine skips."""
    from jaxbp import pallas_kernel

    return pallas_kernel


def unsupported(cfg: RunConfig, spec, n_rows: int, n_features: int) -> str:
    """Why the kernel cannot train ``cfg``'s job (network ``spec`` on ``n_rows`` ×
    ``n_features`` data); ``""`` when it can."""
    ok, why = _kernel().supports(spec, n_rows, n_features, cfg.optim.name, cfg.batch_size,
                                     criterion=cfg.criterion, patience=cfg.patience)
    if ok and cfg.restart_after is not None:
        return "restarts (restart_after): the kernel trains one attempt per seed"
    if ok and (cfg.error_dead_zone > 0 or cfg.sigmoid_prime_offset > 0):
        return "error_dead_zone or sigmoid_prime_offset: the kernel's backward is the plain gradient"
    return "" if ok else why


def _mixed(table: dict, masked: bool) -> str:
    """Why these members cannot share one kernel call; ``""`` when they can."""
    if masked:
        return "members of different hidden widths (kernel=pallas trains each width alone)"
    if jax.process_count() > 1:
        return "a job over several processes (the kernel runs on one device)"
    for key in BAKED:
        if key in table and np.ptp(table[key]) > 0:
            return f"members with different {key} (kernel=pallas bakes it into the kernel)"
    return ""


def choose(cfg: RunConfig, program, table: dict, masked: bool) -> str:
    """``"xla"`` or ``"pallas"``: what trains this call's members.

    Raises:
        ConfigError: ``kernel=pallas`` for a job or members the kernel cannot train.
    """
    auto_may_pick = AUTO_PICKS_PALLAS_ON_GPU and jax.default_backend() == "gpu"
    if cfg.kernel == "xla" or (cfg.kernel == "auto" and not auto_may_pick):
        return "xla"
    why = unsupported(cfg, program.spec, *program.dataset.x_train.shape) or _mixed(table, masked)
    if cfg.kernel == "pallas":
        if why:
            raise ConfigError("kernel", cfg.kernel, f"kernel=xla or auto: the Pallas kernel cannot train {why}")
        return "pallas"
    return "xla" if why else "pallas"


def start(states, hyper: dict, optimizer: str) -> tuple:
    """The kernel's carry from fresh engine ``states`` and traced ``hyper`` values:
    ``(packed params, optimiser state, epochs_to_target, diverged, lr, momentum)``."""
    packed = _kernel().pack(states.params)
    slots = _kernel().OPT_SLOTS[optimizer]
    opt = jnp.zeros((slots * packed.shape[0], packed.shape[1]), packed.dtype) if slots else None
    lr = hyper["learning_rate"]
    return packed, opt, states.epochs_to_target, states.diverged, lr, hyper.get("momentum", jnp.zeros_like(lr))


def finish(spec, states, carry):
    """``states`` with the kernel's params, ``epochs_to_target`` and ``diverged``, for the
    engine's ``finalize``."""
    packed, _, epochs_to_target, diverged, _, _ = carry
    return states._replace(params=_kernel().unpack(spec, packed), epochs_to_target=epochs_to_target,
                           diverged=diverged)


def chunk_fn(cfg: RunConfig, programs, hyper: dict, blocks_per_call: int):
    """The jitted ``chunk(carry, first_block, epochs, curve_members) -> (carry, curve)`` of
    :func:`jaxbp.pallas_kernel.train_blocks`, the XLA chunk function's signature (``epochs``
    is baked in), cached in ``programs.chunks`` per call size and baked values."""
    baked = {k: float(np.asarray(hyper[k])[0]) for k in BAKED if k in hyper}
    interpret = jax.default_backend() != "gpu"  # Triton needs a GPU; elsewhere (CPU, TPU) Pallas interprets
    key = ("pallas", blocks_per_call, tuple(baked.items()), interpret)
    if key not in programs.chunks:
        program = programs.program
        adam = tuple(baked.get(k, default) for k, default in zip(("b1", "b2", "eps"), _kernel().ADAM))
        x, y = program.dataset.x_train, program.dataset.y_train

        def chunk(carry, first_block, epochs, curve_members):
            del epochs  # the same as cfg.epochs: part of the program's shape key
            packed, opt, ett, diverged, lr, momentum = carry
            packed, opt, ett, diverged, curve = _kernel().train_blocks(
                program.spec, x, y, packed, opt, lr, momentum, ett, diverged,
                first_epoch=first_block * cfg.sample_every, n_blocks=blocks_per_call,
                log_every=cfg.sample_every, epochs=cfg.epochs, target_loss=baked["target_loss"],
                optimizer=cfg.optim.name, adam=adam, l1=baked["l1"], l2=baked["l2"], interpret=interpret)
            return (packed, opt, ett, diverged, lr, momentum), curve[:, curve_members]

        programs.chunks[key] = jax.jit(chunk)
    return programs.chunks[key]
