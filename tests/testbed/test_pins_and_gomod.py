"""The testbed's pins, generated go.mod text, committed wrapper modules and cache key (no Go toolchain needed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gpu_policy.testbed import build, gomod
from gpu_policy.testbed.pins import Pins, PinsError, load_pins, wrapper_modules_dir

ROOT = Path(__file__).resolve().parents[2]

UPSTREAM = """\
module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
\tgithub.com/spf13/cobra v1.8.1
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20250318190949-c8a335a9a2ff
)
"""


def test_parse_upstream_takes_staging_modules_go_and_godebug() -> None:
    parsed = gomod.parse_upstream(UPSTREAM)
    assert parsed.go == "1.24.0"
    assert parsed.godebug == ("default=go1.24",)
    # kube-openapi is replaced by a version, not by ./staging: it is not a staging module.
    assert parsed.staging == ("k8s.io/api", "k8s.io/client-go")


def test_parse_upstream_rejects_a_go_mod_without_staging_replaces() -> None:
    with pytest.raises(gomod.GoModError, match=re.escape("not k8s.io/kubernetes' go.mod")):
        gomod.parse_upstream("module example.com/x\n\ngo 1.24.0\n")


def test_kubernetes_gomod_replaces_each_staging_module_by_the_matching_v0_release() -> None:
    pins = Pins(kubernetes="v1.33.13", etcd="v3.5.24", kwok="v0.8.0")
    text = gomod.kubernetes_gomod(pins, gomod.parse_upstream(UPSTREAM))
    assert gomod.replaces_of(text) == {
        "k8s.io/api": "k8s.io/api v0.33.13",
        "k8s.io/client-go": "k8s.io/client-go v0.33.13",
    }
    assert gomod.required_version(text, "k8s.io/kubernetes") == "v1.33.13"
    assert "godebug default=go1.24" in text
    assert "\tk8s.io/kubernetes/cmd/kube-apiserver\n" in text


@pytest.mark.parametrize("version", ["v0.33.1", "1.33.2", "v1.33", "v1.33.0-rc.1"])
def test_staging_version_refuses_what_is_not_a_v1_release(version: str) -> None:
    with pytest.raises(gomod.GoModError, match=re.escape("not a v1.<minor>.<patch> release")):
        gomod.staging_version(version)


def test_pins_follow_the_cluster_profile_kubernetes_version() -> None:
    profile = yaml.safe_load((ROOT / "policies" / "cluster.yaml").read_text(encoding="utf-8"))
    assert load_pins().kubernetes_minor == str(profile["kubernetesVersion"])


def test_load_pins_names_the_bad_entry(tmp_path: Path) -> None:
    (tmp_path / "pins.yaml").write_text(
        "kubernetes: {version: v1.33.13}\netcd: {version: 3.5.24}\nkwok: {version: v0.8.0}\n"
    )
    with pytest.raises(PinsError, match=re.escape("`etcd.version` must be a Go module version")):
        load_pins(tmp_path / "pins.yaml")


def test_committed_wrapper_modules_carry_the_pins() -> None:
    pins = load_pins()
    folder = wrapper_modules_dir()
    kubernetes = (folder / "kubernetes" / "go.mod").read_text(encoding="utf-8")
    assert gomod.required_version(kubernetes, "k8s.io/kubernetes") == pins.kubernetes
    staging = gomod.staging_version(pins.kubernetes)
    replaces = gomod.replaces_of(kubernetes)
    assert len(replaces) >= 25, "k8s.io/kubernetes has about 30 staging modules; each needs a replace line"
    wrong = {old: new for old, new in replaces.items() if new != f"{old} {staging}"}
    assert wrong == {}, f"staging replaces not at {staging}: {wrong}"
    for package in gomod.KUBERNETES_TOOLS.values():
        assert f"\t{package}\n" in kubernetes
    kwok = (folder / "kwok" / "go.mod").read_text(encoding="utf-8")
    assert gomod.required_version(kwok, "sigs.k8s.io/kwok") == pins.kwok
    assert "tool sigs.k8s.io/kwok/cmd/kwok" in kwok or "\tsigs.k8s.io/kwok/cmd/kwok\n" in kwok
    etcd = (folder / "etcd" / "go.mod").read_text(encoding="utf-8")
    assert gomod.required_version(etcd, "go.etcd.io/etcd/server/v3") == pins.etcd
    for module in ("kubernetes", "kwok", "etcd"):
        assert (folder / module / "go.sum").stat().st_size > 0, f"testbed/{module}/go.sum is not recorded"


def test_upstream_go_mod_matches_committed_replaces_when_it_is_in_the_module_cache() -> None:
    """When Go has the pinned k8s.io/kubernetes go.mod cached, regenerate from it: same staging set as committed."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain")
    pins = load_pins()
    cache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, timeout=60).stdout.strip()
    upstream_file = Path(cache) / "cache" / "download" / "k8s.io" / "kubernetes" / "@v" / f"{pins.kubernetes}.mod"
    if not upstream_file.is_file():
        pytest.skip(f"{upstream_file} not downloaded (run `gpu-policy testbed build` once)")
    generated = gomod.kubernetes_gomod(pins, gomod.parse_upstream(upstream_file.read_text(encoding="utf-8")))
    committed = (wrapper_modules_dir() / "kubernetes" / "go.mod").read_text(encoding="utf-8")
    assert gomod.replaces_of(generated) == gomod.replaces_of(committed)


