"""The training program: one network ("member") per seed, all epochs inside ``lax.scan``.

:func:`make_program` does the Python-side work once: data, spec, optimiser. It returns pure
per-member functions::

    init(key, hyper)          -> MemberState
    step(state, epoch)        -> (MemberState, loss)     one epoch; loss is E(params_epoch)
    finalize(state, epochs)   -> (params, metrics)

``hyper`` holds the member's traced hyperparameters (:func:`member_hyper`): the learning
rate and the optimiser's numbers live in its optax state (``inject_hyperparams``), the
penalties and the target in ``MemberState``. Members that differ only in them share one
program. ``loss`` at epoch ``t`` is the data loss (no penalty) of the parameters after ``t``
updates; it comes free from the backward pass in full-batch training. :func:`make_train`
composes the three into the pure ``train(key, lr) -> (params, metrics)``;
:mod:`jaxbp.runner` vmaps them over members in chunks of epochs.

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
from jaxbp import optim as optimizers
from jaxbp.config import ConfigError, RunConfig
from jaxbp.data import Dataset
from jaxbp.plan import check_fits, load_dataset

Array = jax.Array
Hyper = dict  # name -> scalar (one member) or (members,) array

# Traced values besides the optimiser's own (optim.OptimOption.hyperparams). `hidden` is a
# member's live width inside a program padded to a wider one (make_program(masked=True)).
MEMBER_KEYS = ("learning_rate", "l1", "l2", "target_loss", "margin", "target_rms", "target_tss", "init_scale",
               "hidden", "error_dead_zone", "sigmoid_prime_offset")


def member_hyper(cfg: RunConfig) -> dict[str, float]:
    """A job's traced hyperparameters, by the names the program uses."""
    return {"learning_rate": cfg.lr, "l1": cfg.l1, "l2": cfg.l2, "target_loss": cfg.target_loss,
            "margin": cfg.margin, "target_rms": cfg.target_rms, "target_tss": cfg.target_tss,
            "init_scale": cfg.init.scale, "hidden": cfg.hidden, "error_dead_zone": cfg.error_dead_zone,
            "sigmoid_prime_offset": cfg.sigmoid_prime_offset,
            **cfg.optim.hyperparams()}


class MemberState(NamedTuple):
    """Everything one member carries from epoch to epoch."""

    params: model.Params
    opt_state: Any  # optax InjectHyperparamsState: holds the lr and optimiser numbers
    shuffle_key: Array  # minibatch order: fold_in(shuffle_key, epoch)
    penalty: tuple  # (l1, l2)
    conventions: tuple  # (error_dead_zone, sigmoid_prime_offset): Fahlman's, in the backward
    target_loss: Array  # criterion=loss
    margin: Array  # criterion=margin
    target_rms: Array  # criterion=rms
    target_tss: Array  # criterion=tss
    masks: tuple  # per hidden layer, 0/1 for live units; () unless the program is padded
    epochs_to_target: Array  # int32; -1 until the train loss first reaches target_loss
    diverged: Array  # bool
    stopped: Array  # bool: early stopping has frozen this member
    stopped_epoch: Array  # int32: the epoch early stopping froze it at, -1 if never
    best_params: Any  # params at the best test loss (early stopping), else ()
    best_test_loss: Array
    bad_epochs: Array  # int32: epochs since the test loss last improved
    attempts: Array  # int32: 1 + restarts so far (restart_after)
    attempt_start: Array  # int32: the epoch the current attempt began at
    redraw: tuple  # (init key, init scale, live width) to draw a restart's weights; () without restarts


class Program(NamedTuple):
    """Pure per-member functions and what they were built from."""

    spec: model.Spec
    dataset: Dataset
    init: Any
    step: Any
    finalize: Any


def _tree_where(cond: Array, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), on_true, on_false)


def _all_finite(tree) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def accuracy(spec: model.Spec, params, x: Array, y: Array, masks=None) -> Array:
    """Share of rows classified right: threshold 0.5 for one output, argmax for several."""
    y_hat = model.forward(spec, params, x, masks)
    if spec.sizes[-1] == 1:
        hits = (y_hat[:, 0] > 0.5) == (y[:, 0] > 0.5)
    else:
        hits = jnp.argmax(y_hat, axis=-1) == jnp.argmax(y, axis=-1)
    return jnp.mean(hits.astype(y.dtype))


