"""The unit suite's own rule (tests/unit/conftest.py): a unit test starts no process unless it says
why, with a `subprocess` mark or a `tool` mark for the one tool it runs."""

from __future__ import annotations

import os
import subprocess

import pytest


def test_a_unit_test_cannot_start_a_process(_no_processes):
    with pytest.raises(RuntimeError, match=r"a unit test started a process: subprocess\.Popen\(\['true'\]\)\. Call imagekit\.cli\.main"):
        subprocess.run(["true"])
    with pytest.raises(RuntimeError, match=r"a unit test started a process: os\.system\('true',\)"):
        os.system("true")
    with pytest.raises(RuntimeError, match=r"os\.fork"):
        os.fork()
    assert len(_no_processes) == 3, "each is recorded too: caught by the code under test, it still fails the test"
    _no_processes.clear()  # refused on purpose here


@pytest.mark.tool("git")
def test_a_tool_mark_lets_that_tool_start_and_no_other(tools, _no_processes):
    assert subprocess.run([*tools["git"], "--version"], capture_output=True, text=True).stdout.startswith("git version")
    with pytest.raises(RuntimeError, match="a unit test started a process"):
        subprocess.run(["true"])
    _no_processes.clear()


@pytest.mark.subprocess  # what the mark is for
def test_the_subprocess_mark_lets_a_test_start_processes():
    assert subprocess.run(["true"]).returncode == 0
