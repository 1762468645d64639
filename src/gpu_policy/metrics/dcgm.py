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
- `pkg/cmd/app.go`: `-m` / `--configmap-data` / `DCGM_EXPORTER_CONFIGMAP_DATA` (`<namespace>:<name>`, default
  "none") makes `internal/pkg/counters/counter_config.go` GetCounterSet read the ConfigMap's `metrics` key through
  the API instead of the collectors file (and exit when it cannot).
- `pkg/cmd/app.go`: bool flags `-k`/`--kubernetes` (DCGM_EXPORTER_KUBERNETES) and `-o`/`--use-old-namespace`
  (DCGM_EXPORTER_USE_OLD_NAMESPACE), default false, parsed by urfave/cli v2 with Go's strconv.ParseBool
  (urfave/cli flag_bool.go); `--pod-resources-kubelet-socket` (DCGM_POD_RESOURCES_KUBELET_SOCKET), default
  /var/lib/kubelet/pod-resources/kubelet.sock.
- CSV format `DCGM field, Prometheus metric type, help`; `#` starts a comment, so a commented-out row is
a field
  that is turned off.
"""

from __future__ import annotations

import os
import shlex
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
OLD_NAMESPACE_ENV = "DCGM_EXPORTER_USE_OLD_NAMESPACE"
POD_RESOURCES_ENV = "DCGM_POD_RESOURCES_KUBELET_SOCKET"
DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
KUBELET_POD_RESOURCES_DIR = "/var/lib/kubelet/pod-resources"
CONFIGMAP_DATA_ENV = "DCGM_EXPORTER_CONFIGMAP_DATA"
UNDEFINED_CONFIGMAP = "none"
CONFIGMAP_KEY = "metrics"
IMAGE_NAME = "dcgm-exporter"
_SOURCE_ROOT = Path(__file__).resolve().parents[3]


def user_csv_cache() -> Path:
    """Where `gpu-policy schemas fetch` puts the collector CSVs: $XDG_CACHE_HOME/gpu-policy/dcgm-exporter."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpu-policy" / "dcgm-exporter"


def csv_root(release: str | None = None) -> Path | None:
    """The folder of per-release collector folders: $GPU_POLICY_DCGM_CSV_PATH, else the user cache when it holds
    `release`, else `<repo>/../shared/dcgm-exporter` in a source checkout; None when none exists."""
    raw = os.environ.get(CSV_PATH_ENV, "").strip()
    if raw:
        return Path(raw)
    cache = user_csv_cache()
    if (cache / release).is_dir() if release else cache.is_dir():
        return cache
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
    outside_set: bool = False
    """The list lives in an object that is not in the manifest set (a ConfigMap mounted over the path or named by
    configmap-data), or comes from valueFrom: not checked in a partial set, not a defect."""


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


# Go's strconv.ParseBool, which urfave/cli v2 (flag_bool.go) applies to a BoolFlag's env var and to `-k=<v>`:
# exactly these spellings, case-sensitive; anything else ("yes", "on", "TRUE " with a space) is a parse error
# and the exporter exits before serving. An env var set to "" is false.
_PARSE_BOOL = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


def parse_go_bool(text: str) -> bool | None:
    """strconv.ParseBool: True/False, None when Go would reject the text."""
    return _PARSE_BOOL.get(text)


@dataclass(frozen=True)
class FlagSetting:
    """How one exporter flag ends up set: its value, where, and why it cannot be known."""

    value: bool | str | None
    """The effective value (bool for bool flags); None when unknown or invalid."""
    configured_at: FieldPath | None
    """The arg or env var that sets it; None when the default applies."""
    problem: str | None = None
    """Why the value is unknown or makes the exporter exit (unparsable bool, valueFrom)."""


_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh"})


