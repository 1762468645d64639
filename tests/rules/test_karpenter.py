"""Karpenter rules: GPU pool detection, limit reachability, budgets and the business-hours freeze in UTC."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.nodes.budgets import parse_budget
from gpu_policy.graph.nodes.catalogue import instance_facts
from gpu_policy.graph.nodes.resources import GIB, karpenter_capacity, max_nodes
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.karpenter import (
    business_intervals,
    resolve_ami_family,
    suggested_freeze,
    uncovered,
)
from gpu_policy.rules.registry import all_rules
from tests.rules._helpers import POLICY, run_rule
from tests.rules._karpenter_docs import nodepool

DEFAULTS = PolicySet.defaults()

SEED_LIMITS = {"cpu": Decimal(1000), "memory": Decimal(4000) * GIB, "nvidia.com/gpu": Decimal(64)}


def test_karpenter_counts_p5_memory_after_vm_overhead() -> None:
    capacity = karpenter_capacity(instance_facts(POLICY, "p5.48xlarge") or {}, 0.075)
    assert capacity["memory"] == Decimal(2048 * 1024 - 157287) * 2**20  # 2048 GiB less ceil(7.5%) MiB
    assert max_nodes(SEED_LIMITS, capacity) == (2, "memory")
    # With nominal memory (no overhead) the seed's 4000Gi admits a single p5.48xlarge.
    nominal = karpenter_capacity(instance_facts(POLICY, "p5.48xlarge") or {}, 0.0)
    assert max_nodes(SEED_LIMITS, nominal) == (1, "memory")


def test_seed_limits_are_unreachable_and_name_each_type() -> None:
    text = nodepool("gpu", types='["p4d.24xlarge", "p5.48xlarge", "g5.48xlarge"]',
                    limits='{cpu: "1000", memory: 4000Gi, nvidia.com/gpu: "64"}')
    [(resource, message)] = _complete("nodepool-limits-reachable", text)
    assert resource == "NodePool/gpu"
    assert "p5.48xlarge: memory limit 4000Gi admits 2 node(s)" in message
    assert "g5.48xlarge: cpu limit 1000 admits 5 node(s)" in message


def test_limits_that_let_the_gpu_limit_bind_pass() -> None:
    text = nodepool("gpu", types='["p5.48xlarge"]', limits='{cpu: "1536", memory: 16384Gi, nvidia.com/gpu: '
                                                           '"64"}')
    assert run_rule("nodepool-limits-reachable", text) == []


def test_a_pool_bounded_by_family_only_is_a_gpu_pool_admitting_the_familys_sizes() -> None:
    text = nodepool("fam", types='["x"]', taints="[]", limits="{}").replace(
        "{key: node.kubernetes.io/instance-type, operator: In, values: [\"x\"]}",
        "{key: karpenter.k8s.aws/instance-family, operator: In, values: [g5]}")
    assert [r for r, _ in run_rule("gpu-nodepool-taints-gpu", text)] == ["NodePool/fam"]
    [(_, message)] = run_rule("gpu-nodepool-instance-types-allowed", text)
    # the reference allow-list holds g5.12/24/48xlarge: the other g5 sizes are admitted and named
    assert "admits GPU instance types outside the allow-list" in message
    assert "g5.xlarge" in message and "g5.48xlarge" not in message.split("): ")[1]


def test_a_pool_bounded_to_allowed_sizes_by_family_and_size_passes_the_allow_list() -> None:
    text = nodepool("fam", types='["x"]', limits="{}").replace(
        "{key: node.kubernetes.io/instance-type, operator: In, values: [\"x\"]}",
        "{key: karpenter.k8s.aws/instance-family, operator: In, values: [g5]}, "
        "{key: karpenter.k8s.aws/instance-size, operator: In, values: [12xlarge, 24xlarge, 48xlarge]}")
    assert run_rule("gpu-nodepool-instance-types-allowed", text) == []


def test_allow_list_judges_nothing_without_a_policy() -> None:
    text = nodepool("gpu", types='["g4dn.xlarge"]')
    assert run_rule("gpu-nodepool-instance-types-allowed", text, DEFAULTS) == []
    assert run_rule("gpu-nodepool-instance-types-allowed", text) != []


def test_cpu_pool_is_not_a_gpu_pool() -> None:
    text = nodepool("cpu", types='["m5.large"]', taints="[]", limits='{cpu: "100"}')
    assert run_rule("gpu-nodepool-taints-gpu", text) == []


def test_spot_pool_without_weight_counts_as_zero() -> None:
    text = nodepool("od") + nodepool("spot", capacity='["spot"]', weight=10)
    [(resource, message)] = run_rule("spot-pool-weight-below-on-demand", text)
    assert resource == "NodePool/spot" and "od (weight 0)" in message


def test_pool_allowing_both_capacity_types_counts_as_offering_on_demand() -> None:
    # Karpenter prefers spot inside a mixed pool, but the mixed pool is still the one offering on-demand: the
    # spot-only pool must be tried after it. The message says "offering on-demand", not "on-demand pool".
    mixed = nodepool("mixed", capacity='["on-demand", "spot"]', weight=10)
    [(resource, message)] = run_rule("spot-pool-weight-below-on-demand",
                                     mixed + nodepool("spot", capacity='["spot"]', weight=50))
    assert resource == "NodePool/spot"
    assert "GPU pool(s) offering on-demand mixed (weight 10)" in message
    assert run_rule("spot-pool-weight-below-on-demand",
                    mixed + nodepool("spot", capacity='["spot"]', weight=5)) == []


def test_only_scheduled_budgets_leave_every_reason_unlimited() -> None:
    disruption = '{consolidateAfter: 30s, budgets: [{nodes: "10%", schedule: "0 0 * * *", duration: 8h}]}'
    [(_, message)] = run_rule("disruption-budgets-within-max-percent", nodepool("gpu", disruption=disruption))
    assert "no always-active budget for Underutilized, Empty, Drifted" in message


def test_absent_budgets_use_the_default_ten_percent() -> None:
    assert run_rule("disruption-budgets-within-max-percent", nodepool("gpu")) == []


def test_seed_freeze_is_active_nine_to_five_utc() -> None:
    start = dt.datetime(2026, 1, 12, tzinfo=dt.UTC)
    seed = parse_budget(0, {"nodes": "0", "schedule": "0 9 * * 1-5", "duration": "8h"})
    windows = seed.active_windows(start, start + dt.timedelta(days=7))
    nine, five = dt.datetime(2026, 1, 12, 9, tzinfo=dt.UTC), dt.datetime(2026, 1, 12, 17, tzinfo=dt.UTC)
    assert windows[0] == (nine, five)
    assert len(windows) == 5
    seoul_monday = (dt.datetime(2026, 1, 12, 0, tzinfo=dt.UTC), dt.datetime(2026, 1, 12, 8, tzinfo=dt.UTC))
    assert uncovered(seoul_monday, windows) == seoul_monday


def _freeze(schedule: str, reasons: str = "") -> str:
    extra = f", reasons: {reasons}" if reasons else ""
    return (f'{{consolidateAfter: 30s, budgets: [{{nodes: "20%"}}, '
            f'{{nodes: "0", schedule: "{schedule}", duration: 8h{extra}}}]}}')


def test_freeze_in_local_time_fails_and_suggests_the_utc_cron() -> None:
    seed = nodepool("gpu", disruption=_freeze("0 9 * * 1-5"))
    [(_, message)] = run_rule("business-hours-freeze-in-utc", seed)
    assert "Mon 18:00-Tue 02:00 Asia/Seoul" in message
    assert 'Correct UTC freeze: schedule "0 0 * * 1-5", duration 8h' in message


def test_freeze_in_utc_passes() -> None:
    assert run_rule("business-hours-freeze-in-utc", nodepool("gpu", disruption=_freeze("0 0 * * 1-5"))) == []


def test_freeze_limited_to_some_reasons_leaves_the_others_open() -> None:
    text = nodepool("gpu", disruption=_freeze("0 0 * * 1-5", reasons="[Underutilized]"))
    [(_, message)] = run_rule("business-hours-freeze-in-utc", text)
    assert "for Drifted, Empty during business hours" in message


def test_dst_zone_freeze_covers_both_offsets() -> None:
    hours = {"timeZone": "America/New_York", "start": "09:00", "end": "17:00",
             "days": ["Mon", "Tue", "Wed", "Thu", "Fri"]}
    mondays = [dt.date(2026, 1, 12), dt.date(2026, 7, 13)]
    winter = business_intervals(hours, mondays[0])[0][0]
    summer = business_intervals(hours, mondays[1])[0][0]
    assert (winter[0].hour, summer[0].hour) == (14, 13)  # EST 14:00 UTC, EDT 13:00 UTC
    assert suggested_freeze(hours, mondays) == ("0 13 * * 1-5", "9h")
    policy = dataclasses.replace(POLICY, cluster={**POLICY.cluster, "businessHours": hours})
    text = nodepool("gpu", disruption=_freeze("0 14 * * 1-5"))
    [message] = _freeze_messages(text, policy)
    assert "2026-07-13 09:00 America/New_York" in message  # summer: 13:00-14:00 UTC is open
    wide = nodepool("gpu", disruption=_freeze("0 13 * * 1-5").replace("8h", "9h"))
    assert _freeze_messages(wide, policy) == []


def test_imdsv2_default_is_fine_and_explicit_optional_fails() -> None:
    base = """
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: gpu}
spec:
  amiSelectorTerms: [{alias: al2023@latest}]
