"""The classic papers' own procedures (issue 25): criteria on RMS error and total sum of
squares, fixed-order minibatches, restarts, initial weights, error conventions and targets,
each against an independent computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbp import backprop, config, data, engine, job, model, runner
from jaxbp.checks import ConfigError


def _cfg(**values):
    return config.from_dict({"compile_cache": None, "progress": False, **values})


def _sgd_loop(spec, params, x, y, lr, epochs, met):
    """Plain full-batch SGD; the first epoch whose outputs meet ``met``, or -1."""
    forward, backward = jax.jit(model.forward, static_argnums=0), jax.jit(backprop.backward, static_argnums=0)
    for epoch in range(epochs):
        if met(np.asarray(forward(spec, params, x), np.float64)):
            return epoch
        _, grads = backward(spec, params, x, y)
        params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
    return -1


# ---------------------------------------------------------------- criteria rms and tss
@pytest.mark.parametrize("criterion,key,threshold,met", [
    ("tss", "target_tss", 0.9, lambda r: np.sum(r**2) <= 0.9),
    ("rms", "target_rms", 0.47, lambda r: np.sqrt(np.mean(r**2)) <= 0.47),
])
def test_rms_and_tss_criteria_match_a_plain_loop(x64, criterion, key, threshold, met):
    cfg = _cfg(dtype="float64", criterion=criterion, **{key: threshold}, epochs=300, lr=2.0, log_every=1)
    dataset = data.option("xor").load()
    x, y = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    train = engine.make_train(cfg)
    reached = 0
    for seed in range(3):
        key_ = engine.seed_key(seed)
        params = model.init(cfg.spec(2, 1), jax.random.split(key_)[0])
        want = _sgd_loop(cfg.spec(2, 1), params, x, y, 2.0, 300, lambda y_hat: met(y_hat - np.asarray(y)))
        _, metrics = train(key_, 2.0)
        assert int(metrics["epochs_to_target"]) == want, (seed, want)
        reached += want >= 0
    assert reached, "no seed reached the threshold: the comparison would test nothing"


def test_rms_and_tss_thresholds_are_checked():
    for key in ("target_rms", "target_tss"):
        with pytest.raises(ConfigError, match=key):
            _cfg(**{key: -1.0})


@pytest.mark.parametrize("values,words", [
    ({"criterion": "loss", "target_loss": 0.01}, "reached loss ≤ 0.01"),
    ({"criterion": "margin", "margin": 0.4}, "had every output within 0.4 of its target"),
    ({"criterion": "fahlman"}, "had every output right by Fahlman's 40-20-40 rule"),
    ({"criterion": "rms", "target_rms": 0.2}, "reached RMS error ≤ 0.2"),
    ({"criterion": "tss", "target_tss": 0.04}, "reached total sum of squares ≤ 0.04"),
])
def test_summary_line_names_the_criterion_used(values, words):
    cfg = config.result_values(_cfg(**values))
    summary = {"config": cfg, "num_seeds": 10, "spec": [2, 3, 1], "success_rate": 0.5, "success_ci_low": 0.2,
               "success_ci_high": 0.8, "wall_s": 1.0, "compile_s": 0.5}
    line = job.describe(summary, "out")
    assert f"50.0% {words} (95% CI" in line
    if values["criterion"] != "loss":
        assert "loss ≤" not in line


def test_margin_run_writes_its_criterion_to_summary_json(tmp_path):
    cfg = _cfg(criterion="margin", num_seeds=4, epochs=50)
    line = job.train(cfg, tmp_path, [])
    from jaxbp import results

    summary = results.JobDir(tmp_path).summary()
    assert summary["success_criterion"] == "every output within 0.5 of its target"
    assert summary["line"] == line and "had every output within 0.5 of its target" in line
    assert "loss ≤" not in line


# ---------------------------------------------------------------- per-pattern updates, initial params
def _numpy_grads(params, x, y):
    """∂E/∂params of E = ½ Σ_k (ŷ_k − y_k)² for one pattern, sigmoid units throughout,
    written out in NumPy (float64) for a one-hidden-layer net."""
    (W1, b1), (W2, b2) = (params[0]["W"], params[0]["b"]), (params[1]["W"], params[1]["b"])
    h = 1 / (1 + np.exp(-(x @ W1 + b1)))
    y_hat = 1 / (1 + np.exp(-(h @ W2 + b2)))
    delta2 = (y_hat - y) * y_hat * (1 - y_hat)
    delta1 = (delta2 @ W2.T) * h * (1 - h)
    return [{"W": np.outer(x, delta1), "b": delta1}, {"W": np.outer(h, delta2), "b": delta2}]


def _momentum_per_pattern(params, x, y, lr, mu, epochs):
    """PDP's schedule: one update per pattern, in the data's order; optax's heavy ball
    ``v ← g + μ·v``, ``W ← W − lr·v``, with v starting at 0."""
    params = [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]
    velocity = [{k: np.zeros_like(v) for k, v in layer.items()} for layer in params]
    for _ in range(epochs):
        for row in range(len(x)):
            grads = _numpy_grads(params, x[row], y[row])
            for p, v, g in zip(params, velocity, grads):
                for k in p:
                    v[k] = g[k] + mu * v[k]
                    p[k] = p[k] - lr * v[k]
    return params


def test_per_pattern_momentum_cli_equals_a_numpy_loop_from_the_initial_params(tmp_path):
    """The issue's acceptance command, then a NumPy loop from each seed's saved initial
    params: batch_size=1 with loss_reduction=mean is one pattern's own gradient."""
    from cli import run_cli
    from jaxbp import results

    args = ["hidden=2", "lr=0.5", "optim=momentum", "optim.momentum=0.9", "batch_size=1", "shuffle=false",
            "num_seeds=8", "epochs=100", f"hydra.run.dir={tmp_path / 'job'}", "compile_cache=null"]
    done = run_cli("jaxbp.train", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    run = results.load_run(tmp_path / "job")
    x, y = run.dataset.x_train, run.dataset.y_train
    for seed in range(8):
        start = run.initial_params(seed)
        want = _momentum_per_pattern(start, x, y, 0.5, 0.9, 100)
        got = run.params(seed)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            # float32 training against a float64 loop over 400 updates: agreement to 1e-4
            # relative fails for any other order or schedule (the shuffled run differs by O(1)).
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        assert not np.allclose(jax.tree.leaves(start)[0], jax.tree.leaves(got)[0])


def test_shuffle_false_needs_batches_that_tile_the_rows():
    with pytest.raises(ConfigError, match="divisor"):
        runner.run(_cfg(batch_size=3, shuffle=False, num_seeds=2, epochs=2))


def test_initial_params_are_the_engines_draw(tmp_path):
    from jaxbp import results

    cfg = _cfg(num_seeds=3, seed=5, epochs=20)
    job.train(cfg, tmp_path, [])
    run = results.load_run(tmp_path)
    for seed in (5, 7):
        want = model.init(run.spec, jax.random.split(engine.seed_key(seed))[0])
        for g, w in zip(jax.tree.leaves(run.initial_params(seed)), jax.tree.leaves(want)):
            np.testing.assert_array_equal(g, np.asarray(w))


# ---------------------------------------------------------------- restarts
@pytest.mark.heavy
def test_a_restart_is_a_fresh_run_from_the_attempts_own_key():
    """A seed unsolved at epoch 200 restarts once; its last 150 epochs must equal a run
    without restarts from the weights fold_in(init key, 1) and a fresh momentum (a kept
    velocity would differ)."""
    values = dict(hidden=2, lr=1.0, optim={"name": "momentum", "momentum": 0.9}, num_seeds=6)
    restarted = runner.run(_cfg(**values, epochs=350, restart_after=200))
    again = np.flatnonzero(restarted.metrics["attempts"] == 2)
    assert len(again) >= 3 and set(np.unique(restarted.metrics["attempts"])) <= {1, 2}
    spec = _cfg(**values).spec(2, 1)
    fresh = [model.init(spec, jax.random.fold_in(jax.random.split(engine.seed_key(s))[0], 1)) for s in range(6)]
    stacked = jax.tree.map(lambda *leaves: np.stack(leaves), *fresh)
    alone = runner.run(_cfg(**values, epochs=150), init_params=stacked)
    for a, b in zip(jax.tree.leaves(restarted.params), jax.tree.leaves(alone.params)):
        np.testing.assert_allclose(a[again], b[again], rtol=1e-6, atol=1e-7)


@pytest.mark.heavy
def test_restarts_do_not_depend_on_chunking():
    cfg = _cfg(hidden=2, lr=1.0, num_seeds=10, epochs=300, restart_after=70, target_loss=0.1)
    whole = runner.run(cfg)
    chunked = runner.run(_cfg(hidden=2, lr=1.0, num_seeds=10, epochs=300, restart_after=70, target_loss=0.1,
                              max_members_per_chunk=3))
    assert whole.metrics["attempts"].max() > 1
    for k in ("attempts", "epochs_to_target", "final_loss"):
        np.testing.assert_array_equal(whole.metrics[k], chunked.metrics[k])


@pytest.mark.heavy
def test_restarts_raise_xors_success_rate_and_count_every_epoch():
    """The issue's acceptance run: XOR 2-2-1 at lr=1, 6,000 epochs, with and without
    restart_after=2000 (float32, 1,000 seeds)."""
    values = dict(hidden=2, lr=1.0, epochs=6000, num_seeds=1000)
    plain = runner.run(_cfg(**values))
    restarted = runner.run(_cfg(**values, restart_after=2000))
    assert restarted.metrics["converged"].mean() > plain.metrics["converged"].mean()
    attempts, reached = restarted.metrics["attempts"], restarted.metrics["epochs_to_target"]
    again = attempts > 1
    assert again.sum() > 10
    solved = again & (reached >= 0)
    # a restarted seed's epochs_to_target lies after its failed attempts, inside its last
    assert np.all(reached[solved] >= (attempts[solved] - 1) * 2000)
    assert np.all(reached[solved] <= attempts[solved] * 2000)
    np.testing.assert_array_equal(plain.metrics["attempts"], 1)


@pytest.mark.parametrize("values,key", [
    ({"restart_after": 100, "epochs": 100}, "restart_after"),
    ({"restart_after": 0}, "restart_after"),
    ({"restart_after": 10, "patience": 5, "data": {"name": "moons", "test_fraction": 0.25}}, "restart_after"),
    ({"restart_after": 10, "kernel": "pallas"}, "kernel"),
])
def test_restarts_refuse_what_cannot_apply(values, key):
    with pytest.raises(ConfigError) as err:
        runner.run(_cfg(**{"num_seeds": 1, "epochs": 50, **values}))
    assert err.value.key == key


# ---------------------------------------------------------------- Fahlman's error conventions
def test_conventions_train_as_sgd_on_the_bent_loss(x64):
    """50 epochs of full-batch SGD with Fahlman's dead zone and prime offset against a loop
    on jax.grad of gradcheck's independently written bent loss."""
    from jaxbp import gradcheck

    cfg = _cfg(dtype="float64", error_dead_zone=0.1, sigmoid_prime_offset=0.1, lr=2.0, epochs=50, hidden=2)
    spec = cfg.spec(2, 1)
    dataset = cfg.data.load()
    x, y = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    grad = jax.jit(jax.grad(lambda p: gradcheck.bent_loss(spec, p, x, y, 0.1, 0.1)))
    plain = jax.jit(jax.grad(lambda p: model.loss(spec, p, x, y)))
    key = engine.seed_key(3)
    params = bent = model.init(spec, jax.random.split(key)[0])
    for _ in range(50):
        bent = jax.tree.map(lambda p, g: p - 2.0 * g, bent, grad(bent))
        params = jax.tree.map(lambda p, g: p - 2.0 * g, params, plain(params))
    got, _ = engine.make_train(cfg)(key, 2.0)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(bent)):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    assert max(float(jnp.max(jnp.abs(g - p))) for g, p in zip(jax.tree.leaves(got), jax.tree.leaves(params))) > 1e-3


