"""The state directory's authority: made once, it signs every certificate made after it, so
a device that trusts it keeps trusting the twin when the names change."""

from __future__ import annotations

import ssl
import subprocess

from siptwin.transport.tls import authority_path, ensure_certificate


def _text(path) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(path)],
                          capture_output=True, text=True, check=True).stdout


def test_new_names_get_a_new_certificate_from_the_same_authority_and_key(tmp_path) -> None:
    cert, key = ensure_certificate(tmp_path, "siptwin", ["*.sip.twilio.com"], ["127.0.1.1"])
    authority = authority_path(tmp_path)
    first_authority, first_key = authority.read_bytes(), key.read_bytes()
    assert "CA:TRUE" in _text(authority) and "Certificate Sign" in _text(authority)
    assert "CA:FALSE" in _text(cert) and "TLS Web Server Authentication" in _text(cert)

    ensure_certificate(tmp_path, "siptwin", ["*.sip.twilio.com", "acme.sip.ie1.twilio.com"],
                       ["127.0.1.1"], separate_process=True)
    assert authority.read_bytes() == first_authority  # devices need not trust anything new
    assert key.read_bytes() == first_key  # signing only: no new key
    assert "DNS:acme.sip.ie1.twilio.com" in _text(cert)
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(authority), str(cert)],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The file the listeners load carries the chain: the certificate, then the authority.
    assert cert.read_text().count("BEGIN CERTIFICATE") == 2
    ssl.create_default_context(cafile=str(authority))  # a PEM that ssl accepts as a CA


def test_a_deleted_authority_is_made_again_and_the_certificate_with_it(tmp_path) -> None:
    cert, _ = ensure_certificate(tmp_path, "siptwin", ["*.sip.twilio.com"], ["127.0.1.1"])
    authority = authority_path(tmp_path)
    before = authority.read_bytes()
    authority.unlink()
    ensure_certificate(tmp_path, "siptwin", ["*.sip.twilio.com"], ["127.0.1.1"])
    assert authority.read_bytes() != before
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(authority), str(cert)],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_renewed_certificate_replaces_each_file_whole_and_keeps_the_key_private(tmp_path) -> None:
    _, key = ensure_certificate(tmp_path, "siptwin", ["*.sip.twilio.com"], ["127.0.1.1"])
    ensure_certificate(tmp_path, "siptwin", ["*.sip.twilio.com", "acme.sip.twilio.com"],
                       ["127.0.1.1"])
    assert key.stat().st_mode & 0o777 == 0o600
    # Written beside and renamed over: a serving process never reads half a file, and none
    # of the partial files is left behind.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".lock")) == [
        "siptwin-ca.crt", "siptwin-ca.json", "siptwin-ca.key",
        "siptwin.crt", "siptwin.json", "siptwin.key"]
