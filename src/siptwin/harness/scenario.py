"""Scenarios as data: loading, schema validation with file:line errors, templating.

A scenario file says what to set up (``given``), what to send (``when``, or several ``steps``)
and what must come back (``then``). Every string is a jinja2 template rendered per region with
``region``, ``edge``, ``domain`` (the unique label provisioned for this item), ``host`` (the
domain's localized host for the region), ``node`` (the region's address) and ``unique(name)``.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import yaml

from . import faults

ALL_REGIONS = "all"

_str_or_list = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_headers = {"type": "object", "additionalProperties": {"type": "string"}}
_auth = {
    "type": "object",
    "required": ["username", "password"],
    "additionalProperties": False,
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
}
_common_action = {
    "source": {"type": "string", "description": "loopback source address"},
    "transport": {"enum": ["udp", "tcp", "tls"]},
    "region": {"type": "string", "description": "send to this region's node instead"},
}
_invite = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_common_action,
        "to": {"type": "string"},
        "from": {"type": "string"},
        "auth": _auth,
        "headers": _headers,
        "sdp": {"type": ["string", "null"]},
        "hold": {"type": "number", "minimum": 0},
        "hang_up": {"type": "boolean"},
        "wait": {"type": "number", "minimum": 0},
        "max_forwards": {"type": "integer", "minimum": 0, "maximum": 255},
        "cancel_after": {"type": "number", "minimum": 0},
        "reinvites": {"type": "array", "items": {"type": "string"},
                      "description": "SDP offers sent in the dialog once it is established"},
    },
}
_request = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_common_action,
        "to": {"type": "string"},
        "uri": {"type": "string"},
        "auth": _auth,
        "headers": _headers,
        "expires": {"type": "integer", "minimum": 0},
        "contact": {"type": "string"},
    },
}
_raw = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message"],
    "properties": {**_common_action, "message": {"type": "string"}, "wait": {"type": "number"}},
}
_rest = {
    "type": "object",
    "additionalProperties": False,
    "required": ["method", "path"],
    "properties": {
        "method": {"enum": ["GET", "POST", "DELETE"]},
        "path": {"type": "string", "description": "under /2010-04-01/Accounts/{AccountSid}"},
        "account": {"enum": ["account", "subaccount"],
                    "description": "whose resources: the main account (default) or the item's "
                                   "sub-account (given.subaccount)"},
        "data": {"type": "object"},
    },
}
# ---- interop actions (harness/interop.py): a real peer places the call
_sipp = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_common_action,
        "scenario": {"type": "string", "description": "SIPp XML: a path, or a name under harness/sipp/"},
        "host": {"type": "string", "description": "-key domain (default: the item's host)"},
        "service": {"type": ["string", "integer"]},
        "auth": _auth,
        "calls": {"type": "integer", "minimum": 1},
        "rate": {"type": "number", "exclusiveMinimum": 0},
        "keys": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "recv_timeout": {"type": "number", "exclusiveMinimum": 0},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
    },
}
_shell = {"type": "string", "minLength": 1}
_pbx = {
    "type": "object",
    "additionalProperties": False,
    "required": ["device"],
    "properties": {
        "device": {"enum": ["kamailio", "baresip", "command", "container"]},
        "transport": {"enum": ["udp", "tcp", "tls"]},
        "region": {"type": "string"},
        "host": {"type": "string"},
        "service": {"type": ["string", "integer"]},
        "auth": _auth,
        "header": {"type": "object", "minProperties": 1, "maxProperties": 1,
                   "additionalProperties": {"type": "string"},
                   "description": "the X- header the SBC appends"},
        "seconds": {"type": "number", "minimum": 1},
        "config": {"type": "string", "description": "kamailio: your own kamailio.cfg (same tokens)"},
        # device: command / container (harness/devices.py)
        "start": _shell, "call": _shell, "stop": _shell,
        "ready": {"type": "string", "minLength": 1, "description": "regex on start's output"},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
        "env": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "image": {"type": "string", "minLength": 1},
        "command": _shell,
        "volumes": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "host path -> path in the container"},
    },
    "allOf": [
        {"if": {"properties": {"device": {"const": "command"}}},
         "then": {"required": ["call"]}},
        {"if": {"properties": {"device": {"const": "container"}}},
         "then": {"required": ["image", "call"]}},
        {"if": {"properties": {"device": {"enum": ["kamailio", "baresip"]}}},
         "then": {"not": {"anyOf": [{"required": [k]} for k in
                                    ("start", "call", "stop", "ready", "env", "image",
                                     "command", "volumes")]}}},
        {"if": {"properties": {"device": {"const": "command"}}},
         "then": {"not": {"anyOf": [{"required": [k]} for k in ("image", "command", "volumes")]}}},
    ],
}
_peer_run = {"type": "object", "additionalProperties": False,
             "properties": {"exit": {"type": "integer"}, "successful": {"type": "integer"},
                            "failed": {"type": "integer"}}}
_received = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "host": {"type": "string"}, "region": {"type": "string"},
        "codecs": {"type": "array", "items": {"type": "string"}},
        "methods": {"type": "array", "items": {"type": "string"}},
        "headers": _headers, "digest_uri_matches": {"type": "boolean"},
        "username": {"type": "string"}, "invites": {"type": "integer"},
    },
}

# A phone that registers on the item's domain and stays up for the rest of the item,
# answering (or ringing at) every INVITE the twin sends it: the target of <Dial> scenarios.
_phone = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user"],
    "properties": {
        **_common_action,
        "user": {"type": "string"},
        "auth": _auth,
        "answer": {"type": ["integer", "null"], "minimum": 200, "maximum": 699,
                   "description": "the final response (null: ring until CANCELled)"},
        "after": {"type": "number", "minimum": 0, "description": "seconds of ringing first"},
        "register": {"type": "boolean", "description": "false: only listen (for Dial by name)"},
    },
}
_phones = {
    "type": "object",
    "additionalProperties": False,
    "description": "what the item's phones got, all together",
    "properties": {
        "rang": {"type": "integer"}, "answered": {"type": "integer"},
        "cancelled": {"type": "integer"}, "headers": _headers,
    },
}

_when = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {"invite": _invite, "options": _request, "register": _request, "raw": _raw,
                   "rest": _rest, "sipp": _sipp, "pbx": _pbx, "fault": faults.SCHEMA,
                   "phone": _phone},
}
_then = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "responses": {"type": "array", "items": {"type": "integer"}},
        "final": {"type": "integer"},
        "no_answer_within": {"type": "number", "minimum": 0},
        "headers": _headers,
        "absent_headers": {"type": "array", "items": {"type": "string"}},
        "established": {"type": "boolean"},
        "ended_by_twin": {"type": "boolean"},
        "sdp_has": {"type": "array", "items": {"type": "string"},
                    "description": "lines or fragments the final response's SDP must contain"},
        "reinvites": {
            "type": "array",
            "description": "what each of the invite's reinvites got, in order",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"final": {"type": "integer"},
                               "sdp_has": {"type": "array", "items": {"type": "string"}}},
            },
        },
        "webhook": {
            "oneOf": [
                {"const": "none"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "params": {"type": "object"},
                        "exact": {"type": "boolean"},
                        "absent": {"type": "array", "items": {"type": "string"}},
                        "signature_valid": {"type": "boolean"},
                        "count": {"type": "integer"},
                        "requests": {
                            "type": "array",
                            "items": {"type": "object",
                                      "additionalProperties": {"type": ["string", "number"]}},
                            "description": "parameters (globs) of the app's requests in "
                                           "order: the voice URL's, then actions, redirects"},
                        "fallback": {"type": "boolean"},
                    },
                },
            ]
        },
        "status_callbacks": {"type": "array", "items": {"type": "string"}},
        "http_status": {"type": "integer"},
        "error_code": {"type": "integer", "description": "Twilio's code in a REST error answer"},
        "call": {"type": "object"},
        "alerts": {"type": "array", "items": {"type": "integer"}},
        "findings": {"type": "array", "items": {"type": "string"},
                     "description": "diagnostic finding ids that must be reported"},
        "no_findings": {"type": "array", "items": {"type": "string"},
                        "description": "finding ids, or error/warning, that must not be"},
        "sipp": _peer_run,
        "pbx": _peer_run,
        "received": _received,
        "phones": _phones,
    },
}
_app = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "twiml": _str_or_list,
        "status": {"type": "integer"},
        "delay": {"type": "number", "minimum": 0},
        "body": {"type": "string"},
        "content_type": {"type": "string"},
        "fallback": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "twiml": {"type": "string"},
                "status": {"type": "integer"},
                "delay": {"type": "number"},
                "body": {"type": "string"},
            },
        },
        "status_callback": {"type": "boolean"},
    },
}
_domain = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "label": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
        "owner": {"enum": ["account", "subaccount"],
                  "description": "subaccount: created in the item's sub-account"},
        "voice_url": {"type": "string"},
        "voice_method": {"enum": ["GET", "POST"]},
        "secure": {"type": "boolean"},
        "sip_registration": {"type": "boolean"},
        "acl": {"type": "array", "items": {"type": "string"}},
        "credentials": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        },
        "registration_credentials": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        },
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "pins"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "pins": _str_or_list,
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}},
        "regions": {"oneOf": [{"const": ALL_REGIONS}, {"type": "array", "items": {"type": "string"}}]},
        "given": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "settings": {"type": "object"},
                "domain": {"oneOf": [_domain, {"const": None}]},
                # A sub-domain {label}.{domain}.sip.twilio.com of the item's domain.
                "subdomain": _domain,
                "subaccount": {"type": "object", "additionalProperties": False,
                               "properties": {"friendly_name": {"type": "string"}}},
                "app": _app,
            },
        },
        "when": _when,
        "then": _then,
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["when"],
                "properties": {"when": _when, "then": _then, "pause": {"type": "number"}},
            },
        },
    },
    "oneOf": [{"required": ["when"]}, {"required": ["steps"]}],
}


_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Step:
    action: str  # invite, options, register, raw
    params: dict[str, Any]
    expect: dict[str, Any]
    pause: float = 0.0


@dataclass
class Scenario:
    path: Path
    id: str  # "acl/ip-not-listed"
    feature: str  # "acl"
    title: str
    pins: list[str]
    tags: list[str]
    regions: list[str] | None  # None: all
    given: dict[str, Any]
    steps: list[Step]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def applies_to(self, region: str) -> bool:
        return self.regions is None or region in self.regions


_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(path: Path, text: str,
               error: type[Exception]) -> tuple[yaml.Node | None, Any]:
    """The document and its node tree (for ``_line_of``); bad YAML raises ``error`` naming
    ``path:line``."""
    try:
        # libyaml (two parses: building the document flattens ``<<`` merge keys in the node
        # tree, and _line_of reads the tree as written); the pure Python parser only runs
        # again to word the error of a file libyaml refused.
        try:
            return yaml.compose(text, Loader=_FastLoader), yaml.load(text, Loader=_FastLoader)
        except yaml.YAMLError:
            return yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise error(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None


def load_scenario(path: Path, root: Path) -> Scenario:
    text = path.read_text(encoding="utf-8")
    node, data = parse_yaml(path, text, ScenarioError)
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}:1: a scenario is a mapping with title, pins, when/then")
    errors = sorted(_VALIDATOR.iter_errors(data),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise ScenarioError(schema_error(path, node, errors))
    relative = path.relative_to(root).with_suffix("")
    feature = relative.parts[0] if len(relative.parts) > 1 else "general"
    if "steps" in data:
        steps = [_step(s["when"], s.get("then", {}), s.get("pause", 0.0)) for s in data["steps"]]
    else:
        steps = [_step(data["when"], data.get("then", {}), 0.0)]
    regions = data.get("regions", ALL_REGIONS)
    pins = data["pins"] if isinstance(data["pins"], list) else [data["pins"]]
    return Scenario(path, relative.as_posix(), feature, data["title"], pins,
                    sorted({feature, *data.get("tags", [])}),
                    None if regions == ALL_REGIONS else list(regions), data.get("given") or {},
                    steps, data)


def _step(when: dict[str, Any], then: dict[str, Any], pause: float) -> Step:
    (action, params), = when.items()
    return Step(action, params or {}, then or {}, pause)


def schema_error(path: Path, node: yaml.Node | None,
                 errors: list[jsonschema.ValidationError]) -> str:
    """``file:line: location: message`` for the deepest of ``errors`` (the first of equals)."""
    worst = max(errors, key=lambda e: len(list(e.absolute_path)))
    steps = list(worst.absolute_path)
    location = "/".join(str(p) for p in steps) or "(top level)"
    return f"{path}:{_line_of(node, steps)}: {location}: {_explain(worst)}"


def _explain(err: jsonschema.ValidationError) -> str:
    if err.validator == "not" and isinstance(err.instance, dict) and "device" in err.instance:
        keys = [k for k in ("start", "call", "stop", "ready", "env", "image", "command", "volumes")
                if k in err.instance]
        return f"{', '.join(keys)}: not a setting of device {err.instance['device']!r}"
    if err.validator == "additionalProperties":
        return err.message.replace("Additional properties are not allowed", "unknown key(s)")
    if err.validator == "oneOf" and err.context:
        best = min(err.context, key=lambda e: len(e.message))
        return best.message
    return err.message


def _line_of(node: yaml.Node | None, path: list[Any]) -> int:
    """1-based line of the YAML node at ``path`` (the deepest one that exists)."""
    current = node
    line = (node.start_mark.line + 1) if node is not None else 1
    for key in path:
        if isinstance(current, yaml.MappingNode):
            match = next((v for k, v in current.value if k.value == key), None)
            key_node = next((k for k, _ in current.value if k.value == key), None)
            if match is None:
                break
            line = (key_node or match).start_mark.line + 1
            current = match
        elif isinstance(current, yaml.SequenceNode) and isinstance(key, int) and key < len(current.value):
            current = current.value[key]
            line = current.start_mark.line + 1
        else:
            break
    return line


def discover(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if not p.name.startswith("_"))


# ---------------------------------------------------------------------------- templating

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                          keep_trailing_newline=True)


@functools.lru_cache(maxsize=2048)
def _template(source: str) -> jinja2.Template:
    """Compiled once per worker: items of every region render the same strings."""
    return _ENV.from_string(source)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists walked) as a jinja2 template."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _template(value).render(context)
        except jinja2.TemplateError as err:
            raise ScenarioError(f"template {value!r}: {err}") from None
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def unique_label(base: str) -> str:
    """A domain label no other item (or xdist worker) uses: domain names are global."""
    return f"{base}-{secrets.token_hex(3)}"
