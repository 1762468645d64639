"""Render a kustomization with `kubectl kustomize`, contained: nothing fetched, nothing left running, bounded.

Before kubectl runs, the kustomization files are read (recursively, within the input folder) and the build is
refused, with the reason, when an entry of `resources`/`bases`/`components`/`generators`/`transformers`/
`validators` is remote (a URL, `git@host:...`, `github.com/org/repo`, `?ref=`) unless remote bases are allowed,
when a local entry resolves outside the input folder, or when the bases listed multiply past
`Limits.max_kustomize_expansions` (kustomize builds a base once per listing, so a chain of bases each listed twice
grows as 2^n). kustomize's own load restrictor (`LoadRestrictionsRootOnly`, the default) keeps patches and
generator files inside each kustomization's folder, symbolic links resolved ("security; file ... is not in or below
..." with kubectl 1.32 / kustomize 5.5); a FIFO or device inside a kustomization folder is refused here, since
kubectl would block on it.

kubectl then runs (defence in depth) with git's protocols disabled (`GIT_ALLOW_PROTOCOL`, `protocol.allow=never`),
ssh and askpass replaced by `false`, every proxy variable pointing at a closed port on 127.0.0.1, an empty
temporary HOME and no kubeconfig; in its own process group, killed as a group on timeout, when its output passes
the cap, and when it returns (no git or ssh child outlives it); with the folder after `--`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_policy.errors import InputError
from gpu_policy.loading.files import file_kind, read_regular
from gpu_policy.loading.limits import Limits
from gpu_policy.loading.walk import KUSTOMIZATION_FILES, is_within
from gpu_policy.loading.yaml_reader import to_documents

_PATH_FIELDS = ("resources", "bases", "components", "generators", "transformers", "validators")
_FILE_LISTS = ("patchesStrategicMerge", "configurations", "crds")
"""Fields listing files that kustomize's file loader reads: an http(s) URL there is fetched, not refused by the
load restrictor (api/internal/loader/fileloader.go: `IsRemoteFile` is checked before the restrictor)."""
_FILE_ITEMS = ("patches", "patchesJson6902", "replacements")
_GENERATORS = ("configMapGenerator", "secretGenerator")
_REMOTE_PREFIXES = ("git@", "git::", "github.com/", "gitlab.com/", "bitbucket.org/", "dev.azure.com/")
_REMOTE_QUERY = re.compile(r"[?&](?:ref|version|submodules|timeout)=")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_HOST_LIKE = re.compile(r"^[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?/", re.IGNORECASE)
_STDERR_CAP = 64 * 1024
_CLOSED_PROXY = "http://127.0.0.1:9"
"""The discard port: nothing listens there on a CI runner, so a proxied request fails at once, locally."""
_MAX_DEPTH = 100
ALLOW_REMOTE_HINT = "remote resources are fetched only with --allow-remote-bases"


class KustomizeRefused(Exception):
    """The kustomization was not rendered because of what it contains or does (a finding, not a tool error)."""


def kustomization_file(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = folder / name
        if os.path.lexists(candidate):
            return candidate
    return None


def is_remote(entry: str, folder: Path) -> bool:
    """Whether kustomize would fetch `entry` (a resource written in the kustomization in `folder`)."""
    text = entry.strip()
    lowered = text.lower()
    if "://" in lowered or lowered.startswith(_REMOTE_PREFIXES) or _SCP_LIKE.match(text):
        return True
    if _REMOTE_QUERY.search(text):
        return True
    # kustomize tries anything that is not a local file or folder as a repository URL (`example.com/org/repo`)
    return bool(_HOST_LIKE.match(text)) and not os.path.lexists(folder / text)


@dataclass
class _Scan:
    root: Path
    shown_root: Path
    limits: Limits
    allow_remote: bool
    total: int = 0

    def _label(self, path: Path) -> str:
        return os.path.join(str(self.shown_root), os.path.relpath(path, self.root))

    def _refuse_special_files(self, folder: Path) -> None:
        """kubectl would block on a FIFO (or read a device) a generator names: none may be in the folder."""
        stack = [folder]
        seen = 0
        while stack:
            current = stack.pop()
            try:
                entries = list(os.scandir(current))
            except OSError:
                continue  # kustomize reports what it cannot read
            for entry in entries:
                seen += 1
                if seen > self.limits.max_walk_entries:
                    return
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    stack.append(Path(entry.path))
                elif not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                    raise KustomizeRefused(f"{self._label(Path(entry.path))}: {file_kind(mode)} inside a "
                                           "kustomization; not rendered (kubectl could block reading it)")

    def _read(self, folder: Path) -> dict[str, Any]:
        self._refuse_special_files(folder)
        file = kustomization_file(folder)
        if file is None:
            return {}
        label = self._label(file)
        real = os.path.realpath(file)
        if not is_within(real, self.root):
            raise KustomizeRefused(f"{label}: a symbolic link to {real}, outside {self.shown_root}; not rendered")
        read = read_regular(Path(real), label, self.limits)
        if read.error or read.skipped:
            raise KustomizeRefused(read.error or read.skipped or "")
        try:
            text = read.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise KustomizeRefused(f"{label}: not UTF-8 text ({exc.reason}); not rendered") from exc
        docs, errors = to_documents(text, label, self.limits)
        if errors:
            raise KustomizeRefused(f"{label}:{errors[0].line}: {errors[0].message}; not rendered")
        return docs[0].obj if docs and isinstance(docs[0].obj, dict) else {}

    def count(self, folder: Path, stack: tuple[Path, ...], memo: dict[Path, int]) -> int:
        """Resources and kustomizations a build of `folder` reads, each as many times as kustomize would."""
        if folder in memo:
            return memo[folder]
        if folder in stack:
            raise KustomizeRefused(f"{self._label(folder)}: kustomizations refer to each other in a cycle; "
                                   "not rendered")
        if len(stack) > _MAX_DEPTH:
            raise KustomizeRefused(f"{self._label(folder)}: bases nested more than {_MAX_DEPTH} deep; not rendered")
        kustomization = self._read(folder)
        label = self._label(kustomization_file(folder) or folder)
        if not self.allow_remote:
            for field, url in _remote_files(kustomization):
                raise KustomizeRefused(f"{label}: {field} entry {url!r} is a remote file; not rendered "
                                       f"({ALLOW_REMOTE_HINT})")
        own = 1
        for field in _PATH_FIELDS:
            entries = kustomization.get(field)
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, str) or "\n" in entry:
                    continue  # inline generator/transformer configuration, not a path
                own += self._entry(folder, label, field, entry, (*stack, folder), memo)
                if self.total + own > self.limits.max_kustomize_expansions:
                    raise KustomizeRefused(
                        f"{label}: the build reads more than {self.limits.max_kustomize_expansions} "
                        "kustomizations and resources (bases listed again and again multiply); not rendered")
        memo[folder] = own
        return own

    def _entry(self, folder: Path, label: str, field: str, entry: str, stack: tuple[Path, ...],
               memo: dict[Path, int]) -> int:
        if is_remote(entry, folder):
            if self.allow_remote:
                return 1
            raise KustomizeRefused(f"{label}: {field} entry {entry!r} is a remote resource; not rendered "
                                   f"({ALLOW_REMOTE_HINT})")
        target = Path(os.path.realpath(folder / entry))
        if not is_within(target, self.root):
            raise KustomizeRefused(f"{label}: {field} entry {entry!r} is outside {self.shown_root}; not rendered")
        if target.is_dir() and kustomization_file(target) is not None:
            return self.count(target, stack, memo)
        return 1


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def _remote_files(kustomization: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, URL) of every file entry kustomize would fetch over HTTP instead of reading from the folder."""
    found: list[tuple[str, str]] = []
    for field in _FILE_LISTS:
        entries = kustomization.get(field)
        found += [(field, e) for e in entries if _is_url(e)] if isinstance(entries, list) else []
    for field in _FILE_ITEMS:
        entries = kustomization.get(field)
        items = entries if isinstance(entries, list) else []
        found += [(field, e["path"]) for e in items if isinstance(e, dict) and _is_url(e.get("path"))]
    openapi = kustomization.get("openapi")
    if isinstance(openapi, dict) and _is_url(openapi.get("path")):
        found.append(("openapi", openapi["path"]))
    for field in _GENERATORS:
        generators = kustomization.get(field)
        for generator in generators if isinstance(generators, list) else []:
            if not isinstance(generator, dict):
                continue
            for key in ("files", "envs", "env"):
                values = generator.get(key)
                for value in values if isinstance(values, list) else [values]:
                    # `files` entries may be `key=path`
                    if isinstance(value, str) and (_is_url(value) or _is_url(value.split("=", 1)[-1])):
                        found.append((f"{field}.{key}", value))
    return found


