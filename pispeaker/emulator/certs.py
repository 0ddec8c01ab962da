"""The emulator's TLS material, made at start-up (the SDK always dials ``wss://``).

trustme issues a throwaway CA and a server certificate for 127.0.0.1, ::1 and localhost;
clients trust the CA file (``live.ca_file``, ``SSL_CERT_FILE`` or an ``ssl`` context).
"""

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

CA_FILE_NAME = "emulator-ca.pem"


@dataclass(frozen=True)
class TlsMaterial:
    """A server context ready to serve and the CA file clients must trust."""

    server_context: ssl.SSLContext
    ca_file: Path


def issue_tls(directory: Path) -> TlsMaterial:
    """Make a CA and a loopback server certificate; write the CA to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="pispeaker Live API emulator")
    server_cert = ca.issue_cert("127.0.0.1", "::1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca_file = directory / CA_FILE_NAME
    ca.cert_pem.write_to_path(str(ca_file))
    return TlsMaterial(context, ca_file)


def client_context(ca_file: Path) -> ssl.SSLContext:
    """A client context that trusts the emulator's CA (and nothing else)."""
    return ssl.create_default_context(cafile=str(ca_file))
