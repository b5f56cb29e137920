"""Reading results back: ``load_run`` gives the params, config and data a job trained with,
so the params reproduce the losses in ``seeds.csv``; anything that is not a complete job dir
is refused with one line; ``load_sweep`` gives a sweep's tables and one Run per job."""

import shutil

import jax
import numpy as np
import pytest

from cli import run_cli
from jaxbp import config, job, model, results

# final_loss is computed by the vmapped float32 program; recomputing it here in float32
# with the same formulas but another order of operations differs by a few ulp, so a
# relative 1e-5 (≈ 80 float32 ulp) passes only if the params and data are the ones trained.
RTOL, ATOL = 1e-5, 1e-7
# Compiled once per shape: eager mode would compile every small operation on its own.
forward = jax.jit(model.forward, static_argnums=0)
loss = jax.jit(model.loss, static_argnums=0)


def _train(tmp_path_factory, name: str, values: dict):
    cfg = config.from_dict({"progress": False, "compile_cache": None, **values})
    path = tmp_path_factory.mktemp(name) / "job"
    job.train(cfg, path, [], None)
    return cfg, path


@pytest.fixture(scope="module")
def xor_job(tmp_path_factory):
    """Full batch, no test split: the article's data on 2-2-1 networks."""
    return _train(tmp_path_factory, "xor", {"hidden": 2, "lr": 1.0, "num_seeds": 12, "epochs": 300})


@pytest.fixture(scope="module")
def moons_job(tmp_path_factory):
    """A 25% test split, standardised inputs, seeds that do not start at 0."""
    return _train(tmp_path_factory, "moons", {"data": {"name": "moons", "n_samples": 60}, "hidden": 4,
                                              "lr": 2.0, "num_seeds": 6, "seed": 100, "epochs": 200})


def _mse(spec, params, x, y) -> float:
    """E = (1/n) Σ ½ (ŷ − y)², from model.forward (the README's definition of mse)."""
    y_hat = np.asarray(forward(spec, params, x.astype(np.float32)), np.float64)
    return 0.5 * float(np.sum((y_hat - y) ** 2)) / len(x)


def _accuracy(spec, params, x, y) -> float:
    y_hat = np.asarray(forward(spec, params, x.astype(np.float32)))
    return float(np.mean((y_hat[:, 0] > 0.5) == (y[:, 0] > 0.5)))


@pytest.mark.parametrize("which", ["xor_job", "moons_job"])
def test_params_reproduce_every_seeds_recorded_losses(request, which):
    cfg, path = request.getfixturevalue(which)
    run = results.load_run(path)
    data = run.dataset
    assert list(run.seeds["seed"]) == list(range(cfg.seed, cfg.seed + cfg.num_seeds))
    assert run.seeds["final_loss"].nunique() == cfg.num_seeds  # each seed its own numbers
    for row in run.seeds.itertuples():
        params = run.params(row.seed)
        x, y = data.x_train.astype(np.float32), data.y_train.astype(np.float32)
        assert _mse(run.spec, params, data.x_train, data.y_train) == pytest.approx(row.final_loss, RTOL, ATOL)
        assert float(loss(run.spec, params, x, y)) == pytest.approx(row.final_loss, RTOL, ATOL)
        assert _accuracy(run.spec, params, data.x_train, data.y_train) == pytest.approx(row.train_acc, abs=1e-6)
        if data.has_test:
            assert _mse(run.spec, params, data.x_test, data.y_test) == pytest.approx(row.test_loss, RTOL, ATOL)
            assert _accuracy(run.spec, params, data.x_test, data.y_test) == pytest.approx(row.test_acc, abs=1e-6)
        else:
            assert np.isnan(row.test_loss) and np.isnan(row.test_acc)


@pytest.mark.parametrize("which", ["xor_job", "moons_job"])
def test_config_spec_and_data_round_trip(request, which):
    cfg, path = request.getfixturevalue(which)
    run = results.load_run(path)
    assert run.cfg == cfg
    expected = cfg.data.load(cfg.loss)
    assert run.spec == cfg.spec(expected.x_train.shape[1], expected.y_train.shape[1])
    assert (run.dataset.name, run.dataset.classes) == (expected.name, expected.classes)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(run.dataset, key), getattr(expected, key), err_msg=key)


