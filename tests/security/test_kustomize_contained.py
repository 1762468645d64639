"""Issue 9: `kubectl kustomize` on a pull request fetches nothing, reads nothing outside, and leaves nothing running."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gpu_policy.loading import files, kustomize
from gpu_policy.loading.kustomize import check_kustomization, is_remote
from gpu_policy.loading.limits import Limits
from gpu_policy.loading.loader import LOAD_RULE, LoadResult, load_manifests

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """A `kubectl` first on PATH running `body` (sh); it records that it ran in `ran`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "kubectl"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/ran"\n{body}\n', encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "ran"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie waiting for its reaper has stopped running


def load_messages(result: LoadResult) -> list[str]:
    return [f.message for f in result.findings if f.rule_id == LOAD_RULE]


# -- remote resources: refused before kubectl runs ------------------------------------------------------------
REMOTE = [
    "https://127.0.0.1:1/deploy.yaml",
    "http://127.0.0.1:1/repo//base",
    "github.com/example/repo//deploy?ref=v1.0.0",
    "git@github.com:example/repo.git//deploy",
    "ssh://git@127.0.0.1:1/repo.git",
    "file:///etc/kubernetes",
    "git::https://127.0.0.1:1/repo.git",
    "example.com/team/repo/base",
    "https://127.0.0.1:1/repo?ref=main",
]


@pytest.mark.parametrize("entry", REMOTE)
def test_a_remote_resource_is_refused_without_running_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    ran = fake_kubectl(tmp_path, monkeypatch, "exit 1")
    write(tmp_path / "k" / "kustomization.yaml", f"resources:\n  - cm.yaml\n  - {entry}\n")
    write(tmp_path / "k" / "cm.yaml", CONFIGMAP.format(name="a"))
    write(tmp_path / "k" / "other" / "plain.yaml", CONFIGMAP.format(name="b"))
    result = load_manifests([str(tmp_path / "k")])
    assert load_messages(result) == [
        f"{tmp_path / 'k' / 'kustomization.yaml'}: resources entry {entry!r} is a remote resource; not rendered "
        "(remote resources are fetched only with --allow-remote-bases)"
    ]
    assert result.findings[0].resource == "<file:k>" and result.documents == []
    assert not ran.exists()


def test_a_remote_base_deep_in_the_tree_is_found_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = fake_kubectl(tmp_path, monkeypatch, "exit 1")
    write(tmp_path / "overlay" / "kustomization.yaml", "resources: [../base]\nnamePrefix: x-\n")
    write(tmp_path / "base" / "kustomization.yaml", "components: [../parts]\n")
    write(tmp_path / "parts" / "kustomization.yaml",
          "kind: Component\nresources: ['github.com/example/repo?ref=v1']\n")
    result = load_manifests([str(tmp_path)], exclude=["base", "parts"])
    assert load_messages(result) == [
        f"{tmp_path / 'parts' / 'kustomization.yaml'}: resources entry 'github.com/example/repo?ref=v1' is a remote "
        "resource; not rendered (remote resources are fetched only with --allow-remote-bases)"
    ]
    assert not ran.exists()


def test_local_paths_that_look_like_hosts_are_local(tmp_path: Path) -> None:
    (tmp_path / "team.example.com" / "base").mkdir(parents=True)
    assert not is_remote("team.example.com/base", tmp_path)
    assert is_remote("team.example.org/base", tmp_path)
    assert not is_remote("../base", tmp_path) and not is_remote("deploy.yaml", tmp_path)


def test_allow_remote_bases_lets_kubectl_run_with_the_callers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = fake_kubectl(tmp_path, monkeypatch, f'env > "{tmp_path}/env"\necho "apiVersion: v1"; '
                                              'echo "kind: ConfigMap"; echo "metadata: {name: r}"')
    monkeypatch.setenv("GPU_POLICY_TEST_MARK", "kept")
    write(tmp_path / "k" / "kustomization.yaml", "resources: ['https://127.0.0.1:1/x.yaml']\n")
    result = load_manifests([str(tmp_path / "k")], allow_remote_bases=True)
    assert ran.exists() and [d.name for d in result.documents] == ["r"]
    assert "GPU_POLICY_TEST_MARK=kept" in (tmp_path / "env").read_text()


