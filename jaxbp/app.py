"""The Hydra glue: the typed schema in Hydra's ConfigStore, the plugin path, the ready-made
experiments, and turning a composed config into one frozen ``RunConfig`` or a refusal.

Every ``data=`` and ``optim=`` option is registered from its dataclass, so its keys and
defaults live in one place (:mod:`jaxbp.data`, :mod:`jaxbp.optim`); ``conf/config.yaml``
only chooses the defaults and configures Hydra.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from jaxbp import config, paths
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
    experiments as ``+experiment=<name>``, and makes jaxbp's Hydra plugins visible."""
    from hydra.core.config_store import ConfigStore

    paths.expose_hydra_plugins()
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


def to_run_config(composed: DictConfig) -> config.RunConfig:
    """The one conversion: a composed config (with or without Hydra's node) into a frozen,
    validated ``RunConfig``.

    Raises:
        ConfigError: a bad value, including one OmegaConf cannot convert or resolve.
    """
    node = composed
    if "hydra" in composed:
        node = composed.copy()
        with open_dict(node):
            del node["hydra"]
    try:
        return OmegaConf.to_object(node)
    except ConfigError:
        raise
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(key, "?", first) from None


def check(cfg: config.RunConfig, out_dir: Path | None = None):
    """The checks that need the data: loads it and checks ``cfg`` against it, and (given the
    output dir) that the job's per-seed results fit in memory and its files on disk.
    Returns the dataset."""
    dataset = cfg.data.load(cfg.loss)
    config.check_fits(cfg, dataset)
    check_resources(cfg, dataset, out_dir)
    return dataset


def check_resources(cfg: config.RunConfig, dataset, out_dir: Path | None) -> None:
    """Refuses a job whose results cannot fit, with the estimate, before anything is written.

    Raises:
        ConfigError: on ``num_seeds``, naming the estimate and what is available.
    """
    import numpy as np

    from jaxbp import memory

    spec = cfg.spec(dataset.x_train.shape[1], dataset.y_train.shape[1])
    n_params, itemsize = config.n_params(spec), np.dtype(cfg.dtype).itemsize
    host = cfg.num_seeds * memory.host_bytes_per_member(n_params, itemsize, cfg.save_params)
    saved = host - cfg.num_seeds * memory.host_bytes_per_member(n_params, itemsize, False)
    available = memory.available_bytes()
    if host > memory.HOST_SHARE * available:
        raise ConfigError("num_seeds", cfg.num_seeds,
                          f"a job whose per-seed results fit in memory: about {memory.fmt_bytes(host)} "
                          f"needed, {memory.fmt_bytes(available)} available (save_params=false saves "
                          f"{memory.fmt_bytes(saved)}; or split the seeds "
                          "over a sweep: -m seed=0,N,2N... num_seeds=N)")
    if out_dir is not None:
        curve_points = min(cfg.curve_seeds, cfg.num_seeds) * (cfg.blocks + 1)
        disk = memory.output_bytes(cfg.num_seeds, n_params, itemsize, curve_points, cfg.save_params)
        free = memory.free_disk_bytes(Path(out_dir))
        if disk > free:
            raise ConfigError("num_seeds", cfg.num_seeds,
                              f"a job whose files fit on disk: about {memory.fmt_bytes(disk)} needed, "
                              f"{memory.fmt_bytes(free)} free under {out_dir} (lower curve_seeds, "
                              "or save_params=false)")


def refuse(err: ConfigError, job: str = "") -> None:
    """Prints the refusal for a bad value and exits with status 2."""
    print(config.refusal(err, job), file=sys.stderr)
    sys.exit(EXIT_REFUSED)


def refuse_message(message: str) -> None:
    """Prints a one-line refusal that is not about one value and exits with status 2."""
    print(f"jaxbp: {message}\nNothing was trained and no results were written.", file=sys.stderr)
    sys.exit(EXIT_REFUSED)


def setup_compile_cache(cfg: config.RunConfig) -> None:
    """Turns on JAX's persistent compilation cache if ``compile_cache`` names a dir.

    Raises:
        ConfigError: the path exists but is not a directory, or cannot be created.
    """
    import os

    if not cfg.compile_cache:
        return
    import jax

    cache_dir = os.path.expanduser(cfg.compile_cache)
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as err:
        raise ConfigError("compile_cache", cfg.compile_cache,
                          f"a directory jaxbp can create and write, or null ({err.strerror})") from None
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    # Our programs compile in about a second; cache them all, not only slow ones.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
