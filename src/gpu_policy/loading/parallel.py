"""Decoding the YAML of many files on several cores: the same `read_raw` per file, run in worker processes.

Only the decoding moves (the largest per-object cost of a big set); which files are read, in what order, and
everything done with their documents stay in the main process, and results are taken back in the files' order,
so findings are byte-identical to the serial run (`--jobs 1`, which never starts a process; the tests compare both
on the fixture sets). A worker returns plain tuples: `YamlError` does not pickle with its line.

`jobs=0` (`gpu-policy check --jobs 0`) means: every core when the set is large enough for workers to pay
(`PARALLEL_MIN_BYTES` of text), else serial. Worker processes are forked where the platform allows (no re-import),
else spawned. `gpu-policy check` decodes serially by default (`--jobs 1`): the main process spends about as long
unpickling the workers' documents as it would decoding them (0.9 s of unpickling against 2 s of decoding for the
20k-object benchmark set), so on two cores the parallel run took more CPU and no less wall time (README "Speed").
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from gpu_policy.loading.limits import Limits
from gpu_policy.loading.yaml_reader import RawDocument, YamlError, read_raw

PARALLEL_MIN_BYTES = 4 * 1024 * 1024
"""Below this much text one process decodes it faster than starting workers and sending documents back."""
CHUNK_FILES = 8
"""Files per task sent to a worker: fewer round trips, and still many tasks for the cores to share."""

_Decoded = tuple[list[RawDocument], list[YamlError]]
_Plain = tuple[list[tuple[Any, int, int, dict[Any, int]]], list[tuple[str, int]]]


def _read_plain(text: str, limits: Limits) -> _Plain:
    raws, errors = read_raw(text, limits)
    return ([(r.value, r.line, r.end_line, r.positions) for r in raws], [(e.message, e.line) for e in errors])


def _read_chunk(texts: list[str], limits: Limits) -> list[_Plain]:
    return [_read_plain(text, limits) for text in texts]


def _restored(plain: _Plain) -> _Decoded:
    raws, errors = plain
    return ([RawDocument(value=v, line=line, end_line=end, positions=p) for v, line, end, p in raws],
            [YamlError(message, line) for message, line in errors])


def effective_jobs(jobs: int, total_bytes: int) -> int:
    """How many processes decode: `jobs` when given (>= 1), else every core for a large set and 1 for a small one."""
    if jobs >= 1:
        return jobs
    if total_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def read_all(texts: Sequence[str], limits: Limits, jobs: int) -> list[_Decoded]:
    """`read_raw(text, limits)` for every text, in order, on `jobs` processes (this one alone when 1)."""
    workers = effective_jobs(jobs, sum(len(t) for t in texts))
    if workers <= 1 or len(texts) < 2:
        return [read_raw(text, limits) for text in texts]
    chunks = [list(texts[i:i + CHUNK_FILES]) for i in range(0, len(texts), CHUNK_FILES)]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)),
                             mp_context=multiprocessing.get_context(method)) as pool:
        done = pool.map(_read_chunk, chunks, [limits] * len(chunks))
        return [_restored(plain) for chunk in done for plain in chunk]
