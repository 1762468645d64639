"""Decoding follows sigs.k8s.io/yaml (go-yaml v2 + JSON), not PyYAML, and keeps the line of every field."""

from __future__ import annotations

import string
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_policy.loading import yaml_reader
from gpu_policy.loading.limits import Limits
from gpu_policy.loading.yaml_reader import read_documents, resolve_plain, to_documents


def one(text: str) -> Any:
    docs, errors = to_documents(text, "t.yaml")
    assert errors == [], [e.message for e in errors]
    assert len(docs) == 1
    return docs[0].obj


def error_of(text: str) -> tuple[int, str]:
    docs, errors = to_documents(text, "t.yaml")
    assert len(errors) == 1, f"expected one error, got {[e.message for e in errors]} and {docs}"
    return errors[0].line, errors[0].message


# -- scalar resolution: goyaml.v2/resolve.go ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("plain", "expected"),
    [
        ("y", True),
        ("Y", True),
        ("yes", True),
        ("On", True),
        ("TRUE", True),  # y/n: go-yaml yes, PyYAML no
        ("n", False),
        ("NO", False),
        ("off", False),
        ("False", False),
        ("", None),
        ("~", None),
        ("null", None),
        ("NULL", None),
        ("0755", 493),
        ("0x1F", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("-0b101", -5),
        ("+12", 12),
        ("1_000", 1000),
        ("08", 8.0),  # not octal: ParseInt fails, the float pattern accepts it
        ("1e3", 1000.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("-1.5e-3", -0.0015),
        ("8080:80", "8080:80"),  # base-60: PyYAML says 484880, go-yaml keeps the text
        ("1:30", "1:30"),
        ("=", "="),  # PyYAML: the unconstructable !!value tag
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        ("1e400", "1e400"),  # ParseFloat range error: stays a string
        ("0x", "0x"),
        ("-", "-"),
        ("yesno", "yesno"),
        ("1.2.3", "1.2.3"),
        ("<<", "<<"),
        ("nvidia.com/gpu", "nvidia.com/gpu"),
        ("500m", "500m"),
        ("1Gi", "1Gi"),
    ],
)
def test_plain_scalars_resolve_as_go_yaml_v2(plain: str, expected: Any) -> None:
    got = resolve_plain(plain)
    assert got == expected and type(got) is type(expected)


def test_unquoted_true_label_is_a_boolean_and_quoted_is_a_string() -> None:
    obj = one("metadata:\n  labels:\n    gpu: true\n    spot: yes\n    quoted: 'true'\n    'n': n\n")
    assert obj["metadata"]["labels"] == {"gpu": True, "spot": True, "quoted": "true", "n": False}


def test_an_unquoted_y_or_on_key_becomes_the_text_true_as_in_go_yaml_v2() -> None:
    # go-yaml resolves the key to a bool; sigs.k8s.io/yaml then writes the JSON key "true".
    assert one("y: 1\nport: 2\n") == {"true": 1, "port": 2}
    assert one("N: 3\n") == {"false": 3}
    line, message = error_of("y: 1\non: 2\n")
    assert line == 2 and 'mapping key "true" already defined' in message


def test_integral_floats_reach_the_api_server_as_integers_like_json_marshal() -> None:
    obj = one("replicas: 1.0\nbig: 1e3\nratio: 0.5\nhuge: 1e22\n")
    assert obj == {"replicas": 1, "big": 1000, "ratio": 0.5, "huge": 1e22}
    assert type(obj["replicas"]) is int and type(obj["big"]) is int and type(obj["huge"]) is float


def test_json_documents_keep_their_floats_and_may_use_tabs() -> None:
    obj = one('{\n\t"spec": {\n\t\t"replicas": 1.0,\n\t\t"on": "x"\n\t}\n}\n')
    assert obj == {"spec": {"replicas": 1.0, "on": "x"}}
    assert type(obj["spec"]["replicas"]) is float


@pytest.mark.parametrize("value", [".inf", "-.Inf", ".nan", "!!float .inf"])
def test_infinity_and_nan_are_refused_because_json_cannot_carry_them(value: str) -> None:
    line, message = error_of(f"a: 1\nb: {value}\n")
    assert line == 2 and "not a JSON number" in message


def test_explicit_standard_tags_are_honoured_and_checked() -> None:
    assert one('a: !!int "12"\nb: !!str 12\nc: !!float 3\nd: !!bool "yes"\ne: !!null ""\n') == {
        "a": 12,
        "b": "12",
        "c": 3,
        "d": True,
        "e": None,
    }
    line, message = error_of("a: 1\nb: !!int hello\n")
    assert line == 2 and "cannot decode 'hello' as a !!int" in message


def test_binary_is_decoded_to_its_bytes_like_go_yaml() -> None:
    assert one("data: !!binary aGVsbG8=\n") == {"data": "hello"}


def test_timestamps_stay_strings() -> None:
    assert one("a: 2001-12-14t21:59:43.10-05:00\nb: !!timestamp 2001-12-14\n") == {
        "a": "2001-12-14t21:59:43.10-05:00",
        "b": "2001-12-14",
    }


def test_non_string_keys_become_text_and_null_keys_are_refused() -> None:
    assert one("true: a\n1: b\n0x10: c\n") == {"true": "a", "1": "b", "16": "c"}
    line, message = error_of("a: 1\n~: b\n")
    assert line == 2 and "null" in message


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    line, message = error_of("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert line == 4 and message == 'mapping key "c" already defined'


def test_keys_that_convert_to_the_same_text_are_duplicates() -> None:
    line, message = error_of('1: a\n"1": b\n')
    assert line == 2 and '"1" already defined' in message


def test_merge_keys_merge_with_explicit_keys_winning() -> None:
    docs, errors = to_documents("base: &b {x: 1, z: 2}\nd:\n  <<: *b\n  z: 3\nq: {'<<': 1}\n", "t.yaml")
    assert errors == []
    assert docs[0].obj["d"] == {"x": 1, "z": 3}
    assert docs[0].obj["q"] == {"<<": 1}  # a quoted << is an ordinary key
    assert docs[0].line_of(("d", "z")) == 4


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['id']",
        "!!python/name:os.system",
        "!custom value",
        "!!set {a, b}",
        "!!omap [a: 1]",
    ],
)
def test_only_standard_tags_are_allowed(tagged: str) -> None:
    line, message = error_of(f"ok: 1\nbad: {tagged}\n")
    assert line == 2 and "is not allowed" in message


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    line, message = error_of("\n".join(lines) + "\n")
    assert "YAML bomb" in message and line >= 1


