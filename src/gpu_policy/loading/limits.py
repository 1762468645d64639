"""The bounds that keep loading safe on untrusted input (a pull request): one place, one dataclass.

Every limit is enforced before or while the work it bounds is done (never after), and what it refuses is reported
as a finding or listed as not checked with the reason. Tests pass small limits instead of generating huge inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 32 * MIB
    """A file (or stdin) larger than this is refused; at most this + 1 byte is ever read. The API server refuses
    request bodies over 3 MiB, so a manifest file ten times that is a mistake, not a manifest."""
    max_nodes_per_document: int = 1_000_000
    """Values (scalars, mappings, sequences) one document may hold: counted as the parser builds the node tree
    (written values) and again after alias expansion; ~4 s and ~0.5 GB of parsing at the limit."""
    max_nodes_per_file: int = 2_000_000
    """Values a whole file may hold, all its documents together; the documents after the limit are not read."""
    max_documents_per_file: int = 10_000
    """Documents one file may hold (a rendered platform of hundreds of objects is far below); the rest of the
    file is not read. Bounds the per-document work and the findings one file can produce."""
    max_total_bytes: int = 128 * MIB
    """Text read in one run, all files, stdin and kustomize output together; files after it are listed as not
    checked."""
    max_alias_expansion_ratio: int = 100
    """go-yaml refuses 'excessive aliasing' the same way: expanded values may not dwarf the values written."""
    kubectl_timeout_seconds: float = 60.0
    """`kubectl kustomize` is killed (its whole process group) after this long."""
    max_kubectl_output_bytes: int = 32 * MIB
    """`kubectl kustomize` output past this is not read; kubectl is killed and the kustomization refused."""
    max_kustomize_expansions: int = 10_000
    """Kustomizations, counted as kustomize would build them (a base listed twice counts twice), that one
    kustomization may pull in: a chain of bases each listed twice grows exponentially and is refused before
    kubectl runs."""
    max_walk_entries: int = 200_000
    """Folder entries visited under one input path; past this the rest of the folder is listed as not checked."""
    max_placement_pairs: int = 100_000
    """NodePools × pod templates whose placement (can this pod land on that pool, on which instance types) the
    rules judge (graph/nodes/budget.py). Past it those rules are listed as not evaluated and one finding says
    why; the loader's limits bound the rest of the run linearly."""


DEFAULT_LIMITS = Limits()


def shown_size(size: int) -> str:
    """`32 MiB`, or `150 bytes` under a MiB (tests use small limits)."""
    return f"{size // MIB} MiB" if size >= MIB else f"{size} bytes"
