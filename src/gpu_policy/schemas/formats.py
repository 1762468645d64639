"""String formats and value parsers shared by the core and CRD validators (and by the CEL library).

Each check mirrors what the API server does with the value:
- core kinds: Go's JSON decoding of the typed field (int32 overflow, invalid base64, RFC 3339 times and
  resource quantities fail to decode: k8s.io/apimachinery pkg/api/resource/quantity.go `ParseQuantity`,
  pkg/apis/meta/v1/time.go `UnmarshalJSON`);
- custom resources: kube-openapi's strfmt registry (k8s.io/kube-openapi pkg/validation/strfmt), which the CRD
  validator applies to STRING values only (`formatValidator.Applies` checks `kind == reflect.String`), so
  `format: int32` on an integer is not range-checked for custom resources.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

QUANTITY_RE = re.compile(
    r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)
"""A resource.Quantity: number, then a binary SI, decimal SI or decimal exponent suffix."""
QUANTITY_HELP = "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
"""The regular expression Kubernetes quotes in its own error message."""

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}

DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})?$")
"""strfmt.DateTime accepts RFC 3339 with or without fraction/zone; metav1.Time needs RFC 3339 with a zone."""
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
GO_DURATION_RE = re.compile(r"^[-+]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$")
"""Go's time.ParseDuration."""
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def parse_quantity(text: str) -> Decimal:
    """The value of a resource quantity string; ValueError when Kubernetes would refuse it."""
    if not QUANTITY_RE.match(text):
        raise ValueError(f"quantities must match the regular expression {QUANTITY_HELP}")
    match = re.match(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(.*)$", text)
    assert match is not None  # QUANTITY_RE matched
    number, suffix = match.group(1), match.group(2)
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets decimals through
        raise ValueError(f"invalid quantity number {number!r}") from exc
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    return value * (Decimal(10) ** int(suffix[1:]))  # decimal exponent e3 / E-2


def is_quantity(text: Any) -> bool:
    return isinstance(text, str) and QUANTITY_RE.match(text) is not None


def is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_uri(text: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) is not None


def _is_mac(text: str) -> bool:
    return re.match(r"^(?:[0-9A-Fa-f]{2}[:-]){5,7}[0-9A-Fa-f]{2}$", text) is not None


CRD_STRING_FORMATS: dict[str, Callable[[str], bool]] = {
    # k8s.io/kube-openapi pkg/validation/strfmt default.go: the formats apiextensions accepts in a schema.
    "date-time": lambda s: DATE_TIME_RE.match(s) is not None,
    "datetime": lambda s: DATE_TIME_RE.match(s) is not None,
    "date": lambda s: DATE_RE.match(s) is not None,
    "duration": lambda s: GO_DURATION_RE.match(s) is not None,
    "byte": is_base64,
    "uuid": lambda s: UUID_RE.match(s) is not None,
    "ipv4": lambda s: _is_ip(s, 4),
    "ipv6": lambda s: _is_ip(s, 6),
    "cidr": _is_cidr,
    "hostname": lambda s: HOSTNAME_RE.match(s) is not None,
    "email": lambda s: EMAIL_RE.match(s) is not None,
    "uri": _is_uri,
    "mac": _is_mac,
}


_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")


def go_regex(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 (Go) pattern with Python's `re`: the syntax the CRDs use is shared, except RE2's
    end-of-text `\\z` (Python: `\\Z`) and flag groups like `^(?i)` that RE2 accepts anywhere but Python only
    at the start (moved to the front: for the CRD patterns, which put them right after `^`, the meaning is the
    same)."""
    translated = pattern.replace(r"\z", r"\Z")
    try:
        return re.compile(translated)
    except re.error:
        flags = "".join(sorted(set("".join(_INLINE_FLAGS.findall(translated))) - {"U"}))
        stripped = _INLINE_FLAGS.sub("", translated)
        return re.compile(f"(?{flags}){stripped}" if flags else stripped)
