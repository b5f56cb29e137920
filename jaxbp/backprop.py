"""Backpropagation written out by hand: the chain rule, one line per equation.

No ``jax.grad``, ``jax.vjp``, ``jax.jvp`` or ``jax.jacobian`` is used here; the test suite
checks every line against ``jax.grad`` of :func:`jaxbp.model.loss`. ``matmul(a, b)`` is
``a @ b`` (:func:`jaxbp.model.matmul` explains why it is not written with ``@``).

Forward pass, storing what the backward pass needs (symbols as in :mod:`jaxbp.model`)::

    h_0 = x
    z_l = h_{l-1} W_l + b_l,        h_l = f(z_l)    (l < L),    ŷ = g(z_L)

Output delta ``δ_L = ∂E/∂z_L``, for a batch of ``n`` rows::

    mse, identity:   δ_L = (ŷ − y) / n
    mse, sigmoid:    δ_L = (ŷ − y) ⊙ ŷ(1 − ŷ) / n
    mse, softmax:    δ_L = ŷ ⊙ (r − Σ_k r_k ŷ_k) / n          with r = ŷ − y
    bce, sigmoid:    δ_L = (ŷ − y) / n
    ce,  softmax:    δ_L = (ŷ · Σ_k y_k − y) / n              (= (ŷ − y)/n for one-hot y)

Hidden deltas, from the top down::

    δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ f′(z_l)

    f′(z_l) = h_l(1 − h_l) for sigmoid,  1 − h_l² for tanh,  [z_l > 0] for relu,  1 for identity

Gradients of ``E = loss + l2 · ½ΣW² + l1 · Σ|W|``::

    ∂E/∂W_l = h_{l-1}ᵀ δ_l + l2 · W_l + l1 · sign(W_l)
    ∂E/∂b_l = Σ_batch δ_l
    ∂E/∂S   = xᵀ δ_L + l2 · S + l1 · sign(S)       shortcuts: z_L gains x S

With ``reduction="sum"`` the ``1/n`` in every δ_L is dropped.

Fahlman's (1988) two conventions, for ``mse`` (both 0 by default)::

    error dead zone d:        r = ŷ − y, set to 0 where |ŷ − y| < d
    sigmoid prime offset c:   every sigmoid unit's f′ becomes ŷ(1 − ŷ) + c (hidden: h(1 − h) + c)

With a dead zone alone the update is still a gradient: of ½ Σ_{|r| ≥ d} r² (mean or sum),
a loss that ignores small errors and jumps where |r| = d. With an offset it is in general
the gradient of no loss at all: the chain rule is bent on purpose, so that saturated units
(f′ ≈ 0) still learn. The reported loss stays the plain one.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxbp import model
from jaxbp.model import Array, Params, Spec, matmul

# f′(z) for each hidden activation, from z and h = f(z); reusing h saves a second
# transcendental per unit, the dominant cost of a small network.
DERIVATIVES = {
    "sigmoid": lambda z, h: h * (1.0 - h),
    "tanh": lambda z, h: 1.0 - h**2,
    "relu": lambda z, h: (z > 0).astype(z.dtype),
    "identity": lambda z, h: jnp.ones_like(z),
}


def _on(value) -> bool:
    """False for a static zero: a convention that is off costs nothing."""
    return not (isinstance(value, (int, float)) and value == 0)


def output_delta(spec: Spec, y_hat: Array, y: Array, dead_zone=0.0, prime_offset=0.0) -> Array:
    """``δ_L = ∂E/∂z_L`` for the spec's output/loss pair, shape ``(n, sizes[-1])``
    (``n`` is 1 for ``reduction="sum"``: the deltas are then not averaged); ``dead_zone``
    and ``prime_offset`` are Fahlman's conventions (module docstring; ``mse`` only)."""
    n = y_hat.shape[0] if spec.reduction == "mean" else 1
    if spec.loss == "ce":
        return (y_hat * model.ordered_sum(y, -1)[:, None] - y) / n
    if spec.loss == "bce":
        return (y_hat - y) / n
    residual = y_hat - y  # mse from here on
    if _on(dead_zone):
        residual = jnp.where(jnp.abs(residual) < dead_zone, 0.0, residual)
    if spec.output == "identity":
        return residual / n
    if spec.output == "sigmoid":
        if _on(prime_offset):
            return residual * (y_hat * (1.0 - y_hat) + prime_offset) / n
        return residual * y_hat * (1.0 - y_hat) / n  # this association: earlier results, bit for bit
    # softmax Jacobian-vector product: diag(ŷ) r − ŷ (ŷ · r)
    return y_hat * (residual - model.ordered_sum(residual * y_hat, -1)[:, None]) / n


