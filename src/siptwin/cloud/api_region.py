"""Which processing region a REST request addresses.

Twilio selects the region by host: ``api.twilio.com`` (and ``voice.twilio.com``, where the
SDK sends BYOC trunk requests) is us1, ``api.{edge}.{region}.twilio.com``
(``api.dublin.ie1.twilio.com``) or the older ``api.{region}.twilio.com`` address another
region (spec 2.1).  The twin honours those Host headers, so a proxy or an /etc/hosts entry
pointing Twilio host names at the twin just works.

A local client usually talks to ``http://127.0.0.1:PORT`` instead, where the Host header
carries no region.  For that case the twin accepts a region path prefix:
``client.api.base_url = "http://127.0.0.1:PORT/ie1"`` makes every request, including the
next-page links the SDK follows, go to ``/ie1/2010-04-01/...``.  Without a prefix or a
Twilio host name the region is us1, like ``api.twilio.com``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ErrorCode, TwilioError, bad_request
from .scope import DEFAULT_REGION, PROCESSING_REGIONS

TWILIO_HOST_SUFFIX = ".twilio.com"
_PRODUCTS_WITH_REGIONS = ("api", "routes", "voice")


@dataclass(frozen=True)
class RegionSelection:
    region: str
    path: str  # the request path with any region prefix removed


def region_from_host(host: str | None) -> str | None:
    """The region a Twilio host name names, or None when ``host`` is not a Twilio API host."""
    if not host:
        return None
    name = host.strip().lower().rstrip(".")
    if name.startswith("["):  # an IPv6 literal never names a region
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    if not name.endswith(TWILIO_HOST_SUFFIX):
        return None
    labels = name.split(".")
    if labels[0] not in _PRODUCTS_WITH_REGIONS:
        return None
    # Same reading of the labels as the SDK's client_base.get_hostname.
    if len(labels) == 3:  # api.twilio.com
        return DEFAULT_REGION
    if len(labels) == 4:  # api.{region}.twilio.com
        return labels[1]
    if len(labels) == 5:  # api.{edge}.{region}.twilio.com
        return labels[2]
    return None


def select_region(host: str | None, path: str) -> RegionSelection:
    host_region = region_from_host(host)
    prefix_region: str | None = None
    segments = path.split("/", 2)  # ["", first, rest]
    if len(segments) >= 2 and segments[1] in PROCESSING_REGIONS:
        prefix_region = segments[1]
        path = "/" + (segments[2] if len(segments) == 3 else "")
    if host_region is not None and host_region not in PROCESSING_REGIONS:
        raise TwilioError(
            404, ErrorCode.NOT_FOUND, f"Region {host_region} does not process SIP Domains."
        )
    if host_region is not None and prefix_region is not None and host_region != prefix_region:
        raise bad_request(
            ErrorCode.INVALID_PARAMETER,
            f"Host names region {host_region} but the path prefix names {prefix_region}.",
        )
    return RegionSelection(prefix_region or host_region or DEFAULT_REGION, path)
