"""Fidelity settings: every behaviour the spec leaves [UNCONFIRMED], in one place.

Two named profiles set the defaults: ``seed`` (what the seed document says Twilio does; the
default) and ``observed`` (what live traces show). Each setting names the spec section it
answers and why its default was chosen. Settings are overridable per run (``--settings FILE``,
a YAML mapping) and per scenario (``given.settings``); the active values are printed at start
and recorded with every call.

The edge that answers the non-localized ``{d}.sip.twilio.com`` (spec §6.1, unconfirmed) is not
here: it is the region file marked ``default: true`` (us1, Ashburn), since DNS and the nodes
read it from the catalogue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("seed", "observed")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    observed: Any  # value under the ``observed`` profile
    spec: str
    why: str
    choices: tuple[Any, ...] = ()
    # What the setting governs: "sip" (the edges), "voice" (webhooks, TwiML) or "rest" (the
    # control-plane API). One table holds all three so one file and one listing set them all.
    area: str = "sip"
    maximum: float | None = None  # numbers are never negative; some also have a ceiling


SETTINGS: tuple[Setting, ...] = (
    Setting("acl_miss", "drop", "reject",
            "§4.2 step 6", "docs say unlisted traffic is dropped; live traces show 403 + 32201",
            ("drop", "reject")),
    Setting("trying_before_acl", False, True,
            "§4.2 step 1", "the seed has an unlisted address receive nothing at all, so 100 Trying "
            "waits for the ACL check; live traces show 100 before any check", (False, True)),
    Setting("status_callback_events", ("initiated", "ringing", "answered", "completed"),
            ("completed",), "§5.7", "the seed names four events; live SIP-domain calls report "
            "only completed", area="voice"),
    Setting("unknown_domain_status", 404, 404, "§9", "no account to attribute; 404 like a "
            "rejected call"),
    Setting("no_auth_status", 403, 403, "§4.2 step 4", "docs say 'blocked'; 403 is the edge's "
            "rejection code for auth failures"),
    Setting("bad_credentials_status", 403, 403, "§4.2 step 7", "observed 403 for a bad "
            "REGISTER password; not a repeated 407"),
    Setting("secure_transport_status", 403, 403, "§4.2 step 5", "conventional SIP semantics"),
    Setting("media_mismatch_status", 488, 488, "§4.2 step 8", "conventional SIP semantics"),
    Setting("digest_uri_check", "lenient", "lenient", "§4.3", "the response is always checked "
            "against the uri the client hashed; 'strict' also requires it to equal the "
            "Request-URI, which SIPp's default (sip:<ip>:<port>) fails", ("lenient", "strict")),
    Setting("nonce_lifetime", 300.0, 300.0, "§4.2 step 7", "stale nonces get a fresh 407 with "
            "stale=true; five minutes covers slow PBXs"),
    Setting("ack_timeout", 32.0, 32.0, "§4.2 step 11", "documented: no ACK within 32 s of the "
            "200 ends the call (32022)"),
    Setting("first_verb_hangup", "answer-then-bye", "answer-then-bye", "§4.4", "docs say "
            "<Hangup> still answers the call", ("answer-then-bye", "reject"), area="voice"),
    Setting("webhook_failure", "reject-500", "reject-500", "§4.4 / §9", "the call is not yet "
            "answered when TwiML cannot be fetched; alternative: answer and play an error",
            ("reject-500", "answer-error"), area="voice"),
    Setting("repeated_x_header", "first", "first", "§4.6", "undocumented; pass each X- header "
            "once", ("first", "last", "join"), area="voice"),
    Setting("x_header_total_cap", 0, 0, "§4.6 / §9", "inbound limits are not documented (only "
            "outbound ones), so none is enforced (0); a number caps the characters of names "
            "plus values, and each header left out is noted on the call and by 'explain'",
            area="voice"),
    Setting("webhook_connect_timeout", 10.0, 10.0, "§5.4", "documented default", area="voice"),
    Setting("webhook_total_timeout", 15.0, 15.0, "§5.4", "documented default", area="voice"),
    Setting("max_redirects", 10, 10, "§5.5", "a loop of <Redirect> must end; 11215 past this", area="voice"),
    Setting("registration_min_expires", 600, 600, "§4.8", "documented: 423 below 600 s"),
    Setting("registration_max_expires", 3600, 3600, "§4.8", "documented: capped at 3600 s"),
    Setting("registration_max_bindings", 10, 10, "§4.8", "documented: 32007 past 10 per AOR"),
    Setting("rtp_inactivity_timeout", 60.0, 60.0, "§7 (32014)", "Twilio ends a call after "
            "'no audio received for an extended period' without saying how long; seconds of "
            "no RTP from a caller that should be sending (0: never)"),
    Setting("sips_status", 416, 416, "§4.1", "Twilio documents that sips: URIs are not "
            "supported but not the response; RFC 3261 answers an unsupported scheme with 416 "
            "(X-Twilio-Error 32110)"),
    Setting("tls13", False, False, "§4.1 / §4.7", "Twilio documents TLS 1.2 with ten TLS 1.2 "
            "suites; whether its edge also completes a TLS 1.3 handshake is not documented, so "
            "a 1.3-only client is refused unless this is on", (False, True)),
    Setting("trying_reason", "trying -- your call is important to us",
            "trying -- your call is important to us", "§4.2", "observed reason phrase"),
    Setting("allow_methods", ("ACK", "BYE", "CANCEL", "INVITE", "OPTIONS", "REFER", "NOTIFY"),
            ("ACK", "BYE", "CANCEL", "INVITE", "OPTIONS", "REFER", "NOTIFY"), "§4.8",
            "the Allow list Twilio is observed to send (on its own INVITEs); what it puts in "
            "answers to a PBX is unconfirmed. The twin still handles INFO and REGISTER"),
    Setting("authorization_name_match", "register", "register", "§4.2 step 7",
            "32106 (authorization name and username differ) is documented without saying which "
            "username: 'register' compares a REGISTER's AOR user, where the two must be the "
            "same account; 'always' also compares an INVITE's From user; 'off' never",
            ("register", "always", "off")),
    Setting("authorization_name_status", 403, 403, "§4.2 step 7", "the SIP code for 32106 is "
            "not documented; 403 as for the other digest failures"),
    Setting("loopback_contact", "outside-callers", "outside-callers", "§4.2 (other gates)",
            "Twilio refuses a Contact at 127.0.0.1/localhost as a possible loop (32105); the twin "
            "runs on loopback, where such a Contact is reachable, so by default it refuses one "
            "only from a caller outside loopback (netns, docker); 'refuse' is Twilio's rule, "
            "'accept' never checks", ("outside-callers", "refuse", "accept")),
    Setting("loopback_contact_status", 482, 482, "§4.2 (other gates)", "the SIP code for 32105 "
            "is not documented; 482 Loop Detected is RFC 3261's code for a loop"),
    Setting("account_cps_limit", 0.0, 0.0, "§4.2 (other gates)", "the SIP-interface calls per "
            "second of an account past which 32013 refuses a call are not published; 0 means "
            "no limit (each process of 'siptwin up --workers' counts on its own)"),
    Setting("rate_limited_status", 503, 503, "§4.2 / §4.8", "the SIP code for 32013 (calls) and "
            "32008 (REGISTERs) past a rate limit is unconfirmed; 503 as the spec suggests"),
    Setting("inactive_account_status", 403, 403, "§4.2 step 3", "a call or REGISTER to a "
            "domain of a suspended or closed account is refused with Twilio's 10001 'Account "
            "is not active'; the SIP code is not documented: 403 as for the other refusals of "
            "an account's traffic", (403, 404, 480, 503)),
    Setting("auth_failure_throttle", 0, 0, "§4.2 step 7", "Twilio's throttling of wrong "
            "passwords is not published; 0 (off) lets a PBX test see plain 407/403. N > 0: a "
            "source address with N failed digest answers within auth_failure_window is refused "
            "(auth_failure_throttle_status) until the window passes; each process of "
            "'siptwin up --workers' counts on its own"),
    Setting("auth_failure_window", 60.0, 60.0, "§4.2 step 7", "seconds over which "
            "auth_failure_throttle counts failures", maximum=86_400),
    Setting("auth_failure_throttle_status", 503, 503, "§4.2 step 7", "the answer to a throttled "
            "source: 503 with Retry-After (the seconds left), or 403 with 32202 like a wrong "
            "password", (403, 503)),
    Setting("overload_action", "reject", "reject", "§4.2 (other gates)", "Twilio documents no "
            "behaviour for an overloaded edge; its nearest documented gate, 32013 (calls per "
            "second exceeded), has an unconfirmed SIP code, plausibly 503. 'reject' answers a "
            "new call shed under overload 503 with Retry-After (RFC 3261 §21.5.4: the PBX backs "
            "off or tries another edge); 'drop' stays silent (cheaper, but a UDP caller "
            "retransmits)", ("reject", "drop")),
    Setting("registration_rate_limit", 0.0, 0.0, "§4.8", "the REGISTERs per second of an "
            "account past which 32008 refuses one are not published; 0 means no limit"),
    Setting("no_voice_url", "fallback", "fallback", "§3.1 / §5.6", "what Twilio does with a "
            "call to a domain without voice_url is undocumented: 'fallback' treats it as a "
            "failed fetch (fallback URL, then webhook_failure); 'answer-silent' answers and "
            "waits for the caller to hang up", ("fallback", "answer-silent"), area="voice"),
    Setting("to_parameter", "request-uri", "request-uri", "§5.2", "To/Called: the Request-URI "
            "as received without URI parameters (observed values are plain); 'to-header' takes "
            "the To header's URI instead, 'request-uri-verbatim' keeps the parameters",
            ("request-uri", "to-header", "request-uri-verbatim"), area="voice"),
    Setting("unknown_parameters", "ignore", "ignore", "§2.3", "documented: parameters an "
            "operation does not define are ignored (warning 20001); 'reject' answers 400/20001 "
            "so a typo in a script surfaces at once", ("ignore", "reject"), area="rest"),
    Setting("emergency_caller_check", "exists", "exists", "§3.1", "whether Twilio checks "
            "that a domain's EmergencyCallerSid names a phone number of the account, and with "
            "which code, is undocumented; 'exists' refuses an unknown PN SID with 400/21231 "
            "(the domain-parameter code), 'format' checks only that it looks like one",
            ("exists", "format"), area="rest"),
    Setting("referenced_delete", "refuse", "refuse", "§3.1", "deleting a BYOC trunk or "
            "phone number that a domain names (byoc_trunk_sid, emergency_caller_sid) is "
            "undocumented; 'refuse' answers 400/20001 naming the domain, 'clear' deletes it "
            "and clears the domain's field", ("refuse", "clear"), area="rest"),
    Setting("dial_dns_server", "", "", "§4.9", "<Dial><Sip> finds a host name's SIP server "
            "by RFC 3263 (NAPTR, SRV, A); names under twilio.com come from the twin's own zone, "
            "others from this resolver ('host' or 'host:port'); empty: the system resolver "
            "(/etc/resolv.conf)", area="voice"),
    Setting("dial_from_host", "domain", "domain", "§4.9", "the host of the From URI on "
            "Twilio's outbound INVITE is not documented; 'domain' names the calling SIP "
            "domain (acme.sip.twilio.com), 'edge-address' the edge's IP address as the twin "
            "once did", ("domain", "edge-address"), area="voice"),
    Setting("dial_secure_media", "srtp", "srtp", "§4.5", "Twilio documents SRTP for calls to "
            "and from a secure domain but not the offer it sends to a device registered there; "
            "'srtp' offers SDES-SRTP (AES_CM_128_HMAC_SHA1_80, a key of the leg's own), 'rtp' "
            "plain RTP as to any other target", ("srtp", "rtp"), area="voice"),
    Setting("route_propagation_seconds", 0, 0, "§3.9", "an inbound processing region change "
            "takes effect within up to 5 minutes on Twilio; 0 applies it at once (tests), at "
            "most 300", area="rest", maximum=300),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Fidelity:
    """The active profile, the overrides on top of it, and the resolved value of every setting.

    Values read as attributes: ``fidelity.acl_miss``.
    """

    profile: str = "seed"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Each value also becomes an attribute of the instance: a call reads a few dozen
        # settings, and a plain attribute costs a fraction of a __getattr__ call. Only names
        # the class itself does not define (a setting never shadows a method or a field);
        # __getattr__ still answers any other name as before.
        attributes = self.__dict__
        for name, value in self.values.items():
            if not name.startswith("_") and not hasattr(type(self), name):
                attributes.setdefault(name, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("profile", "overrides", "values"):
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def with_overrides(self, overrides: Mapping[str, Any]) -> Fidelity:
        merged = dict(overrides)
        profile = merged.pop("profile", self.profile)
        return build_fidelity(profile, {**self.overrides, **merged})

    def describe(self) -> list[tuple[str, Any, str]]:
        """(name, value, where it comes from) for printing at start."""
        return [
            (s.name, self.values[s.name],
             "override" if s.name in self.overrides else f"profile {self.profile}")
            for s in SETTINGS
        ]

    def as_record(self) -> dict[str, Any]:
        """Every value, JSON-ready, as each call record keeps it. Built once per Fidelity and
        shared by the records made under it: treat it as read-only."""
        record = self.__dict__.get("_record")
        if record is None:
            record = {"profile": self.profile, **{k: _plain(v) for k, v in self.values.items()}}
            self.__dict__["_record"] = record
        return record


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class SettingsError(ValueError):
    pass


def build_fidelity(profile: str = "seed", overrides: Mapping[str, Any] | None = None) -> Fidelity:
    if profile not in PROFILES:
        raise SettingsError(f"unknown fidelity profile {profile!r}; choose one of {', '.join(PROFILES)}")
    values = {s.name: (s.observed if profile == "observed" else s.default) for s in SETTINGS}
    for name, value in (overrides or {}).items():
        setting = _BY_NAME.get(name)
        if setting is None:
            raise SettingsError(f"unknown setting {name!r}; known: {', '.join(sorted(_BY_NAME))}")
        if setting.choices and value not in setting.choices:
            raise SettingsError(f"setting {name} must be one of {list(setting.choices)}, not {value!r}")
        if isinstance(setting.default, tuple):
            value = tuple(value)
        elif isinstance(setting.default, bool):
            if not isinstance(value, bool):
                raise SettingsError(f"setting {name} must be true or false")
        elif isinstance(setting.default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"setting {name} must be a number")
            if value < 0 or (setting.maximum is not None and value > setting.maximum):
                top = f" and at most {setting.maximum:g}" if setting.maximum is not None else ""
                raise SettingsError(f"setting {name} must be at least 0{top}, not {value!r}")
        values[name] = value
    return Fidelity(profile, dict(overrides or {}), values)


def load_fidelity(path: Path | None, profile: str | None = None) -> Fidelity:
    """Settings from a YAML file ({profile: ..., settings: {...}} or a flat mapping)."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path}: expected a mapping of settings")
        data = dict(loaded)
    chosen = profile or data.pop("profile", "seed")
    data.pop("profile", None)
    overrides = data.pop("settings", None) or data
    return build_fidelity(chosen, overrides)


def settings_table() -> list[dict[str, Any]]:
    """Documentation rows: every setting with both profile values, spec section and reason."""
    return [dataclasses.asdict(s) for s in SETTINGS]
