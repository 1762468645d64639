"""Shared helpers for the schema-layer tests: one validator for the pinned CRDs, documents from YAML text."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_policy.loading.document import Document
from gpu_policy.loading.yaml_reader import to_documents
from gpu_policy.schemas.validator import ManifestValidator

SHARED_CRDS = Path(__file__).resolve().parents[2].parent / "shared" / "crds"


def doc_of(text: str) -> Document:
    docs, errors = to_documents(text, "test.yaml")
    assert not errors and len(docs) == 1, errors
    return docs[0]


@pytest.fixture(scope="session")
def validator() -> ManifestValidator:
    assert SHARED_CRDS.is_dir(), f"the pinned CRDs are expected at {SHARED_CRDS}"
    return ManifestValidator("1.33", [SHARED_CRDS], use_cache=False)


def failures(issues: list, *kinds: str) -> list:
    wanted = kinds or ("invalid", "unknown-field", "cel", "missing-schema")
    return [i for i in issues if i.kind in wanted]
