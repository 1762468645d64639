"""Processes are stopped by recorded pid only, and only while the pid is still the process that was started."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_policy.testbed import processes

SLEEP = shutil.which("sleep")
pytestmark = pytest.mark.skipif(SLEEP is None or not Path("/proc/self/stat").exists(), reason="needs sleep and /proc")


def test_a_started_process_is_recognised_and_stopped_with_its_group(tmp_path: Path) -> None:
    assert SLEEP is not None
    record = processes.start("sleeper", [SLEEP, "60"], tmp_path / "logs" / "sleeper.log")
    try:
        assert processes.is_ours(record)
        assert record.start_ticks == processes.start_ticks(record.pid)
        assert processes.stop(record, grace=5) == "stopped"
        assert not processes.is_ours(record)
        assert processes.stop(record) == "not running"
    finally:
        processes.stop(record, grace=1)


def test_a_pid_with_another_start_time_or_executable_is_never_signalled(tmp_path: Path) -> None:
    assert SLEEP is not None
    record = processes.start("sleeper", [SLEEP, "60"], tmp_path / "sleeper.log")
    try:
        reused = dataclasses.replace(record, start_ticks=record.start_ticks + 1)
        assert processes.stop(reused) == "not running"
        other_program = dataclasses.replace(record, executable="/usr/bin/etcd")
        assert processes.stop(other_program) == "not running"
        assert processes.is_ours(record), "the real process must survive both stop attempts"
    finally:
        assert processes.stop(record, grace=5) == "stopped"


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    shell = shutil.which("sh")
    if shell is None:
        pytest.skip("no sh")
    log = tmp_path / "stubborn.log"
    record = processes.start("stubborn", [shell, "-c", "trap '' TERM; echo trapped; sleep 60 & wait"], log)
    try:
        deadline = time.monotonic() + 10
        while "trapped" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "trapped" in log.read_text(), "the shell did not install its SIGTERM trap"
        assert processes.stop(record, grace=0.5) == "killed"
        assert not processes.is_ours(record)
    finally:
        processes.stop(record, grace=0.5)


def test_a_process_tied_to_its_caller_ends_when_the_caller_is_killed(tmp_path: Path) -> None:
    """What a killed test run leaves: nothing, since the fixtures start the testbed with die_with_parent."""
    assert SLEEP is not None
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from gpu_policy.testbed import processes\n"
        f"r = processes.start('sleeper', [{SLEEP!r}, '60'], Path({str(tmp_path / 'log')!r}), die_with_parent=True)\n"
        "print(r.pid, r.start_ticks, flush=True)\n"
        "time.sleep(60)\n"
    )
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert caller.stdout is not None
        pid, ticks = (int(x) for x in caller.stdout.readline().split())
        record = processes.ProcessRecord("sleeper", pid, SLEEP, ticks, str(tmp_path / "log"))
        assert processes.is_ours(record)
        caller.kill()
        caller.wait(timeout=10)
        deadline = time.monotonic() + 10
        while processes.is_ours(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not processes.is_ours(record), "the tied process outlived its killed caller"
    finally:
        caller.kill()
        caller.wait(timeout=10)
