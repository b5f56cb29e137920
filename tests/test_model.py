"""model: shapes, closed-form losses, init statistics and every bad-input case."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbp import model

pytestmark = pytest.mark.usefixtures("strict_dtypes")
KEY = jax.random.PRNGKey(0)


def test_forward_shape_and_param_layout():
    spec = model.Spec((2, 3, 4, 1))
    params = model.init(spec, KEY)
    assert [(p["W"].shape, p["b"].shape) for p in params] == [
        ((2, 3), (3,)), ((3, 4), (4,)), ((4, 1), (1,))]
    assert model.forward(spec, params, jnp.ones((7, 2))).shape == (7, 1)


def test_spec_is_hashable_and_frozen():
    spec = model.Spec([2, 3, 1])
    assert spec.sizes == (2, 3, 1) and hash(spec) == hash(model.Spec((2, 3, 1)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.loss = "ce"


def test_forward_matches_hand_computed_xor_network():
    # One hand-written 2-2-1 sigmoid net evaluated with numpy, independently of jaxbp.
    W1, b1 = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([0.1, -0.2])
    W2, b2 = np.array([[2.0], [-1.0]]), np.array([0.3])
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    expected = sigmoid(sigmoid(x @ W1 + b1) @ W2 + b2)
    params = [{"W": jnp.array(W1, jnp.float32), "b": jnp.array(b1, jnp.float32)},
              {"W": jnp.array(W2, jnp.float32), "b": jnp.array(b2, jnp.float32)}]
    got = model.forward(model.Spec((2, 2, 1)), params, jnp.array(x, jnp.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def _identity_params(spec):
    return [{"W": jnp.eye(a, b), "b": jnp.zeros(b)} for a, b in zip(spec.sizes[:-1], spec.sizes[1:])]


def test_mse_is_half_mean_of_summed_squares():
    spec = model.Spec((2, 2), output="identity", loss="mse")
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    y = jnp.array([[0.0, 0.0], [3.0, 2.0]])
    # residuals (1,2) and (0,2): ½ · mean(5, 4) = 2.25
    assert float(model.loss(spec, _identity_params(spec), x, y)) == pytest.approx(2.25)


def test_bce_and_ce_match_closed_forms_and_stay_finite():
    x = jnp.array([[50.0, -50.0], [0.0, 0.0]])
    y = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    bce = model.Spec((2, 2), output="sigmoid", loss="bce")
    # row 1: softplus(50) + softplus(-50) + 50 ≈ 100; row 2: 2·log 2
    expected_bce = (100.0 + 2 * np.log(2.0)) / 2
    assert float(model.loss(bce, _identity_params(bce), x, y)) == pytest.approx(expected_bce, rel=1e-5)
    ce = model.Spec((2, 2), output="softmax", loss="ce")
    # row 1: −log softmax(50, −50)_1 ≈ 100; row 2: log 2
    assert float(model.loss(ce, _identity_params(ce), x, y)) == pytest.approx((100 + np.log(2)) / 2, rel=1e-5)


def test_penalty_on_weights_only():
    spec = model.Spec((2, 2), output="identity")
    params = [{"W": jnp.array([[1.0, -2.0], [0.0, 3.0]]), "b": jnp.array([10.0, 10.0])}]
    x, y = jnp.zeros((1, 2)), jnp.zeros((1, 2))
    base = model.loss(spec, params, x, y)  # ½ · (10² + 10²) = 100
    got = model.loss(spec, params, x, y, l1=0.1, l2=0.5)
    # l2 · ½ · (1 + 4 + 9) + l1 · (1 + 2 + 3)
    assert float(got - base) == pytest.approx(0.5 * 0.5 * 14 + 0.1 * 6)


@pytest.mark.parametrize("scheme,scale,expected_std", [
    ("normal", 2.0, 2.0),
    ("uniform", 3.0, 3.0 / np.sqrt(3)),
    ("xavier", 1.0, np.sqrt(6 / (400 + 300)) / np.sqrt(3)),
    ("he", 1.0, np.sqrt(2 / 400)),
])
def test_init_scheme_statistics(scheme, scale, expected_std):
    spec = model.Spec((400, 300, 1))
    W = np.asarray(model.init(spec, KEY, scheme=scheme, scale=scale)[0]["W"])
    # 120,000 draws: the sample std is within 1% of the truth with overwhelming probability.
    assert W.std() == pytest.approx(expected_std, rel=0.01)
    assert abs(W.mean()) < 0.01 * expected_std * 10
    if scheme == "uniform":
        assert W.min() >= -scale and W.max() < scale


def test_init_bias_modes():
    spec = model.Spec((2, 3, 1))
    assert all(float(jnp.abs(p["b"]).sum()) == 0 for p in model.init(spec, KEY))
    assert all(float(jnp.abs(p["b"]).sum()) > 0 for p in model.init(spec, KEY, bias="same"))


@pytest.mark.parametrize("kwargs,match", [
    (dict(sizes=(2, 3, 1), activation="swish"), "activation 'swish'"),
    (dict(sizes=(2, 3, 1), output="softplus"), "output 'softplus'"),
    (dict(sizes=(2, 3, 1), loss="hinge"), "loss 'hinge'"),
    (dict(sizes=(2, 3, 1), output="identity", loss="bce"), "'bce' cannot follow output='identity'"),
    (dict(sizes=(2, 3, 1), output="sigmoid", loss="ce"), "'ce' cannot follow output='sigmoid'"),
    (dict(sizes=(2,)), "at least 2 entries"),
    (dict(sizes=(2, 0, 1)), "integer >= 1"),
])
def test_bad_spec_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.Spec(**kwargs)


def test_bad_init_and_shapes_raise():
    spec = model.Spec((2, 3, 1))
    with pytest.raises(ValueError, match="init scheme 'glorot'"):
        model.init(spec, KEY, scheme="glorot")
    with pytest.raises(ValueError, match="bias mode 'ones'"):
        model.init(spec, KEY, bias="ones")
    params = model.init(spec, KEY)
    with pytest.raises(ValueError, match=r"x has shape \(4, 3\); expected \(batch, 2\)"):
        model.forward(spec, params, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"y has shape \(4,\)"):
        model.loss(spec, params, jnp.ones((4, 2)), jnp.ones((4,)))
    with pytest.raises(ValueError, match="do not fit"):
        model.forward(model.Spec((2, 4, 1)), params, jnp.ones((4, 2)))
