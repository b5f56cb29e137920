"""``hydra/launcher=vmap``'s settings, registered in Hydra's ConfigStore when Hydra's plugin
scan imports this package (no jaxbp import here)."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class VmapLauncherConf:
    _target_: str = "hydra_plugins.jaxbp_vmap_launcher.vmap_launcher.VmapLauncher"
    # A fused program holds at most this many members; larger groups are split, which
    # bounds memory (a million XOR members peak near 1 GB of host memory).
    max_members: int = 2_000_000
    # Jobs that differ only in `hidden` train as one program padded to the widest:
    # auto = when the padded work is at most `width_work_factor` × the unpadded work (on a
    # CPU; always on an accelerator), always, or never. experiments/PERF.md has the measurement.
    fuse_widths: str = "auto"
    width_work_factor: float = 2.0


ConfigStore.instance().store(group="hydra/launcher", name="vmap", node=VmapLauncherConf, provider="jaxbp")
