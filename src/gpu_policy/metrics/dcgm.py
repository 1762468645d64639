"""The DCGM exporter: how to recognise its DaemonSet, which collector file it loads, which fields that
file enables.

Collector files are upstream's `etc/*.csv` (NVIDIA/dcgm-exporter), kept OUTSIDE the repository in one
folder per
release tag `<DCGM version>-<exporter version>` (e.g. `4.5.3-4.8.2/default-counters.csv`). The folder
holding those
release folders comes from `GPU_POLICY_DCGM_CSV_PATH`, else `<repo>/../shared/dcgm-exporter` when it exists.

Upstream facts (NVIDIA/dcgm-exporter 4.8.2):
- `pkg/cmd/app.go`: flag `-f` / `--collectors`, env `DCGM_EXPORTER_COLLECTORS`, default
  `/etc/dcgm-exporter/default-counters.csv`; the flag wins over the env var (urfave/cli precedence).
- CSV format `DCGM field, Prometheus metric type, help`; `#` starts a comment, so a commented-out row is
a field
  that is turned off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.graph.workloads import PodTemplate, pod_template_of
from gpu_policy.loading.document import Document, FieldPath

CSV_PATH_ENV = "GPU_POLICY_DCGM_CSV_PATH"
DEFAULT_COLLECTORS = "/etc/dcgm-exporter/default-counters.csv"
COLLECTORS_ENV = "DCGM_EXPORTER_COLLECTORS"
KUBERNETES_ENV = "DCGM_EXPORTER_KUBERNETES"
IMAGE_NAME = "dcgm-exporter"
_SOURCE_ROOT = Path(__file__).resolve().parents[3]


def csv_root() -> Path | None:
    """The folder of per-release collector folders, or None when it cannot be found."""
    raw = os.environ.get(CSV_PATH_ENV, "").strip()
    if raw:
        return Path(raw)
    shared = _SOURCE_ROOT.parent / "shared" / "dcgm-exporter"
    return shared if shared.is_dir() else None


def release_folder(policy_cluster: Mapping[str, Any]) -> str:
    """`<dcgmVersion>-<version>` from policies/cluster.yaml: upstream's tag naming."""
    exporter = policy_cluster.get("dcgmExporter") or {}
    return f"{exporter.get('dcgmVersion', '')}-{exporter.get('version', '')}"


def parse_collectors_csv(text: str) -> frozenset[str]:
    """DCGM field names turned on by a collector file (first column of each non-comment row)."""
    fields: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split(",", 1)[0].strip()
        if name:
            fields.add(name)
    return frozenset(fields)


