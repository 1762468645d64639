"""Start and stop the testbed's processes, by pid only, never by name.

Each process is started in its own session (so its pid is its process group id) and recorded with its executable
and its start time from /proc. A recorded pid is only signalled while /proc still shows the same executable and the
same start time, so a pid the kernel has since given to another program is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    executable: str
    start_ticks: int
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            executable=str(data["executable"]),
            start_ticks=int(data["start_ticks"]),
            log=str(data["log"]),
        )


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after its closing parenthesis.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def is_ours(record: ProcessRecord) -> bool:
    """The recorded process still runs: same pid, same start time, same executable, and not a zombie."""
    if start_ticks(record.pid) != record.start_ticks or _is_zombie(record.pid):
        return False
    argv = _cmdline(record.pid)
    return bool(argv) and argv[0] == record.executable


def _die_with_parent() -> None:
    """Linux prctl(PR_SET_PDEATHSIG, SIGTERM): the kernel signals the child when the thread that started it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: `down` (or the test fixture's teardown) stops it


def start(
    name: str,
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    niceness: int = 0,
    die_with_parent: bool = False,
) -> ProcessRecord:
    """Start `argv` in a new session with stdout and stderr to `log`; return its record.

    `die_with_parent` ties the process to the calling process (tests: a killed test run leaves nothing running);
    the CLI's `up` leaves it off, since its processes must outlive the command."""
    log.parent.mkdir(parents=True, exist_ok=True)

    def lower_priority() -> None:
        if die_with_parent:
            _die_with_parent()
        if niceness:
            os.nice(niceness)

    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=lower_priority,
            close_fds=True,
        )
    ticks = start_ticks(process.pid)
    if ticks is None:  # it died at once; the caller reads the log
        ticks = -1
    return ProcessRecord(name=name, pid=process.pid, executable=argv[0], start_ticks=ticks, log=str(log))


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child (started by this Python process)."""
    for _ in range(20):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            return  # not our child (another process started it) or already collected
        if done:
            return
        time.sleep(0.05)


def stop(record: ProcessRecord, grace: float = STOP_GRACE_SECONDS) -> str:
    """SIGTERM the recorded process group, SIGKILL it after `grace` seconds; say what was done."""
    if not is_ours(record):
        _reap(record.pid)
        return "not running"
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    outcome = "stopped"
    deadline = time.monotonic() + grace
    while is_ours(record) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_ours(record):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGKILL)
        outcome = "killed"
        for _ in range(50):
            if not is_ours(record):
                break
            time.sleep(0.1)
    # When this Python process started it, the exited process stays a zombie until collected here.
    _reap(record.pid)
    return outcome
