"""Hydra's own launcher conformance suites, run against ``hydra/launcher=vmap``.

Every Hydra launcher plugin runs these (hydra-core ships them); their task functions and
apps are Hydra's toy apps, not jaxbp's, so the launcher must run a job it cannot fuse
exactly as Hydra's basic launcher does. The integration suite starts each toy app as a
subprocess that never imports jaxbp: Hydra's plugin scan must find the launcher itself.
"""

from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from hydra.version import _UNSPECIFIED_, VersionBase
from pytest import fixture, mark


@fixture(autouse=True)
def fresh_version_base(monkeypatch):
    """The suites assume a fresh process's Hydra version base (unset: 1.1's defaults, such as
    a job running in its own dir); other tests in the same pytest worker set 1.3's."""
    monkeypatch.setattr(VersionBase.instance(), "version_base", _UNSPECIFIED_)


@mark.parametrize("launcher_name, overrides", [("vmap", [])])
class TestVmapLauncher(LauncherTestSuite):
    pass


@mark.parametrize("task_launcher_cfg, extra_flags",
                  [({"defaults": [{"override hydra/launcher": "vmap"}]}, ["-m"])])
class TestVmapLauncherIntegration(IntegrationTestSuite):
    pass
