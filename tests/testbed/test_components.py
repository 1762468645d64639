"""The component table (core, keda, karpenter): per-component cache keys, `--with` parsing, the bind-loopback source
patches against the pinned upstream sources, KEDA's replace lines in its wrapper, Karpenter's instance types and
drill NodePools."""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from gpu_policy.graph.nodes.catalogue import catalogue
from gpu_policy.testbed import build, gomod, karpenter, keda
from gpu_policy.testbed.components import COMPONENTS, ComponentError, Patch, parse_with
from gpu_policy.testbed.pins import load_pins, wrapper_modules_dir
from gpu_policy.testbed.pki import PKI

GO_ENV = {"GOVERSION": "go1.26.8", "GOOS": "linux", "GOARCH": "amd64"}


def test_with_takes_repeats_and_comma_lists_and_refuses_unknown_names() -> None:
    assert parse_with(["karpenter", "keda"]) == ("keda", "karpenter")
    assert parse_with(["keda,karpenter"]) == ("keda", "karpenter")
    assert parse_with(None) == ()
    with pytest.raises(ComponentError, match="unknown testbed component prometheus; known: keda, karpenter"):
        parse_with(["keda,prometheus"])


def _copy_testbed(tmp_path: Path) -> Path:
    copy = tmp_path / "testbed"
    shutil.copytree(wrapper_modules_dir(), copy, ignore=shutil.ignore_patterns("*.pyc", "__pycache__"))
    return copy


def test_each_component_has_its_own_key_and_re_pinning_keda_leaves_the_core_key(tmp_path: Path) -> None:
    root = _copy_testbed(tmp_path)
    keys = {name: build.cache_key(root, load_pins(root / "pins.yaml"), GO_ENV, name) for name in COMPONENTS}
    assert len(set(keys.values())) == 3
    pins_file = root / "pins.yaml"
    pins_file.write_text(pins_file.read_text().replace("v2.20.2", "v2.20.1"))
    with (root / "keda" / "go.sum").open("a") as out:
        out.write("example.com/x v1.0.0 h1:AAAA=\n")
    after = {name: build.cache_key(root, load_pins(pins_file), GO_ENV, name) for name in COMPONENTS}
    assert after["core"] == keys["core"] and after["karpenter"] == keys["karpenter"]
    assert after["keda"] != keys["keda"]


def test_a_layout_is_per_component_and_lists_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("go") is None:
        pytest.skip("keying needs the Go toolchain")
    monkeypatch.setenv("GPU_POLICY_TESTBED_CACHE", str(tmp_path))
    target = build.layout(component="karpenter")
    assert target.directory.name.startswith("karpenter-")
    assert target.missing() == ["karpenter-kwok", "share/karpenter.kwok.sh_kwoknodeclasses.yaml"]


def test_a_patch_whose_upstream_text_moved_stops_the_build_naming_it(tmp_path: Path) -> None:
    (tmp_path / "main.go").write_text('addr := fmt.Sprintf(":%d", port)\naddr2 := fmt.Sprintf(":%d", port)\n')
    patch = Patch("example.com/m", "main.go", 'fmt.Sprintf(":%d", port)', 'fmt.Sprintf("127.0.0.1:%d", port)', "why")
    with pytest.raises(build.BuildError, match=r"example.com/m main.go \(why\): expected 1 occurrence.*found 2"):
        build.apply_patches(tmp_path, [patch])
    build.apply_patches(tmp_path, [Patch(patch.module, patch.file, patch.old, patch.new, patch.why, count=2)])
    assert (tmp_path / "main.go").read_text().count('"127.0.0.1:%d"') == 2


def _module_dir(module: str, version: str) -> Path | None:
    go = shutil.which("go")
    if go is None:
        return None
    cache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, timeout=60).stdout.strip()
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    folder = Path(cache) / f"{escaped}@{version}"
    return folder if folder.is_dir() else None


