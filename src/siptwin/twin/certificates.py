"""The listeners' TLS certificate names what the twin serves, and follows the domains.

It names every address served and every host form: a wildcard per edge label, and each host
form of each existing domain by name, since some clients refuse wildcards for SIP (RFC 5922
§7.2; pjsua2 does). A domain created or deleted while the twin runs changes those names: the
process that owns the control plane then makes a new certificate - signed by the state
directory's authority, which devices already trust - and every serving context loads it for
the next handshake; worker processes (``siptwin up --workers N``) reload the files.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from ..cloud.view import ControlPlaneView
from ..regions.catalogue import Catalogue
from ..regions.dns import existing_domain_labels
from ..transport.tls import ensure_certificate

log = logging.getLogger("siptwin.twin")

CERTIFICATE_NAME = "siptwin"
CHECK_SECONDS = 1.0  # how soon a new domain's host forms are in the certificate


def certificate_names(catalogue: Catalogue, domain_labels: list[str]) -> list[str]:
    names = ["*.sip.twilio.com"]
    for region in catalogue:
        names += [f"*.sip.{label}.twilio.com" for label in region.labels]
    for label in domain_labels:
        for region in catalogue:
            names += region.host_forms(label)
    return list(dict.fromkeys(names))


def certificate_addresses(catalogue: Catalogue) -> list[str]:
    return list(dict.fromkeys(r.address for r in catalogue))


class CertificateFollower:
    """Keeps ``context`` (set after :meth:`ensure`) serving a certificate of today's names.

    ``make``: this process makes new certificates (the one with the control plane); otherwise
    it only reloads the files another process made.
    """

    def __init__(self, directory: Path, catalogue: Catalogue, control: ControlPlaneView, *,
                 make: bool = True, in_child: bool = False) -> None:
        self.directory = directory
        self.catalogue = catalogue
        self.control = control
        self.make = make
        self.in_child = in_child
        self.context: ssl.SSLContext | None = None
        self._names: list[str] = []
        self._stamp = 0

    @property
    def files(self) -> tuple[Path, Path]:
        return (self.directory / f"{CERTIFICATE_NAME}.crt",
                self.directory / f"{CERTIFICATE_NAME}.key")

    def ensure(self) -> tuple[Path, Path]:
        """The certificate for the names of now, made if needed (at start)."""
        if not self.make:
            self._stamp = self._file_stamp()
            return self.files
        self._names = self._current_names()
        made = ensure_certificate(self.directory, CERTIFICATE_NAME, self._names,
                                  certificate_addresses(self.catalogue),
                                  separate_process=self.in_child)
        self._stamp = self._file_stamp()
        return made

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                await self.check()
            except (OSError, RuntimeError, ssl.SSLError) as err:  # try again next time
                log.warning("TLS certificate not renewed: %s", err)

    async def check(self) -> None:
        if self.make and self._current_names() != self._names:
            names = self._current_names()
            await asyncio.to_thread(ensure_certificate, self.directory, CERTIFICATE_NAME, names,
                                    certificate_addresses(self.catalogue),
                                    separate_process=True)  # keeps cryptography out of here
            self._names = names
        stamp = self._file_stamp()
        if stamp != self._stamp and self.context is not None:
            self.context.load_cert_chain(*self.files)
            self._stamp = stamp
            log.info("TLS certificate reloaded: it names %d hosts", len(self._names))

    def _current_names(self) -> list[str]:
        return certificate_names(self.catalogue, existing_domain_labels(self.control))

    def _file_stamp(self) -> int:
        # The description is written last: when it changed, the new pair is complete.
        description = self.directory / f"{CERTIFICATE_NAME}.json"
        try:
            return description.stat().st_mtime_ns
        except OSError:
            return 0
