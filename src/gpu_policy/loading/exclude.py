"""`--exclude PATTERN`: gitignore-like globs matched against a path relative to the input folder.

- `*` and `?` match within one path segment, `[abc]` a character class;
- `**` matches any number of segments: `**/tmp`, `drafts/**`, `a/**/b`;
- a pattern without a `/` (other than a trailing one) matches the name at any depth (`*.tpl`, `secrets`);
  one with a `/` is anchored at the input folder (`overlays/dev`, `/charts`);
- a trailing `/` matches folders only. An excluded folder is not entered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


def _translate(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 2:]:
            end = glob.index("]", i + 2)
            body = glob[i + 1:end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    folders_only: bool


class Exclude:
    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._patterns: list[_Pattern] = []
        for text in patterns:
            glob = text.strip()
            if glob.startswith("./"):
                glob = glob[2:]
            folders_only = glob.endswith("/")
            glob = glob.rstrip("/")
            if not glob:
                continue
            if "/" in glob:
                regex = re.compile(_translate(glob.lstrip("/")) + r"\Z")
            else:
                regex = re.compile(r"(?:.*/)?" + _translate(glob) + r"\Z")
            self._patterns.append(_Pattern(text, regex, folders_only))

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def match(self, relative: str, is_folder: bool) -> str | None:
        """The first pattern that excludes `relative` (a POSIX path under the input folder), or None."""
        for pattern in self._patterns:
            if pattern.folders_only and not is_folder:
                continue
            if pattern.regex.match(relative) or (is_folder and pattern.regex.match(relative + "/")):
                return pattern.text
        return None
