"""Every config composes; values convert once into a frozen RunConfig; bad values name
their key."""

import dataclasses

import pytest
from hydra import compose, initialize_config_dir

from jaxbp import config, paths

config.register_schema()
config.register_experiments(paths.EXPERIMENTS_DIR)

GROUP_OPTIONS = {group: sorted(p.stem for p in (paths.CONF_DIR / group).glob("*.yaml"))
                 for group in ("data", "optim")}
EXPERIMENTS = sorted(p.stem for p in paths.EXPERIMENTS_DIR.glob("*.yaml"))


def _compose(overrides=()):
    with initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_defaults_are_the_articles_network():
    cfg = config.from_dict(config.resolved_values(_compose()))
    assert (cfg.data.name, cfg.hidden, cfg.depth, cfg.activation, cfg.output, cfg.loss,
            cfg.optim.name) == ("xor", 3, 1, "sigmoid", "sigmoid", "mse", "sgd")
    assert cfg.num_seeds == 1000 and cfg.batch_size is None and cfg.grad == "manual"
    assert cfg.spec(2, 1).sizes == (2, 3, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUP_OPTIONS.items() for o in opts
                                          if not o.endswith("_schema")])
def test_every_group_option_composes_and_validates(group, option):
    extra = ["data.path=/dev/null"] if option == "file" else []
    values = config.resolved_values(_compose([f"{group}={option}", *extra]))
    cfg = config.from_dict(values)
    assert getattr(cfg, group).name == option


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(name):
    cfg = _compose([f"+experiment={name}"])
    config.from_dict(config.resolved_values(cfg))
    assert cfg.hydra.sweeper.params, "an experiment defines the sweep it runs"


def test_config_yaml_lists_the_contract_keys():
    keys = set(_compose().keys())
    assert {"lr", "hidden", "depth", "activation", "output", "loss", "num_seeds", "seed", "epochs",
            "batch_size", "target_loss", "log_every", "grad", "l1", "l2", "patience",
            "curve_seeds", "init", "data", "optim"} <= keys
    assert set(_compose().init.keys()) == {"scheme", "scale", "bias"}


@pytest.mark.parametrize("override,key", [
    ("lr=-1", "lr"), ("lr=0", "lr"), ("hidden=0", "hidden"), ("num_seeds=0", "num_seeds"),
    ("epochs=0", "epochs"), ("data.test_fraction=1.5", "data.test_fraction"),
    ("data=file", "data.path"), ("patience=5", "patience"), ("optim.momentum=1.5", "optim.momentum"),
    ("init.scheme=glorot", "init.scheme"), ("loss=ce", "loss"), ("grad=numeric", "grad"),
    ("log_every=0", "log_every"), ("target_loss=-0.1", "target_loss"),
])
def test_bad_values_name_their_key(override, key):
    with pytest.raises(config.ConfigError) as err:
        config.from_dict(config.resolved_values(_compose([override])))
    assert err.value.key == key
    assert key in config.refusal(err.value) and "allowed:" in config.refusal(err.value)


def test_typos_and_wrong_types_fail_at_compose():
    from hydra.errors import ConfigCompositionException

    for override in ("epochs=abc", "hiden=3", "data=foo"):
        with pytest.raises(ConfigCompositionException):
            _compose([override])
