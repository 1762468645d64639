"""Decoding on several processes (loading/parallel.py) gives exactly what the serial path gives: the same documents
with the same lines, the same load findings and notes, on every fixture set, and the same findings end to end."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gpu_policy.engine import run_engine
from gpu_policy.loading.limits import DEFAULT_LIMITS
from gpu_policy.loading.loader import LoadResult, load_manifests
from gpu_policy.loading.parallel import PARALLEL_MIN_BYTES, effective_jobs, read_all
from gpu_policy.loading.yaml_reader import read_raw
from tests.fixture_sets import discover

SETS = discover()


def _loaded(result: LoadResult) -> list[Any]:
    return [
        [(d.obj, d.source, d.line, d.index, d.positions) for d in result.documents],
        result.findings, result.not_checked, result.sources,
    ]


def test_every_fixture_set_loads_the_same_on_two_processes() -> None:
    # all sets in one load: one pool, every file of every set decoded by a worker
    paths = [str(fixture.manifests) for fixture in SETS]
    serial = load_manifests(paths, jobs=1)
    parallel = load_manifests(paths, jobs=2)
    assert _loaded(parallel) == _loaded(serial)
    assert len(serial.documents) > 1000 and serial.findings  # the sets hold objects and broken files


@pytest.mark.parametrize("name", ["load-malformed-yaml", "load-yaml-bomb", "load-duplicate-key",
                                  "load-duplicate-object", "workload-cannot-land", "keda-query-reads-other-pods"])
def test_findings_are_the_same_with_one_or_two_processes(name: str) -> None:
    fixture = next(s for s in SETS if s.name == name)
    serial = run_engine(dataclasses.replace(fixture.options(), jobs=1))
    parallel = run_engine(dataclasses.replace(fixture.options(), jobs=2))
    assert parallel.findings == serial.findings
    assert parallel.not_checked == serial.not_checked
    assert serial.findings or serial.not_checked  # these sets are chosen because they report something


def test_errors_and_documents_come_back_in_file_order() -> None:
    texts = [f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n---\n"
             + ("a: [\n" if i % 3 == 0 else "b: 1\n") for i in range(20)]
    serial = [read_raw(t, DEFAULT_LIMITS) for t in texts]
    parallel = read_all(texts, DEFAULT_LIMITS, jobs=2)
    assert [[(r.value, r.line, r.end_line, r.positions) for r in raws] for raws, _ in parallel] == \
        [[(r.value, r.line, r.end_line, r.positions) for r in raws] for raws, _ in serial]
    assert [[(e.message, e.line) for e in errors] for _, errors in parallel] == \
        [[(e.message, e.line) for e in errors] for _, errors in serial]
    assert sum(len(errors) for _, errors in serial) == 7  # files 0, 3, ..., 18 end in a syntax error


def test_automatic_jobs_stay_serial_for_a_small_set() -> None:
    assert effective_jobs(0, PARALLEL_MIN_BYTES - 1) == 1
    assert effective_jobs(3, 10) == 3
    assert effective_jobs(0, PARALLEL_MIN_BYTES) >= 1
