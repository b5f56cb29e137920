"""Every config composes into one frozen, validated RunConfig; each group option has its own
keys; bad values name their key."""

import dataclasses

import pytest
from hydra import compose, initialize_config_dir

from jaxbp import app, config, data, optim, paths

app.register()

EXPERIMENTS = sorted(p.stem for p in paths.EXPERIMENTS_DIR.glob("*.yaml"))


def _compose(overrides=()):
    with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def _run_config(overrides=()):
    return app.to_run_config(_compose(overrides))


def test_defaults_are_the_articles_network():
    cfg = _run_config()
    assert isinstance(cfg, config.RunConfig)
    assert (cfg.data.name, cfg.hidden, cfg.depth, cfg.activation, cfg.output, cfg.loss,
            cfg.optim.name) == ("xor", 3, 1, "sigmoid", "sigmoid", "mse", "sgd")
    assert cfg.num_seeds == 1000 and cfg.batch_size is None and cfg.grad == "manual"
    assert cfg.spec(2, 1).sizes == (2, 3, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0


def test_composed_defaults_equal_the_dataclass_defaults():
    # One place for defaults: the composed config is RunConfig() apart from the cache path.
    assert dataclasses.replace(_run_config(), compile_cache=None) == \
        dataclasses.replace(config.RunConfig(), compile_cache=None)


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in config.describe_options().items() for o in opts])
def test_every_group_option_composes_with_its_own_type(group, option):
    extra = ["data.path=/dev/null"] if option == "file" else []
    cfg = _run_config([f"{group}={option}", *extra])
    chosen = getattr(cfg, group)
    assert chosen.name == option
    options = data.OPTIONS if group == "data" else optim.OPTIONS
    assert type(chosen) is options[option]
    assert chosen == options[option](**({"path": "/dev/null"} if option == "file" else {}))


@pytest.mark.parametrize("override,key", [
    ("optim.b1=0.1", "b1"), ("optim.momentum=0.5", "momentum"),
    ("data.noise=0.9", "noise"), ("data.bits=4", "bits"),
])
def test_a_key_the_option_does_not_have_is_refused_at_compose(override, key):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as err:
        _compose(["optim=sgd", "data=xor", override])
    assert key in str(err.value) + str(err.value.__cause__)


def test_rmsprop_decay_has_its_own_name():
    cfg = _run_config(["optim=rmsprop", "optim.decay=0.95"])
    assert cfg.optim.decay == 0.95 and cfg.optim.hyperparams() == {"decay": 0.95, "eps": 1e-8}


def test_library_defaults_equal_the_command_line(tmp_path):
    # config.from_dict gives each option its own defaults, exactly as data=<name> does.
    for name in ("moons", "digits", "xor"):
        assert config.from_dict({"data": {"name": name}}).data == _run_config([f"data={name}"]).data
    assert config.from_dict({"data": {"name": "moons"}}).data.test_fraction == 0.25


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(name):
    composed = _compose([f"+experiment={name}"])
    app.to_run_config(composed)
    assert composed.hydra.sweeper.params, "an experiment defines the sweep it runs"


def test_the_schema_lists_the_contract_keys():
    keys = set(_compose().keys())
    assert {"lr", "hidden", "depth", "activation", "output", "loss", "num_seeds", "seed", "epochs",
            "batch_size", "target_loss", "log_every", "grad", "l1", "l2", "patience",
            "curve_seeds", "init", "data", "optim"} <= keys
    assert set(_compose().init.keys()) == {"scheme", "scale", "bias"}


@pytest.mark.parametrize("override,key", [
    ("lr=-1", "lr"), ("lr=0", "lr"), ("lr=1e308", "lr"), ("lr=1e-50", "lr"),
    ("hidden=0", "hidden"), ("hidden=1000000000", "hidden"), ("num_seeds=0", "num_seeds"),
    ("epochs=0", "epochs"), ("epochs=3000000000", "epochs"), ("data.test_fraction=1.5", "data.test_fraction"),
    ("data=file", "data.path"), ("patience=5", "patience"), ("optim=momentum optim.momentum=1.5", "optim.momentum"),
    ("init.scheme=glorot", "init.scheme"), ("loss=ce", "loss"), ("grad=numeric", "grad"),
    ("log_every=0", "log_every"), ("target_loss=-0.1", "target_loss"),
    ("epochs=10000000 log_every=1 curve_seeds=64", "curve_seeds"), ("data=moons data.seed=4294967296", "data.seed"),
    ("lr=${oc.env:HOME}", "lr"),
])
def test_bad_values_name_their_key(override, key):
    with pytest.raises(config.ConfigError) as err:
        _run_config(override.split())
    assert err.value.key == key
    assert key in config.refusal(err.value) and "allowed:" in config.refusal(err.value)


def test_lr_must_be_representable_in_the_runs_dtype():
    assert config.from_dict({"lr": 1e308, "dtype": "float64"}).lr == 1e308
    with pytest.raises(config.ConfigError, match="float32"):
        config.from_dict({"lr": 1e308})


def test_a_huge_log_every_is_capped_at_epochs():
    cfg = config.from_dict({"epochs": 50, "log_every": 10**9})
    assert cfg.sample_every == 50 and cfg.blocks == 1 and list(cfg.curve_epochs()) == [0, 50]


def test_typos_and_wrong_types_fail_at_compose():
    from hydra.errors import ConfigCompositionException

    for override in ("epochs=abc", "hiden=3", "data=foo"):
        with pytest.raises(ConfigCompositionException):
            _compose([override])


def test_unknown_library_keys_are_refused():
    with pytest.raises(config.ConfigError, match="optim.b1"):
        config.from_dict({"optim": {"name": "sgd", "b1": 0.1}})
    with pytest.raises(config.ConfigError, match="hiden"):
        config.from_dict({"hiden": 3})


def test_shape_key_ignores_every_traced_value():
    base = config.from_dict({})
    for values in ({"lr": 2.0}, {"seed": 9}, {"l2": 0.1, "l1": 0.2}, {"target_loss": 0.1},
                   {"init": {"scale": 2.0}}, {"curve_seeds": 3}):
        other = config.from_dict(values)
        if "l1" in values:  # turning a penalty on changes the program; its value does not
            other2 = config.from_dict({"l2": 0.3, "l1": 0.4})
            assert config.shape_key(other) == config.shape_key(other2) != config.shape_key(base)
        else:
            assert config.shape_key(other) == config.shape_key(base)
    momentum = [config.from_dict({"optim": {"name": "momentum", "momentum": m}}) for m in (0.5, 0.9)]
    assert config.shape_key(momentum[0]) == config.shape_key(momentum[1])
    assert config.shape_key(config.from_dict({"hidden": 4})) != config.shape_key(base)