def _float_dtype(cfg: RunConfig):
    if cfg.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError("dtype", cfg.dtype,
                          "float64 needs x64: build and run the program inside `with jax.enable_x64(True)`"
                          " (jaxbp.runner does)")
    return jnp.dtype(cfg.dtype)


class Setup(NamedTuple):
    """What every per-member function needs, resolved once by :func:`make_program`."""

    cfg: RunConfig
    spec: model.Spec
    dtype: Any
    tx: optax.GradientTransformation  # built once; per-member numbers live in its state
    x: Array  # train inputs (n, sizes[0]) and targets (n, sizes[-1])
    y: Array
    x_test: Array  # (0, sizes[0]) when there is no test split
    y_test: Array
    has_test: bool
    classes: bool
    masked: bool  # members are narrower networks padded to spec's widths


def _masks(state: MemberState):
    return state.masks or None


def _value_and_grad(setup: Setup, params, xb, yb, penalty, masks=None, conventions=(0.0, 0.0)):
    """``(data loss, ∂E/∂params)`` of ``E = data loss + penalty``, by hand (``grad=manual``)
    or by ``jax.grad``; ``conventions`` (Fahlman's) bend the hand-derived one."""
    spec, (l1, l2), cfg = setup.spec, penalty, setup.cfg
    if cfg.grad == "manual":
        # Off is decided by the config, not the value: the state's zeros are traced after
        # init, and the backward must then be the plain one, operation for operation.
        dead_zone = conventions[0] if cfg.error_dead_zone > 0 else 0.0
        prime_offset = conventions[1] if cfg.sigmoid_prime_offset > 0 else 0.0
        data_loss, _, grads = backprop.backward_terms(spec, params, xb, yb, l1=l1, l2=l2, masks=masks,
                                                      dead_zone=dead_zone, prime_offset=prime_offset)
        return data_loss, grads

    def objective(p):
        data_loss = model.data_loss(spec, model.logits(spec, p, xb, masks), yb)
        return data_loss + model.penalty(p, l1, l2), data_loss

    (_, data_loss), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return data_loss, grads


def _data_loss(setup: Setup, params, xs, ys, masks=None) -> Array:
    return model.data_loss(setup.spec, model.logits(setup.spec, params, xs, masks), ys)


def _penalty(setup: Setup, hyper: Hyper) -> tuple:
    """Traced (l1, l2), or static zeros when the job has no penalty (it then costs nothing)."""
    cfg = setup.cfg
    return tuple(jnp.asarray(hyper[k], setup.dtype) if on else 0.0
                 for k, on in (("l1", cfg.l1 > 0), ("l2", cfg.l2 > 0)))


def _conventions(setup: Setup, hyper: Hyper) -> tuple:
    """Traced (error_dead_zone, sigmoid_prime_offset), each a static zero when off."""
    cfg = setup.cfg
    return tuple(jnp.asarray(hyper[k], setup.dtype) if getattr(cfg, k) > 0 else 0.0
                 for k in ("error_dead_zone", "sigmoid_prime_offset"))