def test_moons_job_saw_a_standardised_split(moons_job):
    """The case the round trip must get right: data the job split and scaled itself."""
    run = results.load_run(moons_job[1])
    assert len(run.dataset.x_test) == 15 and len(run.dataset.x_train) == 45  # 25% of 60
    np.testing.assert_allclose(run.dataset.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(run.dataset.x_train.std(axis=0), 1.0, rtol=1e-12)


def _missing_dir(tmp_path, job_dir):
    return tmp_path / "nothing-here"


def _a_file(tmp_path, job_dir):
    path = tmp_path / "seeds.csv"
    shutil.copy(job_dir / "seeds.csv", path)
    return path


def _empty_dir(tmp_path, job_dir):
    path = tmp_path / "empty"
    path.mkdir()
    return path


def _copy(tmp_path, job_dir):
    copy = tmp_path / "copy"
    shutil.copytree(job_dir, copy)
    results.load_run(copy)  # the copy itself is complete
    return copy


def _without_marker(tmp_path, job_dir):
    copy = _copy(tmp_path, job_dir)
    (copy / results.MARKER).unlink()
    return copy


def _seeds_altered(tmp_path, job_dir):
    """Seed 0's final_loss changed in its last digit: same size, so only the hash can tell."""
    copy = _copy(tmp_path, job_dir)
    seeds = copy / "seeds.csv"
    header, first, *rest = seeds.read_text().splitlines(keepends=True)
    seed, loss, *others = first.split(",")
    loss = loss[:-1] + ("2" if loss[-1] == "1" else "1")
    seeds.write_text("".join([header, ",".join([seed, loss, *others]), *rest]))
    return copy


BAD_DIRS = {
    "missing dir": (_missing_dir, "is not a directory"),
    "a file": (_a_file, "is not a directory"),
    "empty dir": (_empty_dir, r"\(no marker\)"),
    "no COMPLETE marker": (_without_marker, r"\(no marker\)"),
    "seeds.csv altered": (_seeds_altered, r"seeds\.csv changed since it was written"),
}


@pytest.mark.parametrize("case", list(BAD_DIRS))
def test_load_run_refuses_what_is_not_a_complete_job(xor_job, tmp_path, case):
    make, message = BAD_DIRS[case]
    path = make(tmp_path, xor_job[1])
    with pytest.raises(results.ResultsError, match=message) as refused:
        results.load_run(path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)


def test_unknown_seed_is_refused_with_the_range(xor_job):
    run = results.load_run(xor_job[1])
    with pytest.raises(results.ResultsError, match=r"seed 99 is not in .*seeds 0–11"):
        run.params(99)


def test_load_sweep_gives_tables_and_one_run_per_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("jaxbp.train", "-m", "lr=0.1,1", "num_seeds=8", "epochs=50",
                   f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sweep = results.load_sweep(sweep_dir)
    assert sorted(sweep.table["lr"]) == [0.1, 1.0] and (sweep.table["status"] == "ok").all()
    assert len(sweep.seeds) == 16
    runs = sweep.runs()
    assert sorted(runs) == sorted(sweep.table["job"])
    for job_num, run in runs.items():
        row = sweep.table[sweep.table["job"] == job_num].iloc[0]
        assert run.cfg.lr == row["lr"] and run.cfg.num_seeds == 8 and run.cfg.epochs == 50
        rows = sweep.seeds[sweep.seeds["job"] == job_num]
        np.testing.assert_array_equal(rows["final_loss"].to_numpy(), run.seeds["final_loss"].to_numpy())
        seed = int(run.seeds["seed"].iloc[3])
        assert _mse(run.spec, run.params(seed), run.dataset.x_train, run.dataset.y_train) == pytest.approx(
            float(run.seeds["final_loss"].iloc[3]), RTOL, ATOL)
    # lr differs between the jobs, so their numbers must too
    assert not np.allclose(*(r.seeds["final_loss"].to_numpy() for r in runs.values()))
