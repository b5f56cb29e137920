"""Rprop and Quickprop against NumPy loops written here from the papers' rules, element by
element with Python branches (not the library's vectorised form)."""

import jax
import numpy as np
import pytest

from jaxbp import backprop, config, engine, model, optim, runner
from jaxbp.checks import ConfigError

EPOCHS = 50


def _cfg(**values):
    return config.from_dict({"compile_cache": None, "progress": False, "dtype": "float64", **values})


def _grads(spec, params, x, y):
    """∂E/∂params from jaxbp's hand-derived backward (test_backprop checks it against
    jax.grad): here the update rules are under test, and Quickprop's secant step
    S/(P − S) would magnify the ulps of another summation order to 1e-4 in 50 epochs."""
    return jax.tree.map(np.asarray, _backward(spec, params, x, y)[1])


_backward = jax.jit(backprop.backward, static_argnums=0)


def _flat(params):
    return np.concatenate([np.ravel(params[l][k]) for l in range(len(params)) for k in ("W", "b")])


def _unflat(vector, like):
    out, at = [], 0
    for layer in like:
        out.append({})
        for k in ("W", "b"):
            size = np.size(layer[k])
            out[-1][k] = vector[at:at + size].reshape(np.shape(layer[k]))
            at += size
    return out


def _rprop_numpy(params, x, y, spec, delta0, backtracking, eta_plus=1.2, eta_minus=0.5, lo=1e-6, hi=50.0):
    """Riedmiller & Braun (1993), one weight at a time."""
    w = _flat(params)
    step, prev_g, prev_dw = np.full_like(w, delta0), np.zeros_like(w), np.zeros_like(w)
    for _ in range(EPOCHS):
        g = _flat(_grads(spec, _unflat(w, params), x, y))
        for i in range(len(w)):
            if g[i] * prev_g[i] > 0:
                step[i] = min(step[i] * eta_plus, hi)
                dw = -np.sign(g[i]) * step[i]
                prev_g[i] = g[i]
            elif g[i] * prev_g[i] < 0:
                step[i] = max(step[i] * eta_minus, lo)
                dw = -prev_dw[i] if backtracking else 0.0
                prev_g[i] = 0.0
            else:
                dw = -np.sign(g[i]) * step[i]
                prev_g[i] = g[i]
            w[i] += dw
            prev_dw[i] = dw
    return _unflat(w, params)


def _quickprop_numpy(params, x, y, spec, eps, mu=1.75, decay=1e-4, mode="same_sign"):
    """Fahlman (1988), in the form of his simulator's update (one weight at a time)."""
    shrink = mu / (1 + mu)
    w = _flat(params)
    prev_slope, prev_step = np.zeros_like(w), np.zeros_like(w)
    for _ in range(EPOCHS):
        g = _flat(_grads(spec, _unflat(w, params), x, y))
        for i in range(len(w)):
            s, p, d = g[i] + decay * w[i], prev_slope[i], prev_step[i]
            step = 0.0
            if d < 0:
                if mode == "always" or (mode == "same_sign" and s > 0):
                    step -= eps * s
                step += mu * d if (s >= shrink * p or p == s) else d * s / (p - s)
            elif d > 0:
                if mode == "always" or (mode == "same_sign" and s < 0):
                    step -= eps * s
                step += mu * d if (s <= shrink * p or p == s) else d * s / (p - s)
            else:
                step = -eps * s
            w[i] += step
            prev_slope[i], prev_step[i] = s, step
    return _unflat(w, params)


CASES = [
    # A step bound of 1 keeps the sigmoids out of saturation, where gradients that round to
    # zero in one summation order and not in the other would flip Rprop's sign tests.
    ("rprop", {"backtracking": True, "max_step_size": 1.0}, 0.1,
     lambda p, x, y, s: _rprop_numpy(p, x, y, s, 0.1, True, hi=1.0)),
    ("rprop", {"backtracking": False, "max_step_size": 1.0, "eta_plus": 1.3}, 0.05,
     lambda p, x, y, s: _rprop_numpy(p, x, y, s, 0.05, False, eta_plus=1.3, hi=1.0)),
    ("quickprop", {}, 2.0, lambda p, x, y, s: _quickprop_numpy(p, x, y, s, 2.0)),
    ("quickprop", {"gradient_term": "always", "max_growth": 1.5, "decay": 0.0}, 2.0,
     lambda p, x, y, s: _quickprop_numpy(p, x, y, s, 2.0, mu=1.5, decay=0.0, mode="always")),
]


@pytest.mark.parametrize("name,values,lr,reference", CASES)
def test_optimiser_equals_a_numpy_loop_over_50_epochs(x64, name, values, lr, reference):
    cfg = _cfg(optim={"name": name, **values}, lr=lr, epochs=EPOCHS, hidden=3)
    dataset = cfg.data.load()
    spec = cfg.spec(2, 1)
    train = engine.make_train(cfg)
    for seed in range(3):
        key = engine.seed_key(seed)
        start = jax.tree.map(np.asarray, model.init(spec, jax.random.split(key)[0]))
        want = reference(start, dataset.x_train, dataset.y_train, spec)
        got, _ = train(key, lr)
        assert not np.allclose(_flat(want), _flat(start))
        # float64 both ways, the same gradients. XLA on x86 fuses a multiply and an add into
        # one rounding (the CLI turns that off, pytest does not), and Quickprop's secant step
        # S/(P − S) magnifies those ulps up to 6e-6 over 50 epochs (without FMA this passes
        # at 1e-9); the other gradient-term rule, below, is off by more than 1e-2.
        np.testing.assert_allclose(_flat(jax.tree.map(np.asarray, got)), _flat(want), rtol=1e-4, atol=1e-8)


