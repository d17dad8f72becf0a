"""SQLite-backed store of the control plane: the single writer of all state.

Durability: WAL journal with ``synchronous=FULL``, so a change is on disk before the API
acknowledges it and survives ``kill -9``.  Atomicity: every API write runs in one
``BEGIN IMMEDIATE`` transaction that checks the rules and writes the change-feed row; any
refusal rolls the whole transaction back, so bad input never leaves a partial write.

State scope is declared in :mod:`siptwin.cloud.scope`; methods take the ``account_sid`` and
``region`` that scope a resource explicitly rather than inferring them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from ..model.sids import SidPrefix, is_sid, new_api_key_secret, new_auth_token, new_sid
from ..model.state_dir import DATABASE_FILE
from . import rules
from .hashing import ha1_for, secret_digest
from .migrations import migrate
from .model import (
    Account,
    AccountStatus,
    ApiKey,
    ByocTrunk,
    Change,
    Credential,
    CredentialList,
    Domain,
    DomainMapping,
    DomainRoute,
    IpAccessControlList,
    IpAddress,
    Limits,
    ListKind,
    MappingPurpose,
    Page,
    PageRequest,
    PhoneNumber,
)
from .scope import DEFAULT_REGION, PROCESSING_REGIONS

DATABASE_FILE_NAME = DATABASE_FILE

RecordT = TypeVar("RecordT")
ChangeListener = Callable[[int], None]

# Columns of a domain a caller may set; everything else is derived or immutable.
DOMAIN_SETTABLE_COLUMNS = (
    "domain_name",
    "friendly_name",
    "voice_url",
    "voice_method",
    "voice_fallback_url",
    "voice_fallback_method",
    "voice_status_callback_url",
    "voice_status_callback_method",
    "sip_registration",
    "emergency_calling_enabled",
    "secure",
    "byoc_trunk_sid",
    "emergency_caller_sid",
)
DOMAIN_DEFAULTS: dict[str, object] = {
    "friendly_name": None,
    "voice_url": None,
    "voice_method": "POST",
    "voice_fallback_url": None,
    "voice_fallback_method": "POST",
    "voice_status_callback_url": None,
    "voice_status_callback_method": "POST",
    "sip_registration": False,
    "emergency_calling_enabled": False,
    "secure": False,
    "byoc_trunk_sid": None,
    "emergency_caller_sid": None,
}


BYOC_TRUNK_DEFAULTS: dict[str, object] = {
    "friendly_name": None,
    "voice_url": None,
    "voice_method": "POST",
    "voice_fallback_url": None,
    "voice_fallback_method": "POST",
    "status_callback_url": None,
    "status_callback_method": "POST",
    "cnam_lookup_enabled": False,
    "connection_policy_sid": None,
    "from_domain_sid": None,
}
PHONE_NUMBER_DEFAULTS: dict[str, object] = {
    "voice_url": None,
    "voice_method": "POST",
    "voice_fallback_url": None,
    "voice_fallback_method": "POST",
    "status_callback": None,
    "status_callback_method": "POST",
    "emergency_status": "Inactive",
    "emergency_address_sid": None,
}
# What a domain names, and where: (domain column, table it names, what it is).
DOMAIN_REFERENCES = (
    ("byoc_trunk_sid", "byoc_trunks", "BYOC trunk"),
    ("emergency_caller_sid", "incoming_phone_numbers", "Phone number"),
)


@dataclass(frozen=True)
class _ListTable:
    """What differs between the two kinds of list a domain maps (IP ACLs, credential lists):
    their table, record, SID prefix, event noun, per-account limit and naming rules."""

    table: str
    record: type
    prefix: SidPrefix
    event: str
    limit: str  # the Limits field
    limit_code: rules.ErrorCode
    plural: str
    ensure_name_unique: Callable[[str, bool], None]
    ensure_not_mapped: Callable[[int], None]


IP_ACLS = _ListTable(
    "ip_access_control_lists", IpAccessControlList, SidPrefix.IP_ACCESS_CONTROL_LIST,
    "ip_access_control_list", "ip_acls_per_account", rules.ErrorCode.MAX_IP_ACLS,
    "IP access control lists", rules.ensure_ip_acl_name_unique, rules.ensure_ip_acl_not_mapped)
CREDENTIAL_LISTS = _ListTable(
    "credential_lists", CredentialList, SidPrefix.CREDENTIAL_LIST, "credential_list",
    "credential_lists_per_account", rules.ErrorCode.MAX_CREDENTIAL_LISTS, "credential lists",
    rules.ensure_credential_list_name_unique, rules.ensure_credential_list_not_mapped)


class MissingResource(LookupError):
    """A resource named in a write (a parent, a mapped list) does not exist in scope.

    The HTTP layer turns it into 404/20404 with the request path, which the store does not
    know.
    """


def database_path(state_dir: Path) -> Path:
    return Path(state_dir) / DATABASE_FILE_NAME


def connect(path: Path) -> sqlite3.Connection:
    """Open a connection with the pragmas every reader and writer of the file relies on."""
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=10.0
    )
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA busy_timeout = 10000")
    return connection


def _record(cls: type[RecordT], row: sqlite3.Row, **extra: Any) -> RecordT:
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = {name: extra[name] if name in extra else row[name] for name in names}
    return cls(**values)


class Store:
    def __init__(
        self,
        path: Path,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        route_propagation_seconds: int = 0,
    ) -> None:
        self.path = Path(path)
        self.limits = limits or Limits()
        self.route_propagation_seconds = route_propagation_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._connection = connect(self.path)
        migrate(self._connection)
        self._listeners: list[ChangeListener] = []
        # Commits made through this object; a view in the same process compares it instead
        # of asking SQLite whether the file changed.
        self.commits = 0
        self._pending_changes = 0

    @classmethod
    def open(
        cls,
        state_dir: Path | str,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        route_propagation_seconds: int = 0,
    ) -> Store:
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(
            database_path(directory),
            limits=limits,
            clock=clock,
            route_propagation_seconds=route_propagation_seconds,
        )

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def now(self) -> int:
        return int(self._clock())

    # --- transactions and the change feed --------------------------------------------------

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(version)`` after each committed write (same process only)."""
        self._listeners.append(listener)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            cx = self._connection
            cx.execute("BEGIN IMMEDIATE")
            self._pending_changes = 0
            try:
                yield cx
            except BaseException:
                cx.execute("ROLLBACK")
                raise
            cx.execute("COMMIT")
            self.commits += 1
            wrote_changes = self._pending_changes
        if wrote_changes:
            version = self.version()
            for listener in list(self._listeners):
                listener(version)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection

    def _changed(
        self,
        cx: sqlite3.Connection,
        kind: str,
        sid: str,
        account_sid: str | None,
        region: str | None,
        parent_sid: str | None = None,
    ) -> None:
        cx.execute(
            "INSERT INTO changes (kind, sid, account_sid, region, parent_sid, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, sid, account_sid, region, parent_sid, self.now()),
        )
        self._pending_changes += 1

    def version(self) -> int:
        with self._read() as cx:
            return int(cx.execute("SELECT COALESCE(MAX(version), 0) FROM changes").fetchone()[0])

    def changes_since(self, version: int, limit: int = 10_000) -> list[Change]:
        with self._read() as cx:
            return read_changes(cx, version, limit)

    def _page(
        self,
        cls: type[RecordT],
        sql: str,
        params: tuple[Any, ...],
        request: PageRequest,
        convert: Callable[[sqlite3.Connection, sqlite3.Row], RecordT] | None = None,
    ) -> Page[RecordT]:
        """Run ``sql`` (which must select ``seq`` and end in a WHERE clause) as one page."""
        after = request.after_seq if request.after_seq is not None else -1
        offset = 0 if request.after_seq is not None else request.offset
        with self._read() as cx:
            rows = cx.execute(
                f"{sql} AND seq > ? ORDER BY seq LIMIT ? OFFSET ?",
                (*params, after, request.limit + 1, offset),
            ).fetchall()
            records = [
                convert(cx, row) if convert else _record(cls, row) for row in rows[: request.limit]
            ]
        return Page(records=records, has_more=len(rows) > request.limit)

    # --- accounts --------------------------------------------------------------------------

    def ensure_master_account(
        self, account_sid: str | None = None, auth_token: str | None = None
    ) -> Account:
        """The top-level account the twin starts with.

        With a SID (from TWILIO_ACCOUNT_SID) that account is created or its token refreshed;
        without one, the account generated on first start is reused, so restarts keep the
        same credentials.
        """
        if account_sid is not None and not is_sid(account_sid, SidPrefix.ACCOUNT):
            raise ValueError(f"not an account SID: {account_sid!r}")
        with self._write() as cx:
            if account_sid is None:
                row = cx.execute("SELECT value FROM meta WHERE key = 'master_account_sid'").fetchone()
                account_sid = row["value"] if row else new_sid(SidPrefix.ACCOUNT)
            existing = cx.execute("SELECT * FROM accounts WHERE sid = ?", (account_sid,)).fetchone()
            now = self.now()
            if existing is None:
                cx.execute(
                    "INSERT INTO accounts (sid, auth_token, friendly_name, owner_account_sid,"
                    " status, date_created, date_updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (account_sid, auth_token or new_auth_token(), "siptwin master account",
                     account_sid, AccountStatus.ACTIVE.value, now, now),
                )
                self._changed(cx, "account.created", account_sid, account_sid, None)
            elif auth_token is not None and existing["auth_token"] != auth_token:
                cx.execute(
                    "UPDATE accounts SET auth_token = ?, date_updated = ? WHERE sid = ?",
                    (auth_token, now, account_sid),
                )
                self._changed(cx, "account.updated", account_sid, account_sid, None)
            if existing is not None and existing["status"] != AccountStatus.ACTIVE.value:
                # Only a twin from before 21477 let the master suspend or close itself, which
                # locked its operator out for good; the master is always active.
                cx.execute(
                    "UPDATE accounts SET status = ?, date_updated = ? WHERE sid = ?",
                    (AccountStatus.ACTIVE.value, now, account_sid),
                )
                self._changed(cx, "account.updated", account_sid, account_sid, None)
            self._add_region_tokens(cx, account_sid)
            cx.execute(
                "INSERT INTO meta (key, value) VALUES ('master_account_sid', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (account_sid,),
            )
        account = self.account(account_sid)
        assert account is not None
        return account

    @staticmethod
    def _add_region_tokens(cx: sqlite3.Connection, account_sid: str) -> None:
        """Each processing region but the home one gets its own token (spec 2.1)."""
        for region in PROCESSING_REGIONS:
            if region != DEFAULT_REGION:
                cx.execute(
                    "INSERT OR IGNORE INTO region_auth_tokens (account_sid, region, auth_token)"
                    " VALUES (?, ?, ?)",
                    (account_sid, region, new_auth_token()),
                )

    def auth_token(self, account_sid: str, region: str) -> str | None:
        """The auth token ``account_sid`` has in ``region``; None for an unknown account."""
        with self._read() as cx:
            if region == DEFAULT_REGION:
                row = cx.execute(
                    "SELECT auth_token FROM accounts WHERE sid = ?", (account_sid,)).fetchone()
            else:
                row = cx.execute(
                    "SELECT auth_token FROM region_auth_tokens WHERE account_sid = ? AND region = ?",
                    (account_sid, region),
                ).fetchone()
        return row["auth_token"] if row else None

    def auth_tokens(self, account_sid: str) -> dict[str, str]:
        """Every processing region's token for ``account_sid``, home region first."""
        tokens = {region: self.auth_token(account_sid, region) for region in PROCESSING_REGIONS}
        return {region: token for region, token in tokens.items() if token is not None}

    def account(self, sid: str) -> Account | None:
        with self._read() as cx:
            row = cx.execute("SELECT * FROM accounts WHERE sid = ?", (sid,)).fetchone()
        return _record(Account, row) if row else None

    def create_subaccount(self, owner: Account, friendly_name: str | None) -> Account:
        rules.ensure_may_create_subaccount(owner.is_subaccount)
        sid = new_sid(SidPrefix.ACCOUNT)
        now = self.now()
        name = friendly_name or f"SubAccount Created at {time.strftime('%Y-%m-%d %I:%M %p', time.gmtime(now))}"
        with self._write() as cx:
            cx.execute(
                "INSERT INTO accounts (sid, auth_token, friendly_name, owner_account_sid, status,"
                " date_created, date_updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sid, new_auth_token(), name, owner.sid, AccountStatus.ACTIVE.value, now, now),
            )
            self._add_region_tokens(cx, sid)
            self._changed(cx, "account.created", sid, sid, None, owner.sid)
        account = self.account(sid)
        assert account is not None
        return account

    def list_accounts(
        self,
        visible_to: Account,
        request: PageRequest,
        friendly_name: str | None = None,
        status: str | None = None,
    ) -> Page[Account]:
        """A top-level account sees itself and its sub-accounts; a sub-account only itself."""
        sql = "SELECT * FROM accounts WHERE (sid = ? OR owner_account_sid = ?)"
        params: list[Any] = [visible_to.sid, visible_to.sid]
        if friendly_name is not None:
            sql += " AND friendly_name = ?"
            params.append(friendly_name)
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        return self._page(Account, sql, tuple(params), request)

    def update_account(
        self, sid: str, friendly_name: str | None = None, status: str | None = None
    ) -> Account:
        with self._write() as cx:
            if friendly_name is not None:
                cx.execute("UPDATE accounts SET friendly_name = ? WHERE sid = ?", (friendly_name, sid))
            if status is not None:
                cx.execute("UPDATE accounts SET status = ? WHERE sid = ?", (status, sid))
            cx.execute("UPDATE accounts SET date_updated = ? WHERE sid = ?", (self.now(), sid))
            self._changed(cx, "account.updated", sid, sid, None)
        account = self.account(sid)
        if account is None:
            raise MissingResource(sid)
        return account

    # --- API keys (per account and region, spec 2.2, 6.3) ------------------------------------

    def api_key(self, account_sid: str, region: str, sid: str) -> ApiKey | None:
        with self._read() as cx:
            row = cx.execute(
                "SELECT * FROM api_keys WHERE sid = ? AND account_sid = ? AND region = ?",
                (sid, account_sid, region),
            ).fetchone()
        return _record(ApiKey, row) if row else None

    def api_key_by_sid(self, region: str, sid: str) -> ApiKey | None:
        """The key ``sid`` of any account, as Basic authentication finds it (region-bound)."""
        with self._read() as cx:
            row = cx.execute(
                "SELECT * FROM api_keys WHERE sid = ? AND region = ?", (sid, region)).fetchone()
        return _record(ApiKey, row) if row else None

    def list_api_keys(self, account_sid: str, region: str, request: PageRequest) -> Page[ApiKey]:
        return self._page(
            ApiKey, "SELECT * FROM api_keys WHERE account_sid = ? AND region = ?",
            (account_sid, region), request,
        )

    def create_api_key(
        self, account_sid: str, region: str, friendly_name: str | None
    ) -> tuple[ApiKey, str]:
        """A new key and its secret: the secret is returned here once and never stored."""
        sid = new_sid(SidPrefix.API_KEY)
        secret = new_api_key_secret()
        now = self.now()
        with self._write() as cx:
            count = cx.execute(
                "SELECT COUNT(*) FROM api_keys WHERE account_sid = ? AND region = ?",
                (account_sid, region),
            ).fetchone()[0]
            rules.ensure_under_limit(
                count, self.limits.api_keys_per_account, rules.ErrorCode.INVALID_PARAMETER,
                "API keys",
            )
            cx.execute(
                "INSERT INTO api_keys (sid, account_sid, region, friendly_name, secret_sha256,"
                " date_created, date_updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sid, account_sid, region, friendly_name, secret_digest(secret), now, now),
            )
            self._changed(cx, "api_key.created", sid, account_sid, region)
        created = self.api_key(account_sid, region, sid)
        assert created is not None
        return created, secret

    def update_api_key(
        self, account_sid: str, region: str, sid: str, friendly_name: str | None
    ) -> ApiKey:
        with self._write() as cx:
            if self.api_key(account_sid, region, sid) is None:
                raise MissingResource(sid)
            if friendly_name is not None:
                cx.execute("UPDATE api_keys SET friendly_name = ? WHERE sid = ?",
                           (friendly_name, sid))
            cx.execute("UPDATE api_keys SET date_updated = ? WHERE sid = ?", (self.now(), sid))
            self._changed(cx, "api_key.updated", sid, account_sid, region)
        updated = self.api_key(account_sid, region, sid)
        assert updated is not None
        return updated

    def delete_api_key(self, account_sid: str, region: str, sid: str) -> bool:
        with self._write() as cx:
            deleted = cx.execute(
                "DELETE FROM api_keys WHERE sid = ? AND account_sid = ? AND region = ?",
                (sid, account_sid, region),
            ).rowcount
            if deleted:
                self._changed(cx, "api_key.deleted", sid, account_sid, region)
        return bool(deleted)

    # --- domains ---------------------------------------------------------------------------

    def _domain_from_row(self, cx: sqlite3.Connection, row: sqlite3.Row) -> Domain:
        kinds = [
            ListKind(r["list_kind"])
            for r in cx.execute(
                "SELECT DISTINCT list_kind FROM domain_mappings WHERE domain_sid = ? AND purpose = ?",
                (row["sid"], MappingPurpose.CALLS.value),
            )
        ]
        return _record(
            Domain,
            row,
            sip_registration=bool(row["sip_registration"]),
            emergency_calling_enabled=bool(row["emergency_calling_enabled"]),
            secure=bool(row["secure"]),
            auth_type=rules.auth_type(kinds),
        )

    def domain(self, account_sid: str, region: str, sid: str) -> Domain | None:
        with self._read() as cx:
            row = cx.execute(
                "SELECT * FROM domains WHERE sid = ? AND account_sid = ? AND region = ?",
                (sid, account_sid, region),
            ).fetchone()
            return self._domain_from_row(cx, row) if row else None

    def list_domains(self, account_sid: str, region: str, request: PageRequest) -> Page[Domain]:
        return self._page(
            Domain,
            "SELECT * FROM domains WHERE account_sid = ? AND region = ?",
            (account_sid, region),
            request,
            self._domain_from_row,
        )

    def _check_domain_name(
        self, cx: sqlite3.Connection, account: Account, region: str, name: str, own_sid: str | None
    ) -> None:
        owner_row = cx.execute(
            "SELECT account_sid FROM domains WHERE domain_name = ? AND sid IS NOT ? LIMIT 1",
            (name, own_sid),
        ).fetchone()
        in_region = cx.execute(
            "SELECT 1 FROM domains WHERE domain_name = ? AND region = ? AND sid IS NOT ?",
            (name, region, own_sid),
        ).fetchone()
        rules.ensure_domain_name_available(
            name, account.sid, owner_row["account_sid"] if owner_row else None, in_region is not None
        )
        parent_name = rules.parent_domain_name(name)
        if parent_name is not None:
            parent = cx.execute(
                "SELECT account_sid FROM domains WHERE domain_name = ? AND region = ?",
                (parent_name, region),
            ).fetchone()
            rules.ensure_subdomain_allowed(
                name, parent["account_sid"] if parent else None, account.sid, account.owner_account_sid
            )

    def _subdomain_count(self, cx: sqlite3.Connection, region: str, name: str) -> int:
        # Only direct children can exist: a grandchild needs its parent, which needs us.
        pattern = "%." + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return int(
            cx.execute(
                "SELECT COUNT(*) FROM domains WHERE region = ? AND domain_name LIKE ? ESCAPE '\\'",
                (region, pattern),
            ).fetchone()[0]
        )

    def _claim_route(self, cx: sqlite3.Connection, name: str, account_sid: str, region: str) -> None:
        """The first copy of a host name makes its region the active one (spec 6.3)."""
        now = self.now()
        cx.execute(
            "INSERT INTO domain_routes (domain_name, sid, account_sid, friendly_name, voice_region,"
            " previous_region, effective_at, date_created, date_updated)"
            " VALUES (?, ?, ?, NULL, ?, NULL, ?, ?, ?) ON CONFLICT (domain_name) DO NOTHING",
            (name, new_sid(SidPrefix.DOMAIN_ROUTE), account_sid, region, now, now, now),
        )

    def _release_route_if_unused(self, cx: sqlite3.Connection, name: str) -> None:
        """Free the host name world-wide once no region holds a copy of it."""
        if cx.execute("SELECT 1 FROM domains WHERE domain_name = ? LIMIT 1", (name,)).fetchone():
            return
        row = cx.execute("SELECT sid, account_sid FROM domain_routes WHERE domain_name = ?",
                         (name,)).fetchone()
        if row:
            cx.execute("DELETE FROM domain_routes WHERE domain_name = ?", (name,))
            self._changed(cx, "route.deleted", row["sid"], row["account_sid"], None)

    def create_domain(self, account: Account, region: str, settings: Mapping[str, object],
                      check_emergency_caller: bool = True) -> Domain:
        values = {**DOMAIN_DEFAULTS, **settings}
        name = str(values["domain_name"])
        sid = new_sid(SidPrefix.DOMAIN)
        now = self.now()
        with self._write() as cx:
            count = cx.execute(
                "SELECT COUNT(*) FROM domains WHERE account_sid = ? AND region = ?",
                (account.sid, region),
            ).fetchone()[0]
            rules.ensure_under_limit(
                count, self.limits.domains_per_account, rules.ErrorCode.MAX_DOMAINS, "SIP domains"
            )
            self._check_domain_name(cx, account, region, name, None)
            self._check_domain_references(cx, account.sid, region, settings,
                                          check_emergency_caller)
            columns = ["sid", "account_sid", "region", *DOMAIN_SETTABLE_COLUMNS,
                       "date_created", "date_updated"]
            row_values = [sid, account.sid, region,
                          *(values[c] for c in DOMAIN_SETTABLE_COLUMNS), now, now]
            cx.execute(
                f"INSERT INTO domains ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                row_values,
            )
            self._claim_route(cx, name, account.sid, region)
            self._changed(cx, "domain.created", sid, account.sid, region)
        domain = self.domain(account.sid, region, sid)
        assert domain is not None
        return domain

    def update_domain(
        self, account: Account, region: str, sid: str, changes: Mapping[str, object],
        check_emergency_caller: bool = True,
    ) -> Domain:
        unknown = set(changes) - set(DOMAIN_SETTABLE_COLUMNS)
        if unknown:
            raise ValueError(f"not settable on a domain: {sorted(unknown)}")
        with self._write() as cx:
            row = cx.execute(
                "SELECT * FROM domains WHERE sid = ? AND account_sid = ? AND region = ?",
                (sid, account.sid, region),
            ).fetchone()
            if row is None:
                raise MissingResource(sid)
            self._check_domain_references(cx, account.sid, region, changes,
                                          check_emergency_caller)
            old_name = row["domain_name"]
            new_name = changes.get("domain_name", old_name)
            if new_name != old_name:
                # Renaming a parent would orphan its sub-domains, like deleting it would.
                rules.ensure_no_subdomains(old_name, self._subdomain_count(cx, region, old_name))
                self._check_domain_name(cx, account, region, str(new_name), sid)
            assignments = ", ".join(f"{column} = ?" for column in changes)
            cx.execute(
                f"UPDATE domains SET {assignments}{', ' if assignments else ''}date_updated = ?"
                " WHERE sid = ?",
                (*changes.values(), self.now(), sid),
            )
            if new_name != old_name:
                self._release_route_if_unused(cx, old_name)
                self._claim_route(cx, str(new_name), account.sid, region)
            self._changed(cx, "domain.updated", sid, account.sid, region)
        domain = self.domain(account.sid, region, sid)
        assert domain is not None
        return domain

    def delete_domain(self, account_sid: str, region: str, sid: str) -> bool:
        """Delete a domain and, with it, its mappings (spec 3.1: cascade assumed)."""
        with self._write() as cx:
            row = cx.execute(
                "SELECT domain_name FROM domains WHERE sid = ? AND account_sid = ? AND region = ?",
                (sid, account_sid, region),
            ).fetchone()
            if row is None:
                return False
            rules.ensure_no_subdomains(
                row["domain_name"], self._subdomain_count(cx, region, row["domain_name"])
            )
            cx.execute("DELETE FROM domains WHERE sid = ?", (sid,))
            self._release_route_if_unused(cx, row["domain_name"])
            self._changed(cx, "domain.deleted", sid, account_sid, region)
        return True

    def _check_domain_references(
        self, cx: sqlite3.Connection, account_sid: str, region: str,
        settings: Mapping[str, object], check_emergency_caller: bool,
    ) -> None:
        """A BYOC trunk or emergency caller a domain names exists in its account and region
        (spec 3.1); checked inside the write, so a delete cannot slip in between."""
        trunk = settings.get("byoc_trunk_sid")
        if trunk is not None and not self._exists(cx, "byoc_trunks", account_sid, region, trunk):
            raise rules.invalid_byoc_trunk(str(trunk))
        caller = settings.get("emergency_caller_sid")
        if (caller is not None and check_emergency_caller
                and not self._exists(cx, "incoming_phone_numbers", account_sid, region, caller)):
            raise rules.unknown_emergency_caller(str(caller))

    @staticmethod
    def _exists(cx: sqlite3.Connection, table: str, account_sid: str, region: str,
                sid: object) -> bool:
        return cx.execute(
            f"SELECT 1 FROM {table} WHERE sid = ? AND account_sid = ? AND region = ?",
            (sid, account_sid, region),
        ).fetchone() is not None

    def _release_references(
        self, cx: sqlite3.Connection, table: str, account_sid: str, region: str, sid: str,
        clear_references: bool,
    ) -> None:
        """Before ``sid`` (a trunk or a number) goes: the domains naming it either stop
        the delete or lose the reference, as ``referenced_delete`` says (spec 3.1)."""
        for column, named_table, what in DOMAIN_REFERENCES:
            if named_table != table:
                continue
            domains = [row["sid"] for row in cx.execute(
                f"SELECT sid FROM domains WHERE {column} = ? AND account_sid = ? AND region = ?",
                (sid, account_sid, region))]
            if domains and not clear_references:
                raise rules.still_referenced(what, sid, column, domains)
            now = self.now()
            for domain_sid in domains:
                cx.execute(f"UPDATE domains SET {column} = NULL, date_updated = ? WHERE sid = ?",
                           (now, domain_sid))
                self._changed(cx, "domain.updated", domain_sid, account_sid, region)

    # --- BYOC trunks and incoming phone numbers (per account and region) ------------------

    def byoc_trunk(self, account_sid: str, region: str, sid: str) -> ByocTrunk | None:
        with self._read() as cx:
            row = cx.execute(
                "SELECT * FROM byoc_trunks WHERE sid = ? AND account_sid = ? AND region = ?",
                (sid, account_sid, region),
            ).fetchone()
        return _record(ByocTrunk, row, cnam_lookup_enabled=bool(row["cnam_lookup_enabled"])) \
            if row else None

    def list_byoc_trunks(self, account_sid: str, region: str,
                         request: PageRequest) -> Page[ByocTrunk]:
        return self._page(
            ByocTrunk, "SELECT * FROM byoc_trunks WHERE account_sid = ? AND region = ?",
            (account_sid, region), request,
            lambda cx, row: _record(ByocTrunk, row,
                                    cnam_lookup_enabled=bool(row["cnam_lookup_enabled"])),
        )

    def create_byoc_trunk(self, account_sid: str, region: str,
                          settings: Mapping[str, object]) -> ByocTrunk:
        sid = new_sid(SidPrefix.BYOC_TRUNK)
        with self._write() as cx:
            self._insert_owned(cx, "byoc_trunks", sid, account_sid, region,
                               {**BYOC_TRUNK_DEFAULTS, **settings},
                               self.limits.byoc_trunks_per_account, "BYOC trunks")
            self._changed(cx, "byoc_trunk.created", sid, account_sid, region)
        created = self.byoc_trunk(account_sid, region, sid)
        assert created is not None
        return created

    def update_byoc_trunk(self, account_sid: str, region: str, sid: str,
                          changes: Mapping[str, object]) -> ByocTrunk:
        self._update_owned("byoc_trunks", "byoc_trunk", sid, account_sid, region, changes)
        updated = self.byoc_trunk(account_sid, region, sid)
        assert updated is not None
        return updated

    def delete_byoc_trunk(self, account_sid: str, region: str, sid: str,
                          clear_references: bool = False) -> bool:
        return self._delete_referable("byoc_trunks", "byoc_trunk", account_sid, region, sid,
                                      clear_references)

    def phone_number(self, account_sid: str, region: str, sid: str) -> PhoneNumber | None:
        with self._read() as cx:
            row = cx.execute(
                "SELECT * FROM incoming_phone_numbers WHERE sid = ? AND account_sid = ?"
                " AND region = ?", (sid, account_sid, region),
            ).fetchone()
        return _record(PhoneNumber, row) if row else None

    def list_phone_numbers(self, account_sid: str, region: str, request: PageRequest,
                           phone_number: str | None = None, friendly_name: str | None = None,
                           nothing: bool = False) -> Page[PhoneNumber]:
        sql = "SELECT * FROM incoming_phone_numbers WHERE account_sid = ? AND region = ?"
        params: tuple[Any, ...] = (account_sid, region)
        if phone_number is not None:
            sql += " AND phone_number = ?"
            params += (phone_number,)
        if friendly_name is not None:
            sql += " AND friendly_name = ?"
            params += (friendly_name,)
        if nothing:
            sql += " AND 0"
        return self._page(PhoneNumber, sql, params, request)

    def create_phone_number(self, account_sid: str, region: str,
                            settings: Mapping[str, object]) -> PhoneNumber:
        """A number of the account; a number another account (or this one) holds in this
        region already is 21422, as an unavailable number is on Twilio."""
        sid = new_sid(SidPrefix.PHONE_NUMBER)
        number = str(settings["phone_number"])
        values = {**PHONE_NUMBER_DEFAULTS,
                  "friendly_name": rules.phone_number_display_name(number), **settings}
        with self._write() as cx:
            taken = cx.execute(
                "SELECT 1 FROM incoming_phone_numbers WHERE region = ? AND phone_number = ?",
                (region, number)).fetchone()
            if taken:
                raise rules.phone_number_unavailable(number)
            self._insert_owned(cx, "incoming_phone_numbers", sid, account_sid, region, values,
                               self.limits.phone_numbers_per_account, "phone numbers")
            self._changed(cx, "phone_number.created", sid, account_sid, region)
        created = self.phone_number(account_sid, region, sid)
        assert created is not None
        return created

    def update_phone_number(self, account_sid: str, region: str, sid: str,
                            changes: Mapping[str, object]) -> PhoneNumber:
        self._update_owned("incoming_phone_numbers", "phone_number", sid, account_sid, region,
                           changes)
        updated = self.phone_number(account_sid, region, sid)
        assert updated is not None
        return updated

    def delete_phone_number(self, account_sid: str, region: str, sid: str,
                            clear_references: bool = False) -> bool:
        return self._delete_referable("incoming_phone_numbers", "phone_number", account_sid,
                                      region, sid, clear_references)

    def _insert_owned(self, cx: sqlite3.Connection, table: str, sid: str, account_sid: str,
                      region: str, values: Mapping[str, object], limit: int, what: str) -> None:
        count = cx.execute(
            f"SELECT COUNT(*) FROM {table} WHERE account_sid = ? AND region = ?",
            (account_sid, region),
        ).fetchone()[0]
        rules.ensure_under_limit(count, limit, rules.ErrorCode.INVALID_PARAMETER, what)
        now = self.now()
        row = {"sid": sid, "account_sid": account_sid, "region": region, **values,
               "date_created": now, "date_updated": now}
        cx.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   tuple(row.values()))

    def _update_owned(self, table: str, kind: str, sid: str, account_sid: str, region: str,
                      changes: Mapping[str, object]) -> None:
        with self._write() as cx:
            if not self._exists(cx, table, account_sid, region, sid):
                raise MissingResource(sid)
            assignments = "".join(f"{column} = ?, " for column in changes)
            cx.execute(f"UPDATE {table} SET {assignments}date_updated = ? WHERE sid = ?",
                       (*changes.values(), self.now(), sid))
            self._changed(cx, f"{kind}.updated", sid, account_sid, region)

    def _delete_referable(self, table: str, kind: str, account_sid: str, region: str, sid: str,
                          clear_references: bool) -> bool:
        """Delete a trunk or number; the domains naming it decide first (``referenced_delete``)."""
        with self._write() as cx:
            if not self._exists(cx, table, account_sid, region, sid):
                return False
            self._release_references(cx, table, account_sid, region, sid, clear_references)
            cx.execute(f"DELETE FROM {table} WHERE sid = ?", (sid,))
            self._changed(cx, f"{kind}.deleted", sid, account_sid, region)
        return True

    # --- routes (global) -------------------------------------------------------------------

    def route(self, domain_name: str) -> DomainRoute | None:
        with self._read() as cx:
            row = cx.execute(
                "SELECT * FROM domain_routes WHERE domain_name = ?", (domain_name,)
            ).fetchone()
        return _record(DomainRoute, row) if row else None

    def update_route(
        self, domain_name: str, voice_region: str | None, friendly_name: str | None
    ) -> DomainRoute:
        with self._write() as cx:
            row = cx.execute(
                "SELECT * FROM domain_routes WHERE domain_name = ?", (domain_name,)
            ).fetchone()
            if row is None:
                raise MissingResource(domain_name)
            now = self.now()
            if friendly_name is not None:
                cx.execute(
                    "UPDATE domain_routes SET friendly_name = ? WHERE domain_name = ?",
                    (friendly_name or None, domain_name),
                )
            if voice_region is not None and voice_region != row["voice_region"]:
                exists = cx.execute(
                    "SELECT 1 FROM domains WHERE domain_name = ? AND region = ?",
                    (domain_name, voice_region),
                ).fetchone()
                rules.ensure_domain_exists_in_region(exists is not None, domain_name, voice_region)
                current = _record(DomainRoute, row).active_region(now)
                cx.execute(
                    "UPDATE domain_routes SET voice_region = ?, previous_region = ?,"
                    " effective_at = ? WHERE domain_name = ?",
                    (voice_region, current, now + self.route_propagation_seconds, domain_name),
                )
            cx.execute(
                "UPDATE domain_routes SET date_updated = ? WHERE domain_name = ?", (now, domain_name)
            )
            self._changed(cx, "route.updated", row["sid"], row["account_sid"], voice_region)
        route = self.route(domain_name)
        assert route is not None
        return route

    def _owned_list(self, kind: _ListTable, account_sid: str, region: str, sid: str) -> Any:
        with self._read() as cx:
            row = cx.execute(
                f"SELECT * FROM {kind.table} WHERE sid = ? AND account_sid = ? AND region = ?",
                (sid, account_sid, region),
            ).fetchone()
        return _record(kind.record, row) if row else None

    def _owned_lists(self, kind: _ListTable, account_sid: str, region: str,
                     request: PageRequest) -> Page[Any]:
        return self._page(kind.record,
                          f"SELECT * FROM {kind.table} WHERE account_sid = ? AND region = ?",
                          (account_sid, region), request)

    def _list_name_taken(self, cx: sqlite3.Connection, kind: _ListTable, account_sid: str,
                         region: str, name: str, own_sid: str | None) -> bool:
        return cx.execute(
            f"SELECT 1 FROM {kind.table} WHERE account_sid = ? AND region = ?"
            " AND friendly_name = ? AND sid IS NOT ?",
            (account_sid, region, name, own_sid),
        ).fetchone() is not None

    def _create_list(self, kind: _ListTable, account_sid: str, region: str,
                     friendly_name: str) -> Any:
        sid = new_sid(kind.prefix)
        now = self.now()
        with self._write() as cx:
            count = cx.execute(
                f"SELECT COUNT(*) FROM {kind.table} WHERE account_sid = ? AND region = ?",
                (account_sid, region),
            ).fetchone()[0]
            rules.ensure_under_limit(count, getattr(self.limits, kind.limit), kind.limit_code,
                                     kind.plural)
            kind.ensure_name_unique(
                friendly_name,
                self._list_name_taken(cx, kind, account_sid, region, friendly_name, None))
            cx.execute(
                f"INSERT INTO {kind.table} (sid, account_sid, region, friendly_name,"
                " date_created, date_updated) VALUES (?, ?, ?, ?, ?, ?)",
                (sid, account_sid, region, friendly_name, now, now),
            )
            self._changed(cx, f"{kind.event}.created", sid, account_sid, region)
        created = self._owned_list(kind, account_sid, region, sid)
        assert created is not None
        return created

    def _rename_list(self, kind: _ListTable, account_sid: str, region: str, sid: str,
                     friendly_name: str) -> Any:
        with self._write() as cx:
            if self._owned_list(kind, account_sid, region, sid) is None:
                raise MissingResource(sid)
            kind.ensure_name_unique(
                friendly_name,
                self._list_name_taken(cx, kind, account_sid, region, friendly_name, sid))
            cx.execute(
                f"UPDATE {kind.table} SET friendly_name = ?, date_updated = ? WHERE sid = ?",
                (friendly_name, self.now(), sid),
            )
            self._changed(cx, f"{kind.event}.updated", sid, account_sid, region)
        updated = self._owned_list(kind, account_sid, region, sid)
        assert updated is not None
        return updated

    def _delete_list(self, kind: _ListTable, account_sid: str, region: str, sid: str) -> bool:
        with self._write() as cx:
            if self._owned_list(kind, account_sid, region, sid) is None:
                return False
            mapped = cx.execute(
                "SELECT COUNT(*) FROM domain_mappings WHERE list_sid = ?", (sid,)
            ).fetchone()[0]
            kind.ensure_not_mapped(mapped)
            cx.execute(f"DELETE FROM {kind.table} WHERE sid = ?", (sid,))
            self._changed(cx, f"{kind.event}.deleted", sid, account_sid, region)
        return True

    # --- IP access control lists -----------------------------------------------------------

    def ip_acl(self, account_sid: str, region: str, sid: str) -> IpAccessControlList | None:
        return self._owned_list(IP_ACLS, account_sid, region, sid)

    def list_ip_acls(
        self, account_sid: str, region: str, request: PageRequest
    ) -> Page[IpAccessControlList]:
        return self._owned_lists(IP_ACLS, account_sid, region, request)

    def create_ip_acl(self, account_sid: str, region: str, friendly_name: str) -> IpAccessControlList:
        return self._create_list(IP_ACLS, account_sid, region, friendly_name)

    def update_ip_acl(
        self, account_sid: str, region: str, sid: str, friendly_name: str
    ) -> IpAccessControlList:
        return self._rename_list(IP_ACLS, account_sid, region, sid, friendly_name)

    def delete_ip_acl(self, account_sid: str, region: str, sid: str) -> bool:
        return self._delete_list(IP_ACLS, account_sid, region, sid)

    # --- IP addresses ------------------------------------------------------------------------

    def ip_address(self, account_sid: str, region: str, acl_sid: str, sid: str) -> IpAddress | None:
        with self._read() as cx:
            row = cx.execute(
                "SELECT * FROM ip_addresses WHERE sid = ? AND ip_access_control_list_sid = ?"
                " AND account_sid = ? AND region = ?",
                (sid, acl_sid, account_sid, region),
            ).fetchone()
        return _record(IpAddress, row) if row else None

    def list_ip_addresses(
        self, account_sid: str, region: str, acl_sid: str, request: PageRequest
    ) -> Page[IpAddress]:
        return self._page(
            IpAddress,
            "SELECT * FROM ip_addresses WHERE ip_access_control_list_sid = ? AND account_sid = ?"
            " AND region = ?",
            (acl_sid, account_sid, region),
            request,
        )

    def _address_taken(
        self, cx: sqlite3.Connection, acl_sid: str, address: str, own_sid: str | None
    ) -> bool:
        return cx.execute(
            "SELECT 1 FROM ip_addresses WHERE ip_access_control_list_sid = ? AND ip_address = ?"
            " AND sid IS NOT ?",
            (acl_sid, address, own_sid),
        ).fetchone() is not None

    def create_ip_address(
        self,
        account_sid: str,
        region: str,
        acl_sid: str,
        friendly_name: str,
        address: str,
        cidr_prefix_length: int,
    ) -> IpAddress:
        sid = new_sid(SidPrefix.IP_ADDRESS)
        now = self.now()
        with self._write() as cx:
            if self.ip_acl(account_sid, region, acl_sid) is None:
                raise MissingResource(acl_sid)
            count = cx.execute(
                "SELECT COUNT(*) FROM ip_addresses WHERE ip_access_control_list_sid = ?", (acl_sid,)
            ).fetchone()[0]
            rules.ensure_under_limit(
                count, self.limits.addresses_per_ip_acl, rules.ErrorCode.MAX_IP_ADDRESSES,
                "IP addresses in this list",
            )
            rules.ensure_ip_address_unique(address, self._address_taken(cx, acl_sid, address, None))
            cx.execute(
                "INSERT INTO ip_addresses (sid, account_sid, region, ip_access_control_list_sid,"
                " friendly_name, ip_address, cidr_prefix_length, date_created, date_updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, account_sid, region, acl_sid, friendly_name, address, cidr_prefix_length,
                 now, now),
            )
            self._changed(cx, "ip_address.created", sid, account_sid, region, acl_sid)
        created = self.ip_address(account_sid, region, acl_sid, sid)
        assert created is not None
        return created

    def update_ip_address(
        self,
        account_sid: str,
        region: str,
        acl_sid: str,
        sid: str,
        changes: Mapping[str, object],
    ) -> IpAddress:
        allowed = {"friendly_name", "ip_address", "cidr_prefix_length"}
        if set(changes) - allowed:
            raise ValueError(f"not settable on an IP address: {sorted(set(changes) - allowed)}")
        with self._write() as cx:
            if self.ip_address(account_sid, region, acl_sid, sid) is None:
                raise MissingResource(sid)
            if "ip_address" in changes:
                address = str(changes["ip_address"])
                rules.ensure_ip_address_unique(address, self._address_taken(cx, acl_sid, address, sid))
            assignments = "".join(f"{column} = ?, " for column in changes)
            cx.execute(
                f"UPDATE ip_addresses SET {assignments}date_updated = ? WHERE sid = ?",
                (*changes.values(), self.now(), sid),
            )
            self._changed(cx, "ip_address.updated", sid, account_sid, region, acl_sid)
        updated = self.ip_address(account_sid, region, acl_sid, sid)
        assert updated is not None
        return updated

    def delete_ip_address(self, account_sid: str, region: str, acl_sid: str, sid: str) -> bool:
        with self._write() as cx:
            if self.ip_address(account_sid, region, acl_sid, sid) is None:
                return False
            cx.execute("DELETE FROM ip_addresses WHERE sid = ?", (sid,))
            self._changed(cx, "ip_address.deleted", sid, account_sid, region, acl_sid)
        return True

    # --- credential lists ---------------------------------------------------------------------

    def credential_list(self, account_sid: str, region: str, sid: str) -> CredentialList | None:
        return self._owned_list(CREDENTIAL_LISTS, account_sid, region, sid)

    def list_credential_lists(
        self, account_sid: str, region: str, request: PageRequest
    ) -> Page[CredentialList]:
        return self._owned_lists(CREDENTIAL_LISTS, account_sid, region, request)

    def create_credential_list(
        self, account_sid: str, region: str, friendly_name: str
    ) -> CredentialList:
        return self._create_list(CREDENTIAL_LISTS, account_sid, region, friendly_name)

    def update_credential_list(
        self, account_sid: str, region: str, sid: str, friendly_name: str
    ) -> CredentialList:
        return self._rename_list(CREDENTIAL_LISTS, account_sid, region, sid, friendly_name)

    def delete_credential_list(self, account_sid: str, region: str, sid: str) -> bool:
        return self._delete_list(CREDENTIAL_LISTS, account_sid, region, sid)

    # --- credentials ---------------------------------------------------------------------------

    def credential(
        self, account_sid: str, region: str, list_sid: str, sid: str
    ) -> Credential | None:
        with self._read() as cx:
            row = cx.execute(
                "SELECT * FROM credentials WHERE sid = ? AND credential_list_sid = ?"
                " AND account_sid = ? AND region = ?",
                (sid, list_sid, account_sid, region),
            ).fetchone()
        return _record(Credential, row) if row else None

    def list_credentials(
        self, account_sid: str, region: str, list_sid: str, request: PageRequest
    ) -> Page[Credential]:
        return self._page(
            Credential,
            "SELECT * FROM credentials WHERE credential_list_sid = ? AND account_sid = ?"
            " AND region = ?",
            (list_sid, account_sid, region),
            request,
        )

    def create_credential(
        self, account_sid: str, region: str, list_sid: str, username: str, password: str
    ) -> Credential:
        """Store ``username`` with the HA1 digests of ``password``; the password is dropped."""
        sid = new_sid(SidPrefix.CREDENTIAL)
        digests = ha1_for(username, password)
        now = self.now()
        with self._write() as cx:
            if self.credential_list(account_sid, region, list_sid) is None:
                raise MissingResource(list_sid)
            count = cx.execute(
                "SELECT COUNT(*) FROM credentials WHERE credential_list_sid = ?", (list_sid,)
            ).fetchone()[0]
            rules.ensure_under_limit(
                count, self.limits.credentials_per_list, rules.ErrorCode.MAX_CREDENTIALS,
                "credentials in this list",
            )
            taken = cx.execute(
                "SELECT 1 FROM credentials WHERE credential_list_sid = ? AND username = ?",
                (list_sid, username),
            ).fetchone()
            rules.ensure_username_unique(username, taken is not None)
            cx.execute(
                "INSERT INTO credentials (sid, account_sid, region, credential_list_sid, username,"
                " ha1_md5, ha1_sha256, date_created, date_updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, account_sid, region, list_sid, username, digests.md5, digests.sha256,
                 now, now),
            )
            self._changed(cx, "credential.created", sid, account_sid, region, list_sid)
        created = self.credential(account_sid, region, list_sid, sid)
        assert created is not None
        return created

    def update_credential_password(
        self, account_sid: str, region: str, list_sid: str, sid: str, password: str
    ) -> Credential:
        with self._write() as cx:
            existing = self.credential(account_sid, region, list_sid, sid)
            if existing is None:
                raise MissingResource(sid)
            digests = ha1_for(existing.username, password)
            cx.execute(
                "UPDATE credentials SET ha1_md5 = ?, ha1_sha256 = ?, date_updated = ? WHERE sid = ?",
                (digests.md5, digests.sha256, self.now(), sid),
            )
            self._changed(cx, "credential.updated", sid, account_sid, region, list_sid)
        updated = self.credential(account_sid, region, list_sid, sid)
        assert updated is not None
        return updated

    def delete_credential(self, account_sid: str, region: str, list_sid: str, sid: str) -> bool:
        with self._write() as cx:
            if self.credential(account_sid, region, list_sid, sid) is None:
                return False
            cx.execute("DELETE FROM credentials WHERE sid = ?", (sid,))
            self._changed(cx, "credential.deleted", sid, account_sid, region, list_sid)
        return True

    # --- domain mappings -------------------------------------------------------------------------

    _MAPPING_SELECT = (
        "SELECT m.*, COALESCE(cl.friendly_name, al.friendly_name) AS list_friendly_name"
        " FROM domain_mappings m"
        " LEFT JOIN credential_lists cl ON cl.sid = m.list_sid"
        " LEFT JOIN ip_access_control_lists al ON al.sid = m.list_sid"
    )

    def _mapping_from_row(self, cx: sqlite3.Connection, row: sqlite3.Row) -> DomainMapping:
        return _record(
            DomainMapping,
            row,
            purpose=MappingPurpose(row["purpose"]),
            list_kind=ListKind(row["list_kind"]),
        )

    def mapping(
        self,
        account_sid: str,
        region: str,
        domain_sid: str,
        purpose: MappingPurpose,
        list_kind: ListKind,
        list_sid: str,
    ) -> DomainMapping | None:
        with self._read() as cx:
            row = cx.execute(
                f"{self._MAPPING_SELECT} WHERE m.domain_sid = ? AND m.purpose = ?"
                " AND m.list_kind = ? AND m.list_sid = ? AND m.account_sid = ? AND m.region = ?",
                (domain_sid, purpose.value, list_kind.value, list_sid, account_sid, region),
            ).fetchone()
            return self._mapping_from_row(cx, row) if row else None

    def list_mappings(
        self,
        account_sid: str,
        region: str,
        domain_sid: str,
        purpose: MappingPurpose,
        list_kind: ListKind,
        request: PageRequest,
    ) -> Page[DomainMapping]:
        # ``seq`` is ambiguous after the joins; wrap the joined select so paging can use it.
        return self._page(
            DomainMapping,
            f"SELECT * FROM ({self._MAPPING_SELECT} WHERE m.domain_sid = ? AND m.purpose = ?"
            " AND m.list_kind = ? AND m.account_sid = ? AND m.region = ?) WHERE 1",
            (domain_sid, purpose.value, list_kind.value, account_sid, region),
            request,
            self._mapping_from_row,
        )

    def create_mapping(
        self,
        account_sid: str,
        region: str,
        domain_sid: str,
        purpose: MappingPurpose,
        list_kind: ListKind,
        list_sid: str,
        path: str,
    ) -> DomainMapping:
        """Attach a list to a domain.  ``path`` names the request for a 404 on a missing list."""
        table = (
            "credential_lists" if list_kind is ListKind.CREDENTIAL_LIST else "ip_access_control_lists"
        )
        now = self.now()
        with self._write() as cx:
            if self.domain(account_sid, region, domain_sid) is None:
                raise MissingResource(domain_sid)
            list_row = cx.execute(
                f"SELECT 1 FROM {table} WHERE sid = ? AND account_sid = ? AND region = ?",
                (list_sid, account_sid, region),
            ).fetchone()
            rules.ensure_mapped_list_exists(list_row is not None, path)
            already = cx.execute(
                "SELECT 1 FROM domain_mappings WHERE domain_sid = ? AND purpose = ? AND list_sid = ?",
                (domain_sid, purpose.value, list_sid),
            ).fetchone()
            rules.ensure_not_already_mapped(list_kind, already is not None)
            if list_kind is ListKind.CREDENTIAL_LIST:
                count = cx.execute(
                    "SELECT COUNT(*) FROM domain_mappings WHERE domain_sid = ? AND purpose = ?"
                    " AND list_kind = ?",
                    (domain_sid, purpose.value, list_kind.value),
                ).fetchone()[0]
                rules.ensure_domain_list_capacity(count, self.limits)
            cx.execute(
                "INSERT INTO domain_mappings (domain_sid, purpose, list_kind, list_sid, account_sid,"
                " region, date_created, date_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (domain_sid, purpose.value, list_kind.value, list_sid, account_sid, region, now, now),
            )
            self._changed(cx, f"{purpose.value}_mapping.created", list_sid, account_sid, region,
                          domain_sid)
        created = self.mapping(account_sid, region, domain_sid, purpose, list_kind, list_sid)
        assert created is not None
        return created

    def delete_mapping(
        self,
        account_sid: str,
        region: str,
        domain_sid: str,
        purpose: MappingPurpose,
        list_kind: ListKind,
        list_sid: str,
    ) -> bool:
        with self._write() as cx:
            deleted = cx.execute(
                "DELETE FROM domain_mappings WHERE domain_sid = ? AND purpose = ? AND list_kind = ?"
                " AND list_sid = ? AND account_sid = ? AND region = ?",
                (domain_sid, purpose.value, list_kind.value, list_sid, account_sid, region),
            ).rowcount
            if deleted:
                self._changed(cx, f"{purpose.value}_mapping.deleted", list_sid, account_sid, region,
                              domain_sid)
        return bool(deleted)


def read_changes(cx: sqlite3.Connection, version: int, limit: int) -> list[Change]:
    rows = cx.execute(
        "SELECT version, kind, sid, account_sid, region, parent_sid FROM changes"
        " WHERE version > ? ORDER BY version LIMIT ?",
        (version, limit),
    ).fetchall()
    return [_record(Change, row) for row in rows]
