"""The benchmark's smoke run, and its NumPy baseline against the engine's own maths."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxbp import bench, data, engine, runner


@pytest.mark.heavy
def test_quick_benchmark_writes_one_row_per_impl(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == bench.COLUMNS
    assert list(table["impl"]) == ["jaxbp_vmap", "jaxbp_sequential", "numpy_batched", "roofline"]
    assert (table["seed_epochs_per_s"] > 0).all() and (table["epochs"] == 50).all()
    printed = capsys.readouterr().out
    assert "vmap ÷ impl" in printed and "roofline" in printed


@pytest.mark.heavy
def test_numpy_baseline_trains_the_same_networks_as_jaxbp():
    # A fair benchmark runs the same maths: the NumPy loop must land on jaxbp's params.
    cfg = bench.job_config(seeds=16, epochs=200, hidden=3)
    result = runner.run(cfg)
    program = runner.program_for(cfg)
    hyper = engine.member_hyper(cfg)
    init = jax.vmap(lambda s: program.init(jax.random.PRNGKey(s), hyper).params)(jnp.arange(16, dtype=jnp.uint32))
    ds = data.load(cfg.data)
    start = [np.asarray(init[0]["W"]), np.asarray(init[0]["b"]), np.asarray(init[1]["W"]), np.asarray(init[1]["b"])]
    final = bench.numpy_train(ds.x_train.astype(np.float32), ds.y_train.astype(np.float32), start, 0.5, 200)
    np.testing.assert_allclose(final[0], result.params[0]["W"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(final[3], result.params[1]["b"], rtol=1e-3, atol=1e-4)


@pytest.mark.heavy
def test_scaling_series_covers_each_power_of_ten():
    series = bench.scaling(epochs=20, hidden=3, max_seeds=100)
    assert list(series["num_seeds"]) == [1, 10, 100]
