"""One job across several processes (hosts), with JAX's multi-controller runtime.

A job is multi-process when its environment says so (:func:`detect`): ``JAXBP_COORDINATOR``
(host:port), ``JAXBP_NUM_PROCESSES`` and ``JAXBP_PROCESS_ID``; or SLURM inside ``srun``
(``SLURM_STEP_ID`` set, ``SLURM_NTASKS`` > 1); or a multi-host TPU slice. ``distributed=off``
ignores all of them, and a single process is today's jaxbp: it never initialises anything.

Every process runs the same job. :func:`joined` calls ``jax.distributed.initialize`` once,
from the task, before the runner touches JAX's backend (the task is the one place that runs
in every process, also under submitit, which never runs the command line). The runner then
shards the member axis over ``jax.devices()`` (every process's), each process builds its own
devices' shards from the member table every process holds, results are gathered to every
process (:func:`to_host`), and only process 0 writes (:func:`is_lead`, :func:`writes`).

Failing together. JAX's own answer to a dead peer is to abort every process with a stack
trace, and a process blocked in a collective with a hung peer waits for ever. jaxbp turns the abort off
(``jax_enable_recoverability``) and runs a watchdog thread in each process instead: every
second it beats in the coordination service's key-value store and reads the others' beats
and failures. A failing process publishes its reason; a peer silent for ``JAXBP_PEER_TIMEOUT``
seconds (default 30: killed, crashed or hung) counts as failed. Either way every process
reports the reason in one line (process 0 records it in ``failed.json``) and ends with
``os._exit``, the only way out of a blocked collective. A process that never finds its peers
gives up after ``JAXBP_INIT_TIMEOUT`` seconds (default 300). At exit, process 0 says it is
done and waits for the others to leave before its coordination service stops.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

COORDINATOR, NUM_PROCESSES, PROCESS_ID = "JAXBP_COORDINATOR", "JAXBP_NUM_PROCESSES", "JAXBP_PROCESS_ID"
PEER_TIMEOUT, INIT_TIMEOUT = "JAXBP_PEER_TIMEOUT", "JAXBP_INIT_TIMEOUT"
DEFAULT_PEER_TIMEOUT_S, DEFAULT_INIT_TIMEOUT_S = 30, 300
BEAT_S = 1.0  # how often each watchdog beats and looks at the others
EXIT_FAILED = 1  # jaxbp.app.EXIT_FAILED (this layer does not import the Hydra glue)
_KEYS = "jaxbp/"


class DistributedEnvError(ValueError):
    """The environment names a multi-process job inconsistently; the message is one line."""


class Cluster(NamedTuple):
    """This process's place in a multi-process job, as its environment states it."""

    source: str  # "jaxbp" (JAXBP_* variables), "slurm" or "tpu"
    coordinator: str | None  # process 0's host:port; None: JAX asks the TPU runtime
    num_processes: int | None  # None: the TPU runtime knows
    process_id: int | None
    local_device_ids: tuple[int, ...] | None = None  # None: every local device


# ---------------------------------------------------------------- the environment (no JAX)
def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise DistributedEnvError(f"{name}={env[name]!r} is not an integer") from None


