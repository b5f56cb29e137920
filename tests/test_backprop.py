"""backprop.backward against independent truths: jax.grad, finite differences, float32."""

import ast
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from jaxbp import backprop, gradcheck, model

pytestmark = pytest.mark.usefixtures("strict_dtypes")
SPECS = list(gradcheck.valid_specs(depths=(1, 2, 3, 4)))


def _ids(spec):
    return f"{len(spec.sizes) - 2}x{spec.activation}-{spec.output}-{spec.loss}"


def _max_rel_err(manual, auto):
    diff = max(float(jnp.max(jnp.abs(m - a))) for m, a in
               zip(jax.tree.leaves(manual), jax.tree.leaves(auto)))
    scale = max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(auto))
    return diff / scale


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
# Batch 1 without penalties, and a batch of many rows with both penalties.
@pytest.mark.parametrize("batch,l1,l2", [(1, 0.0, 0.0), (17, 0.03, 0.2)])
def test_backward_matches_jax_grad_float64(x64, spec, batch, l1, l2):
    key = jax.random.PRNGKey(batch)
    params = model.init(spec, key, bias="same")
    x, y = gradcheck.make_batch(spec, jax.random.fold_in(key, 1), batch)
    value, manual = backprop.backward(spec, params, x, y, l1=l1, l2=l2)
    auto_value, auto = jax.value_and_grad(lambda p: model.loss(spec, p, x, y, l1=l1, l2=l2))(params)
    assert jax.tree.structure(manual) == jax.tree.structure(params)
    assert float(value) == pytest.approx(float(auto_value), rel=1e-12)
    assert _max_rel_err(manual, auto) < 1e-10


@pytest.mark.parametrize("spec", [s for s in SPECS if len(s.sizes) == 4], ids=_ids)
def test_model_loss_passes_check_grads(x64, spec):
    # Finite differences of model.loss against its own autodiff: validates the truth we use.
    params = model.init(spec, jax.random.PRNGKey(3), bias="same")
    x, y = gradcheck.make_batch(spec, jax.random.PRNGKey(4), 6)
    check_grads(lambda p: model.loss(spec, p, x, y, l2=0.1), (params,), order=1, modes=["rev"])


def test_backward_matches_central_differences(x64):
    # A second, fully independent truth: numeric differences of the loss, entry by entry.
    spec = model.Spec((2, 3, 2, 1), activation="tanh", output="sigmoid", loss="bce")
    params = model.init(spec, jax.random.PRNGKey(5), bias="same")
    x, y = gradcheck.make_batch(spec, jax.random.PRNGKey(6), 4)
    _, grads = backprop.backward(spec, params, x, y, l2=0.3)
    eps = 1e-6

    def loss_with(l, name, flat):
        p = [dict(layer) for layer in params]
        p[l][name] = jnp.asarray(flat.reshape(params[l][name].shape))
        return float(model.loss(spec, p, x, y, l2=0.3))

    for l, name in [(0, "W"), (1, "b"), (2, "W")]:
        flat = np.asarray(params[l][name]).ravel()
        for i in range(flat.size):
            shift = np.zeros_like(flat)
            shift[i] = eps
            numeric = (loss_with(l, name, flat + shift) - loss_with(l, name, flat - shift)) / (2 * eps)
            assert float(grads[l][name].ravel()[i]) == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@settings(max_examples=12, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    activation=st.sampled_from(list(model.ACTIVATIONS)),
    pair=st.sampled_from([("sigmoid", "mse"), ("identity", "mse"), ("softmax", "mse"),
                          ("sigmoid", "bce"), ("softmax", "ce")]),
    batch=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_backward_property_random_sizes(sizes, activation, pair, batch, seed):
    if pair[0] == "softmax":
        sizes = [*sizes[:-1], max(2, sizes[-1])]  # a one-unit softmax is refused by Spec
    with jax.enable_x64(True):
        spec = model.Spec(tuple(sizes), activation, *pair)
        # Params and data from NumPy (jax.random compiles its own programs per shape), and
        # both gradients in one jitted program: one compile per example, measured 4× faster
        # than the eager dispatches of every operation at every new shape.
        rng = np.random.default_rng(seed)
        params = [{"W": jnp.asarray(rng.standard_normal((a, b))), "b": jnp.asarray(rng.standard_normal(b))}
                  for a, b in zip(sizes[:-1], sizes[1:])]
        x = jnp.asarray(rng.standard_normal((batch, sizes[0])))
        logits = rng.standard_normal((batch, sizes[-1]))
        y = jnp.asarray(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True) if pair[1] == "ce"
                        else rng.uniform(size=(batch, sizes[-1])))  # probabilities, as make_batch's
        both = jax.jit(lambda p: (backprop.backward(spec, p, x, y, l1=0.01, l2=0.01)[1],
                                  jax.grad(lambda q: model.loss(spec, q, x, y, l1=0.01, l2=0.01))(p)))
        manual, auto = both(params)
        assert _max_rel_err(manual, auto) < 1e-10


@pytest.mark.parametrize("spec", [s for s in SPECS if len(s.sizes) == 3], ids=_ids)
def test_backward_float32_agrees_within_1e5(spec):
    params = model.init(spec, jax.random.PRNGKey(7))
    x, y = gradcheck.make_batch(spec, jax.random.PRNGKey(8), 16)
    _, manual = backprop.backward(spec, params, x, y)
    auto = jax.grad(lambda p: model.loss(spec, p, x, y))(params)
    assert manual[0]["W"].dtype == jnp.float32
    assert _max_rel_err(manual, auto) < 1e-5


