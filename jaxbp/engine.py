"""The training program: one network ("member") per seed, all epochs inside ``lax.scan``.

:func:`make_program` does the Python-side work once: data, spec, optimiser. It returns pure
per-member functions::

    init(key)                 -> MemberState
    step(state, lr, epoch)    -> (MemberState, loss)     one epoch; loss is E(params_epoch)
    finalize(state, epochs)   -> (params, metrics)

``loss`` at epoch ``t`` is the data loss (no penalty) of the parameters after ``t`` updates;
it comes free from the backward pass in full-batch training. :func:`make_train` composes the
three into the pure ``train(key, lr) -> (params, metrics)``; :mod:`jaxbp.runner` vmaps
them over seeds (and learning rates) in chunks of epochs.

A member whose loss or update is not finite is flagged ``diverged`` and frozen, and so is a
member that early stopping has stopped; frozen members keep computing (they share the
vmapped program) but never change, so they cannot disturb the others.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxbp import backprop, model
from jaxbp.config import ConfigError, OptimConfig, RunConfig
from jaxbp.data import Dataset, load

Array = jax.Array

OPTIMIZERS = {
    "sgd": lambda o, lr: optax.sgd(lr),
    "momentum": lambda o, lr: optax.sgd(lr, momentum=o.momentum),
    "nesterov": lambda o, lr: optax.sgd(lr, momentum=o.momentum, nesterov=True),
    "adam": lambda o, lr: optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps),
    "rmsprop": lambda o, lr: optax.rmsprop(lr, decay=o.b2, eps=o.eps),
}


def make_optimizer(optim: OptimConfig, lr) -> optax.GradientTransformation:
    """The optax optimiser named by ``optim.name``; ``lr`` may be a traced scalar."""
    return OPTIMIZERS[optim.name](optim, lr)


class MemberState(NamedTuple):
    """Everything one member carries from epoch to epoch."""

    params: model.Params
    opt_state: Any
    shuffle_key: Array  # minibatch order: fold_in(shuffle_key, epoch)
    epochs_to_target: Array  # int32; -1 until the train loss first reaches target_loss
    diverged: Array  # bool
    stopped: Array  # bool: early stopping has frozen this member
    best_params: Any  # params at the best test loss (early stopping), else ()
    best_test_loss: Array
    bad_epochs: Array  # int32: epochs since the test loss last improved


class Program(NamedTuple):
    """Pure per-member functions and what they were built from."""

    cfg: RunConfig
    spec: model.Spec
    dataset: Dataset
    init: Any
    step: Any
    finalize: Any


def _tree_where(cond: Array, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), on_true, on_false)


def _all_finite(tree) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def accuracy(spec: model.Spec, params, x: Array, y: Array) -> Array:
    """Share of rows classified right: threshold 0.5 for one output, argmax for several."""
    y_hat = model.forward(spec, params, x)
    if spec.sizes[-1] == 1:
        hits = (y_hat[:, 0] > 0.5) == (y[:, 0] > 0.5)
    else:
        hits = jnp.argmax(y_hat, axis=-1) == jnp.argmax(y, axis=-1)
    return jnp.mean(hits.astype(y.dtype))


def _float_dtype(cfg: RunConfig):
    if cfg.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError("dtype", cfg.dtype, "float64 needs JAX_ENABLE_X64=1 before JAX starts")
    return jnp.dtype(cfg.dtype)


class Setup(NamedTuple):
    """What every per-member function needs, resolved once by :func:`make_program`."""

    cfg: RunConfig
    spec: model.Spec
    dtype: Any
    x: Array  # train inputs (n, sizes[0]) and targets (n, sizes[-1])
    y: Array
    x_test: Array  # (0, sizes[0]) when there is no test split
    y_test: Array
    has_test: bool
    classes: bool


def _value_and_grad(setup: Setup, params, xb, yb):
    """``(E, ∂E/∂params)`` with penalties, by hand (``grad=manual``) or by ``jax.grad``."""
    spec, cfg = setup.spec, setup.cfg
    if cfg.grad == "manual":
        return backprop.backward(spec, params, xb, yb, l1=cfg.l1, l2=cfg.l2)
    return jax.value_and_grad(lambda p: model.loss(spec, p, xb, yb, l1=cfg.l1, l2=cfg.l2))(params)


def _data_loss(setup: Setup, params, xs, ys) -> Array:
    return model.data_loss(setup.spec, model.logits(setup.spec, params, xs), ys)


def _init(setup: Setup, key: Array) -> MemberState:
    cfg = setup.cfg
    init_key, shuffle_key = jax.random.split(key)
    params = model.init(setup.spec, init_key, cfg.init.scheme, cfg.init.scale, cfg.init.bias, setup.dtype)
    opt_state = make_optimizer(cfg.optim, jnp.ones((), setup.dtype)).init(params)
    return MemberState(
        params, opt_state, shuffle_key,
        epochs_to_target=jnp.array(-1, jnp.int32),
        diverged=jnp.array(False), stopped=jnp.array(False),
        best_params=params if cfg.patience is not None else (),
        best_test_loss=jnp.array(jnp.inf, setup.dtype), bad_epochs=jnp.array(0, jnp.int32),
    )


def _descend(setup: Setup, params, opt_state, lr, shuffle_key, epoch):
    """One epoch of updates; returns new params, opt state and E(params) on train (no penalty)."""
    cfg, x, y = setup.cfg, setup.x, setup.y
    tx = make_optimizer(cfg.optim, lr)
    if cfg.batch_size is None:
        value, grads = _value_and_grad(setup, params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value - model.penalty(params, cfg.l1, cfg.l2)
    # Minibatches: a fresh permutation per epoch; the n % batch_size rows left over
    # wait for a later epoch, so every step sees a full, static-shaped batch.
    n_train = x.shape[0]
    steps = n_train // cfg.batch_size
    order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n_train)
    batches = order[: steps * cfg.batch_size].reshape(steps, cfg.batch_size)

    def minibatch(carry, rows):
        p, s = carry
        _, grads = _value_and_grad(setup, p, x[rows], y[rows])
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), None

    (new_params, opt_state), _ = jax.lax.scan(minibatch, (params, opt_state), batches)
    return new_params, opt_state, _data_loss(setup, params, x, y)


def _early_stopping(setup: Setup, state: MemberState):
    """Tracks the best test loss and its params; returns the updated early-stopping fields."""
    test_loss = _data_loss(setup, state.params, setup.x_test, setup.y_test)
    improved = (test_loss < state.best_test_loss) & ~state.stopped & ~state.diverged
    bad_epochs = jnp.where(improved, 0, state.bad_epochs + 1)
    return (
        _tree_where(improved, state.params, state.best_params),
        jnp.where(improved, test_loss, state.best_test_loss),
        bad_epochs,
        state.stopped | (bad_epochs >= setup.cfg.patience),
    )


def _step(setup: Setup, state: MemberState, lr: Array, epoch: Array):
    new_params, new_opt, loss = _descend(setup, state.params, state.opt_state, lr, state.shuffle_key, epoch)
    reached = (loss <= setup.cfg.target_loss) & (state.epochs_to_target < 0)
    epochs_to_target = jnp.where(reached, epoch.astype(jnp.int32), state.epochs_to_target)
    best_params, best_test_loss, bad_epochs, stopped = (
        _early_stopping(setup, state) if setup.cfg.patience is not None
        else (state.best_params, state.best_test_loss, state.bad_epochs, state.stopped))
    diverged = state.diverged | ~(jnp.isfinite(loss) & _all_finite(new_params))
    frozen = diverged | stopped
    new_state = MemberState(
        _tree_where(frozen, state.params, new_params),
        _tree_where(frozen, state.opt_state, new_opt),
        state.shuffle_key, epochs_to_target, diverged, stopped,
        best_params, best_test_loss, bad_epochs,
    )
    return new_state, loss


def _finalize(setup: Setup, state: MemberState, epochs):
    cfg, spec = setup.cfg, setup.spec
    params = state.params
    if cfg.patience is not None:
        params = _tree_where(state.stopped, state.best_params, params)
    final_loss = _data_loss(setup, params, setup.x, setup.y)
    nan = jnp.array(jnp.nan, setup.dtype)
    late = (state.epochs_to_target < 0) & (final_loss <= cfg.target_loss)  # reached at the end
    metrics = {
        "final_loss": final_loss,
        "train_acc": accuracy(spec, params, setup.x, setup.y) if setup.classes else nan,
        "test_loss": _data_loss(setup, params, setup.x_test, setup.y_test) if setup.has_test else nan,
        "test_acc": accuracy(spec, params, setup.x_test, setup.y_test)
        if setup.has_test and setup.classes else nan,
        "epochs_to_target": jnp.where(late, jnp.asarray(epochs, jnp.int32), state.epochs_to_target),
        "converged": (final_loss <= cfg.target_loss) & ~state.diverged,
        "diverged": state.diverged,
    }
    return params, metrics


def make_program(cfg: RunConfig, dataset: Dataset | None = None) -> Program:
    """Builds the pure per-member functions for ``cfg`` (see the module docstring).

    Raises:
        ConfigError: for settings that do not fit the data (``batch_size``) or the
            precision JAX was started with (``dtype``).
    """
    dataset = dataset if dataset is not None else load(cfg.data, cfg.loss)
    dtype = _float_dtype(cfg)
    x, y = jnp.asarray(dataset.x_train, dtype), jnp.asarray(dataset.y_train, dtype)
    if cfg.batch_size is not None and cfg.batch_size > x.shape[0]:
        raise ConfigError("batch_size", cfg.batch_size,
                          f"null (full batch) or at most the {x.shape[0]} training rows")
    setup = Setup(cfg, cfg.spec(x.shape[1], y.shape[1]), dtype, x, y,
                  jnp.asarray(dataset.x_test, dtype), jnp.asarray(dataset.y_test, dtype),
                  dataset.has_test, dataset.classes)
    return Program(cfg, setup.spec, dataset, functools.partial(_init, setup),
                   functools.partial(_step, setup), functools.partial(_finalize, setup))


def run_blocks(step, states, lrs, first_block, n_blocks: int, epochs, log_every: int, pick):
    """Runs ``n_blocks`` blocks of ``log_every`` epochs from block ``first_block``.

    Epochs at or past ``epochs`` are skipped (a ``lax.cond`` on an unbatched counter), so a
    fixed block count can cover any number of epochs. Returns the new states and, per block,
    ``pick(loss)`` at the block's first epoch: the loss curve, sampled every ``log_every``.
    """

    def one_epoch(states, epoch):
        return jax.lax.cond(
            epoch < epochs,
            lambda s: step(s, lrs, epoch)[0],
            lambda s: s,
            states,
        )

    loss_shape = jax.eval_shape(lambda s: step(s, lrs, jnp.int32(0))[1], states)
    skipped_loss = jnp.full(loss_shape.shape, jnp.nan, loss_shape.dtype)

    def block(states, b):
        first = b * log_every
        states, loss = jax.lax.cond(
            first < epochs, lambda s: step(s, lrs, first), lambda s: (s, skipped_loss), states)
        rest = first + 1 + jnp.arange(log_every - 1, dtype=first.dtype)
        states, _ = jax.lax.scan(lambda s, e: (one_epoch(s, e), None), states, rest)
        return states, pick(loss)

    blocks = first_block + jnp.arange(n_blocks, dtype=jnp.int32)
    return jax.lax.scan(block, states, blocks)


def make_train(cfg: RunConfig, dataset: Dataset | None = None):
    """Returns the pure ``train(key, lr) -> (params, metrics)`` for one member.

    ``metrics`` holds the per-seed figures of :func:`make_program`'s ``finalize`` plus
    ``curve``: the train loss at epochs ``0, log_every, 2·log_every, ...``. ``lr`` is traced,
    so ``jax.vmap(train)(keys, lrs)`` trains a grid of members in one program.
    """
    program = make_program(cfg, dataset)
    n_blocks = -(-cfg.epochs // cfg.log_every)

    def train(key: Array, lr) -> tuple[model.Params, dict[str, Array]]:
        lr = jnp.asarray(lr, _float_dtype(cfg))
        states, curve = run_blocks(program.step, program.init(key), lr, jnp.int32(0), n_blocks,
                                   cfg.epochs, cfg.log_every, lambda loss: loss)
        params, metrics = program.finalize(states, cfg.epochs)
        return params, {**metrics, "curve": curve}

    return train


def seed_key(seed) -> Array:
    """A member's key, from its own integer seed alone."""
    return jax.random.PRNGKey(seed)


def curve_epochs(cfg: RunConfig) -> np.ndarray:
    """Epochs at which the curve is sampled: every ``log_every`` from 0, below ``epochs``."""
    return np.arange(0, cfg.epochs, cfg.log_every)
