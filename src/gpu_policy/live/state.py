"""What a rule sees of a running cluster: `ctx.live`, a `LiveState` (None without `--live`).

Runtime rules (tag `live`) read it; without `--live` they judge nothing and their scenarios are skipped with
`NEEDS_LIVE` as the reason. It holds the cluster's objects as the live loader read them, status included (every
judged kind plus the runtime kinds: Nodes, Pods, NodeClaims, controller-generated HPAs), how to reach the cluster
again (read-only), and where Prometheus answers (`--prometheus URL`, or None).

    live = ctx.live
    if live is None:
        return  # not evaluated: the scenario step skips with NEEDS_LIVE
    for node in live.objects("Node"):
        ...
        yield Violation(None, "...", resource=live.ref(node), file=live.source)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpu_policy.live.client import ClusterReader

NEEDS_LIVE = "needs --live"
"""The skip reason of a runtime scenario in a run without a cluster."""
NEEDS_MANIFESTS = "needs manifests beside --live (gpu-policy check --live PATH)"
"""The skip reason of a dry-run or drift scenario when only the cluster is read."""


NEEDS_PROMETHEUS = "needs --prometheus URL beside --live"
"""The skip reason of a live Prometheus scenario when no Prometheus was given."""
NEEDS_SOURCE = "judges manifests, not a cluster's objects (gpu-policy check --live PATH)"
"""The skip reason of a `source-only` rule (about what Git applies, e.g. spec.replicas left unset) when the cluster's
objects are the set: the API server defaults such fields, so a live object cannot show them."""


def unmet_requirement(tags: tuple[str, ...] | list[str], live: LiveState | None) -> str | None:
    """Why a rule with these tags cannot judge this run: `live` rules need a cluster, `live-manifests` rules need
    manifests to compare with it, `source-only` rules need manifests to judge. None when it can."""
    if "source-only" in tags and live is not None and not live.manifests:
        return NEEDS_SOURCE
    if "live" not in tags and "live-manifests" not in tags:
        return None
    if live is None:
        return NEEDS_LIVE
    if "live-manifests" in tags and not live.manifests:
        return NEEDS_MANIFESTS
    if "live-prometheus" in tags and not live.prometheus_url:
        return NEEDS_PROMETHEUS
    return None


@dataclass
class LiveState:
    context: str
    """The kubeconfig context the objects were read from (findings name `cluster <context>: Kind/ns/name`)."""
    server: str = ""
    """The API server URL of that context."""
    kubeconfig: Path | None = None
    """The kubeconfig given (None: $KUBECONFIG or ~/.kube/config), to reach the cluster again through `reader()`."""
    items: list[dict[str, Any]] = field(default_factory=list)
    """Every object read, as the API server returned it (status kept, managedFields dropped), apiVersion and
    kind set: the judged kinds and the runtime kinds, controller-generated objects included."""
    prometheus_url: str | None = None
    """`--prometheus URL`: where live Prometheus checks query; None when not given."""
    served: dict[str, str] = field(default_factory=dict)
    """`Kind` -> `group/version` it was read at; a kind absent here is not served by the cluster."""
    namespaces: tuple[str, ...] = ()
    """`--live-namespace` values (empty: every namespace)."""
    manifests: bool = False
    """Manifests were given beside `--live`: the static rules judge them, the drift and dry-run rules compare them
    with the cluster. False: the static rules judge the cluster's objects themselves."""
    default_namespace: str = "default"
    """Where a manifest object that names no namespace lands (`--namespace`), for the dry run and the lookup."""

    @property
    def source(self) -> str:
        return f"cluster {self.context}"

    def serves(self, kind: str) -> bool:
        return kind in self.served

    def _index(self) -> tuple[dict[str, list[dict[str, Any]]], dict[tuple[str, str, str], dict[str, Any]]]:
        """Objects by kind and by (kind, namespace, name), built once (rebuilt if `items` grew): rules look objects
        up per node or per pod, which must not scan the whole cluster each time."""
        cached = self.__dict__.get("_indexed")
        if cached is not None and cached[0] == len(self.items):
            return cached[1], cached[2]
        by_kind: dict[str, list[dict[str, Any]]] = {}
        by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
        for obj in self.items:
            kind = str(obj.get("kind", ""))
            meta = _meta(obj)
            by_kind.setdefault(kind, []).append(obj)
            by_key.setdefault((kind, str(meta.get("namespace", "")), str(meta.get("name", ""))), obj)
        self.__dict__["_indexed"] = (len(self.items), by_kind, by_key)
        return by_kind, by_key

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        found = self._index()[0].get(kind, [])
        if namespace is None:
            return list(found)
        return [o for o in found if _meta(o).get("namespace", "") == namespace]

    def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self._index()[1].get((kind, namespace, name))

    @staticmethod
    def ref(obj: dict[str, Any]) -> str:
        """`Kind/namespace/name` (`Kind/name` for a cluster-scoped object)."""
        meta = _meta(obj)
        namespace = meta.get("namespace")
        name = meta.get("name", "?")
        return f"{obj.get('kind', '?')}/{namespace}/{name}" if namespace else f"{obj.get('kind', '?')}/{name}"

    def where(self, obj: dict[str, Any]) -> str:
        """`cluster <context>: Kind/ns/name`, how a finding names a live object."""
        return f"{self.source}: {self.ref(obj)}"

    @contextmanager
    def reader(self) -> Iterator[ClusterReader]:
        """A read-only client of the same cluster and context (closed on exit); errors are `LiveError` lines."""
        from gpu_policy.live.client import ClusterReader

        client = ClusterReader(self.kubeconfig, self.context or None)
        try:
            yield client
        finally:
            client.close()


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}
