"""Issue 9, "Seen": one black-box regression test per attack, through `gpu-policy check` as a CI job runs it.

Only what every version of the command line has is used (`check PATH... [-v] [--report DIR]`, text output, the exit
code, the files it leaves), so each test can be run against the code from before the fix and shown to fail there.
Every run is bounded: a hang is a failure at the timeout (the whole process group is killed), not a stuck suite;
the address space is capped at 3 GB, so "out of memory" is a failure too.
"""

from __future__ import annotations

import http.server
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "output" / "data"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  k: v\n"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, /proc/kmsg)")


class Run:
    def __init__(self, code: int, out: str, err: str, seconds: float, session: int) -> None:
        self.code, self.out, self.err, self.seconds, self.session = code, out, err, seconds, session

    @property
    def text(self) -> str:
        return self.out + self.err

    def assert_no_crash(self) -> None:
        assert self.code in (0, 1, 2), f"exit {self.code}:\n{self.text[-3000:]}"
        for sign in ("Traceback", "internal error", "crashed"):
            assert sign not in self.text, self.text[-3000:]


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))


def check(*args: str, cwd: Path = ROOT, timeout: float = 120, stdin: Any = subprocess.DEVNULL,
          env: dict[str, str] | None = None) -> Run:
    """`gpu-policy check ARGS` in its own session; on timeout its whole session is killed and the test fails."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "gpu_policy", "check", *args], cwd=cwd, stdin=stdin,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                               start_new_session=True, preexec_fn=_cap_memory, env=env)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"check {' '.join(args)} did not finish in {timeout:.0f}s")
    return Run(process.returncode, out, err, time.monotonic() - started, process.pid)


def processes_with(marker: str) -> list[str]:
    """Running processes whose command line holds `marker` (what check started: kubectl, git, ssh, their children),
    whatever session or process group they moved to."""
    left = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if marker in command and state != "Z":
            left.append(f"{pid}: {command}")
    return left


def _gone(marker: str, seconds: float = 3) -> list[str]:
    deadline = time.monotonic() + seconds
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return processes_with(marker)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- crashes: exit 3 and one line, never a "finding" with a traceback --------------------------------------------
def test_an_integer_of_5000_digits_is_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path / "set" / "cm.yaml", CONFIGMAP.format(name="a") + "binaryData: {}\n---\n"
          "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\nspec:\n"
          f"  replicas: {'7' * 5000}\n")
    check(str(tmp_path / "set")).assert_no_crash()


def test_a_float_out_of_range_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path / "set" / "d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: "
          f"default}}\nspec:\n  replicas: !!float {'1' * 400}\n")
    run = check(str(tmp_path / "set"))
    run.assert_no_crash()
    assert run.code == 1 and "d.yaml" in run.out


def test_a_260_character_kind_is_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path / "set" / "k.yaml", f"apiVersion: v1\nkind: {'K' * 260}\nmetadata: {{name: a}}\n")
    run = check(str(tmp_path / "set"))
    run.assert_no_crash()
    assert run.code == 1


def test_an_unreadable_subfolder_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """As root no folder is unreadable: the loader runs in a child whose os.scandir / os.listdir / Path.iterdir /
    os.open refuse `locked` with PermissionError, as a folder without the x bit does."""
    write(tmp_path / "set" / "ok.yaml", CONFIGMAP.format(name="ok"))
    write(tmp_path / "set" / "locked" / "cm.yaml", CONFIGMAP.format(name="hidden"))
    script = f"""
import os, pathlib, sys
def refuse(original):
    def call(path=".", *a, **k):
        if str(path).rstrip("/").endswith("locked") or "locked/" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return original(path, *a, **k)
    return call
