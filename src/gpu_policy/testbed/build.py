"""Build the testbed's upstream binaries from the Go module proxy into a cache keyed by the pins.

The cache is `~/.cache/gpu-policy/testbed/<key>/bin/` (or `$GPU_POLICY_TESTBED_CACHE/<key>/bin/`). The key hashes
everything that decides the bytes of a binary: pins.yaml, each wrapper module's go.mod/go.sum/*.go, the Go version,
GOOS/GOARCH and the build flags. A binary already in the key's folder is never rebuilt; a new pin gives a new key.
Builds run niced (the machine is shared) with bounded time; each binary is written to a temporary name and renamed,
so an interrupted build leaves no half binary behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gpu_policy.testbed.gomod import ETCD_TOOLS, KUBERNETES_TOOLS, KWOK_HELPERS, KWOK_TOOLS
from gpu_policy.testbed.pins import Pins, load_pins, wrapper_modules_dir

BUILD_TIMEOUT_SECONDS = 3 * 3600


class BuildError(RuntimeError):
    """A binary could not be built; the message names the command and Go's error."""


@dataclass(frozen=True)
class Binary:
    name: str
    module: str  # folder of the wrapper module under testbed/
    package: str


BINARIES: tuple[Binary, ...] = (
    *(Binary(name, "etcd", package) for name, package in ETCD_TOOLS.items()),
    *(Binary(name, "kubernetes", package) for name, package in KUBERNETES_TOOLS.items()),
    *(Binary(name, "kwok", package) for name, package in {**KWOK_TOOLS, **KWOK_HELPERS}.items()),
)
BINARY_NAMES = tuple(binary.name for binary in BINARIES)


