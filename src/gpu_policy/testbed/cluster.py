"""`testbed up|down|status`: run etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as local
processes on 127.0.0.1, from the binaries `testbed build` put in the cache.

Network safety: every component binds 127.0.0.1 on a free port; kwok gives nodes and pods 127.x addresses; the
service ClusterIP range is a 127.x range as well, and the API server routes to aggregated APIs and webhooks through
endpoints (`--enable-aggregator-routing`), never through a ClusterIP; the master endpoint reconciler is off. No
cluster DNS runs and nothing resolves cluster names.

Everything a testbed creates is under its state folder: state.json (pids, ports, binaries), pki/, etcd data,
kubeconfigs and logs. `down` stops the recorded processes (pid + start time + executable checked) and removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
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
from gpu_policy.testbed import processes
from gpu_policy.testbed.api import (
    PROBE_TIMEOUT_SECONDS,
    ApiError,
    Client,
    http_ok,
    unverified_loopback_context,
    wait_until,
)
from gpu_policy.testbed.build import BINARY_NAMES, Layout, layout
from gpu_policy.testbed.nodes import FAKE_NODES, KWOK_ANNOTATION, NodeSpecError, node_manifests
from gpu_policy.testbed.pki import PKI, make_pki

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
        )


def free_ports(names: list[str]) -> dict[str, int]:
    """Distinct free TCP ports on 127.0.0.1 (the kernel's choice; held open together so they differ)."""
    sockets = []
    try:
        for _ in names:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return {name: sock.getsockname()[1] for name, sock in zip(names, sockets, strict=True)}
    finally:
        for sock in sockets:
            sock.close()


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
            "--enable-aggregator-routing=true", "--allow-privileged=true", "--profiling=false",
            f"--cert-dir={d / 'pki'}", "--v=1",
            *([f"--enable-admission-plugins={','.join(state.admission_plugins)}"] if state.admission_plugins else []),
        ]  # fmt: skip
    if name == "kwok":
        return [
            str(binary), f"--kubeconfig={kubeconfig}", f"--config={d / 'kwok.yaml'}",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
            f"--cidr={POD_CIDR}", f"--node-ip={NODE_IP}", "--node-lease-duration-seconds=40",
        ]  # fmt: skip
    common = [
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={LOOPBACK}", f"--secure-port={ports[name]}",
        "--leader-elect=false", "--profiling=false", "--v=1",
    ]  # fmt: skip
    if name == "kube-controller-manager":
        return [
            str(binary), *common, "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}", f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}", f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
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
) -> State:
    """Start a testbed; on any failure everything started so far is stopped and its folder removed.

    `die_with_caller=True` (test fixtures) makes the kernel stop the components when the calling process ends."""
    directory = state_dir or default_state_dir()
    existing = State.load(directory)
    if existing is not None and any(processes.is_ours(r) for r in existing.processes):
        raise TestbedError(f"a testbed already runs from {directory} (API server {existing.server}); `down` it first")
    if existing is not None or (directory.exists() and any(directory.iterdir())):
        raise TestbedError(f"{directory} holds a stopped testbed's files; run `gpu-policy testbed down` to remove them")
    binaries = binaries or layout()
    missing = binaries.missing()
    if missing:
        raise TestbedError(
            f"testbed binaries not built for the current pins ({', '.join(missing)} missing in {binaries.bin_dir}); "
            "run `gpu-policy testbed build` first (the first build takes a while)"
        )
    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    state = State(directory=directory, key=binaries.key, bin_dir=str(binaries.bin_dir), started_at=time.time())
    state.admission_plugins = profile_admission_plugins(cluster_profile)
    state.ports = free_ports(["etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler"])
    state.save()
    try:
        _start_all(state, binaries, progress, started, die_with_caller)
    except BaseException:
        down(directory, progress=progress)
        raise
    return state


def _start_all(state: State, binaries: Layout, progress: TextIO, started: float, die_with_caller: bool) -> None:
    def say(message: str) -> None:
        print(f"testbed: {message} ({time.monotonic() - started:.1f} s)", file=progress, flush=True)

    try:
        nodes = node_manifests()
    except NodeSpecError as exc:
        raise TestbedError(str(exc)) from exc
    pki = make_pki(state.directory / "pki")
    _write_kubeconfig(state.kubeconfig, state.server, pki, "admin")
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        _write_kubeconfig(state.directory / f"{name}.kubeconfig", state.server, pki, name)
    _write_kwok_config(state.directory / "kwok.yaml", binaries.binary("kwok-stages"))
    say("certificates, kubeconfigs and kwok stages written")
    niceness = _niceness()

    def launch(*names: str) -> None:
        for name in names:
            argv = _argv(name, binaries.binary(name), state, pki)
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
    for node in FAKE_NODES:
        wait_until(
            f"node {node.name} (kwok)", alive_and(lambda n=node.name: _node_ready(client, n)), READY_TIMEOUT_SECONDS
        )
    wait_until(
        "default service account",
        alive_and(lambda: _exists(client, "/api/v1/namespaces/default/serviceaccounts/default")),
        READY_TIMEOUT_SECONDS,
    )
    state.ready_seconds = round(time.monotonic() - started, 1)
    state.save()
    say(f"{len(FAKE_NODES)} fake nodes Ready; testbed ready")


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
    allowed = {"pki", "logs", "etcd", "kwok-home", "kwok.yaml", "kubeconfig", STATE_FILE, "state.tmp"}
    allowed |= {f"{name}.kubeconfig" for name in BINARY_NAMES}
    return all(child.name in allowed for child in directory.iterdir())


def status(state_dir: Path | None = None) -> tuple[State | None, list[tuple[processes.ProcessRecord, bool]]]:
    directory = state_dir or default_state_dir()
    state = State.load(directory)
    if state is None:
        return None, []
    return state, [(record, processes.is_ours(record)) for record in state.processes]
