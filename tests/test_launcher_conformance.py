"""Hydra's own launcher conformance suites, run against ``hydra/launcher=vmap``.

Every Hydra launcher plugin runs these (hydra-core ships them); their task functions and
apps are Hydra's toy apps, not jaxbp's, so the launcher must run a job it cannot fuse
exactly as Hydra's basic launcher does. The integration suite starts each toy app as a
subprocess that never imports jaxbp: Hydra's plugin scan must find the launcher itself.
"""

from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from pytest import mark


@mark.parametrize("launcher_name, overrides", [("vmap", [])])
class TestVmapLauncher(LauncherTestSuite):
    pass


@mark.parametrize("task_launcher_cfg, extra_flags",
                  [({"defaults": [{"override hydra/launcher": "vmap"}]}, ["-m"])])
class TestVmapLauncherIntegration(IntegrationTestSuite):
    pass
