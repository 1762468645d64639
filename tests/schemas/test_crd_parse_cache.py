"""The cache of decoded CRD files gives what the reader gives, and an edited file is decoded afresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_policy.loading.yaml_reader import YamlError, read_documents
from gpu_policy.schemas import crd_parse_cache
from gpu_policy.schemas.crd_parse_cache import decode_crd_file, parse_cache_dir

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          size: {type: integer, default: 0x10}
          mode: {type: string, enum: ["on", off]}
"""


def _direct(text: str) -> list[tuple[int, object] | tuple[int, None, str]]:
    out: list[tuple[int, object] | tuple[int, None, str]] = []
    for item in read_documents(text):
        if isinstance(item, YamlError):
            out.append((item.line, None, item.message))
            break
        out.append((item.line, item.value))
    return out


def test_a_cached_file_decodes_as_the_reader_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = decode_crd_file(CRD.encode(), CRD)
    entries = list(parse_cache_dir().glob("*.marshal"))
    assert len(entries) == 1
    second = decode_crd_file(CRD.encode(), CRD)  # from the entry
    assert first == second == _direct(CRD)
    assert second[0][1]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["mode"]["enum"] == \
        ["on", False]  # go-yaml's resolution, kept by the cache


def test_an_edited_file_and_a_broken_one_are_decoded_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    decode_crd_file(CRD.encode(), CRD)
    edited = CRD.replace("Widget", "Gadget")
    assert decode_crd_file(edited.encode(), edited)[0][1]["spec"]["names"]["kind"] == "Gadget"
    broken = CRD + "---\nkey: [\n"
    decoded = decode_crd_file(broken.encode(), broken)
    assert decoded == _direct(broken) and len(decoded[-1]) == 3  # the error, with its line
    assert len(list(parse_cache_dir().glob("*.marshal"))) == 3


def test_a_corrupt_entry_is_decoded_again_and_the_cache_can_be_off(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    decode_crd_file(CRD.encode(), CRD)
    (entry,) = parse_cache_dir().glob("*.marshal")
    entry.write_bytes(b"\x00not marshal")
    assert decode_crd_file(CRD.encode(), CRD) == _direct(CRD)
    monkeypatch.setenv(crd_parse_cache.CACHE_ENV, "0")
    other = tmp_path / "elsewhere"
    monkeypatch.setenv("XDG_CACHE_HOME", str(other))
    assert decode_crd_file(CRD.encode(), CRD) == _direct(CRD)
    assert not other.exists()
