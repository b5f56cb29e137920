"""Where the Hydra configs and ready-made experiments live.

In a clone (an editable install) they are the repo's top-level ``conf/`` and
``experiments/``; a built wheel carries copies inside the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _first_dir(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


CONF_DIR = _first_dir(_PACKAGE.parent / "conf", _PACKAGE / "_conf")
EXPERIMENTS_DIR = _first_dir(_PACKAGE.parent / "experiments", _PACKAGE / "_experiments")


def expose_hydra_plugins() -> None:
    """Lets Hydra's plugin scan find jaxbp's launcher in an editable install.

    Hydra lists plugins by walking the ``hydra_plugins`` namespace's folders. A wheel puts
    ``hydra_plugins/jaxbp_vmap_launcher`` in site-packages; an editable install maps it with
    an import hook that such a walk cannot list, so its folder is added to the namespace.
    """
    try:
        import hydra_plugins
    except ImportError:  # not installed (running from a bare source tree): nothing to extend
        return
    folder = str(_PACKAGE / "hydra_plugins")
    if folder not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(folder)
