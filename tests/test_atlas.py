"""The atlas (``python -m jaxbp.atlas``): its points train exactly as networks trained alone,
it writes its files, and it refuses bad planes before training."""

import dataclasses
import json

import numpy as np
import pytest

from cli import run_cli
from jaxbp import atlas, atlas_plane, config, paths, runner
from jaxbp.atlas_plane import AtlasOptions, Coordinate, parse_name
from jaxbp.checks import ConfigError

atlas.register()  # as the entry point does: importing jaxbp.atlas registers nothing

# XOR 2-2-1 with momentum, as in the README's map; 300 epochs keep each program small.
CFG = config.from_dict({"hidden": 2, "lr": 0.5, "optim": {"name": "momentum", "momentum": 0.9},
                        "epochs": 300, "progress": False, "compile_cache": None})
SIZES = (2, 2, 1)


@pytest.mark.parametrize("text, coordinate", [
    ("W0[0,1]", Coordinate("W", 0, (0, 1))),
    ("W0.0.1", Coordinate("W", 0, (0, 1))),
    ("W1[ 1, 0 ]", Coordinate("W", 1, (1, 0))),
    ("b1[0]", Coordinate("b", 1, (0,))),
    ("b0.1", Coordinate("b", 0, (1,))),
])
def test_parameter_names_parse_to_one_canonical_form(text, coordinate):
    assert parse_name("atlas.x", text) == coordinate
    assert parse_name("atlas.x", coordinate.name) == coordinate


@pytest.mark.parametrize("text", ["W0[0]", "b1[0,0]", "X0[0,0]", "W0[a,b]", "W0", "W0[0,1]x", ""])
def test_malformed_parameter_names_are_refused(text):
    with pytest.raises(ConfigError) as err:
        parse_name("atlas.y", text)
    assert err.value.key == "atlas.y"


@pytest.mark.parametrize("text", ["W5[0,0]", "W0[9,9]", "W0[2,0]", "W1[0,1]", "b1[1]", "b2[0]"])
def test_parameters_outside_the_network_are_refused(text):
    with pytest.raises(ConfigError) as err:
        atlas_plane.locate("atlas.x", text, SIZES)
    assert "2-2-1 network" in err.value.allowed


def test_random_directions_are_filter_normalised_with_zero_bias():
    base = [{"W": np.array([[1.0, 0.0], [2.0, -3.0]]), "b": np.array([0.5, 0.0])},
            {"W": np.array([[0.3], [0.4]]), "b": np.array([1.0])}]
    u, v = atlas_plane.random_directions(base, seed=7)
    for direction in (u, v):
        for layer, d in zip(base, direction):
            # Li et al. 2018: each unit's incoming weights have the norm of θ₀'s (to round-off).
            np.testing.assert_allclose(np.linalg.norm(d["W"], axis=0), np.linalg.norm(layer["W"], axis=0),
                                       rtol=1e-12)
            assert not d["b"].any()
    assert not np.allclose(u[0]["W"], v[0]["W"])
    plane = atlas_plane.Plane("random", ("a", "b"), np.zeros(3), np.zeros(3), (0.0, 0.0), base, (u, v))
    point = atlas_plane.params_at(plane, np.array([0.5]), np.array([-2.0]))
    np.testing.assert_allclose(point[1]["W"][0], base[1]["W"] + 0.5 * u[1]["W"] - 2.0 * v[1]["W"], rtol=1e-12)


def _grid(options: AtlasOptions, chunk=None):
    job = atlas_plane.prepare(CFG, options)
    grid = atlas_plane.train_grid(job.cfg, job.plane, chunk or job.chunk, progress=False)
    return job, grid


