"""Every drill is a @drill scenario, and every drill has broken variants that tests/drills runs."""

from __future__ import annotations

from gpu_policy.drills.registry import all_drills
from tests.drills.conftest import variants
from tests.feature_catalogue import scenarios


def test_every_drill_is_a_drill_scenario_and_every_drill_scenario_a_drill() -> None:
    steps = {step for s in scenarios() if "drill" in s.tags for step in s.steps}
    named = {step.split()[1] for step in steps if step.endswith("drill passes on the manifests under test")}
    assert named == set(all_drills())
    titles = {s.name for s in scenarios() if "drill" in s.tags}
    assert titles == {spec.title for spec in all_drills().values()}


def test_every_drill_lists_its_variants_and_each_exists() -> None:
    on_disk = {(v.drill, v.name) for v in variants()}
    declared = {(spec.name, name) for spec in all_drills().values() for name in spec.variants}
    assert declared == on_disk
    assert all(spec.variants for spec in all_drills().values())
