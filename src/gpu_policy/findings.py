"""The one output type of every check: a Finding says which resource, where, what, why and how to fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, order=True)
class Finding:
    rule_id: str
    resource: str
    """`Kind/name` for cluster-scoped objects, `Kind/namespace/name` otherwise; `<file>` when no object."""
    message: str
    """What is wrong, in the resource's own terms."""
    file: str | None = None
    line: int | None = None
    why: str = ""
    fix: str = ""
    severity: Severity = Severity.ERROR
    path: str = ""
    """Dotted field path inside the resource (`spec.template.spec.taints[0]`), empty for the whole object."""
    details: tuple[str, ...] = field(default=(), compare=False)
    """Extra lines (a promtool diff, a simulation trace) shown under the message."""
    rule_class: str = "correctness"
    """`correctness` (wrong on any cluster) or `policy` (an organisation's choice, judged only where configured)."""

    @property
    def location(self) -> str:
        if self.file is None:
            return "<unknown>"
        return f"{self.file}:{self.line}" if self.line else self.file

    def render(self) -> str:
        head = f"{self.location}: {self.severity.value}: [{self.rule_id}] {self.resource}"
        if self.path:
            head += f" ({self.path})"
        lines = [head, f"  what: {self.message}"]
        if self.why:
            lines.append(f"  why:  {self.why}")
        if self.fix:
            lines.append(f"  fix:  {self.fix}")
        lines.extend(f"  | {d}" for d in self.details)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        data["details"] = list(self.details)
        return data
