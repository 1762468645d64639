"""Where the bundled features, reference manifests and policies live (source tree or installed wheel)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE_DIR / "_bundled"
_SOURCE_ROOT = _PACKAGE_DIR.parent.parent


def _data_dir(name: str) -> Path:
    """The wheel carries copies under `_bundled/`; an editable install reads the repository's folders."""
    bundled = _BUNDLED / name
    if bundled.is_dir():
        return bundled
    return _SOURCE_ROOT / name


def features_dir() -> Path:
    return _data_dir("features")


def reference_manifests_dir() -> Path:
    return _data_dir("manifests")


def default_policies_dir() -> Path:
    return _data_dir("policies")


def traces_dir() -> Path:
    """Metric traces the scaling scenarios name ("surge", "drop", ...): shipped, since features use them."""
    bundled = _BUNDLED / "traces"
    return bundled if bundled.is_dir() else _SOURCE_ROOT / "fixtures" / "traces"


def alert_tests_dir() -> Path:
    """Hand-written promtool tests of the reference alerts: shipped, since the bundled alerts feature runs them."""
    bundled = _BUNDLED / "alert-tests"
    return bundled if bundled.is_dir() else _SOURCE_ROOT / "fixtures" / "alerts"


def fixtures_dir() -> Path:
    """Fixtures are only in the source tree: they prove the suite, they are not shipped."""
    return _SOURCE_ROOT / "fixtures"
