"""CEL rules: every Kubernetes library function the pinned CRDs use, rule semantics, and every pinned rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpu_policy.schemas.cel_rules import FAIL, NOT_EVALUATED, PASS, TRANSITION, CelRule
from gpu_policy.schemas.validator import ManifestValidator

from .conftest import doc_of


def outcome(rule: str, value: object, **extra: str) -> str:
    return CelRule({"rule": rule, **extra}).evaluate(value).status


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        # functions and macros the pinned CRDs call (grep of x-kubernetes-validations in ../shared/crds)
        ("self.find('^[^@]+') == 'al2023'", "al2023@v20250915", PASS),
        ('self.find("^([^/]+)").endsWith("karpenter.sh")', "node.karpenter.sh/x", PASS),
        ("self.find('[0-9]+') == ''", "abc", PASS),
        ("self.matches('^[a-zA-Z0-9]+@.+$')", "al2@latest", PASS),
        ("self.matches('^[a-zA-Z0-9]+@.+$')", "al2", FAIL),
        ("self.split('@')[0] in ['al2', 'al2023']", "al2023@latest", PASS),
        ("self.split('@')[1] == 'latest'", "windows2022@v1", FAIL),
        ("self.all(x, x != '')", ["a", "b"], PASS),
        ("self.all(k, k != '' && self[k] != '')", {"a": ""}, FAIL),
        ("self.exists(x, has(x.alias))", [{"id": "1"}, {"alias": "al2@latest"}], PASS),
        (
            "self.filter(x, has(x.rootVolume) ? x.rootVolume == true : false).size() <= 1",
            [{"rootVolume": True}, {"rootVolume": True}],
            FAIL,
        ),
        ("has(self.role) != has(self.instanceProfile)", {"role": "r"}, PASS),
        ("size(self.limits) == 1 && 'nodes' in self.limits", {"limits": {"nodes": "3"}}, PASS),
        ("self.size() != 0", [], FAIL),
        ("!self.startsWith('-')", "-1", FAIL),
        ("self.endsWith('.aws')", "karpenter.k8s.aws", PASS),
        ("int(self[0]) >= 0", ["3"], PASS),
        (
            "self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)",
            {"minReplicaCount": 5},
            PASS,
        ),
        # further Kubernetes library functions (regex, strings, lists, url, ip, quantity, format)
        ("self.findAll('[0-9]') == ['1', '2']", "a1b2", PASS),
        ("self.findAll('[0-9]', 1) == ['1']", "a1b2", PASS),
        ("self.contains('gpu')", "nvidia-gpu", PASS),
        ("self.lowerAscii() == 'gpu' && self.upperAscii() == 'GPU'", "Gpu", PASS),
        ("self.indexOf('b') == 1 && self.lastIndexOf('b') == 3", "abab", PASS),
        ("self.indexOf(2) == 1 && self.lastIndexOf(2) == 2", [1, 2, 2], PASS),
        (
            "self.replace('-', '_') == 'a_b' && self.substring(1) == '-b' && self.charAt(0) == 'a'",
            "a-b",
            PASS,
        ),
        ("' x '.trim() == 'x' && ['a', 'b'].join('-') == 'a-b'", "", PASS),
        ("self.isSorted() && self.sum() == 6 && self.min() == 1 && self.max() == 3", [1, 2, 3], PASS),
        ("self.isSorted()", [3, 1], FAIL),
        ("isURL(self)", "https://prometheus.monitoring:9090", PASS),
        ("isURL(self)", "not a url", FAIL),
        ("isIP(self) && !isIP('10.0.0.300')", "10.0.0.1", PASS),
        ("isCIDR(self)", "10.0.0.0/16", PASS),
        ("isQuantity(self) && !isQuantity('1Gx')", "16Gi", PASS),
        ("'%s has %d GPUs'.format([self, 8]) == 'p5 has 8 GPUs'", "p5", PASS),
        ("self.exists_one(x, x == 2) && self.map(x, x * 2) == [2, 4]", [1, 2], PASS),
        ("math.greatest(self) == 3 && sets.contains(self, [1])", [1, 2, 3], PASS),
    ],
)
def test_functions(rule: str, value: object, expected: str) -> None:
    assert outcome(rule, value) == expected


def test_failure_message_carries_message_reason_field_path_and_rule() -> None:
    rule = CelRule(
        {
            "rule": "self.a > 0",
            "message": "a must be positive",
            "reason": "FieldValueForbidden",
            "fieldPath": ".a",
        }
    )
    result = rule.evaluate({"a": 0})
    assert result.status == FAIL and result.field_path == ("a",)
    assert result.message == "Forbidden: a must be positive (rule: self.a > 0)"


def test_message_expression_wins_and_falls_back_to_message() -> None:
    rule = CelRule({"rule": "self > 1", "message": "static", "messageExpression": "'got ' + string(self)"})
    assert rule.evaluate(0).message.startswith("Invalid value: got 0")
    broken = CelRule({"rule": "self > 1", "message": "static", "messageExpression": "self.nope"})
    assert broken.evaluate(0).message.startswith("Invalid value: static")
    bare = CelRule({"rule": "self > 1"})
    assert "failed rule: self > 1" in bare.evaluate(0).message


def test_field_path_forms() -> None:
    rule = CelRule({"rule": "false", "fieldPath": ".spec['a.b'][2].c"})
    assert rule.evaluate({}).field_path == ("spec", "a.b", 2, "c")


def test_evaluation_error_is_a_failure_as_in_the_api_server() -> None:
    result = CelRule({"rule": "int(self) >= 0", "message": "m"}).evaluate("abc")
    assert result.status == FAIL and "rule evaluation error" in result.message
    missing = CelRule({"rule": "self.values.size() != 0", "message": "m"}).evaluate({"key": "k"})
    assert missing.status == FAIL and "no such key" in missing.message


def test_unsupported_function_is_not_evaluated_never_passed() -> None:
    result = CelRule({"rule": "self.url().getHost() == 'x'"}).evaluate("http://x")
    assert result.status == NOT_EVALUATED and "'url' is not implemented" in result.message
    assert outcome("quantity(self).isGreaterThan(quantity('1'))", "2") == NOT_EVALUATED


def test_rule_that_does_not_compile_is_not_evaluated() -> None:
    result = CelRule({"rule": "self.all(x, "}).evaluate([1])
    assert result.status == NOT_EVALUATED and "cannot compile" in result.message


def test_transition_rules_are_skipped() -> None:
    assert outcome("self == oldSelf", "x") == TRANSITION
    assert outcome("has(self.replicas) == has(oldSelf.replicas)", {}) == TRANSITION


def test_memo_tells_types_apart() -> None:
    rule = CelRule({"rule": "type(self) == string"})
    assert rule.evaluate("1").status == PASS
    assert rule.evaluate(1).status == FAIL


# -- the pinned CRDs -----------------------------------------------------------------------------------------
EC2NODECLASS = """\
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: all-rules}
spec:
  role: KarpenterNodeRole
  amiSelectorTerms: [{alias: al2023@v20250915}]
  amiFamily: AL2023
  subnetSelectorTerms: [{tags: {karpenter.sh/discovery: c}}]
  securityGroupSelectorTerms: [{tags: {karpenter.sh/discovery: c}}]
  capacityReservationSelectorTerms: [{tags: {team: ml}}]
  placementGroupSelector: {name: pg}
  tags: {team: ml}
  kubelet:
    imageGCHighThresholdPercent: 85
    imageGCLowThresholdPercent: 80
    evictionHard: {memory.available: 5%}
    evictionSoft: {memory.available: 10%}
    evictionSoftGracePeriod: {memory.available: 1m}
    kubeReserved: {cpu: 100m}
    systemReserved: {memory: 100Mi}
  blockDeviceMappings:
    - deviceName: /dev/xvda
      rootVolume: true
      ebs: {volumeSize: 100Gi, snapshotID: snap-0123456789abcdef0, volumeInitializationRate: 200}
  networkInterfaces:
    - {networkCardIndex: 0, deviceIndex: 0, interfaceType: interface}
  metadataOptions: {httpTokens: required}
