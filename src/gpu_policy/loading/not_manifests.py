"""Files that hold no Kubernetes manifest as they stand: listed as not checked with why, never errors.

- templates rendered before they are applied (`deploy.yaml.tpl`, `*.j2`, `*.gotmpl`, ...): what is applied is
  their output, so checking the template itself would report every placeholder;
- YAML of other tools, known by name (Helm's Chart.yaml and values files, docker compose, skaffold, CI files);
- any other file none of whose documents has `apiVersion` or `kind` (see `looks_like_kubernetes`);
- a file that is not valid YAML and holds `{{ ... }}`, `{% ... %}` or `%{ ... }` placeholders: a Go/Helm, Jinja
  or Terraform template that becomes YAML only when rendered.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
TEMPLATE_SUFFIXES = (".tpl", ".tmpl", ".template", ".j2", ".jinja", ".jinja2", ".gotmpl")

_OTHER_TOOLS: tuple[tuple[str, str], ...] = (
    ("Chart.yaml", "Helm chart metadata"),
    ("values*.yaml", "Helm values"),
    ("values*.yml", "Helm values"),
    ("values*.json", "Helm values (schema)"),
    ("docker-compose*.yaml", "a docker compose file"),
    ("docker-compose*.yml", "a docker compose file"),
    ("compose.yaml", "a docker compose file"),
    ("compose.yml", "a docker compose file"),
    ("compose.*.yaml", "a docker compose file"),
    ("compose.*.yml", "a docker compose file"),
    ("skaffold.yaml", "a skaffold configuration"),
    ("helmfile.yaml", "a helmfile"),
    (".gitlab-ci.yml", "a GitLab CI pipeline"),
)

_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|%\{.*?\}", re.DOTALL)
"""Go/Helm and Jinja `{{ ... }}`, Jinja `{% ... %}`, Terraform `%{ ... }` directives."""


def template_reason(name: str) -> str | None:
    """Why a file named `name` is a template (by its suffix), or None."""
    lowered = name.lower()
    for suffix in TEMPLATE_SUFFIXES:
        if lowered.endswith(suffix):
            return (f"a template ({suffix}): what is applied is its rendered output; not checked (render it and "
                    "check the output, `... | gpu-policy check -`, or substitute $VARS with --env/--env-file)")
    return None


def other_tool_reason(relative: str) -> str | None:
    """Why a YAML/JSON file is another tool's configuration (by its name or folder), or None."""
    parts = relative.split("/")
    if ".github" in parts[:-1]:
        return "GitHub configuration, not Kubernetes YAML; not checked"
    base = parts[-1]
    for pattern, what in _OTHER_TOOLS:
        if fnmatchcase(base, pattern):
            return f"{what}, not Kubernetes YAML; not checked"
    return None


def _is_object_like(value: Any) -> bool:
    return isinstance(value, dict) and ("apiVersion" in value or "kind" in value)


def looks_like_kubernetes(values: list[Any]) -> bool:
    """True when at least one document (or an item of a document that is a list) has apiVersion or kind.

    A file where none does is some other tool's YAML; a file where one does is a manifest file, and its other
    documents that are not objects stay errors (a stray list or sentence in a manifest file is a mistake).
    """
    for value in values:
        if _is_object_like(value):
            return True
        if isinstance(value, list) and any(_is_object_like(item) for item in value):
            return True
    return False


NOT_KUBERNETES = "not Kubernetes YAML (no document has apiVersion or kind); not checked"


def unrendered_template_reason(text: str) -> str | None:
    """For a file that is not valid YAML: why it is an unrendered template, when it has placeholders."""
    match = _PLACEHOLDER.search(text)
    if match is None:
        return None
    shown = match.group(0) if len(match.group(0)) <= 40 else match.group(0)[:37] + "..."
    return (f"an unrendered template (placeholders such as {shown!r}): not valid YAML until it is rendered; "
            "not checked (check its rendered output)")