"""
    assert run_rule("ec2nodeclass-requires-imdsv2", base) == []
    assert run_rule("ec2nodeclass-encrypts-volumes", base) == []  # AL2023 default root volume is encrypted
    [(_, message)] = run_rule("ec2nodeclass-requires-imdsv2", base + "  metadataOptions: {httpTokens: "
                                                                     "optional}\n")
    assert "httpTokens: optional" in message
    unset = base + "  blockDeviceMappings: [{deviceName: /dev/xvda, ebs: {volumeSize: 100Gi}}]\n"
    [(_, message)] = run_rule("ec2nodeclass-encrypts-volumes", unset)
    assert "ebs.encrypted is not set" in message


# -- sample weeks pinned to 2026 so the dates in messages do not depend on the year the tests run
def _freeze_messages(text: str, policy: PolicySet = POLICY, today: dt.date = dt.date(2026, 3, 1)) -> list[str]:
    docs = [d for d in to_documents(text, "x.yaml")[0] if d.is_object]
    ctx = CheckContext(graph=ResourceGraph(docs), policy=policy, options={"today": today})
    return [v.message for v in all_rules()["business-hours-freeze-in-utc"].check(ctx)]


def test_dst_gap_in_july_is_described_with_the_july_conversion() -> None:
    # New York 09:00-17:00 is 14:00-22:00 UTC in January (EST) but 13:00-21:00 UTC in July (EDT): a 14:00 UTC
    # freeze covers January and leaves 09:00-10:00 EDT open in July. The message must show July's numbers, not
    # January's (which would read as if the business hours were covered).
    hours = {"timeZone": "America/New_York", "start": "09:00", "end": "17:00",
             "days": ["Mon", "Tue", "Wed", "Thu", "Fri"]}
    policy = dataclasses.replace(POLICY, cluster={**POLICY.cluster, "businessHours": hours})
    [message] = _freeze_messages(nodepool("gpu", disruption=_freeze("0 14 * * 1-5")), policy)
    assert "are Mon 13:00-21:00 UTC in the week of 2026-07-13" in message
    assert "is active Mon 14:00-22:00 UTC = Mon 10:00-18:00 America/New_York" in message
    assert "14:00-22:00 UTC = Mon 09:00-17:00" not in message  # January's conversion
    assert "first unfrozen: Mon 2026-07-13 09:00 America/New_York" in message


def test_dst_gap_in_january_is_described_with_the_january_conversion() -> None:
    hours = {"timeZone": "America/New_York", "start": "09:00", "end": "17:00",
             "days": ["Mon", "Tue", "Wed", "Thu", "Fri"]}
    policy = dataclasses.replace(POLICY, cluster={**POLICY.cluster, "businessHours": hours})
    [message] = _freeze_messages(nodepool("gpu", disruption=_freeze("0 13 * * 1-5")), policy)
    assert "are Mon 14:00-22:00 UTC in the week of 2026-01-12" in message
    assert "first unfrozen: Mon 2026-01-12 16:00 America/New_York" in message  # 13:00+8h = 21:00 UTC = 16:00 EST


def test_zone_without_dst_names_no_week() -> None:
    [message] = _freeze_messages(nodepool("gpu", disruption=_freeze("0 9 * * 1-5")))
    assert "are Mon 00:00-08:00 UTC;" in message and "week of" not in message


def _budgets(*budgets: str) -> str:
    return "{consolidateAfter: 30s, budgets: [" + ", ".join(budgets) + "]}"


def test_budget_with_sunday_as_7_fails_closed_and_is_reported_once() -> None:
    # croniter reads `7` as Sunday, so the freeze looked valid; Karpenter's parser rejects it and then allows
    # no voluntary disruption at all: the budget rule reports it, the freeze rule has nothing to add.
    text = nodepool("gpu", disruption=_budgets('{nodes: "20%"}',
                                               '{nodes: "0", schedule: "0 0 * * 1-7", duration: 8h}'))
    [(resource, message)] = run_rule("disruption-budget-schedule-parses", text)
    assert resource == "NodePool/gpu"
    assert run_rule("disruption-budgets-within-max-percent", text) == []
    assert "schedule '0 0 * * 1-7' is not a cron Karpenter accepts" in message
    assert "7 for Sunday is not accepted" in message and "fails closed" in message
    assert _freeze_messages(text) == []


def test_broken_schedule_is_reported_on_non_freeze_budgets_too() -> None:
    text = nodepool("gpu", disruption=_budgets('{nodes: "20%"}',
                                               '{nodes: "10%", schedule: "0 0 L * *", duration: 1h}',
                                               '{nodes: "0", schedule: "0 0 * * 1-5", duration: 8h}'))
    [(_, message)] = run_rule("disruption-budget-schedule-parses", text, DEFAULTS)
    assert "'0 0 L * *'" in message


def test_broken_schedule_suppresses_the_unlimited_reason_claim() -> None:
    # Only a scheduled budget: normally "no always-active budget" — but with an unparseable schedule Karpenter
    # disrupts nothing, so only the schedule is reported.
    text = nodepool("gpu", disruption=_budgets('{nodes: "10%", schedule: "0 0 * * 0 0", duration: 8h}'))
    [(_, message)] = run_rule("disruption-budget-schedule-parses", text)
    assert "expected exactly 5 fields" in message
    assert run_rule("disruption-budgets-within-max-percent", text) == []


def test_valid_sunday_zero_freeze_passes_the_budget_rule() -> None:
    text = nodepool("gpu", disruption=_budgets('{nodes: "20%"}',
                                               '{nodes: "0", schedule: "0 0 * * 0-4", duration: 8h}'))
    assert run_rule("disruption-budgets-within-max-percent", text) == []


# -- EBS encryption: the AMI family is resolved like Karpenter's EC2NodeClass.AMIFamily()
def _nodeclass(spec: str) -> str:
    return f"""
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {{name: gpu}}
spec:
{spec}"""


def test_amifamily_with_an_ami_id_gets_the_encrypted_default_root_volume() -> None:
    # The audit's false positive: AL2023 via spec.amiFamily, AMI pinned by id, no mappings -> Karpenter applies
    # AL2023's DefaultBlockDeviceMappings (DefaultEBS{Encrypted: true}).
    text = _nodeclass("  amiFamily: AL2023\n  amiSelectorTerms: [{id: ami-0123456789abcdef0}]\n")
    assert run_rule("ec2nodeclass-encrypts-volumes", text) == []


def test_custom_family_wins_over_an_alias_and_has_no_default_volumes() -> None:
    text = _nodeclass("  amiFamily: Custom\n  amiSelectorTerms: [{alias: al2023@v20250915}]\n")
    [(resource, message)] = run_rule("ec2nodeclass-encrypts-volumes", text)
    assert resource == "EC2NodeClass/gpu"
    assert "resolves to Custom (amiFamily Custom)" in message


def test_custom_family_with_explicit_encrypted_mapping_passes() -> None:
    text = _nodeclass("  amiFamily: Custom\n  amiSelectorTerms: [{id: ami-0123456789abcdef0}]\n"
                      "  blockDeviceMappings: [{deviceName: /dev/xvda, rootVolume: true, "
                      "ebs: {volumeSize: 100Gi, encrypted: true}}]\n")
    assert run_rule("ec2nodeclass-encrypts-volumes", text) == []


@pytest.mark.parametrize(("spec", "family"), [
    ("  amiSelectorTerms: [{alias: bottlerocket@latest}]\n", "Bottlerocket"),
    ("  amiFamily: AL2023\n  amiSelectorTerms: [{alias: al2023@latest}]\n", "AL2023"),
    ("  amiFamily: Custom\n  amiSelectorTerms: [{alias: al2023@latest}]\n", "Custom"),
    ("  amiSelectorTerms: [{alias: ubuntu@latest}]\n", None),  # not a family Karpenter knows
    ("  amiSelectorTerms: [{tags: {a: b}}]\n", "Custom"),  # CRD forbids it; upstream falls back to Custom
])
def test_ami_family_precedence(spec: str, family: str | None) -> None:
    [doc] = [d for d in to_documents(_nodeclass(spec), "x.yaml")[0] if d.is_object]
    assert resolve_ami_family(doc).family == family


# -- issue 8: policy gating, partial sets, Auto Mode, removed API versions -----------------------------------------
MY_AREAS = ("karpenter", "cost", "consolidation", "spot", "gpu-workloads")


def _my_policy_rules() -> list[str]:
    from gpu_policy.rules.registry import RuleClass

    return sorted(r.id for r in all_rules().values() if r.area in MY_AREAS and r.rule_class is RuleClass.POLICY)


def test_policy_rules_judge_nothing_under_the_defaults() -> None:
    # Every fixture that proves one of these policy rules fails under the reference profile must give no finding
    # of it when only the defaults apply: a policy rule never fires on a user's files unless their config sets it.
    from gpu_policy.loading.loader import load_manifests
    from tests.fixture_sets import discover

    rules = set(_my_policy_rules())
    registry = all_rules()
    proven: set[str] = set()
    for fixture in discover():
        wanted = {e.rule for e in fixture.expect} & rules
        if not wanted or fixture.policies is not None or fixture.profile is None:
            continue
        graph = ResourceGraph(load_manifests([str(fixture.manifests)]).documents)  # no CRDs needed by these rules
        for policy, expected in ((POLICY, wanted), (DEFAULTS, set())):
            ctx = CheckContext(graph=graph, policy=policy, complete=fixture.complete)
            assert {r for r in wanted if list(registry[r].check(ctx))} == expected, (fixture.name, policy.profile)
        proven |= wanted
    assert proven == rules - {"instance-prices-are-current"}  # proven with its own policies folder


def _complete(rule_id: str, text: str) -> list[tuple[str, str]]:
    docs = [d for d in to_documents(text, "x.yaml")[0] if d.is_object]
    ctx = CheckContext(graph=ResourceGraph(docs), policy=POLICY, complete=True)
    return [(v.doc.ref if v.doc else "", v.message) for v in all_rules()[rule_id].check(ctx)]


def _ref(group: str, kind: str, name: str) -> str:
    return nodepool("gpu").replace("{group: karpenter.k8s.aws, kind: EC2NodeClass, name: gpu}",
                                   f"{{group: {group}, kind: {kind}, name: {name}}}")


def _resolve(text: str, complete: bool) -> tuple[list[str], list[str]]:
    docs = [d for d in to_documents(text, "x.yaml")[0] if d.is_object]
    ctx = CheckContext(graph=ResourceGraph(docs), policy=DEFAULTS, complete=complete)
    found = [v.message for v in all_rules()["nodepool-nodeclass-resolves"].check(ctx)]
    return found, [u.message for u in ctx.unresolved]


def test_a_node_class_outside_the_set_is_not_checked_unless_the_set_is_complete() -> None:
    text = _ref("karpenter.k8s.aws", "EC2NodeClass", "elsewhere")
    found, unresolved = _resolve(text, complete=False)
    assert found == [] and len(unresolved) == 1 and "'elsewhere', which is not in the set" in unresolved[0]
    found, unresolved = _resolve(text, complete=True)
    assert len(found) == 1 and unresolved == []


def test_auto_mode_default_node_class_needs_no_object_and_other_providers_are_not_errors() -> None:
    assert _resolve(_ref("eks.amazonaws.com", "NodeClass", "default"), complete=True) == ([], [])
    found, unresolved = _resolve(_ref("eks.amazonaws.com", "NodeClass", "private"), complete=False)
    assert found == [] and "NodeClass 'private'" in unresolved[0]
    found, unresolved = _resolve(_ref("karpenter.azure.com", "AKSNodeClass", "default"), complete=False)
    assert found == [] and len(unresolved) == 1
    found, _ = _resolve(_ref("karpenter.k8s.aws", "NodeClass", "x"), complete=False)
    assert found and "the only node class of group karpenter.k8s.aws is EC2NodeClass" in found[0]


def test_v1beta1_and_v1alpha5_objects_are_left_to_the_removed_api_rule() -> None:
    old = nodepool("legacy", taints="[]", disruption="{consolidationPolicy: WhenUnderutilized}").replace(
        "karpenter.sh/v1\n", "karpenter.sh/v1beta1\n") + _nodeclass("""  amiSelectorTerms: [{alias: al2023@latest}]
  metadataOptions: {httpTokens: optional}""").replace("karpenter.k8s.aws/v1\n", "karpenter.k8s.aws/v1beta1\n")
    for rule_id in (r.id for r in all_rules().values() if r.area in MY_AREAS):
        assert run_rule(rule_id, old) == [], rule_id


def test_limits_are_unreachable_only_when_no_fleet_of_admissible_types_reaches_them() -> None:
    # g6e.48xlarge alone would need 384 vCPUs for 16 GPUs; the pool also admits g6e.xlarge (4 vCPUs per GPU), so
    # 256 vCPUs can hold 16 GPUs and the limit is reachable.
    family = nodepool("fam", types='["x"]', limits='{cpu: "256", nvidia.com/gpu: "16"}').replace(
        "{key: node.kubernetes.io/instance-type, operator: In, values: [\"x\"]}",
        "{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6e]}")
    assert _complete("nodepool-limits-reachable", family) == []
    tight = family.replace('cpu: "256"', 'cpu: "32"')
    [(_, message)] = _complete("nodepool-limits-reachable", tight)
    assert "holds more than 8 GPUs" in message


OVERLAY = """
apiVersion: karpenter.sh/v1alpha1
kind: NodeOverlay
metadata: {name: slices}
spec:
  requirements: [{key: karpenter.k8s.aws/instance-gpu-manufacturer, operator: In, values: [nvidia]}]
  capacity: {nvidia.com/gpu: 32}