def test_a_point_trains_as_the_same_params_trained_alone():
    # 25 points in chunks of 9: three engine calls, the last one padded (9 members, as in
    # the 3 × 3 atlases below, so they share one compiled program).
    options = AtlasOptions(resolution=5, x="W0[0,1]", y="b1[0]", seed=3)
    job, grid = _grid(options, chunk=9)
    assert grid.chunks == 3
    for row, col in [(1, 3), (4, 4), (0, 0)]:
        params = atlas_plane.params_at(job.plane, job.plane.x[[col]], job.plane.y[[row]])
        assert params[0]["W"][0, 0, 1] == np.float32(job.plane.x[col])  # W0[0,1] on x
        assert params[1]["b"][0, 0] == np.float32(job.plane.y[row])  # b1[0] on y
        assert params[0]["W"][0, 1, 1] == job.plane.base[0]["W"][1, 1]  # the rest is θ₀'s
        alone = runner.run(job.cfg, seeds=[3], init_params=params, progress=False).metrics
        # float32 arithmetic in a different batch of members: 1e-5 covers reassociation.
        np.testing.assert_allclose(grid.final_loss[row, col], alone["final_loss"][0], rtol=1e-5)
        expected = alone["epochs_to_target"][0] if alone["epochs_to_target"][0] >= 0 else CFG.epochs
        assert grid.epochs_to_solve[row, col] == expected
        assert grid.solved[row, col] == (alone["epochs_to_target"][0] >= 0)


@pytest.mark.parametrize("plane", ["weights", "random"])
def test_the_base_point_reproduces_the_base_seeds_own_training(plane):
    seed = 5
    job, grid = _grid(AtlasOptions(resolution=3, plane=plane, seed=seed))
    centre = (1, 1)  # an odd resolution puts the base point exactly in the middle
    assert (job.plane.x[1], job.plane.y[1]) == job.plane.base_point
    own = runner.run(dataclasses.replace(CFG, seed=seed, num_seeds=1), progress=False).metrics
    assert grid.final_loss[centre] == own["final_loss"][0]  # the same network, bit for bit
    assert grid.epochs_to_solve[centre] == (own["epochs_to_target"][0] if own["converged"][0] else CFG.epochs)
    assert grid.converged[centre] == own["converged"][0]