def _split(raw: str, shell: bool) -> list[str]:
    """One command/args string as words: a shell script (`command: [bash, -c]`) is split as POSIX sh does (quotes
    removed, `;`, `&&`, `|` separate words, Python's shlex); anything else on whitespace."""
    if not shell:
        return raw.split()
    lexer = shlex.shlex(raw, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: sh would fail too; read the words as written
        return raw.split()


def _arg_tokens(container_path: FieldPath, container: Mapping[str, Any]) -> list[tuple[str, FieldPath]]:
    """The program's arguments with their fields: command[1:] then args (command[0] is the program; the image's
    entrypoint script passes args through to dcgm-exporter). Strings are split into words: as the shell does when
    command[0] is a shell (`bash -c "... dcgm-exporter --collectors /x.csv"`), else on whitespace."""
    command = container.get("command") or []
    program = str(command[0]) if isinstance(command, list) and command else ""
    shell = PurePosixPath(program).name in _SHELLS
    out: list[tuple[str, FieldPath]] = []
    for field_name, skip in (("command", 1), ("args", 0)):
        values = container.get(field_name) or []
        if not isinstance(values, list):
            continue
        for i, raw in enumerate(values):
            if i < skip:
                continue
            for token in _split(str(raw), shell):
                out.append((token, (*container_path, field_name, i)))
    return out


def _flag_names(names: tuple[str, ...]) -> set[str]:
    # Go's flag package (used by urfave/cli v2) accepts `-name` and `--name` for every name and alias
    return {prefix + n for n in names for prefix in ("-", "--")}


def bool_flag(
    container_path: FieldPath, container: Mapping[str, Any], names: tuple[str, ...], env_name: str
) -> FlagSetting:
    """A urfave/cli v2 BoolFlag (default false): the env var is applied first, a command-line flag overrides it
    (urfave/cli flag_bool.go Apply, then flag.Parse). `-k` alone is true; `-k=<v>` is ParseBool'd; a bool flag never
    consumes the next argument."""
    setting = FlagSetting(False, None)
    found = _env_value(container, env_name)
    if found is not None:
        index, env = found
        where = (*container_path, "env", index)
        if "valueFrom" in env and "value" not in env:
            setting = FlagSetting(None, where, f"{env_name} comes from valueFrom and cannot be read statically")
        else:
            raw = env.get("value")
            text = "" if raw is None else raw if isinstance(raw, str) else str(raw)
            parsed = False if text == "" else parse_go_bool(text)
            problem = (
                None
                if parsed is not None
                else f"{env_name}={text!r} is not a Go bool (strconv.ParseBool accepts 1/t/T/TRUE/true/True and "
                "0/f/F/FALSE/false/False): the exporter exits at startup"
            )
            setting = FlagSetting(parsed, (*where, "value"), problem)
    spellings = _flag_names(names)
    for token, where in _arg_tokens(container_path, container):
        name, eq, value = token.partition("=")
        if name not in spellings:
            continue
        if not eq:
            setting = FlagSetting(True, where)
            continue
        parsed = parse_go_bool(value)
        setting = FlagSetting(
            parsed,
            where,
            None if parsed is not None else f"{token} is not a Go bool: the exporter exits at startup",
        )
    return setting


def string_flag(
    container_path: FieldPath, container: Mapping[str, Any], names: tuple[str, ...], env_name: str, default: str
) -> FlagSetting:
    """A urfave/cli v2 StringFlag: `-name value` or `-name=value` overrides the env var, which overrides the
    default."""
    setting = FlagSetting(default, None)
    found = _env_value(container, env_name)
    if found is not None:
        index, env = found
        if "valueFrom" in env and "value" not in env:
            setting = FlagSetting(
                None, (*container_path, "env", index), f"{env_name} comes from valueFrom and cannot be read statically"
            )
        elif env.get("value") is not None:
            setting = FlagSetting(str(env["value"]), (*container_path, "env", index, "value"))
    spellings = _flag_names(names)
    tokens = _arg_tokens(container_path, container)
    for i, (token, where) in enumerate(tokens):
        name, eq, value = token.partition("=")
        if name not in spellings:
            continue
        if eq:
            setting = FlagSetting(value, where)
        elif i + 1 < len(tokens):
            setting = FlagSetting(tokens[i + 1][0], tokens[i + 1][1])
    return setting


def kubernetes_mode(container_path: FieldPath, container: Mapping[str, Any]) -> FlagSetting:
    """`-k` / `--kubernetes` / DCGM_EXPORTER_KUBERNETES (pkg/cmd/app.go, BoolFlag, default false): series carry the
    pod/namespace/container of the workload using the GPU."""
    return bool_flag(container_path, container, ("kubernetes", "k"), KUBERNETES_ENV)


def old_namespace_mode(container_path: FieldPath, container: Mapping[str, Any]) -> FlagSetting:
    """`-o` / `--use-old-namespace` / DCGM_EXPORTER_USE_OLD_NAMESPACE (BoolFlag, default false): the pod labels are
    named pod_name / pod_namespace / container_name instead (internal/pkg/transformation/const.go)."""
    return bool_flag(container_path, container, ("use-old-namespace", "o"), OLD_NAMESPACE_ENV)


def pod_resources_socket(container_path: FieldPath, container: Mapping[str, Any]) -> FlagSetting:
    """`--pod-resources-kubelet-socket` / DCGM_POD_RESOURCES_KUBELET_SOCKET, default
    /var/lib/kubelet/pod-resources/kubelet.sock: the kubelet PodResources API the exporter maps GPUs to pods with."""
    return string_flag(
        container_path, container, ("pod-resources-kubelet-socket",), POD_RESOURCES_ENV, DEFAULT_POD_RESOURCES_SOCKET
    )


def configmap_data(container_path: FieldPath, container: Mapping[str, Any]) -> FlagSetting:
    """`-m` / `--configmap-data` / DCGM_EXPORTER_CONFIGMAP_DATA (`<namespace>:<name>`, default "none")."""
    return string_flag(container_path, container, ("configmap-data", "m"), CONFIGMAP_DATA_ENV, UNDEFINED_CONFIGMAP)


def mounted_host_path(template: PodTemplate, container: Mapping[str, Any], path: str) -> str | None:
    """The node path a container path comes from, when a hostPath volume mount covers it; None otherwise."""
    target = PurePosixPath(path)
    volumes = {v.get("name"): v for v in template.spec.get("volumes") or [] if isinstance(v, Mapping)}
    best: tuple[int, str] | None = None
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, Mapping):
            continue
        mount_path = PurePosixPath(str(mount.get("mountPath", "")))
        if mount_path != target and mount_path not in target.parents:
            continue
        volume = volumes.get(mount.get("name"))
        host = volume.get("hostPath") if isinstance(volume, Mapping) else None
        if not isinstance(host, Mapping) or not host.get("path"):
            continue
        base = PurePosixPath(str(host["path"]))
        if mount.get("subPath"):
            base = base / str(mount["subPath"])
        depth = len(mount_path.parts)  # the deepest mount wins, as in the container's mount table
        if best is None or depth > best[0]:
            best = (depth, str(base / target.relative_to(mount_path)))
    return best[1] if best else None


