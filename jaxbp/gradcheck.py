"""Checks the hand-derived backward pass against ``jax.grad``, in float64.

    python -m jaxbp.gradcheck                       # every valid spec at depths 1-4
    python -m jaxbp.gradcheck --sizes 2,3,1 --activation tanh --l2 0.01

For each spec (and each again as a narrower network padded to it with unit masks, as the
fused launcher trains mixed widths) it prints the largest absolute error and the largest
error relative to the size of the autodiff gradient, ``max|g_manual − g_auto| /
max|g_auto|``, over its layers (``--verbose``: per layer), and exits 1 when any relative
error exceeds ``--tol``.
"""

from __future__ import annotations

import argparse
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp import backprop, model

TOLERANCE = 1e-10


def valid_specs(depths=(1, 2, 3, 4), width: int = 3, n_in: int = 2, n_out: int = 2):
    """Every valid (activation, output, loss) combination at each number of hidden layers."""
    for depth, activation, loss in itertools.product(depths, model.ACTIVATIONS, model.LOSS_OUTPUTS):
        for output in model.LOSS_OUTPUTS[loss]:
            sizes = (n_in, *([width] * depth), n_out)
            yield model.Spec(sizes, activation=activation, output=output, loss=loss)


def make_batch(spec: model.Spec, key: jax.Array, batch: int):
    """Random inputs and targets the spec's loss accepts (probabilities for bce and ce)."""
    xkey, ykey = jax.random.split(key)
    x = jax.random.normal(xkey, (batch, spec.sizes[0]))
    if spec.loss == "ce":
        y = jax.nn.softmax(jax.random.normal(ykey, (batch, spec.sizes[-1])), axis=-1)
    else:
        y = jax.random.uniform(ykey, (batch, spec.sizes[-1]))
    return x, y


def _offset_sigmoid(offset):
    """σ, whose derivative is declared ``σ(1 − σ) + offset`` (Fahlman's prime offset)."""

    @jax.custom_jvp
    def sigmoid(z):
        return jax.nn.sigmoid(z)

    @sigmoid.defjvp
    def _(primals, tangents):
        s = jax.nn.sigmoid(primals[0])
        return s, (s * (1.0 - s) + offset) * tangents[0]

    return sigmoid


def bent_loss(spec: model.Spec, params, x, y, dead_zone=0.0, prime_offset=0.0, l1=0.0, l2=0.0, masks=None):
    """An mse whose ``jax.grad`` is the update Fahlman's conventions make, written apart
    from :mod:`jaxbp.backprop`: its sigmoids declare the derivative f′ + ``prime_offset``
    (``jax.custom_jvp``), and a row-output's squared error counts only where
    ``|ŷ − y| >= dead_zone`` (a 0/1 mask, constant away from the edge ``|ŷ − y| = dead_zone``)."""
    sigmoid = _offset_sigmoid(prime_offset)
    act = sigmoid if spec.activation == "sigmoid" else model.ACTIVATIONS[spec.activation]
    h = x
    for l, layer in enumerate(params):
        z = h @ layer["W"] + layer["b"][None, :]
        if l < len(params) - 1:
            h = act(z) if masks is None else act(z) * masks[l][None, :]
    if spec.shortcuts:
        z = z + x @ params[-1]["S"]
    y_hat = sigmoid(z) if spec.output == "sigmoid" else model.OUTPUTS[spec.output](z)
    residual = y_hat - y
    kept = jax.lax.stop_gradient((jnp.abs(residual) >= dead_zone).astype(residual.dtype))
    n = x.shape[0] if spec.reduction == "mean" else 1
    return 0.5 * jnp.sum(kept * residual**2) / n + model.penalty(params, l1, l2)


def _off_the_edge(spec, params, x, y, dead_zone, masks):
    """Targets moved 0.05 further from any output whose error is within 0.02 of the dead
    zone's edge, where the bent loss jumps and has no gradient."""
    residual = model.forward(spec, params, x, masks) - y
    near = jnp.abs(jnp.abs(residual) - dead_zone) < 0.02
    return jnp.where(near, y - 0.05 * jnp.sign(residual), y)


