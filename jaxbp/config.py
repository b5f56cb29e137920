"""The run configuration: a typed schema for Hydra, and validation into a frozen ``RunConfig``.

The schema dataclasses (``DataConfig``, ``OptimConfig``, ``InitConfig``, ``RunConfig``) are
registered in Hydra's ConfigStore by :func:`register_schema`, so a typo or a wrong type fails
when the config is composed. :func:`from_dict` converts a composed config once, at the app
boundary, into frozen dataclasses and checks every value; jitted code never sees a
``DictConfig``. This module imports no Hydra at import time, so the engine and the benchmark
run without it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from jaxbp import model

GRADS = ("manual", "autodiff")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop")
DATASETS = ("xor", "parity", "moons", "circles", "spirals", "digits", "iris",
            "breast_cancer", "wine", "file")
DTYPES = ("float32", "float64")


class ConfigError(ValueError):
    """A bad config value: ``key``, the offending ``value`` and what is ``allowed``."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, and how it is split and scaled (``data.*``)."""

    name: str = "xor"
    test_fraction: float = 0.0  # share of rows held out as the test split
    seed: int = 0  # fixes the split and any generated data, independently of training seeds
    standardize: bool = False  # zero mean, unit variance, fitted on the train split only
    bits: int = 3  # parity: input width
    n_samples: int = 200  # moons, circles, spirals: rows generated
    noise: float = 0.1  # moons, circles, spirals: Gaussian noise level
    path: Optional[str] = None  # file: a .csv or .npz
    target: Optional[str] = None  # file: the target column (csv) or array (npz)


@dataclass(frozen=True)
class OptimConfig:
    """An optax optimiser by name, with its options (``optim.*``)."""

    name: str = "sgd"
    momentum: float = 0.9  # momentum, nesterov
    b1: float = 0.9  # adam
    b2: float = 0.999  # adam; rmsprop's squared-gradient decay
    eps: float = 1e-8  # adam, rmsprop


@dataclass(frozen=True)
class InitConfig:
    """How weights are drawn (``init.*``); see :func:`jaxbp.model.init`."""

    scheme: str = "normal"
    scale: float = 1.0
    bias: str = "zeros"


