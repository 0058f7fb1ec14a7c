"""Certificates for the TLS tests, made with the openssl command line: a site CA and a broker
certificate it signed, for 127.0.0.1 (where the tests' Mosquitto listens)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ca_and_server(d: Path, name: str) -> tuple[Path, Path, Path]:
    """A new CA named ``name`` and a server certificate it signed, written to ``d``: the CA's
    certificate, the server's certificate and the server's key, in that order."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ca_key, ca = d / f"{name}-ca.key", d / f"{name}-ca.pem"
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        f"/CN={name} test CA", "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(csr))
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext))
    return ca, cert, key
