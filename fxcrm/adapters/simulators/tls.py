"""A self-signed certificate for the HTTPS simulators, made once and kept in a directory.

Real MT5 access servers often run on self-signed certificates, so the simulators do too; clients
either pin this certificate (it is its own CA) or turn verification off.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def ensure_self_signed_cert(
    directory: Path | str,
    *,
    name: str = "simulator",
    hosts: tuple[str, ...] = DEFAULT_HOSTS,
    days: int = 825,
) -> tuple[Path, Path]:
    """(certfile, keyfile) in `directory`, generated when missing or expiring within a day."""
    directory = Path(directory)
    certfile, keyfile = directory / f"{name}.crt", directory / f"{name}.key"
    if certfile.exists() and keyfile.exists() and _still_valid(certfile):
        return certfile, keyfile
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())  # fast to make, accepted by OpenSSL and Node
    cert = _build_cert(key, hosts, days)
    _write_atomic(
        keyfile,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    _write_atomic(certfile, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return certfile, keyfile


def _build_cert(
    key: ec.EllipticCurvePrivateKey, hosts: tuple[str, ...], days: int
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fxcrm simulators"),
        ]
    )
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # CA so that the file can be given to clients as their trust anchor.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


def _still_valid(certfile: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write then rename, so two processes starting at once never read half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
