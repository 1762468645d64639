"""What `testbed up` would run, checked without starting anything: every address is on loopback, and the state
folder rules (`down` removes only what a testbed made; `up` refuses without binaries) hold."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from gpu_policy.testbed import build, cluster, karpenter, keda
from gpu_policy.testbed.pki import PKI

_ADDRESS = re.compile(r"(?:(?<=//)|(?<==))(\d{1,3}(?:\.\d{1,3}){3})(?:/\d+)?")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", *keda.PROCESSES)


def _state(tmp_path: Path) -> cluster.State:
    state = cluster.State(directory=tmp_path / "state")
    names = ["etcd", "etcd-peer", *COMPONENTS[1:4], *keda.PORTS, *karpenter.PORTS]
    state.ports = {name: 40000 + i for i, name in enumerate(names)}
    state.admission_plugins = ["ExtendedResourceToleration"]
    return state


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_address_a_component_is_given_is_loopback(tmp_path: Path, component: str) -> None:
    argv = cluster._argv(component, tmp_path / "bin" / component, _state(tmp_path), PKI(tmp_path / "pki"))
    addresses = [match.group(1) for arg in argv for match in _ADDRESS.finditer(arg)]
    assert addresses, f"{component}: expected bind/connect addresses in {argv}"
    assert [a for a in addresses if not ipaddress.ip_address(a).is_loopback] == [], argv
    # Servers bind one loopback address, never all interfaces.
    assert not [arg for arg in argv if "0.0.0.0" in arg or "[::]" in arg], argv


def test_cluster_ranges_handed_out_are_loopback() -> None:
    for cidr in (cluster.SERVICE_CIDR, cluster.POD_CIDR):
        assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network("127.0.0.0/8")), cidr
    assert ipaddress.ip_address(cluster.NODE_IP).is_loopback


def test_keda_and_karpenter_get_loopback_listeners_and_no_proxy(tmp_path: Path) -> None:
    state = _state(tmp_path)
    env = {**cluster._component_env(state, "karpenter"), **cluster._component_env(state, "keda-adapter")}
    assert env["NO_PROXY"] == "*" and "HTTPS_PROXY" not in env
    karpenter_env = cluster._component_env(state, "karpenter")
    assert karpenter_env["METRICS_PORT"] == str(state.ports["karpenter-metrics"])
    assert karpenter_env["DISABLE_LEADER_ELECTION"] == "true"
    # The operator's Prometheus endpoint is off and the webhooks' metrics server is disabled ("0").
    operator = cluster._argv("keda-operator", tmp_path / "k", state, PKI(tmp_path / "pki"))
    assert "--enable-prometheus-metrics=false" in operator and "--enable-cert-rotation=false" in operator
    assert "--metrics-bind-address=0" in cluster._argv("keda-webhooks", tmp_path / "k", state, PKI(tmp_path / "pki"))


def test_apiserver_resolves_aggregated_apis_by_service_and_runs_no_master_endpoint_reconciler(tmp_path: Path) -> None:
    argv = cluster._argv("kube-apiserver", tmp_path / "kube-apiserver", _state(tmp_path), PKI(tmp_path / "pki"))
    # KEDA's APIService names an ExternalName Service 127.0.0.1: resolved by Service, the API server dials loopback.
    assert "--enable-aggregator-routing=false" in argv
    assert "--requestheader-allowed-names=front-proxy-client" in argv
    assert "--endpoint-reconciler-type=none" in argv
    assert "--anonymous-auth=false" in argv
    assert "--enable-admission-plugins=ExtendedResourceToleration" in argv


def test_profile_admission_plugins_follow_eks_extended_resource_toleration(tmp_path: Path) -> None:
    on, off = tmp_path / "on.yaml", tmp_path / "off.yaml"
    on.write_text("eks:\n  extendedResourceToleration: true\n")
    off.write_text("eks:\n  extendedResourceToleration: false\n")
    assert cluster.profile_admission_plugins(on) == ["ExtendedResourceToleration"]
    assert cluster.profile_admission_plugins(off) == []


def test_free_ports_are_distinct_loopback_ports() -> None:
    ports = cluster.free_ports(["a", "b", "c"])
    assert len(set(ports.values())) == 3 and all(1024 <= p <= 65535 for p in ports.values())


def test_up_without_built_binaries_says_how_to_build_them(tmp_path: Path) -> None:
    layout = build.Layout(key="0123456789abcdef", directory=tmp_path / "cache" / "0123456789abcdef")
    with pytest.raises(cluster.TestbedError, match="run `gpu-policy testbed build` first"):
        cluster.up(tmp_path / "state", binaries=layout)
    assert not (tmp_path / "state").exists()


def test_down_refuses_to_remove_a_folder_the_testbed_did_not_make(tmp_path: Path) -> None:
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    with pytest.raises(cluster.TestbedError, match="not removing a folder the testbed did not make"):
        cluster.down(folder)
    assert (folder / "thesis.tex").read_text() == "keep me"


def test_up_refuses_a_folder_holding_a_stopped_testbed(tmp_path: Path) -> None:
    state = _state(tmp_path)
    state.directory.mkdir()
    state.save()
    layout = build.Layout(key="0123456789abcdef", directory=tmp_path / "cache")
    with pytest.raises(cluster.TestbedError, match="run `gpu-policy testbed down` to remove them"):
        cluster.up(state.directory, binaries=layout)


def test_the_hpa_sync_period_is_kubernetes_default_unless_asked_and_survives_the_state_file(tmp_path: Path) -> None:
    state = _state(tmp_path)
    flag = "--horizontal-pod-autoscaler-sync-period"
    default = cluster._argv("kube-controller-manager", tmp_path / "kcm", state, PKI(tmp_path / "pki"))
    assert not [a for a in default if a.startswith(flag)]  # 15 s, what the drills and the simulator assume
    state.hpa_sync_seconds = 5
    faster = cluster._argv("kube-controller-manager", tmp_path / "kcm", state, PKI(tmp_path / "pki"))
    assert f"{flag}=5s" in faster
    state.directory.mkdir(parents=True)
    state.save()
    loaded = cluster.State.load(state.directory)
    assert loaded is not None and loaded.hpa_sync_seconds == 5


def test_up_refuses_an_hpa_sync_period_under_a_second(tmp_path: Path) -> None:
    with pytest.raises(cluster.TestbedError, match="at least 1 s"):
        cluster.up(tmp_path / "state", binaries=build.Layout(key="0123456789abcdef", directory=tmp_path / "cache"),
                   hpa_sync_seconds=0)
    assert not (tmp_path / "state").exists()
