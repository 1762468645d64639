"""Checks, one module per area. Importing a module registers its rules."""

from __future__ import annotations

import importlib
import pkgutil

_SKIP = {"registry", "context", "exemptions", "runner"}


def load_rule_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _SKIP and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