@pytest.mark.parametrize("component", ["keda", "karpenter"])
def test_every_patch_applies_exactly_to_the_pinned_upstream_source(component: str, tmp_path: Path) -> None:
    spec = COMPONENTS[component]
    pins = load_pins()
    for module in spec.patched_modules:
        source = _module_dir(module, pins.version(component))
        if source is None:
            pytest.skip(f"{module}@{pins.version(component)} is not in the Go module cache (run testbed build)")
        copy = tmp_path / component
        for patch in spec.patches:
            target = copy / patch.file
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(source / patch.file, target)
        build.apply_patches(copy, [p for p in spec.patches if p.module == module])
        for patch in spec.patches:
            assert patch.new in (copy / patch.file).read_text()
            assert "127.0.0.1" in patch.new


def test_the_keda_wrapper_carries_keda_s_replace_lines_and_requires_the_pin() -> None:
    pins = load_pins()
    committed = (wrapper_modules_dir() / "keda" / "go.mod").read_text()
    assert gomod.required_version(committed, "github.com/kedacore/keda/v2") == pins.keda == "v2.20.2"
    replaces = gomod.replaces_of(committed)
    # KEDA v2.20.2's go.mod pins k8s.io to v0.35.5 and controller-runtime to v0.23.3 with replace lines.
    assert replaces["k8s.io/client-go"] == "k8s.io/client-go v0.35.5"
    assert replaces["sigs.k8s.io/controller-runtime"] == "sigs.k8s.io/controller-runtime v0.23.3"
    source = _module_dir("github.com/kedacore/keda/v2", pins.keda)
    if source is not None:
        assert replaces == gomod.replaces_of((source / "go.mod").read_text())
        assert gomod.replaces_of(gomod.keda_gomod(pins, (source / "go.mod").read_text())) == replaces
    karpenter_mod = (wrapper_modules_dir() / "karpenter" / "go.mod").read_text()
    assert gomod.required_version(karpenter_mod, "sigs.k8s.io/karpenter") == pins.karpenter == "v1.14.1"
    for package in (*gomod.KEDA_TOOLS.values(), *gomod.KARPENTER_TOOLS.values()):
        assert package in committed + karpenter_mod


def test_instance_types_are_the_catalogue_s_nvidia_types_spot_at_70_percent() -> None:
    types = {t["name"]: t for t in karpenter.instance_types()}
    facts = catalogue().types["g5.12xlarge"]
    g5 = types["g5.12xlarge"]
    assert g5["resources"] == {"cpu": "48", "memory": f"{facts['memoryMiB']}Mi", "nvidia.com/gpu": "4", "pods": "110"}
    prices = {}
    for offering in g5["offerings"]:
        reqs = {r["key"]: r["values"][0] for r in offering["Requirements"]}
        prices[(reqs["karpenter.sh/capacity-type"], reqs["topology.kubernetes.io/zone"])] = offering["Price"]
        assert reqs["karpenter.k8s.aws/instance-gpu-count"] == "4"
        assert reqs["karpenter.k8s.aws/instance-family"] == "g5"
    assert set(prices) == {(c, z) for c in ("on-demand", "spot") for z in karpenter.ZONES}
    assert Decimal(str(prices[("on-demand", "us-east-1a")])) == facts["onDemandUSD"]
    assert Decimal(str(prices[("spot", "us-east-1b")])) == facts["onDemandUSD"] * Decimal("0.7")
    # AMD GPUs are not nvidia.com/gpu; types without a us-east-1 price cannot be offered.
    assert all(catalogue().types[name]["gpuManufacturer"] == "nvidia" for name in types)
    assert "p5e.48xlarge" not in types


def test_drill_nodepools_differ_from_the_reference_only_in_the_node_class() -> None:
    reference = {p["metadata"]["name"]: p for p in karpenter.reference_nodepools()}
    drills = {p["metadata"]["name"]: p for p in karpenter.drill_nodepools()}
    assert set(drills) == set(reference) == {"gpu-inference-pool", "gpu-spot-pool"}
    for name, drill in drills.items():
        ref = drill["spec"]["template"]["spec"]["nodeClassRef"]
        assert ref == {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass",
                       "name": reference[name]["spec"]["template"]["spec"]["nodeClassRef"]["name"]}
        drill["spec"]["template"]["spec"]["nodeClassRef"] = reference[name]["spec"]["template"]["spec"]["nodeClassRef"]
        assert drill == reference[name]
    assert [c["metadata"]["name"] for c in karpenter.node_classes()] == ["gpu-nodeclass", "gpu-spot-nodeclass"]


