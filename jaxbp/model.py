"""A multilayer perceptron as pure functions over a list-of-dicts parameter pytree.

Notation (shared with :mod:`jaxbp.backprop`)::

    h_0 = x                                  x: (batch, sizes[0])
    z_l = h_{l-1} W_l + b_l                  W_l: (sizes[l-1], sizes[l]),  b_l: (sizes[l],)
    h_l = f(z_l)        for hidden layers    f = ``spec.activation``
    ŷ   = g(z_L)        for the last layer   g = ``spec.output``

Losses, averaged over the batch of ``n`` rows (Σ_k sums over output units)::

    mse = ½ · (1/n) Σ_i Σ_k (ŷ_ik − y_ik)²            the article's E = ½(y − y_true)²
    bce =     (1/n) Σ_i Σ_k softplus(z_ik) − y_ik z_ik  = BCE(sigmoid(z), y), never log(0)
    ce  =    −(1/n) Σ_i Σ_k y_ik · log_softmax(z_i)_k

Penalties act on weights only, never on biases: ``l2 · ½ Σ W² + l1 · Σ |W|``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import jax
import jax.numpy as jnp

# The names and the network description live without JAX in jaxbp.spec; re-exported here.
from jaxbp.spec import (  # noqa: F401 (re-exported: the names and Spec live without JAX)
    ACTIVATION_NAMES,
    BIAS_MODES,
    INIT_SCHEMES,
    LOSS_OUTPUTS,
    OUTPUT_NAMES,
    REDUCTIONS,
    Spec,
    check_name,
)

Array = jax.Array
PRNGKey = jax.Array
Params = list[dict[str, Array]]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda z: z,
}
OUTPUTS: dict[str, Callable[[Array], Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda z: z,
    "softmax": lambda z: jax.nn.softmax(z, axis=-1),
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES and tuple(OUTPUTS) == OUTPUT_NAMES

# Contractions at most this long are written as sums of broadcast products (see matmul).
SMALL_CONTRACTION = 8


def matmul(a: Array, b: Array) -> Array:
    """``a @ b`` for 2-D arrays, shape ``(n, k) @ (k, m) -> (n, m)``.

    When ``k`` is tiny (XOR-sized layers) the product is written as ``Σ_i a[:, i] b[i, :]``,
    a sum of broadcast products. Under ``vmap`` over thousands of networks these stay
    elementwise, so XLA fuses them with the activations into one loop over networks instead
    of issuing a batched dot of 2×3 matrices; experiments/PERF.md has the measurements.
    """
    k = a.shape[1]
    if k > SMALL_CONTRACTION:
        return a @ b
    products = [a[:, i : i + 1] * b[i : i + 1, :] for i in range(k)]  # each (n, m)
    return functools.reduce(operator.add, products)


def ordered_sum(a: Array, axis: int = 0) -> Array:
    """``Σ`` over ``axis``, left to right when the axis has at most ``SMALL_CONTRACTION``
    entries.

    XLA picks a reduction's order per program shape, so one network summed its four XOR rows
    in a different order inside a program of 2,000 networks than inside one of 1,000: an ulp
    apart after one epoch, 1e-4 after 5,000 at lr=1. Written out as adds the order is the
    code's, so a member's numbers do not depend on how many others share its program, and a
    fused sweep equals its jobs run alone bit for bit.
    """
    n = a.shape[axis]
    if n == 0 or n > SMALL_CONTRACTION:
        return jnp.sum(a, axis=axis)
    return functools.reduce(operator.add, [jax.lax.index_in_dim(a, i, axis, keepdims=False) for i in range(n)])


def total(a: Array) -> Array:
    """``Σ`` of an ``(n, k)`` array: over each row's ``k`` entries, then over the rows."""
    return ordered_sum(ordered_sum(a, -1), 0)


def _draw(key: PRNGKey, scheme: str, scale, shape, fan_in, fan_out, dtype):
    """Draws one array of ``shape`` from the named scheme (fans are the layer's; they and
    ``scale`` may be traced)."""
    shape = (shape,) if isinstance(shape, int) else shape
    if scheme == "normal":  # N(0, scale²)
        return scale * jax.random.normal(key, shape, dtype)
    if scheme == "uniform":  # U[-scale, scale)
        return (2 * jax.random.uniform(key, shape, dtype) - 1) * scale
    if scheme == "xavier":  # Glorot uniform: U[-a, a), a = sqrt(6 / (fan_in + fan_out))
        limit = scale * jnp.sqrt(6.0 / (fan_in + fan_out)).astype(dtype)
        return (2 * jax.random.uniform(key, shape, dtype) - 1) * limit
    # he: N(0, 2 / fan_in)
    return scale * jnp.sqrt(2.0 / fan_in).astype(dtype) * jax.random.normal(key, shape, dtype)


