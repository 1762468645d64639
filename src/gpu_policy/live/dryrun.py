"""manifests -> the API server's own verdict: a server-side apply of each object with `dryRun=All`.

Nothing is persisted (dryRun=All), yet the request passes the API server's decoding, defaulting, OpenAPI/CRD
structural-schema and CEL validation and every admission controller and webhook, exactly as a real apply would.
Its own field manager (`gpu-policy`) and `force=true` make the dry run independent of who applied the live object.

Authorisation note: Kubernetes authorises a dry-run request exactly like the same request without dryRun
(kubernetes.io/docs/reference/using-api/api-concepts/#dry-run-authorization), so this needs the `patch` verb on
each resource: the read-only ClusterRole (clusterrole.yaml) is not enough, and a 403 says so in one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_policy.live.client import ClusterReader, Resource
from gpu_policy.loading.document import Document

FIELD_MANAGER = "gpu-policy"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class DryRunOutcome:
    document: Document
    accepted: bool
    message: str
    """Empty when accepted; otherwise the API server's message (validation causes included), or why not tried."""
    status: int = 0
    """HTTP status of the dry run; 0 when it was not sent (kind not served by the cluster)."""
    result: dict[str, Any] | None = None
    """The object the API server would have stored (accepted dry runs): defaulted, merged with the live object."""
    path: str = ""
    """The object's URL path on the API server ('' when its kind is not served)."""


def _message(body: bytes, reason: str) -> str:
    try:
        status = json.loads(body or b"{}")
    except ValueError:
        return reason or body.decode(errors="replace")[:500]
    message = str(status.get("message") or reason)
    causes = (status.get("details") or {}).get("causes") or []
    extra = [f"{c.get('field', '')}: {c.get('message', '')}".strip(": ") for c in causes if isinstance(c, dict)]
    missing = [cause for cause in extra if cause and cause not in message]
    return "; ".join([message, *missing]) if missing else message


def _denied_verb(body: bytes) -> str:
    """The verb a 403 of a dry-run apply names: `patch`; `create` when the apply would create the object (the
    apiserver authorises that too, handlers/patch.go); `escalate`/`bind` when RBAC's escalation check refused a role
    or binding granting more than the runner holds (a dry run is checked like the real write)."""
    text = body.decode(errors="replace") if body else ""
    if "attempting to grant RBAC permissions not currently held" in text:
        return "escalate"
    match = re.search(r"cannot (\w+) resource", text)
    return match.group(1) if match else "patch"


def dry_run_documents(
    reader: ClusterReader, documents: Iterable[Document], default_namespace: str = "default"
) -> list[DryRunOutcome]:
    """Server-side-apply each document with dryRun=All; one outcome per document, in order. A namespaced object that
    names no namespace lands in `default_namespace` (as `kubectl apply -n`)."""
    resources: dict[tuple[str, str, str], Resource | None] = {}
    outcomes = []
    for doc in documents:
        version = doc.api_version.rpartition("/")[2]
        key = (doc.group, version, doc.kind)
        if key not in resources:
            found = reader.resource_of(doc.group, doc.kind)
            resources[key] = found if found is None else Resource(doc.group, version, doc.kind, found.plural,
                                                                   found.namespaced)  # fmt: skip
        resource = resources[key]
        if resource is None:
            outcomes.append(DryRunOutcome(doc, False, f"{doc.kind} ({doc.api_version}) is not served by the cluster"))
            continue
        namespace = (doc.namespace or default_namespace) if resource.namespaced else None
        path = f"{resource.path(namespace)}/{doc.name}"
        query = [("dryRun", "All"), ("fieldManager", FIELD_MANAGER), ("force", "true")]
        status, body, reason = reader.request("PATCH", path, query, json.dumps(doc.obj), APPLY_PATCH)
        if status == 403:
            message = reader.describe(status, body, reason, _denied_verb(body), path, "PATCH")
            outcomes.append(DryRunOutcome(doc, False, message, 403, path=path))
        elif status >= 400 or status == 0:
            outcomes.append(DryRunOutcome(doc, False, _message(body, reason), status, path=path))
        else:
            try:
                returned = json.loads(body or b"{}")
            except ValueError:
                returned = None
            result = returned if isinstance(returned, dict) else None
            outcomes.append(DryRunOutcome(doc, True, "", status, result, path))
    return outcomes


def dry_run(
    documents: Iterable[Document], kubeconfig: Path | None = None, context: str | None = None
) -> list[DryRunOutcome]:
    reader = ClusterReader(kubeconfig, context)
    try:
        return dry_run_documents(reader, documents)
    finally:
        reader.close()