os.scandir, os.listdir, os.open = refuse(os.scandir), refuse(os.listdir), refuse(os.open)
original_iterdir = pathlib.Path.iterdir
pathlib.Path.iterdir = lambda self: refuse(lambda p: original_iterdir(pathlib.Path(p)))(self)
from gpu_policy.cli import main
sys.exit(main(["check", {str(tmp_path / "set")!r}]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    run = Run(done.returncode, done.stdout, done.stderr, 0, 0)
    run.assert_no_crash()
    assert run.code == 1 and "locked" in run.out, run.text[-3000:]


def test_wrong_typed_fields_and_a_non_numeric_hpa_policy_value_crash_no_rule_or_simulation() -> None:
    run = check(str(DATA / "wrong-types"))
    run.assert_no_crash()
    assert run.code == 1 and "policy-value-string" in run.out


# -- kustomize contained -------------------------------------------------------------------------------------------
ORIGIN_PATCH = """resources: [cm.yaml]
patches:
  - target: {{kind: ConfigMap}}
    patch: |
      - op: add
        path: /metadata/annotations
        value: {{"config.kubernetes.io/origin": "path: {path}\\n"}}
"""


@needs_kubectl
@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_an_origin_annotation_naming_a_device_or_fifo_is_not_opened(tmp_path: Path, target: str) -> None:
    if target == "fifo":
        os.mkfifo(tmp_path / "pipe.yaml")
        target = str(tmp_path / "pipe.yaml")
    write(tmp_path / "app" / "kustomization.yaml", ORIGIN_PATCH.format(path=target))
    write(tmp_path / "app" / "cm.yaml", CONFIGMAP.format(name="a"))
    run = check(str(tmp_path / "app"), timeout=90)
    run.assert_no_crash()
    assert run.code == 0, run.text[-3000:]  # the ConfigMap is rendered and judged, located at kustomize's output


@needs_kubectl
def test_an_origin_annotation_naming_a_file_outside_is_not_read(tmp_path: Path) -> None:
    """The outside file stands in for /etc/shadow. It declares the rendered ConfigMap too: read and parsed, it
    becomes the location printed for the ConfigMap's finding."""
    outside = write(tmp_path / "outside" / "shadow.yaml", "# root:$6$hash:19000:0:99999:7:::\n"
                    + CONFIGMAP.format(name="a").replace("k: v", "k: 5"))
    write(tmp_path / "app" / "kustomization.yaml", ORIGIN_PATCH.format(path=outside))
    write(tmp_path / "app" / "cm.yaml", CONFIGMAP.format(name="a").replace("k: v", "k: 5"))
    run = check(str(tmp_path / "app"))
    run.assert_no_crash()
    assert run.code == 1 and "ConfigMap/default/a" in run.out  # the schema finding is printed ...
    assert "shadow.yaml" not in run.text  # ... located in the kustomization's output, not in the outside file


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Recorder.requests.append(self.path)
        body = CONFIGMAP.format(name="fetched").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@needs_kubectl
def test_a_remote_http_resource_is_never_fetched(tmp_path: Path, http_server: str) -> None:
    write(tmp_path / "app" / "kustomization.yaml", f"resources: ['{http_server}/cm.yaml']\n")
    run = check(str(tmp_path / "app"), "-v")  # -v: the finding's message in full (default text cuts it at a word)
    run.assert_no_crash()
    assert _Recorder.requests == []
    assert run.code == 1 and "remote" in run.out


@needs_kubectl
def test_an_ssh_base_is_refused_at_once_and_leaves_no_git_or_ssh_running(tmp_path: Path) -> None:
    marker = f"gp{os.getpid()}x{time.monotonic_ns()}"
    write(tmp_path / "app" / "kustomization.yaml", f"resources: ['ssh://{marker}@127.0.0.1:1/repo.git']\n")
    # refused before any connection: no ssh to wait for, so it ends well within the timeout (a hang fails it)
    run = check(str(tmp_path / "app"), "-v", timeout=45)  # -v: the message in full, not cut at a word
    run.assert_no_crash()
    assert run.code == 1 and "remote" in run.out
    assert _gone(marker) == []


@needs_kubectl
def test_a_file_url_base_outside_the_input_is_not_rendered(tmp_path: Path) -> None:
    repo = tmp_path / "elsewhere"
    write(repo / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(repo / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Outside_Repo_Object}\ndata: {k: 5}\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    write(tmp_path / "app" / "kustomization.yaml", f"resources: ['file://{repo}']\n")
    run = check(str(tmp_path / "app"))
    run.assert_no_crash()
    assert "Outside_Repo_Object" not in run.text
    assert _gone(str(repo)) == []


@needs_kubectl
def test_exponentially_multiplying_name_suffix_bases_are_refused_quickly(tmp_path: Path) -> None:
    write(tmp_path / "set" / "level0" / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "set" / "level0" / "cm.yaml", CONFIGMAP.format(name="cm"))
    for i in range(1, 23):
        for side in ("a", "b"):
            write(tmp_path / "set" / f"level{i}" / side / "kustomization.yaml",
                  f"resources: [../../level{i - 1}]\nnameSuffix: -{side}\n")
        write(tmp_path / "set" / f"level{i}" / "kustomization.yaml", "resources: [a, b]\n")
    write(tmp_path / "set" / "kustomization.yaml", "resources: [level22]\n")
    run = check(str(tmp_path / "set"), timeout=60)
    run.assert_no_crash()
    assert run.code == 1


@needs_kubectl
def test_a_folder_named_like_a_flag_is_rendered_as_a_folder(tmp_path: Path) -> None:
    write(tmp_path / "-x" / "kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "-x" / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flag-folder-cm}\n"
          "data: {k: 5}\n")
    run = check("--", "-x", cwd=tmp_path)
    run.assert_no_crash()
    assert run.code == 1 and "ConfigMap/default/flag-folder-cm" in run.out  # rendered and judged


# -- the file walk ---------------------------------------------------------------------------------------------------
def test_two_links_to_the_folder_itself_do_not_make_the_walk_exponential(tmp_path: Path) -> None:
    write(tmp_path / "set" / "cm.yaml", CONFIGMAP.format(name="a"))
    (tmp_path / "set" / "l1").symlink_to(".")
    (tmp_path / "set" / "l2").symlink_to(".")
    run = check(str(tmp_path / "set"), timeout=60)
    run.assert_no_crash()


def test_a_link_to_the_folder_does_not_read_the_same_file_again(tmp_path: Path) -> None:
    write(tmp_path / "set" / "cm.yaml", CONFIGMAP.format(name="a"))
    (tmp_path / "set" / "again").symlink_to(".")
    run = check(str(tmp_path / "set"), timeout=90)
    run.assert_no_crash()
    assert run.code == 0, run.out[-3000:]  # the ConfigMap is fine; read twice it would be "declared again"


@needs_root
def test_a_yaml_link_to_proc_kmsg_does_not_hang(tmp_path: Path) -> None:
    write(tmp_path / "set" / "cm.yaml", CONFIGMAP.format(name="a"))
    (tmp_path / "set" / "x.yaml").symlink_to("/proc/kmsg")
    run = check(str(tmp_path / "set"), timeout=60)
    run.assert_no_crash()


@pytest.mark.parametrize("kind", ["fifo", pytest.param("device", marks=needs_root)])
def test_a_fifo_or_device_named_yaml_is_listed_not_skipped_silently(tmp_path: Path, kind: str) -> None:
    write(tmp_path / "set" / "cm.yaml", CONFIGMAP.format(name="a"))
    special = tmp_path / "set" / "special.yaml"
    if kind == "fifo":
        os.mkfifo(special)
    else:
        os.mknod(special, 0o644 | 0o020000, os.makedev(1, 5))  # /dev/zero
    run = check(str(tmp_path / "set"), "-v", timeout=60)
    run.assert_no_crash()
    assert "special.yaml" in run.text


def test_stdin_of_endless_zeros_is_read_only_up_to_the_limit() -> None:
    with open("/dev/zero", "rb") as zeros:
        run = check("-", stdin=zeros, timeout=90)
    run.assert_no_crash()
    assert run.code in (1, 2)


# -- limits applied while parsing -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_31_mb_single_document_is_refused_while_parsing(tmp_path: Path) -> None:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: big, namespace: default}", "data:"]
    lines += [f"  k{i}: v" for i in range(2_300_000)]
    path = write(tmp_path / "set" / "big.yaml", "\n".join(lines) + "\n")
    assert 31_000_000 < path.stat().st_size < 32 * 2**20  # under the file size limit: the parse limits decide
    run = check(str(tmp_path / "set"), timeout=60)
    run.assert_no_crash()
    assert run.code == 1 and "through aliases" not in run.out  # a node limit, not blamed on aliases


@pytest.mark.slow
def test_1500_nodepools_by_1500_gpu_deployments_finish_in_bounded_time(tmp_path: Path) -> None:
    pools = [{"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": f"gpu-{i}"},
              "spec": {"template": {"metadata": {"labels": {"pool": f"p{i}"}}, "spec": {
                  "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                    "values": ["p4d.24xlarge", "p5.48xlarge", "g5.48xlarge"]}],
                  "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"}}}}}
             for i in range(1500)]
    gpu = {"nvidia.com/gpu": "1", "cpu": "4", "memory": "16Gi"}
    deployments = [{"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": f"m{j}", "namespace": "default"},
                    "spec": {"selector": {"matchLabels": {"app": f"m{j}"}}, "template": {
                        "metadata": {"labels": {"app": f"m{j}"}}, "spec": {
                            "tolerations": [{"operator": "Exists"}],
                            "containers": [{"name": "c", "image": "vllm/vllm-openai:v0.6.4",
                                            "resources": {"requests": gpu, "limits": gpu}}]}}}}
                   for j in range(1500)]
    write(tmp_path / "set" / "pools.yaml", yaml.safe_dump_all(pools))
    write(tmp_path / "set" / "deployments.yaml", yaml.safe_dump_all(deployments))
    run = check(str(tmp_path / "set"), timeout=150)
    run.assert_no_crash()
    assert "placement pairs" in run.out