def test_rprop_initial_step_is_each_members_lr(x64):
    """lr is read when the optimiser state is made: two members with different lr differ."""
    cfg = _cfg(optim={"name": "rprop"}, epochs=1, num_seeds=1)
    result = runner.run(cfg, seeds=[0, 0], lrs=[0.1, 0.3])
    start = model.init(cfg.spec(2, 1), jax.random.split(engine.seed_key(0))[0])
    moved = [np.abs(_flat(jax.tree.map(lambda a, i=i: a[i], result.params)) - _flat(start)) for i in (0, 1)]
    np.testing.assert_allclose(moved[0][moved[0] > 0], 0.1)
    np.testing.assert_allclose(moved[1][moved[1] > 0], 0.3)


def test_traced_hyperparameters_share_one_program():
    base = _cfg(optim={"name": "quickprop"}, dtype="float32")
    other = _cfg(optim={"name": "quickprop", "max_growth": 2.0, "decay": 0.0}, dtype="float32", lr=0.1)
    assert config.shape_key(base) == config.shape_key(other)
    rprop = _cfg(optim={"name": "rprop", "eta_plus": 1.3, "max_step_size": 10.0}, dtype="float32")
    assert config.shape_key(rprop) == config.shape_key(_cfg(optim={"name": "rprop"}, dtype="float32"))
    assert config.shape_key(base) != config.shape_key(_cfg(optim={"name": "quickprop", "gradient_term": "never"},
                                                           dtype="float32"))


@pytest.mark.parametrize("values,key", [
    ({"optim": {"name": "rprop", "eta_plus": 0.9}}, "optim.eta_plus"),
    ({"optim": {"name": "rprop", "eta_minus": 1.0}}, "optim.eta_minus"),
    ({"optim": {"name": "rprop", "min_step_size": 1.0, "max_step_size": 0.5}}, "optim.max_step_size"),
    ({"optim": {"name": "quickprop", "max_growth": 0}}, "optim.max_growth"),
    ({"optim": {"name": "quickprop", "gradient_term": "sometimes"}}, "optim.gradient_term"),
    ({"optim": {"name": "quickprop"}, "batch_size": 2}, "batch_size"),
    ({"optim": {"name": "rprop"}, "batch_size": 1}, "batch_size"),
    ({"optim": {"name": "rprop"}, "kernel": "pallas"}, "kernel"),
])
def test_bad_values_are_refused(values, key):
    with pytest.raises(ConfigError) as err:
        runner.run(_cfg(dtype="float32", num_seeds=1, epochs=1, **values))
    assert err.value.key == key


def test_optax_rprop_is_one_step_late():
    """Why jaxbp has its own Rprop: optax 0.2.8's emits each step one call late (its first
    update is zero). If this starts failing, optax has fixed it (optax#1725)."""
    import jax.numpy as jnp
    import optax

    tx = optax.rprop(0.1)
    state = tx.init(jnp.zeros(1))
    first, state = tx.update(jnp.ones(1), state)
    ours = optim.rprop(0.1)
    first_ours, _ = ours.update(jnp.ones(1), ours.init(jnp.zeros(1)))
    assert float(first[0]) == 0.0 and float(first_ours[0]) == pytest.approx(-0.1)


def test_the_gradient_term_rule_matters(x64):
    """What makes the 1e-4 above discriminating: Fahlman's same-sign rule against adding the
    gradient term always, from the same start."""
    cfg = _cfg(optim={"name": "quickprop"}, lr=2.0, epochs=EPOCHS)
    spec, dataset = cfg.spec(2, 1), cfg.data.load()
    key = engine.seed_key(0)
    start = jax.tree.map(np.asarray, model.init(cfg.spec(2, 1), jax.random.split(key)[0]))
    got, _ = engine.make_train(cfg)(key, 2.0)
    other = _quickprop_numpy(start, dataset.x_train, dataset.y_train, spec, 2.0, mode="always")
    assert np.max(np.abs(_flat(jax.tree.map(np.asarray, got)) - _flat(other))) > 1e-2


@pytest.mark.heavy
@pytest.mark.parametrize("optim_values,lr,extra,least", [
    ({"name": "rprop"}, 0.1, {}, 0.5),
    ({"name": "quickprop"}, 1.5, {"loss_reduction": "sum"}, 0.9),
])
def test_rprop_and_quickprop_train_the_8_3_8_encoder(optim_values, lr, extra, least):
    """Measured with 100 seeds and 1,000 epochs: Rprop 72% (median 37 epochs), Quickprop
    with Fahlman's summed error and ε = 1.5 100% (median 28); here 40 seeds, 400 epochs."""
    cfg = config.from_dict({"compile_cache": None, "progress": False, "data": {"name": "encoder", "bits": 8},
                            "hidden": 3, "criterion": "fahlman", "optim": optim_values, "lr": lr, "num_seeds": 40,
                            "epochs": 400, **extra})
    result = runner.run(cfg)
    assert result.metrics["converged"].mean() >= least
