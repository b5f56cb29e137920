"""A Pallas kernel that trains blocks of epochs with each member's state in registers.

Layout: every scalar parameter is one row of ``packed``, shape ``(P, M)``, members along
the last (lane) axis. Rows go layer by layer: ``W_l`` row-major ``(fan_in, fan_out)``, then
``b_l``, then ``S`` (shortcuts) after the last layer. The optimiser state is ``(Q·P, M)``:
none for sgd (Q = 0), the trace ``v`` for momentum and nesterov (Q = 1), ``[m; s]`` for adam
(Q = 2). Each program owns ``block`` members (a power of two): it loads their state once,
runs ``n_blocks · log_every`` epochs in ``lax.fori_loop``, and writes the state and the
sampled losses back. Inside, every value is a ``(block,)`` vector, one lane per member; the
tiny matmuls are unrolled in Python over rows and units, so on a GPU (Triton backend, one
member per thread) the whole training state stays in registers. Data of at most
``UNROLL_ROWS`` rows are baked in as constants; larger data are read row by row from a ref.

Per member and absolute epoch ``t < epochs`` (jaxbp.engine's full-batch step)::

    E, g = backprop.backward(θ)     E: data loss (mean or sum over rows); g: ∂(E + penalties)/∂θ
    sgd:       θ' = θ − α g
    momentum:  v' = g + μ v,                           θ' = θ − α v'
    nesterov:  v' = g + μ v,                           θ' = θ − α (g + μ v')
    adam:      m' = (1−β1) g + β1 m,  s' = (1−β2) g² + β2 s,  k = t + 1
               θ' = θ − α (m' / (1−β1^k)) / (√(s' / (1−β2^k)) + ε)
    epochs_to_target = t  if E <= target_loss and epochs_to_target < 0
    diverged |= ¬(finite(E) ∧ finite(θ'));  a diverged member keeps θ and its state
    curve[b] = E at epoch first_epoch + b·log_every  (NaN when that epoch >= epochs)

Adam's step count is the absolute epoch: exact for state that started at epoch 0 (a frozen
member's count stops, but so do its updates). Every operation is the engine's, in its order,
so float32 results agree to rounding; a product with an input of 0 or 1 is folded away,
which is exact because parameters are finite (non-finite updates are never kept).
"""

from __future__ import annotations

import collections
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from jaxbp import backprop, model

BLOCK = 128  # members per program: one per thread with 4 warps
UNROLL_ROWS = 16  # data up to this many rows are baked in; more are looped over
MAX_ROWS = 1024
MAX_WIDTH = 16  # any layer, inputs and outputs included
MAX_DEPTH = 2  # hidden layers
MAX_PARAMS = 256  # beyond ~60 a member's state no longer fits in registers (still correct)
OPT_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}  # state vectors per param
ADAM = (0.9, 0.999, 1e-8)  # (β1, β2, ε): optax.adam's defaults


def n_params(spec: model.Spec) -> int:
    """``P``, the scalar parameters of ``spec``: weights, biases and shortcuts."""
    shortcuts = spec.sizes[0] * spec.sizes[-1] if spec.shortcuts else 0
    return sum((a + 1) * b for a, b in zip(spec.sizes[:-1], spec.sizes[1:])) + shortcuts


def supports(spec: model.Spec, n_rows: int, n_features: int, optimizer: str, batch_size,
             *, criterion: str = "loss", patience=None) -> tuple[bool, str]:
    """Whether :func:`train_blocks` can train this job, and the reason when it cannot."""
    checks = [
        (batch_size is None, f"batch_size={batch_size}: the kernel trains full batch only"),
        (optimizer in OPT_SLOTS, f"optimizer {optimizer!r}: the kernel has {sorted(OPT_SLOTS)}"),
        (spec.num_layers - 1 <= MAX_DEPTH, f"depth {spec.num_layers - 1} > {MAX_DEPTH} hidden layers"),
        (max(spec.sizes) <= MAX_WIDTH, f"sizes {spec.sizes}: every width must be <= {MAX_WIDTH}"),
        (n_features == spec.sizes[0], f"{n_features} features for {spec.sizes[0]} inputs"),
        (n_params(spec) <= MAX_PARAMS, f"{n_params(spec)} parameters > {MAX_PARAMS}"),
        (1 <= n_rows <= MAX_ROWS, f"{n_rows} rows: the kernel takes 1 to {MAX_ROWS}"),
        (criterion == "loss", f"criterion {criterion!r}: the kernel tests loss <= target_loss"),
        (patience is None, "early stopping (patience) needs a test split the kernel never sees"),
    ]
    return next(((False, why) for ok, why in checks if not ok), (True, ""))


