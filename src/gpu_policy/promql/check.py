"""One `promtool check rules` run over every extracted file, its messages attributed to manifest lines.

promtool reports `<file>: <line>:<col>: group "g", rule N, "name": <error>` for most problems and a bare
`<file>: <error>` for YAML-level ones (an invalid duration stops the whole file). Each kind is mapped back here.

promtool runs with `--lint=none`: what is checked is what Prometheus and the Prometheus Operator load, and neither
lints. The operator validates a PrometheusRule with the upstream parser only (prometheus-operator
pkg/operator/rules.go ValidateRule -> rulefmt.Parse) and Prometheus loads rule files with rulefmt too; promtool's
one lint, duplicate-rules (cmd/promtool/main.go checkDuplicates), compares a rule's name and static labels and not
its expression, and is an errLint that fails `check rules` only under `--lint-fatal`. It fired on
kube-prometheus' own kube-apiserver-availability.rules: four `code_verb:apiserver_request_total:increase1h`
recording rules told apart by `code=~"2.."` ... `"5.."` inside `sum by (cluster, code, verb)`, whose series never
meet (kube-prometheus-stack carries the same lint as a known, accepted finding).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gpu_policy.loading.document import Document, FieldPath
from gpu_policy.promql.extract import DURATION_FIELDS, RuleFile, prometheus_rule_file, queries_file
from gpu_policy.promql.promtool import PromtoolResult, run_promtool, scratch_folder
from gpu_policy.promql.sources import PromQLSource, expression_line

_LOCATED = re.compile(r"^(\d+):(\d+): (.*)$", re.S)
_RULE_REF = re.compile(r'group "((?:[^"\\]|\\.)*)", rule (\d+), "((?:[^"\\]|\\.)*)": (.*)$', re.S)
_EXPR_POS = re.compile(r"could not parse expression: (\d+):(\d+): ")
_ANNOTATION = re.compile(r'annotation "((?:[^"\\]|\\.)*)"')
_DURATION = re.compile(r'not a valid duration string: "((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class RuleProblem:
    """One promtool error, placed on the manifest."""

    doc: Document
    path: FieldPath
    line: int
    message: str
    query: PromQLSource | None = None
    rule_name: str = ""


@dataclass
class CheckRun:
    files: list[RuleFile]
    result: PromtoolResult | None
    problems: list[RuleProblem] = field(default_factory=list)
    unattributed: list[str] = field(default_factory=list)
    """promtool output that could not be tied to any file (a crash of promtool itself)."""
    unattributed_origins: list[str | None] = field(default_factory=list)
    """Beside `unattributed`: the file each message was printed for, None for output outside any file's."""

    def for_doc(self, doc: Document) -> list[RuleProblem]:
        return [p for p in self.problems if p.doc is doc]

    def for_kind(self, kind: str) -> list[RuleProblem]:
        return [p for p in self.problems if p.query is not None and p.query.kind == kind]

    def for_prometheus_rules(self) -> list[RuleProblem]:
        return [p for p in self.problems if p.query is None]

    def prometheus_rules_only(self) -> CheckRun | None:
        """What a run over the PrometheusRules' files alone gives, read from this run, which may also hold the
        embedded queries' file: promtool checks, reports and retries each file on its own (prometheus/prometheus
        cmd/promtool/main.go checkRules loops over the files), so their problems and messages are the same either
        way. None when promtool printed something outside every file's report (a crash): only a run without
        the queries can say what it prints then."""
        files = [f for f in self.files if f.doc is not None]
        if len(files) == len(self.files):
            return self
        if any(origin is None for origin in self.unattributed_origins):
            return None
        names = {f.name for f in files}
        kept = [(text, origin) for text, origin in zip(self.unattributed, self.unattributed_origins, strict=True)
                if origin in names]
        return CheckRun(files=files, result=self.result, problems=self.for_prometheus_rules(),
                        unattributed=[text for text, _ in kept], unattributed_origins=[o for _, o in kept])