def _init(setup: Setup, key: Array, hyper: Hyper, params: model.Params | None = None) -> MemberState:
    """A member's starting state from its key and hyperparameters (``params``, if given,
    replace the drawn initial weights)."""
    cfg = setup.cfg
    init_key, shuffle_key = jax.random.split(key)
    live = [hyper["hidden"]] * cfg.depth if setup.masked else None
    scale = jnp.asarray(hyper["init_scale"], setup.dtype)
    if params is None:
        params = _draw(setup, init_key, scale, hyper["hidden"])
    params = jax.tree.map(lambda leaf: jnp.asarray(leaf, setup.dtype), params)
    opt_state = optimizers.init_state(cfg.optim, params, {
        k: jnp.asarray(v, setup.dtype) for k, v in hyper.items() if k not in MEMBER_KEYS[1:]})
    int_minus_one = jnp.array(-1, jnp.int32)
    return MemberState(
        params=params, opt_state=opt_state, shuffle_key=shuffle_key,
        penalty=_penalty(setup, hyper), conventions=_conventions(setup, hyper),
        target_loss=jnp.asarray(hyper["target_loss"], setup.dtype),
        margin=jnp.asarray(hyper["margin"], setup.dtype),
        target_rms=jnp.asarray(hyper["target_rms"], setup.dtype),
        target_tss=jnp.asarray(hyper["target_tss"], setup.dtype),
        masks=tuple(model.unit_masks(setup.spec, live, setup.dtype)) if live else (),
        epochs_to_target=int_minus_one, diverged=jnp.array(False), stopped=jnp.array(False),
        stopped_epoch=int_minus_one, best_params=params if cfg.patience is not None else (),
        best_test_loss=jnp.array(jnp.inf, setup.dtype), bad_epochs=jnp.array(0, jnp.int32),
        attempts=jnp.array(1, jnp.int32), attempt_start=jnp.array(0, jnp.int32),
        redraw=(init_key, scale, jnp.asarray(hyper["hidden"])) if cfg.restart_after is not None else (),
    )


def _draw(setup: Setup, key: Array, scale, hidden) -> model.Params:
    """Fresh weights from ``key``, for a member of live width ``hidden`` when padded."""
    cfg = setup.cfg
    live = [hidden] * cfg.depth if setup.masked else None
    return model.init(setup.spec, key, cfg.init.scheme, scale, cfg.init.bias, setup.dtype, live)


def _restart(setup: Setup, state: MemberState, epoch) -> MemberState:
    """Starts a fresh attempt for a member whose current one has run ``restart_after``
    epochs without meeting the criterion: new weights from ``fold_in(init key, attempt)``
    (attempt 1 used the init key itself), so they depend on the seed and the attempt
    number alone, and a fresh optimiser state with the member's own hyperparameters.
    Diverged or early-stopped members are frozen, not restarted."""
    due = ((state.epochs_to_target < 0) & ~state.diverged & ~state.stopped
           & (epoch - state.attempt_start >= setup.cfg.restart_after))
    init_key, scale, hidden = state.redraw
    fresh = _draw(setup, jax.random.fold_in(init_key, state.attempts), scale, hidden)
    fresh_opt = optimizers.init_state(setup.cfg.optim, fresh, state.opt_state.hyperparams)
    return state._replace(
        params=_tree_where(due, fresh, state.params), opt_state=_tree_where(due, fresh_opt, state.opt_state),
        attempts=state.attempts + due.astype(jnp.int32),
        attempt_start=jnp.where(due, jnp.asarray(epoch, jnp.int32), state.attempt_start))


def _descend(setup: Setup, state: MemberState, epoch):
    """One epoch of updates; returns new params, opt state and E(params) on train (no penalty)."""
    cfg, x, y, tx = setup.cfg, setup.x, setup.y, setup.tx
    params, opt_state = state.params, state.opt_state
    if cfg.batch_size is None:
        loss, grads = _value_and_grad(setup, params, x, y, state.penalty, _masks(state), state.conventions)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    # Minibatches: a fresh permutation per epoch (or, with shuffle=false, the data's own row
    # order; config.check_fits then asks batch_size to divide n); the n % batch_size rows
    # left over wait for a later epoch, so every step sees a full, static-shaped batch.
    n_train = x.shape[0]
    steps = n_train // cfg.batch_size
    if cfg.shuffle:
        order = jax.random.permutation(jax.random.fold_in(state.shuffle_key, epoch), n_train)
    else:
        order = jnp.arange(n_train)
    batches = order[: steps * cfg.batch_size].reshape(steps, cfg.batch_size)

    def minibatch(carry, rows):
        p, s = carry
        _, grads = _value_and_grad(setup, p, x[rows], y[rows], state.penalty, _masks(state), state.conventions)
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), None

    (new_params, opt_state), _ = jax.lax.scan(minibatch, (params, opt_state), batches)
    return new_params, opt_state, _data_loss(setup, params, x, y, _masks(state))