@dataclass(frozen=True)
class RunConfig:
    """Everything one job needs. Field names are the command-line keys."""

    lr: float = 0.5
    hidden: int = 3
    depth: int = 1
    activation: str = "sigmoid"
    output: str = "sigmoid"
    loss: str = "mse"
    num_seeds: int = 1000
    seed: int = 0
    epochs: int = 5000
    batch_size: Optional[int] = None
    target_loss: float = 0.01
    log_every: int = 10
    grad: str = "manual"
    l1: float = 0.0
    l2: float = 0.0
    patience: Optional[int] = None
    curve_seeds: int = 100
    dtype: str = "float32"
    progress: bool = True
    devices: Optional[int] = None  # shard seeds over this many local devices; None = all
    compile_cache: Optional[str] = "~/.cache/jaxbp/xla"  # JAX's persistent cache; null = off
    init: InitConfig = field(default_factory=InitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def spec(self, n_in: int, n_out: int) -> model.Spec:
        """The network for data with ``n_in`` features and ``n_out`` targets."""
        sizes = (n_in, *([self.hidden] * self.depth), n_out)
        return model.Spec(sizes, self.activation, self.output, self.loss)


def register_schema() -> None:
    """Registers the typed schema in Hydra's ConfigStore (``conf/config.yaml`` extends it)
    and makes jaxbp's ``vmap`` launcher visible to Hydra's plugin scan."""
    from hydra.core.config_store import ConfigStore

    from jaxbp import paths

    paths.expose_hydra_plugins()

    store = ConfigStore.instance()
    # Hydra needs mutable dataclasses; the frozen ones above are made mutable copies here.
    store.store(name="run_schema", node=_hydra_node(RunConfig))
    store.store(group="data", name="data_schema", node=_hydra_node(DataConfig))
    store.store(group="optim", name="optim_schema", node=_hydra_node(OptimConfig))


def _hydra_node(cls):
    from omegaconf import DictConfig, OmegaConf

    def thaw(node):  # frozen dataclasses make read-only nodes; Hydra must merge into them
        OmegaConf.set_readonly(node, False)
        for key in node:
            if isinstance(node[key], DictConfig):
                thaw(node[key])
        return node

    return thaw(OmegaConf.structured(cls))


def _build(cls, values: Mapping[str, Any], prefix: str):
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(prefix + key, values[key], f"unknown key; known keys: {sorted(known)}")
    return cls(**values)


def from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Builds and validates a ``RunConfig`` from plain nested dicts (a resolved config).

    Raises:
        ConfigError: naming the first bad key, its value and what is allowed.
    """
    values = dict(values)
    nested = {
        "init": _build(InitConfig, values.pop("init", {}) or {}, "init."),
        "data": _build(DataConfig, values.pop("data", {}) or {}, "data."),
        "optim": _build(OptimConfig, values.pop("optim", {}) or {}, "optim."),
    }
    cfg = _build(RunConfig, {**values, **nested}, "")
    validate(cfg)
    return cfg


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(key, value, low, allowed=None):
    _require(_is_int(value) and value >= low, key, value, allowed or f"an integer >= {low}")


def _check_real(key, value, low, high=math.inf, low_open=False, high_open=True):
    ok = _is_real(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    _require(ok, key, value, f"a number in {lo}{low}, {high}{hi}")


def _check_choice(key, value, choices):
    _require(value in choices, key, value, f"one of {list(choices)}")


def validate(cfg: RunConfig) -> None:
    """Checks every value that does not depend on the data; raises ``ConfigError``."""
    _check_real("lr", cfg.lr, 0.0, low_open=True)
    _check_int("hidden", cfg.hidden, 1)
    _check_int("depth", cfg.depth, 0)
    _check_choice("activation", cfg.activation, model.ACTIVATIONS)
    _check_choice("output", cfg.output, model.OUTPUTS)
    _check_choice("loss", cfg.loss, model.LOSS_OUTPUTS)
    _require(cfg.output in model.LOSS_OUTPUTS[cfg.loss], "loss", cfg.loss,
             f"loss={cfg.loss} needs output in {list(model.LOSS_OUTPUTS[cfg.loss])} "
             f"(output is {cfg.output})")
    _check_int("num_seeds", cfg.num_seeds, 1)
    _check_int("seed", cfg.seed, 0)
    _require(cfg.seed + cfg.num_seeds <= 2**32, "seed", cfg.seed, "seed + num_seeds <= 2**32")
    _check_int("epochs", cfg.epochs, 1)
    if cfg.batch_size is not None:
        _check_int("batch_size", cfg.batch_size, 1, "null (full batch) or an integer >= 1")
    _check_real("target_loss", cfg.target_loss, 0.0)
    _check_int("log_every", cfg.log_every, 1)
    _check_choice("grad", cfg.grad, GRADS)
    _check_real("l1", cfg.l1, 0.0)
    _check_real("l2", cfg.l2, 0.0)
    if cfg.patience is not None:
        _check_int("patience", cfg.patience, 1, "null (off) or an integer >= 1")
        _require(cfg.data.test_fraction > 0, "patience", cfg.patience,
                 "early stopping watches the test loss: set data.test_fraction > 0")
    _check_int("curve_seeds", cfg.curve_seeds, 0)
    _check_choice("dtype", cfg.dtype, DTYPES)
    if cfg.devices is not None:
        _check_int("devices", cfg.devices, 1, "null (all local devices) or an integer >= 1")
    _check_choice("init.scheme", cfg.init.scheme, model.INIT_SCHEMES)
    _check_real("init.scale", cfg.init.scale, 0.0, low_open=True)
    _check_choice("init.bias", cfg.init.bias, model.BIAS_MODES)
    _validate_optim(cfg.optim)
    _validate_data(cfg.data)


def _validate_optim(optim: OptimConfig) -> None:
    _check_choice("optim", optim.name, OPTIMIZERS)
    _check_real("optim.momentum", optim.momentum, 0.0, 1.0)
    _check_real("optim.b1", optim.b1, 0.0, 1.0)
    _check_real("optim.b2", optim.b2, 0.0, 1.0)
    _check_real("optim.eps", optim.eps, 0.0, low_open=True)


def _validate_data(data: DataConfig) -> None:
    _check_choice("data", data.name, DATASETS)
    _check_real("data.test_fraction", data.test_fraction, 0.0, 1.0)
    _check_int("data.seed", data.seed, 0)
    _check_int("data.bits", data.bits, 1)
    _require(data.bits <= 20, "data.bits", data.bits, "an integer in [1, 20] (2**bits rows)")
    _check_int("data.n_samples", data.n_samples, 2)
    _check_real("data.noise", data.noise, 0.0)
    if data.name == "file":
        _require(bool(data.path), "data.path", data.path, "the path of a .csv or .npz file")


# Keys that change how a job runs but not the numbers it produces.
COSMETIC_KEYS = ("progress", "compile_cache", "devices")


def result_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved config without its cosmetic keys: equal values mean equal results."""
    return {k: v for k, v in values.items() if k not in COSMETIC_KEYS}


def shape_key(cfg: RunConfig) -> RunConfig:
    """The config with every traced or cosmetic value blanked: equal keys share programs."""
    return dataclasses.replace(cfg, lr=1.0, seed=0, num_seeds=1, progress=False,
                               compile_cache=None, devices=None)


def refusal(err: ConfigError, job: str = "") -> str:
    """The few lines printed when a value is refused, with no traceback."""
    where = f" in job {job}" if job else ""
    return (f"jaxbp: invalid value{where}: {err.key}={err.value!r}\n"
            f"  allowed: {err.allowed}\n"
            "Nothing was trained and no results were written.")


def resolved_values(cfg) -> dict:
    """A composed Hydra config as plain resolved dicts, without Hydra's own node."""
    from omegaconf import Container, OmegaConf

    return {key: OmegaConf.to_container(cfg[key], resolve=True)
            if isinstance(cfg[key], Container) else cfg[key]
            for key in cfg if key != "hydra"}


def register_experiments(directory) -> None:
    """Stores each ``<directory>/*.yaml`` as option ``experiment=<stem>`` (global package),
    so ``+experiment=<name>`` works wherever jaxbp is installed."""
    from pathlib import Path

    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    for path in sorted(Path(directory).glob("*.yaml")):
        ConfigStore.instance().store(group="experiment", name=path.stem,
                                     node=OmegaConf.load(path), package="_global_")