"""
EC2NODECLASS_PROFILE = """\
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: instance-profile}
spec:
  instanceProfile: KarpenterNodeInstanceProfile
  amiFamily: AL2023
  amiSelectorTerms: [{tags: {team: ml}}]
  subnetSelectorTerms: [{id: subnet-0123}]
  securityGroupSelectorTerms: [{id: sg-0123}]
  connectionTracking: {tcpEstablishedTimeout: 3600}
"""
NODECLAIM = """\
apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata: {name: all-rules}
spec:
  nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: all-rules}
  requirements:
    - {key: karpenter.k8s.aws/instance-gpu-count, operator: Gt, values: ["0"]}
    - {key: node.kubernetes.io/instance-type, operator: In, values: [g5.xlarge], minValues: 1}
"""
NODEPOOL = """\
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: all-rules}
spec:
  template:
    metadata: {labels: {workload: gpu}}
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: all-rules}
      requirements:
        - {key: karpenter.k8s.aws/instance-gpu-count, operator: Gt, values: ["0"]}
        - {key: node.kubernetes.io/instance-type, operator: In, values: [g5.xlarge], minValues: 1}
  disruption:
    consolidateAfter: 1m
    budgets: [{nodes: "10%"}]
  limits: {nvidia.com/gpu: "8"}
