"""``X-Twilio-Signature`` exactly as Twilio computes it (spec §5.3).

The string to sign is the full URL Twilio requested followed, for form-encoded POSTs, by every
parameter name immediately followed by its value, names sorted, and for a repeated name its
distinct values sorted. HMAC-SHA1 with the account Auth Token, Base64 with padding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

Params = Iterable[tuple[str, str]] | Mapping[str, str]


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        return list(params.items())
    return list(params)


def signing_string(url: str, params: Params | None = None) -> str:
    grouped: dict[str, set[str]] = {}
    for name, value in _pairs(params):
        grouped.setdefault(name, set()).add(value)
    # Duplicates collapse, like the SDK's validator: Twilio never sends the same pair twice.
    return url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )


def compute_signature(auth_token: str, url: str, params: Params | None = None) -> str:
    digest = hmac.new(auth_token.encode("utf-8"), signing_string(url, params).encode("utf-8"),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def body_sha256(body: bytes) -> str:
    """The hex digest Twilio appends as ``bodySHA256=`` when it signs a JSON body."""
    return hashlib.sha256(body).hexdigest()


def json_signed_url(url: str, body: bytes) -> str:
    """The URL Twilio signs (with no parameters) for an ``application/json`` request."""
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{query}bodySHA256={body_sha256(body)}"))


def with_default_port(url: str) -> str:
    """``https://h/p`` -> ``https://h:443/p``: the second form validators must accept."""
    parts = urlsplit(url)
    if parts.port is not None:
        return url
    port = 443 if parts.scheme == "https" else 80
    return urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))
