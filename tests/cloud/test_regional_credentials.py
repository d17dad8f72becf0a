"""Credentials are per processing region (spec 2.1, 6.3) and API keys authenticate like the
auth token (spec 2.2), all through the official ``twilio`` SDK."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from urllib.parse import urlsplit, urlunsplit

from twilio.rest import Client

from siptwin.cloud.migrations import MIGRATIONS
from siptwin.cloud.store import Store

from .conftest import CheckingHttpClient, Twin, expect_error, expect_list_error

HEX_TOKEN = re.compile(r"^[0-9a-f]{32}$")


class TwilioHostsOnLoopback(CheckingHttpClient):
    """The SDK's own host names (``api.dublin.ie1.twilio.com``) sent to the twin: the
    connection goes to loopback, the Host header stays Twilio's, as behind /etc/hosts."""

    def __init__(self, twin_url: str) -> None:
        super().__init__()
        self.twin = urlsplit(twin_url)

    def request(self, method, url, params=None, data=None, headers=None, auth=None,  # type: ignore[override]
                timeout=None, allow_redirects=False):
        parts = urlsplit(url)
        self.host_header = parts.netloc
        url = urlunsplit(("http", self.twin.netloc, parts.path, parts.query, ""))
        return super().request(method, url, params=params, data=data, headers=headers,
                               auth=auth, timeout=timeout, allow_redirects=allow_redirects)


def _client(twin: Twin, username: str, password: str, account_sid: str | None = None,
            region: str | None = None) -> Client:
    client = Client(username, password, account_sid, http_client=CheckingHttpClient())
    client.api.base_url = twin.url + (f"/{region}" if region else "")
    twin.clients.append(client)
    return client


def test_spec_2_1_each_processing_region_has_its_own_auth_token(twin: Twin) -> None:
    sid = twin.master.sid
    tokens = twin.store.auth_tokens(sid)
    assert list(tokens) == ["us1", "ie1", "au1"]
    assert all(HEX_TOKEN.match(token) for token in tokens.values())
    assert len(set(tokens.values())) == 3
    assert tokens["us1"] == twin.master.auth_token

    dublin = _client(twin, sid, tokens["ie1"], region="ie1")
    assert dublin.sip.credential_lists.create(friendly_name="eu").friendly_name == "eu"
    # The account as the ie1 API shows it carries the ie1 token.
    assert dublin.api.v2010.accounts(sid).fetch().auth_token == tokens["ie1"]

    us_token_on_ie1 = _client(twin, sid, tokens["us1"], region="ie1")
    expect_list_error(us_token_on_ie1, lambda: us_token_on_ie1.sip.credential_lists.list(),
                      401, 20003)
    refusal = us_token_on_ie1.http_client.responses[-1][2]  # type: ignore[attr-defined]
    assert refusal.headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'
    assert json.loads(refusal.text)["more_info"] == "https://www.twilio.com/docs/errors/20003"
    ie1_token_on_us1 = _client(twin, sid, tokens["ie1"])
    expect_error(lambda: ie1_token_on_us1.sip.domains.create(domain_name="x.sip.twilio.com"),
                 401, 20003)
    au1_token_on_ie1 = _client(twin, sid, tokens["au1"], region="ie1")
    expect_list_error(au1_token_on_ie1, lambda: au1_token_on_ie1.sip.domains.list(), 401, 20003)


def test_spec_2_1_sdk_region_and_edge_work_with_that_regions_token(twin: Twin) -> None:
    sid, tokens = twin.master.sid, twin.store.auth_tokens(twin.master.sid)
    sdk = Client(sid, tokens["ie1"], region="ie1", edge="dublin",
                 http_client=TwilioHostsOnLoopback(twin.url))
    created = sdk.sip.credential_lists.create(friendly_name="via edge")
    assert sdk.http_client.host_header == "api.dublin.ie1.twilio.com"  # type: ignore[attr-defined]
    assert [c.sid for c in twin.client(region="ie1").sip.credential_lists.list()] == [created.sid]
    wrong = Client(sid, tokens["us1"], region="ie1", edge="dublin",
                   http_client=TwilioHostsOnLoopback(twin.url))
    expect_error(lambda: wrong.sip.credential_lists.create(friendly_name="no"), 401, 20003)


def test_spec_2_2_api_keys_are_created_listed_fetched_renamed_and_deleted(twin: Twin) -> None:
    client = twin.client()
    key = client.api.v2010.account.new_keys.create(friendly_name="ci runner")
    assert key.sid.startswith("SK") and len(key.sid) == 34
    assert key.friendly_name == "ci runner" and re.fullmatch(r"[A-Za-z0-9]{32}", key.secret)
    unnamed = client.api.v2010.account.new_keys.create()
    assert unnamed.friendly_name is None

    listed = client.api.v2010.account.keys.list()
    assert [k.sid for k in listed] == [key.sid, unnamed.sid]
    fetched = client.api.v2010.account.keys(key.sid).fetch()
    assert (fetched.sid, fetched.friendly_name) == (key.sid, "ci runner")
    # The secret is shown once: no later answer carries it (the schema check pins the fields).
    assert all("secret" not in json.loads(r.text) for _, _, r in client.http_client.responses[2:])  # type: ignore[attr-defined]

    assert client.api.v2010.account.keys(key.sid).update(friendly_name="renamed").friendly_name == "renamed"
    expect_error(lambda: client.api.v2010.account.keys(key.sid).update(friendly_name="x" * 65), 400, 20001)
    assert client.api.v2010.account.keys(unnamed.sid).delete() is True
    expect_error(lambda: client.api.v2010.account.keys(unnamed.sid).fetch(), 404, 20404)
    expect_error(lambda: client.api.v2010.account.keys(unnamed.sid).delete(), 404, 20404)
    expect_error(lambda: client.api.v2010.account.keys("SK" + "0" * 32).fetch(), 404, 20404)
    expect_error(lambda: client.api.v2010.account.keys("nonsense").fetch(), 404, 20404)


