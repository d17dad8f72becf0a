"""Digest HA1 values for SIP credentials (RFC 2617 MD5, RFC 7616 SHA-256), and the digest
kept of an API key secret.

Twilio keeps a credential only as ``H(username:realm:password)`` with the fixed realm
``sip.twilio.com`` (spec 3.5); the twin does the same so that a clear password never
reaches the database, a log line or a response.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..model.codes import REALM

TWILIO_DIGEST_REALM = REALM


@dataclass(frozen=True)
class Ha1Pair:
    md5: str
    sha256: str


def ha1_for(username: str, password: str, realm: str = TWILIO_DIGEST_REALM) -> Ha1Pair:
    material = f"{username}:{realm}:{password}".encode()
    return Ha1Pair(
        md5=hashlib.md5(material).hexdigest(),
        sha256=hashlib.sha256(material).hexdigest(),
    )


def secret_digest(secret: str) -> str:
    """What the store keeps of an API key secret: Twilio shows a secret once, so the twin
    keeps only this. A secret is 32 random letters and digits (190 bits), so one fast hash
    is as safe as a slow one: there is no dictionary to try."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
