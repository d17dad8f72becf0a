"""Locally generated TLS material for the SIP listeners (no internet), served the way Twilio
serves TLS (spec §4.7): an RSA certificate, TLS 1.2 and exactly Twilio's ten suites.

Each state directory has its own certificate authority (``siptwin-ca.crt``, made once and
kept: devices trust it once, ``siptwin ca``), which signs the listeners' certificate. That
one is made again whenever the names it must carry change - a new address, a new domain -
without devices having to trust anything new.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import ipaddress
import json
import os
import secrets
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

# Twilio's published TLS 1.2 suites (spec §4.7), OpenSSL names, in its order. Every one
# authenticates with RSA, so the certificate must carry an RSA key.
TWILIO_CIPHERS = (
    "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-SHA384", "AES128-GCM-SHA256", "AES128-SHA256", "AES128-SHA",
    "AES256-GCM-SHA384", "AES256-SHA256", "AES256-SHA",
)
RSA_KEY_BITS = 2048
# Bumped whenever the kind of certificate made changes: a certificate kept in a state
# directory from before (e.g. the ECDSA one earlier versions made) is then made again.
CERTIFICATE_KIND = "rsa2048-v1"
AUTHORITY = "siptwin-ca"  # <state>/tls/siptwin-ca.crt: what devices trust


def ensure_certificate(directory: Path, name: str, hostnames: list[str], addresses: list[str],
                       *, separate_process: bool = False) -> tuple[Path, Path]:
    """A certificate for ``hostnames`` and ``addresses`` signed by the directory's authority,
    made again only when those change (the authority is made once and kept).

    ``separate_process`` makes a missing one in a short-lived child: a long-running twin then
    never maps the cryptography package (~8 MB resident) even on its very first start.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    if _is_current(directory, name, hostnames, addresses):
        return cert_path, key_path
    if separate_process:
        made = subprocess.run(
            [sys.executable, "-m", "siptwin.transport.tls",
             json.dumps([str(directory), name, hostnames, addresses])],
            capture_output=True, text=True, timeout=60)
        if made.returncode != 0 or not cert_path.exists():
            raise RuntimeError(f"could not make the TLS certificate in {directory}: "
                               f"{made.stderr.strip()[-500:]}")
        return cert_path, key_path
    return make_certificate(directory, name, hostnames, addresses)


def authority_path(directory: Path) -> Path:
    """The certificate devices must trust for the listeners' certificates of ``directory``."""
    return directory / f"{AUTHORITY}.crt"


def _describe(directory: Path, hostnames: list[str], addresses: list[str]) -> dict:
    authority = authority_path(directory)
    return {"kind": CERTIFICATE_KIND, "hostnames": list(hostnames), "addresses": list(addresses),
            # Signed by this authority: one made again (another kind) means a new certificate.
            "authority": hashlib.sha256(authority.read_bytes()).hexdigest()
            if authority.exists() else None}


def _is_current(directory: Path, name: str, hostnames: list[str], addresses: list[str]) -> bool:
    """True when the kept certificate is of today's kind, names exactly these hosts and is
    signed by the authority kept beside it."""
    paths = [directory / f"{name}.{ext}" for ext in ("crt", "key", "json")]
    if not all(p.exists() for p in paths) or not _authority_is_current(directory):
        return False
    try:
        return json.loads(paths[2].read_text()) == _describe(directory, hostnames, addresses)
    except (OSError, ValueError):
        return False


def _authority_is_current(directory: Path) -> bool:
    paths = [directory / f"{AUTHORITY}.{ext}" for ext in ("crt", "key", "json")]
    if not all(p.exists() for p in paths):
        return False
    try:
        return json.loads(paths[2].read_text()) == {"kind": CERTIFICATE_KIND}
    except (OSError, ValueError):
        return False


def make_certificate(directory: Path, name: str, hostnames: list[str],
                     addresses: list[str]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    # Region processes make theirs at the same time: one authority, made by the first.
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _make_certificate(directory, name, hostnames, addresses)


def _make_certificate(directory: Path, name: str, hostnames: list[str],
                      addresses: list[str]) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    # Imported only to make a certificate: a twin whose state already holds one never
    # loads the cryptography package.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    authority, authority_key = _ensure_authority(directory)
    key = _kept_rsa_key(key_path) or rsa.generate_private_key(public_exponent=65537,
                                                              key_size=RSA_KEY_BITS)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else name)])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(authority_key, hashes.SHA256())
    )
    # Serving processes reload these while they run: each file is replaced whole, and the
    # description last (its change tells them the new pair is complete).
    _write_key(key_path, key)
    # The chain the listeners present: their certificate, then the authority's.
    _replace_file(cert_path, cert.public_bytes(serialization.Encoding.PEM)
                  + authority.public_bytes(serialization.Encoding.PEM))
    _replace_file(directory / f"{name}.json",
                  json.dumps(_describe(directory, hostnames, addresses)).encode())
    return cert_path, key_path


def _replace_file(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never part.

    ``mode`` as for a new file: narrowed by the umask (``siptwin up`` sets 0o077).
    """
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # a key: never readable
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _kept_rsa_key(path: Path) -> Any:
    """The key a certificate is made again with (new names, same key: signing only), when
    the one kept is of today's kind; None otherwise."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError):
        return None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size == RSA_KEY_BITS:
        return key
    return None


def _write_key(path: Path, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    _replace_file(path, key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()), mode=0o600)


def _ensure_authority(directory: Path) -> tuple[Any, Any]:
    """The directory's authority (certificate, key): loaded when kept, else made."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    cert_path, key_path = authority_path(directory), directory / f"{AUTHORITY}.key"
    if _authority_is_current(directory):
        return (x509.load_pem_x509_certificate(cert_path.read_bytes()),
                serialization.load_pem_private_key(key_path.read_bytes(), None))
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "siptwin"),
                         x509.NameAttribute(NameOID.COMMON_NAME,
                                            f"siptwin local authority {secrets.token_hex(4)}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{AUTHORITY}.json").write_text(json.dumps({"kind": CERTIFICATE_KIND}))
    return cert, key


def server_context(cert: Path, key: Path, *, allow_tls13: bool = False) -> ssl.SSLContext:
    """TLS 1.2 with Twilio's ten suites (spec §4.1, §4.7); TLS 1.3 only when allowed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(":".join(TWILIO_CIPHERS))
    context.load_cert_chain(cert, key)
    allow_tls13_on(context, allow_tls13)
    return context


def allow_tls13_on(context: ssl.SSLContext, allowed: bool) -> None:
    """OpenSSL copies the version range into each connection at accept time, so changing it
    on a serving context applies to the next handshake."""
    context.maximum_version = ssl.TLSVersion.TLSv1_3 if allowed else ssl.TLSVersion.TLSv1_2


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """Client context trusting ``cafile`` (the twin's authority, or its certificate chain)
    or, without it, anything."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cafile)
    return context


if __name__ == "__main__":  # ensure_certificate(separate_process=True) runs this
    directory, name, hostnames, addresses = json.loads(sys.argv[1])
    make_certificate(Path(directory), name, hostnames, addresses)
