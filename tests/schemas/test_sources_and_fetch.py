"""Where CRDs come from: CRD paths, the user cache, `fetch_crds` against a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_policy.errors import SchemaSourceError
from gpu_policy.schemas.crds import default_crd_paths, user_cache_dir
from gpu_policy.schemas.fetch import fetch_crds, source_urls
from gpu_policy.schemas.validator import ManifestValidator

from .conftest import SHARED_CRDS, doc_of

NODEPOOL_CRD = SHARED_CRDS / "karpenter" / "v1.14.1" / "karpenter.sh_nodepools.yaml"
SCALEDOBJECT_CRD = SHARED_CRDS / "keda" / "v2.20.2" / "keda.sh_scaledobjects.yaml"
SCALEDOBJECT = (
    "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: s, namespace: ns}\n"
    "spec: {scaleTargetRef: {name: web}, triggers: [{type: cpu, metricType: Utilization, "
    "metadata: {value: '60'}}]}\n"
)


def test_missing_crd_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaSourceError, match=r"CRD path .*nowhere does not exist"):
        ManifestValidator("1.33", [tmp_path / "nowhere"], use_cache=False)


def test_malformed_crd_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec: [unclosed\n"
    )
    with pytest.raises(SchemaSourceError, match=r"bad\.yaml:\d+: malformed CRD file"):
        ManifestValidator("1.33", [tmp_path], use_cache=False)


def test_crd_without_required_parts_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: x}\nspec: {group: example.com}\n"
    )
    with pytest.raises(SchemaSourceError, match=r"spec\.group, spec\.names\.kind and spec\.versions are"):
        ManifestValidator("1.33", [tmp_path], use_cache=False)


def test_v1beta1_crd_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1beta1\nkind: CustomResourceDefinition\n"
    )
    with pytest.raises(SchemaSourceError, match=r"only apiextensions\.k8s\.io/v1"):
        ManifestValidator("1.33", [tmp_path], use_cache=False)


def test_first_definition_wins_and_the_other_is_listed(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    shutil.copy(NODEPOOL_CRD, first / "np.yaml")
    shutil.copy(NODEPOOL_CRD, second / "np.yaml")
    validator = ManifestValidator("1.33", [first, second], use_cache=False)
    sources = validator.describe_sources()
    assert any(line.startswith("CRD NodePool.karpenter.sh (v1):") and str(first) in line for line in sources)
    assert any("shadowed" in line and str(second) in line for line in sources)
    assert validator.validate(doc_of(SCALEDOBJECT))[0].kind == "missing-schema"


def test_default_crd_paths_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPU_POLICY_CRD_PATH", f"{tmp_path / 'a'}{__import__('os').pathsep}{tmp_path / 'b'}")
    assert default_crd_paths() == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.delenv("GPU_POLICY_CRD_PATH")
    assert default_crd_paths() == []


def test_user_cache_is_searched_after_the_crd_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = user_cache_dir()
    assert cache == tmp_path / "xdg" / "gpu-policy" / "crds"
    (cache / "keda").mkdir(parents=True)
    shutil.copy(SCALEDOBJECT_CRD, cache / "keda" / "so.yaml")
    assert ManifestValidator("1.33", [], use_cache=True).validate(doc_of(SCALEDOBJECT)) == []
    [issue] = ManifestValidator("1.33", [], use_cache=False).validate(doc_of(SCALEDOBJECT))
    assert issue.kind == "missing-schema"


# -- fetch ---------------------------------------------------------------------------------------------------
SOURCES = [
    {
        "name": "karpenter",
        "version": "1.14.1",
        "urls": [
            "https://raw.githubusercontent.com/aws/karpenter-provider-aws/v{version}/pkg/apis/crds/"
            "karpenter.sh_nodepools.yaml"
        ],
    },
    {
        "name": "keda",
        "version": "2.20.2",
        "urls": [
            "https://raw.githubusercontent.com/kedacore/keda/v{version}/config/crd/bases/"
            "keda.sh_scaledobjects.yaml"
        ],
    },
]


@pytest.fixture
def crd_server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "served"
    (root / "karpenter").mkdir(parents=True)
    (root / "keda").mkdir()
    shutil.copy(NODEPOOL_CRD, root / "karpenter" / NODEPOOL_CRD.name)
    shutil.copy(SCALEDOBJECT_CRD, root / "keda" / SCALEDOBJECT_CRD.name)
    (root / "keda" / "not-a-crd.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_source_urls_substitute_version_and_honour_the_override() -> None:
    urls = source_urls(SOURCES)
    assert urls[0][0].endswith("/v1.14.1/pkg/apis/crds/karpenter.sh_nodepools.yaml")
    assert urls[0][1] == "karpenter/1.14.1/karpenter.sh_nodepools.yaml"
    assert source_urls(SOURCES, "http://mirror/")[1][0] == "http://mirror/keda/keda.sh_scaledobjects.yaml"


def test_fetch_writes_every_crd_and_the_validator_uses_them(crd_server: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    written = fetch_crds(SOURCES, cache, base_url_override=crd_server)
    assert sorted(p.relative_to(cache).as_posix() for p in written) == [
        "karpenter/1.14.1/karpenter.sh_nodepools.yaml",
        "keda/2.20.2/keda.sh_scaledobjects.yaml",
    ]
    assert written[0].read_bytes() == NODEPOOL_CRD.read_bytes()
    assert not list(cache.rglob("*.part"))
    assert ManifestValidator("1.33", [cache], use_cache=False).validate(doc_of(SCALEDOBJECT)) == []


def test_fetch_http_error_is_clear_and_writes_nothing(crd_server: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    broken = [*SOURCES, {"name": "keda", "version": "2.20.2", "urls": ["https://x/keda.sh_missing.yaml"]}]
    with pytest.raises(SchemaSourceError, match=r"cannot download .*keda\.sh_missing\.yaml: HTTP 404"):
        fetch_crds(broken, cache, base_url_override=crd_server)
    assert not cache.exists() or not any(cache.rglob("*"))


def test_fetch_refuses_a_file_that_is_not_a_crd(crd_server: str, tmp_path: Path) -> None:
    with pytest.raises(SchemaSourceError, match="holds no CustomResourceDefinition"):
        fetch_crds(
            [{"name": "keda", "version": "1", "urls": ["https://x/not-a-crd.yaml"]}],
            tmp_path,
            base_url_override=crd_server,
        )


def test_fetch_unreachable_server_is_clear(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SchemaSourceError, match=r"cannot download http://127\.0\.0\.1"):
        fetch_crds(SOURCES, tmp_path, base_url_override=f"http://127.0.0.1:{port}")


def test_fetch_keeps_the_previous_file_when_a_later_download_fails(crd_server: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fetch_crds(SOURCES[:1], cache, base_url_override=crd_server)
    target = cache / "karpenter" / "1.14.1" / NODEPOOL_CRD.name
    target.write_text("previous content")
    with pytest.raises(SchemaSourceError):
        fetch_crds(
            [*SOURCES[:1], {"name": "x", "version": "1", "urls": ["https://x/gone.yaml"]}],
            cache,
            base_url_override=crd_server,
        )
    assert target.read_text() == "previous content"