def _layout(spec: model.Spec) -> list[dict[str, np.ndarray]]:
    """Each parameter's row in ``packed``, shaped like the params tree."""
    shapes = [{"W": (a, b), "b": (b,)} for a, b in zip(spec.sizes[:-1], spec.sizes[1:])]
    if spec.shortcuts:
        shapes[-1]["S"] = (spec.sizes[0], spec.sizes[-1])
    rows = iter(range(n_params(spec)))
    return [{k: np.array([next(rows) for _ in range(math.prod(s))], int).reshape(s) for k, s in layer.items()}
            for layer in shapes]


def pack(params: model.Params) -> jax.Array:
    """``(P, M)`` from a params tree whose leaves have a leading member axis ``M``."""
    leaves = [layer[k] for layer in params for k in ("W", "b", "S") if k in layer]
    return jnp.concatenate([leaf.reshape(leaf.shape[0], -1) for leaf in leaves], axis=1).T


def unpack(spec: model.Spec, packed: jax.Array) -> model.Params:
    """The params tree (leading member axis) of ``packed``, ``(P, M)``; inverse of :func:`pack`."""
    return [{k: packed[rows.ravel()].T.reshape(packed.shape[1], *rows.shape) for k, rows in layer.items()}
            for layer in _layout(spec)]


# Forward and backward of one data row. `None` stands for an exact zero; inputs `x` and
# targets `y` are Python floats (baked) or traced scalars, everything else (block,) vectors.
def _times(c, v):
    """``c · v``, folded when ``c`` is a constant 0 or 1 (``v`` finite)."""
    return None if _is(c, 0.0) else v if _is(c, 1.0) else c * v


def _plus(a, b):
    return b if a is None else a if b is None else a + b


def _dot(pairs):
    """``Σ c·v`` left to right, the order of :func:`jaxbp.model.matmul`."""
    return functools.reduce(_plus, (_times(c, v) for c, v in pairs), None)


def _is(c, value: float) -> bool:
    return isinstance(c, float) and c == value


def _minus(v, c):
    return v if _is(c, 0.0) else v - c


# Everything baked into one kernel, hashable (the cache key of `_run`); x and y are rows of
# Python floats, already rounded to the dtype.
_Static = collections.namedtuple("_Static", "spec x y optimizer adam l1 l2 n_blocks log_every epochs "
                                            "target_loss block interpret")


def _per_row(st: _Static, v):
    """``v / n``, the mean's 1/n (an exact multiply when n is a power of two)."""
    n = len(st.x) if st.spec.reduction == "mean" else 1
    return v if n == 1 else v * (1.0 / n) if n & (n - 1) == 0 else v / n


def _row(st: _Static, layout, theta, x, y):
    """``(loss term, gradient terms)`` of one data row (backprop.py's equations)."""
    spec, act = st.spec, model.ACTIVATIONS[st.spec.activation]
    hs, zs = [list(x)], []
    for l, rows in enumerate(layout):
        W, b = rows["W"], rows["b"]
        zs.append([_plus(_dot((h, theta[W[a, j]]) for a, h in enumerate(hs[-1])), theta[b[j]])
                   for j in range(len(b))])  # z_l = h_{l-1} W_l + b_l
        if l < len(layout) - 1:
            hs.append([act(z) for z in zs[-1]])
    if spec.shortcuts:  # z_L += x S
        S = layout[-1]["S"]
        zs[-1] = [_plus(z, _dot((c, theta[S[a, k]]) for a, c in enumerate(x)))
                  for k, z in enumerate(zs[-1])]
    loss, delta = _output(st, zs[-1], y)
    grads = {}
    if spec.shortcuts:  # ∂E/∂S = xᵀ δ_L
        grads.update({S[a, k]: _times(c, d) for a, c in enumerate(x) for k, d in enumerate(delta)})
    for l in reversed(range(len(layout))):
        W, b = layout[l]["W"], layout[l]["b"]
        for j, d in enumerate(delta):  # ∂E/∂W_l = h_{l-1}ᵀ δ_l,  ∂E/∂b_l = Σ δ_l
            grads.update({W[a, j]: _times(h, d) for a, h in enumerate(hs[l])})
            grads[b[j]] = d
        if l > 0:  # δ_{l-1} = (δ_l W_lᵀ) ⊙ f′(z_{l-1}); f′ = 1 for identity
            sums = [_dot((d, theta[W[a, j]]) for j, d in enumerate(delta)) for a in range(len(hs[l]))]
            f_prime = backprop.DERIVATIVES[spec.activation]
            delta = sums if spec.activation == "identity" else [
                s * f_prime(z, h) for s, z, h in zip(sums, zs[l - 1], hs[l])]
    return loss, grads


