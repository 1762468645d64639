"""A cache of decoded CRD files, keyed by their content: the CRD paths hold megabytes of YAML (5.4 MB for the pinned
Karpenter, KEDA and Prometheus Operator CRDs) that every run would otherwise decode again with the line-tracking
reader (about 1.5 s of CPU, the largest part of a small run's start-up).

What is cached is exactly what `read_documents` gives for the file, reduced to what the CRD registry reads: per
document its line and value, or the first decoding error (line and message). The key is the SHA-256 of the file's
bytes together with a fingerprint of the code that decodes them (the reader, the limits and this module by their
own bytes, the Python and PyYAML versions, whether libyaml is used), so an edited CRD file or a changed reader is
decoded afresh: never a stale entry. Entries are written with `marshal` (plain values only: it cannot build objects
or run code) to a temporary name and renamed into place, so parallel runs never read a half-written entry; an
unreadable or corrupt entry is decoded again. The folder is $XDG_CACHE_HOME/gpu-policy/parsed-crds (default
~/.cache), `GPU_POLICY_PARSE_CACHE=0` turns the cache off, and a folder that cannot be written simply means no cache.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from gpu_policy.loading import limits, yaml_reader
from gpu_policy.loading.yaml_reader import YamlError, read_documents

CACHE_ENV = "GPU_POLICY_PARSE_CACHE"
_FORMAT = b"1"

Decoded = list[tuple[int, Any] | tuple[int, None, str]]
"""Per document (line, value); a decoding error is (line, None, message) and ends the list."""


def parse_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpu-policy" / "parsed-crds"


@lru_cache(maxsize=1)
def _code_fingerprint() -> bytes:
    digest = hashlib.sha256(_FORMAT)
    # the interpreter (marshal's format), PyYAML and whether libyaml parses are part of the decoding too
    digest.update(f"{sys.version}|{yaml.__version__}|{yaml_reader._BaseLoader.__name__}".encode())
    for module in (yaml_reader, limits):
        digest.update(Path(module.__file__ or "").read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.digest()


def _decode(text: str) -> Decoded:
    out: Decoded = []
    for item in read_documents(text):
        if isinstance(item, YamlError):
            out.append((item.line, None, item.message))
            break  # the registry stops at the first error
        out.append((item.line, item.value))
    return out


def decode_crd_file(data: bytes, text: str) -> Decoded:
    """What `read_documents(text)` gives (up to its first error), from the cache when this content was decoded
    before; `data` is the file's bytes, `text` the same decoded as UTF-8."""
    if os.environ.get(CACHE_ENV, "1") == "0":
        return _decode(text)
    key = hashlib.sha256(_code_fingerprint() + data).hexdigest()
    folder = parse_cache_dir()
    entry = folder / f"{key}.marshal"
    try:
        cached = marshal.loads(entry.read_bytes())
        if isinstance(cached, list):
            return cached
    except (OSError, EOFError, ValueError, TypeError):
        pass  # absent, unreadable or corrupt: decode again
    decoded = _decode(text)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".marshal")
        try:
            with os.fdopen(fd, "wb") as out:
                marshal.dump(decoded, out)
            os.replace(temporary, entry)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except (OSError, ValueError):
        pass  # no writable cache: the next run decodes again
    return decoded
