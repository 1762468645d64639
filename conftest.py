"""Repository-level pytest setup: tests and CI read CRD schemas and DCGM collector lists from ../shared.

Users point these variables at their own copies; here they default to the pinned upstream files beside the repo.
"""

import os
from pathlib import Path

import pytest

_SHARED = Path(__file__).resolve().parent.parent / "shared"

for _variable, _folder in (("GPU_POLICY_CRD_PATH", "crds"), ("GPU_POLICY_DCGM_CSV_PATH", "dcgm-exporter")):
    if _variable not in os.environ and (_SHARED / _folder).is_dir():
        os.environ[_variable] = str(_SHARED / _folder)


# -- distribution over xdist workers ---------------------------------------------------------------------------------
# Tests that share something expensive run on the same xdist worker, one after the other: a testbed (one per
# package for tests/live and tests/controllers, one per module for the modules below, started by the first test that
# asks for it), or one `gpu-policy check` of a fixture set (tests/fixture_runs.py, read by the three modules below).
# `pytest -n N` without `--dist` schedules by these groups (each is started once per run instead of once per worker
# that happens to receive one of its tests); an explicit `--dist` is kept. Without xdist a group's tests are put next
# to each other. The groups come from node ids: pytest 9.2 ignores xdist 3.8's `xdist_group` renaming (it sets
# `item._nodeid`, which pytest no longer reads), so the marks alone would not group anything.
TESTBED_PACKAGES = {"tests/live/": "testbed-live", "tests/controllers/": "testbed-controllers"}
TESTBED_MODULES = ("tests/testbed/test_cluster.py", "tests/drills/test_replay_plumbing.py")
# The drills' modules are not grouped: each drill waits out real windows (minutes) while its testbed idles, so
# spreading them over the workers (a testbed each) finishes sooner than running them one after another.
FIXTURE_RUN_MODULES = ("tests/test_fixture_sets.py", "tests/test_fixture_exit_codes.py",
                       "tests/test_fixture_scenarios.py")


def shared_group(nodeid: str) -> str | None:
    """The group of tests sharing expensive work that `nodeid` belongs to, or None."""
    path = nodeid.split("::", 1)[0]
    for folder, group in TESTBED_PACKAGES.items():
        if path.startswith(folder):
            return group
    if path in TESTBED_MODULES:
        return "testbed-" + path
    if path in FIXTURE_RUN_MODULES and nodeid.endswith("]") and "[" in nodeid:
        return "fixture-" + nodeid[nodeid.index("[") + 1:-1]
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    if (config.pluginmanager.has_plugin("xdist") and getattr(config.option, "numprocesses", None)
            and getattr(config.option, "dist", "no") == "no"):
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedWorkScheduling(LoadGroupScheduling):  # type: ignore[misc]
        """loadgroup, with the groups of `shared_group` (each other test is its own unit, as in loadgroup)."""

        def _split_scope(self, nodeid: str) -> str:
            return shared_group(nodeid) or str(super()._split_scope(nodeid))

    return SharedWorkScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config.option, "dist", "no") != "no" or getattr(config, "workerinput", None) is not None:
        return  # xdist schedules the groups (a worker runs what it is sent, in that order)
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        group = shared_group(item.nodeid)
        if group is not None:
            first.setdefault(group, index)
    if first:
        order = {id(item): (first.get(shared_group(item.nodeid) or "", index), index)
                 for index, item in enumerate(items)}
        items.sort(key=lambda item: order[id(item)])
