"""The latency benchmark's timers (jaxbp.phases) and its table (jaxbp.latency)."""

import pytest

from jaxbp import latency, phases


@pytest.fixture
def fresh_timers(monkeypatch):
    monkeypatch.setattr(phases, "_TOTALS", {})
    monkeypatch.setattr(phases, "_COUNTS", {})
    monkeypatch.setattr(phases, "_STACK", [])


def test_time_goes_to_the_innermost_phase_only(fresh_timers, monkeypatch):
    clock = [0.0]  # a clock the test advances: 1 s outside, 2 s inside, 4 s outside again
    monkeypatch.setattr(phases, "_clock", lambda: clock[0])

    def advance(seconds):
        clock[0] += seconds

    inner = phases.timed("imports", lambda: advance(2.0))

    def outer():
        advance(1.0)
        inner()
        advance(4.0)

    phases.timed("statistics", outer, count="calls")()
    assert phases._TOTALS == {"imports": 2.0, "statistics": 5.0}
    assert phases._COUNTS == {"calls": 1} and phases._STACK == []


def test_a_phase_is_closed_when_its_function_raises(fresh_timers):
    def fails():
        raise KeyError("x")

    with pytest.raises(KeyError):
        phases.timed("compile", fails)()
    assert phases._STACK == [] and "compile" in phases._TOTALS


def test_the_table_gives_each_time_as_a_multiple_of_the_floor():
    table = latency.format_times((2.0, 1.5), {"--help": (3.0, 2.5, 1.5, 1.25, 2.0, 1.0)})
    assert "| --help | 3.00 | 1.50× | 2.50 | 1.25× | 2.00 | 1.00 |" in table


def test_help_under_the_timers_composes_once_and_compiles_nothing(tmp_path):
    run = latency.phase_run("--help", tmp_path, tmp_path / "cache", "help")
    assert run["counts"].get("compositions") == 1
    assert run["counts"].get("backend_compiles", 0) == 0
    assert 0 < run["phases"]["imports"] < run["wall"]
    assert sum(run["phases"].values()) < run["wall"], "phases are exclusive: they fit in the wall time"
