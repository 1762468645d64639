"""Throughput of the loader, the schema validator and the whole engine on generated manifest sets.

Not a test: run `.venv/bin/python benchmarks/bench_load_validate.py [--sizes 1000,5000,20000] [--profile]`.
It writes N objects (Deployments, Services, KEDA ScaledObjects, ConfigMaps, one Karpenter NodePool per 250
objects (16 at most), realistic sizes, 50 objects a file) to a temporary folder and prints objects/s for: load;
load + schema validation (gpu_policy.schemas.validator.ManifestValidator, when present);
the whole engine (`run_engine`, every rule).
Growth is linear when objects/s stays flat as N grows. `--profile` prints the loader's cProfile top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.engine import RunOptions, run_engine
from gpu_policy.loading.loader import load_manifests
from gpu_policy.policy.loader import PolicySet
from gpu_policy.rules.registry import all_rules
from gpu_policy.schemas.validator import default_crd_paths

ROOT = Path(__file__).resolve().parent.parent
OBJECTS_PER_FILE = 50


def deployment(i: int) -> dict[str, Any]:
    name = f"model-{i}"
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "inference",
                     "labels": {"app.kubernetes.io/name": name, "workload-class": "online"}},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name, "workload-class": "online"}},
                "spec": {
                    "priorityClassName": "inference-online",
                    "nodeSelector": {"karpenter.sh/nodepool": "gpu-on-demand"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 120,
                    "containers": [{
                        "name": "vllm", "image": "vllm/vllm-openai:v0.6.3",
                        "args": ["--model", f"/models/{name}", "--max-model-len", "8192",
                                 "--gpu-memory-utilization", "0.90"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "resources": {"requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": 1},
                                      "limits": {"memory": "64Gi", "nvidia.com/gpu": 1}},
                        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10,
                                          "failureThreshold": 6},
                        "env": [{"name": "HF_HOME", "value": "/models/cache"},
                                {"name": "VLLM_PORT", "value": "8000"}],
                        "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                    }],
                    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
                },
            },
        },
    }


def service(i: int) -> dict[str, Any]:
    name = f"model-{i}"
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "inference", "labels": {"app.kubernetes.io/name": name}},
        "spec": {"selector": {"app.kubernetes.io/name": name},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8000}]},
    }


def scaled_object(i: int) -> dict[str, Any]:
    name = f"model-{i}"
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": "inference"},
        "spec": {
            "scaleTargetRef": {"name": name}, "minReplicaCount": 2, "maxReplicaCount": 8,
            "pollingInterval": 15, "cooldownPeriod": 300,
            "fallback": {"failureThreshold": 3, "replicas": 3},
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 300,
                              "policies": [{"type": "Percent", "value": 25, "periodSeconds": 60}]}}}},
            "triggers": [{"type": "prometheus", "metadata": {
                "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                "query": f'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod=~"{name}-.*"}})',
                "threshold": "70"}}],
        },
    }


def node_pool(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": f"gpu-pool-{i}"},
        "spec": {
            "template": {"spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                "requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "node.kubernetes.io/instance-type", "operator": "In",
                     "values": ["g5.xlarge", "g5.2xlarge", "g6.xlarge"]},
                ],
                "expireAfter": "720h",
            }},
            "limits": {"nvidia.com/gpu": 16},
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30m",
                           "budgets": [{"nodes": "10%"}]},
        },
    }


def config_map(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"settings-{i}", "namespace": "inference"},
        "data": {f"KEY_{k}": f"value-{i}-{k}" for k in range(12)},
    }


MAKERS: list[Callable[[int], dict[str, Any]]] = [deployment, service, scaled_object, config_map]
OBJECTS_PER_NODEPOOL = 250
MAX_NODEPOOLS = 16
"""A cluster has a handful of NodePools, not one per workload. Node-placement rules pair every pod template with
every NodePool (pod templates x NodePools x instance types), so NodePools growing with the set would measure a
quadratic set no cluster has: one per 250 objects, at most 16."""


def generate(folder: Path, count: int) -> None:
    def make(i: int) -> dict[str, Any]:
        if i % OBJECTS_PER_NODEPOOL == 0 and i // OBJECTS_PER_NODEPOOL < MAX_NODEPOOLS:
            return node_pool(i)
        return MAKERS[i % len(MAKERS)](i // len(MAKERS))

    objects = [make(i) for i in range(count)]
    for start in range(0, count, OBJECTS_PER_FILE):
        chunk = objects[start:start + OBJECTS_PER_FILE]
        (folder / f"set-{start // OBJECTS_PER_FILE:05d}.yaml").write_text(
            yaml.safe_dump_all(chunk, sort_keys=False), encoding="utf-8")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def measure(count: int, with_engine: bool, excluded: set[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gpu-policy-bench-") as tmp:
        folder = Path(tmp)
        generate(folder, count)
        load_seconds, result = timed(lambda: load_manifests([str(folder)]))
        assert len(result.documents) == count, (len(result.documents), result.findings[:3])
        rates = {"load": count / load_seconds}
        validator = _validator()
        if validator is not None:
            validate_seconds, _ = timed(lambda: [validator.validate(d) for d in result.documents])
            rates["load+schema"] = count / (load_seconds + validate_seconds)
        if with_engine:
            rule_ids = set(all_rules()) - excluded if excluded else None
            engine_seconds, _ = timed(lambda: run_engine(RunOptions(paths=[str(folder)]), rule_ids))
            rates["engine"] = count / engine_seconds
        return rates


def _validator() -> Any:
    try:
        from gpu_policy.schemas.validator import ManifestValidator
    except ImportError:
        return None
    policy = PolicySet.load(None)
    return ManifestValidator(policy.cluster["kubernetesVersion"], default_crd_paths())


def profile(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gpu-policy-bench-") as tmp:
        generate(Path(tmp), count)
        profiler = cProfile.Profile()
        profiler.runcall(load_manifests, [tmp])
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--no-engine", action="store_true", help="skip the whole-engine runs")
    parser.add_argument("--engine-max", type=int, default=20000, help="largest size to run the engine on")
    parser.add_argument("--exclude-rule", action="append", default=[], help="leave a rule out of the engine run")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("GPU_POLICY_CRD_PATH", str(ROOT.parent / "shared" / "crds"))
    if _validator() is None:
        print("gpu_policy.schemas.validator.ManifestValidator not found: load and engine only")
    print(f"{'objects':>8}  " + "  ".join(f"{k:>16}" for k in ("load", "load+schema", "engine")) + "   (objects/s)")
    for size in (int(s) for s in args.sizes.split(",")):
        with_engine = not args.no_engine and size <= args.engine_max
        rates = measure(size, with_engine, set(args.exclude_rule))
        cells = [f"{rates[k]:>16,.0f}" if k in rates else f"{'-':>16}" for k in ("load", "load+schema", "engine")]
        print(f"{size:>8}  " + "  ".join(cells), flush=True)
    if args.profile:
        profile(5000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
