"""The drill runner with drills written here (no cluster, seconds): cleanup on every exit path, the bounded
deadline, SIGINT, the report, and the one-line failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpu_policy.cli import main
from gpu_policy.drills.base import (
    DrillContext,
    DrillFailure,
    DrillInterrupted,
    DrillResult,
    DrillSpec,
    DrillTimeout,
    DrillUnavailable,
)
from gpu_policy.drills.runner import run_spec
from gpu_policy.testbed import processes


def _spec(body, needs: tuple[str, ...] = ()) -> DrillSpec:  # type: ignore[no-untyped-def]
    return DrillSpec("test", "a test drill", "", duration_seconds=1, timeout_seconds=20, needs=needs, run=body)


def _sleeper(ctx: DrillContext) -> processes.ProcessRecord:
    record = processes.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                             ctx.work_dir / "sleeper.log", die_with_parent=True)
    ctx.on_cleanup("sleeper", lambda: processes.stop(record, grace=2))
    return record


def test_a_failure_is_one_line_and_everything_created_is_undone(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def body(ctx: DrillContext) -> DrillResult:
        seen["record"], seen["work"] = _sleeper(ctx), ctx.work_dir
        raise DrillFailure("ScaledObject/inference/x", "scaled down at 60 s", "the window is 300 s", "do not")

    with pytest.raises(DrillFailure) as raised:
        run_spec(_spec(body), report_dir=tmp_path)
    assert raised.value.line() == "ScaledObject/inference/x: scaled down at 60 s: the window is 300 s; fix: do not"
    record = seen["record"]
    assert isinstance(record, processes.ProcessRecord) and not processes.is_ours(record)
    assert not Path(str(seen["work"])).exists()
    report = json.loads((tmp_path / "drills" / "test.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "failed" and report["failure"].startswith("ScaledObject/inference/x: scaled down")


def test_undo_runs_newest_first_and_a_failing_undo_does_not_skip_the_others(tmp_path: Path) -> None:
    order: list[str] = []

    def body(ctx: DrillContext) -> DrillResult:
        ctx.on_cleanup("first", lambda: order.append("first"))
        ctx.on_cleanup("broken", lambda: 1 / 0)
        ctx.on_cleanup("last", lambda: order.append("last"))
        return DrillResult(observations=["fine"])

    assert run_spec(_spec(body), report_dir=tmp_path).observations == ["fine"]
    assert order == ["last", "first"]
    report = json.loads((tmp_path / "drills" / "test.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "passed"
    assert report["cleanupFailures"] == ["broken: ZeroDivisionError: division by zero"]


def test_every_wait_stops_at_the_deadline() -> None:
    def body(ctx: DrillContext) -> DrillResult:
        ctx.poll(lambda: None, "waiting for something that never happens")
        raise AssertionError("unreachable")

    started = time.monotonic()
    with pytest.raises(DrillTimeout, match=r"timed out after \d s while waiting for something that never happens"):
        run_spec(_spec(body), timeout=1.5)
    assert time.monotonic() - started < 10


def test_a_bounded_poll_fails_with_the_drills_own_message() -> None:
    def body(ctx: DrillContext) -> DrillResult:
        ctx.poll(lambda: None, "waiting", within=0.5,
                 on_expiry=lambda: DrillFailure("HPA/x", "did not scale", "no metric", "serve it"))
        raise AssertionError("unreachable")

    with pytest.raises(DrillFailure, match="HPA/x: did not scale"):
        run_spec(_spec(body), timeout=10)


def test_sigint_cleans_up_and_says_interrupted(tmp_path: Path) -> None:
    seen: dict[str, processes.ProcessRecord] = {}

    def body(ctx: DrillContext) -> DrillResult:
        seen["record"] = _sleeper(ctx)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        ctx.sleep(10, "waiting to be interrupted")
        raise AssertionError("unreachable")

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest itself runs as a background job
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever started pytest
    try:
        with pytest.raises(DrillInterrupted, match="SIGINT"):
            run_spec(_spec(body), report_dir=tmp_path)
        assert not processes.is_ours(seen["record"])
        assert json.loads((tmp_path / "drills" / "test.json").read_text(encoding="utf-8"))["outcome"] == "interrupted"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the drill's handler is gone again
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_drill_never_runs_against_a_cluster_outside_loopback(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
        "contexts: [{name: prod, context: {cluster: eks, user: u}}]\n"
        "clusters: [{name: eks, cluster: {server: 'https://ABC.gr7.eu-west-1.eks.amazonaws.com'}}]\n"
        "users: [{name: u, user: {}}]\n", encoding="utf-8")
    ran: list[bool] = []
    with pytest.raises(DrillUnavailable, match="drills change the cluster, so they run only against the testbed"):
        run_spec(_spec(lambda ctx: ran.append(True) or DrillResult(), needs=("testbed",)), kubeconfig=kubeconfig)
    assert ran == []


def test_cli_lists_the_drills_and_refuses_unknown_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("alerts") and "~ 340 s" in out
    assert main(["drill", "no-such-drill"]) == 2
    assert "no drill named 'no-such-drill'; known: alerts" in capsys.readouterr().err


def test_cli_exit_code_for_bad_manifests(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-m", "gpu_policy", "drill", "alerts", "--manifests", str(empty)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"{empty}: holds no Kubernetes object" in result.stderr
