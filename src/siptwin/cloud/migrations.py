"""Versioned schema migrations for the control-plane SQLite database.

The schema version lives in ``PRAGMA user_version``.  Each migration runs in its own
transaction together with the version bump, so a crash mid-migration leaves the previous
version intact and the next start simply retries it.  Append new migrations; never edit
one that has shipped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "accounts, SIP resources, mappings, domain routes and the change feed",
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE accounts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            auth_token TEXT NOT NULL,
            friendly_name TEXT NOT NULL,
            owner_account_sid TEXT NOT NULL,
            status TEXT NOT NULL,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL
        );
        CREATE TABLE domains (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL REFERENCES accounts(sid),
            region TEXT NOT NULL,
            domain_name TEXT NOT NULL,
            friendly_name TEXT,
            voice_url TEXT,
            voice_method TEXT NOT NULL,
            voice_fallback_url TEXT,
            voice_fallback_method TEXT NOT NULL,
            voice_status_callback_url TEXT,
            voice_status_callback_method TEXT NOT NULL,
            sip_registration INTEGER NOT NULL,
            emergency_calling_enabled INTEGER NOT NULL,
            secure INTEGER NOT NULL,
            byoc_trunk_sid TEXT,
            emergency_caller_sid TEXT,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL,
            UNIQUE (region, domain_name)
        );
        CREATE INDEX domains_by_account ON domains (account_sid, region, seq);
        CREATE INDEX domains_by_name ON domains (domain_name);
        CREATE TABLE domain_routes (
            domain_name TEXT PRIMARY KEY,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL,
            friendly_name TEXT,
            voice_region TEXT NOT NULL,
            previous_region TEXT,
            effective_at INTEGER NOT NULL,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL
        );
        CREATE TABLE ip_access_control_lists (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL REFERENCES accounts(sid),
            region TEXT NOT NULL,
            friendly_name TEXT NOT NULL,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL
        );
        CREATE INDEX ip_acls_by_account ON ip_access_control_lists (account_sid, region, seq);
        CREATE TABLE ip_addresses (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL,
            region TEXT NOT NULL,
            ip_access_control_list_sid TEXT NOT NULL
                REFERENCES ip_access_control_lists(sid) ON DELETE CASCADE,
            friendly_name TEXT NOT NULL,
            ip_address TEXT NOT NULL,
            cidr_prefix_length INTEGER NOT NULL,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL
        );
        CREATE INDEX ip_addresses_by_list ON ip_addresses (ip_access_control_list_sid, seq);
        CREATE TABLE credential_lists (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL REFERENCES accounts(sid),
            region TEXT NOT NULL,
            friendly_name TEXT NOT NULL,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL
        );
        CREATE INDEX credential_lists_by_account ON credential_lists (account_sid, region, seq);
        CREATE TABLE credentials (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL,
            region TEXT NOT NULL,
            credential_list_sid TEXT NOT NULL
                REFERENCES credential_lists(sid) ON DELETE CASCADE,
            username TEXT NOT NULL,
            ha1_md5 TEXT NOT NULL,
            ha1_sha256 TEXT NOT NULL,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL,
            UNIQUE (credential_list_sid, username)
        );
        CREATE TABLE domain_mappings (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            domain_sid TEXT NOT NULL REFERENCES domains(sid) ON DELETE CASCADE,
            purpose TEXT NOT NULL,
            list_kind TEXT NOT NULL,
            list_sid TEXT NOT NULL,
            account_sid TEXT NOT NULL,
            region TEXT NOT NULL,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL,
            UNIQUE (domain_sid, purpose, list_sid)
        );
        CREATE INDEX domain_mappings_by_list ON domain_mappings (list_sid);
        CREATE TABLE changes (
            version INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            sid TEXT NOT NULL,
            account_sid TEXT,
            region TEXT,
            parent_sid TEXT,
            at INTEGER NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "an auth token per processing region, and API keys (secrets kept as SHA-256)",
        # accounts.auth_token stays the home region's (us1) token; the other processing
        # regions of every existing account get a fresh random token here.
        """
        CREATE TABLE region_auth_tokens (
            account_sid TEXT NOT NULL REFERENCES accounts(sid),
            region TEXT NOT NULL,
            auth_token TEXT NOT NULL,
            PRIMARY KEY (account_sid, region)
        );
        INSERT INTO region_auth_tokens (account_sid, region, auth_token)
            SELECT sid, 'ie1', lower(hex(randomblob(16))) FROM accounts;
        INSERT INTO region_auth_tokens (account_sid, region, auth_token)
            SELECT sid, 'au1', lower(hex(randomblob(16))) FROM accounts;
        CREATE TABLE api_keys (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL REFERENCES accounts(sid),
            region TEXT NOT NULL,
            friendly_name TEXT,
            secret_sha256 TEXT NOT NULL,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL
        );
        CREATE INDEX api_keys_by_account ON api_keys (account_sid, region, seq);
        """,
    ),
    Migration(
        3,
        "BYOC trunks and incoming phone numbers, which domains name (byoc_trunk_sid, "
        "emergency_caller_sid)",
        """
        CREATE TABLE byoc_trunks (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL REFERENCES accounts(sid),
            region TEXT NOT NULL,
            friendly_name TEXT,
            voice_url TEXT,
            voice_method TEXT NOT NULL,
            voice_fallback_url TEXT,
            voice_fallback_method TEXT NOT NULL,
            status_callback_url TEXT,
            status_callback_method TEXT NOT NULL,
            cnam_lookup_enabled INTEGER NOT NULL,
            connection_policy_sid TEXT,
            from_domain_sid TEXT,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL
        );
        CREATE INDEX byoc_trunks_by_account ON byoc_trunks (account_sid, region, seq);
        CREATE TABLE incoming_phone_numbers (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            account_sid TEXT NOT NULL REFERENCES accounts(sid),
            region TEXT NOT NULL,
            phone_number TEXT NOT NULL,
            friendly_name TEXT NOT NULL,
            voice_url TEXT,
            voice_method TEXT NOT NULL,
            voice_fallback_url TEXT,
            voice_fallback_method TEXT NOT NULL,
            status_callback TEXT,
            status_callback_method TEXT NOT NULL,
            emergency_status TEXT NOT NULL,
            emergency_address_sid TEXT,
            date_created INTEGER NOT NULL,
            date_updated INTEGER NOT NULL,
            UNIQUE (region, phone_number)
        );
        CREATE INDEX incoming_phone_numbers_by_account
            ON incoming_phone_numbers (account_sid, region, seq);
        """,
    ),
)


def schema_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the database up to the newest schema; returns the resulting version."""
    current = schema_version(connection)
    newest = MIGRATIONS[-1].version
    if current > newest:
        raise RuntimeError(
            f"control-plane database has schema version {current}, newer than this "
            f"siptwin understands ({newest}); refusing to touch it"
        )
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        script = (
            f"BEGIN IMMEDIATE;\n{migration.sql}\n"
            f"PRAGMA user_version = {migration.version};\nCOMMIT;"
        )
        try:
            connection.executescript(script)
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return schema_version(connection)
