"""``python -m jaxbp.<tool> --help | head`` ends quietly (issue #28 item 11): a reader that
goes away before the command writes must not leave a BrokenPipeError traceback."""

import subprocess
import sys

import pytest

from cli import cli_env

TOOLS = ["jaxbp.train", "jaxbp.atlas", "jaxbp.report", "jaxbp.compare", "jaxbp.bench", "jaxbp.gradcheck"]


@pytest.mark.parametrize("module", TOOLS)
def test_help_into_a_closed_pipe_has_no_traceback(module, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", module, "--help"], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head -1` does once it has its line; here before any write
    stderr = proc.communicate(timeout=60)[1].decode()
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr
    assert proc.returncode in (0, 1)  # 1: the Python docs' convention; 0: argparse dropped the write itself


def test_help_into_an_open_pipe_is_unchanged(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jaxbp.report", "--help"], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--zoom" in proc.stdout and not proc.stderr


def test_a_table_into_a_closed_pipe_has_no_traceback(tmp_path):
    """An argparse tool's ``--help`` is quiet anyway (argparse drops a failed write); its
    printed results are where the pipe breaks: ``gradcheck --sizes 2,1 | head -1``."""
    proc = subprocess.Popen([sys.executable, "-m", "jaxbp.gradcheck", "--sizes", "2,1", "--activation", "sigmoid",
                             "--output", "sigmoid"], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.communicate(timeout=120)[1].decode()
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr
    assert proc.returncode == 1
