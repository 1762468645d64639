"""A minimal, bounded HTTPS client for the testbed's own API server on 127.0.0.1 (readiness, CRDs, fake nodes).

Only loopback URLs are accepted; every call has a timeout and every wait a deadline.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

REQUEST_TIMEOUT_SECONDS = 60.0  # a large CRD create on a busy, niced API server takes seconds
PROBE_TIMEOUT_SECONDS = 5.0


class ApiError(RuntimeError):
    """The API server answered with an error status, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ApiError(f"refusing to connect to {url}: the testbed only talks to 127.0.0.0/8")


@dataclass(frozen=True)
class Client:
    server: str  # https://127.0.0.1:PORT
    ca_file: str
    cert_file: str
    key_file: str

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> Any:
        url = self.server + path
        require_loopback(url)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._context(), timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("message", detail)
            raise ApiError(f"{method} {path}: HTTP {exc.code}: {detail}", exc.code) from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise ApiError(f"{method} {path}: {exc}") from exc
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")


def wait_until(what: str, probe: Callable[[], bool], timeout: float, interval: float = 0.25) -> float:
    """Call `probe` until it returns True, at most `timeout` seconds; return the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    last_error = ""
    while True:
        try:
            if probe():
                return time.monotonic() - started
        except (ApiError, OSError, ValueError) as exc:
            last_error = str(exc)
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s{suffix}")
        time.sleep(interval)


def http_ok(url: str, verify: ssl.SSLContext | None = None) -> bool:
    """GET `url` (loopback only); True on HTTP 200."""
    require_loopback(url)
    try:
        with urllib.request.urlopen(url, context=verify, timeout=PROBE_TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def unverified_loopback_context() -> ssl.SSLContext:
    """For health probes of the controller manager and scheduler, which serve a self-signed in-memory certificate
    on 127.0.0.1: the address is ours, the answer is only a liveness signal."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