def criterion_met(setup: Setup, state: MemberState, params, loss) -> Array:
    """Whether ``params`` (with train loss ``loss``) meet the job's success criterion:

    - ``loss``: ``loss <= target_loss``;
    - ``margin``: every output of every training row within ``margin`` of its target
      (Rumelhart, Hinton & Williams count a pattern learned so, with margin 0.5);
    - ``fahlman``: the 40-20-40 rule on the 0..1 output range: a target of 1 needs an output
      above 0.6, a target of 0 one below 0.4, for every output of every row;
    - ``tss``: ``Σ_i Σ_k (ŷ_ik − y_ik)² <= target_tss`` over the n training rows and k
      outputs (the PDP software's total sum of squares);
    - ``rms``: ``√(tss / (n·k)) <= target_rms``, tested as ``tss <= n·k·target_rms²``.
    """
    criterion = setup.cfg.criterion
    if criterion == "loss":
        return loss <= state.target_loss
    y_hat = model.forward(setup.spec, params, setup.x, _masks(state))
    if criterion == "margin":
        return jnp.all(jnp.abs(y_hat - setup.y) < state.margin)
    if criterion in ("rms", "tss"):
        tss = model.total((y_hat - setup.y) ** 2)
        if criterion == "tss":
            return tss <= state.target_tss
        return tss <= setup.y.size * state.target_rms**2
    return jnp.all(jnp.where(setup.y > 0.5, y_hat > 0.6, y_hat < 0.4))


def _early_stopping(setup: Setup, state: MemberState, epoch) -> MemberState:
    """Tracks the best test loss and its params; stops after ``patience`` bad epochs."""
    test_loss = _data_loss(setup, state.params, setup.x_test, setup.y_test, _masks(state))
    improved = (test_loss < state.best_test_loss) & ~state.stopped & ~state.diverged
    bad_epochs = jnp.where(improved, 0, state.bad_epochs + 1)
    stops = ~state.stopped & ~state.diverged & (bad_epochs >= setup.cfg.patience)
    return state._replace(
        best_params=_tree_where(improved, state.params, state.best_params),
        best_test_loss=jnp.where(improved, test_loss, state.best_test_loss),
        bad_epochs=bad_epochs,
        stopped=state.stopped | stops,
        stopped_epoch=jnp.where(stops, epoch.astype(jnp.int32), state.stopped_epoch),
    )


def _step(setup: Setup, state: MemberState, epoch: Array):
    every = setup.cfg.restart_after
    if every is not None:
        # Attempts start at 0, N, 2N, ... (a restart is due exactly N epochs into one), so
        # drawing fresh weights is skipped in the other epochs: `epoch` is not batched over
        # members, so under vmap this stays a branch and costs nothing then.
        state = jax.lax.cond((epoch % every == 0) & (epoch > 0), lambda s: _restart(setup, s, epoch),
                             lambda s: s, state)
    new_params, new_opt, loss = _descend(setup, state, epoch)
    reached = criterion_met(setup, state, state.params, loss) & (state.epochs_to_target < 0)
    state = state._replace(
        epochs_to_target=jnp.where(reached, epoch.astype(jnp.int32), state.epochs_to_target))
    if setup.cfg.patience is not None:
        state = _early_stopping(setup, state, epoch)
    diverged = state.diverged | ~(jnp.isfinite(loss) & _all_finite(new_params))
    frozen = diverged | state.stopped
    return state._replace(
        params=_tree_where(frozen, state.params, new_params),
        opt_state=_tree_where(frozen, state.opt_state, new_opt),
        diverged=diverged,
    ), loss


def _finalize(setup: Setup, state: MemberState, epochs):
    cfg, spec = setup.cfg, setup.spec
    params = state.params
    if cfg.patience is not None:
        params = _tree_where(state.stopped, state.best_params, params)
    masks = _masks(state)
    final_loss = _data_loss(setup, params, setup.x, setup.y, masks)
    nan = jnp.array(jnp.nan, setup.dtype)
    met = criterion_met(setup, state, params, final_loss)
    late = (state.epochs_to_target < 0) & met  # reached at the end
    metrics = {
        "final_loss": final_loss,
        "train_acc": accuracy(spec, params, setup.x, setup.y, masks) if setup.classes else nan,
        "test_loss": _data_loss(setup, params, setup.x_test, setup.y_test, masks) if setup.has_test else nan,
        "test_acc": accuracy(spec, params, setup.x_test, setup.y_test, masks)
        if setup.has_test and setup.classes else nan,
        "epochs_to_target": jnp.where(late, jnp.asarray(epochs, jnp.int32), state.epochs_to_target),
        "converged": met & ~state.diverged,
        "diverged": state.diverged,
        "stopped_epoch": state.stopped_epoch,
        "attempts": state.attempts,
    }
    return params, metrics


