"""files -> documents: every input form, every document accounted for, findings at the right line."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

from gpu_policy.engine import _violation_to_finding
from gpu_policy.errors import InputError
from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading import sources
from gpu_policy.loading.kustomize import Renderer
from gpu_policy.loading.limits import Limits
from gpu_policy.loading.loader import LOAD_RULE, SHAPE_RULE, LoadResult, load_manifests
from gpu_policy.resources import fixtures_dir
from gpu_policy.rules.registry import Violation, all_rules

CONFIGMAP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  k: v\n"
)
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def refs(result: LoadResult) -> list[str]:
    return [d.ref for d in result.documents]


def test_folders_recurse_over_yaml_yml_and_json_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", CONFIGMAP.format(name="b"))
    write(tmp_path / "a" / "nested" / "c.yml", CONFIGMAP.format(name="c"))
    write(tmp_path / "d.json", '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}')
    write(tmp_path / "notes.txt", "not: a manifest\n")
    write(tmp_path / ".hidden" / "e.yaml", CONFIGMAP.format(name="e"))
    result = load_manifests([str(tmp_path)])
    assert refs(result) == ["ConfigMap/default/c", "ConfigMap/default/b", "ConfigMap/d"]
    assert result.findings == []
    assert [(n.source, n.reason) for n in result.not_checked] == [
        (str(tmp_path / ".hidden"), "hidden folder; not checked")
    ]


def test_files_and_multi_document_streams_keep_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "two.yaml", "---\n" + CONFIGMAP.format(name="a") + "---\n" + CONFIGMAP.format(name="b")
    )
    result = load_manifests([str(path)])
    assert [(d.name, d.source, d.line) for d in result.documents] == [
        ("a", str(path), 2),
        ("b", str(path), 10),
    ]
    assert result.documents[1].line_of(("data", "k")) == 16


def test_stdin_is_read_when_the_path_is_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(CONFIGMAP.format(name="piped").encode())))
    result = load_manifests(["-"])
    assert [(d.ref, d.source, d.line) for d in result.documents] == [
        ("ConfigMap/default/piped", "<stdin>", 1)
    ]


def test_non_utf8_stdin_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a: \xff\xfe\xfa\n")))
    result = load_manifests(["-"])
    assert [(f.rule_id, f.resource) for f in result.findings] == [(LOAD_RULE, "<stdin>")]


def test_a_missing_path_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        load_manifests([str(tmp_path / "absent.yaml")])


def test_kind_list_is_flattened_with_the_line_of_each_item(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"  # 1-3
        "  - apiVersion: v1\n    kind: ConfigMap\n"  # 4-5
        "    metadata: {name: one, namespace: default}\n"  # 6
        "  - apiVersion: v1\n    kind: ConfigMapList\n    items:\n"  # 7-9
        "      - apiVersion: v1\n        kind: ConfigMap\n"  # 10-11
        "        metadata:\n          name: two\n"  # 12-13
        "  - just text\n"  # 14
    )
    result = load_manifests([str(write(tmp_path / "list.yaml", text))])
    assert [(d.ref, d.line) for d in result.documents] == [
        ("ConfigMap/default/one", 4),
        ("ConfigMap/two", 10),
    ]
    assert result.documents[1].line_of(("metadata", "name")) == 13
    assert [(f.rule_id, f.resource, f.line) for f in result.findings] == [
        (SHAPE_RULE, "<file:list.yaml>", 14)
    ]


def test_binary_and_non_utf8_files_are_findings_and_other_files_are_still_checked(tmp_path: Path) -> None:
    write(tmp_path / "a-binary.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path / "b-latin1.yaml", "data:\n  city: M\xfcnchen\n".encode("latin-1"))
    write(tmp_path / "c-ok.yaml", CONFIGMAP.format(name="ok"))
    result = load_manifests([str(tmp_path)])
    assert refs(result) == ["ConfigMap/default/ok"]
    found = {(f.resource, f.line): f.message for f in result.findings}
    assert set(found) == {("<file:a-binary.yaml>", 1), ("<file:b-latin1.yaml>", 1)}
    assert "binary file" in found[("<file:a-binary.yaml>", 1)]
    assert "not UTF-8" in found[("<file:b-latin1.yaml>", 1)]
    assert {n.source for n in result.not_checked} == {
        str(tmp_path / "a-binary.yaml"),
        str(tmp_path / "b-latin1.yaml"),
    }


def test_utf8_bom_and_utf16_files_are_read(tmp_path: Path) -> None:
    write(tmp_path / "bom.yaml", b"\xef\xbb\xbf" + CONFIGMAP.format(name="bom").encode())
    write(tmp_path / "utf16.yaml", CONFIGMAP.format(name="wide").encode("utf-16"))
    assert refs(load_manifests([str(tmp_path)])) == ["ConfigMap/default/bom", "ConfigMap/default/wide"]


def test_over_large_files_are_refused_before_reading(tmp_path: Path) -> None:
    write(tmp_path / "big.yaml", CONFIGMAP.format(name="x" * 80))
    result = load_manifests([str(tmp_path)], limits=Limits(max_file_bytes=64))
    assert result.documents == []
    assert [(f.resource, "over the") for f in result.findings if "over the" in f.message] == [
        ("<file:big.yaml>", "over the")
    ]


def test_file_level_resources_are_relative_to_the_input_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "set" / "team" / "bad.yaml", "a: [\n")
    absolute = load_manifests([str(tmp_path / "set")])
    monkeypatch.chdir(tmp_path)
    relative = load_manifests(["set"])
    direct = load_manifests(["set/team/bad.yaml"])
    assert (
        [f.resource for f in absolute.findings]
        == [f.resource for f in relative.findings]
        == ["<file:team/bad.yaml>"]
    )
    assert [f.resource for f in direct.findings] == ["<file:bad.yaml>"]
    assert relative.findings[0].file == "set/team/bad.yaml"


def test_every_document_is_checked_or_listed_as_not_checked(tmp_path: Path) -> None:
    text = (
        CONFIGMAP.format(name="a") + "---\n- 1\n---\n42\n---\n---\napiVersion: v1\nkind: Secret\n"
        "metadata: {}\n---\nb: [\n---\n" + CONFIGMAP.format(name="c")
    )
    result = load_manifests([str(write(tmp_path / "mixed.yaml", text))])
    assert refs(result) == ["ConfigMap/default/a", "ConfigMap/default/c"]
    assert sorted(n.line for n in result.not_checked) == [9, 11, 14, 19]
    found = sorted((f.line, f.rule_id, f.resource) for f in result.findings)
    assert found == [
        (9, SHAPE_RULE, "<file:mixed.yaml>"),  # a list
        (11, SHAPE_RULE, "<file:mixed.yaml>"),  # a number
        (14, SHAPE_RULE, "Secret/<no name>"),  # no metadata.name
        (19, LOAD_RULE, "<file:mixed.yaml>"),  # unclosed flow sequence, reported where the parser stopped
    ]
    assert "metadata.name is missing" in next(f.message for f in result.findings if f.line == 14)


# -- helm template output ------------------------------------------------------------------------------------
def test_helm_output_is_attributed_to_each_template_keeping_the_rendered_line() -> None:
    manifests = fixtures_dir() / "load-helm-output" / "manifests"
    result = load_manifests([str(manifests)])
    out = str(manifests / "rendered.yaml")
    assert [(d.ref, d.source, d.line) for d in result.documents] == [
        ("ServiceAccount/default/vllm-serving", f"{out} (vllm-serving/templates/serviceaccount.yaml)", 3),
        ("ConfigMap/default/vllm-serving-settings", f"{out} (vllm-serving/templates/configmap.yaml)", 13),
        ("ConfigMap/default/vllm-serving-prompts", f"{out} (vllm-serving/templates/list.yaml)", 32),
    ]
    assert result.documents[1].line_of(("data", "GPU_MEMORY_UTILIZATION")) == 23
    assert result.findings == [] and result.not_checked == []


def test_source_comments_only_apply_to_the_document_that_follows_them(tmp_path: Path) -> None:
    text = (
        "# Source: c/templates/a.yaml\n" + CONFIGMAP.format(name="a") + "---\n" + CONFIGMAP.format(name="b")
    )
    result = load_manifests([str(write(tmp_path / "out.yaml", text))])
    assert [d.source for d in result.documents] == [
        f"{tmp_path / 'out.yaml'} (c/templates/a.yaml)",
        str(tmp_path / "out.yaml"),
    ]


# -- kustomize -----------------------------------------------------------------------------------------------
@needs_kubectl
def test_kustomized_objects_point_at_the_file_and_line_they_were_written_in() -> None:
    manifests = fixtures_dir() / "load-kustomize" / "manifests"
    result = load_manifests([str(manifests)])
    by_ref = {d.ref: d for d in result.documents}
    assert set(by_ref) == {
        "ServiceAccount/default/team-a-vllm-serving",
        "ConfigMap/default/team-a-other",
        "ConfigMap/default/team-a-prompts",
        "ConfigMap/default/team-a-model-settings-2hb7mdkft5",
    }
    prompts = by_ref["ConfigMap/default/team-a-prompts"]
    assert (prompts.source, prompts.line) == (str(manifests / "base" / "prompts.yaml"), 9)
    assert prompts.line_of(("data", "system")) == 14
    assert prompts.line_of(("metadata", "namespace")) == 11  # added by kustomize: the line of metadata
    generated = by_ref["ConfigMap/default/team-a-model-settings-2hb7mdkft5"]
    assert (generated.source, generated.line) == (str(manifests / "kustomization.yaml"), 8)
    # the annotation the loader asked kustomize for is not part of the checked object
    assert all(sources.ORIGIN_ANNOTATION not in d.annotations for d in result.documents)
    assert "annotations" not in prompts.metadata


@needs_kubectl
def test_a_finding_on_a_kustomized_object_names_its_source_file_and_field_line() -> None:
    manifests = fixtures_dir() / "load-kustomize" / "manifests"
    doc = next(d for d in load_manifests([str(manifests)]).documents if d.name == "team-a-prompts")
    rule = all_rules()["object-is-unique"]
    finding = _violation_to_finding(rule, Violation(doc=doc, message="x", path=("data", "system")))
    assert finding.location == f"{manifests / 'base' / 'prompts.yaml'}:14"
    assert finding.resource == "ConfigMap/default/team-a-prompts"


@needs_kubectl
def test_without_origin_annotations_objects_are_matched_by_kind_and_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "kustomization.yaml", "resources: [cm.yaml]\nnamespace: default\n")
    write(tmp_path / "cm.yaml", "# header\n" + CONFIGMAP.format(name="plain"))
    monkeypatch.setattr(Renderer, "render_with_origins", lambda self, folder: (self.render(folder), None))
    (doc,) = load_manifests([str(tmp_path)]).documents
    assert (doc.ref, doc.source, doc.line, doc.line_of(("data", "k"))) == (
        "ConfigMap/default/plain",
        str(tmp_path / "cm.yaml"),
        2,
        8,
    )


def test_a_kustomization_without_kubectl_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "kustomization.yaml", "resources: []\n")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="needs `kubectl` on PATH"):
        load_manifests([str(tmp_path)])


@needs_kubectl
def test_a_broken_kustomization_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "kustomization.yaml", "resources: [missing.yaml]\n")
    with pytest.raises(InputError, match=r"kubectl kustomize .* failed"):
        load_manifests([str(tmp_path)])


# -- scope: kustomize's namespace on cluster-scoped custom resources ----------------------------------------
NODEPOOL = "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: gpu\n  namespace: default\n"


def test_namespace_on_a_cluster_scoped_custom_resource_is_dropped_using_the_crd_scope(tmp_path: Path) -> None:
    docs = load_manifests(
        [str(write(tmp_path / "np.yaml", NODEPOOL + "---\n" + CONFIGMAP.format(name="gpu")))]
    )
    calls: list[tuple[str, str]] = []

    def scope(group: str, kind: str) -> bool | None:
        calls.append((group, kind))
        return {("karpenter.sh", "NodePool"): True, ("", "ConfigMap"): False}.get((group, kind))

    graph = ResourceGraph(docs.documents, scope)
    assert graph.get("NodePool", "gpu") is not None and graph.get("NodePool", "gpu", "default") is None
    assert graph.get("ConfigMap", "gpu", "default") is not None
    assert ("karpenter.sh", "NodePool") in calls


def test_unknown_scope_keeps_the_namespace_as_written(tmp_path: Path) -> None:
    docs = load_manifests([str(write(tmp_path / "np.yaml", NODEPOOL))])
    graph = ResourceGraph(docs.documents, lambda group, kind: None)
    assert graph.get("NodePool", "gpu", "default") is not None


def test_duplicates_after_dropping_the_namespace_are_found(tmp_path: Path) -> None:
    text = NODEPOOL + "---\n" + NODEPOOL.replace("namespace: default", "namespace: other")
    docs = load_manifests([str(write(tmp_path / "np.yaml", text))])
    graph = ResourceGraph(docs.documents, lambda group, kind: kind == "NodePool" or None)
    assert [(a.line, b.line) for a, b in graph.duplicates] == [(1, 7)]
