"""`--live` in a run: read the cluster once (with progress on stderr) into a `LiveState` for the rules, and hand the
cluster's CRDs to the schema registry."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gpu_policy.live.kinds import RUNTIME_KINDS
from gpu_policy.live.loader import LiveLoad, load_live
from gpu_policy.live.state import LiveState

if TYPE_CHECKING:
    from gpu_policy.engine import RunOptions


@dataclass
class LiveRun:
    load: LiveLoad
    state: LiveState

    @contextmanager
    def crd_folder(self) -> Iterator[list[Path]]:
        """The cluster's CRDs as files, for the time the schema registry reads them (it loads them eagerly)."""
        if not self.load.crds:
            yield []
            return
        with tempfile.TemporaryDirectory(prefix="gpu-policy-crds-") as folder:
            self.load.write_crds(Path(folder))
            yield [Path(folder)]


def read_cluster(options: RunOptions, default_namespace: str) -> LiveRun:
    """Every judged and runtime kind of the cluster; raises `LiveError` (one line) when it cannot be read."""
    where = options.kube_context or "the current context"
    print(f"gpu-policy: reading the cluster ({where}) ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    load = load_live(options.kubeconfig, options.kube_context, options.live_namespaces,
                     runtime_kinds=RUNTIME_KINDS)  # fmt: skip
    print(f"gpu-policy: read {len(load.items)} objects of {len(load.served)} kinds from cluster {load.context} "
          f"({load.server}) in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
    state = LiveState(
        context=load.context, server=load.server, kubeconfig=options.kubeconfig, items=load.items,
        prometheus_url=options.prometheus_url, served=dict(load.served), namespaces=tuple(options.live_namespaces),
        manifests=bool(options.paths), default_namespace=default_namespace,
    )  # fmt: skip
    return LiveRun(load, state)
