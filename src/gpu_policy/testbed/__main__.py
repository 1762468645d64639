"""`python -m gpu_policy.testbed build|up|down|status` (the same as `gpu-policy testbed ...`)."""

from __future__ import annotations

import argparse
import sys

from gpu_policy.testbed.command import configure, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpu_policy.testbed")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
