"""REGISTER for SIP Domains with registration enabled (spec §4.8).

Bindings are shared by every edge of the twin (Twilio stores them in the domain's active
region and any edge reaches them) and expire on their own. One process keeps them in memory;
the processes of ``siptwin up --workers N`` share one SQLite file in the state directory
(:class:`SqliteBindings`), so a device registered through one process is reached by a
``<Dial>`` that another handles.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..cloud.view import ControlPlaneView
from ..model.calls import Call, CallRegistry, TraceEntry
from ..model.codes import (
    NO_REGISTRATION_LIST,
    POSSIBLE_LOOP,
    REGISTRATION_DISABLED,
    REGISTRATION_RATE,
    TOO_MANY_BINDINGS,
    CallError,
    CallStatus,
    Stage,
)
from ..model.rates import RateLimit
from ..settings import Fidelity
from ..sip.errors import SipParseError
from ..sip.message import Request, Response
from ..sip.uri import SipUri
from .catalogue import Catalogue, Region
from .pipeline import (
    DigestState,
    InviteContext,
    check_digest,
    inactive_account,
    loopback_contact,
)
from .responses import twilio_response

if TYPE_CHECKING:
    from ..transport.endpoint import Source



class RegistrarHost(Protocol):
    """What the registrar reads of the node that received a REGISTER (a RegionNode has it)."""

    region: Region
    catalogue: Catalogue
    control: ControlPlaneView
    fidelity: Fidelity
    digest: DigestState
    calls: CallRegistry

    def region_for(self, request: Request) -> Region: ...


@dataclass
class Binding:
    contact: str  # the Contact value as registered (name-addr form)
    expires_at: float
    source: str  # "transport:ip:port"
    username: str


@dataclass
class BindingChange:
    """An AOR's unexpired bindings (contact URI -> binding), changed in place; the store
    writes them back when the change ends with ``keep`` set."""

    bindings: dict[str, Binding]
    keep: bool = False


class BindingStore(Protocol):
    """Where the bindings live: the unexpired ones of an AOR, and an atomic change of them."""

    def current(self, aor: str, now: float) -> dict[str, Binding]: ...

    def updating(self, aor: str,
                 now: float) -> contextlib.AbstractContextManager[BindingChange]: ...


class MemoryBindings:
    """The bindings of one process (AOR -> contact URI -> binding); an AOR's expired bindings
    go when it is next read, and an AOR left with none goes with them."""

    def __init__(self) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}

    def current(self, aor: str, now: float) -> dict[str, Binding]:
        current = self._bindings.get(aor)
        if current is None:
            return {}
        for key in [k for k, b in current.items() if b.expires_at <= now]:
            del current[key]
        if not current:
            del self._bindings[aor]
        return dict(current)

    @contextlib.contextmanager
    def updating(self, aor: str, now: float) -> Iterator[BindingChange]:
        change = BindingChange(self.current(aor, now))
        yield change
        if change.keep:
            if change.bindings:
                self._bindings[aor] = change.bindings
            else:
                self._bindings.pop(aor, None)


class SqliteBindings:
    """Bindings in a SQLite file every process of one twin opens (``--workers N``).

    A change is one IMMEDIATE transaction (two processes refreshing one AOR cannot lose each
    other's contacts), and each change first deletes every expired row, so the table never
    holds more than the unexpired bindings - at most 10 per AOR, for at most 3600 s."""

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")  # bindings are refreshed anyway
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("CREATE TABLE IF NOT EXISTS bindings (aor TEXT NOT NULL, contact TEXT "
                         "NOT NULL, expires_at REAL NOT NULL, source TEXT NOT NULL, username "
                         "TEXT NOT NULL, PRIMARY KEY (aor, contact))")
        self._db.execute("CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings (expires_at)")
        if fresh:  # a twin starting anew: no device has registered with it yet
            self._db.execute("DELETE FROM bindings")
        with contextlib.suppress(OSError):
            path.chmod(0o600)

    def current(self, aor: str, now: float) -> dict[str, Binding]:
        rows = self._db.execute("SELECT contact, expires_at, source, username FROM bindings "
                                "WHERE aor = ? AND expires_at > ?", (aor, now)).fetchall()
        return {row[0]: Binding(*row) for row in rows}

    @contextlib.contextmanager
    def updating(self, aor: str, now: float) -> Iterator[BindingChange]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            change = BindingChange(self.current(aor, now))
            yield change
            if change.keep:
                db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
                db.executemany("INSERT INTO bindings VALUES (?, ?, ?, ?, ?)",
                               [(aor, b.contact, b.expires_at, b.source, b.username)
                                for b in change.bindings.values()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


class Registrar:
    def __init__(self, store: BindingStore | None = None) -> None:
        self.store: BindingStore = store or MemoryBindings()
        self.rate = RateLimit()  # REGISTERs per second per account (32008)

    def bindings(self, aor: str, now: float | None = None) -> list[Binding]:
        now = time.time() if now is None else now
        return list(self.store.current(aor, now).values())

    def handle(self, node: RegistrarHost, request: Request, source: Source, now: float) -> Response:
        """Answer a REGISTER; the exchange is kept as a call record (``method="REGISTER"``,
        never listed by REST: it has no CallSid) so diagnostics can explain it."""
        record = _register_record(node, request, source)
        response = self._handle(node, request, source, now)
        if record is not None:
            _record_outcome(record, node, response)
        return response

    def _handle(self, node: RegistrarHost, request: Request, source: Source, now: float) -> Response:
        fidelity = node.fidelity
        to_uri = request.to.uri
        host = node.catalogue.match_host(to_uri.host) if isinstance(to_uri, SipUri) else None
        domain = node.control.find_domain(host.domain_name) if host else None
        if domain is None:  # no account to log to, so no code (spec §4.2 step 3)
            return twilio_response(request, fidelity.unknown_domain_status)
        inactive = inactive_account(domain, fidelity, Stage.REGISTRATION)
        if inactive is not None:
            assert inactive.status is not None and inactive.error is not None
            return twilio_response(request, inactive.status, extra=_error(inactive.error))
        if not self.rate.allow(domain.account_sid, float(fidelity.registration_rate_limit), now):
            return twilio_response(request, fidelity.rate_limited_status,
                                   extra=_error(REGISTRATION_RATE))
        if loopback_contact(request, source.host, fidelity.loopback_contact) is not None:
            return twilio_response(request, fidelity.loopback_contact_status, "Loop Detected",
                                   extra=_error(POSSIBLE_LOOP))
        if not domain.sip_registration:
            return twilio_response(request, 403, extra=_error(REGISTRATION_DISABLED))
        if not domain.registration_credential_lists:
            return twilio_response(request, 403, extra=_error(NO_REGISTRATION_LIST))
        ctx = InviteContext(request, source.transport, source.host, source.port,
                            node.region_for(request),
                            node.catalogue, node.control, fidelity, node.digest, now)
        verdict = check_digest(ctx, "REGISTER", domain.registration_credentials,
                               Stage.REGISTRATION)
        record = node.calls.get(request.call_id)
        if record is not None and record.method == "REGISTER":
            record.note(*ctx.notes)
        if verdict is not None:
            extra = verdict.headers + (_error(verdict.error) if verdict.error else ())
            return twilio_response(request, verdict.status or 403, verdict.reason, extra=extra)
        assert isinstance(to_uri, SipUri)
        aor = f"sip:{to_uri.user}@{domain.domain_name}"
        return self._update(node, request, source, aor, ctx.username or "", now)

    def _update(self, node: RegistrarHost, request: Request, source: Source, aor: str,
                username: str, now: float) -> Response:
        fidelity = node.fidelity
        try:
            contacts = request.contacts
            default_expires = request.expires
        except SipParseError as err:
            return twilio_response(request, 400, err.reason)
        with self.store.updating(aor, now) as change:
            response = self._change(request, source, change.bindings, contacts,
                                    default_expires, username, fidelity, now)
            change.keep = response.status == 200
        return response

    def _change(self, request: Request, source: Source, current: dict[str, Binding],
                contacts: list[Any], default_expires: int | None, username: str,
                fidelity: Fidelity, now: float) -> Response:
        """Apply the REGISTER's contacts to ``current`` (in place); its response."""
        if contacts and contacts[0].star:
            if default_expires != 0:
                return twilio_response(request, 400, "Contact * requires Expires: 0")
            current.clear()
        for contact in contacts:
            if contact.address is None:
                continue
            expires = contact.expires
            if expires is None:
                expires = default_expires if default_expires is not None else 3600
            key = str(contact.address.uri)
            if expires == 0:
                current.pop(key, None)
                continue
            if expires < fidelity.registration_min_expires:
                return twilio_response(request, 423, extra=(
                    ("Min-Expires", str(fidelity.registration_min_expires)),))
            expires = min(expires, fidelity.registration_max_expires)
            current[key] = Binding(key, now + expires, f"{source.transport}:{source.host}:{source.port}",
                                   username)
        if len(current) > fidelity.registration_max_bindings:
            return twilio_response(request, 403, extra=_error(TOO_MANY_BINDINGS))
        listed = tuple(("Contact", f"<{b.contact}>;expires={int(b.expires_at - now)}")
                       for b in current.values())
        return twilio_response(request, 200, extra=listed)


def _register_record(node: RegistrarHost, request: Request, source: Source) -> Call | None:
    try:
        call_id = request.call_id
        from_uri, to_uri = str(request.from_.uri), str(request.to.uri)
    except SipParseError:
        return None
    record = Call(call_id=call_id, region=node.region_for(request).id, source_ip=source.host,
                  source_port=source.port, transport=source.transport, created_at=time.time(),
                  request_uri=request.uri_text, from_uri=from_uri, to_uri=to_uri,
                  fidelity=node.fidelity.as_record(), method="REGISTER")
    previous = node.calls.get(call_id)
    if previous is not None:
        # Refreshes reuse the Call-ID: keep the recent exchanges (this REGISTER is among them,
        # the node traced it on arrival).
        record.trace = previous.trace[-40:]
    else:
        record.trace.append(TraceEntry(time.time(), "in", source.transport,
                                       f"{source.host}:{source.port}",
                                       f"{source.local_host}:{source.local_port}",
                                       request.to_bytes()))
    node.calls.put(record)
    return record


def _record_outcome(record: Call, node: RegistrarHost, response: Response) -> None:
    record.final_status = response.status
    record.status = (CallStatus.REGISTERED if response.status < 300 else
                     CallStatus.CHALLENGED if response.status in (401, 407) else CallStatus.REJECTED)
    to_uri = record.to_uri
    host = to_uri.split("@", 1)[-1].split(";", 1)[0].split(":", 1)[0]
    match = node.catalogue.match_host(host)
    domain = node.control.find_domain(match.domain_name) if match else None
    if domain is not None:
        record.domain_name, record.domain_sid = domain.domain_name, domain.sid
        record.account_sid = domain.account_sid
    error = response.headers.get("X-Twilio-Error")
    if error:
        code, _, text = error.partition(" ")
        if code.isdigit():
            record.alert(int(code), text, time.time())
        record.decided_by = Stage.REGISTRATION


def _error(error: CallError) -> tuple[tuple[str, str], ...]:
    return (("X-Twilio-Error", error.header()),)