def test_a_local_resource_outside_the_input_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = fake_kubectl(tmp_path, monkeypatch, "exit 1")
    write(tmp_path / "elsewhere" / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "elsewhere" / "cm.yaml", CONFIGMAP.format(name="elsewhere"))
    write(tmp_path / "k" / "kustomization.yaml", "resources: [../elsewhere]\n")
    result = load_manifests([str(tmp_path / "k")])
    assert load_messages(result) == [
        f"{tmp_path / 'k' / 'kustomization.yaml'}: resources entry '../elsewhere' is outside {tmp_path / 'k'}; "
        "not rendered"
    ]
    assert not ran.exists()


def _exponential(tmp_path: Path, levels: int) -> Path:
    """level{i} lists level{i-1} twice (through two nameSuffix overlays): 2^levels copies of one ConfigMap."""
    write(tmp_path / "set" / "level0" / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "set" / "level0" / "cm.yaml", CONFIGMAP.format(name="cm"))
    for i in range(1, levels + 1):
        for side in ("a", "b"):
            write(tmp_path / "set" / f"level{i}" / side / "kustomization.yaml",
                  f"resources: [../../level{i - 1}]\nnameSuffix: -{side}\n")
        write(tmp_path / "set" / f"level{i}" / "kustomization.yaml", "resources: [a, b]\n")
    write(tmp_path / "set" / "kustomization.yaml", f"resources: [level{levels}]\n")
    return tmp_path / "set"


def test_exponentially_multiplying_bases_are_refused_before_kubectl_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = fake_kubectl(tmp_path, monkeypatch, "exit 1")
    top = _exponential(tmp_path, 40)  # 2^40 ConfigMaps from 80 small files
    started = time.monotonic()
    result = load_manifests([str(top)])
    assert time.monotonic() - started < 1.5
    (message,) = load_messages(result)
    assert "the build reads more than 10000 kustomizations and resources" in message
    assert not ran.exists()


def _group_gone(pgid: int) -> bool:
    """No running (non-zombie) process is left in the process group."""
    for pid in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


