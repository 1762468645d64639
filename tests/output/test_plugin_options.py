"""The pytest plugin's options are named as `gpu-policy check`'s (issue 10: `--gpu-policy-report` vs `--report`):
every option that shapes the run exists under the same name in both; only what belongs to one of them differs."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

from gpu_policy.cli import _parser

CLI_ONLY = {"--format", "--output", "--compact", "--verbose", "--allow-empty", "--debug", "--fail-on"}
"""How the command reports and exits; pytest has its own (-v, --junitxml, exit codes)."""
PYTEST_OWN = {"-k", "-m", "--help", "-v"}
PLUGIN_ONLY = {"--manifests", "--no-bundled-features"}
"""pytest reads a bare path as a test path: the manifests need an option; the bundled suite can be left out."""


def _cli_options() -> set[str]:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    check = sub.choices["check"]
    return {o for a in check._actions for o in a.option_strings if o.startswith("--")} - {"--help"}


def _plugin_options() -> set[str]:
    # the plugin loads through its `pytest11` entry point, as in any repository
    done = subprocess.run([sys.executable, "-m", "pytest", "--help"],
                          capture_output=True, text=True, timeout=300, check=True)
    section = done.stdout.split("gpu-policy: GPU platform policy checks:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\s+(--[a-z][a-z-]*)", section, re.M))


def test_plugin_and_cli_name_the_same_options_the_same_way() -> None:
    cli, plugin = _cli_options(), _plugin_options()
    assert {"--report", "--today", "--only", "--skip", "--env", "--exclude", "--complete"} <= plugin
    assert plugin - PLUGIN_ONLY == cli - CLI_ONLY - PYTEST_OWN - {"--no-complete"}, (
        sorted(plugin - PLUGIN_ONLY - cli), sorted(cli - CLI_ONLY - PYTEST_OWN - plugin - {"--no-complete"}))
    assert "--gpu-policy-report" not in plugin  # the old names still work, unlisted
