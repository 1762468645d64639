"""What every drill is made of: its metadata (`DrillSpec`), the failures it raises, and the `DrillContext` it runs
in (deadline, progress on stderr, cleanup stack, report folder, the manifests under test).

A drill is a function `run(ctx)` that mutates only what it creates (through `ctx`, which registers the undo of each
creation) and raises `DrillFailure` when the system does not behave as the policy says. Every wait goes through
`ctx.poll` / `ctx.sleep`, which stop at the drill's deadline, so a drill is bounded in time whatever happens.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

from gpu_policy.errors import GpuPolicyError
from gpu_policy.graph.graph import ResourceGraph
from gpu_policy.loading.document import Document

T = TypeVar("T")

DRILL_LABEL = "gpu-policy.dev/drill"
"""Label on every object a drill creates (namespaces first): `<drill name>`."""
RUN_LABEL = "gpu-policy.dev/drill-run"
"""Label naming the run (a random id), so cleanup deletes only this run's objects."""


class DrillFailure(AssertionError):
    """The system did not behave as the policy says. One line: resource, what, why, fix."""

    def __init__(self, resource: str, what: str, why: str, fix: str) -> None:
        self.resource, self.what, self.why, self.fix = resource, what, why, fix
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.resource}: {self.what}: {self.why}; fix: {self.fix}"


def located(doc: Document, path: tuple[str | int, ...] = ()) -> str:
    """`Kind/namespace/name (file:line)` of `doc`, at the line of `path` (or its nearest ancestor) when given."""
    return f"{doc.ref} ({doc.source}:{doc.line_of(path)})"


class DrillUnavailable(GpuPolicyError):
    """The drill cannot run here (no testbed, no Prometheus binary, a controller missing): exit 2, not a verdict."""


class DrillTimeout(GpuPolicyError):
    """The drill's own deadline passed before it could give a verdict (exit 2: raise --timeout, or the machine is
    overloaded)."""


class DrillInterrupted(BaseException):
    """SIGINT or SIGTERM arrived: the runner cleans up and exits 130 (a BaseException, so no `except Exception`
    in a drill swallows it)."""


@dataclass(frozen=True)
class DrillSpec:
    name: str
    title: str
    """What the drill proves, as a sentence (the @drill scenario's title)."""
    summary: str
    duration_seconds: int
    """Wall time of a passing run on the project's 2-core CI machine (README lists it: measured, or for a drill not
    yet run, its set-up plus the trace's length). Dominated by the policies' own waits (alert `for`, stabilisation
    windows), which no drill shortens."""
    timeout_seconds: int
    """The default bound (`--timeout`): the drill stops with DrillTimeout past it, cleaning up."""
    needs: tuple[str, ...]
    """What must exist to run it: `prometheus` (Debian's binary), `testbed`, `keda`, `karpenter`."""
    run: Callable[[DrillContext], DrillResult]
    variants: tuple[str, ...] = ()
    """Broken variants (folders under fixtures/drills/) that must make it fail."""


@dataclass
class DrillResult:
    """What a passing drill measured (printed, and written to --report as drill-<name>.json)."""

    observations: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)


@dataclass
class DrillContext:
    spec: DrillSpec
    graph: ResourceGraph
    """The manifests under test (the reference set unless --manifests says otherwise)."""
    work_dir: Path
    """A private folder for the drill's processes (state, logs); removed after the run unless --keep."""
    deadline: float
    """time.monotonic() value past which the drill stops."""
    report_dir: Path | None = None
    kubeconfig: Path | None = None
    run_id: str = ""
    progress: TextIO = field(default_factory=lambda: sys.stderr)
    started: float = field(default_factory=time.monotonic)
    cleanups: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    # -- progress ---------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        print(f"drill {self.spec.name} [{self.elapsed():5.0f} s] {message}", file=self.progress, flush=True)

    # -- bounded waiting --------------------------------------------------------------------------------------
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self, doing: str) -> None:
        if time.monotonic() >= self.deadline:
            raise DrillTimeout(
                f"drill {self.spec.name}: timed out after {self.elapsed():.0f} s while {doing} "
                f"(raise --timeout; this drill takes about {self.spec.duration_seconds} s)"
            )

    def sleep(self, seconds: float, doing: str = "waiting") -> None:
        end = min(time.monotonic() + seconds, self.deadline)
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        self.check_deadline(doing)

    def poll(
        self,
        probe: Callable[[], T | None],
        doing: str,
        within: float | None = None,
        interval: float = 1.0,
        on_expiry: Callable[[], Exception] | None = None,
    ) -> T:
        """Call `probe` until it returns something truthy, every `interval` seconds, for at most `within` seconds
        (then raise `on_expiry()`, a DrillFailure saying what did not happen) and never past the deadline."""
        intended = None if within is None else time.monotonic() + within
        end = self.deadline if intended is None else min(self.deadline, intended)
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() >= end:
                if intended is not None and intended <= self.deadline and on_expiry is not None:
                    raise on_expiry()
                self.check_deadline(doing)
                raise DrillTimeout(f"drill {self.spec.name}: {doing}: not done within {within or 0:.0f} s")
            time.sleep(min(interval, max(0.05, end - time.monotonic())))

    # -- the manifests under test ----------------------------------------------------------------------------
    def require(self, kind: str, name: str, namespace: str | None, purpose: str, fix: str) -> Document:
        """The set's object, or a DrillFailure naming it as missing, what the drill needs it for (`purpose`: "the
        drill interrupts the spot pool's nodes") and what to deploy (`fix`)."""
        found = self.graph.get(kind, name, namespace or "")
        if found is None:
            ref = f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"
            raise DrillFailure(ref, "not in the manifests", purpose, fix)
        return found

    # -- cleanup ----------------------------------------------------------------------------------------------
    def on_cleanup(self, what: str, undo: Callable[[], object]) -> None:
        """Register the undo of something the drill created; run newest first, always."""
        self.cleanups.append((what, undo))