# -- output safety --------------------------------------------------------------------------------------------------
LEAKS = ("super-secret-token", "c3VwZXItc2VjcmV0LXRva2Vu", "sk-live-SHOULD-NOT-LEAK-1", "env-SHOULD-NOT-LEAK-2")


def test_secret_data_string_data_and_env_values_are_never_printed(tmp_path: Path) -> None:
    run = check(str(DATA / "secrets"), "--report", str(tmp_path / "report"))
    run.assert_no_crash()
    assert run.code == 1
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "report").rglob("*") if p.is_file())
    for leak in LEAKS:
        assert leak not in run.text and leak not in written, leak


def test_newlines_workflow_commands_and_escapes_in_names_are_not_printed_raw(tmp_path: Path) -> None:
    write(tmp_path / "set" / "cm.yaml", 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "x\\n::error::'
          'injected\\n::add-mask::x\\u001b[2Jy"\n  namespace: default\ndata: {k: 5}\n')
    run = check(str(tmp_path / "set"))
    run.assert_no_crash()
    assert run.code == 1
    lines = run.text.splitlines()
    assert not any(line.startswith(("::error::injected", "::add-mask::")) for line in lines), run.text[-2000:]
    assert "\x1b" not in run.text


def test_a_name_that_is_not_dns_1123_is_a_finding(tmp_path: Path) -> None:
    write(tmp_path / "set" / "cm.yaml", CONFIGMAP.format(name="Bad_Name.Here"))
    run = check(str(tmp_path / "set"))
    run.assert_no_crash()
    assert run.code == 1 and "Bad_Name.Here" in run.out


