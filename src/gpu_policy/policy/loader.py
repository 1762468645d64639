"""policies/*.yaml: the organisation's values, each file checked against its own JSON Schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from gpu_policy.errors import PolicyDataError
from gpu_policy.resources import default_policies_dir

SCHEMA_DIR = Path(__file__).parent / "schemas"
POLICY_FILES = (
    "cluster", "workload-classes", "scaling", "instance-types", "spot", "sla", "alerts", "budgets", "cost",
    "exemptions", "dashboard",
)


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _load_file(path: Path, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise PolicyDataError(f"{path}: missing policy file (every one of {', '.join(POLICY_FILES)} is required)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyDataError(f"{path}: not valid YAML: {exc}") from exc
    errors = sorted(_validator(name).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]
        raise PolicyDataError(f"{path}: does not match its schema ({SCHEMA_DIR / name}.schema.json):\n"
                              + "\n".join(lines))
    assert isinstance(data, dict)
    return data


@dataclass(frozen=True)
class PolicySet:
    directory: Path
    cluster: dict[str, Any]
    workload_classes: dict[str, Any]
    scaling: dict[str, Any]
    instance_types: dict[str, Any]
    spot: dict[str, Any]
    sla: dict[str, Any]
    alerts: dict[str, Any]
    budgets: dict[str, Any]
    cost: dict[str, Any]
    exemptions: dict[str, Any]
    dashboard: dict[str, Any]

    @classmethod
    def load(cls, directory: Path | str | None = None) -> PolicySet:
        folder = Path(directory) if directory is not None else default_policies_dir()
        if not folder.is_dir():
            raise PolicyDataError(f"{folder}: policies folder not found")
        data = {name.replace("-", "_"): _load_file(folder / f"{name}.yaml", name) for name in POLICY_FILES}
        return cls(directory=folder, **data)

    def instance(self, instance_type: str) -> dict[str, Any] | None:
        facts: dict[str, Any] | None = self.instance_types["instanceTypes"].get(instance_type)
        return facts

    def sla_min_replicas(self, namespace: str, deployment: str) -> int | None:
        for entry in self.sla["minReplicas"]:
            if entry["namespace"] == namespace and entry["deployment"] == deployment:
                return int(entry["replicas"])
        return None
