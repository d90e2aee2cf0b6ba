"""A throw-away certificate authority for loopback HTTPS (the emulator and Azurite share it).

azure-core refuses to send bearer tokens over plain HTTP, so every loopback test server speaks HTTPS with a
certificate issued by a `trustme` CA. Clients trust it through ``connection_verify=<ca.pem>`` (azure-core) or
``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestCA:
    """Paths of a CA certificate and of a server certificate/key for 127.0.0.1, localhost and ::1."""

    directory: Path
    ca_pem_path: Path
    cert_pem_path: Path
    key_pem_path: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_pem_path), str(self.key_pem_path))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem_path))


def make_test_ca(directory: str | os.PathLike[str] | None = None) -> TestCA:
    """Create a CA and a leaf certificate for the loopback names, written as PEM files into ``directory``."""
    import trustme

    d = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="azft-ca-"))
    d.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="azft test CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1", common_name="127.0.0.1")
    ca_path, cert_path, key_path = d / "ca.pem", d / "cert.pem", d / "key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    # The server certificate file holds the leaf followed by the chain (Node and Python both accept that).
    with open(cert_path, "wb") as f:
        f.writelines(blob.bytes() for blob in leaf.cert_chain_pems)
    leaf.private_key_pem.write_to_path(str(key_path))
    os.chmod(key_path, 0o600)
    return TestCA(directory=d, ca_pem_path=ca_path, cert_pem_path=cert_path, key_pem_path=key_path)
