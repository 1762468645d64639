"""KEDA on the testbed (`up --with keda`): its operator, metrics API server ("adapter") and admission webhooks, the
binaries of the pinned release, as local processes on 127.0.0.1.

Wiring (what KEDA's chart does with Services and in-cluster config, done here on loopback):
- The operator serves its gRPC metrics service on 127.0.0.1; the adapter reaches it there (mTLS, keda-tls).
- The adapter serves `external.metrics.k8s.io` on 127.0.0.1. The APIService names Service keda/keda-metrics-apiserver,
  which is an **ExternalName Service whose name is `127.0.0.1`**: with `--enable-aggregator-routing=false` the API
  server resolves an ExternalName Service to `https://<externalName>:<APIService port>` (k8s.io/apiserver
  pkg/util/proxy ResolveCluster), so it dials 127.0.0.1 directly: no ClusterIP, no Endpoints (which reject loopback
  addresses), no pod IP. The aggregator authenticates to the adapter with the front-proxy client certificate
  (requestheader, published in kube-system/extension-apiserver-authentication, which the adapter reads).
- The admission webhooks serve on 127.0.0.1; KEDA's own ValidatingWebhookConfiguration (config/webhooks of the
  pinned release, copied at build time) is installed with each `clientConfig.service` replaced by the URL
  `https://127.0.0.1:<port><its path>`, nothing else changed (failurePolicy stays Ignore, as upstream ships it).
- Every listener binds 127.0.0.1: by flags, and by the source patches of components.py where KEDA has no flag.
- KEDA's TLS certificate rotation is off (`--enable-cert-rotation=false`): the testbed's CA signs keda-tls.
- KEDA's scalers connect wherever a trigger says. The testbed admits only ScaledObjects/ScaledJobs whose triggers
  stay on this machine (ValidatingAdmissionPolicy `gpu-policy-testbed-keda-loopback`): `prometheus` with a
  serverAddress on 127.0.0.0/8, or `cpu`/`memory`/`cron`, which connect nowhere. The reference ScaledObjects name
  an in-cluster Prometheus by its cluster DNS name: on the testbed they are rejected (point them at a Prometheus on
  127.0.0.1 first), never resolved.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.testbed.api import Client, http_ok
from gpu_policy.testbed.pki import PKI

NAMESPACE = "keda"
SERVICE = "keda-metrics-apiserver"
APISERVICE = "v1beta1.external.metrics.k8s.io"
WEBHOOK_CONFIGURATION = "validation_webhooks.yaml"
LOOPBACK = "127.0.0.1"
PROCESSES = ("keda-operator", "keda-adapter", "keda-webhooks")
LOOPBACK_POLICY = "gpu-policy-testbed-keda-loopback"
#: CEL: every trigger connects nowhere or to a Prometheus on 127.0.0.0/8 (KEDA's Prometheus scaler reads
#: metadata.serverAddress; pkg/scalers/prometheus_scaler.go).
LOOPBACK_TRIGGERS = (
    "object.spec.triggers.all(t, t.type in ['cpu', 'memory', 'cron'] || (t.type == 'prometheus' && "
    "has(t.metadata) && 'serverAddress' in t.metadata && t.metadata['serverAddress'].matches("
    "'^https?://(127\\\\.[0-9]{1,3}\\\\.[0-9]{1,3}\\\\.[0-9]{1,3})(:[0-9]+)?(/.*)?$')))"
)
PORTS = ("keda-operator-health", "keda-operator-grpc", "keda-adapter", "keda-adapter-metrics", "keda-webhooks",
         "keda-webhooks-health")  # fmt: skip


def folder(state_dir: Path) -> Path:
    return state_dir / "keda"


def cert_dir(state_dir: Path, pki: PKI) -> Path:
    """KEDA reads tls.crt, tls.key and ca.crt from one --cert-dir (pkg/metricsservice/utils/tls.go)."""
    certs = folder(state_dir) / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    certs.chmod(0o700)
    shutil.copyfile(pki.keda_cert, certs / "tls.crt")
    shutil.copyfile(pki.keda_key, certs / "tls.key")
    shutil.copyfile(pki.ca_cert, certs / "ca.crt")
    (certs / "tls.key").chmod(0o600)
    return certs


def argv(name: str, binary: Path, ports: dict[str, int], state_dir: Path, pki: PKI) -> list[str]:
    certs = folder(state_dir) / "certs"
    kubeconfig = state_dir / "keda.kubeconfig"
    logging = ["--zap-log-level=info", "--zap-encoder=console"]
    if name == "keda-operator":
        empty_ca_dir = folder(state_dir) / "custom-ca"
        empty_ca_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(binary), "--leader-elect=false", "--enable-prometheus-metrics=false",
            f"--health-probe-bind-address={LOOPBACK}:{ports['keda-operator-health']}",
            f"--metrics-service-bind-address={LOOPBACK}:{ports['keda-operator-grpc']}",
            f"--cert-dir={certs}", "--enable-cert-rotation=false", "--enable-webhook-patching=false",
            "--enable-apiservice-patching=false", f"--ca-dir={empty_ca_dir}", *logging,
        ]  # fmt: skip
    if name == "keda-adapter":
        return [
            str(binary), f"--bind-address={LOOPBACK}", f"--secure-port={ports['keda-adapter']}",
            f"--cert-dir={certs}", f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
            f"--port={ports['keda-adapter-metrics']}",
            f"--metrics-service-address={LOOPBACK}:{ports['keda-operator-grpc']}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            f"--lister-kubeconfig={kubeconfig}", "--profiling=false", *logging,
        ]  # fmt: skip
    if name == "keda-webhooks":
        return [
            str(binary), f"--port={ports['keda-webhooks']}", f"--cert-dir={certs}", "--metrics-bind-address=0",
            f"--health-probe-bind-address={LOOPBACK}:{ports['keda-webhooks-health']}", *logging,
        ]  # fmt: skip
    raise ValueError(f"unknown KEDA process {name}")


def env(state_dir: Path) -> dict[str, str]:
    """What KEDA's chart sets in its pods: the namespace it lives in, all namespaces watched."""
    return {
        "KUBECONFIG": str(state_dir / "keda.kubeconfig"),
        "WATCH_NAMESPACE": "",
        "POD_NAMESPACE": NAMESPACE,
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        "POD_NAME": "keda-testbed",
        "OPERATOR_NAME": "keda-operator",
    }


