"""`gpu-policy testbed build|up|down|status` (wired into the main CLI with add_parser/run)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpu_policy.testbed import build as build_module
from gpu_policy.testbed import cluster
from gpu_policy.testbed.api import ApiError
from gpu_policy.testbed.build import BuildError
from gpu_policy.testbed.components import COMPONENTS, OPTIONAL, ComponentError, parse_with
from gpu_policy.testbed.pins import PinsError, load_pins
from gpu_policy.testbed.pki import PKIError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "testbed",
        help="a local Kubernetes control plane (etcd, API server, controller manager, scheduler, kwok) on 127.0.0.1",
        description="Build and run the pinned upstream control plane as local processes on 127.0.0.1, with fake "
        "GPU nodes (kwok). State folder: --state-dir, else $GPU_POLICY_TESTBED_STATE, else "
        "~/.local/state/gpu-policy/testbed.",
    )
    configure(parser)
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(
        dest="testbed_action", required=True, metavar="{build,up,down,status,gomod,exporter}"
    )
    build = actions.add_parser("build", help="build the pinned binaries into ~/.cache/gpu-policy/testbed/<key>/bin")
    all_names = ", ".join(name for c in COMPONENTS.values() for name in c.binary_names)
    build.add_argument(
        "binaries",
        nargs="*",
        metavar="BINARY",
        help=f"only these ({all_names}); default: all missing ones of the core and of --with",
    )
    with_help = (f"also the optional component(s) {', '.join(OPTIONAL)} (repeat, or a comma list): "
                 + "; ".join(f"{n}: {COMPONENTS[n].description}" for n in OPTIONAL))
    build.add_argument("--with", dest="with_components", action="append", metavar="COMPONENT", help=with_help)
    build.add_argument("--print-bin-dir", action="store_true", help="print the binaries' folder and exit")
    actions.add_parser("gomod", help="maintainers: regenerate testbed/*/go.mod from testbed/pins.yaml (network)")
    for name, text in (
        ("up", "start the testbed and print how to use it"),
        ("down", "stop it and remove its files"),
        ("status", "say what runs"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("--state-dir", type=Path, default=None, help="the testbed's state folder")
        if name == "up":
            sub.add_argument("--with", dest="with_components", action="append", metavar="COMPONENT",
                             help=with_help)  # fmt: skip
        if name == "status":
            sub.add_argument("--json", action="store_true", help="machine-readable output")
    from gpu_policy.testbed import dcgm_exporter

    dcgm_exporter.configure(actions.add_parser(
        "exporter", help="a synthetic DCGM exporter on 127.0.0.1 serving a trace file (Ctrl-C stops it)"
    ))


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (cluster.TestbedError, BuildError, PinsError, PKIError, ApiError, TimeoutError, OSError,
            ComponentError) as exc:
        print(f"gpu-policy testbed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpu-policy testbed: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    action = args.testbed_action
    if action == "build":
        components = parse_with(args.with_components)
        if args.print_bin_dir:
            for name in ("core", *components):
                print(build_module.layout(component=name).bin_dir)
            return 0
        pins = load_pins()
        versions = ", ".join(f"{pin} {pins.version(pin)}" for name in ("core", *components)
                             for pin in COMPONENTS[name].pins)  # fmt: skip
        print(f"testbed pins: {versions}", file=sys.stderr)
        for target in build_module.build_components(components, list(args.binaries) or None).values():
            print(target.bin_dir)
        return 0
    if action == "exporter":
        from gpu_policy.testbed import dcgm_exporter

        return dcgm_exporter.run(args)
    if action == "gomod":
        build_module.regenerate_modules()
        return 0
    if action == "up":
        started = cluster.up(args.state_dir, components=parse_with(args.with_components))
        print(f"testbed ready in {started.ready_seconds} s: API server {started.server}")
        print(f"  export KUBECONFIG={started.kubeconfig}")
        print("  kubectl get nodes")
        print("  gpu-policy testbed down   # stops every process and removes " + str(started.directory))
        return 0
    if action == "down":
        cluster.down(args.state_dir)
        return 0
    state, rows = cluster.status(args.state_dir)
    if args.json:
        print(
            json.dumps(
                {
                    "running": bool(rows) and all(alive for _, alive in rows),
                    "stateDir": str(state.directory) if state else None,
                    "server": state.server if state and "kube-apiserver" in state.ports else None,
                    "kubeconfig": str(state.kubeconfig) if state else None,
                    "processes": [{"name": r.name, "pid": r.pid, "running": alive, "log": r.log} for r, alive in rows],
                },
                indent=2,
            )
        )
        return 0 if rows and all(alive for _, alive in rows) else 1
    if state is None:
        print("no testbed (nothing recorded in the state folder)")
        return 1
    print(f"testbed in {state.directory}: API server {state.server}, kubeconfig {state.kubeconfig}")
    for record, alive in rows:
        print(f"  {record.name:<24} pid {record.pid:<8} {'running' if alive else 'NOT running'}  log {record.log}")
    return 0 if rows and all(alive for _, alive in rows) else 1