def test_report_never_writes_through_planted_symlinks(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "victim.txt", "untouched\n")
    outside_dir = tmp_path / "outside" / "dir"
    outside_dir.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    for name in ("findings.tmp", "findings.json", "report.html"):
        (report / name).symlink_to(outside)
    (report / "simulation").symlink_to(outside_dir)
    run = check(str(ROOT / "manifests"), "--report", str(report))
    assert outside.read_text() == "untouched\n"
    assert list(outside_dir.iterdir()) == []
    assert "Traceback" not in run.text


# -- no process outlives check ---------------------------------------------------------------------------------------
def test_no_child_of_kubectl_outlives_check(tmp_path: Path) -> None:
    """A kubectl that leaves a child behind (as git/ssh did): after check exits, nothing it started runs on."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = f"gpu-policy-orphan-{os.getpid()}-{time.monotonic_ns()}"
    (bin_dir / "kubectl").write_text(  # the child keeps kubectl's stdout open, as git and ssh children did
        f"#!/bin/sh\nsh -c 'sleep 120; :' {marker} &\n"
        'printf "apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: ok, namespace: default}\\n"\n')
    (bin_dir / "kubectl").chmod(0o755)
    write(tmp_path / "app" / "kustomization.yaml", "resources: []\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    run = check(str(tmp_path / "app"), env=env, timeout=90)  # the orphan sleeps 120 s: waiting for it fails
    run.assert_no_crash()
    assert _gone(marker) == []