def test_modest_aliasing_is_fine() -> None:
    text = "anchors:\n  r: &r {cpu: 1, memory: 1Gi}\n" + "".join(f"c{i}: *r\n" for i in range(200))
    assert one(text)["c199"] == {"cpu": 1, "memory": "1Gi"}


def test_over_large_files_are_refused() -> None:
    docs, errors = to_documents("a: " + "x" * 200 + "\n", "t.yaml", Limits(max_file_bytes=100))
    assert docs == [] and [(e.line, "larger than" in e.message) for e in errors] == [(1, True)]


def test_too_deep_nesting_is_an_error_not_a_crash() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(600)) + "  " * 600 + "v\n"
    _, errors = to_documents(text, "t.yaml")
    assert len(errors) == 1 and ("nested too deeply" in errors[0].message or "depth" in errors[0].message)


def test_a_syntax_error_does_not_hide_the_documents_after_it() -> None:
    text = "a: 1\n---\nb: [1, 2\nc: 3\n---\nd: 4\n---\ne: 5\n"
    docs, errors = to_documents(text, "t.yaml")
    assert [d.obj for d in docs] == [{"a": 1}, {"d": 4}, {"e": 5}]
    assert [d.line for d in docs] == [1, 6, 8]
    assert len(errors) == 1 and errors[0].message.startswith("YAML syntax error") and 3 <= errors[0].line <= 5


