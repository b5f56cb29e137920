"""How a command ends: quietly when its reader goes away, and without the interpreter's
teardown once its work is done.

- **A closed pipe** (``python -m jaxbp.report --help | head``). Python ignores SIGPIPE, so a
  write into a closed pipe raises ``BrokenPipeError``, and the flush at exit raises it again
  ("Exception ignored ... BrokenPipeError"). As the Python docs advise (``signal`` module,
  "Note on SIGPIPE"), stdout is pointed at ``os.devnull`` so the exit-time flush succeeds,
  and the command exits 1.
- **No teardown** (:func:`main`). After the atexit handlers, the interpreter frees every
  module and object one by one, XLA's client and its executables among them: 0.2-0.4 s on
  2 cores, a tenth of the design card's sweep, for nothing a user keeps. Every file jaxbp
  writes is complete (written, fsynced and renamed) before its command returns, so
  :func:`main` runs the atexit handlers (logging's flush, JAX's own clean-up), flushes
  stdout and stderr, and ends the process with the command's status at once
  (``os._exit``). While a thread that is not a daemon still runs (joblib's workers, say),
  it exits the normal way instead: the interpreter's shutdown is what tells such threads
  to stop. An exception that escapes the command is not caught: Python prints it and exits
  as it always does.

No imports beyond the standard library.
"""

from __future__ import annotations

import atexit
import numbers
import os
import sys
import threading
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


def main(entry: Callable[[], Any]) -> None:
    """Runs a command's ``entry`` (through :func:`quiet_pipe`) and ends the process with its
    status, skipping the interpreter's teardown. For ``if __name__ == "__main__"`` blocks
    only: it never returns."""
    try:
        status = quiet_pipe(entry)
    except SystemExit as done:
        status = done.code
    # What sys.exit makes of its argument: None is 0, an integer is itself (a NumPy one
    # too), anything else is printed and is 1.
    if status is None:
        status = 0
    elif isinstance(status, numbers.Integral):
        status = int(status)
    else:
        print(status, file=sys.stderr)
        status = 1
    if any(thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
           for thread in threading.enumerate()):
        # Someone's worker threads (joblib's loky executor, say) end in the interpreter's own
        # shutdown, which tells them to stop before it waits for them: leave it to that.
        sys.exit(status)
    atexit._run_exitfuncs()  # what a normal exit runs first: logging.shutdown, JAX's clean-up
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # as Python's own exit: a failed final flush is status 120
            status = status or 120
    os._exit(status)
