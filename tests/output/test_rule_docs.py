"""The rule catalogue for people: `rules --format`, `explain`, and the generated reference pages kept current."""

from __future__ import annotations

import json

import pytest

from gpu_policy.reporting import ruledocs
from gpu_policy.reporting.ruledocs import pages, stale_pages
from gpu_policy.rules.registry import all_rules
from tests.output.helpers import ROOT, SEED_ARGS, gpu_policy, shared_check

DOCS = ROOT / "docs" / "rules"


def test_checked_in_rule_pages_are_current() -> None:
    stale = stale_pages(DOCS)
    assert stale == [], f"run `gpu-policy docs --out docs/rules`: stale {stale}"
    assert set(pages()) == {f"{rid}.md" for rid in all_rules()} | {"README.md"}


def test_every_rule_page_is_in_the_index() -> None:
    index = (DOCS / "README.md").read_text()
    assert all(f"[`{rid}`]({rid}.md)" in index for rid in all_rules())


def test_rules_as_json_and_table() -> None:
    listed = json.loads(gpu_policy("rules", "--format", "json").stdout)
    assert {r["id"] for r in listed} == set(all_rules())
    lost = next(r for r in listed if r["id"] == "lost-metric-is-not-zero")
    assert lost["severity"] == "error" and "keda" in lost["tags"]
    assert lost["docs"] == "docs/rules/lost-metric-is-not-zero.md"
    assert "class" in lost
    table = gpu_policy("rules").stdout.splitlines()
    assert table[0].split()[:5] == ["ID", "CLASS", "SEVERITY", "AREA", "TAGS"]
    assert any(line.startswith("lost-metric-is-not-zero ") for line in table)


def test_explain_gives_everything_a_failing_and_a_passing_example() -> None:
    done = gpu_policy("explain", "lost-metric-is-not-zero")
    assert done.returncode == 0
    for part in ("severity: error", "tags:     @keda", "why:", "fix:", 'ignoreNullValues: "false"', "sources:",
                 "failing example (fixtures/keda-ignore-null-values; the rule, run now, reports it): "
                 "ScaledObject/inference/model-a-gpu-scaler",
                 "  reported: trigger 0: ignoreNullValues is unset (true)",
                 "passing example (the bundled reference set manifests; the rule, run now, reports nothing on it): "
                 "ScaledObject/inference/model-a-gpu-scaler",
                 "reference page: docs/rules/lost-metric-is-not-zero.md"):
        assert part in done.stdout, part
    failing, passing = done.stdout.split("passing example", 1)
    # each excerpt is the example's own file, centred on the field the rule judges
    assert "# fixtures/keda-ignore-null-values/manifests/manifests.yaml:" in failing
    assert "ignoreNullValues" not in failing.split("failing example", 1)[1].split("# fixtures", 1)[1]
    assert "# manifests/inference/model-a.yaml:" in passing and 'ignoreNullValues: "false"' in passing
    unknown = gpu_policy("explain", "lost-metric-is-zero")
    assert unknown.returncode == 2 and "did you mean lost-metric-is-not-zero" in unknown.stderr


def test_verbose_text_links_each_rule_to_its_page() -> None:
    done = shared_check(*SEED_ARGS, "--only", "lost-metric-is-not-zero", "-v")
    assert "  rule: docs/rules/lost-metric-is-not-zero.md" in done.stdout
    assert (ROOT / "docs/rules/lost-metric-is-not-zero.md").is_file()


def test_explain_shows_no_passing_example_the_rule_would_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The passing example is judged by running the rule, not assumed: with the failing fixture standing in for
    the reference set, its only ScaledObject fails, so no passing example is offered."""
    import gpu_policy.resources as resources

    failing_set = ROOT / "fixtures" / "keda-ignore-null-values" / "manifests"
    monkeypatch.setattr(resources, "reference_manifests_dir", lambda: failing_set)
    text = ruledocs.explain("lost-metric-is-not-zero")
    assert "failing example (fixtures/keda-ignore-null-values;" in text
    assert "holds no ScaledObject the rule passes" in text and "passing example (" not in text
