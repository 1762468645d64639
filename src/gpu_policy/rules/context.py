"""What a check can see: the indexed graph, the organisation's policies and a per-run memo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.policy.loader import PolicySet

if TYPE_CHECKING:
    from gpu_policy.loading.loader import LoadResult

T = TypeVar("T")


@dataclass
class CheckContext:
    graph: ResourceGraph
    policy: PolicySet
    load: LoadResult | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Run options checks may read: `ignore_missing_schemas`, `crd_paths`, `schema_validator`, ..."""
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute a shared derived value once per run (several rules read the same index)."""
        if key not in self._memo:
            self._memo[key] = compute()
        value: T = self._memo[key]
        return value
