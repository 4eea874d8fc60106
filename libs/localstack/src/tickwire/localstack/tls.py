"""A local certificate authority and a server certificate for 127.0.0.1 / localhost.

Made once per machine with the `openssl` CLI and kept: trusting `ca.pem` (a browser, an
SSL context) makes `wss://127.0.0.1:8443/ws` verify, and stays valid across restarts.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tickwire.localstack.process import StartError

_DAYS = "825"  # the longest server-certificate lifetime clients accept


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate clients trust
    server_pem: Path  # server certificate, then its key: what HAProxy's `crt` takes


def ensure_tls(directory: Path) -> TlsFiles:
    """The CA and server files in `directory`, generated if any is missing."""
    files = TlsFiles(directory / "ca.pem", directory / "server.pem")
    if files.ca.exists() and files.server_pem.exists():
        return files
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StartError("openssl not found: apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, key, csr, cert = (directory / n for n in ("ca.key", "server.key", "server.csr",
                                                     "server.crt"))
    ext = directory / "server.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                   "basicConstraints = CA:FALSE\n"
                   "keyUsage = digitalSignature, keyEncipherment\n"
                   "extendedKeyUsage = serverAuth\n")

    def run(*args: str) -> None:
        result = subprocess.run([openssl, *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise StartError(f"openssl {args[0]} failed:\n{result.stderr}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(files.ca), "-days", "3650", "-subj", "/CN=tickwire local CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", _DAYS, "-extfile", str(ext))
    files.server_pem.write_text(cert.read_text() + key.read_text())
    for path in (ca_key, key, files.server_pem):
        path.chmod(0o600)
    for path in (csr, ext):
        path.unlink()
    return files
