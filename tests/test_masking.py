"""Narrow networks trained padded inside wider ones: the init stream does not depend on the
padded width, masked units get exactly zero gradient, and the hand-derived masked backward
equals jax.grad and the narrow network's own gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbp import backprop, gradcheck, model

KEY = jax.random.PRNGKey(11)


@pytest.mark.parametrize("scheme", ["normal", "uniform", "xavier", "he"])
def test_a_units_initial_weights_do_not_depend_on_the_padded_width(scheme):
    narrow = model.init(model.Spec((2, 3, 1)), KEY, scheme, bias="same")
    wide = model.init(model.Spec((2, 8, 1)), KEY, scheme, bias="same", live=[3])
    np.testing.assert_allclose(wide[0]["W"][:, :3], narrow[0]["W"], rtol=1e-6)
    np.testing.assert_allclose(wide[0]["b"][:3], narrow[0]["b"], rtol=1e-6)
    np.testing.assert_allclose(wide[1]["W"][:3], narrow[1]["W"], rtol=1e-6)
    assert not np.any(wide[0]["W"][:, 3:]) and not np.any(wide[0]["b"][3:]) and not np.any(wide[1]["W"][3:])


def test_init_draws_are_independent_normals():
    # One key per number must still give N(0, 1) draws: check mean and spread over many.
    W = model.init(model.Spec((100, 100, 1)), KEY)[0]["W"]
    assert abs(float(W.mean())) < 0.03 and abs(float(W.std()) - 1.0) < 0.03


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_masked_backward_equals_the_narrow_networks_gradient(x64, depth, activation):
    narrow = model.Spec((2, *[3] * depth, 2), activation, "softmax", "ce")
    wide = model.Spec((2, *[6] * depth, 2), activation, "softmax", "ce")
    x, y = gradcheck.make_batch(narrow, jax.random.PRNGKey(3), 7)
    small = model.init(narrow, KEY, bias="same")
    padded = model.init(wide, KEY, bias="same", live=[3] * depth)
    masks = model.unit_masks(wide, [3] * depth, jnp.float64)
    want_loss, want = backprop.backward(narrow, small, x, y, l1=0.01, l2=0.02)
    data_loss, penalty, got = backprop.backward_terms(wide, padded, x, y, l1=0.01, l2=0.02, masks=masks)
    auto = jax.grad(lambda p: model.loss(wide, p, x, y, l1=0.01, l2=0.02, masks=masks))(padded)
    np.testing.assert_allclose(data_loss + penalty, want_loss, rtol=1e-12)
    for l, (g, w, a) in enumerate(zip(got, want, auto)):
        rows, cols = w["W"].shape
        np.testing.assert_allclose(g["W"][:rows, :cols], w["W"], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(g["W"], a["W"], rtol=1e-10, atol=1e-14)
        assert not np.any(g["W"][rows:]) and not np.any(g["W"][:, cols:]), f"layer {l}: padded weights move"
        assert not np.any(g["b"][cols:])


@pytest.mark.heavy
def test_gradcheck_covers_masked_networks(capsys):
    assert gradcheck.main(["--sizes", "2,4,4,1", "--activation", "tanh"]) == 0
    assert "masked to 3-3" in capsys.readouterr().out
