"""Read-only view of the control plane for SIP region nodes, diagnostics and DNS.

Outside :mod:`.store`, this is the only code that knows the database schema: every other
package asks its questions here.

A region node asks one question per request — "what is this host name, and who may use
it?" — so the view answers with an immutable :class:`DomainSnapshot` holding everything the
inbound pipeline needs (webhooks, flags, IP networks, digest HA1s).  Snapshots are cached
in memory; the cache is dropped whenever the database changes, so a change is visible on
the very next lookup. A view opened on a :class:`Store` of the same process (the embedded
twin: its REST API writes through that store) watches the store's commit counter, which
costs nothing per lookup. A view opened on a path (a region in another process) asks SQLite
with ``PRAGMA data_version`` on its own connection, which changes when any other
connection commits.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .model import AccountStatus, Change, ListKind, MappingPurpose
from .rules import network_of
from .scope import DEFAULT_REGION
from .store import DATABASE_FILE_NAME, Store, connect, read_changes

__all__ = [
    "AclHit",
    "AclSnapshot",
    "Change",
    "ControlPlaneView",
    "CredentialHit",
    "CredentialSnapshot",
    "DomainSnapshot",
]


@dataclass(frozen=True)
class AclSnapshot:
    sid: str
    friendly_name: str
    networks: tuple[ipaddress.IPv4Network, ...]


@dataclass(frozen=True)
class CredentialSnapshot:
    username: str
    ha1_md5: str
    ha1_sha256: str
    list_sid: str


@dataclass(frozen=True)
class CredentialListSnapshot:
    sid: str
    friendly_name: str


@dataclass(frozen=True)
class DomainSnapshot:
    sid: str
    account_sid: str
    domain_name: str
    friendly_name: str | None
    region: str  # the processing region whose copy of the domain is active
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    voice_status_callback_url: str | None
    voice_status_callback_method: str
    sip_registration: bool
    secure: bool
    emergency_calling_enabled: bool
    byoc_trunk_sid: str | None
    call_acl_networks: tuple[ipaddress.IPv4Network, ...]
    call_acls: tuple[AclSnapshot, ...]
    call_credential_lists: tuple[CredentialListSnapshot, ...]
    call_credentials: Mapping[str, CredentialSnapshot]
    registration_credential_lists: tuple[CredentialListSnapshot, ...]
    registration_credentials: Mapping[str, CredentialSnapshot]
    auth_token: str
    account_status: str  # "active", "suspended" or "closed": only an active one takes traffic

    @property
    def is_account_active(self) -> bool:
        return self.account_status == AccountStatus.ACTIVE.value

    @property
    def has_call_authentication(self) -> bool:
        """A domain with nothing mapped for calls accepts no traffic (spec 1)."""
        return bool(self.call_acls or self.call_credential_lists)


@dataclass(frozen=True)
class AclHit:
    sid: str
    friendly_name: str
    region: str
    entry: str  # "127.0.0.0/24"
    mapped_to: tuple[str, ...]  # "acme.sip.twilio.com (us1, calls)"


@dataclass(frozen=True)
class CredentialHit:
    list_sid: str
    friendly_name: str
    region: str
    mapped_to: tuple[str, ...]  # "acme.sip.twilio.com (us1, registrations)"


class ControlPlaneView:
    """What region nodes read.  Thread-safe; open one per process (or per node)."""

    def __init__(
        self, source: Store | Path | str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store: Store | None = None
        if isinstance(source, Store):
            path = source.path
            self._store = source
        else:
            path = Path(source)
            if path.is_dir():
                path = path / DATABASE_FILE_NAME
        if not path.exists():
            raise FileNotFoundError(f"no control-plane database at {path}")
        self._clock = clock
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection = connect(path)
        self._seen_version: int | None = None  # the store's commits, or SQLite's data_version
        self._domains: dict[str, DomainSnapshot | None] = {}
        self._tokens: dict[tuple[str, str], str | None] = {}
        # Routes may be switching over (propagation delay): cached answers expire then.
        self._cache_valid_until = float("inf")

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # --- the interface region nodes use -------------------------------------------------

    def find_domain(self, domain_name: str) -> DomainSnapshot | None:
        """The active copy of ``domain_name`` (already lower-case, edge labels stripped)."""
        with self._lock:
            self._drop_cache_if_stale()
            if domain_name not in self._domains:
                self._domains[domain_name] = self._load_domain(domain_name)
            return self._domains[domain_name]

    def version(self) -> int:
        with self._lock:
            row = self._connection.execute("SELECT COALESCE(MAX(version), 0) FROM changes")
            return int(row.fetchone()[0])

    def changes_since(self, version: int, limit: int = 10_000) -> list[Change]:
        with self._lock:
            return read_changes(self._connection, version, limit)

    def account_auth_token(self, account_sid: str, region: str = DEFAULT_REGION) -> str | None:
        """The token of an active account in ``region`` (each region has its own)."""
        with self._lock:
            self._drop_cache_if_stale()
            if (account_sid, region) not in self._tokens:
                row = self._connection.execute(
                    "SELECT CASE WHEN ? = ? THEN a.auth_token ELSE t.auth_token END AS auth_token"
                    " FROM accounts a LEFT JOIN region_auth_tokens t"
                    " ON t.account_sid = a.sid AND t.region = ?"
                    " WHERE a.sid = ? AND a.status = 'active'",
                    (region, DEFAULT_REGION, region, account_sid),
                ).fetchone()
                self._tokens[(account_sid, region)] = row["auth_token"] if row else None
            return self._tokens[(account_sid, region)]

    # --- the configuration around a call (diagnostics, DNS, `siptwin hosts`) ---------------
    # Read-only questions beyond the one a node asks; uncached, and a failure is an error
    # (sqlite3.Error), never an empty answer that would hide a diagnosis.

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection.execute(sql, params).fetchall()

    def routed_domain_names(self) -> list[str]:
        """Every domain name with a copy in some region (the global host-name registry)."""
        return [r["domain_name"] for r in self._rows("SELECT domain_name FROM domain_routes")]

    def domain_names(self) -> list[str]:
        return [r["domain_name"] for r in self._rows(
            "SELECT DISTINCT domain_name FROM domains ORDER BY domain_name")]

    def domain_copies(self, domain_name: str) -> list[tuple[str, str]]:
        """(region, sid) of every regional copy of ``domain_name``."""
        return [(r["region"], r["sid"]) for r in self._rows(
            "SELECT region, sid FROM domains WHERE domain_name = ?", (domain_name,))]

    def route_region(self, domain_name: str) -> str | None:
        rows = self._rows("SELECT voice_region FROM domain_routes WHERE domain_name = ?",
                          (domain_name,))
        return rows[0]["voice_region"] if rows else None

    def acls_containing(self, address: str, account_sid: str | None) -> list[AclHit]:
        """The IP ACLs (of ``account_sid``, or any) with an entry that contains ``address``."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return []
        sql = ("SELECT a.sid, a.friendly_name, a.region, e.ip_address, e.cidr_prefix_length"
               " FROM ip_addresses e JOIN ip_access_control_lists a"
               " ON a.sid = e.ip_access_control_list_sid")
        params: tuple[Any, ...] = ()
        if account_sid:
            sql += " WHERE a.account_sid = ?"
            params = (account_sid,)
        hits: dict[str, AclHit] = {}
        for row in self._rows(sql + " ORDER BY e.seq", params):
            try:
                net = ipaddress.ip_network(f"{row['ip_address']}/{row['cidr_prefix_length']}",
                                           strict=False)
            except ValueError:
                continue
            if ip in net and row["sid"] not in hits:
                hits[row["sid"]] = AclHit(row["sid"], row["friendly_name"], row["region"],
                                          str(net), self._mapped(row["sid"]))
        return list(hits.values())

    def credential_lists_with(self, username: str, account_sid: str | None) -> list[CredentialHit]:
        """The credential lists (of ``account_sid``, or any) holding ``username``."""
        sql = ("SELECT l.sid, l.friendly_name, l.region FROM credentials c"
               " JOIN credential_lists l ON l.sid = c.credential_list_sid WHERE c.username = ?")
        params: tuple[Any, ...] = (username,)
        if account_sid:
            sql += " AND l.account_sid = ?"
            params = (username, account_sid)
        return [CredentialHit(r["sid"], r["friendly_name"], r["region"], self._mapped(r["sid"]))
                for r in self._rows(sql, params)]

    def unmapped_lists(self, account_sid: str, region: str) -> list[tuple[str, str, str]]:
        """(kind, sid, friendly name) of lists in ``region`` mapped to no domain for calls."""
        unmapped = " AND sid NOT IN (SELECT list_sid FROM domain_mappings WHERE purpose = 'calls')"
        acls = self._rows("SELECT sid, friendly_name FROM ip_access_control_lists"
                          " WHERE account_sid = ? AND region = ?" + unmapped, (account_sid, region))
        lists = self._rows("SELECT sid, friendly_name FROM credential_lists"
                           " WHERE account_sid = ? AND region = ?" + unmapped, (account_sid, region))
        return ([("IP ACL", r["sid"], r["friendly_name"]) for r in acls]
                + [("credential list", r["sid"], r["friendly_name"]) for r in lists])

    def _mapped(self, list_sid: str) -> tuple[str, ...]:
        rows = self._rows(
            "SELECT d.domain_name, d.region, m.purpose FROM domain_mappings m"
            " JOIN domains d ON d.sid = m.domain_sid WHERE m.list_sid = ? ORDER BY m.seq",
            (list_sid,))
        return tuple(f"{r['domain_name']} ({r['region']}, {r['purpose']})" for r in rows)

    # --- internals -------------------------------------------------------------------------

    def _drop_cache_if_stale(self) -> None:
        if self._store is not None:
            version = self._store.commits
        else:
            version = int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        if version != self._seen_version or self._clock() >= self._cache_valid_until:
            self._seen_version = version
            self._domains.clear()
            self._tokens.clear()
            self._cache_valid_until = float("inf")

    def _load_domain(self, domain_name: str) -> DomainSnapshot | None:
        cx = self._connection
        # One read transaction, so the snapshot is consistent even while the API writes.
        cx.execute("BEGIN")
        try:
            return self._load_domain_in_transaction(cx, domain_name)
        finally:
            cx.execute("COMMIT")

    def _load_domain_in_transaction(
        self, cx: sqlite3.Connection, domain_name: str
    ) -> DomainSnapshot | None:
        route = cx.execute(
            "SELECT voice_region, previous_region, effective_at FROM domain_routes"
            " WHERE domain_name = ?",
            (domain_name,),
        ).fetchone()
        if route is None:
            return None
        now = self._clock()
        region = route["voice_region"]
        if route["previous_region"] is not None and now < route["effective_at"]:
            region = route["previous_region"]
            self._cache_valid_until = min(self._cache_valid_until, route["effective_at"])
        row = cx.execute(
            # Webhooks are signed with the token of the region that processes the call.
            "SELECT d.*, CASE WHEN d.region = ? THEN a.auth_token ELSE t.auth_token END"
            " AS auth_token, a.status AS account_status FROM domains d JOIN accounts a ON a.sid = d.account_sid"
            " LEFT JOIN region_auth_tokens t ON t.account_sid = d.account_sid"
            " AND t.region = d.region WHERE d.domain_name = ? AND d.region = ?",
            (DEFAULT_REGION, domain_name, region),
        ).fetchone()
        if row is None:
            return None
        acls = self._call_acls(cx, row["sid"])
        call_lists, call_credentials = self._credentials(cx, row["sid"], MappingPurpose.CALLS)
        registration_lists, registration_credentials = self._credentials(
            cx, row["sid"], MappingPurpose.REGISTRATIONS
        )
        return DomainSnapshot(
            sid=row["sid"],
            account_sid=row["account_sid"],
            domain_name=row["domain_name"],
            friendly_name=row["friendly_name"],
            region=region,
            voice_url=row["voice_url"],
            voice_method=row["voice_method"],
            voice_fallback_url=row["voice_fallback_url"],
            voice_fallback_method=row["voice_fallback_method"],
            voice_status_callback_url=row["voice_status_callback_url"],
            voice_status_callback_method=row["voice_status_callback_method"],
            sip_registration=bool(row["sip_registration"]),
            secure=bool(row["secure"]),
            emergency_calling_enabled=bool(row["emergency_calling_enabled"]),
            byoc_trunk_sid=row["byoc_trunk_sid"],
            call_acl_networks=tuple(network for acl in acls for network in acl.networks),
            call_acls=acls,
            call_credential_lists=call_lists,
            call_credentials=call_credentials,
            registration_credential_lists=registration_lists,
            registration_credentials=registration_credentials,
            auth_token=row["auth_token"],
            account_status=row["account_status"],
        )

    def _call_acls(self, cx: sqlite3.Connection, domain_sid: str) -> tuple[AclSnapshot, ...]:
        acl_rows = cx.execute(
            "SELECT al.sid, al.friendly_name FROM domain_mappings m"
            " JOIN ip_access_control_lists al ON al.sid = m.list_sid"
            " WHERE m.domain_sid = ? AND m.purpose = ? AND m.list_kind = ? ORDER BY m.seq",
            (domain_sid, MappingPurpose.CALLS.value, ListKind.IP_ACCESS_CONTROL_LIST.value),
        ).fetchall()
        snapshots = []
        for acl in acl_rows:
            networks = tuple(
                network_of(entry["ip_address"], entry["cidr_prefix_length"])
                for entry in cx.execute(
                    "SELECT ip_address, cidr_prefix_length FROM ip_addresses"
                    " WHERE ip_access_control_list_sid = ? ORDER BY seq",
                    (acl["sid"],),
                )
            )
            snapshots.append(AclSnapshot(acl["sid"], acl["friendly_name"], networks))
        return tuple(snapshots)

    def _credentials(
        self, cx: sqlite3.Connection, domain_sid: str, purpose: MappingPurpose
    ) -> tuple[tuple[CredentialListSnapshot, ...], Mapping[str, CredentialSnapshot]]:
        list_rows = cx.execute(
            "SELECT cl.sid, cl.friendly_name FROM domain_mappings m"
            " JOIN credential_lists cl ON cl.sid = m.list_sid"
            " WHERE m.domain_sid = ? AND m.purpose = ? AND m.list_kind = ? ORDER BY m.seq",
            (domain_sid, purpose.value, ListKind.CREDENTIAL_LIST.value),
        ).fetchall()
        by_username: dict[str, CredentialSnapshot] = {}
        for credential_list in list_rows:
            for entry in cx.execute(
                "SELECT username, ha1_md5, ha1_sha256 FROM credentials"
                " WHERE credential_list_sid = ? ORDER BY seq",
                (credential_list["sid"],),
            ):
                # The same username in two mapped lists: the earliest-mapped list wins.
                by_username.setdefault(
                    entry["username"],
                    CredentialSnapshot(
                        entry["username"], entry["ha1_md5"], entry["ha1_sha256"],
                        credential_list["sid"],
                    ),
                )
        lists = tuple(CredentialListSnapshot(r["sid"], r["friendly_name"]) for r in list_rows)
        return lists, MappingProxyType(by_username)
