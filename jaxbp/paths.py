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
