"""`testbed up|down|status`: run etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as local
processes on 127.0.0.1, from the binaries `testbed build` put in the cache; `--with keda` / `--with karpenter` add
KEDA (keda.py) and Karpenter with its kwok provider (karpenter.py).

Network safety: every component binds 127.0.0.1 on a free port; kwok gives nodes and pods 127.x addresses; the
service ClusterIP range is a 127.x range as well. Aggregated APIs are resolved by Service (`--enable-aggregator-
routing=false`); the only one the testbed registers (KEDA's external metrics) names an ExternalName Service
`127.0.0.1`, so the API server dials 127.0.0.1 and never a ClusterIP or an endpoint. Webhooks are URL-based on
127.0.0.1. The master endpoint reconciler is off. No cluster DNS runs and nothing resolves cluster names.

Everything a testbed creates is under its state folder: state.json (pids, ports, binaries), pki/, etcd data,
kubeconfigs and logs. `down` stops the recorded processes (pid + start time + executable checked) and removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from gpu_policy.loading.yaml_reader import YamlError, read_documents
from gpu_policy.resources import default_policies_dir
from gpu_policy.schemas.crds import CRD_PATH_ENV, default_crd_paths
from gpu_policy.testbed import karpenter, keda, ports, processes
from gpu_policy.testbed.api import (
    PROBE_TIMEOUT_SECONDS,
    ApiError,
    Client,
    http_ok,
    unverified_loopback_context,
    wait_until,
)
from gpu_policy.testbed.build import BINARY_NAMES, Layout, layout
from gpu_policy.testbed.components import CORE, KARPENTER, KEDA, OPTIONAL
from gpu_policy.testbed.nodes import FAKE_NODES, KWOK_ANNOTATION, FakeNode, NodeSpecError, node_manifests
from gpu_policy.testbed.pki import FRONT_PROXY_CLIENT, PKI, make_pki

STATE_ENV = "GPU_POLICY_TESTBED_STATE"
NICE_ENV = "GPU_POLICY_TESTBED_NICE"
LOOPBACK = "127.0.0.1"
#: ClusterIPs are allocated here: a loopback range, so even a stray connection to one stays on this machine.
SERVICE_CIDR = "127.96.0.0/16"
#: kwok hands pod IPs from here and gives every fake node NODE_IP.
POD_CIDR = "127.64.0.0/16"
NODE_IP = "127.0.0.2"
READY_TIMEOUT_SECONDS = 90.0
STATE_FILE = "state.json"


class TestbedError(RuntimeError):
    """The testbed cannot be started, stopped or inspected; the message says why and what to do."""


def default_state_dir() -> Path:
    configured = os.environ.get(STATE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gpu-policy" / "testbed"


@dataclass
class State:
    directory: Path
    key: str = ""
    bin_dir: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    processes: list[processes.ProcessRecord] = field(default_factory=list)
    started_at: float = 0.0
    ready_seconds: float | None = None
    admission_plugins: list[str] = field(default_factory=list)
    hpa_sync_seconds: int | None = None
    """kube-controller-manager's --horizontal-pod-autoscaler-sync-period, when not its default (15 s)."""
    components: list[str] = field(default_factory=list)  # optional components started (keda, karpenter)
    bin_dirs: dict[str, str] = field(default_factory=dict)  # component -> its binaries' folder

    @property
    def file(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.ports['kube-apiserver']}"

    def save(self) -> None:
        data = {
            "key": self.key,
            "binDir": self.bin_dir,
            "ports": self.ports,
            "processes": [record.to_json() for record in self.processes],
            "startedAt": self.started_at,
            "readySeconds": self.ready_seconds,
            "admissionPlugins": self.admission_plugins,
            "hpaSyncSeconds": self.hpa_sync_seconds,
            "components": self.components,
            "binDirs": self.bin_dirs,
        }
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.file)

    @classmethod
    def load(cls, directory: Path) -> State | None:
        try:
            data = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise TestbedError(f"{directory / STATE_FILE} is unreadable ({exc}); remove {directory} by hand") from exc
        return cls(
            directory=directory,
            key=str(data.get("key", "")),
            bin_dir=str(data.get("binDir", "")),
            ports={str(k): int(v) for k, v in data.get("ports", {}).items()},
            processes=[processes.ProcessRecord.from_json(p) for p in data.get("processes", [])],
            started_at=float(data.get("startedAt", 0.0)),
            ready_seconds=data.get("readySeconds"),
            admission_plugins=[str(p) for p in data.get("admissionPlugins", [])],
            hpa_sync_seconds=int(data["hpaSyncSeconds"]) if data.get("hpaSyncSeconds") is not None else None,
            components=[str(c) for c in data.get("components", [])],
            bin_dirs={str(k): str(v) for k, v in data.get("binDirs", {}).items()},
        )


