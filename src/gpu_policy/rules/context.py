"""What a check can see: the indexed graph, the policy in force, whether the set is complete, and a per-run memo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.policy.loader import PolicySet

if TYPE_CHECKING:
    from gpu_policy.live.state import LiveState
    from gpu_policy.loading.loader import LoadResult
    from gpu_policy.rules.registry import Violation

T = TypeVar("T")


@dataclass(frozen=True)
class Unresolved:
    """A reference whose target is not in the set: not checked (the target may live in a chart, Terraform or another
    repository), unless the set is declared complete."""

    doc: Document
    path: FieldPath
    message: str


@dataclass
class CheckContext:
    graph: ResourceGraph
    policy: PolicySet
    load: LoadResult | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Run options checks may read: `ignore_missing_schemas`, `crd_paths`, `schema_validator`, ..."""
    complete: bool = False
    """The user declared the set complete (`--complete`, `complete: true`): a reference to an object that is not in
    the set is then a defect. Otherwise it is listed as not checked."""
    live: LiveState | None = None
    """The running cluster (`--live`): its objects with status, context, `prometheus_url`. None in a static run:
    runtime rules then judge nothing and their scenarios skip with `live.state.NEEDS_LIVE`."""
    unresolved: list[Unresolved] = field(default_factory=list)
    _unresolved_seen: set[tuple[int, FieldPath, str]] = field(default_factory=set, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute a shared derived value once per run (several rules read the same index)."""
        if key not in self._memo:
            self._memo[key] = compute()
        value: T = self._memo[key]
        return value

    def missing(self, doc: Document, path: FieldPath, message: str, *, fix: str | None = None) -> Iterator[Violation]:
        """Report a reference to an object absent from the set.

        `message` says what references what, e.g. "ScaledObject inference/a targets Deployment inference/a, which is
        not in the set". With a complete set it is a violation of the calling rule; otherwise it is recorded as not
        checked (once) and nothing is yielded. Use as `yield from ctx.missing(...)`.
        """
        from gpu_policy.rules.registry import Violation

        if self.complete:
            yield Violation(doc, message, path=path, fix=fix)
            return
        key = (id(doc), tuple(path), message)
        if key not in self._unresolved_seen:
            self._unresolved_seen.add(key)
            self.unresolved.append(Unresolved(doc, tuple(path), message))
