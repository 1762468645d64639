"""The policy in force: neutral defaults (facts only), with an organisation's profile layered over them.

Which profile applies, in order:
1. `--policies DIR`: a folder holding any of the policy files (`cluster.yaml`, `budgets.yaml`, ...);
2. `--profile reference`, or no manifest path at all (the bundled reference set): the bundled `policies/`, the
   reference organisation's choices;
3. the repository's own configuration, `--config PATH` or found from the working directory up: a `.gpu-policy.yaml`
   file (options and inline `policies:`) or a `gpu-policy/` folder (policy files and an optional `config.yaml`);
4. nothing: the defaults alone, so that policy rules judge nothing the user did not choose.

Every layer holds only what it sets: mappings merge key by key, anything else replaces. The merged result of each
file is checked against its JSON Schema, and a bad file is a clear error.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from gpu_policy.errors import PolicyDataError
from gpu_policy.resources import default_policies_dir

SCHEMA_DIR = Path(__file__).parent / "schemas"
DEFAULTS_DIR = Path(__file__).parent / "defaults"
POLICY_FILES = (
    "cluster", "workload-classes", "scaling", "instance-types", "spot", "sla", "alerts", "budgets", "cost",
    "exemptions", "dashboard", "security",
)
CONFIG_FILE = ".gpu-policy.yaml"
CONFIG_DIR = "gpu-policy"
REFERENCE_PROFILE = "reference"


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _dates_as_text(value: Any) -> Any:
    """`expires: 2027-01-31` is a YAML date; policies keep dates as the ISO text their schemas describe."""
    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _read_yaml(path: Path) -> Any:
    try:
        return _dates_as_text(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise PolicyDataError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise PolicyDataError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def _read_mapping(path: Path) -> dict[str, Any]:
    data = _read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyDataError(f"{path}: must be a mapping, not {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` layered on `base`: mappings merge key by key, any other value replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _validated(name: str, data: dict[str, Any], where: str) -> dict[str, Any]:
    errors = sorted(_validator(name).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]
        raise PolicyDataError(f"{where}: does not match its schema ({SCHEMA_DIR / name}.schema.json):\n"
                              + "\n".join(lines))
    return data


def _folder_layer(folder: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Path]]:
    layer: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    for name in POLICY_FILES:
        path = folder / f"{name}.yaml"
        if path.is_file():
            layer[name] = _read_mapping(path)
            origin[name] = path
    return layer, origin


@dataclass(frozen=True)
class RepoConfig:
    """A repository's `.gpu-policy.yaml` (or `gpu-policy/config.yaml`): run options and the policy it chose."""

    path: Path
    complete: bool | None = None
    namespace: str | None = None
    exclude: tuple[str, ...] = ()
    profile: str | None = None
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies_dir: Path | None = None

    @classmethod
    def read(cls, path: Path) -> RepoConfig:
        if path.is_dir():
            folder = path
            config_file = path / "config.yaml"
            data = _read_mapping(config_file) if config_file.is_file() else {}
            where = config_file
        else:
            folder = None
            data = _read_mapping(path)
            where = path
        errors = sorted(_validator("config").iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"  {'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]
            raise PolicyDataError(f"{where}: does not match {SCHEMA_DIR / 'config.schema.json'}:\n" + "\n".join(lines))
        policies_dir = folder
        if data.get("policiesDir"):
            policies_dir = (where.parent / str(data["policiesDir"])).resolve()
            if not policies_dir.is_dir():
                raise PolicyDataError(f"{where}: policiesDir {data['policiesDir']!r}: no such folder")
        return cls(
            path=path, complete=data.get("complete"), namespace=data.get("namespace"),
            exclude=tuple(data.get("exclude") or ()), profile=data.get("profile"),
            policies={str(k): dict(v or {}) for k, v in (data.get("policies") or {}).items()},
            policies_dir=policies_dir,
        )


def discover_config(start: Path) -> Path | None:
    """The nearest `.gpu-policy.yaml` or `gpu-policy/` folder from `start` up to the filesystem root."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder / CONFIG_FILE
        if (folder / CONFIG_DIR).is_dir():
            return folder / CONFIG_DIR
    return None


@dataclass(frozen=True)
class PolicySet:
    directory: Path
    """Where the profile came from (the defaults folder when none applies)."""
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
    security: dict[str, Any]
    profile: str = "defaults"
    """`defaults`, `reference`, or the path of the folder / config file the choices came from."""
    origins: dict[str, str] = field(default_factory=dict)
    """policy file name -> the file its values came from (for messages)."""

    @classmethod
    def layered(cls, layers: list[tuple[str, dict[str, dict[str, Any]], dict[str, Path]]]) -> PolicySet:
        """Defaults, then each (profile, {file: values}, {file: origin path}) layer over them."""
        merged: dict[str, dict[str, Any]] = {}
        origins: dict[str, str] = {}
        for name in POLICY_FILES:
            merged[name] = _read_mapping(DEFAULTS_DIR / f"{name}.yaml")
        profile, directory = "defaults", DEFAULTS_DIR
        for label, values, paths in layers:
            unknown = sorted(set(values) - set(POLICY_FILES))
            if unknown:
                raise PolicyDataError(f"{label}: unknown policy file(s) {', '.join(unknown)} "
                                      f"(known: {', '.join(POLICY_FILES)})")
            for name, data in values.items():
                merged[name] = merge(merged[name], data)
                origins[name] = str(paths.get(name, label))
            profile = label
            directory = next(iter(paths.values())).parent if paths else directory
        data = {name.replace("-", "_"): _validated(name, merged[name], origins.get(name, str(DEFAULTS_DIR / name)))
                for name in POLICY_FILES}
        return cls(directory=directory, profile=profile, origins=origins, **data)

    @classmethod
    def load(cls, directory: Path | str | None = None) -> PolicySet:
        """A profile folder (default: the bundled reference profile) over the defaults."""
        folder = Path(directory) if directory is not None else default_policies_dir()
        if not folder.is_dir():
            raise PolicyDataError(f"{folder}: policies folder not found")
        values, paths = _folder_layer(folder)
        label = REFERENCE_PROFILE if folder.resolve() == default_policies_dir().resolve() else str(folder)
        return cls.layered([(label, values, paths)])

    @classmethod
    def defaults(cls) -> PolicySet:
        return cls.layered([])

    @classmethod
    def from_config(cls, config: RepoConfig) -> PolicySet:
        layers: list[tuple[str, dict[str, dict[str, Any]], dict[str, Path]]] = []
        if config.profile == REFERENCE_PROFILE:
            values, paths = _folder_layer(default_policies_dir())
            layers.append((REFERENCE_PROFILE, values, paths))
        elif config.profile is not None:
            raise PolicyDataError(f"{config.path}: unknown profile {config.profile!r} (known: {REFERENCE_PROFILE})")
        if config.policies_dir is not None:
            values, paths = _folder_layer(config.policies_dir)
            layers.append((str(config.policies_dir), values, paths))
        if config.policies:
            layers.append((str(config.path), config.policies, {}))
        return cls.layered(layers)

    @property
    def is_reference(self) -> bool:
        return self.profile == REFERENCE_PROFILE

    def source_of(self, name: str) -> str:
        """Where the values of one policy file came from, for messages: 'policies/budgets.yaml' style."""
        return self.origins.get(name, f"the {name} policy")

    def instance(self, instance_type: str) -> dict[str, Any] | None:
        facts: dict[str, Any] | None = self.instance_types["instanceTypes"].get(instance_type)
        return facts

    def sla_min_replicas(self, namespace: str, deployment: str) -> int | None:
        for entry in self.sla.get("minReplicas") or ():
            if entry["namespace"] == namespace and entry["deployment"] == deployment:
                return int(entry["replicas"])
        return None
