from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.loader import load_manifests


@pytest.fixture
def graph_of(tmp_path: Path) -> Callable[[str], ResourceGraph]:
    def build(text: str) -> ResourceGraph:
        folder = tmp_path / "manifests"
        folder.mkdir(exist_ok=True)
        (folder / "m.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return ResourceGraph(load_manifests([str(folder)]).documents)

    return build
