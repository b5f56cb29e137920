"""The classic papers' conventions: success criteria, summed losses, shortcut weights and
the encoder problem, each against an independent computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbp import backprop, config, data, engine, model, runner


def _cfg(**values):
    return config.from_dict({"compile_cache": None, "progress": False, **values})


def _python_loop(spec, params, x, y, lr, epochs, met):
    """Plain SGD, epoch by epoch; returns the first epoch whose params meet ``met``."""
    for epoch in range(epochs):
        if met(np.asarray(model.forward(spec, params, x))):
            return epoch
        _, grads = backprop.backward(spec, params, x, y)
        params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
    return -1


@pytest.mark.heavy
@pytest.mark.parametrize("criterion,met", [
    ("margin", lambda y_hat, y: np.all(np.abs(y_hat - y) < 0.5)),
    ("fahlman", lambda y_hat, y: np.all(np.where(y > 0.5, y_hat > 0.6, y_hat < 0.4))),
])
def test_criteria_match_a_plain_loop(x64, criterion, met):
    cfg = _cfg(dtype="float64", criterion=criterion, epochs=300, lr=2.0, log_every=1)
    dataset = data.option("xor").load()
    x, y = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    train = engine.make_train(cfg)
    for seed in range(4):
        key = engine.seed_key(seed)
        params = model.init(cfg.spec(2, 1), jax.random.split(key)[0])
        want = _python_loop(cfg.spec(2, 1), params, x, y, 2.0, 300, lambda y_hat: met(y_hat, np.asarray(y)))
        _, metrics = train(key, 2.0)
        got = int(metrics["epochs_to_target"])
        assert got == want, (seed, got, want)
        assert bool(metrics["converged"]) == (want >= 0)


def test_summed_loss_is_the_mean_at_n_times_the_learning_rate(x64):
    mean = runner.run(_cfg(dtype="float64", num_seeds=8, epochs=200, lr=2.0))
    summed = runner.run(_cfg(dtype="float64", num_seeds=8, epochs=200, lr=0.5, loss_reduction="sum"))
    for a, b in zip(jax.tree.leaves(mean.params), jax.tree.leaves(summed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    np.testing.assert_allclose(summed.metrics["final_loss"], 4 * mean.metrics["final_loss"], rtol=1e-9)


def test_shortcuts_let_a_2_1_1_net_solve_xor():
    result = runner.run(_cfg(hidden=1, shortcuts=True, criterion="margin", num_seeds=64, epochs=3000,
                             lr=2.0, optim={"name": "momentum", "momentum": 0.9}))
    assert result.params[1]["S"].shape == (64, 2, 1)
    assert result.metrics["converged"].mean() > 0.5
    plain = runner.run(_cfg(hidden=1, criterion="margin", num_seeds=64, epochs=3000, lr=2.0,
                            optim={"name": "momentum", "momentum": 0.9}))
    assert plain.metrics["converged"].mean() == 0.0, "one hidden unit without shortcuts cannot solve XOR"


def test_shortcut_gradient_matches_autodiff(x64):
    spec = model.Spec((3, 2, 2), "tanh", "sigmoid", "bce", reduction="sum", shortcuts=True)
    params = model.init(spec, jax.random.PRNGKey(2), bias="same")
    x = jax.random.normal(jax.random.PRNGKey(3), (5, 3))
    y = jax.random.uniform(jax.random.PRNGKey(4), (5, 2))
    _, grads = backprop.backward(spec, params, x, y, l1=0.01, l2=0.1)
    auto = jax.grad(lambda p: model.loss(spec, p, x, y, l1=0.01, l2=0.1))(params)
    np.testing.assert_allclose(grads[-1]["S"], auto[-1]["S"], rtol=1e-12)


def test_encoder_is_n_one_hot_patterns_to_themselves():
    ds = data.option("encoder", bits=8).load()
    np.testing.assert_array_equal(ds.x_train, np.eye(8))
    np.testing.assert_array_equal(ds.y_train, np.eye(8))
    with pytest.raises(config.ConfigError, match="data.bits"):
        data.option("encoder", bits=2)


def test_shortcuts_need_a_hidden_layer():
    with pytest.raises(config.ConfigError, match="shortcuts"):
        _cfg(depth=0, shortcuts=True)


def test_symmetry_marks_the_mirror_images():
    ds = data.option("symmetry", bits=6).load()
    assert ds.x_train.shape == (64, 6) and ds.y_train.sum() == 8  # 2**3 palindromes of 6 bits
    for x, y in zip(ds.x_train, ds.y_train[:, 0]):
        assert y == float((x == x[::-1]).all())


def test_every_reproduction_composes():
    from hydra import compose, initialize_config_dir

    from jaxbp import app, paths

    app.register()
    names = sorted(p.stem for p in (paths.EXPERIMENTS_DIR / "reproductions").glob("*.yaml"))
    assert len(names) >= 3
    with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base="1.3"):
        for name in names:
            cfg = app.to_run_config(compose(config_name="config", overrides=[f"+experiment=reproductions/{name}"]))
            assert cfg.loss_reduction == "sum" and cfg.init.bias == "same"