def _per_unit(key: PRNGKey, rows: int, cols: int, draw) -> Array:
    """``out[:, j] = draw(fold_in(key, j), rows)``: unit ``j``'s incoming weights come from
    its own key, so they do not depend on how many other units the layer has; and with
    JAX's partitionable threefry (the default since JAX 0.5) element ``i`` of a draw depends
    only on ``i``, so a column is the same for any padded ``rows`` (a test pins both)."""
    return jax.vmap(lambda j: draw(jax.random.fold_in(key, j), rows), out_axes=1)(jnp.arange(cols))


def init(
    spec: Spec,
    key: PRNGKey,
    scheme: str = "normal",
    scale: float = 1.0,
    bias: str = "zeros",
    dtype=None,
    live=None,
) -> Params:
    """Draws initial parameters.

    Args:
        spec: the network shape.
        key: a PRNG key. Layer ``l``'s weights into unit ``j``, ``W[:, j]``, are drawn with
            key ``fold_in(fold_in(fold_in(key, l), 0), j)`` and its bias ``b[j]`` as element
            ``j`` of a draw with ``fold_in(fold_in(key, l), 1)``: a network's values do not
            depend on how wide its layers are padded.
        scheme: ``normal`` N(0, scale²), ``uniform`` U[-scale, scale), ``xavier`` (Glorot
            uniform) or ``he`` (He normal). For ``xavier`` and ``he``, ``scale`` is a gain
            multiplying the standard bound or deviation.
        scale: the scale described above (may be traced).
        bias: ``"zeros"`` or ``"same"`` (biases drawn the way the weights are).
        dtype: floating dtype; defaults to JAX's default float (float64 under x64).
        live: optional live width of each hidden layer (ints or traced), for a network
            padded to ``spec``'s widths: the units past it get zero weights in and out,
            and the fans of ``xavier`` and ``he`` are the live widths.

    Returns:
        ``[{"W": (sizes[l-1], sizes[l]), "b": (sizes[l],)} for l = 1..L]``.
    """
    check_name("init scheme", scheme, INIT_SCHEMES)
    check_name("bias mode", bias, BIAS_MODES)
    dtype = jnp.zeros((), dtype).dtype
    widths = list(spec.sizes) if live is None else [spec.sizes[0], *live, spec.sizes[-1]]
    params = []
    for l, (rows, cols) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        fan_in, fan_out = widths[l], widths[l + 1]
        layer_key = jax.random.fold_in(key, l)
        wkey, bkey = jax.random.fold_in(layer_key, 0), jax.random.fold_in(layer_key, 1)

        def draw(k, n, fan_in=fan_in, fan_out=fan_out):
            return _draw(k, scheme, scale, n, fan_in, fan_out, dtype)

        W = _per_unit(wkey, rows, cols, draw)
        b = jnp.zeros((cols,), dtype) if bias == "zeros" else draw(bkey, cols)
        if live is not None:  # padded units: nothing in, nothing out
            in_live = (jnp.arange(rows) < fan_in).astype(dtype)
            out_live = (jnp.arange(cols) < fan_out).astype(dtype)
            W, b = W * in_live[:, None] * out_live[None, :], b * out_live
        params.append({"W": W, "b": b})
    if spec.shortcuts:  # input -> output weights, drawn like the last layer's W
        n_in, n_out = spec.sizes[0], spec.sizes[-1]
        skey = jax.random.fold_in(jax.random.fold_in(key, spec.num_layers - 1), 2)
        params[-1]["S"] = _per_unit(skey, n_in, n_out,
                                    lambda k, n: _draw(k, scheme, scale, n, n_in, n_out, dtype))
    return params


def unit_masks(spec: Spec, live, dtype) -> list[Array]:
    """One 0/1 mask per hidden layer: unit ``j`` is live when ``j < live[l]``."""
    return [(jnp.arange(width) < n).astype(dtype) for width, n in zip(spec.sizes[1:-1], live)]


