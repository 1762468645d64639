"""`gpu-policy drill NAME [--manifests PATH ...] [--report DIR] [--timeout S] [--kubeconfig PATH]` and `--list`.

Exit codes: 0 the drill passed, 1 it failed (one line: resource, what, why, fix), 2 it could not run or give a
verdict (missing testbed or Prometheus, bad manifests, its timeout passed), 130 interrupted (after cleaning up).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpu_policy.drills.base import DrillFailure, DrillInterrupted
from gpu_policy.errors import GpuPolicyError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "drill",
        help="replay a behaviour (alerts, surge, scale-down, ...) with real controllers on the testbed",
        description="Run one behaviour drill: real Prometheus/KEDA/HPA on 127.0.0.1 replay a scenario of the "
        "manifests and the result is compared with the policy (and the simulator). Mutates only what it creates, "
        "in its own labelled namespaces; always cleans up, also on Ctrl-C.",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="the drill (see --list)")
    parser.add_argument("--list", action="store_true", help="list the drills with their duration and exit")
    parser.add_argument("--manifests", action="append", default=[], metavar="PATH",
                        help="manifests (repeatable; each later set replaces objects of the same kind, namespace "
                             "and name); default: the bundled reference manifests")
    parser.add_argument("--report", metavar="DIR", help="write drills/<name>.json and the drill's CSV/SVG under DIR")
    parser.add_argument("--timeout", type=float, metavar="S", help="stop (and clean up) after S seconds "
                        "(default: the drill's own bound)")
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="the testbed's kubeconfig (default: the testbed's state folder); only 127.0.0.0/8 "
                             "servers are accepted")
    return parser


def run(args: argparse.Namespace) -> int:
    from gpu_policy.drills.registry import all_drills
    from gpu_policy.drills.runner import run_drill

    if args.list or not args.name:
        for spec in all_drills().values():
            print(f"{spec.name:<17} ~{spec.duration_seconds:>4} s  needs {', '.join(spec.needs):<22} {spec.title}")
        return 0 if args.list else 2
    try:
        result = run_drill(args.name, args.manifests, report_dir=Path(args.report) if args.report else None,
                           timeout=args.timeout, kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None)
    except DrillFailure as exc:
        print(f"gpu-policy drill {args.name}: FAILED: {exc.line()}", file=sys.stderr)
        return 1
    except DrillInterrupted as exc:
        print(f"gpu-policy drill {args.name}: interrupted ({exc}); cleaned up", file=sys.stderr)
        return 130
    except GpuPolicyError as exc:
        print(f"gpu-policy drill {args.name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"drill {args.name}: passed")
    for line in result.observations:
        print(f"  {line}")
    for path in result.files:
        print(f"  wrote {path}")
    return 0
