"""Each job of a sweep composed once, and most of them derived rather than composed.

Hydra composes a sweep job from scratch: it builds the defaults list, loads and merges every
config of every group (Hydra's own included), then applies the job's overrides. That costs
0.07-0.15 s a job on 2 cores, more than jaxbp takes to train a small job. Two things make it
cheaper, both behind Hydra's public ``ConfigLoader.load_sweep_config``, which every launcher
and the basic sweeper call:

- **Once per job.** The sweep callback composes each job to check it, Hydra's basic
  sweeper composes it again to validate its batch, and the launcher to run it. The loader
  now remembers its answers, so those are one composition.
- **Derived, not composed.** Jobs of a sweep differ, mostly, in plain values (``lr=0.1``
  against ``lr=1.0``). Such a job is the sweep's own composed config (``-m``'s, where each
  swept value sits at its default), or else the first job's, with those values set and
  ``hydra.overrides.task`` and ``hydra.job.override_dirname`` rewritten by Hydra's rules.
  Anything else (another config group choice, ``+``/``~``/``++`` overrides that differ, a
  dict or list value, a key that is not in the config or names a config group, a
  ``hydra.`` key, a key given twice, a different set of keys, a value that does not
  resolve) is composed by Hydra in full. ``tests/test_compositions.py`` checks derived
  configs equal Hydra's own, node for node and flag for flag.
"""

from __future__ import annotations

import copy
import re

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

KEPT = 4096  # composed jobs remembered per loader (a 64×64 grid is 4,096 jobs)
_ABSENT = object()


def share(config_loader) -> None:
    """Makes ``config_loader.load_sweep_config`` compose each job of a sweep once, and derive
    a job that differs only in plain values from the sweep's own config (or else from the
    sweep's first composed job) instead of composing it."""
    if getattr(config_loader, "jaxbp_shared", False):
        return
    compose = config_loader.load_sweep_config
    kept: dict[tuple[str, ...], tuple[DictConfig, DictConfig]] = {}
    first = None  # the master's first fully composed job: (master, its overrides, a pristine copy)

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        nonlocal first
        key = tuple(sweep_overrides)
        if key in kept and kept[key][0] is master_config:
            return kept[key][1]
        if len(kept) >= KEPT:
            kept.clear()
        ours = first is not None and first[0] is master_config
        composed = _from_master(master_config, key)
        if composed is None and ours:
            composed = derive(first[2], first[1], key, master_config)
        if composed is None:
            composed = compose(master_config, list(sweep_overrides))
            if not ours:  # a copy: launchers set hydra.job.id and num on the config they get
                first = (master_config, key, copy.deepcopy(composed))
        kept[key] = (master_config, composed)
        return composed

    config_loader.load_sweep_config = load_sweep_config
    config_loader.jaxbp_shared = True


def _from_master(master: DictConfig, overrides: tuple[str, ...]) -> DictConfig | None:
    """The job derived from the sweep's own config, the one Hydra composed for ``-m``: it
    holds every fixed override already, and each swept key (``lr=0.01,0.1,1.0``) at its
    default. Only when its every config group was chosen: a multirun composition skips a
    mandatory group left unchosen, where a job's composition would refuse it."""
    choices = master.hydra.runtime.choices
    if any(OmegaConf.is_missing(choices, group) for group in choices):
        return None
    return derive(master, tuple(master.hydra.overrides.task), overrides, master)


def derive(template: DictConfig, template_overrides: tuple[str, ...], overrides: tuple[str, ...],
           master: DictConfig) -> DictConfig | None:
    """The job ``overrides`` as Hydra would compose it, made from ``template``, the job
    ``template_overrides`` as Hydra composed it; ``None`` when it must be composed in full.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    try:
        old, new = parser.parse_overrides(list(template_overrides)), parser.parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001 - Hydra's full composition gives its own error
        return None
    if len(old) != len(new) or any(o.is_hydra_override() or n.is_hydra_override() for o, n in zip(old, new)):
        return None
    keys = [override.key_or_group for override in new]
    if len(set(keys)) != len(keys):  # a key given twice: the last wins, in an order derive skips
        return None
    groups = set(template.hydra.runtime.choices)  # the defaults list's groups ('data', 'hydra/launcher')
    changed = []
    for before, after in zip(old, new):
        if before.key_or_group != after.key_or_group:
            return None
        if before.input_line == after.input_line:
            continue
        try:
            plain = (_plain(before, template, sweep=True) and _plain(after, template)
                     and after.key_or_group not in groups)
        except Exception:  # noqa: BLE001 - say, an interpolation that does not resolve: Hydra's call
            return None
        if not plain:
            return None
        changed.append(after)
    config = copy.deepcopy(template)
    try:
        for override in changed:
            OmegaConf.update(config, override.key_or_group, override.value(), merge=True)
    except Exception:  # noqa: BLE001 - a value the node refuses: Hydra says why
        return None
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.overrides.task = [override.input_line for override in new]
        config.hydra.job.override_dirname = _override_dirname(new, config.hydra.job.config.override_dirname)
    OmegaConf.copy_cache(from_config=master, to_config=config)
    return config


def _plain(override, template: DictConfig, sweep: bool = False) -> bool:
    """A ``key=value`` override of a value the template holds, with a plain value: setting
    it on a composed config is all Hydra's composition would do with it. With ``sweep``, the
    sweep's own ``key=a,b,c`` (or a range) over such a value counts too: the sweep's config
    leaves that key at its default, and the job sets it."""
    if override.is_delete() or override.is_add() or override.is_force_add() or override.package is not None:
        return False
    if override.is_sweep_override() and not sweep:
        return False
    current = OmegaConf.select(template, override.key_or_group, default=_ABSENT, throw_on_missing=False)
    if current is _ABSENT or OmegaConf.is_config(current):  # absent, or a group's or a dict's node
        return False
    return override.is_sweep_override() or isinstance(override.value(), (bool, int, float, str, type(None)))


def _override_dirname(overrides, settings: DictConfig) -> str:
    """``hydra.job.override_dirname`` by Hydra's rule: the overrides' input lines less the
    excluded keys, sorted, joined by ``item_sep``, with ``=`` written as ``kv_sep``."""
    excluded = list(settings.exclude_keys)
    lines = sorted(o.input_line for o in overrides if o.key_or_group not in excluded)
    return re.sub("[=]", settings.kv_sep, settings.item_sep.join(lines))

