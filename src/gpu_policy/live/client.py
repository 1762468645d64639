"""A read-only, bounded view of one cluster through the official `kubernetes` client: discovery and paginated
lists as plain JSON (no typed models, so no field is lost), with every error turned into one clear line."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from gpu_policy.errors import GpuPolicyError

# The `kubernetes` package is imported where a cluster is read, not here: importing it costs a quarter of a second
# of CPU, and every static `gpu-policy check` imports this module (LiveError) without ever reading a cluster.

PAGE_SIZE = 500
MAX_PAGES = 2000  # 1,000,000 objects of one kind: far beyond any cluster; a bound, not a limit anyone meets
REQUEST_TIMEOUT = (5.0, 60.0)  # connect, read (seconds)


def _cause(exc: BaseException) -> str:
    """The innermost useful words of a connection failure: `Connection refused`, `Read timed out. (read timeout=60)`,
    a TLS verification error; urllib3 wraps them in MaxRetryError(NewConnectionError(...)) text otherwise."""
    reason: BaseException = exc
    if isinstance(reason, urllib3.exceptions.MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    text = str(reason)
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = text.rsplit("] ", 1)[-1] if "] " in text else text.rsplit(": ", 1)[-1]
    elif isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        text = "no answer: " + text.rsplit(": ", 1)[-1]
    return f"{type(reason).__name__}: {text}"


class LiveError(GpuPolicyError):
    """The cluster cannot be read: bad kubeconfig, unreachable, unauthorised, forbidden or timing out."""


@dataclass(frozen=True)
class Resource:
    """Where one kind is served: /apis/<group>/<version>/<plural> (core: /api/v1/<plural>)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/namespaces/{namespace}/{self.plural}" if namespace else f"{base}/{self.plural}"


class ClusterReader:
    def __init__(self, kubeconfig: Path | None = None, context: str | None = None) -> None:
        from kubernetes import config as k8s_config
        from kubernetes.config.config_exception import ConfigException

        try:
            self.api = k8s_config.new_client_from_config(
                config_file=str(kubeconfig) if kubeconfig else None, context=context
            )
            _, active = k8s_config.list_kube_config_contexts(config_file=str(kubeconfig) if kubeconfig else None)
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            where = kubeconfig or "$KUBECONFIG / ~/.kube/config"
            raise LiveError(f"cannot load kubeconfig {where}: {exc}") from exc
        active_name = str(active.get("name", "")) if isinstance(active, dict) else ""
        self.context = context or active_name
        self.server = str(self.api.configuration.host)
        self.api.configuration.retries = 0

    def close(self) -> None:
        self.api.close()

    def _request(
        self, method: str, path: str, query: list[tuple[str, Any]], body: str | None = None, content_type: str = ""
    ) -> tuple[int, bytes, str]:
        """(status, body, reason) of one request; the client's own auth (token, exec plugin, client cert) applies."""
        from kubernetes.client.rest import ApiException

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if hasattr(self.api, "param_serialize"):  # kubernetes >= 35: the newer OpenAPI generator's ApiClient
            method, url, headers, body, _ = self.api.param_serialize(
                method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            response = self.api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=REQUEST_TIMEOUT
            )
            return int(response.status), bytes(response.read() or b""), str(response.reason or "")
        try:  # older clients raise ApiException for an error status themselves
            raw = self.api.call_api(
                path, method, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"],
                _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        except ApiException as exc:
            return int(exc.status or 0), (exc.body or "").encode(), str(exc.reason or "")
        raw = raw[0] if isinstance(raw, tuple) else raw
        return int(raw.status), bytes(raw.data or b""), str(raw.reason or "")

    def request(
        self, method: str, path: str, query: list[tuple[str, Any]], body: str | None = None, content_type: str = ""
    ) -> tuple[int, bytes, str]:
        """One request; unreachable or TLS failures raise LiveError, HTTP errors are returned to the caller."""
        from kubernetes.client.rest import ApiException

        try:
            return self._request(method, path, query, body, content_type)
        except ApiException as exc:  # status 0: TLS failure
            raise LiveError(f"cluster {self.context} ({self.server}) unreachable: {exc.reason}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise LiveError(f"cluster {self.context} ({self.server}) unreachable: {_cause(exc)}") from exc

    def get_json(self, path: str, query: list[tuple[str, Any]] | None = None, verb: str = "get") -> Any:
        status, body, reason = self.request("GET", path, query or [])
        if status >= 400 or status == 0:
            raise LiveError(self.describe(status, body, reason, verb, path))
        try:
            return json.loads(body)
        except ValueError as exc:
            raise LiveError(f"cluster {self.context}: {path} did not answer JSON") from exc

    def describe(self, status: int, body: bytes, reason: str, verb: str, path: str, method: str = "GET") -> str:
        if status == 401:
            return f"cluster {self.context} ({self.server}): credentials rejected (401): expired or wrong token/cert"
        if status == 403:
            where = f"cluster {self.context}: forbidden"
            return f"{where}: the runner may not `{verb}` {path} (grant it in the ClusterRole)"
        with contextlib.suppress(ValueError, AttributeError):
            reason = json.loads(body or b"{}").get("message", reason)
        return f"cluster {self.context}: {method} {path}: HTTP {status}: {reason}"

    # -- discovery ---------------------------------------------------------------------------------------
    def resource_of(self, group: str, kind: str) -> Resource | None:
        """The preferred served version of (group, kind), or None when the cluster does not serve it."""
        if group:
            try:
                info = self.get_json(f"/apis/{group}")
            except LiveError as exc:
                if "HTTP 404" in str(exc):
                    return None
                raise
            versions = [info.get("preferredVersion", {}).get("version")] + [
                v.get("version") for v in info.get("versions", [])
            ]
        else:
            versions = ["v1"]
        for version in dict.fromkeys(v for v in versions if v):
            base = f"/apis/{group}/{version}" if group else f"/api/{version}"
            for resource in self.get_json(base).get("resources", []):
                if (
                    resource.get("kind") == kind
                    and "/" not in resource.get("name", "")
                    and "list" in resource.get("verbs", [])
                ):
                    return Resource(group, version, kind, resource["name"], bool(resource.get("namespaced")))
        return None

    # -- lists -------------------------------------------------------------------------------------------
    def list_objects(self, resource: Resource, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Every object of `resource` (in `namespace`, or everywhere), page by page, apiVersion and kind set."""
        token = ""
        for _ in range(MAX_PAGES):
            query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
            if token:
                query.append(("continue", token))
            page = self.get_json(resource.path(namespace), query, verb="list")
            for item in page.get("items", []):
                item["apiVersion"] = resource.api_version
                item["kind"] = resource.kind
                yield item
            token = page.get("metadata", {}).get("continue") or ""
            if not token:
                return
        raise LiveError(f"cluster {self.context}: listing {resource.plural} did not end after {MAX_PAGES} pages")
