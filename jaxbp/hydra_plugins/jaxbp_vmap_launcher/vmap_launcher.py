"""``hydra/launcher=vmap``: a sweep's jaxbp jobs that differ only in traced values train as
one program (:mod:`jaxbp.fuse`); any other task's jobs run as under Hydra's basic launcher.

Laid out as Hydra's own plugins are: the settings in ``config.py``, this thin class, and
the work in ``_core.py``, which alone imports jaxbp (so Hydra's plugin scan stays cheap).
"""

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.jaxbp_vmap_launcher.config import VmapLauncherConf  # noqa: F401 (registers the conf)
from omegaconf import DictConfig


class VmapLauncher(Launcher):
    def __init__(self, max_members: int = 2_000_000, fuse_widths: str = "auto",
                 width_work_factor: float = 2.0) -> None:
        super().__init__()
        self.max_members, self.fuse_widths, self.width_work_factor = max_members, fuse_widths, width_work_factor
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.jaxbp_vmap_launcher import _core

        return _core.launch(self, job_overrides, initial_job_idx)
