"""Byte-level fuzzing with atheris (libFuzzer, coverage-guided): raw bytes through the loader and through `check`.

Targets (the first argument):
- `loader`: the bytes decoded and read by the YAML reader (`decode_bytes`, `read_raw`), then the same bytes as a
  file `input.yaml` in a folder given to `load_manifests`;
- `engine`: the bytes as a manifest file run through the whole engine (`run_engine`: loader, schemas, graph, every
  rule), folded into the verdict and rendered in every output format; the first byte chooses --complete and the
  reference profile;
- `check`: the bytes as a manifest file run through `gpu-policy check` itself (`cli.main`, in this process: the
  engine and the scenario suite with its simulations and promtool); slow, a few inputs a second.
A crash is any exception escaping the target, a rule or scenario that crashed (`internal_errors`) or exit code 3.

A bounded run (what tests/fuzz/test_atheris.py does in CI) and a long campaign:

    .venv/bin/python tests/fuzz/atheris_harness.py loader -runs=500
    nice -n 10 .venv/bin/python tests/fuzz/atheris_harness.py engine -max_total_time=1800 CORPUS_DIR

Every other argument is libFuzzer's (-max_total_time, -runs, -max_len, -seed, corpus folders, crash files to
replay); `--seed-corpus DIR` first copies the bundled reference manifests into DIR as starting inputs. CRD schemas
are read once per process (the engine reads them per run; that is 2.5 s of each run and not what is fuzzed).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["gpu_policy", "yaml"]):
    import gpu_policy.engine as engine
    from gpu_policy import cli
    from gpu_policy.loading.loader import load_manifests
    from gpu_policy.loading.sources import decode_bytes
    from gpu_policy.loading.yaml_reader import read_raw
    from gpu_policy.reporting.formats import FORMATS, render
    from gpu_policy.reporting.verdict import EXIT_INTERNAL, engine_only_verdict
    from gpu_policy.resources import reference_manifests_dir

_WORK = Path(tempfile.mkdtemp(prefix="gpu-policy-atheris-"))


class FuzzCrash(AssertionError):
    """The input made the tool crash (an internal error), not merely fail."""


def _cache_crd_schemas() -> None:
    """One ManifestValidator per (version, CRD paths) for the whole process."""
    original = engine.ManifestValidator

    @functools.lru_cache(maxsize=4)
    def cached(version: str, paths: tuple[Path, ...], use_cache: bool) -> Any:
        return original(version, list(paths), use_cache=use_cache)

    def validator(version: str, paths: Any, use_cache: bool = True) -> Any:
        return cached(version, tuple(paths), use_cache)

    engine.ManifestValidator = validator  # type: ignore[assignment,misc]


def _input_folder(data: bytes) -> Path:
    folder = _WORK / "input"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "input.yaml").write_bytes(data)
    return folder


def fuzz_loader(data: bytes) -> None:
    text, error = decode_bytes(data, "input.yaml")
    if error is None:
        read_raw(text)
    result = load_manifests([str(_input_folder(data))])
    for finding in result.findings:
        if not finding.rule_id or not isinstance(finding.message, str):
            raise FuzzCrash(f"malformed loader finding {finding!r}")


def fuzz_engine(data: bytes) -> None:
    mode, body = (data[0], data[1:]) if data else (0, b"")
    options = engine.RunOptions(paths=[str(_input_folder(body))], complete=bool(mode & 1),
                                profile="reference" if mode & 2 else None)
    run = engine.run_engine(options)
    if run.internal_errors:
        raise FuzzCrash("; ".join(f"{e.where}: {e.error}\n{e.traceback}" for e in run.internal_errors))
    verdict = engine_only_verdict(run)
    for fmt in FORMATS:
        render(fmt, verdict, verbose=True)


def fuzz_check(data: bytes) -> None:
    folder = _input_folder(data)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli.main(["check", str(folder), "--allow-empty", "--format", "json", "--debug"])
    if code == EXIT_INTERNAL:
        raise FuzzCrash(f"check exited {code}:\n{err.getvalue()[-4000:]}")


TARGETS = {"loader": fuzz_loader, "engine": fuzz_engine, "check": fuzz_check}


def _seed(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for file in sorted(reference_manifests_dir().rglob("*.yaml")):
        data = file.read_bytes()
        (corpus / f"seed-{file.parent.name}-{file.name}").write_bytes(data)
        (corpus / f"seed-engine-{file.parent.name}-{file.name}").write_bytes(b"\x01" + data)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{'|'.join(TARGETS)}}} [--seed-corpus DIR] [libFuzzer options] [CORPUS...]")
    target = TARGETS[argv[1]]
    rest = argv[2:]
    if "--seed-corpus" in rest:
        at = rest.index("--seed-corpus")
        _seed(Path(rest[at + 1]))
        rest = rest[:at] + rest[at + 2:]
    _cache_crd_schemas()
    os.environ.setdefault("GPU_POLICY_FUZZ", "1")
    atheris.Setup([argv[0], *rest], target)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(_WORK, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
