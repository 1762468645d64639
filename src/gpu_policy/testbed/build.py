"""Build the testbed's upstream binaries from the Go module proxy into a cache keyed per component by its pins.

The cache is `~/.cache/gpu-policy/testbed/<component>-<key>/bin/` (or under `$GPU_POLICY_TESTBED_CACHE`), one folder
per component of components.py (core, keda, karpenter). A component's key hashes everything that decides the bytes of
its binaries: its pins, its wrapper modules' go.mod/go.sum/*.go, its source patches, the Go version, GOOS/GOARCH and
the build flags; so re-pinning KEDA never rebuilds the control plane. A binary already in the key's folder is never
rebuilt; a new pin gives a new key. A patched component builds from a patched copy of its upstream module in
`<component>-<key>/src/` (see components.py).
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

from gpu_policy.testbed.components import (
    COMPONENTS,
    CORE,
    Binary,
    Component,
    ComponentError,
    Patch,
    component_of,
)
from gpu_policy.testbed.pins import Pins, load_pins, wrapper_modules_dir

BUILD_TIMEOUT_SECONDS = 3 * 3600


class BuildError(RuntimeError):
    """A binary could not be built; the message names the command and Go's error."""


#: The core's binaries (the control plane every testbed runs).
BINARIES: tuple[Binary, ...] = COMPONENTS[CORE].binaries
BINARY_NAMES = COMPONENTS[CORE].binary_names
__all__ = ["Binary", "BuildError", "Layout", "build", "layout", "layouts"]


