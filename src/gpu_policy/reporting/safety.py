"""Output safety: what a finding prints can neither leak a secret of the set nor drive the reader's terminal or CI.

- Redaction: the values of Secret `data`/`stringData` and of container `env[].value` are collected from the set
  once per run (except the variables the rules judge as configuration, `CONFIG_ENV_PREFIXES`: the DCGM exporter's
  `DCGM_*` settings are read and quoted by the monitoring rules and hold no secret); every occurrence of one of
  them (4 characters or more, and not a bare boolean or number, which would redact unrelated text) in a message
  or detail line becomes `<redacted>`. A finding located AT such a
  field has every string inside that field's value redacted, whatever its length (schema messages echo the value).
- Escaping: control characters (C0, DEL, C1, U+2028/2029 line separators, bidi overrides) are written as `\\n`,
  `\\x1b`, `\\u202e`..., so a `metadata.name` holding a newline plus `::error::` or an ESC sequence prints as text.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from gpu_policy.findings import Finding

if TYPE_CHECKING:
    from gpu_policy.loading.document import Document, FieldPath

REDACTED = "<redacted>"
MIN_REDACTED_LENGTH = 4
_TRIVIAL = re.compile(r"^(?:true|false|yes|no|on|off|null|[-+]?\d+(?:\.\d+)?)$", re.IGNORECASE)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NOISE_LINES = (
    re.compile(r"^\s*\|?\s*SUCCESS\s*$"),
    re.compile(r"^\s*During handling of the above exception, another exception occurred:?\s*$"),
    re.compile(r"^\s*The above exception was the direct cause of the following exception:?\s*$"),
)


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """One printable line: control characters and line separators written as escapes."""
    return _CONTROL.sub(_escape_char, text)


def is_noise(line: str) -> bool:
    """Lines of tool chatter that say nothing about the finding (promtool `SUCCESS`, exception chaining)."""
    return any(p.match(line) for p in _NOISE_LINES)


def _strings(value: Any, keys: bool = False) -> Iterator[str]:
    """The string (and scalar) leaves of a value; with `keys`, mapping keys too."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if keys:
                yield from _strings(key, keys)
            yield from _strings(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, keys)
    elif isinstance(value, bool | int | float):
        yield str(value)


def _secret_forms(value: str) -> set[str]:
    """The value as written, as JSON/YAML would quote it, and (for base64 Secret data) decoded."""
    forms = {value, json.dumps(value)[1:-1]}
    return forms


def _decoded(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if text.isprintable() else None


CONFIG_ENV_PREFIXES = ("DCGM_",)
"""Environment variables whose values are tool configuration the rules judge and quote, never secrets."""


def _is_config_env(name: Any) -> bool:
    return isinstance(name, str) and name.startswith(CONFIG_ENV_PREFIXES)


def _env_values(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "env" and isinstance(item, list):
                for entry in item:
                    if isinstance(entry, dict) and not _is_config_env(entry.get("name")):
                        yield from _strings(entry.get("value"))
            else:
                yield from _env_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _env_values(item)


def sensitive_path(doc: Document | None, path: FieldPath) -> bool:
    """A field whose value must never be echoed: Secret data/stringData, or a container's env (its values)."""
    if doc is None or not path:
        return False
    if doc.kind == "Secret" and path[0] in ("data", "stringData"):
        return True
    if "env" not in path:
        return False
    at = len(path) - 1 - path[::-1].index("env")
    entry = doc.get(path[: at + 2]) if at + 1 < len(path) else None
    return not (isinstance(entry, dict) and _is_config_env(entry.get("name")))


class Redactor:
    """Replaces the set's secret values in text. Built once per run from the documents."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        candidates: list[str] = []
        for value in secrets:
            candidates.append(value)
            if "\n" in value:  # a message may quote one line of a multi-line secret (a key, a certificate)
                candidates.extend(line.strip() for line in value.splitlines() if len(line.strip()) >= 8)
        for value in candidates:
            if len(value) >= MIN_REDACTED_LENGTH and not _TRIVIAL.match(value):
                forms |= {f for f in _secret_forms(value) if len(f) >= MIN_REDACTED_LENGTH}
        # longest first, so a secret that contains another is replaced whole
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) if forms else None
        )

    @classmethod
    def from_documents(cls, documents: Iterable[Document]) -> Redactor:
        secrets: list[str] = []
        for doc in documents:
            if not doc.is_object:
                continue
            if doc.kind == "Secret":
                for key in ("data", "stringData"):
                    block = doc.obj.get(key)
                    if isinstance(block, dict):
                        for value in block.values():
                            secrets.extend(_strings(value))
                            decoded = _decoded(value) if key == "data" and isinstance(value, str) else None
                            if decoded:
                                secrets.append(decoded)
                    else:
                        secrets.extend(_strings(block))
            secrets.extend(_env_values(doc.obj))
        return cls(secrets)

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)

    def at_path(self, text: str, doc: Document | None, path: FieldPath) -> str:
        """Redact every string of the value at `path` (a schema message echoes it), whatever its length."""
        if not sensitive_path(doc, path) or doc is None:
            return text
        value = doc.get(path)
        if isinstance(value, dict | list):
            text = text.replace(json.dumps(value), REDACTED).replace(json.dumps(value, ensure_ascii=False), REDACTED)
        for item in sorted(set(_strings(value, keys=True)), key=len, reverse=True):
            if item:
                for form in (json.dumps(item), json.dumps(item, ensure_ascii=False), repr(item), item):
                    text = text.replace(form, REDACTED)
        return text


def safe_finding(finding: Finding, redact: Redactor, doc: Document | None = None,
                 path: FieldPath = ()) -> Finding:
    """The finding as it may be printed anywhere: secrets redacted, one line per field, no control characters,
    no tool chatter. A multi-line message keeps its first line; the rest goes first among the details."""
    message_lines = redact.at_path(redact(finding.message), doc, path).splitlines() or [""]
    details: list[str] = []
    for line in [*message_lines[1:], *finding.details]:
        for part in redact.at_path(redact(line), doc, path).splitlines():
            if not is_noise(part):
                details.append(escape_control(part))
    return dataclasses.replace(
        finding,
        resource=escape_control(redact(finding.resource)),
        message=escape_control(message_lines[0]),
        file=escape_control(finding.file) if finding.file is not None else None,
        path=escape_control(finding.path),
        why=escape_control(finding.why),
        fix=escape_control(redact(finding.fix)),
        details=tuple(details),
    )