def free_ports(names: list[str]) -> dict[str, int]:
    """Distinct free TCP ports on 127.0.0.1, one per name, below the kernel's ephemeral range (see ports.py)."""
    return dict(zip(names, ports.free_ports(len(names)), strict=True))


def _kubeconfig(server: str, pki: PKI, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "gpu-policy-testbed", "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(pki.client_cert(user)), "client-key": str(pki.client_key(user))},
            }
        ],
        "contexts": [{"name": "gpu-policy-testbed", "context": {"cluster": "gpu-policy-testbed", "user": user}}],
        "current-context": "gpu-policy-testbed",
    }


def _write_kubeconfig(path: Path, server: str, pki: PKI, user: str) -> Path:
    path.write_text(yaml.safe_dump(_kubeconfig(server, pki, user), sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


def _argv(name: str, binary: Path, state: State, pki: PKI) -> list[str]:
    ports = state.ports
    d = state.directory
    if name == "etcd":
        client = f"http://{LOOPBACK}:{ports['etcd']}"
        peer = f"http://{LOOPBACK}:{ports['etcd-peer']}"
        return [
            str(binary), "--name=testbed", f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=testbed={peer}", "--initial-cluster-state=new",
            "--unsafe-no-fsync=true", "--quota-backend-bytes=2147483648", "--log-level=warn",
        ]  # fmt: skip
    kubeconfig = d / f"{name}.kubeconfig"
    if name == "kube-apiserver":
        return [
            str(binary), f"--etcd-servers=http://{LOOPBACK}:{ports['etcd']}",
            f"--bind-address={LOOPBACK}", f"--advertise-address={LOOPBACK}", f"--secure-port={ports['kube-apiserver']}",
            f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}", "--authorization-mode=RBAC", "--anonymous-auth=false",
            f"--service-account-issuer={state.server}", f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}", f"--api-audiences={state.server}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--endpoint-reconciler-type=none",
            "--enable-aggregator-routing=false", "--allow-privileged=true", "--profiling=false",
            f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}", "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.client_cert(FRONT_PROXY_CLIENT)}",
            f"--proxy-client-key-file={pki.client_key(FRONT_PROXY_CLIENT)}",
            f"--cert-dir={d / 'pki'}", "--v=1",
            *([f"--enable-admission-plugins={','.join(state.admission_plugins)}"] if state.admission_plugins else []),
        ]  # fmt: skip
    if name == "kwok":
        return [
            str(binary), f"--kubeconfig={kubeconfig}", f"--config={d / 'kwok.yaml'}",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
            f"--cidr={POD_CIDR}", f"--node-ip={NODE_IP}", "--node-lease-duration-seconds=40",
        ]  # fmt: skip
    if name in keda.PROCESSES:
        return keda.argv(name, binary, ports, d, pki)
    if name == "karpenter":
        return karpenter.argv(binary)
    common = [
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={LOOPBACK}", f"--secure-port={ports[name]}",
        "--leader-elect=false", "--profiling=false", "--v=1",
    ]  # fmt: skip
    if name == "kube-controller-manager":
        return [
            # --kube-api-qps/--kube-api-burst (defaults 20 and 30): every controller builds its own client from its
            # service account's credentials, and at 20 requests/s its ~40 controllers took 4 s to start (150 ms each,
            # the "default" service account and so every test pod waited for them). Client-side throttling only:
            # what the controllers do, and when (the HPA's sync period), is unchanged.
            str(binary), *common, "--use-service-account-credentials=true", "--kube-api-qps=500",
            "--kube-api-burst=1000",
            f"--service-account-private-key-file={pki.service_account_key}", f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}", f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
            *([f"--horizontal-pod-autoscaler-sync-period={state.hpa_sync_seconds}s"]
              if state.hpa_sync_seconds is not None else []),
        ]  # fmt: skip
    if name == "kube-scheduler":
        return [str(binary), *common]
    raise TestbedError(f"unknown component {name}")


