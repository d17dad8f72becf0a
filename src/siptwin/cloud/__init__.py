"""The emulated Twilio control plane: accounts, SIP domains, lists, mappings, routes.

Public entry points:

- :func:`siptwin.cloud.api.make_app` — the REST API as an aiohttp application;
- :class:`siptwin.cloud.store.Store` — the SQLite store it serves;
- :class:`siptwin.cloud.view.ControlPlaneView` — what SIP region nodes read;
- ``python -m siptwin.cloud`` — run it standalone.

See docs/control-plane.md.
"""
