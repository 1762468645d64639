"""`gpu-policy schemas fetch`: download the pinned CRDs listed in policies/cluster.yaml `crdSources`, and the DCGM
exporter's collector CSVs of the pinned exporter release, into the cache.

Each file is written atomically (temporary file in the same folder, then `os.replace`), so the cache never
holds a half-written CRD; a download that fails (HTTP error, unreachable host, not a CRD) raises
`SchemaSourceError` naming the URL, and leaves the files already in the cache untouched.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from gpu_policy.errors import SchemaSourceError
from gpu_policy.loading.yaml_reader import YamlError, read_documents

TIMEOUT_SECONDS = 30


def source_urls(
    sources: Sequence[Mapping[str, Any]], base_url_override: str | None = None
) -> list[tuple[str, str]]:
    """(url, relative cache path) for every URL of every source; {version} is substituted.

    With `base_url_override`, each URL keeps only its file name and is fetched from that base instead
    (`<base>/<source name>/<file name>`), e.g. a mirror or a local test server.
    """
    out: list[tuple[str, str]] = []
    for source in sources:
        name = str(source.get("name") or "crds")
        version = str(source.get("version") or "")
        for template in source.get("urls") or []:
            url = str(template).replace("{version}", version)
            file_name = Path(urlsplit(url).path).name
            if not file_name:
                raise SchemaSourceError(f"CRD source URL {url!r} does not name a file")
            if base_url_override:
                url = f"{base_url_override.rstrip('/')}/{name}/{file_name}"
            out.append((url, f"{name}/{version or 'unversioned'}/{file_name}"))
    return out


def _check_is_crd(url: str, text: str) -> None:
    found = False
    for item in read_documents(text):
        if isinstance(item, YamlError):
            raise SchemaSourceError(
                f"{url}: downloaded file is not valid YAML (line {item.line}: {item.message})"
            )
        doc = item.value
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            found = True
    if not found:
        raise SchemaSourceError(f"{url}: downloaded file holds no CustomResourceDefinition")


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


DCGM_CSV_FILES = ("default-counters.csv", "dcp-metrics-included.csv", "1.x-compatibility-metrics.csv")
DCGM_CSV_URL = "https://raw.githubusercontent.com/NVIDIA/dcgm-exporter/{tag}/etc/{file}"
"""The exporter's collector lists at the release tag `<dcgmVersion>-<version>` (NVIDIA/dcgm-exporter, Apache-2.0)."""


_CSV_ROW = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*,\s*(gauge|counter|label|histogram|summary)\s*(,|$)")


def _check_is_collector_csv(url: str, text: str) -> None:
    """Rows are `field, prometheus type, help`; `#` starts a comment (dcgm-exporter etc/*.csv)."""
    rows = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not rows or not all(_CSV_ROW.match(line) for line in rows):
        raise SchemaSourceError(f"{url}: downloaded file is not a DCGM exporter collector CSV")


def fetch_dcgm_csvs(tag: str, cache_root: Path, base_url_override: str | None = None) -> list[Path]:
    """Download the exporter's collector CSVs of release `tag` into `cache_root/<tag>/`; all or nothing."""
    downloaded: list[tuple[Path, bytes]] = []
    with requests.Session() as session:
        for file in DCGM_CSV_FILES:
            url = (f"{base_url_override.rstrip('/')}/dcgm-exporter/{file}" if base_url_override
                   else DCGM_CSV_URL.format(tag=tag, file=file))
            data = _download(session, url)
            try:
                _check_is_collector_csv(url, data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise SchemaSourceError(f"{url}: downloaded file is not UTF-8 text") from exc
            downloaded.append((cache_root / tag / file, data))
    written: list[Path] = []
    for target, data in downloaded:
        _write_atomically(target, data)
        written.append(target)
    return written


def _download(session: requests.Session, url: str) -> bytes:
    try:
        response = session.get(url, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise SchemaSourceError(f"cannot download {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise SchemaSourceError(f"cannot download {url}: HTTP {response.status_code} {response.reason}")
    return response.content


def fetch_crds(
    sources: Sequence[Mapping[str, Any]], cache_dir: Path, base_url_override: str | None = None
) -> list[Path]:
    """Download every CRD of `sources` into `cache_dir`; returns the files written.

    Everything is downloaded and checked before anything is written, so a failure leaves the cache as it was.
    """
    planned = source_urls(sources, base_url_override)
    downloaded: list[tuple[Path, bytes]] = []
    with requests.Session() as session:
        for url, relative in planned:
            content = _download(session, url)
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SchemaSourceError(f"{url}: downloaded file is not UTF-8 text") from exc
            _check_is_crd(url, text)
            downloaded.append((cache_dir / relative, content))
    written: list[Path] = []
    for target, data in downloaded:
        _write_atomically(target, data)
        written.append(target)
    return written
