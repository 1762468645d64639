"""Without --live, the runtime and comparison scenarios are skipped with the reason, never counted as passed."""

from __future__ import annotations

import json
from pathlib import Path

from gpu_policy import cli
from gpu_policy.live.state import NEEDS_LIVE


def test_live_scenarios_skip_with_needs_live_in_a_static_run(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert cli.main(["check", "--format", "json", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    live = [s for s in report["scenarios"] if Path(s["feature"]).name.startswith("live")]
    assert len(live) == 12  # features/live.feature (8) and features/live_prometheus.feature (4)
    assert {(s["status"], s["message"]) for s in live} == {("skipped", NEEDS_LIVE)}
    assert not any(f["rule_id"].startswith("live-") for f in report["findings"])
