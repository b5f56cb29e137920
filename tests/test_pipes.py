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


ENDINGS = """
import logging, sys, threading, time
from jaxbp import pipes

class Teardown:
    def __init__(self, path=sys.argv[3], write=open):
        self.path, self.write = path, write

    def __del__(self):  # runs in the interpreter's teardown, which pipes.main skips
        self.write(self.path, "w").write("torn down")

kept_to_the_end = Teardown()

def entry():
    log = logging.getLogger("t")
    log.addHandler(logging.FileHandler(sys.argv[1]))
    log.warning("logged")
    def late():
        time.sleep(0.3)
        open(sys.argv[2], "w").write("thread done")
    if {thread}:
        threading.Thread(target=late).start()
    sys.stdout.write("x" * 100_000)  # buffered when stdout is a pipe
    {end}

pipes.main(entry)
"""


@pytest.mark.parametrize("thread", [False, True])
@pytest.mark.parametrize("end, status, stderr", [("return 3", 3, ""), ("return None", 0, ""),
                                                 ("sys.exit(4)", 4, ""), ("sys.exit('refused')", 1, "refused"),
                                                 ("raise SystemExit", 0, ""), ("return 'odd'", 1, "odd")])
def test_a_command_ends_with_its_status_and_loses_no_output(tmp_path, end, status, stderr, thread):
    """pipes.main skips the interpreter's teardown, not what a normal exit keeps: the exit
    status, buffered stdout and log files. A thread that is still running (joblib's loky
    workers were) gets the normal exit, whose shutdown tells such threads to stop; waiting
    for them without it hung the joblib sweep."""
    script = tmp_path / "entry.py"
    script.write_text(ENDINGS.format(end=end, thread=thread))
    files = [str(tmp_path / name) for name in ("log", "thread", "teardown")]
    proc = subprocess.run([sys.executable, str(script), *files], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == status
    assert proc.stdout == "x" * 100_000 and proc.stderr.strip() == stderr
    assert (tmp_path / "log").read_text() == "logged\n"
    if thread:
        assert (tmp_path / "thread").read_text() == "thread done"
        assert (tmp_path / "teardown").read_text() == "torn down", "the normal exit, teardown and all"
    else:
        assert not (tmp_path / "teardown").exists(), "the teardown was skipped"


def test_an_escaping_exception_is_reported_as_python_reports_it(tmp_path):
    script = tmp_path / "entry.py"
    script.write_text("from jaxbp import pipes\n\ndef entry():\n    raise ValueError('boom')\n\npipes.main(entry)\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=cli_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ValueError: boom" in proc.stderr