@pytest.fixture
def started_groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Process groups kubectl was started in (its pid: start_new_session)."""
    pids: list[int] = []
    original = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> Any:
        assert kwargs.get("start_new_session") is True
        process = original(*args, **kwargs)
        pids.append(process.pid)
        return process

    monkeypatch.setattr(kustomize.subprocess, "Popen", recording)
    return pids


@needs_kubectl
def test_when_the_expansion_count_is_not_the_limit_the_time_limit_bounds_kubectl(
    tmp_path: Path, started_groups: list[int]
) -> None:
    top = _exponential(tmp_path, 24)
    limits = Limits(max_kustomize_expansions=10**9, kubectl_timeout_seconds=1.0)
    started = time.monotonic()
    result = load_manifests([str(top)], limits=limits)
    assert time.monotonic() - started < 2.5
    assert load_messages(result) == [f"{top}: kubectl kustomize did not finish in 1s; killed, not rendered"]
    assert len(started_groups) == 1 and _group_gone(started_groups[0])


def test_the_scan_itself_is_linear_with_shared_bases(tmp_path: Path) -> None:
    # Counting memoises each folder, so 45 levels (2^45 would-be copies) are scanned in 92 reads.
    top = _exponential(tmp_path, 45)
    started = time.monotonic()
    with pytest.raises(kustomize.KustomizeRefused, match="more than 10000"):
        check_kustomization(top.resolve(), tmp_path.resolve(), tmp_path, Limits(), False)
    assert time.monotonic() - started < 1


# -- the kubectl process: its own group, killed on timeout and output cap, nothing outlives it ----------------
def test_a_slow_kubectl_and_its_children_are_killed_at_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started_groups: list[int]
) -> None:
    fake_kubectl(tmp_path, monkeypatch, f'sleep 30 &\necho $! > "{tmp_path}/child"\nexec sleep 30')
    write(tmp_path / "k" / "kustomization.yaml", "resources: []\n")
    started = time.monotonic()
    result = load_manifests([str(tmp_path / "k")], limits=Limits(kubectl_timeout_seconds=0.5))
    assert time.monotonic() - started < 2
    assert load_messages(result) == [f"{tmp_path / 'k'}: kubectl kustomize did not finish in 0.5s; killed, "
                                     "not rendered"]
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 1
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child)
    assert len(started_groups) == 1 and _group_gone(started_groups[0])


def test_a_child_that_outlives_a_successful_kubectl_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kubectl(tmp_path, monkeypatch, f'sleep 30 &\necho $! > "{tmp_path}/child"\n'
                                        'printf "apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: ok}\\n"')
    write(tmp_path / "k" / "kustomization.yaml", "resources: []\n")
    started = time.monotonic()
    result = load_manifests([str(tmp_path / "k")])
    assert time.monotonic() - started < 2
    assert [d.name for d in result.documents] == ["ok"]
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 1
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child)


def test_output_past_the_cap_is_not_read_and_kubectl_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kubectl(tmp_path, monkeypatch, "exec yes 'a: b'")
    write(tmp_path / "k" / "kustomization.yaml", "resources: []\n")
    started = time.monotonic()
    result = load_manifests([str(tmp_path / "k")], limits=Limits(max_kubectl_output_bytes=100_000))
    assert time.monotonic() - started < 2
    assert load_messages(result) == [f"{tmp_path / 'k'}: kubectl kustomize output is over the 100000 byte limit; "
                                     "killed, not rendered"]


def test_kubectl_runs_without_network_credentials_or_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = fake_kubectl(tmp_path, monkeypatch, f'env > "{tmp_path}/env"\nexit 3')
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    monkeypatch.setenv("GITHUB_TOKEN", "secret")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(tmp_path / "-x" / "kustomization.yaml", "resources: []\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match="failed"):
        load_manifests(["-x"])
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert "SSH_AUTH_SOCK" not in env and "GITHUB_TOKEN" not in env
    assert env["HOME"] != str(tmp_path / "home") and env["KUBECONFIG"] == os.devnull
    assert env["GIT_ALLOW_PROTOCOL"] == "none" and env["GIT_SSH_COMMAND"] == "false"
    assert env["GIT_CONFIG_KEY_0"] == "protocol.allow" and env["GIT_CONFIG_VALUE_0"] == "never"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == env["https_proxy"] == "http://127.0.0.1:9"
    assert env["NO_PROXY"] == ""
    # the folder comes after `--`, so a folder named like a flag is never read as one
    for line in ran.read_text().splitlines():
        args = line.split()
        assert args[0] == "kustomize" and args[1] == "--" and args[2].startswith("/")


@needs_kubectl
def test_a_folder_named_like_a_flag_is_rendered_as_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "-x" / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "-x" / "cm.yaml", CONFIGMAP.format(name="flagged"))
    monkeypatch.chdir(tmp_path)
    result = load_manifests(["-x"])
    assert [(d.name, d.source, d.line) for d in result.documents] == [("flagged", "-x/cm.yaml", 1)]


# -- origin annotations: trusted only for regular files inside the input folder -------------------------------
ORIGIN_PATCH = """resources: [cm.yaml]
patches:
  - target: {{kind: ConfigMap}}
    patch: |
      - op: add
        path: /metadata/annotations
        value: {{"config.kubernetes.io/origin": "path: {path}\\n"}}