def _write_kwok_config(path: Path, stages_binary: Path) -> None:
    """kwok's --config: the pinned release's default Stages (what kwokctl configures), printed by kwok-stages."""
    try:
        result = subprocess.run([str(stages_binary)], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise TestbedError(f"{stages_binary} failed: {exc}") from exc
    stages = [doc for doc in yaml.safe_load_all(result.stdout) if isinstance(doc, dict) and doc.get("kind") == "Stage"]
    if not stages:
        raise TestbedError(f"{stages_binary} printed no kwok Stage")
    path.write_text(result.stdout, encoding="utf-8")


def _niceness() -> int:
    value = os.environ.get(NICE_ENV, "19")
    try:
        return max(0, min(19, int(value)))
    except ValueError:
        return 19


def _component_env(state: State, name: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KUBECONFIG", "ETCD"))}
    # No proxy for anything: every address is on loopback.
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env["NO_PROXY"] = env["no_proxy"] = "*"
    if name == "kwok":
        # kwok reads ~/.kwok/kwok.yaml when it exists: give it an empty home so only our flags count.
        home = state.directory / "kwok-home"
        home.mkdir(exist_ok=True)
        env["HOME"] = str(home)
    if name in keda.PROCESSES:
        env.update(keda.env(state.directory))
    if name == "karpenter":
        env.update(karpenter.env(state.directory, state.ports))
    return env


def _crd_documents() -> list[dict[str, Any]]:
    """CustomResourceDefinitions from GPU_POLICY_CRD_PATH (recursively); the first of a name wins."""
    found: dict[str, dict[str, Any]] = {}
    for root in default_crd_paths():
        files = (
            [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in {".yaml", ".yml", ".json"})
        )
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise TestbedError(f"{file}: cannot read CRDs: {exc}") from exc
            documents = []
            # Kubernetes' YAML decoding (the suite's reader), not PyYAML's YAML 1.1 (`=` would be a value tag).
            for item in read_documents(text):
                if isinstance(item, YamlError):
                    raise TestbedError(f"{file}:{item.line}: cannot read CRDs: {item}")
                documents.append(item.value)
            for document in documents:
                if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                    name = str(document.get("metadata", {}).get("name", ""))
                    if name and name not in found:
                        found[name] = document
    return list(found.values())


def _install_crds(client: Client, documents: list[dict[str, Any]]) -> None:
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for document in documents:
        body = {k: v for k, v in document.items() if k != "status"}
        body["metadata"] = {k: v for k, v in document["metadata"].items() if k in {"name", "labels", "annotations"}}
        client.request("POST", path, body)
    for document in documents:
        name = document["metadata"]["name"]

        def established(name: str = name) -> bool:
            crd = client.request("GET", f"{path}/{name}")
            conditions = crd.get("status", {}).get("conditions", [])
            return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

        wait_until(f"CRD {name}", established, timeout=30)


def _node_ready(client: Client, name: str) -> bool:
    node = client.request("GET", f"/api/v1/nodes/{name}")
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _check_alive(state: State) -> None:
    for record in state.processes:
        if not processes.is_ours(record):
            tail = _log_tail(Path(record.log))
            raise TestbedError(f"{record.name} exited during start-up; last lines of {record.log}:\n{tail}")


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def profile_admission_plugins(profile: Path | None = None) -> list[str]:
    """Admission plugins beyond kube-apiserver's defaults that the cluster profile says the platform runs.

    policies/cluster.yaml `eks.extendedResourceToleration: true` -> ExtendedResourceToleration (not on by default in
    kube-apiserver; EKS enables it): a pod requesting nvidia.com/gpu gets a toleration for the nvidia.com/gpu taint.
    """
    path = profile or default_policies_dir() / "cluster.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TestbedError(f"{path}: cannot read the cluster profile: {exc}") from exc
    eks = data.get("eks") if isinstance(data, dict) else None
    return ["ExtendedResourceToleration"] if isinstance(eks, dict) and eks.get("extendedResourceToleration") else []


def up(
    state_dir: Path | None = None,
    progress: TextIO = sys.stderr,
    binaries: Layout | None = None,
    cluster_profile: Path | None = None,
    die_with_caller: bool = False,
    components: tuple[str, ...] | list[str] = (),
    addons: dict[str, Layout] | None = None,
    hpa_sync_seconds: int | None = None,
) -> State:
    """Start a testbed (the core, plus the optional `components`: keda, karpenter); on any failure everything
    started so far is stopped and its folder removed.

    `die_with_caller=True` (test fixtures) makes the kernel stop the components when the calling process ends.
    `hpa_sync_seconds`: how often the HPA controller reconciles (kube-controller-manager
    --horizontal-pod-autoscaler-sync-period; None keeps Kubernetes' default, 15 s, which the drills and the
    simulator rely on). Only a test that waits for an HPA to act, not for when it acts, may shorten it."""
    directory = state_dir or default_state_dir()
    wanted = [name for name in OPTIONAL if name in components]
    unknown = sorted(set(components) - set(OPTIONAL))
    if unknown:
        raise TestbedError(f"unknown testbed component {', '.join(unknown)}; known: {', '.join(OPTIONAL)}")
    if hpa_sync_seconds is not None and hpa_sync_seconds < 1:
        raise TestbedError(f"the HPA sync period must be at least 1 s, not {hpa_sync_seconds}")
    existing = State.load(directory)
    if existing is not None and any(processes.is_ours(r) for r in existing.processes):
        raise TestbedError(f"a testbed already runs from {directory} (API server {existing.server}); `down` it first")
    if existing is not None or (directory.exists() and any(directory.iterdir())):
        raise TestbedError(f"{directory} holds a stopped testbed's files; run `gpu-policy testbed down` to remove them")
    binaries = binaries or layout()
    found = {CORE: binaries, **{name: (addons or {}).get(name) or layout(component=name) for name in wanted}}
    for name, target in found.items():
        missing = target.missing()
        if missing:
            flag = "" if name == CORE else f" --with {name}"
            raise TestbedError(
                f"testbed binaries not built for the current pins ({', '.join(missing)} missing in "
                f"{target.bin_dir}); run `gpu-policy testbed build{flag}` first (the first build takes a while)"
            )
    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    state = State(directory=directory, key=binaries.key, bin_dir=str(binaries.bin_dir), started_at=time.time())
    state.components = wanted
    state.bin_dirs = {name: str(target.bin_dir) for name, target in found.items()}
    state.admission_plugins = profile_admission_plugins(cluster_profile)
    state.hpa_sync_seconds = hpa_sync_seconds
    port_names = ["etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    if KEDA in wanted:
        port_names += list(keda.PORTS)
    if KARPENTER in wanted:
        port_names += list(karpenter.PORTS)
    state.ports = free_ports(port_names)
    state.save()
    try:
        _start_all(state, found, progress, started, die_with_caller)
    except BaseException:
        down(directory, progress=progress)
        raise
    return state


def fake_nodes(components: list[str] | tuple[str, ...]) -> tuple[FakeNode, ...]:
    """The fake nodes `up` creates: with Karpenter only the CPU node (Karpenter launches the GPU nodes)."""
    if KARPENTER in components:
        return tuple(node for node in FAKE_NODES if node.nodepool is None)
    return FAKE_NODES


def _start_all(
    state: State, found: dict[str, Layout], progress: TextIO, started: float, die_with_caller: bool
) -> None:
    binaries = found[CORE]

    def say(message: str) -> None:
        print(f"testbed: {message} ({time.monotonic() - started:.1f} s)", file=progress, flush=True)

    wanted_nodes = fake_nodes(state.components)
    try:
        nodes = [m for m in node_manifests() if m["metadata"]["name"] in {n.name for n in wanted_nodes}]
    except NodeSpecError as exc:
        raise TestbedError(str(exc)) from exc
    pki = make_pki(state.directory / "pki")
    _write_kubeconfig(state.kubeconfig, state.server, pki, "admin")
    for name in ("kube-controller-manager", "kube-scheduler", "kwok", *state.components):
        _write_kubeconfig(state.directory / f"{name}.kubeconfig", state.server, pki, name)
    _write_kwok_config(state.directory / "kwok.yaml", binaries.binary("kwok-stages"))
    say("certificates, kubeconfigs and kwok stages written")
    niceness = _niceness()
    binary_of = {name: target.binary(name) for target in found.values() for name in _names(target)}

    def launch(*names: str) -> None:
        for name in names:
            binary = binary_of.get(_PROCESS_BINARY.get(name, name), binaries.binary(name))
            argv = _argv(name, binary, state, pki)
            log = state.directory / "logs" / f"{name}.log"
            env = _component_env(state, name)
            state.processes.append(processes.start(name, argv, log, env, niceness, die_with_parent=die_with_caller))
            state.save()
        say(f"started {', '.join(names)}")

    client = Client(state.server, str(pki.ca_cert), str(pki.client_cert("admin")), str(pki.client_key("admin")))

    def alive_and(probe: Any) -> Any:
        def check() -> bool:
            _check_alive(state)
            return bool(probe())

        return check

    launch("etcd", "kube-apiserver")
    wait_until(
        "etcd", alive_and(lambda: http_ok(f"http://{LOOPBACK}:{state.ports['etcd']}/health")), READY_TIMEOUT_SECONDS
    )
    say("etcd healthy")
    # /readyz includes the RBAC bootstrap: the controller manager and scheduler exit when they start before it
    # (they cannot read kube-system/extension-apiserver-authentication yet).
    def apiserver_ready() -> bool:
        return bool(client.request("GET", "/readyz", timeout=PROBE_TIMEOUT_SECONDS) == "ok")

    wait_until("kube-apiserver", alive_and(apiserver_ready), READY_TIMEOUT_SECONDS)
    say("kube-apiserver ready")
    launch("kube-controller-manager", "kube-scheduler", "kwok")
    crds = _crd_documents()
    if KARPENTER in state.components:
        crds += [d for d in _read_yaml(found[KARPENTER].share / karpenter.NODECLASS_CRD)
                 if d.get("kind") == "CustomResourceDefinition"]  # fmt: skip
    _install_crds(client, crds)
    if crds:
        say(f"{len(crds)} CRDs established")
    else:
        say(f"no CRDs installed: ${CRD_PATH_ENV} names no folder with CustomResourceDefinitions")
    for manifest in nodes:
        client.request("POST", "/api/v1/nodes", manifest)
    insecure = unverified_loopback_context()
    for name in ("kube-controller-manager", "kube-scheduler"):
        url = f"https://{LOOPBACK}:{state.ports[name]}/healthz"
        wait_until(name, alive_and(lambda url=url: http_ok(url, insecure)), READY_TIMEOUT_SECONDS)
    say("kube-controller-manager and kube-scheduler healthy")
    for node in wanted_nodes:
        wait_until(
            f"node {node.name} (kwok)", alive_and(lambda n=node.name: _node_ready(client, n)), READY_TIMEOUT_SECONDS
        )
    wait_until(
        "default service account",
        alive_and(lambda: _exists(client, "/api/v1/namespaces/default/serviceaccounts/default")),
        READY_TIMEOUT_SECONDS,
    )
    say(f"{len(wanted_nodes)} fake nodes Ready; control plane ready")
    if KEDA in state.components:
        _start_keda(state, found[KEDA], pki, client, launch, alive_and)
        say("KEDA ready: operator, webhooks, and the external metrics APIService Available on 127.0.0.1")
    if KARPENTER in state.components:
        _start_karpenter(state, client, launch, alive_and)
        say("Karpenter ready (kwok provider)")
    state.ready_seconds = round(time.monotonic() - started, 1)
    state.save()
    say("testbed ready")


#: Processes whose binary has another name.
_PROCESS_BINARY = {"karpenter": "karpenter-kwok"}


def _names(target: Layout) -> tuple[str, ...]:
    from gpu_policy.testbed.components import COMPONENTS

    return COMPONENTS[target.component].binary_names


def _read_yaml(path: Path) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise TestbedError(f"{path}: cannot read: {exc}") from exc


def _start_keda(state: State, target: Layout, pki: PKI, client: Client, launch: Any, alive_and: Any) -> None:
    keda.cert_dir(state.directory, pki)
    for path, body in keda.objects(state.ports, pki, target.share):
        client.request("POST", path, body)
    launch(*keda.PROCESSES)
    for name in keda.PROCESSES:
        wait_until(name, alive_and(lambda n=name: keda.healthy(state.ports, n)), READY_TIMEOUT_SECONDS)
    wait_until("KEDA external metrics APIService", alive_and(lambda: keda.apiservice_available(client)),
               READY_TIMEOUT_SECONDS)  # fmt: skip


def _start_karpenter(state: State, client: Client, launch: Any, alive_and: Any) -> None:
    karpenter.write_instance_types(karpenter.folder(state.directory) / "instance-types.json")
    collection = f"/apis/{karpenter.KWOK_GROUP}/v1alpha1/kwoknodeclasses"
    for node_class in karpenter.node_classes():
        created = client.request("POST", collection, node_class)
        name, generation = created["metadata"]["name"], int(created["metadata"].get("generation", 1))
        client.request("PATCH", f"{collection}/{name}/status", karpenter.ready_status(generation),
                       content_type="application/merge-patch+json")  # fmt: skip
    launch(*karpenter.PROCESSES)
    wait_until("karpenter", alive_and(lambda: karpenter.healthy(state.ports)), READY_TIMEOUT_SECONDS)


def _exists(client: Client, path: str) -> bool:
    try:
        client.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def down(state_dir: Path | None = None, progress: TextIO = sys.stderr) -> list[tuple[str, str]]:
    """Stop every recorded process (newest first) and remove the state folder; return (name, outcome) pairs."""
    directory = state_dir or default_state_dir()
    state = State.load(directory)
    outcomes: list[tuple[str, str]] = []
    if state is not None:
        for record in reversed(state.processes):
            outcome = processes.stop(record)
            outcomes.append((record.name, outcome))
            print(f"testbed: {record.name} (pid {record.pid}) {outcome}", file=progress, flush=True)
        still = [r for r in state.processes if processes.is_ours(r)]
        if still:
            names = ", ".join(f"{r.name} (pid {r.pid})" for r in still)
            raise TestbedError(f"could not stop {names}; the state in {directory} is kept so `down` can retry")
    if directory.exists():
        if state is None and not _looks_like_testbed(directory):
            raise TestbedError(f"{directory} has no {STATE_FILE}: not removing a folder the testbed did not make")
        shutil.rmtree(directory)
        print(f"testbed: removed {directory}", file=progress, flush=True)
    return outcomes


def _looks_like_testbed(directory: Path) -> bool:
    """A folder left by an `up` that died before writing state.json holds only what `up` makes."""
    allowed = {"pki", "logs", "etcd", "kwok-home", "kwok.yaml", "kubeconfig", STATE_FILE, "state.tmp", *OPTIONAL}
    allowed |= {f"{name}.kubeconfig" for name in (*BINARY_NAMES, *OPTIONAL)}
    return all(child.name in allowed for child in directory.iterdir())


def status(state_dir: Path | None = None) -> tuple[State | None, list[tuple[processes.ProcessRecord, bool]]]:
    directory = state_dir or default_state_dir()
    state = State.load(directory)
    if state is None:
        return None, []
    return state, [(record, processes.is_ours(record)) for record in state.processes]