def _output(st: _Static, z, y):
    """The row's loss term (summed over outputs) and ``δ_L`` (backprop.output_delta)."""
    spec = st.spec
    if spec.output == "softmax":
        top = functools.reduce(jnp.maximum, z)
        e = [jnp.exp(zk - top) for zk in z]
        total = functools.reduce(jnp.add, e)
        y_hat = [ek / total for ek in e]
    else:
        y_hat = [jax.nn.sigmoid(zk) for zk in z] if spec.output == "sigmoid" else list(z)
    if spec.loss == "ce":  # −Σ y log_softmax(z);  δ = (ŷ Σy − y)/n
        log_total = jnp.log(total)
        loss = functools.reduce(jnp.add, [c * ((zk - top) - log_total) for c, zk in zip(y, z)])
        y_sum = functools.reduce(_plus, y)  # one-hot rows: exactly 1, folded away
        return loss, [_per_row(st, _minus(yh if _is(y_sum, 1.0) else yh * y_sum, c))
                      for yh, c in zip(y_hat, y)]
    if spec.loss == "bce":  # Σ softplus(z) − y z;  δ = (ŷ − y)/n
        loss = functools.reduce(jnp.add, [jnp.logaddexp(0.0, zk) - c * zk for c, zk in zip(y, z)])
        return loss, [_per_row(st, _minus(yh, c)) for yh, c in zip(y_hat, y)]
    r = [_minus(yh, c) for yh, c in zip(y_hat, y)]  # mse: Σ r², r = ŷ − y
    loss = functools.reduce(jnp.add, [rk * rk for rk in r])
    if spec.output == "identity":
        return loss, [_per_row(st, rk) for rk in r]
    if spec.output == "sigmoid":
        return loss, [_per_row(st, rk * yh * (1.0 - yh)) for rk, yh in zip(r, y_hat)]
    dot = functools.reduce(jnp.add, [rk * yh for rk, yh in zip(r, y_hat)])
    return loss, [_per_row(st, yh * (rk - dot)) for rk, yh in zip(r, y_hat)]


def _loss_and_grads(st: _Static, layout, theta, data_refs):
    """``(E, ∂E/∂θ)`` over the full batch: row terms summed in row order, then penalties."""
    P, zeros = len(theta), jnp.zeros_like(theta[0])

    def add_row(carry, x, y):
        loss, grads = _row(st, layout, theta, x, y)
        return _plus(carry[0], loss), [_plus(g, grads.get(p)) for p, g in enumerate(carry[1])]

    if data_refs:  # rows in a loop, each read from the refs
        x_ref, y_ref = data_refs

        def body(i, carry):
            return add_row(carry, [x_ref[i, a] for a in range(x_ref.shape[1])],
                           [y_ref[i, k] for k in range(y_ref.shape[1])])

        total, grads = lax.fori_loop(0, x_ref.shape[0], body, (zeros, [zeros] * P))
    else:
        total, grads = functools.reduce(lambda c, row: add_row(c, *row), zip(st.x, st.y), (None, [None] * P))
    grads = [zeros if g is None else g for g in grads]
    loss = {"mse": lambda: 0.5 * total, "bce": lambda: total, "ce": lambda: -total}[st.spec.loss]()
    for rows in layout:  # ∂E/∂W += l2 W + l1 sign(W); biases are not penalised
        for p in (p for k in ("W", "S") if k in rows for p in rows[k].ravel()):
            grads[p] = grads[p] + st.l2 * theta[p] if st.l2 else grads[p]
            grads[p] = grads[p] + st.l1 * jnp.sign(theta[p]) if st.l1 else grads[p]
    return _per_row(st, loss), grads


