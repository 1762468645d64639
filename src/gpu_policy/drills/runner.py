"""Run one drill: check what it needs, load its manifests, give it a bounded context, and always clean up.

Cleanup runs in a `finally` and on SIGINT/SIGTERM (the handler raises `DrillInterrupted` in the main thread, so the
same `finally` runs): every undo the drill registered, newest first, each on its own (one failing undo does not
skip the others; it is reported on stderr). A second signal during cleanup is noted, not obeyed, so cleanup
finishes. Processes the drill starts are tied to it (PR_SET_PDEATHSIG) as a last resort.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from gpu_policy.drills.base import (
    DrillContext,
    DrillFailure,
    DrillInterrupted,
    DrillResult,
    DrillSpec,
    DrillTimeout,
    DrillUnavailable,
)
from gpu_policy.drills.manifests import load_drill_graph
from gpu_policy.drills.registry import get_drill
from gpu_policy.drills.requirements import testbed_kubeconfig, unmet_needs


@contextmanager
def _interrupts_raise(state: dict[str, bool]) -> Iterator[None]:
    """SIGINT/SIGTERM raise DrillInterrupted once (main thread only); while `state["cleaning"]` they are noted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if state.get("cleaning"):
            print(f"drill: {name} received while cleaning up; finishing the cleanup first", file=sys.stderr,
                  flush=True)
            return
        state["cleaning"] = True
        raise DrillInterrupted(name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def cleanup(ctx: DrillContext) -> list[str]:
    """Run every registered undo, newest first; return what failed (each also said on the progress stream)."""
    failed: list[str] = []
    while ctx.cleanups:
        what, undo = ctx.cleanups.pop()
        try:
            undo()
        except Exception as exc:  # one failing undo must not skip the others; it is reported
            failed.append(f"{what}: {type(exc).__name__}: {exc}")
            ctx.say(f"cleanup of {what} failed: {exc}")
    return failed


def _write_report(report_dir: Path, name: str, data: dict[str, Any]) -> Path:
    from gpu_policy.reporting.files import write_report_file

    return write_report_file(report_dir, f"drills/{name}.json", json.dumps(data, indent=2) + "\n")


def run_drill(
    name: str,
    manifests: Sequence[str] = (),
    *,
    report_dir: Path | None = None,
    timeout: float | None = None,
    kubeconfig: Path | None = None,
    progress: TextIO = sys.stderr,
) -> DrillResult:
    """Run drill `name`; return what it measured, or raise DrillFailure (the system misbehaved), DrillUnavailable /
    DrillTimeout / GpuPolicyError (no verdict: exit 2) or DrillInterrupted (exit 130). Cleans up in every case."""
    return run_spec(get_drill(name), manifests, report_dir=report_dir, timeout=timeout, kubeconfig=kubeconfig,
                    progress=progress)


def run_spec(
    spec: DrillSpec,
    manifests: Sequence[str] = (),
    *,
    report_dir: Path | None = None,
    timeout: float | None = None,
    kubeconfig: Path | None = None,
    progress: TextIO = sys.stderr,
) -> DrillResult:
    """`run_drill` for a spec (tests run their own)."""
    name = spec.name
    unmet = unmet_needs(spec.needs, kubeconfig)
    if unmet:
        raise DrillUnavailable(f"drill {name} cannot run here: {unmet}")
    if "testbed" in spec.needs:
        kubeconfig = testbed_kubeconfig(kubeconfig)
    graph = load_drill_graph(manifests)
    limit = float(timeout if timeout is not None else spec.timeout_seconds)
    if limit <= 0:
        raise DrillUnavailable(f"drill {name}: --timeout must be positive, not {limit:g}")
    work_dir = Path(tempfile.mkdtemp(prefix=f"gpu-policy-drill-{name}-"))
    ctx = DrillContext(spec=spec, graph=graph, work_dir=work_dir, deadline=time.monotonic() + limit,
                       report_dir=report_dir, kubeconfig=kubeconfig, run_id=secrets.token_hex(4), progress=progress)
    state: dict[str, bool] = {"cleaning": False}
    outcome: dict[str, Any] = {"drill": name, "manifests": list(manifests) or ["<reference manifests>"],
                               "timeoutSeconds": limit, "outcome": "error"}
    result: DrillResult | None = None
    ctx.say(f"{spec.title} (about {spec.duration_seconds} s, at most {limit:.0f} s)")
    try:
        with _interrupts_raise(state):
            try:
                result = spec.run(ctx)
                outcome["outcome"] = "passed"
                return result
            except DrillFailure as exc:
                outcome.update(outcome="failed", failure=exc.line())
                raise
            except DrillInterrupted:
                outcome["outcome"] = "interrupted"
                raise
            except DrillTimeout as exc:
                outcome.update(outcome="timed out", error=str(exc))
                raise
            except BaseException as exc:
                outcome.update(outcome="error", error=f"{type(exc).__name__}: {exc}")
                raise
            finally:
                state["cleaning"] = True
                failed = cleanup(ctx)
                if failed:
                    outcome["cleanupFailures"] = failed
                shutil.rmtree(work_dir, ignore_errors=True)
                outcome["seconds"] = round(ctx.elapsed(), 1)
                ctx.say(f"{outcome['outcome']} after {ctx.elapsed():.0f} s; cleaned up"
                        + (f" except {len(failed)} item(s)" if failed else ""))
    finally:
        if report_dir is not None:
            if result is not None:
                outcome.update(observations=result.observations, numbers=result.numbers,
                               files=[os.fspath(p) for p in result.files])
            _write_report(report_dir, name, outcome)