def backward(
    spec: Spec, params: Params, x: Array, y: Array, l1: float = 0.0, l2: float = 0.0
) -> tuple[Array, Params]:
    """The loss and its gradient, by the hand-derived chain rule above.

    Args:
        spec: network shape (static under ``jax.jit``).
        params: ``[{"W": (fan_in, fan_out), "b": (fan_out,)}, ...]``.
        x: inputs, ``(n, sizes[0])``.
        y: targets, ``(n, sizes[-1])``.
        l1, l2: weight penalties (scalars; may be traced).

    Returns:
        ``(E, grads)``: the scalar ``model.loss`` and ``∂E/∂params``, a pytree shaped like
        ``params``.
    """
    data_loss, penalty, grads = backward_terms(spec, params, x, y, l1, l2)
    return data_loss + penalty, grads


def backward_terms(
    spec: Spec, params: Params, x: Array, y: Array, l1: float = 0.0, l2: float = 0.0, masks=None,
    dead_zone=0.0, prime_offset=0.0,
) -> tuple[Array, Array, Params]:
    """Like :func:`backward`, with the loss split: ``(data_loss, penalty, grads)``.

    The engine records the data loss; returning it here saves recomputing the penalty.
    ``masks`` (:func:`jaxbp.model.unit_masks`) train a narrower network padded to
    ``spec``: ``h_l = f(z_l) ⊙ m_l`` and ``δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ f′(z_l) ⊙ m_l``, so a
    padded unit's weights in and out get zero gradient. ``dead_zone`` and ``prime_offset``
    are Fahlman's conventions (module docstring); with either on, ``grads`` is the update
    direction his simulator used, not ``∂E/∂params``.
    """
    model.check_inputs(spec, params, x, y)
    f_prime = DERIVATIVES[spec.activation]
    if spec.activation == "sigmoid" and _on(prime_offset):
        f_prime = lambda z, h: h * (1.0 - h) + prime_offset  # noqa: E731  Fahlman's flat-spot fix

    # Forward: every layer input h_{l-1} and pre-activation z_l.
    hs, zs = model.trace(spec, params, x, masks)
    y_hat = model.OUTPUTS[spec.output](zs[-1])
    data_loss = model.data_loss(spec, zs[-1], y)

    # Backward: δ_L, then δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ f′(z_l).
    delta = output_delta(spec, y_hat, y, dead_zone, prime_offset)
    grads: Params = [None] * len(params)  # type: ignore[list-item]
    if spec.shortcuts:
        S = params[-1]["S"]
        shortcut_grad = matmul(x.T, delta) + l2 * S + l1 * jnp.sign(S)  # ∂E/∂S = xᵀ δ_L
    for l in reversed(range(len(params))):
        W = params[l]["W"]
        grads[l] = {
            "W": matmul(hs[l].T, delta) + l2 * W + l1 * jnp.sign(W),
            "b": model.ordered_sum(delta, 0),
        }
        if l > 0:
            delta = matmul(delta, W.T) * f_prime(zs[l - 1], hs[l])
            if masks is not None:
                delta = delta * masks[l - 1][None, :]
    if spec.shortcuts:
        grads[-1]["S"] = shortcut_grad
    return data_loss, model.penalty(params, l1, l2), grads
