"""A reference to an object outside the set is 'not checked' unless the set is declared complete."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from gpu_policy.engine import RunOptions, run_engine
from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.policy.loader import PolicySet
from gpu_policy.resources import fixtures_dir
from gpu_policy.rules.context import CheckContext
from gpu_policy.rules.registry import Violation

MESSAGE = "ConfigMap x/a references Secret x/b, which is not in the set"
DOC = to_documents("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n", "x.yaml")[0][0]


def _references(ctx: CheckContext) -> Iterator[Violation]:
    for _ in range(2):  # the same reference seen twice is noted once
        yield from ctx.missing(DOC, ("metadata", "name"), MESSAGE)


def test_partial_set_notes_the_reference_once_and_reports_nothing() -> None:
    ctx = CheckContext(graph=ResourceGraph([DOC]), policy=PolicySet.defaults())
    assert list(_references(ctx)) == []
    assert [(n.doc.ref, n.message) for n in ctx.unresolved] == [
        ("ConfigMap/x/a", "ConfigMap x/a references Secret x/b, which is not in the set")]


def test_complete_set_reports_the_reference_as_a_violation() -> None:
    ctx = CheckContext(graph=ResourceGraph([DOC]), policy=PolicySet.defaults(), complete=True)
    found = list(_references(ctx))
    assert [(v.doc.ref if v.doc else None, v.message) for v in found] == [
        ("ConfigMap/x/a", "ConfigMap x/a references Secret x/b, which is not in the set")] * 2
    assert ctx.unresolved == []


def test_different_declarations_in_two_files_are_noted_in_a_partial_set(tmp_path: Path) -> None:
    source = fixtures_dir() / "load-duplicate-object-alternatives" / "manifests"
    partial = run_engine(RunOptions(paths=[str(source)], complete=False))
    assert partial.findings_for("object-is-unique") == []
    notes = [n.reason for n in partial.not_checked if "declared again" in n.reason]
    assert len(notes) == 2 and all("different declarations in two files" in n for n in notes)
    complete = run_engine(RunOptions(paths=[str(source)], complete=True))
    assert [f.resource for f in complete.findings_for("object-is-unique")] == ["ConfigMap/serving/node-settings"] * 2
    # the same declaration in two files: applying both changes nothing, even in a complete set
    for name in ("karpenter.yaml", "karpenter-copy.yaml"):
        shutil.copy(source / name, tmp_path / name)
    identical = run_engine(RunOptions(paths=[str(tmp_path)], complete=True))
    assert identical.findings_for("object-is-unique") == []
