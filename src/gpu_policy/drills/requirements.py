"""What a drill needs and whether this machine has it: each unmet need is one sentence saying how to get it.

- `prometheus`: Debian's /usr/bin/prometheus and promtool (.ci/setup installs them).
- `karpenter`: the testbed was started with Karpenter (`gpu-policy testbed up --with karpenter`; its state.json
  lists the components it runs).
- `testbed`: a running testbed (`gpu-policy testbed up`), reached through its kubeconfig (`--kubeconfig`, else the
  testbed's state folder). Drills mutate the cluster, so only a server on 127.0.0.0/8 is accepted: a drill never
  touches a real cluster.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from gpu_policy.testbed.api import ApiError, require_loopback
from gpu_policy.testbed.prometheus import prometheus_binary


def testbed_kubeconfig(given: Path | None = None) -> Path:
    from gpu_policy.testbed.cluster import default_state_dir

    return given if given is not None else default_state_dir() / "kubeconfig"


def testbed_components(kubeconfig: Path) -> list[str]:
    """The optional components (keda, karpenter) the testbed of `kubeconfig` runs: its state.json beside it."""
    try:
        data = json.loads((kubeconfig.parent / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(c) for c in data.get("components") or []] if isinstance(data, dict) else []


def kubeconfig_server(path: Path) -> str:
    """The current context's server URL of a kubeconfig ('' when it names none)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    current = data.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in data.get("contexts") or [] if isinstance(c, dict)}
    cluster_name = (contexts.get(current) or {}).get("cluster")
    for cluster in data.get("clusters") or []:
        if isinstance(cluster, dict) and cluster.get("name") == cluster_name:
            return str((cluster.get("cluster") or {}).get("server") or "")
    return ""


def unmet_needs(needs: tuple[str, ...], kubeconfig: Path | None) -> str | None:
    for need in needs:
        if need == "prometheus":
            if prometheus_binary() is None or shutil.which("promtool") is None:
                return "needs Prometheus and promtool (Debian packages `prometheus`; see .ci/setup)"
        elif need == "testbed":
            path = testbed_kubeconfig(kubeconfig)
            if not path.is_file():
                return f"needs a running testbed: no kubeconfig at {path} (run `gpu-policy testbed up`)"
            try:
                server = kubeconfig_server(path)
                require_loopback(server)
            except (OSError, yaml.YAMLError, AttributeError) as exc:
                return f"cannot read the kubeconfig {path}: {exc}"
            except ApiError:
                return (f"the kubeconfig {path} points at {server or 'no server'}: drills change the cluster, so "
                        "they run only against the testbed on 127.0.0.0/8")
        elif need in ("keda", "karpenter"):
            path = testbed_kubeconfig(kubeconfig)
            if need not in testbed_components(path):
                return (f"needs the testbed to run {need}: the testbed of {path} does not "
                        f"(`gpu-policy testbed up --with {need}`)")
        else:
            return f"needs {need}, which this version of the testbed does not provide"
    return None
