"""Which scenarios and rules a run selects: `--only`/`--skip` take rule ids and `@tags`.

A rule's tags are its area and the Gherkin tags of every scenario that runs it (feature and scenario tags), so
`--skip @cost` skips the cost rules and the cost scenarios alike. A scenario runs a rule when one of its steps is
the rule's title or `the rule "<id>" holds`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpu_policy.errors import GpuPolicyError
from gpu_policy.resources import features_dir
from gpu_policy.rules.registry import Rule, all_rules


def normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


@dataclass(frozen=True)
class ScenarioInfo:
    feature_file: Path
    feature_name: str
    name: str
    line: int
    tags: frozenset[str]
    rule_ids: tuple[str, ...]


_titles: list[tuple[dict[str, Rule], int, dict[str, str]]] = []
"""The rules dict last asked about (held, so that its identity stays its own), how many rules it held, and its
normalised title -> rule id: the collector asks for every scenario of a run."""


def _by_title(rules: dict[str, Rule]) -> dict[str, str]:
    if not (_titles and _titles[0][0] is rules and _titles[0][1] == len(rules)):
        _titles[:] = [(rules, len(rules), {normalise(r.title): r.id for r in rules.values()})]
    return _titles[0][2]


def rule_ids_of_steps(step_names: Iterable[str], rules: dict[str, Rule] | None = None) -> tuple[str, ...]:
    by_title = _by_title(rules if rules is not None else all_rules())
    out: list[str] = []
    for name in step_names:
        text = normalise(name)
        if text in by_title:
            out.append(by_title[text])
        elif text.startswith('the rule "') and text.count('"') >= 2:
            out.append(name.split('"')[1])
    return tuple(dict.fromkeys(out))


@functools.cache
def bundled_scenarios(folder: Path | None = None) -> tuple[ScenarioInfo, ...]:
    from pytest_bdd.parser import FeatureParser

    base = folder or features_dir()
    out: list[ScenarioInfo] = []
    for path in sorted(base.glob("*.feature")):
        feature = FeatureParser(str(base), path.name).parse()
        for scenario in feature.scenarios.values():
            steps = [s.name for s in scenario.steps]
            out.append(ScenarioInfo(path, feature.name, scenario.name, scenario.line_number,
                                    frozenset(feature.tags | scenario.tags), rule_ids_of_steps(steps)))
    return tuple(out)


def rule_tags(rules: dict[str, Rule] | None = None) -> dict[str, set[str]]:
    rules = rules if rules is not None else all_rules()
    tags: dict[str, set[str]] = {rid: {r.area, *getattr(r, "tags", ())} for rid, r in rules.items()}
    for scenario in bundled_scenarios():
        for rid in scenario.rule_ids:
            tags.setdefault(rid, set()).update(scenario.tags)
    return tags


@dataclass(frozen=True)
class Selection:
    """`--only` / `--skip`: rule ids and `@tags`."""

    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()

    @classmethod
    def parse(cls, only: Sequence[str], skip: Sequence[str]) -> Selection:
        """Rule ids, `@tags`, or bare tags (pytest reads `@name` arguments as files, so the plugin needs them)."""
        known = all_rules()
        tags = {t for values in rule_tags(known).values() for t in values}
        tags |= {t for s in bundled_scenarios() for t in s.tags}

        def one(item: str) -> str:
            if item.startswith("@") or item in known:
                return item
            if item in tags:
                return f"@{item}"
            raise GpuPolicyError(f"unknown rule id {item!r} (see `gpu-policy rules`; tags start with @)")

        return cls(tuple(one(i) for i in only), tuple(one(i) for i in skip))

    @staticmethod
    def _hits(selectors: Sequence[str], ids: Iterable[str], tags: Iterable[str]) -> bool:
        ids, tags = set(ids), set(tags)
        return any(s[1:] in tags if s.startswith("@") else s in ids for s in selectors)

    def rule_selected(self, rule_id: str, tags: Iterable[str]) -> bool:
        tags = set(tags)
        if self.only and not self._hits(self.only, [rule_id], tags):
            return False
        return not self._hits(self.skip, [rule_id], tags)

    def scenario_selected(self, rule_ids: Sequence[str], tags: Iterable[str]) -> bool:
        tags = set(tags)
        all_tags = tags | {t for rid in rule_ids for t in rule_tags().get(rid, ())}
        if self.only and not self._hits(self.only, rule_ids, all_tags):
            return False
        if self._hits([s for s in self.skip if s.startswith("@")], (), tags):
            return False
        return not (rule_ids and all(not self.rule_selected(rid, rule_tags().get(rid, ())) for rid in rule_ids))

    def rule_ids(self) -> tuple[list[str], list[str]]:
        """(only, skip) resolved to rule ids, for `RunOptions.only` / `RunOptions.skip`."""
        tags = rule_tags()
        only = [rid for rid in tags if self.only and self.rule_selected(rid, tags[rid])] if self.only else []
        skip = [rid for rid in tags if not self.rule_selected(rid, tags[rid])] if self.skip else []
        return only, skip

    def __bool__(self) -> bool:
        return bool(self.only or self.skip)
