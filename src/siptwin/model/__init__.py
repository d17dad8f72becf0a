"""The twin's shared vocabulary, with no I/O: what every product package may name.

- :mod:`.calls`: the call record (``Call``, its trace, alerts) and the bounded registry;
- :mod:`.wire`: the one encoding of a call record between processes (JSON and pickled batches);
- :mod:`.codes`: Twilio's error and warning codes, the realm, pipeline stages, call statuses;
- :mod:`.sids`: SID formats and minting;
- :mod:`.presentation`: how a call is shown to webhooks and in the REST API;
- :mod:`.findings`: a diagnostic finding.

Imports: :mod:`siptwin.sip` only.
"""