def _copy_testbed(tmp_path: Path) -> Path:
    copy = tmp_path / "testbed"
    shutil.copytree(wrapper_modules_dir(), copy, ignore=shutil.ignore_patterns("*.pyc", "__pycache__"))
    return copy


def test_cache_key_changes_with_a_pin_a_go_sum_or_the_go_version(tmp_path: Path) -> None:
    root = _copy_testbed(tmp_path)
    go_env = {"GOVERSION": "go1.26.8", "GOOS": "linux", "GOARCH": "amd64"}
    key = build.cache_key(root, load_pins(root / "pins.yaml"), go_env)
    assert key == build.cache_key(root, load_pins(root / "pins.yaml"), dict(go_env))
    assert key != build.cache_key(root, load_pins(root / "pins.yaml"), {**go_env, "GOVERSION": "go1.26.9"})
    with (root / "kwok" / "go.sum").open("a") as out:
        out.write("example.com/x v1.0.0 h1:AAAA=\n")
    key_sum = build.cache_key(root, load_pins(root / "pins.yaml"), go_env)
    assert key_sum != key
    pins_file = root / "pins.yaml"
    pins_file.write_text(pins_file.read_text().replace("v0.8.0", "v0.7.0"))
    assert build.cache_key(root, load_pins(pins_file), go_env) not in {key, key_sum}


def test_ldflags_stamp_the_pinned_kubernetes_version() -> None:
    flags = build.ldflags(Pins(kubernetes="v1.33.13", etcd="v3.5.24", kwok="v0.8.0"))
    assert "-X k8s.io/component-base/version.gitVersion=v1.33.13" in flags
    assert "-X k8s.io/component-base/version.gitMinor=33" in flags


def test_fake_gpu_nodes_carry_their_pool_and_the_aws_instance_labels() -> None:
    from gpu_policy.testbed.nodes import node_manifests

    nodes = {m["metadata"]["name"]: m for m in node_manifests()}
    p4d = nodes["kwok-p4d-ondemand-0"]
    labels = p4d["metadata"]["labels"]
    # From manifests/karpenter/nodepools.yaml (gpu-inference-pool's template) and policies/instance-types.yaml.
    assert labels["node-type"] == "gpu-inference" and labels["karpenter.sh/nodepool"] == "gpu-inference-pool"
    assert labels["karpenter.k8s.aws/instance-family"] == "p4d"
    assert labels["karpenter.k8s.aws/instance-category"] == "p"
    assert labels["karpenter.k8s.aws/instance-generation"] == "4"
    assert labels["karpenter.k8s.aws/instance-size"] == "24xlarge"
    assert labels["karpenter.k8s.aws/instance-gpu-name"] == "a100"
    assert labels["karpenter.k8s.aws/instance-gpu-memory"] == "40960"
    assert labels["karpenter.k8s.aws/instance-memory"] == str(1152 * 1024)
    assert p4d["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert p4d["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    spot = nodes["kwok-g5-spot-0"]
    assert {(t["key"], t["effect"]) for t in spot["spec"]["taints"]} == {
        ("nvidia.com/gpu", "NoSchedule"),
        ("karpenter.sh/capacity-type", "NoSchedule"),
    }
    assert spot["metadata"]["labels"]["karpenter.sh/capacity-type"] == "spot"
    system = nodes["kwok-system-0"]
    assert system["spec"]["taints"] == [] and "nvidia.com/gpu" not in system["status"]["capacity"]