def configured_collectors(container_path: FieldPath, container: Mapping[str, Any]) -> tuple[str, FieldPath]:
    """The collector path and the field that sets it: `-f`/`--collectors` (a urfave/cli v2 StringFlag, so the last
    occurrence wins and `-name value`, `-name=value`, `--name ...` are all accepted), else DCGM_EXPORTER_COLLECTORS,
    else the default (NVIDIA/dcgm-exporter pkg/cmd/app.go). The flag is read from the same argument tokens as every
    other exporter flag, so `command: [bash, -c]` with `args: ["... dcgm-exporter --collectors /x.csv"]` (a shell
    script starting the exporter) is read too. A value that cannot be read statically (valueFrom) is returned as
    `VALUE_FROM`."""
    setting = string_flag(container_path, container, ("collectors", "f"), COLLECTORS_ENV, DEFAULT_COLLECTORS)
    if setting.value is None:
        return VALUE_FROM, setting.configured_at or container_path
    return str(setting.value), setting.configured_at or container_path


VALUE_FROM = "<valueFrom>"
"""The collector path when DCGM_EXPORTER_COLLECTORS comes from valueFrom (a ConfigMap/Secret key): unknown here."""


def _configmap_csv(
    graph: ResourceGraph, template: PodTemplate, container: Mapping[str, Any], file: str, namespace: str
) -> tuple[frozenset[str] | None, str, bool] | None:
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
        if configmap is None:
            return None, f"ConfigMap {namespace}/{name}, mounted over {file}, is not in the manifest set", True
        if key is None:
            return None, f"ConfigMap {namespace}/{name} is mounted with items that do not project {key_path}", False
        data = configmap.obj.get("data") or {}
        if key not in data:
            return None, f"{where}: no such key", False
        return parse_collectors_csv(str(data[key])), where, False
    return None