"""
SCALEDOBJECT = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: all-rules, namespace: ns}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 1
  maxReplicaCount: 4
  triggers: [{type: cpu, metricType: Utilization, metadata: {value: "60"}}]
"""
PROMETHEUS = """\
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: all-rules, namespace: monitoring}
spec:
  shards: 2
  shardingStrategy: {mode: Topology, topology: {values: [a, b]}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}
  alerting:
    alertmanagers: [{name: am, namespace: monitoring, port: web, sigv4: {roleArn: arn, externalId: x}}]
  remoteWrite: [{url: "https://aps.example/api/v1/remote_write", sigv4: {roleArn: arn, externalId: x}}]
"""


def test_every_pinned_crd_rule_compiles_and_is_evaluated(validator: ManifestValidator) -> None:
    """Valid objects that reach every rule: each non-transition rule is evaluated at least once and passes."""
    for text in (EC2NODECLASS, EC2NODECLASS_PROFILE, NODECLAIM, NODEPOOL, SCALEDOBJECT, PROMETHEUS):
        doc = doc_of(text)
        issues = validator.validate(doc)
        assert [i for i in issues if i.kind != "transition-rule-skipped"] == [], (doc.ref, issues)
    rules = [
        rule
        for definition in validator.crds.definitions.values()
        for schema in definition.compiled.values()
        for rule in schema.rules
    ]
    assert len(rules) >= 86  # 90 rules in the pinned CRDs, minus those of the kinds not loaded here
    never = [r.rule for r in rules if not r.is_transition and r.stats[0] == 0 and not r.memo]
    assert never == []
    transition = sorted(r.rule for r in rules if r.is_transition)
    assert transition == sorted(
        [
            "self == oldSelf",
            "has(self.replicas) == has(oldSelf.replicas)",
            "self.group == oldSelf.group",
            "self.kind == oldSelf.kind",
        ]
    )