---
"""


def test_a_node_overlay_that_time_slices_gpus_makes_the_limit_reachable() -> None:
    # p5.48xlarge: 8 GPUs, 192 vCPUs; cpu 400 admits 2 nodes = 16 physical GPUs, below the limit of 64. With the
    # overlay Karpenter counts 32 nvidia.com/gpu per node (kubernetes-sigs/karpenter nodeoverlay/store.go).
    pool = nodepool("gpu", types='["p5.48xlarge"]', limits='{cpu: "400", nvidia.com/gpu: "64"}')
    assert len(_complete("nodepool-limits-reachable", pool)) == 1
    assert _complete("nodepool-limits-reachable", pool + OVERLAY) == []
    # in a partial set without overlays one may live elsewhere: listed as not checked
    docs = [d for d in to_documents(pool, "x.yaml")[0] if d.is_object]
    ctx = CheckContext(graph=ResourceGraph(docs), policy=DEFAULTS, complete=False)
    assert list(all_rules()["nodepool-limits-reachable"].check(ctx)) == []
    assert "unless a NodeOverlay outside the set" in ctx.unresolved[0].message


def test_freeze_required_without_business_hours_judges_nothing() -> None:
    # budgets.yaml asks for a freeze but the profile's cluster.yaml has no business hours: nothing to compare.
    policy = PolicySet.layered([("t", {"budgets": {"businessHoursFreeze": "required"}}, {})])
    assert run_rule("business-hours-freeze-in-utc", nodepool("gpu"), policy) == []
    assert run_rule("business-hours-freeze-in-utc", nodepool("gpu")) != []  # the reference profile has both