def _explicit(env: Mapping[str, str]) -> Cluster | None:
    missing = [k for k in (COORDINATOR, NUM_PROCESSES, PROCESS_ID) if not env.get(k)]
    if missing:
        raise DistributedEnvError(f"{', '.join(missing)} missing: {COORDINATOR} (host:port), "
                                  f"{NUM_PROCESSES} and {PROCESS_ID} go together")
    count, index = _int(env, NUM_PROCESSES), _int(env, PROCESS_ID)
    if count < 1 or not 0 <= index < count:
        raise DistributedEnvError(f"{PROCESS_ID}={index} with {NUM_PROCESSES}={count}: "
                                  "need 0 <= id < processes")
    if not re.fullmatch(r".+:\d+", env[COORDINATOR]):
        raise DistributedEnvError(f"{COORDINATOR}={env[COORDINATOR]!r} is not host:port")
    return None if count == 1 else Cluster("jaxbp", env[COORDINATOR], count, index)


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``node[003-005,9],gpu1`` -> ``node003``."""
    match = re.match(r"([^,\[]+)(?:\[([^\],-]+))?", nodelist.strip())
    if not match:
        raise DistributedEnvError(f"cannot read a host from SLURM's node list {nodelist!r}")
    return match.group(1) + (match.group(2) or "")


def _tasks_per_node(env: Mapping[str, str]) -> int:
    """The most tasks on any node of the step (``2(x3),1`` -> 2)."""
    spec = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE") or "1"
    return max(int(m) for m in re.findall(r"(?:^|,)(\d+)", spec))


def _slurm(env: Mapping[str, str]) -> Cluster:
    count, index = _int(env, "SLURM_NTASKS"), _int(env, "SLURM_PROCID")
    coordinator = env.get(COORDINATOR)
    if not coordinator:
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not nodes or "SLURM_JOB_ID" not in env:
            raise DistributedEnvError("srun with several tasks, but no SLURM node list or job id: "
                                      f"set {COORDINATOR}=host:port of task 0")
        # JAX's own choice: a port in [61440, 65535] fixed by the job id.
        coordinator = f"{first_host(nodes)}:{_int(env, 'SLURM_JOB_ID') % 4096 + 61440}"
    # One task per node uses all of the node's devices; several share them one each, as JAX does.
    local = (_int(env, "SLURM_LOCALID"),) if _tasks_per_node(env) > 1 and "SLURM_LOCALID" in env else None
    return Cluster("slurm", coordinator, count, index, local)


def _tpu_hosts(env: Mapping[str, str]) -> int:
    hosts = env.get("TPU_WORKER_HOSTNAMES") or env.get("TPU_PROCESS_ADDRESSES") or ""
    return len([h for h in hosts.split(",") if h.strip()])


def detect(env: Mapping[str, str] | None = None) -> Cluster | None:
    """The multi-process job this process belongs to, or ``None`` when it is alone.

    Reads the environment only. Explicit ``JAXBP_*`` variables win; then SLURM, only inside
    ``srun`` (``SLURM_STEP_ID``) with more than one task, with ``JAXBP_COORDINATOR`` as an
    optional override of the coordinator; then a TPU runtime that lists several hosts.

    Raises:
        DistributedEnvError: variables that contradict each other or are malformed.
    """
    env = os.environ if env is None else env
    if NUM_PROCESSES in env or PROCESS_ID in env:
        return _explicit(env)
    if "SLURM_STEP_ID" in env and "SLURM_NTASKS" in env and _int(env, "SLURM_NTASKS") > 1:
        return _slurm(env)
    if _tpu_hosts(env) > 1:  # JAX asks the TPU runtime for everything (multislice ids included)
        return Cluster("tpu", None, None, None)
    if COORDINATOR in env:
        return _explicit(env)  # names what else is missing
    return None


def setting_in(argv: Sequence[str]) -> str | None:
    """The last ``distributed=`` value on a command line, if any."""
    values = [a.split("=", 1)[1] for a in argv if re.match(r"\+{0,2}distributed=", a)]
    return values[-1] if values else None


def quiet_overrides(argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Hydra overrides for a process other than 0: no ``.hydra/`` and no log file in the job
    dir, which belong to process 0. Its log goes to its stdout."""
    if setting_in(argv) == "off":
        return []
    cluster = detect(env)
    if cluster is None or not cluster.process_id:  # process 0, or unknown before JAX starts (TPU)
        return []
    return ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


