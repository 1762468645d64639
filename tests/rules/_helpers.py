"""Run chosen rules on in-memory manifests (YAML text) with the repository's policies."""

from __future__ import annotations

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import all_rules

POLICY = PolicySet.load()


def run_rule(rule_id: str, text: str, policy: PolicySet = POLICY) -> list[tuple[str, str]]:
    """(resource, message) of every violation of one rule on the documents of `text`."""
    docs = [d for d in to_documents(text, "x.yaml")[0] if d.is_object]
    ctx = CheckContext(graph=ResourceGraph(docs), policy=policy)
    rule = all_rules()[rule_id]
    out = []
    for v in rule.check(ctx):
        out.append((v.resource or (v.doc.ref if v.doc else ""), v.message))
    return out