def check_inputs(spec: Spec, params: Params, x: Array, y: Array | None = None) -> None:
    """Raises ``ValueError`` when params, x or y do not fit ``spec`` (static shapes only)."""
    if len(params) != spec.num_layers:
        raise ValueError(f"params has {len(params)} layers; spec {spec.sizes} needs {spec.num_layers}")
    for l, (layer, fan_in, fan_out) in enumerate(zip(params, spec.sizes[:-1], spec.sizes[1:])):
        if jnp.shape(layer["W"]) != (fan_in, fan_out) or jnp.shape(layer["b"]) != (fan_out,):
            raise ValueError(
                f"layer {l}: W{jnp.shape(layer['W'])}, b{jnp.shape(layer['b'])} do not fit "
                f"spec {spec.sizes}; expected W{(fan_in, fan_out)}, b{(fan_out,)}"
            )
    if spec.shortcuts and jnp.shape(params[-1].get("S")) != (spec.sizes[0], spec.sizes[-1]):
        raise ValueError(f"shortcuts need S{(spec.sizes[0], spec.sizes[-1])} in the last layer; "
                         f"it has {jnp.shape(params[-1].get('S'))}")
    if jnp.ndim(x) != 2 or jnp.shape(x)[1] != spec.sizes[0]:
        raise ValueError(f"x has shape {jnp.shape(x)}; expected (batch, {spec.sizes[0]})")
    if y is not None and jnp.shape(y) != (jnp.shape(x)[0], spec.sizes[-1]):
        raise ValueError(
            f"y has shape {jnp.shape(y)}; expected ({jnp.shape(x)[0]}, {spec.sizes[-1]}) "
            "to match x's batch and the spec's outputs"
        )


def trace(spec: Spec, params: Params, x: Array, masks=None) -> tuple[list[Array], list[Array]]:
    """The forward pass, keeping what backprop needs: ``hs = [h_0 = x, h_1, ..., h_{L-1}]``
    (each layer's input) and ``zs = [z_1, ..., z_L]`` (each layer's pre-activation).

    ``masks`` (see :func:`unit_masks`) zero the padded units of a network trained inside a
    wider one: ``h_l = f(z_l) ⊙ m_l``."""
    act = ACTIVATIONS[spec.activation]
    hs, zs = [x], []
    for l, layer in enumerate(params):
        zs.append(matmul(hs[-1], layer["W"]) + layer["b"][None, :])
        if l < len(params) - 1:
            h = act(zs[-1])
            hs.append(h if masks is None else h * masks[l][None, :])
    if spec.shortcuts:
        zs[-1] = zs[-1] + matmul(x, params[-1]["S"])
    return hs, zs


def logits(spec: Spec, params: Params, x: Array, masks=None) -> Array:
    """The last pre-activation ``z_L``, shape ``(batch, sizes[-1])``."""
    check_inputs(spec, params, x)
    return trace(spec, params, x, masks)[1][-1]


def forward(spec: Spec, params: Params, x: Array, masks=None) -> Array:
    """The network's output ``ŷ = g(z_L)``, shape ``(batch, sizes[-1])``."""
    return OUTPUTS[spec.output](logits(spec, params, x, masks))


def data_loss(spec: Spec, z_out: Array, y: Array) -> Array:
    """The batch's loss (mean over rows, or sum with ``reduction="sum"``) computed from the
    output pre-activation ``z_out``."""
    n = z_out.shape[0] if spec.reduction == "mean" else 1
    if spec.loss == "mse":
        residual = OUTPUTS[spec.output](z_out) - y
        return 0.5 * total(residual**2) / n
    if spec.loss == "bce":
        # BCE(sigmoid(z), y) = softplus(z) - y z, finite for every z.
        return total(jnp.logaddexp(0.0, z_out) - y * z_out) / n
    return -total(y * jax.nn.log_softmax(z_out, axis=-1)) / n


def penalty(params: Params, l1: float = 0.0, l2: float = 0.0) -> Array:
    """``l2 · ½ Σ W² + l1 · Σ |W|`` over every weight matrix; biases are not penalised."""
    weights = [layer["W"] for layer in params] + [layer["S"] for layer in params if "S" in layer]
    # |W| written as W·sign(W): its autodiff subgradient at 0 is sign(0) = 0, the same
    # convention as the hand-derived backward (jnp.abs would give 1 there and move a
    # weight that is exactly zero, such as a padded unit's).
    return sum(l2 * 0.5 * jnp.sum(W**2) + l1 * jnp.sum(W * jnp.sign(W)) for W in weights)


def loss(spec: Spec, params: Params, x: Array, y: Array, l1: float = 0.0, l2: float = 0.0,
         masks=None) -> Array:
    """The scalar training objective: ``data_loss + penalty`` (see the module docstring)."""
    check_inputs(spec, params, x, y)
    return data_loss(spec, logits(spec, params, x, masks), y) + penalty(params, l1, l2)
