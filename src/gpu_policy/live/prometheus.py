"""A small client of the Prometheus HTTP API (v1): instant queries, targets, rules and alerts.

Every request has a bounded timeout, never goes through a proxy from the environment, and fails with one clear
`PrometheusError` line (unreachable, timeout, HTTP status, or the API's own `errorType`/`error`). Response shapes
per prometheus/prometheus web/api/v1/api.go (stable across 2.x and 3.x for these endpoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from gpu_policy.errors import GpuPolicyError

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 15.0


class PrometheusError(GpuPolicyError):
    """Prometheus cannot be reached or refused a request."""


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Target:
    labels: Mapping[str, str]
    discovered: Mapping[str, str]
    scrape_pool: str
    scrape_url: str
    health: str
    """`up`, `down` or `unknown` (not scraped yet)."""
    last_error: str
    last_scrape: str = ""
    """RFC 3339 time of the last scrape (`0001-01-01T00:00:00Z` before the first)."""


@dataclass(frozen=True)
class RuleState:
    name: str
    kind: str
    """`alerting` or `recording`."""
    health: str
    """`ok`, `err` or `unknown` (not evaluated yet)."""
    last_error: str
    query: str


@dataclass(frozen=True)
class RuleGroup:
    name: str
    file: str
    rules: tuple[RuleState, ...]


@dataclass(frozen=True)
class Alert:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: str
    """`pending` or `firing`."""
    active_at: str
    value: str


@dataclass
class PrometheusClient:
    url: str
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.session.trust_env = False

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        where = f"{self.url}{path}"
        try:
            response = self.session.get(where, params=params, timeout=self.timeout)
        except requests.Timeout as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} did not answer {path} within {self.timeout[1]:g} s"
            ) from exc
        except requests.RequestException as exc:
            raise PrometheusError(f"Prometheus at {self.url} is unreachable: {type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping) and body.get("status") == "error":
            raise PrometheusError(
                f"Prometheus at {self.url} refused {path}: {body.get('errorType', 'error')}: {body.get('error', '')}"
            )
        if response.status_code != 200 or not isinstance(body, Mapping) or body.get("status") != "success":
            raise PrometheusError(
                f"Prometheus at {self.url} answered {path} with HTTP {response.status_code}: {response.text[:200]!r}"
            )
        return body.get("data")

    def ready(self) -> bool:
        try:
            return self.session.get(f"{self.url}/-/ready", timeout=self.timeout).status_code == 200
        except requests.RequestException:
            return False

    def query(self, expr: str, time: float | None = None) -> list[Series]:
        """An instant query: the vector's series, or one label-less series for a scalar."""
        params = {"query": expr}
        if time is not None:
            params["time"] = f"{time:.3f}"
        data = self._get("/api/v1/query", params)
        kind = data.get("resultType") if isinstance(data, Mapping) else None
        result = data.get("result") if isinstance(data, Mapping) else None
        if kind == "vector" and isinstance(result, list):
            return [Series(dict(s.get("metric") or {}), float(s["value"][1])) for s in result]
        if kind == "scalar" and isinstance(result, list):
            return [Series({}, float(result[1]))]
        raise PrometheusError(f"Prometheus at {self.url}: query {expr!r} returned a {kind}, not an instant vector")

    def targets(self) -> list[Target]:
        data = self._get("/api/v1/targets", {"state": "active"})
        return [
            Target(
                labels=dict(t.get("labels") or {}),
                discovered=dict(t.get("discoveredLabels") or {}),
                scrape_pool=str(t.get("scrapePool", "")),
                scrape_url=str(t.get("scrapeUrl", "")),
                health=str(t.get("health", "unknown")),
                last_error=str(t.get("lastError", "")),
                last_scrape=str(t.get("lastScrape", "")),
            )
            for t in (data or {}).get("activeTargets") or []
        ]

    def rule_groups(self) -> list[RuleGroup]:
        data = self._get("/api/v1/rules")
        return [
            RuleGroup(
                name=str(g.get("name", "")),
                file=str(g.get("file", "")),
                rules=tuple(
                    RuleState(
                        name=str(r.get("name", "")),
                        kind=str(r.get("type", "")),
                        health=str(r.get("health", "unknown")),
                        last_error=str(r.get("lastError", "")),
                        query=str(r.get("query", "")),
                    )
                    for r in g.get("rules") or []
                ),
            )
            for g in (data or {}).get("groups") or []
        ]

    def alerts(self) -> list[Alert]:
        data = self._get("/api/v1/alerts")
        return [
            Alert(
                labels=dict(a.get("labels") or {}),
                annotations=dict(a.get("annotations") or {}),
                state=str(a.get("state", "")),
                active_at=str(a.get("activeAt", "")),
                value=str(a.get("value", "")),
            )
            for a in (data or {}).get("alerts") or []
        ]