def test_error_inside_one_document_keeps_the_others() -> None:
    docs, errors = to_documents("a: 1\n---\nb: 1\nb: 2\n---\nc: 3\n", "t.yaml")
    assert [d.obj for d in docs] == [{"a": 1}, {"c": 3}]
    assert [(e.line, e.message) for e in errors] == [(4, 'mapping key "b" already defined')]


def test_empty_documents_are_dropped() -> None:
    docs, errors = to_documents("---\n---\n# only a comment\n---\na: 1\n---\n", "t.yaml")
    assert errors == [] and [d.obj for d in docs] == [{"a": 1}]


def test_positions_give_the_line_of_every_key_and_item() -> None:
    text = (
        "apiVersion: apps/v1\n"  # 1
        "kind: Deployment\n"  # 2
        "metadata:\n"  # 3
        "  name: web\n"  # 4
        "spec:\n"  # 5
        "  template:\n"  # 6
        "    spec:\n"  # 7
        "      containers:\n"  # 8
        "        - name: a\n"  # 9
        "          image: x\n"  # 10
        "        - name: b\n"  # 11
        "          resources:\n"  # 12
        "            limits: {nvidia.com/gpu: 1}\n"  # 13
    )
    (doc,), _ = to_documents(text, "d.yaml")
    containers = ("spec", "template", "spec", "containers")
    assert doc.line_of((*containers, 0)) == 9
    assert doc.line_of((*containers, 0, "image")) == 10
    assert doc.line_of((*containers, 1, "resources", "limits", "nvidia.com/gpu")) == 13
    assert doc.line_of((*containers, 1, "resources", "requests", "cpu")) == 12  # nearest written ancestor
    assert doc.line_of(("status",)) == 1


def test_document_lines_count_from_the_start_of_the_stream() -> None:
    docs, _ = to_documents("# header\n---\na: 1\n---\n\n\nb:\n  c: 2\n", "t.yaml")
    assert [d.line for d in docs] == [3, 7]
    assert docs[1].line_of(("b", "c")) == 8


# -- properties ----------------------------------------------------------------------------------------------
keys = st.text(alphabet=string.ascii_letters + string.digits + "-_./", min_size=1, max_size=12)
scalars = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**62), 2**62),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=6))
def test_round_trip_of_safe_dump_output(data: dict[str, Any]) -> None:
    """What PyYAML writes (quoting ambiguous strings) reads back identically, keys included."""
    text = yaml.safe_dump(data, sort_keys=False)
    if _has_ambiguous_plain(data):
        return  # PyYAML leaves y/n, 1e3, 0o17 unquoted; go-yaml reads bools/numbers: see the table
    docs, errors = to_documents(text, "t.yaml")
    assert errors == []
    assert docs[0].obj == data


def _has_ambiguous_plain(value: Any) -> bool:
    """Strings PyYAML writes unquoted that go-yaml reads as something else (y/n, 1e3, 0o17, 1_0, ...)."""
    if isinstance(value, dict):
        return any(_has_ambiguous_plain(k) or _has_ambiguous_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_ambiguous_plain(v) for v in value)
    if isinstance(value, str):
        dumped = yaml.safe_dump(value).removesuffix("\n...\n").strip()
        return not dumped.startswith(("'", '"', "|", ">")) and resolve_plain(dumped) != value
    return False


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(keys, st.integers(0, 3)), min_size=1, max_size=15, unique_by=lambda kv: kv[0]))
def test_line_of_each_key_is_where_it_is_written(entries: list[tuple[str, int]]) -> None:
    lines: list[str] = []
    expected: dict[str, int] = {}
    for key, blank_lines in entries:
        lines.extend([""] * blank_lines)
        lines.append(f"'{key}': v")
        expected[key] = len(lines)
    (doc,), errors = to_documents("\n".join(lines) + "\n", "t.yaml")
    assert errors == []
    assert {key: doc.line_of((key,)) for key in expected} == expected