def _update(st: _Static, theta, opt, grads, lr, mu, epoch):
    """``(θ', optimiser state')``: optax's sgd / trace / adam, in optax's order of operations."""
    step = -lr  # optax.scale_by_learning_rate: u ← (−α)·u, then θ' = θ + u
    if st.optimizer == "sgd":
        return [t + step * g for t, g in zip(theta, grads)], []
    if st.optimizer in ("momentum", "nesterov"):
        trace = [g + mu * v for g, v in zip(grads, opt)]
        direction = trace if st.optimizer == "momentum" else [g + mu * v for g, v in zip(grads, trace)]
        return [t + step * d for t, d in zip(theta, direction)], trace
    b1, b2, eps = map(lr.dtype.type, st.adam)  # 1 − β1 in the params' precision, as optax's
    P, count = len(theta), epoch + 1
    m = [(1 - b1) * g + b1 * v for g, v in zip(grads, opt[:P])]
    s = [(1 - b2) * (g * g) + b2 * v for g, v in zip(grads, opt[P:])]
    correct1, correct2 = 1 - lax.pow(b1, count), 1 - lax.pow(b2, count)
    direction = [(mk / correct1) / (jnp.sqrt(sk / correct2) + eps) for mk, sk in zip(m, s)]
    return [t + step * d for t, d in zip(theta, direction)], m + s


def _epoch(st: _Static, layout, state, lr, mu, epoch, data_refs):
    """One epoch of every member in the block; returns the new state and ``E(θ)``."""
    theta, opt, epochs_to_target, diverged = state
    loss, grads = _loss_and_grads(st, layout, theta, data_refs)
    new_theta, new_opt = _update(st, theta, opt, grads, lr, mu, epoch)
    reached = (loss <= st.target_loss) & (epochs_to_target < 0)
    epochs_to_target = jnp.where(reached, epoch, epochs_to_target)
    # |v| < inf is isfinite(v) (NaN compares false) in one compare; Triton spells isfinite as 4
    finite = functools.reduce(jnp.logical_and, [jnp.abs(v) < jnp.inf for v in [loss, *new_theta]])
    diverged = diverged | ~finite
    keep = functools.partial(jnp.where, diverged)
    return ([keep(a, b) for a, b in zip(theta, new_theta)], [keep(a, b) for a, b in zip(opt, new_opt)],
            epochs_to_target, diverged), loss


def _kernel(st: _Static, names: list[str], slots: int):
    """The kernel over refs named ``names`` (inputs, then theta/opt/ett/div/curve outputs)."""
    layout = _layout(st.spec)

    def kernel(*refs):
        ref = dict(zip(names, refs))
        P = ref["theta"].shape[0]
        lr = ref["lr"][...]
        mu = ref["mu"][...] if "mu" in ref else None
        data_refs = (ref["x"], ref["y"]) if "x" in ref else ()
        state = ([ref["theta"][p] for p in range(P)], [ref["opt"][q] for q in range(slots * P)],
                 ref["ett"][...], ref["div"][...] != 0)

        def block(b, state):
            first = ref["first"][0] + b * st.log_every
            active = jnp.clip(st.epochs - first, 0, st.log_every)  # epochs >= `epochs` are skipped

            def epoch(e, carry):
                state, loss = _epoch(st, layout, carry[0], lr, mu, first + e, data_refs)
                return state, jnp.where(e == 0, loss, carry[1])  # the curve samples epoch `first`

            state, sample = lax.fori_loop(0, active, epoch, (state, jnp.full_like(lr, jnp.nan)))
            ref["curve_out"][b] = sample
            return state

        theta, opt, ett, div = lax.fori_loop(0, st.n_blocks, block, state)
        for name, rows in (("theta_out", theta), ("opt_out", opt)):
            for p, row in enumerate(rows):
                ref[name][p] = row
        ref["ett_out"][...] = ett
        ref["div_out"][...] = div.astype(jnp.int32)

    return kernel


