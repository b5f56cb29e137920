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
