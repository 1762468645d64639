"""`--env KEY=VALUE` / `--env-file FILE` and the substitution GNU envsubst makes, done before parsing.

GNU gettext's envsubst (checked against envsubst 0.21) replaces exactly two forms, `$NAME` and `${NAME}`, NAME
being `[A-Za-z_][A-Za-z0-9_]*` (the longest such run after `$`). Nothing else is special: `${NAME:-default}`,
`${NAME-x}`, `$1`, `$(cmd)`, a lone `$` and `\\$NAME`'s backslash are left as written (the `$NAME` after the
backslash is still replaced). A variable that is not set is replaced by the empty string, as envsubst does when
no SHELL-FORMAT argument restricts it; here "set" means given with `--env`/`--env-file`, never the environment
the tool runs in (a CI runner's secrets must not end up in a report).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from gpu_policy.loading.files import read_regular
from gpu_policy.loading.limits import DEFAULT_LIMITS, Limits

_NAME = "[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(rf"\$(?:\{{({_NAME})\}}|({_NAME}))")
_ASSIGNMENT = re.compile(rf"\s*(?:export\s+)?({_NAME})\s*=(.*)\Z")


def envsubst(text: str, env: Mapping[str, str]) -> str:
    """`text` with `$NAME` and `${NAME}` replaced by env[NAME], or by nothing when NAME is not in env."""
    return _REFERENCE.sub(lambda match: env.get(match.group(1) or match.group(2), ""), text)


def parse_assignment(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (as given to `--env`) -> (KEY, VALUE); the value is kept as written."""
    match = _ASSIGNMENT.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not KEY=VALUE (KEY: letters, digits and _, not starting with a digit)")
    return match.group(1), match.group(2)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_env_text(text: str, label: str) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and lines starting with `#` are ignored.

    An optional `export ` prefix, the whitespace around the value and one pair of matching quotes around the
    whole value are removed; nothing else is interpreted (no escapes, no `$` expansion). A later line for the
    same KEY wins. Anything else is a ValueError naming the line.
    """
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            key, value = parse_assignment(line)
        except ValueError as exc:
            raise ValueError(f"{label}:{number}: {exc}") from exc
        env[key] = _unquote(value)
    return env


def parse_env_file(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> dict[str, str]:
    """Read an `--env-file` (a regular file, size-capped, UTF-8); ValueError when it cannot be used."""
    read = read_regular(Path(path), str(path), limits, follow=True)
    if read.error or read.skipped:
        raise ValueError(read.error or read.skipped)
    try:
        text = read.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse_env_text(text, str(path))
