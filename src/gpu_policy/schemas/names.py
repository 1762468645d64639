"""Object names as the API server checks them: `ValidateObjectMeta` with each kind's name function.

The OpenAPI schemas only say that `metadata.name` is a string; the API server also checks its form
(k8s.io/apimachinery pkg/api/validation/objectmeta.go `ValidateObjectMeta`, generic.go `NameIsDNSSubdomain`,
`NameIsDNSLabel`, `NameIsDNS1035Label`; pkg/util/validation/validation.go for the patterns):

- most kinds, and every custom resource (apiextensions-apiserver pkg/registry/customresource/validator.go passes
  `NameIsDNSSubdomain`): a DNS-1123 subdomain, at most 253 characters;
- Namespace (`ValidateNamespaceName` = `NameIsDNSLabel`): a DNS-1123 label, at most 63;
- Service (pkg/apis/core/validation `ValidateServiceName` = `NameIsDNS1035Label`): a DNS-1035 label (starts with a
  letter), at most 63;
- RBAC roles and bindings (pkg/apis/rbac/validation `ValidateRBACName` = `path.IsValidPathSegmentName`): anything but
  `.`, `..`, or a name with `/` or `%`;
- `metadata.namespace` of any object: a DNS-1123 label.
With `generateName`, the prefix is checked the same way, a trailing `-` allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from gpu_policy.loading.document import Document
from gpu_policy.schemas.issues import INVALID, SchemaIssue

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
RBAC_GROUP = "rbac.authorization.k8s.io"


def _pattern(pattern: re.Pattern[str], limit: int, what: str) -> Callable[[str], str | None]:
    def check(name: str) -> str | None:
        if len(name) > limit:
            return f"must be no more than {limit} characters ({what})"
        if not pattern.match(name):
            return f"must be {what}"
        return None

    return check


_subdomain = _pattern(
    _DNS1123_SUBDOMAIN, 253,
    "a lowercase RFC 1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or "
    "digit",
)
_label = _pattern(
    _DNS1123_LABEL, 63,
    "a lowercase RFC 1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
)
_dns1035 = _pattern(
    _DNS1035_LABEL, 63,
    "an RFC 1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit",
)


def _path_segment(name: str) -> str | None:
    if name in (".", ".."):
        return f"may not be {name!r}"
    for bad in ("/", "%"):
        if bad in name:
            return f"may not contain {bad!r}"
    return None


def name_check(group: str, kind: str) -> Callable[[str], str | None]:
    """The API server's name function for a kind."""
    if not group and kind == "Namespace":
        return _label
    if not group and kind == "Service":
        return _dns1035
    if group == RBAC_GROUP and kind in RBAC_KINDS:
        return _path_segment
    return _subdomain


def shown(value: str) -> str:
    """A name as it can be printed safely: quoted, control characters escaped (no newline or ESC reaches a log)."""
    return json.dumps(value, ensure_ascii=True)


def name_issues(doc: Document) -> list[SchemaIssue]:
    """Every problem of the object's name, generateName and namespace, as the API server reports them."""
    meta = doc.metadata
    check = name_check(doc.group, doc.kind)
    issues: list[SchemaIssue] = []
    name = meta.get("name")
    if isinstance(name, str) and name:
        problem = check(name)
        if problem:
            issues.append(SchemaIssue(INVALID, ("metadata", "name"),
                                      f"metadata.name {shown(name)} of a {doc.kind} {problem}"))
    prefix = meta.get("generateName")
    if isinstance(prefix, str) and prefix and not name:
        masked = prefix[:-1] + "a" if prefix.endswith("-") and len(prefix) > 1 else prefix
        problem = check(masked)
        if problem:
            issues.append(SchemaIssue(INVALID, ("metadata", "generateName"),
                                      f"metadata.generateName {shown(prefix)} of a {doc.kind} {problem}"))
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and namespace:
        problem = _label(namespace)
        if problem:
            issues.append(SchemaIssue(INVALID, ("metadata", "namespace"),
                                      f"metadata.namespace {shown(namespace)} {problem}"))
    return issues