def _ca_bundle(pki: PKI) -> str:
    return base64.b64encode(pki.ca_cert.read_bytes()).decode()


def webhook_configuration(upstream: dict[str, Any], port: int, pki: PKI) -> dict[str, Any]:
    """KEDA's ValidatingWebhookConfiguration with every service reference turned into a 127.0.0.1 URL."""
    out = {k: v for k, v in upstream.items() if k != "status"}
    webhooks = []
    for hook in upstream.get("webhooks") or []:
        service = (hook.get("clientConfig") or {}).get("service") or {}
        path = str(service.get("path") or "/")
        webhooks.append({**hook, "clientConfig": {"url": f"https://{LOOPBACK}:{port}{path}",
                                                  "caBundle": _ca_bundle(pki)}})  # fmt: skip
    out["webhooks"] = webhooks
    return out


def objects(ports: dict[str, int], pki: PKI, share: Path) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) to create, in order."""
    upstream = yaml.safe_load((share / WEBHOOK_CONFIGURATION).read_text(encoding="utf-8"))
    return [
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        (f"/api/v1/namespaces/{NAMESPACE}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": LOOPBACK,
                     "ports": [{"name": "https", "port": ports["keda-adapter"], "protocol": "TCP"}]},
        }),
        ("/apis/apiregistration.k8s.io/v1/apiservices", {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
            "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                     "versionPriority": 100, "caBundle": _ca_bundle(pki),
                     "service": {"namespace": NAMESPACE, "name": SERVICE, "port": ports["keda-adapter"]}},
        }),
        ("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
         webhook_configuration(upstream, ports["keda-webhooks"], pki)),
        *loopback_policy(),
    ]  # fmt: skip


def loopback_policy() -> list[tuple[str, dict[str, Any]]]:
    """The admission policy (and its binding) that keeps KEDA's triggers on 127.0.0.0/8 (see the module docstring)."""
    path = "/apis/admissionregistration.k8s.io/v1"
    message = ("testbed network safety: KEDA may only reach 127.0.0.0/8: every trigger must be cpu, memory, cron or a "
               "prometheus trigger whose metadata.serverAddress is http(s)://127.x.y.z[:port] (a Prometheus on this "
               "machine), never a cluster DNS name or another address")
    return [
        (f"{path}/validatingadmissionpolicies", {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": LOOPBACK_POLICY},
            "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": [{
                "apiGroups": ["keda.sh"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                "resources": ["scaledobjects", "scaledjobs"]}]},
                "validations": [{"expression": LOOPBACK_TRIGGERS, "message": message}]},
        }),
        (f"{path}/validatingadmissionpolicybindings", {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": LOOPBACK_POLICY},
            "spec": {"policyName": LOOPBACK_POLICY, "validationActions": ["Deny"]},
        }),
    ]  # fmt: skip


def health_urls(ports: dict[str, int]) -> dict[str, str]:
    return {
        "keda-operator": f"http://{LOOPBACK}:{ports['keda-operator-health']}/readyz",
        "keda-webhooks": f"http://{LOOPBACK}:{ports['keda-webhooks-health']}/readyz",
    }


def healthy(ports: dict[str, int], name: str) -> bool:
    url = health_urls(ports).get(name)
    return url is None or http_ok(url)


def apiservice_available(client: Client) -> bool:
    """The aggregator reached the adapter on 127.0.0.1 (its Available condition, set by the availability check)."""
    found = client.request("GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{APISERVICE}")
    conditions = (found.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)