def ldflags(pins: Pins, component: str = CORE) -> str:
    """Version stamps upstream's own build sets, so the binaries report the pinned release: kubernetes'
    hack/lib/version.sh for the core; KEDA's Makefile (`-X .../version.Version`) for KEDA."""
    if component == "keda":
        return f"-s -w -X github.com/kedacore/keda/v2/version.Version={pins.version('keda').removeprefix('v')}"
    if component != CORE:
        return "-s -w"
    if not pins.kubernetes.startswith("v1."):
        return "-s -w"
    major, minor = pins.kubernetes.removeprefix("v").split(".")[:2]
    stamps = {"gitVersion": pins.kubernetes, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    parts = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        parts += [f"-X {package}.{name}={value}" for name, value in stamps.items()]
    return " ".join(parts)


def _module_files(root: Path, component: Component) -> list[Path]:
    files = []
    for module in component.modules:
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


def cache_key(root: Path, pins: Pins, go_env: dict[str, str], component: str = CORE) -> str:
    """Hash of every input that decides one component's binaries; 16 hex digits are plenty to tell pin sets apart."""
    spec = COMPONENTS[component]
    digest = hashlib.sha256()
    digest.update(f"component={component}\0".encode())
    for name in spec.pins:
        digest.update(f"pin {name}={pins.version(name)}\0".encode())
    for path in _module_files(root, spec):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for patch in spec.patches:
        digest.update(f"patch {patch.module} {patch.file} {patch.count}\0{patch.old}\0{patch.new}\0".encode())
    for key in sorted(go_env):
        digest.update(f"{key}={go_env[key]}\0".encode())
    digest.update(f"ldflags={ldflags(pins, component)}\0cgo=0\0trimpath\0".encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    configured = os.environ.get("GPU_POLICY_TESTBED_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "gpu-policy" / "testbed"


@dataclass(frozen=True)
class Layout:
    """Where one component's binaries are: <cache>/<component>-<key>/bin/<name>, build times in build-times.json,
    files the component needs at run time besides its binaries (CRDs, webhook configurations) in share/."""

    key: str
    directory: Path
    component: str = CORE

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def missing(self) -> list[str]:
        names = COMPONENTS[self.component].binary_names
        absent = [name for name in names if not os.access(self.binary(name), os.X_OK)]
        shared = _SHARED.get(self.component, {})
        return absent + [f"share/{name}" for name in shared if not (self.share / name).is_file()]

    @property
    def share(self) -> Path:
        return self.directory / "share"

    @property
    def times_file(self) -> Path:
        return self.directory / "build-times.json"


def layout(root: Path | None = None, component: str = CORE) -> Layout:
    root = root or wrapper_modules_dir()
    pins = load_pins(root / "pins.yaml")
    key = cache_key(root, pins, go_environment(go_executable()), component)
    return Layout(key=key, directory=cache_root() / f"{component}-{key}", component=component)


def layouts(components: tuple[str, ...] | list[str], root: Path | None = None) -> dict[str, Layout]:
    """The core's layout and those of the optional components asked for, by component name."""
    return {name: layout(root, name) for name in (CORE, *[c for c in components if c != CORE])}


#: Files a component needs at run time, copied from its upstream module at build time into <layout>/share/:
#: {file name: (Go module, path in the module)}.
_SHARED: dict[str, dict[str, tuple[str, str]]] = {
    "keda": {"validation_webhooks.yaml": ("github.com/kedacore/keda/v2", "config/webhooks/validation_webhooks.yaml")},
    "karpenter": {
        "karpenter.kwok.sh_kwoknodeclasses.yaml": (
            "sigs.k8s.io/karpenter", "kwok/apis/crds/karpenter.kwok.sh_kwoknodeclasses.yaml"),
    },
}


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
    component: str = CORE,
) -> Layout:
    """Build the missing binaries (all, or `names`) of one component's current key; return where they are."""
    root = root or wrapper_modules_dir()
    pins = load_pins(root / "pins.yaml")
    spec = COMPONENTS[component]
    go = go_executable()
    key = cache_key(root, pins, go_environment(go), component)
    target = Layout(key=key, directory=cache_root() / f"{component}-{key}", component=component)
    wanted = names or list(spec.binary_names)
    unknown = sorted(set(wanted) - set(spec.binary_names))
    if unknown:
        raise BuildError(f"unknown testbed binary {', '.join(unknown)}; known: {', '.join(spec.binary_names)}")
    target.bin_dir.mkdir(parents=True, exist_ok=True)
    times = _read_times(target.times_file)
    # GOTOOLCHAIN=local: never fetch another Go toolchain; an old `go` fails with Go's own clear message instead.
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": f"-mod=readonly -p={_go_parallelism()}", "GOTOOLCHAIN": "local"}
    todo = [b for b in spec.binaries if b.name in wanted and not os.access(target.binary(b.name), os.X_OK)]
    modfiles = _patched_modfiles(target, spec, root, go, env, progress) if todo and spec.patches else {}
    for binary in todo:
        partial = target.bin_dir / f".{binary.name}.partial"
        modfile = [f"-modfile={modfiles[binary.module]}"] if binary.module in modfiles else []
        command = [go, "build", *modfile, "-trimpath", "-ldflags", ldflags(pins, component), "-o", str(partial),
                   binary.package]  # fmt: skip
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
    _copy_shared(target, root, go, env)
    return target


def _module_dir(module: str, version: str, cwd: Path, go: str, env: dict[str, str]) -> Path:
    """The upstream module's folder in the Go module cache (downloaded from the proxy when missing)."""
    command = [go, "mod", "download", "-json", f"{module}@{version}"]
    try:
        result = subprocess.run(command, cwd=cwd, env={**env, "GOFLAGS": "-mod=mod"}, capture_output=True, text=True,
                                timeout=1800, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"`{' '.join(command)}` failed: {exc}") from exc
    try:
        data = json.loads(result.stdout or "{}")
    except ValueError:
        data = {}
    if result.returncode != 0 or not data.get("Dir"):
        detail = data.get("Error") or (result.stderr or "").strip()
        raise BuildError(f"`{' '.join(command)}` (in {cwd}) exited {result.returncode}: {detail}")
    return Path(data["Dir"])


def _version_in(gomod: Path, module: str) -> str:
    from gpu_policy.testbed.gomod import required_version

    version = required_version(gomod.read_text(encoding="utf-8"), module)
    if version is None:
        raise BuildError(f"{gomod} does not require {module}: regenerate it (`python -m gpu_policy.testbed gomod`)")
    return version


def apply_patches(folder: Path, patches: tuple[Patch, ...] | list[Patch]) -> None:
    """Apply each patch to the module copy in `folder`; the upstream text must occur exactly `count` times."""
    for patch in patches:
        path = folder / patch.file
        text = path.read_text(encoding="utf-8")
        found = text.count(patch.old)
        if found != patch.count:
            raise BuildError(
                f"patch of {patch.module} {patch.file} ({patch.why}): expected {patch.count} occurrence(s) of "
                f"{patch.old!r}, found {found}: upstream changed, update the patch in gpu_policy/testbed/components.py"
            )
        path.chmod(0o644)
        path.write_text(text.replace(patch.old, patch.new), encoding="utf-8")


def _patched_modfiles(
    target: Layout, spec: Component, root: Path, go: str, env: dict[str, str], progress: TextIO
) -> dict[str, Path]:
    """Copy each patched upstream module into <layout>/src, patch it, and write per wrapper module a go.mod/go.sum
    pair (for `go build -modfile`) that replaces the upstream module by that copy; {wrapper module: its .mod}."""
    copies: dict[str, Path] = {}
    for module in spec.patched_modules:
        wrapper = next(b.module for b in spec.binaries if b.package.startswith(module))
        version = _version_in(root / wrapper / "go.mod", module)
        dest = target.directory / "src" / f"{module.replace('/', '_')}@{version}"
        if not (dest / ".gpu-policy-patched").is_file():
            source = _module_dir(module, version, root / wrapper, go, env)
            partial = dest.with_name(dest.name + ".partial")
            if partial.exists():
                _make_writable(partial)
                shutil.rmtree(partial)
            shutil.copytree(source, partial)
            _make_writable(partial)
            apply_patches(partial, [p for p in spec.patches if p.module == module])
            (partial / ".gpu-policy-patched").write_text(
                "".join(f"{p.file}: {p.why}\n" for p in spec.patches if p.module == module), encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            partial.replace(dest)
            print(f"testbed build: {module}@{version} copied to {dest} and patched (bind 127.0.0.1)", file=progress,
                  flush=True)  # fmt: skip
        copies[module] = dest
    modfiles: dict[str, Path] = {}
    for wrapper in spec.modules:
        replaces = "".join(f"replace {module} => {path}\n" for module, path in copies.items())
        folder = target.directory / "modfile" / wrapper
        folder.mkdir(parents=True, exist_ok=True)
        text = (root / wrapper / "go.mod").read_text(encoding="utf-8")
        (folder / f"{wrapper}.mod").write_text(text.rstrip("\n") + "\n\n" + replaces, encoding="utf-8")
        shutil.copyfile(root / wrapper / "go.sum", folder / f"{wrapper}.sum")
        modfiles[wrapper] = folder / f"{wrapper}.mod"
    return modfiles


def _make_writable(folder: Path) -> None:
    """The module cache is read-only (0444/0555): the copy is made writable so it can be patched and removed."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def _copy_shared(target: Layout, root: Path, go: str, env: dict[str, str]) -> None:
    shared = _SHARED.get(target.component, {})
    if not shared or all((target.share / name).is_file() for name in shared):
        return
    spec = COMPONENTS[target.component]
    target.share.mkdir(parents=True, exist_ok=True)
    for name, (module, relative) in shared.items():
        wrapper = next(b.module for b in spec.binaries if b.package.startswith(module))
        source = _module_dir(module, _version_in(root / wrapper / "go.mod", module), root / wrapper, go, env)
        shutil.copyfile(source / relative, target.share / name)
        (target.share / name).chmod(0o644)


def build_components(
    components: tuple[str, ...] | list[str], names: list[str] | None = None, progress: TextIO = sys.stderr
) -> dict[str, Layout]:
    """Build the core and the optional `components` (or only the components of the binaries `names`)."""
    try:
        wanted = {component_of(name).name for name in names} if names else {CORE, *components}
    except ComponentError as exc:
        raise BuildError(str(exc)) from exc
    out: dict[str, Layout] = {}
    for name in COMPONENTS:
        if name in wanted:
            own = [n for n in names or [] if n in COMPONENTS[name].binary_names] or None
            out[name] = build(own, progress=progress, component=name)
    return out


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
        "keda": gomod.keda_gomod(pins, _upstream_gomod(go, env, root, gomod.KEDA_MODULE, pins.version("keda"))),
        "karpenter": gomod.karpenter_gomod(
            pins, _upstream_gomod(go, env, root, gomod.KARPENTER_MODULE, pins.version("karpenter"))),
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


def _upstream_gomod(go: str, env: dict[str, str], root: Path, module: str, version: str) -> str:
    """The go.mod of an upstream module at a version (from the module proxy)."""
    command = [go, "mod", "download", "-json", f"{module}@{version}"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True, env=env,
                             cwd=root).stdout  # fmt: skip
        return Path(json.loads(out)["GoMod"]).read_text(encoding="utf-8")
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"`{' '.join(command)}` failed: {exc.stderr.strip()}") from exc
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        raise BuildError(f"`{' '.join(command)}` failed: {exc}") from exc
