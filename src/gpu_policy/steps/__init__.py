"""pytest-bdd step definitions. Every module here is loaded by the `gpu_policy.plugin` pytest plugin.

Never import these from a test module: pytest-bdd would register the steps twice.
"""

from __future__ import annotations

import pkgutil


def step_module_names() -> list[str]:
    return [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