@cache
def _read_collectors(path: str) -> frozenset[str] | None:
    try:
        return parse_collectors_csv(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class Collectors:
    """The collector file one exporter container loads, and what could be learnt about it."""

    container_path: FieldPath
    file: str
    """Path inside the container, as configured."""
    configured_at: FieldPath
    """Field that sets it (the env var or the arg); the container when the default applies."""
    fields: frozenset[str] | None
    """Enabled DCGM fields; None when the file could not be read."""
    source: str
    """Where the fields were read from (`<root>/<release>/<basename>` or `ConfigMap ns/name key`), or why
    not."""


def is_exporter_container(container: Mapping[str, Any]) -> bool:
    image = str(container.get("image") or "")
    repository = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return repository.rsplit("/", 1)[-1].split("@", 1)[0] == IMAGE_NAME


def exporter_containers(template: PodTemplate) -> list[tuple[FieldPath, dict[str, Any]]]:
    return [(path, c) for path, c in template.containers() if is_exporter_container(c)]


def find_exporters(graph: ResourceGraph) -> list[Document]:
    """DaemonSets running the dcgm-exporter image (or labelled app[.kubernetes.io/name]=dcgm-exporter)."""
    found: list[Document] = []
    for doc in graph.of_kind("DaemonSet"):
        template = pod_template_of(doc)
        if template is None:
            continue
        labels = {**doc.labels, **template.labels}
        named = IMAGE_NAME in (str(labels.get("app", "")), str(labels.get("app.kubernetes.io/name", "")))
        if exporter_containers(template) or named:
            found.append(doc)
    return found


def _env_value(container: Mapping[str, Any], name: str) -> tuple[int, Any] | None:
    for i, env in enumerate(container.get("env") or []):
        if isinstance(env, Mapping) and env.get("name") == name:
            return i, env
    return None


def kubernetes_mode(container: Mapping[str, Any]) -> bool:
    """DCGM_EXPORTER_KUBERNETES=true: series carry the pod/namespace/container of the workload using the
    GPU."""
    found = _env_value(container, KUBERNETES_ENV)
    if found is None:
        # app.go: `--kubernetes` flag, env DCGM_EXPORTER_KUBERNETES, default false.
        args = [str(a) for a in (container.get("args") or []) + (container.get("command") or [])]
        return any(a in ("-k", "--kubernetes", "--kubernetes=true", "-k=true") for a in args)
    return str(found[1].get("value", "")).strip().lower() in ("true", "1", "t", "yes")


_FLAG = re.compile(r"^(?:--?f|--?collectors)(?:=(.*))?$")


def configured_collectors(container_path: FieldPath, container: Mapping[str, Any]) -> tuple[str, FieldPath]:
    """The collector path and the field that sets it: `-f`/`--collectors` arg, else the env var, else
    default."""
    for field_name in ("args", "command"):
        values = container.get(field_name) or []
        for i, raw in enumerate(values):
            match = _FLAG.match(str(raw))
            if match is None:
                continue
            if match.group(1) is not None:
                return match.group(1), (*container_path, field_name, i)
            if i + 1 < len(values):
                return str(values[i + 1]), (*container_path, field_name, i + 1)
    found = _env_value(container, COLLECTORS_ENV)
    if found is not None and found[1].get("value") is not None:
        return str(found[1]["value"]), (*container_path, "env", found[0], "value")
    return DEFAULT_COLLECTORS, container_path


def _configmap_csv(
    graph: ResourceGraph, template: PodTemplate, container: Mapping[str, Any], file: str, namespace: str
) -> tuple[frozenset[str] | None, str] | None:
    """The collector file when a ConfigMap of the set is mounted at its path (custom collectors)."""
    target = PurePosixPath(file)
    volumes = {v.get("name"): v for v in template.spec.get("volumes") or [] if isinstance(v, Mapping)}
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, Mapping):
            continue
        mount_path = PurePosixPath(str(mount.get("mountPath", "")))
        volume = volumes.get(mount.get("name"))
        if volume is None or not isinstance(volume.get("configMap"), Mapping):
            continue
        sub_path = mount.get("subPath")
        if sub_path:
            if mount_path != target:
                continue
            key_path = str(sub_path)
        elif mount_path in target.parents:
            key_path = str(target.relative_to(mount_path))
        else:
            continue
        source = volume["configMap"]
        items = {
            str(i.get("path")): str(i.get("key")) for i in source.get("items") or [] if isinstance(i, Mapping)
        }
        key = items.get(key_path, key_path if not items else None)
        name = str(source.get("name", ""))
        configmap = graph.get("ConfigMap", name, namespace)
        where = f"ConfigMap {namespace}/{name} key {key}"
        if configmap is None or key is None:
            return None, f"{where}: not in the manifest set"
        data = configmap.obj.get("data") or {}
        if key not in data:
            return None, f"{where}: no such key"
        return parse_collectors_csv(str(data[key])), where
    return None


def collectors_of(graph: ResourceGraph, doc: Document, cluster_policy: Mapping[str, Any]) -> list[Collectors]:
    """One entry per exporter container of a DaemonSet."""
    template = pod_template_of(doc)
    if template is None:
        return []
    out: list[Collectors] = []
    for path, container in exporter_containers(template):
        file, configured_at = configured_collectors(path, container)
        mounted = _configmap_csv(graph, template, container, file, doc.namespace or "default")
        if mounted is not None:
            fields, source = mounted
            out.append(Collectors(path, file, configured_at, fields, source))
            continue
        root = csv_root()
        release = release_folder(cluster_policy)
        basename = PurePosixPath(file).name
        if root is None:
            out.append(
                Collectors(
                    path,
                    file,
                    configured_at,
                    None,
                    f"no collector data: set {CSV_PATH_ENV} to the folder holding <release>/*.csv",
                )
            )
            continue
        candidate = root / release / basename
        fields = _read_collectors(str(candidate)) if candidate.is_file() else None
        source = str(candidate) if fields is not None else f"{candidate} does not exist"
        out.append(Collectors(path, file, configured_at, fields, source))
    return out


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None when it has none; a digest-only reference has none)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None
