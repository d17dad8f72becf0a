"""TwiML documents: parse, then validate against the verbs a SIP-domain call can use.

Parsing fails only for what stops Twilio from reading the document at all - not XML, no
``<Response>`` root, a DTD - with 12100. Everything else it can work around (an unknown verb
or attribute, a misplaced noun, a bad attribute value) becomes a 12200 warning and execution
goes on without that part, as Twilio's debugger shows (spec §5.5).
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from ..model.codes import VoiceError

_COMMON_CALLBACK = ("statusCallback", "statusCallbackEvent", "statusCallbackMethod")
VERB_ATTRIBUTES: dict[str, frozenset[str]] = {
    "Say": frozenset({"voice", "language", "loop"}),
    "Play": frozenset({"loop", "digits"}),
    "Pause": frozenset({"length"}),
    "Hangup": frozenset(),
    "Reject": frozenset({"reason"}),
    "Redirect": frozenset({"method"}),
    "Gather": frozenset({
        "action", "method", "timeout", "finishOnKey", "numDigits", "input",
        "actionOnEmptyResult", "speechTimeout", "hints", "language", "bargeIn", "debug",
        "partialResultCallback", "partialResultCallbackMethod", "profanityFilter",
        "speechModel", "enhanced", "dtmfDetection",
    }),
    "Dial": frozenset({
        "action", "method", "timeout", "callerId", "answerOnBridge", "hangupOnStar",
        "timeLimit", "record", "recordingStatusCallback", "recordingStatusCallbackMethod",
        "recordingStatusCallbackEvent", "recordingTrack", "trim", "ringTone", "referUrl",
        "referMethod", "sequential", "events",
    }),
    "Record": frozenset({
        "action", "method", "timeout", "finishOnKey", "maxLength", "playBeep", "trim",
        "recordingStatusCallback", "recordingStatusCallbackMethod",
        "recordingStatusCallbackEvent", "transcribe", "transcribeCallback",
        "recordingChannels", "storageUrl", "storageUrlMethod",
    }),
}
# Real TwiML the twin accepts but does not emulate: they answer the call and are skipped.
NOT_EMULATED = frozenset({
    "Enqueue", "Leave", "Connect", "Refer", "Pay", "Prompt", "Start", "Stop", "Echo", "Sms",
    "Message", "Queue",
})
NESTED: dict[str, frozenset[str]] = {
    "Gather": frozenset({"Say", "Play", "Pause"}),
    "Dial": frozenset({"Sip", "Number", "Client", "Conference", "Queue", "Sim", "Application"}),
}
NOUN_ATTRIBUTES: dict[str, frozenset[str]] = {
    "Sip": frozenset({"username", "password", "url", "method", "machineDetection",
                      "amdStatusCallback", "amdStatusCallbackMethod", *_COMMON_CALLBACK}),
}
SSML_TAGS = frozenset({"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as",
                       "sub", "w", "amazon:domain", "amazon:effect"})
_DIGITS_KEYS = re.compile(r"[0-9*#]*")


@dataclass
class Verb:
    name: str
    attributes: dict[str, str]
    text: str
    children: list[Verb] = field(default_factory=list)

    def attr(self, name: str, default: str = "") -> str:
        return self.attributes.get(name, default)


@dataclass
class TwimlDocument:
    url: str
    verbs: list[Verb]
    warnings: list[VoiceError] = field(default_factory=list)


@functools.lru_cache(maxsize=256)
def parse_twiml(body: bytes, url: str) -> TwimlDocument | VoiceError:
    """The document, or the 12100 error that stops Twilio from reading it.

    Remembered by (body, url): an application answers every call with the same few
    documents, and the interpreter only reads them (a document is never changed once
    parsed)."""
    text = body.strip()
    if not text:
        return VoiceError(12100, f"{url} returned an empty document")
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        return VoiceError(12100, f"{url}: document type declarations are not allowed in TwiML")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as err:
        return VoiceError(12100, f"{url} is not well-formed XML: {err}")
    if root.tag != "Response":
        return VoiceError(12100, f"{url}: the root element is <{root.tag}>, not <Response>")
    warnings: list[VoiceError] = []
    verbs = [verb for element in root
             if (verb := _verb(element, url, warnings)) is not None]
    return TwimlDocument(url, verbs, warnings)


def _verb(element: ElementTree.Element, url: str, warnings: list[VoiceError]) -> Verb | None:
    name = element.tag
    known = VERB_ATTRIBUTES.get(name)
    if known is None and name not in NOT_EMULATED:
        warnings.append(VoiceError(12200, f"{url}: <{name}> is not a TwiML verb; skipped"))
        return None
    attributes = dict(element.attrib)
    if known is not None:
        for attribute in list(attributes):
            if attribute not in known:
                warnings.append(VoiceError(
                    12200, f"{url}: <{name}> has no attribute {attribute!r}; ignored"))
                del attributes[attribute]
    verb = Verb(name, attributes, _text(element))
    allowed = NESTED.get(name, frozenset())
    for child in element:
        if name == "Say" and child.tag in SSML_TAGS:
            continue
        if child.tag not in allowed:
            warnings.append(VoiceError(
                12200, f"{url}: <{child.tag}> is not allowed inside <{name}>; ignored"))
            continue
        noun = Verb(child.tag, dict(child.attrib), _text(child))
        noun_known = NOUN_ATTRIBUTES.get(child.tag) or VERB_ATTRIBUTES.get(child.tag)
        if noun_known is not None:
            for attribute in list(noun.attributes):
                if attribute not in noun_known:
                    warnings.append(VoiceError(
                        12200, f"{url}: <{child.tag}> has no attribute {attribute!r}; ignored"))
                    del noun.attributes[attribute]
        verb.children.append(noun)
    _check_values(verb, url, warnings)
    return verb


def _text(element: ElementTree.Element) -> str:
    return " ".join("".join(element.itertext()).split()) if element.tag == "Say" else (
        element.text or "").strip()


def _check_values(verb: Verb, url: str, warnings: list[VoiceError]) -> None:
    def bad(attribute: str, why: str) -> None:
        warnings.append(VoiceError(
            12200, f"{url}: <{verb.name} {attribute}={verb.attributes[attribute]!r}> {why}; "
                   "default used"))
        del verb.attributes[attribute]

    for attribute in ("method",):
        if attribute in verb.attributes and verb.attributes[attribute].upper() not in ("GET", "POST"):
            bad(attribute, "is not GET or POST")
    for attribute in ("length", "loop", "numDigits", "timeout", "maxLength", "timeLimit"):
        if attribute in verb.attributes and not verb.attributes[attribute].strip().isdigit():
            bad(attribute, "is not a whole number")
    if verb.name == "Reject" and verb.attributes.get("reason", "rejected") not in (
            "rejected", "busy"):
        bad("reason", "is neither 'rejected' nor 'busy'")
    if "finishOnKey" in verb.attributes and not _DIGITS_KEYS.fullmatch(verb.attributes["finishOnKey"]):
        bad("finishOnKey", "is not a digit, * or #")
    if verb.name in ("Redirect", "Play") and not verb.text:
        warnings.append(VoiceError(12200, f"{url}: <{verb.name}> has no URL"))