def test_reader_yields_errors_in_stream_order() -> None:
    items = list(read_documents("a: 1\n---\n!!python/none x\n---\nb: 2\n"))
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["RawDocument", "YamlError", "RawDocument"]


# -- parse bounds: untrusted input (issue 9) -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("plain", "expected"),
    [
        ("9223372036854775807", 2**63 - 1),  # ParseInt
        ("-9223372036854775808", -(2**63)),
        ("18446744073709551615", 2**64 - 1),  # ParseUint
        ("+18446744073709551615", 1.8446744073709552e19),  # ParseUint takes no sign: ParseFloat
        ("18446744073709551616", 1.8446744073709552e19),  # over uint64: ParseFloat
        ("-" + "9" * 30, -1e30),
        ("0x10000000000000000", "0x10000000000000000"),  # hex over uint64; ParseFloat refuses hex: text
        ("1" * 5000, "1" * 5000),  # 5,000 digits: ParseFloat range error, text (Python's int() would raise)
    ],
)
def test_integers_are_64_bit_as_in_go_and_longer_ones_never_crash(plain: str, expected: Any) -> None:
    got = resolve_plain(plain)
    assert got == expected and type(got) is type(expected)


def test_a_5000_digit_number_in_a_document_is_text_and_its_neighbours_are_kept() -> None:
    assert one("a: " + "7" * 5000 + "\nb: 2\n") == {"a": "7" * 5000, "b": 2}


@pytest.mark.parametrize("tag", ["!!float", "!!int"])
def test_explicitly_tagged_numbers_out_of_range_are_a_finding_naming_the_value_briefly(tag: str) -> None:
    line, message = error_of(f"ok: 1\nbad: {tag} {'1' * 400}\n")
    assert line == 2
    assert message.startswith("cannot decode '1111") and f"(400 characters) as a {tag}" in message
    assert len(message) < 120


def _counting_resolve(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = yaml_reader._Loader.resolve

    def resolve(self: Any, kind: Any, value: Any, implicit: Any) -> Any:
        calls[0] += 1
        return original(self, kind, value, implicit)

    monkeypatch.setattr(yaml_reader._Loader, "resolve", resolve)
    return calls


def test_a_document_over_the_value_limit_is_refused_while_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting_resolve(monkeypatch)
    big = "items:\n" + "".join(f"  - {{a: {i}}}\n" for i in range(20_000))  # 60,000 values
    text = "first: 1\n---\n" + big + "---\nlast: 2\n"
    docs, errors = to_documents(text, "t.yaml", Limits(max_nodes_per_document=1_000))
    assert [d.obj for d in docs] == [{"first": 1}, {"last": 2}]
    assert [(e.line, e.message) for e in errors] == [
        (3, "document holds more than 1000 values (mappings, lists and scalars); refused while parsing it")
    ]
    assert calls[0] < 1_020  # the parser stopped at the limit instead of building 60,000 values first


def test_a_file_over_its_value_limit_stops_there_and_says_so() -> None:
    doc = "k:\n" + "".join(f"  - {i}\n" for i in range(40))  # 42 values on 41 lines: the third starts at 85
    text = "---\n".join([doc] * 4)
    docs, errors = to_documents(text, "t.yaml", Limits(max_nodes_per_document=50, max_nodes_per_file=100))
    assert len(docs) == 2
    assert [(e.line, e.message.split(";")[0]) for e in errors] == [
        (85, "the file holds more than 100 values (mappings, lists and scalars) in all")
    ]


def test_an_alias_bomb_under_the_written_limit_still_blames_aliases() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcd", "bcde", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    docs, errors = to_documents("\n".join(lines) + "\n", "t.yaml", Limits(max_nodes_per_document=5_000))
    assert docs == [] and len(errors) == 1 and "through aliases" in errors[0].message
