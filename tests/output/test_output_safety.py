"""Output safety (issue 9): no secret value of the set and no control character reaches any output format; no
workflow command can be injected; `--report` never writes through a symlink."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpu_policy.findings import Finding
from gpu_policy.loading.document import Document
from gpu_policy.reporting.github import escape_data, escape_property
from gpu_policy.reporting.safety import REDACTED, Redactor, escape_control, safe_finding
from tests.output.helpers import DATA, gpu_policy

SECRETS = DATA / "secrets"
LEAKS = ("super-secret-token", "c3VwZXItc2VjcmV0LXRva2Vu", "sk-live-SHOULD-NOT-LEAK-1", "env-SHOULD-NOT-LEAK-2",
         "12345")
FORMATS = ("text", "json", "sarif", "junit", "github", "cucumber")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("secrets")
    args = ["check", str(SECRETS), "-v"]
    for fmt in FORMATS:
        args += ["--format", fmt, "--output", str(tmp / fmt)]
    done = gpu_policy(*args)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    return {fmt: (tmp / fmt).read_text(encoding="utf-8") for fmt in FORMATS} | {"stderr": done.stderr}


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_secret_or_env_value_in_any_format(outputs: dict[str, str], fmt: str) -> None:
    for leak in LEAKS:
        assert leak not in outputs[fmt], f"{leak} printed by --format {fmt}"
    assert "kubectl explain" in outputs[fmt] or fmt in ("cucumber",)  # ordinary words are not redacted


def test_schema_messages_name_the_field_but_not_its_value(outputs: dict[str, str]) -> None:
    data = json.loads(outputs["json"])
    by_path = {f["path"]: f["message"] for f in data["findings"] if f["resource"] == "Secret/inference/db"}
    assert by_path["data.password"] == ("must be of type string, got integer <redacted> (YAML reads unquoted "
                                        "true/false/yes/no/on/off and numbers as non-strings: quote the value)")
    assert by_path["data.token"] == 'must be of type string, got array ["<redacted>"]'


@pytest.mark.parametrize("fmt", FORMATS)
def test_control_characters_are_escaped(outputs: dict[str, str], fmt: str) -> None:
    assert "\x1b" not in outputs[fmt]
    assert "evil\\n::add-mask::x\\n::error file=x::pwned\\x1b[31mred" in outputs[fmt].replace("\\\\", "\\")


def test_no_workflow_command_can_be_injected(outputs: dict[str, str]) -> None:
    lines = outputs["github"].splitlines()
    commands = [line for line in lines if line.startswith("::")]
    assert commands and all(line.startswith(("::error ", "::warning ", "::notice ")) for line in commands)
    assert not any(line.startswith("::add-mask::") for line in lines)
    # six wrong types, and the name itself, which is no DNS-1123 subdomain (apimachinery ValidateObjectMeta)
    assert len([c for c in commands if "title=schema-valid::" in c]) == 7


def test_github_escaping_follows_the_toolkit() -> None:
    assert escape_data("50%\r\nx") == "50%25%0D%0Ax"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_redactor_finds_secret_and_env_values_anywhere_in_a_message() -> None:
    secret = Document({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                       "data": {"k": "aHVudGVyMi1wYXNzd29yZA=="}, "stringData": {"t": "plain-token-value"}},
                      "s.yaml", 1)
    pod = Document({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                    "spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "env-value-xyz"},
                                                                  {"name": "B", "value": "true"}]}]}}, "p.yaml", 1)
    redact = Redactor.from_documents([secret, pod])
    text = "a hunter2-password, plain-token-value, aHVudGVyMi1wYXNzd29yZA== and env-value-xyz; true stays"
    assert redact(text) == f"a {REDACTED}, {REDACTED}, {REDACTED} and {REDACTED}; true stays"
    finding = safe_finding(Finding("r", "Pod/p", "line one env-value-xyz\nline two\x1b[2J", details=("SUCCESS",)),
                           redact)
    assert finding.message == f"line one {REDACTED}"
    assert finding.details == ("line two\\x1b[2J",)  # promtool's SUCCESS chatter is dropped


def test_escape_control_covers_c0_c1_and_bidi() -> None:
    assert escape_control("a\nb\rc\td\x00e\x9bf\u202eg\u2028") == "a\\nb\\rc\\td\\x00e\\x9bf\\u202eg\\u2028"


def test_report_replaces_a_planted_file_symlink_without_writing_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    report = tmp_path / "report"
    report.mkdir()
    (report / "findings.json").symlink_to(outside)
    done = gpu_policy("check", "--report", str(report), "-k", "declared_once")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert outside.read_text() == "precious\n"
    assert not (report / "findings.json").is_symlink()
    assert json.loads((report / "findings.json").read_text())["schemaVersion"] == 1
    assert [p.name for p in report.iterdir() if p.name.endswith(".tmp")] == []


def test_report_refuses_a_symlinked_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    (report / "simulation").symlink_to(elsewhere, target_is_directory=True)
    done = gpu_policy("check", "--report", str(report), "-k", "model_a_absorbs")
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert "is a symbolic link; refusing to write through it" in done.stderr
    assert os.listdir(elsewhere) == []
