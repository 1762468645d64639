"""A drill's own copy of one of the set's NodePools on the testbed's Karpenter (`up --with karpenter`).

The copy is the set's NodePool with, as testbed/karpenter.py `drill_nodepool` documents, its nodeClassRef pointing
at the KWOKNodeClass of the same name; the drill changes nothing else except, where it says so, the schedule of the
disruption budgets (budget_shift.py). It is named `<name>-<run id>` and labelled with the drill and the run, so two
runs, the testbed's other pools and a NodePool of the same name never meet: the drill pins its pods to the copy with
a nodeSelector on `karpenter.sh/nodepool` (a label Karpenter puts on every node it launches for a pool,
pkg/apis/v1/labels.go NodePoolLabelKey), added to the drill's copy of the pod template.

Cleanup (registered at creation): the NodeClaims of the copy are deleted and waited for (Karpenter's termination
finalizer drains and removes their nodes; kwok's nodes go at once), then the NodePool.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from gpu_policy.drills.base import DRILL_LABEL, RUN_LABEL, DrillContext
from gpu_policy.loading.document import Document
from gpu_policy.testbed import karpenter

GROUP, VERSION = "karpenter.sh", "v1"
POOL_LABEL = "karpenter.sh/nodepool"
CLEANUP_SECONDS = 120.0
TIMEOUT = (5, 30)


def custom_api(api: Any) -> Any:
    from kubernetes import client as k8s

    return k8s.CustomObjectsApi(api)


def pool_body(ctx: DrillContext, doc: Document) -> dict[str, Any]:
    """The set's NodePool as the drill creates it (see the module docstring)."""
    body = karpenter.drill_nodepool(copy.deepcopy(doc.obj))
    labels = dict(doc.labels)
    labels.update({DRILL_LABEL: ctx.spec.name, RUN_LABEL: ctx.run_id})
    body["metadata"] = {"name": f"{doc.name}-{ctx.run_id}"[:63], "labels": labels}
    body.pop("status", None)
    return body


def create_pool(ctx: DrillContext, api: Any, body: dict[str, Any]) -> str:
    """Create the copy; its removal (claims first) is registered for cleanup. Returns its name."""
    name = str(body["metadata"]["name"])
    custom = custom_api(api)
    custom.create_cluster_custom_object(GROUP, VERSION, "nodepools", body, _request_timeout=TIMEOUT)

    def remove() -> None:
        from kubernetes.client.rest import ApiException

        for claim in claims(api, name):
            try:
                custom.delete_cluster_custom_object(GROUP, VERSION, "nodeclaims", claim["metadata"]["name"],
                                                    _request_timeout=TIMEOUT)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        end = time.monotonic() + CLEANUP_SECONDS
        while claims(api, name) and time.monotonic() < end:
            time.sleep(1)
        left = [c["metadata"]["name"] for c in claims(api, name)]
        try:
            custom.delete_cluster_custom_object(GROUP, VERSION, "nodepools", name, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                raise
        if left:
            raise TimeoutError(f"NodeClaims {', '.join(left)} of NodePool {name} still there after "
                               f"{CLEANUP_SECONDS:.0f} s (Karpenter's termination finalizer)")

    ctx.on_cleanup(f"NodePool {name} and its NodeClaims", remove)
    return name


def patch_pool(api: Any, name: str, patch: dict[str, Any]) -> None:
    """A JSON merge patch of the copy (lists, such as the budgets, are replaced whole)."""
    # a dict body goes as application/merge-patch+json (kubernetes client: custom objects' PATCH)
    custom_api(api).patch_cluster_custom_object(GROUP, VERSION, "nodepools", name, patch, _request_timeout=TIMEOUT)


def read_pool(api: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom_api(api).get_cluster_custom_object(GROUP, VERSION, "nodepools", name,
                                                                      _request_timeout=TIMEOUT)
    return found


def claims(api: Any, pool: str) -> list[dict[str, Any]]:
    """The pool's NodeClaims (Karpenter labels each with its pool)."""
    listed = custom_api(api).list_cluster_custom_object(GROUP, VERSION, "nodeclaims",
                                                        label_selector=f"{POOL_LABEL}={pool}",
                                                        _request_timeout=TIMEOUT)
    items: list[dict[str, Any]] = listed.get("items", [])
    return items


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def is_true(obj: dict[str, Any], kind: str) -> bool:
    found = condition(obj, kind)
    return bool(found and found.get("status") == "True")


def pin_to_pool(template: dict[str, Any], pool: str) -> None:
    """Make the pod template schedulable only on nodes of `pool` (nodeSelector, ANDed with its own affinity)."""
    spec = template.setdefault("spec", {})
    selector = dict(spec.get("nodeSelector") or {})
    selector[POOL_LABEL] = pool
    spec["nodeSelector"] = selector
