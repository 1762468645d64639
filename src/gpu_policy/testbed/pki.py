"""The testbed's throw-away PKI, made with the `openssl` command: a CA, the API server's serving certificate (for
127.0.0.1 and localhost only), client certificates for each component, and the service-account signing key pair.

Keys are ECDSA P-256 (accepted by Go's TLS, by kube-apiserver for service-account signing, and quick to make).
Certificates live 7 days: a testbed is meant to be torn down long before that.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 7
_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class PKIError(RuntimeError):
    """openssl is missing or refused to make a key or certificate."""


@dataclass(frozen=True)
class Identity:
    """A client identity: the API server takes CN as the user name and each O as a group."""

    name: str  # file stem
    common_name: str
    organizations: tuple[str, ...] = ()


#: Who talks to the API server. The admin (and kwok, which patches node and pod status and leases of nodes it fakes)
#: are cluster admins; the controller manager and scheduler get the bootstrap RBAC roles bound to their user names.
IDENTITIES: tuple[Identity, ...] = (
    Identity("admin", "gpu-policy-testbed-admin", ("system:masters",)),
    Identity("kube-controller-manager", "system:kube-controller-manager"),
    Identity("kube-scheduler", "system:kube-scheduler"),
    Identity("kwok", "kwok-controller", ("system:masters",)),
    # KEDA and Karpenter run as cluster admins: the testbed exercises their behaviour, not their charts' RBAC.
    Identity("keda", "keda-operator", ("system:masters",)),
    Identity("karpenter", "karpenter", ("system:masters",)),
)
#: The API server's aggregator proxies requests to aggregated API servers (KEDA's metrics server) with this client
#: certificate, signed by its own CA (--requestheader-client-ca-file), as kubeadm does (front-proxy-ca).
FRONT_PROXY_CLIENT = "front-proxy-client"
#: TLS of KEDA's servers (gRPC metrics service, metrics API server, webhooks) and of its gRPC client: one key pair
#: for server and client auth. The DNS names are only what the aggregator checks as TLS server name
#: (<service>.<namespace>.svc); nothing resolves them.
KEDA_TLS_SANS = ("IP:127.0.0.1", "DNS:localhost", "DNS:keda-metrics-apiserver.keda.svc")


@dataclass(frozen=True)
class PKI:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.directory / "sa.pub"

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.directory / "front-proxy-ca.crt"

    @property
    def keda_cert(self) -> Path:
        return self.directory / "keda-tls.crt"

    @property
    def keda_key(self) -> Path:
        return self.directory / "keda-tls.key"

    def client_cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        return self.directory / f"{name}.key"


def _openssl(arguments: list[str], cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise PKIError("`openssl` is not on PATH: the testbed makes its certificates with it (Debian package openssl)")
    try:
        result = subprocess.run([openssl, *arguments], cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PKIError(f"openssl {arguments[0]} failed: {exc}") from exc
    if result.returncode != 0:
        raise PKIError(f"`openssl {' '.join(arguments)}` exited {result.returncode}: {result.stderr.strip()}")


def _subject(common_name: str, organizations: tuple[str, ...] = ()) -> str:
    return "".join(f"/O={org}" for org in organizations) + f"/CN={common_name}"


def _sign(pki: PKI, stem: str, subject: str, extensions: str, ca: str = "ca") -> None:
    directory = pki.directory
    _openssl(["req", "-new", *_CURVE, "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", subject], directory)
    (directory / f"{stem}.ext").write_text(extensions, encoding="utf-8")
    _openssl(
        [
            "x509",
            "-req",
            "-in",
            f"{stem}.csr",
            "-CA",
            f"{ca}.crt",
            "-CAkey",
            f"{ca}.key",
            "-set_serial",
            str(secrets.randbits(62) + 1),
            "-days",
            str(VALID_DAYS),
            "-sha256",
            "-extfile",
            f"{stem}.ext",
            "-out",
            f"{stem}.crt",
        ],
        directory,
    )
    (directory / f"{stem}.csr").unlink()
    (directory / f"{stem}.ext").unlink()


def _make_ca(directory: Path, stem: str, common_name: str) -> None:
    _openssl(
        [
            "req",
            "-x509",
            *_CURVE,
            "-keyout",
            f"{stem}.key",
            "-out",
            f"{stem}.crt",
            "-days",
            str(VALID_DAYS),
            "-sha256",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
        directory,
    )


def make_pki(directory: Path) -> PKI:
    """Create every key and certificate the testbed needs in `directory` (mode 0700)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    pki = PKI(directory)
    _make_ca(directory, "ca", "gpu-policy-testbed-ca")
    _make_ca(directory, "front-proxy-ca", "gpu-policy-testbed-front-proxy-ca")
    leaf = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    _sign(
        pki,
        "apiserver",
        _subject("gpu-policy-testbed-apiserver"),
        leaf + "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    for identity in IDENTITIES:
        _sign(
            pki,
            identity.name,
            _subject(identity.common_name, identity.organizations),
            leaf + "extendedKeyUsage=clientAuth\n",
        )
    _sign(pki, FRONT_PROXY_CLIENT, _subject(FRONT_PROXY_CLIENT), leaf + "extendedKeyUsage=clientAuth\n",
          ca="front-proxy-ca")
    _sign(pki, "keda-tls", _subject("keda"),
          leaf + f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={','.join(KEDA_TLS_SANS)}\n")
    _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "sa.key"], directory)
    _openssl(["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], directory)
    for path in directory.glob("*.key"):
        path.chmod(0o600)
    return pki
