"""Drift is the difference between the live object and what applying the manifest would store (dry-run result):
bookkeeping the server changes on every write is not drift; any other field is, with its path."""

from __future__ import annotations

from gpu_policy.live.drift import Difference, differences


def test_equal_objects_and_bookkeeping_only_changes_are_not_drift() -> None:
    live = {"metadata": {"name": "a", "resourceVersion": "1", "generation": 1, "managedFields": [{"manager": "x"}],
                         "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 2}, "status": {"replicas": 2}}  # fmt: skip
    applied = {"metadata": {"name": "a", "resourceVersion": "2", "generation": 2, "managedFields": [],
                            "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"replicas": 2}, "status": {"replicas": 0}}  # fmt: skip
    assert list(differences(live, applied)) == []


def test_a_changed_leaf_an_added_field_and_a_resized_list_are_drift_with_their_paths() -> None:
    live = {"spec": {"max": 40, "triggers": [{"type": "prometheus", "metadata": {"threshold": "5"}}], "tags": [1]}}
    applied = {"spec": {"max": 10, "triggers": [{"type": "prometheus", "metadata": {"threshold": "7"}}],
                        "tags": [1, 2], "fallback": {"replicas": 3}}}  # fmt: skip
    assert list(differences(live, applied)) == [
        Difference(("spec", "max"), 40, 10),
        Difference(("spec", "triggers", 0, "metadata", "threshold"), "5", "7"),
        Difference(("spec", "tags"), [1], [1, 2]),
        Difference(("spec", "fallback"), None, {"replicas": 3}),
    ]