def test_conventions_are_traced_and_refused_where_they_cannot_apply():
    on = _cfg(error_dead_zone=0.1, sigmoid_prime_offset=0.1)
    assert config.shape_key(on) == config.shape_key(_cfg(error_dead_zone=0.2, sigmoid_prime_offset=0.05))
    assert config.shape_key(on) != config.shape_key(_cfg())
    for values, key in [({"error_dead_zone": 0.1, "loss": "bce"}, "error_dead_zone"),
                        ({"sigmoid_prime_offset": 0.1, "grad": "autodiff"}, "sigmoid_prime_offset"),
                        ({"sigmoid_prime_offset": 0.1, "activation": "tanh", "output": "identity"},
                         "sigmoid_prime_offset"),
                        ({"error_dead_zone": -0.1}, "error_dead_zone")]:
        with pytest.raises(ConfigError) as err:
            _cfg(**values)
        assert err.value.key == key
    with pytest.raises(ConfigError, match="kernel"):
        runner.run(_cfg(error_dead_zone=0.1, kernel="pallas", num_seeds=1, epochs=2))


# ---------------------------------------------------------------- targets
def test_targets_map_class_targets_and_train_from_the_cli(tmp_path):
    from cli import run_cli
    from jaxbp import results

    encoder = data.option("encoder", bits=4, targets=[0.1, 0.9]).load()
    np.testing.assert_array_equal(encoder.y_train, 0.1 + 0.8 * np.eye(4))
    xor = data.option("xor", targets=[0.2, 0.8]).load()
    np.testing.assert_array_equal(xor.y_train[:, 0], [0.2, 0.8, 0.8, 0.2])
    done = run_cli("jaxbp.train", "data.targets=[0.1,0.9]", "num_seeds=4", "epochs=20", "compile_cache=null",
                   f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    run = results.load_run(tmp_path / "job")
    assert run.cfg.data.targets == (0.1, 0.9)
    np.testing.assert_array_equal(run.dataset.y_train[:, 0], [0.1, 0.9, 0.9, 0.1])


@pytest.mark.parametrize("name,values,loss", [
    ("xor", {"targets": [0.6, 0.9]}, "mse"),
    ("xor", {"targets": [0.1]}, "mse"),
    ("iris", {"targets": [0.1, 0.9]}, "ce"),
])
def test_bad_targets_are_refused(name, values, loss):
    with pytest.raises(ConfigError, match="data.targets"):
        data.option(name, **values).load(loss)


# ---------------------------------------------------------------- fusion
@pytest.mark.heavy
def test_new_traced_values_fuse_and_equal_their_jobs_run_alone(tmp_path):
    """Quickprop's μ and decay, the dead zone and the tss threshold differ only in traced
    values: one fused program (with restarts on), the same numbers as each job alone."""
    import pandas as pd

    from cli import run_cli

    args = ["-m", "optim=quickprop", "optim.max_growth=1.5,1.75", "optim.decay=0,0.0001", "error_dead_zone=0.05,0.1",
            "criterion=tss", "target_tss=0.5,0.9", "restart_after=40", "num_seeds=6", "epochs=100", "progress=false",
            "lr=1.0", "compile_cache=null"]
    fused = run_cli("jaxbp.train", *args, f"hydra.sweep.dir={tmp_path / 'fused'}", cwd=tmp_path)
    assert fused.returncode == 0, fused.stderr[-2000:]
    assert "Launching 16 jobs as 1 fused program(s)" in fused.stdout + fused.stderr
    alone = run_cli("jaxbp.train", *args, "hydra/launcher=basic", f"hydra.sweep.dir={tmp_path / 'alone'}",
                    cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-2000:]
    a, b = (pd.read_csv(tmp_path / d / "sweep_seeds.csv") for d in ("fused", "alone"))
    assert len(a) == len(b) == 96 and (a["attempts"] > 1).any()
    np.testing.assert_allclose(a["final_loss"], b["final_loss"], rtol=1e-5)
    assert (a["attempts"] == b["attempts"]).all() and (a["converged"] == b["converged"]).all()


def test_seed_figure_draws_no_target_loss_under_another_criterion():
    import pandas as pd

    from jaxbp import figures

    curve = pd.DataFrame({"epoch": [0, 10, 20], "loss": [0.2, 0.1, 0.05]})
    units = {"output": np.array([[0.2], [0.8]]), "target": np.array([[0.0], [1.0]])}
    margin = figures.seed_figure(curve, 20, None, None, units, "margin job")
    loss = figures.seed_figure(curve, 20, 0.01, None, units, "loss job")
    assert margin.axes[0].get_title() == "train loss" and not margin.axes[0].lines[1:]
    assert loss.axes[0].get_title() == "train loss (dashed: target 0.01)" and len(loss.axes[0].lines) == 2


def test_conventions_that_are_off_leave_the_backward_untouched(monkeypatch):
    """Off means the plain backward, operation for operation (a traced zero would add
    '+ 0' terms and move float32 results by an ulp): the engine must pass static zeros."""
    seen = []
    real = backprop.backward_terms

    def spy(*args, **kwargs):
        seen.append((kwargs.get("dead_zone"), kwargs.get("prime_offset")))
        return real(*args, **kwargs)

    monkeypatch.setattr(backprop, "backward_terms", spy)
    runner.run(_cfg(num_seeds=2, epochs=3, hidden=4))
    assert seen and all(type(d) is float and d == 0 and type(p) is float and p == 0 for d, p in seen)