_TOKEN_PATH = PurePosixPath("/var/run/secrets/kubernetes.io/serviceaccount")


def _has_api_credentials(template: PodTemplate, container: Mapping[str, Any]) -> bool:
    """rest.InClusterConfig reads the service account token under /var/run/secrets/kubernetes.io/serviceaccount;
    with automountServiceAccountToken: false it is there only if a volume is mounted at that path by hand."""
    if template.spec.get("automountServiceAccountToken") is not False:
        return True
    covering = (_TOKEN_PATH, *_TOKEN_PATH.parents[:-1])
    return any(
        isinstance(m, Mapping) and PurePosixPath(str(m.get("mountPath", ""))) in covering
        for m in container.get("volumeMounts") or []
    )


def _configmap_data_collectors(
    graph: ResourceGraph, template: PodTemplate, path: FieldPath, container: Mapping[str, Any]
) -> Collectors | None:
    """The counter list when `-m`/`--configmap-data`/DCGM_EXPORTER_CONFIGMAP_DATA is set: GetCounterSet
    (NVIDIA/dcgm-exporter internal/pkg/counters/counter_config.go) then reads the `metrics` key of ConfigMap
    <namespace>:<name> through the Kubernetes API instead of the collectors file, and exits when it cannot
    (releases before 3.x logged and fell back to the file). None when the setting is absent ("none")."""
    setting = configmap_data(path, container)
    where = setting.configured_at or path
    if setting.value is None:
        return Collectors(path, "ConfigMap (configmap-data)", where, None, str(setting.problem))
    value = str(setting.value)
    if value == UNDEFINED_CONFIGMAP:
        return None
    parts = value.split(":")
    label = f"ConfigMap {value} key {CONFIGMAP_KEY}"
    if len(parts) != 2:
        return Collectors(path, label, where, None, f"configmap-data {value!r} is not <namespace>:<name>: "
                          "the exporter exits at startup")
    if not _has_api_credentials(template, container):
        return Collectors(path, label, where, None, "the pod sets automountServiceAccountToken: false, so the "
                          "exporter has no API credentials to read the ConfigMap and exits at startup")
    namespace, name = parts
    configmap = graph.get("ConfigMap", name, namespace)
    if configmap is None:
        return Collectors(path, label, where, None, f"ConfigMap {namespace}/{name} is not in the manifest set, "
                          "so the collector list the exporter loads cannot be read", outside_set=True)
    data = configmap.obj.get("data") or {}
    if CONFIGMAP_KEY not in data:
        return Collectors(path, label, where, None, f"ConfigMap {namespace}/{name} has no {CONFIGMAP_KEY!r} key: "
                          "the exporter exits at startup")
    return Collectors(path, label, where, parse_collectors_csv(str(data[CONFIGMAP_KEY])),
                      f"ConfigMap {namespace}/{name} key {CONFIGMAP_KEY}")


def collectors_of(graph: ResourceGraph, doc: Document, cluster_policy: Mapping[str, Any]) -> list[Collectors]:
    """One entry per exporter container of a DaemonSet."""
    template = pod_template_of(doc)
    if template is None:
        return []
    out: list[Collectors] = []
    for path, container in exporter_containers(template):
        from_api = _configmap_data_collectors(graph, template, path, container)
        if from_api is not None:
            out.append(from_api)
            continue
        file, configured_at = configured_collectors(path, container)
        if file == VALUE_FROM:
            out.append(Collectors(path, COLLECTORS_ENV, configured_at, None,
                                  f"{COLLECTORS_ENV} comes from valueFrom and cannot be read statically",
                                  outside_set=True))
            continue
        mounted = _configmap_csv(graph, template, container, file, doc.effective_namespace)
        if mounted is not None:
            fields, source, outside = mounted
            out.append(Collectors(path, file, configured_at, fields, source, outside))
            continue
        release = release_folder(cluster_policy)
        root = csv_root(release)
        basename = PurePosixPath(file).name
        if root is None:
            out.append(
                Collectors(
                    path,
                    file,
                    configured_at,
                    None,
                    f"no collector data: run `gpu-policy schemas fetch` or set {CSV_PATH_ENV} to the folder "
                    "holding <release>/*.csv",
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
