"""gpu-policy against its peers on the same generated files, and findings compared with a reference revision.

Not a test: run `.venv/bin/python benchmarks/bench_peers.py [--sizes 1000,5000,20000] [--markdown]`.

Per size it writes a realistic mix to a temporary folder (per model: a GPU Deployment with tolerations, affinity and
probes, a Service, a KEDA ScaledObject with a Prometheus trigger (two models in three) or an HPA, a
ServiceMonitor, a PrometheusRule with 2 alerts, a ConfigMap; one Karpenter NodePool and EC2NodeClass per 500
objects, 8 of each at most; 50 objects a file) and times, one after the other in the same run:
- `gpu-policy check` as a user runs it (its own process, default text output to /dev/null);
- `kubernetes-validate` (pip; it knows the core kinds only and reports the custom resources as unknown);
- the parse floor: a Python process reading every file with PyYAML's CSafeLoader (`yaml.load_all`);
- `checkov -d DIR --framework kubernetes` when `checkov` is on PATH.
Each in a fresh process: wall time, CPU time (user + system), objects/s and peak RSS (`os.wait4` of that child:
Linux reports the largest
of the child's and its waited descendants' maximum resident set). Ratios are to the parse floor of the same run.

`--revision REV` times gpu-policy from git revision REV's source; `--before REV` times REV's source too, beside
this tree's, in the same run (a before/after table). This tree is timed as `gpu-policy check` runs by default
(`--jobs 1`: serial) and with `--jobs 0` (every core for a large set).
`--compare-fixtures REV` runs `gpu-policy check --format json` on every fixture set with the source of git
revision REV (exported to a temporary folder and put first on PYTHONPATH) and with this tree, and reports every set
whose findings JSON (and exit code) is not byte-identical; `--jobs` sets run at once, each run itself serial.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OBJECTS_PER_FILE = 50
OBJECTS_PER_NODEPOOL = 500
MAX_NODEPOOLS = 8
NAMESPACES = ("inference", "batch", "research")

PARSE_FLOOR = (
    "import sys, yaml\n"
    "n = 0\n"
    "for path in sys.argv[1:]:\n"
    "    with open(path, 'rb') as f:\n"
    "        n += sum(1 for _ in yaml.load_all(f, Loader=yaml.CSafeLoader))\n"
    "print(n)\n"
)


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "inference", "workload-class": "online"}


def deployment(name: str, ns: str, model: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": _labels(name)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(name)},
                "spec": {
                    "priorityClassName": "inference-online",
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                             "values": ["g5", "g6"]}]}]}}},
                    "terminationGracePeriodSeconds": 120,
                    "containers": [{
                        "name": "vllm", "image": "vllm/vllm-openai:v0.6.3",
                        "args": ["--model", f"/models/model-{model}", "--max-model-len", "8192",
                                 "--gpu-memory-utilization", "0.90"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "resources": {"requests": {"cpu": "3", "memory": "12Gi", "nvidia.com/gpu": 1},
                                      "limits": {"memory": "12Gi", "nvidia.com/gpu": 1}},
                        "startupProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10,
                                         "failureThreshold": 60},
                        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10,
                                          "failureThreshold": 6},
                        "env": [{"name": "HF_HOME", "value": "/models/cache"}],
                        "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                    }],
                    "volumes": [{"name": "models", "emptyDir": {}}],
                },
            },
        },
    }


def service(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": _labels(name)},
        "spec": {"selector": {"app.kubernetes.io/name": name},
                 "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]},
    }


def scaled_object(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "scaleTargetRef": {"name": name}, "minReplicaCount": 1, "maxReplicaCount": 4,
            "pollingInterval": 15,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 300,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}}}},
            "triggers": [{"type": "prometheus", "metricType": "Value", "metadata": {
                "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                "query": f'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}",pod=~"{name}-[a-z0-9]+-[a-z0-9]+"}})',
                "threshold": "70", "ignoreNullValues": "false"}}],
        },
    }


def hpa(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300,
                                       "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}},
        },
    }


def service_monitor(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": name, "namespace": ns, "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}]},
    }


def prometheus_rule(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": ns, "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": [{"name": f"{name}.rules", "rules": [
            {"alert": "VllmHighQueue",
             "expr": f'sum(vllm:num_requests_waiting{{namespace="{ns}",service="{name}"}}) > 20',
             "for": "5m", "labels": {"severity": "warning"},
             "annotations": {"summary": f"{name}: requests are queueing"}},
            {"alert": "VllmDown", "expr": f'absent(up{{namespace="{ns}",service="{name}"}} == 1)',
             "for": "5m", "labels": {"severity": "critical"},
             "annotations": {"summary": f"{name}: no vLLM target is up"}},
        ]}]},
    }


def config_map(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"{name}-settings", "namespace": ns},
        "data": {f"KEY_{k}": f"value-{name}-{k}" for k in range(8)},
    }


def node_pool(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": f"gpu-pool-{i}"},
        "spec": {
            "template": {"spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": f"gpu-{i}"},
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                "requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5", "g6"]},
                ],
                "expireAfter": "720h",
            }},
            "limits": {"nvidia.com/gpu": 64},
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30m",
                           "budgets": [{"nodes": "10%"}]},
        },
    }


def node_class(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
        "metadata": {"name": f"gpu-{i}"},
        "spec": {
            "role": "KarpenterNodeRole-inference",
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "inference"}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "inference"}}],
            "blockDeviceMappings": [{"deviceName": "/dev/xvda",
                                     "ebs": {"volumeSize": "200Gi", "volumeType": "gp3", "encrypted": True}}],
        },
    }


def objects(count: int) -> list[dict[str, Any]]:
    """`count` objects: NodePools and node classes first, then whole models (the last one cut at `count`)."""
    pools = min(MAX_NODEPOOLS, max(1, count // OBJECTS_PER_NODEPOOL))
    out: list[dict[str, Any]] = []
    for i in range(pools):
        out += [node_pool(i), node_class(i)]
    model = 0
    while len(out) < count:
        name, ns = f"model-{model:05d}", NAMESPACES[model % len(NAMESPACES)]
        scaler = scaled_object(name, ns) if model % 3 else hpa(name, ns)
        out += [deployment(name, ns, model), service(name, ns), scaler, service_monitor(name, ns),
                prometheus_rule(name, ns), config_map(name, ns)]
        model += 1
    return out[:count]


def generate(folder: Path, count: int) -> list[Path]:
    found = objects(count)
    files = []
    for start in range(0, count, OBJECTS_PER_FILE):
        path = folder / f"set-{start // OBJECTS_PER_FILE:05d}.yaml"
        path.write_text(yaml.safe_dump_all(found[start:start + OBJECTS_PER_FILE], sort_keys=False), encoding="utf-8")
        files.append(path)
    return files


@dataclass
class Measure:
    seconds: float
    cpu_seconds: float
    """user + system CPU of the process and its waited descendants (robust when other work loads the machine)"""
    peak_rss_mb: float
    code: int


def run_measured(args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Measure:
    """Run one command in its own process: wall time and peak RSS (its own or its largest waited descendant's)."""
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        child = subprocess.Popen(list(args), stdout=devnull, stderr=subprocess.PIPE, env=env, cwd=cwd)
        assert child.stderr is not None
        child.stderr.read()  # drain so a chatty tool never blocks
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    return Measure(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode)


def _bin(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    from shutil import which

    return which(name)


def tools(folder: Path, files: list[Path], env: dict[str, str],
          before: tuple[str, dict[str, str]] | None = None) -> dict[str, Callable[[], Measure]]:
    found: dict[str, Callable[[], Measure]] = {}
    found["gpu-policy check"] = lambda: run_measured(
        [sys.executable, "-m", "gpu_policy", "check", str(folder)], env=env)
    found["gpu-policy check --jobs 0"] = lambda: run_measured(
        [sys.executable, "-m", "gpu_policy", "check", "--jobs", "0", str(folder)], env=env)
    if before is not None:
        revision, before_env = before
        found[f"gpu-policy check at {revision}"] = lambda: run_measured(
            [sys.executable, "-m", "gpu_policy", "check", str(folder)], env=before_env)
    validate = _bin("kubernetes-validate")
    if validate:
        found["kubernetes-validate"] = lambda: run_measured([validate, "--quiet", *map(str, files)])
    found["CSafeLoader parse"] = lambda: run_measured([sys.executable, "-c", PARSE_FLOOR, *map(str, files)])
    checkov = _bin("checkov")
    if checkov:
        found["checkov"] = lambda: run_measured([checkov, "-d", str(folder), "--framework", "kubernetes",
                                                 "--quiet", "--compact"])
    return found


def bench(sizes: list[int], skip: set[str], env: dict[str, str],
          before: tuple[str, dict[str, str]] | None = None) -> list[tuple[int, dict[str, Measure]]]:
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="gpu-policy-peers-") as tmp:
            files = generate(Path(tmp), size)
            row: dict[str, Measure] = {}
            for name, run in tools(Path(tmp), files, env, before).items():
                if name in skip:
                    continue
                row[name] = run()
                m = row[name]
                print(f"# {size:>6} {name:<22} {m.seconds:8.1f} s wall {m.cpu_seconds:8.1f} s CPU "
                      f"{size / m.seconds:9,.0f}/s {m.peak_rss_mb:7.0f} MB exit {m.code} "
                      f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
            rows.append((size, row))
    return rows


def table(rows: list[tuple[int, dict[str, Measure]]]) -> str:
    names = list(dict.fromkeys(name for _, row in rows for name in row))
    lines = ["| objects | " + " | ".join(names) + " | gpu-policy / parse (wall, CPU) |",
             "| --- | " + " | ".join("---" for _ in names) + " | --- |"]
    for size, row in rows:
        cells = []
        for name in names:
            m = row.get(name)
            cells.append("-" if m is None else
                         f"{m.seconds:.1f} s ({m.cpu_seconds:.1f} s CPU), {size / m.seconds:,.0f}/s, "
                         f"{m.peak_rss_mb:,.0f} MB" + ("" if m.code in (0, 1) else f", exit {m.code}"))
        floor, ours = row.get("CSafeLoader parse"), row.get("gpu-policy check")
        ratio = (f"{ours.seconds / floor.seconds:.1f}x, {ours.cpu_seconds / floor.cpu_seconds:.1f}x"
                 if floor and ours else "-")
        lines.append(f"| {size:,} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def _fixture_sets() -> list[tuple[str, list[str]]]:
    sys.path.insert(0, str(ROOT))
    from tests.fixture_sets import discover

    return [(s.name, [str(s.manifests), *s.cli_options()]) for s in discover()]


def _findings_json(args: list[str], env: dict[str, str]) -> bytes:
    """The set's findings JSON and exit code; the fixture's paths taken in the tree under test (fixtures are the
    same files at both revisions), whose own location is then not a difference."""
    args = [a.replace(str(ROOT), env["GPU_POLICY_BENCH_ROOT"]) for a in args]
    done = subprocess.run([sys.executable, "-m", "gpu_policy", "check", *args, "--today", "2026-12-01",
                           "--format", "json"], capture_output=True, env=env, cwd=env["GPU_POLICY_BENCH_ROOT"],
                          check=False,
                          timeout=900)
    tree = env["GPU_POLICY_BENCH_ROOT"].encode()
    return done.stdout.replace(tree, b"<tree>") + f"\nexit {done.returncode}\n".encode()


@contextlib.contextmanager
def revision_env(revision: str | None) -> Iterator[dict[str, str]]:
    """The environment that runs gpu_policy from git revision REV's src/ (this tree's when None); its
    `GPU_POLICY_BENCH_ROOT` is the tree to run in (paths of features are shown relative to it)."""
    if revision is None:
        yield dict(os.environ, GPU_POLICY_BENCH_ROOT=str(ROOT))
        return
    with tempfile.TemporaryDirectory(prefix="gpu-policy-reference-") as tmp:
        # the whole tree: the package reads its features, policies and manifests beside src/
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield dict(os.environ, PYTHONPATH=str(Path(tmp) / "src"), GPU_POLICY_BENCH_ROOT=tmp)


def compare_fixtures(revision: str, jobs: int, only: list[str]) -> int:
    sets = [(n, a) for n, a in _fixture_sets() if not only or any(fnmatch.fnmatch(n, p) for p in only)]
    different = []
    with revision_env(revision) as reference_env:

        def compare(item: tuple[str, list[str]]) -> tuple[str, bool]:
            name, args = item
            return name, _findings_json(args, dict(os.environ, GPU_POLICY_BENCH_ROOT=str(ROOT))) == _findings_json(
                args, reference_env)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for name, same in pool.map(compare, sets):
                print(f"{'same' if same else 'DIFFERENT':>9}  {name}", flush=True)
                if not same:
                    different.append(name)
    print(f"{len(sets) - len(different)} of {len(sets)} fixture sets byte-identical to {revision}")
    return 1 if different else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--skip", action="append", default=[], help="leave a tool out (its name in the table)")
    parser.add_argument("--compare-fixtures", metavar="REV", help="compare findings JSON with git revision REV")
    parser.add_argument("--only", action="append", default=[], help="fixture sets matching this glob only")
    parser.add_argument("--jobs", type=int, default=2, help="fixture sets compared at once")
    parser.add_argument("--revision", metavar="REV", help="time gpu-policy from git revision REV's source")
    parser.add_argument("--before", metavar="REV",
                        help="also time gpu-policy from git revision REV's source, in the same run (before/after)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GPU_POLICY_CRD_PATH", str(ROOT.parent / "shared" / "crds"))
    if args.compare_fixtures:
        return compare_fixtures(args.compare_fixtures, args.jobs, args.only)
    with revision_env(args.revision) as env, revision_env(args.before) as before_env:
        before = (args.before, before_env) if args.before else None
        rows = bench([int(s) for s in args.sizes.split(",")], set(args.skip), env, before)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