def make_program(cfg: RunConfig, dataset: Dataset | None = None, masked: bool = False) -> Program:
    """Builds the pure per-member functions for ``cfg`` (see the module docstring).

    With ``masked``, the network is ``cfg``'s, and each member is a narrower one padded to
    it: its ``hyper["hidden"]`` live units per hidden layer (see ``model.init(live=...)``).

    Raises:
        ConfigError: for settings that do not fit the data (``batch_size``, ``output``) or
            the precision JAX runs at (``dtype``).
    """
    dataset = dataset if dataset is not None else load_dataset(cfg)
    check_fits(cfg, dataset)
    dtype = _float_dtype(cfg)
    # Cast on the host (IEEE round-to-nearest, as XLA's convert): jnp.asarray(a, dtype)
    # compiles a small conversion program per array.
    x, y, x_test, y_test = (jax.device_put(np.asarray(a, dtype)) for a in (
        dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))
    setup = Setup(cfg, cfg.spec(x.shape[1], y.shape[1]), dtype, cfg.optim.transform(), x, y, x_test, y_test,
                  dataset.has_test, dataset.classes, masked and cfg.depth > 0)
    return Program(setup.spec, dataset, functools.partial(_init, setup),
                   functools.partial(_step, setup), functools.partial(_finalize, setup))


def run_blocks(step, states, first_block, n_blocks: int, epochs, log_every: int, pick):
    """Runs ``n_blocks`` blocks of ``log_every`` epochs from block ``first_block``.

    Epochs at or past ``epochs`` are skipped (a ``lax.cond`` on an unbatched counter), so a
    fixed block count can cover any number of epochs. Returns the new states and, per block,
    ``pick(loss)`` at the block's first epoch: the loss curve, sampled every ``log_every``.
    """

    def one_epoch(states, epoch):
        return jax.lax.cond(epoch < epochs, lambda s: step(s, epoch)[0], lambda s: s, states)

    loss_shape = jax.eval_shape(lambda s: step(s, jnp.int32(0))[1], states)
    skipped_loss = jnp.full(loss_shape.shape, jnp.nan, loss_shape.dtype)

    def block(states, b):
        first = b * log_every
        states, loss = jax.lax.cond(
            first < epochs, lambda s: step(s, first), lambda s: (s, skipped_loss), states)
        rest = first + 1 + jnp.arange(log_every - 1, dtype=first.dtype)
        states, _ = jax.lax.scan(lambda s, e: (one_epoch(s, e), None), states, rest)
        return states, pick(loss)

    blocks = first_block + jnp.arange(n_blocks, dtype=jnp.int32)
    return jax.lax.scan(block, states, blocks)


def make_train(cfg: RunConfig, dataset: Dataset | None = None):
    """Returns the pure ``train(key, lr) -> (params, metrics)`` for one member.

    ``metrics`` holds the per-seed figures of :func:`make_program`'s ``finalize`` plus
    ``curve``: the train loss at epochs ``0, log_every, 2·log_every, ...``. ``lr`` is traced,
    so ``jax.vmap(train)(keys, lrs)`` trains a grid of members in one program; the other
    hyperparameters are ``cfg``'s.
    """
    program = make_program(cfg, dataset)
    hyper = member_hyper(cfg)

    def train(key: Array, lr) -> tuple[model.Params, dict[str, Array]]:
        states = program.init(key, {**hyper, "learning_rate": lr})
        states, curve = run_blocks(program.step, states, jnp.int32(0), cfg.blocks, cfg.epochs,
                                   cfg.sample_every, lambda loss: loss)
        params, metrics = program.finalize(states, cfg.epochs)
        return params, {**metrics, "curve": curve}

    return train


def seed_key(seed) -> Array:
    """A member's key, from its own integer seed alone."""
    return jax.random.PRNGKey(seed)
