"""The training engine against independent truths: a hand-written SGD loop, jax.grad,
single-seed runs, and XLA's own count of compilations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbp import backprop, config, engine, model, runner

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float64)


def make_cfg(**values):
    return config.from_dict({"compile_cache": None, "progress": False, **values})


def test_sgd_matches_the_articles_update_rule(x64):
    # W ← W − α ∂E/∂W written out with plain numpy-style jax ops, independent of optax.
    cfg = make_cfg(dtype="float64", epochs=7, log_every=1, lr=0.7)
    spec = model.Spec((2, 3, 1))
    params = model.init(spec, jax.random.split(engine.seed_key(4))[0], "normal", 1.0, "zeros")
    curve = []
    for _ in range(7):
        value, grads = backprop.backward(spec, params, jnp.asarray(XOR_X), jnp.asarray(XOR_Y))
        curve.append(float(value))
        params = jax.tree.map(lambda p, g: p - 0.7 * g, params, grads)
    got_params, metrics = engine.make_train(cfg)(engine.seed_key(4), 0.7)
    np.testing.assert_allclose(metrics["curve"], curve, rtol=1e-12)
    for got, want in zip(jax.tree.leaves(got_params), jax.tree.leaves(params)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("optim", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("data", [{"name": "xor"}, {"name": "moons", "n_samples": 40, "standardize": True}])
def test_manual_and_autodiff_trajectories_agree_float64(x64, optim, data):
    values = dict(dtype="float64", epochs=100, log_every=1, lr=0.3, l2=0.01, optim={"name": optim},
                  data=data, activation="tanh")
    manual = engine.make_train(make_cfg(**values, grad="manual"))
    auto = engine.make_train(make_cfg(**values, grad="autodiff"))
    keys = jax.vmap(engine.seed_key)(jnp.arange(3))
    p_m, m_m = jax.vmap(manual, in_axes=(0, None))(keys, 0.3)
    p_a, m_a = jax.vmap(auto, in_axes=(0, None))(keys, 0.3)
    np.testing.assert_allclose(m_m["curve"], m_a["curve"], rtol=1e-9, atol=1e-12)
    for a, b in zip(jax.tree.leaves(p_m), jax.tree.leaves(p_a)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_seed_alone_equals_seed_in_a_big_batch():
    cfg = make_cfg(num_seeds=10_000, epochs=200, curve_seeds=0)
    batch = runner.run(cfg)
    for seed in (0, 4321, 9999):
        alone = runner.run(make_cfg(num_seeds=1, seed=seed, epochs=200, curve_seeds=0))
        for name in ("final_loss", "train_acc"):
            np.testing.assert_allclose(alone.metrics[name][0], batch.metrics[name][seed], rtol=1e-5)
        for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(batch.params)):
            np.testing.assert_allclose(a[0], b[seed], rtol=1e-5, atol=1e-6)


def test_runner_matches_make_train_including_curve():
    cfg = make_cfg(num_seeds=5, epochs=95, log_every=10, curve_seeds=5)
    result = runner.run(cfg)
    _, metrics = jax.jit(engine.make_train(cfg))(engine.seed_key(3), cfg.lr)
    np.testing.assert_allclose(result.curves[3, :-1], metrics["curve"], rtol=1e-6)
    assert list(result.curve_epochs) == list(range(0, 95, 10)) + [95]
    np.testing.assert_allclose(result.metrics["final_loss"][3], metrics["final_loss"], rtol=1e-6)


def test_new_lr_or_new_seeds_do_not_recompile():
    compiles = []

    def listener(event, secs, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        first = runner.run(make_cfg(num_seeds=64, epochs=50, lr=0.3, hidden=5))
        before = len(compiles)
        second = runner.run(make_cfg(num_seeds=64, epochs=50, lr=2.0, seed=1000, hidden=5,
                                     target_loss=0.2, init={"scale": 2.0}))
        assert len(compiles) == before, "new traced values (lr, seeds, target, init scale) never recompile"
        assert second.compile_s == 0.0 and first.compile_s > 0.0
        runner.run(make_cfg(num_seeds=64, epochs=50, lr=0.3, hidden=6))  # a new shape compiles
        assert len(compiles) > before
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_huge_lr_diverges_without_crashing_or_disturbing_others():
    values = dict(num_seeds=8, epochs=50, activation="identity", output="identity")
    huge = runner.run(make_cfg(**values, lr=1e4))
    assert huge.metrics["diverged"].all()
    assert not huge.metrics["converged"].any()
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(huge.params)), \
        "a diverged seed keeps its last finite params"
    # Mixed lrs in one program: the diverging members leave the others untouched.
    mixed = runner.run(make_cfg(**values, lr=0.1), lrs=np.array([0.1, 1e4] * 4))
    calm = runner.run(make_cfg(**values, lr=0.1))
    assert list(mixed.metrics["diverged"]) == [False, True] * 4
    np.testing.assert_allclose(mixed.metrics["final_loss"][::2], calm.metrics["final_loss"][::2], rtol=1e-6)


def test_full_batch_equals_one_minibatch_of_everything(x64):
    base = dict(dtype="float64", epochs=30, data={"name": "parity", "bits": 3})
    full = runner.run(make_cfg(**base, num_seeds=4))
    mini = runner.run(make_cfg(**base, num_seeds=4, batch_size=8))  # a permutation of all rows
    np.testing.assert_allclose(full.metrics["final_loss"], mini.metrics["final_loss"], rtol=1e-10)


def test_minibatches_differ_per_seed_and_train():
    cfg = make_cfg(num_seeds=16, epochs=300, lr=0.5, batch_size=16,
                   data={"name": "moons", "n_samples": 100, "standardize": True})
    result = runner.run(cfg)
    assert np.median(result.metrics["final_loss"]) < 0.5 * result.curves[:, 0].mean()


def test_early_stopping_freezes_and_keeps_best_params():
    values = dict(num_seeds=8, epochs=400, lr=2.0, hidden=16, optim={"name": "adam"}, curve_seeds=8,
                  data={"name": "moons", "n_samples": 60, "noise": 0.4, "test_fraction": 0.5,
                        "standardize": True})
    stopped = runner.run(make_cfg(**values, patience=5))
    free = runner.run(make_cfg(**values))
    # Early stopping returns the best-test-loss params, so its test loss cannot be worse
    # than where training ended without it (up to float32 rounding).
    assert (stopped.metrics["test_loss"] <= free.metrics["test_loss"] + 1e-6).all()
    assert (stopped.metrics["test_loss"] < free.metrics["test_loss"] - 1e-3).any()
    # A frozen member's train loss stops changing: its curve ends flat.
    assert (np.abs(np.diff(stopped.curves[:, -10:-1], axis=1)) == 0).all(axis=1).any()


def test_epochs_to_target_is_first_epoch_at_or_below_target():
    cfg = make_cfg(num_seeds=20, epochs=3000, log_every=1, curve_seeds=20, lr=2.0)
    result = runner.run(cfg)
    for row, curve in enumerate(result.curves):
        below = np.flatnonzero(curve <= cfg.target_loss)
        expected = result.curve_epochs[below[0]] if len(below) else -1
        assert result.metrics["epochs_to_target"][row] == expected
    assert (result.metrics["converged"] == (result.metrics["final_loss"] <= cfg.target_loss)).all()


def test_float64_without_x64_is_refused():
    with pytest.raises(config.ConfigError, match="dtype"):
        engine.make_program(make_cfg(dtype="float64"))


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(runner, "PROGRESS_DELAY_S", 0.0)
    runner.run(make_cfg(num_seeds=4, epochs=200, log_every=10), progress=True)
    shown = capsys.readouterr().err
    assert "/200" in shown and "epoch/s" in shown  # drawn (and cleared at the end)
    runner.run(make_cfg(num_seeds=4, epochs=200, log_every=10))  # progress=False in make_cfg
    runner.run(make_cfg(num_seeds=4, epochs=200, log_every=10, progress=True))  # not a TTY
    assert capsys.readouterr().err == ""


def test_accuracy_against_known_values():
    spec = model.Spec((1, 2))
    params = [{"W": jnp.array([[1.0, -1.0]]), "b": jnp.zeros(2)}]  # class 0 for x > 0
    x = jnp.array([[1.0], [2.0], [-1.0], [-3.0]])
    y = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # argmax: 0, 1, 1, 1
    assert float(engine.accuracy(spec, params, x, y)) == 0.75
    one = model.Spec((1, 1))
    params = [{"W": jnp.array([[10.0]]), "b": jnp.zeros(1)}]  # sigmoid(10x) > 0.5 iff x > 0
    y1 = jnp.array([[1.0], [0.0], [0.0], [1.0]])
    assert float(engine.accuracy(one, params, x, y1)) == 0.5


def _optax_loop(optimizer, cfg, seed, epochs):
    """Full-batch training with optax written out directly, independent of the engine."""
    import optax

    spec = cfg.spec(2, 1)
    x, y = jnp.asarray(XOR_X), jnp.asarray(XOR_Y)
    params = model.init(spec, jax.random.split(engine.seed_key(seed))[0])
    state = optimizer.init(params)
    for _ in range(epochs):
        grads = jax.grad(lambda p: model.loss(spec, p, x, y, l1=cfg.l1, l2=cfg.l2))(params)
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name,values,make", [
    ("rmsprop", {"decay": 0.8, "eps": 1e-6}, lambda o: __import__("optax").rmsprop(0.05, decay=0.8, eps=1e-6)),
    ("nesterov", {"momentum": 0.7}, lambda o: __import__("optax").sgd(0.05, momentum=0.7, nesterov=True)),
    ("sgd", {}, lambda o: __import__("optax").sgd(0.05)),
])
def test_optimisers_and_l1_train_as_optax_says(x64, name, values, make):
    cfg = make_cfg(dtype="float64", lr=0.05, epochs=40, l1=0.01, optim={"name": name, **values})
    want = _optax_loop(make(None), cfg, seed=2, epochs=40)
    got, _ = engine.make_train(cfg)(engine.seed_key(2), 0.05)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