def local_bases(folder: Path, root: Path, shown_root: Path, limits: Limits) -> list[Path]:
    """The kustomization folders (resolved, inside `root`) that `folder`'s kustomization builds on.

    An overlay renders its bases; when both are in the input, the base is checked as part of the overlay, the
    way it is applied (`kubectl apply -k overlay`), not a second time alone. Unreadable kustomizations: [].
    """
    scan = _Scan(root, shown_root, limits, allow_remote=True)
    try:
        kustomization = scan._read(folder)
    except KustomizeRefused:
        return []
    found: list[Path] = []
    for field in ("resources", "bases", "components"):
        entries = kustomization.get(field)
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, str) or is_remote(entry, folder):
                continue
            target = Path(os.path.realpath(folder / entry))
            if is_within(target, root) and target.is_dir() and kustomization_file(target) is not None:
                found.append(target)
    return found


def check_kustomization(folder: Path, root: Path, shown_root: Path, limits: Limits, allow_remote: bool) -> None:
    """Raise KustomizeRefused when `folder` (resolved, inside resolved `root`) must not be rendered."""
    _Scan(root, shown_root, limits, allow_remote).count(folder, (), {})


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise InputError(
            "rendering a kustomization needs `kubectl` on PATH (`kubectl kustomize`). "
            "Install kubectl, or render it yourself: `kubectl kustomize DIR | gpu-policy check -`."
        )
    return kubectl


