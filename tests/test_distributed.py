"""One job over several processes: which environment makes a multi-process job, and (slow)
real 2-process runs on localhost, spawned as subprocesses with a free port, since JAX's
distributed runtime is process-global state that must never start inside pytest."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import cli_env
from jaxbp import config, distributed
from jaxbp.distributed import Cluster, DistributedEnvError

JOB = ("jaxbp", "h:1234")
SRUN = {"SLURM_STEP_ID": "0", "SLURM_JOB_ID": "4097", "SLURM_STEP_NODELIST": "node[003-004]",
        "SLURM_NTASKS": "4", "SLURM_PROCID": "2", "SLURM_LOCALID": "0"}


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"JAXBP_COORDINATOR": "h:1234", "JAXBP_NUM_PROCESSES": "2", "JAXBP_PROCESS_ID": "1"}, Cluster(*JOB, 2, 1)),
    ({"JAXBP_COORDINATOR": "h:1234", "JAXBP_NUM_PROCESSES": "1", "JAXBP_PROCESS_ID": "0"}, None),  # alone
    # SLURM counts only inside srun, with several tasks; port = job id % 4096 + 61440, as JAX's
    ({**SRUN, "SLURM_STEP_TASKS_PER_NODE": "2(x2)"}, Cluster("slurm", "node003:61441", 4, 2, (0,))),
    ({**SRUN, "SLURM_STEP_TASKS_PER_NODE": "1(x4)"}, Cluster("slurm", "node003:61441", 4, 2)),
    ({**SRUN, "JAXBP_COORDINATOR": "login:9"}, Cluster("slurm", "login:9", 4, 2)),
    ({k: v for k, v in SRUN.items() if k != "SLURM_STEP_ID"}, None),  # an sbatch script, not srun
    ({**SRUN, "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, None),
    ({**SRUN, "JAXBP_COORDINATOR": "h:1234", "JAXBP_NUM_PROCESSES": "2", "JAXBP_PROCESS_ID": "0"},
     Cluster(*JOB, 2, 0)),  # explicit variables win
    ({"TPU_WORKER_HOSTNAMES": "t0,t1"}, Cluster("tpu", None, None, None)),  # JAX asks the TPU runtime
    ({"TPU_WORKER_HOSTNAMES": "t0"}, None),
])
def test_detect(env, expected):
    assert distributed.detect(env) == expected


@pytest.mark.parametrize("env, words", [
    ({"JAXBP_COORDINATOR": "h:1234"}, "JAXBP_NUM_PROCESSES, JAXBP_PROCESS_ID missing"),
    ({"JAXBP_NUM_PROCESSES": "2", "JAXBP_PROCESS_ID": "0"}, "JAXBP_COORDINATOR missing"),
    ({"JAXBP_COORDINATOR": "h:1234", "JAXBP_NUM_PROCESSES": "2", "JAXBP_PROCESS_ID": "2"}, "need 0 <= id"),
    ({"JAXBP_COORDINATOR": "h", "JAXBP_NUM_PROCESSES": "2", "JAXBP_PROCESS_ID": "0"}, "not host:port"),
    ({"JAXBP_COORDINATOR": "h:1", "JAXBP_NUM_PROCESSES": "two", "JAXBP_PROCESS_ID": "0"}, "not an integer"),
])
def test_detect_refuses_inconsistent_variables(env, words):
    with pytest.raises(DistributedEnvError, match=words):
        distributed.detect(env)


@pytest.mark.parametrize("nodes, host", [("node001", "node001"), ("a1,a2", "a1"),
                                         ("gpu[07-09,12],cpu1", "gpu07"), ("rack2-n[3,5]", "rack2-n3")])
def test_first_host_of_a_slurm_node_list(nodes, host):
    assert distributed.first_host(nodes) == host


def test_only_process_0_lets_hydra_write_into_the_job_dir():
    env = {"JAXBP_COORDINATOR": "h:1", "JAXBP_NUM_PROCESSES": "2"}
    assert distributed.quiet_overrides([], {**env, "JAXBP_PROCESS_ID": "0"}) == []
    assert distributed.quiet_overrides([], {**env, "JAXBP_PROCESS_ID": "1"}) == \
        ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    assert distributed.quiet_overrides(["distributed=off"], {**env, "JAXBP_PROCESS_ID": "1"}) == []
    assert distributed.quiet_overrides([], {}) == []


def test_distributed_is_a_checked_cosmetic_key():
    assert config.RunConfig().distributed == "auto" and "distributed" in config.COSMETIC_KEYS
    with pytest.raises(config.ConfigError, match="distributed"):
        config.RunConfig(distributed="on")


# ---------------------------------------------------------------- real processes (slow)
COMMAND = ["num_seeds=64", "epochs=200", "progress=false"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _env(devices: int, **extra) -> dict:
    return cli_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **extra)


def _spawn(args, log: Path, cwd: Path, port: int, index: int, count: int = 2, **extra):
    env = _env(2, JAXBP_COORDINATOR=f"localhost:{port}", JAXBP_NUM_PROCESSES=str(count),
               JAXBP_PROCESS_ID=str(index), **extra)
    with open(log, "w") as out:  # a file, never a pipe nobody reads while the other waits
        return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait(procs, timeout: float) -> list[int]:
    try:
        return [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.mark.slow
def test_two_processes_write_the_one_process_numbers_from_process_0_only(tmp_path):
    job = tmp_path / "two"
    args = ["-m", "jaxbp.train", *COMMAND, f"hydra.run.dir={job}"]
    port = _free_port()
    procs = [_spawn(args, tmp_path / f"p{i}.log", tmp_path, port, i) for i in range(2)]
    one = subprocess.run([sys.executable, "-m", "jaxbp.train", *COMMAND, f"hydra.run.dir={tmp_path / 'one'}"],
                         cwd=tmp_path, env=_env(4), capture_output=True, text=True, timeout=300)
    assert _wait(procs, 300) == [0, 0], (tmp_path / "p0.log").read_text() + (tmp_path / "p1.log").read_text()
    assert one.returncode == 0, one.stderr
    # Exact: with 4 devices in all, every 16-member shard runs the same per-device program in
    # both runs; processes change only where a shard runs, and the gather copies bits.
    for name in ("seeds.csv", "curves.csv"):
        assert (job / name).read_text() == (tmp_path / "one" / name).read_text(), name
    assert sorted(os.listdir(job)) == sorted(os.listdir(tmp_path / "one"))  # nothing more, nothing less
    assert "process 1 of 2: trained its share of 64 seeds" in (tmp_path / "p1.log").read_text()
    assert "process 1" not in (job / "train.log").read_text()
    assert "job_logging=stdout" not in (job / ".hydra" / "hydra.yaml").read_text()  # process 0's own


@pytest.mark.slow
def test_a_killed_peer_fails_the_job_in_bounded_time_with_one_line(tmp_path):
    job = tmp_path / "killed"
    args = ["-m", "jaxbp.train", "num_seeds=8", "epochs=200000", "progress=false", f"hydra.run.dir={job}"]
    port, logs = _free_port(), [tmp_path / "p0.log", tmp_path / "p1.log"]
    procs = [_spawn(args, logs[i], tmp_path, port, i, JAXBP_PEER_TIMEOUT="5") for i in range(2)]
    started = time.monotonic()
    # Gloo connects all four devices at the first collective, just before training starts.
    while "Rank 0 is connected to 3" not in logs[0].read_text() and time.monotonic() - started < 120:
        assert procs[0].poll() is None, logs[0].read_text()
        time.sleep(0.2)
    time.sleep(3)
    assert procs[0].poll() is None, "the run ended before it could be interrupted"
    procs[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    status = _wait(procs[:1], 60)[0]
    assert time.monotonic() - killed < 60
    assert status == 1
    lines = [line for line in logs[0].read_text().splitlines() if line.startswith("jaxbp:")]
    assert lines == ["jaxbp: the run failed: process 1 of 2 stopped responding for 5 s (killed, crashed or hung)"]
    assert not (job / "COMPLETE").exists()
    assert "process 1 of 2 stopped responding" in (job / "failed.json").read_text()


@pytest.mark.slow
def test_an_exception_in_one_process_ends_both_with_its_reason(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(
        "import os, sys\n"
        "from jaxbp import runner, train\n"
        "def run(cfg, **kwargs):\n"
        "    raise RuntimeError('no room on this host')\n"
        "if os.environ['JAXBP_PROCESS_ID'] == '1':\n"
        "    runner.run = run\n"
        "sys.argv = ['jaxbp.train', *sys.argv[1:]]\n"
        "train.cli()\n")
    job = tmp_path / "failed"
    port = _free_port()
    procs = [_spawn([str(script), "num_seeds=8", "epochs=100000", f"hydra.run.dir={job}"],
                    tmp_path / f"p{i}.log", tmp_path, port, i) for i in range(2)]
    assert _wait(procs, 120) == [1, 1]
    reason = "process 1 of 2 failed: RuntimeError: no room on this host"
    for i in range(2):
        assert f"jaxbp: the run failed: {reason}" in (tmp_path / f"p{i}.log").read_text()
    assert reason in (job / "failed.json").read_text() and not (job / "COMPLETE").exists()


@pytest.mark.slow
def test_a_peer_that_never_comes_ends_the_wait_with_one_line(tmp_path):
    job = tmp_path / "alone"
    proc = _spawn(["-m", "jaxbp.train", "num_seeds=8", "epochs=10", f"hydra.run.dir={job}"],
                  tmp_path / "p0.log", tmp_path, _free_port(), 0, JAXBP_INIT_TIMEOUT="3")
    assert _wait([proc], 120) == [1]
    assert "jaxbp: the run failed: process 0 of 2 gave up after 3 s: not every process joined" in \
        (tmp_path / "p0.log").read_text()
    assert not (job / "COMPLETE").exists()