def test_keda_webhooks_become_loopback_urls_with_nothing_else_changed(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    pki.ca_cert.write_text("CA")
    upstream = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "keda-admission"},
                "webhooks": [{"name": "vscaledobject.kb.io", "failurePolicy": "Ignore", "rules": [{"x": 1}],
                              "clientConfig": {"service": {"name": "keda-admission-webhooks", "namespace": "keda",
                                                           "path": "/validate-keda-sh-v1alpha1-scaledobject"}}}]}
    out = keda.webhook_configuration(upstream, 41234, pki)
    hook = out["webhooks"][0]
    assert hook["clientConfig"] == {"url": "https://127.0.0.1:41234/validate-keda-sh-v1alpha1-scaledobject",
                                    "caBundle": "Q0E="}
    assert {k: v for k, v in hook.items() if k != "clientConfig"} == {
        k: v for k, v in upstream["webhooks"][0].items() if k != "clientConfig"}


def test_the_metrics_apiservice_names_an_external_name_service_on_loopback(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    pki.ca_cert.write_text("CA")
    (tmp_path / keda.WEBHOOK_CONFIGURATION).write_text("kind: ValidatingWebhookConfiguration\nwebhooks: []\n")
    ports = {name: 41000 + i for i, name in enumerate(keda.PORTS)}
    created = dict(keda.objects(ports, pki, tmp_path))
    service = created["/api/v1/namespaces/keda/services"]
    assert service["spec"]["type"] == "ExternalName" and service["spec"]["externalName"] == "127.0.0.1"
    apiservice = created["/apis/apiregistration.k8s.io/v1/apiservices"]
    assert apiservice["spec"]["service"] == {"namespace": "keda", "name": "keda-metrics-apiserver",
                                             "port": ports["keda-adapter"]}


def test_with_karpenter_the_testbed_makes_only_the_cpu_node() -> None:
    from gpu_policy.testbed import cluster

    assert [n.name for n in cluster.fake_nodes(["karpenter"])] == ["kwok-system-0"]
    assert len(cluster.fake_nodes(["keda"])) == len(cluster.FAKE_NODES)


def test_build_copies_and_patches_the_module_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A patched component builds with -modfile replacing the upstream module by the patched copy in its cache."""
    if shutil.which("go") is None or _module_dir("sigs.k8s.io/karpenter", load_pins().karpenter) is None:
        pytest.skip("needs Go and sigs.k8s.io/karpenter in the module cache")
    monkeypatch.setenv("GPU_POLICY_TESTBED_CACHE", str(tmp_path))
    calls: list[list[str]] = []

    def fake_go(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        Path(command[command.index("-o") + 1]).write_text("#!/bin/sh\n")
        return subprocess.CompletedProcess(command, 0, "", "")

    target = build.build(component="karpenter", runner=fake_go)
    assert target.binary("karpenter-kwok").read_text() == "#!/bin/sh\n"  # what the (fake) go build wrote
    modfile = next(arg for arg in calls[0] if arg.startswith("-modfile="))
    text = Path(modfile.removeprefix("-modfile=")).read_text()
    copy = target.directory / "src" / "sigs.k8s.io_karpenter@v1.14.1"
    assert f"replace sigs.k8s.io/karpenter => {copy}" in text
    assert 'fmt.Sprintf("127.0.0.1:%d", options.FromContext(ctx).MetricsPort)' in (
        copy / "pkg" / "operator" / "operator.go").read_text()
    assert (target.share / karpenter.NODECLASS_CRD).is_file()


def test_the_testbed_marks_its_kwok_node_classes_ready_as_a_node_class_controller_would() -> None:
    [ready] = karpenter.ready_status(3)["status"]["conditions"]
    assert {k: ready[k] for k in ("type", "status", "reason", "message", "observedGeneration")} == {
        "type": "Ready", "status": "True", "reason": "Ready", "message": "", "observedGeneration": 3}