def contained_environment(home: str) -> dict[str, str]:
    """What kubectl runs with when remote bases are not allowed: no git, ssh, proxy, credentials or kubeconfig."""
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")}
    env.update({
        "HOME": home, "XDG_CONFIG_HOME": home, "KUBECONFIG": os.devnull,
        "GIT_ALLOW_PROTOCOL": "none", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.allow", "GIT_CONFIG_VALUE_0": "never",
        "GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "false", "GIT_SSH": "false", "GIT_ASKPASS": "false",
        "SSH_ASKPASS": "false",
    })
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = _CLOSED_PROXY
    env["NO_PROXY"] = env["no_proxy"] = ""
    return env


@dataclass
class _Run:
    returncode: int
    stdout: bytes
    stderr: str


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # The group id is kubectl's pid, which cannot be reused until kubectl is reaped below.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def run_contained(argv: list[str], env: dict[str, str] | None, cwd: str, limits: Limits, deadline: float,
                  label: str) -> _Run:
    """Run argv in its own session; raise KustomizeRefused past the deadline or the output cap."""
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=env, cwd=cwd, start_new_session=True)
    except OSError as exc:
        raise InputError(f"{label}: cannot run {argv[0]}: {exc.strerror}") from exc
    assert process.stdout is not None and process.stderr is not None
    out = bytearray()
    err = bytearray()
    problem = None
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        try:
            while selector.get_map() and problem is None:
                now = time.monotonic()
                if now >= deadline:
                    problem = (f"{label}: kubectl kustomize did not finish in {limits.kubectl_timeout_seconds:g}s; "
                               "killed, not rendered")
                    break
                if exited_at is None and process.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > 0.5:
                    break  # kubectl is gone; a child of it holds the pipes open
                for key, _ in selector.select(timeout=min(deadline - now, 0.1)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.fileobj is process.stdout:
                        out += chunk
                        if len(out) > limits.max_kubectl_output_bytes:
                            problem = (f"{label}: kubectl kustomize output is over the "
                                       f"{limits.max_kubectl_output_bytes} byte limit; killed, not rendered")
                            break
                    elif len(err) < _STDERR_CAP:
                        err += chunk[: _STDERR_CAP - len(err)]
        finally:
            _kill_group(process)
            process.wait()
            process.stdout.close()
            process.stderr.close()
    if problem is not None:
        raise KustomizeRefused(problem)
    return _Run(process.returncode, bytes(out), err.decode("utf-8", errors="replace").strip())


class Renderer:
    """Renders kustomizations found under one input folder (`root`, resolved; `shown_root` as given)."""

    def __init__(self, root: Path, shown_root: Path, limits: Limits, allow_remote: bool) -> None:
        self.root = root
        self.shown_root = shown_root
        self.limits = limits
        self.allow_remote = allow_remote

    def _label(self, folder: Path) -> str:
        return os.path.normpath(os.path.join(str(self.shown_root), os.path.relpath(folder, self.root)))

    def _kustomize(self, kubectl: str, target: Path, deadline: float, folder: Path) -> _Run:
        """Run `kubectl kustomize -- target` (the folder or the overlay around it); messages name `folder`."""
        with tempfile.TemporaryDirectory(prefix="gpu-policy-kubectl-home-") as home:
            env = None if self.allow_remote else contained_environment(home)
            return run_contained([kubectl, "kustomize", "--", str(target)], env, home, self.limits, deadline,
                                 self._label(folder))

    def render(self, folder: Path) -> str:
        """`kubectl kustomize folder` output (no origin annotations)."""
        kubectl = self._checked(folder)
        return self._output(folder, self._kustomize(kubectl, folder, self._deadline(), folder))

    def render_with_origins(self, folder: Path) -> tuple[str, Path | None]:
        """Render `folder` through a throw-away overlay that turns on kustomize's origin annotations.

        Returns the output and the overlay folder the annotations' paths are relative to; when the overlay
        cannot be rendered (an old kustomize without buildMetadata, say) the folder is rendered directly, base
        None. The overlay only adds `config.kubernetes.io/origin` annotations, which the loader removes again.
        """
        kubectl = self._checked(folder)
        deadline = self._deadline()
        with tempfile.TemporaryDirectory(prefix="gpu-policy-kustomize-") as tmp:
            overlay = Path(tmp).resolve()
            # kustomize accepts another kustomization folder as a resource only by a relative path.
            relative = os.path.relpath(folder, overlay)
            (overlay / "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"resources:\n  - {json.dumps(relative)}\nbuildMetadata: [originAnnotations]\n",
                encoding="utf-8",
            )
            done = self._kustomize(kubectl, overlay, deadline, folder)
            if done.returncode == 0:
                return self._output(folder, done), overlay
        return self._output(folder, self._kustomize(kubectl, folder, deadline, folder)), None

    def _deadline(self) -> float:
        return time.monotonic() + self.limits.kubectl_timeout_seconds

    def _checked(self, folder: Path) -> str:
        try:
            kubectl = _kubectl()
        except InputError as exc:
            raise InputError(f"{self._label(folder)} is a kustomization: {exc}") from exc
        check_kustomization(folder, self.root, self.shown_root, self.limits, self.allow_remote)
        return kubectl

    def _output(self, folder: Path, done: _Run) -> str:
        if done.returncode != 0:
            raise InputError(f"kubectl kustomize {self._label(folder)} failed:\n{done.stderr}")
        try:
            return done.stdout.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KustomizeRefused(f"{self._label(folder)}: kubectl kustomize output is not UTF-8") from exc