def test_spec_2_2_an_api_key_drives_the_sip_resources_until_deleted(twin: Twin) -> None:
    master = twin.master
    key = twin.client().api.v2010.account.new_keys.create(friendly_name="provisioning")
    sdk = _client(twin, key.sid, key.secret, master.sid)
    sip = sdk.api.v2010.account.sip
    domain = sip.domains.create(domain_name="keyed.sip.twilio.com", voice_url="https://a.example/v")
    users = sip.credential_lists.create(friendly_name="office")
    users.credentials.create(username="alice", password="Harbour7Lights")
    sip.domains(domain.sid).auth.calls.credential_list_mappings.create(credential_list_sid=users.sid)
    assert [d.sid for d in sip.domains.list()] == [domain.sid]
    assert twin.store.domain(master.sid, "us1", domain.sid) is not None

    wrong_secret = _client(twin, key.sid, key.secret[:-1] + ("a" if key.secret[-1] != "a" else "b"),
                           master.sid)
    expect_list_error(wrong_secret, lambda: wrong_secret.sip.domains.list(), 401, 20003)
    unknown_key = _client(twin, "SK" + "1" * 32, key.secret, master.sid)
    expect_list_error(unknown_key, lambda: unknown_key.sip.domains.list(), 401, 20003)

    twin.client().api.v2010.account.keys(key.sid).delete()
    expect_list_error(sdk, lambda: sdk.sip.domains.list(), 401, 20003)


def test_spec_6_3_api_keys_belong_to_the_region_that_created_them(twin: Twin) -> None:
    master = twin.master
    dublin_key = twin.client(region="ie1").api.v2010.account.new_keys.create(friendly_name="eu")
    assert twin.client().api.v2010.account.keys.list() == []
    in_dublin = _client(twin, dublin_key.sid, dublin_key.secret, master.sid, region="ie1")
    in_dublin.sip.credential_lists.create(friendly_name="eu list")
    on_us1 = _client(twin, dublin_key.sid, dublin_key.secret, master.sid)
    expect_list_error(on_us1, lambda: on_us1.sip.credential_lists.list(), 401, 20003)
    by_edge = Client(dublin_key.sid, dublin_key.secret, master.sid, region="ie1", edge="dublin",
                     http_client=TwilioHostsOnLoopback(twin.url))
    assert [c.friendly_name for c in by_edge.sip.credential_lists.list()] == ["eu list"]


def test_spec_2_2_a_key_reaches_subaccounts_but_not_accounts_or_keys(twin: Twin) -> None:
    master = twin.master
    sub = twin.subaccount()
    key = twin.client().api.v2010.account.new_keys.create(friendly_name="standard")
    sdk = _client(twin, key.sid, key.secret, master.sid)
    assert sdk.api.v2010.accounts(sub.sid).sip.domains.list() == []
    # A standard key is refused the Accounts and Keys resources: those take the token.
    expect_error(lambda: sdk.api.v2010.account.new_keys.create(friendly_name="more"), 401, 20003)
    expect_error(lambda: sdk.api.v2010.accounts.create(friendly_name="child"), 401, 20003)
    expect_error(lambda: sdk.api.v2010.accounts(master.sid).fetch(), 401, 20003)
    expect_error(lambda: sdk.api.v2010.account.keys(key.sid).delete(), 401, 20003)
    # A sub-account's key never reaches its parent.
    sub_key = twin.client(sub).api.v2010.account.new_keys.create()
    sub_sdk = _client(twin, sub_key.sid, sub_key.secret, master.sid)
    expect_list_error(sub_sdk, lambda: sub_sdk.sip.domains.list(), 401, 20003)
    # Suspending the account stops its keys too.
    twin.client().api.v2010.accounts(sub.sid).update(status="suspended")
    own = _client(twin, sub_key.sid, sub_key.secret, sub.sid)
    expect_list_error(own, lambda: own.sip.domains.list(), 401, 20003)


def test_api_key_secrets_are_stored_only_as_a_digest(twin: Twin) -> None:
    key = twin.client().api.v2010.account.new_keys.create(friendly_name="hashed")
    stored = twin.store.api_key(twin.master.sid, "us1", key.sid)
    assert stored is not None
    assert stored.secret_sha256 == hashlib.sha256(key.secret.encode()).hexdigest()
    database = twin.store.path
    on_disk = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert key.sid.encode() in on_disk and key.secret.encode() not in on_disk


def test_an_older_database_gets_a_token_per_region_on_upgrade(tmp_path) -> None:
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    connection.executescript(MIGRATIONS[0].sql + "PRAGMA user_version = 1;")
    connection.execute(
        "INSERT INTO accounts (sid, auth_token, friendly_name, owner_account_sid, status,"
        " date_created, date_updated) VALUES (?, ?, 'old', ?, 'active', 0, 0)",
        ("AC" + "a" * 32, "b" * 32, "AC" + "a" * 32))
    connection.commit()
    connection.close()
    store = Store(path)
    try:
        tokens = store.auth_tokens("AC" + "a" * 32)
    finally:
        store.close()
    assert tokens["us1"] == "b" * 32
    assert set(tokens) == {"us1", "ie1", "au1"} and len(set(tokens.values())) == 3
    assert all(HEX_TOKEN.match(token) for token in tokens.values())