def compare(spec: model.Spec, key: jax.Array, batch: int = 5, l1: float = 0.0, l2: float = 0.0,
            live=None, dead_zone: float = 0.0, prime_offset: float = 0.0):
    """Per-layer errors of ``backprop.backward`` against ``jax.grad(model.loss)``.

    Runs in JAX's default precision; call it under ``jax.enable_x64(True)`` for float64.
    With ``live`` (a live width per hidden layer), the network is a narrower one padded to
    ``spec`` and both gradients run with its unit masks. With Fahlman's ``dead_zone`` or
    ``prime_offset`` (mse only) the reference is ``jax.grad`` of :func:`bent_loss`, on
    targets kept off the dead zone's edge.

    Returns:
        A list of ``(layer, max_abs_error, max_rel_error)``, one per weight layer, where a
        layer's error covers its W, b and (for the output layer with shortcuts) S.
    """
    pkey, dkey = jax.random.split(key)
    params = model.init(spec, pkey, scheme="normal", scale=1.0, bias="same", live=live)
    masks = None if live is None else model.unit_masks(spec, live, params[0]["W"].dtype)
    x, y = make_batch(spec, dkey, batch)
    bent = bool(dead_zone or prime_offset)
    if bent:
        y = _off_the_edge(spec, params, x, y, dead_zone, masks)
    _, _, manual = backprop.backward_terms(spec, params, x, y, l1=l1, l2=l2, masks=masks, dead_zone=dead_zone,
                                           prime_offset=prime_offset)
    if bent:
        auto = jax.grad(lambda p: bent_loss(spec, p, x, y, dead_zone, prime_offset, l1, l2, masks))(params)
    else:
        auto = jax.grad(lambda p: model.loss(spec, p, x, y, l1=l1, l2=l2, masks=masks))(params)
    rows = []
    for layer, (m, a) in enumerate(zip(manual, auto)):
        diff = max(float(jnp.max(jnp.abs(m[k] - a[k]))) for k in a)  # W, b and shortcuts S
        scale = max(float(jnp.max(jnp.abs(a[k]))) for k in a)
        rows.append((layer, diff, diff / max(scale, np.finfo(np.float64).tiny)))
    return rows


def _describe(spec: model.Spec) -> str:
    sizes = "-".join(map(str, spec.sizes))
    extra = (" shortcuts" if spec.shortcuts else "") + (" sum" if spec.reduction == "sum" else "")
    return f"{sizes} {spec.activation}/{spec.output}/{spec.loss}{extra}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxbp.gradcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="one spec's widths, e.g. 2,3,1 (default: the grid)")
    parser.add_argument("--activation", default="sigmoid", choices=list(model.ACTIVATIONS))
    parser.add_argument("--output", default="sigmoid", choices=list(model.OUTPUTS))
    parser.add_argument("--loss", default="mse", choices=list(model.LOSS_OUTPUTS))
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--l1", type=float, default=0.0)
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=TOLERANCE, help="max relative error")
    parser.add_argument("--verbose", action="store_true", help="one line per layer, not per spec")
    args = parser.parse_args(argv)

    try:
        if args.sizes:
            sizes = tuple(int(s) for s in args.sizes.split(","))
            specs = [model.Spec(sizes, args.activation, args.output, args.loss)]
        else:
            specs = list(valid_specs())
    except ValueError as err:
        parser.error(str(err))

    with jax.enable_x64(True):  # every array below is float64
        return _report(specs, args)


def _cases(specs):
    """Each spec as it is; with hidden layers, also as a narrower net padded to it, and
    with shortcut weights and a summed loss (the classic papers' conventions)."""
    import dataclasses

    for spec in specs:
        yield spec, None, {}
        hidden = spec.sizes[1:-1]
        if hidden and min(hidden) > 1:
            yield spec, [w - 1 for w in hidden], {}
        if hidden:
            yield dataclasses.replace(spec, shortcuts=True, reduction="sum"), None, {}
        if spec.loss == "mse" and "sigmoid" in (spec.activation, spec.output):
            yield spec, None, FAHLMAN  # his dead zone and prime offset (a wider zone, so it bites)


FAHLMAN = {"dead_zone": 0.3, "prime_offset": 0.1}


def _report(specs, args) -> int:
    key = jax.random.PRNGKey(args.seed)
    cases = list(_cases(specs))
    names = [_describe(spec) + ("" if live is None else f" masked to {'-'.join(map(str, live))}")
             + (" dead zone, f′ offset" if bent else "") for spec, live, bent in cases]
    width = max([44, *map(len, names)])  # masked specs have long names: the columns stay aligned
    print(f"{'spec':<{width}} {'layer':>5} {'max abs err':>12} {'max rel err':>12}")
    worst, count = 0.0, 0
    for (spec, live, bent), name in zip(cases, names):
        count += 1
        rows = compare(spec, key, args.batch, args.l1, args.l2, live, **bent)
        shown = rows if args.verbose else [max(rows, key=lambda row: row[2])]
        for layer, abs_err, rel_err in shown:
            flag = "" if rel_err <= args.tol else "  FAIL"
            print(f"{name:<{width}} {layer:>5} {abs_err:>12.2e} {rel_err:>12.2e}{flag}")
        worst = max([worst] + [row[2] for row in rows])
    verdict = "ok" if worst <= args.tol else "FAILED"
    print(f"{count} specs (padded ones included), worst relative error {worst:.2e} "
          f"(tolerance {args.tol:.0e}): {verdict}")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    from jaxbp import pipes

    pipes.main(main)
