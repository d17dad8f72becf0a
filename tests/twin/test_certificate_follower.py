"""What a serving process shows each TLS connection while the certificate is renewed beside
it: the renewed pair from the handshake after its description changed, and the pair in use
when the files on disk cannot be loaded, until they change again."""

from __future__ import annotations

import json
import socket
import ssl
import threading

from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.transport.tls import authority_path, ensure_certificate, server_context
from siptwin.twin.certificates import CERTIFICATE_NAME, CertificateFollower


def _names_shown(context: ssl.SSLContext, authority) -> set[str]:
    """One real handshake over a socket pair: the DNS names of the certificate served."""
    server_side, client_side = socket.socketpair()

    def serve() -> None:
        try:
            with context.wrap_socket(server_side, server_side=True):
                pass
        except (OSError, ssl.SSLError):  # the client's side of the handshake says why
            server_side.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client = ssl.create_default_context(cafile=str(authority))
    client.check_hostname = False
    with client.wrap_socket(client_side) as tls:
        names = {value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "DNS"}
    thread.join(5)
    return names


def test_the_next_handshake_shows_a_renewed_pair_and_a_broken_one_is_not_loaded(
        tmp_path, caplog) -> None:
    catalogue = Catalogue.load(default_catalogue_dir())
    ensure_certificate(tmp_path, CERTIFICATE_NAME, ["*.sip.twilio.com"], ["127.0.1.1"])
    follower = CertificateFollower(tmp_path, catalogue, control=None, make=False)  # type: ignore[arg-type]
    follower.context = server_context(*follower.ensure())
    authority = authority_path(tmp_path)
    assert _names_shown(follower.context, authority) == {"*.sip.twilio.com"}

    # Another process (the one with the control plane) renews it; no poll has run here.
    ensure_certificate(tmp_path, CERTIFICATE_NAME, ["*.sip.twilio.com", "acme.sip.twilio.com"],
                       ["127.0.1.1"])
    follower.refresh()  # what the endpoint calls before each handshake
    assert _names_shown(follower.context, authority) == {"*.sip.twilio.com",
                                                         "acme.sip.twilio.com"}

    # A certificate that cannot be loaded (a hand-edited file) leaves the pair in use.
    cert, _ = follower.files
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    description = tmp_path / f"{CERTIFICATE_NAME}.json"
    description.write_text(json.dumps({"changed": True}))
    follower.refresh()
    assert caplog.text.count("TLS certificate not reloaded") == 1
    assert _names_shown(follower.context, authority) == {"*.sip.twilio.com",
                                                         "acme.sip.twilio.com"}
    follower.refresh()  # the next handshake: said once, not once a connection
    assert caplog.text.count("TLS certificate not reloaded") == 1

    # Made again whole (names changed back), it is loaded at the next handshake.
    ensure_certificate(tmp_path, CERTIFICATE_NAME, ["*.sip.twilio.com"], ["127.0.1.1"])
    follower.refresh()
    assert _names_shown(follower.context, authority) == {"*.sip.twilio.com"}