@pytest.mark.parametrize(
    ("mutation", "path", "message"),
    [
        (
            (NODEPOOL, 'budgets: [{nodes: "10%"}]', 'budgets: [{nodes: "0", schedule: "0 0 * * 1-5"}]'),
            ("spec", "disruption", "budgets"),
            "'schedule' must be set with 'duration'",
        ),
        (
            (NODEPOOL, "key: node.kubernetes.io/instance-type", "key: karpenter.sh/nodepool"),
            ("spec", "template", "spec", "requirements", 1, "key"),
            'label "karpenter.sh/nodepool" is restricted',
        ),
        (
            (NODEPOOL, "{workload: gpu}", "{karpenter.sh/team: ml}"),
            ("spec", "template", "metadata", "labels"),
            'label domain "karpenter.sh" is restricted',
        ),
        (
            (NODEPOOL, 'values: ["0"]', 'values: ["-1"]'),
            ("spec", "template", "spec", "requirements"),
            "must have a single positive integer value",
        ),
        (
            (SCALEDOBJECT, "maxReplicaCount: 4", "maxReplicaCount: 0"),
            ("spec",),
            "minReplicaCount must be less than or equal to maxReplicaCount",
        ),
        (
            (EC2NODECLASS, "amiFamily: AL2023", "amiFamily: Bottlerocket"),
            ("spec",),
            "amiFamily must be 'AL2023' or 'Custom'",
        ),
        (
            (EC2NODECLASS, "tags: {team: ml}", "tags: {karpenter.sh/nodepool: x}"),
            ("spec", "tags"),
            "restricted tag matching karpenter.sh/nodepool",
        ),
        (
            (PROMETHEUS, "shards: 2", "shards: 1"),
            ("spec",),
            "shards must be greater than or equal to the number of topology values",
        ),
    ],
)
def test_pinned_rules_catch_their_violation(
    validator: ManifestValidator, mutation: tuple[str, str, str], path: tuple, message: str
) -> None:
    text, old, new = mutation
    assert old in text
    doc = doc_of(text.replace(old, new))
    cel = [i for i in validator.validate(doc) if i.kind == "cel"]
    assert [(i.path, message in i.message) for i in cel] == [(path, True)], cel
    assert "(rule: " in cel[0].message


def test_blocking_schema_errors_skip_cel_with_a_note(validator: ManifestValidator) -> None:
    text = NODEPOOL.replace(
        "consolidateAfter: 1m", "consolidationPolicy: Sometimes\n    consolidateAfter: 1m"
    )
    text = text.replace('budgets: [{nodes: "10%"}]', 'budgets: [{nodes: "0", schedule: "0 0 * * 1-5"}]')
    kinds = sorted(i.kind for i in validator.validate(doc_of(text)))
    assert kinds == ["cel-not-evaluated", "invalid"]


def test_cel_is_imported_without_its_command_line_module_which_stays_importable() -> None:
    # cel_rules keeps cel's CLI (typer, rich, prompt_toolkit) out of every check's start-up; the evaluator is cel's
    # own, and a later `import cel.cli` loads the real module, not the stand-in used during the import.
    script = (
        "import sys\n"
        "from gpu_policy.schemas import cel_rules\n"
        "assert 'cel.cli' not in sys.modules and not hasattr(sys.modules['cel'], 'cli')\n"
        "assert not {'typer', 'rich', 'prompt_toolkit'} & set(sys.modules)\n"
        "assert cel_rules.cel.compile('1 + 2').execute({}) == 3\n"
        "import cel.cli\n"
        "assert getattr(cel.cli, '__file__', '').endswith('cli.py')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def _fake_cel(root: Path, init: str) -> None:
    package = root / "cel"
    package.mkdir()
    (package / "__init__.py").write_text(init, encoding="utf-8")
    (package / "cli.py").write_text("def main() -> str:\n    return 'the real command line'\n", encoding="utf-8")
    (package / "stdlib.py").write_text("", encoding="utf-8")


@pytest.mark.parametrize(("init", "stand_in"), [("from . import cli\n", True), ("from .cli import main\n", False)],
                         ids=["imports-the-module", "takes-a-name"])
def test_cel_is_imported_without_its_command_line_where_the_package_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, init: str, stand_in: bool
) -> None:
    from gpu_policy.schemas import cel_rules

    _fake_cel(tmp_path, init)
    saved = {name: module for name, module in sys.modules.items() if name == "cel" or name.startswith("cel.")}
    for name in saved:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cel, stdlib = cel_rules._import_cel()
        assert cel.__file__ == str(tmp_path / "cel" / "__init__.py") and stdlib.__name__ == "cel.stdlib"
        if stand_in:  # the stand-in is gone: a later import of cel.cli loads the real module
            assert "cel.cli" not in sys.modules and not hasattr(cel, "cli")
            import cel.cli as real

            assert real.main() == "the real command line"
        else:  # the package needs cel.cli to import: the plain import, which works
            assert cel.main() == "the real command line"
    finally:
        for name in [n for n in sys.modules if n == "cel" or n.startswith("cel.")]:
            del sys.modules[name]
        sys.modules.update(saved)
