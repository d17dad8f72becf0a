"""REGISTER requests the live registrar tests send (alice on acme, through the us1 edge)."""

from __future__ import annotations

from siptwin.ua.client import Auth, SipClient
from tests.support import PASSWORD

DOMAIN = "acme.sip.us1.twilio.com"
AOR = "sip:alice@acme.sip.twilio.com"  # bindings are kept under the domain's own name
ALICE = Auth("alice", PASSWORD)


def contact(n: int = 1, port: int = 5070) -> str:
    return f"<sip:alice@127.0.0.{n}:{port}>"


async def register(harness, *, contact_value: str | None = contact(), expires: int | None = 3600,
                   auth: Auth | None = ALICE, region: str = "us1", host: str = DOMAIN,
                   extra: list[tuple[str, str]] | None = None):
    headers = list(extra or [])
    if contact_value is not None:
        headers.append(("Contact", contact_value))
    if expires is not None:
        headers.append(("Expires", str(expires)))
    node_host, port = harness.node_port(region)
    async with SipClient() as client:
        return await client.request("REGISTER", node_host, port, f"sip:{host}",
                                    to_uri=f"sip:alice@{host}", headers=headers, auth=auth)