def _split_by_file(output: str, names: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """promtool's interleaved output -> the error messages of each file (multi-line messages kept whole)."""
    errors: dict[str, list[str]] = {name: [] for name in names}
    stray: list[str] = []
    current: str | None = None
    for raw in output.splitlines():
        line = raw.rstrip("\n")
        if line.startswith("Checking "):
            current = line[len("Checking ") :].strip()
            continue
        stripped = line.strip()
        if not stripped or stripped == "FAILED:" or stripped.startswith("SUCCESS:"):
            continue
        if current is None or current not in errors:
            stray.append(line)
            continue
        if line.startswith(f"{current}: "):
            errors[current].append(line[len(current) + 2 :])
        elif errors[current]:
            errors[current][-1] += "\n" + line
        else:
            errors[current].append(line)
    return errors, stray


def _unquote(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _group_index(rule_file: RuleFile, group: str) -> int | None:
    for i, name in enumerate(rule_file.group_names):
        if name == group:
            return rule_file.group_indexes[i]
    return None


def _attribute(rule_file: RuleFile, message: str) -> list[RuleProblem]:
    if rule_file.doc is None:
        return _attribute_query(rule_file, message)
    doc = rule_file.doc
    path: FieldPath = ("spec", "groups")
    rule_name = ""
    body = message
    located = _LOCATED.match(message)
    if located:
        body = located.group(3)
        origin = rule_file.origins.get(int(located.group(1)))
        if origin is not None:
            path = origin
    ref = _RULE_REF.search(body)
    if ref:
        rule_name = _unquote(ref.group(3))
        gi = _group_index(rule_file, _unquote(ref.group(1)))
        if gi is not None:
            rule_path: FieldPath = ("spec", "groups", gi, "rules", int(ref.group(2)) - 1)
            if path[: len(rule_path)] != rule_path:
                path = rule_path
            detail = ref.group(4)
            annotation = _ANNOTATION.search(detail)
            if "could not parse expression" in detail:
                path = (*rule_path, "expr")
            elif annotation:
                path = (*rule_path, "annotations", _unquote(annotation.group(1)))
    duration = _DURATION.search(body)
    if duration and path == ("spec", "groups"):
        path = _find_duration(doc, _unquote(duration.group(1))) or path
    line = doc.line_of(path)
    inner = _EXPR_POS.search(body)
    if inner and path and path[-1] == "expr":
        line = expression_line(doc, path, int(inner.group(1)))
    return [RuleProblem(doc=doc, path=path, line=line, message=body.strip(), rule_name=rule_name)]


def _find_duration(doc: Document, value: str) -> FieldPath | None:
    for gi, group in enumerate(doc.spec.get("groups") or []):
        if not isinstance(group, dict):
            continue
        if str(group.get("interval")) == value:
            return ("spec", "groups", gi, "interval")
        for ri, rule in enumerate(group.get("rules") or []):
            if not isinstance(rule, dict):
                continue
            for key in DURATION_FIELDS:
                if key in rule and str(rule[key]) == value:
                    return ("spec", "groups", gi, "rules", ri, key)
    return None


def _attribute_query(rule_file: RuleFile, message: str) -> list[RuleProblem]:
    located = _LOCATED.match(message)
    body = located.group(3) if located else message
    ref = _RULE_REF.search(body)
    if ref is None or not rule_file.queries:
        return []
    index = int(ref.group(2)) - 1
    if not 0 <= index < len(rule_file.queries):
        return []
    query = rule_file.queries[index]
    detail = ref.group(4).strip()
    inner = _EXPR_POS.search(detail)
    line = query.line_of(int(inner.group(1))) if inner else query.line
    return [RuleProblem(doc=query.doc, path=query.path, line=line, message=detail, query=query)]


def _run_once(files: list[RuleFile]) -> tuple[PromtoolResult, list[RuleProblem], list[tuple[str, str | None]]]:
    with scratch_folder("gpu-policy-rules-") as folder:
        for rule_file in files:
            rule_file.write(Path(folder))
        result = run_promtool(["check", "rules", "--lint=none", *[f.name for f in files]], cwd=folder)
    by_name = {f.name: f for f in files}
    errors, stray = _split_by_file(result.output, list(by_name))
    problems: list[RuleProblem] = []
    unattributed: list[tuple[str, str | None]] = []  # (message, the file it was printed for)
    for name, messages in errors.items():
        for message in messages:
            attributed = _attribute(by_name[name], message)
            if attributed:
                problems.extend(attributed)
            else:
                unattributed.append((f"{name}: {message}", name))
    unattributed.extend((line, None) for line in stray)
    if result.returncode not in (0, 1) or (result.returncode != 0 and not problems and not unattributed):
        unattributed.append((f"promtool exited {result.returncode}: {result.output.strip()}", None))
    return result, problems, unattributed


MAX_DURATION_ROUNDS = 8


def check_rule_files(files: list[RuleFile]) -> CheckRun:
    """Run `promtool check rules --lint=none` over all files at once and attribute every error.

    An invalid duration stops promtool reading that file; such files are checked again without the rejected
    value (a few files, one more promtool run) so that every other error of the manifest is reported too.
    """
    run = CheckRun(files=files, result=None)
    if not files:
        return run
    pending = files
    for _ in range(MAX_DURATION_ROUNDS):
        result, problems, unattributed = _run_once(pending)
        run.result = run.result or result
        seen = {(id(p.doc), p.path, p.message) for p in run.problems}
        run.problems.extend(p for p in problems if (id(p.doc), p.path, p.message) not in seen)
        run.unattributed.extend(text for text, _ in unattributed)
        run.unattributed_origins.extend(origin for _, origin in unattributed)
        retry: list[RuleFile] = []
        for rule_file in pending:
            if rule_file.doc is None:
                continue
            rejected = {
                _unquote(m.group(1))
                for p in problems
                if p.doc is rule_file.doc
                for m in [_DURATION.search(p.message)]
                if m
            }
            new = rejected - rule_file.rejected_durations
            if new:
                retry.append(
                    prometheus_rule_file(
                        rule_file.doc, rule_file.name, rule_file.rejected_durations | frozenset(new)
                    )
                )
        if not retry:
            break
        pending = retry
    return run


def extract_all(prometheus_rules: Iterable[Document], queries: list[PromQLSource]) -> list[RuleFile]:
    files = [prometheus_rule_file(doc, f"p{i:05d}.yaml") for i, doc in enumerate(prometheus_rules)]
    if queries:
        files.append(queries_file(queries, "queries.yaml"))
    return files
