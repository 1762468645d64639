"""Exemptions waive a rule for one resource, never silently: they need a reason, they expire, and each is listed."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from gpu_policy.engine import RunOptions, RunResult, run_engine
from gpu_policy.errors import PolicyDataError
from gpu_policy.resources import default_policies_dir, fixtures_dir

UNJUSTIFIED = fixtures_dir() / "security-unjustified-privilege" / "manifests"
EXEMPTED = fixtures_dir() / "security-exempted-privilege" / "manifests"
DEBUGGER = "Deployment/tools/node-debugger"


def _policies_with(tmp_path: Path, entries: list[dict[str, str]]) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), folder)
    (folder / "exemptions.yaml").write_text(yaml.safe_dump({"exemptions": entries}))
    return folder


def _run(manifests: Path, policies: Path | None = None, today: dt.date | None = None) -> RunResult:
    return run_engine(RunOptions(paths=[str(manifests)], policies_dir=policies, today=today or dt.date(2026, 11, 26),
                                 profile=None if policies else "reference"))


def test_annotation_exemptions_waive_and_are_listed() -> None:
    waived = _run(EXEMPTED)
    assert waived.findings == []
    assert sorted((u.exemption.rule_id, u.exemption.resource) for u in waived.exempted) == [
        ("security-no-added-capabilities", DEBUGGER),
        ("security-no-host-namespaces", DEBUGGER),
        ("security-no-privileged", DEBUGGER),
        ("security-no-root-user", DEBUGGER),
    ]
    assert all(u.exemption.reason and u.finding.rule_id == u.exemption.rule_id for u in waived.exempted)


def test_file_exemption_until_a_future_date_waives(tmp_path: Path) -> None:
    policies = _policies_with(tmp_path, [{"rule": "security-no-privileged", "resource": DEBUGGER,
                                          "reason": "node debugging toolbox, removed after the migration",
                                          "expires": "2027-01-31"}])
    run = _run(UNJUSTIFIED, policies)
    assert "security-no-privileged" not in {f.rule_id for f in run.findings}
    assert [(u.exemption.rule_id, u.exemption.resource) for u in run.exempted] == [("security-no-privileged", DEBUGGER)]


def test_expired_file_exemption_fails_and_waives_nothing(tmp_path: Path) -> None:
    policies = _policies_with(tmp_path, [{"rule": "security-no-privileged", "resource": DEBUGGER,
                                          "reason": "node debugging toolbox", "expires": "2026-11-25"}])
    run = _run(UNJUSTIFIED, policies)
    assert "security-no-privileged" in {f.rule_id for f in run.findings}
    expired = run.findings_for("exemptions-are-valid")
    assert [f.resource for f in expired] == [DEBUGGER]
    assert "expired on 2026-11-25" in expired[0].message
    assert run.exempted == []


def test_a_reasonless_file_exemption_is_refused_by_its_schema(tmp_path: Path) -> None:
    policies = _policies_with(tmp_path, [{"rule": "security-no-privileged", "resource": DEBUGGER, "reason": ""}])
    with pytest.raises(PolicyDataError, match=r"exemptions\.yaml"):
        _run(UNJUSTIFIED, policies)


def _policies_with_text(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), folder)
    (folder / "exemptions.yaml").write_text(text)
    return folder


def test_an_unquoted_yaml_date_is_accepted_as_the_readme_writes_it(tmp_path: Path) -> None:
    """Issue 10: `expires: 2027-01-31` (a YAML date, not a string) used to be rejected."""
    policies = _policies_with_text(tmp_path, "exemptions:\n- rule: security-no-privileged\n"
                                             f"  resource: {DEBUGGER}\n  reason: node debugging toolbox\n"
                                             "  expires: 2027-01-31\n")
    run = _run(UNJUSTIFIED, policies)
    assert [(u.exemption.rule_id, u.exemption.expires) for u in run.exempted] == [
        ("security-no-privileged", dt.date(2027, 1, 31))]


def test_an_expired_file_exemption_points_at_its_entry_and_says_how_to_fix_the_file(tmp_path: Path) -> None:
    """Issue 10: the expired finding had no line and its fix talked about annotations."""
    policies = _policies_with_text(tmp_path, "# waivers\nexemptions:\n- rule: security-no-root-user\n"
                                             f"  resource: {DEBUGGER}\n  reason: still needed\n"
                                             "- rule: security-no-privileged\n"
                                             f"  resource: {DEBUGGER}\n  reason: node debugging toolbox\n"
                                             "  expires: 2025-01-31\n")
    run = _run(UNJUSTIFIED, policies)
    [expired] = run.findings_for("exemptions-are-valid")
    exemptions_file = str(policies / "exemptions.yaml")
    assert (expired.resource, expired.file, expired.line) == (DEBUGGER, exemptions_file, 6)
    assert "expired on 2025-01-31" in expired.message and f"{exemptions_file}:6" in expired.message
    assert exemptions_file in expired.fix and "expires:" in expired.fix and "annotat" not in expired.fix
    assert "security-no-privileged" in {f.rule_id for f in run.findings}
