"""The listeners' TLS certificate names what the twin serves, and follows the domains.

It names every address served and every host form: a wildcard per edge label, and each host
form of each existing domain by name, since some clients refuse wildcards for SIP (RFC 5922
§7.2; pjsua2 does). A domain created or deleted while the twin runs changes those names: the
process that owns the control plane then makes a new certificate - signed by the state
directory's authority, which devices already trust. Every serving process (the worker
processes of ``siptwin up --workers N`` too) looks at the files right before each TLS
handshake and loads a renewed pair first: once the certificate's description names a host,
every connection after it is shown a certificate naming it, whichever process accepts it.
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

    ``make``: this process makes new certificates (the one with the control plane), in
    :meth:`run`; otherwise it only reloads the files another process made, at its next
    handshake (:meth:`refresh`), and runs no loop.
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
        """The making process's loop: a new certificate soon after the domains change."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                await self.check()
            except (OSError, RuntimeError, ssl.SSLError) as err:  # try again next time
                log.warning("TLS certificate not renewed: %s", err)

    async def check(self) -> None:
        names = self._current_names() if self.make else self._names
        if names != self._names:
            await asyncio.to_thread(ensure_certificate, self.directory, CERTIFICATE_NAME, names,
                                    certificate_addresses(self.catalogue),
                                    separate_process=True)  # keeps cryptography out of here
            self._names = names
        self.refresh()

    def refresh(self) -> None:
        """Load the files into ``context`` when they were renewed since it last loaded them.

        Called before each handshake (one stat of the description), so no process serves a
        superseded certificate while it waits for its next :meth:`check`. A pair that cannot
        be loaded leaves the one in use until the files change again (said once, not at
        every handshake: the files are replaced whole, so a retry would fail the same way).
        """
        stamp = self._file_stamp()
        if stamp == self._stamp or self.context is None:
            return
        self._stamp = stamp
        try:
            self.context.load_cert_chain(*self.files)
        except (OSError, ssl.SSLError) as err:
            log.warning("TLS certificate not reloaded, the one in use is kept: %s", err)
            return
        log.info("TLS certificate reloaded (%s)", self.files[0])

    def _current_names(self) -> list[str]:
        return certificate_names(self.catalogue, existing_domain_labels(self.control))

    def _file_stamp(self) -> int:
        # The description is written last: when it changed, the new pair is complete.
        description = self.directory / f"{CERTIFICATE_NAME}.json"
        try:
            return description.stat().st_mtime_ns
        except OSError:
            return 0
