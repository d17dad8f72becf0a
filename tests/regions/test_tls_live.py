"""TLS as Twilio serves it (spec §4.1, §4.7), checked with the real `openssl s_client`."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl

import pytest

from siptwin.transport.tls import TWILIO_CIPHERS, ensure_certificate

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


async def s_client(host: str, port: int, *options: str) -> tuple[bool, str]:
    """Runs one handshake; (handshake completed, everything openssl printed)."""
    process = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"{host}:{port}", "-servername",
        "acme.sip.twilio.com", *options, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    text = output.decode(errors="replace")
    negotiated = "Cipher is (NONE)" not in text and ("Cipher is " in text or "Cipher    :" in text)
    return process.returncode == 0 and negotiated, text


async def test_tls12_with_twilio_suite_connects_over_rsa(harness):
    host, port = harness.node_port("us1", "tls")
    ok, text = await s_client(host, port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert ok, text
    assert "ECDHE-RSA-AES128-GCM-SHA256" in text
    assert "Server public key is 2048 bit" in text


@pytest.mark.parametrize("suite", TWILIO_CIPHERS)
async def test_every_listed_suite_is_served(harness, suite):
    host, port = harness.node_port("ie1", "tls")
    ok, text = await s_client(host, port, "-tls1_2", "-cipher", suite)
    assert ok and suite in text, text


async def test_tls13_refused_by_default(harness):
    host, port = harness.node_port("us1", "tls")
    ok, text = await s_client(host, port, "-tls1_3")
    assert not ok, text


async def test_tls13_served_when_the_setting_allows_it(harness):
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"tls13": True}))
    host, port = harness.node_port("us1", "tls")
    ok, text = await s_client(host, port, "-tls1_3")
    assert ok and "TLSv1.3" in text, text
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"tls13": False}))
    ok, text = await s_client(host, port, "-tls1_3")
    assert not ok, text


@pytest.mark.parametrize("suite", ["ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256",
                                   "DHE-RSA-AES128-GCM-SHA256"])
async def test_suites_twilio_does_not_list_are_refused(harness, suite):
    host, port = harness.node_port("us1", "tls")
    ok, text = await s_client(host, port, "-tls1_2", "-cipher", suite)
    assert not ok, text


def test_certificate_names_every_host_form_and_address(harness):
    decoded = ssl._ssl._test_decode_cert(str(harness.twin.certificate))  # type: ignore[attr-defined]
    names = {value for kind, value in decoded["subjectAltName"] if kind == "DNS"}
    addresses = {value for kind, value in decoded["subjectAltName"] if kind == "IP Address"}
    assert "*.sip.twilio.com" in names
    for region in harness.twin.catalogue:
        assert region.address in addresses
        for label in region.labels:
            assert f"*.sip.{label}.twilio.com" in names


def test_a_kept_ecdsa_certificate_is_replaced(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    directory = tmp_path / "tls"
    cert, key = ensure_certificate(directory, "old", ["*.sip.twilio.com"], ["127.0.0.1"])
    # What an earlier version left behind: an ECDSA certificate and no description.
    (directory / "old.json").unlink()
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization
    key.write_bytes(ecdsa.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    ensure_certificate(directory, "old", ["*.sip.twilio.com"], ["127.0.0.1"],
                       separate_process=True)
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    assert isinstance(loaded.public_key(), rsa.RSAPublicKey)
    kept_key = serialization.load_pem_private_key(key.read_bytes(), None)
    assert isinstance(kept_key, rsa.RSAPrivateKey)
    assert kept_key.public_key().public_numbers() == loaded.public_key().public_numbers()
    assert json.loads((directory / "old.json").read_text())["kind"].startswith("rsa")
    # Different names also make a new one.
    before = cert.read_bytes()
    ensure_certificate(directory, "old", ["*.sip.twilio.com"], ["127.0.0.1", "127.0.0.2"])
    assert cert.read_bytes() != before
