"""The Hydra glue: the typed schema in Hydra's ConfigStore, the plugin path, the ready-made
experiments, and turning a composed config into one frozen ``RunConfig`` or a refusal.

Every ``data=`` and ``optim=`` option is registered from its dataclass, so its keys and
defaults live in one place (:mod:`jaxbp.data`, :mod:`jaxbp.optim`); ``conf/config.yaml``
only chooses the defaults and configures Hydra.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from jaxbp import compositions, config, paths
from jaxbp import data as datasets
from jaxbp import optim as optimizers
from jaxbp.checks import ConfigError

EXIT_REFUSED = 2  # a bad value, refused before anything ran
EXIT_FAILED = 1  # a job or the sweep's aggregation failed (results kept)
EXIT_INTERRUPTED = 130  # Ctrl-C


def _thaw(node):
    """Frozen dataclasses make read-only nodes; Hydra must merge into them."""
    node._set_flag("readonly", None)
    if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
        for key in node.keys():
            _thaw(node._get_node(key))
    return node


def structured(cls):
    """A Hydra node for a frozen dataclass schema (made mergeable)."""
    return _thaw(OmegaConf.structured(cls))


def register() -> None:
    """Registers the schema and every group option in Hydra's ConfigStore, the ready-made
    experiments as ``+experiment=<name>``. The entry points call it; importing jaxbp
    registers nothing. (Hydra finds jaxbp's launcher and sweeper itself, by its plugin scan
    of the installed ``hydra_plugins`` namespace.)"""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    schema = structured(config.RunConfig)
    for group in ("data", "optim"):  # chosen by the defaults list, typed by the base class
        schema._get_node(group)._set_value(MISSING)
    store.store(name="run_schema", node=schema)
    for group, options in (("data", datasets.OPTIONS), ("optim", optimizers.OPTIONS)):
        for name, cls in options.items():
            store.store(group=group, name=name, node=structured(cls), provider="jaxbp")
    root = Path(paths.EXPERIMENTS_DIR)
    for path in sorted([*root.glob("*.yaml"), *root.glob("reproductions/*.yaml")]):
        # experiments/reproductions/x.yaml is +experiment=reproductions/x
        group = "/".join(["experiment", *path.relative_to(root).parent.parts])
        store.store(group=group, name=path.stem, node=OmegaConf.load(path), package="_global_")


def compose_job(config_loader, master: DictConfig, overrides: list[str]) -> DictConfig:
    """Job ``overrides``' config, as Hydra's launchers compose it, once per sweep and job
    (derived from the first job where only values differ: :mod:`jaxbp.compositions`).

    Raises:
        HydraException, ValueError: the job cannot be composed (Hydra's own errors).
    """
    compositions.share(config_loader)
    return config_loader.load_sweep_config(master, list(overrides))


def sweep_job_dir(composed: DictConfig) -> Path:
    """The dir a composed sweep job writes to: ``hydra.sweep.dir / hydra.sweep.subdir``."""
    return Path(str(composed.hydra.sweep.dir)) / str(composed.hydra.sweep.subdir)


def to_run_config(composed: DictConfig) -> config.RunConfig:
    """The one conversion: a composed config (with or without Hydra's node) into a frozen,
    validated ``RunConfig``.

    Raises:
        ConfigError: a bad value, including one OmegaConf cannot convert or resolve.
    """
    try:
        return _absolute_data_path(_run_config(composed))
    except ConfigError:
        raise
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(key, "?", first) from None


_FIELDS = frozenset(field.name for field in dataclasses.fields(config.RunConfig))


def _run_config(composed: DictConfig) -> config.RunConfig:
    """``OmegaConf.to_object`` of the config less its ``hydra`` node. Built field by field when
    the keys are exactly ``RunConfig``'s, which skips copying Hydra's node (three quarters of
    the conversion's time, done for every job three times); otherwise from a copy."""
    keys = [key for key in composed if key != "hydra"]
    if OmegaConf.get_type(composed) is config.RunConfig and set(keys) == _FIELDS:
        values = {}
        for key in keys:
            value = composed[key]
            values[key] = OmegaConf.to_object(value) if OmegaConf.is_config(value) else value
        return config.RunConfig(**values)
    node = composed
    if "hydra" in composed:
        node = composed.copy()
        with open_dict(node):
            del node["hydra"]
    return OmegaConf.to_object(node)


def _absolute_data_path(cfg: config.RunConfig) -> config.RunConfig:
    """A relative ``data.path`` made absolute against the dir the command started in, as
    Hydra's ``to_absolute_path`` does: with ``hydra.job.chdir=true`` a job runs in its own
    dir, where the file the checks found is not."""
    path = getattr(cfg.data, "path", None)
    if cfg.data.name != "file" or not path or Path(path).expanduser().is_absolute():
        return cfg
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    start = get_original_cwd() if HydraConfig.initialized() else os.getcwd()
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=os.path.join(start, path)))


# Hydra options that take the next argument as their value (not an override).
_HYDRA_VALUE_OPTIONS = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "-p", "--package",
                        "-c", "--cfg", "--experimental-rerun"}


