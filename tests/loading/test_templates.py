"""Issue 8 (loader part): templates and other tools' YAML are listed as not checked with why, never errors;
`--exclude` globs; `--env`/`--env-file` substitution exactly as GNU envsubst does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpu_policy.loading.envfile import envsubst, parse_assignment, parse_env_file, parse_env_text
from gpu_policy.loading.exclude import Exclude
from gpu_policy.loading.loader import SHAPE_RULE, LoadResult, load_manifests
from gpu_policy.resources import fixtures_dir

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def listed(result: LoadResult, root: Path) -> dict[str, str]:
    """not checked: path relative to root -> reason without the path prefix."""
    return {Path(n.source).relative_to(root).as_posix(): n.reason.removeprefix(f"{n.source}: ")
            for n in result.not_checked}


# -- folder mode lists what it does not check ----------------------------------------------------------------
def test_templates_charts_and_other_tools_yaml_are_listed_not_errors() -> None:
    root = fixtures_dir() / "load-templates-and-other-yaml" / "manifests"
    result = load_manifests([str(root)])
    assert [d.ref for d in result.documents] == ["ConfigMap/default/inference-settings"]
    assert result.findings == []
    reasons = listed(result, root)
    assert sorted(reasons) == ["chart", "ci/lint-config.yaml", "deployment.yaml.tpl", "docker-compose.yml",
                               "service.yaml"]
    assert reasons["chart"].startswith("a Helm chart (Chart.yaml)")
    assert reasons["ci/lint-config.yaml"] == "not Kubernetes YAML (no document has apiVersion or kind); not checked"
    assert reasons["deployment.yaml.tpl"].startswith("a template (.tpl): what is applied is its rendered output")
    assert reasons["docker-compose.yml"] == "a docker compose file, not Kubernetes YAML; not checked"
    assert reasons["service.yaml"].startswith("an unrendered template (placeholders such as '{% if expose %}')")


@pytest.mark.parametrize("name", ["a.tpl", "a.yaml.template", "a.yaml.j2", "a.gotmpl", "a.yml.tmpl", "a.jinja2"])
def test_template_suffixes_are_listed(tmp_path: Path, name: str) -> None:
    write(tmp_path / name, CONFIGMAP.format(name="t"))
    result = load_manifests([str(tmp_path)])
    assert result.documents == [] and result.findings == []
    assert "a template (" in result.not_checked[0].reason


@pytest.mark.parametrize("name", ["Chart.yaml", "values.yaml", "values-prod.yml", "values.schema.json",
                                  "docker-compose.override.yaml", "compose.yaml", "skaffold.yaml"])
def test_other_tools_files_are_known_by_name(tmp_path: Path, name: str) -> None:
    # Chart.yaml has apiVersion, skaffold.yaml apiVersion and kind: only the name tells them apart
    path = write(tmp_path / "sub" / name, "apiVersion: skaffold/v4beta6\nkind: Config\nname: x\n")
    results = [load_manifests([str(path)])]
    if name != "Chart.yaml":  # a folder holding Chart.yaml is a Helm chart, listed as one (the fixture test)
        results.append(load_manifests([str(tmp_path)]))
    for result in results:
        assert result.documents == [] and result.findings == []
        assert "not Kubernetes YAML" in result.not_checked[0].reason


@pytest.mark.parametrize("name", ["kustomization.yaml", "kustomization.yml", "Kustomization"])
def test_a_kustomization_file_named_alone_is_listed_not_an_object_without_a_name(tmp_path: Path, name: str) -> None:
    # A pre-commit hook hands over changed files one by one. kustomize's build file (the names kustomize
    # recognises, api/konfig/general.go) has apiVersion and kind but no metadata.name, and is never sent to the
    # cluster; its folder is what `kubectl apply -k` applies (aleck31/eks-karpenter-deployment tools/monitoring).
    write(tmp_path / "app" / "configmap.yaml", CONFIGMAP.format(name="app"))
    path = write(tmp_path / "app" / name, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                          "namespace: monitoring\nresources:\n  - configmap.yaml\n")
    result = load_manifests([str(path)])
    assert result.documents == [] and result.findings == []
    assert [n.reason for n in result.not_checked] == [
        "a kustomization (kustomize's build file), not an object of the cluster; not checked on its own: "
        f"check its folder (`gpu-policy check {path.parent}`) for what `kubectl apply -k {path.parent}` applies"]


def test_the_kustomize_fixtures_kustomization_files_named_alone_are_listed() -> None:
    root = fixtures_dir() / "load-kustomize" / "manifests"
    result = load_manifests([str(root / "kustomization.yaml"), str(root / "base" / "kustomization.yaml")])
    assert result.documents == [] and result.findings == []
    assert all(n.reason.startswith("a kustomization (kustomize's build file)") for n in result.not_checked)
    assert len(result.not_checked) == 2


def test_a_file_with_no_kubernetes_document_is_listed_but_a_broken_object_in_a_manifest_file_stays_an_error(
    tmp_path: Path,
) -> None:
    write(tmp_path / "a-config.yaml", "rules: {max: 1}\n---\n- just\n- a list\n")
    write(tmp_path / "b-package.json", '{"name": "x", "version": "1.0.0"}')
    write(tmp_path / "c-mixed.yaml", CONFIGMAP.format(name="ok") + "---\nmetadata: {name: orphan}\ndata: {}\n")
    write(tmp_path / "d-listed.yaml", "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x}\n")
    result = load_manifests([str(tmp_path)])
    assert [d.name for d in result.documents] == ["ok"]
    assert sorted(listed(result, tmp_path)) == ["a-config.yaml", "b-package.json", "c-mixed.yaml", "d-listed.yaml"]
    assert listed(result, tmp_path)["a-config.yaml"].startswith("not Kubernetes YAML")
    assert [(f.rule_id, Path(f.file or "").name, f.line) for f in result.findings] == [
        (SHAPE_RULE, "c-mixed.yaml", 7),  # a document of a manifest file without apiVersion/kind
        (SHAPE_RULE, "d-listed.yaml", 1),  # a misplaced "- " turned the object into a list
    ]


def test_a_yaml_error_without_placeholders_stays_an_error(tmp_path: Path) -> None:
    write(tmp_path / "broken.yaml", CONFIGMAP.format(name="x") + "data: [\n")
    result = load_manifests([str(tmp_path)])
    assert [f.message.split(":")[0] for f in result.findings] == ["YAML syntax error"]


def test_hidden_files_and_folders_are_listed_but_vcs_folders_are_not(tmp_path: Path) -> None:
    write(tmp_path / ".github" / "workflows" / "ci.yml", "on: push\n")
    write(tmp_path / ".git" / "config.yaml", "x: 1\n")
    write(tmp_path / ".gitlab-ci.yml", "stages: [test]\n")
    write(tmp_path / ".notes.txt", "x\n")
    result = load_manifests([str(tmp_path)])
    assert listed(result, tmp_path) == {".github": "hidden folder; not checked",
                                        ".gitlab-ci.yml": "hidden file; not checked"}


# -- --exclude ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "path", "is_folder", "excluded"),
    [
        ("*.tpl.yaml", "a/b/x.tpl.yaml", False, True),
        ("drafts", "team/drafts", True, True),
        ("drafts/", "team/drafts", False, False),  # a trailing / matches folders only
        ("overlays/dev", "overlays/dev", True, True),
        ("overlays/dev", "x/overlays/dev", True, False),  # with a / the pattern is anchored
        ("/overlays/dev", "overlays/dev", True, True),
        ("**/secrets/*.yaml", "a/b/secrets/s.yaml", False, True),
        ("**/secrets/*.yaml", "secrets/s.yaml", False, True),
        ("old/**", "old", True, True),
        ("old/**", "old/x/y.yaml", False, True),
        ("a/**/z.yaml", "a/z.yaml", False, True),
        ("a/**/z.yaml", "a/b/c/z.yaml", False, True),
        ("a/*/z.yaml", "a/b/c/z.yaml", False, False),
        ("test-?.yaml", "test-1.yaml", False, True),
        ("[!a]*.yaml", "a.yaml", False, False),
        ("./local.yaml", "local.yaml", False, True),
    ],
)
def test_exclude_patterns_are_gitignore_like(pattern: str, path: str, is_folder: bool, excluded: bool) -> None:
    assert (Exclude([pattern]).match(path, is_folder) == pattern) is excluded


def test_excluded_paths_are_listed_with_their_pattern(tmp_path: Path) -> None:
    write(tmp_path / "keep.yaml", CONFIGMAP.format(name="keep"))
    write(tmp_path / "drafts" / "a.yaml", CONFIGMAP.format(name="a"))
    write(tmp_path / "drafts" / "b.yaml", CONFIGMAP.format(name="b"))
    write(tmp_path / "team" / "x.old.yaml", CONFIGMAP.format(name="x"))
    write(tmp_path / "team" / "notes.txt", "not listed: not a manifest name\n")
    result = load_manifests([str(tmp_path)], exclude=["drafts/", "*.old.yaml", "*.txt"])
    assert [d.name for d in result.documents] == ["keep"]
    assert listed(result, tmp_path) == {"drafts": "excluded by --exclude drafts/",
                                        "team/x.old.yaml": "excluded by --exclude *.old.yaml"}


# -- --env / --env-file: envsubst ----------------------------------------------------------------------------
ENVSUBST_CASES = "a=$AA b=${AA} c=$ZZ d=${ZZ} e=${AA:-def} f=$ g=${ h=$1 i=$AA_x j=${AA}y k=$$AA l=\\$AA m=${A-A}\n"


def test_substitution_is_exactly_gnu_envsubst() -> None:
    expected = "a=x b=x c= d= e=${AA:-def} f=$ g=${ h=$1 i= j=xy k=$x l=\\x m=${A-A}\n"  # envsubst 0.21's output
    assert envsubst(ENVSUBST_CASES, {"AA": "x"}) == expected


@pytest.mark.skipif(shutil.which("envsubst") is None, reason="GNU envsubst not installed")
def test_substitution_matches_the_installed_envsubst() -> None:
    done = subprocess.run(["envsubst"], input=ENVSUBST_CASES, capture_output=True, text=True, check=True,
                          env={"AA": "x", "PATH": "/usr/bin:/bin"})
    assert envsubst(ENVSUBST_CASES, {"AA": "x"}) == done.stdout


def test_env_substitutes_before_parsing_and_renders_envsubst_templates(tmp_path: Path) -> None:
    root = fixtures_dir() / "load-templates-and-other-yaml" / "manifests"
    env = {"NAMESPACE": "serving", "REPLICAS": "2", "VLLM_TAG": "v0.6.0"}
    result = load_manifests([str(root)], env=env)
    deployment = next(d for d in result.documents if d.kind == "Deployment")
    assert deployment.ref == "Deployment/serving/vllm" and deployment.obj["spec"]["replicas"] == 2
    assert deployment.get(("spec", "template", "spec", "containers", 0, "image")) == "vllm/vllm-openai:v0.6.0"
    assert deployment.line_of(("spec", "replicas")) == 7
    # a Go template (the chart) and a Jinja one are still listed: envsubst does not render them
    assert "service.yaml" in listed(result, root) and "chart" in listed(result, root)


def test_a_tpl_with_other_placeholders_left_is_listed_even_with_env(tmp_path: Path) -> None:
    write(tmp_path / "x.yaml.tpl", CONFIGMAP.format(name="{{ .Name }}"))
    result = load_manifests([str(tmp_path)], env={})
    assert result.documents == [] and result.findings == []
    assert listed(result, tmp_path)["x.yaml.tpl"].startswith("a template (.tpl)")


def test_without_env_nothing_is_substituted(tmp_path: Path) -> None:
    write(tmp_path / "cm.yaml", CONFIGMAP.format(name="cm") + 'data:\n  image: "repo/app:${TAG}"\n')
    (doc,) = load_manifests([str(tmp_path)]).documents
    assert doc.obj["data"]["image"] == "repo/app:${TAG}"
    (doc,) = load_manifests([str(tmp_path)], env={}).documents
    assert doc.obj["data"]["image"] == "repo/app:"  # envsubst: an unset variable becomes empty


def test_env_files_are_key_value_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "ci.env", "# comment\n\nIMAGE=repo/app\nexport TAG='v1 beta'\nEMPTY=\n"
                                      'URL="http://x/?a=b"\nIMAGE=repo/other\n')
    assert parse_env_file(path) == {"IMAGE": "repo/other", "TAG": "v1 beta", "EMPTY": "", "URL": "http://x/?a=b"}
    with pytest.raises(ValueError, match=r"ci.env:2: 'not an assignment' is not KEY=VALUE"):
        parse_env_text("A=1\nnot an assignment\n", "ci.env")
    assert parse_assignment("A_1=x=y") == ("A_1", "x=y")
    with pytest.raises(ValueError):
        parse_assignment("1A=x")