@functools.partial(jax.jit, static_argnums=0)
def _run(st: _Static, first_epoch, lr, mu, theta, opt, ett, div):
    """Pads members to a multiple of ``st.block``, runs the kernel, drops the padding."""
    members = theta.shape[1]
    padded = -(-members // st.block) * st.block
    lanes = lambda a: pl.BlockSpec((*a.shape[:-1], st.block), lambda i: (0,) * (a.ndim - 1) + (i,))  # noqa: E731
    whole = lambda a: pl.BlockSpec(a.shape, lambda i: (0,) * a.ndim)  # noqa: E731
    per_member = {"lr": lr, "mu": mu, "theta": theta, "opt": opt, "ett": ett, "div": div.astype(jnp.int32)}
    ins = {"first": jnp.reshape(first_epoch, (1,)), **{
        k: jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, padded - members)]) for k, a in per_member.items()
        if a is not None}}
    if len(st.x) > UNROLL_ROWS:  # too many rows to bake in: the kernel reads them from refs
        ins.update(x=jnp.asarray(st.x, theta.dtype), y=jnp.asarray(st.y, theta.dtype))
    outs = {f"{k}_out": ins[k] for k in ("theta", "opt", "ett", "div") if k in ins}
    outs["curve_out"] = jnp.zeros((st.n_blocks, padded), theta.dtype)
    call = pl.pallas_call(
        _kernel(st, [*ins, *outs], OPT_SLOTS[st.optimizer]),
        out_shape=[jax.ShapeDtypeStruct(a.shape, a.dtype) for a in outs.values()],
        grid=(padded // st.block,), in_specs=[lanes(a) if k in per_member else whole(a) for k, a in ins.items()],
        out_specs=[lanes(a) for a in outs.values()], interpret=st.interpret,
        compiler_params=pltriton.CompilerParams(num_warps=max(1, st.block // 32)))
    results = dict(zip(outs, (a[..., :members] for a in call(*ins.values()))))
    return (results["theta_out"], results.get("opt_out"), results["ett_out"],
            results["div_out"] != 0, results["curve_out"])


def train_blocks(spec: model.Spec, x, y, packed_params, opt_state, lr, momentum, epochs_to_target,
                 diverged, *, first_epoch, n_blocks: int, log_every: int, epochs: int,
                 target_loss: float, optimizer: str = "sgd", adam: tuple = ADAM, l1: float = 0.0,
                 l2: float = 0.0, block: int = BLOCK, interpret: bool = False):
    """Trains ``n_blocks · log_every`` epochs from ``first_epoch``, like engine.run_blocks.

    Args:
        spec: the network; :func:`supports` must accept it.
        x, y: concrete training data ``(n, sizes[0])``, ``(n, sizes[-1])``, baked into the kernel.
        packed_params: ``(P, M)`` from :func:`pack`.
        opt_state: ``(Q·P, M)`` (see the module docstring), or None for a fresh (zero) state.
        lr, momentum: ``(M,)`` per member (``momentum`` is read by momentum and nesterov only).
        epochs_to_target: ``(M,)`` int32, −1 until reached. diverged: ``(M,)`` bool.
        first_epoch: the absolute epoch of the first block (may be traced).
        n_blocks, log_every, epochs, target_loss: as in engine.run_blocks (static here).
        optimizer: one of ``OPT_SLOTS``; adam: ``(β1, β2, ε)``; l1, l2: weight penalties.
        block: members per program, a power of two. interpret: run on the CPU (tests).

    Returns:
        ``(packed_params, opt_state or None, epochs_to_target, diverged, curve (n_blocks, M))``.
    """
    dtype = packed_params.dtype
    x, y = np.asarray(x, dtype), np.asarray(y, dtype)
    ok, why = supports(spec, x.shape[0], x.shape[1], optimizer, None)
    if not ok or block & (block - 1):
        raise ValueError(f"the Pallas kernel cannot train this: {why or f'block={block} is no power of two'}")
    members, slots = packed_params.shape[1], OPT_SLOTS[optimizer]
    if opt_state is None and slots:
        opt_state = jnp.zeros((slots * packed_params.shape[0], members), dtype)
    st = _Static(spec, tuple(map(tuple, x.tolist())), tuple(map(tuple, y.tolist())), optimizer,
                 tuple(adam), float(l1), float(l2), n_blocks, log_every, epochs, float(target_loss),
                 block, interpret)
    mu = jnp.asarray(momentum, dtype) if optimizer in ("momentum", "nesterov") else None
    return _run(st, jnp.asarray(first_epoch, jnp.int32), jnp.asarray(lr, dtype), mu, packed_params,
                opt_state if slots else None, jnp.asarray(epochs_to_target, jnp.int32),
                jnp.asarray(diverged, bool))