def _timeout(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or int(value) < 1:
        raise DistributedEnvError(f"{name}={value!r}: a whole number of seconds >= 1")
    return int(value)


# ---------------------------------------------------------------- the running job
class _Session:
    """The multi-process job this process has joined: its place, and the watchdog's view."""

    def __init__(self, index: int, count: int, client, peer_timeout: int):
        self.index, self.count, self.client, self.peer_timeout = index, count, client, peer_timeout
        self.report: Callable[[str], None] | None = None  # set by the `joined` block in force
        self.stop = threading.Event()
        self.ending = threading.Lock()
        self.thread = threading.Thread(target=self._watch, name="jaxbp-watchdog", daemon=True)

    def name(self, index: int | None = None) -> str:
        return f"process {self.index if index is None else index} of {self.count}"

    def _keys(self, folder: str) -> dict[int, str]:
        found = self.client.key_value_dir_get(_KEYS + folder)
        return {int(k.rsplit("/", 1)[1]): v for k, v in found}

    def publish(self, folder: str, value: str) -> None:
        self.client.key_value_set(f"{_KEYS}{folder}/{self.index}", value, allow_overwrite=True)

    def _watch(self) -> None:
        beats, seen = 0, {}
        while not self.stop.wait(BEAT_S):
            try:
                beats += 1
                self.publish("beat", str(beats))
                failed = {p: r for p, r in self._keys("failed").items() if p != self.index}
                if failed:
                    self.end(next(iter(failed.values())), published=True)
                done = set(self._keys("left")) | set(self._keys("done"))
                now = time.monotonic()
                for peer, beat in self._keys("beat").items():
                    if seen.get(peer, (None,))[0] != beat:
                        seen[peer] = (beat, now)
                for peer in set(range(self.count)) - done - {self.index}:
                    last = seen.setdefault(peer, (None, now))[1]
                    if now - last > self.peer_timeout:
                        self.end(f"{self.name(peer)} stopped responding for {self.peer_timeout} s "
                                 "(killed, crashed or hung)")
            except Exception as err:  # noqa: BLE001 - process 0's coordination service is gone
                if not self.stop.is_set():
                    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    self.end(f"lost process 0's coordination service ({first[:200]})", published=True)

    def end(self, reason: str, published: bool = False) -> None:
        """Reports ``reason``, tells the others (unless it came from them) and ends this
        process; a second caller waits for the first to end it."""
        self.ending.acquire()
        steps = [lambda: published or self.publish("failed", reason),
                 lambda: (self.report or _print_failure)(reason),
                 # The others read the reason from process 0's service: it waits for them.
                 lambda: self._wait_for_peers(5.0) if self.index == 0 else self.publish("left", "failed")]
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - ending matters more than telling
                pass
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_FAILED)

    def _wait_for_peers(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(set(self._keys("left")) - {self.index}) < self.count - 1:
            time.sleep(0.1)

    def leave(self) -> None:
        """At exit: process 0 says it is done and waits for the others to leave (its
        coordination service stops with it); the others wait for that word, still watched."""
        try:
            if self.index == 0:
                self.stop.set()
                self.publish("done", "1")
                self._wait_for_peers(self.peer_timeout)
            else:
                while not self._keys("done"):
                    time.sleep(0.1)
                self.stop.set()
                self.publish("left", "done")
        except Exception:  # noqa: BLE001 - process 0 is gone: the watchdog reports it
            while not self.stop.is_set():
                time.sleep(0.1)
        self.stop.set()
        self.thread.join(timeout=2 * BEAT_S)


def _print_failure(reason: str) -> None:
    print(f"jaxbp: the run failed: {reason}", file=sys.stderr, flush=True)


_SESSION: _Session | None = None


def _start(cluster: Cluster, report: Callable[[str], None]) -> None:
    """``jax.distributed.initialize`` for ``cluster``, under a deadline that reports a
    peer that never came in one line (JAX's own would abort with a stack trace)."""
    global _SESSION
    import jax

    peer_timeout = _timeout(PEER_TIMEOUT, DEFAULT_PEER_TIMEOUT_S)
    init_timeout = _timeout(INIT_TIMEOUT, DEFAULT_INIT_TIMEOUT_S)
    where = f"process {cluster.process_id} of {cluster.num_processes}" if cluster.num_processes else "this process"

    def give_up():
        report(f"{where} gave up after {init_timeout} s: not every process joined the job at "
               f"{cluster.coordinator or 'the TPU coordinator'} ({cluster.source})")
        os._exit(EXIT_FAILED)

    deadline = threading.Timer(init_timeout, give_up)
    deadline.daemon = True
    deadline.start()
    # A dead peer is the watchdog's to report; JAX would abort every process at once.
    jax.config.update("jax_enable_recoverability", True)
    try:
        jax.distributed.initialize(
            cluster.coordinator, cluster.num_processes, cluster.process_id,
            local_device_ids=list(cluster.local_device_ids) if cluster.local_device_ids else None,
            cluster_detection_method=None if cluster.source == "tpu" else "deactivate",
            initialization_timeout=init_timeout + 60,  # after ours, which reports it in one line
            heartbeat_timeout_seconds=2 * peer_timeout,  # a backstop for an unreachable process 0
            shutdown_timeout_seconds=peer_timeout)
    finally:
        deadline.cancel()
    from jax._src import distributed as jax_distributed  # the key-value client, as orbax uses it

    _SESSION = _Session(jax.process_index(), jax.process_count(), jax_distributed.global_state.client,
                        peer_timeout)
    _SESSION.thread.start()
    atexit.register(_SESSION.leave)  # runs before JAX's own shutdown, registered earlier


@contextlib.contextmanager
def joined(setting: str, report: Callable[[str], None]):
    """Joins this process to its multi-process job (once per process) and, within the block,
    fails together: an exception here, or a failure the watchdog sees in another process,
    calls ``report(reason)`` in every process and ends it with status 1.

    ``report`` runs in each process; it should record the reason only where
    :func:`is_lead`. A single process (or ``setting="off"``) joins nothing and exceptions
    pass through unchanged.
    """
    if _SESSION is None and setting != "off":
        cluster = detect()
        if cluster is not None:
            _start(cluster, report)
    session = _SESSION
    if session is None:
        yield
        return
    session.report = report
    try:
        yield
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            session.publish("failed", f"{session.name()} was interrupted")
        raise
    except Exception as err:  # noqa: BLE001 - every process must hear of it
        import jax

        if isinstance(err, jax.errors.JaxRuntimeError):
            # Often a collective that a dead peer broke: the watchdog names the peer (and
            # ends this process) within its timeout; only then is the error this process's own.
            time.sleep(session.peer_timeout + 3 * BEAT_S)
        first = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        session.end(f"{session.name()} failed: {first}")
    finally:
        session.report = None


def announce_interrupt() -> None:
    """Tells the other processes of a joined job that this one was interrupted (Ctrl-C), so
    they end with that reason at once rather than after the watchdog's silence."""
    if _SESSION is not None:
        with contextlib.suppress(Exception):
            _SESSION.publish("failed", f"{_SESSION.name()} was interrupted")


def is_lead(setting: str = "auto") -> bool:
    """Whether this process writes files: a single process, or process 0 of a multi-process
    job (before the job is joined, as the environment says)."""
    if _SESSION is not None:
        return _SESSION.index == 0
    if setting == "off":
        return True
    cluster = detect()
    return cluster is None or not cluster.process_id


def writes() -> bool:
    """Whether this process may write job files: any process but a joined one other than 0
    (before joining, every process fails alike, so each may record it)."""
    return _SESSION is None or _SESSION.index == 0


def planned(setting: str) -> bool:
    """Whether this process is, or will be, one of several in a job."""
    return _SESSION is not None or (setting != "off" and detect() is not None)


def describe() -> str:
    """``process i of n``, or ``""`` for a single process."""
    return "" if _SESSION is None else _SESSION.name()


# ---------------------------------------------------------------- collectives jaxbp needs
def to_host(tree):
    """``tree`` with every array this process cannot read whole gathered from all processes
    (``process_allgather``, tiled); a collective, so every process must call it."""
    import jax

    if all(getattr(leaf, "is_fully_addressable", True) for leaf in jax.tree.leaves(tree)):
        return tree
    from jax.experimental import multihost_utils

    return jax.tree.map(lambda a: a if getattr(a, "is_fully_addressable", True)
                        else multihost_utils.process_allgather(a, tiled=True), tree)


def agreed_min(value: int) -> int:
    """The smallest ``value`` over all processes: sizes every process must share (members
    per chunk) even though each estimates them from its own memory."""
    if _SESSION is None:
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    return int(np.min(multihost_utils.process_allgather(np.int32(min(value, 2**31 - 1)))))


def lead_decides(flag: bool) -> bool:
    """Process 0's ``flag`` in every process, so a choice made from files (is this job
    already complete?) cannot split the processes."""
    if _SESSION is None:
        return flag
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.bool_(flag)))