"""


@needs_kubectl
@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../../../../../../../../../../../etc/passwd"])
def test_an_origin_annotation_patched_to_point_outside_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    reads: list[str] = []
    original = files.read_regular
    monkeypatch.setattr("gpu_policy.loading.loader.read_regular",
                        lambda path, *a, **k: reads.append(str(path)) or original(path, *a, **k))
    write(tmp_path / "app" / "kustomization.yaml", ORIGIN_PATCH.format(path=target))
    write(tmp_path / "app" / "cm.yaml", CONFIGMAP.format(name="a"))
    result = load_manifests([str(tmp_path / "app")])
    (doc,) = result.documents
    assert (doc.name, doc.source) == ("a", f"{tmp_path / 'app'} (kustomize output)")
    assert "annotations" not in doc.metadata and result.findings == []
    assert not any("passwd" in path for path in reads)


@needs_kubectl
def test_an_origin_annotation_pointing_at_a_fifo_inside_the_input_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")  # inside the input folder, outside the kustomization
    write(tmp_path / "app" / "kustomization.yaml", ORIGIN_PATCH.format(path=tmp_path / "pipe.yaml"))
    write(tmp_path / "app" / "cm.yaml", CONFIGMAP.format(name="a"))
    started = time.monotonic()
    result = load_manifests([str(tmp_path)])
    assert time.monotonic() - started < 5
    (doc,) = result.documents
    assert doc.source == f"{tmp_path / 'app'} (kustomize output)"
    assert [(n.source, n.reason) for n in result.not_checked] == [
        (str(tmp_path / "pipe.yaml"), "a FIFO (named pipe), not a regular file; not read")
    ]


@needs_kubectl
def test_origins_inside_the_folder_still_point_at_the_written_file(tmp_path: Path) -> None:
    write(tmp_path / "app" / "kustomization.yaml", "resources: [../base]\nnamePrefix: p-\n")
    write(tmp_path / "base" / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "base" / "cm.yaml", "# a comment\n" + CONFIGMAP.format(name="a"))
    result = load_manifests([str(tmp_path)], exclude=["base"])
    (doc,) = result.documents
    assert (doc.name, doc.source, doc.line) == ("p-a", str(tmp_path / "base" / "cm.yaml"), 2)


def test_a_fifo_inside_a_kustomization_is_refused_before_kubectl_blocks_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = fake_kubectl(tmp_path, monkeypatch, "exit 1")
    write(tmp_path / "k" / "kustomization.yaml", "configMapGenerator:\n  - name: c\n    files: [conf/pipe.txt]\n")
    (tmp_path / "k" / "conf").mkdir()
    os.mkfifo(tmp_path / "k" / "conf" / "pipe.txt")
    result = load_manifests([str(tmp_path / "k")])
    assert load_messages(result) == [f"{tmp_path / 'k' / 'conf' / 'pipe.txt'}: a FIFO (named pipe) inside a "
                                     "kustomization; not rendered (kubectl could block reading it)"]
    assert not ran.exists()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("patchesStrategicMerge: ['http://127.0.0.1:1/p.yaml']\n", "patchesStrategicMerge"),
        ("patches:\n  - path: https://127.0.0.1:1/p.yaml\n", "patches"),
        ("configMapGenerator:\n  - name: c\n    files: ['k=https://127.0.0.1:1/f']\n", "configMapGenerator.files"),
        ("secretGenerator:\n  - name: s\n    envs: ['http://127.0.0.1:1/e.env']\n", "secretGenerator.envs"),
        ("openapi:\n  path: https://127.0.0.1:1/schema.json\n", "openapi"),
        ("replacements:\n  - path: http://127.0.0.1:1/r.yaml\n", "replacements"),
    ],
)
def test_a_remote_file_in_a_file_field_is_refused_without_running_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, field: str
) -> None:
    # kustomize's file loader fetches http(s) URLs before its load restrictor looks (SSRF to 127.0.0.1)
    ran = fake_kubectl(tmp_path, monkeypatch, "exit 1")
    write(tmp_path / "k" / "kustomization.yaml", "resources: []\n" + text)
    (message,) = load_messages(load_manifests([str(tmp_path / "k")]))
    assert f": {field} entry " in message and "is a remote file; not rendered" in message
    assert not ran.exists()


def test_urls_in_values_that_are_not_files_are_not_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kubectl(tmp_path, monkeypatch, 'printf "apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: ok}\\n"')
    write(tmp_path / "k" / "kustomization.yaml",
          "commonAnnotations: {docs: 'https://example.com/runbook'}\n"
          "configMapGenerator:\n  - name: c\n    literals: ['URL=https://example.com']\n")
    result = load_manifests([str(tmp_path / "k")])
    assert [d.name for d in result.documents] == ["ok"] and result.findings == []


@needs_kubectl
def test_a_base_of_an_overlay_in_the_same_input_is_checked_through_the_overlay_only(tmp_path: Path) -> None:
    write(tmp_path / "base" / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "base" / "cm.yaml", CONFIGMAP.format(name="settings"))
    write(tmp_path / "overlays" / "prod" / "kustomization.yaml", "resources: [../../base]\nnamespace: prod\n")
    write(tmp_path / "other" / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "other" / "cm.yaml", CONFIGMAP.format(name="other"))
    result = load_manifests([str(tmp_path)])
    assert sorted(d.ref for d in result.documents) == ["ConfigMap/other", "ConfigMap/prod/settings"]
    assert [(n.source, n.reason) for n in result.not_checked] == [(
        str(tmp_path / "base"),
        f"a kustomization that {tmp_path / 'overlays' / 'prod'} builds on: checked as part of it, as it is applied "
        "(`kubectl apply -k`), not rendered on its own",
    )]