def test_backward_under_jit_and_vmap_over_params():
    spec = model.Spec((2, 3, 1))
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    params = jax.vmap(lambda k: model.init(spec, k))(keys)
    x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = jnp.array([[0.0], [1.0], [1.0], [0.0]])
    batched = jax.jit(jax.vmap(backprop.backward, in_axes=(None, 0, None, None)), static_argnums=0)
    values, grads = batched(spec, params, x, y)
    assert values.shape == (8,) and grads[0]["W"].shape == (8, 2, 3)
    one = jax.tree.map(lambda a: a[5], params)
    value5, grads5 = backprop.backward(spec, one, x, y)
    np.testing.assert_allclose(values[5], value5, rtol=1e-6)
    np.testing.assert_allclose(grads[1]["W"][5], grads5[1]["W"], rtol=1e-5, atol=1e-7)


def test_backward_uses_no_autodiff():
    tree = ast.parse(inspect.getsource(backprop))
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {"grad", "value_and_grad", "vjp", "jvp", "jacobian", "jacrev", "jacfwd"}


def test_backward_bad_shapes_raise():
    spec = model.Spec((2, 3, 1))
    params = model.init(spec, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"expected \(batch, 2\)"):
        backprop.backward(spec, params, jnp.ones((4, 5)), jnp.ones((4, 1)))
    with pytest.raises(ValueError, match=r"y has shape \(3, 1\)"):
        backprop.backward(spec, params, jnp.ones((4, 2)), jnp.ones((3, 1)))


def test_gradcheck_cli_exits_zero_and_fails_on_tiny_tolerance(capsys):
    assert gradcheck.main(["--sizes", "2,3,1"]) == 0
    assert "worst relative error" in capsys.readouterr().out
    # 1e-30 is below float64 round-off, so the same check must now fail.
    assert gradcheck.main(["--sizes", "2,3,1", "--tol", "1e-30"]) == 1


# ---------------------------------------------------------------- Fahlman's conventions
FAHLMAN_SPECS = [s for s in SPECS if s.loss == "mse" and "sigmoid" in (s.activation, s.output)
                 and len(s.sizes) <= 4]


@pytest.mark.parametrize("spec", FAHLMAN_SPECS, ids=_ids)
def test_dead_zone_and_prime_offset_match_the_bent_loss(x64, spec):
    """The hand-derived update under both conventions against jax.grad of gradcheck's
    bent loss (custom_jvp sigmoids, a masked squared error), off the dead zone's edge."""
    rows = gradcheck.compare(spec, jax.random.PRNGKey(11), batch=9, **gradcheck.FAHLMAN)
    assert max(row[2] for row in rows) < 1e-10
    # ... and the conventions changed the update (else the comparison proves nothing)
    params = model.init(spec, jax.random.PRNGKey(11), bias="same")
    x, y = gradcheck.make_batch(spec, jax.random.PRNGKey(12), 9)
    _, _, bent = backprop.backward_terms(spec, params, x, y, **gradcheck.FAHLMAN)
    _, plain = backprop.backward(spec, params, x, y)
    assert _max_rel_err(bent, plain) > 1e-3


def test_bent_loss_is_the_plain_loss_without_conventions_and_differentiable_off_the_edge(x64):
    spec = model.Spec((2, 3, 2), activation="sigmoid", output="sigmoid")
    params = model.init(spec, jax.random.PRNGKey(1), bias="same")
    x, y = gradcheck.make_batch(spec, jax.random.PRNGKey(2), 7)
    assert float(gradcheck.bent_loss(spec, params, x, y)) == pytest.approx(float(model.loss(spec, params, x, y)),
                                                                          rel=1e-14)
    y = gradcheck._off_the_edge(spec, params, x, y, 0.3, None)
    residual = np.abs(np.asarray(model.forward(spec, params, x) - y))
    assert (residual < 0.3).any() and (residual >= 0.3).any()  # the zone bites, not everywhere
    # finite differences of the dead-zone loss: it is a true loss away from the edge
    check_grads(lambda p: gradcheck.bent_loss(spec, p, x, y, dead_zone=0.3), (params,), order=1, modes=["rev"])


def test_prime_offset_closed_form_for_one_layer(x64):
    """z = xW + b, ŷ = σ(z), mse: δ = (ŷ − y)(ŷ(1 − ŷ) + c)/n, ∂W = xᵀδ, in NumPy."""
    spec = model.Spec((3, 2), activation="sigmoid", output="sigmoid")
    params = model.init(spec, jax.random.PRNGKey(3), bias="same")
    x, y = gradcheck.make_batch(spec, jax.random.PRNGKey(4), 5)
    _, _, grads = backprop.backward_terms(spec, params, x, y, prime_offset=0.1)
    xn, yn = np.asarray(x), np.asarray(y)
    y_hat = 1 / (1 + np.exp(-(xn @ np.asarray(params[0]["W"]) + np.asarray(params[0]["b"]))))
    delta = (y_hat - yn) * (y_hat * (1 - y_hat) + 0.1) / 5
    np.testing.assert_allclose(grads[0]["W"], xn.T @ delta, rtol=1e-12)
    np.testing.assert_allclose(grads[0]["b"], delta.sum(0), rtol=1e-12)
