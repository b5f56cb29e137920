"""Ends a command quietly when its reader goes away (``python -m jaxbp.report --help | head``).

Python ignores SIGPIPE, so a write into a closed pipe raises ``BrokenPipeError``, and the
flush at exit raises it again ("Exception ignored ... BrokenPipeError"). As the Python docs
advise (``signal`` module, "Note on SIGPIPE"), stdout is pointed at ``os.devnull`` so the
exit-time flush succeeds, and the command exits 1. No imports beyond the standard library.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

EXIT_BROKEN_PIPE = 1


def quiet_pipe(entry: Callable[..., Any], *args: Any) -> Any:
    """``entry(*args)``, flushing stdout inside; a closed pipe ends the process with status 1
    and no traceback. Returns what ``entry`` returns."""
    try:
        try:
            return entry(*args)
        finally:  # also after sys.exit (Hydra's --help): a late EPIPE surfaces here
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
