"""The testbed's components, one table: what each builds (wrapper module under testbed/, main packages), which pins
decide its binaries, and the minimal source patches its upstream needs to bind 127.0.0.1.

- **core**: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (always started).
- **keda**: KEDA's operator, metrics API server (adapter) and admission webhooks (`--with keda`).
- **karpenter**: Karpenter core with its kwok cloud provider (`--with karpenter`).

Each component has its own cache key (build.py): adding or re-pinning KEDA never rebuilds the control plane.

Patches: some upstream listeners have no bind-address flag and listen on every interface (`":<port>"`). Before
building, the upstream module is copied from the Go module cache into the component's cache folder, each patch is
applied there (the exact upstream text must occur exactly as often as stated, else the build stops and names it),
and `go build -modfile` uses a copy of the committed go.mod with one extra `replace <module> => <that copy>`.
Nothing upstream is stored in this repository; the patches are the `old -> new` strings below.
"""

from __future__ import annotations

from dataclasses import dataclass

MODULE_PREFIX = "gpu-policy.local/testbed"

CORE = "core"
KEDA = "keda"
KARPENTER = "karpenter"


@dataclass(frozen=True)
class Binary:
    name: str
    module: str  # folder of the wrapper module under testbed/
    package: str


@dataclass(frozen=True)
class Patch:
    """Replace `old` by `new` in `file` of the Go module `module` (`count` occurrences, exactly)."""

    module: str
    file: str
    old: str
    new: str
    why: str
    count: int = 1


@dataclass(frozen=True)
class Component:
    name: str
    pins: tuple[str, ...]  # the pins.yaml entries that decide its binaries
    binaries: tuple[Binary, ...]
    patches: tuple[Patch, ...] = ()
    description: str = ""

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(sorted({binary.module for binary in self.binaries}))

    @property
    def patched_modules(self) -> tuple[str, ...]:
        return tuple(sorted({patch.module for patch in self.patches}))

    @property
    def binary_names(self) -> tuple[str, ...]:
        return tuple(binary.name for binary in self.binaries)


#: The upstream commands each core wrapper module builds: binary name -> main package.
KUBERNETES_TOOLS = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
}
KWOK_TOOLS = {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}
#: Prints the pinned release's default Stages (kwok starts only with stages in its --config).
KWOK_HELPERS = {"kwok-stages": f"{MODULE_PREFIX}/kwok/cmd/kwok-stages"}
#: etcd's own main package lives in its root module; the wrapper's main.go calls server/v3's etcdmain.Main instead.
ETCD_TOOLS = {"etcd": f"{MODULE_PREFIX}/etcd/cmd/etcd"}

KEDA_MODULE = "github.com/kedacore/keda/v2"
#: kedacore/keda cmd/: the operator (controllers + gRPC metrics service), the metrics API server ("adapter", serves
#: external.metrics.k8s.io) and the admission webhooks; the same three images KEDA's release ships.
KEDA_TOOLS = {
    "keda-operator": f"{KEDA_MODULE}/cmd/operator",
    "keda-adapter": f"{KEDA_MODULE}/cmd/adapter",
    "keda-webhooks": f"{KEDA_MODULE}/cmd/webhooks",
}
KARPENTER_MODULE = "sigs.k8s.io/karpenter"
#: kubernetes-sigs/karpenter kwok/main.go: Karpenter core's controllers with the kwok cloud provider.
KARPENTER_TOOLS = {"karpenter-kwok": f"{KARPENTER_MODULE}/kwok"}

KEDA_PATCHES = (
    Patch(
        KEDA_MODULE,
        "cmd/adapter/main.go",
        'metricsBindAddress := fmt.Sprintf(":%v", metricsAPIServerPort)',
        'metricsBindAddress := fmt.Sprintf("127.0.0.1:%v", metricsAPIServerPort)',
        "the adapter's own /metrics server listens on every interface (`--port` only sets the port)",
    ),
    Patch(
        KEDA_MODULE,
        "cmd/webhooks/main.go",
        "\t\t\tPort:    webhooksPort,\n",
        '\t\t\tHost:    "127.0.0.1",\n\t\t\tPort:    webhooksPort,\n',
        "the admission webhook server has no host flag (controller-runtime webhook.Options.Host empty = all"
        " interfaces)",
    ),
    Patch(
        KEDA_MODULE,
        "cmd/operator/main.go",
        "\t\t\tPort: 9443,\n",
        '\t\t\tHost: "127.0.0.1",\n\t\t\tPort: 9443,\n',
        "the operator's (unused) webhook server would listen on every interface if anything ever started it",
    ),
)
KARPENTER_PATCHES = (
    Patch(
        KARPENTER_MODULE,
        "pkg/operator/operator.go",
        'fmt.Sprintf(":%d", options.FromContext(ctx).MetricsPort)',
        'fmt.Sprintf("127.0.0.1:%d", options.FromContext(ctx).MetricsPort)',
        "Karpenter's metrics server has a port option only (METRICS_PORT) and listens on every interface",
    ),
    Patch(
        KARPENTER_MODULE,
        "pkg/operator/operator.go",
        'fmt.Sprintf(":%d", options.FromContext(ctx).HealthProbePort)',
        'fmt.Sprintf("127.0.0.1:%d", options.FromContext(ctx).HealthProbePort)',
        "Karpenter's health probe server has a port option only (HEALTH_PROBE_PORT) and listens on every interface",
    ),
)

COMPONENTS: dict[str, Component] = {
    CORE: Component(
        CORE,
        pins=("kubernetes", "etcd", "kwok"),
        binaries=(
            *(Binary(name, "etcd", package) for name, package in ETCD_TOOLS.items()),
            *(Binary(name, "kubernetes", package) for name, package in KUBERNETES_TOOLS.items()),
            *(Binary(name, "kwok", package) for name, package in {**KWOK_TOOLS, **KWOK_HELPERS}.items()),
        ),
        description="etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok",
    ),
    KEDA: Component(
        KEDA,
        pins=("keda",),
        binaries=tuple(Binary(name, "keda", package) for name, package in KEDA_TOOLS.items()),
        patches=KEDA_PATCHES,
        description="KEDA operator, metrics API server and admission webhooks",
    ),
    KARPENTER: Component(
        KARPENTER,
        pins=("karpenter",),
        binaries=tuple(Binary(name, "karpenter", package) for name, package in KARPENTER_TOOLS.items()),
        patches=KARPENTER_PATCHES,
        description="Karpenter core with its kwok cloud provider",
    ),
}
#: Components `--with` may add to the core.
OPTIONAL = tuple(name for name in COMPONENTS if name != CORE)


class ComponentError(ValueError):
    """An unknown component name."""


def parse_with(values: list[str] | None) -> tuple[str, ...]:
    """`--with keda --with karpenter` or `--with keda,karpenter` -> ("keda", "karpenter") in table order."""
    wanted = {part.strip() for value in values or [] for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(OPTIONAL))
    if unknown:
        raise ComponentError(f"unknown testbed component {', '.join(unknown)}; known: {', '.join(OPTIONAL)}")
    return tuple(name for name in OPTIONAL if name in wanted)


def component_of(binary_name: str) -> Component:
    for component in COMPONENTS.values():
        if binary_name in component.binary_names:
            return component
    known = ", ".join(name for c in COMPONENTS.values() for name in c.binary_names)
    raise ComponentError(f"unknown testbed binary {binary_name}; known: {known}")