def test_a_64x64_atlas_writes_its_files(tmp_path):
    out = tmp_path / "atlas"
    proc = run_cli("jaxbp.atlas", f"hydra.run.dir={out}", "hidden=2", "epochs=100", "atlas.resolution=64",
                   "atlas.x=W0[0,1]", "atlas.y=b1[0]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "atlas 64×64 of xor 2-2-1, sgd lr=0.5, 100 epochs, W0[0,1] × b1[0] around seed 0:" in proc.stdout
    assert atlas.is_atlas_dir(out) and (out / "atlas.png").stat().st_size > 10_000
    arrays, summary = atlas.read_atlas(out)
    assert arrays["epochs_to_solve"].shape == arrays["solved"].shape == arrays["final_loss"].shape == (64, 64)
    assert str(arrays["x_name"]) == "W0[0,1]" and len(arrays["y"]) == 64
    assert (arrays["epochs_to_solve"][~arrays["solved"]] == 100).all()
    assert summary["success_share"] == pytest.approx(arrays["solved"].mean())
    # Centred on the base values, ±4 in weight units (the weights plane's default range).
    np.testing.assert_allclose(arrays["x"][[0, -1]], arrays["base_point"][0] + np.array([-4, 4]), rtol=1e-12)
    # 100 epochs solve nothing here: the map shows the final loss, not one black square (issue #28).
    assert summary["success_share"] == 0
    from matplotlib.image import imread

    pixels = imread(out / "atlas.png")[..., :3]
    assert (pixels.max(axis=-1) < 0.05).mean() < 0.05, "mostly black"


def test_a_zoom_reruns_the_stored_atlas_inside_the_box(tmp_path):
    options = AtlasOptions(resolution=3, x="W1[0,0]", y="W1[1,0]", range=0.5)
    summary = atlas.run_atlas(CFG, options, tmp_path / "atlas", progress=False)
    assert json.loads((tmp_path / "atlas" / "summary.json").read_text())["line"] == summary["line"]
    cfg, stored = atlas.stored_config(tmp_path / "atlas")
    expected = dataclasses.replace(CFG, num_seeds=1, curve_seeds=0)  # what the atlas trained
    assert stored == options and config.result_values(cfg) == config.result_values(expected)
    files = atlas.report_atlas(tmp_path / "atlas", zoom=(0.0, 1.0, -1.0, 0.5))
    zoomed = tmp_path / "atlas" / "zoom" / "box_0_1_-1_0.5"
    assert files == [zoomed / "report" / "atlas.png", zoomed / "report" / "report.md"]
    arrays = atlas.read_atlas(zoomed)[0]
    assert arrays["solved"].shape == (3, 3)
    assert (list(arrays["x"]), list(arrays["y"])) == ([0, 0.5, 1], [-1, -0.25, 0.5])


def _check(*overrides):
    """The atlas callback's check of ``python -m jaxbp.atlas *overrides``, in this process."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base="1.3"):
        return atlas.check(compose("atlas", overrides=atlas.quote_names(list(overrides))))


@pytest.mark.parametrize("override, key", [
    ("atlas.plane=foo", "atlas.plane"),
    ("atlas.x=W5[0,0]", "atlas.x"),
    ("atlas.x=W0[9,9]", "atlas.x"),
    ("atlas.y=b1.1", "atlas.y"),
    ("atlas.y=W0[0,0]", "atlas.y"),  # the same parameter as atlas.x
    ("atlas.x=nonsense", "atlas.x"),
    ("atlas.resolution=1", "atlas.resolution"),
    ("atlas.resolution=5000", "atlas.resolution"),
])
def test_bad_planes_are_refused_before_training(capsys, override, key):
    with pytest.raises(SystemExit) as exit_:
        _check("hidden=2", override)
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2 and key in stderr and "Nothing was trained" in stderr


def test_a_good_plane_passes_the_check():
    cfg, options = _check("hidden=2", "seed=4", "atlas.x=W1[1,0]", "atlas.y=b0.1", "atlas.resolution=9")
    assert (cfg.hidden, options.seed, options.resolution) == (2, 4, 9)  # atlas.seed follows `seed`
    assert (options.x, options.y) == ("W1[1,0]", "b0.1")


@pytest.mark.parametrize("args, message", [
    (["hidden=2", "atlas.x=W0[9,9]"], "atlas.x='W0[9,9]'"),
    (["-m", "lr=0.1,0.2"], "without -m"),
])
def test_a_refusal_from_the_command_line_is_short_and_leaves_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    proc = run_cli("jaxbp.atlas", *args, f"hydra.run.dir={out}", f"hydra.sweep.dir={out}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert message in proc.stderr and len(proc.stderr.splitlines()) <= 4
    assert not out.exists()


@pytest.mark.parametrize("criterion, words", [("loss", "reached loss ≤ 0.01"),
                                              ("margin", "had every output within 0.4 of its target")])
def test_the_atlas_line_says_success_in_the_criterions_terms(tmp_path, criterion, words):
    """The atlas's 'solved' follows the job's criterion (epochs_to_target); its line said
    'reached loss ≤' whatever the criterion was."""
    cfg = dataclasses.asdict(config.RunConfig(criterion=criterion, margin=0.4))
    summary = {"config": cfg, "atlas": {"resolution": 8, "seed": 0, "plane": "weights"}, "spec": [2, 2, 1],
               "epochs_to_solve_median": 120.0, "success_share": 0.5, "diverged_share": 0.0, "wall_s": 1.0,
               "compile_s": 0.5, "axes": [{"name": "W0[0,1]"}, {"name": "b1[0]"}]}
    assert f"50.0% of the plane {words} (median 120 epochs)" in atlas.describe(summary, tmp_path)
