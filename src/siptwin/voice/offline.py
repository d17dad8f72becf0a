"""TwiML sources answered inside the twin, so scenarios run without any network.

- ``twiml:<Response>…</Response>`` - the document is the URL itself (percent-encoding allowed).
  Twin-only: real Twilio has no such scheme.
- ``http(s)://twimlets.com/message?Message[0]=…&Message[1]=…`` - the seed's example: each
  message is said, or played when it is a URL. ``/echo?Twiml=…`` returns its document.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

from ..model.codes import VoiceError

TWIML_SCHEME = "twiml:"
TWIMLETS_HOST = "twimlets.com"


def handles(url: str) -> bool:
    if url.startswith(TWIML_SCHEME):
        return True
    return _twimlets(url)


@lru_cache(maxsize=256)  # asked twice per call for the domain's voice URL
def _twimlets(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in (
        TWIMLETS_HOST, f"www.{TWIMLETS_HOST}")


def display_url(url: str) -> str:
    return url.split("#", 1)[0] if not url.startswith(TWIML_SCHEME) else url


def answer(url: str) -> bytes | VoiceError:
    """The document an offline URL answers (a new error each time: the caller may annotate it)."""
    document = _document(url)
    if isinstance(document, str):
        return VoiceError(11200, document)
    return document


@lru_cache(maxsize=256)
def _document(url: str) -> bytes | str:
    """Every call of a domain asks for the same URL: its document is made once (a str is the
    detail of a 11200 error)."""
    outcome = _answer(url)
    return outcome.detail if isinstance(outcome, VoiceError) else outcome


def _answer(url: str) -> bytes | VoiceError:
    if url.startswith(TWIML_SCHEME):
        document = url[len(TWIML_SCHEME):]
        if not document.lstrip().startswith("<"):
            document = unquote(document)
        return document.encode("utf-8")
    parts = urlsplit(url.split("#", 1)[0])
    query = parse_qsl(parts.query, keep_blank_values=True)
    name = parts.path.strip("/")
    if name == "message":
        return _message_twimlet(query)
    if name == "echo":
        twiml = next((value for key, value in query if key == "Twiml"), "<Response/>")
        return twiml.encode("utf-8")
    return VoiceError(11200, f"twimlet {name!r} is not available offline (404)")


def _message_twimlet(query: list[tuple[str, str]]) -> bytes:
    def order(key: str) -> int:
        inside = key[len("Message["):-1]
        return int(inside) if inside.isdigit() else 0

    messages = sorted(
        ((key, value) for key, value in query if key == "Message" or
         (key.startswith("Message[") and key.endswith("]"))),
        key=lambda pair: order(pair[0]) if pair[0] != "Message" else 0,
    )
    verbs = []
    for _, text in messages:
        if text.startswith(("http://", "https://")):
            verbs.append(f"<Play>{escape(text)}</Play>")
        else:
            verbs.append(f"<Say>{escape(text)}</Say>")
    return f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{''.join(verbs)}</Response>".encode()