def unknown_key(argv: list[str], extra: tuple[str, ...] = ()) -> str:
    """Why an override on this command line names a key jaxbp does not have; ``""`` if none.

    Hydra refuses ``lrr=0.1`` itself (status 1) and suggests ``+lrr=0.1``, which it would add
    to the frozen schema and which then fails inside the run; ``+data.bitz=3`` likewise. So
    a top-level key outside the schema, and any ``+key`` but ``+experiment``, is refused here,
    before Hydra starts or writes anything. ``extra`` names more top-level keys (``atlas``).
    """
    import difflib

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    known = sorted({f.name for f in dataclasses.fields(config.RunConfig)} | set(extra))
    skip = False
    for arg in argv:
        if skip or arg.startswith("-") or "=" not in arg:
            skip = arg in _HYDRA_VALUE_OPTIONS
            continue
        try:
            override = OverridesParser.create().parse_overrides([arg])[0]
        except HydraException:
            continue  # malformed: Hydra says so in its own words
        key = override.key_or_group
        top = key.split(".")[0].split("/")[0]
        if top == "hydra" or (key == "experiment" and override.type == OverrideType.ADD):
            continue
        added = override.type in (OverrideType.ADD, OverrideType.FORCE_ADD)
        if key == "experiment":
            return f"experiments are added, not set: +experiment={override.get_value_element_as_str()}"
        if top not in known or added:
            close = difflib.get_close_matches(top, known, n=1)
            hint = f"; did you mean {close[0]}?" if close and close[0] != top else ""
            how = "jaxbp's schema is fixed: '+' cannot add a key to it; " if added else ""
            return (f"unknown key {key!r} in {arg!r}{hint} ({how}the keys are {', '.join(known)}; "
                    f"an option's own keys are listed by python -m jaxbp.train --help)")
    return ""


def refuse(err: ConfigError, job: str = "") -> None:
    """Prints the refusal for a bad value and exits with status 2."""
    print(config.refusal(err, job), file=sys.stderr)
    sys.exit(EXIT_REFUSED)


def refuse_message(message: str) -> None:
    """Prints a one-line refusal that is not about one value and exits with status 2."""
    print(f"jaxbp: {message}\nNothing was trained and no results were written.", file=sys.stderr)
    sys.exit(EXIT_REFUSED)


def setup_compile_cache(cfg: config.RunConfig) -> None:
    """Turns on JAX's persistent compilation cache if ``compile_cache`` names a dir
    (:func:`jaxbp.compile_cache.configure`; the runner calls it too, before any compile).

    Raises:
        ConfigError: the path exists but is not a directory, or cannot be created.
    """
    from jaxbp import compile_cache

    compile_cache.configure(cfg.compile_cache)
