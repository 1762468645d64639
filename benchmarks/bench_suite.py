"""How long the README's test command takes, and where the time goes.

Not a test: run `.venv/bin/python benchmarks/bench_suite.py [--no-testbed] [--with-drills] [-n auto]` from the
repository root. It runs `.venv/bin/pytest -n N -p no:cacheprovider --durations=K` as the README says, in its own
process, and prints one Markdown table row: tests passed and skipped, CPU (user + system of pytest, its workers and
every child they waited for: promtool, the testbed's processes, `gpu-policy` subprocesses), wall time, and the load
average before and after, since on a shared machine the wall time is what the run got of the cores, not what it
needs. The K slowest tests follow the row.

`--no-testbed` points GPU_POLICY_TESTBED_CACHE at an empty folder (the testbed, live, controller and drill tests
skip); by default the testbed's built binaries are used. The behaviour drills (tests/drills/test_alerts_drill.py,
test_keda_drills.py, test_karpenter_drills.py), which wait out real stabilisation windows for minutes, are
deselected unless `--with-drills` is given (issue 13 counts the suite without them).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRILLS = ("tests/drills/test_alerts_drill.py", "tests/drills/test_keda_drills.py",
          "tests/drills/test_karpenter_drills.py")
SUMMARY = re.compile(r"(?:=+ )?(?P<text>.*\b(?:passed|failed)\b.*) in (?P<seconds>[\d.]+)s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", default="auto", help="pytest-xdist workers (default: auto, as the README)")
    parser.add_argument("--no-testbed", action="store_true", help="skip the tests that need the testbed binaries")
    parser.add_argument("--with-drills", action="store_true", help="also run the behaviour drills")
    parser.add_argument("--durations", type=int, default=15, help="slowest tests listed (default 15)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    command = [str(ROOT / ".venv" / "bin" / "pytest"), "-n", args.n, "-p", "no:cacheprovider", "-q",
               f"--durations={args.durations}"]
    if not args.with_drills:
        command += [f"--deselect={path}" for path in DRILLS]
    command += args.pytest_args
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as empty:
        if args.no_testbed:
            env["GPU_POLICY_TESTBED_CACHE"] = empty
        load_before = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_after = os.getloadavg()[0]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = done.stdout.splitlines()
    summary = next((m for line in reversed(lines) if (m := SUMMARY.search(line))), None)
    tests = summary.group("text") if summary else f"no summary (exit {done.returncode})"
    print("| tests | CPU (user + system) | wall | load average before, after | exit |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {tests} | {cpu:.1f} s | {wall:.1f} s | {load_before:.1f}, {load_after:.1f} | {done.returncode} |")
    if any("warnings summary" in line for line in lines):
        start = next(i for i, line in enumerate(lines) if "warnings summary" in line)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("-- Docs", "=="))), len(lines))
        print("\n" + "\n".join(lines[start:end]))
    slowest = [line for line in lines if re.match(r"\s*[\d.]+s (call|setup|teardown)\s", line)]
    if slowest:
        print("\nslowest:")
        print("\n".join(slowest))
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