def ldflags(pins: Pins) -> str:
    """Version stamps upstream's own build (hack/lib/version.sh) sets, so /version reports the pinned release."""
    if not pins.kubernetes.startswith("v1."):
        return "-s -w"
    major, minor = pins.kubernetes.removeprefix("v").split(".")[:2]
    stamps = {"gitVersion": pins.kubernetes, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    parts = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        parts += [f"-X {package}.{name}={value}" for name, value in stamps.items()]
    return " ".join(parts)


def _module_files(root: Path) -> list[Path]:
    files = [root / "pins.yaml"]
    for module in sorted({binary.module for binary in BINARIES}):
        folder = root / module
        files += sorted(
            p for p in folder.rglob("*") if p.is_file() and (p.suffix == ".go" or p.name in {"go.mod", "go.sum"})
        )
    return files


def go_executable() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("`go` is not on PATH: the testbed is built from source with the Go toolchain (1.24 or newer)")
    return go


def go_environment(go: str) -> dict[str, str]:
    try:
        out = subprocess.run(
            [go, "env", "-json", "GOVERSION", "GOOS", "GOARCH"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"`go env` failed: {exc}") from exc
    data = json.loads(out)
    return {key: str(data.get(key, "")) for key in ("GOVERSION", "GOOS", "GOARCH")}


def cache_key(root: Path, pins: Pins, go_env: dict[str, str]) -> str:
    """Hash of every input that decides the binaries; 16 hex digits are plenty to tell pin sets apart."""
    digest = hashlib.sha256()
    for path in _module_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for key in sorted(go_env):
        digest.update(f"{key}={go_env[key]}\0".encode())
    digest.update(f"ldflags={ldflags(pins)}\0cgo=0\0trimpath\0".encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    configured = os.environ.get("GPU_POLICY_TESTBED_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "gpu-policy" / "testbed"


@dataclass(frozen=True)
class Layout:
    """Where one key's binaries are: <cache>/<key>/bin/<name>, build times in <cache>/<key>/build-times.json."""

    key: str
    directory: Path

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def missing(self) -> list[str]:
        return [name for name in BINARY_NAMES if not os.access(self.binary(name), os.X_OK)]

    @property
    def times_file(self) -> Path:
        return self.directory / "build-times.json"


def layout(root: Path | None = None) -> Layout:
    root = root or wrapper_modules_dir()
    pins = load_pins(root / "pins.yaml")
    key = cache_key(root, pins, go_environment(go_executable()))
    return Layout(key=key, directory=cache_root() / key)


def _go_parallelism() -> str:
    value = os.environ.get("GPU_POLICY_TESTBED_GO_PARALLEL", "2")
    return value if value.isdigit() and int(value) > 0 else "2"


def _lower_priority() -> None:  # runs in the child before exec
    os.nice(19)


def build(
    names: list[str] | None = None,
    root: Path | None = None,
    progress: TextIO = sys.stderr,
    runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> Layout:
    """Build the missing binaries (all, or `names`) of the current key; return where they are."""
    root = root or wrapper_modules_dir()
    pins = load_pins(root / "pins.yaml")
    go = go_executable()
    key = cache_key(root, pins, go_environment(go))
    target = Layout(key=key, directory=cache_root() / key)
    wanted = names or list(BINARY_NAMES)
    unknown = sorted(set(wanted) - set(BINARY_NAMES))
    if unknown:
        raise BuildError(f"unknown testbed binary {', '.join(unknown)}; known: {', '.join(BINARY_NAMES)}")
    target.bin_dir.mkdir(parents=True, exist_ok=True)
    times = _read_times(target.times_file)
    # GOTOOLCHAIN=local: never fetch another Go toolchain; an old `go` fails with Go's own clear message instead.
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": f"-mod=readonly -p={_go_parallelism()}", "GOTOOLCHAIN": "local"}
    for binary in BINARIES:
        if binary.name not in wanted or os.access(target.binary(binary.name), os.X_OK):
            continue
        partial = target.bin_dir / f".{binary.name}.partial"
        command = [go, "build", "-trimpath", "-ldflags", ldflags(pins), "-o", str(partial), binary.package]
        print(
            f"testbed build: {binary.name} ({binary.package}) in testbed/{binary.module} ...", file=progress, flush=True
        )
        started = time.monotonic()
        try:
            result = runner(
                command,
                cwd=root / binary.module,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_SECONDS,
                preexec_fn=_lower_priority,
            )
        except subprocess.TimeoutExpired as exc:
            partial.unlink(missing_ok=True)
            raise BuildError(f"`{' '.join(command)}` did not finish in {BUILD_TIMEOUT_SECONDS} s") from exc
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            tail = "\n".join((result.stderr or "").strip().splitlines()[-30:])
            raise BuildError(f"`{' '.join(command)}` (in testbed/{binary.module}) exited {result.returncode}:\n{tail}")
        partial.replace(target.binary(binary.name))
        times[binary.name] = round(elapsed, 1)
        target.times_file.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"testbed build: {binary.name} built in {elapsed:.0f} s", file=progress, flush=True)
    return target


def _read_times(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def regenerate_modules(root: Path | None = None, progress: TextIO = sys.stderr) -> None:
    """Rewrite the wrapper modules' go.mod from pins.yaml and upstream's go.mod, then `go mod tidy` each (network)."""
    from gpu_policy.testbed import gomod  # local: only maintainers regenerate

    root = root or wrapper_modules_dir()
    pins = load_pins(root / "pins.yaml")
    go = go_executable()
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    try:
        out = subprocess.run(
            [go, "mod", "download", "-json", f"k8s.io/kubernetes@{pins.kubernetes}"],
            capture_output=True, text=True, timeout=900, check=True, env=env, cwd=root,
        ).stdout  # fmt: skip
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"`go mod download k8s.io/kubernetes@{pins.kubernetes}` failed: {exc.stderr.strip()}") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"`go mod download k8s.io/kubernetes@{pins.kubernetes}` failed: {exc}") from exc
    upstream = gomod.parse_upstream(Path(json.loads(out)["GoMod"]).read_text(encoding="utf-8"))
    texts = {
        "kubernetes": gomod.kubernetes_gomod(pins, upstream),
        "etcd": gomod.etcd_gomod(pins, upstream.go),
        "kwok": gomod.kwok_gomod(pins, gomod.KWOK_GO),
    }
    for module, text in texts.items():
        (root / module / "go.mod").write_text(text, encoding="utf-8")
        print(f"testbed gomod: go mod tidy in testbed/{module} ...", file=progress, flush=True)
        result = subprocess.run(
            [go, "mod", "tidy"], cwd=root / module, env=env, capture_output=True, text=True, timeout=1800,
            preexec_fn=_lower_priority,
        )  # fmt: skip
        if result.returncode != 0:
            raise BuildError(f"`go mod tidy` in testbed/{module} exited {result.returncode}: {result.stderr.strip()}")
